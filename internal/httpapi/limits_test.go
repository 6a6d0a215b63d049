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

// A flood from one address is refused with 429 once its burst is spent, while
// another address is served; each refusal is counted, and audited once.
func TestRateLimitFloodFromOneAddressSparesAnother(t *testing.T) {
	n := newNodeWith(t, func(c *config.Config) { c.Limits.Rate = config.Rate{PerSecond: 1, Burst: 5} })
	const flood = 40
	refused := 0
	for range flood {
		w := n.do(tokenFrom("192.0.2.1", "web-app"))
		switch w.Code {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			refusal(t, w, http.StatusTooManyRequests)
			refused++
		default:
			t.Fatalf("flood: status %d %s", w.Code, w.Body)
		}
	}
	// 5 at once, then 1 a second: however slow this machine, most are refused.
	if refused < flood/2 {
		t.Errorf("%d of %d flooding requests refused, want most", refused, flood)
	}
	if w := n.do(tokenFrom("192.0.2.2", "web-app")); w.Code != http.StatusOK {
		t.Errorf("another address during the flood: %d %s, want 200", w.Code, w.Body)
	}
	for _, path := range []string{"/introspect", "/revoke", "/calls"} {
		r := httptest.NewRequest(http.MethodPost, path, nil)
		r.RemoteAddr = "192.0.2.1:40000"
		if w := n.do(r); w.Code != http.StatusTooManyRequests {
			t.Errorf("%s from the flooding address: %d, want 429", path, w.Code)
		}
	}
	if got, want := metricValue(t, n, `deputy_rate_limited_total{endpoint="token"}`), strconv.Itoa(refused); got != want {
		t.Errorf(`deputy_rate_limited_total{endpoint="token"} = %q, want %s`, got, want)
	}
	evs, err := n.s.Store.Query(t.Context(), store.AuditFilter{Type: store.EventRateLimited})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].RemoteAddr != "192.0.2.1" || evs[0].Decision != store.DecisionDeny {
		t.Errorf("rate_limited events %+v, want one for 192.0.2.1 (once per address a minute)", evs)
	}
}

// Junk client ids do not make the limiter's table grow: it keys on the address,
// and the addresses it tracks are bounded too.
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
	// The addresses beyond the bound share one bucket: most of them are refused.
	if codes[http.StatusTooManyRequests] == 0 {
		t.Errorf("answers %v: no address beyond the bound was limited", codes)
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
