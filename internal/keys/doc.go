// Package keys owns deputy's signing keys: generating them (ES256, EdDSA, RS256,
// PS256), one signing key per algorithm deputy signs with (access tokens: ES256 by
// default; ID tokens: RS256 and whatever clients choose), persisting them through
// store.Keys, rotating them so that a new key is published in the JWKS before it
// signs and a key any node may sign with stays published until retire_after past its
// successor's activation, and serving the current signers, the verification keys
// and the JWKS document from memory. With a key-encryption key (KEK) the private
// keys are stored encrypted with AES-256-GCM from the standard library.
//
// It never implements a signature itself: ES256 and EdDSA compact JWS (RFC 7515
// §7.1) are composed from crypto/ecdsa and crypto/ed25519 under a protected header
// encoded once per key and typ, RS256 and PS256 are signed by go-jose, and every
// verification is go-jose's. It must not import net/http or database/sql.
package keys
