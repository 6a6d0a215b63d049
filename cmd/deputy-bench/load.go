package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// outcome is what one request came back with.
type outcome struct {
	ok     bool
	kind   string // for errors: "status 400", "transport", "timeout", "no access_token"
	detail string // for errors: the response body or the transport error
}

// workerStats is what one worker measured; merged into a runStats at the end.
type workerStats struct {
	lat      *Histogram // latency (open loop: from the scheduled time)
	service  *Histogram // open loop: from the actual send
	ok       uint64
	errs     map[string]uint64
	firstErr string
	warmErrs uint64
	unsent   uint64        // open loop: due in the window but never sent (too far behind)
	sent     uint64        // every request sent, warm-up included
	lastDone time.Duration // open loop: when the last measured request was answered
}

func newWorkerStats() *workerStats {
	return &workerStats{lat: NewHistogram(), service: NewHistogram(), errs: map[string]uint64{}}
}

func (w *workerStats) recordError(o outcome) {
	w.errs[o.kind]++
	if w.firstErr == "" {
		w.firstErr = o.kind + ": " + o.detail
	}
}

// runStats is the merged measurement of one run.
type runStats struct {
	workerStats
	window time.Duration  // the measured window
	nodes  []*workerStats // with several nodes: each node's (its connections')
}

// newRunStats merges the workers' stats, and with several nodes (worker i sent
// to node i mod nodes) each node's.
func newRunStats(ws []*workerStats, nodes int, window time.Duration) *runStats {
	r := &runStats{workerStats: *mergeStats(ws), window: window}
	if nodes > 1 {
		for n := range nodes {
			var mine []*workerStats
			for i := n; i < len(ws); i += nodes {
				mine = append(mine, ws[i])
			}
			r.nodes = append(r.nodes, mergeStats(mine))
		}
	}
	return r
}

func mergeStats(ws []*workerStats) *workerStats {
	m := newWorkerStats()
	for _, w := range ws {
		m.lat.Merge(w.lat)
		m.service.Merge(w.service)
		m.ok += w.ok
		for k, v := range w.errs {
			m.errs[k] += v
		}
		if m.firstErr == "" {
			m.firstErr = w.firstErr
		}
		m.warmErrs += w.warmErrs
		m.unsent += w.unsent
		m.sent += w.sent
		m.lastDone = max(m.lastDone, w.lastDone)
	}
	return m
}

func (w *workerStats) errorCount() uint64 {
	var n uint64
	for _, v := range w.errs {
		n += v
	}
	return n
}

func (w *workerStats) errorKinds() map[string]uint64 { return maps.Clone(w.errs) }

// requestSpec is one kind of request: a POST of a pre-encoded form with HTTP
// Basic client authentication; bodies are used in turn (one for the same body
// on every request). With proofs, every request carries a DPoP header of its
// own (RFC 9449 §4.1) and its answer must be a DPoP-bound token. With several
// urls (the token endpoints of the nodes of one cluster), connection i sends to
// urls[i mod len(urls)].
type requestSpec struct {
	urls   []*url.URL
	header http.Header // shared read-only by every request
	bodies [][]byte
	next   atomic.Uint64 // how many bodies were taken
	proofs *proofSource  // nil: bearer requests
}

// onNodes makes the requests of s go round-robin to the token endpoints of
// several nodes.
func (s *requestSpec) onNodes(urls []*url.URL) *requestSpec {
	if len(urls) > 0 {
		s.urls = urls
	}
	return s
}

// urlFor is where connection i sends.
func (s *requestSpec) urlFor(i int) *url.URL { return s.urls[i%len(s.urls)] }

// withProofs makes every request of s carry a proof of ps.
func (s *requestSpec) withProofs(ps *proofSource) *requestSpec {
	s.proofs = ps
	return s
}

// headerFor returns the header of one request: the shared one, or for DPoP a
// copy with the next proof.
func (s *requestSpec) headerFor() http.Header {
	if s.proofs == nil {
		return s.header
	}
	h := make(http.Header, len(s.header)+1)
	for k, v := range s.header {
		h[k] = v
	}
	h["Dpop"] = []string{s.proofs.proof()}
	return h
}

func newRequestSpec(target *url.URL, c credentials, bodies [][]byte) *requestSpec {
	return &requestSpec{
		urls: []*url.URL{target},
		header: http.Header{
			"Authorization": {basicAuth(c)},
			"Content-Type":  {"application/x-www-form-urlencoded"},
			"Accept":        {"application/json"},
		},
		bodies: bodies,
	}
}

// body returns the next body, cycling through them.
func (s *requestSpec) body() []byte {
	if len(s.bodies) == 1 {
		s.next.Add(1)
		return s.bodies[0]
	}
	i := s.next.Add(1) - 1
	return s.bodies[i%uint64(len(s.bodies))]
}

// reused is how many requests used a body that an earlier request had used.
func (s *requestSpec) reused() uint64 {
	n := s.next.Load()
	if n <= uint64(len(s.bodies)) {
		return 0
	}
	return n - uint64(len(s.bodies))
}

// newTransport returns a keep-alive HTTP/1.1 transport for conns connections to
// one host, never through a proxy.
func newTransport(conns int, timeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          conns,
		MaxIdleConnsPerHost:   conns,
		MaxConnsPerHost:       conns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: timeout,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
}

// client sends requests of a spec to url over one transport; buf is per worker.
type client struct {
	rt   http.RoundTripper
	spec *requestSpec
	url  *url.URL
}

var (
	accessTokenField = []byte(`"access_token"`)
	dpopTokenType    = []byte(`"token_type":"DPoP"`)
)

// do sends one request and reads the whole answer into buf.
func (c *client) do(ctx context.Context, buf *bytes.Buffer) outcome {
	body := c.spec.body()
	req := (&http.Request{
		Method:        http.MethodPost,
		URL:           c.url,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        c.spec.headerFor(),
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Host:          c.url.Host,
	}).WithContext(ctx)
	resp, err := c.rt.RoundTrip(req)
	if err != nil {
		return transportOutcome(err)
	}
	buf.Reset()
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return transportOutcome(err)
	}
	if resp.StatusCode != http.StatusOK {
		return outcome{kind: "status " + strconv.Itoa(resp.StatusCode), detail: truncate(buf.String(), 300)}
	}
	if !bytes.Contains(buf.Bytes(), accessTokenField) {
		return outcome{kind: "no access_token", detail: truncate(buf.String(), 300)}
	}
	if c.spec.proofs != nil && !bytes.Contains(buf.Bytes(), dpopTokenType) {
		return outcome{kind: "not DPoP-bound", detail: truncate(buf.String(), 300)}
	}
	return outcome{ok: true}
}

func transportOutcome(err error) outcome {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return outcome{kind: "timeout", detail: err.Error()}
	}
	return outcome{kind: "transport", detail: err.Error()}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// closedLoop runs conns workers that each send a request as soon as the previous
// one was answered: warmup unmeasured, then d measured. A request counts when it
// was sent inside the measured window and answered before it closed; requests in
// flight when it closes are cancelled and not counted. /proc is read when the
// window opens and when it closes (no pids: the server is not measured; pg:
// PostgreSQL's processes too).
func closedLoop(ctx context.Context, spec *requestSpec, conns int, warmup, d, timeout time.Duration, pids []string, pg bool) (*runStats, procResult) {
	tr := newTransport(conns, timeout)
	defer tr.CloseIdleConnections()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()

	base := time.Now()
	var measureFrom atomic.Int64 // ns since base; 0 while warming up
	var stopped atomic.Bool
	ws := make([]*workerStats, conns)
	var wg sync.WaitGroup
	for i := range ws {
		st := newWorkerStats()
		ws[i] = st
		wg.Go(func() {
			c := &client{rt: tr, spec: spec, url: spec.urlFor(i)}
			var buf bytes.Buffer
			for !stopped.Load() && wctx.Err() == nil {
				t0 := time.Since(base)
				o := c.do(wctx, &buf)
				t1 := time.Since(base)
				st.sent++
				if stopped.Load() {
					return
				}
				from := measureFrom.Load()
				if from == 0 || int64(t0) < from {
					if !o.ok {
						st.warmErrs++
					}
					continue
				}
				st.lat.Record(t1 - t0)
				if o.ok {
					st.ok++
				} else {
					st.recordError(o)
				}
			}
		})
	}
	sleepCtx(ctx, warmup)
	pw := startProcWindow(pids, pg)
	start := time.Since(base)
	measureFrom.Store(max(int64(start), 1))
	sleepCtx(ctx, d)
	stopped.Store(true)
	window := time.Since(base) - start
	pr := pw.finish()
	cancel()
	wg.Wait()
	return newRunStats(ws, len(spec.urls), window), pr
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// clock is the open loop's time source: real in a run, simulated in tests.
type clock interface {
	// Now is the time since the start of the run.
	Now() time.Duration
	// SleepUntil waits until Now() ≥ t; false if ctx ended first.
	SleepUntil(ctx context.Context, t time.Duration) bool
}

type realClock struct{ base time.Time }

func (c realClock) Now() time.Duration { return time.Since(c.base) }

func (c realClock) SleepUntil(ctx context.Context, t time.Duration) bool {
	return sleepCtx(ctx, t-c.Now())
}

// schedule hands out the requests of an open loop: request i is due at
// i/rate seconds after the start, whoever sends it, until end.
type schedule struct {
	rate float64
	end  time.Duration
	next atomic.Int64
}

// due is when request i is due.
func (s *schedule) due(i int64) time.Duration {
	return time.Duration(float64(i) * float64(time.Second) / s.rate)
}

// take returns the next request's due time; false once it is past the end.
func (s *schedule) take() (time.Duration, bool) {
	t := s.due(s.next.Add(1) - 1)
	return t, t < s.end
}

// openWindow is the part of an open loop that is measured, and how late a
// request may still be sent: a request due in [from, to) is measured; one that
// could not be sent before giveUp is counted as unsent.
type openWindow struct{ from, to, giveUp time.Duration }

// openLoopWorker sends requests when they are due, taking the next one from the
// shared schedule as soon as its previous request was answered. The latency it
// records runs from the time the request was due, not from when it was sent: when
// every connection is busy, the requests that fall due meanwhile wait, and that
// wait is part of their latency (no coordinated omission). The service time, from
// the actual send, is recorded beside it.
func openLoopWorker(ctx context.Context, clk clock, s *schedule, w openWindow, send func() outcome, st *workerStats) {
	for {
		due, ok := s.take()
		if !ok {
			return
		}
		measured := due >= w.from && due < w.to
		if !clk.SleepUntil(ctx, due) {
			if measured {
				st.unsent++
			}
			continue
		}
		sent := clk.Now()
		if sent >= w.giveUp {
			if measured {
				st.unsent++
			}
			continue
		}
		o := send()
		done := clk.Now()
		st.sent++
		if !measured {
			if !o.ok && due < w.from {
				st.warmErrs++
			}
			continue
		}
		st.lat.Record(done - due)
		st.service.Record(done - sent)
		st.lastDone = max(st.lastDone, done)
		if o.ok {
			st.ok++
		} else {
			st.recordError(o)
		}
	}
}

// openLoop sends rate requests per second on a steady schedule for warmup + d
// over at most conns connections and waits for the answers (at most grace after
// the end, plus the request timeout). The window of the result is d, or longer
// when the answers to the requests due in it came later: a server that cannot
// keep up is not credited with the rate it was asked for.
func openLoop(ctx context.Context, spec *requestSpec, conns int, rate float64, warmup, d, timeout time.Duration, pids []string, pg bool) (*runStats, procResult) {
	tr := newTransport(conns, timeout)
	defer tr.CloseIdleConnections()
	grace := max(2*time.Second, timeout)
	clk := realClock{base: time.Now()}
	s := &schedule{rate: rate, end: warmup + d}
	w := openWindow{from: warmup, to: warmup + d, giveUp: warmup + d + grace}
	rctx, cancel := context.WithTimeout(ctx, warmup+d+grace+timeout+time.Second)
	defer cancel()
	ws := make([]*workerStats, conns)
	var wg sync.WaitGroup
	for i := range ws {
		st := newWorkerStats()
		ws[i] = st
		wg.Go(func() {
			c := &client{rt: tr, spec: spec, url: spec.urlFor(i)}
			var buf bytes.Buffer
			openLoopWorker(rctx, clk, s, w, func() outcome { return c.do(rctx, &buf) }, st)
		})
	}
	clk.SleepUntil(ctx, w.from)
	pw := startProcWindow(pids, pg)
	clk.SleepUntil(ctx, w.to)
	pr := pw.finish()
	wg.Wait()
	m := mergeStats(ws)
	return newRunStats(ws, len(spec.urls), max(d, m.lastDone-w.from)), pr
}

// fetchAll sends n requests of spec over conns connections and returns the answer
// bodies of the successful ones; it stops at the first error.
func fetchAll(ctx context.Context, spec *requestSpec, n, conns int, timeout time.Duration) ([][]byte, error) {
	tr := newTransport(conns, timeout)
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make([][]byte, n)
	var (
		next  atomic.Int64
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	for i := range min(conns, n) {
		wg.Go(func() {
			c := &client{rt: tr, spec: spec, url: spec.urlFor(i)}
			var buf bytes.Buffer
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				o := c.do(ctx, &buf)
				if !o.ok {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("%s: %s", o.kind, o.detail)
					}
					mu.Unlock()
					cancel()
					return
				}
				out[i] = bytes.Clone(buf.Bytes())
			}
		})
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
