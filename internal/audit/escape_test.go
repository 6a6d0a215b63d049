package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// hostile are texts from outside that must not reach a terminal as they are: each
// would move the cursor, clear the screen, forge a line or reorder what is shown.
// NUL and invalid UTF-8 never get this far (store.CleanText), but a renderer must
// not trust the database either.
var hostile = map[string]string{
	"esc":       "alice\x1b[2J\x1b]0;owned\x07",
	"cr-lf":     "alice\r\n2026-11-25T18:00:00Z #1 token.issued allow client=admin",
	"nul":       "alice\x00",
	"del":       "alice\x7f",
	"c1-csi":    "alice\u009b31m",
	"line-sep":  "alice\u2028forged",
	"para-sep":  "alice\u2029forged",
	"bidi-rlo":  "alice\u202egnp.exe",
	"bidi-fsi":  "alice\u2068x\u2069",
	"zero-wdth": "ali\u200bce",
	"bad-utf8":  "alice\xff",
}

// rawUnsafe returns the first character of out, other than a line's final '\n',
// that a terminal would not show as a character of its own.
func rawUnsafe(out string) (rune, bool) {
	for _, line := range strings.SplitAfter(out, "\n") {
		line = strings.TrimSuffix(line, "\n")
		for i, r := range line {
			if r == utf8.RuneError && !strings.HasPrefix(line[i:], "\uFFFD") {
				return r, true
			}
			if oauth.UnsafeRune(r) || r == 0x200b {
				return r, true
			}
		}
	}
	return 0, false
}

// TestRenderersEscapeOutsideText: client ids, subjects and reasons from outside
// reached the terminal raw in `deputy audit trace` (and in the Detail of `audit
// query`): an ESC sequence cleared the screen, a CR LF forged a line. Every text
// renderer now quotes them in Go syntax; JSON escapes them as \u.
func TestRenderersEscapeOutsideText(t *testing.T) {
	for name, h := range hostile {
		t.Run("fail/"+name, func(t *testing.T) {
			b := newMemStore()
			w := NewWriter(b, b, WriterOptions{})
			defer w.Close()
			ctx := context.Background()
			issued := &store.AuditEvent{
				Time: t0, Type: store.EventTokenExchanged, Decision: store.DecisionAllow, ClientID: h, Subject: h,
				SubjectIssuer: h, Actors: []string{h, "api1"}, Audiences: []string{h}, Scopes: []string{h},
				ParentJTI: "P-" + h, TokenJTI: "T1", TokenExpires: t0.Add(time.Minute), Rule: h, RequestID: h, RemoteAddr: h,
			}
			denied := &store.AuditEvent{
				Time: t0.Add(time.Second), Type: store.EventDenied, Decision: store.DecisionDeny, ClientID: h,
				ParentJTI: "T1", Reason: "invalid_request: " + h,
				Detail: `{"why":"` + jsonString(h) + `","policies":[{"policy":"` + jsonString(h) + `","check":"` + jsonString(h) +
					`","reason":"` + jsonString(h) + `"},{"policy":"p","check":"condition","reason":"` + jsonString(h) + `"}]}`,
			}
			// The store sees the event as the writer cleans it; a renderer may also
			// meet what the writer never wrote (a database changed by hand).
			for _, e := range []*store.AuditEvent{issued, denied} {
				if err := w.Record(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			raw := *issued
			raw.ClientID, raw.Subject, raw.Reason, raw.Detail = h, h, h, `{"why":"`+jsonString(h)+`"}`
			raw.TraceID = h // Bound drops such a trace id; a row changed by hand may hold it
			for _, e := range []*store.AuditEvent{issued, denied} {
				b.alter(t, e.Seq, func(e *store.AuditEvent) { e.TraceID = h })
			}

			var text bytes.Buffer
			for _, e := range []store.AuditEvent{*issued, *denied, raw} {
				if err := WriteEventText(&text, e); err != nil {
					t.Fatal(err)
				}
			}
			if n := strings.Count(text.String(), "\n"); n != 3 {
				t.Errorf("3 events written as %d lines:\n%s", n, text.String())
			}
			if r, bad := rawUnsafe(text.String()); bad {
				t.Errorf("event text holds %U raw:\n%q", r, text.String())
			}

			tree, err := Trace(ctx, b, "T1")
			if err != nil {
				t.Fatal(err)
			}
			var tr strings.Builder
			if err := tree.WriteText(&tr); err != nil {
				t.Fatal(err)
			}
			if r, bad := rawUnsafe(tr.String()); bad {
				t.Errorf("trace text holds %U raw:\n%q", r, tr.String())
			}
			if !strings.Contains(tr.String(), "trace "+TextValue(h)) {
				t.Errorf("trace does not show the trace id quoted:\n%s", tr.String())
			}
			clean := strings.ToValidUTF8(h, "\uFFFD")
			if !strings.Contains(tr.String(), "policy "+TextValue(clean)+": "+TextValue(clean)+" — "+RestOfLine(clean)+"\n") ||
				!strings.Contains(tr.String(), "policy p: condition — "+RestOfLine(clean)+"\n") {
				t.Errorf("trace does not show the denial's policies quoted:\n%s", tr.String())
			}
			if !strings.Contains(tr.String(), "sub "+TextValue(issued.Subject)) {
				t.Errorf("trace does not show the subject quoted:\n%s", tr.String())
			}

			// JSON stays JSON, means the same, and holds nothing raw either.
			var js bytes.Buffer
			if err := WriteEventJSON(&js, raw); err != nil {
				t.Fatal(err)
			}
			if err := tree.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			if r, bad := rawUnsafe(js.String()); bad {
				t.Errorf("JSON holds %U raw:\n%q", r, js.String())
			}
			dec := json.NewDecoder(&js)
			var ev eventJSON
			var back Tree
			if err := dec.Decode(&ev); err != nil {
				t.Fatal(err)
			}
			if err := dec.Decode(&back); err != nil {
				t.Fatal(err)
			}
			want := strings.ToValidUTF8(h, "\uFFFD")
			if ev.ClientID != want || ev.Reason != want || back.Root == nil || len(back.Root.Children) != 1 ||
				back.Root.Children[0].Subject != issued.Subject {
				t.Errorf("JSON does not read back: %+v", ev)
			}
		})
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}
