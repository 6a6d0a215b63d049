// Package grant is the token endpoint's core. A grant type is a Grant hook; the
// Dispatcher owns the steps every grant shares — client authentication, the
// grant_types check, recording the audit event (durably, before the response
// leaves), and turning failures into recorded denials — so no grant can forget one.
// Denials of requests whose client did not authenticate are recorded in aggregate
// (denials.go). One file per grant type.
//
// Requests arrive parsed (form values and credentials), never as *http.Request.
package grant
