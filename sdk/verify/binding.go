package verify

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/dpop"
)

// Defaults and limits of the DPoP checks (RFC 9449 §4.3, §11.1).
const (
	// DefaultDPoPMaxAge is Config.DPoPMaxAge's default: how old a proof's iat may be.
	DefaultDPoPMaxAge = dpop.DefaultMaxAge
	// MaxDPoPMaxAge is the largest Config.DPoPMaxAge accepted.
	MaxDPoPMaxAge = 10 * time.Minute
	// DPoPSkew is how far in the future a proof's iat may be.
	DPoPSkew = dpop.DefaultSkew
	// DefaultDPoPReplayEntries is Config.DPoPReplayEntries's default.
	DefaultDPoPReplayEntries = 100000
)

// NonceSource hands out and judges the server nonces of DPoP proofs (RFC 9449 §9).
// Implementations must be safe for concurrent use. A service run as several
// replicas needs a source whose nonces every replica accepts (e.g. stateless MACs
// under a shared key).
type NonceSource interface {
	// Nonce returns a nonce to send in the DPoP-Nonce header now.
	Nonce() (string, error)
	// Check reports why nonce ("" when the proof has none) is not acceptable now,
	// or nil.
	Check(nonce string) error
}

// scheme is the authentication scheme of the Authorization header.
type scheme int

const (
	schemeBearer scheme = iota // RFC 6750 §2.1
	schemeDPoP                 // RFC 9449 §7.1
)

// VerifyRequest checks the access token r presents and, when the token is
// sender-constrained, the proof of its key that r carries:
//
//   - "Authorization: Bearer <token>" with an unbound token: the checks of Verify
//     (refused when Config.RequireBinding is set);
//   - a certificate-bound token (cnf["x5t#S256"], RFC 8705 §3) as Bearer: the
//     request's TLS client certificate (r.TLS.PeerCertificates[0]) must have that
//     SHA-256 thumbprint;
//   - a DPoP-bound token (cnf.jkt, RFC 9449 §7): only as "Authorization: DPoP
//     <token>" with exactly one DPoP header holding a proof (RFC 9449 §4.3) of
//     that key for this request — htm the method, htu the request's external URL
//     (Config.RequestURL, Config.BaseURL), ath the token's hash, iat within
//     Config.DPoPMaxAge, a jti not seen before by this process, and the nonce of
//     Config.DPoPNonces when set.
//
// A bound token without its proof, or a DPoP-bound token sent as Bearer, is
// ErrInvalidToken; a bad proof is ErrInvalidProof; a missing or stale nonce is
// ErrUseNonce. The returned Principal carries the token's binding in Cnf.
func (v *Verifier) VerifyRequest(r *http.Request) (*Principal, error) {
	p, _, err := v.verifyRequest(r)
	return p, err
}

// verifyRequest is VerifyRequest that also returns the raw token.
func (v *Verifier) verifyRequest(r *http.Request) (*Principal, string, error) {
	raw, sch, err := authorization(r.Header)
	if err != nil {
		return nil, "", err
	}
	ctx := r.Context()
	now := v.now()
	p, err := v.verifyJWT(ctx, raw, now)
	if err != nil {
		if sch == schemeDPoP {
			err = dpopChallenge(err)
		}
		return nil, "", err
	}
	jti, err := v.checkBinding(r, sch, raw, p, now)
	if err != nil {
		return nil, "", err
	}
	if v.introspect != nil {
		if err := v.introspect.check(ctx, raw, now); err != nil {
			return nil, "", err
		}
	}
	// The proof's jti is spent only by a request that passed every check.
	if jti != nil && !v.replay.add(*jti, now) {
		return nil, "", invalidProof("DPoP proof was used before (jti)", nil)
	}
	return p, raw, nil
}

// proofID identifies a DPoP proof in the replay cache: its jti, per key, and until
// when it is remembered.
type proofID struct {
	key     string
	expires time.Time
}

// checkBinding checks that r proves the key p's token is bound to, and returns the
// proof's id when a DPoP proof was checked.
func (v *Verifier) checkBinding(r *http.Request, sch scheme, raw string, p *Principal, now time.Time) (*proofID, error) {
	cnf := p.Cnf
	switch {
	case cnf != nil && cnf.JKT != "":
		if sch != schemeDPoP {
			return nil, dpopChallenge(invalidToken("token is DPoP-bound and must be sent with Authorization: DPoP and a proof", nil))
		}
		return v.checkProof(r, raw, cnf.JKT, now)
	case sch == schemeDPoP:
		return nil, dpopChallenge(invalidToken("token is not DPoP-bound", nil))
	case cnf != nil && cnf.X5TS256 != "":
		if err := checkCertificate(r, cnf.X5TS256); err != nil {
			return nil, err
		}
		return nil, nil
	case v.requireBinding:
		return nil, dpopChallenge(invalidToken("token is not sender-constrained (no cnf); this service requires bound tokens", nil))
	}
	return nil, nil
}

// checkProof checks the one DPoP header of r against the token raw, bound to jkt.
func (v *Verifier) checkProof(r *http.Request, raw, jkt string, now time.Time) (*proofID, error) {
	proofs := r.Header.Values(dpop.Header)
	switch len(proofs) {
	case 0:
		return nil, dpopChallenge(invalidToken("DPoP-bound token presented without a DPoP proof", nil))
	case 1:
	default:
		return nil, invalidProof("more than one DPoP header", nil)
	}
	htu, err := v.requestURL(r)
	if err != nil {
		return nil, invalidProof("the request's URL cannot be determined", err)
	}
	req := dpop.Request{Method: r.Method, URL: htu, AccessToken: raw, Now: now, MaxAge: v.dpopMaxAge, Skew: DPoPSkew}
	if v.nonces != nil {
		req.Nonce = v.nonces.Check
	}
	proof, err := dpop.Check(proofs[0], req)
	if err != nil {
		if errors.Is(err, dpop.ErrUseNonce) {
			return nil, useNonce(err)
		}
		desc := "DPoP proof is invalid"
		var de *dpop.Error
		if errors.As(err, &de) {
			desc += ": " + de.Reason
		}
		return nil, invalidProof(desc, err)
	}
	if proof.JKT != jkt {
		return nil, invalidProof("DPoP proof is signed by another key than the token is bound to", nil)
	}
	return &proofID{key: proof.JKT + " " + proof.JTI, expires: now.Add(v.dpopMaxAge + 2*DPoPSkew)}, nil
}

// requestURL is the URL the client sent r to, as a proof's htu must name it.
func (v *Verifier) requestURL(r *http.Request) (string, error) {
	if v.externalURL != nil {
		return v.externalURL(r), nil
	}
	if v.baseURL != "" {
		return v.baseURL + r.URL.EscapedPath(), nil
	}
	if r.Host == "" {
		return "", errors.New("the request has no Host")
	}
	s := "http"
	if r.TLS != nil {
		s = "https"
	}
	return s + "://" + r.Host + r.URL.EscapedPath(), nil
}

// baseURLOK: an absolute http(s) URL without query or fragment.
func baseURLOK(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.RawQuery == "" && !u.ForceQuery && u.Fragment == "" && u.User == nil
}

// checkCertificate: r came over TLS with a client certificate whose SHA-256
// thumbprint (RFC 8705 §3.1) is x5t.
func checkCertificate(r *http.Request, x5t string) error {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return invalidToken("token is certificate-bound and the request has no TLS client certificate", nil)
	}
	sum := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
	if base64.RawURLEncoding.EncodeToString(sum[:]) != x5t {
		return invalidToken("token is bound to another TLS client certificate", nil)
	}
	return nil
}

// authorization returns the token of the one Authorization header and its scheme,
// Bearer (RFC 6750 §2.1) or DPoP (RFC 9449 §7.1), case-insensitive (RFC 9110
// §11.1). Tokens in the query or the form (RFC 6750 §2.2, §2.3) are not read.
func authorization(h http.Header) (string, scheme, error) {
	values := h.Values("Authorization")
	switch {
	case len(values) == 0:
		return "", 0, noCredentials("missing bearer token")
	case len(values) > 1:
		return "", 0, noCredentials("more than one Authorization header")
	}
	name, token, ok := strings.Cut(values[0], " ")
	var sch scheme
	switch {
	case ok && strings.EqualFold(name, "Bearer"):
		sch = schemeBearer
	case ok && strings.EqualFold(name, "DPoP"):
		sch = schemeDPoP
	default:
		return "", 0, noCredentials("the Authorization header does not carry a bearer or DPoP token")
	}
	token = strings.TrimLeft(token, " ")
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", 0, noCredentials("the Authorization header does not carry a bearer or DPoP token")
	}
	return token, sch, nil
}

// parseConfirmation reads a cnf claim (RFC 7800 §3.1). It must name exactly one
// key this package can check — a DPoP key thumbprint (jkt) or a certificate
// thumbprint (x5t#S256) — so that a token bound in another way is never taken for
// a bearer token.
func parseConfirmation(b json.RawMessage) (*oauth.Confirmation, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil || members == nil {
		return nil, errors.New("not a JSON object")
	}
	var c oauth.Confirmation
	for name, p := range members {
		var dst *string
		switch name {
		case "jkt":
			dst = &c.JKT
		case "x5t#S256":
			dst = &c.X5TS256
		default:
			return nil, fmt.Errorf("member %q names a key this service cannot check", name)
		}
		if err := json.Unmarshal(p, dst); err != nil || *dst == "" {
			return nil, fmt.Errorf("member %q is not a thumbprint", name)
		}
	}
	if (c.JKT == "") == (c.X5TS256 == "") {
		return nil, errors.New("names no key or two keys")
	}
	return &c, nil
}

// replayCache remembers the DPoP proofs accepted in the last max age (RFC 9449
// §11.1), in the order they were accepted, up to a bound.
type replayCache struct {
	mu    sync.Mutex
	seen  map[string]time.Time
	order []proofID // oldest first; expiries do not decrease while the clock does not go back
	max   int
}

func newReplayCache(max int) *replayCache {
	return &replayCache{seen: map[string]time.Time{}, max: max}
}

// add records id and reports whether it was new. Expired entries are dropped
// first; when the cache is still full, the oldest go.
func (c *replayCache) add(id proofID, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.order) > 0 && (!now.Before(c.order[0].expires) || len(c.order) >= c.max) {
		old := c.order[0]
		if c.seen[old.key] == old.expires {
			delete(c.seen, old.key)
		}
		c.order = c.order[1:]
	}
	if exp, ok := c.seen[id.key]; ok && now.Before(exp) {
		return false
	}
	c.seen[id.key] = id.expires
	c.order = append(c.order, id)
	return true
}

// errDPoPChallenge marks an error answered with a DPoP challenge (RFC 9449 §7.1)
// rather than a Bearer one.
var errDPoPChallenge = errors.New("DPoP challenge")

// dpopChallenge marks err, an *oauth.Error of ErrInvalidToken, to be answered with a
// DPoP challenge; other errors (ErrUnavailable) are left as they are.
func dpopChallenge(err error) error {
	var e *oauth.Error
	if !errors.As(err, &e) || !errors.Is(err, ErrInvalidToken) {
		return err
	}
	c := *e
	c.Cause = errors.Join(e.Cause, errDPoPChallenge)
	return &c
}
