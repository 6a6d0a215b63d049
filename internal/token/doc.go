// Package token mints and verifies deputy's own JWTs: access tokens per RFC 9068
// (typ "at+jwt"), plain JWTs issued by token exchange (typ "JWT"), transaction
// tokens (typ "txntoken+jwt", draft-ietf-oauth-transaction-tokens), and ID tokens
// (OpenID Connect Core §2), signed with the algorithm of the client they are for.
// It also keeps the in-memory list of revoked token ids that every verification
// consults.
//
// Signatures are made by internal/keys and checked by go-jose, against an
// explicit algorithm allow-list. It must not import net/http or database/sql.
package token
