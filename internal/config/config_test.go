package config

import (
	"errors"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/oauth"
)

// writeConfig writes src to a file named deputy.yaml in a new directory.
func writeConfig(t *testing.T, src string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "deputy.yaml")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// problems returns the problems of an *Error, failing the test for another error.
func problems(t *testing.T, err error) []Problem {
	t.Helper()
	if err == nil {
		return nil
	}
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("error %T %q is not a *config.Error", err, err)
	}
	return cerr.Problems
}

func TestLoadFull(t *testing.T) {
	c, err := Load("testdata/full.yaml", nil)
	if err != nil {
		t.Fatalf("Load(testdata/full.yaml): %v", err)
	}
	// Every key of the schema is set in the file: for lists, in at least one element.
	for _, path := range unsetKeys(reflect.ValueOf(c).Elem(), "") {
		t.Errorf("testdata/full.yaml does not set %s", path)
	}
	// A sample of values, one of each kind.
	if got, want := c.Issuer, "https://auth.example.com"; got != want {
		t.Errorf("issuer = %q, want %q", got, want)
	}
	if got, want := c.Tokens.AccessTokenTTL.D(), 10*time.Minute; got != want {
		t.Errorf("tokens.access_token_ttl = %v, want %v", got, want)
	}
	if got, want := c.Limits.MaxBodyBytes, int64(131072); got != want {
		t.Errorf("limits.max_body_bytes = %d, want %d", got, want)
	}
	if p := c.Exchange.Policies[0]; !p.RequireMayAct || p.MaxChain != 3 || !slices.Equal(p.SubjectIssuers, []string{"self", "entra", "corp"}) {
		t.Errorf("exchange.policies[0] = %+v", p)
	}
	if got := c.Users[0].Claims; got["email"] != "alice@example.com" || got["name"] != "Alice" {
		t.Errorf("users[0].claims = %v", got)
	}
	if got := c.Users[0].Roles; !slices.Equal(got, []string{RoleAuditor}) {
		t.Errorf("users[0].roles = %v", got)
	}
	if got, want := c.SAMLIdPs[0].SubjectAttribute, "urn:oid:0.9.2342.19200300.100.1.1"; got != want {
		t.Errorf("saml_idps[0].subject_attribute = %q, want %q", got, want)
	}
	if got, want := c.Clients[1].AuthMethod, oauth.AuthClientSecretBasic; got != want {
		t.Errorf("clients[1].auth_method (default with secret_hash) = %q, want %q", got, want)
	}
}

// unsetKeys lists the schema keys under v that hold the zero value; a key of list
// elements counts as set when one element sets it.
func unsetKeys(v reflect.Value, path string) []string {
	switch {
	case isLeaf(v.Type()) || v.Kind() == reflect.Map:
		if v.IsZero() || (v.Kind() == reflect.Slice || v.Kind() == reflect.Map) && v.Len() == 0 {
			return []string{path}
		}
		return nil
	case v.Kind() == reflect.Slice:
		if v.Len() == 0 {
			return []string{path}
		}
		// Unset in every element.
		unset := map[string]int{}
		var order []string
		for i := range v.Len() {
			for _, k := range unsetKeys(v.Index(i), path+"[]") {
				if unset[k]++; unset[k] == 1 {
					order = append(order, k)
				}
			}
		}
		var out []string
		for _, k := range order {
			if unset[k] == v.Len() {
				out = append(out, k)
			}
		}
		return out
	case v.Kind() == reflect.Struct:
		var out []string
		for i := range v.NumField() {
			if key := yamlKey(v.Type().Field(i)); key != "" {
				out = append(out, unsetKeys(v.Field(i), join(path, key))...)
			}
		}
		return out
	}
	panic("unsetKeys: " + v.Type().String())
}

func TestLoadDecode(t *testing.T) {
	tests := []struct {
		name string
		src  string
		// want are the problems' strings, in order, with FILE for the file name;
		// none for a file that loads.
		want []string
		// check inspects a configuration that loads.
		check func(t *testing.T, c *Config)
	}{
		{
			name: "ok/empty-file",
			src:  "# nothing\n",
			check: func(t *testing.T, c *Config) {
				if c.Issuer != "http://127.0.0.1:8080" {
					t.Errorf("issuer = %q", c.Issuer)
				}
			},
		},
		{
			name: "ok/text-as-written",
			src:  "clients:\n  - id: 0123\n    secret: 1.50\n    grant_types: [client_credentials]\n  - id: true\n    secret: !!str 0x1F\n",
			check: func(t *testing.T, c *Config) {
				if c.Clients[0].ID != "0123" || c.Clients[0].Secret != "1.50" || c.Clients[1].ID != "true" || c.Clients[1].Secret != "0x1F" {
					t.Errorf("clients = %+v", c.Clients)
				}
			},
		},
		{
			name: "ok/block-scalars",
			src:  "users:\n  - username: |-\n      alice\n    password: >-\n      two\n      words\n",
			check: func(t *testing.T, c *Config) {
				if c.Users[0].Username != "alice" || c.Users[0].Password != "two words" {
					t.Errorf("users = %+v", c.Users)
				}
			},
		},
		{
			name: "ok/anchors-aliases-merge",
			src: `x-api: &api
  grant_types: &grants [client_credentials, urn:ietf:params:oauth:grant-type:token-exchange]
  scopes: [a]
clients:
  - <<: *api
    id: api1
    secret: s1
    scopes: [b]
  - {<<: *api, id: api2, secret: s2}
audiences:
  - id: https://api1.example
    scopes: [a, b]
`,
			check: func(t *testing.T, c *Config) {
				want := []string{oauth.GrantClientCredentials, oauth.GrantTokenExchange}
				if !slices.Equal(c.Clients[0].GrantTypes, want) || !slices.Equal(c.Clients[1].GrantTypes, want) {
					t.Errorf("grant_types = %v, %v", c.Clients[0].GrantTypes, c.Clients[1].GrantTypes)
				}
				if !slices.Equal(c.Clients[0].Scopes, []string{"b"}) || !slices.Equal(c.Clients[1].Scopes, []string{"a"}) {
					t.Errorf("scopes: explicit keys must win over merged ones: %v, %v", c.Clients[0].Scopes, c.Clients[1].Scopes)
				}
			},
		},
		{
			name: "ok/null-values",
			src:  "tls:\nclients:\n  - id: a\n    scopes:\n",
			check: func(t *testing.T, c *Config) {
				if !reflect.DeepEqual(c.TLS, TLS{}) || c.Clients[0].Scopes != nil {
					t.Errorf("config = %+v", c)
				}
			},
		},
		{
			name: "fail/unknown-key",
			src:  "issuer: http://a.example\nbogus: 1\n",
			want: []string{"FILE:2:1: bogus: unknown key; expected one of issuer, listen, tls, storage, signing, tokens, audit, audiences, clients, exchange, txn_tokens, trusted_issuers, saml_idps, users, upstream_idps, limits, cors, scopes, trusted_proxies, trusted_proxy_header, http, shutdown, dpop, metrics, log, tracing"},
		},
		{
			name: "fail/unknown-key-typo",
			src:  "isuer: http://a.example\n",
			want: []string{`FILE:1:1: isuer: unknown key; did you mean "issuer"?`},
		},
		{
			name: "fail/unknown-key-nested",
			src:  "clients:\n  - id: a\n    secrett: x\n",
			want: []string{`FILE:3:5: clients[0].secrett: unknown key; did you mean "secret"?`},
		},
		{
			name: "fail/unknown-key-deep",
			src:  "exchange:\n  policies:\n    - client: a\n      audience: [x]\n",
			want: []string{`FILE:4:7: exchange.policies[0].audience: unknown key; did you mean "audiences"?`},
		},
		{
			name: "fail/extension-key-not-top-level",
			src:  "tokens:\n  x-a: 1\n",
			want: []string{"FILE:2:3: tokens.x-a: unknown key; expected one of access_token_ttl, refresh_token_ttl, id_token_ttl, code_ttl, session_ttl"},
		},
		{
			name: "fail/duplicate-key",
			src:  "issuer: http://a.example\nlisten: 127.0.0.1:1\nissuer: http://b.example\n",
			want: []string{"FILE:3:1: issuer: duplicate key (first set at FILE:1:1)"},
		},
		{
			name: "fail/duplicate-key-nested",
			src:  "users:\n  - username: a\n    password: p\n    claims: {email: a@x, email: b@x}\n",
			want: []string{"FILE:4:26: users[0].claims.email: duplicate key (first set at FILE:4:14)"},
		},
		{
			name: "fail/bad-duration",
			src:  "tokens:\n  access_token_ttl: 5x\n",
			want: []string{`FILE:2:21: tokens.access_token_ttl: "5x" is not a duration (like 90s, 5m or 24h): time: unknown unit "x" in duration "5x"`},
		},
		{
			name: "fail/duration-without-unit",
			src:  "signing:\n  retire_after: 60\n",
			want: []string{`FILE:2:17: signing.retire_after: "60" is not a duration (like 90s, 5m or 24h): time: missing unit in duration "60"`},
		},
		{
			name: "fail/int-as-float",
			src:  "audit:\n  max_batch: 1.5\n",
			want: []string{"FILE:2:14: audit.max_batch: expected an integer, got the number 1.5"},
		},
		{
			name: "fail/int-as-text",
			src:  "audit:\n  max_batch: \"12\"\n",
			want: []string{`FILE:2:14: audit.max_batch: expected an integer, got text "12"`},
		},
		{
			name: "fail/int-overflow",
			src:  "limits:\n  max_token_bytes: 99999999999999999999\n",
			want: []string{"FILE:2:20: limits.max_token_bytes: 99999999999999999999 is out of range"},
		},
		{
			name: "fail/bool-yes",
			src:  "exchange:\n  policies:\n    - require_may_act: yes\n",
			want: []string{`FILE:3:24: exchange.policies[0].require_may_act: expected true or false, got text "yes"`},
		},
		{
			name: "fail/list-for-text",
			src:  "clients:\n  - id: [a]\n",
			want: []string{"FILE:2:9: clients[0].id: expected text, got a list"},
		},
		{
			name: "fail/urn-in-flow-mapping",
			src:  "clients:\n  - {id: a, grant_types: [urn:ietf:params:oauth:grant-type:token-exchange]}\n",
			want: []string{"FILE:2:27: clients[0].grant_types[0]: expected text, got a mapping; text with a colon, like a URN, may need quotes"},
		},
		{
			name: "fail/text-for-list",
			src:  "clients:\n  - id: a\n    scopes: a b\n",
			want: []string{`FILE:3:13: clients[0].scopes: expected a list, got text "a b"`},
		},
		{
			name: "fail/text-for-section",
			src:  "tokens: 5m\n",
			want: []string{`FILE:1:9: tokens: expected a mapping, got text "5m"`},
		},
		{
			name: "fail/list-document",
			src:  "- a\n",
			want: []string{"FILE:1:1: expected a mapping, got a list"},
		},
		{
			name: "fail/two-documents",
			src:  "issuer: http://a.example\n---\nlisten: x\n",
			want: []string{"FILE:3:1: a second YAML document; the configuration is one document"},
		},
		{
			name: "fail/syntax",
			src:  "issuer: [\n",
			want: []string{"FILE:1:9: YAML syntax: sequence end token ']' not found"},
		},
		{
			name: "fail/unknown-alias",
			src:  "clients:\n  - id: *nope\n",
			want: []string{"FILE:2:9: clients[0].id: alias *nope names no anchor"},
		},
		{
			name: "fail/self-merge",
			src:  "tls: &t\n  <<: *t\n",
			want: []string{"FILE:2:3: tls: merge keys (<<) nested too deeply"},
		},
		{
			name: "fail/all-problems",
			src:  "isuer: x\ntokens:\n  access_token_ttl: 5x\nclients:\n  - id: a\n    secrett: x\n",
			want: []string{
				`FILE:1:1: isuer: unknown key; did you mean "issuer"?`,
				`FILE:3:21: tokens.access_token_ttl: "5x" is not a duration (like 90s, 5m or 24h): time: unknown unit "x" in duration "5x"`,
				`FILE:6:5: clients[0].secrett: unknown key; did you mean "secret"?`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeConfig(t, tt.src)
			c, err := Load(file, nil)
			var got []string
			for _, p := range problems(t, err) {
				got = append(got, strings.ReplaceAll(p.String(), file, "FILE"))
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Load problems:\n got  %q\n want %q", got, tt.want)
			}
			if tt.check != nil && c != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load(missing file) = %v, want an os.ErrNotExist", err)
	}
}

// validBase is a valid configuration with every section, defaults applied.
func validBase() *Config {
	c := Dev("/var/lib/deputy")
	c.TrustedIssuers = []TrustedIssuer{{Name: "entra", Issuer: "https://login.example/tenant/v2.0", JWKSURI: "https://login.example/keys", Audiences: []string{"api://api1"}}}
	c.SAMLIdPs = []SAMLIdP{{Name: "corp", EntityID: "https://idp.corp.example", CertificateFile: "corp.pem"}}
	c.UpstreamIdPs = []UpstreamIdP{{Name: "google", Type: UpstreamOIDC, Issuer: "https://accounts.google.com", ClientID: "deputy"}}
	c.SetDefaults()
	return c
}

func TestValidate(t *testing.T) {
	const argon = "$argon2id$v=19$m=65536,t=3,p=4$ZGVwdXR5LXNhbHQtYWxpYw$iDQjdasGWCd0OBY3NBuIknTb1izgN9kkawssEvloEvQ"
	tests := []struct {
		name string
		mod  func(c *Config)
		// path and msg of the one problem expected; msg is a substring.
		path, msg string
	}{
		{"ok/base", func(c *Config) {}, "", ""},
		{"ok/metrics-listen", func(c *Config) { c.Metrics.Listen = "127.0.0.1:9090" }, "", ""},
		{"fail/metrics-listen-not-host-port", func(c *Config) { c.Metrics.Listen = "9090" }, "metrics.listen", "is not host:port"},
		{"fail/metrics-listen-is-listen", func(c *Config) { c.Metrics.Listen = c.Listen }, "metrics.listen", "is listen itself"},
		{"ok/tracing-endpoint", func(c *Config) { c.Tracing.Endpoint = "http://otel-collector:4318" }, "", ""},
		{"ok/tracing-endpoint-https-path", func(c *Config) { c.Tracing.Endpoint = "https://otlp.example.com/otlp" }, "", ""},
		{"fail/tracing-endpoint-host-port", func(c *Config) { c.Tracing.Endpoint = "otel-collector:4318" }, "tracing.endpoint", "is not an absolute http(s) URL"},
		{"fail/tracing-endpoint-grpc-scheme", func(c *Config) { c.Tracing.Endpoint = "grpc://otel-collector:4317" }, "tracing.endpoint", "is not an absolute http(s) URL"},
		{"fail/tracing-endpoint-credentials", func(c *Config) { c.Tracing.Endpoint = "https://user:secret@otlp.example.com" }, "tracing.endpoint", "has user info"},
		{"fail/tracing-endpoint-query", func(c *Config) { c.Tracing.Endpoint = "http://otel-collector:4318/?x=1" }, "tracing.endpoint", "has a query or fragment"},
		{"ok/log-json-debug", func(c *Config) { c.Log = Log{Format: "json", Level: "debug"} }, "", ""},
		{"ok/log-text-error", func(c *Config) { c.Log = Log{Format: "text", Level: "error"} }, "", ""},
		{"fail/log-format-unknown", func(c *Config) { c.Log.Format = "logfmt" }, "log.format", `"logfmt" is not one of text, json`},
		{"fail/log-format-upper-case", func(c *Config) { c.Log.Format = "JSON" }, "log.format", `"JSON" is not one of text, json`},
		{"fail/log-level-unknown", func(c *Config) { c.Log.Level = "trace" }, "log.level", `"trace" is not one of debug, info, warn, error`},
		{"fail/log-level-number", func(c *Config) { c.Log.Level = "-4" }, "log.level", `"-4" is not one of debug, info, warn, error`},
		{"ok/https-issuer-with-path", func(c *Config) { c.Issuer = "https://auth.example.com/tenant" }, "", ""},
		{"ok/sha256-secret-hash", func(c *Config) {
			c.Clients[1].Secret, c.Clients[1].SecretHash = "", "sha256:"+strings.Repeat("ab", 32)
		}, "", ""},
		{"ok/argon2id-secret-hash", func(c *Config) { c.Clients[1].Secret, c.Clients[1].SecretHash = "", argon }, "", ""},
		{"fail/argon2id-memory-beyond-1GiB", func(c *Config) {
			c.Clients[1].Secret, c.Clients[1].SecretHash = "", strings.Replace(argon, "m=65536", "m=4194304", 1)
		}, "clients[1].secret_hash", "is neither"},
		{"fail/argon2id-passes-beyond-64", func(c *Config) {
			c.Clients[1].Secret, c.Clients[1].SecretHash = "", strings.Replace(argon, "t=3", "t=1000", 1)
		}, "clients[1].secret_hash", "is neither"},
		{"ok/custom-scheme-redirect", func(c *Config) { c.Clients[0].RedirectURIs = []string{"com.example.app:/callback"} }, "", ""},
		{"ok/policy-from-trusted-issuer-and-saml", func(c *Config) {
			c.Exchange.Policies[0].SubjectIssuers = []string{"entra", "corp"}
			c.Exchange.Policies[0].SubjectTokenTypes = []string{"jwt", "saml2"}
		}, "", ""},

		{"fail/issuer-unset", func(c *Config) { c.Issuer, c.Listen = "", ":8080" }, "issuer", `must be set: the URL clients use; it is derived from listen only when listen names a host, and ":8080" does not`},
		{"fail/issuer-not-http", func(c *Config) { c.Issuer = "ftp://auth.example.com" }, "issuer", `"ftp://auth.example.com" is not an absolute http(s) URL`},
		{"fail/issuer-relative", func(c *Config) { c.Issuer = "auth.example.com" }, "issuer", `"auth.example.com" is not an absolute http(s) URL`},
		{"fail/issuer-trailing-slash", func(c *Config) { c.Issuer = "https://auth.example.com/" }, "issuer", "ends with a slash"},
		{"fail/issuer-query", func(c *Config) { c.Issuer = "https://auth.example.com?a=b" }, "issuer", "has a query"},
		{"fail/issuer-empty-query", func(c *Config) { c.Issuer = "https://auth.example.com?" }, "issuer", "has a query"},
		{"fail/issuer-fragment", func(c *Config) { c.Issuer = "https://auth.example.com#x" }, "issuer", "has a fragment"},
		{"fail/issuer-userinfo", func(c *Config) { c.Issuer = "https://u:p@auth.example.com" }, "issuer", "has user info"},
		{"fail/listen-no-port", func(c *Config) { c.Listen = "localhost" }, "listen", `"localhost" is not host:port`},
		{"fail/listen-without-issuer", func(c *Config) {
			c.Issuer, c.Listen = "", "localhost:http"
			c.SetDefaults()
		}, "listen", `"localhost:http" is not host:port`},
		{"fail/listen-named-port", func(c *Config) { c.Listen = "localhost:http" }, "listen", `"localhost:http" is not host:port`},
		{"fail/listen-port-range", func(c *Config) { c.Listen = "localhost:70000" }, "listen", `"localhost:70000" is not host:port`},
		{"fail/tls-cert-only", func(c *Config) { c.TLS.CertFile = "c.pem" }, "tls.key_file", "must be set with tls.cert_file"},
		{"fail/tls-key-only", func(c *Config) { c.TLS.KeyFile = "k.pem" }, "tls.cert_file", "must be set with tls.key_file"},
		{"fail/storage-driver", func(c *Config) { c.Storage.Driver = "mysql" }, "storage.driver", `"mysql" is not one of sqlite, postgres`},
		{"fail/http-read-timeout-negative", func(c *Config) { c.HTTP.ReadTimeout = Duration(-time.Second) }, "http.read_timeout", "-1s is not positive"},
		{"fail/http-header-timeout-above-read", func(c *Config) { c.HTTP.ReadHeaderTimeout = Duration(time.Minute) }, "http.read_header_timeout", "1m0s is longer than http.read_timeout (15s)"},
		{"fail/http-write-timeout-negative", func(c *Config) { c.HTTP.WriteTimeout = Duration(-time.Second) }, "http.write_timeout", "is not positive"},
		{"fail/http-idle-timeout-negative", func(c *Config) { c.HTTP.IdleTimeout = Duration(-time.Second) }, "http.idle_timeout", "is not positive"},
		{"fail/http-max-header-bytes", func(c *Config) { c.HTTP.MaxHeaderBytes = 100 }, "http.max_header_bytes", "100 is not within 4096…1048576"},
		{"fail/shutdown-drain-negative", func(c *Config) { c.Shutdown.Drain = Duration(-time.Second) }, "shutdown.drain", "is not positive"},
		{"fail/shutdown-timeout-below-read", func(c *Config) { c.Shutdown.Timeout = Duration(10 * time.Second) }, "shutdown.timeout", "10s is shorter than http.read_timeout (15s)"},
		{"fail/dpop-max-age-negative", func(c *Config) { c.DPoP.MaxAge = Duration(-time.Second) }, "dpop.max_age", "is not positive"},
		{"fail/dpop-max-age-too-long", func(c *Config) { c.DPoP.MaxAge = Duration(time.Hour) }, "dpop.max_age", "1h0m0s is longer than 10m0s"},
		{"fail/storage-dsn", func(c *Config) { c.Storage.DSN = "" }, "storage.dsn", "must be set"},
		{"fail/storage-timeout", func(c *Config) { c.Storage.Timeout = Duration(-time.Second) }, "storage.timeout", "-1s is not positive"},
		{"fail/storage-timeout-too-short", func(c *Config) { c.Storage.Timeout = Duration(time.Millisecond) }, "storage.timeout", "1ms is shorter than 100ms"},
		{"fail/signing-algorithm", func(c *Config) { c.Signing.Algorithm = "HS256" }, "signing.algorithm", `"HS256" is not one of ES256, EdDSA, RS256, PS256`},
		{"fail/signing-retire-after", func(c *Config) { c.Signing.RetireAfter = Duration(-time.Hour) }, "signing.retire_after", "-1h0m0s is not positive"},
		{"fail/signing-id-token-algorithm", func(c *Config) { c.Signing.IDTokenAlgorithm = "none" }, "signing.id_token_algorithm", `"none" is not one of ES256, EdDSA, RS256, PS256`},
		{"fail/client-id-token-alg", func(c *Config) { c.Clients[0].IDTokenSignedResponseAlg = "HS256" }, "clients[0].id_token_signed_response_alg", `"HS256" is not one of ES256, EdDSA, RS256, PS256`},
		{"fail/access-ttl-negative", func(c *Config) { c.Tokens.AccessTokenTTL = Duration(-time.Second) }, "tokens.access_token_ttl", "-1s is not positive"},
		{"fail/access-ttl-too-long", func(c *Config) { c.Tokens.AccessTokenTTL = Duration(25 * time.Hour) }, "tokens.access_token_ttl", "25h0m0s is longer than 24h0m0s"},
		{"fail/refresh-ttl", func(c *Config) { c.Tokens.RefreshTokenTTL = Duration(-time.Second) }, "tokens.refresh_token_ttl", "is not positive"},
		{"fail/id-ttl", func(c *Config) { c.Tokens.IDTokenTTL = Duration(-time.Second) }, "tokens.id_token_ttl", "is not positive"},
		{"fail/audit-max-batch", func(c *Config) { c.Audit.MaxBatch = -1 }, "audit.max_batch", "-1 is not positive"},
		{"fail/max-body-bytes", func(c *Config) { c.Limits.MaxBodyBytes = -1 }, "limits.max_body_bytes", "-1 is not positive"},
		{"fail/max-token-bytes", func(c *Config) { c.Limits.MaxTokenBytes = -1 }, "limits.max_token_bytes", "-1 is not positive"},
		{"fail/max-token-bytes-over-body", func(c *Config) { c.Limits.MaxTokenBytes = 70000 }, "limits.max_token_bytes", "70000 is more than limits.max_body_bytes (65536)"},

		{"fail/audience-id-empty", func(c *Config) { c.Audiences = append(c.Audiences, Audience{}) }, "audiences[3].id", "must be set"},
		{"fail/audience-id-space", func(c *Config) { c.Audiences = append(c.Audiences, Audience{ID: "api 4"}) }, "audiences[3].id", `"api 4" contains white space`},
		{"fail/audience-id-duplicate", func(c *Config) { c.Audiences = append(c.Audiences, Audience{ID: "https://api2.example"}) }, "audiences[3].id", `"https://api2.example" is already the id of audiences[1]`},
		{"fail/audience-client", func(c *Config) { c.Audiences[2].Client = "api9" }, "audiences[2].client", `"api9" is not the id of a configured client`},
		{"fail/audience-scope", func(c *Config) { c.Audiences[2].Scopes = []string{"fraud:check", `fraud"check`} }, "audiences[2].scopes[1]", `"fraud\"check" is not a scope name`},
		{"fail/audience-scope-duplicate", func(c *Config) { c.Audiences[2].Scopes = []string{"fraud:check", "fraud:check"} }, "audiences[2].scopes[1]", `"fraud:check" is already audiences[2].scopes[0]`},

		{"fail/client-id-empty", func(c *Config) {
			c.Clients = append(c.Clients, Client{Secret: "s", AuthMethod: oauth.AuthClientSecretBasic})
		}, "clients[6].id", "must be set"},
		{"fail/client-id-space", func(c *Config) { c.Clients = append(c.Clients, Client{ID: "sup port", AuthMethod: oauth.AuthNone}) }, "clients[6].id", `"sup port" contains white space`},
		{"fail/client-id-duplicate", func(c *Config) { c.Clients = append(c.Clients, Client{ID: "api3", AuthMethod: oauth.AuthNone}) }, "clients[6].id", `"api3" is already the id of clients[3]`},
		{"fail/client-secret-and-hash", func(c *Config) { c.Clients[1].SecretHash = argon }, "clients[1].secret_hash", "set either secret or secret_hash, not both"},
		{"fail/client-secret-hash-format", func(c *Config) { c.Clients[1].Secret, c.Clients[1].SecretHash = "", "sha256:abc" }, "clients[1].secret_hash", `is neither "$argon2id$`},
		{"fail/client-auth-method", func(c *Config) { c.Clients[1].AuthMethod = "foo" }, "clients[1].auth_method", `"foo" is not one of client_secret_basic, client_secret_post, private_key_jwt, none`},
		{"fail/client-secret-method-without-secret", func(c *Config) { c.Clients[1].Secret = "" }, "clients[1].secret", "must be set (or secret_hash) for auth_method client_secret_basic"},
		{"fail/client-private-key-jwt-without-jwks", func(c *Config) {
			c.Clients[1].AuthMethod, c.Clients[1].Secret = oauth.AuthPrivateKeyJWT, ""
		}, "clients[1].jwks_file", "must be set for auth_method private_key_jwt"},
		{"fail/client-private-key-jwt-with-secret", func(c *Config) {
			c.Clients[1].AuthMethod, c.Clients[1].JWKSFile = oauth.AuthPrivateKeyJWT, "api1.jwks"
		}, "clients[1].secret", "is not used with auth_method private_key_jwt"},
		{"fail/client-none-with-secret", func(c *Config) {
			c.Clients[0].AuthMethod, c.Clients[0].GrantTypes = oauth.AuthNone, []string{oauth.GrantAuthorizationCode}
		}, "clients[0].secret", "must not be set for auth_method none"},
		{"fail/client-jwks-without-private-key-jwt", func(c *Config) { c.Clients[1].JWKSFile = "api1.jwks" }, "clients[1].jwks_file", "is only used with auth_method private_key_jwt or self_signed_tls_client_auth, not client_secret_basic"},
		{"fail/client-grant-type", func(c *Config) { c.Clients[0].GrantTypes[0] = "password" }, "clients[0].grant_types[0]", `"password" is not one of authorization_code, refresh_token, client_credentials, urn:ietf:params:oauth:grant-type:token-exchange`},
		{"fail/client-grant-type-duplicate", func(c *Config) {
			c.Clients[0].GrantTypes = append(c.Clients[0].GrantTypes, oauth.GrantRefreshToken)
		}, "clients[0].grant_types[3]", `"refresh_token" is already clients[0].grant_types[1]`},
		{"fail/public-client-credentials", func(c *Config) {
			c.Clients[0].Secret, c.Clients[0].AuthMethod = "", oauth.AuthNone
		}, "clients[0].grant_types[2]", "client_credentials is for confidential clients, and auth_method is none"},
		{"fail/public-token-exchange", func(c *Config) {
			c.Clients[0].Secret, c.Clients[0].AuthMethod = "", oauth.AuthNone
			c.Clients[0].GrantTypes = []string{oauth.GrantAuthorizationCode, oauth.GrantTokenExchange}
		}, "clients[0].grant_types[1]", "urn:ietf:params:oauth:grant-type:token-exchange is for confidential clients"},
		{"fail/client-code-without-redirect", func(c *Config) { c.Clients[0].RedirectURIs = nil }, "clients[0].redirect_uris", "must list at least one URI for grant type authorization_code"},
		{"fail/client-redirect-relative", func(c *Config) { c.Clients[0].RedirectURIs = []string{"/callback"} }, "clients[0].redirect_uris[0]", `"/callback" is not an absolute URI`},
		{"fail/client-redirect-no-host", func(c *Config) { c.Clients[0].RedirectURIs = []string{"https:callback"} }, "clients[0].redirect_uris[0]", `"https:callback" is not an absolute URI`},
		{"fail/client-redirect-fragment", func(c *Config) { c.Clients[0].RedirectURIs = []string{"https://app.example/cb#x"} }, "clients[0].redirect_uris[0]", "has a fragment"},
		{"fail/client-scope", func(c *Config) { c.Clients[0].Scopes = append(c.Clients[0].Scopes, "a\\b") }, "clients[0].scopes[6]", "is not a scope name"},
		{"fail/client-audience", func(c *Config) { c.Clients[0].Audiences = []string{"https://api9.example"} }, "clients[0].audiences[0]", `"https://api9.example" is not the id of a configured audience`},
		{"fail/client-may-act-two", func(c *Config) { c.Clients[0].MayAct = []string{"api1", "api2"} }, "clients[0].may_act", "lists 2 clients; may_act names one party (RFC 8693 §4.4)"},
		{"fail/client-may-act-unknown", func(c *Config) { c.Clients[0].MayAct = []string{"api9"} }, "clients[0].may_act[0]", `"api9" is not the id of a configured client`},

		{"fail/policy-name-duplicate", func(c *Config) { c.Exchange.Policies[2].Name = "api1-to-api2" }, "exchange.policies[2].name", `"api1-to-api2" is already the name of exchange.policies[0]`},
		{"fail/policy-name-empty", func(c *Config) { c.Exchange.Policies[2].Name = "" }, "exchange.policies[2].name", "must not be empty"},
		{"fail/policy-client-empty", func(c *Config) { c.Exchange.Policies[0].Client = "" }, "exchange.policies[0].client", "must be set"},
		{"fail/policy-client-unknown", func(c *Config) { c.Exchange.Policies[0].Client = "api9" }, "exchange.policies[0].client", `"api9" is not the id of a configured client`},
		{"fail/policy-client-without-exchange", func(c *Config) { c.Exchange.Policies[0].Client = "web-app" }, "exchange.policies[0].client", `client "web-app" does not have grant type urn:ietf:params:oauth:grant-type:token-exchange`},
		{"fail/policy-subject-issuer", func(c *Config) { c.Exchange.Policies[0].SubjectIssuers = []string{"okta"} }, "exchange.policies[0].subject_issuers[0]", `"okta" is neither self nor the name of a trusted_issuers or saml_idps entry`},
		{"fail/policy-subject-token-type", func(c *Config) { c.Exchange.Policies[0].SubjectTokenTypes = []string{"saml1"} }, "exchange.policies[0].subject_token_types[0]", `"saml1" is not one of access_token, jwt, id_token, refresh_token, saml2`},
		{"fail/policy-saml2-without-idp", func(c *Config) {
			c.Exchange.Policies[0].SubjectTokenTypes = []string{"access_token", "saml2"}
		}, "exchange.policies[0].subject_token_types", "saml2 needs a saml_idps name in subject_issuers"},
		{"fail/policy-audiences-empty", func(c *Config) {
			c.Exchange.Policies[0].Audiences, c.Exchange.Policies[0].Scopes = nil, nil
		}, "exchange.policies[0].audiences", "must list at least one audience"},
		{"fail/policy-audience-unknown", func(c *Config) { c.Exchange.Policies[0].Audiences = []string{"https://api9.example"} }, "exchange.policies[0].audiences[0]", `"https://api9.example" is not the id of a configured audience`},
		{"fail/policy-scope-not-of-audiences", func(c *Config) { c.Exchange.Policies[0].Scopes = []string{"payments:read"} }, "exchange.policies[0].scopes[0]", `"payments:read" is not a scope of the policy's audiences, so it can never be granted`},
		{"fail/policy-mode", func(c *Config) { c.Exchange.Policies[0].Mode = "proxy" }, "exchange.policies[0].mode", `"proxy" is not one of delegation, impersonation`},
		{"fail/policy-max-chain-high", func(c *Config) { c.Exchange.Policies[0].MaxChain = 33 }, "exchange.policies[0].max_chain", "33 is not between 1 and 32 (0 means 4)"},
		{"fail/policy-max-chain-negative", func(c *Config) { c.Exchange.Policies[0].MaxChain = -1 }, "exchange.policies[0].max_chain", "-1 is not between 1 and 32"},
		{"ok/policy-require-binding", func(c *Config) {
			c.Exchange.Policies[0].RequireBinding, c.Exchange.Policies[0].RequestedTokenTypes = true, []string{"access_token", "jwt"}
		}, "", ""},
		{"fail/policy-require-binding-id-token", func(c *Config) {
			c.Exchange.Policies[0].RequireBinding, c.Exchange.Policies[0].RequestedTokenTypes = true, []string{"access_token", "id_token"}
		}, "exchange.policies[0].require_binding", "requested_token_types lists id_token, which cannot be sender-constrained"},
		{"ok/policy-require-binding-refresh-token", func(c *Config) {
			c.Exchange.Policies[0].RequireBinding, c.Exchange.Policies[0].RequestedTokenTypes = true, []string{"access_token", "refresh_token"}
		}, "", ""},
		{"fail/policy-requested-token-type", func(c *Config) { c.Exchange.Policies[0].RequestedTokenTypes = []string{"saml2"} }, "exchange.policies[0].requested_token_types[0]", `"saml2" is not one of access_token, jwt, id_token, refresh_token`},

		{"fail/trusted-issuer-name-empty", func(c *Config) { c.TrustedIssuers[0].Name = "" }, "trusted_issuers[0].name", "must be set"},
		{"fail/trusted-issuer-name-self", func(c *Config) { c.TrustedIssuers[0].Name = "self" }, "trusted_issuers[0].name", `"self" is reserved for deputy itself`},
		{"fail/trusted-issuer-name-duplicate", func(c *Config) {
			c.TrustedIssuers = append(c.TrustedIssuers, c.TrustedIssuers[0])
			c.TrustedIssuers[1].Issuer = "https://other.example"
		}, "trusted_issuers[1].name", `"entra" is already the name of trusted_issuers[0]`},
		{"fail/saml-name-taken-by-trusted-issuer", func(c *Config) { c.SAMLIdPs[0].Name = "entra" }, "saml_idps[0].name", `"entra" is already the name of trusted_issuers[0]`},
		{"fail/trusted-issuer-issuer-empty", func(c *Config) { c.TrustedIssuers[0].Issuer = "" }, "trusted_issuers[0].issuer", "must be set"},
		{"fail/trusted-issuer-issuer-url", func(c *Config) { c.TrustedIssuers[0].Issuer = "login.example" }, "trusted_issuers[0].issuer", `"login.example" is not an absolute http(s) URL`},
		{"fail/trusted-issuer-is-self", func(c *Config) { c.TrustedIssuers[0].Issuer = c.Issuer }, "trusted_issuers[0].issuer", "is deputy's own issuer; policies name it as self"},
		{"fail/trusted-issuer-issuer-duplicate", func(c *Config) {
			c.TrustedIssuers = append(c.TrustedIssuers, c.TrustedIssuers[0])
			c.TrustedIssuers[1].Name = "entra2"
		}, "trusted_issuers[1].issuer", `"https://login.example/tenant/v2.0" is already the issuer of trusted_issuers[0]`},
		{"fail/trusted-issuer-no-jwks", func(c *Config) { c.TrustedIssuers[0].JWKSURI = "" }, "trusted_issuers[0].jwks_uri", "one of jwks_uri or jwks_file must be set"},
		{"fail/trusted-issuer-two-jwks", func(c *Config) { c.TrustedIssuers[0].JWKSFile = "entra.jwks" }, "trusted_issuers[0].jwks_file", "set either jwks_uri or jwks_file, not both"},
		{"fail/trusted-issuer-jwks-uri", func(c *Config) { c.TrustedIssuers[0].JWKSURI = "keys.json" }, "trusted_issuers[0].jwks_uri", `"keys.json" is not an absolute http(s) URL`},
		{"fail/trusted-issuer-audiences", func(c *Config) { c.TrustedIssuers[0].Audiences = nil }, "trusted_issuers[0].audiences", "must list at least one audience"},
		{"fail/trusted-issuer-audience-empty", func(c *Config) { c.TrustedIssuers[0].Audiences = []string{""} }, "trusted_issuers[0].audiences[0]", "must not be empty"},
		{"fail/trusted-issuer-subject-claim", func(c *Config) { c.TrustedIssuers[0].SubjectClaim = "" }, "trusted_issuers[0].subject_claim", "must not be empty"},
		{"fail/trusted-issuer-skew", func(c *Config) { c.TrustedIssuers[0].Skew = Duration(10 * time.Minute) }, "trusted_issuers[0].skew", "10m0s is not between 0s and 5m0s"},
		{"fail/trusted-issuer-claims-reserved", func(c *Config) { c.TrustedIssuers[0].Claims = map[string]string{"sub": "email"} }, "trusted_issuers[0].claims.sub", `"sub" is set by deputy itself`},
		{"fail/trusted-issuer-claims-empty", func(c *Config) { c.TrustedIssuers[0].Claims = map[string]string{"email": ""} }, "trusted_issuers[0].claims.email", "must name a claim"},
		{"fail/trusted-issuer-required-claim-empty", func(c *Config) { c.TrustedIssuers[0].RequiredClaims = map[string]string{"tid": ""} }, "trusted_issuers[0].required_claims.tid", "must be the value"},
		{"fail/trusted-issuer-algorithm", func(c *Config) { c.TrustedIssuers[0].Algorithms = []string{"HS256"} }, "trusted_issuers[0].algorithms[0]", `"HS256" is not one of RS256`},

		{"fail/saml-name-self", func(c *Config) { c.SAMLIdPs[0].Name = "self" }, "saml_idps[0].name", `"self" is reserved`},
		{"fail/saml-entity-id", func(c *Config) { c.SAMLIdPs[0].EntityID = "" }, "saml_idps[0].entity_id", "must be set"},
		{"fail/saml-entity-id-duplicate", func(c *Config) {
			c.SAMLIdPs = append(c.SAMLIdPs, c.SAMLIdPs[0])
			c.SAMLIdPs[1].Name = "corp2"
		}, "saml_idps[1].entity_id", `"https://idp.corp.example" is already the entity_id of saml_idps[0]`},
		{"fail/saml-no-certificate", func(c *Config) { c.SAMLIdPs[0].CertificateFile = "" }, "saml_idps[0].certificate_file", "one of certificate_file or metadata_file must be set"},
		{"fail/saml-two-certificates", func(c *Config) { c.SAMLIdPs[0].MetadataFile = "corp.xml" }, "saml_idps[0].metadata_file", "set either certificate_file or metadata_file, not both"},
		{"fail/saml-audience", func(c *Config) { c.SAMLIdPs[0].Audience = "" }, "saml_idps[0].audience", "must be set"},
		{"ok/saml-subject-attribute", func(c *Config) { c.SAMLIdPs[0].SubjectAttribute = "urn:oid:0.9.2342.19200300.100.1.1" }, "", ""},
		{"fail/saml-subject-attribute-spaces", func(c *Config) { c.SAMLIdPs[0].SubjectAttribute = " uid" }, "saml_idps[0].subject_attribute", `" uid" has white space around it`},
		{"fail/saml-subject-attribute-trailing-newline", func(c *Config) { c.SAMLIdPs[0].SubjectAttribute = "uid\n" }, "saml_idps[0].subject_attribute", `"uid\n" has white space around it`},
		{"fail/saml-subject-attribute-blank", func(c *Config) { c.SAMLIdPs[0].SubjectAttribute = "  " }, "saml_idps[0].subject_attribute", "must not be blank"},

		{"fail/user-username-empty", func(c *Config) { c.Users[1].Username = "" }, "users[1].username", "must be set"},
		{"fail/user-username-space", func(c *Config) { c.Users[1].Username = "bob smith" }, "users[1].username", `"bob smith" contains white space`},
		{"fail/user-username-duplicate", func(c *Config) { c.Users[1].Username = "alice" }, "users[1].username", `"alice" is already the username of users[0]`},
		{"fail/user-username-is-client", func(c *Config) { c.Users[1].Username = "api1" }, "users[1].username", `"api1" is also a client id`},
		{"fail/user-no-password", func(c *Config) { c.Users[1].Password = "" }, "users[1].password_hash", "must be set (or password, for development only)"},
		{"fail/user-password-and-hash", func(c *Config) { c.Users[1].PasswordHash = argon }, "users[1].password", "set either password or password_hash, not both"},
		{"fail/user-password-hash-format", func(c *Config) {
			c.Users[1].Password, c.Users[1].PasswordHash = "", "sha256:"+strings.Repeat("ab", 32)
		}, "users[1].password_hash", `is not "$argon2id$`},
		{"ok/user-role-auditor", func(c *Config) { c.Users[1].Roles = []string{RoleAuditor} }, "", ""},
		{"fail/user-role-unknown", func(c *Config) { c.Users[1].Roles = []string{"auditor", "admin"} }, "users[1].roles[1]", `"admin" is not one of auditor`},
		{"fail/user-role-empty", func(c *Config) { c.Users[1].Roles = []string{""} }, "users[1].roles[0]", "must be set to one of auditor"},
		{"fail/user-role-case", func(c *Config) { c.Users[1].Roles = []string{"Auditor"} }, "users[1].roles[0]", `"Auditor" is not one of auditor`},
		{"fail/user-role-duplicate", func(c *Config) { c.Users[1].Roles = []string{"auditor", "auditor"} }, "users[1].roles[1]", `"auditor" is already users[1].roles[0]`},
		{"fail/user-reserved-claim", func(c *Config) { c.Users[1].Claims["sub"] = "root" }, "users[1].claims.sub", "is a claim deputy sets itself"},

		{"fail/upstream-name", func(c *Config) { c.UpstreamIdPs[0].Name = "" }, "upstream_idps[0].name", "must be set"},
		{"fail/upstream-name-duplicate", func(c *Config) { c.UpstreamIdPs = append(c.UpstreamIdPs, c.UpstreamIdPs[0]) }, "upstream_idps[1].name", `"google" is already the name of upstream_idps[0]`},
		{"fail/upstream-type", func(c *Config) { c.UpstreamIdPs[0].Type = "" }, "upstream_idps[0].type", "must be set to one of oidc, saml"},
		{"fail/upstream-issuer", func(c *Config) { c.UpstreamIdPs[0].Issuer = "" }, "upstream_idps[0].issuer", "must be set"},
		{"fail/upstream-oidc-issuer-url", func(c *Config) { c.UpstreamIdPs[0].Issuer = "accounts.google.com" }, "upstream_idps[0].issuer", "is not an absolute http(s) URL"},
		{"fail/upstream-oidc-client-id", func(c *Config) { c.UpstreamIdPs[0].ClientID = "" }, "upstream_idps[0].client_id", "must be set for type oidc"},

		{"ok/browser-keys", func(c *Config) {
			c.Clients[0].Name = "Web App — Ünïcode"
			c.Clients[0].PostLogoutRedirectURIs = []string{"http://127.0.0.1:9000/", "com.example.app:/signed-out"}
			c.CORS.AllowedOrigins = []string{"https://app.example", "http://127.0.0.1:3000", "https://APP2.example:443"}
			c.Scopes = []Scope{{Name: "payments:read", Description: "See your payments"}, {Name: "openid", Description: "Your user id"}}
		}, "", ""},
		{"fail/client-id-escape", func(c *Config) { c.Clients[0].ID = "web\x1b[2Japp" }, "clients[0].id", "contains control"},
		{"fail/client-id-bidi", func(c *Config) { c.Clients[0].ID = "web\u202eppa" }, "clients[0].id", "bidi"},
		{"fail/client-id-long", func(c *Config) { c.Clients[0].ID = strings.Repeat("c", 257) }, "clients[0].id", "longer than 256 bytes"},
		{"fail/audience-id-control", func(c *Config) {
			c.Audiences[0].ID, c.Clients[0].Audiences, c.Clients[1].Audiences = "https://api1.example/\x07", nil, nil
		}, "audiences[0].id", "contains control"},
		{"fail/username-bidi", func(c *Config) { c.Users[0].Username = "al\u202eice" }, "users[0].username", "bidi"},
		{"fail/client-name-control", func(c *Config) { c.Clients[0].Name = "Web\x1b[31mApp" }, "clients[0].name", "contains control characters"},
		{"fail/client-name-blank", func(c *Config) { c.Clients[0].Name = "  " }, "clients[0].name", "must not be blank"},
		{"fail/client-name-long", func(c *Config) { c.Clients[0].Name = strings.Repeat("n", 101) }, "clients[0].name", "at most 100"},
		{"fail/redirect-uri-javascript", func(c *Config) { c.Clients[0].RedirectURIs = []string{"javascript:alert(1)"} }, "clients[0].redirect_uris[0]", "a scheme a browser runs"},
		{"fail/post-logout-redirect-relative", func(c *Config) { c.Clients[0].PostLogoutRedirectURIs = []string{"/bye"} }, "clients[0].post_logout_redirect_uris[0]", "is not an absolute URI"},
		{"fail/post-logout-redirect-data", func(c *Config) { c.Clients[0].PostLogoutRedirectURIs = []string{"data:text/html,hi"} }, "clients[0].post_logout_redirect_uris[0]", "a scheme a browser runs"},
		{"fail/post-logout-redirect-duplicate", func(c *Config) {
			c.Clients[0].PostLogoutRedirectURIs = []string{"https://a.example/", "https://a.example/"}
		}, "clients[0].post_logout_redirect_uris[1]", "is already"},
		{"fail/cors-star", func(c *Config) { c.CORS.AllowedOrigins = []string{"*"} }, "cors.allowed_origins[0]", `"*" is not accepted`},
		{"fail/cors-null", func(c *Config) { c.CORS.AllowedOrigins = []string{"null"} }, "cors.allowed_origins[0]", "is not an origin"},
		{"fail/cors-path", func(c *Config) { c.CORS.AllowedOrigins = []string{"https://app.example/spa"} }, "cors.allowed_origins[0]", "is not an origin"},
		{"fail/cors-trailing-slash", func(c *Config) { c.CORS.AllowedOrigins = []string{"https://app.example/"} }, "cors.allowed_origins[0]", "ends with a slash"},
		{"fail/cors-scheme", func(c *Config) { c.CORS.AllowedOrigins = []string{"com.example.app://x"} }, "cors.allowed_origins[0]", "is not an origin"},
		{"fail/scope-unknown", func(c *Config) { c.Scopes = []Scope{{Name: "payments:delete", Description: "Delete"}} }, "scopes[0].name", "is no scope of audiences[].scopes or clients[].scopes"},
		{"fail/scope-no-name", func(c *Config) { c.Scopes = []Scope{{Description: "Delete"}} }, "scopes[0].name", "must be set"},
		{"fail/scope-duplicate", func(c *Config) {
			c.Scopes = []Scope{{Name: "openid", Description: "a"}, {Name: "openid", Description: "b"}}
		}, "scopes[1].name", "is already described by scopes[0]"},
		{"fail/scope-no-description", func(c *Config) { c.Scopes = []Scope{{Name: "openid"}} }, "scopes[0].description", "must be set"},
		{"fail/scope-description-control", func(c *Config) { c.Scopes = []Scope{{Name: "openid", Description: "a\nb"}} }, "scopes[0].description", "contains control characters"},
		{"fail/trusted-issuer-maps-idp", func(c *Config) { c.TrustedIssuers[0].Claims = map[string]string{"idp": "idp"} }, "trusted_issuers[0].claims.idp", "is set by deputy itself"},
		{"fail/upstream-name-local", func(c *Config) { c.UpstreamIdPs[0].Name = "local" }, "upstream_idps[0].name", "names sign-ins with deputy's own accounts"},

		{"ok/trusted-proxies", func(c *Config) {
			c.TrustedProxies = []string{"10.0.0.0/8", "2001:db8::/32", "192.0.2.7", "::ffff:198.51.100.0/120"}
		}, "", ""},
		{"fail/trusted-proxy-not-cidr", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "proxy.internal"} }, "trusted_proxies[1]", "is not a CIDR"},
		{"fail/trusted-proxy-host-bits", func(c *Config) { c.TrustedProxies = []string{"10.1.2.3/8"} }, "trusted_proxies[0]", "has bits set past its /8; write 10.0.0.0/8"},
		{"fail/trusted-proxy-everyone", func(c *Config) { c.TrustedProxies = []string{"0.0.0.0/0"} }, "trusted_proxies[0]", "trusts every address"},
		{"fail/trusted-proxy-duplicate", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "10.0.0.0/8"} }, "trusted_proxies[1]", "is already trusted_proxies[0]"},
		{"ok/trusted-proxy-header-forwarded", func(c *Config) { c.TrustedProxyHeader = "Forwarded" }, "", ""},
		{"ok/trusted-proxy-header-any-case", func(c *Config) { c.TrustedProxyHeader = "x-forwarded-for" }, "", ""},
		{"fail/trusted-proxy-header-both", func(c *Config) { c.TrustedProxyHeader = "X-Forwarded-For, Forwarded" }, "trusted_proxy_header", "is not one of X-Forwarded-For, Forwarded"},
		{"ok/tls-client-auth", func(c *Config) {
			c.TLS = TLS{CertFile: "c.pem", KeyFile: "k.pem", ClientCAFile: "ca.pem"}
			c.Clients[1].Secret, c.Clients[1].AuthMethod, c.Clients[1].TLSClientAuthSANDNS = "", oauth.AuthTLSClient, "svc.example"
			c.Clients[1].TLSClientCertificateBoundAccessTokens = true
		}, "", ""},
		{"ok/self-signed-tls-client-auth-behind-proxy", func(c *Config) {
			c.TLS = TLS{ClientCertHeader: "X-Client-Cert", TrustedProxies: []string{"10.0.0.0/8"}}
			c.Clients[1].Secret, c.Clients[1].AuthMethod, c.Clients[1].JWKSFile = "", oauth.AuthSelfSignedTLSClient, "keys.json"
		}, "", ""},
		{"fail/tls-client-auth-two-subjects", func(c *Config) {
			c.TLS = TLS{CertFile: "c.pem", KeyFile: "k.pem", ClientCAFile: "ca.pem"}
			c.Clients[1].Secret, c.Clients[1].AuthMethod = "", oauth.AuthTLSClient
			c.Clients[1].TLSClientAuthSANDNS, c.Clients[1].TLSClientAuthSubjectDN = "svc.example", "CN=svc"
		}, "clients[1].tls_client_auth_subject_dn", "set exactly one of"},
		{"fail/tls-client-auth-without-ca", func(c *Config) {
			c.TLS = TLS{CertFile: "c.pem", KeyFile: "k.pem"}
			c.Clients[1].Secret, c.Clients[1].AuthMethod, c.Clients[1].TLSClientAuthSANDNS = "", oauth.AuthTLSClient, "svc.example"
		}, "tls.client_ca_file", "must be set"},
		{"fail/tls-client-auth-no-certificates", func(c *Config) {
			c.TLS = TLS{ClientCAFile: "ca.pem"}
			c.Clients[1].Secret, c.Clients[1].AuthMethod, c.Clients[1].TLSClientAuthSANDNS = "", oauth.AuthTLSClient, "svc.example"
		}, "clients[1].auth_method", "needs client certificates"},
		{"fail/tls-client-auth-san-ip", func(c *Config) {
			c.TLS = TLS{CertFile: "c.pem", KeyFile: "k.pem", ClientCAFile: "ca.pem"}
			c.Clients[1].Secret, c.Clients[1].AuthMethod, c.Clients[1].TLSClientAuthSANIP = "", oauth.AuthTLSClient, "10.0.0.300"
		}, "clients[1].tls_client_auth_san_ip", "is not an IP address"},
		{"fail/tls-subject-for-other-method", func(c *Config) { c.Clients[1].TLSClientAuthSANDNS = "svc.example" }, "clients[1].tls_client_auth_subject_dn", "only used with auth_method tls_client_auth"},
		{"fail/self-signed-without-jwks", func(c *Config) {
			c.TLS = TLS{CertFile: "c.pem", KeyFile: "k.pem"}
			c.Clients[1].Secret, c.Clients[1].AuthMethod = "", oauth.AuthSelfSignedTLSClient
		}, "clients[1].jwks_file", "must be set for auth_method self_signed_tls_client_auth"},
		{"fail/client-cert-header-without-proxies", func(c *Config) { c.TLS.ClientCertHeader = "X-Client-Cert" }, "tls.trusted_proxies", "must list the proxies"},
		{"fail/tls-trusted-proxies-without-header", func(c *Config) { c.TLS.TrustedProxies = []string{"10.0.0.1"} }, "tls.client_cert_header", "must be set with tls.trusted_proxies"},
		{"fail/tls-trusted-proxy-everyone", func(c *Config) {
			c.TLS = TLS{ClientCertHeader: "X-Client-Cert", TrustedProxies: []string{"::/0"}}
		}, "tls.trusted_proxies[0]", "trusts every address"},
		{"fail/client-cert-header-name", func(c *Config) {
			c.TLS = TLS{ClientCertHeader: "X Client Cert", TrustedProxies: []string{"10.0.0.1"}}
		}, "tls.client_cert_header", "is not an HTTP header name"},
		{"fail/cert-bound-tokens-without-certificates", func(c *Config) { c.Clients[1].TLSClientCertificateBoundAccessTokens = true }, "clients[1].auth_method", "needs client certificates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validBase()
			tt.mod(c)
			ps := problems(t, c.Validate())
			if tt.msg == "" {
				if len(ps) > 0 {
					t.Fatalf("Validate() = %v, want no problem", ps)
				}
				return
			}
			if len(ps) != 1 {
				t.Fatalf("Validate() found %d problems, want 1 at %s:\n%v", len(ps), tt.path, &Error{Problems: ps})
			}
			if ps[0].Path != tt.path || !strings.Contains(ps[0].Message, tt.msg) {
				t.Fatalf("Validate() = %q, want %s: …%s…", ps[0].String(), tt.path, tt.msg)
			}
		})
	}
}

func TestValidateNeverEchoesSecrets(t *testing.T) {
	c := validBase()
	c.Clients[1].Secret, c.Clients[1].SecretHash = "", "sha256:TOPSECRET"
	c.Users[0].Password, c.Users[0].PasswordHash = "", "$argon2id$TOPSECRET"
	err := c.Validate()
	if err == nil || strings.Contains(err.Error(), "TOPSECRET") {
		t.Fatalf("Validate() = %v; want problems that do not repeat the hashes", err)
	}
}

func TestValidateAllProblems(t *testing.T) {
	src := `issuer: https://auth.example.com/
clients:
  - id: a
    auth_method: foo
  - id: b
    auth_method: private_key_jwt
`
	file := writeConfig(t, src)
	_, err := Load(file, []string{"DEPUTY_STORAGE_DRIVER=mysql"})
	got := strings.ReplaceAll(err.Error(), file, "FILE")
	want := strings.Join([]string{
		`FILE:1:9: issuer: "https://auth.example.com/" ends with a slash; write it without, as clients compare it exactly`,
		`$DEPUTY_STORAGE_DRIVER: storage.driver: "mysql" is not one of sqlite, postgres`,
		`storage.dsn: must be set: a SQLite file path or a postgres:// URL`,
		`FILE:4:18: clients[0].auth_method: "foo" is not one of client_secret_basic, client_secret_post, private_key_jwt, none, tls_client_auth, self_signed_tls_client_auth`,
		`FILE:5:5: clients[1].jwks_file: must be set for auth_method private_key_jwt: the client's public keys`,
	}, "\n")
	if got != want {
		t.Fatalf("Load error:\n%s\nwant:\n%s", got, want)
	}
}

func TestEnv(t *testing.T) {
	const base = `clients:
  - id: web-app
    secret: s
    grant_types: [authorization_code]
    redirect_uris: [http://127.0.0.1:9000/callback]
    scopes: [openid]
users:
  - username: alice
    password: p
`
	tests := []struct {
		name  string
		env   []string
		check func(t *testing.T, c *Config)
		// want are the problems' strings, in order.
		want []string
	}{
		{
			name: "ok/metrics-listen",
			env:  []string{"DEPUTY_METRICS_LISTEN=127.0.0.1:9090"},
			check: func(t *testing.T, c *Config) {
				if c.Metrics.Listen != "127.0.0.1:9090" {
					t.Errorf("metrics.listen = %q", c.Metrics.Listen)
				}
			},
		},
		{
			name: "ok/tracing-endpoint",
			env:  []string{"DEPUTY_TRACING_ENDPOINT=http://otel-collector:4318"},
			check: func(t *testing.T, c *Config) {
				if c.Tracing.Endpoint != "http://otel-collector:4318" {
					t.Errorf("tracing.endpoint = %q", c.Tracing.Endpoint)
				}
			},
		},
		{
			name: "ok/log",
			env:  []string{"DEPUTY_LOG_FORMAT=json", "DEPUTY_LOG_LEVEL=warn"},
			check: func(t *testing.T, c *Config) {
				if c.Log.Format != "json" || c.Log.Level != "warn" {
					t.Errorf("log = %+v", c.Log)
				}
			},
		},
		{
			name: "ok/log-reset-to-defaults",
			env:  []string{"DEPUTY_LOG_FORMAT=", "DEPUTY_LOG_LEVEL="},
			check: func(t *testing.T, c *Config) {
				if c.Log.Format != "text" || c.Log.Level != "info" {
					t.Errorf("log = %+v, want the defaults text and info", c.Log)
				}
			},
		},
		{
			name: "fail/log-level",
			env:  []string{"DEPUTY_LOG_LEVEL=verbose"},
			want: []string{`$DEPUTY_LOG_LEVEL: log.level: "verbose" is not one of debug, info, warn, error`},
		},
		{
			name: "ok/scalar",
			env:  []string{"DEPUTY_ISSUER=https://auth.example.com"},
			check: func(t *testing.T, c *Config) {
				if c.Issuer != "https://auth.example.com" {
					t.Errorf("issuer = %q", c.Issuer)
				}
			},
		},
		{
			name: "ok/nested",
			env:  []string{"DEPUTY_STORAGE_DSN=/var/lib/deputy.db", "DEPUTY_TLS_CERT_FILE=c.pem", "DEPUTY_TLS_KEY_FILE=k.pem", "DEPUTY_SIGNING_ALGORITHM=RS256"},
			check: func(t *testing.T, c *Config) {
				if c.Storage.DSN != "/var/lib/deputy.db" || c.TLS.CertFile != "c.pem" || c.TLS.KeyFile != "k.pem" || c.Signing.Algorithm != "RS256" {
					t.Errorf("config = %+v", c)
				}
				if c.Issuer != "https://127.0.0.1:8080" {
					t.Errorf("issuer = %q; the default must follow tls set from the environment", c.Issuer)
				}
			},
		},
		{
			name: "ok/signing-keys",
			env: []string{"DEPUTY_SIGNING_KEY_ENCRYPTION_KEY=q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=",
				"DEPUTY_SIGNING_KEY_ENCRYPTION_KEY_FILE=/run/secrets/kek", "DEPUTY_SIGNING_ID_TOKEN_ALGORITHM=PS256"},
			check: func(t *testing.T, c *Config) {
				if c.Signing.KeyEncryptionKey != "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=" || c.Signing.KeyEncryptionKeyFile != "/run/secrets/kek" ||
					c.Signing.IDTokenAlgorithm != "PS256" {
					t.Errorf("signing = %+v", c.Signing)
				}
			},
		},
		{
			name: "ok/duration-int-bool",
			env:  []string{"DEPUTY_TOKENS_ACCESS_TOKEN_TTL=90s", "DEPUTY_AUDIT_MAX_BATCH=17", "DEPUTY_LIMITS_MAX_BODY_BYTES=100000"},
			check: func(t *testing.T, c *Config) {
				if c.Tokens.AccessTokenTTL.D() != 90*time.Second || c.Audit.MaxBatch != 17 || c.Limits.MaxBodyBytes != 100000 {
					t.Errorf("config = %+v", c)
				}
			},
		},
		{
			name: "ok/dpop",
			env:  []string{"DEPUTY_DPOP_MAX_AGE=20s", "DEPUTY_DPOP_REQUIRE_NONCE=true", "DEPUTY_CLIENTS_0_DPOP_BOUND_ACCESS_TOKENS=true"},
			check: func(t *testing.T, c *Config) {
				if c.DPoP.MaxAge.D() != 20*time.Second || !c.DPoP.RequireNonce || !c.Clients[0].DPoPBoundAccessTokens {
					t.Errorf("dpop = %+v, clients[0] = %+v", c.DPoP, c.Clients[0])
				}
			},
		},
		{
			name: "ok/list-element",
			env:  []string{"DEPUTY_CLIENTS_0_SECRET=from-env", "DEPUTY_USERS_0_PASSWORD=pw"},
			check: func(t *testing.T, c *Config) {
				if c.Clients[0].Secret != "from-env" || c.Users[0].Password != "pw" {
					t.Errorf("config = %+v", c)
				}
			},
		},
		{
			name: "ok/comma-list",
			env:  []string{"DEPUTY_CLIENTS_0_SCOPES=openid, profile,,email"},
			check: func(t *testing.T, c *Config) {
				if want := []string{"openid", "profile", "email"}; !slices.Equal(c.Clients[0].Scopes, want) {
					t.Errorf("clients[0].scopes = %q, want %q", c.Clients[0].Scopes, want)
				}
			},
		},
		{
			name: "ok/map-entry",
			env:  []string{"DEPUTY_USERS_0_CLAIMS_EMAIL=alice@example.com"},
			check: func(t *testing.T, c *Config) {
				if c.Users[0].Claims["email"] != "alice@example.com" {
					t.Errorf("users[0].claims = %v", c.Users[0].Claims)
				}
			},
		},
		{
			name: "ok/append-elements-any-order",
			env: []string{
				"DEPUTY_CLIENTS_2_ID=api2", "DEPUTY_CLIENTS_2_SECRET=s2",
				"DEPUTY_CLIENTS_1_SECRET=s1", "DEPUTY_CLIENTS_1_ID=api1",
				"DEPUTY_EXCHANGE_POLICIES_0_CLIENT=api1", "DEPUTY_EXCHANGE_POLICIES_0_AUDIENCES=https://api2.example",
				"DEPUTY_EXCHANGE_POLICIES_0_REQUIRE_MAY_ACT=true",
				"DEPUTY_CLIENTS_1_GRANT_TYPES=urn:ietf:params:oauth:grant-type:token-exchange",
				"DEPUTY_AUDIENCES_0_ID=https://api2.example",
			},
			check: func(t *testing.T, c *Config) {
				if len(c.Clients) != 3 || c.Clients[1].ID != "api1" || c.Clients[2].Secret != "s2" {
					t.Errorf("clients = %+v", c.Clients)
				}
				if p := c.Exchange.Policies[0]; !p.RequireMayAct || p.Client != "api1" || p.Name != "policies[0]" {
					t.Errorf("exchange.policies[0] = %+v", p)
				}
			},
		},
		{
			name: "ok/empty-resets-to-default",
			env:  []string{"DEPUTY_LISTEN=", "DEPUTY_TOKENS_ACCESS_TOKEN_TTL="},
			check: func(t *testing.T, c *Config) {
				if c.Listen != DefaultListen || c.Tokens.AccessTokenTTL.D() != DefaultAccessTokenTTL {
					t.Errorf("config = %+v", c)
				}
			},
		},
		{
			name: "ok/not-keys-ignored",
			env:  []string{"DEPUTY_CONFIG=/etc/deputy.yaml", "DEPUTY_TEST_POSTGRES=postgres://x", "HOME=/root", "deputy_issuer=x", "NOEQUALS"},
			check: func(t *testing.T, c *Config) {
				if c.Issuer != "http://127.0.0.1:8080" {
					t.Errorf("issuer = %q", c.Issuer)
				}
			},
		},
		{
			name: "fail/unknown-var",
			env:  []string{"DEPUTY_ISSEUR=https://auth.example.com"},
			want: []string{"$DEPUTY_ISSEUR: names no configuration key; did you mean DEPUTY_ISSUER?"},
		},
		{
			name: "fail/unknown-var-in-list",
			env:  []string{"DEPUTY_CLIENTS_0_SECRETT=x"},
			want: []string{"$DEPUTY_CLIENTS_0_SECRETT: names no configuration key; did you mean DEPUTY_CLIENTS_0_SECRET?"},
		},
		{
			name: "fail/unknown-var-far",
			env:  []string{"DEPUTY_LOG_FORMAT_STYLE=json"},
			want: []string{"$DEPUTY_LOG_FORMAT_STYLE: names no configuration key"},
		},
		{
			name: "fail/section",
			env:  []string{"DEPUTY_TOKENS=5m", "DEPUTY_CLIENTS_0=x"},
			want: []string{
				"$DEPUTY_TOKENS: names a section, not a key; set its keys, like DEPUTY_TOKENS_ACCESS_TOKEN_TTL",
				"$DEPUTY_CLIENTS_0: names a section, not a key; set its keys, like DEPUTY_CLIENTS_0_ID",
			},
		},
		{
			name: "fail/index-past-end",
			env:  []string{"DEPUTY_CLIENTS_2_ID=x"},
			want: []string{"$DEPUTY_CLIENTS_2_ID: clients[2].id: index 2 is past the end of clients, which has 1 element(s); add elements in order, from 1"},
		},
		{
			name: "fail/index-not-decimal",
			env:  []string{"DEPUTY_CLIENTS_00_ID=x"},
			want: []string{"$DEPUTY_CLIENTS_00_ID: names no configuration key: write the list index 00 as a plain decimal number, like 0 or 12"},
		},
		{
			name: "fail/bad-values",
			env: []string{
				"DEPUTY_TOKENS_ID_TOKEN_TTL=5",
				"DEPUTY_AUDIT_MAX_BATCH=1.5",
				"DEPUTY_LIMITS_MAX_TOKEN_BYTES=0x10",
				"DEPUTY_EXCHANGE_POLICIES_0_REQUIRE_MAY_ACT=yes",
			},
			want: []string{
				`$DEPUTY_AUDIT_MAX_BATCH: audit.max_batch: "1.5" is not a decimal integer in range`,
				`$DEPUTY_EXCHANGE_POLICIES_0_REQUIRE_MAY_ACT: exchange.policies[0].require_may_act: "yes" is not true or false`,
				`$DEPUTY_LIMITS_MAX_TOKEN_BYTES: limits.max_token_bytes: "0x10" is not a decimal integer in range`,
				`$DEPUTY_TOKENS_ID_TOKEN_TTL: tokens.id_token_ttl: "5" is not a duration (like 90s, 5m or 24h): time: missing unit in duration "5"`,
			},
		},
		{
			name: "fail/policy-require-binding",
			env: []string{"DEPUTY_EXCHANGE_POLICIES_0_CLIENT=web-app", "DEPUTY_EXCHANGE_POLICIES_0_REQUIRE_BINDING=true",
				"DEPUTY_EXCHANGE_POLICIES_0_REQUESTED_TOKEN_TYPES=access_token,id_token"},
			want: []string{
				`$DEPUTY_EXCHANGE_POLICIES_0_CLIENT: exchange.policies[0].client: client "web-app" does not have grant type urn:ietf:params:oauth:grant-type:token-exchange`,
				`$DEPUTY_EXCHANGE_POLICIES_0_CLIENT: exchange.policies[0].audiences: must list at least one audience`,
				`$DEPUTY_EXCHANGE_POLICIES_0_REQUIRE_BINDING: exchange.policies[0].require_binding: requested_token_types lists id_token, which cannot be sender-constrained: a rule with require_binding would never issue it`,
			},
		},
		{
			name: "fail/bad-bool",
			env:  []string{"DEPUTY_EXCHANGE_POLICIES_0_CLIENT=web-app", "DEPUTY_EXCHANGE_POLICIES_0_REQUIRE_MAY_ACT=1"},
			want: []string{`$DEPUTY_EXCHANGE_POLICIES_0_REQUIRE_MAY_ACT: exchange.policies[0].require_may_act: "1" is not true or false`},
		},
		{
			name: "fail/validation-locates-added-element",
			env:  []string{"DEPUTY_CLIENTS_1_ID=api1", "DEPUTY_CLIENTS_1_AUTH_METHOD=private_key_jwt"},
			want: []string{`$DEPUTY_CLIENTS_1_AUTH_METHOD: clients[1].jwks_file: must be set for auth_method private_key_jwt: the client's public keys`},
		},
		{
			name: "fail/validation-names-the-variable",
			env:  []string{"DEPUTY_CLIENTS_0_AUTH_METHOD=foo"},
			want: []string{`$DEPUTY_CLIENTS_0_AUTH_METHOD: clients[0].auth_method: "foo" is not one of client_secret_basic, client_secret_post, private_key_jwt, none, tls_client_auth, self_signed_tls_client_auth`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, base), tt.env)
			var got []string
			for _, p := range problems(t, err) {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Load problems:\n got  %q\n want %q", got, tt.want)
			}
			if tt.check != nil && c != nil {
				tt.check(t, c)
			}
		})
	}
}

// Every key is reachable by exactly one variable name, and EnvNames lists them all.
func TestEnvNames(t *testing.T) {
	names := EnvNames()
	for _, want := range []string{"DEPUTY_ISSUER", "DEPUTY_STORAGE_DSN", "DEPUTY_TOKENS_ACCESS_TOKEN_TTL", "DEPUTY_SIGNING_ALGORITHM", "DEPUTY_TLS_CERT_FILE", "DEPUTY_CLIENTS_<N>_SECRET", "DEPUTY_EXCHANGE_POLICIES_<N>_MAX_CHAIN", "DEPUTY_USERS_<N>_CLAIMS_<KEY>"} {
		if !slices.Contains(names, want) {
			t.Errorf("EnvNames() lacks %s", want)
		}
	}
	for _, name := range names {
		spelled := strings.NewReplacer("<N>", "0", "<KEY>", "K").Replace(strings.TrimPrefix(name, EnvPrefix))
		if _, msg := envPath(reflect.TypeFor[Config](), spelled); msg != "" {
			t.Errorf("%s: %s", name, msg)
		}
	}
}

func TestDefaults(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatalf(`Load("", nil): %v`, err)
	}
	want := &Config{
		Issuer:    "http://127.0.0.1:8080",
		Listen:    "127.0.0.1:8080",
		Storage:   Storage{Driver: "sqlite", DSN: "deputy.db", Timeout: Duration(5 * time.Second)},
		Signing:   Signing{Algorithm: "ES256", RetireAfter: Duration(24 * time.Hour), IDTokenAlgorithm: "RS256"},
		Tokens:    Tokens{AccessTokenTTL: Duration(5 * time.Minute), RefreshTokenTTL: Duration(24 * time.Hour), IDTokenTTL: Duration(5 * time.Minute), CodeTTL: Duration(time.Minute), SessionTTL: Duration(8 * time.Hour)},
		Audit:     Audit{MaxBatch: 256},
		TxnTokens: TxnTokens{TTL: Duration(time.Minute)},
		Limits:    Limits{MaxBodyBytes: 65536, MaxTokenBytes: 16384, MaxInFlight: 512, Rate: Rate{PerSecond: 10000, Burst: 20000}},
		HTTP: HTTP{ReadHeaderTimeout: Duration(5 * time.Second), ReadTimeout: Duration(15 * time.Second),
			WriteTimeout: Duration(30 * time.Second), IdleTimeout: Duration(120 * time.Second), MaxHeaderBytes: 65536},
		Shutdown: Shutdown{Drain: Duration(5 * time.Second), Timeout: Duration(20 * time.Second)},
		DPoP:     DPoP{MaxAge: Duration(time.Minute)},
		Log:      Log{Format: "text", Level: "info"},

		TrustedProxyHeader: "X-Forwarded-For",
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load(\"\", nil) =\n%+v\nwant\n%+v", c, want)
	}

	src := `listen: "[::1]:9000"
tls: {cert_file: c.pem, key_file: k.pem}
audiences: [{id: https://api2.example}]
clients:
  - id: secret
    secret: s
    grant_types: [urn:ietf:params:oauth:grant-type:token-exchange]
  - {id: hash, secret_hash: "sha256:` + strings.Repeat("0", 64) + `"}
  - {id: jwt, jwks_file: jwt.jwks}
  - {id: public}
exchange:
  policies:
    - {client: secret, audiences: [https://api2.example]}
    - {client: secret, audiences: [https://api2.example], name: second, max_chain: 0}
trusted_issuers:
  - {name: entra, issuer: https://login.example, jwks_uri: https://login.example/keys, audiences: [a]}
saml_idps:
  - {name: corp, entity_id: https://idp.corp.example, certificate_file: corp.pem}
`
	c, err = Load(writeConfig(t, src), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Issuer != "https://[::1]:9000" {
		t.Errorf("issuer = %q, want https://[::1]:9000", c.Issuer)
	}
	var methods []string
	for _, cl := range c.Clients {
		methods = append(methods, cl.AuthMethod)
	}
	if want := []string{"client_secret_basic", "client_secret_basic", "private_key_jwt", "none"}; !slices.Equal(methods, want) {
		t.Errorf("auth methods = %q, want %q", methods, want)
	}
	wantPolicy := Policy{
		Name: "policies[0]", Client: "secret", SubjectIssuers: []string{"self"}, SubjectTokenTypes: []string{"access_token"},
		Audiences: []string{"https://api2.example"}, Mode: "delegation", MaxChain: 4, RequestedTokenTypes: []string{"access_token"},
	}
	if !reflect.DeepEqual(c.Exchange.Policies[0], wantPolicy) {
		t.Errorf("exchange.policies[0] = %+v\nwant %+v", c.Exchange.Policies[0], wantPolicy)
	}
	if p := c.Exchange.Policies[1]; p.Name != "second" || p.MaxChain != 4 {
		t.Errorf("exchange.policies[1] = %+v", p)
	}
	if ti := c.TrustedIssuers[0]; ti.SubjectClaim != "sub" || !slices.Equal(ti.Algorithms, []string{"RS256"}) || ti.Skew.D() != time.Minute {
		t.Errorf("trusted_issuers[0] = %+v", ti)
	}
	if got := c.SAMLIdPs[0].Audience; got != c.Issuer {
		t.Errorf("saml_idps[0].audience = %q, want the issuer %q", got, c.Issuer)
	}

	// Postgres has no default DSN.
	_, err = Load("", []string{"DEPUTY_STORAGE_DRIVER=postgres"})
	if ps := problems(t, err); len(ps) != 1 || ps[0].Path != "storage.dsn" {
		t.Errorf("postgres without dsn: %v, want a storage.dsn problem", err)
	}
}

func TestDev(t *testing.T) {
	dir := t.TempDir()
	c := Dev(dir)
	if err := c.Validate(); err != nil {
		t.Fatalf("Dev(dir).Validate():\n%v", err)
	}
	if got, want := c.Storage.DSN, filepath.Join(dir, "deputy-dev.db"); got != want {
		t.Errorf("storage.dsn = %q, want %q", got, want)
	}
	if c.Issuer != "http://127.0.0.1:8080" || c.Storage.Driver != DriverSQLite {
		t.Errorf("issuer %q, driver %q", c.Issuer, c.Storage.Driver)
	}
	for _, id := range []string{"web-app", "api1", "api2", "api3", "support"} {
		cl := c.Client(id)
		if cl == nil || cl.Secret != id+"-secret" || cl.AuthMethod != oauth.AuthClientSecretBasic {
			t.Errorf("client %s = %+v", id, cl)
		}
	}
	if cl := c.Client("web-app"); !slices.Equal(cl.MayAct, []string{"api1"}) || cl.HasGrantType(oauth.GrantTokenExchange) {
		t.Errorf("web-app = %+v", cl)
	}
	for _, id := range []string{"api1", "api2", "api3", "support"} {
		if cl := c.Client(id); !cl.HasGrantType(oauth.GrantTokenExchange) || !cl.HasGrantType(oauth.GrantClientCredentials) {
			t.Errorf("%s grant types = %v", id, cl.GrantTypes)
		}
	}
	wantPolicies := []struct{ client, audience, mode string }{
		{"api1", "https://api2.example", ModeDelegation},
		{"api2", "https://api3.example", ModeDelegation},
		{"support", "https://api2.example", ModeImpersonation},
	}
	for i, w := range wantPolicies {
		p := c.Exchange.Policies[i]
		if p.Client != w.client || !slices.Equal(p.Audiences, []string{w.audience}) || p.Mode != w.mode || p.MaxChain != 4 {
			t.Errorf("policies[%d] = %+v, want %+v", i, p, w)
		}
	}
	if a := c.Audience("https://api3.example"); a == nil || a.Client != "api3" || !slices.Equal(a.Scopes, []string{"fraud:check"}) {
		t.Errorf("audience api3 = %+v", a)
	}
	if len(c.Users) != 2 || c.Users[0].Username != "alice" || c.Users[0].Password != "alice-password" || c.Users[0].Claims["email"] != "alice@example.com" {
		t.Errorf("users = %+v", c.Users)
	}
	// Each call builds its own values.
	c.Clients[1].GrantTypes[0] = "changed"
	if Dev(dir).Clients[1].GrantTypes[0] == "changed" || c.Clients[2].GrantTypes[0] == "changed" {
		t.Error("Dev shares slices between calls or clients")
	}
}

func TestHashFormats(t *testing.T) {
	const salt, hash = "ZGVwdXR5LXNhbHQtYWxpYw", "iDQjdasGWCd0OBY3NBuIknTb1izgN9kkawssEvloEvQ"
	tests := []struct {
		name   string
		s      string
		argon2 bool
		sha256 bool
	}{
		{"ok/argon2id", "$argon2id$v=19$m=65536,t=3,p=4$" + salt + "$" + hash, true, false},
		{"ok/sha256", "sha256:" + strings.Repeat("0a", 32), false, true},
		{"ok/sha256-upper", "sha256:" + strings.Repeat("0A", 32), false, true},
		{"fail/argon2i", "$argon2i$v=19$m=65536,t=3,p=4$" + salt + "$" + hash, false, false},
		{"fail/argon2-version", "$argon2id$v=16$m=65536,t=3,p=4$" + salt + "$" + hash, false, false},
		{"fail/argon2-params-order", "$argon2id$v=19$t=3,m=65536,p=4$" + salt + "$" + hash, false, false},
		{"fail/argon2-zero", "$argon2id$v=19$m=65536,t=0,p=4$" + salt + "$" + hash, false, false},
		{"fail/argon2-memory", "$argon2id$v=19$m=16,t=3,p=4$" + salt + "$" + hash, false, false},
		{"fail/argon2-padding", "$argon2id$v=19$m=65536,t=3,p=4$" + salt + "==$" + hash, false, false},
		{"fail/argon2-short-hash", "$argon2id$v=19$m=65536,t=3,p=4$" + salt + "$aGFzaA", false, false},
		{"fail/argon2-missing-part", "$argon2id$v=19$m=65536,t=3,p=4$" + hash, false, false},
		{"fail/sha256-short", "sha256:abc", false, false},
		{"fail/sha256-not-hex", "sha256:" + strings.Repeat("zz", 32), false, false},
		{"fail/plain", "secret", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := validArgon2id(tt.s); got != tt.argon2 {
				t.Errorf("validArgon2id(%q) = %v", tt.s, got)
			}
			if got := validSHA256Hash(tt.s); got != tt.sha256 {
				t.Errorf("validSHA256Hash(%q) = %v", tt.s, got)
			}
		})
	}
}

// The package depends on nothing of deputy but oauth, so that every package may
// import it (doc.go).
func TestImports(t *testing.T) {
	allowed := func(path string) bool {
		return !strings.Contains(strings.Split(path, "/")[0], ".") || // standard library
			path == "github.com/deputy-auth/deputy/oauth" ||
			path == "github.com/deputy-auth/deputy/internal/policy/condition" ||
			strings.HasPrefix(path, "github.com/goccy/go-yaml")
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if path, _ := strconv.Unquote(imp.Path.Value); !allowed(path) {
				t.Errorf("%s imports %s", file, path)
			}
		}
	}
}

func FuzzLoad(f *testing.F) {
	full, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	f.Add([]byte("a: &a {<<: *a}\n"))
	f.Add([]byte("clients: [&c {id: a}, *c]\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		var c Config
		ps := decodeYAML("fuzz.yaml", src, &c, origins{})
		if len(ps) > 0 {
			return
		}
		c.SetDefaults()
		_ = c.Validate()
	})
}

// TestBrowserOrigins: the CORS origins are cors.allowed_origins and the origins of
// the clients' http(s) redirect URIs, as browsers write them; the keys can be set
// from the environment like every other.
func TestBrowserOrigins(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"https://App.Example/cb?x=1", "https://app.example"},
		{"https://app.example:443/cb", "https://app.example"},
		{"http://127.0.0.1:9000/callback", "http://127.0.0.1:9000"},
		{"http://[::1]:80/cb", "http://[::1]"},
		{"com.example.app:/callback", ""},
		{"https:opaque", ""},
	} {
		got, ok := WebOrigin(tt.in)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("WebOrigin(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
	c := validBase()
	if err := c.ApplyEnv([]string{
		"DEPUTY_CORS_ALLOWED_ORIGINS=https://spa.example, https://spa.example:8443",
		"DEPUTY_CLIENTS_0_NAME=Web App",
		"DEPUTY_CLIENTS_0_POST_LOGOUT_REDIRECT_URIS=http://127.0.0.1:9000/bye",
		"DEPUTY_SCOPES_0_NAME=payments:read", "DEPUTY_SCOPES_0_DESCRIPTION=See your payments",
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []string{"http://127.0.0.1:9000", "https://spa.example", "https://spa.example:8443"}
	if got := c.BrowserOrigins(); !slices.Equal(got, want) {
		t.Errorf("BrowserOrigins() = %v, want %v", got, want)
	}
	if c.Clients[0].Name != "Web App" || !slices.Equal(c.Clients[0].PostLogoutRedirectURIs, []string{"http://127.0.0.1:9000/bye"}) {
		t.Errorf("clients[0] = %+v", c.Clients[0])
	}
	if got := c.ScopeDescription("payments:read"); got != "See your payments" {
		t.Errorf("ScopeDescription(payments:read) = %q", got)
	}
	if got := c.ScopeDescription("openid"); got != BuiltinScopeDescriptions["openid"] {
		t.Errorf("ScopeDescription(openid) = %q", got)
	}
}
