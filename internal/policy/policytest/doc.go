// Package policytest is what `deputy policy explain` and `deputy policy test`
// share (README "Token exchange rules"): the policy test file format (Parse), the
// subject of an exchange described by its claims rather than by a token
// (Env.Principal), and one run of the server's own decision code,
// internal/exchange, over such a request (Env.Run). It decides nothing itself:
// an explanation or a test can never disagree with the server.
//
// Import rule: like internal/policy and internal/exchange it imports neither
// net/http nor database/sql; verifying a real token is the command's business.
package policytest
