package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
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

// floorResult is one measurement of the floor.
type floorResult struct {
	Alg  string `json:"alg"`
	CPUs string `json:"cpus,omitempty"` // where it ran ("" = unpinned)
	// ExchangeOps is verify + sign per second on one core.
	ExchangeOps float64 `json:"exchange_ops"`
	// SignOps is sign alone per second on one core.
	SignOps float64 `json:"sign_ops"`
	Secs    float64 `json:"secs"`
}

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

// opsPerSecond runs op in a tight loop for about d and returns its rate.
func opsPerSecond(d time.Duration, op func() error) (float64, error) {
	start := time.Now()
	n := 0
	for {
		for range 8 {
			if err := op(); err != nil {
				return 0, err
			}
		}
		n += 8
		if el := time.Since(start); el >= d {
			return float64(n) / el.Seconds(), nil
		}
	}
}

// measureFloor measures verify+sign for d and sign alone for d/2, in the calling
// goroutine: run it where the CPUs are the ones to measure (a pinned process).
func measureFloor(alg string, d time.Duration) (floorResult, error) {
	f, err := newFloorOps(alg)
	if err != nil {
		return floorResult{}, err
	}
	start := time.Now()
	// A short unmeasured start, so that first-use costs are not in the number.
	if _, err := opsPerSecond(min(d/10, 100*time.Millisecond), f.exchange); err != nil {
		return floorResult{}, err
	}
	r := floorResult{Alg: alg}
	if r.ExchangeOps, err = opsPerSecond(d, f.exchange); err != nil {
		return floorResult{}, err
	}
	c := floorSample(time.Now())
	if r.SignOps, err = opsPerSecond(d/2, func() error { _, err := f.sign(c); return err }); err != nil {
		return floorResult{}, err
	}
	r.ExchangeOps, r.SignOps = round(r.ExchangeOps, 1), round(r.SignOps, 1)
	r.Secs = round(time.Since(start).Seconds(), 3)
	return r, nil
}
