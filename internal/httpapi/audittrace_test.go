package httpapi_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/deputy-auth/deputy/oauth"
)

// withTrace is r carrying the span context of a traceparent of trace id traceID,
// as the HTTP layer puts it in every request's context (README "Traces").
func withTrace(t *testing.T, r *http.Request, traceID string) *http.Request {
	t.Helper()
	tid, err := trace.TraceIDFromHex(traceID)
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: trace.SpanID{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	return r.WithContext(trace.ContextWithRemoteSpanContext(r.Context(), sc))
}

// TestAuditEventsByTraceID: the events a request records carry its trace id —
// an issuance, an exchange and a denial, from the request context through the
// grants to the audit writer — and /audit/events?trace_id= finds exactly them.
func TestAuditEventsByTraceID(t *testing.T) {
	const (
		traceA = "4bf92f3577b34da6a3ce929d0e0e4736" // web-app's token and api1's exchange of it
		traceB = "0af7651916cd43dd8448eb211c80319c" // a denied request
	)
	n := newNode(t)
	post := func(traceID, id, secret string, form url.Values) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, n.token, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth(id, secret)
		if traceID != "" {
			r = withTrace(t, r, traceID)
		}
		return n.do(r)
	}
	w := post(traceA, "web-app", "web-app-secret", url.Values{"grant_type": {oauth.GrantClientCredentials}})
	if w.Code != http.StatusOK {
		t.Fatalf("client_credentials: %d %s", w.Code, w.Body)
	}
	var resp oauth.TokenResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	w = post(traceA, "api1", "api1-secret", url.Values{
		"grant_type": {oauth.GrantTokenExchange}, "subject_token": {resp.AccessToken},
		"subject_token_type": {string(oauth.TokenTypeAccessToken)}, "audience": {"https://api2.example"},
	})
	if w.Code != http.StatusOK {
		t.Fatalf("exchange: %d %s", w.Code, w.Body)
	}
	if w := post(traceB, "web-app", "wrong", url.Values{"grant_type": {oauth.GrantClientCredentials}}); w.Code != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d %s", w.Code, w.Body)
	}
	n.clientToken("web-app") // no traceparent: none, or a trace of its own

	query := func(params string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/audit/events?"+params, nil)
		r.SetBasicAuth("auditor", "auditor-secret")
		return n.do(r)
	}
	type event struct {
		Type, Decision, TraceID, TokenJTI, ParentJTI string
	}
	events := func(params string) []event {
		t.Helper()
		w := query(params)
		if w.Code != http.StatusOK {
			t.Fatalf("/audit/events?%s: %d %s", params, w.Code, w.Body)
		}
		var out []event
		sc := bufio.NewScanner(w.Body)
		for sc.Scan() {
			var e struct {
				Type      string `json:"type"`
				Decision  string `json:"decision"`
				TraceID   string `json:"trace_id"`
				TokenJTI  string `json:"token_jti"`
				ParentJTI string `json:"parent_jti"`
			}
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("%q: %v", sc.Bytes(), err)
			}
			out = append(out, event{e.Type, e.Decision, e.TraceID, e.TokenJTI, e.ParentJTI})
		}
		return out
	}
	jti := jwtClaim(t, resp.AccessToken, "jti")

	gotA := events("trace_id=" + traceA)
	if len(gotA) != 2 || gotA[0].Type != "token.issued" || gotA[0].TokenJTI != jti ||
		gotA[1].Type != "token.exchanged" || gotA[1].ParentJTI != jti {
		t.Errorf("trace A: %+v, want web-app's issuance and api1's exchange of it", gotA)
	}
	gotB := events("trace_id=" + traceB)
	if len(gotB) != 1 || gotB[0].Decision != "deny" {
		t.Errorf("trace B: %+v, want the denial", gotB)
	}
	for _, e := range slices.Concat(gotA, gotB) {
		if e.TraceID != traceA && e.TraceID != traceB {
			t.Errorf("event %+v: trace_id not the request's", e)
		}
	}
	if got := events("trace_id=00000000000000000000000000000001"); len(got) != 0 {
		t.Errorf("unknown trace id: %+v", got)
	}
	inAB := 0
	all := events("")
	for _, e := range all {
		if e.TraceID == traceA || e.TraceID == traceB {
			inAB++
		}
	}
	if inAB != 3 || len(all) < 4 {
		t.Errorf("%d events of traces A and B, want 3: %+v", inAB, all)
	}

	for _, tc := range []struct{ name, params string }{
		{"fail/upper-case", "trace_id=" + strings.ToUpper(traceA)},
		{"fail/all-zero", "trace_id=00000000000000000000000000000000"},
		{"fail/short", "trace_id=" + traceA[:31]},
		{"fail/long", "trace_id=" + traceA + "0"},
		{"fail/not-hex", "trace_id=4bf92f3577b34da6a3ce929d0e0e473z"},
		{"fail/traceparent", "trace_id=00-" + traceA + "-00f067aa0ba902b7-01"},
		{"fail/repeated", "trace_id=" + traceA + "&trace_id=" + traceB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := query(tc.params)
			if code := oauthError(t, w, http.StatusBadRequest); code != oauth.CodeInvalidRequest {
				t.Errorf("error %q, want invalid_request", code)
			}
			if !strings.Contains(w.Body.String(), "trace_id") {
				t.Errorf("description does not name trace_id: %s", w.Body)
			}
		})
	}
}
