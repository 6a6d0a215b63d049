package server_test

import (
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/server"
)

// TestKeyOptionsKeyEncryptionKey: the key-encryption key comes from the file or
// the value, not both; a bad one is an error naming the key that never shows it.
func TestKeyOptionsKeyEncryptionKey(t *testing.T) {
	const good = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="
	for _, tc := range []struct {
		name, file, value, want string
	}{
		{"ok/none", "", "", ""},
		{"ok/value", "", good, ""},
		{"fail/both", "/etc/deputy/kek", good, "signing.key_encryption_key: set either"},
		{"fail/value-not-256-bits", "", "c2VjcmV0LXBhc3N3b3Jk", "signing.key_encryption_key: the key-encryption key is not 32 bytes"},
		{"fail/file-absent", "/nonexistent/kek", "", "signing.key_encryption_key_file: open /nonexistent/kek"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{}
			cfg.SetDefaults()
			cfg.Signing.KeyEncryptionKeyFile, cfg.Signing.KeyEncryptionKey = tc.file, tc.value
			opts, err := server.KeyOptions(cfg)
			if tc.want == "" {
				if err != nil || (opts.KEK != nil) != (tc.value != "") {
					t.Fatalf("KeyOptions: %v (KEK %v)", err, opts.KEK != nil)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("KeyOptions: %v, want %q…", err, tc.want)
			}
			if tc.value != "" && strings.Contains(err.Error(), tc.value) {
				t.Errorf("the error shows the key: %v", err)
			}
		})
	}
}
