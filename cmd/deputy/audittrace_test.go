package main

import (
	"database/sql"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/internal/store"
)

// TestAuditByTraceID: deputy audit query --trace-id finds the events of one W3C
// trace, in text (trace=) and JSON (trace_id); audit trace shows each event's
// trace id; audit verify breaks on a trace id changed in the database.
func TestAuditByTraceID(t *testing.T) {
	const (
		traceA = "4bf92f3577b34da6a3ce929d0e0e4736"
		traceB = "0af7651916cd43dd8448eb211c80319c"
	)
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
	events := []*store.AuditEvent{
		{Type: store.EventTokenIssued, ClientID: "web-app", Subject: "web-app", TokenJTI: "T0",
			TokenExpires: at.Add(time.Hour), Decision: store.DecisionAllow, TraceID: traceA},
		{Type: store.EventTokenExchanged, ClientID: "api1", Subject: "web-app", Actors: []string{"api1"},
			ParentJTI: "T0", TokenJTI: "T1", TokenExpires: at.Add(time.Hour), Decision: store.DecisionAllow, TraceID: traceA},
		{Type: store.EventTokenIssued, ClientID: "web-app", Subject: "web-app", TokenJTI: "U0",
			TokenExpires: at.Add(time.Hour), Decision: store.DecisionAllow, TraceID: traceB},
		{Type: store.EventTokenIssued, ClientID: "web-app", Subject: "web-app", TokenJTI: "V0",
			TokenExpires: at.Add(time.Hour), Decision: store.DecisionAllow},
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

	out, err := deputy("", "audit", "query", "--trace-id", traceA, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for line := range strings.Lines(out) {
		var e struct {
			TokenJTI string `json:"token_jti"`
			TraceID  string `json:"trace_id"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if e.TraceID != traceA {
			t.Errorf("event of %s has trace_id %q", e.TokenJTI, e.TraceID)
		}
		got = append(got, e.TokenJTI)
	}
	if strings.Join(got, ",") != "T0,T1" {
		t.Errorf("--trace-id %s --json: events of %v, want T0,T1", traceA, got)
	}

	out, err = deputy("", "audit", "query", "--trace-id", traceB)
	if err != nil || strings.Count(out, "\n") != 1 || !strings.Contains(out, " token=U0 ") || !strings.Contains(out, " trace="+traceB+" ") {
		t.Errorf("--trace-id %s: %v\n%s", traceB, err, out)
	}
	if out, err := deputy("", "audit", "query", "--trace-id", "00000000000000000000000000000001"); err != nil || out != "" {
		t.Errorf("an unknown trace id: %v %q", err, out)
	}
	for _, bad := range []string{strings.ToUpper(traceA), "00000000000000000000000000000000", traceA[:31], "x\x1b[2J"} {
		out, err := deputy("", "audit", "query", "--trace-id", bad)
		if err == nil || !strings.Contains(err.Error(), "--trace-id") || !strings.Contains(err.Error(), "W3C trace-id") {
			t.Errorf("--trace-id %q: %v %q, want an error naming the flag", bad, err, out)
		}
		if err != nil && strings.Contains(err.Error(), "\x1b") {
			t.Errorf("the error shows the value raw: %q", err)
		}
	}

	out, err = deputy("", "audit", "trace", "T1")
	if err != nil || strings.Count(out, "trace "+traceA) != 2 {
		t.Errorf("audit trace T1: %v, want both hops with trace %s:\n%s", err, traceA, out)
	}

	if out, err := deputy("", "audit", "verify"); err != nil || !strings.Contains(out, "intact: 4 records") {
		t.Fatalf("audit verify: %v %q", err, out)
	}
	db, err := sql.Open("sqlite", cfg.Storage.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE audit_events SET trace_id = ? WHERE token_jti = 'T1'`, traceB); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out, err = deputy("", "audit", "verify")
	if err == nil || !strings.Contains(out, "BROKEN at record 2") {
		t.Errorf("audit verify after the trace id of record 2 changed: %v %q", err, out)
	}
}
