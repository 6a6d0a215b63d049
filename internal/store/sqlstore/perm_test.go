package sqlstore

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// TestSQLiteFilesOwnerOnly: the database holds the private signing keys, so it
// and its -wal and -shm files are readable by their owner only, whatever the
// umask lets through (0644 with the usual 022) — a new database as a "file:" URI
// or a path, and an existing one created readable by others.
func TestSQLiteFilesOwnerOnly(t *testing.T) {
	check := func(t *testing.T, path string) {
		t.Helper()
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm&0o077 != 0 {
				t.Errorf("%s has mode %#o; want no group or other permission", filepath.Base(p), perm)
			}
		}
	}
	write := func(t *testing.T, dsn string) {
		t.Helper()
		db := openFile(t, dsn)
		now := time.Now()
		if err := db.InsertKey(t.Context(), store.Key{ID: "k", Algorithm: "ES256", Private: []byte(`{"d":"secret"}`), CreatedAt: now, ActiveAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("ok/new-path", func(t *testing.T) {
		dsn := tempDSN(t)
		write(t, dsn)
		check(t, dsn)
	})
	t.Run("ok/new-file-uri", func(t *testing.T) {
		path := tempDSN(t)
		write(t, "file:"+path+"?_busy_timeout=1000")
		check(t, path)
	})
	t.Run("ok/existing-readable-by-others", func(t *testing.T) {
		path := tempDSN(t)
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		write(t, path)
		check(t, path)
	})
}
