package keys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// signingKey signs compact JWS (RFC 7515 §7.1) with one key. ES256 and EdDSA
// keys sign the JWS Signing Input straight with crypto/ecdsa and
// crypto/ed25519, under a protected header encoded once per typ; other
// algorithms sign through go-jose.
type signingKey struct {
	key *Key
	// prefixes hold, per JWT typ header, BASE64URL(UTF8(JWS Protected Header))
	// followed by '.': the start of every JWS Signing Input (RFC 7515 §5.1).
	prefixes map[string][]byte
	ec       *ecdsa.PrivateKey      // ES256: P-256, SHA-256 (RFC 7518 §3.4)
	ed       ed25519.PrivateKey     // EdDSA: Ed25519 (RFC 8037 §3.1)
	signers  map[string]jose.Signer // by typ, for the other algorithms
}

// protectedHeader is the JWS Protected Header deputy signs with: the same
// members, in the same order, as go-jose writes for a signer of a key with a kid
// and a typ (RFC 7515 §4.1.1, §4.1.4, §4.1.9).
type protectedHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// newSigningKey prepares k to sign with every typ of types.
func newSigningKey(k *Key, types []string) (signingKey, error) {
	sk := signingKey{key: k}
	switch priv := k.Private.(type) {
	case *ecdsa.PrivateKey:
		if k.Algorithm == jose.ES256 && priv.Curve == elliptic.P256() {
			sk.ec = priv
		}
	case ed25519.PrivateKey:
		if k.Algorithm == jose.EdDSA && len(priv) == ed25519.PrivateKeySize {
			sk.ed = priv
		}
	}
	if sk.ec == nil && sk.ed == nil {
		sk.signers = make(map[string]jose.Signer, len(types))
		for _, typ := range types {
			sig, err := jose.NewSigner(jose.SigningKey{
				Algorithm: k.Algorithm,
				Key:       jose.JSONWebKey{Key: k.Private, KeyID: k.ID},
			}, (&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
			if err != nil {
				return signingKey{}, fmt.Errorf("keys: signer: %w", err)
			}
			sk.signers[typ] = sig
		}
		return sk, nil
	}
	sk.prefixes = make(map[string][]byte, len(types))
	for _, typ := range types {
		h, err := json.Marshal(protectedHeader{Alg: string(k.Algorithm), Kid: k.ID, Typ: typ})
		if err != nil {
			return signingKey{}, fmt.Errorf("keys: header: %w", err)
		}
		p := base64.RawURLEncoding.AppendEncode(nil, h)
		sk.prefixes[typ] = append(p, '.')
	}
	return sk, nil
}

// errNoSigner means the key has no signer for a typ.
var errNoSigner = errors.New("keys: no signer for typ")

// sign returns the compact serialisation of a JWS of payload with typ's header.
func (sk *signingKey) sign(typ string, payload []byte) (string, error) {
	if sk.signers != nil {
		sig := sk.signers[typ]
		if sig == nil {
			return "", fmt.Errorf("%w %q", errNoSigner, typ)
		}
		jws, err := sig.Sign(payload)
		if err != nil {
			return "", fmt.Errorf("keys: sign: %w", err)
		}
		return jws.CompactSerialize()
	}
	prefix, ok := sk.prefixes[typ]
	if !ok {
		return "", fmt.Errorf("%w %q", errNoSigner, typ)
	}
	// One buffer holds the JWS Signing Input, then the whole serialisation:
	// header '.' payload '.' signature, each BASE64URL (RFC 7515 §7.1). Both
	// signatures are 64 bytes.
	enc := base64.RawURLEncoding
	n := len(prefix) + enc.EncodedLen(len(payload))
	buf := make([]byte, n, n+1+enc.EncodedLen(signatureSize))
	copy(buf, prefix)
	enc.Encode(buf[len(prefix):], payload)
	var sig [signatureSize]byte
	if sk.ec != nil {
		digest := sha256.Sum256(buf)
		der, err := ecdsa.SignASN1(rand.Reader, sk.ec, digest[:])
		if err != nil {
			return "", fmt.Errorf("keys: sign: %w", err)
		}
		if !fixedSignature(der, &sig) {
			return "", errors.New("keys: sign: ECDSA signature is not a DER sequence of two 256-bit integers")
		}
	} else {
		copy(sig[:], ed25519.Sign(sk.ed, buf))
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig[:])
	return string(buf), nil
}

// signatureSize is the size of an ES256 signature (RFC 7518 §3.4: R and S, 32
// octets each) and of an Ed25519 one (RFC 8032 §5.1.6).
const signatureSize = 64

// fixedSignature writes the ASN.1 DER ECDSA-Sig-Value der (SEQUENCE { r
// INTEGER, s INTEGER }, RFC 5480 §2.2, as crypto/ecdsa.SignASN1 makes it) into
// sig as JWS wants it: R and S as 32-octet big-endian unsigned integers, R
// first (RFC 7518 §3.4). It reports false for anything else.
func fixedSignature(der []byte, sig *[signatureSize]byte) bool {
	var seq, r, s cryptobyte.String
	input := cryptobyte.String(der)
	if !input.ReadASN1(&seq, asn1.SEQUENCE) || !input.Empty() ||
		!seq.ReadASN1(&r, asn1.INTEGER) || !seq.ReadASN1(&s, asn1.INTEGER) || !seq.Empty() {
		return false
	}
	return fixedInteger(r, sig[:signatureSize/2]) && fixedInteger(s, sig[signatureSize/2:])
}

// fixedInteger writes the content octets of a positive DER INTEGER into dst,
// big-endian and left-padded with zeros.
func fixedInteger(v []byte, dst []byte) bool {
	if len(v) == 0 || v[0]&0x80 != 0 {
		return false // empty or negative
	}
	for len(v) > 0 && v[0] == 0 {
		v = v[1:]
	}
	if len(v) > len(dst) {
		return false
	}
	clear(dst[:len(dst)-len(v)])
	copy(dst[len(dst)-len(v):], v)
	return true
}
