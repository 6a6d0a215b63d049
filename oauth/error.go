package oauth

import (
	"errors"
	"net/http"
)

// Code is an OAuth error code (RFC 6749 §5.2, RFC 8693 §2.2.2, RFC 8707 §2,
// RFC 7009 §2.2.1, RFC 9449 §12.2).
type Code string

// Error codes.
const (
	CodeInvalidRequest       Code = "invalid_request"
	CodeInvalidClient        Code = "invalid_client"
	CodeInvalidGrant         Code = "invalid_grant"
	CodeUnauthorizedClient   Code = "unauthorized_client"
	CodeUnsupportedGrantType Code = "unsupported_grant_type"
	CodeInvalidScope         Code = "invalid_scope"
	CodeInvalidTarget        Code = "invalid_target"
	CodeUnsupportedTokenType Code = "unsupported_token_type"
	CodeServerError          Code = "server_error"
	CodeTemporarilyUnavail   Code = "temporarily_unavailable"
	CodeAccessDenied         Code = "access_denied"
	// CodeInvalidDPoPProof and CodeUseDPoPNonce are RFC 9449 §12.2's.
	CodeInvalidDPoPProof Code = "invalid_dpop_proof"
	CodeUseDPoPNonce     Code = "use_dpop_nonce"
)

// Error is a protocol error. Code and Description are what the client reads; Cause is
// kept for logs and the audit trail and is never serialised.
type Error struct {
	Code        Code   `json:"error"`
	Description string `json:"error_description,omitempty"`
	// Cause is the internal reason, for logs and audit only.
	Cause error `json:"-"`
}

func (e *Error) Error() string {
	s := string(e.Code)
	if e.Description != "" {
		s += ": " + e.Description
	}
	if e.Cause != nil {
		s += " (" + e.Cause.Error() + ")"
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Status is the HTTP status this error is answered with: 401 for invalid_client
// (RFC 6749 §5.2), 500/503 for server errors, 400 otherwise.
func (e *Error) Status() int {
	switch e.Code {
	case CodeInvalidClient:
		return http.StatusUnauthorized
	case CodeServerError:
		return http.StatusInternalServerError
	case CodeTemporarilyUnavail:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

// Reason is the text an audit record gives for the error: the description, and the
// cause when there is one.
func (e *Error) Reason() string {
	r := e.Description
	if e.Cause != nil {
		if r != "" {
			r += ": "
		}
		r += e.Cause.Error()
	}
	return r
}

// AsError returns err as a protocol error; anything else becomes server_error with the
// original error as its cause.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeServerError, Description: "internal error", Cause: err}
}

func newError(c Code, desc string, cause error) *Error {
	return &Error{Code: c, Description: desc, Cause: cause}
}

// InvalidRequest: the request is missing, repeats or malforms a parameter, or a
// presented token is unacceptable (RFC 8693 §2.2.2).
func InvalidRequest(desc string, cause error) *Error {
	return newError(CodeInvalidRequest, desc, cause)
}

// InvalidClient: client authentication failed (RFC 6749 §5.2); answered with 401.
func InvalidClient(desc string, cause error) *Error {
	return newError(CodeInvalidClient, desc, cause)
}

// InvalidGrant: the grant (code, refresh token) is invalid, expired or revoked.
func InvalidGrant(desc string, cause error) *Error { return newError(CodeInvalidGrant, desc, cause) }

// UnauthorizedClient: the client may not use this grant type.
func UnauthorizedClient(desc string, cause error) *Error {
	return newError(CodeUnauthorizedClient, desc, cause)
}

// UnsupportedGrantType: the grant type is not supported by the server.
func UnsupportedGrantType(desc string, cause error) *Error {
	return newError(CodeUnsupportedGrantType, desc, cause)
}

// InvalidScope: the requested scope is invalid, unknown, or beyond what may be granted.
func InvalidScope(desc string, cause error) *Error { return newError(CodeInvalidScope, desc, cause) }

// InvalidTarget: the requested audience or resource is unacceptable (RFC 8693 §2.2.2,
// RFC 8707 §2).
func InvalidTarget(desc string, cause error) *Error {
	return newError(CodeInvalidTarget, desc, cause)
}

// UnsupportedTokenType: revocation of this token type is not supported (RFC 7009 §2.2.1).
func UnsupportedTokenType(desc string, cause error) *Error {
	return newError(CodeUnsupportedTokenType, desc, cause)
}

// ServerError: an unexpected condition; the cause is logged, never shown.
func ServerError(cause error) *Error { return newError(CodeServerError, "internal error", cause) }

// TemporarilyUnavailable: the server cannot handle the request now (storage down).
func TemporarilyUnavailable(desc string, cause error) *Error {
	return newError(CodeTemporarilyUnavail, desc, cause)
}

// InvalidDPoPProof: the DPoP proof is missing where required, malformed, badly
// signed or not for this request (RFC 9449 §5, §12.2).
func InvalidDPoPProof(desc string, cause error) *Error {
	return newError(CodeInvalidDPoPProof, desc, cause)
}

// UseDPoPNonce: the DPoP proof must carry the nonce the server provides in the
// DPoP-Nonce header (RFC 9449 §8, §12.2).
func UseDPoPNonce(desc string, cause error) *Error {
	return newError(CodeUseDPoPNonce, desc, cause)
}
