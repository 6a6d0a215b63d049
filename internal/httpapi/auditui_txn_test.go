package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/httpapi"
	"github.com/deputy-auth/deputy/internal/store"
)

// TestAuditUITreeTxn: the tree page shows a transaction token's txn, marks a
// replacement, and shows its context escaped; a txn value opens its tree.
func TestAuditUITreeTxn(t *testing.T) {
	s, ts, _ := explorerNode(t)
	ctx := t.Context()
	exp := time.Now().Add(time.Minute)
	const detail = `{"grant_type":"urn:ietf:params:oauth:grant-type:token-exchange","issued_token_type":"txn_token","txn":"txnUiNine0123456789abc",` +
		`"tctx":{"note":"<script>"},"rctx":{"req_wl":"payments"}}`
	for _, e := range []*store.AuditEvent{
		{Type: store.EventTokenIssued, Decision: store.DecisionAllow, ClientID: "web-app", Subject: "erin", TokenJTI: "T-user",
			Audiences: []string{"https://payments.example"}, Scopes: []string{"pay"}, TokenExpires: exp},
		{Type: store.EventTokenExchanged, Decision: store.DecisionAllow, ClientID: "payments", Subject: "erin", ParentJTI: "T-user",
			TokenJTI: "T-txn", Audiences: []string{"trust.example"}, Scopes: []string{"pay"}, TokenExpires: exp, Detail: detail},
		{Type: store.EventTokenExchanged, Decision: store.DecisionAllow, ClientID: "ledger", Subject: "erin", ParentJTI: "T-txn",
			TokenJTI: "T-txn2", Audiences: []string{"trust.example"}, Scopes: []string{"pay"}, TokenExpires: exp, Detail: detail},
	} {
		if err := s.Audit.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	b := newBrowser(t, ts)
	b.signInTo(httpapi.PathAuditUI, "alice")
	r := b.get("/audit/ui/tree?id=txnUiNine0123456789abc")
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	for _, want := range []string{
		"<dt>Transaction</dt><dd><code>txnUiNine0123456789abc</code></dd>", "<dt>Transaction</dt><dd><code>txnUiNine0123456789abc</code> (replacement)</dd>",
		`<code>{&#34;note&#34;:&#34;&lt;script&gt;&#34;}</code>`, `<li class="node asked">`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the tree page lacks %q", want)
		}
	}
	if strings.Contains(r.body, "<script>") {
		t.Error("the context reaches the page unescaped")
	}
}
