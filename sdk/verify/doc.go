// Package verify checks the access tokens a service receives from deputy: RFC 9068
// JWT access tokens, signed with one of deputy's published keys, addressed to the
// service, within their lifetime, and — in introspection mode — still active at
// deputy (RFC 7662), so that a revoked token is refused at once.
//
// A [Verifier] owns deputy's key set for the service: it fetches the authorization
// server metadata (RFC 8414) and the JWKS on first use, caches the JWKS for the
// Cache-Control max-age it was served with (clamped to [1m, 24h]), refetches at most
// once per 30 seconds when a token names an unknown key, and fails closed with
// [ErrUnavailable] when no current key set can be had.
//
// [Verifier.Middleware] and [Verifier.Require] guard an http.Handler the RFC 6750
// way: only the Authorization header is read, failures answer 401, 403 or 503 with
// a WWW-Authenticate challenge and a JSON error body, and a verified request
// carries its [Principal] ([FromContext]) and raw token (sdk.TokenFromContext) on
// to the handler. The token itself is never logged or echoed.
//
// Sender-constrained tokens are accepted only with the proof of their key
// ([Verifier.VerifyRequest]): a DPoP-bound token (cnf.jkt) as "Authorization: DPoP"
// with a DPoP proof for this request (RFC 9449 §7, checked by sdk/dpop; each proof's
// jti once per process, optionally a server nonce), a certificate-bound token
// (cnf["x5t#S256"]) with that TLS client certificate (RFC 8705 §3).
// Config.RequireBinding refuses bearer tokens altogether.
//
// Transaction tokens (draft-ietf-oauth-transaction-tokens: typ txntoken+jwt,
// addressed to a trust domain, in the Txn-Token header) are checked by a
// [TxnVerifier] made from a Verifier ([Verifier.Txn]), with the same keys and
// algorithm allow-list; its middleware puts the [TxnPrincipal] ([TxnFromContext])
// and the raw token (sdk.TxnTokenFromContext) in the request's context. Each
// verifier refuses the other's tokens.
//
// Like every sdk package it imports only the standard library, deputy's oauth and
// sdk packages, and go-jose; a test enforces it.
package verify
