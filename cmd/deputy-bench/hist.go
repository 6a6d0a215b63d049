package main

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records latencies in nanoseconds in log-linear buckets (the HDR
// histogram layout): values below 2^histSubBits ns are exact, and above that every
// power of two is split into 2^(histSubBits-1) equal buckets, so a recorded value
// and the value reported for its bucket differ by less than 1/2^(histSubBits-1)
// (0.8%). Count, sum, min and max are exact. The zero value is not usable: use
// [NewHistogram]. A Histogram is not safe for concurrent use; each load worker
// keeps its own and they are merged afterwards.
type Histogram struct {
	counts []uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

const (
	histSubBits = 8
	histHalf    = 1 << (histSubBits - 1)
	// histMaxBits bounds recorded values to 2^histMaxBits ns (about 18 minutes);
	// longer ones are recorded as that.
	histMaxBits    = 40
	histMaxValue   = int64(1)<<histMaxBits - 1
	histNumBuckets = (histMaxBits-histSubBits+1)*histHalf + histHalf
)

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, histNumBuckets), min: math.MaxInt64}
}

// bucketOf returns the bucket index of v (0 ≤ v ≤ histMaxValue).
func bucketOf(v int64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - histSubBits // ≥ 1
	m := int(v >> e)                         // in [histHalf, 2*histHalf)
	return e*histHalf + m
}

// bucketRange returns the smallest and largest value that fall into bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < 1<<histSubBits {
		return int64(i), int64(i)
	}
	e := i/histHalf - 1
	m := int64(i - e*histHalf)
	return m << e, (m+1)<<e - 1
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) { h.RecordValue(int64(d)) }

// RecordValue adds one value in nanoseconds; negative values count as 0.
func (h *Histogram) RecordValue(v int64) {
	v = max(v, 0)
	v = min(v, histMaxValue)
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += float64(v)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Min is the smallest recorded value (0 when empty).
func (h *Histogram) Min() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.min)
}

// Max is the largest recorded value.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the average of the recorded values.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Percentile returns the nearest-rank percentile p (0 < p ≤ 100): the smallest
// recorded value v such that at least p% of the values are ≤ v, up to the bucket
// precision. The bucket's midpoint is reported, clamped to [Min, Max], so the
// 100th percentile is Max exactly. 0 when empty.
func (h *Histogram) Percentile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p / 100 * float64(h.n)))
	rank = max(rank, 1)
	rank = min(rank, h.n)
	if rank == h.n {
		return time.Duration(h.max)
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo)/2
			v = max(v, h.min)
			v = min(v, h.max)
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}
