package exchange

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk"
	"github.com/deputy-auth/deputy/sdk/dpop"
	"github.com/deputy-auth/deputy/sdk/internal/traceprop"
)

// ErrNoToken is returned by the Transport for a request whose context carries no
// incoming token (sdk.ContextWithToken); the request is not sent.
var ErrNoToken = errors.New("exchange: the request's context carries no incoming token (see sdk.ContextWithToken)")

// Transport returns an http.RoundTripper that sends each request with a token
// exchanged for audience and scopes (see Exchange) from the incoming token in the
// request's context (sdk.TokenFromContext), as "Authorization: Bearer" (RFC 6750
// §2.1) on a clone of the request; the caller's request is never changed, and an
// Authorization header it has is replaced on the clone.
//
// With Config.DPoPKey the exchanged token is DPoP-bound and goes as
// "Authorization: DPoP" with a DPoP header holding a fresh proof of the key for
// this request — htm its method, htu its URL without query and fragment, ath the
// token's hash (RFC 9449 §7.1). A 401 with a DPoP use_dpop_nonce challenge and a new
// DPoP-Nonce (§9) is answered by sending the request once more with that nonce when
// its body can be sent again (no body, or http.Request.GetBody set, as
// http.NewRequest sets for in-memory bodies); otherwise the 401 is returned.
//
// The request's trace goes with it: the W3C traceparent of its context's span
// (the caller's own, or the one sdk/verify's middleware read from the incoming
// request) is set on the clone unless the request has one already; so is it on
// the token request to deputy.
//
// A request without a token in its context fails with ErrNoToken, and a failed
// exchange with its error (an *oauth.Error for deputy's answers), without being sent.
// An exchanged token whose token_type is not Bearer (DPoP with Config.DPoPKey) is
// refused likewise.
//
// The token goes with every request the RoundTripper sends, so an http.Client using
// it should not follow redirects to other hosts; Client sees to that. base nil means
// http.DefaultTransport.
func (e *Exchanger) Transport(base http.RoundTripper, audience string, scopes ...string) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{e: e, base: base, audience: audience, scopes: slices.Clone(scopes)}
}

// Client returns an http.Client whose Transport is e.Transport(nil, audience,
// scopes...) and which refuses redirects to another scheme or host, where the
// exchanged token would follow. It has no timeout: deadlines come from the requests'
// contexts.
func (e *Exchanger) Client(audience string, scopes ...string) *http.Client {
	return &http.Client{
		Transport:     e.Transport(nil, audience, scopes...),
		CheckRedirect: sameOrigin,
	}
}

// sameOrigin is a CheckRedirect that follows at most 10 redirects (as the default
// does) and only within the first request's scheme and host.
func sameOrigin(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("exchange: stopped after 10 redirects")
	}
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || !strings.EqualFold(req.URL.Host, first.Host) {
		return fmt.Errorf("exchange: refusing to follow a redirect from %s://%s to %s://%s with an exchanged token",
			first.Scheme, first.Host, req.URL.Scheme, req.URL.Host)
	}
	return nil
}

type transport struct {
	e        *Exchanger
	base     http.RoundTripper
	audience string
	scopes   []string
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	fail := func(err error) (*http.Response, error) {
		// A RoundTripper closes the body, also on errors (http.RoundTripper).
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	raw, ok := sdk.TokenFromContext(req.Context())
	if !ok {
		return fail(ErrNoToken)
	}
	tok, err := t.e.Exchange(req.Context(), raw, t.audience, t.scopes...)
	if err != nil {
		return fail(fmt.Errorf("exchange: token for %s: %w", t.audience, err))
	}
	if t.e.dpop == nil {
		if !strings.EqualFold(tok.TokenType, oauth.TokenTypeBearer) {
			return fail(fmt.Errorf("exchange: token for %s has token_type %q, not Bearer", t.audience, tok.TokenType))
		}
		out := req.Clone(req.Context())
		out.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		traceprop.Inject(out.Context(), out.Header)
		return t.base.RoundTrip(out)
	}
	if !strings.EqualFold(tok.TokenType, oauth.TokenTypeDPoP) {
		return fail(fmt.Errorf("exchange: token for %s has token_type %q, not DPoP", t.audience, tok.TokenType))
	}
	resp, nonce, err := t.sendDPoP(req, req.Body, tok.AccessToken)
	if err != nil {
		return nil, err
	}
	if !t.e.rememberNonce(req.URL, resp.Header, nonce) || !nonceChallenge(resp) {
		return resp, nil
	}
	// RFC 9449 §9: the service wants a nonce; ask once more with it, if the body
	// can be sent again.
	var body io.ReadCloser
	if req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			return resp, nil
		}
		if body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	resp, _, err = t.sendDPoP(req, body, tok.AccessToken)
	if err == nil {
		t.e.rememberNonce(req.URL, resp.Header, "")
	}
	return resp, err
}

// sendDPoP sends a clone of req with body, the DPoP-bound token and a fresh proof
// for it (RFC 9449 §7.1), and returns the nonce the proof carried.
func (t *transport) sendDPoP(req *http.Request, body io.ReadCloser, token string) (*http.Response, string, error) {
	proof, nonce, err := t.e.proof(req.Method, req.URL, token)
	if err != nil {
		if body != nil {
			body.Close()
		}
		return nil, "", err
	}
	out := req.Clone(req.Context())
	out.Body = body
	out.Header.Set("Authorization", "DPoP "+token)
	out.Header.Set(dpop.Header, proof)
	traceprop.Inject(out.Context(), out.Header)
	resp, err := t.base.RoundTrip(out)
	return resp, nonce, err
}
