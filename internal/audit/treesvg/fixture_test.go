package treesvg

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or rewrites that file under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// trail is an audit log held in memory, read the way audit.Trace reads one. It
// holds the events as a Writer would have stored them (seq numbers in order);
// writing is not what these tests are about, so Append, Scan and Query are left
// to the nil store.AuditLog and panic if called.
type trail struct {
	store.AuditLog
	events []store.AuditEvent
}

func newTrail(events ...store.AuditEvent) *trail {
	tr := &trail{}
	for i, e := range events {
		e.Seq = int64(i + 1)
		if e.Decision == "" {
			e.Decision = store.DecisionAllow
		}
		tr.events = append(tr.events, e)
	}
	return tr
}

func (tr *trail) EventByID(_ context.Context, id string) (store.AuditEvent, error) {
	for _, e := range tr.events {
		if e.ID == id {
			return e, nil
		}
	}
	return store.AuditEvent{}, fmt.Errorf("trail: event %q: %w", id, store.ErrNotFound)
}

func (tr *trail) EventsByToken(_ context.Context, jti string) ([]store.AuditEvent, error) {
	var out []store.AuditEvent
	for _, e := range tr.events {
		if e.TokenJTI == jti {
			out = append(out, e)
		}
	}
	return out, nil
}

func (tr *trail) EventsByParent(_ context.Context, jti string) ([]store.AuditEvent, error) {
	var out []store.AuditEvent
	for _, e := range tr.events {
		if e.ParentJTI == jti {
			out = append(out, e)
		}
	}
	return out, nil
}

var t0 = time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

// Key thumbprints of the demo's hops.
const (
	jktWeb  = "q1tQ2rVbYyq3sM4Kx0rj1ZxP0mX6FvS3mKq0m7Z1y2A"
	jktAPI1 = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	x5tAPI2 = "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0"
	traceID = "11112222333344445555666677778888"
)

// demoTrail is the chain `deputy demo` makes, as the trail records it:
//
//	sid-alice   alice signs in to web-app
//	└─ code-1   an authorization code for web-app
//	   ├─ T0    the access token (aud api1), bound to web-app's DPoP key
//	   │  └─ T1 exchanged by api1 (aud api2), DPoP        ← call K1; revoked R1
//	   │     └─ T2 exchanged by api2 (aud api3), mTLS     ← call K2, denied D1; revoked with T1
//	   └─ ID0   the ID token
func demoTrail() *trail {
	exp := t0.Add(5 * time.Minute)
	return newTrail(
		store.AuditEvent{ID: "S1", Time: at(0), Type: store.EventSignIn, ClientID: "web-app", Subject: "alice",
			TokenJTI: "sid-alice", TokenExpires: t0.Add(8 * time.Hour), Reason: "signed in with local", Detail: `{"idp":"local"}`},
		store.AuditEvent{ID: "C1", Time: at(1), Type: store.EventCodeIssued, ClientID: "web-app", Subject: "alice",
			ParentJTI: "sid-alice", TokenJTI: "code-1", TokenExpires: at(61), Scopes: []string{"openid", "payments:read"}},
		store.AuditEvent{ID: "E1", Time: at(2), Type: store.EventTokenIssued, ClientID: "web-app", Subject: "alice",
			ParentJTI: "code-1", TokenJTI: "T0", TokenExpires: exp, Audiences: []string{"https://api1.example"},
			Scopes: []string{"openid", "payments:read"}, TraceID: traceID, Detail: `{"cnf":{"jkt":"` + jktWeb + `"}}`},
		store.AuditEvent{ID: "E1i", Time: at(2), Type: store.EventTokenIssued, ClientID: "web-app", Subject: "alice",
			ParentJTI: "code-1", TokenJTI: "ID0", TokenExpires: exp, Audiences: []string{"web-app"}},
		store.AuditEvent{ID: "E2", Time: at(3), Type: store.EventTokenExchanged, ClientID: "api1", Subject: "alice",
			Actors: []string{"api1"}, Audiences: []string{"https://api2.example"}, Scopes: []string{"ledger:read"},
			ParentJTI: "T0", TokenJTI: "T1", TokenExpires: exp, Rule: "exchange.policies[0]", TraceID: traceID,
			Detail: `{"cnf":{"jkt":"` + jktAPI1 + `"},"subject_cnf":{"jkt":"` + jktWeb + `"}}`},
		store.AuditEvent{ID: "E3", Time: at(4), Type: store.EventTokenExchanged, ClientID: "api2", Subject: "alice",
			Actors: []string{"api2", "api1"}, Audiences: []string{"https://api3.example"}, Scopes: []string{"ledger:read"},
			ParentJTI: "T1", TokenJTI: "T2", TokenExpires: exp, Rule: "exchange.policies[1]", TraceID: traceID,
			Detail: `{"cnf":{"x5t#S256":"` + x5tAPI2 + `"},"subject_cnf":{"jkt":"` + jktAPI1 + `"}}`},
		store.AuditEvent{ID: "K1", Time: at(5), Type: store.EventCallReported, ClientID: "api2", Subject: "alice",
			Actors: []string{"api1"}, Audiences: []string{"https://api2.example"}, ParentJTI: "T1",
			Reason: "read account/42: ok", TraceID: traceID},
		store.AuditEvent{ID: "K2", Time: at(6), Type: store.EventCallReported, ClientID: "api3", Subject: "alice",
			Actors: []string{"api2", "api1"}, Audiences: []string{"https://api3.example"}, ParentJTI: "T2",
			Reason: "read ledger/42: ok", TraceID: traceID},
		store.AuditEvent{ID: "D1", Time: at(7), Type: store.EventDenied, Decision: store.DecisionDeny, ClientID: "api3",
			Subject: "alice", Actors: []string{"api3", "api2", "api1"}, Audiences: []string{"https://api5.example"},
			ParentJTI: "T2", Reason: "invalid_target: no policy of api3 allows https://api5.example", TraceID: traceID,
			Detail: `{"policies":[{"policy":"api3-to-api4","check":"targets","reason":"does not allow audience \"https://api5.example\""}]}`},
		store.AuditEvent{ID: "R1", Time: at(8), Type: store.EventTokenRevoked, ClientID: "api1", Subject: "alice",
			TokenJTI: "T1", TokenExpires: exp, Reason: "client api1 revoked it", Detail: `{"revoked":["T1","T2"]}`},
	)
}

// outsideTrail is a chain that starts at a SAML assertion of a corporate IdP,
// exchanged by api1 and then by api2.
func outsideTrail() *trail {
	exp := t0.Add(5 * time.Minute)
	return newTrail(
		store.AuditEvent{ID: "X1", Time: at(0), Type: store.EventTokenExchanged, ClientID: "api1", Subject: "alice@corp.example",
			SubjectIssuer: "https://idp.corp.example/saml", Actors: []string{"api1"}, Audiences: []string{"https://api2.example"},
			ParentJTI: "_a75adf55-01d7-40cc-929f-dbd8372ebdfc", TokenJTI: "F1", TokenExpires: exp, Rule: "exchange.policies[3]"},
		store.AuditEvent{ID: "X2", Time: at(1), Type: store.EventTokenExchanged, ClientID: "api2", Subject: "alice@corp.example",
			SubjectIssuer: "https://idp.corp.example/saml", Actors: []string{"api2", "api1"}, Audiences: []string{"https://api3.example"},
			ParentJTI: "F1", TokenJTI: "F2", TokenExpires: exp, Rule: "exchange.policies[4]"},
	)
}

func trace(t testing.TB, tr *trail, id string) *audit.Tree {
	t.Helper()
	tree, err := audit.Trace(context.Background(), tr, id)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// links are the URLs the explorer's pages give.
var links = Options{
	EventURL: func(id string) string { return "/audit/ui/events/" + id },
	TokenURL: func(jti string) string { return "/audit/ui/tokens/" + jti },
}
