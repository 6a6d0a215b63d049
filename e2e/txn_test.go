package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/sdk/verify"
)

const (
	typeTxnToken   = "urn:ietf:params:oauth:token-type:txn_token"
	txnTrustDomain = "spiffe://bank.example"
)

// txnConfig is bankConfig with transaction tokens (README "Transaction tokens"):
// payments (api1) obtains one for the payment from the user's access token, and
// the ledger (api2) replaces it with one of narrower scope.
var txnConfig = bankConfig + `
    - name: payments-txn
      client: api1
      requested_token_types: [txn_token]
      scopes: [payments:read, payments:write]
    - name: ledger-replaces-txn
      client: api2
      subject_token_types: [txn_token]
      requested_token_types: [txn_token]
txn_tokens:
  trust_domain: ` + txnTrustDomain + `
`

func txnForm(subjectToken, subjectType string, kv ...string) url.Values {
	f := exchangeForm(subjectToken, append([]string{"requested_token_type", typeTxnToken}, kv...)...)
	f.Set("subject_token_type", subjectType)
	return f
}

// TestTxnTokens: a transaction token issued from an access token, replaced with
// narrower scope keeping its txn, both on record linked to their subject tokens,
// and refused wherever it is not a transaction token's place.
func TestTxnTokens(t *testing.T) {
	s := start(t, txnConfig)
	user := s.token("web-app", "web-secret", clientCredentials("payments:read payments:write")).str("access_token")
	tctx := `{"action":"payment","amount":{"currency":"EUR","value":"42.00"}}` // keys in order: the test compares it re-encoded

	// Issuance.
	r := s.token("api1", "api1-secret", txnForm(user, typeAccessToken, "request_context", tctx, "audience", txnTrustDomain))
	if r.str("issued_token_type") != typeTxnToken || r.str("token_type") != "N_A" || r.str("scope") != "payments:read payments:write" {
		t.Fatalf("issuance: %s", r.Raw)
	}
	if exp, _ := r.Body["expires_in"].(float64); exp < 55 || exp > 60 {
		t.Errorf("expires_in = %v, want 60", r.Body["expires_in"])
	}
	if _, ok := r.Body["refresh_token"]; ok {
		t.Errorf("a refresh token beside a transaction token: %s", r.Raw)
	}
	txn1 := r.str("access_token")
	if h := header(t, txn1); h["typ"] != "txntoken+jwt" {
		t.Errorf("header %v", h)
	}
	c1 := claims(t, txn1)
	for k, want := range map[string]any{"iss": s.issuer, "aud": txnTrustDomain, "sub": "web-app", "scope": "payments:read payments:write"} {
		if c1[k] != want {
			t.Errorf("claim %s = %v, want %v", k, c1[k], want)
		}
	}
	for _, k := range []string{"act", "cnf", "client_id", "may_act"} {
		if _, ok := c1[k]; ok {
			t.Errorf("transaction token carries %s: %v", k, c1)
		}
	}
	txn, _ := c1["txn"].(string)
	if txn == "" || c1["jti"] == txn {
		t.Errorf("txn %q (jti %v)", txn, c1["jti"])
	}
	if got, _ := json.Marshal(c1["tctx"]); string(got) != tctx {
		t.Errorf("tctx %s, want %s", got, tctx)
	}
	rctx, _ := c1["rctx"].(map[string]any)
	if rctx["req_wl"] != "api1" || rctx["req_ip"] != "127.0.0.1" {
		t.Errorf("rctx %v", rctx)
	}

	// Replacement by the ledger, narrower: txn, sub, tctx and req_ip kept.
	r = s.token("api2", "api2-secret", txnForm(txn1, typeTxnToken, "scope", "payments:read"))
	txn2 := r.str("access_token")
	c2 := claims(t, txn2)
	if c2["txn"] != txn || c2["sub"] != "web-app" || c2["scope"] != "payments:read" || c2["aud"] != txnTrustDomain || c2["jti"] == c1["jti"] {
		t.Errorf("replacement claims %v", c2)
	}
	if got, _ := json.Marshal(c2["tctx"]); string(got) != tctx {
		t.Errorf("replacement tctx %s, want %s", got, tctx)
	}
	if rc, _ := c2["rctx"].(map[string]any); rc["req_wl"] != "api2" || rc["req_ip"] != "127.0.0.1" {
		t.Errorf("replacement rctx %v", rc)
	}

	// The audit trail: each linked to its subject token, with txn and contexts.
	var issued, replaced map[string]any
	for _, e := range auditEvents(t, s, "token.exchanged") {
		switch field(e, "token_jti") {
		case c1["jti"]:
			issued = e
		case c2["jti"]:
			replaced = e
		}
	}
	if issued == nil || replaced == nil {
		t.Fatalf("no token.exchanged record of the transaction tokens")
	}
	if field(issued, "parent_jti") != claims(t, user)["jti"] || field(replaced, "parent_jti") != c1["jti"] {
		t.Errorf("parents: issuance %s, replacement %s", field(issued, "parent_jti"), field(replaced, "parent_jti"))
	}
	for _, e := range []map[string]any{issued, replaced} {
		var d map[string]any
		if err := json.Unmarshal([]byte(field(e, "detail")), &d); err != nil {
			t.Fatalf("detail %s: %v", field(e, "detail"), err)
		}
		if d["issued_token_type"] != "txn_token" || d["txn"] != txn || d["grant_type"] != tokenExchange || d["rctx"] == nil || d["tctx"] == nil {
			t.Errorf("detail %v", d)
		}
		if field(e, "subject") != "web-app" || !strings.Contains(field(e, "audiences"), txnTrustDomain) {
			t.Errorf("record %v", e)
		}
	}

	// A transaction token is no access token: userinfo refuses its typ.
	t.Run("fail/userinfo-refuses-txn-token", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, s.endpointOIDC("userinfo_endpoint"), nil)
		req.Header.Set("Authorization", "Bearer "+txn1)
		r := doReply(t, req)
		if r.Status != 401 || !strings.Contains(r.Header.Get("WWW-Authenticate"), "wrong typ") {
			t.Fatalf("userinfo: %d %s %q", r.Status, r.Raw, r.Header.Get("WWW-Authenticate"))
		}
	})

	t.Run("fail/introspection-inactive", func(t *testing.T) {
		if in := s.post("introspection_endpoint", "api2", "api2-secret", url.Values{"token": {txn1}}); in.Raw != `{"active":false}` {
			t.Fatalf("introspection of a transaction token: %d %s", in.Status, in.Raw)
		}
	})
	t.Run("fail/sdk-refuses-txn-token-as-access-token", func(t *testing.T) {
		// Even a service that takes the trust domain for its audience refuses it:
		// the SDK's access tokens are at+jwt only.
		v, err := verify.New(context.Background(), verify.Config{Issuer: s.issuer, Audience: txnTrustDomain})
		if err != nil {
			t.Fatal(err)
		}
		if p, err := v.Verify(context.Background(), txn1); err == nil || !strings.Contains(err.Error(), "typ") {
			t.Fatalf("Verify = %+v, %v; want a refusal of its typ", p, err)
		}
	})

	// A token addressed to support, whose policy support-impersonates accepts it
	// but issues no transaction token.
	helpdesk := s.token("helpdesk-ui", "helpdesk-secret", clientCredentials("")).str("access_token")
	for _, tt := range []struct {
		name, id, secret string
		form             url.Values
		code             string
		desc             string // a substring of error_description
	}{
		{"fail/txn-token-as-access-token", "api2", "api2-secret", exchangeForm(txn1, "audience", "https://api3.example"), "invalid_request", "subject_token is not of the declared subject_token_type"},
		{"fail/txn-token-for-an-access-token", "api2", "api2-secret", exchangeForm(txn1, "subject_token_type", "", "audience", "https://api3.example"), "invalid_request", "exchanged only for a transaction token"},
		{"fail/replacement-wider-scope", "api2", "api2-secret", txnForm(txn2, typeTxnToken, "scope", "payments:read payments:write"), "invalid_scope", "beyond what may be granted"},
		{"fail/request-context-not-object", "api1", "api1-secret", txnForm(user, typeAccessToken, "request_context", `["payment"]`), "invalid_request", "not a JSON object"},
		{"fail/request-context-too-large", "api1", "api1-secret", txnForm(user, typeAccessToken, "request_context", `{"a":"`+strings.Repeat("x", 4096)+`"}`), "invalid_request", "larger than 4096 bytes"},
		{"fail/request-context-duplicate-name", "api1", "api1-secret", txnForm(user, typeAccessToken, "request_context", `{"amount":1,"amount":1000000}`), "invalid_request", "member name twice"},
		{"fail/request-context-number-out-of-range", "api1", "api1-secret", txnForm(user, typeAccessToken, "request_context", `{"amount":1e400}`), "invalid_request", "number out of range"},
		{"fail/audience-not-trust-domain", "api1", "api1-secret", txnForm(user, typeAccessToken, "audience", "https://api2.example"), "invalid_target", "trust domain"},
		{"fail/policy-without-txn-token", "support", "support-secret", txnForm(helpdesk, typeAccessToken), "invalid_request", "requested token type txn_token is not allowed for this client"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "fail/txn-token-for-an-access-token" {
				tt.form.Set("subject_token_type", typeTxnToken)
			}
			r := s.post("token_endpoint", tt.id, tt.secret, tt.form)
			wantError(t, r, 400, tt.code)
			if d := r.str("error_description"); !strings.Contains(d, tt.desc) {
				t.Errorf("error_description %q, want …%s…", d, tt.desc)
			}
		})
	}
	// Every refusal above is on record, with its reason.
	denied := auditEvents(t, s, "request.denied")
	if len(denied) != 9 {
		t.Errorf("%d request.denied events, want 9", len(denied))
	}

	// Revoking the user's token revokes the transaction tokens obtained from it,
	// replacements included: neither is replaced any more.
	if r := s.post("revocation_endpoint", "web-app", "web-secret", url.Values{"token": {user}}); r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Raw)
	}
	r = s.post("token_endpoint", "api2", "api2-secret", txnForm(txn2, typeTxnToken))
	wantError(t, r, 400, "invalid_request")
	if d := r.str("error_description"); d != "subject_token is revoked" {
		t.Errorf("replacement after revocation: %s", r.Raw)
	}
	for _, e := range denied {
		if field(e, "reason") == "" {
			t.Errorf("denial without reason: %v", e)
		}
	}
}
