package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlaintextKeysGoneAfterEncryption: a deputy that ran without a
// key-encryption key stored its private signing keys in the clear; started with
// signing.key_encryption_key_file it encrypts them, and the SQLite database and
// its WAL hold no private JWK afterwards — not in the rows, not in the pages and
// WAL frames the clear keys were stored in before (SQLite's secure_delete, and
// the file rewritten once when keys were encrypted).
func TestPlaintextKeysGoneAfterEncryption(t *testing.T) {
	if onPostgres() {
		t.Skip("SQLite's files; PostgreSQL keeps dead rows until VACUUM (README: rotate after enabling encryption)")
	}
	s := start(t, bankConfig)
	s.token("web-app", "web-secret", clientCredentials(""))
	// Retiring rewrites every key row: more copies of the clear keys in the file.
	if out, code := s.deputy("keys", "rotate", "--publish-for", "0s"); code != 0 {
		t.Fatalf("keys rotate: exit %d %s", code, out)
	}
	s.stop()
	if !bytes.Contains(dbFiles(t, s.dir), []byte(`"d":"`)) {
		t.Fatal("without a key-encryption key the database holds no private JWK: the test finds nothing to look for")
	}

	kek := filepath.Join(t.TempDir(), "kek")
	writeKEK(t, kek, 0o600)
	s.writeConfig(bankConfig+"signing: {key_encryption_key_file: \""+kek+"\"}\n", strings.TrimPrefix(s.issuer, "http://"))
	s.run()
	s.token("web-app", "web-secret", clientCredentials(""))
	if bytes.Contains(dbFiles(t, s.dir), []byte(`"d":"`)) {
		t.Error("running with a key-encryption key, the database files still hold a private JWK in the clear")
	}
	s.stop()
	if bytes.Contains(dbFiles(t, s.dir), []byte(`"d":"`)) {
		t.Error("stopped after encrypting its keys, the database files still hold a private JWK in the clear")
	}
}

// dbFiles returns the contents of the SQLite database in dir and of its -wal
// and -journal files, those that exist.
func dbFiles(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	for _, f := range []string{"deputy.db", "deputy.db-wal", "deputy.db-journal"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}
