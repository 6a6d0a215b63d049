package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// callsConfig is bankConfig with an auditor client that may read the trail over
// HTTP.
var callsConfig = strings.Replace(bankConfig, "clients:\n", "clients:\n  - {id: auditor, secret: auditor-secret, grant_types: [client_credentials], scopes: [\"deputy:audit\"]}\n", 1)

func TestCallReportsAndAuditOverHTTP(t *testing.T) {
	s := start(t, callsConfig)
	t0, t1, t2 := chain(t, s)
	jti := func(tok string) string { return claims(t, tok)["jti"].(string) }
	report := func(id, secret, body string) reply {
		t.Helper()
		return s.postRaw(s.endpoint("call_report_endpoint"), basic(id, secret), "application/json", body)
	}

	// api3 reports what it did with T2; api2 with T1. A call on a token not
	// addressed to the reporter and one on an unknown token are refused, the rest
	// of the report stands.
	r := report("api3", "api3-secret", `{"calls":[
		{"token_jti":"`+jti(t2)+`","action":"check","resource":"payment/7","outcome":"ok","time":"`+time.Now().UTC().Format(time.RFC3339Nano)+`"},
		{"token_jti":"`+jti(t1)+`","action":"read"},
		{"token_jti":"nope","action":"read"}]}`)
	if r.Status != 200 || r.Body["accepted"] != 1.0 || len(r.Body["rejected"].([]any)) != 2 {
		t.Fatalf("report: %d %s", r.Status, r.Raw)
	}
	r = report("api2", "api2-secret", `{"calls":[{"token_jti":"`+jti(t1)+`","action":"read","resource":"account/42","outcome":"ok"}]}`)
	if r.Status != 200 || r.Body["accepted"] != 1.0 {
		t.Fatalf("api2 report: %d %s", r.Status, r.Raw)
	}

	t.Run("fail/bad-reports", func(t *testing.T) {
		for name, tc := range map[string]struct {
			id, secret, ctype, body string
			status                  int
			code                    string
		}{
			"wrong-secret":   {"api2", "nope", "application/json", `{"calls":[]}`, 401, "invalid_client"},
			"no-auth":        {"", "", "application/json", `{"calls":[]}`, 401, "invalid_client"},
			"form-body":      {"api2", "api2-secret", "application/x-www-form-urlencoded", `calls=1`, 400, "invalid_request"},
			"not-json":       {"api2", "api2-secret", "application/json", `{"calls":[`, 400, "invalid_request"},
			"unknown-field":  {"api2", "api2-secret", "application/json", `{"calls":[{"token_jti":"x","action":"a","evil":1}]}`, 400, "invalid_request"},
			"empty":          {"api2", "api2-secret", "application/json", `{"calls":[]}`, 400, "invalid_request"},
			"trailing-data":  {"api2", "api2-secret", "application/json", `{"calls":[{"token_jti":"x","action":"a"}]} {}`, 400, "invalid_request"},
			"too-many-calls": {"api2", "api2-secret", "application/json", `{"calls":[` + strings.Repeat(`{"token_jti":"x","action":"a"},`, 500) + `{"token_jti":"x","action":"a"}]}`, 400, "invalid_request"},
		} {
			t.Run(name, func(t *testing.T) {
				auth := ""
				if tc.id != "" {
					auth = basic(tc.id, tc.secret)
				}
				wantError(t, s.postRaw(s.endpoint("call_report_endpoint"), auth, tc.ctype, tc.body), tc.status, tc.code)
			})
		}
	})

	get := func(endpoint, id, secret string, q url.Values) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, s.endpoint(endpoint)+"?"+q.Encode(), nil)
		if id != "" {
			req.Header.Set("Authorization", basic(id, secret))
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	t.Run("ok/audit-query-over-http", func(t *testing.T) {
		code, body := get("audit_events_endpoint", "auditor", "auditor-secret", url.Values{"type": {"call.reported"}})
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var events []map[string]any
		sc := bufio.NewScanner(strings.NewReader(body))
		for sc.Scan() {
			var e map[string]any
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			events = append(events, e)
		}
		if len(events) != 2 || events[1]["client_id"] != "api2" || events[1]["reason"] != "read account/42: ok" ||
			events[1]["parent_jti"] != jti(t1) || events[1]["subject"] != "web-app" {
			t.Errorf("call events over HTTP: %s", body)
		}
		// Anyone in the chain, with a page size.
		code, body = get("audit_events_endpoint", "auditor", "auditor-secret", url.Values{"actor": {"api1"}, "limit": {"1"}})
		if code != 200 || strings.Count(body, "\n") != 1 {
			t.Errorf("limit 1: %d %s", code, body)
		}
	})
	t.Run("ok/audit-trace-over-http-shows-calls", func(t *testing.T) {
		code, body := get("audit_trace_endpoint", "auditor", "auditor-secret", url.Values{"id": {jti(t0)}})
		if code != 200 || !strings.Contains(body, `"relation": "call"`) || !strings.Contains(body, "check payment/7: ok") {
			t.Errorf("trace: %d %s", code, body)
		}
		out, code2 := s.deputy("audit", "trace", jti(t0))
		if code2 != 0 || !strings.Contains(out, `→ call`) || !strings.Contains(out, `did "read account/42: ok"`) {
			t.Errorf("deputy audit trace:\n%s", out)
		}
	})
	t.Run("fail/audit-needs-the-scope", func(t *testing.T) {
		for _, tc := range []struct{ id, secret, params string }{
			{"api1", "api1-secret", ""}, {"auditor", "wrong", ""}, {"", "", ""},
		} {
			code, body := get("audit_events_endpoint", tc.id, tc.secret, url.Values{})
			if code == 200 || strings.Contains(body, "token_jti") {
				t.Errorf("%q read the trail: %d %s", tc.id, code, body)
			}
		}
		if code, _ := get("audit_events_endpoint", "auditor", "auditor-secret", url.Values{"since": {"yesterday"}}); code != 400 {
			t.Errorf("bad since: %d", code)
		}
		if code, _ := get("audit_trace_endpoint", "auditor", "auditor-secret", url.Values{"id": {"no-such-token"}}); code != 404 {
			t.Errorf("unknown id: %d", code)
		}
	})
	if out, code := s.deputy("audit", "verify"); code != 0 {
		t.Fatalf("audit verify: %s", out)
	}
}
