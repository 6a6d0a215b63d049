package report_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/deputy-auth/deputy/internal/testdeputy"
	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk"
	"github.com/deputy-auth/deputy/sdk/report"
)

// jtiOf reads the jti claim of a JWT without checking it (the token came from the
// deputy the test started).
func jtiOf(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		JTI string `json:"jti"`
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.JTI == "" {
		t.Fatalf("jti of %s: %v", payload, err)
	}
	return c.JTI
}

// auditEvents reads deputy's trail over HTTP as the development setup's auditor.
func auditEvents(t *testing.T, d *testdeputy.Deputy, q url.Values) []map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, d.URL+"/audit/events?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("auditor", "auditor-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /audit/events: %s", resp.Status)
	}
	var events []map[string]any
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("event %q: %v", sc.Text(), err)
		}
		events = append(events, e)
	}
	return events
}

// TestReportsArriveAndAreLinked runs the reporter against a real deputy: api1
// receives a token for itself, exchanges it for api2, and api2 reports what it did
// with the exchanged token. deputy records the call linked to that token's jti,
// with the user and the chain of services that carried the request; a call naming
// a token that is neither issued to nor addressed to the reporter is refused one
// by one and audited as a denial.
func TestReportsArriveAndAreLinked(t *testing.T) {
	d := testdeputy.Start(t, nil)

	// web-app's token for api1 (client credentials: its subject is web-app), then
	// api1 exchanges it for api2.
	t0 := d.ClientCredentials("web-app", "payments:read ledger:read")
	t1 := d.Token("api1", "api1-secret", url.Values{
		"grant_type":         {oauth.GrantTokenExchange},
		"subject_token":      {t0},
		"subject_token_type": {string(oauth.TokenTypeAccessToken)},
		"audience":           {"https://api2.example"},
		"scope":              {"ledger:read"},
	}).AccessToken

	var mu sync.Mutex
	var told []error
	r, err := report.New(report.Config{
		Issuer:       d.URL,
		ClientID:     "api2",
		ClientSecret: "api2-secret",
		OnError: func(err error) {
			mu.Lock()
			defer mu.Unlock()
			told = append(told, err)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := sdk.ContextWithToken(context.Background(), t1)
	r.ReportRequest(ctx, "read", "account/42", "ok")
	r.Report(report.Call{TokenJTI: jtiOf(t, t1), Action: "list", Resource: "accounts", Outcome: "ok", Detail: "3 accounts"})
	// t0 was issued to web-app and addressed to api1: not api2's to report.
	r.Report(report.Call{TokenJTI: jtiOf(t, t0), Action: "read", Resource: "account/7", Outcome: "ok"})
	if err := r.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}

	if st := r.Stats(); st != (report.Stats{Sent: 2, Rejected: 1}) {
		t.Errorf("Stats = %+v, want 2 sent, 1 rejected", st)
	}
	mu.Lock()
	var rej *report.RejectedError
	if len(told) != 1 || !errors.As(told[0], &rej) || len(rej.Rejections) != 1 || rej.Rejections[0].Call.TokenJTI != jtiOf(t, t0) {
		t.Errorf("OnError told %v, want one rejection of t0's call", told)
	}
	mu.Unlock()

	calls := auditEvents(t, d, url.Values{"type": {"call.reported"}})
	if len(calls) != 2 {
		t.Fatalf("call.reported events: %d, want 2: %v", len(calls), calls)
	}
	for i, want := range []string{"read account/42: ok", "list accounts: ok"} {
		e := calls[i]
		if e["reason"] != want || e["client_id"] != "api2" || e["parent_jti"] != jtiOf(t, t1) ||
			e["subject"] != "web-app" || !equalList(e["actors"], "api1") {
			t.Errorf("call %d: %v, want %q by api2 on t1 for web-app via api1", i, e, want)
		}
	}
	denied := auditEvents(t, d, url.Values{"type": {"request.denied"}, "client": {"api2"}})
	if len(denied) != 1 || denied[0]["parent_jti"] != jtiOf(t, t0) ||
		!strings.Contains(denied[0]["reason"].(string), "neither issued to nor addressed to the reporting client") {
		t.Errorf("denials of api2: %v, want the call on t0", denied)
	}
}

func equalList(v any, want ...string) bool {
	l, ok := v.([]any)
	if !ok || len(l) != len(want) {
		return false
	}
	for i := range l {
		if l[i] != want[i] {
			return false
		}
	}
	return true
}
