package e2e

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAuditEventsCarryTheTraceID: a token request sent with a W3C traceparent is
// recorded with its trace id; deputy audit query --trace-id and
// /audit/events?trace_id= find exactly that request's event, deputy audit trace
// prints the id, and a trace id changed in the database breaks the chain (README
// "Audit trail").
func TestAuditEventsCarryTheTraceID(t *testing.T) {
	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		other   = "0af7651916cd43dd8448eb211c80319c"
	)
	s := start(t, callsConfig)
	tokenTraced := func(traceID string) string {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, s.endpoint("token_endpoint"), strings.NewReader(clientCredentials("").Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", basic("web-app", "web-secret"))
		req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
			t.Fatalf("token request: %d %v", resp.StatusCode, err)
		}
		return body.AccessToken
	}
	tok := tokenTraced(traceID)
	jti := claims(t, tok)["jti"].(string)
	tokenTraced(other)
	s.token("web-app", "web-secret", clientCredentials("")) // no traceparent

	// deputy audit query --trace-id --json: that request's event, and no other.
	out, code := s.deputy("audit", "query", "--trace-id", traceID, "--json")
	if code != 0 {
		t.Fatalf("audit query --trace-id: exit %d %s", code, out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	var e struct {
		Type     string `json:"type"`
		TokenJTI string `json:"token_jti"`
		TraceID  string `json:"trace_id"`
	}
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &e) != nil ||
		e.TokenJTI != jti || e.TraceID != traceID || e.Type != "token.issued" {
		t.Fatalf("audit query --trace-id %s --json, want the issuance of %s:\n%s", traceID, jti, out)
	}
	if out, code := s.deputy("audit", "query", "--trace-id", traceID); code != 0 || !strings.Contains(out, " trace="+traceID+" ") {
		t.Errorf("audit query --trace-id, text: exit %d %s", code, out)
	}
	if out, code := s.deputy("audit", "query", "--trace-id", "not-a-trace-id"); code == 0 || !strings.Contains(out, "--trace-id") {
		t.Errorf("a malformed --trace-id: exit %d %s", code, out)
	}

	// deputy audit trace prints it.
	if out, code := s.deputy("audit", "trace", jti); code != 0 || !strings.Contains(out, "trace "+traceID) {
		t.Errorf("audit trace %s: exit %d, want trace %s:\n%s", jti, code, traceID, out)
	}

	// Over HTTP.
	get := func(q url.Values) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, s.endpoint("audit_events_endpoint")+"?"+q.Encode(), nil)
		req.Header.Set("Authorization", basic("auditor", "auditor-secret"))
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(url.Values{"trace_id": {other}}); code != 200 || strings.Count(body, "\n") != 1 || !strings.Contains(body, `"trace_id":"`+other+`"`) {
		t.Errorf("/audit/events?trace_id=%s: %d %s", other, code, body)
	}
	if code, body := get(url.Values{"trace_id": {strings.ToUpper(traceID)}}); code != 400 || !strings.Contains(body, "invalid_request") || !strings.Contains(body, "trace_id") {
		t.Errorf("/audit/events with a malformed trace_id: %d %s", code, body)
	}

	if onPostgres() {
		return // the rest changes the SQLite file by hand
	}
	s.stop()
	if out, code := s.deputy("audit", "verify"); code != 0 {
		t.Fatalf("verify before tampering: exit %d %s", code, out)
	}
	db, err := sql.Open("sqlite", filepath.Join(s.dir, "deputy.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var seq string
	if err := db.QueryRow(`SELECT seq FROM audit_events WHERE trace_id = ?`, traceID).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_events SET trace_id = ? WHERE trace_id = ?`, other, traceID); err != nil {
		t.Fatal(err)
	}
	if out, code := s.deputy("audit", "verify"); code == 0 || !strings.Contains(out, "BROKEN at record "+seq+" ") {
		t.Errorf("verify after the trace id of record %s changed: exit %d %s", seq, code, out)
	}
}

// TestAuditTraceDenialPolicies: a refused exchange keeps, in its audit record,
// what each policy of the client made of it; deputy audit query --json has it in
// the detail, deputy audit trace shows one line per policy under the denial, and
// /audit/trace carries it as data (README "Audit trail").
func TestAuditTraceDenialPolicies(t *testing.T) {
	s := start(t, callsConfig)
	_, t1, _ := chain(t, s)
	wantError(t, s.post("token_endpoint", "api2", "api2-secret", exchangeForm(t1, "audience", "https://api1.example")), 400, "invalid_target")

	out, code := s.deputy("audit", "query", "--client", "api2", "--type", "request.denied", "--json")
	var denial struct {
		ID     string `json:"id"`
		Detail struct {
			Policies []struct{ Policy, Check, Reason string } `json:"policies"`
		} `json:"detail"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &denial) != nil {
		t.Fatalf("audit query: exit %d %s", code, out)
	}
	want := `[{api2-to-api3 targets does not allow audience "https://api1.example"} {api2-from-batch targets does not allow audience "https://api1.example"}]`
	if got := fmt.Sprint(denial.Detail.Policies); got != want {
		t.Errorf("denial keeps policies %s, want %s", got, want)
	}

	out, code = s.deputy("audit", "trace", denial.ID)
	under := regexp.MustCompile(`◀ asked\n +policy api2-to-api3: targets — does not allow audience "https://api1\.example"\n` +
		` +policy api2-from-batch: targets — does not allow audience "https://api1\.example"\n`)
	if code != 0 || !under.MatchString(out) {
		t.Errorf("audit trace %s: exit %d, want the policy under the denial:\n%s", denial.ID, code, out)
	}

	req, _ := http.NewRequest(http.MethodGet, s.endpoint("audit_trace_endpoint")+"?id="+url.QueryEscape(denial.ID), nil)
	req.Header.Set("Authorization", basic("auditor", "auditor-secret"))
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"policies": [`) ||
		!strings.Contains(string(body), `"reason": "does not allow audience \"https://api1.example\""`) {
		t.Errorf("/audit/trace?id=%s: %d %s", denial.ID, resp.StatusCode, body)
	}
}
