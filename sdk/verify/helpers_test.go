package verify

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/testdeputy"
	"github.com/deputy-auth/deputy/oauth"
)

const (
	api1 = "https://api1.example"
	api2 = "https://api2.example"
	api3 = "https://api3.example"
)

// clock is a Config.Now that a test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// transport counts requests by path and can fail them or rewrite the JWKS's
// Cache-Control header.
type transport struct {
	base http.RoundTripper

	down         atomic.Bool                   // every request fails with a network error
	gate         atomic.Pointer[chan struct{}] // when set, requests wait until it is closed
	jwksStatus   atomic.Int32
	cacheControl atomic.Pointer[string] // when set, replaces the JWKS's Cache-Control

	mu     sync.Mutex
	counts map[string]int
}

func newTransport() *transport {
	return &transport{base: http.DefaultTransport, counts: map[string]int{}}
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	tr.mu.Lock()
	tr.counts[req.URL.Path]++
	tr.mu.Unlock()
	if gate := tr.gate.Load(); gate != nil {
		<-*gate
	}
	if tr.down.Load() {
		return nil, errors.New("test transport: network is down")
	}
	if s := tr.jwksStatus.Load(); s != 0 && req.URL.Path == "/jwks" {
		return &http.Response{StatusCode: int(s), Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}, Request: req}, nil
	}
	resp, err := tr.base.RoundTrip(req)
	if err == nil && req.URL.Path == "/jwks" {
		if cc := tr.cacheControl.Load(); cc != nil {
			resp.Header.Set("Cache-Control", *cc)
		}
	}
	return resp, err
}

func (tr *transport) count(path string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.counts[path]
}

const metadataURLPath = "/.well-known/oauth-authorization-server"

// newVerifier returns a verifier for audience at d, with a counting transport and a
// hand-moved clock; edit may change the configuration.
func newVerifier(t testing.TB, d *testdeputy.Deputy, audience string, edit func(*Config)) (*Verifier, *transport, *clock) {
	t.Helper()
	tr, clk := newTransport(), newClock()
	cfg := Config{Issuer: d.URL, Audience: audience, HTTPClient: &http.Client{Transport: tr}, Now: clk.Now}
	if edit != nil {
		edit(&cfg)
	}
	v, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v, tr, clk
}

// exchange has client id (secret id+"-secret") exchange subject for a token for
// audience (RFC 8693 §2.1).
func exchange(t testing.TB, d *testdeputy.Deputy, id, subject, audience, scope string, requested oauth.TokenType) string {
	t.Helper()
	f := url.Values{
		"grant_type":         {oauth.GrantTokenExchange},
		"subject_token":      {subject},
		"subject_token_type": {string(oauth.TokenTypeAccessToken)},
		"audience":           {audience},
	}
	if scope != "" {
		f.Set("scope", scope)
	}
	if requested != "" {
		f.Set("requested_token_type", string(requested))
	}
	return d.Token(id, id+"-secret", f).AccessToken
}

// claimsFor are claims like those deputy puts in web-app's client credentials token
// for api1, valid from now.
func claimsFor(d *testdeputy.Deputy, now time.Time) map[string]any {
	return map[string]any{
		"iss": d.URL, "sub": "web-app", "aud": api1, "client_id": "web-app", "scope": "payments:read",
		"jti": randomID(), "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}
}

func randomID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// signAsDeputy signs claims with deputy's active private key, as deputy itself
// would, with typ and any extra header parameters. It lets a test build a token that
// is correctly signed yet wrong in one chosen way.
func signAsDeputy(t testing.TB, d *testdeputy.Deputy, typ string, claims map[string]any, opts *jose.SignerOptions) string {
	t.Helper()
	k := d.Server.Keys.Active()
	if opts == nil {
		opts = &jose.SignerOptions{}
	}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Algorithm, Key: jose.JSONWebKey{Key: k.Private, KeyID: k.ID}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return sign(t, sig, claims)
}

func sign(t testing.TB, sig jose.Signer, claims any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := sig.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// compact assembles a JWS by hand from a header, a payload and a signature.
func compact(t testing.TB, hdr map[string]any, payload []byte, sig []byte) string {
	t.Helper()
	h, err := json.Marshal(hdr)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(payload) + "." + enc(sig)
}

// segments returns the decoded header and payload of a compact JWS.
func segments(t testing.TB, raw string) (hdr map[string]any, payload []byte) {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %d parts", len(parts))
	}
	h, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(h, &hdr); err != nil {
		t.Fatal(err)
	}
	payload, err = base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return hdr, payload
}

// closedURL returns the URL of a server that is no longer listening.
func closedURL(t testing.TB) string {
	t.Helper()
	s := httptest.NewServer(http.NotFoundHandler())
	u := s.URL
	s.Close()
	return u
}

// description returns the client-facing description of a Verify error.
func description(err error) string {
	var e *oauth.Error
	if errors.As(err, &e) {
		return e.Description
	}
	return ""
}
