package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/internal/store"
)

// TestAuditTraceTxn: deputy audit trace takes a transaction token's txn as well
// as a jti, and shows each transaction token with its txn, purpose and context,
// a replacement under the token it replaced.
func TestAuditTraceTxn(t *testing.T) {
	cfgFile, deputy := usersFixture(t)
	cfg, err := config.Load(cfgFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := server.OpenStore(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Second)
	const txn = "AaJIyRnlpXpQlyvZEXOLDg" // as deputy makes it (token.NewID)
	const grant = `"grant_type":"urn:ietf:params:oauth:grant-type:token-exchange","issued_token_type":"txn_token","txn":"` + txn + `"`
	events := []*store.AuditEvent{
		{Type: store.EventTokenIssued, ClientID: "web-app", Subject: "alice", TokenJTI: "T0",
			TokenExpires: at.Add(time.Hour), Decision: store.DecisionAllow},
		{Type: store.EventTokenExchanged, ClientID: "api1", Subject: "alice", Audiences: []string{"trust.example"},
			Scopes: []string{"payments:write", "ledger:write"}, ParentJTI: "T0", TokenJTI: "TX1",
			TokenExpires: at.Add(time.Minute), Decision: store.DecisionAllow,
			Detail: `{` + grant + `,"tctx":{"payment":"p-42"},"rctx":{"req_ip":"192.0.2.7","req_wl":"api1"}}`},
		{Type: store.EventTokenExchanged, ClientID: "api2", Subject: "alice", Audiences: []string{"trust.example"},
			Scopes: []string{"ledger:write"}, ParentJTI: "TX1", TokenJTI: "TX2",
			TokenExpires: at.Add(time.Minute), Decision: store.DecisionAllow,
			Detail: `{` + grant + `,"tctx":{"payment":"p-42"},"rctx":{"req_ip":"192.0.2.8","req_wl":"api2"}}`},
	}
	for i, e := range events {
		e.Time = at.Add(time.Duration(i) * time.Second)
		audit.Prepare(e)
	}
	err = st.Append(t.Context(), events, audit.Seal)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}

	out, err := deputy("", "audit", "trace", txn)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"txn " + txn + `  purpose payments:write,ledger:write  rctx req_ip 192.0.2.7 req_wl api1  tctx {"payment":"p-42"}`,
		"txn " + txn + ` (replaces TX1)  purpose ledger:write  rctx req_ip 192.0.2.8 req_wl api2  tctx {"payment":"p-42"}`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("audit trace %s lacks %q:\n%s", txn, want, out)
		}
	}
	if n := strings.Count(out, "◀ asked"); n != 2 {
		t.Errorf("%d tokens marked asked, want the two of its txn:\n%s", n, out)
	}

	out, err = deputy("", "audit", "trace", "TX2", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var tree struct {
		Root struct {
			Children []struct {
				JTI      string          `json:"jti"`
				Txn      json.RawMessage `json:"txn_token"`
				Children []struct {
					Txn struct {
						Txn         string `json:"txn"`
						Replacement bool   `json:"replacement"`
					} `json:"txn_token"`
				} `json:"children"`
			} `json:"children"`
		} `json:"root"`
	}
	if err := json.Unmarshal([]byte(out), &tree); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	tx1 := tree.Root.Children[0]
	if tx1.JTI != "TX1" || !strings.Contains(string(tx1.Txn), `"tctx": {`) ||
		len(tx1.Children) != 1 || tx1.Children[0].Txn.Txn != txn || !tx1.Children[0].Txn.Replacement {
		t.Errorf("JSON tree:\n%s", out)
	}

	if _, err := deputy("", "audit", "trace", "AaJIyRnlpXpQlyvZEXOLDh"); err == nil {
		t.Error("audit trace of an unknown txn succeeded")
	}
}
