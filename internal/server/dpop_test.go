package server_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/dpop"
)

// dpopNode is a node on the development configuration, edited, whose clock
// stands at *clock (Unix nanoseconds).
func dpopNode(tb testing.TB, edit func(*config.Config)) (*server.Server, *atomic.Int64) {
	tb.Helper()
	cfg := config.Dev(tb.TempDir())
	if edit != nil {
		edit(cfg)
	}
	clock := new(atomic.Int64)
	clock.Store(time.Now().UnixNano())
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)),
		server.WithClock(func() time.Time { return time.Unix(0, clock.Load()) }))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s, clock
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// proofAt is a proof of k for a request of method to htu made at iat.
func proofAt(tb testing.TB, k crypto.Signer, method, htu, nonce string, iat time.Time) string {
	tb.Helper()
	var id [12]byte
	_, _ = rand.Read(id[:])
	p, err := dpop.Sign(k, jose.ES256, dpop.Claims{JTI: base64.RawURLEncoding.EncodeToString(id[:]), HTM: method, HTU: htu, IAT: iat.Unix(), Nonce: nonce})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// tokenWithProofs posts a client_credentials (or form) request with these DPoP
// header lines.
func tokenWithProofs(h http.Handler, id, secret string, form url.Values, proofs ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth(id, secret)
	for _, p := range proofs {
		r.Header.Add("DPoP", p)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// claimsOf decodes a JWT's payload without verifying it.
func claimsOf(tb testing.TB, raw string) map[string]any {
	tb.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		tb.Fatalf("not a JWT: %q", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// denialOf returns the audit event of the request w answered.
func denialOf(tb testing.TB, s *server.Server, w *httptest.ResponseRecorder) store.AuditEvent {
	tb.Helper()
	id := w.Header().Get("X-Request-Id")
	var found *store.AuditEvent
	err := s.Store.Scan(context.Background(), 0, func(e store.AuditEvent) error {
		if e.RequestID == id {
			found = &e
		}
		return nil
	})
	if err != nil || found == nil {
		tb.Fatalf("no audit event of request %s (%v)", id, err)
	}
	return *found
}

var ccForm = url.Values{"grant_type": {oauth.GrantClientCredentials}}

// TestTokenDPoP: DPoP at the token endpoint (RFC 9449 §5) for the client
// credentials grant: a good proof binds the token (cnf.jkt, token_type DPoP); a bad
// one, two DPoP headers and a replayed jti are refused with invalid_dpop_proof,
// nothing issued, the denial audited with its reason.
func TestTokenDPoP(t *testing.T) {
	s, clock := dpopNode(t, nil)
	htu := s.Config.Issuer + "/token"
	k, other := newKey(t), newKey(t)
	jkt, err := dpop.Thumbprint(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(0, clock.Load())
	replayed := proofAt(t, k, "POST", htu, "", now)
	if w := tokenWithProofs(s.Handler, "web-app", "web-app-secret", ccForm, replayed); w.Code != 200 {
		t.Fatalf("first use of the proof: %d %s", w.Code, w.Body)
	}
	otherSig := func() string {
		// k's jwk, other's signature: swap the signature of a proof of other.
		a := strings.Split(proofAt(t, k, "POST", htu, "", now), ".")
		b := strings.Split(proofAt(t, other, "POST", htu, "", now), ".")
		return a[0] + "." + a[1] + "." + b[2]
	}()
	tests := []struct {
		name   string
		proofs []string
		code   oauth.Code // "" = issued
	}{
		{"ok/no-proof-bearer", nil, ""},
		{"ok/proof-bound", []string{proofAt(t, k, "POST", htu, "", now)}, ""},
		{"ok/htu-with-query-ignored", []string{proofAt(t, k, "POST", htu+"?x=1#f", "", now)}, ""},
		{"fail/two-dpop-headers", []string{proofAt(t, k, "POST", htu, "", now), proofAt(t, k, "POST", htu, "", now)}, oauth.CodeInvalidDPoPProof},
		{"fail/htm-of-another-request", []string{proofAt(t, k, "GET", htu, "", now)}, oauth.CodeInvalidDPoPProof},
		{"fail/htu-of-another-request", []string{proofAt(t, k, "POST", s.Config.Issuer+"/userinfo", "", now)}, oauth.CodeInvalidDPoPProof},
		{"fail/iat-too-old", []string{proofAt(t, k, "POST", htu, "", now.Add(-2*time.Minute))}, oauth.CodeInvalidDPoPProof},
		{"fail/iat-in-the-future", []string{proofAt(t, k, "POST", htu, "", now.Add(time.Minute))}, oauth.CodeInvalidDPoPProof},
		{"fail/signed-by-another-key", []string{otherSig}, oauth.CodeInvalidDPoPProof},
		{"fail/not-a-jwt", []string{"not-a-proof"}, oauth.CodeInvalidDPoPProof},
		{"fail/replayed-jti", []string{replayed}, oauth.CodeInvalidDPoPProof},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tokenWithProofs(s.Handler, "web-app", "web-app-secret", ccForm, tt.proofs...)
			if tt.code == "" {
				if w.Code != 200 {
					t.Fatalf("%d %s", w.Code, w.Body)
				}
				var resp oauth.TokenResponse
				_ = json.Unmarshal(w.Body.Bytes(), &resp)
				cnf, _ := claimsOf(t, resp.AccessToken)["cnf"].(map[string]any)
				if len(tt.proofs) == 0 {
					if resp.TokenType != "Bearer" || cnf != nil {
						t.Errorf("token_type %q, cnf %v; want Bearer and none", resp.TokenType, cnf)
					}
					return
				}
				if resp.TokenType != "DPoP" || cnf["jkt"] != jkt {
					t.Errorf("token_type %q, cnf %v; want DPoP and jkt %s", resp.TokenType, cnf, jkt)
				}
				return
			}
			var e oauth.Error
			_ = json.Unmarshal(w.Body.Bytes(), &e)
			if w.Code != 400 || e.Code != tt.code {
				t.Fatalf("%d %s, want 400 %s", w.Code, w.Body, tt.code)
			}
			ev := denialOf(t, s, w)
			if ev.Decision != store.DecisionDeny || ev.ClientID != "web-app" || !strings.HasPrefix(ev.Reason, string(tt.code)) || ev.TokenJTI != "" {
				t.Errorf("audit event %+v: want a denial of web-app with reason %s…", ev, tt.code)
			}
			t.Log(ev.Reason)
		})
	}
}

// TestTokenDPoPBoundClient: a client with dpop_bound_access_tokens (RFC 9449 §5.2)
// is refused a token without a proof.
func TestTokenDPoPBoundClient(t *testing.T) {
	s, clock := dpopNode(t, func(c *config.Config) {
		for i := range c.Clients {
			if c.Clients[i].ID == "web-app" {
				c.Clients[i].DPoPBoundAccessTokens = true
			}
		}
	})
	w := tokenWithProofs(s.Handler, "web-app", "web-app-secret", ccForm)
	var e oauth.Error
	_ = json.Unmarshal(w.Body.Bytes(), &e)
	if w.Code != 400 || e.Code != oauth.CodeInvalidDPoPProof {
		t.Fatalf("without a proof: %d %s, want 400 invalid_dpop_proof", w.Code, w.Body)
	}
	if ev := denialOf(t, s, w); ev.Decision != store.DecisionDeny || !strings.HasPrefix(ev.Reason, "invalid_dpop_proof") {
		t.Errorf("audit event %+v", ev)
	}
	p := proofAt(t, newKey(t), "POST", s.Config.Issuer+"/token", "", time.Unix(0, clock.Load()))
	if w := tokenWithProofs(s.Handler, "web-app", "web-app-secret", ccForm, p); w.Code != 200 {
		t.Fatalf("with a proof: %d %s", w.Code, w.Body)
	}
	// Other clients are not affected.
	if w := tokenWithProofs(s.Handler, "api1", "api1-secret", ccForm); w.Code != 200 {
		t.Fatalf("another client without a proof: %d %s", w.Code, w.Body)
	}
}

// TestTokenDPoPNonce: with dpop.require_nonce a proof without a nonce, with a
// forged one or with one older than 5 minutes is answered use_dpop_nonce and a
// DPoP-Nonce header (RFC 9449 §8); with the nonce the token is issued, and a nonce
// from another node of the same deployment is accepted.
func TestTokenDPoPNonce(t *testing.T) {
	dir := t.TempDir()
	edit := func(c *config.Config) { c.DPoP.RequireNonce = true }
	mk := func() (*server.Server, *atomic.Int64) {
		cfg := config.Dev(dir)
		edit(cfg)
		clock := new(atomic.Int64)
		clock.Store(time.Now().UnixNano())
		s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)),
			server.WithClock(func() time.Time { return time.Unix(0, clock.Load()) }))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, clock
	}
	a, clock := mk()
	b, clockB := mk() // a second node on the same database
	htu := a.Config.Issuer + "/token"
	k := newKey(t)
	at := func() time.Time { return time.Unix(0, clock.Load()) }
	code := func(w *httptest.ResponseRecorder) oauth.Code {
		var e oauth.Error
		_ = json.Unmarshal(w.Body.Bytes(), &e)
		return e.Code
	}

	w := tokenWithProofs(a.Handler, "web-app", "web-app-secret", ccForm, proofAt(t, k, "POST", htu, "", at()))
	nonce := w.Header().Get("DPoP-Nonce")
	if w.Code != 400 || code(w) != oauth.CodeUseDPoPNonce || nonce == "" {
		t.Fatalf("fail/no-nonce: %d %s, DPoP-Nonce %q; want 400 use_dpop_nonce with a nonce", w.Code, w.Body, nonce)
	}
	if ev := denialOf(t, a, w); !strings.HasPrefix(ev.Reason, "use_dpop_nonce") {
		t.Errorf("fail/no-nonce: audit reason %q", ev.Reason)
	}
	w = tokenWithProofs(a.Handler, "web-app", "web-app-secret", ccForm, proofAt(t, k, "POST", htu, "forged."+nonce, at()))
	if w.Code != 400 || code(w) != oauth.CodeUseDPoPNonce {
		t.Errorf("fail/forged-nonce: %d %s", w.Code, w.Body)
	}
	w = tokenWithProofs(a.Handler, "web-app", "web-app-secret", ccForm, proofAt(t, k, "POST", htu, nonce, at()))
	if w.Code != 200 || w.Header().Get("DPoP-Nonce") == "" {
		t.Errorf("ok/nonce: %d %s, DPoP-Nonce %q", w.Code, w.Body, w.Header().Get("DPoP-Nonce"))
	}
	clockB.Store(clock.Load())
	w = tokenWithProofs(b.Handler, "web-app", "web-app-secret", ccForm, proofAt(t, k, "POST", htu, nonce, at()))
	if w.Code != 200 {
		t.Errorf("ok/nonce-of-another-node: %d %s", w.Code, w.Body)
	}
	clock.Add(int64(6 * time.Minute))
	w = tokenWithProofs(a.Handler, "web-app", "web-app-secret", ccForm, proofAt(t, k, "POST", htu, nonce, at()))
	if w.Code != 400 || code(w) != oauth.CodeUseDPoPNonce || w.Header().Get("DPoP-Nonce") == nonce {
		t.Errorf("fail/stale-nonce: %d %s, DPoP-Nonce %q (the old one: %v)", w.Code, w.Body, w.Header().Get("DPoP-Nonce"), w.Header().Get("DPoP-Nonce") == nonce)
	}
}
