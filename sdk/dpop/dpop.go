package dpop

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"

	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/jwk"
)

// Type is the typ header of a DPoP proof (RFC 9449 §4.2).
const Type = "dpop+jwt"

// Header is the HTTP header that carries a proof (RFC 9449 §4.1); NonceHeader the
// one that carries a server's nonce (RFC 9449 §8).
const (
	Header      = "DPoP"
	NonceHeader = "DPoP-Nonce"
)

// Defaults of [Check]: the maximum age of a proof and the clock skew allowed for
// an iat in the future.
const (
	DefaultMaxAge = 60 * time.Second
	DefaultSkew   = 5 * time.Second
)

// maxProofLen bounds what is parsed: a proof with an RSA-4096 jwk is under 2 KiB.
const maxProofLen = 8 << 10

// Algorithms returns the signature algorithms a proof may use (RFC 9449 §4.2: an
// asymmetric algorithm; never none, never a MAC). Discovery advertises them as
// dpop_signing_alg_values_supported (RFC 9449 §5.1).
func Algorithms() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256, jose.PS256}
}

// Sentinel errors; every error [Check] returns is an [*Error] that wraps one.
var (
	// ErrInvalidProof: the proof is malformed, badly signed or not for this request
	// (RFC 9449 §12.2 invalid_dpop_proof).
	ErrInvalidProof = errors.New("invalid DPoP proof")
	// ErrUseNonce: the proof lacks the nonce the server requires, or carries a stale
	// or unknown one (RFC 9449 §8, §12.2 use_dpop_nonce).
	ErrUseNonce = errors.New("DPoP nonce required")
)

// Error is a refused proof: Err is [ErrInvalidProof] or [ErrUseNonce], Reason says
// which check failed (for logs and audit; it names no secret).
type Error struct {
	Err    error
	Reason string
}

func (e *Error) Error() string { return e.Err.Error() + ": " + e.Reason }

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }

// OAuth returns the protocol error a token endpoint answers with (RFC 9449 §5, §8).
func (e *Error) OAuth() *oauth.Error {
	if errors.Is(e.Err, ErrUseNonce) {
		return oauth.UseDPoPNonce("a DPoP nonce is required", e)
	}
	return oauth.InvalidDPoPProof("invalid DPoP proof: "+e.Reason, e)
}

func invalid(format string, args ...any) *Error {
	return &Error{Err: ErrInvalidProof, Reason: fmt.Sprintf(format, args...)}
}

// Request is what a proof must match and how it is judged.
type Request struct {
	// Method is the HTTP method of the request (htm).
	Method string
	// URL is the request's URI (htu); its query and fragment are ignored.
	URL string
	// AccessToken, when not empty, is the token presented with the proof: the
	// proof must carry ath = base64url(SHA-256(AccessToken)) (RFC 9449 §4.3 step 12).
	AccessToken string
	// Now is the time of the check; zero means time.Now().
	Now time.Time
	// MaxAge is how old iat may be; zero means DefaultMaxAge.
	MaxAge time.Duration
	// Skew is how far in the future iat may be; zero means DefaultSkew.
	Skew time.Duration
	// Nonce, when set, judges the proof's nonce claim ("" when absent); an error
	// refuses the proof with ErrUseNonce (RFC 9449 §8).
	Nonce func(nonce string) error
}

// Proof is a checked proof.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the proof's key (cnf.jkt).
	JKT string
	// JTI is the proof's unique identifier; the caller refuses one seen before
	// (RFC 9449 §11.1).
	JTI string
	// IssuedAt is the proof's iat.
	IssuedAt time.Time
	// Expires is when the proof stops being accepted: a jti may be forgotten then.
	Expires time.Time
	// Nonce is the proof's nonce claim, if any.
	Nonce string
	// Key is the proof's public key.
	Key jose.JSONWebKey
}

// Claims are the claims of a proof (RFC 9449 §4.2).
type Claims struct {
	JTI   string `json:"jti"`
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	IAT   int64  `json:"iat"`
	ATH   string `json:"ath,omitempty"`
	Nonce string `json:"nonce,omitempty"`
}

// Check parses proof and checks it against req as RFC 9449 §4.3 lists. The caller
// still has to refuse a JTI it has seen before, and compare JKT with the key a
// token or grant is bound to.
func Check(proof string, req Request) (*Proof, error) {
	if proof == "" {
		return nil, invalid("no proof")
	}
	if len(proof) > maxProofLen {
		return nil, invalid("proof of %d bytes", len(proof))
	}
	sig, err := jose.ParseSignedCompact(proof, Algorithms())
	if err != nil {
		return nil, invalid("not a signed JWT with an allowed alg: %v", err)
	}
	if len(sig.Signatures) != 1 {
		return nil, invalid("%d signatures", len(sig.Signatures))
	}
	h := sig.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, Type) {
		return nil, invalid("typ %q, want %s", typ, Type)
	}
	alg := jose.SignatureAlgorithm(h.Algorithm)
	if h.JSONWebKey == nil {
		return nil, invalid("no jwk header")
	}
	key := *h.JSONWebKey
	if !key.IsPublic() || !key.Valid() {
		return nil, invalid("jwk is not a valid public key")
	}
	if err := jwk.Fits(key, alg); err != nil {
		return nil, invalid("jwk: %v", err)
	}
	payload, err := sig.Verify(key.Key)
	if err != nil {
		return nil, invalid("signature does not verify with the jwk")
	}
	var c struct {
		JTI   *string      `json:"jti"`
		HTM   *string      `json:"htm"`
		HTU   *string      `json:"htu"`
		IAT   *json.Number `json:"iat"`
		ATH   *string      `json:"ath"`
		Nonce *string      `json:"nonce"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, invalid("claims: %v", err)
	}
	if c.JTI == nil || *c.JTI == "" || len(*c.JTI) > 256 {
		return nil, invalid("no jti")
	}
	if c.HTM == nil || *c.HTM != req.Method {
		return nil, invalid("htm is not %s", req.Method)
	}
	if c.HTU == nil {
		return nil, invalid("no htu")
	}
	want, err := NormalizeURL(req.URL)
	if err != nil {
		return nil, invalid("request URL: %v", err)
	}
	if got, err := NormalizeURL(*c.HTU); err != nil || got != want {
		return nil, invalid("htu is not %s", want)
	}
	if c.IAT == nil {
		return nil, invalid("no iat")
	}
	f, err := c.IAT.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1<<40 {
		return nil, invalid("iat is not a time")
	}
	iat := time.Unix(int64(f), 0)
	now, maxAge, skew := req.Now, req.MaxAge, req.Skew
	if now.IsZero() {
		now = time.Now()
	}
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	if skew <= 0 {
		skew = DefaultSkew
	}
	if iat.After(now.Add(skew)) {
		return nil, invalid("iat is in the future")
	}
	if now.Sub(iat) > maxAge+skew {
		return nil, invalid("iat is older than %s", maxAge)
	}
	if req.AccessToken != "" {
		if c.ATH == nil || *c.ATH != ATH(req.AccessToken) {
			return nil, invalid("ath does not match the access token")
		}
	}
	nonce := ""
	if c.Nonce != nil {
		nonce = *c.Nonce
	}
	if req.Nonce != nil {
		if err := req.Nonce(nonce); err != nil {
			return nil, &Error{Err: ErrUseNonce, Reason: err.Error()}
		}
	}
	jkt, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, invalid("jwk thumbprint: %v", err)
	}
	return &Proof{
		JKT:      base64.RawURLEncoding.EncodeToString(jkt),
		JTI:      *c.JTI,
		IssuedAt: iat,
		Expires:  iat.Add(maxAge + skew),
		Nonce:    nonce,
		Key:      key,
	}, nil
}

// NormalizeURL returns u without query and fragment, normalised as RFC 9449 §4.3
// asks (RFC 3986 §6.2.2 and §6.2.3): scheme and host in lower case, the default
// port dropped, an empty path as "/", percent-encodings in upper case and
// unreserved characters decoded. Only absolute http and https URIs are accepted.
func NormalizeURL(u string) (string, error) {
	p, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(p.Scheme)
	if (scheme != "https" && scheme != "http") || p.Host == "" || p.Opaque != "" {
		return "", fmt.Errorf("%q is not an absolute http(s) URI", u)
	}
	host, port := strings.ToLower(p.Hostname()), p.Port()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" && !(scheme == "https" && port == "443") && !(scheme == "http" && port == "80") {
		host += ":" + port
	}
	path := normalizePercent(p.EscapedPath())
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}

// normalizePercent upper-cases percent-encodings and decodes those of unreserved
// characters (RFC 3986 §6.2.2.1, §6.2.2.2).
func normalizePercent(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]) {
			c := unhex(s[i+1])<<4 | unhex(s[i+2])
			if unreserved(c) {
				b.WriteByte(c)
			} else {
				b.WriteString(strings.ToUpper(s[i : i+3]))
			}
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// ATH is the ath claim for an access token: base64url(SHA-256(token)) (RFC 9449 §4.2).
func ATH(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of a public key, base64url without
// padding: the value of cnf.jkt (RFC 9449 §6.1) and of dpop_jkt (RFC 9449 §10).
func Thumbprint(pub crypto.PublicKey) (string, error) {
	k := jose.JSONWebKey{Key: pub}
	if !k.IsPublic() {
		return "", errors.New("dpop: not a public key")
	}
	b, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// NewProof makes a proof for one request (RFC 9449 §4.2): a fresh jti, iat now,
// htm and htu as given (htu's query and fragment removed), the server's nonce when
// not empty, and ath when an access token is presented with it.
func NewProof(signer crypto.Signer, alg jose.SignatureAlgorithm, htm, htu, nonce, accessToken string) (string, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", err
	}
	if i := strings.IndexAny(htu, "?#"); i >= 0 {
		htu = htu[:i]
	}
	c := Claims{
		JTI:   base64.RawURLEncoding.EncodeToString(id[:]),
		HTM:   htm,
		HTU:   htu,
		IAT:   time.Now().Unix(),
		Nonce: nonce,
	}
	if accessToken != "" {
		c.ATH = ATH(accessToken)
	}
	return Sign(signer, alg, c)
}

// Sign signs claims as a proof with typ dpop+jwt and the signer's public key in
// the jwk header. alg must be one of [Algorithms].
func Sign(signer crypto.Signer, alg jose.SignatureAlgorithm, c Claims) (string, error) {
	allowed := false
	for _, a := range Algorithms() {
		allowed = allowed || a == alg
	}
	if !allowed {
		return "", fmt.Errorf("dpop: alg %s is not allowed", alg)
	}
	if err := jwk.Fits(jose.JSONWebKey{Key: signer.Public()}, alg); err != nil {
		return "", fmt.Errorf("dpop: %v", err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: cryptosigner.Opaque(signer)},
		(&jose.SignerOptions{EmbedJWK: true}).WithType(Type))
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	obj, err := s.Sign(payload)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}
