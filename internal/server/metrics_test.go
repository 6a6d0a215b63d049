package server_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/oauth"
)

// scrape GETs /metrics from h and parses it with Prometheus' own text parser.
func scrape(tb testing.TB, h http.Handler) map[string]*dto.MetricFamily {
	tb.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != 200 {
		tb.Fatalf("/metrics: %d %s", w.Code, w.Body.String())
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(w.Body.String()))
	if err != nil {
		tb.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// value is the value of the series of fam whose labels are exactly labels (nil
// when there is none).
func value(fams map[string]*dto.MetricFamily, fam string, labels map[string]string) *float64 {
	f := fams[fam]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.Metric {
		if len(m.Label) != len(labels) {
			continue
		}
		for _, l := range m.Label {
			if v, ok := labels[l.GetName()]; !ok || v != l.GetValue() {
				continue next
			}
		}
		var v float64
		switch {
		case m.Counter != nil:
			v = m.Counter.GetValue()
		case m.Gauge != nil:
			v = m.Gauge.GetValue()
		case m.Histogram != nil:
			v = float64(m.Histogram.GetSampleCount())
		}
		return &v
	}
	return nil
}

func TestMetricsRuntimeFromFirstScrape(t *testing.T) {
	fams := scrape(t, node(t).Handler)
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes", "deputy_http_in_flight"} {
		if fams[name] == nil {
			t.Errorf("first scrape has no %s", name)
		}
	}
}

func TestMetricsAfterRequests(t *testing.T) {
	s := node(t)
	t0 := accessToken(t, post(s.Handler, "web-app", "web-app-secret", url.Values{"grant_type": {"client_credentials"}}))
	accessToken(t, post(s.Handler, "api1", "api1-secret", exchangeForm(t0, "https://api2.example")))
	if w := post(s.Handler, "api1", "api1-secret", exchangeForm(t0, "https://api3.example")); w.Code != 400 {
		t.Fatalf("exchange for an audience no policy allows: %d %s", w.Code, w.Body.String())
	}
	// Junk from outside: a grant type and a client id nobody configured, and a
	// token as the grant type. None of it may become a label value.
	junkClient := "junk-client-7f3a"
	junkGrant := "urn:junk:" + t0
	if w := post(s.Handler, junkClient, "x", url.Values{"grant_type": {junkGrant}}); w.Code < 400 {
		t.Fatalf("junk request answered %d", w.Code)
	}
	if w := post(s.Handler, "web-app", "web-app-secret", url.Values{"grant_type": {junkGrant}}); w.Code != 400 {
		t.Fatalf("junk grant answered %d", w.Code)
	}
	// A revocation.
	rv := httptest.NewRequest(http.MethodPost, "/revoke", strings.NewReader(url.Values{"token": {t0}}.Encode()))
	rv.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rv.SetBasicAuth("web-app", "web-app-secret")
	rw := httptest.NewRecorder()
	s.Handler.ServeHTTP(rw, rv)
	if rw.Code != 200 {
		t.Fatalf("revoke: %d %s", rw.Code, rw.Body.String())
	}

	w := httptest.NewRecorder()
	s.Handler.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if body := w.Body.String(); strings.Contains(body, "junk") || strings.Contains(body, t0[:20]) {
		t.Errorf("outside input reached a label:\n%s", body)
	}
	fams := scrape(t, s.Handler)
	for _, tc := range []struct {
		name   string
		fam    string
		labels map[string]string
		want   float64
	}{
		{"ok/client_credentials", "deputy_token_requests_total", map[string]string{"grant_type": "client_credentials", "outcome": "ok", "error": ""}, 1},
		{"ok/exchange", "deputy_token_requests_total", map[string]string{"grant_type": oauth.GrantTokenExchange, "outcome": "ok", "error": ""}, 1},
		{"ok/junk client", "deputy_token_requests_total", map[string]string{"grant_type": "other", "outcome": "denied", "error": "invalid_client"}, 1},
		{"ok/junk grant", "deputy_token_requests_total", map[string]string{"grant_type": "other", "outcome": "denied", "error": "unsupported_grant_type"}, 1},
		{"ok/duration", "deputy_token_request_duration_seconds", map[string]string{"grant_type": "client_credentials"}, 1},
		{"ok/decision allowed", "deputy_exchange_decisions_total", map[string]string{"rule": "api1-to-api2", "decision": "allow"}, 1},
		{"ok/decision denied", "deputy_exchange_decisions_total", map[string]string{"rule": "none", "decision": "deny"}, 1},
		{"ok/exchange denied", "deputy_token_requests_total", map[string]string{"grant_type": oauth.GrantTokenExchange, "outcome": "denied", "error": "invalid_target"}, 1},
		// t0 and the token exchanged from it.
		{"ok/revocations", "deputy_revocations_total", map[string]string{}, 2},
		{"ok/in flight (the scrape itself)", "deputy_http_in_flight", map[string]string{}, 1},
		{"ok/queue", "deputy_audit_queue_depth", map[string]string{}, 0},
	} {
		got := value(fams, tc.fam, tc.labels)
		if got == nil || *got != tc.want {
			t.Errorf("%s: %s%v = %v, want %v; have %v", tc.name, tc.fam, tc.labels, deref(got), tc.want, fams[tc.fam])
		}
	}
	// Every committed event is in a batch and its commit timed.
	if v := value(fams, "deputy_audit_commit_duration_seconds", map[string]string{}); v == nil || *v < 1 {
		t.Errorf("audit commits observed: %v", v)
	}
	if f := fams["deputy_audit_batch_events"]; f == nil || f.Metric[0].Histogram.GetSampleSum() < 3 {
		t.Errorf("audit batch events: %v", f)
	}
}

func deref(v *float64) any {
	if v == nil {
		return "no series"
	}
	return *v
}

// TestMetricsJWKSFetches: fetches of a trusted issuer's jwks_uri are counted by the
// issuer's configured name and outcome, whatever issuer a token claims.
func TestMetricsJWKSFetches(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(set)
	}))
	defer good.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer down.Close()
	cfg := config.Dev(t.TempDir())
	cfg.TrustedIssuers = append(cfg.TrustedIssuers,
		config.TrustedIssuer{Name: "good", Issuer: "https://good.example", JWKSURI: good.URL, Audiences: []string{"https://deputy.test"}},
		config.TrustedIssuer{Name: "down", Issuer: "https://down.example", JWKSURI: down.URL, Audiences: []string{"https://deputy.test"}},
	)
	var buf strings.Builder
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer func() {
		if t.Failed() {
			t.Log(buf.String())
		}
	}()
	jwt := func(iss string) string {
		enc := base64.RawURLEncoding.EncodeToString
		return enc([]byte(`{"alg":"RS256","kid":"k1","typ":"JWT"}`)) + "." +
			enc([]byte(`{"iss":"`+iss+`","sub":"junk-subject-9c1e","aud":"https://deputy.test","exp":4102444800}`)) + "." + enc([]byte("sig"))
	}
	// A bad signature is the token's fault (400); keys that cannot be fetched
	// are the issuer's, retried later (503).
	for iss, code := range map[string]int{"https://good.example": http.StatusBadRequest, "https://down.example": http.StatusServiceUnavailable} {
		if w := post(s.Handler, "api1", "api1-secret", exchangeForm(jwt(iss), "https://api2.example")); w.Code != code {
			t.Fatalf("%s: %d %s, want %d", iss, w.Code, w.Body.String(), code)
		}
	}
	w := httptest.NewRecorder()
	s.Handler.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if body := w.Body.String(); strings.Contains(body, "junk-subject") || strings.Contains(body, "good.example") {
		t.Errorf("a token's subject or issuer URL reached a label:\n%s", body)
	}
	fams := scrape(t, s.Handler)
	for _, tc := range []struct {
		issuer, outcome string
	}{{"good", "ok"}, {"down", "error"}} {
		if v := value(fams, "deputy_jwks_fetches_total", map[string]string{"issuer": tc.issuer, "outcome": tc.outcome}); v == nil || *v != 1 {
			t.Errorf("ok/%s: %v; have %v", tc.issuer, deref(v), fams["deputy_jwks_fetches_total"])
		}
	}
}

// TestMetricsListen: with metrics.listen set, the main handler no longer serves
// /metrics; the node's Metrics handler (what serve puts on metrics.listen) does.
func TestMetricsListen(t *testing.T) {
	cfg := config.Dev(t.TempDir())
	cfg.Metrics.Listen = "127.0.0.1:0"
	s, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := httptest.NewRecorder()
	s.Handler.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("main listener /metrics: %d, want 404", w.Code)
	}
	accessToken(t, post(s.Handler, "web-app", "web-app-secret", url.Values{"grant_type": {"client_credentials"}}))
	fams := scrape(t, s.Metrics)
	if v := value(fams, "deputy_token_requests_total", map[string]string{"grant_type": "client_credentials", "outcome": "ok", "error": ""}); v == nil || *v != 1 {
		t.Errorf("metrics listener: token requests %v", deref(v))
	}
	if fams["go_goroutines"] == nil {
		t.Error("metrics listener: no go_goroutines")
	}
}

// TestMetricsRevocationSyncLag: how long ago revocations recorded elsewhere were
// last read is published, and a sync brings it back near zero.
func TestMetricsRevocationSyncLag(t *testing.T) {
	s := node(t)
	if err := s.SyncRevocations(context.Background()); err != nil {
		t.Fatal(err)
	}
	v := value(scrape(t, s.Handler), "deputy_revocation_sync_lag_seconds", map[string]string{})
	// Bounded by the revocation staleness limit, not by how fast this test runs.
	if v == nil || *v < 0 || *v > 30 {
		t.Errorf("deputy_revocation_sync_lag_seconds = %v right after a sync", deref(v))
	}
}
