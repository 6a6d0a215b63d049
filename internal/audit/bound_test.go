package audit

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/deputy-auth/deputy/internal/store"
)

func TestBound(t *testing.T) {
	t.Run("ok/within-bounds-unchanged", func(t *testing.T) {
		e := sampleEvent()
		want := sampleEvent()
		Bound(&e)
		if Digest(e) == nil || string(Digest(e)) != string(Digest(want)) {
			t.Errorf("an event within bounds changed: %+v", e)
		}
	})
	t.Run("ok/long-fields-cut-with-a-marker", func(t *testing.T) {
		long := strings.Repeat("é", 30<<10) // 60 KiB of two-byte runes
		e := store.AuditEvent{ClientID: long, Subject: long, Reason: long, RequestID: long, RemoteAddr: long, ParentJTI: long}
		Bound(&e)
		for name, f := range map[string]struct {
			v   string
			max int
		}{
			"client": {e.ClientID, MaxClientIDBytes}, "subject": {e.Subject, MaxSubjectBytes},
			"reason": {e.Reason, MaxReasonBytes}, "request": {e.RequestID, MaxRequestIDBytes},
			"remote": {e.RemoteAddr, MaxRemoteBytes}, "parent": {e.ParentJTI, MaxJTIBytes},
		} {
			if len(f.v) > f.max || !utf8.ValidString(f.v) || !strings.Contains(f.v, "…[61440 bytes, sha256 ") {
				t.Errorf("%s: %d bytes %q", name, len(f.v), f.v[max(0, len(f.v)-60):])
			}
		}
		if e.ClientID == store.Truncate(strings.Repeat("é", 30<<10-1)+"x", MaxClientIDBytes) {
			t.Error("two long values with one prefix cut to the same text")
		}
	})
	t.Run("ok/lists-bounded", func(t *testing.T) {
		var many []string
		for range 1000 {
			many = append(many, "scope")
		}
		big := slices.Repeat([]string{strings.Repeat("a", 2000)}, 40)
		e := store.AuditEvent{Scopes: many, Audiences: big}
		Bound(&e)
		if len(e.Scopes) != MaxListItems || e.Scopes[MaxListItems-1] != "…[745 more]" {
			t.Errorf("%d scopes, last %q", len(e.Scopes), e.Scopes[len(e.Scopes)-1])
		}
		total := 0
		for _, a := range e.Audiences {
			total += len(a)
			if len(a) > MaxListItemBytes {
				t.Errorf("audience of %d bytes", len(a))
			}
		}
		if total > MaxListBytes+64 || !strings.HasSuffix(e.Audiences[len(e.Audiences)-1], " more]") {
			t.Errorf("%d audiences, %d bytes", len(e.Audiences), total)
		}
	})
	t.Run("ok/long-detail-stays-json", func(t *testing.T) {
		d, _ := json.Marshal(map[string]string{"grant_type": strings.Repeat("\x01", 60<<10)})
		e := store.AuditEvent{Detail: string(d)}
		Bound(&e)
		var got struct {
			Truncated bool   `json:"truncated"`
			Bytes     int    `json:"bytes"`
			Prefix    string `json:"prefix"`
		}
		if len(e.Detail) > MaxDetailBytes || json.Unmarshal([]byte(e.Detail), &got) != nil || !got.Truncated || got.Bytes != len(d) {
			t.Errorf("detail of %d bytes: %.200s", len(e.Detail), e.Detail)
		}
	})
}
