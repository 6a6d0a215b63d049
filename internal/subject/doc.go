// Package subject verifies the tokens presented to token exchange as subject or actor
// tokens and normalises each into one exchange.Principal, whatever its source: for
// now deputy's own JWTs (types access_token and jwt); trusted issuers' JWTs, refresh
// tokens and SAML 2.0 assertions plug in here as further verifiers.
//
// It must not import net/http or database/sql.
package subject
