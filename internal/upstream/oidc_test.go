package upstream

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/deputy-auth/deputy/internal/config"
)

const (
	fakeClientID = "deputy-rp"
	fakeSecret   = "rp-secret"
	fakeCallback = "https://deputy.example/callback/corp"
)

// fakeOP is an in-process OpenID Provider: discovery, a JWKS with one ES256
// key, and a token endpoint that redeems the codes the test hands out (once
// each, with client authentication and the PKCE verifier) for ID tokens signed
// as the test case says.
type fakeOP struct {
	t       *testing.T
	srv     *httptest.Server
	jwksKey *ecdsa.PrivateKey // published in the JWKS
	algs    []string          // id_token_signing_alg_values_supported
	issuer  string            // the discovery document's issuer; srv.URL unless a case changes it

	mu     sync.Mutex
	codes  map[string]fakeGrant
	tokens int // token requests served

	// What the token endpoint answers; set by a case before the flow.
	signKey     any // what ID tokens are signed with (jwksKey, another key, an HMAC secret)
	signAlg     jose.SignatureAlgorithm
	tokenError  string               // answer this OAuth error instead of tokens
	accessToken string               // the access token returned
	omitIDToken bool                 // answer without an id_token
	claims      func(map[string]any) // edits the ID token's claims
	down        bool                 // discovery answers 503
	discovered  int                  // discovery requests served
}

func (op *fakeOP) discoveries() int {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.discovered
}

type fakeGrant struct{ nonce, challenge, redirect string }

func newFakeOP(t *testing.T) *fakeOP {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	op := &fakeOP{t: t, jwksKey: key, algs: []string{"ES256"}, codes: map[string]fakeGrant{},
		signKey: key, signAlg: jose.ES256, accessToken: "upstream-access-token"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", op.discovery)
	mux.HandleFunc("GET /jwks", op.jwks)
	mux.HandleFunc("POST /token", op.token)
	op.srv = httptest.NewServer(mux)
	op.issuer = op.srv.URL
	t.Cleanup(op.srv.Close)
	return op
}

func (op *fakeOP) discovery(w http.ResponseWriter, _ *http.Request) {
	op.mu.Lock()
	op.discovered++
	down := op.down
	op.mu.Unlock()
	if down {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                op.issuer,
		"authorization_endpoint":                op.srv.URL + "/authorize",
		"token_endpoint":                        op.srv.URL + "/token",
		"jwks_uri":                              op.srv.URL + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": op.algs,
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic"},
	})
}

func (op *fakeOP) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &op.jwksKey.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"},
	}})
}

func (op *fakeOP) token(w http.ResponseWriter, r *http.Request) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.tokens++
	if id, secret, ok := r.BasicAuth(); !ok || id != fakeClientID || secret != fakeSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "authorization_code" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	if op.tokenError != "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": op.tokenError, "error_description": "the fake says no"})
		return
	}
	g, ok := op.codes[r.PostForm.Get("code")]
	delete(op.codes, r.PostForm.Get("code"))
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if !ok || g.redirect != r.PostForm.Get("redirect_uri") || base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
		return
	}
	now := time.Now()
	at := sha256.Sum256([]byte(op.accessToken))
	c := map[string]any{
		"iss": op.srv.URL, "sub": "carol", "aud": fakeClientID, "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
		"nonce": g.nonce, "at_hash": base64.RawURLEncoding.EncodeToString(at[:16]),
		"email": "carol@upstream.example", "email_verified": true, "name": "Carol Danvers",
		"amr": []string{"pwd", "mfa"}, "acr": "urn:example:loa:2",
		"groups": []string{"admins"}, "zoneinfo": 42,
	}
	if op.claims != nil {
		op.claims(c)
	}
	resp := map[string]any{"access_token": op.accessToken, "token_type": "Bearer", "expires_in": 300}
	if !op.omitIDToken {
		resp["id_token"] = op.sign(c)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (op *fakeOP) sign(claims map[string]any) string {
	op.t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: op.signAlg, Key: jose.JSONWebKey{Key: op.signKey, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		op.t.Fatal(err)
	}
	raw, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		op.t.Fatal(err)
	}
	return raw
}

// authorize plays the IdP's authorization endpoint for a Begin redirect: it
// checks the request and returns the callback's query with a fresh code.
func (op *fakeOP) authorize(redirect string) url.Values {
	op.t.Helper()
	u, err := url.Parse(redirect)
	if err != nil || !strings.HasPrefix(redirect, op.srv.URL+"/authorize?") {
		op.t.Fatalf("Begin redirects to %q", redirect)
	}
	q := u.Query()
	for k, want := range map[string]string{"response_type": "code", "client_id": fakeClientID, "redirect_uri": fakeCallback,
		"scope": "openid profile email", "code_challenge_method": "S256"} {
		if q.Get(k) != want {
			op.t.Errorf("authorization request %s = %q, want %q", k, q.Get(k), want)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 43 {
			op.t.Errorf("authorization request %s = %q: want at least 256 random bits", k, q.Get(k))
		}
	}
	code := "code-" + rand.Text()
	op.mu.Lock()
	op.codes[code] = fakeGrant{nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri")}
	op.mu.Unlock()
	return url.Values{"code": {code}, "state": {q.Get("state")}, "iss": {op.srv.URL}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (op *fakeOP) config() config.UpstreamIdP {
	return config.UpstreamIdP{Name: "corp", Type: config.UpstreamOIDC, Issuer: op.srv.URL, ClientID: fakeClientID,
		ClientSecret: fakeSecret, Scopes: []string{"openid", "profile", "email"}, SubjectClaim: "sub", SubjectPrefix: "up:"}
}

func TestOIDCSignIn(t *testing.T) {
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		cfg    func(*config.UpstreamIdP)
		op     func(*fakeOP)
		state  func(*oidcState) // tampers with the kept state
		params func(url.Values) // tampers with the browser's return
		want   func(*testing.T, Identity)
		err    string // in the error; "" for success
	}{
		{name: "ok/happy-path", want: func(t *testing.T, id Identity) {
			want := Identity{Subject: "up:carol", IdP: "corp", AMR: []string{"pwd", "mfa"}, ACR: "urn:example:loa:2",
				Claims: map[string]string{"email": "carol@upstream.example", "email_verified": "true", "name": "Carol Danvers"}}
			if id.Subject != want.Subject || id.IdP != want.IdP || !slices.Equal(id.AMR, want.AMR) || id.ACR != want.ACR || !maps.Equal(id.Claims, want.Claims) {
				t.Errorf("identity\n got %+v\nwant %+v", id, want)
			}
		}},
		{name: "ok/no-amr-is-ext", op: func(op *fakeOP) {
			op.claims = func(c map[string]any) { delete(c, "amr"); delete(c, "acr"); c["email_verified"] = false }
		}, want: func(t *testing.T, id Identity) {
			if !slices.Equal(id.AMR, []string{"ext"}) || id.ACR != "" || id.Claims["email_verified"] != "false" {
				t.Errorf("identity %+v", id)
			}
		}},
		{name: "ok/subject-claim", cfg: func(c *config.UpstreamIdP) { c.SubjectClaim = "employee_id"; c.SubjectPrefix = "" },
			op: func(op *fakeOP) { op.claims = func(c map[string]any) { c["employee_id"] = "E-1234" } },
			want: func(t *testing.T, id Identity) {
				if id.Subject != "E-1234" {
					t.Errorf("subject %q, want E-1234", id.Subject)
				}
			}},
		{name: "ok/no-at-hash", op: func(op *fakeOP) { op.claims = func(c map[string]any) { delete(c, "at_hash") } }},
		{name: "fail/state-mismatch", params: func(q url.Values) { q.Set("state", "forged") }, err: "state does not match"},
		{name: "fail/state-missing", params: func(q url.Values) { q.Del("state") }, err: "state does not match"},
		{name: "fail/no-flow-started", state: func(s *oidcState) { *s = oidcState{} }, err: "no sign-in was started here"},
		{name: "fail/other-callback", state: func(s *oidcState) { s.Redirect = "https://deputy.example/callback/other" }, err: "was started for"},
		{name: "fail/flow-expired", state: func(s *oidcState) { s.IssuedAt = time.Now().Add(-OIDCFlowTTL - time.Minute).Unix() }, err: "no longer open"},
		{name: "fail/nonce-mismatch", op: func(op *fakeOP) { op.claims = func(c map[string]any) { c["nonce"] = "replayed" } }, err: "nonce does not match"},
		{name: "fail/nonce-missing", op: func(op *fakeOP) { op.claims = func(c map[string]any) { delete(c, "nonce") } }, err: "nonce does not match"},
		{name: "fail/idp-error-param", params: func(q url.Values) {
			q.Del("code")
			q.Set("error", "access_denied")
			q.Set("error_description", "the user said no")
		}, err: `error="access_denied" error_description="the user said no"`},
		{name: "fail/iss-param-mix-up", params: func(q url.Values) { q.Set("iss", "https://evil.example") }, err: "authorization response's iss"},
		{name: "fail/code-missing", params: func(q url.Values) { q.Del("code") }, err: "want exactly one code"},
		{name: "fail/code-unknown", params: func(q url.Values) { q.Set("code", "forged") }, err: "invalid_grant"},
		{name: "fail/pkce-verifier", state: func(s *oidcState) { s.Verifier = strings.Repeat("a", 43) }, err: "invalid_grant"},
		{name: "fail/token-endpoint-error", op: func(op *fakeOP) { op.tokenError = "invalid_client" }, err: `token endpoint answered error="invalid_client"`},
		{name: "fail/token-endpoint-unreachable", op: func(op *fakeOP) {
			op.srv.CloseClientConnections()
			op.srv.Config.SetKeepAlivesEnabled(false)
			op.srv.Listener.Close()
		}, err: "token request"},
		{name: "fail/no-id-token", op: func(op *fakeOP) { op.omitIDToken = true }, err: "no id_token"},
		{name: "fail/id-token-signed-by-other-key", op: func(op *fakeOP) { op.signKey = otherKey }, err: "ID token"},
		{name: "fail/id-token-hs256", op: func(op *fakeOP) { op.signKey, op.signAlg = []byte(strings.Repeat(fakeSecret, 6)), jose.HS256 }, err: "ID token"},
		{name: "fail/wrong-issuer", op: func(op *fakeOP) { op.claims = func(c map[string]any) { c["iss"] = "https://evil.example" } }, err: "different provider"},
		{name: "fail/wrong-audience", op: func(op *fakeOP) { op.claims = func(c map[string]any) { c["aud"] = "another-client" } }, err: "audience"},
		{name: "fail/extra-audience-without-azp", op: func(op *fakeOP) {
			op.claims = func(c map[string]any) { c["aud"] = []string{fakeClientID, "another-client"} }
		}, err: "azp"},
		{name: "fail/azp-mismatch", op: func(op *fakeOP) { op.claims = func(c map[string]any) { c["azp"] = "another-client" } }, err: "azp"},
		{name: "fail/expired-id-token", op: func(op *fakeOP) {
			op.claims = func(c map[string]any) {
				c["exp"], c["iat"] = time.Now().Add(-time.Minute).Unix(), time.Now().Add(-10*time.Minute).Unix()
			}
		}, err: "expired"},
		{name: "fail/missing-subject-claim", op: func(op *fakeOP) { op.claims = func(c map[string]any) { delete(c, "sub") } }, err: `no "sub" claim`},
		{name: "fail/empty-subject", op: func(op *fakeOP) { op.claims = func(c map[string]any) { c["sub"] = "" } }, err: "empty"},
		{name: "fail/subject-not-string", cfg: func(c *config.UpstreamIdP) { c.SubjectClaim = "employee_id" },
			op: func(op *fakeOP) { op.claims = func(c map[string]any) { c["employee_id"] = 42 } }, err: "not a string"},
		{name: "fail/subject-control-chars", op: func(op *fakeOP) { op.claims = func(c map[string]any) { c["sub"] = "carol\nadmin" } }, err: "control characters"},
		{name: "fail/subject-bidi-override", op: func(op *fakeOP) { op.claims = func(c map[string]any) { c["sub"] = "carol\u202enimda" } }, err: "control characters"},
		{name: "fail/subject-c1-control", op: func(op *fakeOP) { op.claims = func(c map[string]any) { c["sub"] = "carol\u009b31m" } }, err: "control characters"},
		{name: "fail/amr-not-list", op: func(op *fakeOP) { op.claims = func(c map[string]any) { c["amr"] = map[string]string{"a": "b"} } }, err: "amr"},
		{name: "fail/at-hash-mismatch", op: func(op *fakeOP) {
			op.claims = func(c map[string]any) {
				h := sha256.Sum256([]byte("another access token"))
				c["at_hash"] = base64.RawURLEncoding.EncodeToString(h[:16])
			}
		}, err: "at_hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := newFakeOP(t)
			cfg := op.config()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			p, err := newOIDC(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			redirect, state, err := p.Begin(context.Background(), fakeCallback)
			if err != nil {
				t.Fatal(err)
			}
			params := op.authorize(redirect)
			if tt.state != nil {
				var st oidcState
				if err := json.Unmarshal(state, &st); err != nil {
					t.Fatal(err)
				}
				tt.state(&st)
				state, _ = json.Marshal(st)
			}
			if tt.params != nil {
				tt.params(params)
			}
			if tt.op != nil {
				tt.op(op)
			}
			id, err := p.Complete(context.Background(), fakeCallback, params, state)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("Complete: %v", err)
				}
				if tt.want != nil {
					tt.want(t, id)
				}
				return
			}
			if err == nil {
				t.Fatalf("Complete succeeded with %+v; want an error with %q", id, tt.err)
			}
			t.Logf("refused: %v", err)
			if !errors.Is(err, errOIDC) || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error %q: want errOIDC with %q", err, tt.err)
			}
			if id.Subject != "" {
				t.Errorf("an identity came with the error: %+v", id)
			}
		})
	}
}

// TestOIDCCodeBeforeChecks: a forged or mismatched response never reaches the
// token endpoint, so an attacker's code is not redeemed in the victim's flow.
func TestOIDCCodeBeforeChecks(t *testing.T) {
	op := newFakeOP(t)
	p, err := newOIDC(context.Background(), op.config())
	if err != nil {
		t.Fatal(err)
	}
	redirect, state, err := p.Begin(context.Background(), fakeCallback)
	if err != nil {
		t.Fatal(err)
	}
	params := op.authorize(redirect)
	params.Set("state", "forged")
	if _, err := p.Complete(context.Background(), fakeCallback, params, state); err == nil {
		t.Fatal("forged state accepted")
	}
	op.mu.Lock()
	served := op.tokens
	op.mu.Unlock()
	if served != 0 {
		t.Errorf("the token endpoint was called %d times for a forged response", served)
	}
	// The code is redeemed once; the same response again is refused by the IdP.
	params = op.authorize(redirect)
	if _, err := p.Complete(context.Background(), fakeCallback, params, state); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Complete(context.Background(), fakeCallback, params, state); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("replayed response: %v", err)
	}
}

func TestOIDCBegin(t *testing.T) {
	op := newFakeOP(t)
	p, err := newOIDC(context.Background(), op.config())
	if err != nil {
		t.Fatal(err)
	}
	r1, s1, err := p.Begin(context.Background(), fakeCallback)
	if err != nil {
		t.Fatal(err)
	}
	r2, s2, _ := p.Begin(context.Background(), fakeCallback)
	if r1 == r2 || string(s1) == string(s2) {
		t.Error("two flows share a redirect or state")
	}
	if strings.Contains(r1, "code_verifier") {
		t.Errorf("the PKCE verifier leaks into the redirect: %s", r1)
	}
	var st oidcState
	if err := json.Unmarshal(s1, &st); err != nil || st.Verifier == "" || strings.Contains(r1, st.Verifier) {
		t.Errorf("state %s: %v", s1, err)
	}
	if p.Name() != "corp" {
		t.Errorf("Name() = %q", p.Name())
	}
}

// TestNewOIDC: a configuration no IdP could make work stops the start; an IdP
// that cannot be discovered does not — the provider is unavailable, saying why
// and naming the entry, and starting a sign-in with it is an error.
func TestNewOIDC(t *testing.T) {
	tests := []struct {
		name        string
		edit        func(*fakeOP, *config.UpstreamIdP)
		err         []string // of New
		unavailable []string // of Unavailable and Begin, New having succeeded
	}{
		{name: "ok/discovered", edit: func(op *fakeOP, c *config.UpstreamIdP) {}},
		{name: "ok/linked", edit: func(op *fakeOP, c *config.UpstreamIdP) { c.LinkLocalAccounts = true }},
		{name: "fail/unreachable", edit: func(op *fakeOP, c *config.UpstreamIdP) { c.Issuer = "http://127.0.0.1:1" },
			unavailable: []string{"upstream_idps[corp]", "http://127.0.0.1:1"}},
		{name: "fail/issuer-mismatch", edit: func(op *fakeOP, c *config.UpstreamIdP) { op.issuer = "https://elsewhere.example" },
			unavailable: []string{"upstream_idps[corp]", "https://elsewhere.example"}},
		{name: "fail/no-asymmetric-alg", edit: func(op *fakeOP, c *config.UpstreamIdP) { op.algs = []string{"HS256", "none"} },
			unavailable: []string{"upstream_idps[corp]", "signs ID tokens with none of"}},
		{name: "fail/no-openid-scope", edit: func(op *fakeOP, c *config.UpstreamIdP) { c.Scopes = []string{"profile"} },
			err: []string{"upstream_idps[corp].scopes", "openid"}},
		{name: "fail/no-client-id", edit: func(op *fakeOP, c *config.UpstreamIdP) { c.ClientID = "" },
			err: []string{"upstream_idps[corp]", "client_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := newFakeOP(t)
			cfg := op.config()
			tt.edit(op, &cfg)
			p, err := New(t.Context(), cfg, "https://deputy.example", nil, nil)
			if len(tt.err) > 0 {
				if err == nil {
					t.Fatalf("built %T; want an error", p)
				}
				for _, s := range tt.err {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v (an IdP's state must not stop the start)", err)
			}
			redirect, state, err := p.Begin(t.Context(), fakeCallback)
			if tt.unavailable == nil {
				if err != nil || p.Unavailable() != nil {
					t.Fatalf("Begin: %v, Unavailable: %v", err, p.Unavailable())
				}
				// The identity says whether the entry links local accounts.
				id, err := p.Complete(t.Context(), fakeCallback, op.authorize(redirect), state)
				if err != nil || id.LinkLocal != cfg.LinkLocalAccounts {
					t.Fatalf("Complete: %+v %v; want LinkLocal %v", id, err, cfg.LinkLocalAccounts)
				}
				return
			}
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Begin: %v, want ErrUnavailable", err)
			}
			why := p.Unavailable()
			if !errors.Is(why, ErrUnavailable) {
				t.Fatalf("Unavailable() = %v", why)
			}
			for _, s := range tt.unavailable {
				if !strings.Contains(why.Error(), s) {
					t.Errorf("Unavailable() %q does not say %q", why, s)
				}
			}
		})
	}
}

// TestOIDCLazyDiscovery: an IdP that is down when deputy starts is tried again
// — at most once per OIDCRetryMin, whatever the number of sign-ins — and once it
// answers, sign-in through it works without a restart.
func TestOIDCLazyDiscovery(t *testing.T) {
	op := newFakeOP(t)
	op.mu.Lock()
	op.down = true
	op.mu.Unlock()
	l, err := newLazyOIDC(t.Context(), op.config(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	l.now = func() time.Time { return now }
	if l.Unavailable() != nil {
		t.Errorf("unavailable before any attempt: %v", l.Unavailable())
	}
	for i := range 3 {
		if _, _, err := l.Begin(t.Context(), fakeCallback); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Begin %d while the IdP is down: %v", i, err)
		}
	}
	if op.discoveries() != 1 {
		t.Errorf("three sign-ins within %v made %d discovery requests, want 1", OIDCRetryMin, op.discoveries())
	}
	if l.Unavailable() == nil {
		t.Error("available after a failed discovery")
	}

	op.mu.Lock()
	op.down = false
	op.mu.Unlock()
	if _, _, err := l.Begin(t.Context(), fakeCallback); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Begin within %v of the last attempt: %v", OIDCRetryMin, err)
	}
	now = now.Add(OIDCRetryMin)
	redirect, state, err := l.Begin(t.Context(), fakeCallback)
	if err != nil || l.Unavailable() != nil {
		t.Fatalf("Begin once the IdP answers: %v (Unavailable %v)", err, l.Unavailable())
	}
	id, err := l.Complete(t.Context(), fakeCallback, op.authorize(redirect), state)
	if err != nil || id.Subject != "up:carol" {
		t.Fatalf("Complete: %+v %v", id, err)
	}
	if n := op.discoveries(); n != 2 {
		t.Errorf("%d discovery requests in all, want 2 (discovered once, kept)", n)
	}
}

// TestOIDCRetryInBackground: the background retry discovers an IdP that comes
// up after the start, with nobody signing in.
func TestOIDCRetryInBackground(t *testing.T) {
	op := newFakeOP(t)
	op.mu.Lock()
	op.down = true
	op.mu.Unlock()
	p, err := New(t.Context(), op.config(), "https://deputy.example", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := p.(linked).Provider.(*lazyOIDC)
	// Wait for the first attempt to fail, then let the IdP answer.
	for l.Unavailable() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	op.mu.Lock()
	op.down = false
	op.mu.Unlock()
	for l.Unavailable() != nil || !l.discovered() {
		time.Sleep(10 * time.Millisecond)
	}
}

// FuzzOIDCIdentity: whatever a (verified) ID token says, the mapping never
// panics, and what it accepts has a non-empty subject under the prefix.
func FuzzOIDCIdentity(f *testing.F) {
	f.Add([]byte(`{"sub":"carol","amr":["pwd"],"acr":"x","email":"c@x","email_verified":true,"aud":"a","azp":"deputy-rp"}`))
	f.Add([]byte(`{"sub":42,"amr":"pwd"}`))
	f.Add([]byte(`{"sub":"a\u0000b","azp":null}`))
	p := &oidcProvider{name: "corp", clientID: fakeClientID, subjectClaim: "sub", prefix: "up:"}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c map[string]json.RawMessage
		if json.Unmarshal(b, &c) != nil {
			return
		}
		id, err := p.identity(c, []string{fakeClientID})
		if err != nil {
			return
		}
		if len(id.Subject) <= len("up:") || !strings.HasPrefix(id.Subject, "up:") || len(id.AMR) == 0 || id.IdP != "corp" {
			t.Fatalf("accepted %s as %+v", b, id)
		}
	})
}

// FuzzOIDCState: the kept state comes back from the browser's cookie.
func FuzzOIDCState(f *testing.F) {
	f.Add([]byte(`{"state":"s","nonce":"n","verifier":"v","redirect_uri":"https://x/cb","iat":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := oidcParseState(b)
		if err == nil && (st.State == "" || st.Nonce == "" || st.Verifier == "") {
			t.Fatalf("accepted %s as %+v", b, st)
		}
	})
}
