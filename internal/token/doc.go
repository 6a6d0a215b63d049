// Package token mints and verifies deputy's own JWTs: access tokens per RFC 9068
// (typ "at+jwt") and plain JWTs issued by token exchange (typ "JWT"). It also keeps
// the in-memory list of revoked token ids that every verification consults.
//
// Signatures are made and checked by go-jose through internal/keys, against an
// explicit algorithm allow-list. It must not import net/http or database/sql.
package token
