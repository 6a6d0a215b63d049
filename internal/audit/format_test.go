package audit

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// formatEvents are sealed events covering the shapes the renderings must handle.
func formatEvents() []store.AuditEvent {
	first := store.AuditEvent{
		Seq: 1, ID: "E1", Time: t0, Type: store.EventTokenIssued, ClientID: "web-app", Subject: "web-app",
		Audiences: []string{"https://api1.example"}, Scopes: []string{"payments:read"}, TokenJTI: "T0",
		TokenExpires: t0.Add(5 * time.Minute), Decision: store.DecisionAllow, RequestID: "req-1", RemoteAddr: "127.0.0.1:50000",
	}
	Seal(nil, &first)
	second := sampleEvent()
	second.Seq = 2
	Seal(first.Hash, &second)
	denied := store.AuditEvent{
		Seq: 3, ID: "E3", Time: t0.Add(2500 * time.Millisecond), Type: store.EventDenied, ClientID: "api3",
		Subject: "alice@corp", SubjectIssuer: "https://idp.corp.example", Actors: []string{"api3"},
		ParentJTI: "ext-9", Decision: store.DecisionDeny,
		Reason: `invalid_target: "https://evil.example" is not an audience of api3`,
		Detail: "{\n  \"audience\": \"https://evil.example\", \"html\": \"<b>&</b>\",\n" +
			"  \"policies\": [{\"policy\": \"api3-to-ledger\", \"check\": \"targets\", \"reason\": \"does not allow audience \\\"https://evil.example\\\"\"}]\n}",
	}
	Seal(second.Hash, &denied)
	bare := store.AuditEvent{Seq: 4, ID: "E4", Time: t0.Add(3 * time.Second), Type: store.EventKeyRotated, Detail: "not json = x"}
	Seal(denied.Hash, &bare)
	// Text from outside with what a terminal would obey: shown escaped.
	hostile := store.AuditEvent{
		Seq: 5, ID: "E5", Time: t0.Add(4 * time.Second), Type: store.EventDenied, ClientID: "evil\x1b[2J",
		Subject: "alice\u202egnp.exe", Actors: []string{"api\r\nforged"}, Decision: store.DecisionDeny,
		Reason: "invalid_client: unknown client \"evil\x1b[2J\"", RemoteAddr: "192.0.2.9",
		TraceID: "a\x1b[31m", // never written so (Bound), but a row can be forged
		Detail:  `{"grant_type":"x\u2028y\u009b31m"}`,
	}
	Seal(bare.Hash, &hostile)
	return []store.AuditEvent{first, second, denied, bare, hostile}
}

func TestWriteEventText(t *testing.T) {
	var b bytes.Buffer
	for _, e := range formatEvents() {
		if err := WriteEventText(&b, e); err != nil {
			t.Fatal(err)
		}
	}
	if n := bytes.Count(b.Bytes(), []byte("\n")); n != 5 {
		t.Errorf("%d lines for 5 events", n)
	}
	golden(t, "events.txt", b.Bytes())
}

func TestWriteEventJSON(t *testing.T) {
	var b bytes.Buffer
	events := formatEvents()
	for _, e := range events {
		if err := WriteEventJSON(&b, e); err != nil {
			t.Fatal(err)
		}
	}
	golden(t, "events.jsonl", b.Bytes())

	wantKeys := []string{"seq", "id", "time", "type", "client_id", "subject", "subject_issuer", "actors",
		"audiences", "scopes", "parent_jti", "token_jti", "token_expires", "decision", "reason", "rule",
		"request_id", "remote_addr", "trace_id", "detail", "prev_hash", "hash"}
	lines := bytes.Split(bytes.TrimSuffix(b.Bytes(), []byte("\n")), []byte("\n"))
	if len(lines) != len(events) {
		t.Fatalf("%d lines for %d events", len(lines), len(events))
	}
	for i, line := range lines {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		want := slices.Sorted(slices.Values(wantKeys))
		if !slices.Equal(keys, want) {
			t.Errorf("line %d keys %v, want %v", i+1, keys, want)
		}
	}
	// Detail: an object stays an object, anything else becomes a string.
	var d struct {
		Detail json.RawMessage `json:"detail"`
	}
	json.Unmarshal(lines[2], &d)
	if d.Detail[0] != '{' {
		t.Errorf("object detail rendered as %s", d.Detail)
	}
	json.Unmarshal(lines[3], &d)
	if d.Detail[0] != '"' {
		t.Errorf("non-JSON detail rendered as %s", d.Detail)
	}
}
