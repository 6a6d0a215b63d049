package grant_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/keys"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/subject"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

const trustDomain = "spiffe://bank.example"

// txnFixture is the fixture with transaction tokens (README "Transaction
// tokens"): api obtains them, other replaces them; lifetime txnTTL.
func txnFixture(t *testing.T, txnTTL time.Duration) (*fixture, *grant.Dispatcher) {
	t.Helper()
	f := newFixture(t, nil)
	x, err := exchange.New([]config.Policy{
		{Name: "api-txn", Client: "api", RequestedTokenTypes: []string{"txn_token"}},
		{Name: "other-replaces", Client: "other", SubjectTokenTypes: []string{"txn_token"}, RequestedTokenTypes: []string{"txn_token"}},
		// other exchanges access tokens addressed to it too, but for access tokens only.
		{Name: "other-access-only", Client: "other", Audiences: []string{apiAudience}},
	}, []config.Audience{{ID: apiAudience, Scopes: []string{"read", "write"}, Client: "api"}},
		exchange.Options{IssuerURL: issuer, TrustDomain: trustDomain, TxnTTL: txnTTL})
	if err != nil {
		t.Fatal(err)
	}
	v, err := subject.New(context.Background(), f.tokens, subject.Options{TrustDomain: trustDomain})
	if err != nil {
		t.Fatal(err)
	}
	disp := grant.NewDispatcher(f.clients, f.audit, map[string]grant.Grant{
		oauth.GrantTokenExchange: &grant.TokenExchange{Tokens: f.tokens, Subjects: v, Exchange: x},
	}, discard)
	return f, disp
}

func txnRequest(f *fixture, clientID, subjectToken string, subjectType oauth.TokenType, kv ...string) *grant.Request {
	return f.request(clientID, append([]string{"grant_type", oauth.GrantTokenExchange, "subject_token", subjectToken,
		"subject_token_type", string(subjectType), "requested_token_type", string(oauth.TokenTypeTxnToken)}, kv...)...)
}

// txnClaims verifies a transaction token and returns its claims.
func txnClaims(t *testing.T, f *fixture, raw string) token.Claims {
	t.Helper()
	v, err := f.tokens.Verify(raw, token.TypesFor(oauth.TokenTypeTxnToken), f.now)
	if err != nil {
		t.Fatalf("transaction token: %v", err)
	}
	return v.Claims
}

// signedTctx is the tctx claim of a token's payload, as signed.
func signedTctx(t *testing.T, raw string) string {
	t.Helper()
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Tctx json.RawMessage `json:"tctx"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return string(c.Tctx)
}

func detailOf(t *testing.T, e store.AuditEvent) map[string]any {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
		t.Fatalf("detail %q: %v", e.Detail, err)
	}
	return d
}

// TestTxnToken: issuance and replacement of transaction tokens, their claims,
// responses and audit records; the named bad inputs refused and audited.
func TestTxnToken(t *testing.T) {
	ctx := context.Background()
	f, disp := txnFixture(t, 0)
	userRaw, user := boundUserToken(t, f, nil)

	// A user token with acr, for rctx.authn.
	withACR := token.Claims{Subject: "alice", Audience: token.Audience{apiAudience}, ClientID: "web", Scope: "read",
		IssuedAt: f.now.Unix(), Expiry: f.now.Add(accessTTL).Unix(), ID: token.NewID(), ACR: "urn:deputy:mfa", AMR: []string{"pwd", "otp"}}
	withACRRaw, err := f.tokens.Mint(oauth.JWTTypeAccessToken, &withACR)
	if err != nil {
		t.Fatal(err)
	}
	// A user token addressed to other, whose policy other-access-only accepts it
	// but issues no transaction token.
	toOther := withACR
	toOther.Audience, toOther.ID = token.Audience{"other"}, token.NewID()
	toOtherRaw, err := f.tokens.Mint(oauth.JWTTypeAccessToken, &toOther)
	if err != nil {
		t.Fatal(err)
	}
	withAMR := withACR
	withAMR.ACR, withAMR.ID = "", token.NewID()
	withAMRRaw, err := f.tokens.Mint(oauth.JWTTypeAccessToken, &withAMR)
	if err != nil {
		t.Fatal(err)
	}

	req := txnRequest(f, "api", userRaw, oauth.TokenTypeAccessToken, "request_context", ` {"purpose": "payment", "amount": 42} `)
	req.Binding = &oauth.Confirmation{JKT: apiJKT} // proves a key: the transaction token is still unbound
	resp, err := disp.Token(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.IssuedTokenType != oauth.TokenTypeTxnToken || resp.TokenType != oauth.TokenTypeNA || resp.Scope != "read write" ||
		resp.ExpiresIn != int64(config.DefaultTxnTokenTTL/time.Second) || resp.RefreshToken != "" {
		t.Fatalf("response %+v", resp)
	}
	c1 := txnClaims(t, f, resp.AccessToken)
	txn, _ := c1.Extra["txn"].(string)
	if c1.Subject != "alice" || len(c1.Audience) != 1 || c1.Audience[0] != trustDomain || c1.Scope != "read write" ||
		txn == "" || txn == c1.ID || c1.Cnf != nil || c1.Act != nil || c1.ClientID != "" || c1.Expiry != f.now.Add(config.DefaultTxnTokenTTL).Unix() {
		t.Fatalf("claims %+v", c1)
	}
	if tctx, _ := json.Marshal(c1.Extra["tctx"]); string(tctx) != `{"amount":42,"purpose":"payment"}` {
		t.Errorf("tctx %s", tctx)
	}
	rctx, _ := c1.Extra["rctx"].(map[string]any)
	if rctx["req_ip"] != req.RemoteAddr || rctx["req_wl"] != "api" || rctx["authn"] != nil {
		t.Errorf("rctx %v", rctx)
	}
	evs := f.events(t, req.RequestID)
	if len(evs) != 1 {
		t.Fatalf("events %+v", evs)
	}
	e := evs[0]
	if e.Type != store.EventTokenExchanged || e.ParentJTI != user.ID || e.TokenJTI != c1.ID || e.Subject != "alice" ||
		len(e.Audiences) != 1 || e.Audiences[0] != trustDomain || strings.Join(e.Scopes, " ") != "read write" || e.Rule != "api-txn" {
		t.Errorf("event %+v", e)
	}
	d := detailOf(t, e)
	if d["grant_type"] != oauth.GrantTokenExchange || d["issued_token_type"] != "txn_token" || d["txn"] != txn ||
		d["tctx"] == nil || d["rctx"] == nil || d["cnf"] != nil {
		t.Errorf("detail %v", d)
	}

	t.Run("ok/authn-acr", func(t *testing.T) {
		resp, err := disp.Token(ctx, txnRequest(f, "api", withACRRaw, oauth.TokenTypeAccessToken))
		if err != nil {
			t.Fatal(err)
		}
		c := txnClaims(t, f, resp.AccessToken)
		if rctx, _ := c.Extra["rctx"].(map[string]any); rctx["authn"] != "urn:deputy:mfa" {
			t.Errorf("rctx %v", rctx)
		}
		if _, ok := c.Extra["tctx"]; ok {
			t.Errorf("tctx without request_context: %v", c.Extra)
		}
	})
	t.Run("ok/authn-amr", func(t *testing.T) {
		resp, err := disp.Token(ctx, txnRequest(f, "api", withAMRRaw, oauth.TokenTypeAccessToken))
		if err != nil {
			t.Fatal(err)
		}
		if rctx, _ := txnClaims(t, f, resp.AccessToken).Extra["rctx"].(map[string]any); rctx["authn"] != "pwd otp" {
			t.Errorf("rctx %v", rctx)
		}
	})

	// Replacement by other, narrower: txn, sub, tctx, req_ip kept; req_wl other.
	rreq := txnRequest(f, "other", resp.AccessToken, oauth.TokenTypeTxnToken, "scope", "read")
	rresp, err := disp.Token(ctx, rreq)
	if err != nil {
		t.Fatal(err)
	}
	c2 := txnClaims(t, f, rresp.AccessToken)
	if c2.Extra["txn"] != txn || c2.Subject != "alice" || c2.Scope != "read" || c2.ID == c1.ID || c2.Expiry > c1.Expiry {
		t.Errorf("replacement claims %+v", c2)
	}
	// tctx travels byte for byte: key order and numbers as sent, compacted.
	for _, raw := range []string{resp.AccessToken, rresp.AccessToken} {
		if got := signedTctx(t, raw); got != `{"purpose":"payment","amount":42}` {
			t.Errorf("tctx as signed %s", got)
		}
	}
	if rc, _ := c2.Extra["rctx"].(map[string]any); rc["req_ip"] != req.RemoteAddr || rc["req_wl"] != "other" {
		t.Errorf("replacement rctx %v", rc)
	}
	if evs := f.events(t, rreq.RequestID); len(evs) != 1 || evs[0].ParentJTI != c1.ID || evs[0].TokenJTI != c2.ID || detailOf(t, evs[0])["txn"] != txn {
		t.Errorf("replacement events %+v", evs)
	}

	for _, tt := range []struct {
		name string
		req  *grant.Request
		code oauth.Code
		desc string // a substring of the error description
	}{
		{"fail/txn-token-as-access-token", f.request("other", "grant_type", oauth.GrantTokenExchange, "subject_token", resp.AccessToken,
			"subject_token_type", string(oauth.TokenTypeAccessToken), "requested_token_type", string(oauth.TokenTypeTxnToken)), oauth.CodeInvalidRequest, "not of the declared subject_token_type"},
		{"fail/txn-token-for-access-token", f.request("other", "grant_type", oauth.GrantTokenExchange, "subject_token", resp.AccessToken,
			"subject_token_type", string(oauth.TokenTypeTxnToken)), oauth.CodeInvalidRequest, "exchanged only for a transaction token"},
		{"fail/txn-token-as-actor-token", txnRequest(f, "api", userRaw, oauth.TokenTypeAccessToken, "actor_token", resp.AccessToken,
			"actor_token_type", string(oauth.TokenTypeTxnToken)), oauth.CodeInvalidRequest, "only ever a subject token"},
		{"fail/replacement-wider-scope", txnRequest(f, "other", rresp.AccessToken, oauth.TokenTypeTxnToken, "scope", "read write"), oauth.CodeInvalidScope, "beyond what may be granted"},
		{"fail/request-context-not-object", txnRequest(f, "api", userRaw, oauth.TokenTypeAccessToken, "request_context", `"payment"`), oauth.CodeInvalidRequest, "not a JSON object"},
		{"fail/request-context-null", txnRequest(f, "api", userRaw, oauth.TokenTypeAccessToken, "request_context", `null`), oauth.CodeInvalidRequest, "not a JSON object"},
		{"fail/request-context-trailing", txnRequest(f, "api", userRaw, oauth.TokenTypeAccessToken, "request_context", `{} {}`), oauth.CodeInvalidRequest, "not a JSON object"},
		{"fail/request-context-too-large", txnRequest(f, "api", userRaw, oauth.TokenTypeAccessToken, "request_context", `{"a":"`+strings.Repeat("x", grant.MaxRequestContextBytes)+`"}`), oauth.CodeInvalidRequest, "larger than 4096 bytes"},
		{"fail/request-context-duplicate-name", txnRequest(f, "api", userRaw, oauth.TokenTypeAccessToken, "request_context", `{"amount":1,"amount":1000000}`), oauth.CodeInvalidRequest, "member name twice"},
		{"fail/request-context-too-deep", txnRequest(f, "api", userRaw, oauth.TokenTypeAccessToken, "request_context", strings.Repeat(`{"a":`, 40)+`1`+strings.Repeat(`}`, 40)), oauth.CodeInvalidRequest, "nested more than 32 deep"},
		{"fail/request-context-number-out-of-range", txnRequest(f, "api", userRaw, oauth.TokenTypeAccessToken, "request_context", `{"amount":1e400}`), oauth.CodeInvalidRequest, "number out of range"},
		{"fail/request-context-with-replacement", txnRequest(f, "other", resp.AccessToken, oauth.TokenTypeTxnToken, "request_context", `{}`), oauth.CodeInvalidRequest, "keeps its tctx"},
		{"fail/request-context-without-txn", f.request("api", "grant_type", oauth.GrantTokenExchange, "subject_token", userRaw,
			"subject_token_type", string(oauth.TokenTypeAccessToken), "request_context", `{}`), oauth.CodeInvalidRequest, "only with requested_token_type"},
		{"fail/audience-not-trust-domain", txnRequest(f, "api", userRaw, oauth.TokenTypeAccessToken, "audience", apiAudience), oauth.CodeInvalidTarget, "trust domain"},
		{"fail/policy-without-txn-token", txnRequest(f, "other", toOtherRaw, oauth.TokenTypeAccessToken), oauth.CodeInvalidRequest, "requested token type txn_token is not allowed for this client"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := disp.Token(ctx, tt.req)
			wantCode(t, err, tt.code)
			if resp != nil {
				t.Fatalf("issued %+v", resp)
			}
			if d := oauth.AsError(err).Description; !strings.Contains(d, tt.desc) {
				t.Errorf("description %q, want …%s…", d, tt.desc)
			}
			wantDenied(t, f, tt.req, tt.code)
		})
	}
}

// TestTxnTokenExpired: a transaction token that expired is not replaced; the
// denial names it.
func TestTxnTokenExpired(t *testing.T) {
	ctx := context.Background()
	f, disp := txnFixture(t, time.Second)
	userRaw, _ := boundUserToken(t, f, nil)
	resp, err := disp.Token(ctx, txnRequest(f, "api", userRaw, oauth.TokenTypeAccessToken))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ExpiresIn != 1 {
		t.Errorf("expires_in %d, want 1 (txn_tokens.ttl)", resp.ExpiresIn)
	}
	jti := txnClaims(t, f, resp.AccessToken).ID
	req := txnRequest(f, "other", resp.AccessToken, oauth.TokenTypeTxnToken)
	req.Now = f.now.Add(2 * time.Second)
	_, err = disp.Token(ctx, req)
	wantCode(t, err, oauth.CodeInvalidRequest)
	if d := oauth.AsError(err).Description; d != "subject_token is expired" {
		t.Errorf("description %q", d)
	}
	if e := wantDenied(t, f, req, oauth.CodeInvalidRequest); e.ParentJTI != jti {
		t.Errorf("denial parent %q, want the expired token %q", e.ParentJTI, jti)
	}
}

// TestTxnTokenOtherTrustDomain: a transaction token deputy issued for another
// trust domain (a configuration changed since) is not replaced.
func TestTxnTokenOtherTrustDomain(t *testing.T) {
	ctx := context.Background()
	f, disp := txnFixture(t, 0)
	raw, err := f.tokens.MintTxn(&token.TxnClaims{IssuedAt: f.now.Unix(), Expiry: f.now.Add(time.Minute).Unix(), ID: token.NewID(),
		Audience: "spiffe://other.example", Txn: "t", Subject: "alice", Scope: "read", Rctx: map[string]any{"req_wl": "api"}})
	if err != nil {
		t.Fatal(err)
	}
	req := txnRequest(f, "other", raw, oauth.TokenTypeTxnToken)
	_, err = disp.Token(ctx, req)
	wantCode(t, err, oauth.CodeInvalidRequest)
	if d := oauth.AsError(err).Description; d != "subject_token is a transaction token of another trust domain" {
		t.Errorf("description %q", d)
	}
	wantDenied(t, f, req, oauth.CodeInvalidRequest)
}

// TestTxnTokenContextAsSent: a request_context of <, > and & is signed as sent,
// not HTML-escaped (which made a 4 KiB context a 32 KiB token no verifier
// accepted); the token verifies and is replaced.
func TestTxnTokenContextAsSent(t *testing.T) {
	ctx := context.Background()
	f, disp := txnFixture(t, 0)
	userRaw, _ := boundUserToken(t, f, nil)
	tctx := `{"a":"<&>` + strings.Repeat("<", 4000) + `"}`
	req := txnRequest(f, "api", userRaw, oauth.TokenTypeAccessToken, "request_context", tctx)
	resp, err := disp.Token(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	txnClaims(t, f, resp.AccessToken) // verifies, size included
	if got := signedTctx(t, resp.AccessToken); got != tctx {
		t.Errorf("tctx as signed %.40s…, want %.40s…", got, tctx)
	}
	rresp, err := disp.Token(ctx, txnRequest(f, "other", resp.AccessToken, oauth.TokenTypeTxnToken))
	if err != nil {
		t.Fatalf("replacement: %v", err)
	}
	if got := signedTctx(t, rresp.AccessToken); got != tctx {
		t.Errorf("replacement tctx as signed %.40s…", got)
	}
	// The audit record carries it as sent too.
	if evs := f.events(t, req.RequestID); len(evs) != 1 || !strings.Contains(evs[0].Detail, `"tctx":`+tctx) {
		t.Errorf("audit events %.300v…", evs)
	}
}

// TestTxnTokenTooLarge: a transaction token over limits.max_token_bytes is not
// issued (invalid_request), and the denial is on record.
func TestTxnTokenTooLarge(t *testing.T) {
	ctx := context.Background()
	f, _ := txnFixture(t, 0)
	ks, err := keys.Open(ctx, f.st, keys.Options{Algorithm: "ES256", RetireAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	x, err := exchange.New([]config.Policy{{Name: "api-txn", Client: "api", RequestedTokenTypes: []string{"txn_token"}}},
		[]config.Audience{{ID: apiAudience, Scopes: []string{"read", "write"}, Client: "api"}},
		exchange.Options{IssuerURL: issuer, TrustDomain: trustDomain})
	if err != nil {
		t.Fatal(err)
	}
	v, err := subject.New(ctx, f.tokens, subject.Options{TrustDomain: trustDomain})
	if err != nil {
		t.Fatal(err)
	}
	small := token.NewService(issuer, ks, f.revoked, 1024) // limits.max_token_bytes 1024
	disp := grant.NewDispatcher(f.clients, f.audit, map[string]grant.Grant{
		oauth.GrantTokenExchange: &grant.TokenExchange{Tokens: small, Subjects: v, Exchange: x},
	}, discard)
	userRaw, _ := boundUserToken(t, f, nil)
	if _, err := disp.Token(ctx, txnRequest(f, "api", userRaw, oauth.TokenTypeAccessToken, "request_context", `{"a":"b"}`)); err != nil {
		t.Fatalf("small request_context: %v", err)
	}
	req := txnRequest(f, "api", userRaw, oauth.TokenTypeAccessToken, "request_context", `{"a":"`+strings.Repeat("x", 1000)+`"}`)
	resp, err := disp.Token(ctx, req)
	wantCode(t, err, oauth.CodeInvalidRequest)
	if resp != nil {
		t.Fatalf("issued %+v", resp)
	}
	if d := oauth.AsError(err).Description; !strings.Contains(d, "too large") {
		t.Errorf("description %q", d)
	}
	wantDenied(t, f, req, oauth.CodeInvalidRequest)
}
