package policy

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/policy/condition"
	"github.com/deputy-auth/deputy/oauth"
)

// Mode says whether an exchange adds the acting party to the act chain (design §5,
// RFC 8693 §1.1).
type Mode string

// Modes of a policy.
const (
	// Delegation: the issued token's act names the current actor, and nests the
	// subject token's act inside it (RFC 8693 §4.1). The default.
	Delegation Mode = config.ModeDelegation
	// Impersonation: no act is added; an existing one is kept.
	Impersonation Mode = config.ModeImpersonation
)

// SelfIssuer is the subject_issuers name of deputy's own tokens.
const SelfIssuer = config.SubjectIssuerSelf

// DefaultMaxChain is the max_chain of a policy that sets none (0).
const DefaultMaxChain = config.DefaultMaxChain

// Defaults applied to a policy that leaves a list empty (design §3).
var (
	defaultSubjectIssuers = []string{SelfIssuer}
	defaultSubjectTypes   = []oauth.TokenType{oauth.TokenTypeAccessToken}
	defaultRequestedTypes = []oauth.TokenType{oauth.TokenTypeAccessToken}
)

// Token types a policy may accept as subject token (design §5) and may issue.
var (
	subjectTypes   = []oauth.TokenType{oauth.TokenTypeAccessToken, oauth.TokenTypeJWT, oauth.TokenTypeIDToken, oauth.TokenTypeRefreshToken, oauth.TokenTypeSAML2, oauth.TokenTypeTxnToken}
	requestedTypes = []oauth.TokenType{oauth.TokenTypeAccessToken, oauth.TokenTypeJWT, oauth.TokenTypeIDToken, oauth.TokenTypeRefreshToken, oauth.TokenTypeTxnToken}
)

// Rule is one compiled exchange policy, with its defaults applied. Rules are shared
// by concurrent exchanges: treat every field as read-only.
type Rule struct {
	Name                string               // policy name; "policies[i]" when the config gives none
	Index               int                  // position in exchange.policies
	Client              string               // the requesting client
	SubjectIssuers      []string             // "self" or trusted_issuers / saml_idps names
	SubjectTokenTypes   []oauth.TokenType    // accepted subject token types
	Audiences           []string             // targets the rule allows, in config order
	Scopes              []string             // upper bound of granted scopes; empty: no bound
	Mode                Mode                 // Delegation or Impersonation
	RequireMayAct       bool                 // the subject token must carry may_act
	MaxChain            int                  // longest act chain the issued token may carry
	RequestedTokenTypes []oauth.TokenType    // token types the rule may issue
	RequireBinding      bool                 // the rule issues only sender-constrained tokens
	Condition           *condition.Condition // must be true for the rule to match (design §12); nil: none

	audiences map[string]struct{}
	scopes    map[string]struct{} // nil: no bound
}

// Set is a compiled list of rules, indexed by client. It is immutable and safe for
// concurrent use.
type Set struct {
	rules    []*Rule
	byClient map[string][]*Rule
}

// Compile applies the policy defaults (subject_issuers [self], subject_token_types
// [access_token], mode delegation, max_chain 4, requested_token_types [access_token],
// name "policies[i]") and validates each policy. Errors name the key at fault, as in
// "exchange.policies[2].mode: unknown mode \"x\"".
func Compile(policies []config.Policy) (*Set, error) {
	s := &Set{rules: make([]*Rule, 0, len(policies)), byClient: make(map[string][]*Rule)}
	seen := make(map[string]int, len(policies))
	for i, p := range policies {
		r, err := compile(i, p)
		if err != nil {
			return nil, err
		}
		if j, dup := seen[r.Name]; dup {
			return nil, fmt.Errorf("exchange.policies[%d].name: %q is already the name of exchange.policies[%d]", i, r.Name, j)
		}
		seen[r.Name] = i
		s.rules = append(s.rules, r)
		s.byClient[r.Client] = append(s.byClient[r.Client], r)
	}
	return s, nil
}

func compile(i int, p config.Policy) (*Rule, error) {
	key := func(field string) string { return fmt.Sprintf("exchange.policies[%d].%s", i, field) }
	r := &Rule{
		Name:           p.Name,
		Index:          i,
		Client:         p.Client,
		Audiences:      slices.Clone(p.Audiences),
		Mode:           Mode(p.Mode),
		RequireMayAct:  p.RequireMayAct,
		MaxChain:       p.MaxChain,
		RequireBinding: p.RequireBinding,
	}
	if r.Name == "" {
		r.Name = fmt.Sprintf("policies[%d]", i)
	}
	if p.Condition != "" {
		c, err := condition.Compile(p.Condition)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key("condition"), err)
		}
		r.Condition = c
	}
	if r.Client == "" {
		return nil, errors.New(key("client") + ": required")
	}
	if r.Mode == "" {
		r.Mode = Delegation
	}
	if r.Mode != Delegation && r.Mode != Impersonation {
		return nil, fmt.Errorf("%s: unknown mode %q (delegation or impersonation)", key("mode"), p.Mode)
	}
	if r.MaxChain < 0 {
		return nil, fmt.Errorf("%s: %d is negative", key("max_chain"), r.MaxChain)
	}
	if r.MaxChain == 0 {
		r.MaxChain = DefaultMaxChain
	}

	r.SubjectIssuers = slices.Clone(p.SubjectIssuers)
	if len(r.SubjectIssuers) == 0 {
		r.SubjectIssuers = slices.Clone(defaultSubjectIssuers)
	}
	for j, iss := range r.SubjectIssuers {
		if iss == "" {
			return nil, fmt.Errorf("%s[%d]: empty issuer name", key("subject_issuers"), j)
		}
	}

	var err error
	if r.SubjectTokenTypes, err = tokenTypes(key("subject_token_types"), p.SubjectTokenTypes, subjectTypes, defaultSubjectTypes); err != nil {
		return nil, err
	}
	if r.RequestedTokenTypes, err = tokenTypes(key("requested_token_types"), p.RequestedTokenTypes, requestedTypes, defaultRequestedTypes); err != nil {
		return nil, err
	}

	// A transaction token is addressed to the trust domain, never to a policy's
	// audiences (README "Transaction tokens"): a policy that issues nothing else
	// lists none, every other policy at least one.
	if r.TxnOnly() && len(r.Audiences) > 0 {
		return nil, errors.New(key("audiences") + ": a policy whose requested_token_types is [txn_token] consults no audiences; leave it empty")
	}
	if len(r.Audiences) == 0 && !r.TxnOnly() {
		return nil, errors.New(key("audiences") + ": at least one audience is required")
	}
	if r.RequireBinding && r.AllowsRequestedType(oauth.TokenTypeTxnToken) {
		return nil, errors.New(key("require_binding") + ": requested_token_types lists txn_token, which is never sender-constrained")
	}
	if slices.Contains(r.SubjectTokenTypes, oauth.TokenTypeTxnToken) && !r.AllowsRequestedType(oauth.TokenTypeTxnToken) {
		return nil, errors.New(key("subject_token_types") + ": lists txn_token, which is replaced only by a txn_token: requested_token_types must list it")
	}
	// A transaction token has no audience whose scopes would bound it, and
	// another issuer's subject token bounds nothing (its scopes are not
	// deputy's): the policy's scopes must.
	if r.AllowsRequestedType(oauth.TokenTypeTxnToken) && len(p.Scopes) == 0 &&
		slices.ContainsFunc(r.SubjectIssuers, func(iss string) bool { return iss != SelfIssuer }) {
		return nil, errors.New(key("scopes") + ": required: requested_token_types lists txn_token and subject_issuers accepts another issuer than self, whose tokens bound no scope")
	}
	r.audiences = make(map[string]struct{}, len(r.Audiences))
	for j, a := range r.Audiences {
		if a == "" {
			return nil, fmt.Errorf("%s[%d]: empty audience", key("audiences"), j)
		}
		r.audiences[a] = struct{}{}
	}
	if len(p.Scopes) > 0 {
		r.Scopes = slices.Clone(p.Scopes)
		r.scopes = make(map[string]struct{}, len(r.Scopes))
		for _, sc := range r.Scopes {
			r.scopes[sc] = struct{}{}
		}
	}
	return r, nil
}

// tokenTypes maps configured short names to token type URIs, keeping only those in
// allowed; an empty list takes def.
func tokenTypes(key string, names []string, allowed, def []oauth.TokenType) ([]oauth.TokenType, error) {
	if len(names) == 0 {
		return slices.Clone(def), nil
	}
	out := make([]oauth.TokenType, 0, len(names))
	for j, n := range names {
		t, ok := oauth.TokenTypeFromShort(n)
		if !ok || !slices.Contains(allowed, t) {
			return nil, fmt.Errorf("%s[%d]: token type %q is not one of %s", key, j, n, typeNames(allowed))
		}
		out = append(out, t)
	}
	return out, nil
}

// TxnOnly reports whether the rule issues transaction tokens only.
func (r *Rule) TxnOnly() bool {
	return len(r.RequestedTokenTypes) > 0 && !slices.ContainsFunc(r.RequestedTokenTypes, func(t oauth.TokenType) bool { return t != oauth.TokenTypeTxnToken })
}

// Rules returns every rule in config order.
func (s *Set) Rules() []*Rule { return s.rules }

// ForClient returns the rules naming client, in config order; nil when there are none
// (the client may not use token exchange, design §5 error step 2). The slice is
// shared: do not modify it.
func (s *Set) ForClient(client string) []*Rule { return s.byClient[client] }

// Each check below comes as a predicate (AcceptsSubject, AllowsMayAct, AllowsBinding,
// AllowsChain, AllowsTargets, AllowsRequestedType), cheap enough for every candidate rule of every
// exchange, and as an explanation (Match…): nil when the rule matches, else a
// *Mismatch saying why not, for the audit trail of a refusal.

// AcceptsSubject reports whether the rule accepts a subject token of type typ from the
// named issuer ("self" for deputy's own).
func (r *Rule) AcceptsSubject(issuer string, typ oauth.TokenType) bool {
	return slices.Contains(r.SubjectIssuers, issuer) && slices.Contains(r.SubjectTokenTypes, typ)
}

// MatchSubject explains AcceptsSubject.
func (r *Rule) MatchSubject(issuer string, typ oauth.TokenType) error {
	if !slices.Contains(r.SubjectIssuers, issuer) {
		return r.mismatch("does not accept subject tokens from issuer " + strconv.Quote(issuer) +
			" (accepts " + strings.Join(r.SubjectIssuers, ", ") + ")")
	}
	if !slices.Contains(r.SubjectTokenTypes, typ) {
		return r.mismatch("does not accept subject tokens of type " + TypeName(typ) +
			" (accepts " + typeNames(r.SubjectTokenTypes) + ")")
	}
	return nil
}

// AllowsMayAct reports whether the rule accepts a subject token with (present) or
// without a may_act claim: a rule with require_may_act needs one.
func (r *Rule) AllowsMayAct(present bool) bool { return present || !r.RequireMayAct }

// MatchMayAct explains AllowsMayAct.
func (r *Rule) MatchMayAct(present bool) error {
	if !r.AllowsMayAct(present) {
		return r.mismatch("requires a may_act claim in the subject token")
	}
	return nil
}

// AllowsBinding reports whether the rule accepts a request that is (bound) or is
// not sender-constrained: a rule with require_binding issues only bound tokens.
func (r *Rule) AllowsBinding(bound bool) bool { return bound || !r.RequireBinding }

// MatchBinding explains AllowsBinding.
func (r *Rule) MatchBinding(bound bool) error {
	if !r.AllowsBinding(bound) {
		return r.mismatch("requires a sender-constrained request (require_binding): a DPoP proof or a bound client certificate")
	}
	return nil
}

// ChainDepth is the depth of the act chain a token issued under the rule carries when
// the subject token's act chain has subjectDepth actors: one more in delegation, the
// same in impersonation.
func (r *Rule) ChainDepth(subjectDepth int) int {
	if r.Mode == Delegation {
		return subjectDepth + 1
	}
	return subjectDepth
}

// AllowsChain reports whether the token the rule would issue, for a subject token
// whose act chain has subjectDepth actors, stays within max_chain.
func (r *Rule) AllowsChain(subjectDepth int) bool { return r.ChainDepth(subjectDepth) <= r.MaxChain }

// MatchChain explains AllowsChain.
func (r *Rule) MatchChain(subjectDepth int) error {
	if !r.AllowsChain(subjectDepth) {
		return r.mismatch("allows an act chain of at most " + strconv.Itoa(r.MaxChain) +
			" in " + string(r.Mode) + ", the issued token would carry " + strconv.Itoa(r.ChainDepth(subjectDepth)))
	}
	return nil
}

// AllowsAudience reports whether aud is one of the rule's audiences.
func (r *Rule) AllowsAudience(aud string) bool {
	_, ok := r.audiences[aud]
	return ok
}

// AllowsTargets reports whether every requested target (audience or resource) is one
// of the rule's audiences.
func (r *Rule) AllowsTargets(targets []string) bool {
	for _, t := range targets {
		if !r.AllowsAudience(t) {
			return false
		}
	}
	return true
}

// MatchTargets explains AllowsTargets, naming the first target the rule does not
// allow.
func (r *Rule) MatchTargets(targets []string) error {
	for _, t := range targets {
		if !r.AllowsAudience(t) {
			return r.mismatch("does not allow audience " + strconv.Quote(t))
		}
	}
	return nil
}

// BoundsScopes reports whether the rule lists scopes; a rule listing none imposes no
// bound of its own.
func (r *Rule) BoundsScopes() bool { return r.scopes != nil }

// AllowsScope reports whether the rule lets scope be granted (always true for a rule
// that lists no scopes).
func (r *Rule) AllowsScope(scope string) bool {
	if r.scopes == nil {
		return true
	}
	_, ok := r.scopes[scope]
	return ok
}

// AllowsRequestedType reports whether the rule may issue a token of type typ.
func (r *Rule) AllowsRequestedType(typ oauth.TokenType) bool {
	return slices.Contains(r.RequestedTokenTypes, typ)
}

// MatchRequestedType explains AllowsRequestedType.
func (r *Rule) MatchRequestedType(typ oauth.TokenType) error {
	if !r.AllowsRequestedType(typ) {
		return r.mismatch("does not allow requested token type " + TypeName(typ) +
			" (allows " + typeNames(r.RequestedTokenTypes) + ")")
	}
	return nil
}

func (r *Rule) mismatch(reason string) error { return &Mismatch{Rule: r.Name, Reason: reason} }

// Mismatch says why one rule does not match a request. It is an audit-trail reason,
// not a client-facing message.
type Mismatch struct {
	Rule   string // the rule's name
	Reason string // "does not allow audience \"https://x\""
}

func (m *Mismatch) Error() string { return "policy " + m.Rule + " " + m.Reason }

// Mismatches explains why none of several rules matched; errors.As finds each
// *Mismatch.
type Mismatches []error

func (ms Mismatches) Error() string {
	var b strings.Builder
	for i, m := range ms {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(m.Error())
	}
	return b.String()
}

// Unwrap returns the individual mismatches.
func (ms Mismatches) Unwrap() []error { return ms }

// TypeName is the configuration short name of a token type ("access_token"), or the
// quoted value itself when it has none.
func TypeName(t oauth.TokenType) string {
	if s := t.ShortName(); s != "" {
		return s
	}
	return strconv.Quote(string(t))
}

func typeNames(ts []oauth.TokenType) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = TypeName(t)
	}
	return strings.Join(names, ", ")
}
