package main

import (
	"testing"

	"github.com/deputy-auth/deputy/internal/config"
)

// txnPolicyConfig issues transaction tokens to payments and lets the ledger
// replace them (README "Transaction tokens").
const txnPolicyConfig = `issuer: http://127.0.0.1:8080
storage: {driver: sqlite, dsn: "%DIR%/deputy.db"}
audiences:
  - {id: https://payments.example, client: payments, scopes: ["payments:read", "payments:write"]}
clients:
  - {id: payments, secret: s, grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]}
  - {id: ledger, secret: s, grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]}
exchange:
  policies:
    - {name: payments-txn, client: payments, requested_token_types: [txn_token], scopes: ["payments:read", "payments:write"]}
    - {name: ledger-replaces, client: ledger, subject_token_types: [txn_token], requested_token_types: [txn_token]}
txn_tokens: {trust_domain: "spiffe://bank.example"}
`

// TestPolicyExplainTxn: deputy policy explain decides transaction token requests
// as the server does.
func TestPolicyExplainTxn(t *testing.T) {
	cfg := writePolicyConfig(t, txnPolicyConfig)
	const alice = `{"sub":"alice","aud":"https://payments.example","scope":"payments:read payments:write"}`
	const txn = `{"sub":"alice","scope":"payments:read","txn":"t1"}`
	tests := []cliCase{
		{name: "ok/issuance", code: 0,
			args: []string{"--client", "payments", "--subject-claims", alice, "--requested-token-type", "txn_token", "--scope", "payments:read"},
			stdout: []string{
				"allowed: policy payments-txn decides (transaction token)\n",
				"  audiences  spiffe://bank.example\n",
				"  scopes     payments:read\n",
				"  issues     txn_token, token_type N_A\n",
				"  lifetime   expires_in 60 ",
			}},
		{name: "ok/replacement", code: 0,
			args:   []string{"--client", "ledger", "--subject-type", "txn_token", "--subject-claims", txn, "--requested-token-type", "txn_token"},
			stdout: []string{"allowed: policy ledger-replaces decides (transaction token)\n", "  subject    alice (issuer self, txn_token)\n"}},
		{name: "fail/replacement-wider-scope", code: 1,
			args:   []string{"--client", "ledger", "--subject-type", "txn_token", "--subject-claims", txn, "--requested-token-type", "txn_token", "--scope", "payments:read payments:write"},
			stdout: []string{"denied: invalid_scope\n", "ledger-replaces  scope  scope \"payments:write\" is not in the replaced transaction token's scopes"}},
		{name: "fail/audience-not-trust-domain", code: 1,
			args:   []string{"--client", "payments", "--subject-claims", alice, "--requested-token-type", "txn_token", "--audience", "https://payments.example"},
			stdout: []string{"denied: invalid_target\n"}},
		{name: "fail/txn-token-for-access-token", code: 1,
			args:   []string{"--client", "ledger", "--subject-type", "txn_token", "--subject-claims", txn},
			stdout: []string{"denied: invalid_request\n", "exchanged only for a transaction token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runDeputy(t, append([]string{"policy", "explain", "--config", cfg}, tt.args...)...)
			tt.check(t, code, stdout, stderr)
		})
	}
}

// TestShadowsTxn: a policy that also issues transaction tokens still decides
// those behind one that does not.
func TestShadowsTxn(t *testing.T) {
	access := config.Policy{Client: "c", SubjectIssuers: []string{"self"}, SubjectTokenTypes: []string{"access_token"},
		Audiences: []string{"a"}, RequestedTokenTypes: []string{"access_token"}}
	mixed := access
	mixed.RequestedTokenTypes = []string{"access_token", "txn_token"}
	if shadows(access, mixed) {
		t.Error("a policy without txn_token shadows one that lists it")
	}
	if !shadows(mixed, mixed) || !shadows(mixed, access) {
		t.Error("a policy listing txn_token does not shadow its like")
	}
}
