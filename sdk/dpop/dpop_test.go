package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/oauth"
)

const htu = "https://deputy.example/token"

var now = time.Unix(1_800_000_000, 0)

type keys struct {
	p256, other *ecdsa.PrivateKey
	p384        *ecdsa.PrivateKey
	ed          ed25519.PrivateKey
	rsa         *rsa.PrivateKey
	rsa1024     *rsa.PrivateKey
}

func newKeys(t testing.TB) keys {
	t.Helper()
	var k keys
	var err error
	if k.p256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if k.other, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if k.p384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.rsa1024, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
		t.Fatal(err)
	}
	return k
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func jsonB64(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b64(b)
}

// compact builds a JWS by hand, so a test can make any header go-jose's signer
// would refuse; sign signs the signing input (nil: an empty signature).
func compact(t testing.TB, header, claims map[string]any, sign func([]byte) []byte) string {
	t.Helper()
	in := jsonB64(t, header) + "." + jsonB64(t, claims)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(in))
	}
	return in + "." + b64(sig)
}

func es256(k *ecdsa.PrivateKey) func([]byte) []byte {
	return func(in []byte) []byte {
		h := sha256.Sum256(in)
		r, s, err := ecdsa.Sign(rand.Reader, k, h[:])
		if err != nil {
			panic(err)
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	}
}

func publicJWK(t testing.TB, pub crypto.PublicKey) map[string]any {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: pub})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func claims(mod func(map[string]any)) map[string]any {
	c := map[string]any{"jti": "j-1", "htm": "POST", "htu": htu, "iat": now.Unix()}
	if mod != nil {
		mod(c)
	}
	return c
}

func TestCheck(t *testing.T) {
	k := newKeys(t)
	sign := func(signer crypto.Signer, alg jose.SignatureAlgorithm, c Claims) string {
		t.Helper()
		p, err := Sign(signer, alg, c)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := Claims{JTI: "j-1", HTM: "POST", HTU: htu, IAT: now.Unix()}
	with := func(mod func(*Claims)) Claims { c := good; mod(&c); return c }
	hdr := func(mod func(map[string]any)) map[string]any {
		h := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": publicJWK(t, &k.p256.PublicKey)}
		if mod != nil {
			mod(h)
		}
		return h
	}
	privJWK, _ := json.Marshal(jose.JSONWebKey{Key: k.p256})
	var priv map[string]any
	_ = json.Unmarshal(privJWK, &priv)
	hs256 := func(in []byte) []byte { m := hmac.New(sha256.New, []byte("secret")); m.Write(in); return m.Sum(nil) }
	nonceOK := func(n string) error {
		if n != "fresh" {
			return errors.New("stale or missing nonce")
		}
		return nil
	}
	req := Request{Method: "POST", URL: htu, Now: now}
	tests := []struct {
		name  string
		proof string
		req   func(*Request)
		want  error // nil: accepted
	}{
		{"ok/es256", sign(k.p256, jose.ES256, good), nil, nil},
		{"ok/eddsa", sign(k.ed, jose.EdDSA, good), nil, nil},
		{"ok/rs256", sign(k.rsa, jose.RS256, good), nil, nil},
		{"ok/ps256", sign(k.rsa, jose.PS256, good), nil, nil},
		{"ok/htu-query-and-fragment-ignored", sign(k.p256, jose.ES256, with(func(c *Claims) { c.HTU = htu + "?a=b#c" })), func(r *Request) { r.URL = htu + "?x=y" }, nil},
		{"ok/htu-normalised", sign(k.p256, jose.ES256, with(func(c *Claims) { c.HTU = "HTTPS://Deputy.EXAMPLE:443/%74oken" })), nil, nil},
		{"ok/iat-within-skew", sign(k.p256, jose.ES256, with(func(c *Claims) { c.IAT = now.Unix() + 4 })), nil, nil},
		{"ok/iat-max-age", sign(k.p256, jose.ES256, with(func(c *Claims) { c.IAT = now.Unix() - 60 })), nil, nil},
		{"ok/ath", sign(k.p256, jose.ES256, with(func(c *Claims) { c.ATH = ATH("the-token") })), func(r *Request) { r.AccessToken = "the-token" }, nil},
		{"ok/nonce", sign(k.p256, jose.ES256, with(func(c *Claims) { c.Nonce = "fresh" })), func(r *Request) { r.Nonce = nonceOK }, nil},

		{"fail/empty", "", nil, ErrInvalidProof},
		{"fail/not-a-jwt", "a.b.c", nil, ErrInvalidProof},
		{"fail/typ-jwt", compact(t, hdr(func(h map[string]any) { h["typ"] = "JWT" }), claims(nil), es256(k.p256)), nil, ErrInvalidProof},
		{"fail/typ-missing", compact(t, hdr(func(h map[string]any) { delete(h, "typ") }), claims(nil), es256(k.p256)), nil, ErrInvalidProof},
		{"fail/alg-none", compact(t, hdr(func(h map[string]any) { h["alg"] = "none" }), claims(nil), nil), nil, ErrInvalidProof},
		{"fail/alg-hs256", compact(t, hdr(func(h map[string]any) {
			h["alg"] = "HS256"
			h["jwk"] = map[string]any{"kty": "oct", "k": b64([]byte("secret"))}
		}), claims(nil), hs256), nil, ErrInvalidProof},
		{"fail/alg-es384-not-listed", compact(t, hdr(func(h map[string]any) { h["alg"] = "ES384"; h["jwk"] = publicJWK(t, &k.p384.PublicKey) }), claims(nil), es256(k.p256)), nil, ErrInvalidProof},
		{"fail/alg-does-not-fit-key", compact(t, hdr(func(h map[string]any) { h["alg"] = "RS256" }), claims(nil), es256(k.p256)), nil, ErrInvalidProof},
		{"fail/rsa-1024", compact(t, hdr(func(h map[string]any) { h["alg"] = "RS256"; h["jwk"] = publicJWK(t, &k.rsa1024.PublicKey) }), claims(nil), es256(k.p256)), nil, ErrInvalidProof},
		{"fail/private-key-in-jwk", compact(t, hdr(func(h map[string]any) { h["jwk"] = priv }), claims(nil), es256(k.p256)), nil, ErrInvalidProof},
		{"fail/no-jwk", compact(t, hdr(func(h map[string]any) { delete(h, "jwk") }), claims(nil), es256(k.p256)), nil, ErrInvalidProof},
		{"fail/signed-by-another-key", compact(t, hdr(nil), claims(nil), es256(k.other)), nil, ErrInvalidProof},
		{"fail/htm-of-another-request", sign(k.p256, jose.ES256, with(func(c *Claims) { c.HTM = "GET" })), nil, ErrInvalidProof},
		{"fail/htm-lower-case", sign(k.p256, jose.ES256, with(func(c *Claims) { c.HTM = "post" })), nil, ErrInvalidProof},
		{"fail/htu-of-another-request", sign(k.p256, jose.ES256, with(func(c *Claims) { c.HTU = "https://deputy.example/userinfo" })), nil, ErrInvalidProof},
		{"fail/htu-other-host", sign(k.p256, jose.ES256, with(func(c *Claims) { c.HTU = "https://evil.example/token" })), nil, ErrInvalidProof},
		{"fail/htu-other-port", sign(k.p256, jose.ES256, with(func(c *Claims) { c.HTU = "https://deputy.example:8443/token" })), nil, ErrInvalidProof},
		{"fail/htu-http", sign(k.p256, jose.ES256, with(func(c *Claims) { c.HTU = "http://deputy.example/token" })), nil, ErrInvalidProof},
		{"fail/htu-relative", sign(k.p256, jose.ES256, with(func(c *Claims) { c.HTU = "/token" })), nil, ErrInvalidProof},
		{"fail/iat-too-old", sign(k.p256, jose.ES256, with(func(c *Claims) { c.IAT = now.Unix() - 66 })), nil, ErrInvalidProof},
		{"fail/iat-in-the-future", sign(k.p256, jose.ES256, with(func(c *Claims) { c.IAT = now.Unix() + 6 })), nil, ErrInvalidProof},
		{"fail/iat-missing", compact(t, hdr(nil), claims(func(c map[string]any) { delete(c, "iat") }), es256(k.p256)), nil, ErrInvalidProof},
		{"fail/iat-string", compact(t, hdr(nil), claims(func(c map[string]any) { c["iat"] = "now" }), es256(k.p256)), nil, ErrInvalidProof},
		{"fail/jti-missing", sign(k.p256, jose.ES256, with(func(c *Claims) { c.JTI = "" })), nil, ErrInvalidProof},
		{"fail/ath-of-another-token", sign(k.p256, jose.ES256, with(func(c *Claims) { c.ATH = ATH("another-token") })), func(r *Request) { r.AccessToken = "the-token" }, ErrInvalidProof},
		{"fail/ath-missing", sign(k.p256, jose.ES256, good), func(r *Request) { r.AccessToken = "the-token" }, ErrInvalidProof},
		{"fail/nonce-missing", sign(k.p256, jose.ES256, good), func(r *Request) { r.Nonce = nonceOK }, ErrUseNonce},
		{"fail/nonce-stale", sign(k.p256, jose.ES256, with(func(c *Claims) { c.Nonce = "stale" })), func(r *Request) { r.Nonce = nonceOK }, ErrUseNonce},
		{"fail/bad-signature-before-nonce", compact(t, hdr(nil), claims(nil), es256(k.other)), func(r *Request) { r.Nonce = nonceOK }, ErrInvalidProof},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req
			if tt.req != nil {
				tt.req(&r)
			}
			p, err := Check(tt.proof, r)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				want, _ := Thumbprint(p.Key.Key)
				if p.JKT != want || p.JTI == "" || p.IssuedAt.IsZero() || !p.Expires.After(p.IssuedAt) {
					t.Errorf("proof = %+v", p)
				}
				return
			}
			if p != nil || !errors.Is(err, tt.want) {
				t.Fatalf("Check = %v, %v; want %v", p, err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%T is not a *dpop.Error", err)
			}
			t.Log(e.Reason)
			code := map[error]oauth.Code{ErrInvalidProof: oauth.CodeInvalidDPoPProof, ErrUseNonce: oauth.CodeUseDPoPNonce}[tt.want]
			if got := e.OAuth().Code; got != code {
				t.Errorf("OAuth code %s, want %s", got, code)
			}
		})
	}
}

func TestNewProof(t *testing.T) {
	k := newKeys(t)
	p, err := NewProof(k.ed, jose.EdDSA, "GET", "https://api.example/r?q=1#f", "n-1", "tok")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Check(p, Request{Method: "GET", URL: "https://api.example/r", AccessToken: "tok",
		Nonce: func(n string) error {
			if n != "n-1" {
				return errors.New("nonce")
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	want, err := Thumbprint(k.ed.Public())
	if err != nil || got.JKT != want {
		t.Errorf("jkt %s, want %s (%v)", got.JKT, want, err)
	}
	p2, _ := NewProof(k.ed, jose.EdDSA, "GET", "https://api.example/r", "", "")
	got2, err := Check(p2, Request{Method: "GET", URL: "https://api.example/r"})
	if err != nil || got2.JTI == got.JTI {
		t.Errorf("second proof: %v, jti %q twice", err, got.JTI)
	}
	if _, err := NewProof(k.p256, jose.HS256, "GET", "https://api.example/r", "", ""); err == nil {
		t.Error("NewProof with HS256: no error")
	}
	if _, err := NewProof(k.p256, jose.RS256, "GET", "https://api.example/r", "", ""); err == nil {
		t.Error("NewProof with an alg that does not fit the key: no error")
	}
}

// TestThumbprint: the RFC 7638 §3.1 example key has the thumbprint the RFC gives.
func TestThumbprint(t *testing.T) {
	var k jose.JSONWebKey
	const rfc7638 = `{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}`
	if err := k.UnmarshalJSON([]byte(rfc7638)); err != nil {
		t.Fatal(err)
	}
	got, err := Thumbprint(k.Key)
	if err != nil || got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Errorf("Thumbprint = %q, %v", got, err)
	}
	if _, err := Thumbprint([]byte("secret")); err == nil {
		t.Error("Thumbprint of a symmetric key: no error")
	}
}

func TestNormalizeURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://deputy.example/token", "https://deputy.example/token"},
		{"HTTPS://DEPUTY.example:443/token?x#y", "https://deputy.example/token"},
		{"http://deputy.example:80", "http://deputy.example/"},
		{"http://deputy.example:8080/a%2fb/%7e", "http://deputy.example:8080/a%2Fb/~"},
		{"https://[::1]:443/t", "https://[::1]/t"},
	}
	for _, tt := range tests {
		if got, err := NormalizeURL(tt.in); err != nil || got != tt.want {
			t.Errorf("NormalizeURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"/token", "ftp://x/y", "mailto:a@b", "https://", "%"} {
		if got, err := NormalizeURL(bad); err == nil {
			t.Errorf("NormalizeURL(%q) = %q, want an error", bad, got)
		}
	}
}

// FuzzCheck feeds arbitrary strings to Check: it never panics, returns exactly one
// of a Proof and an error, and every error is an *Error wrapping a sentinel.
func FuzzCheck(f *testing.F) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	good, err := Sign(k, jose.ES256, Claims{JTI: "j", HTM: "POST", HTU: htu, IAT: now.Unix()})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		good, good[:len(good)-2] + "AA", strings.Replace(good, ".", "..", 1),
		"", ".", "..", "a.b.c", "e30.e30.", "eyJhbGciOiJub25lIn0.e30.",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := Check(raw, Request{Method: "POST", URL: htu, Now: now})
		if (p == nil) == (err == nil) {
			t.Fatalf("Check = %v, %v: want exactly one", p, err)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || !(errors.Is(err, ErrInvalidProof) || errors.Is(err, ErrUseNonce)) {
				t.Fatalf("error %T %v is not a *dpop.Error", err, err)
			}
			return
		}
		if p.JKT == "" || p.JTI == "" {
			t.Fatalf("proof without jkt or jti: %+v", p)
		}
	})
}
