package policy

import (
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/oauth"
)

// TestCompileTxn: policies that issue or replace transaction tokens (README
// "Transaction tokens").
func TestCompileTxn(t *testing.T) {
	tests := []struct {
		name string
		p    config.Policy
		err  string // a substring of the error; "" for none
	}{
		{"ok/txn-only-without-audiences", config.Policy{Client: "c", RequestedTokenTypes: []string{"txn_token"}}, ""},
		{"ok/replaces", config.Policy{Client: "c", SubjectTokenTypes: []string{"txn_token"}, RequestedTokenTypes: []string{"txn_token"}}, ""},
		{"ok/mixed-with-audiences", config.Policy{Client: "c", Audiences: []string{"https://a"}, RequestedTokenTypes: []string{"access_token", "txn_token"}}, ""},
		{"fail/txn-only-with-audiences", config.Policy{Client: "c", Audiences: []string{"https://a"}, RequestedTokenTypes: []string{"txn_token"}}, "exchange.policies[0].audiences: a policy whose requested_token_types is [txn_token] consults no audiences"},
		{"fail/mixed-without-audiences", config.Policy{Client: "c", RequestedTokenTypes: []string{"access_token", "txn_token"}}, "exchange.policies[0].audiences: at least one audience is required"},
		{"fail/require-binding", config.Policy{Client: "c", RequestedTokenTypes: []string{"txn_token"}, RequireBinding: true}, "exchange.policies[0].require_binding"},
		{"ok/foreign-issuer-with-scopes", config.Policy{Client: "c", SubjectIssuers: []string{"entra"}, SubjectTokenTypes: []string{"jwt"}, RequestedTokenTypes: []string{"txn_token"}, Scopes: []string{"payments:read"}}, ""},
		{"ok/self-without-scopes", config.Policy{Client: "c", SubjectIssuers: []string{"self"}, RequestedTokenTypes: []string{"txn_token"}}, ""},
		{"fail/foreign-issuer-without-scopes", config.Policy{Client: "gw", SubjectIssuers: []string{"entra"}, SubjectTokenTypes: []string{"jwt"}, RequestedTokenTypes: []string{"txn_token"}}, "exchange.policies[0].scopes: required"},
		{"fail/self-and-foreign-without-scopes", config.Policy{Client: "gw", SubjectIssuers: []string{"self", "corp"}, SubjectTokenTypes: []string{"access_token", "saml2"}, Audiences: []string{"https://a"}, RequestedTokenTypes: []string{"access_token", "txn_token"}}, "exchange.policies[0].scopes: required"},
		{"fail/replaces-without-issuing", config.Policy{Client: "c", Audiences: []string{"https://a"}, SubjectTokenTypes: []string{"txn_token"}}, "exchange.policies[0].subject_token_types"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Compile([]config.Policy{tt.p})
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				r := s.Rules()[0]
				if !r.AllowsRequestedType(oauth.TokenTypeTxnToken) {
					t.Errorf("rule %+v does not issue txn_token", *r)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Compile = %v, want …%s…", err, tt.err)
			}
		})
	}
}
