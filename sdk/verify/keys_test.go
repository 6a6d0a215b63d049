package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/testdeputy"
)

// TestKeysFetchedOnce: however many tokens are verified, concurrently or not, the
// metadata and the JWKS are fetched once while the cached set is fresh.
func TestKeysFetchedOnce(t *testing.T) {
	d := testdeputy.Start(t, nil)
	raw := d.ClientCredentials("web-app", "payments:read")
	v, tr, _ := newVerifier(t, d, api1, nil)

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 10 {
		wg.Go(func() {
			for range 10 {
				if _, err := v.Verify(context.Background(), raw); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Verify: %v", err)
	}
	if n := tr.count("/jwks"); n != 1 {
		t.Errorf("%d JWKS fetches for 100 verifications, want 1", n)
	}
	if n := tr.count(metadataURLPath); n != 1 {
		t.Errorf("%d metadata fetches, want 1", n)
	}
}

// TestKeysRotation: a token signed with a key deputy published after the last fetch
// makes the verifier refetch — but not more than once per 30 seconds, whatever
// unknown kids arrive meanwhile. The old key keeps verifying.
func TestKeysRotation(t *testing.T) {
	d := testdeputy.Start(t, nil)
	old := d.ClientCredentials("web-app", "payments:read")
	v, tr, clk := newVerifier(t, d, api1, nil)
	ctx := context.Background()
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatal(err)
	}

	if _, err := d.Server.Keys.Rotate(ctx, 0); err != nil { // what `deputy keys rotate` does
		t.Fatal(err)
	}
	rotated := d.ClientCredentials("web-app", "payments:read")
	if oldHdr, newHdr := mustHeader(t, old), mustHeader(t, rotated); oldHdr["kid"] == newHdr["kid"] {
		t.Fatalf("rotation kept kid %v", oldHdr["kid"])
	}

	steps := []struct {
		name    string
		advance time.Duration
		token   string
		want    error // nil: accepted
		fetches int   // JWKS fetches so far
	}{
		{"fail/unknown-kid-just-after-fetch", 0, rotated, ErrInvalidToken, 1},
		{"fail/unknown-kid-again-within-30s", 29 * time.Second, rotated, ErrInvalidToken, 1},
		{"ok/old-kid-still-cached", 0, old, nil, 1},
		{"ok/unknown-kid-refetches-after-30s", time.Second, rotated, nil, 2},
		{"ok/new-kid-now-cached", 0, rotated, nil, 2},
		{"ok/old-kid-still-published", 0, old, nil, 2},
	}
	for _, s := range steps {
		clk.Add(s.advance)
		_, err := v.Verify(ctx, s.token)
		if (s.want == nil) != (err == nil) || (s.want != nil && !errors.Is(err, s.want)) {
			t.Errorf("%s: Verify error %v, want %v", s.name, err, s.want)
		}
		if n := tr.count("/jwks"); n != s.fetches {
			t.Errorf("%s: %d JWKS fetches, want %d", s.name, n, s.fetches)
		}
	}
	if n := tr.count(metadataURLPath); n != 1 {
		t.Errorf("%d metadata fetches, want 1", n)
	}
}

// TestKeysUnknownKidFlood: tokens naming ever new kids cannot make the verifier
// fetch more than once per 30 seconds.
func TestKeysUnknownKidFlood(t *testing.T) {
	d := testdeputy.Start(t, nil)
	v, tr, clk := newVerifier(t, d, api1, nil)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: randomID()}},
			(&jose.SignerOptions{}).WithType("at+jwt"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(context.Background(), sign(t, sig, claimsFor(d, clk.Now()))); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("token %d: %v, want ErrInvalidToken", i, err)
		}
		clk.Add(time.Second) // 50 tokens over 50 seconds
	}
	if n := tr.count("/jwks"); n != 2 {
		t.Errorf("%d JWKS fetches over 50s of unknown kids, want 2", n)
	}
}

// TestKeysCacheLifetime: the JWKS is kept for its Cache-Control max-age, clamped to
// [1m, 24h], 5m without one, 1m for no-store; then refetched on the next use.
func TestKeysCacheLifetime(t *testing.T) {
	d := testdeputy.Start(t, nil)
	raw := d.ClientCredentials("web-app", "payments:read")
	for _, tt := range []struct {
		name         string
		cacheControl *string // nil: deputy's own header (public, max-age=60)
		lifetime     time.Duration
	}{
		{"deputy-max-age-60", nil, time.Minute},
		{"max-age-3600", ptr("public, max-age=3600"), time.Hour},
		{"max-age-below-minimum", ptr("max-age=5"), time.Minute},
		{"max-age-above-maximum", ptr("max-age=604800"), 24 * time.Hour},
		{"no-store", ptr("no-store"), time.Minute},
		{"absent", ptr(""), 5 * time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, tr, clk := newVerifier(t, d, api1, nil)
			if tt.cacheControl != nil {
				tr.cacheControl.Store(tt.cacheControl)
			}
			ctx := context.Background()
			_, _ = v.Verify(ctx, raw)
			clk.Add(tt.lifetime - time.Second)
			_, _ = v.Verify(ctx, raw) // expired by now for long lifetimes: the key is looked up all the same
			if n := tr.count("/jwks"); n != 1 {
				t.Errorf("%d fetches just before max-age passed, want 1", n)
			}
			clk.Add(time.Second)
			_, _ = v.Verify(ctx, raw)
			if n := tr.count("/jwks"); n != 2 {
				t.Errorf("%d fetches once max-age passed, want 2", n)
			}
		})
	}
}

func ptr(s string) *string { return &s }

// TestKeysFailClosed: the cached set is used while fresh even if deputy is down;
// once it has expired every token is refused with ErrUnavailable, failed fetches
// are not retried within 30 seconds, and verification resumes when deputy is back.
func TestKeysFailClosed(t *testing.T) {
	d := testdeputy.Start(t, nil)
	raw := d.ClientCredentials("web-app", "payments:read")
	v, tr, clk := newVerifier(t, d, api1, nil)
	ctx := context.Background()

	steps := []struct {
		name    string
		down    bool
		advance time.Duration
		want    error
		fetches int
	}{
		{"ok/first-fetch", false, 0, nil, 1},
		{"ok/deputy-down-cache-fresh", true, 59 * time.Second, nil, 1},
		{"fail/cache-expired-fetch-fails", true, time.Second, ErrUnavailable, 2},
		{"fail/no-retry-within-30s", false, 29 * time.Second, ErrUnavailable, 2},
		{"ok/deputy-back-after-30s", false, time.Second, nil, 3},
	}
	for _, s := range steps {
		tr.down.Store(s.down)
		clk.Add(s.advance)
		p, err := v.Verify(ctx, raw)
		if (s.want == nil) != (err == nil) || (s.want != nil && (!errors.Is(err, s.want) || p != nil)) {
			t.Errorf("%s: Verify = %v, %v; want %v", s.name, p, err, s.want)
		}
		if n := tr.count("/jwks"); n != s.fetches {
			t.Errorf("%s: %d JWKS fetches, want %d", s.name, n, s.fetches)
		}
	}
}

// TestKeysUnavailable: when no key set can be had — deputy unreachable, an error
// status, a set that is not a public key set, metadata for another issuer — every
// token is refused with ErrUnavailable.
func TestKeysUnavailable(t *testing.T) {
	d := testdeputy.Start(t, nil)
	raw := d.ClientCredentials("web-app", "payments:read")
	serve := func(body string) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(body))
		}))
		t.Cleanup(s.Close)
		return s.URL
	}
	private, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: d.Server.Keys.Active().Private, KeyID: "k", Algorithm: "ES256"}}})
	if err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name string
		edit func(*Config, *transport)
		want string // in the error's cause
	}{
		{"fail/jwks-unreachable", func(c *Config, _ *transport) { c.JWKSURL = closedURL(t) + "/jwks" }, "connect"},
		{"fail/metadata-unreachable", func(c *Config, _ *transport) { c.Issuer = closedURL(t) }, "connect"},
		{"fail/network-down", func(_ *Config, tr *transport) { tr.down.Store(true) }, "network is down"},
		{"fail/jwks-http-500", func(_ *Config, tr *transport) { tr.jwksStatus.Store(500) }, "HTTP 500"},
		{"fail/jwks-not-json", func(c *Config, _ *transport) { c.JWKSURL = serve("<html>") }, "not a JSON Web Key Set"},
		{"fail/jwks-empty", func(c *Config, _ *transport) { c.JWKSURL = serve(`{"keys":[]}`) }, "no usable public signing key"},
		{"fail/jwks-private-key", func(c *Config, _ *transport) { c.JWKSURL = serve(string(private)) }, "private or symmetric"},
		{"fail/metadata-another-issuer", func(c *Config, _ *transport) { c.Issuer = d.URL + "/" }, "issuer"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTransport()
			cfg := Config{Issuer: d.URL, Audience: api1, HTTPClient: &http.Client{Transport: tr}}
			tt.edit(&cfg, tr)
			v, err := New(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			p, err := v.Verify(context.Background(), raw)
			if p != nil || !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify = %v, %v; want ErrUnavailable", p, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

// TestKeysContextCancelled: a request that gives up while the keys are being
// fetched gets ErrUnavailable at once; the fetch goes on, and a request arriving
// meanwhile waits for it rather than starting another.
func TestKeysContextCancelled(t *testing.T) {
	d := testdeputy.Start(t, nil)
	raw := d.ClientCredentials("web-app", "payments:read")
	v, tr, _ := newVerifier(t, d, api1, nil)
	gate := make(chan struct{})
	tr.gate.Store(&gate)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if p, err := v.Verify(ctx, raw); p != nil || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Verify = %v, %v; want ErrUnavailable", p, err)
	}
	close(gate)
	if _, err := v.Verify(context.Background(), raw); err != nil {
		t.Errorf("Verify after a cancelled one: %v", err)
	}
	if n := tr.count("/jwks"); n != 1 {
		t.Errorf("%d JWKS fetches, want 1", n)
	}
}

// TestKeysMaxAge: Cache-Control max-age, clamped to [1m, 24h]; 5m without one.
func TestKeysMaxAge(t *testing.T) {
	for _, tt := range []struct {
		header string
		want   time.Duration
	}{
		{"", 5 * time.Minute},
		{"public, max-age=60", time.Minute},
		{"max-age=600", 10 * time.Minute},
		{"Max-Age=600", 10 * time.Minute},
		{` max-age = "120" `, 2 * time.Minute},
		{"max-age=0", time.Minute},
		{"max-age=-5", 5 * time.Minute},
		{"max-age=abc", 5 * time.Minute},
		{"max-age=99999999999999999999999", 24 * time.Hour},
		{"max-age=86401", 24 * time.Hour},
		{"no-cache, max-age=3600", time.Minute},
		{"max-age=3600, no-store", time.Minute},
		{"private", 5 * time.Minute},
	} {
		if got := keysMaxAge(tt.header); got != tt.want {
			t.Errorf("keysMaxAge(%q) = %s, want %s", tt.header, got, tt.want)
		}
	}
}

// TestKeyFits: a key verifies only the algorithm of its type, curve and size, and
// the one its own alg names.
func TestKeyFits(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	jwk := func(k any, alg string) jose.JSONWebKey { return jose.JSONWebKey{Key: k, Algorithm: alg} }
	for _, tt := range []struct {
		name string
		key  jose.JSONWebKey
		alg  jose.SignatureAlgorithm
		want bool
	}{
		{"ok/p256-es256", jwk(&p256.PublicKey, "ES256"), jose.ES256, true},
		{"ok/p256-no-alg", jwk(&p256.PublicKey, ""), jose.ES256, true},
		{"ok/p384-es384", jwk(&p384.PublicKey, "ES384"), jose.ES384, true},
		{"ok/ed25519", jwk(edPub, "EdDSA"), jose.EdDSA, true},
		{"ok/rsa-rs256", jwk(&rsa2048.PublicKey, "RS256"), jose.RS256, true},
		{"ok/rsa-ps256-no-alg", jwk(&rsa2048.PublicKey, ""), jose.PS256, true},
		{"fail/p256-es384", jwk(&p256.PublicKey, ""), jose.ES384, false},
		{"fail/p384-es256", jwk(&p384.PublicKey, ""), jose.ES256, false},
		{"fail/key-alg-differs", jwk(&rsa2048.PublicKey, "RS256"), jose.PS256, false},
		{"fail/rsa-as-ecdsa", jwk(&rsa2048.PublicKey, ""), jose.ES256, false},
		{"fail/ecdsa-as-eddsa", jwk(&p256.PublicKey, ""), jose.EdDSA, false},
		{"fail/ed25519-as-rs256", jwk(edPub, ""), jose.RS256, false},
		{"fail/rsa-1024", jwk(&rsa1024.PublicKey, "RS256"), jose.RS256, false},
		{"fail/hmac", jwk([]byte("0123456789abcdef0123456789abcdef"), "HS256"), jose.HS256, false},
	} {
		if got := keyFits(tt.key, tt.alg); got != tt.want {
			t.Errorf("%s: keyFits = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestParseKeySet: public signing keys with a kid are kept; encryption keys and
// keys without kid are skipped; private or symmetric material, duplicate kids, or
// no usable key refuse the set.
func TestParseKeySet(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := func(kid, use string) string {
		b, err := json.Marshal(jose.JSONWebKey{Key: &ec.PublicKey, KeyID: kid, Use: use, Algorithm: "ES256"})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	priv, _ := json.Marshal(jose.JSONWebKey{Key: ec, KeyID: "p", Algorithm: "ES256"})
	set := func(keys ...string) []byte { return []byte(`{"keys":[` + strings.Join(keys, ",") + `]}`) }
	for _, tt := range []struct {
		name string
		doc  []byte
		kids []string // kept, when the set is accepted
		err  string
	}{
		{"ok/two-keys", set(pub("a", "sig"), pub("b", "")), []string{"a", "b"}, ""},
		{"ok/skips-enc-and-no-kid", set(pub("a", "sig"), pub("e", "enc"), pub("", "sig")), []string{"a"}, ""},
		{"ok/skips-unknown-kty", set(pub("a", ""), `{"kty":"XYZ","kid":"x"}`), []string{"a"}, ""},
		{"fail/private-key", set(pub("a", ""), string(priv)), nil, "private or symmetric"},
		{"fail/symmetric-key", set(`{"kty":"oct","kid":"h","k":"c2VjcmV0"}`), nil, "private or symmetric"},
		{"fail/duplicate-kid", set(pub("a", ""), pub("a", "sig")), nil, "appears twice"},
		{"fail/empty", set(), nil, "no usable"},
		{"fail/not-json", []byte("keys"), nil, "not a JSON Web Key Set"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ks, err := parseKeySet(tt.doc)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseKeySet error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ks.byKID) != len(tt.kids) {
				t.Errorf("kept %d keys, want %v", len(ks.byKID), tt.kids)
			}
			for _, kid := range tt.kids {
				if k, ok := ks.byKID[kid]; !ok || !k.IsPublic() {
					t.Errorf("kid %q not kept as a public key", kid)
				}
			}
		})
	}
}

func mustHeader(t *testing.T, raw string) map[string]any {
	hdr, _ := segments(t, raw)
	return hdr
}
