package policytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/oauth"
)

// Subject describes a subject token by what its verifier would make of it: its
// claims (JSON), the subject_issuers name of its issuer ("" for self) and its
// token type's short name ("" for access_token, or saml2 for a SAML IdP).
type Subject struct {
	Claims json.RawMessage
	Issuer string
	Type   string
}

// Input is an exchange request as `deputy policy explain` and a test case state
// it: by the client's id, a subject by its claims (or already verified, in
// Verified), the actor token's subject, and the request's parameters as sent.
type Input struct {
	Client  string
	Subject Subject
	// Verified, when set, is the subject as verified from a real token; Subject
	// is then not read.
	Verified           *exchange.Principal
	Actor              string
	Audiences          []string
	Resources          []string
	Scope              string // space-separated
	RequestedTokenType string // short name; "" for access_token
	// Binding is the key the request proves possession of (a DPoP proof's jkt,
	// a client certificate's x5t#S256); nil for a request that is not
	// sender-constrained.
	Binding *oauth.Confirmation
}

// Env runs exchange requests against one configuration, with the exchanger the
// server builds from it.
type Env struct {
	cfg *config.Config
	x   *exchange.Exchanger
}

// NewEnv builds the exchanger of cfg as internal/server does (issuer and token
// lifetimes from cfg).
func NewEnv(cfg *config.Config) (*Env, error) {
	x, err := exchange.New(cfg.Exchange.Policies, cfg.Audiences, exchange.Options{
		IssuerURL: cfg.Issuer, AccessTTL: cfg.Tokens.AccessTokenTTL.D(),
		IDTokenTTL: cfg.Tokens.IDTokenTTL.D(), RefreshTTL: cfg.Tokens.RefreshTokenTTL.D(),
		TrustDomain: cfg.TxnTokens.TrustDomain, TxnTTL: cfg.TxnTokens.TTL.D(),
	})
	if err != nil {
		return nil, err
	}
	return &Env{cfg: cfg, x: x}, nil
}

// UsageError is an input that names something the configuration does not have,
// or claims that cannot be a token's: no request can be built from it.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

func usage(format string, args ...any) error { return &UsageError{fmt.Sprintf(format, args...)} }

// Request builds the exchange request of in at now. A client that is not
// configured, a subject issuer or type that is not known, or claims that are not
// a JSON object of a token's claims is a *UsageError.
func (e *Env) Request(in Input, now time.Time) (exchange.Request, error) {
	if e.cfg.Client(in.Client) == nil {
		return exchange.Request{}, usage("client %q is not configured (clients: %s)", in.Client, e.clientIDs())
	}
	req := exchange.Request{
		ClientID: in.Client, Audiences: in.Audiences, Resources: in.Resources,
		Scopes: strings.Fields(in.Scope), Binding: in.Binding,
	}
	if in.RequestedTokenType != "" {
		t, ok := oauth.TokenTypeFromShort(in.RequestedTokenType)
		if !ok {
			return exchange.Request{}, usage("requested token type %q is not one of access_token, jwt, id_token, refresh_token", in.RequestedTokenType)
		}
		req.RequestedType = t
	}
	if in.Verified != nil {
		req.Subject = *in.Verified
	} else {
		p, err := e.Principal(in.Client, in.Subject, now)
		if err != nil {
			return exchange.Request{}, err
		}
		req.Subject = p
	}
	if in.Actor != "" {
		req.Actor = &exchange.Principal{
			TokenType: oauth.TokenTypeAccessToken, Issuer: config.SubjectIssuerSelf, IssuerURL: e.cfg.Issuer,
			Subject: in.Actor, Audiences: []string{in.Client},
		}
	}
	return req, nil
}

func orEmpty(b []byte) []byte {
	if len(bytes.TrimSpace(b)) == 0 {
		return []byte("{}")
	}
	return b
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}

func (e *Env) trusted(name string) *config.TrustedIssuer {
	for i := range e.cfg.TrustedIssuers {
		if e.cfg.TrustedIssuers[i].Name == name {
			return &e.cfg.TrustedIssuers[i]
		}
	}
	return nil
}

func (e *Env) samlIdP(name string) *config.SAMLIdP {
	for i := range e.cfg.SAMLIdPs {
		if e.cfg.SAMLIdPs[i].Name == name {
			return &e.cfg.SAMLIdPs[i]
		}
	}
	return nil
}

func (e *Env) clientIDs() string {
	ids := make([]string, len(e.cfg.Clients))
	for i, c := range e.cfg.Clients {
		ids[i] = c.ID
	}
	return strings.Join(ids, ", ")
}

// Outcome is what the server's decision code made of a request.
type Outcome struct {
	Now      time.Time
	Allowed  bool
	Decision exchange.Decision // when Allowed
	// Err is the protocol error the client would get, when not Allowed; Rule
	// the policy the denial names, if any.
	Err  *oauth.Error
	Rule string
	// Policies is what each of the client's policies made of the request, in
	// config order (exchange.Explain); nil for a client without policies.
	Policies []exchange.RuleResult
}

// Reason is the cause of a denial, as the audit record has it.
func (o *Outcome) Reason() string {
	if o.Err == nil {
		return ""
	}
	if o.Err.Cause != nil {
		return o.Err.Cause.Error()
	}
	return o.Err.Description
}

// Run decides req at now with the server's own code: exchange.Decide, and for
// an allowed request exchange.Explain too (a denial carries it).
func (e *Env) Run(req exchange.Request, now time.Time) Outcome {
	o := Outcome{Now: now}
	d, err := e.x.Decide(req, now)
	if err == nil {
		o.Allowed, o.Decision = true, d
		o.Policies = e.x.Explain(req, now)
		return o
	}
	var den *exchange.Denial
	if errors.As(err, &den) {
		o.Rule, o.Policies = den.Rule, den.Policies
	}
	if !errors.As(err, &o.Err) {
		o.Err = oauth.ServerError(err)
	}
	return o
}

// Check compares an outcome with what the case expects: "" when it passes, else
// why not.
func (e Expect) Check(o Outcome) string {
	if e.Allow {
		if !o.Allowed {
			return fmt.Sprintf("want allowed, got %s: %s (%s)", o.Err.Code, o.Err.Description, o.Reason())
		}
		if e.Rule != "" && o.Decision.Rule != e.Rule {
			return fmt.Sprintf("want rule %s, got allowed by rule %s", e.Rule, o.Decision.Rule)
		}
		if e.Scopes != nil {
			want := slices.Sorted(slices.Values(e.Scopes))
			want = slices.Compact(want)
			got := o.Decision.Scopes
			if !slices.Equal(want, got) {
				return fmt.Sprintf("want scopes %q, got %q", strings.Join(want, " "), strings.Join(got, " "))
			}
		}
		return ""
	}
	if o.Allowed {
		return fmt.Sprintf("want %s, got allowed by rule %s (scopes %q)", e.Error, o.Decision.Rule, strings.Join(o.Decision.Scopes, " "))
	}
	if string(o.Err.Code) != e.Error {
		return fmt.Sprintf("want %s, got %s: %s (%s)", e.Error, o.Err.Code, o.Err.Description, o.Reason())
	}
	return ""
}
