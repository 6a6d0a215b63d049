// Package authorize validates OAuth 2.0 / OpenID Connect authorization requests
// (RFC 6749 §4.1.1, OIDC Core §3.1.2.1) and checks PKCE (RFC 7636, S256 only): the
// pure part of the authorization endpoint. It decides which errors may be redirected
// to the client (RFC 6749 §4.1.2.1: only once the client and its redirect URI are
// known to be valid) and builds the redirect URIs of answers.
//
// It must not import net/http or database/sql.
package authorize
