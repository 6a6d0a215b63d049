package config

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLoadRelativePaths: a relative path written in a configuration file is
// relative to that file's directory, wherever deputy runs; one from an environment
// variable is relative to the working directory, as is the default database.
func TestLoadRelativePaths(t *testing.T) {
	dir := t.TempDir()
	cfgDir := filepath.Join(dir, "etc")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	src := `issuer: https://auth.example.com
tls:
  cert_file: tls/cert.pem
  key_file: /abs/key.pem
storage:
  dsn: data/deputy.db
clients:
  - id: api1
    jwks_file: keys/api1.json
trusted_issuers:
  - name: corp
    issuer: https://corp.example
    jwks_file: ../shared/corp.json
    audiences: [x]
saml_idps:
  - name: idp
    entity_id: https://idp.example
    certificate_file: idp.pem
`
	file := filepath.Join(cfgDir, "deputy.yaml")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	// Loaded as a relative name from another directory.
	t.Chdir(dir)
	tests := []struct {
		name string
		env  []string
		got  func(c *Config) string
		want string
	}{
		{"ok/tls", nil, func(c *Config) string { return c.TLS.CertFile }, filepath.Join(cfgDir, "tls/cert.pem")},
		{"ok/absolute-kept", nil, func(c *Config) string { return c.TLS.KeyFile }, "/abs/key.pem"},
		{"ok/sqlite-dsn", nil, func(c *Config) string { return c.Storage.DSN }, filepath.Join(cfgDir, "data/deputy.db")},
		{"ok/client-jwks", nil, func(c *Config) string { return c.Clients[0].JWKSFile }, filepath.Join(cfgDir, "keys/api1.json")},
		{"ok/trusted-issuer-jwks", nil, func(c *Config) string { return c.TrustedIssuers[0].JWKSFile }, filepath.Join(dir, "shared/corp.json")},
		{"ok/saml-certificate", nil, func(c *Config) string { return c.SAMLIdPs[0].CertificateFile }, filepath.Join(cfgDir, "idp.pem")},
		{"ok/default-dsn-relative-to-cwd", []string{"DEPUTY_STORAGE_DSN="}, func(c *Config) string { return c.Storage.DSN }, DefaultStorageDSN},
		{"ok/env-relative-to-cwd", []string{"DEPUTY_STORAGE_DSN=here.db", "DEPUTY_TLS_CERT_FILE=c.pem"}, func(c *Config) string { return c.Storage.DSN + " " + c.TLS.CertFile }, "here.db c.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(filepath.Join("etc", "deputy.yaml"), tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.got(c); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestResolveSQLiteDSN(t *testing.T) {
	tests := []struct{ name, dsn, want string }{
		{"ok/path", "deputy.db", "/etc/deputy/deputy.db"},
		{"ok/path-query", "deputy.db?_busy_timeout=100", "/etc/deputy/deputy.db?_busy_timeout=100"},
		{"ok/uri", "file:data/deputy.db?mode=rwc", "file:/etc/deputy/data/deputy.db?mode=rwc"},
		{"ok/absolute", "/var/lib/deputy.db", "/var/lib/deputy.db"},
		{"ok/memory", ":memory:", ":memory:"},
		{"ok/memory-uri", "file::memory:?cache=shared", "file::memory:?cache=shared"},
		{"ok/memory-mode", "file:x?mode=memory", "file:x?mode=memory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := resolveSQLiteDSN("/etc/deputy", tt.dsn); got != tt.want {
				t.Errorf("resolveSQLiteDSN(%q) = %q, want %q", tt.dsn, got, tt.want)
			}
		})
	}
}
