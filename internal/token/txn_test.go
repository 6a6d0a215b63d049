package token_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

func txnSample(now time.Time, tctx string) *token.TxnClaims {
	return &token.TxnClaims{
		IssuedAt: now.Unix(), Expiry: now.Add(time.Minute).Unix(), ID: token.NewID(), Audience: "spiffe://bank.example",
		Txn: token.NewID(), Subject: "alice", Scope: "payments:write", Tctx: json.RawMessage(tctx),
		Rctx: map[string]any{"req_ip": "127.0.0.1", "req_wl": "pay&co<1>"},
	}
}

// TestMintTxnSignsAsGiven: tctx (and every other claim) is signed without HTML
// escaping, byte for byte, so a request_context of <, > or & neither changes nor
// grows six-fold; the token verifies.
func TestMintTxnSignsAsGiven(t *testing.T) {
	s, _, _ := newService(t, "ES256")
	now := time.Now()
	tctx := `{"note":"<a&b>` + strings.Repeat("<", 4000) + `","sep":"` + "\u2028" + `"}`
	raw, err := s.MintTxn(txnSample(now, tctx))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(payload), `"tctx":`+tctx+`,`) || !strings.Contains(string(payload), `"req_wl":"pay&co<1>"`) {
		t.Errorf("payload %.300s…: tctx or rctx not as given", payload)
	}
	if _, err := s.Verify(raw, token.TypesFor(oauth.TokenTypeTxnToken), now); err != nil {
		t.Fatalf("Verify: %v (%d bytes)", err, len(raw))
	}
}

// TestMintTxnTooLarge: a transaction token over the service's size limit
// (limits.max_token_bytes), which Verify would refuse, is not issued.
func TestMintTxnTooLarge(t *testing.T) {
	_, ks, _ := newService(t, "ES256")
	s := token.NewService(issuer, ks, token.NewRevoked(), 1024)
	now := time.Now()
	if _, err := s.MintTxn(txnSample(now, `{"a":"small"}`)); err != nil {
		t.Fatalf("small: %v", err)
	}
	raw, err := s.MintTxn(txnSample(now, `{"a":"`+strings.Repeat("x", 1024)+`"}`))
	if !errors.Is(err, token.ErrTooLarge) || raw != "" {
		t.Fatalf("MintTxn = %d bytes, %v; want ErrTooLarge", len(raw), err)
	}
}
