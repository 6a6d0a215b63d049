package exchange_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/testdeputy"
	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk"
	"github.com/deputy-auth/deputy/sdk/dpop"
	"github.com/deputy-auth/deputy/sdk/exchange"
	"github.com/deputy-auth/deputy/sdk/verify"
)

// dpopEndpoint is a token endpoint that does what RFC 9449 §5 and §8 ask of deputy's:
// it checks the request's DPoP proof with sdk/dpop (one use per jti, and a nonce it
// handed out when requireNonce), and issues a token for the requested audience,
// signed with deputy d's key and bound to the proof's key (cnf.jkt, token_type DPoP).
// bearer makes it answer with an unbound Bearer token instead.
type dpopEndpoint struct {
	*httptest.Server
	requireNonce bool
	bearer       bool

	mu       sync.Mutex
	nonce    string
	jtis     map[string]bool
	requests int
	refused  []string // the reason of each refused proof
}

func newDPoPEndpoint(t *testing.T, d *testdeputy.Deputy, requireNonce bool) *dpopEndpoint {
	t.Helper()
	ep := &dpopEndpoint{requireNonce: requireNonce, nonce: "deputy-nonce-1", jtis: map[string]bool{}}
	ep.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ep.mu.Lock()
		defer ep.mu.Unlock()
		ep.requests++
		answer := func(status int, body any) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(body)
		}
		refuse := func(code oauth.Code, reason string) {
			ep.refused = append(ep.refused, reason)
			if code == oauth.CodeUseDPoPNonce {
				w.Header().Set(dpop.NonceHeader, ep.nonce)
			}
			answer(http.StatusBadRequest, map[string]string{"error": string(code), "error_description": reason})
		}
		if err := r.ParseForm(); err != nil {
			t.Errorf("dpop endpoint: %v", err)
		}
		if len(r.Header.Values(dpop.Header)) != 1 {
			refuse(oauth.CodeInvalidDPoPProof, "not one DPoP header")
			return
		}
		req := dpop.Request{Method: r.Method, URL: ep.URL + r.URL.Path}
		if ep.requireNonce {
			req.Nonce = func(n string) error {
				if n == "" || n != ep.nonce {
					return errors.New("stale or missing nonce")
				}
				return nil
			}
		}
		proof, err := dpop.Check(r.Header.Get(dpop.Header), req)
		var de *dpop.Error
		switch {
		case errors.As(err, &de):
			refuse(de.OAuth().Code, de.Reason)
			return
		case err != nil:
			t.Errorf("dpop.Check: %v", err)
			return
		case ep.jtis[proof.JTI]:
			refuse(oauth.CodeInvalidDPoPProof, "jti replayed")
			return
		}
		ep.jtis[proof.JTI] = true
		c := map[string]any{"iss": d.URL, "sub": "web-app", "aud": r.PostForm.Get("audience"), "client_id": "api1",
			"scope": r.PostForm.Get("scope"), "jti": proof.JTI + "-at", "iat": time.Now().Unix(),
			"exp": time.Now().Add(5 * time.Minute).Unix(), "act": map[string]any{"sub": "api1"},
			"cnf": map[string]any{"jkt": proof.JKT}}
		tokenType := "DPoP"
		if ep.bearer {
			delete(c, "cnf")
			tokenType = "Bearer"
		}
		answer(http.StatusOK, map[string]any{"access_token": signAsDeputy(t, d, c), "token_type": tokenType,
			"issued_token_type": oauth.TokenTypeAccessToken, "expires_in": 300, "scope": r.PostForm.Get("scope")})
	}))
	t.Cleanup(ep.Close)
	return ep
}

func (ep *dpopEndpoint) counts() (requests int, refused []string) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.requests, append([]string(nil), ep.refused...)
}

// signAsDeputy signs claims as an RFC 9068 access token with deputy d's active key.
func signAsDeputy(t testing.TB, d *testdeputy.Deputy, claims map[string]any) string {
	t.Helper()
	k := d.Server.Keys.Active()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Algorithm, Key: jose.JSONWebKey{Key: k.Private, KeyID: k.ID}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
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

// serviceNonces is the downstream service's verify.NonceSource: one current nonce,
// which rotate replaces.
type serviceNonces struct{ current atomic.Value }

func (n *serviceNonces) Nonce() (string, error) { return n.current.Load().(string), nil }
func (n *serviceNonces) Check(s string) error {
	if s != n.current.Load().(string) {
		return errors.New("stale or missing nonce")
	}
	return nil
}

// dpopService is a downstream API guarded by sdk/verify (audience api2) that
// requires DPoP-bound tokens and a nonce; it records what each request carried.
type dpopService struct {
	*httptest.Server
	nonces *serviceNonces
	mu     sync.Mutex
	seen   []seenRequest
}

type seenRequest struct {
	status int
	auth   string
	cnf    *oauth.Confirmation
	body   string
}

func newDPoPService(t *testing.T, d *testdeputy.Deputy) *dpopService {
	t.Helper()
	s := &dpopService{nonces: &serviceNonces{}}
	s.nonces.current.Store("service-nonce-1")
	v, err := verify.New(context.Background(), verify.Config{Issuer: d.URL, Audience: api2, RequireBinding: true, DPoPNonces: s.nonces})
	if err != nil {
		t.Fatal(err)
	}
	var cnf *oauth.Confirmation
	var body string
	inner := v.Require("ledger:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := verify.FromContext(r.Context())
		b, _ := io.ReadAll(r.Body)
		cnf, body = p.Cnf, string(b)
		_, _ = io.WriteString(w, "ledger")
	}))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		cnf, body = nil, ""
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		s.seen = append(s.seen, seenRequest{status: rec.Code, auth: r.Header.Get("Authorization"), cnf: cnf, body: body})
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *dpopService) requests() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenRequest(nil), s.seen...)
}

// TestTransportDPoP: with Config.DPoPKey the exchange request carries a proof of the
// key, the exchanged token is bound to it, and every call to the next service sends
// it as Authorization: DPoP with a fresh proof that sdk/verify accepts — after one
// retry on a nonce challenge at the token endpoint and at the service, whose nonces
// are then remembered per origin.
func TestTransportDPoP(t *testing.T) {
	d := testdeputy.Start(t, nil)
	incoming := d.ClientCredentials("web-app", "payments:read ledger:read")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := dpop.Thumbprint(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	ep := newDPoPEndpoint(t, d, true)
	svc := newDPoPService(t, d)
	e, err := exchange.New(exchange.Config{TokenURL: ep.URL + "/token", ClientID: "api1", ClientSecret: "api1-secret", DPoPKey: key})
	if err != nil {
		t.Fatal(err)
	}
	client := e.Client(api2, "ledger:read")
	ctx := sdk.ContextWithToken(context.Background(), incoming)
	call := func(method, body string) *http.Response {
		t.Helper()
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, svc.URL+"/ledger?account=42", r)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s /ledger: %v", method, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	// 1: the token endpoint asks for its nonce once, then binds the token; the
	// service asks for its nonce once, then accepts.
	if resp := call(http.MethodGet, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("first call: %d", resp.StatusCode)
	}
	if n, refused := ep.counts(); n != 2 || len(refused) != 1 || !strings.Contains(refused[0], "nonce") {
		t.Errorf("token endpoint: %d requests, refused %v; want 2, one for the nonce", n, refused)
	}
	seen := svc.requests()
	if len(seen) != 2 || seen[0].status != http.StatusUnauthorized || seen[1].status != http.StatusOK {
		t.Fatalf("service saw %+v, want a nonce challenge then success", seen)
	}
	if seen[1].cnf == nil || seen[1].cnf.JKT != jkt {
		t.Errorf("the service's Principal.Cnf %+v, want jkt %s", seen[1].cnf, jkt)
	}
	token, ok := strings.CutPrefix(seen[1].auth, "DPoP ")
	if !ok {
		t.Fatalf("Authorization %q is not DPoP", seen[1].auth)
	}
	if cnf, _ := claims(t, token)["cnf"].(map[string]any); cnf["jkt"] != jkt {
		t.Errorf("the exchanged token's cnf %v, want jkt %s", cnf, jkt)
	}

	// 2: a POST with a body reuses the cached token and both nonces: one request to
	// the service, none to the token endpoint.
	if resp := call(http.MethodPost, `{"amount":1}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("second call: %d", resp.StatusCode)
	}
	if n, _ := ep.counts(); n != 2 {
		t.Errorf("token endpoint: %d requests, want the cached token", n)
	}
	if seen := svc.requests(); len(seen) != 3 || seen[2].status != http.StatusOK || seen[2].body != `{"amount":1}` {
		t.Errorf("service saw %+v, want one more request, accepted, with its body", seen)
	}

	// 3: the service rotates its nonce; the POST is sent once more, body and all.
	svc.nonces.current.Store("service-nonce-2")
	if resp := call(http.MethodPost, `{"amount":2}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("call after rotation: %d", resp.StatusCode)
	}
	if seen := svc.requests(); len(seen) != 5 || seen[3].status != http.StatusUnauthorized || seen[4].body != `{"amount":2}` {
		t.Errorf("service saw %+v, want a challenge then the body again", seen)
	}

	// 4: the token lifted from the service's log is useless to a thief: as Bearer, or
	// as DPoP with a proof of the thief's own key.
	thief, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, prep := range map[string]func(r *http.Request){
		"bearer": func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) },
		"dpop-thief-key": func(r *http.Request) {
			proof, err := dpop.NewProof(thief, jose.ES256, http.MethodGet, svc.URL+"/ledger", "service-nonce-2", token)
			if err != nil {
				t.Fatal(err)
			}
			r.Header.Set("Authorization", "DPoP "+token)
			r.Header.Set(dpop.Header, proof)
		},
	} {
		req, _ := http.NewRequest(http.MethodGet, svc.URL+"/ledger", nil)
		prep(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "DPoP error=") {
			t.Errorf("stolen token (%s): %d %q, want 401 with a DPoP challenge", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
}

// TestExchangeDPoPRefusals: what the exchange does not accept with a DPoP key.
func TestExchangeDPoPRefusals(t *testing.T) {
	d := testdeputy.Start(t, nil)
	incoming := d.ClientCredentials("web-app", "payments:read ledger:read")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	t.Run("fail/bearer-answer", func(t *testing.T) {
		ep := newDPoPEndpoint(t, d, false)
		ep.bearer = true
		e, err := exchange.New(exchange.Config{TokenURL: ep.URL + "/token", ClientID: "api1", ClientSecret: "s", DPoPKey: key})
		if err != nil {
			t.Fatal(err)
		}
		if tok, err := e.Exchange(context.Background(), incoming, api2); err == nil || !strings.Contains(err.Error(), "not bound") {
			t.Fatalf("Exchange = %+v, %v; want the unbound token refused", tok, err)
		}
	})
	t.Run("fail/nonce-asked-twice", func(t *testing.T) {
		// An endpoint that wants a nonce it never accepts gets one retry, not more.
		ep := newDPoPEndpoint(t, d, true)
		ep.nonce = "" // the challenge names no usable nonce
		e, err := exchange.New(exchange.Config{TokenURL: ep.URL + "/token", ClientID: "api1", ClientSecret: "s", DPoPKey: key})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.Exchange(context.Background(), incoming, api2)
		var oe *oauth.Error
		if !errors.As(err, &oe) || oe.Code != oauth.CodeUseDPoPNonce {
			t.Fatalf("Exchange error %v, want use_dpop_nonce", err)
		}
		if n, _ := ep.counts(); n != 1 {
			t.Errorf("%d requests, want 1 (no nonce was given, so no retry)", n)
		}
	})
}

// TestNewDPoPKey: the keys Config.DPoPKey takes, and those it refuses.
func TestNewDPoPKey(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	for _, tt := range []struct {
		name string
		key  crypto.Signer
		want string
	}{
		{"ok/es256", ec, ""},
		{"ok/eddsa", ed, ""},
		{"ok/rsa", rsa2048, ""},
		{"fail/p384", ec384, "P-256"},
		{"fail/rsa-1024", rsa1024, "2048"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := exchange.New(exchange.Config{TokenURL: "https://deputy.example/token", ClientID: "api1", ClientSecret: "s", DPoPKey: tt.key})
			if tt.want == "" && err != nil {
				t.Fatalf("New: %v", err)
			}
			if tt.want != "" && (err == nil || !strings.Contains(err.Error(), "DPoPKey") || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("New error %v, want DPoPKey … %s", err, tt.want)
			}
		})
	}
}
