package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/testdeputy"
	"github.com/deputy-auth/deputy/oauth"
)

// TestVerifyAccepts: tokens deputy issues — by client credentials and by one and two
// hops of token exchange — verify, and their Principal says who acts for whom.
func TestVerifyAccepts(t *testing.T) {
	d := testdeputy.Start(t, nil)
	cc := d.ClientCredentials("web-app", "payments:read ledger:read fraud:check")
	hop1 := exchange(t, d, "api1", cc, api2, "ledger:read fraud:check", "")
	hop2 := exchange(t, d, "api2", hop1, api3, "fraud:check", "")
	now := time.Now()

	for _, tt := range []struct {
		name     string
		token    string
		audience string
		leeway   time.Duration
		advance  time.Duration
		client   string
		scopes   []string
		actors   []string
	}{
		{name: "ok/client-credentials", token: cc, audience: api1, client: "web-app",
			scopes: []string{"payments:read", "ledger:read", "fraud:check"}},
		{name: "ok/exchange-one-hop", token: hop1, audience: api2, client: "api1",
			scopes: []string{"ledger:read", "fraud:check"}, actors: []string{"api1"}},
		{name: "ok/exchange-two-hops", token: hop2, audience: api3, client: "api2",
			scopes: []string{"fraud:check"}, actors: []string{"api2", "api1"}},
		{name: "ok/typ-media-type", audience: api1, client: "web-app", scopes: []string{"payments:read"},
			token: signAsDeputy(t, d, "application/at+jwt", claimsFor(d, now), nil)},
		{name: "ok/typ-upper-case", audience: api1, client: "web-app", scopes: []string{"payments:read"},
			token: signAsDeputy(t, d, "AT+JWT", claimsFor(d, now), nil)},
		{name: "ok/aud-array", audience: api2, client: "web-app", scopes: []string{"payments:read"},
			token: signAsDeputy(t, d, "at+jwt", with(claimsFor(d, now), "aud", []string{api1, api2}), nil)},
		{name: "ok/expired-within-leeway", token: cc, audience: api1, client: "web-app",
			scopes: []string{"payments:read", "ledger:read", "fraud:check"},
			leeway: time.Minute, advance: 5*time.Minute + 50*time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, _, clk := newVerifier(t, d, tt.audience, func(c *Config) { c.Leeway = tt.leeway })
			clk.Add(tt.advance)
			p, err := v.Verify(context.Background(), tt.token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if p.Subject != "web-app" || p.Issuer != d.URL || p.ClientID != tt.client {
				t.Errorf("sub %q iss %q client_id %q, want web-app %s %s", p.Subject, p.Issuer, p.ClientID, d.URL, tt.client)
			}
			if !slices.Contains(p.Audience, tt.audience) {
				t.Errorf("audience %v lacks %s", p.Audience, tt.audience)
			}
			if !slices.Equal(slices.Sorted(slices.Values(p.Scopes)), slices.Sorted(slices.Values(tt.scopes))) {
				t.Errorf("scopes %v, want %v", p.Scopes, tt.scopes)
			}
			if !slices.Equal(p.Actors, tt.actors) || !slices.Equal(p.Act.Chain(), tt.actors) || p.Act.Depth() != len(tt.actors) {
				t.Errorf("actors %v, act chain %v, want %v", p.Actors, p.Act.Chain(), tt.actors)
			}
			if p.JTI == "" || p.JTI != p.Claims["jti"] {
				t.Errorf("jti %q, claims jti %v", p.JTI, p.Claims["jti"])
			}
			if exp, _ := p.Claims["exp"].(float64); p.ExpiresAt.Unix() != int64(exp) || p.ExpiresAt.IsZero() {
				t.Errorf("expires at %v, claims exp %v", p.ExpiresAt, p.Claims["exp"])
			}
		})
	}
}

// TestVerifySigningAlgorithms: deputy's tokens verify whichever algorithm deputy
// signs with.
func TestVerifySigningAlgorithms(t *testing.T) {
	for _, alg := range []string{"ES256", "EdDSA", "RS256", "PS256"} {
		t.Run("ok/"+alg, func(t *testing.T) {
			d := testdeputy.Start(t, func(c *config.Config) { c.Signing.Algorithm = alg })
			raw := d.ClientCredentials("web-app", "payments:read")
			if hdr, _ := segments(t, raw); hdr["alg"] != alg {
				t.Fatalf("deputy signed with %v, want %s", hdr["alg"], alg)
			}
			v, _, _ := newVerifier(t, d, api1, nil)
			p, err := v.Verify(context.Background(), raw)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if p.Subject != "web-app" {
				t.Errorf("subject %q", p.Subject)
			}
		})
	}
}

// TestVerifyRejects: each way a token can be wrong is refused with ErrInvalidToken
// and a description saying which check failed; the error never contains the token.
func TestVerifyRejects(t *testing.T) {
	// api1 may also ask for plain JWTs, so that a "JWT"-typed exchange output exists.
	d := testdeputy.Start(t, func(c *config.Config) {
		c.Exchange.Policies[0].RequestedTokenTypes = []string{"access_token", "jwt"}
	})
	cc := d.ClientCredentials("web-app", "payments:read ledger:read")
	hdr, payload := segments(t, cc)
	kid, _ := hdr["kid"].(string)
	deputyKey := d.Server.Keys.Active()
	now := time.Now()
	good := func() map[string]any { return claimsFor(d, now) }

	ownKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signOwn := func(t *testing.T, keyID string) string {
		sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: ownKey, KeyID: keyID}},
			(&jose.SignerOptions{}).WithType("at+jwt"))
		if err != nil {
			t.Fatal(err)
		}
		return sign(t, sig, good())
	}

	for _, tt := range []struct {
		name     string
		token    func(t *testing.T) string
		audience string        // default api1
		advance  time.Duration // moves the verifier's clock
		want     string        // in the description
	}{
		{name: "fail/empty", want: "empty",
			token: func(*testing.T) string { return "" }},
		{name: "fail/not-compact", want: "not a compact JWS",
			token: func(*testing.T) string { return "a.b.c.d.e" }},
		{name: "fail/json-serialization", want: "not a compact JWS",
			token: func(*testing.T) string { return `{"payload":"e30","signatures":[]}` }},
		{name: "fail/oversized", want: "too large",
			token: func(t *testing.T) string {
				return signAsDeputy(t, d, "at+jwt", with(good(), "pad", strings.Repeat("x", MaxTokenBytes)), nil)
			}},
		{name: "fail/wrong-audience", audience: "https://api2.example", want: "not for this audience",
			token: func(*testing.T) string { return cc }},
		{name: "fail/expired", advance: 5*time.Minute + 31*time.Second, want: "expired",
			token: func(*testing.T) string { return cc }},
		{name: "fail/tampered-payload", want: "signature is invalid",
			token: func(t *testing.T) string {
				var c map[string]any
				if err := json.Unmarshal(payload, &c); err != nil {
					t.Fatal(err)
				}
				c["scope"] = "payments:read payments:write"
				b, err := json.Marshal(c)
				if err != nil {
					t.Fatal(err)
				}
				parts := strings.Split(cc, ".")
				parts[1] = base64.RawURLEncoding.EncodeToString(b)
				return strings.Join(parts, ".")
			}},
		{name: "fail/typ-jwt-exchange-output", audience: api2, want: "typ must be at+jwt",
			token: func(t *testing.T) string {
				raw := exchange(t, d, "api1", cc, api2, "ledger:read", oauth.TokenTypeJWT)
				if h, _ := segments(t, raw); h["typ"] != oauth.JWTTypeJWT {
					t.Fatalf("exchange output has typ %v, want JWT", h["typ"])
				}
				return raw
			}},
		{name: "fail/typ-missing", want: "typ must be at+jwt",
			token: func(t *testing.T) string { return signAsDeputy(t, d, "", good(), nil) }},
		{name: "fail/alg-none", want: "algorithm is not allowed",
			token: func(t *testing.T) string {
				return compact(t, map[string]any{"alg": "none", "kid": kid, "typ": "at+jwt"}, payload, nil)
			}},
		{name: "fail/hs256-with-public-key", want: "algorithm is not allowed",
			token: func(t *testing.T) string {
				der, err := x509.MarshalPKIXPublicKey(deputyKey.Private.Public())
				if err != nil {
					t.Fatal(err)
				}
				sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: der},
					(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", kid))
				if err != nil {
					t.Fatal(err)
				}
				return sign(t, sig, good())
			}},
		{name: "fail/alg-does-not-match-key", want: "does not match its key",
			token: func(t *testing.T) string {
				return compact(t, map[string]any{"alg": "ES384", "kid": kid, "typ": "at+jwt"}, payload, make([]byte, 96))
			}},
		{name: "fail/another-key-unknown-kid", want: "key deputy does not publish",
			token: func(t *testing.T) string { return signOwn(t, "not-deputys-key") }},
		{name: "fail/another-key-deputy-kid", want: "signature is invalid",
			token: func(t *testing.T) string { return signOwn(t, kid) }},
		{name: "fail/no-kid", want: "names no key",
			token: func(t *testing.T) string { return signOwn(t, "") }},
		{name: "fail/wrong-issuer", want: "another issuer",
			token: func(t *testing.T) string {
				return signAsDeputy(t, d, "at+jwt", with(good(), "iss", "https://evil.example"), nil)
			}},
		{name: "fail/issuer-trailing-slash", want: "another issuer",
			token: func(t *testing.T) string { return signAsDeputy(t, d, "at+jwt", with(good(), "iss", d.URL+"/"), nil) }},
		{name: "fail/jku-header", want: "carries jku",
			token: func(t *testing.T) string {
				return signAsDeputy(t, d, "at+jwt", good(), (&jose.SignerOptions{}).WithHeader("jku", d.URL+"/jwks"))
			}},
		{name: "fail/x5u-header", want: "carries x5u",
			token: func(t *testing.T) string {
				return signAsDeputy(t, d, "at+jwt", good(), (&jose.SignerOptions{}).WithHeader("x5u", "https://evil.example/cert"))
			}},
		{name: "fail/jwk-header", want: "carries jwk",
			token: func(t *testing.T) string {
				opts := &jose.SignerOptions{EmbedJWK: true}
				return signAsDeputy(t, d, "at+jwt", good(), opts.WithHeader("kid", kid))
			}},
		{name: "fail/crit-header", want: "carries crit",
			token: func(t *testing.T) string {
				return signAsDeputy(t, d, "at+jwt", good(), (&jose.SignerOptions{}).WithHeader("crit", []string{"exp"}))
			}},
		{name: "fail/b64-header", want: "carries b64",
			token: func(t *testing.T) string {
				return signAsDeputy(t, d, "at+jwt", good(), (&jose.SignerOptions{}).WithHeader("b64", true))
			}},
		{name: "fail/missing-sub", want: "no subject",
			token: func(t *testing.T) string { return signAsDeputy(t, d, "at+jwt", without(good(), "sub"), nil) }},
		{name: "fail/missing-exp", want: "no expiry",
			token: func(t *testing.T) string { return signAsDeputy(t, d, "at+jwt", without(good(), "exp"), nil) }},
		{name: "fail/nbf-in-future", want: "not valid yet",
			token: func(t *testing.T) string {
				return signAsDeputy(t, d, "at+jwt", with(good(), "nbf", now.Add(2*time.Minute).Unix()), nil)
			}},
		{name: "fail/iat-in-future", want: "issued in the future",
			token: func(t *testing.T) string {
				return signAsDeputy(t, d, "at+jwt", with(good(), "iat", now.Add(2*time.Minute).Unix()), nil)
			}},
		{name: "fail/aud-wrong-type", want: "claims are malformed",
			token: func(t *testing.T) string { return signAsDeputy(t, d, "at+jwt", with(good(), "aud", 42), nil) }},
		{name: "fail/claim-name-case", want: "another issuer",
			token: func(t *testing.T) string {
				return signAsDeputy(t, d, "at+jwt", with(without(good(), "iss"), "ISS", d.URL), nil)
			}},
		{name: "fail/sender-constrained", want: "sender-constrained",
			token: func(t *testing.T) string {
				return signAsDeputy(t, d, "at+jwt", with(good(), "cnf", map[string]any{"jkt": "abc"}), nil)
			}},
		{name: "fail/actor-without-sub", want: "act claim is malformed",
			token: func(t *testing.T) string {
				return signAsDeputy(t, d, "at+jwt", with(good(), "act", map[string]any{"sub": "api1", "act": map[string]any{}}), nil)
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			audience := tt.audience
			if audience == "" {
				audience = api1
			}
			v, _, clk := newVerifier(t, d, audience, nil)
			clk.Add(tt.advance)
			raw := tt.token(t)
			p, err := v.Verify(context.Background(), raw)
			if p != nil || err == nil {
				t.Fatalf("Verify = %+v, %v; want ErrInvalidToken", p, err)
			}
			if !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrUnavailable) {
				t.Errorf("error %v is not ErrInvalidToken", err)
			}
			var e *oauth.Error
			if !errors.As(err, &e) || e.Code != CodeInvalidToken {
				t.Errorf("error %#v is not an invalid_token protocol error", err)
			}
			if !strings.Contains(description(err), tt.want) {
				t.Errorf("description %q, want it to say %q", description(err), tt.want)
			}
			for _, seg := range strings.Split(raw, ".")[1:] {
				if len(seg) > 16 && strings.Contains(err.Error(), seg) {
					t.Errorf("the error echoes the token: %v", err)
				}
			}
		})
	}
}

func with(c map[string]any, name string, value any) map[string]any {
	c[name] = value
	return c
}

func without(c map[string]any, name string) map[string]any {
	delete(c, name)
	return c
}

// TestPrincipalHasScope: exact, case-sensitive matches; a nil Principal has none.
func TestPrincipalHasScope(t *testing.T) {
	p := &Principal{Scopes: []string{"ledger:read", "fraud:check"}}
	for _, tt := range []struct {
		p     *Principal
		scope string
		want  bool
	}{
		{p, "ledger:read", true},
		{p, "fraud:check", true},
		{p, "ledger:write", false},
		{p, "Ledger:read", false},
		{p, "ledger", false},
		{p, "", false},
		{nil, "ledger:read", false},
	} {
		if got := tt.p.HasScope(tt.scope); got != tt.want {
			t.Errorf("HasScope(%q) = %v, want %v", tt.scope, got, tt.want)
		}
	}
}

// TestNewValidatesConfig: New refuses a configuration it cannot work with, naming
// the field, and does no network I/O.
func TestNewValidatesConfig(t *testing.T) {
	base := func() Config { return Config{Issuer: "https://deputy.example", Audience: api1} }
	for _, tt := range []struct {
		name string
		edit func(*Config)
		want string // "" for a valid configuration
	}{
		{"ok/minimal", func(*Config) {}, ""},
		{"ok/introspection", func(c *Config) { c.Introspect, c.ClientID, c.ClientSecret = true, "api1", "s" }, ""},
		{"ok/overrides", func(c *Config) { c.JWKSURL, c.IntrospectionURL = "https://keys.example/jwks", "http://127.0.0.1/i" }, ""},
		{"fail/no-issuer", func(c *Config) { c.Issuer = "" }, "Issuer is required"},
		{"fail/relative-issuer", func(c *Config) { c.Issuer = "deputy.example" }, "Issuer must be an absolute"},
		{"fail/issuer-scheme", func(c *Config) { c.Issuer = "ftp://deputy.example" }, "Issuer must be an absolute"},
		{"fail/no-audience", func(c *Config) { c.Audience = "" }, "Audience is required"},
		{"fail/jwks-url", func(c *Config) { c.JWKSURL = "/jwks" }, "JWKSURL must be"},
		{"fail/introspection-url", func(c *Config) { c.IntrospectionURL = "::" }, "IntrospectionURL must be"},
		{"fail/negative-leeway", func(c *Config) { c.Leeway = -time.Second }, "Leeway must not be negative"},
		{"fail/huge-leeway", func(c *Config) { c.Leeway = time.Hour }, "Leeway must be at most"},
		{"fail/introspect-without-client", func(c *Config) { c.Introspect = true }, "ClientID is required"},
		{"fail/introspect-without-secret", func(c *Config) { c.Introspect, c.ClientID = true, "api1" }, "ClientSecret is required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTransport()
			cfg := base()
			cfg.HTTPClient = &http.Client{Transport: tr}
			tt.edit(&cfg)
			v, err := New(context.Background(), cfg)
			if tt.want == "" {
				if err != nil || v == nil {
					t.Fatalf("New: %v", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error %v, want %q", err, tt.want)
			}
			if n := len(tr.counts); n != 0 {
				t.Errorf("New made %d requests", n)
			}
		})
	}
}
