package exchange

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/sdk/dpop"
)

// maxOrigins bounds the remembered nonces; past it they are all forgotten (each
// origin then asks once more).
const maxOrigins = 1000

// dpopKey is Config.DPoPKey with the algorithm it signs proofs with and its RFC 7638
// thumbprint (the cnf.jkt of the tokens bound to it).
type dpopKey struct {
	signer crypto.Signer
	alg    jose.SignatureAlgorithm
	jkt    string
}

func newDPoPKey(s crypto.Signer) (*dpopKey, error) {
	var alg jose.SignatureAlgorithm
	switch pub := s.Public().(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, errors.New("an ECDSA key must be on P-256 (ES256)")
		}
		alg = jose.ES256
	case ed25519.PublicKey:
		alg = jose.EdDSA
	case *rsa.PublicKey:
		if pub.N.BitLen() < 2048 {
			return nil, errors.New("an RSA key must have at least 2048 bits")
		}
		alg = jose.PS256
	default:
		return nil, fmt.Errorf("a %T is not an ECDSA P-256, Ed25519 or RSA key", pub)
	}
	jkt, err := dpop.Thumbprint(s.Public())
	if err != nil {
		return nil, err
	}
	return &dpopKey{signer: s, alg: alg, jkt: jkt}, nil
}

// proof makes a DPoP proof for a request of method to u (RFC 9449 §4.2), with the
// nonce last given by u's origin and, when accessToken is set, its ath. It returns
// the nonce it used.
func (e *Exchanger) proof(method string, u *url.URL, accessToken string) (proof, nonce string, err error) {
	htu := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	nonce = e.nonce(u)
	p, err := dpop.NewProof(e.dpop.signer, e.dpop.alg, method, htu.String(), nonce, accessToken)
	if err != nil {
		return "", "", fmt.Errorf("exchange: DPoP proof: %w", err)
	}
	return p, nonce, nil
}

// origin is the scheme and host a nonce belongs to (RFC 9449 §8, §9: a nonce is
// the server's).
func origin(u *url.URL) string {
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

func (e *Exchanger) nonce(u *url.URL) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.nonces[origin(u)]
}

// rememberNonce keeps the DPoP-Nonce of a response from u's origin (RFC 9449 §8.2:
// a server may send a new one with any answer) and reports whether it differs from
// sent, the nonce the request carried: only then can a retry succeed.
func (e *Exchanger) rememberNonce(u *url.URL, h http.Header, sent string) bool {
	n := h.Get(dpop.NonceHeader)
	if n == "" {
		return false
	}
	o := origin(u)
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.nonces[o]; !ok && len(e.nonces) >= maxOrigins {
		clear(e.nonces)
	}
	e.nonces[o] = n
	return n != sent
}

// nonceChallenge reports whether resp is a resource server asking for a DPoP nonce:
// 401 with a DPoP challenge whose error is use_dpop_nonce (RFC 9449 §9).
func nonceChallenge(resp *http.Response) bool {
	if resp.StatusCode != http.StatusUnauthorized {
		return false
	}
	for _, c := range resp.Header.Values("WWW-Authenticate") {
		scheme, params, _ := strings.Cut(strings.TrimSpace(c), " ")
		if strings.EqualFold(scheme, "DPoP") && strings.Contains(params, `error="use_dpop_nonce"`) {
			return true
		}
	}
	return false
}
