package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

const txnGrant = `"grant_type":"urn:ietf:params:oauth:grant-type:token-exchange"`

// trailTxn is the txn of txnTrail's transaction, shaped as deputy makes it
// (token.NewID: 22 base64url characters).
const trailTxn = "AaJIyRnlpXpQlyvZEXOLDg"

// txnTrail records a payment made as one transaction:
//
//	T0 issued to web-app for alice (aud payments)
//	├─ TX1 a transaction token payments obtained for T0: txn trailTxn, purpose payments:write ledger:write
//	│  └─ TX2 its replacement by ledger: the same txn, purpose ledger:write  ← a wider one denied (D1)
//	└─ TA an access token payments exchanged T0 for (aud fraud-check)
func txnTrail(t *testing.T, b backend, tctx string) {
	t.Helper()
	ctx := context.Background()
	w := NewWriter(b, b, WriterOptions{})
	defer w.Close()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	exp := t0.Add(5 * time.Minute)
	events := []*store.AuditEvent{
		{ID: "E1", Time: at(0), Type: store.EventTokenIssued, ClientID: "web-app", Subject: "alice",
			Audiences: []string{"https://payments.example"}, Scopes: []string{"payments:write"},
			TokenJTI: "T0", TokenExpires: exp, Decision: store.DecisionAllow},
		{ID: "X1", Time: at(1), Type: store.EventTokenExchanged, ClientID: "payments", Subject: "alice",
			Audiences: []string{"trust.example"}, Scopes: []string{"payments:write", "ledger:write"},
			ParentJTI: "T0", TokenJTI: "TX1", TokenExpires: at(61), Decision: store.DecisionAllow, Rule: "exchange.policies[3]",
			TraceID: trailTrace,
			Detail: `{` + txnGrant + `,"issued_token_type":"txn_token","txn":"` + trailTxn + `","tctx":` + tctx +
				`,"rctx":{"req_ip":"192.0.2.7","authn":"pwd","req_wl":"payments"}}`},
		{ID: "X2", Time: at(2), Type: store.EventTokenExchanged, ClientID: "ledger", Subject: "alice",
			Audiences: []string{"trust.example"}, Scopes: []string{"ledger:write"},
			ParentJTI: "TX1", TokenJTI: "TX2", TokenExpires: at(62), Decision: store.DecisionAllow, Rule: "exchange.policies[4]",
			TraceID: trailTrace,
			Detail: `{` + txnGrant + `,"issued_token_type":"txn_token","txn":"` + trailTxn + `","tctx":` + tctx +
				`,"rctx":{"req_ip":"192.0.2.8","req_wl":"ledger"}}`},
		{ID: "D1", Time: at(3), Type: store.EventDenied, ClientID: "ledger", Subject: "alice",
			Audiences: []string{"trust.example"}, Scopes: []string{"ledger:write", "cards:write"}, ParentJTI: "TX1",
			Decision: store.DecisionDeny, Reason: "invalid_scope: a replacement may not widen the transaction's scope",
			Detail: `{` + txnGrant + `}`},
		{ID: "X3", Time: at(4), Type: store.EventTokenExchanged, ClientID: "payments", Subject: "alice", Actors: []string{"payments"},
			Audiences: []string{"https://fraud-check.example"}, Scopes: []string{"fraud:check"},
			ParentJTI: "T0", TokenJTI: "TA", TokenExpires: exp, Decision: store.DecisionAllow, Rule: "exchange.policies[0]",
			Detail: `{` + txnGrant + `}`},
	}
	for _, e := range events {
		if err := w.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
}

const txnContext = `{"payment": "p-42", "amount": 12.5}`

// TestTraceTxn: a transaction token hangs under the token it was obtained for,
// its replacement under it, each with its txn, purpose and contexts.
func TestTraceTxn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		txnTrail(t, b, txnContext)
		tree, err := Trace(context.Background(), b, "TX2")
		if err != nil {
			t.Fatal(err)
		}
		root := tree.Root
		if root.JTI != "T0" || len(root.Children) != 2 || root.Txn != nil {
			t.Fatalf("root %+v, want T0 with two children and no txn", root)
		}
		tx1, ta := root.Children[0], root.Children[1]
		if tx1.JTI != "TX1" || tx1.Txn == nil || tx1.Txn.Txn != trailTxn || tx1.Txn.Replacement ||
			string(tx1.Txn.Context) != `{"payment":"p-42","amount":12.5}` ||
			tx1.Txn.RequestContext != (TxnRequestContext{ReqIP: "192.0.2.7", Authn: "pwd", ReqWL: "payments"}) {
			t.Fatalf("TX1 %+v txn %+v", tx1, tx1.Txn)
		}
		if ta.JTI != "TA" || ta.Txn != nil {
			t.Errorf("TA %+v txn %+v, want an access token", ta, ta.Txn)
		}
		if len(tx1.Children) != 1 || tx1.Children[0].JTI != "TX2" || !tx1.Children[0].Asked {
			t.Fatalf("TX1's children: want TX2, asked")
		}
		tx2 := tx1.Children[0]
		if tx2.Txn == nil || tx2.Txn.Txn != trailTxn || !tx2.Txn.Replacement || tx2.ParentJTI != "TX1" {
			t.Errorf("TX2 txn %+v, want trailTxn, a replacement of TX1", tx2.Txn)
		}
		if len(tx1.Events) != 1 || tx1.Events[0].ID != "D1" || tx1.Events[0].Relation != RelDenied {
			t.Errorf("TX1 events %+v, want the denied widening D1", tx1.Events)
		}
		var text, js bytes.Buffer
		if err := tree.WriteText(&text); err != nil {
			t.Fatal(err)
		}
		if err := tree.WriteJSON(&js); err != nil {
			t.Fatal(err)
		}
		golden(t, "trace-TX2.txt", text.Bytes())
		golden(t, "trace-TX2.json", js.Bytes())
	})
}

// TestTraceByTxn: a txn value finds its transaction's tokens, all marked asked.
func TestTraceByTxn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		txnTrail(t, b, txnContext)
		tree, err := Trace(context.Background(), b, trailTxn)
		if err != nil {
			t.Fatal(err)
		}
		var asked []string
		walk(tree.Root, func(n *Node) {
			if n.Asked {
				asked = append(asked, n.JTI)
			}
		})
		if tree.Root.JTI != "T0" || fmt.Sprint(asked) != "[TX1 TX2]" {
			t.Errorf("root %s, asked %v; want T0, [TX1 TX2]", tree.Root.JTI, asked)
		}
		for _, id := range []string{"AaJIyRnlpXpQlyvZEXOLDh", "payments:write", "txn_token", "tx-9"} {
			if _, err := Trace(context.Background(), b, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("Trace(%q) = %v, want ErrNotFound", id, err)
			}
		}
	})
}

// TestTraceTxnContextEscaped: a transaction context holding terminal controls,
// bidi overrides or line breaks reaches neither renderer raw.
func TestTraceTxnContextEscaped(t *testing.T) {
	for _, tt := range []struct {
		name, tctx, wantText string
	}{
		{name: "ok/plain", tctx: `{"a": "b"}`, wantText: `tctx {"a":"b"}` + "\n"},
		{name: "ok/escaped-esc", tctx: `{"a":"\u001b[31m"}`, wantText: `tctx "{\"a\":\"\\u001b[31m\"}"` + "\n"},
		{name: "ok/raw-bidi-override", tctx: "{\"a\":\"\u202e\"}", wantText: `tctx "{\"a\":\"\u202e\"}"` + "\n"},
		{name: "ok/raw-line-separator", tctx: "{\"a\":\"x\u2028y\"}", wantText: `tctx "{\"a\":\"x\u2028y\"}"` + "\n"},
		{name: "ok/not-an-object", tctx: `"p-42"`, wantText: "req_wl payments\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newMemStore()
			txnTrail(t, b, tt.tctx)
			tree, err := Trace(context.Background(), b, "TX1")
			if err != nil {
				t.Fatal(err)
			}
			var text, js bytes.Buffer
			if err := tree.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			if err := tree.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			var line string
			for l := range strings.Lines(text.String()) {
				if strings.Contains(l, "txn "+trailTxn) && strings.Contains(l, "req_wl payments") {
					line = l
				}
			}
			if !strings.HasSuffix(line, tt.wantText) {
				t.Errorf("txn line %q, want it to end %q", line, tt.wantText)
			}
			for _, r := range []string{"\x1b", "\u202e", "\u2028"} {
				if strings.Contains(text.String(), r) || strings.Contains(js.String(), r) {
					t.Errorf("%q reaches the output raw", r)
				}
			}
		})
	}
}

// TestTraceByTxnPages: a txn whose first token comes after more token.exchanged
// events than one page holds is still found.
func TestTraceByTxnPages(t *testing.T) {
	b := newMemStore()
	w := NewWriter(b, b, WriterOptions{})
	ctx := context.Background()
	for i := range txnPage + 5 {
		e := &store.AuditEvent{ID: fmt.Sprintf("F%d", i), Time: t0, Type: store.EventTokenExchanged, ClientID: "api1",
			Subject: "bob", ParentJTI: "U0", TokenJTI: fmt.Sprintf("U%d", i+1), Decision: store.DecisionAllow,
			Detail: `{` + txnGrant + `,"issued_token_type":"txn_token","txn":"other-` + fmt.Sprint(i) + `"}`}
		if err := w.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	txnTrail(t, b, txnContext)
	tree, err := Trace(ctx, b, trailTxn)
	if err != nil {
		t.Fatal(err)
	}
	if tree.Root.JTI != "T0" || !tree.Root.Children[0].Asked {
		t.Errorf("root %s, TX1 asked %v", tree.Root.JTI, tree.Root.Children[0].Asked)
	}
}

// queryCounter counts the Query calls of a store.AuditLog.
type queryCounter struct {
	store.AuditLog
	queries int
}

func (c *queryCounter) Query(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	c.queries++
	return c.AuditLog.Query(ctx, f)
}

// TestTraceByTxnOnlyTxnShaped: an id that is no jti, no event id and not shaped
// like a txn is not looked for among the transaction tokens, which reads every
// token.exchanged event; a txn is matched as the Detail's txn member, not as
// any text of it (here the tctx holds it).
func TestTraceByTxnOnlyTxnShaped(t *testing.T) {
	ctx := context.Background()
	b := newMemStore()
	txnTrail(t, b, `{"ref":"AaJIyRnlpXpQlyvZEXOLDh","note":"payments:write"}`)
	for _, tt := range []struct {
		name    string
		id      string
		queries int
	}{
		{"ok/not-shaped-payments-scope", "payments:write", 0},
		{"ok/not-shaped-short", "tx-9", 0},
		{"ok/not-shaped-23-characters", trailTxn + "A", 0},
		{"ok/not-shaped-not-base64url", "AaJIyRnlpXpQlyvZEXOLD+", 0},
		{"ok/shaped-only-in-tctx", "AaJIyRnlpXpQlyvZEXOLDh", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			log := &queryCounter{AuditLog: b}
			if _, err := Trace(ctx, log, tt.id); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Trace(%q) = %v, want ErrNotFound", tt.id, err)
			}
			if log.queries != tt.queries {
				t.Errorf("Trace(%q) made %d queries, want %d", tt.id, log.queries, tt.queries)
			}
		})
	}
	if tree, err := Trace(ctx, b, trailTxn); err != nil || tree.Root.JTI != "T0" {
		t.Fatalf("Trace(trailTxn) = %+v, %v", tree, err)
	}
}
