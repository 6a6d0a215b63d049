package verify

import (
	"errors"
	"fmt"

	"github.com/deputy-auth/deputy/oauth"
)

// Sentinel errors. Every error Verify, the middleware and Require produce is an
// *oauth.Error whose Code is what a client reads and whose Cause wraps exactly one
// of these, so errors.Is tells them apart and errors.As gives the description.
// (oauth.Error.Status does not know the RFC 6750 codes; the middleware picks the
// status itself: 401, 403 or 503.)
var (
	// ErrInvalidToken: the token is malformed, wrongly signed, not deputy's, not for
	// this service, expired, or (in introspection mode) revoked or inactive.
	ErrInvalidToken = errors.New("invalid token")
	// ErrInsufficientScope: the token is valid but lacks a scope the resource
	// requires (RFC 6750 §3.1).
	ErrInsufficientScope = errors.New("insufficient scope")
	// ErrUnavailable: the token cannot be checked now — deputy's metadata, keys or
	// introspection endpoint cannot be reached. Retrying later may succeed.
	ErrUnavailable = errors.New("token verification is unavailable")
	// ErrInvalidProof: the DPoP proof of a DPoP-bound token is malformed, badly
	// signed, by another key, for another request or token, too old, or replayed
	// (RFC 9449 §4.3, §7.1: invalid_dpop_proof).
	ErrInvalidProof = errors.New("invalid DPoP proof")
	// ErrUseNonce: the DPoP proof lacks a valid server nonce (RFC 9449 §9:
	// use_dpop_nonce); the answer carries a fresh one in DPoP-Nonce.
	ErrUseNonce = errors.New("DPoP nonce required")
)

// Error codes of RFC 6750 §3.1, carried in oauth.Error.Code.
const (
	CodeInvalidToken      oauth.Code = "invalid_token"
	CodeInsufficientScope oauth.Code = "insufficient_scope"
)

// errNoCredentials marks a request without a usable Authorization: Bearer header;
// RFC 6750 §3.1 answers it with a bare challenge and no error code.
var errNoCredentials = errors.New("no bearer token")

// The constructors below build a fresh error each time, so no shared value is ever
// mutated. desc is shown to the client and must not contain the token; cause is for
// logs only.

func invalidToken(desc string, cause error) error {
	return &oauth.Error{Code: CodeInvalidToken, Description: desc, Cause: withKind(ErrInvalidToken, cause)}
}

func invalidProof(desc string, cause error) error {
	return &oauth.Error{Code: oauth.CodeInvalidDPoPProof, Description: desc, Cause: errors.Join(withKind(ErrInvalidProof, cause), errDPoPChallenge)}
}

func useNonce(cause error) error {
	return &oauth.Error{Code: oauth.CodeUseDPoPNonce, Description: "DPoP proof must carry the nonce in DPoP-Nonce",
		Cause: errors.Join(withKind(ErrUseNonce, cause), errDPoPChallenge)}
}

func insufficientScope(desc string) error {
	return &oauth.Error{Code: CodeInsufficientScope, Description: desc, Cause: ErrInsufficientScope}
}

func unavailable(desc string, cause error) error {
	return &oauth.Error{Code: oauth.CodeTemporarilyUnavail, Description: desc, Cause: withKind(ErrUnavailable, cause)}
}

func noCredentials(desc string) error {
	return &oauth.Error{Code: oauth.CodeInvalidRequest, Description: desc, Cause: errNoCredentials}
}

func withKind(kind, cause error) error {
	if cause == nil {
		return kind
	}
	return fmt.Errorf("%w: %w", kind, cause)
}
