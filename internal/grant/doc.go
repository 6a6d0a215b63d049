// Package grant is the token endpoint's core. A grant type is a Grant hook; the
// Dispatcher owns the steps every grant shares — client authentication, the
// grant_types check, recording the audit event (durably, before the response
// leaves), and turning failures into recorded denials — so no grant can forget one.
// Denials of requests whose client did not authenticate are recorded in aggregate
// (denials.go). One file per grant type.
//
// Requests arrive parsed (form values and credentials), never as *http.Request,
// with the key the request proved (Binding: a DPoP proof's jkt, RFC 9449). The
// Dispatcher refuses a request whose proof the edge refused and one of a client
// with dpop_bound_access_tokens that proved none; grants bind what they issue to
// Binding (cnf), and a code or refresh token bound to a key is redeemed only with a
// proof of that key (binding.go). Each issuance event records the cnf of its own
// token in its Detail ("cnf", only when bound; an exchange also the subject
// token's, "subject_cnf"), so the audit trail shows every hop's binding.
//
// Token exchange also issues transaction tokens (txn.go, README "Transaction
// tokens"): the request_context parameter becomes their tctx, and their events
// record issued_token_type, txn, tctx and rctx in Detail; they are never bound.
package grant
