package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/internal/store"
)

// TestRefusedCallReportStoresASummary: a refused call was stored in full in its
// denial, its JSON escaping inflating it six times (a report of under 1 MiB stored
// 900 KB per call). The denial now keeps why, the size and a short prefix.
func TestRefusedCallReportStoresASummary(t *testing.T) {
	for _, tc := range []struct {
		name string
		call string // one call, as JSON
		why  string
	}{
		{"fail/detail-too-long-of-control-characters",
			`{"token_jti":"T1","action":"read","detail":"` + strings.Repeat(`\u0001`, 150_000) + `"}`, "detail is too long"},
		{"fail/action-too-long", `{"token_jti":"T1","action":"` + strings.Repeat("a", 900_000) + `"}`, "action is too long"},
		{"fail/token-jti-of-escape-sequences", `{"token_jti":"` + strings.Repeat(`\u001b[2J`, 100_000) + `","action":"read"}`, "token_jti is too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := node(t)
			body := `{"calls":[` + tc.call + `]}`
			r := httptest.NewRequest(http.MethodPost, "/calls", strings.NewReader(body))
			r.SetBasicAuth("api3", "api3-secret")
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			s.Handler.ServeHTTP(w, r)
			if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), tc.why) {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			evs, err := s.Store.Query(context.Background(), store.AuditFilter{Type: store.EventDenied})
			if err != nil || len(evs) != 1 {
				t.Fatalf("%d denials, %v", len(evs), err)
			}
			e := evs[0]
			if n := storedBytes(e); n > 2048 {
				t.Errorf("a refused call of %d bytes stored %d bytes", len(tc.call), n)
			}
			var d struct {
				Refused struct {
					Why    string `json:"why"`
					Bytes  int    `json:"bytes"`
					Prefix string `json:"prefix"`
				} `json:"refused"`
			}
			if err := json.Unmarshal([]byte(e.Detail), &d); err != nil || !strings.Contains(d.Refused.Why, tc.why) ||
				d.Refused.Bytes < 100_000 || len(d.Refused.Prefix) > 256 || !strings.HasPrefix(d.Refused.Prefix, "{") {
				t.Errorf("detail %.300s (%v)", e.Detail, err)
			}
			if e.ParentJTI != "" && e.ParentJTI != "T1" {
				t.Errorf("parent %.80q", e.ParentJTI)
			}
		})
	}
}
