package audit

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// callTrace is the trace of the request a reported call handled.
const callTrace = "4bf92f3577b34da6a3ce929d0e0e4736"

func TestReporterRecord(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		delegationTrail(t, b) // T0 (web-app → api1), T1 (api1 → api2), T2 (api2 → api3)
		w := NewWriter(b, b, WriterOptions{})
		defer w.Close()
		r := &Reporter{Log: b, Writer: w, AudienceClients: map[string]string{
			"https://api2.example": "api2", "https://api3.example": "api3",
		}}
		now := t0.Add(time.Minute)
		calls := []Call{
			{TokenJTI: "T2", Action: "check", Resource: "payment/7", Outcome: "ok", Time: now.Add(-time.Second), TraceID: callTrace}, // addressed to api3
			{TokenJTI: "T9", Action: "check"},                                // unknown token
			{TokenJTI: "T1", Action: "read"},                                 // addressed to api2, not api3
			{TokenJTI: "T2", Action: ""},                                     // no action
			{TokenJTI: "", Action: "read"},                                   // no token
			{TokenJTI: "T2", Action: "read\nforged line"},                    // control character
			{TokenJTI: "T2", Action: "read", Time: now.Add(-48 * time.Hour)}, // too old
			{TokenJTI: "T2", Action: "read", Time: now.Add(time.Hour)},       // from the future
			{TokenJTI: "T2", Action: strings.Repeat("x", maxCallField+1)},    // too long
			{TokenJTI: "T2", Action: "read", Detail: strings.Repeat("d", maxCallDetail+1)},
			{TokenJTI: "T2", Action: "read", TraceID: strings.ToUpper(callTrace)}, // not lowercase hex
			{TokenJTI: "T2", Action: "read", TraceID: strings.Repeat("0", 32)},    // the invalid all-zero id
		}
		res, err := r.Record(ctx, Origin{ClientID: "api3", RequestID: "req-1", RemoteAddr: "192.0.2.3"}, calls, now)
		if err != nil {
			t.Fatal(err)
		}
		if res.Accepted != 1 || len(res.Rejected) != len(calls)-1 {
			t.Fatalf("result %+v", res)
		}
		wantWhy := map[int]string{
			1: "no token with this token_jti", 2: "neither issued to nor addressed to", 3: "action is missing",
			4: "token_jti is missing", 5: "control characters", 6: "before or", 7: "before or", 8: "too long", 9: "detail is too long",
			10: "trace_id is not a W3C trace id", 11: "trace_id is not a W3C trace id",
		}
		for _, rj := range res.Rejected {
			if !strings.Contains(rj.Error, wantWhy[rj.Index]) {
				t.Errorf("rejection of call %d: %q, want it to say %q", rj.Index, rj.Error, wantWhy[rj.Index])
			}
		}

		// Every call is in the trail: the accepted one linked to T2 and carrying its
		// subject and actor chain, the refused ones as denials with their reason.
		evs, err := b.Query(ctx, store.AuditFilter{ClientID: "api3", Since: now})
		if err != nil {
			t.Fatal(err)
		}
		var reported, denied int
		for _, e := range evs {
			if e.RequestID != "req-1" {
				continue
			}
			switch e.Type {
			case store.EventCallReported:
				reported++
				if e.ParentJTI != "T2" || e.Subject != "alice" || strings.Join(e.Actors, ",") != "api2,api1" ||
					e.Decision != store.DecisionAllow || e.Reason != "check payment/7: ok" {
					t.Errorf("call event %+v", e)
				}
				if e.TraceID != callTrace {
					t.Errorf("call event's trace id %q, want the call's own %s", e.TraceID, callTrace)
				}
				var d callDetail
				if err := json.Unmarshal([]byte(e.Detail), &d); err != nil || d.Resource != "payment/7" || !d.Time.Equal(now.Add(-time.Second)) {
					t.Errorf("call detail %s (%v)", e.Detail, err)
				}
			case store.EventDenied:
				denied++
				if e.Decision != store.DecisionDeny || !strings.HasPrefix(e.Reason, "call report refused: ") {
					t.Errorf("denial %+v", e)
				}
			}
		}
		if reported != 1 || denied != len(calls)-1 {
			t.Errorf("%d call events and %d denials recorded, want 1 and %d", reported, denied, len(calls)-1)
		}

		// The trace of T0 shows the reported call under T2.
		tree, err := Trace(ctx, b, "T0")
		if err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		if err := tree.WriteText(&sb); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(sb.String(), "→ call") || !strings.Contains(sb.String(), "check payment/7: ok") {
			t.Errorf("trace lacks the call:\n%s", sb.String())
		}

		// The client a token was issued to may report on it too.
		res, err = r.Record(ctx, Origin{ClientID: "api1"}, []Call{{TokenJTI: "T1", Action: "call ledger"}}, now)
		if err != nil || res.Accepted != 1 {
			t.Errorf("api1 reporting on T1, issued to it: %+v %v", res, err)
		}
	})
}
