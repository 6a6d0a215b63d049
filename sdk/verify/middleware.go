package verify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk"
	"github.com/deputy-auth/deputy/sdk/dpop"
	"github.com/deputy-auth/deputy/sdk/internal/traceprop"
)

type principalKey struct{}

// FromContext returns the Principal the middleware put in ctx.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}

// Middleware requires a valid token on every request — a Bearer token (RFC 6750
// §2.1), a certificate-bound one with its TLS client certificate (RFC 8705 §3) or a
// DPoP-bound one with its proof (RFC 9449 §7); see VerifyRequest — and passes the
// request on with the token's Principal (FromContext) and the raw token
// (sdk.TokenFromContext) in its context, and the caller's trace: the span
// context of a W3C traceparent header, unless the context has a span already
// (the service's own OpenTelemetry middleware ran first), so that the exchange
// client continues the trace. Failures are answered by the middleware
// with a JSON body {"error", "error_description"}:
//
//   - no usable Authorization header: 401, WWW-Authenticate: Bearer
//     realm="<Audience>" (left out with Config.RequireBinding) and DPoP
//     realm="<Audience>", algs="…", and error invalid_request (RFC 6750 §3.1 puts
//     no error code in the challenge of a request without credentials);
//   - an invalid token: 401, Bearer error="invalid_token", error_description="…";
//   - a DPoP-bound token without its proof or sent as Bearer, a DPoP token that is
//     not DPoP-bound, or an unbound token with Config.RequireBinding: 401, DPoP
//     error="invalid_token", error_description="…", algs="…" (RFC 9449 §7.1);
//   - a bad DPoP proof: 401, DPoP error="invalid_dpop_proof";
//   - a proof without the required nonce: 401, DPoP error="use_dpop_nonce" and a
//     fresh nonce in the DPoP-Nonce header (RFC 9449 §9);
//   - deputy cannot be reached to check it: 503, error temporarily_unavailable.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return v.Require()(next)
}

// Require is Middleware that also requires every listed scope; a valid token that
// lacks one is answered 403 with WWW-Authenticate: Bearer error="insufficient_scope",
// scope="<the scopes required>".
func (v *Verifier) Require(scopes ...string) func(http.Handler) http.Handler {
	required := slices.Clone(scopes)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, raw, err := v.authenticate(r, required)
			if err != nil {
				v.writeError(w, err, required)
				return
			}
			// The handler's calls continue the caller's trace (W3C traceparent).
			ctx := context.WithValue(traceprop.Extract(r), principalKey{}, p)
			next.ServeHTTP(w, r.WithContext(sdk.ContextWithToken(ctx, raw)))
		})
	}
}

// authenticate verifies the token of r and the proof of its key (VerifyRequest)
// and checks the scopes.
func (v *Verifier) authenticate(r *http.Request, scopes []string) (*Principal, string, error) {
	p, raw, err := v.verifyRequest(r)
	if err != nil {
		return nil, "", err
	}
	for _, s := range scopes {
		if !p.HasScope(s) {
			return nil, "", insufficientScope("token lacks a required scope")
		}
	}
	return p, raw, nil
}

// writeError is the one place that turns an error into a response: it picks the
// status and the WWW-Authenticate challenge (RFC 6750 §3) and writes the error as
// JSON ({"error", "error_description"}). Only the code and the description are
// written, never the cause or the token.
func (v *Verifier) writeError(w http.ResponseWriter, err error, scopes []string) {
	e := oauth.AsError(err)
	h := w.Header()
	var status int
	var challenge string
	switch {
	case errors.Is(err, errNoCredentials):
		status, challenge = http.StatusUnauthorized, `Bearer realm="`+quotable(v.audience)+`"`
		if v.requireBinding {
			challenge = ""
		}
		h.Add("WWW-Authenticate", `DPoP realm="`+quotable(v.audience)+`", algs="`+dpopAlgs()+`"`)
	case errors.Is(err, errDPoPChallenge):
		// RFC 9449 §7.1: a DPoP-bound token, a DPoP request or a bad proof.
		status = http.StatusUnauthorized
		challenge = `DPoP error="` + string(e.Code) + `", error_description="` + quotable(e.Description) + `", algs="` + dpopAlgs() + `"`
		if errors.Is(err, ErrUseNonce) && v.nonces != nil {
			if n, nerr := v.nonces.Nonce(); nerr == nil {
				h.Set(dpop.NonceHeader, n)
			}
		}
	case errors.Is(err, ErrInsufficientScope):
		status = http.StatusForbidden
		challenge = `Bearer error="insufficient_scope", scope="` + quotable(strings.Join(scopes, " ")) + `"`
	case errors.Is(err, ErrInvalidToken):
		status = http.StatusUnauthorized
		challenge = `Bearer error="invalid_token", error_description="` + quotable(e.Description) + `"`
	case errors.Is(err, ErrUnavailable):
		status = http.StatusServiceUnavailable
	default:
		status = http.StatusInternalServerError
	}
	if challenge != "" {
		rest := h.Values("WWW-Authenticate")
		h.Set("WWW-Authenticate", challenge)
		for _, c := range rest {
			h.Add("WWW-Authenticate", c)
		}
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(e)
}

// dpopAlgs is the algs attribute of a DPoP challenge (RFC 9449 §7.1): the proof
// algorithms accepted.
func dpopAlgs() string {
	var names []string
	for _, a := range dpop.Algorithms() {
		names = append(names, string(a))
	}
	return strings.Join(names, " ")
}

// quotable keeps only the characters RFC 6750 §3 allows in a quoted attribute
// value (%x20-21 / %x23-5B / %x5D-7E): no quote, no backslash, no control.
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}
