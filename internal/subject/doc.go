// Package subject verifies the tokens presented to token exchange as subject or actor
// tokens and normalises each into one exchange.Principal, whatever its source:
// deputy's own JWTs (access_token, jwt, id_token), refresh tokens and transaction
// tokens (txn_token, subject tokens only, of the configured trust domain), trusted
// issuers' JWTs and SAML 2.0 assertions of configured IdPs.
//
// It must not import net/http or database/sql.
package subject
