package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/testdeputy"
	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/dpop"
)

// proofKey is a DPoP key of a test client.
type proofKey struct {
	signer crypto.Signer
	alg    jose.SignatureAlgorithm
	jkt    string
}

func newProofKey(t testing.TB) proofKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := dpop.Thumbprint(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return proofKey{signer: k, alg: jose.ES256, jkt: jkt}
}

// proof makes a proof with k for claims c (RFC 9449 §4.2).
func (k proofKey) proof(t testing.TB, c dpop.Claims) string {
	t.Helper()
	p, err := dpop.Sign(k.signer, k.alg, c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// proofWith signs claims c with an arbitrary header, for proofs dpop.Sign refuses to
// make.
func proofWith(t testing.TB, alg jose.SignatureAlgorithm, key any, opts *jose.SignerOptions, c dpop.Claims) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return sign(t, sig, c)
}

// memoryNonces is a NonceSource that accepts the nonces it handed out until
// expire forgets them.
type memoryNonces struct {
	mu     sync.Mutex
	issued map[string]bool
}

func (n *memoryNonces) Nonce() (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	id := randomID()
	n.issued[id] = true
	return id, nil
}

func (n *memoryNonces) Check(nonce string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.issued[nonce] {
		return errors.New("unknown or stale nonce")
	}
	return nil
}

func (n *memoryNonces) expire() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.issued)
}

// selfSigned returns a TLS client certificate and its x5t#S256 (RFC 8705 §3.1).
func selfSigned(t testing.TB, cn string) (*x509.Certificate, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return cert, base64.RawURLEncoding.EncodeToString(sum[:])
}

const ledgerURL = "https://api1.example/ledger"

// TestVerifyRequestBinding: a sender-constrained token is accepted only with the
// proof of its key for this very request — a DPoP proof (RFC 9449 §4.3, §7) or the
// TLS client certificate (RFC 8705 §3) — and each bad input is refused with the
// challenge RFC 9449 §7.1 pins; the handler never runs for a refused request.
func TestVerifyRequestBinding(t *testing.T) {
	d := testdeputy.Start(t, nil)
	now := time.Now()
	key, other := newProofKey(t), newProofKey(t)
	cert, x5t := selfSigned(t, "api1")
	otherCert, _ := selfSigned(t, "thief")

	bound := func(cnf map[string]any) string {
		return signAsDeputy(t, d, "at+jwt", with(claimsFor(d, now), "cnf", cnf), nil)
	}
	dpopToken := bound(map[string]any{"jkt": key.jkt})
	otherToken := bound(map[string]any{"jkt": key.jkt})
	certToken := bound(map[string]any{"x5t#S256": x5t})
	bearer := signAsDeputy(t, d, "at+jwt", claimsFor(d, now), nil)
	claims := func(edit func(*dpop.Claims)) dpop.Claims {
		c := dpop.Claims{JTI: randomID(), HTM: http.MethodGet, HTU: ledgerURL, IAT: now.Unix(), ATH: dpop.ATH(dpopToken)}
		if edit != nil {
			edit(&c)
		}
		return c
	}
	good := func() string { return key.proof(t, claims(nil)) }
	request := func(auth string, proofs ...string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, ledgerURL, nil) // over TLS, without a client certificate
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		for _, p := range proofs {
			r.Header.Add(dpop.Header, p)
		}
		return r
	}
	withTLS := func(r *http.Request, certs ...*x509.Certificate) *http.Request {
		r.TLS = &tls.ConnectionState{PeerCertificates: certs}
		return r
	}
	replayed := good()
	rsaless, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edJKT, _ := dpop.Thumbprint(edPriv.Public())
	edToken := bound(map[string]any{"jkt": edJKT})

	type config struct {
		requireBinding bool
		nonces         bool
		baseURL        string
	}
	const (
		invalidTok = `DPoP error="invalid_token"`
		badProof   = `DPoP error="invalid_dpop_proof"`
		nonceChal  = `DPoP error="use_dpop_nonce"`
	)
	for _, tt := range []struct {
		name    string
		config  config
		request func(n *memoryNonces) *http.Request
		// want: "" for success, else the start of the WWW-Authenticate challenge
		want string
		code string // the error in the body
		desc string // in error_description
		cnf  *oauth.Confirmation
		// twice: the request is made once before, and must succeed then
		twice bool
	}{
		{name: "ok/dpop", cnf: &oauth.Confirmation{JKT: key.jkt},
			request: func(*memoryNonces) *http.Request { return request("DPoP "+dpopToken, good()) }},
		{name: "ok/dpop-scheme-case", cnf: &oauth.Confirmation{JKT: key.jkt},
			request: func(*memoryNonces) *http.Request { return request("dpop "+dpopToken, good()) }},
		{name: "ok/dpop-eddsa", cnf: &oauth.Confirmation{JKT: edJKT},
			request: func(*memoryNonces) *http.Request {
				return request("DPoP "+edToken, proofWithSigner(t, edPriv, jose.EdDSA, claims(func(c *dpop.Claims) { c.ATH = dpop.ATH(edToken) })))
			}},
		{name: "ok/htu-query-and-fragment-ignored", cnf: &oauth.Confirmation{JKT: key.jkt},
			request: func(*memoryNonces) *http.Request {
				r := request("DPoP "+dpopToken, key.proof(t, claims(func(c *dpop.Claims) { c.HTU = ledgerURL + "?x=1#f" })))
				r.URL.RawQuery = "account=42"
				return r
			}},
		{name: "ok/base-url", config: config{baseURL: "https://gateway.example/bank/"}, cnf: &oauth.Confirmation{JKT: key.jkt},
			request: func(*memoryNonces) *http.Request {
				return request("DPoP "+dpopToken, key.proof(t, claims(func(c *dpop.Claims) { c.HTU = "https://gateway.example/bank/ledger" })))
			}},
		{name: "ok/nonce", config: config{nonces: true}, cnf: &oauth.Confirmation{JKT: key.jkt},
			request: func(n *memoryNonces) *http.Request {
				nonce, _ := n.Nonce()
				return request("DPoP "+dpopToken, key.proof(t, claims(func(c *dpop.Claims) { c.Nonce = nonce })))
			}},
		{name: "ok/certificate-bound", cnf: &oauth.Confirmation{X5TS256: x5t},
			request: func(*memoryNonces) *http.Request { return withTLS(request("Bearer "+certToken), cert) }},
		{name: "ok/bearer", request: func(*memoryNonces) *http.Request { return request("Bearer " + bearer) }},
		{name: "ok/bearer-ignores-dpop-header", request: func(*memoryNonces) *http.Request { return request("Bearer "+bearer, good()) }},

		{name: "fail/bound-token-as-bearer", want: invalidTok, code: "invalid_token", desc: "must be sent with Authorization: DPoP",
			request: func(*memoryNonces) *http.Request { return request("Bearer "+dpopToken, good()) }},
		{name: "fail/missing-proof", want: invalidTok, code: "invalid_token", desc: "without a DPoP proof",
			request: func(*memoryNonces) *http.Request { return request("DPoP " + dpopToken) }},
		{name: "fail/two-dpop-headers", want: badProof, code: "invalid_dpop_proof", desc: "more than one DPoP header",
			request: func(*memoryNonces) *http.Request { return request("DPoP "+dpopToken, good(), good()) }},
		{name: "fail/typ-jwt", want: badProof, code: "invalid_dpop_proof",
			request: func(*memoryNonces) *http.Request {
				return request("DPoP "+dpopToken, proofWith(t, jose.ES256, key.signer,
					(&jose.SignerOptions{EmbedJWK: true}).WithType("JWT"), claims(nil)))
			}},
		{name: "fail/alg-none", want: badProof, code: "invalid_dpop_proof",
			request: func(*memoryNonces) *http.Request {
				jwk := jose.JSONWebKey{Key: key.signer.Public()}
				payload, _ := json.Marshal(claims(nil))
				return request("DPoP "+dpopToken, compact(t, map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": jwk}, payload, nil))
			}},
		{name: "fail/alg-hs256", want: badProof, code: "invalid_dpop_proof",
			request: func(*memoryNonces) *http.Request {
				return request("DPoP "+dpopToken, proofWith(t, jose.HS256, []byte("0123456789abcdef0123456789abcdef"),
					(&jose.SignerOptions{}).WithType("dpop+jwt").WithHeader("jwk", jose.JSONWebKey{Key: key.signer.Public()}), claims(nil)))
			}},
		{name: "fail/alg-not-listed-es384", want: badProof, code: "invalid_dpop_proof",
			request: func(*memoryNonces) *http.Request {
				return request("DPoP "+dpopToken, proofWith(t, jose.ES384, rsaless,
					(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"), claims(nil)))
			}},
		{name: "fail/private-key-in-jwk", want: badProof, code: "invalid_dpop_proof",
			request: func(*memoryNonces) *http.Request {
				return request("DPoP "+dpopToken, proofWith(t, jose.ES256, key.signer,
					(&jose.SignerOptions{}).WithType("dpop+jwt").WithHeader("jwk", jose.JSONWebKey{Key: key.signer}), claims(nil)))
			}},
		{name: "fail/signed-by-another-key", want: badProof, code: "invalid_dpop_proof",
			request: func(*memoryNonces) *http.Request {
				return request("DPoP "+dpopToken, proofWith(t, jose.ES256, other.signer,
					(&jose.SignerOptions{}).WithType("dpop+jwt").WithHeader("jwk", jose.JSONWebKey{Key: key.signer.Public()}), claims(nil)))
			}},
		{name: "fail/proof-of-another-key", want: badProof, code: "invalid_dpop_proof", desc: "another key",
			request: func(*memoryNonces) *http.Request { return request("DPoP "+dpopToken, other.proof(t, claims(nil))) }},
		{name: "fail/htm-of-another-request", want: badProof, code: "invalid_dpop_proof",
			request: func(*memoryNonces) *http.Request {
				return request("DPoP "+dpopToken, key.proof(t, claims(func(c *dpop.Claims) { c.HTM = http.MethodPost })))
			}},
		{name: "fail/htu-of-another-request", want: badProof, code: "invalid_dpop_proof",
			request: func(*memoryNonces) *http.Request {
				return request("DPoP "+dpopToken, key.proof(t, claims(func(c *dpop.Claims) { c.HTU = "https://api1.example/payments" })))
			}},
		{name: "fail/htu-of-another-host", want: badProof, code: "invalid_dpop_proof",
			request: func(*memoryNonces) *http.Request {
				return request("DPoP "+dpopToken, key.proof(t, claims(func(c *dpop.Claims) { c.HTU = "https://api2.example/ledger" })))
			}},
		{name: "fail/htu-http-behind-base-url", config: config{baseURL: "https://gateway.example/bank"},
			want: badProof, code: "invalid_dpop_proof",
			request: func(*memoryNonces) *http.Request { return request("DPoP "+dpopToken, good()) }},
		{name: "fail/iat-too-old", want: badProof, code: "invalid_dpop_proof",
			request: func(*memoryNonces) *http.Request {
				return request("DPoP "+dpopToken, key.proof(t, claims(func(c *dpop.Claims) { c.IAT = now.Add(-2 * time.Minute).Unix() })))
			}},
		{name: "fail/iat-in-future", want: badProof, code: "invalid_dpop_proof",
			request: func(*memoryNonces) *http.Request {
				return request("DPoP "+dpopToken, key.proof(t, claims(func(c *dpop.Claims) { c.IAT = now.Add(time.Minute).Unix() })))
			}},
		{name: "fail/replayed-jti", twice: true, want: badProof, code: "invalid_dpop_proof", desc: "used before",
			request: func(*memoryNonces) *http.Request { return request("DPoP "+dpopToken, replayed) }},
		{name: "fail/ath-of-another-token", want: badProof, code: "invalid_dpop_proof",
			request: func(*memoryNonces) *http.Request { return request("DPoP "+otherToken, good()) }},
		{name: "fail/no-ath", want: badProof, code: "invalid_dpop_proof",
			request: func(*memoryNonces) *http.Request {
				return request("DPoP "+dpopToken, key.proof(t, claims(func(c *dpop.Claims) { c.ATH = "" })))
			}},
		{name: "fail/missing-nonce", config: config{nonces: true}, want: nonceChal, code: "use_dpop_nonce",
			request: func(*memoryNonces) *http.Request { return request("DPoP "+dpopToken, good()) }},
		{name: "fail/forged-nonce", config: config{nonces: true}, want: nonceChal, code: "use_dpop_nonce",
			request: func(*memoryNonces) *http.Request {
				return request("DPoP "+dpopToken, key.proof(t, claims(func(c *dpop.Claims) { c.Nonce = "forged" })))
			}},
		{name: "fail/stale-nonce", config: config{nonces: true}, want: nonceChal, code: "use_dpop_nonce",
			request: func(n *memoryNonces) *http.Request {
				nonce, _ := n.Nonce()
				n.expire()
				return request("DPoP "+dpopToken, key.proof(t, claims(func(c *dpop.Claims) { c.Nonce = nonce })))
			}},
		{name: "fail/dpop-scheme-unbound-token", want: invalidTok, code: "invalid_token", desc: "not DPoP-bound",
			request: func(*memoryNonces) *http.Request { return request("DPoP "+bearer, good()) }},
		{name: "fail/dpop-scheme-certificate-bound-token", want: invalidTok, code: "invalid_token", desc: "not DPoP-bound",
			request: func(*memoryNonces) *http.Request { return withTLS(request("DPoP "+certToken, good()), cert) }},
		{name: "fail/dpop-scheme-invalid-token", want: invalidTok, code: "invalid_token", desc: "signature is invalid",
			request: func(*memoryNonces) *http.Request { return request("DPoP "+dpopToken[:len(dpopToken)-4]+"AAAA", good()) }},
		{name: "fail/certificate-bound-over-plain-http", want: `Bearer error="invalid_token"`, code: "invalid_token", desc: "no TLS client certificate",
			request: func(*memoryNonces) *http.Request {
				r := request("Bearer " + certToken)
				r.TLS = nil
				return r
			}},
		{name: "fail/htu-https-over-plain-http", want: badProof, code: "invalid_dpop_proof",
			request: func(*memoryNonces) *http.Request {
				r := request("DPoP "+dpopToken, good())
				r.TLS = nil // http://api1.example/ledger: the proof names https
				return r
			}},
		{name: "fail/certificate-bound-tls-without-certificate", want: `Bearer error="invalid_token"`, code: "invalid_token", desc: "no TLS client certificate",
			request: func(*memoryNonces) *http.Request { return withTLS(request("Bearer " + certToken)) }},
		{name: "fail/certificate-bound-another-certificate", want: `Bearer error="invalid_token"`, code: "invalid_token", desc: "another TLS client certificate",
			request: func(*memoryNonces) *http.Request { return withTLS(request("Bearer "+certToken), otherCert) }},
		{name: "fail/require-binding-bearer", config: config{requireBinding: true}, want: invalidTok, code: "invalid_token", desc: "not sender-constrained",
			request: func(*memoryNonces) *http.Request { return request("Bearer " + bearer) }},
		{name: "fail/no-credentials-require-binding", config: config{requireBinding: true},
			want: `DPoP realm="https://api1.example", algs=`, code: "invalid_request",
			request: func(*memoryNonces) *http.Request { return request("") }},
		{name: "fail/cnf-unknown-key", want: `Bearer error="invalid_token"`, code: "invalid_token", desc: "claims are malformed",
			request: func(*memoryNonces) *http.Request {
				return request("Bearer " + bound(map[string]any{"jwk": map[string]any{"kty": "EC"}}))
			}},
		{name: "fail/cnf-two-keys", want: `Bearer error="invalid_token"`, code: "invalid_token", desc: "claims are malformed",
			request: func(*memoryNonces) *http.Request {
				return withTLS(request("Bearer "+bound(map[string]any{"jkt": key.jkt, "x5t#S256": x5t})), cert)
			}},
		{name: "fail/cnf-empty", want: `Bearer error="invalid_token"`, code: "invalid_token", desc: "claims are malformed",
			request: func(*memoryNonces) *http.Request { return request("Bearer " + bound(map[string]any{})) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nonces := &memoryNonces{issued: map[string]bool{}}
			v, _, _ := newVerifier(t, d, api1, func(c *Config) {
				c.RequireBinding, c.BaseURL = tt.config.requireBinding, tt.config.baseURL
				if tt.config.nonces {
					c.DPoPNonces = nonces
				}
			})
			var p *Principal
			handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				p, _ = FromContext(r.Context())
				fmt.Fprint(w, "ok")
			})
			if tt.twice {
				rec := httptest.NewRecorder()
				v.Middleware(handler).ServeHTTP(rec, tt.request(nonces))
				if rec.Code != http.StatusOK {
					t.Fatalf("first request: status %d, body %s", rec.Code, rec.Body)
				}
				p = nil
			}
			rec := httptest.NewRecorder()
			v.Middleware(handler).ServeHTTP(rec, tt.request(nonces))
			challenge := rec.Header().Get("WWW-Authenticate")
			if tt.want == "" {
				if rec.Code != http.StatusOK || p == nil {
					t.Fatalf("status %d, challenge %q, body %s; want 200", rec.Code, challenge, rec.Body)
				}
				if (p.Cnf == nil) != (tt.cnf == nil) || (p.Cnf != nil && *p.Cnf != *tt.cnf) {
					t.Errorf("Principal.Cnf %+v, want %+v", p.Cnf, tt.cnf)
				}
				return
			}
			if rec.Code != http.StatusUnauthorized {
				t.Fatalf("status %d, body %s; want 401", rec.Code, rec.Body)
			}
			if p != nil {
				t.Error("the handler ran for a refused request")
			}
			if !strings.HasPrefix(challenge, tt.want) {
				t.Errorf("WWW-Authenticate %q, want it to start with %q", challenge, tt.want)
			}
			if strings.HasPrefix(tt.want, "DPoP") && !strings.Contains(challenge, `algs="ES256 EdDSA RS256 PS256"`) {
				t.Errorf("WWW-Authenticate %q lacks algs", challenge)
			}
			nonce := rec.Header().Get(dpop.NonceHeader)
			if (tt.code == "use_dpop_nonce") != (nonce != "") {
				t.Errorf("DPoP-Nonce %q with error %s", nonce, tt.code)
			}
			if nonce != "" && nonces.Check(nonce) != nil {
				t.Errorf("DPoP-Nonce %q is not one the source accepts", nonce)
			}
			checkErrorBody(t, rec, tt.code, tt.desc)
		})
	}
}

// proofWithSigner makes a proof with any crypto.Signer.
func proofWithSigner(t testing.TB, s crypto.Signer, alg jose.SignatureAlgorithm, c dpop.Claims) string {
	t.Helper()
	p, err := dpop.Sign(s, alg, c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReplayCache: a proof is accepted once while remembered; an expired one is
// forgotten; the cache never holds more than its bound, dropping the oldest.
func TestReplayCache(t *testing.T) {
	now := time.Now()
	c := newReplayCache(2)
	id := func(k string, ttl time.Duration) proofID { return proofID{key: k, expires: now.Add(ttl)} }
	for _, step := range []struct {
		name string
		id   proofID
		at   time.Duration
		want bool
	}{
		{"ok/first", id("a", time.Minute), 0, true},
		{"fail/replay", id("a", time.Minute), time.Second, false},
		{"ok/second", id("b", 2*time.Minute), time.Second, true},
		{"fail/replay-of-second", id("b", 2*time.Minute), 2 * time.Second, false},
		{"ok/after-expiry", id("a", 3*time.Minute), time.Minute, true},
		{"ok/third-drops-oldest", id("c", 3*time.Minute), time.Minute, true},
	} {
		if got := c.add(step.id, now.Add(step.at)); got != step.want {
			t.Errorf("%s: add = %v, want %v", step.name, got, step.want)
		}
		if len(c.seen) > 2 || len(c.order) > 2 {
			t.Errorf("%s: %d entries, %d in order; bound 2", step.name, len(c.seen), len(c.order))
		}
	}
}

// FuzzParseConfirmation: any cnf claim either names exactly one key or is refused.
func FuzzParseConfirmation(f *testing.F) {
	for _, s := range []string{`{"jkt":"abc"}`, `{"x5t#S256":"abc"}`, `{"jkt":"a","x5t#S256":"b"}`, `{}`, `null`, `[]`, `{"jwk":{}}`, `{"jkt":""}`, `{"jkt":1}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseConfirmation(json.RawMessage(s))
		if (c == nil) == (err == nil) {
			t.Fatalf("parseConfirmation(%q) = %v, %v", s, c, err)
		}
		if c != nil && (c.JKT == "") == (c.X5TS256 == "") {
			t.Fatalf("parseConfirmation(%q) = %+v: not exactly one key", s, c)
		}
	})
}

// TestVerifyRequestDPoPUnavailable: a DPoP request while deputy's keys cannot be
// had is 503, as for Bearer — not a 401 that would send the client away.
func TestVerifyRequestDPoPUnavailable(t *testing.T) {
	d := testdeputy.Start(t, nil)
	key := newProofKey(t)
	raw := signAsDeputy(t, d, "at+jwt", with(claimsFor(d, time.Now()), "cnf", map[string]any{"jkt": key.jkt}), nil)
	v, _, _ := newVerifier(t, d, api1, func(c *Config) { c.JWKSURL = closedURL(t) + "/jwks" })
	r := httptest.NewRequest(http.MethodGet, ledgerURL, nil)
	r.Header.Set("Authorization", "DPoP "+raw)
	r.Header.Set(dpop.Header, key.proof(t, dpop.Claims{JTI: randomID(), HTM: "GET", HTU: ledgerURL, IAT: time.Now().Unix(), ATH: dpop.ATH(raw)}))
	rec := httptest.NewRecorder()
	v.Middleware(http.NotFoundHandler()).ServeHTTP(rec, r)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", rec.Code)
	}
	checkErrorBody(t, rec, "temporarily_unavailable", "")
}

// TestNonces: a nonce is accepted by any Nonces with the same key within its
// lifetime, and refused when stale, forged, from another key or malformed.
func TestNonces(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	clk := newClock()
	mk := func(key []byte) *Nonces {
		n, err := NewNonces(key, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		n.now = clk.Now
		return n
	}
	a, b, other := mk(key), mk(key), mk([]byte(strings.Repeat("o", 32)))
	nonce, err := a.Nonce()
	if err != nil {
		t.Fatal(err)
	}
	forged := []byte(nonce)
	forged[len(forged)-2] ^= 1
	for _, tt := range []struct {
		name    string
		src     *Nonces
		nonce   string
		advance time.Duration
		ok      bool
	}{
		{"ok/same-node", a, nonce, 0, true},
		{"ok/other-replica-same-key", b, nonce, 30 * time.Second, true},
		{"fail/stale", a, nonce, 31 * time.Second, false}, // 61 s after it was made
		{"fail/another-key", other, nonce, 0, false},
		{"fail/forged", a, string(forged), 0, false},
		{"fail/empty", a, "", 0, false},
		{"fail/garbage", a, "not-a-nonce", 0, false},
	} {
		clk.Add(tt.advance)
		if err := tt.src.Check(tt.nonce); (err == nil) != tt.ok {
			t.Errorf("%s: Check = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
	if _, err := NewNonces([]byte("short"), 0); err == nil {
		t.Error("NewNonces took a 5-byte key")
	}
}

// TestChallengesWithoutCredentials: a request without credentials is offered both
// schemes (RFC 6750 §3, RFC 9449 §7.1), Bearer first; with RequireBinding only DPoP.
func TestChallengesWithoutCredentials(t *testing.T) {
	d := testdeputy.Start(t, nil)
	for _, tt := range []struct {
		name    string
		require bool
		want    []string
	}{
		{"ok/both-schemes", false, []string{`Bearer realm="https://api1.example"`, `DPoP realm="https://api1.example", algs="ES256 EdDSA RS256 PS256"`}},
		{"ok/require-binding-dpop-only", true, []string{`DPoP realm="https://api1.example", algs="ES256 EdDSA RS256 PS256"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, _, _ := newVerifier(t, d, api1, func(c *Config) { c.RequireBinding = tt.require })
			rec := httptest.NewRecorder()
			v.Middleware(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, ledgerURL, nil))
			if got := rec.Header().Values("WWW-Authenticate"); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.want)
			}
		})
	}
}
