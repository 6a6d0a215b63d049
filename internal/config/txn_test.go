package config

import (
	"strings"
	"testing"
	"time"
)

// txnBase is validBase with a policy of api1 that issues and replaces
// transaction tokens, and the trust domain set.
func txnBase() *Config {
	c := validBase()
	c.TxnTokens.TrustDomain = "spiffe://bank"
	c.Exchange.Policies = append(c.Exchange.Policies, Policy{
		Name: "api1-txn", Client: "api1", SubjectIssuers: []string{SubjectIssuerSelf},
		SubjectTokenTypes: []string{"access_token", TxnTokenType}, RequestedTokenTypes: []string{TxnTokenType},
		Mode: ModeDelegation, MaxChain: DefaultMaxChain,
	})
	return c
}

// TestValidateTxnTokens: txn_tokens and the policies that list txn_token (README
// "Transaction tokens"), one problem each.
func TestValidateTxnTokens(t *testing.T) {
	last := func(c *Config) *Policy { return &c.Exchange.Policies[len(c.Exchange.Policies)-1] }
	tests := []struct {
		name      string
		mod       func(c *Config)
		path, msg string
	}{
		{"ok/txn-only-policy-without-audiences", func(c *Config) {}, "", ""},
		{"ok/txn-policy-with-scopes", func(c *Config) { last(c).Scopes = []string{"payments:read"} }, "", ""},
		{"ok/mixed-policy-with-audiences", func(c *Config) {
			last(c).RequestedTokenTypes = []string{"access_token", TxnTokenType}
			last(c).Audiences = []string{"https://api2.example"}
		}, "", ""},
		{"ok/no-trust-domain-without-txn-policies", func(c *Config) {
			c.TxnTokens.TrustDomain = ""
			c.Exchange.Policies = c.Exchange.Policies[:len(c.Exchange.Policies)-1]
		}, "", ""},
		{"ok/ttl-ten-minutes", func(c *Config) { c.TxnTokens.TTL = Duration(10 * time.Minute) }, "", ""},
		{"ok/ttl-one-second", func(c *Config) { c.TxnTokens.TTL = Duration(time.Second) }, "", ""},
		{"fail/trust-domain-unset", func(c *Config) { c.TxnTokens.TrustDomain = "" }, "txn_tokens.trust_domain", "must be set: exchange.policies[3] lists txn_token"},
		{"fail/trust-domain-unset-subject-only", func(c *Config) {
			c.TxnTokens.TrustDomain = ""
			last(c).RequestedTokenTypes = []string{"access_token"}
			last(c).SubjectTokenTypes = []string{TxnTokenType}
			last(c).Audiences = []string{"https://api2.example"}
		}, "", ""}, // two problems: checked below
		{"fail/trust-domain-space", func(c *Config) { c.TxnTokens.TrustDomain = "bank domain" }, "txn_tokens.trust_domain", "white space"},
		{"fail/trust-domain-is-audience", func(c *Config) { c.TxnTokens.TrustDomain = "https://api2.example" }, "txn_tokens.trust_domain", "also the id of a configured audience"},
		{"fail/trust-domain-is-client", func(c *Config) { c.TxnTokens.TrustDomain = "api1" }, "txn_tokens.trust_domain", "also the id of a configured client"},
		{"fail/ttl-zero", func(c *Config) { c.TxnTokens.TTL = 0 }, "txn_tokens.ttl", "0s is shorter than 1s"},
		{"fail/ttl-negative", func(c *Config) { c.TxnTokens.TTL = Duration(-time.Minute) }, "txn_tokens.ttl", "-1m0s is shorter than 1s"},
		{"fail/ttl-under-a-second", func(c *Config) { c.TxnTokens.TTL = Duration(500 * time.Millisecond) }, "txn_tokens.ttl", "500ms is shorter than 1s"},
		{"fail/ttl-too-long", func(c *Config) { c.TxnTokens.TTL = Duration(11 * time.Minute) }, "txn_tokens.ttl", "11m0s is longer than 10m0s"},
		{"fail/txn-only-policy-with-audiences", func(c *Config) { last(c).Audiences = []string{"https://api2.example"} }, "exchange.policies[3].audiences", "is never consulted"},
		{"fail/mixed-policy-without-audiences", func(c *Config) {
			last(c).RequestedTokenTypes = []string{"access_token", TxnTokenType}
		}, "exchange.policies[3].audiences", "must list at least one audience"},
		{"fail/txn-with-require-binding", func(c *Config) { last(c).RequireBinding = true }, "exchange.policies[3].require_binding", "never sender-constrained"},
		{"fail/replace-without-issuing", func(c *Config) {
			last(c).RequestedTokenTypes = []string{"access_token"}
			last(c).Audiences = []string{"https://api2.example"}
		}, "exchange.policies[3].subject_token_types", "replaced only by a transaction token"},
		{"fail/replace-from-trusted-issuer", func(c *Config) {
			last(c).SubjectIssuers, last(c).Scopes = []string{"entra"}, []string{"payments:read"}
		}, "exchange.policies[3].subject_issuers", "must list self"},
		{"ok/trusted-issuer-with-scopes", func(c *Config) {
			last(c).SubjectIssuers, last(c).SubjectTokenTypes, last(c).Scopes = []string{"entra"}, []string{"jwt"}, []string{"payments:read"}
		}, "", ""},
		{"fail/trusted-issuer-without-scopes", func(c *Config) {
			last(c).SubjectIssuers, last(c).SubjectTokenTypes = []string{"entra"}, []string{"jwt"}
		}, "exchange.policies[3].scopes", "must list the scopes transaction tokens may carry"},
		{"fail/saml-idp-and-self-without-scopes", func(c *Config) {
			last(c).SubjectIssuers, last(c).SubjectTokenTypes = []string{SubjectIssuerSelf, "corp"}, []string{"access_token", "saml2"}
		}, "exchange.policies[3].scopes", "must list the scopes transaction tokens may carry"},
		{"fail/requested-type-unknown", func(c *Config) {
			last(c).RequestedTokenTypes, last(c).SubjectTokenTypes = []string{"txn"}, []string{"access_token"}
			last(c).Audiences = []string{"https://api2.example"}
		}, "exchange.policies[3].requested_token_types[0]", `"txn" is not one of access_token, jwt, id_token, refresh_token, txn_token`},
		{"fail/user-claim-txn", func(c *Config) { c.Users[0].Claims = map[string]string{"txn": "x"} }, "users[0].claims.txn", "is a claim deputy sets itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := txnBase()
			tt.mod(c)
			ps := problems(t, c.Validate())
			if tt.name == "fail/trust-domain-unset-subject-only" {
				// Both the trust domain and the policy that replaces without issuing.
				if len(ps) != 2 {
					t.Fatalf("Validate() = %v, want 2 problems", &Error{Problems: ps})
				}
				return
			}
			if tt.path == "" {
				if len(ps) > 0 {
					t.Fatalf("Validate() = %v, want no problem", &Error{Problems: ps})
				}
				return
			}
			if len(ps) != 1 {
				t.Fatalf("Validate() found %d problems, want 1 at %s:\n%v", len(ps), tt.path, &Error{Problems: ps})
			}
			if ps[0].Path != tt.path || !strings.Contains(ps[0].Message, tt.msg) {
				t.Fatalf("Validate() = %q, want %s: …%s…", ps[0].String(), tt.path, tt.msg)
			}
		})
	}
}

// TestTxnTokensDefault: txn_tokens.ttl is 60s unless set.
func TestTxnTokensDefault(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.TxnTokens.TTL.D(); got != time.Minute {
		t.Errorf("txn_tokens.ttl = %v, want 1m", got)
	}
}
