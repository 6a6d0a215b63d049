// Package jwk is what deputy's server and its Go SDK share about JSON Web Keys
// (RFC 7517), so that both accept and refuse the same keys:
//
//   - [Fits], the one check of whether a public key may verify a token of an alg;
//   - [Parse], the one reading of a JWKS document into a [Set] of public signing keys.
//
// Fetching a key set over HTTP(S) is package jwkfetch's: this one imports no
// net/http, so that deputy's pure packages (client, authorize) may use it.
//
// The server uses it for trusted issuers' keys and private_key_jwt clients' keys;
// the SDK for deputy's own keys.
//
// Imports: the standard library and go-jose only, like the rest of the SDK.
package jwk

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// MinRSABits is the smallest RSA modulus accepted: RFC 7518 §3.3 and §3.5 require a
// key of 2048 bits or larger for RS* and PS*.
const MinRSABits = 2048

// Fits returns nil when a token signed with alg may be verified with k: the key's
// own alg, when it states one, is alg; the key's type (and curve) is the one alg
// uses; an RSA key has at least MinRSABits. It never lets a token choose how a key
// is used (RFC 8725 §3.1). Which algorithms are accepted at all is the caller's
// allow-list; Fits knows RS256…512, PS256…512, ES256/384/512 and EdDSA.
func Fits(k jose.JSONWebKey, alg jose.SignatureAlgorithm) error {
	if k.Algorithm != "" && k.Algorithm != string(alg) {
		return fmt.Errorf("token alg %s, key alg %s", alg, k.Algorithm)
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		default:
			return fmt.Errorf("token alg %s does not fit an RSA key", alg)
		}
		if n := pub.N.BitLen(); n < MinRSABits {
			return fmt.Errorf("RSA key of %d bits; at least %d are required (RFC 7518 §3.3)", n, MinRSABits)
		}
		return nil
	case *ecdsa.PublicKey:
		want := map[jose.SignatureAlgorithm]elliptic.Curve{jose.ES256: elliptic.P256(), jose.ES384: elliptic.P384(), jose.ES512: elliptic.P521()}[alg]
		if want == nil || pub.Curve != want {
			return fmt.Errorf("token alg %s does not fit an EC key on %s", alg, pub.Curve.Params().Name)
		}
		return nil
	case ed25519.PublicKey:
		if alg != jose.EdDSA {
			return fmt.Errorf("token alg %s does not fit an Ed25519 key", alg)
		}
		return nil
	}
	return fmt.Errorf("token alg %s does not fit a %T", alg, k.Key)
}
