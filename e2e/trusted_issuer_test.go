package e2e

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// entraIssuerURL is the iss of the Entra-like issuer the tests play.
const entraIssuerURL = "https://login.example/tenant/v2.0"

// entraConfig trusts the Entra-like issuer, whose JWKS the test serves at %JWKS%,
// and lets api1 exchange its tokens for api2.
const entraConfig = `
issuer: %ISSUER%
listen: %LISTEN%
storage: {driver: sqlite, dsn: "%DIR%/deputy.db"}
tokens: {access_token_ttl: 10m}
audiences:
  - {id: https://api1.example, scopes: ["payments:read"], client: api1}
  - {id: https://api2.example, scopes: ["ledger:read", "ledger:write"], client: api2}
clients:
  - {id: api1, secret: api1-secret, grant_types: [client_credentials, "urn:ietf:params:oauth:grant-type:token-exchange"], audiences: ["https://api1.example"]}
  - {id: api2, secret: api2-secret, grant_types: [client_credentials], audiences: ["https://api2.example"]}
exchange:
  policies:
    - name: entra-to-api2
      client: api1
      subject_issuers: [entra]
      subject_token_types: [access_token, jwt]
      audiences: ["https://api2.example"]
      scopes: [ledger:read]
trusted_issuers:
  - name: entra
    issuer: ` + entraIssuerURL + `
    jwks_uri: %JWKS%
    audiences: ["api://api1"]
    subject_claim: oid
    algorithms: [RS256]
`

// entraIssuer signs tokens as the Entra-like issuer and serves its JWKS over loopback.
type entraIssuer struct {
	key   *rsa.PrivateKey
	other *rsa.PrivateKey
	jwks  *httptest.Server
}

func startEntraIssuer(t *testing.T) *entraIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	e := &entraIssuer{key: key, other: other}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "entra-k1", Algorithm: "RS256", Use: "sig"}}}
	e.jwks = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/keys" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=3600")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(e.jwks.Close)
	return e
}

// claims are those of an Entra v2 access token for api1.
func (e *entraIssuer) claims(mod ...any) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss": entraIssuerURL, "aud": "api://api1", "sub": "pairwise-AbC", "oid": "7a1c2b3d-0000-4000-8000-00000000a11c",
		"tid": "tenant-1", "azp": "spa-client", "scp": "user_impersonation", "ver": "2.0",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(), "uti": "x",
	}
	for i := 0; i+1 < len(mod); i += 2 {
		c[mod[i].(string)] = mod[i+1]
	}
	return c
}

func (e *entraIssuer) sign(t *testing.T, key *rsa.PrivateKey, claims map[string]any, opts *jose.SignerOptions) string {
	t.Helper()
	if opts == nil {
		opts = &jose.SignerOptions{}
	}
	opts.WithType("JWT")
	if !opts.EmbedJWK {
		opts.WithHeader("kid", "entra-k1")
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// handMade builds a compact JWS with any header, MACed by mac (nil: no signature).
func handMade(header, claims map[string]any, mac func(string) []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	var sig []byte
	if mac != nil {
		sig = mac(in)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestTrustedIssuerExchange(t *testing.T) {
	entra := startEntraIssuer(t)
	s := start(t, strings.ReplaceAll(entraConfig, "%JWKS%", entra.jwks.URL+"/keys"))
	good := entra.sign(t, entra.key, entra.claims(), nil)

	t.Run("ok/entra-token-exchanged-for-api2", func(t *testing.T) {
		r := s.token("api1", "api1-secret", exchangeForm(good, "audience", "https://api2.example"))
		if r.str("issued_token_type") != typeAccessToken || r.str("scope") != "ledger:read" {
			t.Errorf("response %s", r.Raw)
		}
		c := claims(t, r.str("access_token"))
		if c["sub"] != "7a1c2b3d-0000-4000-8000-00000000a11c" || c["aud"] != "https://api2.example" || c["scope"] != "ledger:read" ||
			c["iss"] != s.issuer || c["client_id"] != "api1" {
			t.Errorf("issued claims %v", c)
		}
		if got := actJSON(t, c["act"]); got != `{"sub":"api1"}` {
			t.Errorf("act %s", got)
		}
		if exp, _ := c["exp"].(float64); exp > float64(time.Now().Add(10*time.Minute+5*time.Second).Unix()) {
			t.Errorf("exp %v beyond the configured TTL", exp)
		}
		ev := auditEvents(t, s, "token.exchanged")
		if len(ev) != 1 {
			t.Fatalf("%d token.exchanged events, want 1", len(ev))
		}
		if field(ev[0], "subject_issuer") != entraIssuerURL || field(ev[0], "subject") != c["sub"] || field(ev[0], "rule") != "entra-to-api2" {
			t.Errorf("audit event %v", ev[0])
		}
	})

	pubDER, err := x509.MarshalPKIXPublicKey(&entra.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	hmacPub := func(in string) []byte { m := hmac.New(sha256.New, pubDER); m.Write([]byte(in)); return m.Sum(nil) }
	parts := strings.Split(good, ".")
	forged, _ := json.Marshal(entra.claims("oid", "someone-else"))
	now := time.Now()
	for _, tc := range []struct {
		name, token, reason string // reason: part of the audited cause
	}{
		{"fail/untrusted-issuer", entra.sign(t, entra.key, entra.claims("iss", "https://login.other.example/v2.0"), nil), "is not in trusted_issuers"},
		{"fail/wrong-audience", entra.sign(t, entra.key, entra.claims("aud", "api://api2"), nil), "aud [api://api2] holds none of [api://api1]"},
		{"fail/expired", entra.sign(t, entra.key, entra.claims("iat", now.Add(-2*time.Hour).Unix(), "nbf", now.Add(-2*time.Hour).Unix(), "exp", now.Add(-time.Hour).Unix()), nil), "subject_token is expired"},
		{"fail/not-yet-valid", entra.sign(t, entra.key, entra.claims("nbf", now.Add(time.Hour).Unix(), "exp", now.Add(2*time.Hour).Unix()), nil), "subject_token is not yet valid: subject token of trusted issuer entra"},
		{"fail/alg-none", handMade(map[string]any{"alg": "none", "typ": "JWT", "kid": "entra-k1"}, entra.claims(), nil), "unexpected signature algorithm \"none\""},
		{"fail/hmac-with-the-public-key", handMade(map[string]any{"alg": "HS256", "typ": "JWT", "kid": "entra-k1"}, entra.claims(), hmacPub), "unexpected signature algorithm \"HS256\""},
		{"fail/embedded-jwk", entra.sign(t, entra.other, entra.claims(), &jose.SignerOptions{EmbedJWK: true}), "jwk header present"},
		{"fail/jku-header", entra.sign(t, entra.other, entra.claims(), (&jose.SignerOptions{}).WithHeader("jku", entra.jwks.URL+"/evil")), "jku header present"},
		{"fail/signed-by-another-key", entra.sign(t, entra.other, entra.claims(), nil), "subject_token signature is invalid"},
		{"fail/tampered", parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2], "subject_token signature is invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(auditEvents(t, s, "request.denied"))
			r := s.post("token_endpoint", "api1", "api1-secret", exchangeForm(tc.token, "audience", "https://api2.example"))
			wantError(t, r, 400, "invalid_request")
			if !strings.HasPrefix(r.str("error_description"), "subject_token ") {
				t.Errorf("error_description %q does not name the subject_token", r.str("error_description"))
			}
			denied := auditEvents(t, s, "request.denied")
			if len(denied) != before+1 {
				t.Fatalf("%d request.denied events, want %d", len(denied), before+1)
			}
			if last := denied[len(denied)-1]; field(last, "client_id") != "api1" || !strings.Contains(field(last, "reason"), tc.reason) {
				t.Errorf("denial %v", last)
			}
		})
	}
	t.Run("nothing-issued-for-bad-input", func(t *testing.T) {
		if n := len(auditEvents(t, s, "token.exchanged")); n != 1 {
			t.Errorf("%d token.exchanged events, want only the good one", n)
		}
	})
}
