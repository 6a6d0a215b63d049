package grant_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/subject"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// TestDenialKeepsPolicies: the denial of an exchange records, in its Detail
// under "policies", what each policy of the client made of the request — the
// first check each failed and why (design §12) — beside what the Detail held
// already (the subject token's binding).
func TestDenialKeepsPolicies(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	xchg, err := exchange.New([]config.Policy{{
		Name: "api-to-api2-for-alice", Client: "api", Audiences: []string{api2}, Scopes: []string{"read"},
		Mode: config.ModeDelegation, Condition: `subject.sub == "alice"`,
	}, {
		Name: "api-to-api2-read-only", Client: "api", Audiences: []string{api2}, Scopes: []string{"read"},
		Mode: config.ModeDelegation, Condition: `!("write" in subject.scopes)`,
	}}, []config.Audience{
		{ID: apiAudience, Scopes: []string{"read", "write"}, Client: "api"},
		{ID: api2, Scopes: []string{"read", "write"}},
	}, exchange.Options{IssuerURL: issuer})
	if err != nil {
		t.Fatal(err)
	}
	f.disp = grant.NewDispatcher(f.clients, f.audit, map[string]grant.Grant{
		oauth.GrantTokenExchange: &grant.TokenExchange{Tokens: f.tokens, Subjects: subject.NewVerifier(f.tokens), Exchange: xchg},
	}, discard)
	userToken := func(sub string) string {
		raw, err := f.tokens.Mint(oauth.JWTTypeAccessToken, &token.Claims{
			Subject: sub, Audience: token.Audience{apiAudience}, ClientID: "web", Scope: "read write",
			IssuedAt: f.now.Unix(), NotBef: f.now.Unix(), Expiry: f.now.Add(accessTTL).Unix(), ID: token.NewID(),
			Cnf: &oauth.Confirmation{JKT: webJKT},
		})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	type policy struct{ Policy, Check, Reason string }
	tests := []struct {
		name     string
		sub, aud string
		code     oauth.Code
		want     []policy
	}{
		{name: "fail/condition-false", sub: "bob", aud: api2, code: oauth.CodeInvalidRequest, want: []policy{
			{"api-to-api2-for-alice", "condition", "condition is false"},
			{"api-to-api2-read-only", "condition", "condition is false"},
		}},
		{name: "fail/target-no-policy-allows", sub: "alice", aud: apiAudience, code: oauth.CodeInvalidTarget, want: []policy{
			{"api-to-api2-for-alice", "targets", `does not allow audience "` + apiAudience + `"`},
			{"api-to-api2-read-only", "condition", "condition is false"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := f.request("api", "grant_type", oauth.GrantTokenExchange, "subject_token", userToken(tt.sub),
				"subject_token_type", string(oauth.TokenTypeAccessToken), "audience", tt.aud)
			req.Binding = &oauth.Confirmation{JKT: apiJKT}
			_, err := f.disp.Token(ctx, req)
			wantCode(t, err, tt.code)
			e := wantDenied(t, f, req, tt.code)
			var d struct {
				GrantType  string              `json:"grant_type"`
				SubjectCnf *oauth.Confirmation `json:"subject_cnf"`
				Policies   []policy            `json:"policies"`
			}
			if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
				t.Fatalf("detail %q: %v", e.Detail, err)
			}
			if d.GrantType != oauth.GrantTokenExchange || d.SubjectCnf == nil || d.SubjectCnf.JKT != webJKT {
				t.Errorf("detail lost what it held: %s", e.Detail)
			}
			if len(d.Policies) != len(tt.want) {
				t.Fatalf("policies %+v, want %+v", d.Policies, tt.want)
			}
			for i := range tt.want {
				if d.Policies[i] != tt.want[i] {
					t.Errorf("policies[%d] = %+v, want %+v", i, d.Policies[i], tt.want[i])
				}
			}
		})
	}

	t.Run("fail/long-audience-reason-bounded", func(t *testing.T) {
		// The reasons quote what the request asked for: each is cut, and the
		// Detail stays a JSON object with the policies and the subject's binding.
		long := "https://" + strings.Repeat("a", 20<<10) + ".example"
		req := f.request("api", "grant_type", oauth.GrantTokenExchange, "subject_token", userToken("alice"),
			"subject_token_type", string(oauth.TokenTypeAccessToken), "audience", long)
		req.Binding = &oauth.Confirmation{JKT: apiJKT}
		_, err := f.disp.Token(ctx, req)
		wantCode(t, err, oauth.CodeInvalidTarget)
		e := wantDenied(t, f, req, oauth.CodeInvalidTarget)
		var d struct {
			SubjectCnf *oauth.Confirmation `json:"subject_cnf"`
			Policies   []policy            `json:"policies"`
		}
		if err := json.Unmarshal([]byte(e.Detail), &d); err != nil || d.SubjectCnf == nil || len(d.Policies) != 2 {
			t.Fatalf("detail of %d bytes %.300s: %v", len(e.Detail), e.Detail, err)
		}
		if p := d.Policies[0]; p.Check != "targets" || len(p.Reason) > audit.MaxPolicyReasonBytes || !strings.Contains(p.Reason, "aaaa") {
			t.Errorf("policy %s: %s, a reason of %d bytes", p.Policy, p.Check, len(p.Reason))
		}
	})

	t.Run("ok/not-an-exchange-denial", func(t *testing.T) {
		// A refusal before the policies are consulted records none.
		req := f.request("api", "grant_type", oauth.GrantTokenExchange, "subject_token", "not-a-token",
			"subject_token_type", string(oauth.TokenTypeAccessToken), "audience", api2)
		_, err := f.disp.Token(ctx, req)
		wantCode(t, err, oauth.CodeInvalidRequest)
		if e := wantDenied(t, f, req, oauth.CodeInvalidRequest); e.Detail != `{"grant_type":"`+oauth.GrantTokenExchange+`"}` {
			t.Errorf("detail %s", e.Detail)
		}
	})
}
