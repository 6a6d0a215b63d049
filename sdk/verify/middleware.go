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
)

type principalKey struct{}

// FromContext returns the Principal the middleware put in ctx.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}

// Middleware requires a valid Bearer token (RFC 6750 §2.1) on every request and
// passes the request on with the token's Principal (FromContext) and the raw token
// (sdk.TokenFromContext) in its context. Failures are answered by the middleware
// with a JSON body {"error", "error_description"}:
//
//   - no usable Authorization: Bearer header: 401, WWW-Authenticate: Bearer
//     realm="<Audience>" and error invalid_request (RFC 6750 §3.1 puts no error
//     code in the challenge of a request without credentials);
//   - an invalid token: 401, Bearer error="invalid_token", error_description="…";
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
			ctx := context.WithValue(r.Context(), principalKey{}, p)
			next.ServeHTTP(w, r.WithContext(sdk.ContextWithToken(ctx, raw)))
		})
	}
}

// authenticate reads the bearer token of r, verifies it and checks the scopes.
func (v *Verifier) authenticate(r *http.Request, scopes []string) (*Principal, string, error) {
	raw, err := bearerToken(r.Header)
	if err != nil {
		return nil, "", err
	}
	p, err := v.Verify(r.Context(), raw)
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

// bearerToken returns the token of the one Authorization header, whose scheme must
// be Bearer (case-insensitive, RFC 9110 §11.1). Tokens in the query or the form
// (RFC 6750 §2.2, §2.3) are not read.
func bearerToken(h http.Header) (string, error) {
	values := h.Values("Authorization")
	switch {
	case len(values) == 0:
		return "", noCredentials("missing bearer token")
	case len(values) > 1:
		return "", noCredentials("more than one Authorization header")
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", noCredentials("the Authorization header does not carry a bearer token")
	}
	token = strings.TrimLeft(token, " ")
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", noCredentials("the Authorization header does not carry a bearer token")
	}
	return token, nil
}

// writeError is the one place that turns an error into a response: it picks the
// status and the WWW-Authenticate challenge (RFC 6750 §3) and writes the error as
// JSON ({"error", "error_description"}). Only the code and the description are
// written, never the cause or the token.
func (v *Verifier) writeError(w http.ResponseWriter, err error, scopes []string) {
	e := oauth.AsError(err)
	var status int
	var challenge string
	switch {
	case errors.Is(err, errNoCredentials):
		status, challenge = http.StatusUnauthorized, `Bearer realm="`+quotable(v.audience)+`"`
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
	h := w.Header()
	if challenge != "" {
		h.Set("WWW-Authenticate", challenge)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(e)
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
