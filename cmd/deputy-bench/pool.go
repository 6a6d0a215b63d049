package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	grantTokenExchange  = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeAccessTok  = "urn:ietf:params:oauth:token-type:access_token"
	clientCredsBody     = "grant_type=client_credentials"
	poolFetchConns      = 16
	poolExpiryHeadroom  = time.Minute
	distinctPoolPadding = 1.25
)

func basicAuth(c credentials) string {
	// RFC 6749 §2.3.1: id and secret form-urlencoded before Basic.
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(c.ID)+":"+url.QueryEscape(c.Secret)))
}

// exchangeBody is the pre-encoded form of a token exchange of subject for
// audience.
func exchangeBody(subject, audience string) []byte {
	return []byte(url.Values{
		"grant_type":         {grantTokenExchange},
		"subject_token":      {subject},
		"subject_token_type": {tokenTypeAccessTok},
		"audience":           {audience},
	}.Encode())
}

// tokenAnswer is the part of a token response the tool reads.
type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

// subjectPool holds pre-encoded exchange bodies, each with its own subject token
// obtained by the subject client's client credentials grant. Bodies handed out
// by take are never handed out again.
type subjectPool struct {
	target   *url.URL
	client   credentials
	audience string
	timeout  time.Duration
	proofs   *proofSource // the subject client's DPoP key: the tokens are DPoP-bound; nil: bearer
	bodies   [][]byte
	expiry   []time.Time
	fetched  int
	rate     float64 // tokens per second of the last fill
}

// fill makes sure the pool holds at least n tokens that are still valid at
// validUntil, fetching the missing ones.
func (p *subjectPool) fill(ctx context.Context, n int, validUntil time.Time) error {
	i := 0
	for i < len(p.expiry) && p.expiry[i].Before(validUntil) {
		i++
	}
	p.bodies, p.expiry = p.bodies[i:], p.expiry[i:]
	missing := n - len(p.bodies)
	if missing <= 0 {
		return nil
	}
	start := time.Now()
	spec := newRequestSpec(p.target, p.client, [][]byte{[]byte(clientCredsBody)}).withProofs(p.proofs)
	answers, err := fetchAll(ctx, spec, missing, poolFetchConns, p.timeout)
	if err != nil {
		return fmt.Errorf("getting subject tokens (client credentials of %s): %w", p.client.ID, err)
	}
	el := time.Since(start)
	p.rate = float64(missing) / el.Seconds()
	// Append into a new array, so that bodies handed out before are not kept
	// alive by it.
	bodies := make([][]byte, len(p.bodies), len(p.bodies)+missing)
	copy(bodies, p.bodies)
	expiry := make([]time.Time, len(p.expiry), len(p.expiry)+missing)
	copy(expiry, p.expiry)
	for _, a := range answers {
		var t tokenAnswer
		if err := json.Unmarshal(a, &t); err != nil || t.AccessToken == "" {
			return fmt.Errorf("getting subject tokens: answer %q has no access_token", truncate(string(a), 200))
		}
		bodies = append(bodies, exchangeBody(t.AccessToken, p.audience))
		expiry = append(expiry, start.Add(time.Duration(t.ExpiresIn)*time.Second))
	}
	p.bodies, p.expiry = bodies, expiry
	p.fetched += missing
	return nil
}

// take hands out n bodies (fewer if the pool has fewer).
func (p *subjectPool) take(n int) [][]byte {
	n = min(n, len(p.bodies))
	out := p.bodies[:n:n]
	p.bodies, p.expiry = p.bodies[n:], p.expiry[n:]
	return out
}

// distinctPoolSize is the number of subject tokens an exchange-distinct run
// takes: every request it is expected to send (estimated from a rate, padded),
// at least min and at most max.
func distinctPoolSize(rate float64, open bool, warmup, d time.Duration, conns, minN, maxN int) int {
	n := rate * (warmup + d).Seconds()
	if !open {
		n *= distinctPoolPadding
	}
	need := int(n) + conns + 1
	return min(max(need, minN), maxN)
}

// serverSigningAlg is the algorithm of an access token the server at target
// issues to c (client credentials), read from its JWS header with go-jose.
func serverSigningAlg(ctx context.Context, target *url.URL, c credentials, timeout time.Duration) (string, error) {
	answers, err := fetchAll(ctx, newRequestSpec(target, c, [][]byte{[]byte(clientCredsBody)}), 1, 1, timeout)
	if err != nil {
		return "", fmt.Errorf("an access token of %s (client credentials) to read its algorithm: %w", c.ID, err)
	}
	var t tokenAnswer
	if err := json.Unmarshal(answers[0], &t); err != nil || t.AccessToken == "" {
		return "", fmt.Errorf("an access token of %s: answer %q has no access_token", c.ID, truncate(string(answers[0]), 200))
	}
	algs := make([]jose.SignatureAlgorithm, len(algorithms))
	for i, a := range algorithms {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	jws, err := jose.ParseSignedCompact(t.AccessToken, algs)
	if err != nil || len(jws.Signatures) != 1 {
		return "", fmt.Errorf("the server's access token is not a JWS signed with one of %s: %v", strings.Join(algorithms, ", "), err)
	}
	return jws.Signatures[0].Header.Algorithm, nil
}
