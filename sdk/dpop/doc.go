// Package dpop is DPoP (RFC 9449) for deputy's server and its Go SDK: checking a
// proof a client sent ([Check]), making one ([NewProof], [Sign]) and naming the
// key it proves ([Thumbprint], the RFC 7638 JWK SHA-256 thumbprint that a bound
// token carries as cnf.jkt, RFC 9449 §6.1).
//
// A proof is checked as RFC 9449 §4.3 lists: typ dpop+jwt; an asymmetric alg from
// [Algorithms] (never none, never HS*); a public jwk header whose key fits the alg
// (sdk/jwk.Fits) and verifies the signature; htm and htu of this request (htu
// without query and fragment, compared after RFC 3986 §6 normalisation); iat no
// older than the maximum age and not in the future beyond the skew; a jti; the
// nonce when the caller asks for one; ath when an access token is presented.
//
// What this package does not keep is state: whether a jti was seen before is the
// caller's question (deputy's store, the SDK's per-process cache), asked with
// [Proof.JTI] and [Proof.Expires].
//
// Imports: the standard library, go-jose and deputy's oauth package only, like the
// rest of the SDK.
package dpop
