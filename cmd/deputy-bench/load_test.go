package main

import (
	"context"
	"testing"
	"time"
)

// fakeClock is simulated time: sleeping jumps to the wake-up time, and a request
// advances it by its service time. One worker only.
type fakeClock struct{ now time.Duration }

func (c *fakeClock) Now() time.Duration { return c.now }

func (c *fakeClock) SleepUntil(_ context.Context, t time.Duration) bool {
	c.now = max(c.now, t)
	return true
}

// simulate runs one open-loop worker at 1000 requests/s (one due every 1 ms)
// against a server that answers in 200 µs, except request stall which takes
// stallFor; it returns the stats and the send times.
func simulate(t *testing.T, w openWindow, end time.Duration, stall int, stallFor time.Duration) *workerStats {
	t.Helper()
	clk := &fakeClock{}
	s := &schedule{rate: 1000, end: end}
	st := newWorkerStats()
	i := 0
	openLoopWorker(context.Background(), clk, s, w, func() outcome {
		if i == stall {
			clk.now += stallFor
		} else {
			clk.now += 200 * time.Microsecond
		}
		i++
		return outcome{ok: true}
	}, st)
	return st
}

func TestScheduleDue(t *testing.T) {
	s := &schedule{rate: 3, end: time.Second}
	var got []time.Duration
	for {
		d, ok := s.take()
		if !ok {
			break
		}
		got = append(got, d)
	}
	want := []time.Duration{0, 333333333, 666666666}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d due at %v, want %v", i, got[i], want[i])
		}
	}
	// No drift: request 3 million of 1000/s is due at exactly 3000 s.
	if d := (&schedule{rate: 1000}).due(3_000_000); d != 3000*time.Second {
		t.Errorf("due(3e6) = %v", d)
	}
}

// TestOpenLoopCorrectsCoordinatedOmission: request 10 stalls for 50 ms. The 61
// requests that fell due meanwhile were sent late; their latency counts from
// when they were due, so the median of the 100 requests is 10 ms, not the
// 200 µs a tool measuring from the send would report.
func TestOpenLoopCorrectsCoordinatedOmission(t *testing.T) {
	st := simulate(t, openWindow{from: 0, to: 100 * time.Millisecond, giveUp: time.Second}, 100*time.Millisecond, 10, 50*time.Millisecond)
	if st.lat.Count() != 100 || st.ok != 100 || st.unsent != 0 {
		t.Fatalf("count %d ok %d unsent %d", st.lat.Count(), st.ok, st.unsent)
	}
	// Request k in 11..72 is due at k ms and sent when the backlog before it
	// has drained: answered at 60 ms + (k-10)·0.2 ms, a latency of 58 − 0.8k ms.
	// Sorted: 37 × 0.2 ms, 0.4 ms (k=72), then 1.2, 2.0, … ms (k=71, 70, …):
	// the 50th value is k=60's, 10 ms.
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{
		{50, 10 * time.Millisecond},
		{90, 42 * time.Millisecond}, // the 90th value: k=20, 58-16
		{99, 49200 * time.Microsecond},
		{100, 50 * time.Millisecond},
	} {
		if got := st.lat.Percentile(c.p); !within(got, c.want, 0.008) {
			t.Errorf("corrected p%v = %v, want %v", c.p, got, c.want)
		}
	}
	// From the send, only the stalled request is slow.
	if got := st.service.Percentile(50); !within(got, 200*time.Microsecond, 0.008) {
		t.Errorf("service p50 = %v, want 200µs", got)
	}
	if got := st.service.Percentile(99); !within(got, 200*time.Microsecond, 0.008) {
		t.Errorf("service p99 = %v, want 200µs", got)
	}
	if got := st.service.Max(); got != 50*time.Millisecond {
		t.Errorf("service max = %v", got)
	}
	if st.lastDone != 99*time.Millisecond+200*time.Microsecond {
		t.Errorf("last answer at %v", st.lastDone)
	}
}

// TestOpenLoopOnTime: a server that always keeps up has latency = service time.
func TestOpenLoopOnTime(t *testing.T) {
	st := simulate(t, openWindow{from: 0, to: 50 * time.Millisecond, giveUp: time.Second}, 50*time.Millisecond, -1, 0)
	if st.lat.Count() != 50 || st.lat.Max() != 200*time.Microsecond || st.lat.Min() != 200*time.Microsecond {
		t.Errorf("count %d min %v max %v", st.lat.Count(), st.lat.Min(), st.lat.Max())
	}
}

// TestOpenLoopWindow: requests due in the warm-up or after the window are sent
// but not measured.
func TestOpenLoopWindow(t *testing.T) {
	st := simulate(t, openWindow{from: 20 * time.Millisecond, to: 70 * time.Millisecond, giveUp: time.Second}, 100*time.Millisecond, 5, 30*time.Millisecond)
	if st.sent != 100 {
		t.Errorf("sent %d, want 100", st.sent)
	}
	if st.lat.Count() != 50 {
		t.Errorf("measured %d, want the 50 due in [20ms, 70ms)", st.lat.Count())
	}
	// The stall in the warm-up delays requests up to ~42 ms; those due from
	// 20 ms on still carry part of it: request 20 is answered at
	// 35 + 15·0.2 ms = 38 ms, 18 ms after it was due.
	if got := st.lat.Max(); !within(got, 18*time.Millisecond, 0.01) {
		t.Errorf("max = %v, want 18ms", got)
	}
}

// TestOpenLoopGivesUp: requests that could not be sent before giveUp are counted
// as unsent, not measured.
func TestOpenLoopGivesUp(t *testing.T) {
	st := simulate(t, openWindow{from: 0, to: 100 * time.Millisecond, giveUp: 200 * time.Millisecond}, 100*time.Millisecond, 10, 500*time.Millisecond)
	if st.lat.Count() != 11 || st.unsent != 89 {
		t.Errorf("measured %d unsent %d, want 11 and 89", st.lat.Count(), st.unsent)
	}
}

func TestRequestSpecCycles(t *testing.T) {
	s := newRequestSpec(nil, credentials{"a", "b"}, [][]byte{[]byte("0"), []byte("1"), []byte("2")})
	var got string
	for range 5 {
		got += string(s.body())
	}
	if got != "01201" || s.reused() != 2 {
		t.Errorf("bodies %q, reused %d", got, s.reused())
	}
	one := newRequestSpec(nil, credentials{"a", "b"}, [][]byte{[]byte("x")})
	one.body()
	if one.reused() != 0 {
		t.Errorf("one body used once: reused %d", one.reused())
	}
	if h := s.header.Get("Authorization"); h != "Basic YTpi" {
		t.Errorf("Authorization %q", h)
	}
}

func TestDistinctPoolSize(t *testing.T) {
	for _, c := range []struct {
		rate          float64
		open          bool
		warmup, d     time.Duration
		conns, lo, hi int
		want          int
	}{
		{2000, false, 2 * time.Second, 15 * time.Second, 16, 1000, 100000, 42500 + 17},
		{1000, true, 2 * time.Second, 15 * time.Second, 64, 1000, 100000, 17000 + 65},
		{10, false, time.Second, time.Second, 4, 1000, 100000, 1000},
		{50000, false, 2 * time.Second, 15 * time.Second, 64, 1000, 100000, 100000},
	} {
		if got := distinctPoolSize(c.rate, c.open, c.warmup, c.d, c.conns, c.lo, c.hi); got != c.want {
			t.Errorf("%+v: got %d", c, got)
		}
	}
}

func TestExchangeBody(t *testing.T) {
	got := string(exchangeBody("a.b-c_d", "https://api2.example"))
	want := "audience=https%3A%2F%2Fapi2.example&grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=a.b-c_d&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token"
	if got != want {
		t.Errorf("got %s", got)
	}
}
