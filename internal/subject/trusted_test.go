package subject_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/jwks"
	"github.com/deputy-auth/deputy/internal/keys"
	"github.com/deputy-auth/deputy/internal/store/sqlstore"
	"github.com/deputy-auth/deputy/internal/subject"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

const (
	entraIssuer   = "https://login.example/tenant/v2.0"
	partnerIssuer = "https://partner.example"
)

// extIssuer is an external issuer: its keys, and a JWKS endpoint serving the
// public halves of the ones published.
type extIssuer struct {
	rsa1, rsa2 *rsa.PrivateKey
	ec         *ecdsa.PrivateKey

	mu        sync.Mutex
	published []jose.JSONWebKey
	down      bool
	fetches   atomic.Int32
	srv       *httptest.Server
}

var (
	extKeysOnce sync.Once
	extKeys     struct {
		rsa1, rsa2 *rsa.PrivateKey
		ec         *ecdsa.PrivateKey
	}
)

func newExtIssuer(t testing.TB) *extIssuer {
	t.Helper()
	extKeysOnce.Do(func() {
		// Fixed keys: RSA generation under the fuzzer's coverage instrumentation
		// takes its workers most of a minute.
		extKeys.rsa1, extKeys.rsa2 = parseRSA(extRSA1), parseRSA(extRSA2)
		extKeys.ec, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	})
	ti := &extIssuer{rsa1: extKeys.rsa1, rsa2: extKeys.rsa2, ec: extKeys.ec}
	ti.publish(jose.JSONWebKey{Key: &ti.rsa1.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"},
		jose.JSONWebKey{Key: &ti.ec.PublicKey, KeyID: "ec1", Algorithm: "ES256", Use: "sig"})
	ti.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ti.fetches.Add(1)
		ti.mu.Lock()
		defer ti.mu.Unlock()
		if ti.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=600")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: ti.published})
	}))
	t.Cleanup(ti.srv.Close)
	return ti
}

func (ti *extIssuer) publish(ks ...jose.JSONWebKey) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.published = ks
}

func (ti *extIssuer) setDown(down bool) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.down = down
}

// sign signs claims with key under alg and kid, with extra protected headers.
func signJWT(t testing.TB, key any, alg jose.SignatureAlgorithm, kid string, claims map[string]any, opts *jose.SignerOptions) string {
	t.Helper()
	if opts == nil {
		opts = &jose.SignerOptions{}
	}
	opts.WithType("JWT")
	if kid != "" {
		opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
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

// unsigned builds a compact JWS from a raw header and claims with the given MAC
// (nil: empty signature).
func rawJWS(header map[string]any, claims map[string]any, mac func(input string) []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	var sig []byte
	if mac != nil {
		sig = mac(input)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func entraClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": entraIssuer, "aud": "api://api1", "sub": "pairwise-sub", "oid": "00000000-0000-0000-0000-0000000000a1",
		"tid": "tenant-1", "azp": "spa-client", "preferred_username": "alice@contoso.example",
		"scp": "user_impersonation", "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"jti": "entra-jti-1",
	}
}

func claimsWith(c map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// newOwnTokens is deputy's own token service over a fresh store.
func newOwnTokens(t testing.TB) *token.Service {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, "sqlite", filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ks, err := keys.Open(ctx, st, keys.Options{Algorithm: "ES256", RetireAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return token.NewService("https://deputy.test", ks, token.NewRevoked(), 16384)
}

// newTrustedVerifier trusts "entra" over the test issuer's JWKS endpoint and
// "partner" (ES256 and RS256) over a jwks_file holding the same keys.
func newTrustedVerifier(t testing.TB, svc *token.Service, ti *extIssuer) *subject.Verifier {
	t.Helper()
	ti.mu.Lock()
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: ti.published})
	ti.mu.Unlock()
	file := filepath.Join(t.TempDir(), "partner.jwks.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := subject.New(context.Background(), svc, subject.Options{TrustedIssuers: []config.TrustedIssuer{
		{
			Name: "entra", Issuer: entraIssuer, JWKSURI: ti.srv.URL + "/keys", Audiences: []string{"api://api1"},
			SubjectClaim: "oid", Algorithms: []string{"RS256"},
			Claims:         map[string]string{"tid": "tid", "email": "preferred_username"},
			RequiredClaims: map[string]string{"tid": "tenant-1"},
		},
		{
			Name: "partner", Issuer: partnerIssuer, JWKSFile: file, Audiences: []string{"https://deputy.test/partner"},
			Algorithms: []string{"ES256", "RS256"},
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// wantJWTRefused checks an invalid_request naming the role, whose description holds desc.
func wantJWTRefused(t *testing.T, err error, desc string) {
	t.Helper()
	var oe *oauth.Error
	if !errors.As(err, &oe) || oe.Code != oauth.CodeInvalidRequest {
		t.Fatalf("err %v, want invalid_request", err)
	}
	if !strings.HasPrefix(oe.Description, "subject_token ") || !strings.Contains(oe.Description, desc) {
		t.Errorf("description %q, want one containing %q", oe.Description, desc)
	}
}

// wantUnavailable: an issuer's key set that cannot be had is no verdict on the
// token, and no fault of the client's: temporarily_unavailable (RFC 6749
// §4.1.2.1), which the client may retry, with the outage as the audit cause.
func wantUnavailable(t *testing.T, err error) {
	t.Helper()
	var oe *oauth.Error
	if !errors.As(err, &oe) || oe.Code != oauth.CodeTemporarilyUnavail {
		t.Fatalf("err %v, want temporarily_unavailable", err)
	}
	if oe.Description != "subject_token cannot be verified now: its issuer's keys are unavailable" || !errors.Is(err, jwks.ErrUnavailable) {
		t.Errorf("description %q, cause %v", oe.Description, oe.Cause)
	}
}

func TestTrustedIssuer(t *testing.T) {
	ctx := context.Background()
	svc := newOwnTokens(t)
	ti := newExtIssuer(t)
	v := newTrustedVerifier(t, svc, ti)
	now := time.Now()
	ec := entraClaims(now)
	good := signJWT(t, ti.rsa1, jose.RS256, "k1", ec, nil)
	pubDER, _ := x509.MarshalPKIXPublicKey(&ti.rsa1.PublicKey)
	hmacWith := func(key []byte) func(string) []byte {
		return func(in string) []byte { m := hmac.New(sha256.New, key); m.Write([]byte(in)); return m.Sum(nil) }
	}
	jwk := jose.JSONWebKey{Key: &ti.rsa1.PublicKey, KeyID: "k1", Algorithm: "RS256"}
	parts := strings.Split(good, ".")

	t.Run("ok/entra-like", func(t *testing.T) {
		p, err := v.Verify(ctx, "subject", good, oauth.TokenTypeAccessToken, now)
		if err != nil {
			t.Fatal(err)
		}
		if p.Issuer != "entra" || p.IssuerURL != entraIssuer || p.Subject != ec["oid"] || p.TokenType != oauth.TokenTypeAccessToken ||
			len(p.Audiences) != 1 || p.Audiences[0] != "api://api1" || p.JTI != "entra-jti-1" || p.Scopes != nil ||
			p.ClientID != "" || p.Act != nil || p.ExpiresAt.Unix() != ec["exp"] || p.IDTokenClaims != nil {
			t.Errorf("principal %+v", p)
		}
		if p.Claims["tid"] != "tenant-1" || p.Claims["email"] != "alice@contoso.example" || len(p.Claims) != 2 {
			t.Errorf("mapped claims %v", p.Claims)
		}
	})
	// The claims only an ID token carries are named, so that the exchange can
	// refuse an ID token as an on-behalf-of assertion whatever type it is
	// declared as; a null one is no claim.
	for _, tc := range []struct {
		name string
		kv   []any
		want []string
	}{
		{"ok/id-token-claims-nonce", []any{"nonce", "n-0S6_WzA2Mj"}, []string{"nonce"}},
		{"ok/id-token-claims-hashes", []any{"c_hash", "LDktKdoQak3Pk0cnXxCltA", "at_hash", "77QmUPtjPfzWtF2AnpK9RQ"}, []string{"at_hash", "c_hash"}},
		{"ok/id-token-claims-null-nonce", []any{"nonce", nil}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := claimsWith(ec, tc.kv...)
			if tc.kv[1] == nil {
				c["nonce"] = nil // claimsWith deletes a nil value
			}
			p, err := v.Verify(ctx, "subject", signJWT(t, ti.rsa1, jose.RS256, "k1", c, nil), oauth.TokenTypeJWT, now)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.IDTokenClaims, tc.want) {
				t.Errorf("IDTokenClaims %q, want %q", p.IDTokenClaims, tc.want)
			}
		})
	}
	t.Run("ok/id-token-of-trusted-issuer", func(t *testing.T) {
		p, err := v.Verify(ctx, "subject", good, oauth.TokenTypeIDToken, now)
		if err != nil || p.Issuer != "entra" || p.TokenType != oauth.TokenTypeIDToken {
			t.Fatalf("%+v, %v", p, err)
		}
	})
	t.Run("ok/act-kept-as-identity", func(t *testing.T) {
		raw := signJWT(t, ti.rsa1, jose.RS256, "k1", claimsWith(ec, "act", map[string]any{"sub": "svc-a", "exp": 1, "act": map[string]any{"sub": "svc-b", "iss": "https://other.example"}}), nil)
		p, err := v.Verify(ctx, "subject", raw, oauth.TokenTypeJWT, now)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(p.Act)
		if want := `{"sub":"svc-a","iss":"` + entraIssuer + `","act":{"sub":"svc-b","iss":"https://other.example"}}`; string(b) != want {
			t.Errorf("act %s, want %s", b, want)
		}
	})
	// A trusted issuer's sender-constrained token keeps its binding (RFC 7800 cnf),
	// so that the exchange cannot downgrade it to a bearer token.
	for _, cnf := range []map[string]any{{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}, {"x5t#S256": "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0"}} {
		t.Run("ok/bound-token-keeps-cnf", func(t *testing.T) {
			raw := signJWT(t, ti.rsa1, jose.RS256, "k1", claimsWith(ec, "cnf", cnf), nil)
			p, err := v.Verify(ctx, "subject", raw, oauth.TokenTypeAccessToken, now)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Cnf.Bound() || p.Cnf.JKT != stringOr(cnf["jkt"]) || p.Cnf.X5TS256 != stringOr(cnf["x5t#S256"]) {
				t.Errorf("cnf %+v, want %v", p.Cnf, cnf)
			}
		})
	}
	t.Run("ok/jwks-file-es256", func(t *testing.T) {
		raw := signJWT(t, ti.ec, jose.ES256, "ec1", claimsWith(ec, "iss", partnerIssuer, "aud", []string{"x", "https://deputy.test/partner"}, "sub", "bob"), nil)
		p, err := v.Verify(ctx, "subject", raw, oauth.TokenTypeJWT, now)
		if err != nil || p.Issuer != "partner" || p.Subject != "bob" || p.Claims != nil {
			t.Fatalf("%+v, %v", p, err)
		}
	})

	for _, tc := range []struct {
		name, raw, desc string
		now             time.Time
	}{
		{"fail/untrusted-issuer", signJWT(t, ti.rsa1, jose.RS256, "k1", claimsWith(ec, "iss", "https://evil.example"), nil), "from an issuer this server does not trust", now},
		{"fail/wrong-audience", signJWT(t, ti.rsa1, jose.RS256, "k1", claimsWith(ec, "aud", []string{"api://api2", "https://deputy.test/partner"}), nil), "not addressed to this server", now},
		{"fail/no-audience", signJWT(t, ti.rsa1, jose.RS256, "k1", claimsWith(ec, "aud", nil), nil), "not addressed to this server", now},
		{"fail/expired", good, "is expired", now.Add(time.Hour + 61*time.Second)},
		{"fail/no-exp", signJWT(t, ti.rsa1, jose.RS256, "k1", claimsWith(ec, "exp", nil), nil), "no valid exp", now},
		{"fail/not-yet-valid", good, "not yet valid", now.Add(-61 * time.Second)},
		{"fail/iat-in-the-future", signJWT(t, ti.rsa1, jose.RS256, "k1", claimsWith(ec, "nbf", nil, "iat", now.Add(5*time.Minute).Unix()), nil), "not yet valid", now},
		{"fail/alg-none", rawJWS(map[string]any{"alg": "none", "kid": "k1", "typ": "JWT"}, ec, nil), "algorithm this server does not accept", now},
		{"fail/hs256-signed-with-the-public-key", rawJWS(map[string]any{"alg": "HS256", "kid": "k1", "typ": "JWT"}, ec, hmacWith(pubDER)), "algorithm this server does not accept", now},
		{"fail/alg-not-in-allow-list", signJWT(t, ti.ec, jose.ES256, "ec1", ec, nil), "algorithm this server does not accept", now},
		{"fail/alg-does-not-match-key", signJWT(t, ti.ec, jose.ES256, "k1", claimsWith(ec, "iss", partnerIssuer, "aud", "https://deputy.test/partner"), nil), "does not match its key", now},
		{"fail/embedded-jwk-header", signJWT(t, ti.rsa1, jose.RS256, "", ec, &jose.SignerOptions{EmbedJWK: true}), "carries its own key", now},
		{"fail/embedded-jwk-of-another-key", signJWT(t, ti.rsa2, jose.RS256, "k1", ec, (&jose.SignerOptions{}).WithHeader("jwk", jwk)), "carries its own key", now},
		{"fail/jku-header", signJWT(t, ti.rsa1, jose.RS256, "k1", ec, (&jose.SignerOptions{}).WithHeader("jku", "https://evil.example/keys")), "(jku header)", now},
		{"fail/x5u-header", signJWT(t, ti.rsa1, jose.RS256, "k1", ec, (&jose.SignerOptions{}).WithHeader("x5u", "https://evil.example/cert.pem")), "(x5u header)", now},
		{"fail/crit-header", signJWT(t, ti.rsa1, jose.RS256, "k1", ec, (&jose.SignerOptions{}).WithHeader("crit", []string{"exp"}).WithHeader("exp", 1)), "critical header", now},
		{"fail/tampered-payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString(jsonOf(claimsWith(ec, "oid", "someone-else"))) + "." + parts[2], "signature is invalid", now},
		{"fail/signed-by-another-key", signJWT(t, ti.rsa2, jose.RS256, "k1", ec, nil), "signature is invalid", now},
		{"fail/missing-subject-claim", signJWT(t, ti.rsa1, jose.RS256, "k1", claimsWith(ec, "oid", nil), nil), "has no oid claim", now},
		{"fail/subject-claim-not-a-string", signJWT(t, ti.rsa1, jose.RS256, "k1", claimsWith(ec, "oid", 42), nil), "has no oid claim", now},
		{"fail/required-claim-tenant", signJWT(t, ti.rsa1, jose.RS256, "k1", claimsWith(ec, "tid", "tenant-2"), nil), "does not have the tid", now},
		{"fail/cnf-with-a-jwk", signJWT(t, ti.rsa1, jose.RS256, "k1", claimsWith(ec, "cnf", map[string]any{"jwk": map[string]any{"kty": "EC"}}), nil), "is bound to a key in a way this server cannot check", now},
		{"fail/cnf-empty", signJWT(t, ti.rsa1, jose.RS256, "k1", claimsWith(ec, "cnf", map[string]any{}), nil), "is bound to a key in a way this server cannot check", now},
		{"fail/cnf-not-an-object", signJWT(t, ti.rsa1, jose.RS256, "k1", claimsWith(ec, "cnf", "jkt"), nil), "has a malformed cnf claim", now},
		{"fail/cnf-jkt-not-base64url", signJWT(t, ti.rsa1, jose.RS256, "k1", claimsWith(ec, "cnf", map[string]any{"jkt": "a\u001bb"}), nil), "has a malformed cnf claim", now},
		{"fail/cnf-jkt-and-x5t", signJWT(t, ti.rsa1, jose.RS256, "k1", claimsWith(ec, "cnf", map[string]any{"jkt": "abc", "x5t#S256": "def"}), nil), "is bound to a key in a way this server cannot check", now},
		{"fail/malformed-act", signJWT(t, ti.rsa1, jose.RS256, "k1", claimsWith(ec, "act", map[string]any{"iss": "x"}), nil), "malformed act", now},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify(ctx, "subject", tc.raw, oauth.TokenTypeAccessToken, tc.now)
			wantJWTRefused(t, err, tc.desc)
			if p.Issuer != "" && p.Issuer != "entra" && p.Issuer != "partner" {
				t.Errorf("refused principal %+v", p)
			}
		})
	}
}

func jsonOf(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestTrustedIssuerJWKS covers the remote key set's cache: refetch on an unknown
// kid at most once per interval, rotation, and failing closed past expiry.
func TestTrustedIssuerJWKS(t *testing.T) {
	ctx := context.Background()
	svc := newOwnTokens(t)
	now := time.Now()
	ec := claimsWith(entraClaims(now), "exp", now.Add(48*time.Hour).Unix())

	t.Run("ok/fetched-once-and-cached", func(t *testing.T) {
		ti := newExtIssuer(t)
		v := newTrustedVerifier(t, svc, ti)
		if n := ti.fetches.Load(); n != 0 {
			t.Fatalf("%d fetches before the first token, want none (lazy)", n)
		}
		raw := signJWT(t, ti.rsa1, jose.RS256, "k1", ec, nil)
		for i := range 3 {
			if _, err := v.Verify(ctx, "subject", raw, oauth.TokenTypeAccessToken, now.Add(time.Duration(i)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		if n := ti.fetches.Load(); n != 1 {
			t.Errorf("%d fetches, want 1", n)
		}
	})
	t.Run("fail/unknown-kid", func(t *testing.T) {
		ti := newExtIssuer(t)
		v := newTrustedVerifier(t, svc, ti)
		if _, err := v.Verify(ctx, "subject", signJWT(t, ti.rsa1, jose.RS256, "k1", ec, nil), oauth.TokenTypeAccessToken, now); err != nil {
			t.Fatal(err)
		}
		at := now.Add(time.Minute)
		_, err := v.Verify(ctx, "subject", signJWT(t, ti.rsa2, jose.RS256, "k9", ec, nil), oauth.TokenTypeAccessToken, at)
		wantJWTRefused(t, err, "signed by a key its issuer does not publish")
		if n := ti.fetches.Load(); n != 2 {
			t.Errorf("%d fetches after an unknown kid, want 2 (one refetch)", n)
		}
		_, err = v.Verify(ctx, "subject", signJWT(t, ti.rsa2, jose.RS256, "k8", ec, nil), oauth.TokenTypeAccessToken, at.Add(29*time.Second))
		wantJWTRefused(t, err, "signed by a key its issuer does not publish")
		if n := ti.fetches.Load(); n != 2 {
			t.Errorf("%d fetches after a second unknown kid within 30s, want still 2", n)
		}
		_, err = v.Verify(ctx, "subject", signJWT(t, ti.rsa2, jose.RS256, "k8", ec, nil), oauth.TokenTypeAccessToken, at.Add(30*time.Second))
		wantJWTRefused(t, err, "signed by a key its issuer does not publish")
		if n := ti.fetches.Load(); n != 3 {
			t.Errorf("%d fetches after an unknown kid 30s later, want 3", n)
		}
	})
	t.Run("ok/key-rotation-at-the-issuer", func(t *testing.T) {
		ti := newExtIssuer(t)
		v := newTrustedVerifier(t, svc, ti)
		if _, err := v.Verify(ctx, "subject", signJWT(t, ti.rsa1, jose.RS256, "k1", ec, nil), oauth.TokenTypeAccessToken, now); err != nil {
			t.Fatal(err)
		}
		ti.publish(jose.JSONWebKey{Key: &ti.rsa2.PublicKey, KeyID: "k2", Algorithm: "RS256", Use: "sig"})
		p, err := v.Verify(ctx, "subject", signJWT(t, ti.rsa2, jose.RS256, "k2", ec, nil), oauth.TokenTypeAccessToken, now.Add(time.Minute))
		if err != nil || p.Subject != ec["oid"] {
			t.Fatalf("%+v, %v", p, err)
		}
		// The retired key went with the refetched set.
		_, err = v.Verify(ctx, "subject", signJWT(t, ti.rsa1, jose.RS256, "k1", ec, nil), oauth.TokenTypeAccessToken, now.Add(2*time.Minute))
		wantJWTRefused(t, err, "signed by a key its issuer does not publish")
	})
	t.Run("ok/cached-set-served-while-the-issuer-is-down", func(t *testing.T) {
		ti := newExtIssuer(t)
		v := newTrustedVerifier(t, svc, ti)
		raw := signJWT(t, ti.rsa1, jose.RS256, "k1", ec, nil)
		if _, err := v.Verify(ctx, "subject", raw, oauth.TokenTypeAccessToken, now); err != nil {
			t.Fatal(err)
		}
		ti.setDown(true)
		_, err := v.Verify(ctx, "subject", signJWT(t, ti.rsa2, jose.RS256, "k2", ec, nil), oauth.TokenTypeAccessToken, now.Add(time.Minute))
		wantJWTRefused(t, err, "signed by a key its issuer does not publish")
		if _, err := v.Verify(ctx, "subject", raw, oauth.TokenTypeAccessToken, now.Add(9*time.Minute)); err != nil {
			t.Fatalf("cached key refused before max-age (600s): %v", err)
		}
	})
	t.Run("fail/jwks-unavailable-past-expiry", func(t *testing.T) {
		ti := newExtIssuer(t)
		v := newTrustedVerifier(t, svc, ti)
		raw := signJWT(t, ti.rsa1, jose.RS256, "k1", ec, nil)
		if _, err := v.Verify(ctx, "subject", raw, oauth.TokenTypeAccessToken, now); err != nil {
			t.Fatal(err)
		}
		ti.setDown(true)
		_, err := v.Verify(ctx, "subject", raw, oauth.TokenTypeAccessToken, now.Add(10*time.Minute))
		wantUnavailable(t, err)
		ti.setDown(false)
		// Within 30s of the failed attempt no fetch is made, so still refused…
		_, err = v.Verify(ctx, "subject", raw, oauth.TokenTypeAccessToken, now.Add(10*time.Minute+10*time.Second))
		wantUnavailable(t, err)
		// …and accepted again once a fetch succeeds.
		if _, err := v.Verify(ctx, "subject", raw, oauth.TokenTypeAccessToken, now.Add(11*time.Minute)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("fail/jwks-unavailable-at-start", func(t *testing.T) {
		ti := newExtIssuer(t)
		ti.setDown(true)
		v := newTrustedVerifier(t, svc, ti) // starts anyway
		_, err := v.Verify(ctx, "subject", signJWT(t, ti.rsa1, jose.RS256, "k1", ec, nil), oauth.TokenTypeAccessToken, now)
		wantUnavailable(t, err)
	})
}

func TestTrustedIssuerConfig(t *testing.T) {
	svc := newOwnTokens(t)
	dir := t.TempDir()
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	privJWKS, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: priv, KeyID: "p"}}})
	privFile := filepath.Join(dir, "priv.json")
	_ = os.WriteFile(privFile, privJWKS, 0o600)
	base := config.TrustedIssuer{Name: "x", Issuer: "https://x.example", JWKSURI: "https://x.example/keys", Audiences: []string{"a"}}
	for _, tc := range []struct {
		name string
		mod  func(c *config.TrustedIssuer)
		want string
	}{
		{"fail/hs256-in-allow-list", func(c *config.TrustedIssuer) { c.Algorithms = []string{"HS256"} }, `"HS256" is not an accepted`},
		{"fail/none-in-allow-list", func(c *config.TrustedIssuer) { c.Algorithms = []string{"none"} }, `"none" is not an accepted`},
		{"fail/private-key-in-jwks-file", func(c *config.TrustedIssuer) { c.JWKSURI, c.JWKSFile = "", privFile }, "private or symmetric"},
		{"fail/missing-jwks-file", func(c *config.TrustedIssuer) { c.JWKSURI, c.JWKSFile = "", filepath.Join(dir, "nope") }, "no such file"},
		{"fail/no-audiences", func(c *config.TrustedIssuer) { c.Audiences = nil }, "audiences"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mod(&c)
			_, err := subject.New(context.Background(), svc, subject.Options{TrustedIssuers: []config.TrustedIssuer{c}})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "trusted_issuers[0] (x)") {
				t.Errorf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestOwnIDToken(t *testing.T) {
	ctx := context.Background()
	svc := newOwnTokens(t)
	v := subject.NewVerifier(svc)
	now := time.Now()
	mintID := func(exp time.Time) string {
		raw, err := svc.MintIDToken("", &token.IDClaims{Subject: "alice", Audience: token.Audience{"web-app"}, Expiry: exp.Unix(),
			IssuedAt: now.Unix(), AuthTime: now.Unix(), AMR: []string{"pwd"}, AZP: "web-app", Nonce: "n", ID: token.NewID(),
			Profile: map[string]string{"email": "alice@example"}})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	t.Run("ok", func(t *testing.T) {
		p, err := v.Verify(ctx, "subject", mintID(now.Add(time.Minute)), oauth.TokenTypeIDToken, now)
		if err != nil {
			t.Fatal(err)
		}
		if p.Issuer != subject.Self || p.TokenType != oauth.TokenTypeIDToken || p.Subject != "alice" || p.ClientID != "web-app" ||
			len(p.Audiences) != 1 || p.Audiences[0] != "web-app" || p.Scopes != nil || p.JTI == "" || p.ExpiresAt.IsZero() {
			t.Errorf("principal %+v", p)
		}
		if p.Claims["email"] != "alice@example" || p.Claims["amr"] == nil || p.Claims["nonce"] != nil || p.Claims["azp"] != nil {
			t.Errorf("claims %v", p.Claims)
		}
	})
	t.Run("fail/expired", func(t *testing.T) {
		p, err := v.Verify(ctx, "subject", mintID(now.Add(-time.Second)), oauth.TokenTypeIDToken, now)
		wantJWTRefused(t, err, "is expired")
		if p.Subject != "alice" {
			t.Errorf("refused principal %+v does not name the subject", p)
		}
	})
	t.Run("fail/access-token-declared-as-id-token", func(t *testing.T) {
		at, err := svc.Mint(oauth.JWTTypeAccessToken, &token.Claims{Subject: "alice", Audience: token.Audience{"api1"}, ClientID: "web-app",
			Expiry: now.Add(time.Minute).Unix(), IssuedAt: now.Unix(), ID: token.NewID()})
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(ctx, "subject", at, oauth.TokenTypeIDToken, now)
		wantJWTRefused(t, err, "not of the declared subject_token_type")
	})
	t.Run("fail/foreign-id-token", func(t *testing.T) {
		ti := newExtIssuer(t)
		_, err := v.Verify(ctx, "subject", signJWT(t, ti.rsa1, jose.RS256, "k1", entraClaims(now), nil), oauth.TokenTypeIDToken, now)
		wantJWTRefused(t, err, "from an issuer this server does not trust")
	})
}

// FuzzTrustedJWT feeds raw tokens to a verifier trusting one issuer: nothing
// panics, and nothing is accepted that the issuer's key did not sign.
func FuzzTrustedJWT(f *testing.F) {
	svc := newOwnTokens(f)
	ti := newExtIssuer(f)
	v := newTrustedVerifier(f, svc, ti)
	now := time.Now()
	ec := entraClaims(now)
	good := signJWT(f, ti.rsa1, jose.RS256, "k1", ec, nil)
	f.Add(good)
	f.Add(signJWT(f, ti.ec, jose.ES256, "ec1", claimsWith(ec, "iss", partnerIssuer, "aud", "https://deputy.test/partner"), nil))
	f.Add(rawJWS(map[string]any{"alg": "none", "kid": "k1"}, ec, nil))
	f.Add(signJWT(f, ti.rsa1, jose.RS256, "k1", ec, &jose.SignerOptions{EmbedJWK: true}))
	f.Add(signJWT(f, ti.rsa1, jose.RS256, "k1", claimsWith(ec, "act", map[string]any{"sub": "a", "act": map[string]any{"sub": "b"}}), nil))
	f.Add("a.b.c")
	f.Add("")
	ctx := context.Background()
	pubs := []any{&ti.rsa1.PublicKey, &ti.ec.PublicKey}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, typ := range []oauth.TokenType{oauth.TokenTypeAccessToken, oauth.TokenTypeIDToken} {
			p, err := v.Verify(ctx, "subject", raw, typ, now)
			if err != nil {
				continue
			}
			jws, perr := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
			if perr != nil {
				t.Fatalf("accepted a token that does not parse: %v", perr)
			}
			signed := false
			for _, k := range pubs {
				if _, err := jws.Verify(k); err == nil {
					signed = true
				}
			}
			if !signed || p.Subject == "" {
				t.Fatalf("accepted %q as %+v without a signature by the issuer's key", raw, p)
			}
		}
	})
}

func parseRSA(pemText string) *rsa.PrivateKey {
	b, _ := pem.Decode([]byte(pemText))
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		panic(err)
	}
	return k.(*rsa.PrivateKey)
}

// Test keys of the external issuer (generated for these tests only).
const (
	extRSA1 = `-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDIf+k0X2mZO6Wa
fUucbYx5FLq8CRA6Apj8/N/vt1hjeGyHZsEqWS7+C6QEM1I9XbeOtY/YOMo7mSlZ
E7xxYGI00nNd8Ki43FeiXpus77Fy+6IyAVWffSWjbBxQywQ4RpU2nuGr/xStmeB6
ho2iSeDbC5JIotcTZAL2+hrHArPi+PaXcS19LuoJBc4Cmh5gfYniAC15Qg/cJsCX
gKEunrar2zR9PT9KHbC8iHkuivxcCoCAnWjYR33wFjYewDykS7qd5nPLvJYIm2xC
z31lwEx9Q4dT328oFxJxqJLLB+ljx3h1Ngjn0isBdIx8ezStVes1Bd0OP0H9PqNZ
ePWJDKw7AgMBAAECggEATAGRWjVBRsGBycrtuuMceVoOX/HfoN4TOPRzv9/1NeAU
5E9jsrYURmILTzxVVMYOK59QZFtC7szlC8ubiC9Ni1CsQ1RT4aBF6FuNEEXdMwWJ
OwOefdNnTUhSg54yf1Lihc49JoKQSC8pFcmkL31qLB962OZCOiuTpCSzufWgU835
eG3VOdKu2ryvHLOQ4NJUJzsOfmdoANLopzFrCMNDSPVPKS5pLU5XNTeXw/rgWIgh
mZ5o8dSPwyEs7lHYfDeN3MxX4d/cq2cmShtEhbdF23c+4nnsR+PE1kVIS6juYWbP
bXRoqVhcj/9edv+X65p5bDls7RkCq23T8OiWi72YYQKBgQDonUygXysStrCwMJZs
XsGrOU/QDEo3LoaQrhAxxeYWPgr2/kR+PeMa1jOlXHkEM0l+J+4FF9pgCMK1orJI
WUq+w0HePdZDrN3K/oSt3w9bXQXiK+25CXsd6cVgcgIFA0WoW58nsg0AoBdrqtzU
f15kwXVTLGzC1IT8M7NQ0mLrrQKBgQDcqBYmPh/HhVKqZd/HZP44KqemfRsP8reK
xi1aE8pEY4DFsXJSDYL1KEAAq1cLyOC5dNYbftWLdkyJGqu++ldlE/QLP2y++Sas
1fqducLqwBHZJ4YQnSU+AAOGlgMG7yXEL3o2Q6ZbTSsGIHy2X3w75yZE0Tuk6NVb
fF0p13h0hwKBgQDQ8LHqf3FeLtFIgWwsTXTiiulA9DkZleXzQRZ0ztDce8A3ma8G
QiqjaXIcf5KIDlVeRxmKY6GYj2Xt5wUC7YmxDgw1RxAV28mhU7rzvp+5rjXhsRmo
EncPKHNNLTrZK9Y+4oV0D3+UZziCUohnKz0rfYYYPpg27NPDAeF4oHGQRQKBgQC+
1EdDj5qgTPcvEqezo+4P2SPgYnXTFxAQ3k8+hbr55ivpzQqXV8QYDVU8vvGq6XEg
MqEwakJ4ODj8oapCofKPIfB/Ab0kdAk0lGIHoi2mI7HL4diZ6a3Zrt1ducKobo50
2rKQ13S5pUU+KT5x4qZokAGSpnk0p4BNfIJ9uzEbZQKBgBgKuVLGhmuhMSLT3OFD
PhcCEuYkPo4syhvRSN/jLUPsiq91oz/hwxHOzSIkCWPgw/bNFoQYCfh18/1BbctC
/SE5zIE2v71DC191rmMRmb8IiKS6DpotdFrKTc45ebvXbm6D8ZUqBeydkcLt2yay
NnOP3oAuvfW/Fw+pWC7sj443
-----END PRIVATE KEY-----`
	extRSA2 = `-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCcHPxvE23MRUre
Zvu9MXKNpIg8tXtXEulDXoPsK9pDirSre0u/kQvqpTteMJ1QMVRypLBhWu5zrUsH
pffAEIXgQuCh3n3qLSaNuVJ5w0w79BuSrgp2C0g5FBVd1wPK9ly6bgemJoMNFkjP
gZvW9g1OTvD5wbOG+vuhSpmAJ6J1tga1pJ6b9x3OY71VKvDo0MmO8c0kO5PWoGdE
zi6BNzTy1dnVYozGKDu87PCT/6dtBpiE9qHF6xnqlirqozpnSzJQnSWz7n5Q2tn8
RmptTlj1Elik0Kh5scxShPmTtumjN0fQBv/4vabWeZaLJVYjxi3A4hfO/xsklIWJ
Dq/Y4K2VAgMBAAECggEAEvV2NqseX3tez0mkcuKJbeg4X18O3pE+YN8emFTvCdrT
fCvaFCayUsnEPvkacb276rxTa09WvBekkAY440teZtDYZPAXTJQ1JWsHOCBepr1L
h/G49YMDP2NQAPh2znRC6KUqKqRsr+8v4nt0CJQTI5p0q3A5tD/QxVLA945YrYC/
6L+Z3A0vGCvbI27un1nbzUkN8ZAFZVPeze6GM0F4E7j8M8jsxcE/aa9aW7PfKrBN
KDzcG+jXBTl2N4nVi3ffUFvg7ysp9P2ACdEJGzslcq4vepE2JSfSvLX6xZzaqISt
oNpmZcF2m37ILRGA6qHrM990DbXZ4k8Ds4XTsvYUoQKBgQDayKqLJgdRUS5ZZpFA
hiU91eNxVQ0380/q9hx7XW7EPxsnrrZ+9KzU88AUe2BK7/BhbkG+KSUs6jOnteAY
XRRKdy6Dqj3IbTRbbcuicYZgdrwNb2x1ZJ6qxBAlMNsgy+BkeIk4au5B2/iTEPtj
8mSVCncS0Ot4bdHwUHBLPTIYyQKBgQC2qzcrb0b1+GbJHQMPKobnta7zSS74ritl
L+8ZJD5xPiHyjW9G0x8t8+XOZGU+XUK8fbrkjXbd6gPF2gYIfcTz3x6AOygaNNoV
+nyd97hhjKmIAhD3VyRwcI1bGwvk+TK65LnrceVBPqYT+4qJnuArpfXxG/46E5dS
I+M3+FsgbQKBgQCXbSwdA0UtUzLxTbxbHH3KPrAdUPDFOPKnfZBZEmIIEmWJIbPO
SysUeWEIzBvpwghuZxG5vGCupar6+TcRpdrVb4gSOVJp1qvWXDgFRu3q9kNSSTyY
Q/xN1UYXd6kzGelFoOfY1Knzi3yQzcAxfSOAxK2FqHRR9jDIU+RlLwXtgQKBgEXw
H9tda4nZZWEy3mz8F1K32RgEuRs1dB/1zlGN8upgo5a+WBCB3Lo3W5E+FxVdl6Ob
b+b50rz8UB18cDroDHRixMbL33rJKYaotPW2Vr3ioTYVtHE+yBDUxwpOvKsaTjYI
RLbEkMX+OpAECvLOBX4wuI1r7lZGEfW9D83qJNmxAoGAdkce5qFrM+cswtPrj5LK
wlgP4Hnocu9vmvaLf7KIthToO8KDd0qOIEWTbKqbpOKXd6ceVjNB+rbZ62+uznTd
LLcRHV/2TEoETaX8CUyde5KMrLjBULVA3VKc9srwDseWFebidPPmcx5AiK0R7pRw
1Tnbz0ieRegvgammq5ugk7o=
-----END PRIVATE KEY-----`
)

func stringOr(v any) string {
	s, _ := v.(string)
	return s
}

// TestTrustedIssuerPrevious: a Verifier built with Previous (a reload) keeps the
// cached jwks_uri keys of a trusted issuer configured exactly as before, and
// fetches them again for one whose configuration changed; a removed issuer's
// tokens are refused.
func TestTrustedIssuerPrevious(t *testing.T) {
	ctx := context.Background()
	svc := newOwnTokens(t)
	now := time.Now()
	ti := newExtIssuer(t)
	entra := config.TrustedIssuer{
		Name: "entra", Issuer: entraIssuer, JWKSURI: ti.srv.URL + "/keys", Audiences: []string{"api://api1"},
		SubjectClaim: "oid", Algorithms: []string{"RS256"},
	}
	build := func(prev *subject.Verifier, issuers ...config.TrustedIssuer) *subject.Verifier {
		t.Helper()
		v, err := subject.New(ctx, svc, subject.Options{TrustedIssuers: issuers, Previous: prev})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	raw := signJWT(t, ti.rsa1, jose.RS256, "k1", entraClaims(now), nil)
	verify := func(v *subject.Verifier) error {
		_, err := v.Verify(ctx, "subject", raw, oauth.TokenTypeAccessToken, now)
		return err
	}
	v1 := build(nil, entra)
	if err := verify(v1); err != nil {
		t.Fatal(err)
	}
	v2 := build(v1, entra)
	if err := verify(v2); err != nil {
		t.Fatal(err)
	}
	if n := ti.fetches.Load(); n != 1 {
		t.Errorf("%d fetches after a reload of the same issuer, want 1 (the cache kept)", n)
	}
	changed := entra
	changed.Algorithms = []string{"RS256", "PS256"}
	v3 := build(v2, changed)
	if err := verify(v3); err != nil {
		t.Fatal(err)
	}
	if n := ti.fetches.Load(); n != 2 {
		t.Errorf("%d fetches after a reload that changed the issuer, want 2", n)
	}
	wantJWTRefused(t, verify(build(v3)), "issuer this server does not trust")
	if err := verify(v3); err != nil {
		t.Errorf("the replaced verifier, still serving the requests begun before: %v", err)
	}
}
