package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/sdk/dpop"
)

// TestProofSourcePresignsThenSignsLive: the pool's proofs are handed out in the
// order they were signed, each a valid proof for the token endpoint with its own
// jti; past the pool, proofs are signed on the spot and counted.
func TestProofSourcePresignsThenSignsLive(t *testing.T) {
	key, err := newProofKey()
	if err != nil {
		t.Fatal(err)
	}
	const htu = "http://127.0.0.1:9/token"
	ps := &proofSource{signer: key, htu: htu}
	rate, err := fillProofs(ps, 20, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps.pool) != 20 || rate <= 0 {
		t.Fatalf("pool %d, rate %v", len(ps.pool), rate)
	}
	seen := map[string]bool{}
	for i := range 25 {
		s := ps.proof()
		if i < 20 && s != ps.pool[i] {
			t.Errorf("proof %d is not the pool's %d-th", i, i)
		}
		p, err := dpop.Check(s, dpop.Request{Method: http.MethodPost, URL: htu, Now: time.Now()})
		if err != nil {
			t.Fatalf("proof %d: %v", i, err)
		}
		if seen[p.JTI] {
			t.Errorf("proof %d repeats jti %s", i, p.JTI)
		}
		seen[p.JTI] = true
	}
	if got := ps.live.Load(); got != 5 {
		t.Errorf("%d proofs signed live, want 5", got)
	}
}

// TestProofBudget: a pool is signed only when its first proof is still younger
// than dpop.max_age (less the margin) at the end of the run.
func TestProofBudget(t *testing.T) {
	for _, c := range []struct {
		maxAge, warmup, d time.Duration
		want              time.Duration
	}{
		{60 * time.Second, 2 * time.Second, 15 * time.Second, 38 * time.Second},
		{60 * time.Second, 2 * time.Second, 53 * time.Second, 0},
		{60 * time.Second, 2 * time.Second, 300 * time.Second, -247 * time.Second},
	} {
		if got := proofBudget(c.maxAge, c.warmup, c.d); got != c.want {
			t.Errorf("%+v: got %v", c, got)
		}
	}
	key, err := newProofKey()
	if err != nil {
		t.Fatal(err)
	}
	ps := &proofSource{signer: key, htu: "http://127.0.0.1:9/token"}
	if _, err := fillProofs(ps, 100, proofBudget(60*time.Second, 2*time.Second, 60*time.Second)); err != nil || len(ps.pool) != 0 {
		t.Errorf("no budget: pool %d, %v", len(ps.pool), err)
	}
}

func TestProofsNeeded(t *testing.T) {
	for _, c := range []struct {
		rate        float64
		open        bool
		warmup, d   time.Duration
		conns, maxN int
		want        int
	}{
		{4000, false, 2 * time.Second, 15 * time.Second, 16, 400000, 102000 + 17},
		{1000, true, 2 * time.Second, 15 * time.Second, 64, 400000, 17000 + 65},
		{50000, false, 2 * time.Second, 15 * time.Second, 64, 400000, 400000},
	} {
		if got := proofsNeeded(c.rate, c.open, c.warmup, c.d, c.conns, c.maxN); got != c.want {
			t.Errorf("%+v: got %d", c, got)
		}
	}
}

// TestRequestSpecProofs: a DPoP spec sends one proof per request in its own
// header and leaves the shared header alone; a bearer spec sends none.
func TestRequestSpecProofs(t *testing.T) {
	key, err := newProofKey()
	if err != nil {
		t.Fatal(err)
	}
	ps := &proofSource{signer: key, htu: "http://127.0.0.1:9/token"}
	s := newRequestSpec(nil, credentials{"a", "b"}, [][]byte{[]byte("x")}).withProofs(ps)
	h1, h2 := s.headerFor(), s.headerFor()
	if len(h1.Values(dpop.Header)) != 1 || h1.Get(dpop.Header) == "" || h1.Get(dpop.Header) == h2.Get(dpop.Header) {
		t.Errorf("DPoP headers %q and %q", h1.Values(dpop.Header), h2.Values(dpop.Header))
	}
	if h1.Get("Authorization") != "Basic YTpi" || s.header.Get(dpop.Header) != "" {
		t.Errorf("header %v, shared %v", h1, s.header)
	}
	bearer := newRequestSpec(nil, credentials{"a", "b"}, [][]byte{[]byte("x")})
	if bearer.headerFor().Get(dpop.Header) != "" {
		t.Error("a bearer request carries a DPoP proof")
	}
}

// TestExpectedDPoPRate: proofs are signed for the rate exchange-dpop reached
// before, else for twice its best at other connections (at most the bearer
// exchange's), else for the bearer exchange's.
func TestExpectedDPoPRate(t *testing.T) {
	b := &bench{estimate: map[int]float64{16: 5000, 64: 7000}, dpopRate: map[int]float64{}, pool: &subjectPool{rate: 3000}}
	if got := b.expectedDPoPRate(64); got != 7000 {
		t.Errorf("no DPoP run yet: %v, want the bearer 7000", got)
	}
	b.dpopRate[16] = 1600
	if got := b.expectedDPoPRate(64); got != 3200 {
		t.Errorf("after c=16: %v, want 3200", got)
	}
	if got := b.expectedDPoPRate(16); got != 1600 {
		t.Errorf("c=16 again: %v, want 1600", got)
	}
	b.dpopRate[16] = 4000
	if got := b.expectedDPoPRate(64); got != 7000 {
		t.Errorf("capped by the bearer rate: %v, want 7000", got)
	}
}
