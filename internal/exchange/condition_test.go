package exchange

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/oauth"
)

// conditionPolicies: the client "teller" has three rules for api2, the first two
// with conditions, and one for api3 whose condition reads a claim that most
// tokens lack.
func conditionPolicies() []config.Policy {
	return []config.Policy{
		{Name: "teller-mfa-writes", Client: "teller", Audiences: []string{api2}, Scopes: []string{"ledger:read", "ledger:write"},
			Condition: `subject.claims.?acr.orValue("") == "mfa"`},
		{Name: "teller-via-payments", Client: "teller", Audiences: []string{api2}, Scopes: []string{"ledger:read"},
			Condition: `size(subject.act) > 0 && subject.act[0].sub == "payments"`},
		{Name: "teller-archive", Client: "teller", Audiences: []string{api3},
			Condition: `subject.claims.branch == "north"`}, // errors without the claim
		{Name: "clerk-business", Client: "clerk", Audiences: []string{api2},
			Condition: `now.getHours("UTC") >= 8 && now.getHours("UTC") < 18 && client == "clerk" && actor.sub == "clerk" && request.requested_token_type == "access_token"`},
	}
}

func tellerRequest() Request {
	r := baseRequest()
	r.ClientID = "teller"
	r.Subject.Audiences = []string{"teller"}
	r.Subject.Scopes = []string{"ledger:read", "ledger:write"}
	return r
}

func TestDecideConditions(t *testing.T) {
	x, err := New(conditionPolicies(), testAudiences(), opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		req        func(r *Request)
		wantRule   string // ok cases
		wantScopes []string
		wantCode   oauth.Code // fail cases
		wantDRule  string     // fail cases: Denial.Rule
		wantWhy    string
	}{
		{name: "ok/first-condition-true", req: func(r *Request) { r.Subject.Claims = map[string]any{"acr": "mfa"} },
			wantRule: "teller-mfa-writes", wantScopes: []string{"ledger:read", "ledger:write"}},
		{name: "ok/second-condition-true", req: func(r *Request) { r.Subject.Act = &oauth.Actor{Subject: "payments"} },
			wantRule: "teller-via-payments", wantScopes: []string{"ledger:read"}},
		{name: "ok/default-target-skips-false-conditions", req: func(r *Request) {
			r.Audiences = nil
			r.Subject.Act = &oauth.Actor{Subject: "payments"}
			r.Subject.Claims = map[string]any{"branch": "south"}
		},
			wantRule: "teller-via-payments", wantScopes: []string{"ledger:read"}},
		{name: "ok/claim-condition", req: func(r *Request) { r.Audiences = []string{api3}; r.Subject.Claims = map[string]any{"branch": "north"} },
			wantRule: "teller-archive", wantScopes: []string{"ledger:read"}},
		{name: "ok/condition-over-client-actor-now", req: func(r *Request) { r.ClientID = "clerk"; r.Subject.Audiences = []string{"clerk"} },
			wantRule: "clerk-business", wantScopes: []string{"ledger:read", "ledger:write"}},
		// An erroring condition of a rule that does not allow the targets is not
		// evaluated: it cannot deny requests it has nothing to do with.
		{name: "ok/erroring-condition-of-other-target-not-evaluated", req: func(r *Request) { r.Subject.Claims = map[string]any{"acr": "mfa"} },
			wantRule: "teller-mfa-writes", wantScopes: []string{"ledger:read", "ledger:write"}},

		{name: "fail/every-condition-false", req: func(r *Request) {},
			wantCode: oauth.CodeInvalidRequest, wantWhy: "policy teller-mfa-writes condition is false; policy teller-via-payments condition is false; policy teller-archive condition cannot be evaluated"},
		{name: "fail/condition-false-is-not-invalid-target", req: func(r *Request) { r.Subject.Act = &oauth.Actor{Subject: "web-app"} },
			wantCode: oauth.CodeInvalidRequest, wantWhy: "condition is false"},
		{name: "fail/runtime-error-denies", req: func(r *Request) { r.Audiences = []string{api3} },
			wantCode: oauth.CodeInvalidRequest, wantDRule: "teller-archive", wantWhy: "policy teller-archive condition cannot be evaluated: no such key: branch"},
		{name: "fail/runtime-error-denies-default-target", req: func(r *Request) { r.Audiences = nil },
			wantCode: oauth.CodeInvalidRequest, wantDRule: "teller-archive", wantWhy: "no such key: branch"},
		{name: "fail/condition-true-target-not-allowed", req: func(r *Request) { r.Subject.Claims = map[string]any{"acr": "mfa"}; r.Audiences = []string{api4} },
			wantCode: oauth.CodeInvalidTarget, wantWhy: `does not allow audience "https://api4.example"`},
		{name: "fail/condition-true-scope-beyond", req: func(r *Request) {
			r.Subject.Act = &oauth.Actor{Subject: "payments"}
			r.Scopes = []string{"ledger:write"}
		},
			wantCode: oauth.CodeInvalidScope, wantDRule: "teller-via-payments", wantWhy: "beyond the policy's scopes"},
		{name: "fail/business-hours", req: func(r *Request) {
			r.ClientID = "clerk"
			r.Subject.Audiences = []string{"clerk"}
			r.RequestedType = oauth.TokenTypeJWT
		}, wantCode: oauth.CodeInvalidRequest, wantWhy: "policy clerk-business condition is false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tellerRequest()
			tc.req(&req)
			d, err := x.Decide(req, now)
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("Decide: %v", err)
				}
				if d.Rule != tc.wantRule || !reflect.DeepEqual(d.Scopes, tc.wantScopes) {
					t.Fatalf("decided by %s with %q, want %s with %q", d.Rule, d.Scopes, tc.wantRule, tc.wantScopes)
				}
				return
			}
			var den *Denial
			if !errors.As(err, &den) {
				t.Fatalf("Decide = %+v, %v; want a denial", d, err)
			}
			if den.Err.Code != tc.wantCode || den.Rule != tc.wantDRule {
				t.Errorf("denial %s (rule %q), want %s (rule %q)", den.Err.Code, den.Rule, tc.wantCode, tc.wantDRule)
			}
			if why := den.Err.Reason(); !strings.Contains(why, tc.wantWhy) {
				t.Errorf("reason %q does not contain %q", why, tc.wantWhy)
			}
			if len(den.Policies) != len(x.rules.ForClient(req.ClientID)) {
				t.Errorf("denial explains %d policies, the client has %d", len(den.Policies), len(x.rules.ForClient(req.ClientID)))
			}
		})
	}
}

// TestConditionSeesEffectiveRequest: a parameter left out cannot bypass a
// condition on it: with no scope, request.scopes is what the rule would grant; with
// no target, request.audiences is the rule's audiences (review finding).
func TestConditionSeesEffectiveRequest(t *testing.T) {
	x, err := New([]config.Policy{
		{Name: "writes-need-mfa", Client: "api1", Audiences: []string{api2}, Scopes: []string{"ledger:read", "ledger:write"},
			Condition: `!("ledger:write" in request.scopes) || subject.claims.?acr.orValue("") == "mfa"`},
		{Name: "reads", Client: "api1", Audiences: []string{api2}, Scopes: []string{"ledger:read"},
			Condition: `request.audiences == ["https://api2.example"] && request.scopes.all(s, s == "ledger:read")`},
	}, testAudiences(), opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		req        func(r *Request)
		wantRule   string
		wantScopes []string
		wantCode   oauth.Code
	}{
		{"ok/mfa-all-scopes-by-default", func(r *Request) { r.Subject.Claims = map[string]any{"acr": "mfa"} }, "writes-need-mfa", []string{"ledger:read", "ledger:write"}, ""},
		{"ok/no-mfa-no-scope-falls-to-reads", func(r *Request) {}, "reads", []string{"ledger:read"}, ""},
		{"ok/no-mfa-no-target-no-scope", func(r *Request) { r.Audiences = nil }, "reads", []string{"ledger:read"}, ""},
		{"ok/no-mfa-asks-read", func(r *Request) { r.Scopes = []string{"ledger:read"} }, "writes-need-mfa", []string{"ledger:read"}, ""},
		{"fail/no-mfa-asks-write", func(r *Request) { r.Scopes = []string{"ledger:write"} }, "", nil, oauth.CodeInvalidRequest},
		{"fail/no-mfa-asks-write-empty-scope-entries", func(r *Request) { r.Scopes = []string{"", "ledger:write", ""} }, "", nil, oauth.CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := baseRequest()
			req.Subject.Scopes = []string{"ledger:read", "ledger:write"}
			tc.req(&req)
			d, err := x.Decide(req, now)
			if tc.wantCode != "" {
				if oauth.AsError(err).Code != tc.wantCode {
					t.Fatalf("Decide = %+v, %v; want %s", d, err, tc.wantCode)
				}
				return
			}
			if err != nil || d.Rule != tc.wantRule || !reflect.DeepEqual(d.Scopes, tc.wantScopes) {
				t.Fatalf("Decide = %s %q, %v; want %s %q", d.Rule, d.Scopes, err, tc.wantRule, tc.wantScopes)
			}
		})
	}
}

// TestConditionsBeforeTargets: conditions are check 4 and targets check 5: when no
// rule's condition holds, an unknown target is refused as invalid_request, not
// invalid_target (review finding); when one holds, as invalid_target.
func TestConditionsBeforeTargets(t *testing.T) {
	x, err := New([]config.Policy{
		{Name: "mfa-only", Client: "api1", Audiences: []string{api2}, Condition: `subject.claims.?acr.orValue("") == "mfa"`},
	}, testAudiences(), opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		claims map[string]any
		req    func(r *Request)
		want   oauth.Code
	}{
		{"fail/unknown-audience-condition-false", nil, func(r *Request) { r.Audiences = []string{"https://unknown.example"} }, oauth.CodeInvalidRequest},
		{"fail/bad-resource-condition-false", nil, func(r *Request) { r.Audiences = nil; r.Resources = []string{"not a uri"} }, oauth.CodeInvalidRequest},
		{"fail/unknown-audience-condition-true", map[string]any{"acr": "mfa"}, func(r *Request) { r.Audiences = []string{"https://unknown.example"} }, oauth.CodeInvalidTarget},
		{"fail/bad-resource-condition-true", map[string]any{"acr": "mfa"}, func(r *Request) { r.Resources = []string{"https://x.example/#f"} }, oauth.CodeInvalidTarget},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := baseRequest()
			req.Subject.Claims = tc.claims
			tc.req(&req)
			_, err := x.Decide(req, now)
			if got := oauth.AsError(err).Code; got != tc.want {
				t.Fatalf("Decide: %v; want %s", err, tc.want)
			}
		})
	}
}

// TestExplain: for every policy of the client, the first check it failed, in the
// order of design §5 and §12; the one that decides has none. Explain and Decide
// agree on the deciding rule.
func TestExplain(t *testing.T) {
	x, err := New(append(testPolicies(), conditionPolicies()...), testAudiences(), opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  func(r *Request)
		want []RuleResult
	}{
		{"allowed-first-rule", func(r *Request) {}, []RuleResult{
			{"api1-to-api2", "", "decides"},
			{"api1-wide", CheckOrder, "matches, but policy api1-to-api2 comes first and decides"},
		}},
		{"subject-type", func(r *Request) { r.Subject.TokenType = oauth.TokenTypeIDToken }, []RuleResult{
			{"api1-to-api2", CheckSubject, "does not accept subject tokens of type id_token (accepts access_token)"},
			{"api1-wide", CheckSubject, "does not accept subject tokens of type id_token (accepts access_token, refresh_token)"},
		}},
		{"targets", func(r *Request) { r.Audiences = []string{api3} }, []RuleResult{
			{"api1-to-api2", CheckTargets, `does not allow audience "https://api3.example"`},
			{"api1-wide", "", "decides"},
		}},
		{"scope", func(r *Request) { r.Scopes = []string{"ledger:write"} }, []RuleResult{
			{"api1-to-api2", CheckScope, `scope "ledger:write" is beyond the policy's scopes (policy api1-to-api2, audiences ["https://api2.example"])`},
			{"api1-wide", CheckOrder, "matches, but policy api1-to-api2 comes first and decides"},
		}},
		{"requested-type", func(r *Request) { r.RequestedType = oauth.TokenTypeJWT }, []RuleResult{
			{"api1-to-api2", CheckTokenType, "policy api1-to-api2 does not allow requested token type jwt (allows access_token)"},
			{"api1-wide", CheckOrder, "matches, but policy api1-to-api2 comes first and decides"},
		}},
		{"unknown-target", func(r *Request) { r.Audiences = []string{"https://unknown.example"} }, []RuleResult{
			{"api1-to-api2", CheckTargets, `"https://unknown.example" is not a configured audience`},
			{"api1-wide", CheckTargets, `"https://unknown.example" is not a configured audience`},
		}},
		{"conditions", func(r *Request) {
			*r = tellerRequest()
			r.Subject.Act = &oauth.Actor{Subject: "payments"}
		}, []RuleResult{
			{"teller-mfa-writes", CheckCondition, "condition is false"},
			{"teller-via-payments", "", "decides"},
			{"teller-archive", CheckCondition, "condition cannot be evaluated: no such key: branch"},
		}},
		{"max-chain", func(r *Request) {
			r.ClientID = "short"
			r.Subject.Audiences = []string{"short"}
			r.Subject.Act = &oauth.Actor{Subject: "a", Actor: &oauth.Actor{Subject: "b"}}
		}, []RuleResult{
			{"short-chain", CheckMaxChain, "policy short-chain allows an act chain of at most 2 in delegation, the issued token would carry 3"},
		}},
		{"may-act", func(r *Request) { r.ClientID = "strict"; r.Subject.Audiences = []string{"strict"} }, []RuleResult{
			{"strict-needs-may-act", CheckMayAct, "policy strict-needs-may-act requires a may_act claim in the subject token"},
		}},
		{"binding", func(r *Request) { r.ClientID = "vault"; r.Subject.Audiences = []string{"vault"} }, []RuleResult{
			{"vault-bound-only", CheckBinding, "policy vault-bound-only requires a sender-constrained request (require_binding): a DPoP proof or a bound client certificate"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := baseRequest()
			tc.req(&req)
			got := x.Explain(req, now)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Explain:\n got %+v\nwant %+v", got, tc.want)
			}
			d, err := x.Decide(req, now)
			decides := "" // the rule selected: past subject, condition, targets and order
			for _, r := range got {
				switch r.Check {
				case CheckSubject, CheckCondition, CheckTargets, CheckOrder:
				default:
					decides = r.Rule
				}
			}
			var den *Denial
			switch {
			case err == nil && d.Rule != decides:
				t.Errorf("Decide chose %s, Explain says %q decides", d.Rule, decides)
			case errors.As(err, &den) && den.Rule != "" && den.Check() != CheckCondition && den.Rule != decides:
				t.Errorf("Decide denied at rule %s, Explain says %q decides", den.Rule, decides)
			case errors.As(err, &den) && den.Check() == CheckCondition && decides != "":
				t.Errorf("Decide denied on the condition of %s, Explain says %q decides", den.Rule, decides)
			case errors.As(err, &den) && !reflect.DeepEqual(den.Policies, got):
				t.Errorf("Denial.Policies = %+v, Explain = %+v", den.Policies, got)
			}
		})
	}
	for _, tc := range []struct {
		name     string
		policies []config.Policy
		req      func(r *Request)
		want     []RuleResult
	}{
		// A condition that cannot be evaluated where Decide evaluates it denies:
		// no later rule decides, in Explain either (review finding).
		{"erroring-condition-blocks-later-rule", []config.Policy{
			{Name: "a", Client: "api1", Audiences: []string{api2}, Condition: `subject.claims.branch == "north"`},
			{Name: "b", Client: "api1", Audiences: []string{api2}},
		}, func(r *Request) {}, []RuleResult{
			{"a", CheckCondition, "condition cannot be evaluated: no such key: branch"},
			{"b", CheckOrder, "matches, but the condition of policy a cannot be evaluated, which denies the request"},
		}},
		{"erroring-condition-blocks-default-target", []config.Policy{
			{Name: "a", Client: "api1", Audiences: []string{api2}},
			{Name: "b", Client: "api1", Audiences: []string{api3}, Condition: `subject.claims.branch == "north"`},
		}, func(r *Request) { r.Audiences = nil }, []RuleResult{
			{"a", CheckOrder, "matches, but the condition of policy b cannot be evaluated, which denies the request"},
			{"b", CheckCondition, "condition cannot be evaluated: no such key: branch"},
		}},
		{"erroring-condition-after-the-decision", []config.Policy{
			{Name: "a", Client: "api1", Audiences: []string{api2}},
			{Name: "b", Client: "api1", Audiences: []string{api2}, Condition: `subject.claims.branch == "north"`},
		}, func(r *Request) {}, []RuleResult{
			{"a", "", "decides"},
			{"b", CheckCondition, "condition cannot be evaluated: no such key: branch"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := New(tc.policies, testAudiences(), opts)
			if err != nil {
				t.Fatal(err)
			}
			req := baseRequest()
			tc.req(&req)
			got := x.Explain(req, now)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Explain:\n got %+v\nwant %+v", got, tc.want)
			}
			d, err := x.Decide(req, now)
			var den *Denial
			switch {
			case tc.want[0].Check == "":
				if err != nil || d.Rule != tc.want[0].Rule {
					t.Errorf("Decide = %s, %v; Explain says %s decides", d.Rule, err, tc.want[0].Rule)
				}
			case !errors.As(err, &den) || den.Check() != CheckCondition || !reflect.DeepEqual(den.Policies, got):
				t.Errorf("Decide = %+v, %v; want the condition's denial with Explain's policies", d, err)
			}
		})
	}
	if got := x.Explain(Request{ClientID: "web-app"}, now); got != nil {
		t.Errorf("Explain for a client without policies = %+v", got)
	}
}
