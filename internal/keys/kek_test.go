package keys_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/keys"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/store/sqlstore"
)

func newKEK(t *testing.T, b byte) *keys.KEK {
	t.Helper()
	k, err := keys.NewKEK(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// inClear reports whether a stored private key is a JWK in the clear.
func inClear(k store.Key) bool {
	return bytes.HasPrefix(k.Private, []byte("{")) || bytes.Contains(k.Private, []byte(`"d":`))
}

func storedKeys(t *testing.T, st *sqlstore.DB) []store.Key {
	t.Helper()
	ks, err := st.ListKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func openErr(st *sqlstore.DB, kek *keys.KEK) error {
	_, err := keys.Open(context.Background(), st, keys.Options{Algorithm: "ES256", MoreAlgorithms: []string{"RS256"}, RetireAfter: time.Hour, KEK: kek})
	return err
}

// TestKeysEncryptedAtRest: with a key-encryption key, no private key is stored in
// the clear — new keys, rotated keys, and keys stored before the KEK was
// configured (encrypted on start, retired ones too) — and every key still loads
// and signs; the wrong KEK, or none, is an error naming the key.
func TestKeysEncryptedAtRest(t *testing.T) {
	ctx := context.Background()
	kek := newKEK(t, 7)

	t.Run("ok/new-and-rotated-keys", func(t *testing.T) {
		st := newStore(t)
		ks, err := keys.Open(ctx, st, keys.Options{Algorithm: "ES256", MoreAlgorithms: []string{"RS256"}, RetireAfter: time.Hour, KEK: kek})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ks.Rotate(ctx, 0); err != nil {
			t.Fatal(err)
		}
		all := storedKeys(t, st)
		if len(all) != 4 {
			t.Fatalf("%d keys stored, want 4", len(all))
		}
		for _, k := range all {
			if inClear(k) {
				t.Errorf("key %s stored in the clear", k.ID)
			}
		}
		if _, err := ks.Sign("at+jwt", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		if err := openErr(st, kek); err != nil {
			t.Fatalf("another process with the same KEK: %v", err)
		}
	})

	t.Run("ok/keys-in-the-clear-encrypted-on-start", func(t *testing.T) {
		st := newStore(t)
		plain, err := keys.Open(ctx, st, keys.Options{Algorithm: "ES256", RetireAfter: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := plain.Rotate(ctx, 0); err != nil { // one retired (later) key among them
			t.Fatal(err)
		}
		before := storedKeys(t, st)
		for _, k := range before {
			if !inClear(k) {
				t.Fatalf("without a KEK key %s is not stored as before", k.ID)
			}
		}
		ks, err := keys.Open(ctx, st, keys.Options{Algorithm: "ES256", RetireAfter: time.Hour, KEK: kek})
		if err != nil {
			t.Fatal(err)
		}
		after := storedKeys(t, st)
		if len(after) != len(before) {
			t.Fatalf("%d keys after, %d before", len(after), len(before))
		}
		for i, k := range after {
			if inClear(k) || k.ID != before[i].ID {
				t.Errorf("key %s still in the clear (or renamed to %s)", before[i].ID, k.ID)
			}
		}
		if ks.Active().ID != plain.Active().ID {
			t.Errorf("the signing key changed: %s, was %s", ks.Active().ID, plain.Active().ID)
		}
	})

	t.Run("fail/wrong-or-no-kek", func(t *testing.T) {
		st := newStore(t)
		if err := openErr(st, kek); err != nil {
			t.Fatal(err)
		}
		kid := storedKeys(t, st)[0].ID
		for name, k := range map[string]*keys.KEK{"wrong": newKEK(t, 8), "none": nil} {
			err := openErr(st, k)
			if err == nil || !strings.Contains(err.Error(), kid) {
				t.Errorf("%s KEK: %v, want an error naming key %s", name, err, kid)
			}
		}
	})

	t.Run("fail/sealed-key-moved-to-another-row", func(t *testing.T) {
		// The kid is the additional data: a sealed key copied over another's row
		// does not open.
		st := newStore(t)
		if err := openErr(st, kek); err != nil {
			t.Fatal(err)
		}
		all := storedKeys(t, st)
		if err := st.ReplaceKeyPrivate(ctx, all[1].ID, all[1].Private, all[0].Private); err != nil {
			t.Fatal(err)
		}
		if err := openErr(st, kek); err == nil || !strings.Contains(err.Error(), all[1].ID) {
			t.Errorf("a sealed key on another key's row: %v", err)
		}
	})
}

func TestParseKEK(t *testing.T) {
	raw := bytes.Repeat([]byte{0xab}, 32)
	for _, tc := range []struct {
		name, text string
		ok         bool
	}{
		{"ok/base64", base64.StdEncoding.EncodeToString(raw) + "\n", true},
		{"ok/base64url-unpadded", base64.RawURLEncoding.EncodeToString(raw), true},
		{"ok/hex", "  " + hex.EncodeToString(raw) + "\n", true},
		{"fail/empty", " \n", false},
		{"fail/short", base64.StdEncoding.EncodeToString(raw[:16]), false},
		{"fail/long-hex", hex.EncodeToString(append(raw, 1)), false},
		{"fail/passphrase", "correct horse battery staple", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := keys.ParseKEK([]byte(tc.text))
			if (err == nil) != tc.ok {
				t.Fatalf("ParseKEK: %v", err)
			}
			if err != nil && strings.TrimSpace(tc.text) != "" && strings.Contains(err.Error(), strings.TrimSpace(tc.text)) {
				t.Errorf("the error shows the key: %v", err)
			}
		})
	}
}

func TestLoadKEK(t *testing.T) {
	dir := t.TempDir()
	text := []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)) + "\n")
	for _, tc := range []struct {
		name string
		mode os.FileMode
		ok   bool
	}{
		{"ok/owner-only", 0o600, true},
		{"ok/owner-read-only", 0o400, true},
		{"fail/group-readable", 0o640, false},
		{"fail/world-readable", 0o644, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(tc.name, "/", "-"))
			if err := os.WriteFile(f, text, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(f, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := keys.LoadKEK(f)
			if (err == nil) != tc.ok {
				t.Fatalf("LoadKEK of a file with mode %#o: %v", tc.mode, err)
			}
		})
	}
	if _, err := keys.LoadKEK(filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadKEK of an absent file: %v", err)
	}
}
