package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"slices"
	"syscall"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// The floor is what any JWT-issuing token-exchange server pays per request: verify
// the subject token's signature and claims, and sign a new token with an act
// claim, with go-jose v4 in one goroutine. It is the loop of BenchmarkExchange in
// the peers' cryptofloor (bench/peers/cryptofloor), so the numbers compare with
// what was measured there; sign alone is the floor of a client credentials grant.

type floorAct struct {
	Sub string `json:"sub"`
}

type floorClaims struct {
	jwt.Claims
	Scope    string    `json:"scope,omitempty"`
	ClientID string    `json:"client_id,omitempty"`
	Act      *floorAct `json:"act,omitempty"`
}

// floorResult is one measurement of the floor. Each loop runs in floorSlices
// slices, and the best slice counts: other processes, and on a virtual machine
// other guests, can only slow a loop down, so the fastest slice is the closest to
// what the core does undisturbed (as the peers took the best of go test -count 3).
// Rates are per CPU-second of this process (utime+stime, so the garbage
// collector's work is in): what one core does when the loop has it to itself,
// even if other processes took part of it. CPUShare tells how much of a core the
// loop got; on a quiet machine the rates per wall-clock second are the same.
type floorResult struct {
	Alg  string `json:"alg"`
	CPUs string `json:"cpus,omitempty"` // where it ran ("" = unpinned)
	// ExchangeOps is verify + sign per second on one core (the best slice).
	ExchangeOps float64 `json:"exchange_ops"`
	// SignOps is sign alone per second on one core (the best slice).
	SignOps float64 `json:"sign_ops"`
	// ExchangeOpsSlices are the verify + sign rates of every slice.
	ExchangeOpsSlices []float64 `json:"exchange_ops_slices"`
	// ExchangeOpsWall is verify + sign per wall-clock second over all slices.
	ExchangeOpsWall float64 `json:"exchange_ops_wall"`
	// CPUShare is CPU time over wall time during the verify+sign loop (1 = a
	// whole core; less when other processes ran on the same CPU).
	CPUShare float64 `json:"cpu_share"`
	Secs     float64 `json:"secs"`
}

const floorSlices = 4

func floorKey(alg string) (jose.SignatureAlgorithm, crypto.Signer, error) {
	switch alg {
	case "ES256":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		return jose.ES256, k, err
	case "EdDSA":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return jose.EdDSA, k, err
	case "RS256", "PS256":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		return jose.SignatureAlgorithm(alg), k, err
	}
	return "", nil, fmt.Errorf("no floor for algorithm %q", alg)
}

func floorSample(now time.Time) floorClaims {
	return floorClaims{
		Claims: jwt.Claims{
			Issuer:   "https://issuer.example",
			Subject:  "user-1234567890",
			Audience: jwt.Audience{"https://api.example"},
			Expiry:   jwt.NewNumericDate(now.Add(5 * time.Minute)),
			IssuedAt: jwt.NewNumericDate(now),
			ID:       "3f2b7c1e-9d7a-4c1b-8b8e-2a1f5c6d7e8f",
		},
		Scope:    "read write",
		ClientID: "client-abc",
	}
}

// floorOps holds the two operations the floor repeats.
type floorOps struct {
	alg    jose.SignatureAlgorithm
	signer jose.Signer
	pub    crypto.PublicKey
	token  string
}

func newFloorOps(alg string) (*floorOps, error) {
	a, key, err := floorKey(alg)
	if err != nil {
		return nil, err
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: a, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		return nil, err
	}
	f := &floorOps{alg: a, signer: s, pub: key.Public()}
	if f.token, err = f.sign(floorSample(time.Now())); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *floorOps) sign(c floorClaims) (string, error) {
	return jwt.Signed(f.signer).Claims(c).Serialize()
}

// exchange verifies the subject token and signs the exchanged one.
func (f *floorOps) exchange() error {
	t, err := jwt.ParseSigned(f.token, []jose.SignatureAlgorithm{f.alg})
	if err != nil {
		return err
	}
	var in floorClaims
	if err := t.Claims(f.pub, &in); err != nil {
		return err
	}
	now := time.Now()
	if err := in.ValidateWithLeeway(jwt.Expected{Issuer: "https://issuer.example", Time: now}, time.Minute); err != nil {
		return err
	}
	out := floorSample(now)
	out.Subject = in.Subject
	out.Audience = jwt.Audience{"https://downstream.example"}
	out.Act = &floorAct{Sub: "client-abc"}
	_, err = f.sign(out)
	return err
}

// processCPU is the CPU time this process used so far (utime+stime).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loopRun is how many times a loop ran an operation, in how much wall-clock and
// CPU time.
type loopRun struct {
	n         int
	wall, cpu time.Duration
}

// perCPU is the rate per CPU-second (per wall-clock second if no CPU time was
// seen).
func (r loopRun) perCPU() float64 {
	if r.cpu <= 0 {
		return r.perWall()
	}
	return float64(r.n) / r.cpu.Seconds()
}

func (r loopRun) perWall() float64 { return float64(r.n) / r.wall.Seconds() }

// share is the part of a core the loop got.
func (r loopRun) share() float64 { return r.cpu.Seconds() / r.wall.Seconds() }

// runFor runs op in a tight loop for about d of wall-clock time.
func runFor(d time.Duration, op func() error) (loopRun, error) {
	start, cpu0 := time.Now(), processCPU()
	n := 0
	for {
		for range 8 {
			if err := op(); err != nil {
				return loopRun{}, err
			}
		}
		n += 8
		if el := time.Since(start); el >= d {
			return loopRun{n: n, wall: el, cpu: processCPU() - cpu0}, nil
		}
	}
}

// slicedRuns runs op in n slices of d/n and returns the rate per CPU-second of
// each slice, and the whole run.
func slicedRuns(d time.Duration, n int, op func() error) ([]float64, loopRun, error) {
	var (
		per []float64
		all loopRun
	)
	for range n {
		r, err := runFor(d/time.Duration(n), op)
		if err != nil {
			return nil, loopRun{}, err
		}
		per = append(per, round(r.perCPU(), 1))
		all.n += r.n
		all.wall += r.wall
		all.cpu += r.cpu
	}
	return per, all, nil
}

// measureFloor measures verify+sign for d and sign alone for d/2, in the calling
// goroutine: run it where the CPUs are the ones to measure (a pinned process)
// while nothing else in the process is busy.
func measureFloor(alg string, d time.Duration) (floorResult, error) {
	f, err := newFloorOps(alg)
	if err != nil {
		return floorResult{}, err
	}
	start := time.Now()
	// A short unmeasured start, so that first-use costs are not in the number.
	if _, err := runFor(min(d/10, 100*time.Millisecond), f.exchange); err != nil {
		return floorResult{}, err
	}
	ex, exAll, err := slicedRuns(d, floorSlices, f.exchange)
	if err != nil {
		return floorResult{}, err
	}
	c := floorSample(time.Now())
	sign, _, err := slicedRuns(d/2, floorSlices, func() error { _, err := f.sign(c); return err })
	if err != nil {
		return floorResult{}, err
	}
	return floorResult{
		Alg:               alg,
		ExchangeOps:       slices.Max(ex),
		SignOps:           slices.Max(sign),
		ExchangeOpsSlices: ex,
		ExchangeOpsWall:   round(exAll.perWall(), 1),
		CPUShare:          round(exAll.share(), 3),
		Secs:              round(time.Since(start).Seconds(), 3),
	}, nil
}
