// Package keys owns deputy's signing keys: generating them (ES256 by default, EdDSA,
// RS256 or PS256 by configuration), persisting them through store.Keys, rotating them
// so that a new key is published in the JWKS before it signs, and serving the current
// signer, the verification keys and the JWKS document from memory.
//
// It builds on go-jose; it never implements a signature itself. It must not import
// net/http or database/sql.
package keys
