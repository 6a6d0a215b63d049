package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeKEK writes a new random 256-bit key-encryption key (base64) to path with mode.
func writeKEK(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// startFails launches deputy serve and waits for it to exit during start-up; it
// returns what it logged.
func (s *server) startFails() string {
	s.t.Helper()
	s.launch()
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		s.t.Fatalf("deputy did not stop at start-up:\n%s", s.logs.String())
	}
	if s.cmd.ProcessState.Success() {
		s.t.Fatalf("deputy exited 0:\n%s", s.logs.String())
	}
	return s.logs.String()
}

// TestSigningKeysEncryptedAtRest: with signing.key_encryption_key_file the
// private signing keys are stored encrypted (AES-256-GCM), on SQLite and
// PostgreSQL: `deputy keys rotate` uses the same key, and a deputy given another
// key, or a key file others can read, refuses to start with a message naming the
// problem. The SQLite database and its -wal and -shm files are the owner's only.
func TestSigningKeysEncryptedAtRest(t *testing.T) {
	kek := filepath.Join(t.TempDir(), "kek")
	writeKEK(t, kek, 0o600)
	saved, err := os.ReadFile(kek)
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, bankConfig+"signing: {key_encryption_key_file: \""+kek+"\"}\n")
	tok := s.token("web-app", "web-secret", clientCredentials("")).str("access_token")
	if out, code := s.deputy("keys", "rotate", "--publish-for", "0s"); code != 0 {
		t.Fatalf("keys rotate with the key-encryption key: exit %d %s", code, out)
	}
	kids := s.jwksKids()

	if !onPostgres() {
		var stored []byte
		for _, f := range []string{"deputy.db", "deputy.db-wal", "deputy.db-shm"} {
			p := filepath.Join(s.dir, f)
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm != 0o600 {
				t.Errorf("%s has mode %#o, want 0600", f, perm)
			}
			b, _ := os.ReadFile(p)
			stored = append(stored, b...)
		}
		if bytes.Contains(stored, []byte(`"d":"`)) {
			t.Error("the database holds a private JWK in the clear")
		}
	}
	s.stop()

	writeKEK(t, kek, 0o600) // another key
	if logs := s.startFails(); !strings.Contains(logs, "cannot be decrypted with the configured key-encryption key") || !containsAny(logs, kids) {
		t.Errorf("start with another key-encryption key:\n%s", logs)
	}
	if err := os.WriteFile(kek, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(kek, 0o644); err != nil {
		t.Fatal(err)
	}
	s.logs.b.Reset()
	if logs := s.startFails(); !strings.Contains(logs, "signing.key_encryption_key_file") || !strings.Contains(logs, "chmod 600") {
		t.Errorf("start with a key file others can read:\n%s", logs)
	}
	if err := os.Chmod(kek, 0o600); err != nil {
		t.Fatal(err)
	}
	s.run()
	if in := s.post("introspection_endpoint", "web-app", "web-secret", url.Values{"token": {tok}}); in.Body["active"] != true {
		t.Errorf("token signed before the restarts: %s", in.Raw)
	}
}

func containsAny(s string, subs []string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}
