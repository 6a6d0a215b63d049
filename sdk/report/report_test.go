package report_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/oauth"
	"go.opentelemetry.io/otel/trace"

	"github.com/deputy-auth/deputy/sdk"
	"github.com/deputy-auth/deputy/sdk/report"
)

// rfc3339Sub is RFC 3339 with a fraction of a second.
var rfc3339Sub = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d)$`)

func TestBatching(t *testing.T) {
	f := newFake(t)
	var log errLog
	cfg := f.config()
	cfg.BatchSize, cfg.FlushInterval, cfg.OnError = 100, time.Hour, log.add
	r := newReporter(t, cfg)

	base := time.Date(2026, 11, 25, 23, 0, 0, 123456789, time.FixedZone("CET", 3600))
	for i, c := range calls(250) {
		c.Detail = "via payments"
		c.Time = base.Add(time.Duration(i) * time.Millisecond)
		r.Report(c)
	}
	flush(t, r)

	got, bodies := f.received()
	if !slices.Equal(jtis(got), wantJTIs(250)) {
		t.Fatalf("calls received out of order or missing: %v", jtis(got))
	}
	if len(bodies) < 3 {
		t.Errorf("%d reports, want at least 3", len(bodies))
	}
	for i, b := range bodies {
		var doc map[string][]map[string]json.RawMessage
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
		if k := slices.Sorted(maps.Keys(doc)); !slices.Equal(k, []string{"calls"}) {
			t.Errorf("report %d has members %v, want only calls", i, k)
		}
		if n := len(doc["calls"]); n == 0 || n > 100 {
			t.Errorf("report %d holds %d calls, want 1 to 100", i, n)
		}
		for j, c := range doc["calls"] {
			want := []string{"action", "detail", "outcome", "resource", "time", "token_jti"}
			if k := slices.Sorted(maps.Keys(c)); !slices.Equal(k, want) {
				t.Fatalf("report %d call %d has members %v, want %v", i, j, k, want)
			}
		}
	}
	for i, c := range got {
		want := fmt.Sprintf("account/%d", i)
		if c.Action != "read" || c.Resource != want || c.Outcome != "ok" || c.Detail != "via payments" {
			t.Fatalf("call %d = %+v", i, c)
		}
		if c.Time == nil || !rfc3339Sub.MatchString(*c.Time) {
			t.Fatalf("call %d time %v: want RFC 3339 with a fraction of a second", i, c.Time)
		}
		tm, _ := time.Parse(time.RFC3339Nano, *c.Time)
		if wantT := base.Add(time.Duration(i) * time.Millisecond).Truncate(time.Microsecond); !tm.Equal(wantT) {
			t.Fatalf("call %d time %s, want %s", i, *c.Time, wantT)
		}
	}
	if got := *got[0].Time; got != "2026-11-25T22:00:00.123456Z" {
		t.Errorf("first time %q, want 2026-11-25T22:00:00.123456Z", got)
	}
	if s := r.Stats(); s != (report.Stats{Sent: 250}) {
		t.Errorf("Stats = %+v, want 250 sent", s)
	}
	if errs := log.all(); len(errs) > 0 {
		t.Errorf("OnError told %v", errs)
	}
}

func TestFlushInterval(t *testing.T) {
	f := newFake(t)
	cfg := f.config()
	cfg.FlushInterval = 10 * time.Millisecond
	r := newReporter(t, cfg)
	for _, c := range calls(3) {
		r.Report(c)
	}
	got := f.waitCalls(t, 3) // no Flush: the interval sends the partial batch
	if !slices.Equal(jtis(got), wantJTIs(3)) {
		t.Errorf("received %v", jtis(got))
	}
	if got[0].Time == nil || !rfc3339Sub.MatchString(*got[0].Time) {
		t.Errorf("a call reported without a time must carry the time of Report, got %v", got[0].Time)
	}
}

func TestReportNeverBlocks(t *testing.T) {
	f := newFake(t)
	f.release = make(chan struct{})
	var log errLog
	cfg := f.config()
	cfg.QueueSize, cfg.FlushInterval, cfg.OnError = 10, 10*time.Millisecond, log.add
	r := newReporter(t, cfg)
	released := false
	release := func() {
		if !released {
			released = true
			close(f.release)
		}
	}
	t.Cleanup(release) // runs before the Reporter's Close and the server's Close

	r.Report(calls(1)[0])
	select { // the sender is now stuck in a report the server holds
	case <-f.entered:
	case <-time.After(guard):
		t.Fatal("the first report never reached the server")
	}
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		for _, c := range calls(1000) {
			r.Report(c)
		}
	}()
	select {
	case <-reported:
	case <-time.After(guard):
		t.Fatal("Report blocked while the server held the sender")
	}
	s := r.Stats()
	if s.Dropped == 0 {
		t.Fatalf("Stats = %+v: with a queue of 10 and the sender blocked, calls must be dropped", s)
	}

	release()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s = r.Stats()
	got, _ := f.received()
	if s.Sent+s.Dropped != 1001 || s.Sent != int64(len(got)) || s.Failed != 0 {
		t.Errorf("Stats = %+v, server received %d: want sent+dropped = 1001, all sent received", s, len(got))
	}
	if n := log.dropped(report.ErrQueueFull); n != s.Dropped {
		t.Errorf("OnError told of %d calls dropped on a full queue, Stats has %d", n, s.Dropped)
	}
}

func TestRetry(t *testing.T) {
	for _, tc := range []struct {
		name       string
		script     []int
		reject     map[string]string
		maxRetries int
		batchSize  int
		n          int
		requests   int          // reports the server receives
		stats      report.Stats // after Flush
		check      func(t *testing.T, log *errLog)
	}{
		{name: "ok/503-twice-then-200", script: []int{503, 503}, n: 3, requests: 3, stats: report.Stats{Sent: 3}},
		{name: "ok/429-then-200", script: []int{429}, n: 3, requests: 2, stats: report.Stats{Sent: 3}},
		{name: "ok/500-then-200", script: []int{500}, n: 3, requests: 2, stats: report.Stats{Sent: 3}},
		{name: "ok/transport-failure-then-200", script: []int{abort}, n: 3, requests: 2, stats: report.Stats{Sent: 3}},
		{name: "ok/order-kept-across-retries", script: []int{503}, batchSize: 2, n: 6, requests: 4, stats: report.Stats{Sent: 6}},
		{
			name: "fail/400-not-retried", script: []int{400}, n: 3, requests: 1, stats: report.Stats{Failed: 3},
			check: wantDeliveryError(400, 1, oauth.CodeInvalidRequest),
		},
		{
			name: "fail/401-not-retried", script: []int{401}, n: 3, requests: 1, stats: report.Stats{Failed: 3},
			check: wantDeliveryError(401, 1, oauth.CodeInvalidClient),
		},
		{
			name: "fail/retries-exhausted", script: []int{503, 503, 503}, maxRetries: 1, n: 3, requests: 2, stats: report.Stats{Failed: 3},
			check: wantDeliveryError(503, 2, oauth.CodeTemporarilyUnavail),
		},
		{
			name: "fail/no-retries", script: []int{503}, maxRetries: -1, n: 3, requests: 1, stats: report.Stats{Failed: 3},
			check: wantDeliveryError(503, 1, oauth.CodeTemporarilyUnavail),
		},
		{
			name: "fail/rejected-items-not-retried", reject: map[string]string{"jti-1": "unknown token"}, n: 3, requests: 1,
			stats: report.Stats{Sent: 2, Rejected: 1},
			check: func(t *testing.T, log *errLog) {
				re, ok := find[*report.RejectedError](log)
				if !ok || len(re.Rejections) != 1 || re.Rejections[0].Call.TokenJTI != "jti-1" || re.Rejections[0].Reason != "unknown token" {
					t.Errorf("OnError told %v, want a RejectedError for jti-1: unknown token", log.all())
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.script, f.reject = tc.script, tc.reject
			var log errLog
			cfg := f.config()
			cfg.FlushInterval, cfg.MaxRetries, cfg.BatchSize, cfg.OnError = time.Hour, tc.maxRetries, tc.batchSize, log.add
			r := newReporter(t, cfg)
			for _, c := range calls(tc.n) {
				r.Report(c)
			}
			flush(t, r)

			got, _ := f.received()
			if requests, _ := f.counts(); requests != tc.requests {
				t.Errorf("server received %d reports, want %d", requests, tc.requests)
			}
			if s := r.Stats(); s != tc.stats {
				t.Errorf("Stats = %+v, want %+v", s, tc.stats)
			}
			if tc.stats.Sent+tc.stats.Rejected > 0 && !slices.Equal(jtis(got), wantJTIs(tc.n)) {
				t.Errorf("recorded %v, want each call once, in order", jtis(got))
			}
			if tc.check != nil {
				tc.check(t, &log)
			} else if errs := log.all(); len(errs) > 0 {
				t.Errorf("OnError told %v", errs)
			}
		})
	}
}

func wantDeliveryError(status, attempts int, code oauth.Code) func(*testing.T, *errLog) {
	return func(t *testing.T, log *errLog) {
		t.Helper()
		de, ok := find[*report.DeliveryError](log)
		if !ok {
			t.Fatalf("OnError told %v, want a DeliveryError", log.all())
		}
		var oe *oauth.Error
		if de.Status != status || de.Attempts != attempts || len(de.Calls) != 3 || !errors.As(de, &oe) || oe.Code != code {
			t.Errorf("DeliveryError %+v (%v), want status %d after %d attempt(s) with %s for 3 calls", de, de, status, attempts, code)
		}
	}
}

// reqTrace is the trace of the request a service handled.
var reqTrace = trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}

func TestReportRequest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		jti     string // recorded; "" when the call must be dropped
		traceID string // the call's trace_id: its request's
		cause   error
	}{
		{name: "ok/jti-from-token", ctx: sdk.ContextWithToken(context.Background(), jwt(`{"jti":"abc","sub":"alice"}`)), jti: "abc"},
		{name: "ok/trace-id-from-context", ctx: trace.ContextWithRemoteSpanContext(sdk.ContextWithToken(context.Background(), jwt(`{"jti":"abc"}`)),
			trace.NewSpanContext(trace.SpanContextConfig{TraceID: reqTrace, SpanID: trace.SpanID{1}})), jti: "abc", traceID: reqTrace.String()},
		{name: "fail/no-token", ctx: context.Background(), cause: report.ErrNoToken},
		{name: "fail/token-without-jti", ctx: sdk.ContextWithToken(context.Background(), jwt(`{"sub":"alice"}`)), cause: report.ErrNoJTI},
		{name: "fail/jti-not-a-string", ctx: sdk.ContextWithToken(context.Background(), jwt(`{"jti":42}`)), cause: report.ErrNoJTI},
		{name: "fail/opaque-token", ctx: sdk.ContextWithToken(context.Background(), "opaque.token"), cause: report.ErrNoJTI},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			var log errLog
			cfg := f.config()
			cfg.FlushInterval, cfg.OnError = time.Hour, log.add
			r := newReporter(t, cfg)
			r.ReportRequest(tc.ctx, "read", "account/42", "ok")
			flush(t, r)

			got, _ := f.received()
			s := r.Stats()
			if tc.jti != "" {
				if len(got) != 1 || got[0].TokenJTI != tc.jti || got[0].Action != "read" || got[0].Resource != "account/42" ||
					got[0].Outcome != "ok" || got[0].Time == nil {
					t.Fatalf("recorded %+v, want one read of account/42 on %q", got, tc.jti)
				}
				if got[0].TraceID != tc.traceID {
					t.Errorf("trace_id %q, want %q", got[0].TraceID, tc.traceID)
				}
				if s != (report.Stats{Sent: 1}) {
					t.Errorf("Stats = %+v", s)
				}
				return
			}
			if len(got) != 0 || s != (report.Stats{Dropped: 1}) {
				t.Errorf("recorded %+v, Stats %+v: want nothing sent, 1 dropped", got, s)
			}
			if n := log.dropped(tc.cause); n != 1 {
				t.Errorf("OnError told %v, want one drop for %v", log.all(), tc.cause)
			}
		})
	}
}

func TestInvalidCallDropped(t *testing.T) {
	f := newFake(t)
	var log errLog
	cfg := f.config()
	cfg.OnError = log.add
	r := newReporter(t, cfg)
	r.Report(report.Call{TokenJTI: "abc"})
	r.Report(report.Call{Action: "read"})
	flush(t, r)
	if s := r.Stats(); s != (report.Stats{Dropped: 2}) {
		t.Errorf("Stats = %+v, want 2 dropped", s)
	}
	if n := log.dropped(report.ErrInvalidCall); n != 2 {
		t.Errorf("OnError told %v, want 2 invalid calls dropped", log.all())
	}
	if requests, _ := f.counts(); requests != 0 {
		t.Errorf("%d reports sent for invalid calls", requests)
	}
}

func TestDiscovery(t *testing.T) {
	for _, tc := range []struct {
		name           string
		issuer         string // in the metadata; default the server's
		discoverScript []int
		sent, failed   int64
		discoveries    int
	}{
		{name: "ok/endpoint-from-metadata", sent: 4, discoveries: 1},
		{name: "ok/discovery-retried-after-503", discoverScript: []int{503}, sent: 4, discoveries: 2},
		{name: "fail/issuer-mismatch", issuer: "https://impostor.example", failed: 4, discoveries: 2},
		{name: "fail/discovery-404-not-retried", discoverScript: []int{404, 404}, failed: 4, discoveries: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.path = "/audit/v1/calls" // not the default: it can only be known from the metadata
			f.issuer, f.discoverScript = tc.issuer, tc.discoverScript
			var log errLog
			r := newReporter(t, report.Config{
				Issuer: f.srv.URL, ClientID: f.id, ClientSecret: f.secret,
				FlushInterval: time.Hour, OnError: log.add,
			})
			// Two flushes: two batches, one discovery when it succeeds.
			cs := calls(4)
			r.Report(cs[0])
			r.Report(cs[1])
			flush(t, r)
			r.Report(cs[2])
			r.Report(cs[3])
			flush(t, r)

			got, _ := f.received()
			s := r.Stats()
			if s.Sent != tc.sent || s.Failed != tc.failed || int64(len(got)) != tc.sent {
				t.Errorf("Stats = %+v, %d recorded at %s: want %d sent, %d failed", s, len(got), f.path, tc.sent, tc.failed)
			}
			if _, d := f.counts(); d != tc.discoveries {
				t.Errorf("%d discoveries, want %d", d, tc.discoveries)
			}
			if tc.failed > 0 {
				de, ok := find[*report.DeliveryError](&log)
				if !ok || !strings.Contains(de.Error(), "discovery") {
					t.Errorf("OnError told %v, want a DeliveryError about discovery", log.all())
				}
			}
		})
	}
}

func TestClose(t *testing.T) {
	f := newFake(t)
	cfg := f.config()
	cfg.FlushInterval = time.Hour
	r, err := report.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range calls(3) {
		r.Report(c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got, _ := f.received(); !slices.Equal(jtis(got), wantJTIs(3)) {
		t.Fatalf("Close sent %v, want everything queued", jtis(got))
	}

	r.Report(calls(1)[0])
	r.ReportRequest(sdk.ContextWithToken(ctx, jwt(`{"jti":"late"}`)), "read", "", "")
	if err := r.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Flush finds the sender gone.
	if err := r.Flush(ctx); !errors.Is(err, report.ErrClosed) {
		t.Errorf("Flush after Close = %v, want ErrClosed", err)
	}
	if s := r.Stats(); s != (report.Stats{Sent: 3, Dropped: 2}) {
		t.Errorf("Stats = %+v, want 3 sent, 2 dropped after Close", s)
	}
	if requests, _ := f.counts(); requests != 1 {
		t.Errorf("%d reports, want 1", requests)
	}
}

func TestCloseGivesUpWhenItsContextEnds(t *testing.T) {
	f := newFake(t)
	f.release = make(chan struct{})
	t.Cleanup(func() { close(f.release) })
	var log errLog
	cfg := f.config()
	cfg.FlushInterval, cfg.OnError = 10*time.Millisecond, log.add
	r, err := report.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range calls(3) {
		r.Report(c)
	}
	select {
	case <-f.entered:
	case <-time.After(guard):
		t.Fatal("the report never reached the server")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close = %v, want context.Canceled", err)
	}
	// Close returned, so the sender has stopped: the held report is given up.
	if s := r.Stats(); s != (report.Stats{Failed: 3}) {
		t.Errorf("Stats = %+v, want 3 failed", s)
	}
	if de, ok := find[*report.DeliveryError](&log); !ok || !errors.Is(de, report.ErrClosed) || len(de.Calls) != 3 {
		t.Errorf("OnError told %v, want a DeliveryError for 3 calls wrapping ErrClosed", log.all())
	}
}

func TestSplitByBodyLimit(t *testing.T) {
	f := newFake(t)
	var log errLog
	cfg := f.config()
	cfg.FlushInterval, cfg.OnError = time.Hour, log.add
	r := newReporter(t, cfg)
	cs := calls(8)
	for i := range cs {
		cs[i].Detail = strings.Repeat("x", 300<<10) // four of them exceed 1 MiB
	}
	cs[5].Detail = strings.Repeat("y", 2<<20) // alone larger than any report may be
	for _, c := range cs {
		r.Report(c)
	}
	flush(t, r)

	got, bodies := f.received()
	want := slices.Delete(wantJTIs(8), 5, 6)
	if !slices.Equal(jtis(got), want) {
		t.Errorf("recorded %v, want %v", jtis(got), want)
	}
	for i, b := range bodies {
		if len(b) > 1<<20 {
			t.Errorf("report %d is %d bytes, more than 1 MiB", i, len(b))
		}
	}
	if len(bodies) < 3 {
		t.Errorf("%d reports, want the 7 calls of 300 KiB split into at least 3", len(bodies))
	}
	if s := r.Stats(); s != (report.Stats{Sent: 7, Rejected: 1}) {
		t.Errorf("Stats = %+v, want 7 sent, 1 rejected", s)
	}
	if re, ok := find[*report.RejectedError](&log); !ok || len(re.Rejections) != 1 || re.Rejections[0].Call.TokenJTI != "jti-5" {
		t.Errorf("OnError told %v, want jti-5 rejected as too large", log.all())
	}
}

func TestNew(t *testing.T) {
	ok := report.Config{Endpoint: "https://deputy.example/calls", ClientID: "ledger", ClientSecret: "s"}
	for _, tc := range []struct {
		name   string
		change func(*report.Config)
		errMsg string // "" when New must succeed
	}{
		{"ok/endpoint", func(*report.Config) {}, ""},
		{"ok/issuer-only", func(c *report.Config) { c.Endpoint, c.Issuer = "", "https://deputy.example" }, ""},
		{"ok/max-batch", func(c *report.Config) { c.BatchSize = 500 }, ""},
		{"ok/no-retries", func(c *report.Config) { c.MaxRetries = -1 }, ""},
		{"fail/no-client-id", func(c *report.Config) { c.ClientID = "" }, "ClientID"},
		{"fail/no-client-secret", func(c *report.Config) { c.ClientSecret = "" }, "ClientSecret"},
		{"fail/no-issuer-or-endpoint", func(c *report.Config) { c.Endpoint = "" }, "Issuer or Endpoint"},
		{"fail/relative-endpoint", func(c *report.Config) { c.Endpoint = "/calls" }, "Endpoint"},
		{"fail/issuer-not-http", func(c *report.Config) { c.Issuer = "ftp://deputy.example" }, "Issuer"},
		{"fail/batch-over-500", func(c *report.Config) { c.BatchSize = 501 }, "BatchSize"},
		{"fail/negative-batch", func(c *report.Config) { c.BatchSize = -1 }, "BatchSize"},
		{"fail/negative-flush-interval", func(c *report.Config) { c.FlushInterval = -time.Second }, "FlushInterval"},
		{"fail/negative-queue", func(c *report.Config) { c.QueueSize = -1 }, "QueueSize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.change(&cfg)
			r, err := report.New(cfg)
			if tc.errMsg == "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := r.Close(context.Background()); err != nil {
					t.Error(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errMsg) {
				t.Errorf("New = %v, want an error naming %s", err, tc.errMsg)
			}
		})
	}
}

// BenchmarkReport measures Report, the call on a request's path, from many
// goroutines; the server answers at once.
func BenchmarkReport(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"accepted":0,"rejected":[]}`)
	}))
	defer srv.Close()
	r, err := report.New(report.Config{Endpoint: srv.URL, ClientID: "ledger", ClientSecret: "s"})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close(context.Background())
	c := report.Call{TokenJTI: "abc", Action: "read", Resource: "account/42", Outcome: "ok"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Report(c)
		}
	})
}
