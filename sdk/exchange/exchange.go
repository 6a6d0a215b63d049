package exchange

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/dpop"
	"github.com/deputy-auth/deputy/sdk/internal/traceprop"
)

// Defaults of Config.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultRefreshBefore = 30 * time.Second
	DefaultMaxEntries    = 10000
)

// maxBody bounds what is read of a token endpoint or discovery answer.
const maxBody = 1 << 20

// wellKnown is the RFC 8414 §3 metadata path, appended to the issuer.
const wellKnown = "/.well-known/oauth-authorization-server"

// Config configures an Exchanger.
type Config struct {
	// Issuer is deputy's issuer URL. Unless TokenURL is set, the token endpoint is read
	// from Issuer+"/.well-known/oauth-authorization-server" (RFC 8414 §3) on the first
	// exchange, and the metadata's issuer must equal Issuer (RFC 8414 §3.3).
	Issuer string
	// TokenURL is deputy's token endpoint; when set, no discovery is made.
	TokenURL string
	// ClientID and ClientSecret are this service's client credentials, sent as
	// client_secret_basic: each form-urlencoded, then HTTP Basic (RFC 6749 §2.3.1).
	ClientID, ClientSecret string
	// HTTPClient sends the requests to deputy; default a client with a
	// DefaultTimeout timeout. An exchange shared by several callers runs for at most
	// its Timeout, or DefaultTimeout when it has none.
	HTTPClient *http.Client
	// RefreshBefore: a cached token is reused until this long before it expires;
	// default DefaultRefreshBefore. Negative values are refused.
	RefreshBefore time.Duration
	// MaxEntries bounds the number of cached tokens; default DefaultMaxEntries.
	// Negative values are refused.
	MaxEntries int
	// Now is the clock; default time.Now. For tests.
	Now func() time.Time
	// DPoPKey, when set, binds every exchanged token to this key (RFC 9449): each
	// token request carries a DPoP proof of it (§5), deputy answers with a token of
	// token_type DPoP whose cnf.jkt is the key's thumbprint (a Bearer answer is
	// refused), and the Transport sends that token as "Authorization: DPoP" with a
	// fresh proof for each request (§7). An ECDSA P-256 key signs ES256, an Ed25519
	// key EdDSA, an RSA key (2048 bits or more) PS256. A token endpoint or service
	// that asks for a nonce (use_dpop_nonce) is asked once more with it (§8, §9); the
	// last nonce of each origin is remembered.
	DPoPKey crypto.Signer
}

// Token is an exchanged token (RFC 8693 §2.2.1).
type Token struct {
	AccessToken     string
	IssuedTokenType string // a token type URI (RFC 8693 §3), e.g. oauth.TokenTypeAccessToken
	TokenType       string // "Bearer", "DPoP" or "N_A"
	Scope           string // the granted scopes, space-separated
	// ExpiresAt is when the request was sent plus expires_in; zero when deputy gave no
	// expires_in (such a token is not cached).
	ExpiresAt time.Time
}

// Exchanger exchanges incoming access tokens for tokens addressed to downstream
// services, and caches them. Its methods are safe for concurrent use.
type Exchanger struct {
	clientID, clientSecret string
	issuer                 string
	client                 *http.Client
	timeout                time.Duration // bound of one exchange shared by several callers
	now                    func() time.Time

	// discover is a one-slot semaphore that guards tokenURL and serialises discovery.
	discover chan struct{}
	tokenURL string

	mu            sync.Mutex
	cache         map[cacheKey]entry
	flights       map[cacheKey]*flight
	refreshBefore time.Duration
	maxEntries    int

	dpop   *dpopKey          // nil: bearer tokens
	nonces map[string]string // the last DPoP-Nonce of each origin; guarded by mu
}

// New returns an Exchanger for cfg. It makes no request; discovery, when needed,
// happens on the first exchange.
func New(cfg Config) (*Exchanger, error) {
	var errs []error
	for _, c := range []struct {
		bad bool
		msg string
	}{
		{cfg.ClientID == "", "ClientID is required"},
		{cfg.ClientSecret == "", "ClientSecret is required"},
		{cfg.Issuer == "" && cfg.TokenURL == "", "Issuer or TokenURL is required"},
		{cfg.Issuer != "" && !httpURL(cfg.Issuer), "Issuer must be an absolute http or https URL"},
		{cfg.TokenURL != "" && !httpURL(cfg.TokenURL), "TokenURL must be an absolute http or https URL"},
		{cfg.RefreshBefore < 0, "RefreshBefore must not be negative"},
		{cfg.MaxEntries < 0, "MaxEntries must not be negative"},
	} {
		if c.bad {
			errs = append(errs, errors.New("exchange: config: "+c.msg))
		}
	}
	var binding *dpopKey
	if cfg.DPoPKey != nil {
		k, err := newDPoPKey(cfg.DPoPKey)
		if err != nil {
			errs = append(errs, errors.New("exchange: config: DPoPKey: "+err.Error()))
		}
		binding = k
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	e := &Exchanger{
		dpop:          binding,
		nonces:        map[string]string{},
		clientID:      cfg.ClientID,
		clientSecret:  cfg.ClientSecret,
		issuer:        cfg.Issuer,
		tokenURL:      cfg.TokenURL,
		client:        cfg.HTTPClient,
		timeout:       DefaultTimeout,
		now:           cfg.Now,
		discover:      make(chan struct{}, 1),
		cache:         map[cacheKey]entry{},
		flights:       map[cacheKey]*flight{},
		refreshBefore: cfg.RefreshBefore,
		maxEntries:    cfg.MaxEntries,
	}
	if e.client == nil {
		e.client = &http.Client{Timeout: DefaultTimeout}
	} else if e.client.Timeout > 0 {
		e.timeout = e.client.Timeout
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.refreshBefore == 0 {
		e.refreshBefore = DefaultRefreshBefore
	}
	if e.maxEntries == 0 {
		e.maxEntries = DefaultMaxEntries
	}
	return e, nil
}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Fragment == ""
}

// Exchange trades subjectToken, an access token this service received, for a token
// addressed to audience with the given scopes (RFC 8693 §2.1: subject_token_type
// access_token, audience, scope). With no scopes deputy grants what its policy allows;
// an empty audience sends none, leaving the choice to deputy's policy.
//
// Results are cached per (SHA-256 of subjectToken, audience, sorted and deduplicated
// scopes, the thumbprint of Config.DPoPKey) and reused until RefreshBefore before the token expires; concurrent calls
// for one key share one request to deputy. A caller whose ctx ends stops waiting, but
// the shared request goes on (bounded by the HTTP client's timeout, else
// DefaultTimeout) for the others and the cache.
//
// Errors answered by deputy are *oauth.Error with the code and description of the
// response (RFC 6749 §5.2, RFC 8693 §2.2.2); transport failures and answers that are
// not OAuth JSON are other errors wrapping their cause. Errors are not cached.
//
// The returned Token is the caller's own copy.
func (e *Exchanger) Exchange(ctx context.Context, subjectToken, audience string, scopes ...string) (*Token, error) {
	if subjectToken == "" {
		return nil, errors.New("exchange: empty subject token")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	scope := normalizeScope(scopes)
	k := cacheKey{subject: sha256.Sum256([]byte(subjectToken)), audience: audience, scope: scope}
	if e.dpop != nil {
		k.binding = e.dpop.jkt
	}

	e.mu.Lock()
	if t, ok := e.lookup(k); ok {
		e.mu.Unlock()
		return t, nil
	}
	f, ok := e.flights[k]
	if !ok {
		f = &flight{done: make(chan struct{})}
		e.flights[k] = f
		// The request runs apart from this caller, so that its cancellation does not
		// fail the others waiting for the same key.
		go e.run(context.WithoutCancel(ctx), k, f, subjectToken, audience, scope)
	}
	e.mu.Unlock()

	select {
	case <-f.done:
		return f.result()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// normalizeScope returns the scopes as a scope parameter (RFC 6749 §3.3): split at
// spaces, sorted, without duplicates.
func normalizeScope(scopes []string) string {
	var all []string
	for _, s := range scopes {
		all = append(all, strings.Fields(s)...)
	}
	slices.Sort(all)
	return strings.Join(slices.Compact(all), " ")
}

// run makes the exchange of flight f, caches its result and wakes its waiters.
func (e *Exchanger) run(ctx context.Context, k cacheKey, f *flight, subjectToken, audience, scope string) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	tok, err := e.request(ctx, exchangeForm(subjectToken, audience, scope), true)

	e.mu.Lock()
	delete(e.flights, k)
	if err == nil {
		e.store(k, tok)
	}
	f.tok, f.err = tok, err
	e.mu.Unlock()
	close(f.done)
}

// exchangeForm is the token exchange request (RFC 8693 §2.1) of an access token
// this service received, for audience and scope ("" sends none).
func exchangeForm(subjectToken, audience, scope string) url.Values {
	form := url.Values{
		"grant_type":         {oauth.GrantTokenExchange},
		"subject_token":      {subjectToken},
		"subject_token_type": {string(oauth.TokenTypeAccessToken)},
	}
	if audience != "" {
		form.Set("audience", audience)
	}
	if scope != "" {
		form.Set("scope", scope)
	}
	return form
}

// request sends one token request of form to deputy's token endpoint and reads
// its answer. With a DPoP key, the request proves it; bound says the answer
// must then be a DPoP-bound token (an access token) rather than one no key can
// bind (a transaction token, token_type N_A).
func (e *Exchanger) request(ctx context.Context, form url.Values, bound bool) (*Token, error) {
	endpoint, err := e.tokenEndpoint(ctx)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
		if err != nil {
			return nil, fmt.Errorf("exchange: token request: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		req.SetBasicAuth(url.QueryEscape(e.clientID), url.QueryEscape(e.clientSecret))
		traceprop.Inject(ctx, req.Header) // deputy's spans join the caller's trace
		var nonce string
		if e.dpop != nil {
			// RFC 9449 §5: the proof of the key the token is to be bound to.
			var proof string
			proof, nonce, err = e.proof(http.MethodPost, req.URL, "")
			if err != nil {
				return nil, err
			}
			req.Header.Set(dpop.Header, proof)
		}

		sent := e.now()
		resp, err := e.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("exchange: token request: %w", err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("exchange: reading the token response: %w", err)
		}
		fresh := e.dpop != nil && e.rememberNonce(req.URL, resp.Header, nonce)
		tok, err := parseTokenResponse(resp.StatusCode, resp.Header.Get("Content-Type"), body, sent)
		var oe *oauth.Error
		if attempt == 0 && fresh && errors.As(err, &oe) && oe.Code == oauth.CodeUseDPoPNonce {
			continue // RFC 9449 §8: once more, with the nonce deputy gave
		}
		if err != nil {
			return nil, err
		}
		if bound && e.dpop != nil && !strings.EqualFold(tok.TokenType, oauth.TokenTypeDPoP) {
			return nil, fmt.Errorf("exchange: deputy answered a DPoP proof with token_type %q, not DPoP: the token is not bound", tok.TokenType)
		}
		return tok, nil
	}
}

// parseTokenResponse reads a token endpoint answer: a token on 200 (RFC 6749 §5.1,
// RFC 8693 §2.2.1), a protocol error otherwise (RFC 6749 §5.2). sent is when the
// request was sent, from which expires_in counts.
func parseTokenResponse(status int, contentType string, body []byte, sent time.Time) (*Token, error) {
	if status != http.StatusOK {
		var oe struct {
			Code        string `json:"error"`
			Description string `json:"error_description"`
		}
		if err := json.Unmarshal(body, &oe); err != nil {
			return nil, fmt.Errorf("exchange: token endpoint answered %d with %s: %w", status, describeType(contentType), err)
		}
		if oe.Code == "" {
			return nil, fmt.Errorf("exchange: token endpoint answered %d: %w", status, errors.New("no error code in the JSON body"))
		}
		return nil, &oauth.Error{Code: oauth.Code(oe.Code), Description: oe.Description}
	}
	var tr oauth.TokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, fmt.Errorf("exchange: token endpoint answered 200 with %s: %w", describeType(contentType), err)
	}
	if tr.AccessToken == "" || tr.TokenType == "" {
		return nil, errors.New("exchange: token response without access_token or token_type")
	}
	t := &Token{
		AccessToken:     tr.AccessToken,
		IssuedTokenType: string(tr.IssuedTokenType),
		TokenType:       tr.TokenType,
		Scope:           tr.Scope,
	}
	if tr.ExpiresIn > 0 {
		t.ExpiresAt = sent.Add(time.Duration(min(tr.ExpiresIn, maxExpiresIn)) * time.Second)
	}
	return t, nil
}

// maxExpiresIn keeps expires_in from overflowing a time.Duration (about 290 years).
const maxExpiresIn = 100 * 365 * 24 * 3600

func describeType(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt == "" {
		return "no usable Content-Type"
	}
	return mt
}

// tokenEndpoint returns the configured or discovered token endpoint. A failed
// discovery is not remembered: the next exchange tries again.
func (e *Exchanger) tokenEndpoint(ctx context.Context) (string, error) {
	select {
	case e.discover <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-e.discover }()
	if e.tokenURL != "" {
		return e.tokenURL, nil
	}
	u, err := e.discoverTokenEndpoint(ctx)
	if err != nil {
		return "", err
	}
	e.tokenURL = u
	return u, nil
}

// discoverTokenEndpoint reads the token_endpoint of the issuer's authorization server
// metadata (RFC 8414 §3), whose issuer must be the configured one (§3.3).
func (e *Exchanger) discoverTokenEndpoint(ctx context.Context) (string, error) {
	where := strings.TrimSuffix(e.issuer, "/") + wellKnown
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
	if err != nil {
		return "", fmt.Errorf("exchange: discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("exchange: discovery: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return "", fmt.Errorf("exchange: discovery: reading %s: %w", where, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("exchange: discovery: %s answered %s", where, resp.Status)
	}
	var md struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := json.Unmarshal(body, &md); err != nil {
		return "", fmt.Errorf("exchange: discovery: %s: %w", where, err)
	}
	if md.Issuer != e.issuer {
		return "", fmt.Errorf("exchange: discovery: %s names issuer %q, want %q", where, md.Issuer, e.issuer)
	}
	if !httpURL(md.TokenEndpoint) {
		return "", fmt.Errorf("exchange: discovery: %s has no usable token_endpoint (%q)", where, md.TokenEndpoint)
	}
	return md.TokenEndpoint, nil
}
