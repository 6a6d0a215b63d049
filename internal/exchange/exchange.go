package exchange

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/policy"
	"github.com/deputy-auth/deputy/oauth"
)

// Principal is a verified subject or actor token, normalised by the subject
// verifiers.
type Principal struct {
	TokenType oauth.TokenType // the declared type it was verified as
	Issuer    string          // "self" for deputy's own tokens, else the trusted_issuers / saml_idps name
	IssuerURL string          // the token's iss value (deputy's issuer URL for self)
	Subject   string
	Audiences []string
	Scopes    []string     // meaningful only for Issuer == "self"
	ClientID  string       // client the token was issued to (self only)
	Act       *oauth.Actor // act claim carried by the token, if any
	MayAct    *oauth.Actor // may_act claim, if any
	JTI       string
	ExpiresAt time.Time
	Claims    map[string]any // extra identity claims to carry through (auth_time, acr, amr, mapped claims); may be nil
	// Cnf is the key the token is bound to (RFC 7800 cnf: a DPoP key's jkt or a
	// client certificate's x5t#S256); nil for a bearer token.
	Cnf *oauth.Confirmation
	// Tctx is the tctx claim of a transaction token as signed, which its
	// replacement keeps byte for byte (Claims has it decoded, for conditions);
	// nil for other tokens.
	Tctx json.RawMessage
	// IDTokenClaims names, sorted, the claims of a trusted issuer's token that
	// only an ID token carries (nonce, at_hash, c_hash: OpenID Connect Core
	// §2, §3.1.3.6, §3.3.2.11); nil when it has none. An on-behalf-of
	// assertion with any is an ID token, and refused (Request.OnBehalfOf).
	IDTokenClaims []string
}

// Request is a token exchange request (RFC 8693 §2.1) after client authentication,
// parameter parsing and token verification.
type Request struct {
	ClientID      string // authenticated client
	Subject       Principal
	Actor         *Principal      // from actor_token, if given
	Audiences     []string        // audience parameters, as sent
	Resources     []string        // resource parameters, as sent
	Scopes        []string        // requested scope (split); nil or empty = none requested
	RequestedType oauth.TokenType // "" = access_token
	// Binding is the key the requesting client proved possession of with this
	// request (a DPoP proof's jkt, RFC 9449; or its TLS client certificate's
	// x5t#S256, RFC 8705); nil for a request that is not sender-constrained.
	Binding *oauth.Confirmation
	// OnBehalfOf says that Subject is the assertion of an on-behalf-of request
	// (RFC 7523 §2.1 with requested_token_use=on_behalf_of; README
	// "On-behalf-of (Microsoft Entra's flow)"). As Entra requires of it, the
	// assertion must then be an access token addressed to the client, whoever
	// issued it: its aud holds the client id or an audience whose client it
	// is — for a trusted issuer's token too, whose addressee RFC 8693 leaves
	// to trusted_issuers[].audiences — and it is no ID token (of deputy's, or
	// a trusted issuer's token with Principal.IDTokenClaims).
	OnBehalfOf bool
}

// Mode is how the issued token names the acting party (design §5).
type Mode string

// Modes.
const (
	// ModeDelegation: the issued token's act names the current actor and nests the
	// subject token's act inside it (RFC 8693 §4.1).
	ModeDelegation Mode = "delegation"
	// ModeImpersonation: no act is added; the subject token's act is kept.
	ModeImpersonation Mode = "impersonation"
)

// Decision is an allowed exchange: what the token to issue says and why it may be
// issued. Issuance applies it and the audit trail records the same value (style rule 4).
type Decision struct {
	Rule          string // name of the policy that decided
	Mode          Mode
	Subject       string
	SubjectIssuer string       // Principal.Issuer of the subject
	Actor         string       // who acts now (client id or actor token subject) — set in both modes
	Act           *oauth.Actor // the act claim of the token to issue (nil possible in impersonation)
	Audiences     []string     // in request order, de-duplicated
	Scopes        []string     // granted, sorted, de-duplicated; nil when none
	ExpiresAt     time.Time
	IssuedType    oauth.TokenType
	TokenType     string         // oauth.TokenTypeDPoP for a DPoP-bound access token, oauth.TokenTypeBearer for other access tokens, oauth.TokenTypeNA otherwise
	Claims        map[string]any // carried through from Subject.Claims, without the claims issuance sets itself
	ParentJTI     string         // Subject.JTI
	// RefreshExpiresAt is when a refresh token issued with this exchange would
	// expire: set only when the rule lists refresh_token among its
	// requested_token_types (design §5 "refresh_token only where the policy allows"),
	// and not where the token must stay bound and the request proved no DPoP key.
	// Such a refresh token is bound to Cnf.JKT, if any.
	RefreshExpiresAt time.Time
	// Txn is set when a transaction token replaces the one presented as subject
	// token: what the replacement keeps of it (txn, tctx, rctx). Nil otherwise,
	// a first transaction token included (issuance draws a fresh txn).
	Txn *Txn
	// Cnf is the key the issued token is bound to (RFC 7800 cnf): the key this
	// request proved (Request.Binding, a copy), never the subject token's — each
	// hop's token is bound to the party that holds it. Nil for a bearer token, for
	// an ID token, which carries no binding, and for a refresh token unless the
	// request proved a DPoP key.
	Cnf *oauth.Confirmation
}

// Denial is a refused exchange. It wraps the protocol error (errors.As to *oauth.Error
// works) and names the rule that had been selected, if any.
type Denial struct {
	Err  *oauth.Error
	Rule string
	// Policies says what each policy of the client made of the request (Explain),
	// for the audit record; nil for a client without policies.
	Policies []RuleResult

	// Scope is the requested scope refused (CheckScope), as requested; "" for
	// other refusals. The on-behalf-of grant names it as its request did
	// (<audience>/<scope>).
	Scope string

	check Check // the check that failed (for Explain and the on-behalf-of grant's error codes)
}

func (d *Denial) Error() string {
	if d.Rule == "" {
		return d.Err.Error()
	}
	return "policy " + d.Rule + ": " + d.Err.Error()
}

// Unwrap returns the protocol error.
func (d *Denial) Unwrap() error { return d.Err }

// Check is the check of Rule that refused the request (CheckCondition for a
// condition that cannot be evaluated). A refusal that concerns no rule has
// CheckBinding when the request proves no key, or not the key, that a
// sender-constrained subject or actor token is bound to, and "" otherwise.
func (d *Denial) Check() Check { return d.check }

// Options are the issuer facts Decide needs.
type Options struct {
	IssuerURL string // deputy's issuer (design §3 issuer); required
	// Lifetimes of issued tokens; zero takes config's defaults (DefaultAccessTokenTTL,
	// DefaultIDTokenTTL, DefaultRefreshTokenTTL).
	AccessTTL, IDTokenTTL, RefreshTTL time.Duration
	// TrustDomain is the aud of transaction tokens (txn_tokens.trust_domain);
	// "" refuses requests for them.
	TrustDomain string
	// TxnTTL is a transaction token's lifetime; zero takes
	// config.DefaultTxnTokenTTL.
	TxnTTL time.Duration
}

// Exchanger decides token exchanges. It is immutable after New and safe for
// concurrent use.
type Exchanger struct {
	rules     *policy.Set
	audiences map[string]*audience
	opts      Options
}

// audience is a configured target service.
type audience struct {
	client    string              // the client that is this service, if any
	scopes    []string            // config order
	scopeSet  map[string]struct{} // the same, for lookups
	configKey string
}

// New compiles the exchange policies against the configured audiences. It fails when
// a policy is invalid (see policy.Compile) or names an audience that is not
// configured.
func New(policies []config.Policy, audiences []config.Audience, opts Options) (*Exchanger, error) {
	if opts.IssuerURL == "" {
		return nil, errors.New("exchange: Options.IssuerURL is required")
	}
	for _, ttl := range []*time.Duration{&opts.AccessTTL, &opts.IDTokenTTL, &opts.RefreshTTL, &opts.TxnTTL} {
		if *ttl < 0 {
			return nil, fmt.Errorf("exchange: negative token lifetime %v", *ttl)
		}
	}
	if opts.AccessTTL == 0 {
		opts.AccessTTL = config.DefaultAccessTokenTTL
	}
	if opts.IDTokenTTL == 0 {
		opts.IDTokenTTL = config.DefaultIDTokenTTL
	}
	if opts.RefreshTTL == 0 {
		opts.RefreshTTL = config.DefaultRefreshTokenTTL
	}
	if opts.TxnTTL == 0 {
		opts.TxnTTL = config.DefaultTxnTokenTTL
	}

	x := &Exchanger{audiences: make(map[string]*audience, len(audiences)), opts: opts}
	for i, a := range audiences {
		key := fmt.Sprintf("audiences[%d]", i)
		if a.ID == "" {
			return nil, errors.New(key + ".id: required")
		}
		if prev, dup := x.audiences[a.ID]; dup {
			return nil, fmt.Errorf("%s.id: %q is already %s", key, a.ID, prev.configKey)
		}
		au := &audience{client: a.Client, scopes: a.Scopes, scopeSet: make(map[string]struct{}, len(a.Scopes)), configKey: key}
		for _, s := range a.Scopes {
			au.scopeSet[s] = struct{}{}
		}
		x.audiences[a.ID] = au
	}

	rules, err := policy.Compile(policies)
	if err != nil {
		return nil, err
	}
	for _, r := range rules.Rules() {
		if r.AllowsRequestedType(oauth.TokenTypeTxnToken) && opts.TrustDomain == "" {
			return nil, fmt.Errorf("exchange.policies[%d].requested_token_types: lists txn_token, and txn_tokens.trust_domain is not set", r.Index)
		}
		for j, a := range r.Audiences {
			if _, ok := x.audiences[a]; !ok {
				return nil, fmt.Errorf("exchange.policies[%d].audiences[%d]: %q is not a configured audience", r.Index, j, a)
			}
		}
	}
	x.rules = rules
	return x, nil
}

// Permits reports whether any policy names the client. When none does, the grant
// dispatcher answers unauthorized_client before looking at parameters (design §5 error
// step 2).
func (x *Exchanger) Permits(clientID string) bool { return len(x.rules.ForClient(clientID)) > 0 }
