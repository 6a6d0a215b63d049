package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/sdk/dpop"
)

// The DPoP proofs of the exchange-dpop scenario (RFC 9449 §4.2) are ES256, the
// algorithm clients use most; each is made by sdk/dpop.NewProof, so each has a
// fresh jti and iat, as a real client's.
const proofAlg = jose.ES256

// proofMargin is how much younger than dpop.max_age a pre-generated proof must
// still be when the run ends: iat is whole seconds, and the clocks of the tool
// and the server are read at different moments.
const proofMargin = 5 * time.Second

// proofSource hands out one DPoP proof per request, in the order they were made:
// first from a pool signed before the run (so that signing them does not take
// the load generator's CPU during the measured window), then, once the pool is
// used up, signed on the spot — those are counted, and reported.
type proofSource struct {
	signer crypto.Signer
	htu    string
	pool   []string
	next   atomic.Uint64
	live   atomic.Uint64 // signed on the spot, the pool being used up
}

// newProofKey returns a fresh P-256 key, a client's DPoP key.
func newProofKey() (crypto.Signer, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// proof returns the DPoP header value of the next request ("" if it cannot be
// signed, which the server refuses: an error of the run).
func (p *proofSource) proof() string {
	if i := p.next.Add(1) - 1; i < uint64(len(p.pool)) {
		return p.pool[i]
	}
	p.live.Add(1)
	s, _ := dpop.NewProof(p.signer, proofAlg, http.MethodPost, p.htu, "", "")
	return s
}

// proofsNeeded is the number of proofs a run is expected to use: every request it
// sends (estimated from a rate, padded more than the subject token pool, as a
// proof is cheaper to make than a token to fetch), at most maxN.
func proofsNeeded(rate float64, open bool, warmup, d time.Duration, conns, maxN int) int {
	n := rate * (warmup + d).Seconds()
	if !open {
		n *= 1.5
	}
	return min(int(n)+conns+1, maxN)
}

// proofBudget is how long signing the pool may take: the first proof made must
// still be younger than maxAge (less proofMargin) when the last request of the
// run is sent, warmup + d after the pool is done. Zero or less: no pool fits,
// every proof is signed on the spot.
func proofBudget(maxAge, warmup, d time.Duration) time.Duration {
	return maxAge - proofMargin - warmup - d
}

// fillProofs signs up to n proofs for htu on every CPU this process may use,
// stopping early when budget is spent; it returns how many per second it made.
func fillProofs(p *proofSource, n int, budget time.Duration) (float64, error) {
	if n <= 0 || budget <= 0 {
		return 0, nil
	}
	start := time.Now()
	deadline := start.Add(budget)
	out := make([]string, n)
	var (
		next  atomic.Int64
		made  atomic.Int64
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || i%256 == 0 && time.Now().After(deadline) {
					return
				}
				s, err := dpop.NewProof(p.signer, proofAlg, http.MethodPost, p.htu, "", "")
				if err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
					return
				}
				out[i] = s
				made.Add(1)
			}
		})
	}
	wg.Wait()
	if first != nil {
		return 0, fmt.Errorf("signing DPoP proofs: %w", first)
	}
	// The pool is the unbroken prefix of proofs made (workers stopping at the
	// deadline may leave holes after it).
	k := 0
	for k < n && out[k] != "" {
		k++
	}
	p.pool = out[:k:k]
	return float64(made.Load()) / time.Since(start).Seconds(), nil
}
