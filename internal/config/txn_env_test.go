package config

import (
	"testing"
	"time"
)

// TestTxnTokensFromEnv: txn_tokens is set from DEPUTY_TXN_TOKENS_… as every key.
func TestTxnTokensFromEnv(t *testing.T) {
	c, err := Load("", []string{"DEPUTY_TXN_TOKENS_TRUST_DOMAIN=spiffe://bank.example", "DEPUTY_TXN_TOKENS_TTL=2m"})
	if err != nil {
		t.Fatal(err)
	}
	if c.TxnTokens.TrustDomain != "spiffe://bank.example" || c.TxnTokens.TTL.D() != 2*time.Minute {
		t.Errorf("txn_tokens = %+v", c.TxnTokens)
	}
}
