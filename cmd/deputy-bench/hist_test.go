package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// within reports whether got is within rel (relative) of want.
func within(got, want time.Duration, rel float64) bool {
	return math.Abs(float64(got-want)) <= rel*float64(want)
}

// TestPercentilesKnown: 1 µs … 10 ms in steps of 1 µs, each once; the
// nearest-rank percentile p is p% of 10 ms.
func TestPercentilesKnown(t *testing.T) {
	h := NewHistogram()
	for v := 1; v <= 10000; v++ {
		h.Record(time.Duration(v) * time.Microsecond)
	}
	if h.Count() != 10000 || h.Min() != time.Microsecond || h.Max() != 10*time.Millisecond {
		t.Fatalf("count %d min %v max %v", h.Count(), h.Min(), h.Max())
	}
	if got, want := h.Mean(), 5000500*time.Nanosecond; got != want {
		t.Errorf("mean %v, want %v", got, want)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{
		{50, 5 * time.Millisecond},
		{90, 9 * time.Millisecond},
		{99, 9900 * time.Microsecond},
		{99.9, 9990 * time.Microsecond},
		{0.01, time.Microsecond},
	} {
		if got := h.Percentile(c.p); !within(got, c.want, 0.008) {
			t.Errorf("p%v = %v, want %v ± 0.8%%", c.p, got, c.want)
		}
	}
	if got := h.Percentile(100); got != 10*time.Millisecond {
		t.Errorf("p100 = %v, want the max", got)
	}
}

// TestPercentilesSkewed: 990 fast answers and 10 slow ones: p99 is still fast,
// p99.9 is slow.
func TestPercentilesSkewed(t *testing.T) {
	h := NewHistogram()
	for range 990 {
		h.Record(2 * time.Millisecond)
	}
	for range 10 {
		h.Record(400 * time.Millisecond)
	}
	if got := h.Percentile(50); !within(got, 2*time.Millisecond, 0.008) {
		t.Errorf("p50 %v", got)
	}
	if got := h.Percentile(99); !within(got, 2*time.Millisecond, 0.008) {
		t.Errorf("p99 %v", got)
	}
	if got := h.Percentile(99.9); !within(got, 400*time.Millisecond, 0.008) {
		t.Errorf("p99.9 %v", got)
	}
}

// TestSmallValuesExact: below 256 ns every value has its own bucket.
func TestSmallValuesExact(t *testing.T) {
	h := NewHistogram()
	for _, v := range []int64{3, 7, 7, 200, 255} {
		h.RecordValue(v)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{20, 3}, {40, 7}, {60, 7}, {80, 200}, {100, 255}} {
		if got := h.Percentile(c.p); got != c.want {
			t.Errorf("p%v = %d, want %d", c.p, got, c.want)
		}
	}
}

func TestEmptyAndClamped(t *testing.T) {
	h := NewHistogram()
	if h.Percentile(99) != 0 || h.Mean() != 0 || h.Min() != 0 || h.Max() != 0 {
		t.Error("empty histogram is not all zero")
	}
	h.RecordValue(-5)
	h.Record(time.Hour)
	if h.Min() != 0 || h.Max() != time.Duration(histMaxValue) {
		t.Errorf("min %v max %v", h.Min(), h.Max())
	}
}

// TestBucketPrecision: every value's bucket holds it, and the reported midpoint
// is within 0.4% of any value in it; buckets are ordered like the values.
func TestBucketPrecision(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	prev := -1
	for v := int64(0); v < 1<<14; v++ {
		i := bucketOf(v)
		if i < prev {
			t.Fatalf("bucketOf(%d) = %d < bucketOf(%d) = %d", v, i, v-1, prev)
		}
		prev = i
	}
	for range 100000 {
		v := r.Int64N(histMaxValue + 1)
		i := bucketOf(v)
		if i < 0 || i >= histNumBuckets {
			t.Fatalf("bucketOf(%d) = %d out of range", v, i)
		}
		lo, hi := bucketRange(i)
		if v < lo || v > hi {
			t.Fatalf("%d is not in bucket %d [%d, %d]", v, i, lo, hi)
		}
		mid := lo + (hi-lo)/2
		if math.Abs(float64(mid-v)) > 0.004*float64(v)+1 {
			t.Fatalf("%d: midpoint %d too far", v, mid)
		}
	}
	if _, hi := bucketRange(histNumBuckets - 1); hi != histMaxValue {
		t.Errorf("last bucket ends at %d, want %d", hi, histMaxValue)
	}
}

// TestMergeMatchesOne: per-worker histograms merged equal one histogram of
// everything, and match exact percentiles of the sorted values.
func TestMergeMatchesOne(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	all := NewHistogram()
	parts := []*Histogram{NewHistogram(), NewHistogram(), NewHistogram()}
	var vals []int64
	for i := range 30000 {
		v := int64(r.ExpFloat64() * 3e6) // exponential, mean 3 ms
		vals = append(vals, v)
		all.RecordValue(v)
		parts[i%3].RecordValue(v)
	}
	m := NewHistogram()
	for _, p := range parts {
		m.Merge(p)
	}
	m.Merge(NewHistogram())
	slices.Sort(vals)
	for _, p := range []float64{50, 90, 99, 99.9} {
		if m.Percentile(p) != all.Percentile(p) {
			t.Errorf("p%v merged %v, single %v", p, m.Percentile(p), all.Percentile(p))
		}
		exact := time.Duration(vals[int(math.Ceil(p/100*float64(len(vals))))-1])
		if got := m.Percentile(p); !within(got, exact, 0.008) {
			t.Errorf("p%v = %v, exact %v", p, got, exact)
		}
	}
	if m.Count() != all.Count() || m.Max() != all.Max() || m.Min() != all.Min() || m.Mean() != all.Mean() {
		t.Error("merged count/min/max/mean differ")
	}
}
