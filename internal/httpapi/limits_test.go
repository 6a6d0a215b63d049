package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// newNodeWith is newNode with the development configuration changed by edit.
func newNodeWith(t *testing.T, edit func(*config.Config)) *node {
	t.Helper()
	cfg := config.Dev(t.TempDir())
	edit(cfg)
	s, err := server.New(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &node{t: t, s: s, token: "/token", introspection: "/introspect", revocation: "/revoke", jwks: "/jwks"}
}

// tokenFrom is a client_credentials request of client id (secret id-secret)
// from address addr.
func tokenFrom(addr, id string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(url.Values{"grant_type": {oauth.GrantClientCredentials}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(id+":"+id+"-secret")))
	r.RemoteAddr = addr + ":40000"
	return r
}

// refusal checks that w is a refusal with status and a positive Retry-After and
// an RFC 6749 §5.2-shaped JSON body.
func refusal(t *testing.T, w *httptest.ResponseRecorder, status int) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d: %s", w.Code, status, w.Body)
	}
	if s, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q, want a positive number of seconds", w.Header().Get("Retry-After"))
	}
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error != "temporarily_unavailable" || body.Description == "" {
		t.Errorf("body %s (%v), want error temporarily_unavailable with a description", w.Body, err)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

// metricValue is the line of name{labels} in the /metrics text, "" if absent.
func metricValue(t *testing.T, n *node, series string) string {
	t.Helper()
	w := n.get("/metrics")
	for line := range strings.SplitSeq(w.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// tokenWith is a client_credentials request from address addr with the Basic
// credentials id:secret (none when id is "").
func tokenWith(addr, id, secret string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(url.Values{"grant_type": {oauth.GrantClientCredentials}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(id+":"+secret)))
	}
	r.RemoteAddr = addr + ":40000"
	return r
}

// auditCount is the number of events in n's audit trail.
func auditCount(t *testing.T, n *node) int {
	t.Helper()
	evs, err := n.s.Store.Query(t.Context(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

// A flood from one client is refused with 429 once its burst is spent, wherever
// it comes from, while another client from the same address is served; each
// refusal is counted, and audited once; a refusal writes nothing else.
func TestRateLimitFloodFromOneClientSparesAnother(t *testing.T) {
	n := newNodeWith(t, func(c *config.Config) { c.Limits.Rate = config.Rate{PerSecond: 1, Burst: 5} })
	const flood = 40
	refused, before, servedAfter := 0, 0, 0
	for i := range flood {
		if i == 10 {
			before = auditCount(t, n)
		}
		w := n.do(tokenFrom("192.0.2.1", "web-app"))
		switch w.Code {
		case http.StatusOK:
			if i >= 10 {
				servedAfter++
			}
		case http.StatusTooManyRequests:
			refusal(t, w, http.StatusTooManyRequests)
			if w.Header().Get("Connection") == "close" {
				t.Errorf("a client refused after authentication has its connection closed; its body was read")
			}
			refused++
		default:
			t.Fatalf("flood: status %d %s", w.Code, w.Body)
		}
	}
	// 5 at once, then 1 a second: however slow this machine, most are refused.
	if refused < flood/2 {
		t.Errorf("%d of %d flooding requests refused, want most", refused, flood)
	}
	// From the 11th request on (the first refusal's event recorded), nothing
	// was written but the records of the few tokens the refill allowed.
	if grew := auditCount(t, n) - before; grew > servedAfter {
		t.Errorf("the audit trail grew by %d events during %d refusals", grew, refused)
	}
	if w := n.do(tokenFrom("192.0.2.1", "support")); w.Code != http.StatusOK {
		t.Errorf("another client from the flooding address: %d %s, want 200", w.Code, w.Body)
	}
	if w := n.do(tokenFrom("192.0.2.2", "web-app")); w.Code != http.StatusTooManyRequests {
		t.Errorf("the flooding client from another address: %d %s, want 429", w.Code, w.Body)
	}
	refused++
	if got, want := metricValue(t, n, `deputy_rate_limited_total{endpoint="token"}`), strconv.Itoa(refused); got != want {
		t.Errorf(`deputy_rate_limited_total{endpoint="token"} = %q, want %s`, got, want)
	}
	if got := metricValue(t, n, `deputy_token_requests_total{error="temporarily_unavailable",grant_type="client_credentials",outcome="denied"}`); got != "" {
		t.Errorf("rate-limited requests counted as token requests too: %s", got)
	}
	evs, err := n.s.Store.Query(t.Context(), store.AuditFilter{Type: store.EventRateLimited})
	if err != nil {
		t.Fatal(err)
	}
	// Once per client a minute, from whichever address: the first refusal's.
	if len(evs) != 1 || evs[0].ClientID != "web-app" || evs[0].RemoteAddr != "192.0.2.1" || evs[0].Decision != store.DecisionDeny {
		t.Errorf("rate_limited events %+v, want one denial of web-app, from 192.0.2.1", evs)
	}
}

// TestRateLimitKeying: whose bucket a request spends (ratelimit.go, Keying).
func TestRateLimitKeying(t *testing.T) {
	const burst = 3
	spa := config.Client{ID: "spa", AuthMethod: oauth.AuthNone, GrantTypes: []string{oauth.GrantAuthorizationCode},
		RedirectURIs: []string{"http://127.0.0.1:9000/callback"}}
	codeFrom := func(addr string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(url.Values{
			"grant_type": {oauth.GrantAuthorizationCode}, "client_id": {"spa"}, "code": {"no-such-code"},
			"redirect_uri": {"http://127.0.0.1:9000/callback"}, "code_verifier": {strings.Repeat("v", 43)},
		}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.RemoteAddr = addr + ":40000"
		return r
	}
	introspectFrom := func(addr string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/introspect", strings.NewReader("token=x"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.RemoteAddr = addr + ":40000"
		return r
	}
	for _, tc := range []struct {
		name string
		// flood is sent burst+2 times from 192.0.2.10; want the answer to the
		// last of them.
		flood     func() *http.Request
		floodLast int
		// then, each with its want.
		then []func() *http.Request
		want []int
	}{
		{
			name:  "ok/clients-behind-one-address-do-not-share",
			flood: func() *http.Request { return tokenFrom("192.0.2.10", "web-app") }, floodLast: http.StatusTooManyRequests,
			then: []func() *http.Request{
				func() *http.Request { return tokenFrom("192.0.2.10", "support") },
				func() *http.Request { return tokenFrom("192.0.2.10", "api1") },
				func() *http.Request { return tokenFrom("192.0.2.10", "api2") },
			},
			want: []int{http.StatusOK, http.StatusOK, http.StatusOK},
		},
		{
			name:  "fail/spoofed-client-id-spends-its-address-not-the-client",
			flood: func() *http.Request { return tokenWith("192.0.2.10", "web-app", "wrong") }, floodLast: http.StatusTooManyRequests,
			then: []func() *http.Request{
				// The real web-app elsewhere has its whole burst.
				func() *http.Request { return tokenFrom("192.0.2.11", "web-app") },
				func() *http.Request { return tokenFrom("192.0.2.11", "web-app") },
				func() *http.Request { return tokenFrom("192.0.2.11", "web-app") },
				// The spoofing address is refused before anything is parsed,
				// whatever it sends.
				func() *http.Request { return tokenFrom("192.0.2.10", "support") },
			},
			want: []int{http.StatusOK, http.StatusOK, http.StatusOK, http.StatusTooManyRequests},
		},
		{
			name:  "fail/unauthenticated-per-address",
			flood: func() *http.Request { return introspectFrom("192.0.2.10") }, floodLast: http.StatusTooManyRequests,
			then: []func() *http.Request{
				func() *http.Request { return introspectFrom("192.0.2.11") },
				func() *http.Request { return tokenWith("192.0.2.10", "", "") },
				func() *http.Request { return tokenFrom("192.0.2.11", "web-app") },
			},
			want: []int{http.StatusUnauthorized, http.StatusTooManyRequests, http.StatusOK},
		},
		{
			name:  "fail/public-client-per-address",
			flood: func() *http.Request { return codeFrom("192.0.2.10") }, floodLast: http.StatusTooManyRequests,
			then: []func() *http.Request{
				func() *http.Request { return codeFrom("192.0.2.11") },
				func() *http.Request { return tokenFrom("192.0.2.11", "web-app") },
			},
			want: []int{http.StatusBadRequest, http.StatusOK},
		},
		{
			name:  "ok/authenticated-clients-never-spend-the-address",
			flood: func() *http.Request { return tokenFrom("192.0.2.10", "api3") }, floodLast: http.StatusTooManyRequests,
			then: []func() *http.Request{
				// The address has no bucket: its unauthenticated requests get
				// their whole burst.
				func() *http.Request { return introspectFrom("192.0.2.10") },
				func() *http.Request { return introspectFrom("192.0.2.10") },
				func() *http.Request { return introspectFrom("192.0.2.10") },
			},
			want: []int{http.StatusUnauthorized, http.StatusUnauthorized, http.StatusUnauthorized},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNodeWith(t, func(c *config.Config) {
				// A refill of one a minute: this machine's speed cannot refill a bucket.
				c.Limits.Rate = config.Rate{PerSecond: 1, Burst: burst}
				c.Clients = append(c.Clients, spa)
			})
			api := n.s.API()
			api.SetRate(1.0/60, burst)
			var w *httptest.ResponseRecorder
			for range burst + 2 {
				w = n.do(tc.flood())
			}
			if w.Code != tc.floodLast {
				t.Fatalf("the flood's last answer: %d %s, want %d", w.Code, w.Body, tc.floodLast)
			}
			refusal(t, w, tc.floodLast)
			for i, req := range tc.then {
				if w := n.do(req()); w.Code != tc.want[i] {
					t.Errorf("then[%d]: %d %s, want %d", i, w.Code, w.Body, tc.want[i])
				}
			}
		})
	}
}

// Junk client ids do not make the limiter's tables grow: a client id that does
// not authenticate spends its address's bucket, and the addresses tracked are
// bounded too.
func TestRateLimitJunkClientIDsStayBounded(t *testing.T) {
	n := newNodeWith(t, func(c *config.Config) { c.Limits.Rate = config.Rate{PerSecond: 1, Burst: 2} })
	api := n.s.API()
	for i := range 300 {
		n.do(tokenFrom("192.0.2.7", fmt.Sprintf("junk-%d", i)))
	}
	if got := api.RateLimitKeys(); got != 1 {
		t.Errorf("after 300 junk client ids from one address the limiter holds %d keys, want 1", got)
	}
	const maxKeys = 64
	api.SetMaxRateKeys(maxKeys)
	codes := map[int]int{}
	for i := range 500 {
		w := n.do(tokenFrom(fmt.Sprintf("198.51.%d.%d", i/250, i%250), fmt.Sprintf("junk-%d", i)))
		codes[w.Code]++
	}
	if got := api.RateLimitKeys(); got > maxKeys {
		t.Errorf("after 500 addresses the limiter holds %d keys, want at most %d", got, maxKeys)
	}
	// Each address sent one request: each got its real answer. The addresses
	// beyond the bound share one bucket, which their failures spent, but it
	// refuses no address before parsing (limiter.blocked): a well-behaved
	// newcomer must not be refused because others filled the table.
	if codes[http.StatusUnauthorized] != 500 {
		t.Errorf("answers %v, want 500 × 401", codes)
	}
	if w := n.do(tokenFrom("203.0.113.9", "web-app")); w.Code != http.StatusOK {
		t.Errorf("a well-behaved client from a new address while the table is full: %d %s", w.Code, w.Body)
	}
}

// Requests whose client authenticates add no address to the limiter's tables,
// however many addresses they come from: one key, the client's.
func TestRateLimitWellBehavedAddressesAddNoKeys(t *testing.T) {
	n := newNodeWith(t, func(c *config.Config) { c.Limits.Rate = config.Rate{PerSecond: 1000, Burst: 1000} })
	api := n.s.API()
	for i := range 200 {
		if w := n.do(tokenFrom(fmt.Sprintf("198.51.100.%d", i), "web-app")); w.Code != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, w.Code, w.Body)
		}
	}
	if got := api.RateLimitKeys(); got != 1 {
		t.Errorf("after one client's requests from 200 addresses the limiter holds %d keys, want 1", got)
	}
}

// Beyond limits.max_in_flight a request is refused at once with 503 and
// Retry-After; health, readiness and metrics are still answered.
func TestMaxInFlightShedsWith503(t *testing.T) {
	n := newNodeWith(t, func(c *config.Config) { c.Limits.MaxInFlight = 2 })
	api := n.s.API()
	var held []*io.PipeWriter
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range 2 {
		pr, pw := io.Pipe()
		held = append(held, pw)
		r := httptest.NewRequest(http.MethodPost, "/token", pr)
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("web-app:web-app-secret")))
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := httptest.NewRecorder()
			n.s.Handler.ServeHTTP(w, r) // held while its body is arriving
			codes[i] = w.Code
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); api.InFlight() < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			for _, pw := range held {
				_ = pw.CloseWithError(io.ErrUnexpectedEOF)
			}
			t.Fatalf("the two held requests never counted as in flight (%d)", api.InFlight())
		}
	}
	refusal(t, n.do(tokenFrom("192.0.2.3", "web-app")), http.StatusServiceUnavailable)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if w := n.get(path); w.Code != http.StatusOK {
			t.Errorf("%s while full: %d, want 200", path, w.Code)
		}
	}
	for _, pw := range held {
		_, _ = io.WriteString(pw, url.Values{"grant_type": {oauth.GrantClientCredentials}}.Encode())
		_ = pw.Close()
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("held request %d: %d, want 200", i, c)
		}
	}
	if got := api.InFlight(); got != 0 {
		t.Errorf("in flight after every answer: %d", got)
	}
	if w := n.do(tokenFrom("192.0.2.3", "web-app")); w.Code != http.StatusOK {
		t.Errorf("after the held requests: %d %s, want 200", w.Code, w.Body)
	}
}

// TestRateLimitBlockedClientCostsNoAuthentication: once a client has emptied its
// bucket, its requests are refused before its credentials are checked — a wrong
// secret gets 429, not 401, and no denial is recorded for it (an assertion would
// cost no signature check and no replay record) — while claiming the id of a
// client within its allowance empties nobody's bucket.
func TestRateLimitBlockedClientCostsNoAuthentication(t *testing.T) {
	n := newNodeWith(t, func(c *config.Config) { c.Limits.Rate = config.Rate{PerSecond: 1, Burst: 2} })
	n.s.API().SetRate(1.0/60, 2) // a refill of one a minute
	denials := func() int {
		evs, err := n.s.Store.Query(t.Context(), store.AuditFilter{Type: store.EventDenied})
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	for i := range 2 {
		if w := n.do(tokenFrom("192.0.2.1", "web-app")); w.Code != http.StatusOK {
			t.Fatalf("request %d within the burst: %d %s", i, w.Code, w.Body)
		}
	}
	refusal(t, n.do(tokenFrom("192.0.2.1", "web-app")), http.StatusTooManyRequests)
	before := denials()
	refusal(t, n.do(tokenWith("192.0.2.9", "web-app", "wrong-secret")), http.StatusTooManyRequests)
	if after := denials(); after != before {
		t.Errorf("%d denials recorded for a blocked client's request: its credentials were checked", after-before)
	}
	// api1 is within its allowance: a wrong secret claiming it is checked (401)
	// and spends the sender's address, and api1 itself still gets tokens.
	if w := n.do(tokenWith("192.0.2.9", "api1", "wrong-secret")); w.Code != http.StatusUnauthorized {
		t.Fatalf("wrong secret for api1: %d %s", w.Code, w.Body)
	}
	if w := n.do(tokenFrom("192.0.2.9", "api1")); w.Code != http.StatusOK {
		t.Fatalf("api1 after another address claimed its id: %d %s", w.Code, w.Body)
	}
}
