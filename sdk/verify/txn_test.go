package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"go.opentelemetry.io/otel/trace"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/testdeputy"
	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk"
)

const trustDomain = "trust.deputy.example"

// txnClaimsFor are the claims deputy puts in a transaction token for web-app's
// user alice, valid from now (draft-ietf-oauth-transaction-tokens).
func txnClaimsFor(d *testdeputy.Deputy, now time.Time) map[string]any {
	return map[string]any{
		"iss": d.URL, "sub": "alice", "aud": trustDomain, "txn": "txn-" + randomID(), "scope": "payments:write",
		"jti": randomID(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
		"tctx": map[string]any{"payment": "p-42", "amount": 12.5},
		"rctx": map[string]any{"req_ip": "192.0.2.7", "authn": "pwd", "req_wl": "payments"},
	}
}

// newTxnVerifier returns a TxnVerifier for trustDomain at d, sharing a Verifier
// for api1 with its hand-moved clock.
func newTxnVerifier(t testing.TB, d *testdeputy.Deputy, edit func(*TxnConfig)) (*TxnVerifier, *Verifier, *clock) {
	t.Helper()
	v, _, clk := newVerifier(t, d, api1, nil)
	cfg := TxnConfig{TrustDomain: trustDomain}
	if edit != nil {
		edit(&cfg)
	}
	tv, err := v.Txn(cfg)
	if err != nil {
		t.Fatalf("Txn: %v", err)
	}
	return tv, v, clk
}

// TestTxnVerifyAccepts: a transaction token signed by deputy for the trust
// domain verifies, and its TxnPrincipal carries every claim.
func TestTxnVerifyAccepts(t *testing.T) {
	d := testdeputy.Start(t, nil)
	now := time.Now()
	for _, tt := range []struct {
		name    string
		typ     string
		claims  map[string]any
		advance time.Duration
		wantCtx map[string]any
		wantR   RequestContext
	}{
		{name: "ok/full", typ: "txntoken+jwt", claims: txnClaimsFor(d, now),
			wantCtx: map[string]any{"payment": "p-42", "amount": 12.5},
			wantR:   RequestContext{ReqIP: "192.0.2.7", Authn: "pwd", RequestingWorkload: "payments"}},
		{name: "ok/typ-media-type", typ: "application/txntoken+jwt", claims: txnClaimsFor(d, now),
			wantCtx: map[string]any{"payment": "p-42", "amount": 12.5},
			wantR:   RequestContext{ReqIP: "192.0.2.7", Authn: "pwd", RequestingWorkload: "payments"}},
		{name: "ok/no-tctx-no-authn", typ: "TXNTOKEN+JWT",
			claims: with(without(txnClaimsFor(d, now), "tctx"), "rctx", map[string]any{"req_ip": "::1", "req_wl": "payments"}),
			wantR:  RequestContext{ReqIP: "::1", RequestingWorkload: "payments"}},
		{name: "ok/expired-within-leeway", typ: "txntoken+jwt", claims: txnClaimsFor(d, now),
			advance: time.Minute + 4*time.Second,
			wantCtx: map[string]any{"payment": "p-42", "amount": 12.5},
			wantR:   RequestContext{ReqIP: "192.0.2.7", Authn: "pwd", RequestingWorkload: "payments"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tv, _, clk := newTxnVerifier(t, d, nil)
			clk.Add(tt.advance)
			raw := signAsDeputy(t, d, tt.typ, tt.claims, nil)
			p, err := tv.Verify(context.Background(), raw)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if p.Txn != tt.claims["txn"] || p.Subject != "alice" || p.Issuer != d.URL || p.JTI != tt.claims["jti"] || p.Raw != raw {
				t.Errorf("principal %+v does not carry the token's txn, sub, iss, jti and raw", p)
			}
			if !slices.Equal(p.Scopes, []string{"payments:write"}) || !p.HasScope("payments:write") || p.HasScope("payments") {
				t.Errorf("scopes %v, want [payments:write]", p.Scopes)
			}
			if !mapsEqual(p.Context, tt.wantCtx) || p.RequestContext != tt.wantR {
				t.Errorf("tctx %v rctx %+v, want %v %+v", p.Context, p.RequestContext, tt.wantCtx, tt.wantR)
			}
			if p.Expiry.Unix() != now.Add(time.Minute).Unix() || p.IssuedAt.Unix() != now.Unix() {
				t.Errorf("exp %s iat %s", p.Expiry, p.IssuedAt)
			}
		})
	}
}

func mapsEqual(a, b map[string]any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// TestTxnVerifyRejects: each way a transaction token can be wrong is refused with
// ErrInvalidToken and a description saying which check failed, never echoing
// the token.
func TestTxnVerifyRejects(t *testing.T) {
	d := testdeputy.Start(t, nil)
	now := time.Now()
	good := func() map[string]any { return txnClaimsFor(d, now) }
	txn := func(t *testing.T, c map[string]any) string { return signAsDeputy(t, d, "txntoken+jwt", c, nil) }
	deputyKey := d.Server.Keys.Active()
	kid := deputyKey.ID
	payload, err := json.Marshal(good())
	if err != nil {
		t.Fatal(err)
	}
	ownKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signOwn := func(t *testing.T, keyID string) string {
		sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: ownKey, KeyID: keyID}},
			(&jose.SignerOptions{}).WithType("txntoken+jwt"))
		if err != nil {
			t.Fatal(err)
		}
		return sign(t, sig, good())
	}
	header := func(name string, value any) *jose.SignerOptions {
		return (&jose.SignerOptions{}).WithHeader(jose.HeaderKey(name), value)
	}

	for _, tt := range []struct {
		name    string
		token   func(t *testing.T) string
		advance time.Duration
		want    string
	}{
		{name: "fail/empty", want: "empty", token: func(*testing.T) string { return "" }},
		{name: "fail/malformed-not-compact", want: "not a compact JWS", token: func(*testing.T) string { return "a.b.c.d" }},
		{name: "fail/malformed-segments", want: "header is malformed", token: func(*testing.T) string { return "!!.e30.e30" }},
		{name: "fail/malformed-payload", want: "claims are malformed",
			token: func(t *testing.T) string {
				sig, err := jose.NewSigner(jose.SigningKey{Algorithm: deputyKey.Algorithm, Key: jose.JSONWebKey{Key: deputyKey.Private, KeyID: kid}},
					(&jose.SignerOptions{}).WithType("txntoken+jwt"))
				if err != nil {
					t.Fatal(err)
				}
				jws, err := sig.Sign([]byte(`[1,2]`))
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := jws.CompactSerialize()
				return raw
			}},
		{name: "fail/typ-at+jwt", want: "typ must be txntoken+jwt",
			token: func(t *testing.T) string { return signAsDeputy(t, d, "at+jwt", good(), nil) }},
		{name: "fail/typ-access-token-deputy-issued", want: "typ must be txntoken+jwt",
			token: func(*testing.T) string { return d.ClientCredentials("web-app", "payments:read") }},
		{name: "fail/typ-jwt", want: "typ must be txntoken+jwt",
			token: func(t *testing.T) string { return signAsDeputy(t, d, "JWT", good(), nil) }},
		{name: "fail/typ-missing", want: "typ must be txntoken+jwt",
			token: func(t *testing.T) string { return signAsDeputy(t, d, "", good(), nil) }},
		{name: "fail/expired", advance: time.Minute + 6*time.Second, want: "expired",
			token: func(t *testing.T) string { return txn(t, good()) }},
		{name: "fail/other-trust-domain", want: "another trust domain",
			token: func(t *testing.T) string { return txn(t, with(good(), "aud", "other.example")) }},
		{name: "fail/aud-array", want: "aud is not a single string",
			token: func(t *testing.T) string { return txn(t, with(good(), "aud", []string{trustDomain})) }},
		{name: "fail/aud-array-with-another", want: "aud is not a single string",
			token: func(t *testing.T) string { return txn(t, with(good(), "aud", []string{trustDomain, api1})) }},
		{name: "fail/aud-missing", want: "another trust domain",
			token: func(t *testing.T) string { return txn(t, without(good(), "aud")) }},
		{name: "fail/service-audience", want: "another trust domain",
			token: func(t *testing.T) string { return txn(t, with(good(), "aud", api1)) }},
		{name: "fail/other-issuer", want: "another issuer",
			token: func(t *testing.T) string { return txn(t, with(good(), "iss", "https://evil.example")) }},
		{name: "fail/unknown-kid", want: "key deputy does not publish",
			token: func(t *testing.T) string { return signOwn(t, "not-deputys-key") }},
		{name: "fail/another-key-deputy-kid", want: "signature is invalid",
			token: func(t *testing.T) string { return signOwn(t, kid) }},
		{name: "fail/alg-none", want: "algorithm is not allowed",
			token: func(t *testing.T) string {
				return compact(t, map[string]any{"alg": "none", "kid": kid, "typ": "txntoken+jwt"}, payload, nil)
			}},
		{name: "fail/hs256-with-public-key", want: "algorithm is not allowed",
			token: func(t *testing.T) string {
				der, err := x509.MarshalPKIXPublicKey(deputyKey.Private.Public())
				if err != nil {
					t.Fatal(err)
				}
				sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: der},
					(&jose.SignerOptions{}).WithType("txntoken+jwt").WithHeader("kid", kid))
				if err != nil {
					t.Fatal(err)
				}
				return sign(t, sig, good())
			}},
		{name: "fail/missing-txn", want: "no transaction id",
			token: func(t *testing.T) string { return txn(t, without(good(), "txn")) }},
		{name: "fail/empty-txn", want: "no transaction id",
			token: func(t *testing.T) string { return txn(t, with(good(), "txn", "")) }},
		{name: "fail/missing-sub", want: "no subject",
			token: func(t *testing.T) string { return txn(t, without(good(), "sub")) }},
		{name: "fail/missing-exp", want: "no expiry",
			token: func(t *testing.T) string { return txn(t, without(good(), "exp")) }},
		{name: "fail/missing-iat", want: "no issue time",
			token: func(t *testing.T) string { return txn(t, without(good(), "iat")) }},
		{name: "fail/iat-in-future", want: "issued in the future",
			token: func(t *testing.T) string { return txn(t, with(good(), "iat", now.Add(30*time.Second).Unix())) }},
		{name: "fail/tctx-not-object", want: "claims are malformed",
			token: func(t *testing.T) string { return txn(t, with(good(), "tctx", "payment p-42")) }},
		{name: "fail/tctx-null", want: "claims are malformed",
			token: func(t *testing.T) string { return txn(t, with(good(), "tctx", nil)) }},
		{name: "fail/rctx-not-object", want: "claims are malformed",
			token: func(t *testing.T) string { return txn(t, with(good(), "rctx", []string{"192.0.2.7"})) }},
		{name: "fail/rctx-field-type", want: "claims are malformed",
			token: func(t *testing.T) string { return txn(t, with(good(), "rctx", map[string]any{"req_ip": 7})) }},
		{name: "fail/jku-header", want: "carries jku",
			token: func(t *testing.T) string {
				return signAsDeputy(t, d, "txntoken+jwt", good(), header("jku", d.URL+"/jwks"))
			}},
		{name: "fail/x5u-header", want: "carries x5u",
			token: func(t *testing.T) string {
				return signAsDeputy(t, d, "txntoken+jwt", good(), header("x5u", "https://evil.example/cert"))
			}},
		{name: "fail/jwk-header", want: "carries jwk",
			token: func(t *testing.T) string {
				opts := &jose.SignerOptions{EmbedJWK: true}
				return signAsDeputy(t, d, "txntoken+jwt", good(), opts.WithHeader("kid", kid))
			}},
		{name: "fail/crit-header", want: "carries crit",
			token: func(t *testing.T) string {
				return signAsDeputy(t, d, "txntoken+jwt", good(), header("crit", []string{"txn"}))
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tv, _, clk := newTxnVerifier(t, d, nil)
			clk.Add(tt.advance)
			raw := tt.token(t)
			p, err := tv.Verify(context.Background(), raw)
			if p != nil || err == nil {
				t.Fatalf("Verify = %+v, %v; want ErrInvalidToken", p, err)
			}
			var e *oauth.Error
			if !errors.Is(err, ErrInvalidToken) || !errors.As(err, &e) || e.Code != CodeInvalidToken {
				t.Errorf("error %#v is not an invalid_token protocol error wrapping ErrInvalidToken", err)
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

// TestAccessVerifierRefusesTxnToken: a transaction token is not an access
// token, even one addressed to the service's audience.
func TestAccessVerifierRefusesTxnToken(t *testing.T) {
	d := testdeputy.Start(t, nil)
	v, _, _ := newVerifier(t, d, api1, nil)
	c := with(claimsFor(d, time.Now()), "txn", "txn-1")
	for _, typ := range []string{"txntoken+jwt", "application/txntoken+jwt"} {
		_, err := v.Verify(context.Background(), signAsDeputy(t, d, typ, c, nil))
		if !errors.Is(err, ErrInvalidToken) || !strings.Contains(description(err), "typ must be at+jwt") {
			t.Errorf("typ %s: Verify error %v, want a refusal for its typ", typ, err)
		}
	}
}

// TestTxnConfig: the configuration is checked, each failure naming its field.
func TestTxnConfig(t *testing.T) {
	d := testdeputy.Start(t, nil)
	v, _, _ := newVerifier(t, d, api1, nil)
	for _, tt := range []struct {
		name string
		cfg  TxnConfig
		want string
	}{
		{"fail/no-trust-domain", TxnConfig{}, "TrustDomain is required"},
		{"fail/negative-leeway", TxnConfig{TrustDomain: trustDomain, Leeway: -time.Second}, "Leeway must not be negative"},
		{"fail/large-leeway", TxnConfig{TrustDomain: trustDomain, Leeway: time.Hour}, "Leeway must be at most"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := v.Txn(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Txn(%+v) = %v, want %q", tt.cfg, err, tt.want)
			}
		})
	}
}

// TestTxnMiddleware: the middleware verifies the Txn-Token header, hands the
// handler the TxnPrincipal and the raw token, and answers failures with 401 or
// 503, a Txn-Token challenge and a JSON error.
func TestTxnMiddleware(t *testing.T) {
	d := testdeputy.Start(t, nil)
	good := signAsDeputy(t, d, "txntoken+jwt", txnClaimsFor(d, time.Now()), nil)
	access := d.ClientCredentials("web-app", "payments:read")
	for _, tt := range []struct {
		name       string
		headers    []string
		optional   bool
		down       bool // deputy's keys cannot be fetched
		status     int
		challenge  string // prefix of WWW-Authenticate
		code       string
		wantPassed bool // the handler ran with a principal
	}{
		{name: "ok/verified", headers: []string{good}, status: 200, wantPassed: true},
		{name: "ok/optional-absent", optional: true, status: 200},
		{name: "ok/optional-present", optional: true, headers: []string{good}, status: 200, wantPassed: true},
		{name: "fail/absent", status: 401, challenge: `Txn-Token realm="` + trustDomain + `"`, code: "invalid_request"},
		{name: "fail/two-headers", headers: []string{good, good}, status: 401, challenge: `Txn-Token realm=`, code: "invalid_request"},
		{name: "fail/access-token", headers: []string{access}, status: 401,
			challenge: `Txn-Token error="invalid_token", error_description="token is not a transaction token`, code: "invalid_token"},
		{name: "fail/optional-invalid", optional: true, headers: []string{"a.b.c"}, status: 401,
			challenge: `Txn-Token error="invalid_token"`, code: "invalid_token"},
		{name: "fail/deputy-down", headers: []string{good}, down: true, status: 503, code: "temporarily_unavailable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, tr, _ := newVerifier(t, d, api1, nil)
			tr.down.Store(tt.down)
			tv, err := v.Txn(TxnConfig{TrustDomain: trustDomain, Optional: tt.optional})
			if err != nil {
				t.Fatal(err)
			}
			passed := false
			h := tv.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				p, ok := TxnFromContext(r.Context())
				raw, rawOK := sdk.TxnTokenFromContext(r.Context())
				passed = ok
				if ok != rawOK || ok && (raw != good || p.Raw != good || p.Subject != "alice") {
					t.Errorf("context: principal %+v (%v), raw token set %v", p, ok, rawOK)
				}
				if _, ok := sdk.TokenFromContext(r.Context()); ok {
					t.Error("the Txn-Token middleware put an access token in the context")
				}
			}))
			req := httptest.NewRequest(http.MethodGet, "/ledger", nil)
			for _, v := range tt.headers {
				req.Header.Add(oauth.TxnTokenHeader, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.status || passed != tt.wantPassed {
				t.Fatalf("status %d, handler ran with a principal: %v; want %d, %v", rec.Code, passed, tt.status, tt.wantPassed)
			}
			if tt.status == 200 {
				return
			}
			if got := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, tt.challenge) {
				t.Errorf("WWW-Authenticate %q, want it to begin %q", got, tt.challenge)
			}
			body, _ := io.ReadAll(rec.Body)
			var e struct{ Error, ErrorDescription string }
			if err := json.Unmarshal(body, &e); err != nil || e.Error != tt.code {
				t.Errorf("body %s, want error %s", body, tt.code)
			}
			if strings.Contains(string(body), good) || strings.Contains(string(body), access) {
				t.Error("the answer echoes the token")
			}
		})
	}
}

// TestTxnSharesKeyCache: an access token and a transaction token verified by
// one Verifier and its TxnVerifier cost one JWKS fetch in all.
func TestTxnSharesKeyCache(t *testing.T) {
	d := testdeputy.Start(t, nil)
	v, tr, _ := newVerifier(t, d, api1, nil)
	tv, err := v.Txn(TxnConfig{TrustDomain: trustDomain})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), d.ClientCredentials("web-app", "payments:read")); err != nil {
		t.Fatal(err)
	}
	if _, err := tv.Verify(context.Background(), signAsDeputy(t, d, "txntoken+jwt", txnClaimsFor(d, time.Now()), nil)); err != nil {
		t.Fatal(err)
	}
	if n := tr.count("/jwks"); n != 1 {
		t.Errorf("%d JWKS fetches, want 1", n)
	}
}

// BenchmarkTxnVerify: one transaction token verified with the key set cached,
// the cost every service of a call graph pays per request.
func BenchmarkTxnVerify(b *testing.B) {
	d := testdeputy.Start(b, nil)
	tv, _, _ := newTxnVerifier(b, d, nil)
	raw := signAsDeputy(b, d, "txntoken+jwt", txnClaimsFor(d, time.Now()), nil)
	ctx := context.Background()
	if _, err := tv.Verify(ctx, raw); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tv.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTxnMiddlewareTrace: a request the Txn-Token middleware passes on continues
// the caller's W3C trace, as with the access-token middleware.
func TestTxnMiddlewareTrace(t *testing.T) {
	d := testdeputy.Start(t, nil)
	tv, _, _ := newTxnVerifier(t, d, nil)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	var got string
	h := tv.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = trace.SpanContextFromContext(r.Context()).TraceID().String()
	}))
	req := httptest.NewRequest(http.MethodGet, "/ledger", nil)
	req.Header.Set(oauth.TxnTokenHeader, signAsDeputy(t, d, "txntoken+jwt", txnClaimsFor(d, time.Now()), nil))
	req.Header.Set("Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || got != traceID {
		t.Errorf("status %d, trace %q; want 200, %s", rec.Code, got, traceID)
	}
}

// TestTxnVerifyDeputyIssued: the transaction tokens deputy issues — by token
// exchange from an access token, and as a narrower replacement — verify, and
// carry one txn; deputy's access tokens and transaction tokens are each refused
// by the other's verifier.
func TestTxnVerifyDeputyIssued(t *testing.T) {
	d := testdeputy.Start(t, func(c *config.Config) {
		c.TxnTokens.TrustDomain = trustDomain
		c.Exchange.Policies = append(c.Exchange.Policies,
			config.Policy{Name: "payments-txn", Client: "api1", RequestedTokenTypes: []string{config.TxnTokenType}},
			config.Policy{Name: "ledger-replaces-txn", Client: "api2",
				SubjectTokenTypes: []string{config.TxnTokenType}, RequestedTokenTypes: []string{config.TxnTokenType}})
	})
	user := d.ClientCredentials("web-app", "payments:read payments:write")
	issued := d.Token("api1", "api1-secret", url.Values{
		"grant_type": {oauth.GrantTokenExchange}, "subject_token": {user}, "subject_token_type": {string(oauth.TokenTypeAccessToken)},
		"requested_token_type": {string(oauth.TokenTypeTxnToken)}, "request_context": {`{"payment":"p-42"}`},
	}).AccessToken
	replaced := d.Token("api2", "api2-secret", url.Values{
		"grant_type": {oauth.GrantTokenExchange}, "subject_token": {issued}, "subject_token_type": {string(oauth.TokenTypeTxnToken)},
		"requested_token_type": {string(oauth.TokenTypeTxnToken)}, "scope": {"payments:read"},
	}).AccessToken

	tv, v, _ := newTxnVerifier(t, d, nil)
	p1, err := tv.Verify(context.Background(), issued)
	if err != nil {
		t.Fatalf("Verify(issued): %v", err)
	}
	p2, err := tv.Verify(context.Background(), replaced)
	if err != nil {
		t.Fatalf("Verify(replacement): %v", err)
	}
	if p1.Txn == "" || p2.Txn != p1.Txn || p1.JTI == p2.JTI || p1.Subject != "web-app" || p2.Subject != "web-app" {
		t.Errorf("issued %+v, replacement %+v: want one txn and subject, two jtis", p1, p2)
	}
	if p1.Context["payment"] != "p-42" || p2.Context["payment"] != "p-42" ||
		p1.RequestContext.RequestingWorkload != "api1" || p2.RequestContext.RequestingWorkload != "api2" {
		t.Errorf("contexts: %v %+v, %v %+v", p1.Context, p1.RequestContext, p2.Context, p2.RequestContext)
	}
	if !slices.Equal(p2.Scopes, []string{"payments:read"}) {
		t.Errorf("replacement scopes %v, want [payments:read]", p2.Scopes)
	}
	if _, err := v.Verify(context.Background(), issued); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("the access-token verifier took a transaction token: %v", err)
	}
	if _, err := tv.Verify(context.Background(), user); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("the transaction-token verifier took an access token: %v", err)
	}
}
