// Package client owns the registry of OAuth clients (built from configuration and
// held in memory) and client authentication at the token, introspection and
// revocation endpoints: client_secret_basic, client_secret_post, private_key_jwt
// (RFC 7523, with jti replay protection), tls_client_auth and
// self_signed_tls_client_auth (RFC 8705 §2, with the binding of tokens to the
// client certificate, §3) and public clients (none).
//
// Secrets are compared as SHA-256 digests in constant time; an argon2id secret_hash
// is checked with argon2 once, after which the digest of the accepted secret is kept
// in memory so no request pays for a slow hash twice. It must not import net/http.
package client
