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
	"github.com/deputy-auth/deputy/oauth"
)

// delegationTrail records design §1's flow with a branch, a revocation and denials:
//
//	T0 issued to web-app for alice (aud api1), a bearer token
//	├─ T1 exchanged by api1 (aud api2), bound to api1's DPoP key     ← revoked (R1), cascading to T2
//	│  └─ T2 exchanged by api2 (aud api3), bound to api2's DPoP key  ← denied E5, call E6, denied E7 after R1
//	└─ T1b exchanged by api1 (aud api4), bound to api1's certificate
//	U0, U1: an unrelated chain
func delegationTrail(t *testing.T, b backend) {
	t.Helper()
	ctx := context.Background()
	w := NewWriter(b, b, WriterOptions{})
	defer w.Close()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	exp := t0.Add(5 * time.Minute)
	events := []*store.AuditEvent{
		{ID: "E1", Time: at(0), Type: store.EventTokenIssued, ClientID: "web-app", Subject: "alice",
			Audiences: []string{"https://api1.example"}, Scopes: []string{"payments:read"},
			TokenJTI: "T0", TokenExpires: exp, Decision: store.DecisionAllow, RequestID: "r1", RemoteAddr: "192.0.2.1:1000",
			TraceID: "0af7651916cd43dd8448eb211c80319c"},
		{ID: "U1", Time: at(1), Type: store.EventTokenIssued, ClientID: "web-app", Subject: "bob",
			Audiences: []string{"https://api1.example"}, TokenJTI: "U0", TokenExpires: exp, Decision: store.DecisionAllow},
		{ID: "E2", Time: at(2), Type: store.EventTokenExchanged, ClientID: "api1", Subject: "alice", Actors: []string{"api1"},
			Audiences: []string{"https://api2.example"}, Scopes: []string{"ledger:read"}, ParentJTI: "T0", TokenJTI: "T1",
			TokenExpires: exp, Decision: store.DecisionAllow, Rule: "exchange.policies[0]", TraceID: trailTrace,
			Detail: `{"cnf":{"jkt":"` + jktAPI1 + `"},"grant_type":"urn:ietf:params:oauth:grant-type:token-exchange"}`},
		{ID: "E3", Time: at(3), Type: store.EventTokenExchanged, ClientID: "api2", Subject: "alice", Actors: []string{"api2", "api1"},
			Audiences: []string{"https://api3.example"}, Scopes: []string{"ledger:read"}, ParentJTI: "T1", TokenJTI: "T2",
			TokenExpires: exp, Decision: store.DecisionAllow, Rule: "exchange.policies[1]", TraceID: trailTrace,
			Detail: `{"cnf":{"jkt":"` + jktAPI2 + `"},"grant_type":"urn:ietf:params:oauth:grant-type:token-exchange","subject_cnf":{"jkt":"` + jktAPI1 + `"}}`},
		{ID: "E4", Time: at(4), Type: store.EventTokenExchanged, ClientID: "api1", Subject: "alice", Actors: []string{"api1"},
			Audiences: []string{"https://api4.example"}, Scopes: []string{"cards:read"}, ParentJTI: "T0", TokenJTI: "T1b",
			TokenExpires: exp, Decision: store.DecisionAllow, Rule: "exchange.policies[2]",
			Detail: `{"cnf":{"x5t#S256":"` + x5tAPI1 + `"}}`},
		{ID: "E5", Time: at(5), Type: store.EventDenied, ClientID: "api3", Subject: "alice", Actors: []string{"api3", "api2", "api1"},
			Audiences: []string{"https://api5.example"}, ParentJTI: "T2", Decision: store.DecisionDeny,
			Reason: "invalid_target: no policy of api3 allows https://api5.example", TraceID: trailTrace,
			Detail: `{"grant_type":"urn:ietf:params:oauth:grant-type:token-exchange","policies":[` +
				`{"policy":"api3-to-api4","check":"targets","reason":"does not allow audience \"https://api5.example\""},` +
				`{"policy":"api3-reports","check":"condition","reason":"condition is false"}]}`},
		{ID: "E6", Time: at(6), Type: store.EventCallReported, ClientID: "api3", Subject: "alice", Actors: []string{"api2", "api1"},
			Audiences: []string{"https://api3.example"}, ParentJTI: "T2", Decision: store.DecisionAllow, Detail: `{"method":"GET","path":"/ledger"}`,
			TraceID: trailTrace},
		{ID: "U2", Time: at(7), Type: store.EventTokenExchanged, ClientID: "api1", Subject: "bob", Actors: []string{"api1"},
			Audiences: []string{"https://api2.example"}, ParentJTI: "U0", TokenJTI: "U1", TokenExpires: exp, Decision: store.DecisionAllow},
	}
	for _, e := range events {
		if err := w.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	_, err := w.Revoke(ctx, store.Revocation{JTI: "T1", ExpiresAt: exp, RevokedAt: at(8), Reason: "client api1 revoked it"},
		&store.AuditEvent{ID: "R1", Time: at(8), ClientID: "api1", Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	late := &store.AuditEvent{ID: "E7", Time: at(9), Type: store.EventDenied, ClientID: "api3", Subject: "alice",
		Actors: []string{"api3", "api2", "api1"}, Audiences: []string{"https://api4.example"}, ParentJTI: "T2",
		Decision: store.DecisionDeny, Reason: "invalid_request: subject token revoked"}
	// The request's trace id comes from its context (writer_trace_test.go).
	if err := w.Record(tracedContext(t, "4bf92f3577b34da6a3ce929d0e0e4736"), late); err != nil {
		t.Fatal(err)
	}
}

// trailTrace is the trace of the requests that went api1 → api2 → api3 in the
// trail: the exchanges E2 and E3, the denial E5 and the call E6.
const trailTrace = "11112222333344445555666677778888"

// Key thumbprints of the trail's hops.
const (
	jktAPI1 = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	jktAPI2 = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
	x5tAPI1 = "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0"
)

func TestTraceFromTheMiddle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		delegationTrail(t, b)
		tree, err := Trace(context.Background(), b, "T1")
		if err != nil {
			t.Fatal(err)
		}
		root := tree.Root
		if root == nil || root.JTI != "T0" || len(root.Children) != 2 {
			t.Fatalf("root = %+v, want T0 with children T1 and T1b", root)
		}
		t1, t1b := root.Children[0], root.Children[1]
		if t1.JTI != "T1" || t1b.JTI != "T1b" || !t1.Asked || root.Asked || t1b.Asked {
			t.Fatalf("children %s (asked %v), %s (asked %v): want T1 asked, T1b", t1.JTI, t1.Asked, t1b.JTI, t1b.Asked)
		}
		if len(t1.Children) != 1 || t1.Children[0].JTI != "T2" {
			t.Fatalf("T1's children: want [T2]")
		}
		t2 := t1.Children[0]
		if t2.Rule != "exchange.policies[1]" || t2.ClientID != "api2" || fmt.Sprint(t2.Actors) != "[api2 api1]" {
			t.Errorf("T2 node = %+v", t2)
		}
		var rels []string
		for _, e := range t2.Events {
			rels = append(rels, e.Relation+":"+e.ID+":"+e.Via)
		}
		if want := "[denied:E5: call:E6: revoked:R1:T1 denied:E7:]"; fmt.Sprint(rels) != want {
			t.Errorf("T2 events = %v, want %s", rels, want)
		}
		// A denied exchange keeps what each policy of the client made of it.
		if got := fmt.Sprint(t2.Events[0].Policies); got != `[{api3-to-api4 targets does not allow audience "https://api5.example"} {api3-reports condition condition is false}]` {
			t.Errorf("E5 policies = %s", got)
		}
		if t2.Events[1].Policies != nil || t2.Events[3].Policies != nil {
			t.Errorf("events without policies in their Detail: %+v", t2.Events)
		}
		if len(t1.Events) != 1 || t1.Events[0].Relation != RelRevoked || t1.Events[0].Via != "" {
			t.Errorf("T1 events = %+v, want its own revocation", t1.Events)
		}
		if len(t1b.Events) != 0 {
			t.Errorf("T1b events = %+v, want none", t1b.Events)
		}
		// Each hop's binding, from its issuance record (README "Audit trail").
		if root.Cnf != nil || t1.Cnf == nil || t1.Cnf.JKT != jktAPI1 || t1.SubjectCnf != nil ||
			t2.Cnf == nil || t2.Cnf.JKT != jktAPI2 || t2.SubjectCnf == nil || t2.SubjectCnf.JKT != jktAPI1 ||
			t1b.Cnf == nil || t1b.Cnf.X5TS256 != x5tAPI1 {
			t.Errorf("bindings: T0 %+v, T1 %+v (subject %+v), T2 %+v (subject %+v), T1b %+v", root.Cnf, t1.Cnf, t1.SubjectCnf, t2.Cnf, t2.SubjectCnf, t1b.Cnf)
		}
		var text, js bytes.Buffer
		if err := tree.WriteText(&text); err != nil {
			t.Fatal(err)
		}
		if err := tree.WriteJSON(&js); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"bearer", "bound dpop:0ZcOCORZ…", "bound dpop:NzbLsXh8…", "bound x5t:A4DtL2Jm…"} {
			if !strings.Contains(text.String(), want) {
				t.Errorf("trace text lacks %q", want)
			}
		}
		golden(t, "trace-T1.txt", text.Bytes())
		golden(t, "trace-T1.json", js.Bytes())
	})
}

func TestTraceAsked(t *testing.T) {
	tests := []struct {
		name, id  string
		wantNode  string // jti of the node marked asked
		wantEvent string // id of the event marked asked
	}{
		{name: "ok/root-jti", id: "T0", wantNode: "T0"},
		{name: "ok/leaf-jti", id: "T1b", wantNode: "T1b"},
		{name: "ok/issuance-event", id: "E3", wantNode: "T2"},
		{name: "ok/denial-event", id: "E5", wantEvent: "E5"},
		{name: "ok/call-event", id: "E6", wantEvent: "E6"},
		{name: "ok/revocation-event", id: "R1", wantEvent: "R1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, b backend) {
				delegationTrail(t, b)
				tree, err := Trace(context.Background(), b, tt.id)
				if err != nil {
					t.Fatal(err)
				}
				if tree.Root == nil || tree.Root.JTI != "T0" {
					t.Fatalf("root = %+v, want T0", tree.Root)
				}
				var nodes, events []string
				walk(tree.Root, func(n *Node) {
					if n.Asked {
						nodes = append(nodes, n.JTI)
					}
					for _, e := range n.Events {
						if e.Asked {
							events = append(events, e.ID)
						}
					}
				})
				if want := nonEmpty(tt.wantNode); fmt.Sprint(nodes) != fmt.Sprint(want) {
					t.Errorf("asked nodes %v, want %v", nodes, want)
				}
				if want := nonEmpty(tt.wantEvent); fmt.Sprint(events) != fmt.Sprint(want) {
					t.Errorf("asked events %v, want %v", events, want)
				}
			})
		})
	}
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func walk(n *Node, fn func(*Node)) {
	fn(n)
	for _, c := range n.Children {
		walk(c, fn)
	}
}

func TestTraceDenialEventText(t *testing.T) {
	b := newMemStore()
	delegationTrail(t, b)
	tree, err := Trace(context.Background(), b, "E5")
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	tree.WriteText(&text)
	golden(t, "trace-E5.txt", text.Bytes())
}

func TestTraceNotFound(t *testing.T) {
	b := newMemStore()
	delegationTrail(t, b)
	_, err := Trace(context.Background(), b, "nope")
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Trace(unknown) = %v, want ErrNotFound wrapping store.ErrNotFound", err)
	}
}

func appendRaw(t *testing.T, b store.AuditLog, events ...*store.AuditEvent) {
	t.Helper()
	for i, e := range events {
		if e.Time.IsZero() {
			e.Time = t0.Add(time.Duration(i) * time.Second)
		}
		if e.Decision == "" {
			e.Decision = store.DecisionAllow
		}
	}
	if err := b.Append(context.Background(), events, Seal); err != nil {
		t.Fatal(err)
	}
}

func TestTraceEdgeCases(t *testing.T) {
	t.Run("ok/foreign-parent", func(t *testing.T) {
		b := newMemStore()
		appendRaw(t, b, exchanged("X1", "entra-jti", "F1"), exchanged("X2", "F1", "F2"))
		for _, id := range []string{"F2", "entra-jti"} {
			tree, err := Trace(context.Background(), b, id)
			if err != nil {
				t.Fatal(err)
			}
			if r := tree.Root; !r.Unknown || r.JTI != "entra-jti" || len(r.Children) != 1 || r.Children[0].Children[0].JTI != "F2" {
				t.Errorf("Trace(%s): root %+v, want the foreign token over F1 over F2", id, r)
			}
		}
	})
	t.Run("ok/cycle", func(t *testing.T) {
		b := newMemStore()
		appendRaw(t, b, exchanged("C1", "B", "A"), exchanged("C2", "A", "B"))
		tree, err := Trace(context.Background(), b, "A")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		walk(tree.Root, func(*Node) { n++ })
		if n != 2 {
			t.Errorf("%d nodes in a two-token cycle", n)
		}
	})
	t.Run("ok/depth-bound", func(t *testing.T) {
		b := newMemStore()
		events := []*store.AuditEvent{issued("D0", "J0")}
		for i := 1; i <= 150; i++ {
			events = append(events, exchanged(fmt.Sprintf("D%d", i), fmt.Sprintf("J%d", i-1), fmt.Sprintf("J%d", i)))
		}
		appendRaw(t, b, events...)
		tree, err := Trace(context.Background(), b, "J100")
		if err != nil {
			t.Fatal(err)
		}
		depth := 0
		for n := tree.Root; n != nil; depth++ {
			if len(n.Children) == 0 {
				break
			}
			n = n.Children[0]
		}
		if !tree.Truncated || depth > MaxTraceDepth {
			t.Errorf("truncated %v, depth %d; want truncated at depth ≤ %d", tree.Truncated, depth, MaxTraceDepth)
		}
	})
	t.Run("ok/event-without-token", func(t *testing.T) {
		b := newMemStore()
		appendRaw(t, b, &store.AuditEvent{ID: "K1", Type: store.EventKeyRotated, Detail: `{"kid":"k2"}`})
		tree, err := Trace(context.Background(), b, "K1")
		if err != nil {
			t.Fatal(err)
		}
		if tree.Root != nil || tree.Event == nil || tree.Event.ID != "K1" || !tree.Event.Asked {
			t.Errorf("tree = %+v, want just the event", tree)
		}
		var text bytes.Buffer
		tree.WriteText(&text)
		if !bytes.Contains(text.Bytes(), []byte("key.rotated")) {
			t.Errorf("text %q does not show the event", text.String())
		}
	})
}

// TestTraceTextUnknownRoot: a root deputy never issued says where it came from when
// every token exchanged from it names the same outside issuer, and nothing more
// when they disagree or do not say.
func TestTraceTextUnknownRoot(t *testing.T) {
	child := func(iss string) *Node {
		return &Node{JTI: "T-" + iss, Type: "token.exchanged", ClientID: "api1", Subject: "alice", SubjectIssuer: iss}
	}
	// boundChild was exchanged from A1 bound to jkt (its subject_cnf).
	boundChild := func(iss, jkt string) *Node {
		n := child(iss)
		n.SubjectCnf = &oauth.Confirmation{JKT: jkt}
		return n
	}
	for _, tt := range []struct {
		name     string
		children []*Node
		want     string
	}{
		{"one-outside-issuer", []*Node{child("https://idp.corp.example"), child("https://idp.corp.example")},
			"token A1 (presented from https://idp.corp.example, not issued by deputy)\n"},
		{"issuers-disagree", []*Node{child("https://idp.corp.example"), child("https://login.example")},
			"token A1 (not issued in this audit trail)\n"},
		{"issuer-not-said", []*Node{child("")}, "token A1 (not issued in this audit trail)\n"},
		{"no-children", nil, "token A1 (not issued in this audit trail)\n"},
		{"presented-bound", []*Node{boundChild("https://idp.corp.example", jktAPI1), boundChild("https://idp.corp.example", jktAPI1)},
			"token A1 (presented from https://idp.corp.example, not issued by deputy)  bound dpop:0ZcOCORZ…\n"},
		{"presented-bound-disagree", []*Node{boundChild("", jktAPI1), boundChild("", jktAPI2)},
			"token A1 (not issued in this audit trail)\n"},
		{"presented-bound-and-bearer", []*Node{boundChild("", jktAPI1), child("")},
			"token A1 (not issued in this audit trail)\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var text bytes.Buffer
			tr := &Tree{Root: &Node{JTI: "A1", Unknown: true, Children: tt.children}}
			if err := tr.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			if first, _, _ := strings.Cut(text.String(), "\n"); first+"\n" != tt.want {
				t.Errorf("first line %q, want %q", first, tt.want)
			}
		})
	}
}

// TestTraceBindingFromSubjectCnf: a token whose issuance record names no cnf (issued
// in this trail by a grant that did not record it yet) shows the binding the exchanges that
// presented it verified in the token itself (their subject_cnf).
func TestTraceBindingFromSubjectCnf(t *testing.T) {
	b := newMemStore()
	w := NewWriter(b, b, WriterOptions{})
	defer w.Close()
	ctx := context.Background()
	for _, e := range []*store.AuditEvent{
		{ID: "E1", Time: t0, Type: store.EventTokenIssued, ClientID: "web-app", Subject: "alice", TokenJTI: "T0",
			Decision: store.DecisionAllow, Detail: `{"grant_type":"authorization_code"}`},
		{ID: "E2", Time: t0, Type: store.EventTokenExchanged, ClientID: "api1", Subject: "alice", ParentJTI: "T0", TokenJTI: "T1",
			Decision: store.DecisionAllow, Detail: `{"cnf":{"jkt":"` + jktAPI1 + `"},"subject_cnf":{"jkt":"` + jktAPI2 + `"}}`},
	} {
		if err := w.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	tree, err := Trace(ctx, b, "T1")
	if err != nil {
		t.Fatal(err)
	}
	if c := tree.Root.Cnf; c == nil || c.JKT != jktAPI2 {
		t.Fatalf("root cnf %+v, want the jkt its exchange verified, %s", c, jktAPI2)
	}
	var text bytes.Buffer
	if err := tree.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "bound dpop:NzbLsXh8…\n") {
		t.Errorf("text:\n%s", text.String())
	}
}
