// Package exchange is the core of RFC 8693 token exchange (design §5): given a request
// whose subject and actor tokens were already verified and normalised into Principals,
// it decides whether the exchange is allowed and, if so, what the issued token says —
// subject, actor chain (act), audiences, scopes, lifetime, token type and the policy
// rule that decided — as a Decision that issuance applies and audit records.
//
// It owns design §5 error steps 4–7 in their order (subject issuer and type, subject
// binding, a sender-constrained subject token's demand for a sender-constrained
// request, actor token, may_act, targets, then the deciding rule's require_may_act,
// max_chain and require_binding, scopes, requested token type): the first rule whose
// subject issuer and type and targets match decides, and no later rule stands in for
// it. It also owns the delegation and impersonation act semantics of RFC 8693 §4.1
// and §4.4, the lifetime cap, and which key the issued token is bound to (the
// request's, RFC 9449 §6 and RFC 8705 §3; never the subject token's). It decides
// requests for transaction tokens (draft-ietf-oauth-transaction-tokens, txn.go) in
// the same Decide and Explain: after the same subject checks, the target is the
// trust domain, the deciding rule the first that lists txn_token, and a
// transaction token presented as subject token is replaced keeping its txn.
// Refusals are *Denial values wrapping an *oauth.Error: a short
// client-facing description, and a detailed cause for the audit trail.
//
// It does not own token parsing or signature, expiry, revocation and declared-type
// checks (internal/subject), client authentication and parameter parsing
// (internal/grant), minting (internal/token) or recording (internal/audit). Rule
// compilation and explanations live in internal/policy.
//
// Import rule: exchange is pure. It imports the standard library, oauth,
// internal/config and internal/policy only, and never net/http or database/sql
// (design §8); TestImportRules enforces it over the transitive imports of both
// exchange and policy.
package exchange
