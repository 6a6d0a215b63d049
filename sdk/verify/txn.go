package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk"
	"github.com/deputy-auth/deputy/sdk/internal/traceprop"
)

// Transaction tokens (draft-ietf-oauth-transaction-tokens) are deputy's JWTs of
// typ txntoken+jwt, addressed to a trust domain rather than to one service: every
// service of the domain receives the same token, unchanged, in the Txn-Token
// header, and reads from it who the transaction is for (sub), what it is for
// (scope), the caller's context (tctx) and the context of the request that started
// it (rctx). They are not access tokens: Verifier.Verify refuses them, and a
// TxnVerifier refuses access tokens.

// Defaults and limits of transaction token checks.
const (
	// DefaultTxnLeeway is TxnConfig.Leeway's default: transaction tokens live
	// about a minute, so the clock skew tolerated is small.
	DefaultTxnLeeway = 5 * time.Second
)

// txnTokenType is the typ of draft-ietf-oauth-transaction-tokens.
var txnTokenType = tokenType{typ: oauth.JWTTypeTxnToken, what: "a transaction token"}

// TxnConfig configures a TxnVerifier.
type TxnConfig struct {
	// TrustDomain is the trust domain deputy issues transaction tokens for, its
	// txn_tokens.trust_domain (required): a token's aud must be it.
	TrustDomain string
	// Optional makes the middleware pass requests without a Txn-Token header on
	// unchanged (TxnFromContext reports none); a header that is there is always
	// verified.
	Optional bool
	// Leeway is the clock skew tolerated on exp, nbf and iat; zero means
	// DefaultTxnLeeway. At most MaxLeeway.
	Leeway time.Duration
}

// TxnVerifier checks the transaction tokens of one trust domain. It shares its
// Verifier's issuer, key set (one JWKS cache for both kinds of token) and clock.
// Safe for concurrent use.
type TxnVerifier struct {
	v           *Verifier
	trustDomain string
	optional    bool
	leeway      time.Duration
}

// Txn returns a TxnVerifier of the transaction tokens deputy issues for
// cfg.TrustDomain, with v's issuer and keys.
func (v *Verifier) Txn(cfg TxnConfig) (*TxnVerifier, error) {
	checks := []struct {
		bad     bool
		message string
	}{
		{cfg.TrustDomain == "", "TrustDomain is required"},
		{cfg.Leeway < 0, "Leeway must not be negative"},
		{cfg.Leeway > MaxLeeway, fmt.Sprintf("Leeway must be at most %s", MaxLeeway)},
	}
	var errs []error
	for _, c := range checks {
		if c.bad {
			errs = append(errs, errors.New("verify: txn config: "+c.message))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	t := &TxnVerifier{v: v, trustDomain: cfg.TrustDomain, optional: cfg.Optional, leeway: cfg.Leeway}
	if t.leeway == 0 {
		t.leeway = DefaultTxnLeeway
	}
	return t, nil
}

// TxnPrincipal is what a verified transaction token says.
type TxnPrincipal struct {
	// Txn identifies the transaction: the same in every token of the call
	// graph, a replacement with narrower scope included.
	Txn string
	// Subject is the principal the transaction is for (sub).
	Subject string
	Issuer  string
	// Scopes are the transaction's purpose (scope).
	Scopes []string
	// Context is the transaction context (tctx): what the workload that asked
	// for the token said about the transaction; nil when the token has none.
	Context map[string]any
	// RequestContext is the context of the request that started the
	// transaction (rctx).
	RequestContext RequestContext
	IssuedAt       time.Time
	Expiry         time.Time
	JTI            string
	// Raw is the token itself, to forward unchanged (never to log).
	Raw string
}

// RequestContext is a transaction token's rctx claim
// (draft-ietf-oauth-transaction-tokens) as deputy writes it.
type RequestContext struct {
	// ReqIP is the IP address of the client that asked deputy for the token.
	ReqIP string `json:"req_ip,omitempty"`
	// Authn is how the subject authenticated: its acr, else its amr values
	// joined by a space; empty when deputy knows neither.
	Authn string `json:"authn,omitempty"`
	// RequestingWorkload is the client id of the workload that asked for the
	// token.
	RequestingWorkload string `json:"req_wl,omitempty"`
}

// HasScope reports whether the transaction's purpose includes scope s (exact,
// case-sensitive match).
func (p *TxnPrincipal) HasScope(s string) bool {
	return p != nil && slices.Contains(p.Scopes, s)
}

// Verify checks raw, a transaction token, and returns its TxnPrincipal. The
// checks, in order: size (MaxTokenBytes); compact JWS; header typ
// "txntoken+jwt" or "application/txntoken+jwt" (an access token, typ at+jwt, is
// refused); alg in the allow-list; no jku, jwk, x5u, x5c, crit or b64 header; a
// kid deputy publishes, whose key fits alg; the signature; iss equal to the
// Verifier's Issuer; aud the trust domain, a single string (an array is
// refused, even one holding it); exp in the future and iat (required)
// and nbf not in it, within TxnConfig.Leeway; a txn and a sub; tctx and rctx,
// when present, JSON objects.
//
// Verify checks no revocation: like deputy's introspection, which answers
// inactive for every transaction token, it cannot tell a revoked one, so a
// revoked subject's transaction token passes until its exp (deputy keeps
// txn_tokens.ttl at most 10 minutes).
//
// Errors are *oauth.Error values that wrap ErrInvalidToken or ErrUnavailable.
// Verify never returns both a TxnPrincipal and an error.
func (t *TxnVerifier) Verify(ctx context.Context, raw string) (*TxnPrincipal, error) {
	now := t.v.now()
	payload, err := t.v.verifySigned(ctx, raw, now, txnTokenType)
	if err != nil {
		return nil, err
	}
	c, err := parseTxnClaims(payload)
	if err != nil {
		return nil, invalidToken("transaction token claims are malformed", err)
	}
	if err := t.checkClaims(c, now); err != nil {
		return nil, err
	}
	return &TxnPrincipal{
		Txn: c.Txn, Subject: c.Subject, Issuer: c.Issuer, Scopes: strings.Fields(c.Scope),
		Context: c.Context, RequestContext: c.RequestContext,
		IssuedAt: c.IssuedAt.Time(), Expiry: c.Expiry.Time(), JTI: c.ID, Raw: raw,
	}, nil
}

// txnClaims are the claims of a transaction token
// (draft-ietf-oauth-transaction-tokens).
type txnClaims struct {
	Issuer         string
	Subject        string
	Audience       string // the one string aud; "" when absent or not a string
	AudienceArray  bool   // aud is there but no string (an array, say)
	Expiry         *jwt.NumericDate
	NotBefore      *jwt.NumericDate
	IssuedAt       *jwt.NumericDate
	ID             string
	Txn            string
	Scope          string
	Context        map[string]any
	RequestContext RequestContext
}

// parseTxnClaims decodes a payload, each claim under its exact name (as
// parseClaims does). tctx and rctx must be JSON objects when present.
func parseTxnClaims(payload []byte) (*txnClaims, error) {
	var params map[string]json.RawMessage
	if err := json.Unmarshal(payload, &params); err != nil {
		return nil, err
	}
	if params == nil {
		return nil, errors.New("payload is not a JSON object")
	}
	c := &txnClaims{}
	for name, dst := range map[string]any{
		"iss": &c.Issuer, "sub": &c.Subject, "exp": &c.Expiry, "nbf": &c.NotBefore,
		"iat": &c.IssuedAt, "jti": &c.ID, "txn": &c.Txn, "scope": &c.Scope,
	} {
		if p, ok := params[name]; ok {
			if err := json.Unmarshal(p, dst); err != nil {
				return nil, fmt.Errorf("claim %s: %v", name, err)
			}
		}
	}
	if p, ok := params["aud"]; ok {
		// A transaction token's aud is the trust domain, a single string
		// (README "Transaction tokens"), never an array.
		if err := json.Unmarshal(p, &c.Audience); err != nil {
			c.Audience, c.AudienceArray = "", true
		}
	}
	if p, ok := params["tctx"]; ok {
		if err := unmarshalObject(p, &c.Context); err != nil {
			return nil, fmt.Errorf("claim tctx: %v", err)
		}
	}
	if p, ok := params["rctx"]; ok {
		var rctx map[string]json.RawMessage
		if err := unmarshalObject(p, &rctx); err != nil {
			return nil, fmt.Errorf("claim rctx: %v", err)
		}
		for name, dst := range map[string]*string{
			"req_ip": &c.RequestContext.ReqIP, "authn": &c.RequestContext.Authn, "req_wl": &c.RequestContext.RequestingWorkload,
		} {
			if p, ok := rctx[name]; ok {
				if err := json.Unmarshal(p, dst); err != nil {
					return nil, fmt.Errorf("claim rctx.%s: %v", name, err)
				}
			}
		}
	}
	return c, nil
}

// unmarshalObject decodes b into dst, which must come out non-nil: b is a JSON
// object, not null nor any other value.
func unmarshalObject[M ~map[string]V, V any](b json.RawMessage, dst *M) error {
	if err := json.Unmarshal(b, dst); err != nil {
		return err
	}
	if *dst == nil {
		return errors.New("not a JSON object")
	}
	return nil
}

// checkClaims applies draft-ietf-oauth-transaction-tokens to the verified
// claims.
func (t *TxnVerifier) checkClaims(c *txnClaims, now time.Time) error {
	switch {
	case c.Issuer != t.v.issuer:
		return invalidToken("token is from another issuer", fmt.Errorf("iss %q, want %q", c.Issuer, t.v.issuer))
	case c.AudienceArray:
		return invalidToken("transaction token's aud is not a single string", fmt.Errorf("aud is no string, want %q", t.trustDomain))
	case c.Audience != t.trustDomain:
		return invalidToken("transaction token is for another trust domain",
			fmt.Errorf("aud %q, want %q", c.Audience, t.trustDomain))
	case c.Expiry == nil:
		return invalidToken("token has no expiry (exp)", nil)
	case !now.Before(c.Expiry.Time().Add(t.leeway)):
		return invalidToken("token is expired", fmt.Errorf("exp %s, now %s", c.Expiry.Time().UTC(), now.UTC()))
	case c.IssuedAt == nil:
		return invalidToken("token has no issue time (iat)", nil)
	case c.IssuedAt.Time().After(now.Add(t.leeway)):
		return invalidToken("token is issued in the future (iat)", fmt.Errorf("iat %s, now %s", c.IssuedAt.Time().UTC(), now.UTC()))
	case c.NotBefore != nil && c.NotBefore.Time().After(now.Add(t.leeway)):
		return invalidToken("token is not valid yet (nbf)", fmt.Errorf("nbf %s, now %s", c.NotBefore.Time().UTC(), now.UTC()))
	case c.Txn == "":
		return invalidToken("transaction token has no transaction id (txn)", nil)
	case c.Subject == "":
		return invalidToken("token has no subject (sub)", nil)
	}
	return nil
}

type txnPrincipalKey struct{}

// TxnFromContext returns the TxnPrincipal the TxnVerifier's middleware put in
// ctx; false for a request that had no Txn-Token (with TxnConfig.Optional).
func TxnFromContext(ctx context.Context) (*TxnPrincipal, bool) {
	p, ok := ctx.Value(txnPrincipalKey{}).(*TxnPrincipal)
	return p, ok && p != nil
}

// Middleware verifies the transaction token of every request, the one value of
// its Txn-Token header, and passes the request on with the token's TxnPrincipal
// (TxnFromContext) and the raw token (sdk.TxnTokenFromContext, which sdk/exchange's
// ForwardTxn sends on unchanged) in its context. A request without the header is
// passed on as it is with TxnConfig.Optional. It reads no Authorization header:
// chain it with the Verifier's Middleware or Require for the access token.
//
// Failures are answered by the middleware with a JSON body {"error",
// "error_description"} and, as RFC 6750 §3 does for access tokens, a
// WWW-Authenticate challenge naming the header (the draft defines no scheme of
// its own):
//
//   - no Txn-Token header (unless Optional), or more than one: 401,
//     WWW-Authenticate: Txn-Token realm="<TrustDomain>", error invalid_request;
//   - an invalid token: 401, Txn-Token error="invalid_token",
//     error_description="…";
//   - deputy cannot be reached to check it: 503, error temporarily_unavailable.
func (t *TxnVerifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		values := r.Header.Values(oauth.TxnTokenHeader)
		if len(values) == 0 && t.optional {
			next.ServeHTTP(w, r)
			return
		}
		p, err := t.verifyHeader(r.Context(), values)
		if err != nil {
			t.writeError(w, err)
			return
		}
		// As Middleware does: the handler's calls continue the caller's trace.
		ctx := context.WithValue(traceprop.Extract(r), txnPrincipalKey{}, p)
		next.ServeHTTP(w, r.WithContext(sdk.ContextWithTxnToken(ctx, p.Raw)))
	})
}

// verifyHeader verifies the one value of a Txn-Token header.
func (t *TxnVerifier) verifyHeader(ctx context.Context, values []string) (*TxnPrincipal, error) {
	switch len(values) {
	case 0:
		return nil, noCredentials("request has no " + oauth.TxnTokenHeader + " header")
	case 1:
		return t.Verify(ctx, strings.TrimSpace(values[0]))
	}
	return nil, noCredentials("request has more than one " + oauth.TxnTokenHeader + " header")
}

// writeError turns a Middleware error into its response: status, challenge and
// JSON body, never the cause or the token.
func (t *TxnVerifier) writeError(w http.ResponseWriter, err error) {
	e := oauth.AsError(err)
	h := w.Header()
	var status int
	switch {
	case errors.Is(err, errNoCredentials):
		status = http.StatusUnauthorized
		h.Set("WWW-Authenticate", oauth.TxnTokenHeader+` realm="`+quotable(t.trustDomain)+`"`)
	case errors.Is(err, ErrInvalidToken):
		status = http.StatusUnauthorized
		h.Set("WWW-Authenticate", oauth.TxnTokenHeader+` error="invalid_token", error_description="`+quotable(e.Description)+`"`)
	case errors.Is(err, ErrUnavailable):
		status = http.StatusServiceUnavailable
	default:
		status = http.StatusInternalServerError
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(e)
}
