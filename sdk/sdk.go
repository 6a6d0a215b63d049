// Package sdk holds what deputy's service packages share: the incoming access token
// carried in a request's context, from the verify middleware (sdk/verify) to the
// exchanging transport (sdk/exchange) and the call reporter (sdk/report), and the
// incoming transaction token, from the Txn-Token middleware (sdk/verify) to the
// transport that forwards it (sdk/exchange).
//
// The sdk packages import only deputy's oauth package, go-jose, the OpenTelemetry
// API (trace and propagation: verify reads a request's W3C traceparent, exchange
// sends it on, so one trace runs through every hop and deputy; without an
// OpenTelemetry SDK in the service the API records nothing) and the standard
// library, so a service adds them without pulling in the server.
package sdk

import "context"

type tokenKey struct{}

// ContextWithToken returns ctx carrying raw, the access token a service received.
func ContextWithToken(ctx context.Context, raw string) context.Context {
	return context.WithValue(ctx, tokenKey{}, raw)
}

// TokenFromContext returns the access token ContextWithToken put in ctx.
func TokenFromContext(ctx context.Context) (string, bool) {
	raw, ok := ctx.Value(tokenKey{}).(string)
	return raw, ok && raw != ""
}
