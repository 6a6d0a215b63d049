// Package httpapi is deputy's only server-side net/http code: routes, decoding of
// requests into the plain structs the core takes, discovery documents, and the one
// place that renders errors (RFC 6749 §5.2 JSON, 401 with WWW-Authenticate for
// invalid_client, Cache-Control: no-store). It also serves CORS for the endpoints
// browsers call (cors.go) and the sign-in, consent and sign-out pages, each with a
// Content-Security-Policy that lets its forms reach only deputy and that page's
// client (web.go).
//
// Handlers return errors; writeError alone picks the status and body. The audit
// explorer (/audit/ui, auditui*.go) is the exception that proves it: its pages are
// for people, so its errors are pages, which its renderError alone writes. It
// reads the trail through the same parser (auditFilter), store query and trace
// (audit.Trace) as /audit/events and /audit/trace, over deputy's own sign-in
// sessions, for accounts with the auditor role; every view is an audit.viewed
// event before the page is sent.
//
// Every request gets one access-log line once it is answered (accesslog.go):
// ServeHTTP puts an access record in the request's context, handlers tell it what
// only they learn (grant type, client, OAuth error), and every value on the line
// is deputy's own or from a fixed set, so no token, secret or code reaches it.
//
// The client's address (remoteHost: throttling, the audit trail) is the
// connection's peer, or — only when the peer is in trusted_proxies — the client
// that proxy names in the one header it writes, X-Forwarded-For or Forwarded
// (trusted_proxy_header; proxy.go). Likewise the TLS client certificate (RFC 8705)
// is the connection's, or — only when the peer is in tls.trusted_proxies — the one
// that proxy forwards in tls.client_cert_header (mtls.go); it goes, unverified, into
// client.Credentials, whose package verifies it where it authenticates a client.
//
// DPoP proofs (RFC 9449) are checked here, at the edge (dpop.go): a token request's
// proof becomes grant.Request.Binding (or BindingErr, which the Dispatcher refuses
// once the client is authenticated); userinfo takes DPoP-bound tokens only with a
// proof of their key. Each jti is used once across nodes (the store's nonces);
// nonces deputy issues are sealed with its signing keys, so every node accepts them.
package httpapi
