package exchange

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/policy"
	"github.com/deputy-auth/deputy/oauth"
)

const trustDomain = "spiffe://bank.example"

// txnPolicies issue and replace transaction tokens (README "Transaction tokens").
func txnPolicies() []config.Policy {
	return append(testPolicies(),
		config.Policy{Name: "pay-txn", Client: "pay", RequestedTokenTypes: []string{"txn_token"}, Scopes: []string{"payments:read", "payments:write"}},
		config.Policy{Name: "ledger-replaces", Client: "ledger", SubjectTokenTypes: []string{"txn_token"}, RequestedTokenTypes: []string{"txn_token"}},
		config.Policy{Name: "mixed-both", Client: "mixedtxn", Audiences: []string{api2}, RequestedTokenTypes: []string{"access_token", "txn_token"}},
		// cond: the first rule's condition is false for transaction tokens, the
		// second's sees the trust domain as the audience and decides.
		config.Policy{Name: "cond-access-only", Client: "cond", Audiences: []string{api2}, RequestedTokenTypes: []string{"access_token", "txn_token"},
			Condition: `request.requested_token_type == "access_token"`},
		config.Policy{Name: "cond-txn", Client: "cond", RequestedTokenTypes: []string{"txn_token"},
			Condition: `request.audiences == ["` + trustDomain + `"] && request.scopes == ["payments:read"]`},
		config.Policy{Name: "cond-broken", Client: "broken", RequestedTokenTypes: []string{"txn_token"}, Condition: `subject.claims.tenant == "bank"`},
		config.Policy{Name: "may-act-txn", Client: "strict-txn", RequestedTokenTypes: []string{"txn_token"}, RequireMayAct: true},
		// partner-txn: another issuer's subject token; the policy's scopes are the
		// only bound (an unbounded one is refused by Compile).
		config.Policy{Name: "partner-txn", Client: "partner-txn", SubjectIssuers: []string{"entra"}, SubjectTokenTypes: []string{"jwt"},
			RequestedTokenTypes: []string{"txn_token"}, Scopes: []string{"payments:read"}},
	)
}

func newTxnExchanger(t testing.TB) *Exchanger {
	t.Helper()
	o := opts
	o.TrustDomain = trustDomain
	x, err := New(txnPolicies(), testAudiences(), o)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// txnRequest is pay (payments, the client of api1's audience) asking for a
// transaction token from alice's access token addressed to it.
func txnRequest() Request {
	r := baseRequest()
	r.ClientID, r.Audiences, r.RequestedType = "pay", nil, oauth.TokenTypeTxnToken
	r.Subject.Audiences = []string{"pay"}
	r.Subject.Scopes = []string{"payments:read", "payments:write", "ledger:read"}
	r.Subject.Claims = map[string]any{"acr": "urn:mace:incommon:iap:silver", "amr": []string{"pwd"}}
	return r
}

// txnSubject is a transaction token presented for replacement by ledger.
func txnSubject() Request {
	r := txnRequest()
	r.ClientID = "ledger"
	r.Subject = Principal{
		TokenType: oauth.TokenTypeTxnToken, Issuer: "self", IssuerURL: issuerURL, Subject: "alice",
		Audiences: []string{trustDomain}, Scopes: []string{"payments:read", "payments:write"}, JTI: "txn-jti-1",
		ExpiresAt: now.Add(30 * time.Second),
		Claims: map[string]any{
			"txn":  "txn-1",
			"tctx": map[string]any{"action": "payment"},
			"rctx": map[string]any{"req_ip": "10.0.0.1", "authn": "pwd", "req_wl": "pay"},
		},
		Tctx: json.RawMessage(`{"action": "payment"}`),
	}
	return r
}

func txnDecision() Decision {
	return Decision{
		Rule: "pay-txn", Subject: "alice", SubjectIssuer: "self", Actor: "pay",
		Audiences: []string{trustDomain}, Scopes: []string{"payments:read", "payments:write"},
		ExpiresAt: now.Add(config.DefaultTxnTokenTTL), IssuedType: oauth.TokenTypeTxnToken, TokenType: oauth.TokenTypeNA,
		Claims: map[string]any{"acr": "urn:mace:incommon:iap:silver", "amr": []string{"pwd"}}, ParentJTI: "t0",
	}
}

// TestDecideTxn: the decision of transaction token requests, through Decide and
// Explain, which must agree.
func TestDecideTxn(t *testing.T) {
	x := newTxnExchanger(t)
	tests := []struct {
		name string
		mod  func(r *Request)
		want func(d *Decision) // applied to txnDecision; nil when denied
		code oauth.Code
		rule string // the rule named by the denial, if any
	}{
		{"ok/issuance-all-subject-scopes-within-policy", func(r *Request) {}, func(d *Decision) {}, "", ""},
		{"ok/audience-is-trust-domain", func(r *Request) { r.Audiences = []string{trustDomain, trustDomain} }, func(d *Decision) {}, "", ""},
		{"ok/narrower-scope", func(r *Request) { r.Scopes = []string{"payments:read"} }, func(d *Decision) { d.Scopes = []string{"payments:read"} }, "", ""},
		{"ok/expiry-capped-by-subject", func(r *Request) { r.Subject.ExpiresAt = now.Add(10 * time.Second) }, func(d *Decision) { d.ExpiresAt = now.Add(10 * time.Second) }, "", ""},
		{"ok/never-bound", func(r *Request) { r.Binding = &oauth.Confirmation{JKT: jktAPI1} }, func(d *Decision) {}, "", ""},
		{"ok/bound-subject-with-proof", func(r *Request) {
			r.Subject.Cnf = &oauth.Confirmation{JKT: jktWebApp}
			r.Binding = &oauth.Confirmation{JKT: jktAPI1}
		}, func(d *Decision) {}, "", ""},
		{"ok/replacement-keeps-txn", func(r *Request) { *r = txnSubject(); r.Scopes = []string{"payments:read"} }, func(d *Decision) {
			d.Rule, d.Actor, d.Scopes, d.ParentJTI = "ledger-replaces", "ledger", []string{"payments:read"}, "txn-jti-1"
			d.ExpiresAt, d.Claims = now.Add(30*time.Second), nil
			d.Txn = &Txn{ID: "txn-1", Context: json.RawMessage(`{"action": "payment"}`), RequestContext: map[string]any{"req_ip": "10.0.0.1", "authn": "pwd", "req_wl": "pay"}}
		}, "", ""},
		{"ok/replacement-all-scopes", func(r *Request) { *r = txnSubject() }, func(d *Decision) {
			d.Rule, d.Actor, d.ParentJTI, d.ExpiresAt, d.Claims = "ledger-replaces", "ledger", "txn-jti-1", now.Add(30*time.Second), nil
			d.Txn = &Txn{ID: "txn-1", Context: json.RawMessage(`{"action": "payment"}`), RequestContext: map[string]any{"req_ip": "10.0.0.1", "authn": "pwd", "req_wl": "pay"}}
		}, "", ""},
		{"ok/replacement-described-by-claims", func(r *Request) { *r = txnSubject(); r.Subject.Tctx = nil }, func(d *Decision) {
			d.Rule, d.Actor, d.ParentJTI, d.ExpiresAt, d.Claims = "ledger-replaces", "ledger", "txn-jti-1", now.Add(30*time.Second), nil
			d.Txn = &Txn{ID: "txn-1", Context: json.RawMessage(`{"action":"payment"}`), RequestContext: map[string]any{"req_ip": "10.0.0.1", "authn": "pwd", "req_wl": "pay"}}
		}, "", ""},
		{"ok/mixed-policy", func(r *Request) { r.ClientID = "mixedtxn"; r.Subject.Audiences = []string{"mixedtxn"} }, func(d *Decision) {
			d.Rule, d.Actor, d.Scopes = "mixed-both", "mixedtxn", []string{"ledger:read", "payments:read", "payments:write"}
		}, "", ""},
		{"ok/condition-sees-trust-domain", func(r *Request) {
			r.ClientID, r.Subject.Audiences, r.Scopes = "cond", []string{"cond"}, []string{"payments:read"}
		}, func(d *Decision) { d.Rule, d.Actor, d.Scopes = "cond-txn", "cond", []string{"payments:read"} }, "", ""},

		{"ok/foreign-subject-policy-scopes", func(r *Request) { r.ClientID, r.Subject = "partner-txn", entraSubject() }, func(d *Decision) {
			d.Rule, d.Actor, d.Subject, d.SubjectIssuer, d.ParentJTI = "partner-txn", "partner-txn", "alice@corp", "entra", "e1"
			d.Scopes, d.Claims = []string{"payments:read"}, nil
		}, "", ""},

		{"fail/foreign-subject-scope-beyond-policy", func(r *Request) {
			r.ClientID, r.Subject, r.Scopes = "partner-txn", entraSubject(), []string{"admin:everything", "payments:read"}
		}, nil, oauth.CodeInvalidScope, "partner-txn"},
		{"fail/audience-not-trust-domain", func(r *Request) { r.Audiences = []string{api2} }, nil, oauth.CodeInvalidTarget, ""},
		{"fail/audience-another-trust-domain", func(r *Request) { r.Audiences = []string{trustDomain, "spiffe://other"} }, nil, oauth.CodeInvalidTarget, ""},
		{"fail/resource", func(r *Request) { r.Resources = []string{"https://bank.example/"} }, nil, oauth.CodeInvalidTarget, ""},
		{"fail/scope-beyond-subject", func(r *Request) {
			r.Subject.Scopes = []string{"payments:read"}
			r.Scopes = []string{"payments:write"}
		}, nil, oauth.CodeInvalidScope, "pay-txn"},
		{"fail/scope-beyond-policy", func(r *Request) { r.Scopes = []string{"ledger:read"} }, nil, oauth.CodeInvalidScope, "pay-txn"},
		{"fail/replacement-wider-scope", func(r *Request) { *r = txnSubject(); r.Scopes = []string{"payments:read", "ledger:read"} }, nil, oauth.CodeInvalidScope, "ledger-replaces"},
		{"fail/txn-token-for-access-token", func(r *Request) { *r = txnSubject(); r.RequestedType = ""; r.Audiences = []string{api3} }, nil, oauth.CodeInvalidRequest, ""},
		{"fail/txn-token-for-jwt", func(r *Request) { *r = txnSubject(); r.RequestedType = oauth.TokenTypeJWT }, nil, oauth.CodeInvalidRequest, ""},
		{"fail/another-trust-domain", func(r *Request) { *r = txnSubject(); r.Subject.Audiences = []string{"spiffe://other"} }, nil, oauth.CodeInvalidRequest, ""},
		{"fail/txn-without-txn-claim", func(r *Request) { *r = txnSubject(); delete(r.Subject.Claims, "txn") }, nil, oauth.CodeInvalidRequest, ""},
		{"fail/txn-subject-not-accepted", func(r *Request) { *r = txnSubject(); r.ClientID = "pay" }, nil, oauth.CodeInvalidRequest, ""},
		{"fail/expired-subject", func(r *Request) { *r = txnSubject(); r.Subject.ExpiresAt = now.Add(-time.Second) }, nil, oauth.CodeInvalidRequest, ""},
		{"fail/policy-without-txn-token", func(r *Request) { r.ClientID = "api1"; r.Subject.Audiences = []string{api1} }, nil, oauth.CodeInvalidRequest, ""},
		{"fail/subject-not-addressed-to-client", func(r *Request) { r.Subject.Audiences = []string{api2} }, nil, oauth.CodeInvalidRequest, ""},
		{"fail/bound-subject-without-proof", func(r *Request) { r.Subject.Cnf = &oauth.Confirmation{JKT: jktWebApp} }, nil, oauth.CodeInvalidRequest, ""},
		{"fail/actor-token", func(r *Request) {
			r.Actor = &Principal{TokenType: oauth.TokenTypeAccessToken, Issuer: "self", Subject: "pay", ExpiresAt: subjectExp}
		}, nil, oauth.CodeInvalidRequest, ""},
		{"fail/condition-false", func(r *Request) { r.ClientID, r.Subject.Audiences = "cond", []string{"cond"} }, nil, oauth.CodeInvalidRequest, ""},
		{"fail/condition-cannot-be-evaluated", func(r *Request) { r.ClientID, r.Subject.Audiences = "broken", []string{"broken"} }, nil, oauth.CodeInvalidRequest, "cond-broken"},
		{"fail/may-act-required", func(r *Request) { r.ClientID, r.Subject.Audiences = "strict-txn", []string{"strict-txn"} }, nil, oauth.CodeInvalidRequest, "may-act-txn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := txnRequest()
			tt.mod(&req)
			d, err := x.Decide(req, now)
			if tt.want != nil {
				if err != nil {
					t.Fatalf("Decide: %v", err)
				}
				want := txnDecision()
				tt.want(&want)
				if !reflect.DeepEqual(d, want) {
					t.Fatalf("Decide:\n got %+v\nwant %+v", d, want)
				}
			} else {
				var oe *oauth.Error
				if !errors.As(err, &oe) || oe.Code != tt.code {
					t.Fatalf("Decide = %+v, %v; want %s", d, err, tt.code)
				}
				var den *Denial
				if !errors.As(err, &den) || den.Rule != tt.rule {
					t.Fatalf("denial %v names rule %q, want %q", err, den.Rule, tt.rule)
				}
			}
			// Explain agrees: the rule that decides is Decide's; a rule that denies
			// is reported with that check.
			got := x.Explain(req, now)
			decides := ""
			for _, res := range got {
				if res.Check == "" && res.Reason == "decides" {
					decides = res.Rule
				}
			}
			var den *Denial
			switch {
			case err == nil && decides != d.Rule:
				t.Errorf("Decide chose %s, Explain says %q decides: %+v", d.Rule, decides, got)
			case errors.As(err, &den) && den.Rule != "":
				for _, res := range got {
					if res.Rule == den.Rule && res.Check != den.Check() {
						t.Errorf("Decide denied at %s (%s), Explain says %+v", den.Rule, den.Check(), res)
					}
				}
				if decides != "" {
					t.Errorf("Decide denied at rule %s, Explain says %q decides", den.Rule, decides)
				}
			case errors.As(err, &den) && decides != "" && tt.code != oauth.CodeInvalidRequest:
				t.Errorf("Decide denied (%v), Explain says %q decides", err, decides)
			}
			if den != nil && !reflect.DeepEqual(den.Policies, got) {
				t.Errorf("Denial.Policies = %+v, Explain = %+v", den.Policies, got)
			}
		})
	}
}

// TestTxnNeedsTrustDomain: a policy that issues transaction tokens needs the
// trust domain.
func TestTxnNeedsTrustDomain(t *testing.T) {
	if _, err := New(txnPolicies(), testAudiences(), opts); err == nil {
		t.Fatal("New without TrustDomain accepted policies listing txn_token")
	}
	x := newTestExchanger(t)
	req := txnRequest()
	req.ClientID, req.Subject.Audiences = "api1", []string{api1}
	if _, err := x.Decide(req, now); err == nil {
		t.Fatal("Decide issued a transaction token without a trust domain")
	}
}

// BenchmarkDecideTxn measures the decision of a transaction token: its issuance
// from an access token, and its replacement.
func BenchmarkDecideTxn(b *testing.B) {
	x := newTxnExchanger(b)
	for _, bc := range []struct {
		name string
		req  Request
	}{
		{"issuance", txnRequest()},
		{"replacement", txnSubject()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if _, err := x.Decide(bc.req, now); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := x.Decide(bc.req, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestTxnScopesForeignSubject: another issuer's subject token caps no scope, and
// a transaction token has no audience to: only the rule's scopes bound what is
// granted, and a rule listing none (which the configuration refuses) grants
// nothing rather than anything asked for.
func TestTxnScopesForeignSubject(t *testing.T) {
	entra := &Principal{TokenType: oauth.TokenTypeJWT, Issuer: "entra", Subject: "alice", Scopes: []string{"User.Read"}}
	self := &Principal{TokenType: oauth.TokenTypeAccessToken, Issuer: "self", Subject: "alice", Scopes: []string{"payments:read"}}
	unbounded := &policy.Rule{Name: "gw-txn"} // lists no scopes
	bounded, err := policy.Compile([]config.Policy{{Name: "gw-txn", Client: "gw", SubjectIssuers: []string{"entra"},
		SubjectTokenTypes: []string{"jwt"}, RequestedTokenTypes: []string{"txn_token"}, Scopes: []string{"payments:read"}}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		rule      *policy.Rule
		sub       *Principal
		requested []string
		want      []string
		denied    bool
	}{
		{"ok/foreign-unbounded-none-requested-grants-none", unbounded, entra, nil, nil, false},
		{"ok/foreign-bounded", bounded.Rules()[0], entra, []string{"payments:read"}, []string{"payments:read"}, false},
		{"ok/foreign-bounded-none-requested", bounded.Rules()[0], entra, nil, []string{"payments:read"}, false},
		{"ok/self-unbounded", unbounded, self, []string{"payments:read"}, []string{"payments:read"}, false},
		{"fail/foreign-unbounded", unbounded, entra, []string{"admin:everything", "payments:write"}, nil, true},
		{"fail/foreign-bounded-beyond", bounded.Rules()[0], entra, []string{"admin:everything"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := txnScopes(tt.rule, tt.sub, tt.requested)
			if tt.denied {
				var oe *oauth.Error
				if !errors.As(err, &oe) || oe.Code != oauth.CodeInvalidScope {
					t.Fatalf("txnScopes = %v, %v; want invalid_scope", got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("txnScopes = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}
