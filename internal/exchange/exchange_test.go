package exchange

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/policy"
	"github.com/deputy-auth/deputy/oauth"
)

const (
	issuerURL = "https://deputy.example"
	entraURL  = "https://login.example/tenant/v2.0"
	corpURL   = "https://idp.corp.example"

	api1 = "https://api1.example"
	api2 = "https://api2.example"
	api3 = "https://api3.example"
	api4 = "https://api4.example"
)

var (
	now        = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	subjectExp = now.Add(time.Hour)
	opts       = Options{IssuerURL: issuerURL, AccessTTL: 5 * time.Minute, IDTokenTTL: 10 * time.Minute, RefreshTTL: 24 * time.Hour}
)

func testAudiences() []config.Audience {
	return []config.Audience{
		{ID: api1, Scopes: []string{"payments:read", "payments:write"}, Client: "api1"},
		{ID: api2, Scopes: []string{"ledger:read", "ledger:write"}, Client: "api2"},
		{ID: api3, Scopes: []string{"ledger:read", "audit:read"}, Client: "api3"},
		{ID: api4, Scopes: []string{"archive:read"}, Client: "api4"},
	}
}

// testPolicies leaves every defaulted field at its zero value, as a hand-written
// config.Policy would, so Decide is exercised with the defaults policy.Compile applies.
func testPolicies() []config.Policy {
	return []config.Policy{
		{Name: "api1-to-api2", Client: "api1", Audiences: []string{api2}, Scopes: []string{"ledger:read"}},
		{Name: "api1-wide", Client: "api1", Audiences: []string{api2, api3},
			SubjectTokenTypes:   []string{"access_token", "refresh_token"},
			RequestedTokenTypes: []string{"access_token", "jwt", "id_token", "refresh_token"}},
		{Name: "api2-to-api3", Client: "api2", Audiences: []string{api3}},
		{Name: "api3-to-api4", Client: "api3", Audiences: []string{api4}},
		{Name: "batch-impersonates", Client: "batch", Mode: "impersonation", MaxChain: 1, Audiences: []string{api2}},
		{Name: "gateway-with-may-act", Client: "gateway", RequireMayAct: true, Audiences: []string{api2}, Scopes: []string{"ledger:read", "ledger:write"}},
		{Name: "gateway-plain", Client: "gateway", Audiences: []string{api2}, Scopes: []string{"ledger:read"}},
		{Name: "strict-needs-may-act", Client: "strict", RequireMayAct: true, Audiences: []string{api2}},
		{Name: "short-chain", Client: "short", MaxChain: 2, Audiences: []string{api2}},
		{Name: "partner-from-entra", Client: "partner", SubjectIssuers: []string{"entra"}, SubjectTokenTypes: []string{"jwt", "access_token"},
			Audiences: []string{api2}, Scopes: []string{"ledger:read"}},
		{Name: "partner-from-corp", Client: "partner", SubjectIssuers: []string{"corp"}, SubjectTokenTypes: []string{"saml2"},
			Audiences: []string{api3}},
		{Name: "mixed-may-act", Client: "mixed", RequireMayAct: true, Audiences: []string{api2}},
		{Name: "mixed-short", Client: "mixed", MaxChain: 1, Audiences: []string{api2}},
		{Name: "split-a", Client: "split", Audiences: []string{api2}},
		{Name: "split-b", Client: "split", Audiences: []string{api3}},
		// router: each target has one rule; the rule of api2 requires may_act, the
		// rule of api4 allows no act chain beyond the router itself.
		{Name: "router-to-api3", Client: "router", Audiences: []string{api3}},
		{Name: "router-to-api2-needs-may-act", Client: "router", RequireMayAct: true, Audiences: []string{api2}},
		{Name: "router-to-api4-short", Client: "router", MaxChain: 1, Audiences: []string{api4}},
		// vault: its one rule issues only sender-constrained tokens.
		{Name: "vault-bound-only", Client: "vault", RequireBinding: true, Audiences: []string{api2}, RequestedTokenTypes: []string{"access_token", "jwt"}},
	}
}

func newTestExchanger(t testing.TB) *Exchanger {
	t.Helper()
	x, err := New(testPolicies(), testAudiences(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// baseRequest is api1 exchanging a web-app token addressed to it, for api2: the first
// hop of design §1.
func baseRequest() Request {
	return Request{
		ClientID: "api1",
		Subject: Principal{
			TokenType: oauth.TokenTypeAccessToken,
			Issuer:    "self",
			IssuerURL: issuerURL,
			Subject:   "alice",
			Audiences: []string{api1},
			Scopes:    []string{"payments:read", "ledger:read", "ledger:write", "openid"},
			ClientID:  "web-app",
			JTI:       "t0",
			ExpiresAt: subjectExp,
		},
		Audiences: []string{api2},
	}
}

// baseDecision is what baseRequest is decided as.
func baseDecision() Decision {
	return Decision{
		Rule:          "api1-to-api2",
		Mode:          ModeDelegation,
		Subject:       "alice",
		SubjectIssuer: "self",
		Actor:         "api1",
		Act:           &oauth.Actor{Subject: "api1"},
		Audiences:     []string{api2},
		Scopes:        []string{"ledger:read"},
		ExpiresAt:     now.Add(5 * time.Minute),
		IssuedType:    oauth.TokenTypeAccessToken,
		TokenType:     oauth.TokenTypeBearer,
		ParentJTI:     "t0",
	}
}

// Key thumbprints (RFC 7638, RFC 8705 §3.1) of the test's parties.
const (
	jktWebApp = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
	jktAPI1   = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	x5tWebApp = "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"
	x5tAPI1   = "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0"
)

func entraSubject() Principal {
	return Principal{
		TokenType: oauth.TokenTypeJWT, Issuer: "entra", IssuerURL: entraURL, Subject: "alice@corp",
		Audiences: []string{"api://partner"}, Scopes: []string{"ledger:write"}, JTI: "e1", ExpiresAt: subjectExp,
	}
}

func TestDecide(t *testing.T) {
	x := newTestExchanger(t)
	tests := []struct {
		name     string
		req      func(r *Request)  // changes to baseRequest
		want     func(d *Decision) // changes to baseDecision; ok cases
		wantCode oauth.Code        // fail cases
		wantRule string            // fail cases: Denial.Rule
		wantWhy  string            // fail cases: substring of the audit reason
		wantDesc string            // fail cases, optional: the client-facing description
	}{
		// The client's policies.
		{name: "ok/base-first-hop", req: func(r *Request) {}, want: func(d *Decision) {}},
		{name: "fail/no-policy-for-client", req: func(r *Request) { r.ClientID = "web-app" },
			wantCode: oauth.CodeUnauthorizedClient, wantWhy: `no exchange policy names client "web-app"`},

		// Step 4: subject issuer and type.
		{name: "fail/subject-issuer-not-accepted", req: func(r *Request) { r.Subject = entraSubject(); r.Subject.TokenType = oauth.TokenTypeAccessToken },
			wantCode: oauth.CodeInvalidRequest, wantWhy: `policy api1-to-api2 does not accept subject tokens from issuer "entra" (accepts self); policy api1-wide does not accept`,
			wantDesc: "subject token of type access_token from issuer entra is not accepted for client api1"},
		{name: "fail/subject-type-not-accepted", req: func(r *Request) { r.Subject.TokenType = oauth.TokenTypeIDToken },
			wantCode: oauth.CodeInvalidRequest, wantWhy: "policy api1-wide does not accept subject tokens of type id_token (accepts access_token, refresh_token)"},
		{name: "ok/later-rule-accepts-subject-type", req: func(r *Request) {
			r.Subject.TokenType = oauth.TokenTypeRefreshToken
			r.Subject.ClientID = "api1"
			r.Subject.Audiences = nil
		}, want: func(d *Decision) { d.Rule = "api1-wide"; d.Scopes = []string{"ledger:read", "ledger:write"} }},
		{name: "ok/trusted-issuer-subject", req: func(r *Request) { r.ClientID = "partner"; r.Subject = entraSubject() },
			want: func(d *Decision) {
				d.Rule, d.Subject, d.SubjectIssuer, d.Actor, d.ParentJTI = "partner-from-entra", "alice@corp", "entra", "partner", "e1"
				d.Act = &oauth.Actor{Subject: "partner"}
			}},
		{name: "ok/saml-subject", req: func(r *Request) {
			r.ClientID = "partner"
			r.Subject = Principal{TokenType: oauth.TokenTypeSAML2, Issuer: "corp", IssuerURL: corpURL, Subject: "alice", JTI: "s1", ExpiresAt: subjectExp}
			r.Audiences = []string{api3}
		}, want: func(d *Decision) {
			d.Rule, d.SubjectIssuer, d.Actor, d.ParentJTI = "partner-from-corp", "corp", "partner", "s1"
			d.Act = &oauth.Actor{Subject: "partner"}
			d.Audiences = []string{api3}
			d.Scopes = []string{"audit:read", "ledger:read"}
		}},
		{name: "fail/subject-without-sub", req: func(r *Request) { r.Subject.Subject = "" },
			wantCode: oauth.CodeInvalidRequest, wantWhy: "empty sub"},
		{name: "fail/subject-expired", req: func(r *Request) { r.Subject.ExpiresAt = now.Add(-time.Second) },
			wantCode: oauth.CodeInvalidRequest, wantWhy: "subject token expired at 2026-03-01T11:59:59Z", wantDesc: "subject token expired"},
		{name: "fail/subject-expires-now", req: func(r *Request) { r.Subject.ExpiresAt = now },
			wantCode: oauth.CodeInvalidRequest, wantWhy: "subject token expired"},
		{name: "fail/expired-before-target-check", req: func(r *Request) { r.Subject.ExpiresAt = now; r.Audiences = []string{"https://unknown.example"} },
			wantCode: oauth.CodeInvalidRequest, wantWhy: "subject token expired"},

		// Step 4: subject binding.
		{name: "fail/subject-not-bound-to-client", req: func(r *Request) { r.Subject.Audiences = []string{api2, "api2"} },
			wantCode: oauth.CodeInvalidRequest, wantWhy: `hold neither client "api1" nor an audience of it`},
		{name: "fail/subject-without-audience", req: func(r *Request) { r.Subject.Audiences = nil },
			wantCode: oauth.CodeInvalidRequest, wantWhy: `hold neither client "api1"`},
		{name: "ok/bound-via-audience-client", req: func(r *Request) { r.Subject.Audiences = []string{api4, api1} }, want: func(d *Decision) {}},
		{name: "ok/bound-via-client-id", req: func(r *Request) { r.Subject.Audiences = []string{"api1"} }, want: func(d *Decision) {}},
		{name: "ok/foreign-subject-binding-left-to-verifier", req: func(r *Request) {
			r.ClientID = "partner"
			r.Subject = entraSubject()
			r.Subject.Audiences = []string{"api://someone-else"}
		}, want: func(d *Decision) {
			d.Rule, d.Subject, d.SubjectIssuer, d.Actor, d.ParentJTI = "partner-from-entra", "alice@corp", "entra", "partner", "e1"
			d.Act = &oauth.Actor{Subject: "partner"}
		}},
		{name: "fail/refresh-token-of-another-client", req: func(r *Request) {
			r.Subject.TokenType = oauth.TokenTypeRefreshToken
			r.Subject.Audiences = []string{api1} // addressed to api1, but issued to web-app
		}, wantCode: oauth.CodeInvalidRequest, wantWhy: `refresh token was issued to "web-app", not to "api1"`},

		// Step 4: actor token.
		{name: "ok/actor-token-identifies-client", req: func(r *Request) {
			r.Actor = &Principal{TokenType: oauth.TokenTypeAccessToken, Issuer: "self", IssuerURL: issuerURL, Subject: "api1", ExpiresAt: subjectExp}
		}, want: func(d *Decision) {}},
		{name: "fail/actor-token-not-client", req: func(r *Request) {
			r.Actor = &Principal{TokenType: oauth.TokenTypeAccessToken, Issuer: "self", IssuerURL: issuerURL, Subject: "api2", ExpiresAt: subjectExp}
		}, wantCode: oauth.CodeInvalidRequest, wantWhy: `actor token subject "api2" is not client "api1"`},
		{name: "ok/foreign-actor-token-names-its-issuer", req: func(r *Request) {
			r.Actor = &Principal{TokenType: oauth.TokenTypeJWT, Issuer: "entra", IssuerURL: entraURL, Subject: "api1", ExpiresAt: subjectExp}
		}, want: func(d *Decision) { d.Act = &oauth.Actor{Subject: "api1", Issuer: entraURL} }},
		{name: "fail/actor-token-expired", req: func(r *Request) {
			r.Actor = &Principal{TokenType: oauth.TokenTypeAccessToken, Issuer: "self", Subject: "api1", ExpiresAt: now}
		}, wantCode: oauth.CodeInvalidRequest, wantWhy: "actor token expired"},

		// Step 4: may_act.
		{name: "ok/may-act-matches-client", req: func(r *Request) { r.Subject.MayAct = &oauth.Actor{Subject: "api1"} }, want: func(d *Decision) {}},
		{name: "fail/may-act-mismatch", req: func(r *Request) { r.Subject.MayAct = &oauth.Actor{Subject: "api9"} },
			wantCode: oauth.CodeInvalidRequest, wantWhy: `may_act names "api9" (issuer ""), the actor is "api1" (issuer "https://deputy.example")`},
		{name: "ok/may-act-issuer-matches-self", req: func(r *Request) { r.Subject.MayAct = &oauth.Actor{Subject: "api1", Issuer: issuerURL} }, want: func(d *Decision) {}},
		{name: "fail/may-act-issuer-mismatch", req: func(r *Request) { r.Subject.MayAct = &oauth.Actor{Subject: "api1", Issuer: entraURL} },
			wantCode: oauth.CodeInvalidRequest, wantWhy: `may_act names "api1" (issuer "https://login.example/tenant/v2.0")`},
		{name: "ok/may-act-matches-foreign-actor-token", req: func(r *Request) {
			r.Subject.MayAct = &oauth.Actor{Subject: "api1", Issuer: entraURL}
			r.Actor = &Principal{TokenType: oauth.TokenTypeJWT, Issuer: "entra", IssuerURL: entraURL, Subject: "api1", ExpiresAt: subjectExp}
		}, want: func(d *Decision) { d.Act = &oauth.Actor{Subject: "api1", Issuer: entraURL} }},
		{name: "fail/may-act-required", req: func(r *Request) { r.ClientID = "strict"; r.Subject.Audiences = []string{"strict"} },
			wantCode: oauth.CodeInvalidRequest, wantRule: "strict-needs-may-act", wantWhy: "policy strict-needs-may-act requires a may_act claim in the subject token",
			wantDesc: "subject token has no may_act claim, which the policy for this target requires"},
		{name: "ok/may-act-required-present", req: func(r *Request) {
			r.ClientID = "strict"
			r.Subject.Audiences = []string{"strict"}
			r.Subject.MayAct = &oauth.Actor{Subject: "strict"}
		}, want: func(d *Decision) {
			d.Rule, d.Actor, d.Act = "strict-needs-may-act", "strict", &oauth.Actor{Subject: "strict"}
			d.Scopes = []string{"ledger:read", "ledger:write"}
		}},
		{name: "fail/first-matching-rule-requires-may-act", req: func(r *Request) { r.ClientID = "gateway"; r.Subject.Audiences = []string{"gateway"} },
			// gateway-plain allows the same target, but gateway-with-may-act comes first
			// and decides.
			wantCode: oauth.CodeInvalidRequest, wantRule: "gateway-with-may-act", wantWhy: "policy gateway-with-may-act requires a may_act claim"},
		{name: "ok/may-act-rule-first-with-may-act", req: func(r *Request) {
			r.ClientID = "gateway"
			r.Subject.Audiences = []string{"gateway"}
			r.Subject.MayAct = &oauth.Actor{Subject: "gateway"}
		}, want: func(d *Decision) {
			d.Rule, d.Actor, d.Act = "gateway-with-may-act", "gateway", &oauth.Actor{Subject: "gateway"}
			d.Scopes = []string{"ledger:read", "ledger:write"}
		}},

		// The deciding rule is the first whose client, subject issuer and type and targets
		// match; its require_may_act and max_chain are checked against it (design §5
		// "Policy matching"): a token it refuses is invalid_request naming the claim, and
		// the audit record names the rule, never invalid_target.
		{name: "fail/only-target-rule-requires-may-act", req: func(r *Request) {
			r.ClientID = "router"
			r.Subject.Audiences = []string{"router"}
		}, wantCode: oauth.CodeInvalidRequest, wantRule: "router-to-api2-needs-may-act",
			wantWhy:  "policy router-to-api2-needs-may-act requires a may_act claim in the subject token",
			wantDesc: "subject token has no may_act claim, which the policy for this target requires"},
		{name: "ok/only-target-rule-requires-may-act-present", req: func(r *Request) {
			r.ClientID = "router"
			r.Subject.Audiences = []string{"router"}
			r.Subject.MayAct = &oauth.Actor{Subject: "router"}
		}, want: func(d *Decision) {
			d.Rule, d.Actor, d.Act = "router-to-api2-needs-may-act", "router", &oauth.Actor{Subject: "router"}
			d.Scopes = []string{"ledger:read", "ledger:write"}
		}},
		{name: "fail/only-target-rule-chain-too-long", req: func(r *Request) {
			r.ClientID = "router"
			r.Subject.Audiences = []string{"router"}
			r.Subject.Act = &oauth.Actor{Subject: "api0"}
			r.Audiences = []string{api4}
		}, wantCode: oauth.CodeInvalidRequest, wantRule: "router-to-api4-short",
			wantWhy:  "policy router-to-api4-short allows an act chain of at most 1 in delegation, the issued token would carry 2",
			wantDesc: "act chain would be longer than the policy for this target allows (max_chain)"},
		{name: "ok/other-target-rule-ignores-requirements", req: func(r *Request) {
			r.ClientID = "router"
			r.Subject.Audiences = []string{"router"}
			r.Subject.Act = &oauth.Actor{Subject: "api0"}
			r.Audiences = []string{api3}
		}, want: func(d *Decision) {
			d.Rule, d.Actor, d.Audiences, d.Scopes = "router-to-api3", "router", []string{api3}, []string{"ledger:read"}
			d.Act = &oauth.Actor{Subject: "router", Actor: &oauth.Actor{Subject: "api0"}}
		}},

		// Step 4: act chain and max_chain.
		{name: "ok/delegation-nests-act", req: func(r *Request) { r.Subject.Act = &oauth.Actor{Subject: "api0"} },
			want: func(d *Decision) { d.Act = &oauth.Actor{Subject: "api1", Actor: &oauth.Actor{Subject: "api0"}} }},
		{name: "ok/chain-at-max", req: func(r *Request) {
			r.ClientID = "short"
			r.Subject.Audiences = []string{"short"}
			r.Subject.Act = &oauth.Actor{Subject: "api0"}
		}, want: func(d *Decision) {
			d.Rule, d.Actor = "short-chain", "short"
			d.Act = &oauth.Actor{Subject: "short", Actor: &oauth.Actor{Subject: "api0"}}
			d.Scopes = []string{"ledger:read", "ledger:write"}
		}},
		{name: "fail/chain-longer-than-max", req: func(r *Request) {
			r.ClientID = "short"
			r.Subject.Audiences = []string{"short"}
			r.Subject.Act = &oauth.Actor{Subject: "b", Actor: &oauth.Actor{Subject: "a"}}
		}, wantCode: oauth.CodeInvalidRequest, wantRule: "short-chain", wantWhy: "policy short-chain allows an act chain of at most 2 in delegation, the issued token would carry 3",
			wantDesc: "act chain would be longer than the policy for this target allows (max_chain)"},
		{name: "fail/deciding-rule-may-act-checked-before-chain", req: func(r *Request) {
			r.ClientID = "mixed"
			r.Subject.Audiences = []string{"mixed"}
			r.Subject.Act = &oauth.Actor{Subject: "a"}
		}, wantCode: oauth.CodeInvalidRequest, wantRule: "mixed-may-act",
			wantWhy:  "policy mixed-may-act requires a may_act claim in the subject token",
			wantDesc: "subject token has no may_act claim, which the policy for this target requires"},
		{name: "fail/later-rule-does-not-stand-in-for-deciding-rule", req: func(r *Request) { r.ClientID = "mixed"; r.Subject.Audiences = []string{"mixed"} },
			// mixed-short would accept this token, but mixed-may-act decides.
			wantCode: oauth.CodeInvalidRequest, wantRule: "mixed-may-act", wantWhy: "policy mixed-may-act requires a may_act claim"},
		{name: "ok/deciding-rule-requirements-met", req: func(r *Request) {
			r.ClientID = "mixed"
			r.Subject.Audiences = []string{"mixed"}
			r.Subject.MayAct = &oauth.Actor{Subject: "mixed"}
			r.Subject.Act = &oauth.Actor{Subject: "a"}
		}, want: func(d *Decision) {
			d.Rule, d.Actor = "mixed-may-act", "mixed"
			d.Act = &oauth.Actor{Subject: "mixed", Actor: &oauth.Actor{Subject: "a"}}
			d.Scopes = []string{"ledger:read", "ledger:write"}
		}},
		{name: "fail/chain-longer-than-default-max", req: func(r *Request) {
			r.Subject.Act = &oauth.Actor{Subject: "d", Actor: &oauth.Actor{Subject: "c", Actor: &oauth.Actor{Subject: "b", Actor: &oauth.Actor{Subject: "a"}}}}
		}, wantCode: oauth.CodeInvalidRequest, wantRule: "api1-to-api2", wantWhy: "policy api1-to-api2 allows an act chain of at most 4 in delegation, the issued token would carry 5"},
		{name: "fail/malformed-act-without-sub", req: func(r *Request) { r.Subject.Act = &oauth.Actor{Subject: "api0", Actor: &oauth.Actor{Issuer: entraURL}} },
			wantCode: oauth.CodeInvalidRequest, wantWhy: "act chain level 1 has no sub"},
		{name: "ok/foreign-nested-act-names-its-issuer", req: func(r *Request) {
			r.ClientID = "partner"
			r.Subject = entraSubject()
			r.Subject.Act = &oauth.Actor{Subject: "frontend", Actor: &oauth.Actor{Subject: "deputy-client", Issuer: issuerURL}}
		}, want: func(d *Decision) {
			d.Rule, d.Subject, d.SubjectIssuer, d.Actor, d.ParentJTI = "partner-from-entra", "alice@corp", "entra", "partner", "e1"
			d.Act = &oauth.Actor{Subject: "partner", Actor: &oauth.Actor{Subject: "frontend", Issuer: entraURL, Actor: &oauth.Actor{Subject: "deputy-client"}}}
		}},

		// Impersonation.
		{name: "ok/impersonation-without-act", req: func(r *Request) { r.ClientID = "batch"; r.Subject.Audiences = []string{"batch"} },
			want: func(d *Decision) {
				d.Rule, d.Mode, d.Actor, d.Act = "batch-impersonates", ModeImpersonation, "batch", nil
				d.Scopes = []string{"ledger:read", "ledger:write"}
			}},
		{name: "ok/impersonation-keeps-existing-act", req: func(r *Request) {
			r.ClientID = "batch"
			r.Subject.Audiences = []string{"batch"}
			r.Subject.Act = &oauth.Actor{Subject: "api0"}
		}, want: func(d *Decision) {
			d.Rule, d.Mode, d.Actor, d.Act = "batch-impersonates", ModeImpersonation, "batch", &oauth.Actor{Subject: "api0"}
			d.Scopes = []string{"ledger:read", "ledger:write"}
		}},
		{name: "fail/impersonation-chain-longer-than-max", req: func(r *Request) {
			r.ClientID = "batch"
			r.Subject.Audiences = []string{"batch"}
			r.Subject.Act = &oauth.Actor{Subject: "b", Actor: &oauth.Actor{Subject: "a"}}
		}, wantCode: oauth.CodeInvalidRequest, wantRule: "batch-impersonates", wantWhy: "policy batch-impersonates allows an act chain of at most 1 in impersonation, the issued token would carry 2"},

		// Step 5: targets.
		{name: "ok/first-matching-rule-decides", req: func(r *Request) { r.Scopes = []string{"ledger:read"} }, want: func(d *Decision) {}},
		{name: "ok/later-rule-allows-target", req: func(r *Request) { r.Audiences = []string{api3} },
			want: func(d *Decision) {
				d.Rule, d.Audiences, d.Scopes = "api1-wide", []string{api3}, []string{"ledger:read"}
			}},
		{name: "ok/resource-as-target", req: func(r *Request) { r.Audiences, r.Resources = nil, []string{api2} }, want: func(d *Decision) {}},
		{name: "ok/targets-deduplicated-in-request-order", req: func(r *Request) {
			r.Audiences, r.Resources = []string{api3, api2, api3}, []string{api2}
		}, want: func(d *Decision) {
			d.Rule, d.Audiences, d.Scopes = "api1-wide", []string{api3, api2}, []string{"ledger:read", "ledger:write"}
		}},
		{name: "fail/resource-with-fragment", req: func(r *Request) { r.Audiences, r.Resources = nil, []string{api2 + "#x"} },
			wantCode: oauth.CodeInvalidTarget, wantWhy: `resource "https://api2.example#x" is not an absolute URI`},
		{name: "fail/resource-with-empty-fragment", req: func(r *Request) { r.Audiences, r.Resources = nil, []string{api2 + "#"} },
			wantCode: oauth.CodeInvalidTarget, wantWhy: "without fragment"},
		{name: "fail/resource-not-absolute", req: func(r *Request) { r.Audiences, r.Resources = nil, []string{"api2"} },
			wantCode: oauth.CodeInvalidTarget, wantWhy: `resource "api2" is not an absolute URI`},
		{name: "fail/resource-syntax-before-unknown-audience", req: func(r *Request) { r.Audiences, r.Resources = []string{"nope"}, []string{"/relative"} },
			wantCode: oauth.CodeInvalidTarget, wantWhy: `resource "/relative"`},
		{name: "fail/unknown-audience", req: func(r *Request) { r.Audiences = []string{api2, "https://unknown.example"} },
			wantCode: oauth.CodeInvalidTarget, wantWhy: `"https://unknown.example" is not a configured audience`},
		{name: "fail/unknown-resource", req: func(r *Request) { r.Audiences, r.Resources = nil, []string{"https://unknown.example/"} },
			wantCode: oauth.CodeInvalidTarget, wantWhy: "is not a configured audience"},
		{name: "fail/audience-not-allowed-by-policy", req: func(r *Request) { r.Audiences = []string{api4} },
			wantCode: oauth.CodeInvalidTarget, wantWhy: `policy api1-to-api2 does not allow audience "https://api4.example"; policy api1-wide does not allow audience "https://api4.example"`},
		{name: "fail/no-single-rule-allows-all-targets", req: func(r *Request) {
			r.ClientID = "split"
			r.Subject.Audiences = []string{"split"}
			r.Audiences = []string{api2, api3}
		}, wantCode: oauth.CodeInvalidTarget, wantWhy: `policy split-a does not allow audience "https://api3.example"; policy split-b does not allow audience "https://api2.example"`},
		{name: "ok/default-single-audience", req: func(r *Request) {
			r.ClientID = "api2"
			r.Subject.Audiences = []string{api2}
			r.Audiences = nil
		}, want: func(d *Decision) {
			d.Rule, d.Actor, d.Act, d.Audiences = "api2-to-api3", "api2", &oauth.Actor{Subject: "api2"}, []string{api3}
			d.Scopes = []string{"ledger:read"}
		}},
		{name: "fail/ambiguous-default-audience", req: func(r *Request) { r.Audiences = nil },
			wantCode: oauth.CodeInvalidRequest, wantWhy: `allow 2 audiences ["https://api2.example" "https://api3.example"]`,
			wantDesc: "audience or resource required"},
		{name: "ok/default-audience-of-surviving-rules", req: func(r *Request) { r.ClientID = "partner"; r.Subject = entraSubject(); r.Audiences = nil },
			want: func(d *Decision) {
				d.Rule, d.Subject, d.SubjectIssuer, d.Actor, d.ParentJTI = "partner-from-entra", "alice@corp", "entra", "partner", "e1"
				d.Act = &oauth.Actor{Subject: "partner"}
			}},

		// Step 6: scopes.
		{name: "ok/scopes-default-to-all-allowed", req: func(r *Request) { r.Audiences = []string{api3} },
			want: func(d *Decision) {
				d.Rule, d.Audiences, d.Scopes = "api1-wide", []string{api3}, []string{"ledger:read"}
			}},
		{name: "fail/scope-escalation", req: func(r *Request) { r.Scopes = []string{"ledger:read", "ledger:write"} },
			wantCode: oauth.CodeInvalidScope, wantRule: "api1-to-api2", wantWhy: `scope "ledger:write" is beyond the policy's scopes (policy api1-to-api2, audiences ["https://api2.example"])`,
			wantDesc: `scope "ledger:write" is beyond what may be granted`},
		{name: "fail/scope-not-in-subject-token", req: func(r *Request) { r.Audiences = []string{api3}; r.Scopes = []string{"audit:read"} },
			wantCode: oauth.CodeInvalidScope, wantRule: "api1-wide", wantWhy: `scope "audit:read" is not in the subject token's scopes`},
		{name: "fail/scope-not-offered-by-audience", req: func(r *Request) { r.Audiences = []string{api3}; r.Scopes = []string{"payments:read"} },
			wantCode: oauth.CodeInvalidScope, wantRule: "api1-wide", wantWhy: `scope "payments:read" is offered by none of the requested audiences (policy api1-wide, audiences ["https://api3.example"])`},
		{name: "fail/scope-names-first-offender", req: func(r *Request) { r.Scopes = []string{"ledger:read", "openid", "ledger:write"} },
			wantCode: oauth.CodeInvalidScope, wantRule: "api1-to-api2", wantWhy: `scope "openid"`},
		{name: "ok/rule-without-scopes-imposes-no-bound", req: func(r *Request) {
			r.Audiences = []string{api3}
			r.Subject.Scopes = []string{"ledger:read", "audit:read", "openid"}
		}, want: func(d *Decision) {
			d.Rule, d.Audiences, d.Scopes = "api1-wide", []string{api3}, []string{"audit:read", "ledger:read"}
		}},
		{name: "ok/scopes-from-union-of-target-audiences", req: func(r *Request) {
			r.Audiences = []string{api2, api3}
			r.Subject.Scopes = []string{"ledger:write", "audit:read"}
		}, want: func(d *Decision) {
			d.Rule, d.Audiences, d.Scopes = "api1-wide", []string{api2, api3}, []string{"audit:read", "ledger:write"}
		}},
		{name: "ok/requested-scopes-sorted-deduplicated", req: func(r *Request) {
			r.Audiences = []string{api2, api3}
			r.Scopes = []string{"ledger:write", "", "ledger:read", "ledger:write"}
		}, want: func(d *Decision) {
			d.Rule, d.Audiences, d.Scopes = "api1-wide", []string{api2, api3}, []string{"ledger:read", "ledger:write"}
		}},
		{name: "ok/requested-subset", req: func(r *Request) { r.Audiences = []string{api3}; r.Scopes = []string{"ledger:read"} },
			want: func(d *Decision) { d.Rule, d.Audiences = "api1-wide", []string{api3} }},
		{name: "ok/nothing-allowed-grants-nothing", req: func(r *Request) { r.Subject.Scopes = []string{"openid"} },
			want: func(d *Decision) { d.Scopes = nil }},
		{name: "ok/empty-scope-request-is-none", req: func(r *Request) { r.Scopes = []string{""} }, want: func(d *Decision) {}},
		{name: "ok/foreign-subject-scopes-ignored", req: func(r *Request) {
			r.ClientID = "partner"
			r.Subject = entraSubject() // carries ledger:write, which is not deputy's to honour
			r.Scopes = []string{"ledger:read"}
		}, want: func(d *Decision) {
			d.Rule, d.Subject, d.SubjectIssuer, d.Actor, d.ParentJTI = "partner-from-entra", "alice@corp", "entra", "partner", "e1"
			d.Act = &oauth.Actor{Subject: "partner"}
		}},
		{name: "fail/foreign-subject-scope-beyond-policy", req: func(r *Request) {
			r.ClientID = "partner"
			r.Subject = entraSubject()
			r.Scopes = []string{"ledger:write"}
		}, wantCode: oauth.CodeInvalidScope, wantRule: "partner-from-entra", wantWhy: `scope "ledger:write" is beyond the policy's scopes (policy partner-from-entra`},

		// Step 7: requested token type, and the type-dependent lifetime.
		{name: "fail/requested-type-not-allowed", req: func(r *Request) { r.RequestedType = oauth.TokenTypeJWT },
			wantCode: oauth.CodeInvalidRequest, wantRule: "api1-to-api2", wantWhy: "policy api1-to-api2 does not allow requested token type jwt (allows access_token)"},
		{name: "fail/requested-unknown-type", req: func(r *Request) { r.Audiences = []string{api3}; r.RequestedType = "urn:example:nope" },
			wantCode: oauth.CodeInvalidRequest, wantRule: "api1-wide", wantWhy: `requested token type "urn:example:nope"`},
		{name: "fail/scope-checked-before-requested-type", req: func(r *Request) { r.RequestedType = oauth.TokenTypeJWT; r.Scopes = []string{"ledger:write"} },
			wantCode: oauth.CodeInvalidScope, wantRule: "api1-to-api2"},
		{name: "ok/requested-access-token-explicitly", req: func(r *Request) { r.RequestedType = oauth.TokenTypeAccessToken }, want: func(d *Decision) {}},
		{name: "ok/requested-jwt-is-not-bearer", req: func(r *Request) { r.Audiences = []string{api3}; r.RequestedType = oauth.TokenTypeJWT },
			want: func(d *Decision) {
				d.Rule, d.Audiences, d.Scopes = "api1-wide", []string{api3}, []string{"ledger:read"}
				d.IssuedType, d.TokenType = oauth.TokenTypeJWT, oauth.TokenTypeNA
			}},
		{name: "ok/requested-id-token-lifetime", req: func(r *Request) { r.Audiences = []string{api3}; r.RequestedType = oauth.TokenTypeIDToken },
			want: func(d *Decision) {
				d.Rule, d.Audiences, d.Scopes = "api1-wide", []string{api3}, []string{"ledger:read"}
				d.IssuedType, d.TokenType, d.ExpiresAt = oauth.TokenTypeIDToken, oauth.TokenTypeNA, now.Add(10*time.Minute)
			}},
		{name: "ok/requested-refresh-token-capped-by-subject", req: func(r *Request) { r.Audiences = []string{api3}; r.RequestedType = oauth.TokenTypeRefreshToken },
			want: func(d *Decision) {
				d.Rule, d.Audiences, d.Scopes = "api1-wide", []string{api3}, []string{"ledger:read"}
				d.IssuedType, d.TokenType, d.ExpiresAt = oauth.TokenTypeRefreshToken, oauth.TokenTypeNA, subjectExp
			}},

		// Lifetime.
		{name: "ok/lifetime-capped-by-ttl", req: func(r *Request) { r.Subject.ExpiresAt = now.Add(5*time.Minute + time.Second) }, want: func(d *Decision) {}},
		{name: "ok/lifetime-capped-by-subject", req: func(r *Request) { r.Subject.ExpiresAt = now.Add(time.Minute) },
			want: func(d *Decision) { d.ExpiresAt = now.Add(time.Minute) }},
		{name: "ok/lifetime-capped-by-actor", req: func(r *Request) {
			r.Actor = &Principal{TokenType: oauth.TokenTypeAccessToken, Issuer: "self", Subject: "api1", ExpiresAt: now.Add(30 * time.Second)}
		}, want: func(d *Decision) { d.ExpiresAt = now.Add(30 * time.Second) }},
		{name: "ok/subject-without-expiry-gets-ttl", req: func(r *Request) { r.Subject.ExpiresAt = time.Time{} }, want: func(d *Decision) {}},

		// Sender-constrained tokens (RFC 9449, RFC 8705): binding survives every hop
		// (README "Token exchange rules").
		{name: "ok/unbound-request-issues-bearer", req: func(r *Request) {}, want: func(d *Decision) {}},
		{name: "fail/bound-subject-unbound-request", req: func(r *Request) { r.Subject.Cnf = &oauth.Confirmation{JKT: jktWebApp} },
			wantCode: oauth.CodeInvalidRequest, wantWhy: "subject token is bound to jkt " + jktWebApp + ", the request proves no key",
			wantDesc: "the subject token is sender-constrained; the exchange must be too"},
		{name: "fail/cert-bound-subject-unbound-request", req: func(r *Request) { r.Subject.Cnf = &oauth.Confirmation{X5TS256: x5tWebApp} },
			wantCode: oauth.CodeInvalidRequest, wantWhy: "subject token is bound to x5t#S256 " + x5tWebApp,
			wantDesc: "the subject token is sender-constrained; the exchange must be too"},
		{name: "fail/bound-subject-unbound-request-before-targets", req: func(r *Request) {
			r.Subject.Cnf = &oauth.Confirmation{JKT: jktWebApp}
			r.Audiences = []string{"https://unknown.example"}
		}, wantCode: oauth.CodeInvalidRequest, wantDesc: "the subject token is sender-constrained; the exchange must be too"},
		{name: "fail/bound-subject-unbound-request-before-scopes", req: func(r *Request) {
			r.Subject.Cnf = &oauth.Confirmation{JKT: jktWebApp}
			r.Scopes = []string{"ledger:write"}
		}, wantCode: oauth.CodeInvalidRequest, wantDesc: "the subject token is sender-constrained; the exchange must be too"},
		{name: "fail/subject-not-addressed-before-binding", req: func(r *Request) {
			r.Subject.Cnf = &oauth.Confirmation{JKT: jktWebApp}
			r.Subject.Audiences = []string{api3}
		}, wantCode: oauth.CodeInvalidRequest, wantDesc: "subject token is not addressed to the client"},
		{name: "ok/bound-subject-bound-to-requester-key", req: func(r *Request) {
			r.Subject.Cnf = &oauth.Confirmation{JKT: jktWebApp}
			r.Binding = &oauth.Confirmation{JKT: jktAPI1}
		}, want: func(d *Decision) { d.Cnf, d.TokenType = &oauth.Confirmation{JKT: jktAPI1}, oauth.TokenTypeDPoP }},
		{name: "ok/bound-subject-cert-bound-request-stays-bearer", req: func(r *Request) {
			r.Subject.Cnf = &oauth.Confirmation{JKT: jktWebApp}
			r.Binding = &oauth.Confirmation{X5TS256: x5tAPI1}
		}, want: func(d *Decision) { d.Cnf = &oauth.Confirmation{X5TS256: x5tAPI1} }},
		{name: "ok/unbound-subject-bound-request-upgrades", req: func(r *Request) { r.Binding = &oauth.Confirmation{JKT: jktAPI1} },
			want: func(d *Decision) { d.Cnf, d.TokenType = &oauth.Confirmation{JKT: jktAPI1}, oauth.TokenTypeDPoP }},
		{name: "ok/empty-binding-is-no-binding", req: func(r *Request) { r.Binding = &oauth.Confirmation{} }, want: func(d *Decision) {}},
		{name: "fail/bound-subject-empty-binding", req: func(r *Request) {
			r.Subject.Cnf = &oauth.Confirmation{JKT: jktWebApp}
			r.Binding = &oauth.Confirmation{}
		}, wantCode: oauth.CodeInvalidRequest, wantDesc: "the subject token is sender-constrained; the exchange must be too"},
		{name: "ok/bound-subject-jwt-carries-binding", req: func(r *Request) {
			r.Subject.Cnf = &oauth.Confirmation{JKT: jktWebApp}
			r.Binding = &oauth.Confirmation{JKT: jktAPI1}
			r.Audiences, r.RequestedType = []string{api3}, oauth.TokenTypeJWT
		}, want: func(d *Decision) {
			d.Rule, d.Audiences, d.Scopes = "api1-wide", []string{api3}, []string{"ledger:read"}
			d.IssuedType, d.TokenType, d.Cnf = oauth.TokenTypeJWT, oauth.TokenTypeNA, &oauth.Confirmation{JKT: jktAPI1}
		}},
		{name: "fail/bound-subject-id-token", req: func(r *Request) {
			r.Subject.Cnf = &oauth.Confirmation{JKT: jktWebApp}
			r.Binding = &oauth.Confirmation{JKT: jktAPI1}
			r.Audiences, r.RequestedType = []string{api3}, oauth.TokenTypeIDToken
		}, wantCode: oauth.CodeInvalidRequest, wantRule: "api1-wide", wantWhy: "the subject token is bound",
			wantDesc: "requested token type id_token cannot be sender-constrained, and this exchange must issue a bound token"},
		{name: "fail/bound-subject-refresh-token", req: func(r *Request) {
			r.Subject.Cnf = &oauth.Confirmation{JKT: jktWebApp}
			r.Binding = &oauth.Confirmation{JKT: jktAPI1}
			r.Audiences, r.RequestedType = []string{api3}, oauth.TokenTypeRefreshToken
		}, wantCode: oauth.CodeInvalidRequest, wantRule: "api1-wide",
			wantDesc: "requested token type refresh_token cannot be sender-constrained, and this exchange must issue a bound token"},
		{name: "ok/bound-subject-no-refresh-token-beside", req: func(r *Request) {
			r.Subject.Cnf = &oauth.Confirmation{JKT: jktWebApp}
			r.Binding = &oauth.Confirmation{JKT: jktAPI1}
			r.Audiences = []string{api3}
		}, want: func(d *Decision) {
			d.Rule, d.Audiences, d.Scopes = "api1-wide", []string{api3}, []string{"ledger:read"}
			d.Cnf, d.TokenType = &oauth.Confirmation{JKT: jktAPI1}, oauth.TokenTypeDPoP
		}},
		{name: "ok/upgraded-unbound-subject-keeps-refresh-token-beside", req: func(r *Request) {
			r.Binding = &oauth.Confirmation{JKT: jktAPI1}
			r.Audiences = []string{api3}
		}, want: func(d *Decision) {
			d.Rule, d.Audiences, d.Scopes = "api1-wide", []string{api3}, []string{"ledger:read"}
			d.Cnf, d.TokenType = &oauth.Confirmation{JKT: jktAPI1}, oauth.TokenTypeDPoP
		}},
		{name: "ok/unbound-subject-id-token-unbound", req: func(r *Request) {
			r.Binding = &oauth.Confirmation{JKT: jktAPI1}
			r.Audiences, r.RequestedType = []string{api3}, oauth.TokenTypeIDToken
		}, want: func(d *Decision) {
			d.Rule, d.Audiences, d.Scopes = "api1-wide", []string{api3}, []string{"ledger:read"}
			d.IssuedType, d.TokenType, d.ExpiresAt = oauth.TokenTypeIDToken, oauth.TokenTypeNA, now.Add(10*time.Minute)
		}},
		{name: "fail/require-binding-unbound-request", req: func(r *Request) { r.ClientID = "vault"; r.Subject.Audiences = []string{"vault"} },
			wantCode: oauth.CodeInvalidRequest, wantRule: "vault-bound-only",
			wantWhy:  "policy vault-bound-only requires a sender-constrained request (require_binding)",
			wantDesc: "the policy for this target issues only sender-constrained tokens; send a DPoP proof or use a bound client certificate"},
		{name: "ok/require-binding-bound-request", req: func(r *Request) {
			r.ClientID = "vault"
			r.Subject.Audiences = []string{"vault"}
			r.Binding = &oauth.Confirmation{JKT: jktAPI1}
		}, want: func(d *Decision) {
			d.Rule, d.Actor, d.Act = "vault-bound-only", "vault", &oauth.Actor{Subject: "vault"}
			d.Scopes = []string{"ledger:read", "ledger:write"}
			d.Cnf, d.TokenType = &oauth.Confirmation{JKT: jktAPI1}, oauth.TokenTypeDPoP
		}},
		{name: "fail/require-binding-after-max-chain", req: func(r *Request) {
			r.ClientID = "vault"
			r.Subject.Audiences = []string{"vault"}
			r.Subject.Act = &oauth.Actor{Subject: "d", Actor: &oauth.Actor{Subject: "c", Actor: &oauth.Actor{Subject: "b", Actor: &oauth.Actor{Subject: "a"}}}}
		}, wantCode: oauth.CodeInvalidRequest, wantRule: "vault-bound-only", wantWhy: "allows an act chain of at most 4"},
		{name: "fail/require-binding-before-scopes", req: func(r *Request) {
			r.ClientID = "vault"
			r.Subject.Audiences = []string{"vault"}
			r.Scopes = []string{"payments:read"}
		}, wantCode: oauth.CodeInvalidRequest, wantRule: "vault-bound-only", wantWhy: "require_binding"},
		{name: "fail/bound-actor-token-unbound-request", req: func(r *Request) {
			r.Actor = &Principal{TokenType: oauth.TokenTypeAccessToken, Issuer: "self", IssuerURL: issuerURL, Subject: "api1", ExpiresAt: subjectExp,
				Cnf: &oauth.Confirmation{JKT: jktAPI1}}
		}, wantCode: oauth.CodeInvalidRequest, wantWhy: "actor token is bound to jkt " + jktAPI1 + ", the request proves no key",
			wantDesc: "the actor token is sender-constrained; the request must prove its key"},
		{name: "fail/bound-actor-token-other-key", req: func(r *Request) {
			r.Actor = &Principal{TokenType: oauth.TokenTypeAccessToken, Issuer: "self", IssuerURL: issuerURL, Subject: "api1", ExpiresAt: subjectExp,
				Cnf: &oauth.Confirmation{JKT: jktAPI1}}
			r.Binding = &oauth.Confirmation{JKT: jktWebApp}
		}, wantCode: oauth.CodeInvalidRequest, wantWhy: "actor token is bound to jkt " + jktAPI1 + ", the request proves jkt " + jktWebApp,
			wantDesc: "the actor token is sender-constrained; the request must prove its key"},
		{name: "fail/cert-bound-actor-token-dpop-request", req: func(r *Request) {
			r.Actor = &Principal{TokenType: oauth.TokenTypeAccessToken, Issuer: "self", IssuerURL: issuerURL, Subject: "api1", ExpiresAt: subjectExp,
				Cnf: &oauth.Confirmation{X5TS256: x5tAPI1}}
			r.Binding = &oauth.Confirmation{JKT: jktAPI1}
		}, wantCode: oauth.CodeInvalidRequest, wantDesc: "the actor token is sender-constrained; the request must prove its key"},
		{name: "ok/bound-actor-token-same-key", req: func(r *Request) {
			r.Actor = &Principal{TokenType: oauth.TokenTypeAccessToken, Issuer: "self", IssuerURL: issuerURL, Subject: "api1", ExpiresAt: subjectExp,
				Cnf: &oauth.Confirmation{JKT: jktAPI1}}
			r.Binding = &oauth.Confirmation{JKT: jktAPI1}
		}, want: func(d *Decision) { d.Cnf, d.TokenType = &oauth.Confirmation{JKT: jktAPI1}, oauth.TokenTypeDPoP }},

		// Claims.
		{name: "ok/claims-carried-without-reserved", req: func(r *Request) {
			r.Subject.Claims = map[string]any{"acr": "mfa", "auth_time": int64(1700000000), "may_act": map[string]any{"sub": "x"}, "aud": "evil", "act": "x", "exp": 1}
		}, want: func(d *Decision) { d.Claims = map[string]any{"acr": "mfa", "auth_time": int64(1700000000)} }},
		{name: "ok/only-reserved-claims-carry-nothing", req: func(r *Request) { r.Subject.Claims = map[string]any{"may_act": "x"} }, want: func(d *Decision) {}},
	}
	names := map[string]bool{}
	for _, tt := range tests {
		if names[tt.name] {
			t.Fatalf("duplicate test name %s", tt.name)
		}
		names[tt.name] = true
		t.Run(tt.name, func(t *testing.T) {
			req := baseRequest()
			tt.req(&req)
			got, err := x.Decide(req, now)
			if tt.want != nil {
				if err != nil {
					t.Fatalf("Decide: %v", err)
				}
				want := baseDecision()
				tt.want(&want)
				if want.Rule == "api1-wide" && want.RefreshExpiresAt.IsZero() && !req.Subject.Cnf.Bound() {
					// api1-wide lists refresh_token (the others do not): a refresh
					// token would live as long as the subject token, the refresh TTL
					// (a day) being longer than any subject token here. Not beside a
					// token that must stay bound (README "Token exchange rules").
					want.RefreshExpiresAt = req.Subject.ExpiresAt
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("Decision\n got %+v act %v\nwant %+v act %v", got, actString(got.Act), want, actString(want.Act))
				}
				return
			}
			oe := checkDenial(t, err, tt.wantCode, tt.wantRule, tt.wantWhy)
			if tt.wantDesc != "" && oe.Description != tt.wantDesc {
				t.Errorf("description = %q, want %q", oe.Description, tt.wantDesc)
			}
			if !reflect.DeepEqual(got, Decision{}) {
				t.Errorf("a denial returned a non-zero Decision %+v", got)
			}
		})
	}
}

// checkDenial asserts err is a *Denial for rule wrapping an *oauth.Error with code,
// a client-facing description, and an audit reason containing why.
func checkDenial(t *testing.T, err error, code oauth.Code, rule, why string) *oauth.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("Decide succeeded, want %s", code)
	}
	var den *Denial
	if !errors.As(err, &den) {
		t.Fatalf("error %T %v is not a *Denial", err, err)
	}
	var oe *oauth.Error
	if !errors.As(err, &oe) || oe != den.Err {
		t.Fatalf("errors.As(*oauth.Error) does not reach Denial.Err")
	}
	if oe.Code != code {
		t.Errorf("code = %s, want %s (%v)", oe.Code, code, err)
	}
	if den.Rule != rule {
		t.Errorf("Denial.Rule = %q, want %q", den.Rule, rule)
	}
	if oe.Cause == nil {
		t.Fatalf("no cause for the audit trail")
	}
	if !strings.Contains(oe.Cause.Error(), why) {
		t.Errorf("cause = %q, want it to contain %q", oe.Cause, why)
	}
	// The description is a short sentence for the client; which rules exist and why
	// they did not match is for the audit trail only.
	if d := oe.Description; d == "" || strings.Contains(d, oe.Cause.Error()) || len(d) > 120 {
		t.Errorf("description %q: want a short client-facing sentence", d)
	}
	for _, p := range testPolicies() {
		if strings.Contains(oe.Description, p.Name) {
			t.Errorf("description %q names policy %s", oe.Description, p.Name)
		}
	}
	return oe
}

func actString(a *oauth.Actor) string {
	if a == nil {
		return "<nil>"
	}
	s := "{sub:" + a.Subject
	if a.Issuer != "" {
		s += " iss:" + a.Issuer
	}
	if a.Actor != nil {
		s += " act:" + actString(a.Actor)
	}
	return s + "}"
}

// TestThreeHopDelegation runs design §1: the web app's token T0 for api1 is exchanged
// by api1 for api2, by api2 for api3 and by api3 for api4; each issued token is fed to
// the next hop as deputy's verifier would normalise it.
func TestThreeHopDelegation(t *testing.T) {
	x := newTestExchanger(t)
	tok := baseRequest().Subject // T0 {sub: alice, aud: api1}
	hops := []struct{ client, target, rule string }{
		{"api1", api2, "api1-to-api2"},
		{"api2", api3, "api2-to-api3"},
		{"api3", api4, "api3-to-api4"},
	}
	var d Decision
	for i, h := range hops {
		var err error
		d, err = x.Decide(Request{ClientID: h.client, Subject: tok, Audiences: []string{h.target}}, now.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatalf("hop %d (%s): %v", i+1, h.client, err)
		}
		if d.Rule != h.rule || d.Subject != "alice" || d.Actor != h.client || d.ParentJTI != tok.JTI {
			t.Fatalf("hop %d: %+v", i+1, d)
		}
		tok = Principal{
			TokenType: d.IssuedType, Issuer: "self", IssuerURL: issuerURL, Subject: d.Subject,
			Audiences: d.Audiences, Scopes: d.Scopes, ClientID: h.client, Act: d.Act,
			JTI: "t" + string(rune('1'+i)), ExpiresAt: d.ExpiresAt,
		}
	}
	want := &oauth.Actor{Subject: "api3", Actor: &oauth.Actor{Subject: "api2", Actor: &oauth.Actor{Subject: "api1"}}}
	if !reflect.DeepEqual(d.Act, want) {
		t.Fatalf("act = %s, want %s", actString(d.Act), actString(want))
	}
	if got := d.Act.Chain(); !reflect.DeepEqual(got, []string{"api3", "api2", "api1"}) {
		t.Fatalf("chain = %q", got)
	}
	if !reflect.DeepEqual(d.Audiences, []string{api4}) || d.Scopes != nil || d.ParentJTI != "t2" {
		t.Fatalf("last hop: %+v", d)
	}
	// Ledger scopes end at api3: api4 offers archive:read only, which alice never had.
	if !d.ExpiresAt.Equal(now.Add(5 * time.Minute)) {
		t.Fatalf("last hop expires %v, want the first hop's cap %v", d.ExpiresAt, now.Add(5*time.Minute))
	}
}

// TestThreeHopBindingSurvives runs design §1's chain with every hop bound to its own
// requester's key: each issued token carries that hop's key, never the previous
// one's, and the last hop, asked for without a proof, is refused rather than
// downgraded to a bearer token.
func TestThreeHopBindingSurvives(t *testing.T) {
	x := newTestExchanger(t)
	tok := baseRequest().Subject
	tok.Cnf = &oauth.Confirmation{JKT: jktWebApp} // web-app's DPoP-bound token
	hops := []struct {
		client, target string
		binding        *oauth.Confirmation
	}{
		{"api1", api2, &oauth.Confirmation{JKT: jktAPI1}},
		{"api2", api3, &oauth.Confirmation{X5TS256: x5tAPI1}},
	}
	for i, h := range hops {
		d, err := x.Decide(Request{ClientID: h.client, Subject: tok, Audiences: []string{h.target}, Binding: h.binding}, now)
		if err != nil {
			t.Fatalf("hop %d (%s): %v", i+1, h.client, err)
		}
		if !reflect.DeepEqual(d.Cnf, h.binding) || reflect.DeepEqual(d.Cnf, tok.Cnf) {
			t.Fatalf("hop %d: cnf %+v, want the requester's %+v (subject's %+v)", i+1, d.Cnf, h.binding, tok.Cnf)
		}
		tok = Principal{
			TokenType: d.IssuedType, Issuer: "self", IssuerURL: issuerURL, Subject: d.Subject,
			Audiences: d.Audiences, Scopes: d.Scopes, ClientID: h.client, Act: d.Act,
			JTI: "t" + string(rune('1'+i)), ExpiresAt: d.ExpiresAt, Cnf: d.Cnf,
		}
	}
	_, err := x.Decide(Request{ClientID: "api3", Subject: tok, Audiences: []string{api4}}, now)
	oe := checkDenial(t, err, oauth.CodeInvalidRequest, "", "subject token is bound to x5t#S256 "+x5tAPI1+", the request proves no key")
	if oe.Description != "the subject token is sender-constrained; the exchange must be too" {
		t.Fatalf("description %q", oe.Description)
	}
}

// TestDecisionDoesNotAlias checks that a Decision shares no mutable state with the
// request: the audit record and the issued token must say what was decided.
func TestDecisionDoesNotAlias(t *testing.T) {
	x := newTestExchanger(t)
	req := baseRequest()
	req.Subject.Act = &oauth.Actor{Subject: "api0"}
	req.Subject.Claims = map[string]any{"acr": "mfa"}
	req.Audiences = []string{api2, api3}
	req.Scopes = []string{"ledger:read"}
	req.Binding = &oauth.Confirmation{JKT: jktAPI1}
	d, err := x.Decide(req, now)
	if err != nil {
		t.Fatal(err)
	}
	req.Binding.JKT = "mallory"
	req.Subject.Act.Subject = "mallory"
	req.Subject.Claims["acr"] = "none"
	req.Audiences[0] = "changed"
	req.Scopes[0] = "changed"
	if d.Act.Actor.Subject != "api0" || d.Claims["acr"] != "mfa" || d.Cnf.JKT != jktAPI1 || d.Audiences[0] != api2 || d.Scopes[0] != "ledger:read" {
		t.Fatalf("decision changed with its request: %+v act %s", d, actString(d.Act))
	}
}

func TestPermits(t *testing.T) {
	x := newTestExchanger(t)
	for client, want := range map[string]bool{"api1": true, "partner": true, "web-app": false, "": false} {
		if got := x.Permits(client); got != want {
			t.Errorf("Permits(%q) = %v, want %v", client, got, want)
		}
	}
}

func TestDenialError(t *testing.T) {
	d := &Denial{Err: oauth.InvalidScope("scope too wide", errors.New("detail")), Rule: "r1"}
	if got, want := d.Error(), "policy r1: invalid_scope: scope too wide (detail)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	d.Rule = ""
	if got, want := d.Error(), "invalid_scope: scope too wide (detail)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(d, d.Err) {
		t.Error("Unwrap does not reach the protocol error")
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		pols    []config.Policy
		auds    []config.Audience
		opts    Options
		wantErr string // "" = ok
	}{
		{name: "ok/test-config", pols: testPolicies(), auds: testAudiences(), opts: opts},
		{name: "ok/zero-ttls-take-defaults", pols: testPolicies(), auds: testAudiences(), opts: Options{IssuerURL: issuerURL}},
		{name: "ok/no-policies", auds: testAudiences(), opts: opts},
		{name: "fail/no-issuer-url", pols: testPolicies(), auds: testAudiences(), wantErr: "IssuerURL is required"},
		{name: "fail/negative-ttl", auds: testAudiences(), opts: Options{IssuerURL: issuerURL, RefreshTTL: -time.Second}, wantErr: "negative token lifetime"},
		{name: "fail/policy-names-unknown-audience", auds: testAudiences(), opts: opts,
			pols:    []config.Policy{{Client: "a", Audiences: []string{api2}}, {Client: "b", Audiences: []string{api1, "https://nope"}}},
			wantErr: `exchange.policies[1].audiences[1]: "https://nope" is not a configured audience`},
		{name: "fail/duplicate-audience", opts: opts, auds: []config.Audience{{ID: api1}, {ID: api1}},
			wantErr: `audiences[1].id: "https://api1.example" is already audiences[0]`},
		{name: "fail/audience-without-id", opts: opts, auds: []config.Audience{{Scopes: []string{"x"}}}, wantErr: "audiences[0].id: required"},
		{name: "fail/invalid-policy", auds: testAudiences(), opts: opts,
			pols: []config.Policy{{Client: "a", Audiences: []string{api2}, Mode: "both"}}, wantErr: "exchange.policies[0].mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, err := New(tt.pols, tt.auds, tt.opts)
			if tt.wantErr == "" {
				if err != nil || x == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestZeroTTLsTakeDefaults checks the lifetimes Options falls back to.
func TestZeroTTLsTakeDefaults(t *testing.T) {
	x, err := New(testPolicies(), testAudiences(), Options{IssuerURL: issuerURL})
	if err != nil {
		t.Fatal(err)
	}
	req := baseRequest()
	req.Subject.ExpiresAt = time.Time{}
	for typ, ttl := range map[oauth.TokenType]time.Duration{
		oauth.TokenTypeAccessToken:  config.DefaultAccessTokenTTL,
		oauth.TokenTypeJWT:          config.DefaultAccessTokenTTL,
		oauth.TokenTypeIDToken:      config.DefaultIDTokenTTL,
		oauth.TokenTypeRefreshToken: config.DefaultRefreshTokenTTL,
	} {
		req.Audiences, req.RequestedType = []string{api3}, typ
		d, err := x.Decide(req, now)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if !d.ExpiresAt.Equal(now.Add(ttl)) {
			t.Errorf("%s expires at %v, want now+%v", policy.TypeName(typ), d.ExpiresAt, ttl)
		}
	}
}

func TestDedupe(t *testing.T) {
	var long, longWant []string
	for i := range 50 {
		v := string(rune('a' + i%20))
		long = append(long, v)
		if i < 20 {
			longWant = append(longWant, v)
		}
	}
	for _, tt := range []struct{ in, want []string }{
		{nil, nil},
		{[]string{"b", "a", "b", "c", "a"}, []string{"b", "a", "c"}},
		{long, longWant}, // beyond 32 values: the map path
	} {
		if got := dedupe(slices.Clone(tt.in)); !slices.Equal(got, tt.want) {
			t.Errorf("dedupe(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestDecideConcurrent shares one Exchanger between goroutines, as the token endpoint
// does; run with -race it checks that Decide writes no shared state.
func TestDecideConcurrent(t *testing.T) {
	x := newTestExchanger(t)
	want, err := x.Decide(baseRequest(), now)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				got, err := x.Decide(baseRequest(), now)
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("concurrent Decide: %+v, %v", got, err)
					return
				}
				req := baseRequest()
				req.Audiences = []string{api4}
				if _, err := x.Decide(req, now); err == nil {
					t.Error("concurrent refusal allowed")
					return
				}
			}
		})
	}
	wg.Wait()
}
