// Package exchange is what a service uses to call the next service on behalf of the
// request it is serving: it trades the access token it received for one addressed to
// the next service, by OAuth 2.0 Token Exchange (RFC 8693 §2) at deputy's token
// endpoint, and sends the downstream request with the exchanged token.
//
// It owns the client side of one exchange (the request of RFC 8693 §2.1 with
// client_secret_basic authentication, RFC 6749 §2.3.1), a bounded cache of exchanged
// tokens with one exchange in flight per cache key, and an http.RoundTripper that
// takes the incoming token from the request's context (sdk.TokenFromContext) and adds
// "Authorization: Bearer" with the exchanged one (RFC 6750 §2.1).
//
// With Config.DPoPKey, exchanged tokens are sender-constrained (RFC 9449): the
// exchange request proves the key, deputy binds the token to it (cnf.jkt), and the
// transport sends it as "Authorization: DPoP" with a fresh proof (sdk/dpop) on every
// request, answering a nonce challenge of deputy or the service once. A token
// lifted from a log or a proxy between the services is then useless without the key.
//
// [ForwardTxn] sends the transaction token a request came with (sdk.TxnTokenFromContext)
// on, unchanged, in the Txn-Token header, to the hosts of the trust domain only.
//
// It imports only the standard library and deputy's oauth and sdk packages, so a
// service adds it without pulling in the server; a test enforces that.
package exchange
