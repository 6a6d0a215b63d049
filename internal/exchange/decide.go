package exchange

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/deputy-auth/deputy/internal/policy"
	"github.com/deputy-auth/deputy/oauth"
)

// Decide applies design §5 steps 4–7 to a request whose tokens were already verified
// (signature, expiry, revocation and declared type are checked before, by
// internal/subject). now is the time of the request. The deciding rule is the first of
// the client's policies, in config order, whose subject issuer and type and targets
// match (README "Token exchange rules"); its own requirements are then checked
// against the subject token. A refusal is a *Denial; the first failing check answers:
//
//   - no policy names the client → unauthorized_client (the dispatcher normally asks
//     Permits first);
//   - step 4, invalid_request: no policy accepts the subject token's issuer and type;
//     a token deputy issued that is not addressed to the client; a sender-constrained
//     subject token (cnf) exchanged by a request that proves no key; an actor token
//     whose subject is not the client, or that is sender-constrained and the request
//     does not prove its key; an actor that does not match the subject token's
//     may_act; an expired token;
//   - step 5, invalid_target: a resource that is not an absolute URI without fragment,
//     a target that is not a configured audience, or no policy allowing all targets.
//     With no target, the single audience the policies accepting the subject allow is
//     used, else invalid_request;
//   - step 4 for the deciding rule, invalid_request naming the rule: it requires
//     may_act and the subject token has none, the issued act chain would be longer
//     than its max_chain, or it requires binding and the request proves no key. A
//     later rule never stands in for it;
//   - step 6, invalid_scope: a requested scope outside subject scopes (deputy's own
//     tokens only) ∩ target audiences' scopes ∩ the policy's scopes;
//   - step 7, invalid_request: a requested token type the policy does not allow, or
//     one that cannot carry the binding when the issued token must be bound (an
//     id_token; a refresh_token, unless the request proved a DPoP key).
//
// Binding (RFC 9449 §6, RFC 8705 §3; README "Token exchange rules"): the issued
// token is bound to the key this request proved (Request.Binding), never to the
// subject token's: each hop's token is bound to the party that holds it. A bound
// subject token, or a rule with require_binding, makes that mandatory — no hop
// downgrades a bound token to a bearer one. A refresh token (issued, or beside an
// access token) is bound to the request's DPoP key, Decision.Cnf.JKT; where the
// issued token must be bound and the request proved no DPoP key (a client
// certificate), none is issued beside, as it would mint unbound tokens. A bound
// refresh token presented as subject token needs a proof of its own key.
//
// Conditions (design §12): a rule whose condition is false does not match. A
// condition is evaluated only for a rule whose subject issuer and type match and
// that allows the targets (with no target requested: every rule accepting the
// subject, to find the default target), in order, until one matches; when none
// does, the conditions not yet evaluated are, to tell a false condition (step 4,
// invalid_request) from a target no rule allows (step 5). A condition that cannot
// be evaluated (a missing claim, its cost limit) where it could decide denies with
// invalid_request, naming the rule: conditions fail closed.
//
// On-behalf-of (Request.OnBehalfOf; README "On-behalf-of (Microsoft Entra's
// flow)"): after the subject binding, the assertion must also be an access token
// or JWT without an ID token's claims, and addressed to the client whoever issued
// it (step 4, invalid_request, which the grant answers as invalid_grant). A
// refusal for a key the request does not prove (a sender-constrained subject or
// actor token) has Denial.Check CheckBinding, as require_binding's has.
//
// Transaction tokens (README "Transaction tokens"): a subject token that is a
// transaction token is exchanged only for one (invalid_request otherwise), must be
// addressed to the trust domain and carry txn; a request for one takes no actor
// token, and after step 4 is decided by decideTxn instead of steps 5–7.
//
// A denial of a client that has policies carries, in Denial.Policies, what each of
// them made of the request (Explain).
func (x *Exchanger) Decide(req Request, now time.Time) (Decision, error) {
	d, err := x.decide(&req, now)
	if den, ok := err.(*Denial); ok && x.Permits(req.ClientID) {
		den.Policies = x.Explain(req, now)
	}
	return d, err
}

func (x *Exchanger) decide(req *Request, now time.Time) (Decision, error) {
	rules := x.rules.ForClient(req.ClientID)
	if len(rules) == 0 {
		return Decision{}, deny(oauth.UnauthorizedClient("client may not use token exchange",
			fmt.Errorf("no exchange policy names client %q", req.ClientID)), "")
	}
	sub := &req.Subject

	// Step 4: the subject and actor tokens, against the client's policies.
	if err := x.checkSubjectToken(sub, now); err != nil {
		return Decision{}, err
	}

	// A transaction token is replaced only by a transaction token
	// (draft-ietf-oauth-transaction-tokens; README "Transaction tokens").
	txn := req.RequestedType == oauth.TokenTypeTxnToken
	if sub.TokenType == oauth.TokenTypeTxnToken && !txn {
		return Decision{}, deny(oauth.InvalidRequest("a transaction token is exchanged only for a transaction token (requested_token_type "+string(oauth.TokenTypeTxnToken)+")",
			fmt.Errorf("subject token is a transaction token, the requested token type is %s", policy.TypeName(orAccessToken(req.RequestedType)))), "")
	}

	var buf [8]*policy.Rule
	live := buf[:0]
	for _, r := range rules {
		if r.AcceptsSubject(sub.Issuer, sub.TokenType) {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		why := explain(rules, func(r *policy.Rule) error { return r.MatchSubject(sub.Issuer, sub.TokenType) })
		return Decision{}, deny(oauth.InvalidRequest(fmt.Sprintf("subject token of type %s from issuer %s is not accepted for client %s",
			policy.TypeName(sub.TokenType), sub.Issuer, req.ClientID), why), "")
	}

	if err := x.checkBinding(sub, req.ClientID); err != nil {
		return Decision{}, err
	}
	if req.OnBehalfOf {
		if err := x.checkAssertion(sub, req.ClientID); err != nil {
			return Decision{}, err
		}
	}
	if sub.Cnf.Bound() && !req.Binding.Bound() {
		return Decision{}, denyCheck(oauth.InvalidRequest("the subject token is sender-constrained; the exchange must be too",
			fmt.Errorf("subject token is bound to %s, the request proves no key", keyName(sub.Cnf))), "", CheckBinding)
	}
	// A refresh token is the client's own: bound, it is used only with a proof of
	// its key (RFC 9449 §5), as a subject token too.
	if sub.TokenType == oauth.TokenTypeRefreshToken && sub.Cnf.Bound() && !sameKey(sub.Cnf, req.Binding) {
		return Decision{}, denyCheck(oauth.InvalidRequest("the subject token is a refresh token bound to a DPoP key; send a DPoP proof of that key",
			fmt.Errorf("refresh token is bound to %s, the request proves %s", keyName(sub.Cnf), keyName(req.Binding))), "", CheckBinding)
	}

	actor, actorIss := req.ClientID, x.opts.IssuerURL
	if txn && req.Actor != nil {
		// A transaction token names its requester in rctx.req_wl and carries no
		// act: there is no actor to name.
		return Decision{}, deny(oauth.InvalidRequest("a transaction token request takes no actor_token",
			fmt.Errorf("actor token of %q sent with requested_token_type txn_token", req.Actor.Subject)), "")
	}
	if a := req.Actor; a != nil {
		if a.Subject != req.ClientID {
			return Decision{}, deny(oauth.InvalidRequest("actor token does not identify the client",
				fmt.Errorf("actor token subject %q is not client %q", a.Subject, req.ClientID)), "")
		}
		if !a.ExpiresAt.IsZero() && !a.ExpiresAt.After(now) {
			return Decision{}, deny(oauth.InvalidRequest("actor token expired",
				fmt.Errorf("actor token expired at %s", a.ExpiresAt.UTC().Format(time.RFC3339))), "")
		}
		// RFC 8693 says nothing of bound actor tokens. An actor token identifies
		// the client itself, so one bound to a key must come with a proof of that
		// very key, as when the client uses it anywhere else.
		if a.Cnf.Bound() && !sameKey(a.Cnf, req.Binding) {
			return Decision{}, denyCheck(oauth.InvalidRequest("the actor token is sender-constrained; the request must prove its key",
				fmt.Errorf("actor token is bound to %s, the request proves %s", keyName(a.Cnf), keyName(req.Binding))), "", CheckBinding)
		}
		actor, actorIss = a.Subject, x.issuerURL(a)
	}

	if m := sub.MayAct; m != nil && (m.Subject != actor || (m.Issuer != "" && m.Issuer != actorIss)) {
		return Decision{}, deny(oauth.InvalidRequest("actor is not allowed by the subject token's may_act claim",
			fmt.Errorf("may_act names %q (issuer %q), the actor is %q (issuer %q)", m.Subject, m.Issuer, actor, actorIss)), "")
	}

	if txn {
		return x.decideTxn(req, live, actor, actorIss, now)
	}

	// Step 5: targets, which select the deciding rule: the first of the rules
	// accepting the subject that allows every target.
	conds := conditions{x: x, req: req, actor: actor, actorIss: actorIss, now: now}
	targets, err := x.targets(req.Audiences, req.Resources)
	if err != nil {
		// Conditions are check 4, targets check 5: a request that no rule's
		// condition accepts is refused as such before its targets are judged.
		if _, ferr := conds.filter(live, false); ferr != nil {
			return Decision{}, ferr
		}
		return Decision{}, err
	}
	conds.targets = targets
	var rule *policy.Rule
	if len(targets) > 0 {
		for _, r := range live {
			if !r.AllowsTargets(targets) {
				continue
			}
			if ok, err := conds.holds(r); err != nil {
				return Decision{}, err
			} else if ok {
				rule = r
				break
			}
		}
		if rule == nil {
			if live, err = conds.filter(live, false); err != nil {
				return Decision{}, err
			}
			why := explain(live, func(r *policy.Rule) error { return r.MatchTargets(targets) })
			return Decision{}, deny(oauth.InvalidTarget("requested audience is not allowed for this client", why), "")
		}
	} else {
		if live, err = conds.filter(live, true); err != nil {
			return Decision{}, err
		}
		if rule, targets, err = defaultTarget(live); err != nil {
			return Decision{}, err
		}
	}

	// The deciding rule's own requirements (step 4, continued), scopes (step 6) and
	// requested token type (step 7). A later rule does not stand in for it.
	depth := sub.Act.Depth()
	bound := req.Binding.Bound()
	g, err := x.ruleChecks(rule, req, targets)
	if err != nil {
		return Decision{}, err
	}
	scopes, typ, carriesCnf, mustBind := g.scopes, g.typ, g.carriesCnf, g.mustBind

	d := Decision{
		Rule:          rule.Name,
		Mode:          Mode(rule.Mode),
		Subject:       sub.Subject,
		SubjectIssuer: sub.Issuer,
		Actor:         actor,
		Audiences:     targets,
		Scopes:        scopes,
		ExpiresAt:     x.expiry(typ, sub, req.Actor, now),
		IssuedType:    typ,
		TokenType:     oauth.TokenTypeNA,
		Claims:        carriedClaims(sub.Claims),
		ParentJTI:     sub.JTI,
	}
	if bound && carriesCnf {
		c := *req.Binding
		d.Cnf = &c
	}
	if typ == oauth.TokenTypeAccessToken {
		d.TokenType = oauth.TokenTypeBearer
		if d.Cnf != nil && d.Cnf.JKT != "" {
			d.TokenType = oauth.TokenTypeDPoP // RFC 9449 §5; a certificate-bound token stays Bearer (RFC 8705 §3)
		}
	}
	if rule.AllowsRequestedType(oauth.TokenTypeRefreshToken) && (!mustBind || carriesBinding(oauth.TokenTypeRefreshToken, req.Binding)) {
		d.RefreshExpiresAt = x.expiry(oauth.TokenTypeRefreshToken, sub, req.Actor, now)
	}
	if rule.Mode == policy.Delegation {
		d.Act = x.actChain(sub, depth+1)
		d.Act.Subject = actor
		if actorIss != x.opts.IssuerURL {
			d.Act.Issuer = actorIss
		}
	} else if depth > 0 {
		d.Act = x.actChain(sub, depth)
	}
	return d, nil
}

// orAccessToken is the requested token type typ, access_token when none was
// requested (RFC 8693 §2.1).
func orAccessToken(typ oauth.TokenType) oauth.TokenType {
	if typ == "" {
		return oauth.TokenTypeAccessToken
	}
	return typ
}

func deny(err *oauth.Error, rule string) error { return &Denial{Err: err, Rule: rule} }

// keyName names the key of a cnf for the audit trail: "jkt <thumbprint>" or
// "x5t#S256 <thumbprint>".
func keyName(c *oauth.Confirmation) string {
	if !c.Bound() {
		return "no key"
	}
	if c.JKT != "" {
		return "jkt " + c.JKT
	}
	return "x5t#S256 " + c.X5TS256
}

// carriesBinding reports whether a token of type typ can be bound to binding: an
// access token or JWT carries any cnf; a refresh token is bound to a DPoP key only
// (the refresh grant asks for a proof of it, RFC 9449 §5); an ID token to none.
func carriesBinding(typ oauth.TokenType, binding *oauth.Confirmation) bool {
	switch typ {
	case oauth.TokenTypeAccessToken, oauth.TokenTypeJWT:
		return true
	case oauth.TokenTypeRefreshToken:
		return binding != nil && binding.JKT != ""
	}
	return false
}

// sameKey reports whether the request's binding proves every key cnf names.
func sameKey(cnf, binding *oauth.Confirmation) bool {
	return binding.Bound() &&
		(cnf.JKT == "" || cnf.JKT == binding.JKT) &&
		(cnf.X5TS256 == "" || cnf.X5TS256 == binding.X5TS256)
}

// explain collects why each of rules does not match, for the audit trail of a refusal.
func explain(rules []*policy.Rule, match func(*policy.Rule) error) policy.Mismatches {
	why := make(policy.Mismatches, 0, len(rules))
	for _, r := range rules {
		if err := match(r); err != nil {
			why = append(why, err)
		}
	}
	return why
}

// checkSubjectToken rejects a subject token the verifiers should not have passed: no
// subject, an act chain with an anonymous actor, or expired at now.
func (x *Exchanger) checkSubjectToken(sub *Principal, now time.Time) error {
	if sub.Subject == "" {
		return deny(oauth.InvalidRequest("subject token has no subject", fmt.Errorf("%s subject token from issuer %q has an empty sub", policy.TypeName(sub.TokenType), sub.Issuer)), "")
	}
	for a, i := sub.Act, 0; a != nil; a, i = a.Actor, i+1 {
		if a.Subject == "" {
			return deny(oauth.InvalidRequest("subject token has a malformed act claim", fmt.Errorf("act chain level %d has no sub", i)), "")
		}
	}
	if !sub.ExpiresAt.IsZero() && !sub.ExpiresAt.After(now) {
		return deny(oauth.InvalidRequest("subject token expired",
			fmt.Errorf("subject token expired at %s", sub.ExpiresAt.UTC().Format(time.RFC3339))), "")
	}
	return nil
}

// checkBinding enforces design §5 "Subject binding" for deputy's own tokens: an access
// token, JWT or ID token must be addressed to the client (its aud holds the client id
// or an audience whose client it is); a refresh token must have been issued to it.
// A trusted issuer's or SAML IdP's binding is checked by its verifier.
func (x *Exchanger) checkBinding(sub *Principal, client string) error {
	if sub.Issuer != policy.SelfIssuer {
		return nil
	}
	if sub.TokenType == oauth.TokenTypeTxnToken {
		// A transaction token is addressed to the trust domain, every service of
		// which may have it replaced (README "Transaction tokens").
		if x.opts.TrustDomain == "" || !slices.Contains(sub.Audiences, x.opts.TrustDomain) {
			return deny(oauth.InvalidRequest("subject token is a transaction token of another trust domain",
				fmt.Errorf("transaction token audiences %q, the trust domain is %q", sub.Audiences, x.opts.TrustDomain)), "")
		}
		if _, ok := sub.Claims[ClaimTxn].(string); !ok {
			return deny(oauth.InvalidRequest("subject token is a transaction token without txn", errors.New("transaction token has no txn claim")), "")
		}
		return nil
	}
	if sub.TokenType == oauth.TokenTypeRefreshToken {
		if sub.ClientID != client {
			return deny(oauth.InvalidRequest("refresh token was not issued to the client",
				fmt.Errorf("refresh token was issued to %q, not to %q", sub.ClientID, client)), "")
		}
		return nil
	}
	return x.checkAddressee(sub, client)
}

// checkAddressee refuses a subject token not addressed to client: its aud holds
// neither the client id nor an audience whose client it is (README "Token
// exchange rules", subject binding).
func (x *Exchanger) checkAddressee(sub *Principal, client string) error {
	for _, aud := range sub.Audiences {
		if aud == client {
			return nil
		}
		if a, ok := x.audiences[aud]; ok && a.client == client {
			return nil
		}
	}
	return deny(oauth.InvalidRequest("subject token is not addressed to the client",
		fmt.Errorf("subject token audiences %q hold neither client %q nor an audience of it", sub.Audiences, client)), "")
}

// checkAssertion makes of an on-behalf-of assertion (Request.OnBehalfOf) what
// Entra makes of it: an access token or JWT (not an ID token, nor a token with
// an ID token's claims), addressed to the client that presents it whoever
// issued it. deputy's own tokens were checked for their addressee already
// (checkBinding); a trusted issuer's are here, with the same rule.
func (x *Exchanger) checkAssertion(sub *Principal, client string) error {
	switch {
	case sub.TokenType != oauth.TokenTypeAccessToken && sub.TokenType != oauth.TokenTypeJWT:
		return deny(oauth.InvalidRequest("subject token is not an access token",
			fmt.Errorf("subject token of type %s; an on-behalf-of assertion is an access token", policy.TypeName(sub.TokenType))), "")
	case len(sub.IDTokenClaims) > 0:
		return deny(oauth.InvalidRequest("subject token is an ID token, not an access token",
			fmt.Errorf("the %s token has %s, claims only an ID token carries", sub.Issuer, strings.Join(sub.IDTokenClaims, ", "))), "")
	case sub.Issuer != policy.SelfIssuer:
		return x.checkAddressee(sub, client)
	}
	return nil
}

// issuerURL is the iss of a principal: deputy's for its own tokens.
func (x *Exchanger) issuerURL(p *Principal) string {
	if p.Issuer == policy.SelfIssuer {
		return x.opts.IssuerURL
	}
	return p.IssuerURL
}

// targets validates the audience and resource parameters (RFC 8693 §2.1, RFC 8707 §2)
// and returns them in request order, audiences first, without duplicates.
func (x *Exchanger) targets(audiences, resources []string) ([]string, error) {
	for _, r := range resources {
		if !absoluteWithoutFragment(r) {
			return nil, deny(oauth.InvalidTarget("resource must be an absolute URI without fragment",
				fmt.Errorf("resource %q is not an absolute URI without fragment", r)), "")
		}
	}
	n := len(audiences) + len(resources)
	if n == 0 {
		return nil, nil
	}
	out := make([]string, 0, n)
	for _, list := range [2][]string{audiences, resources} {
		for _, t := range list {
			if _, ok := x.audiences[t]; !ok {
				return nil, deny(oauth.InvalidTarget("requested audience is not known",
					fmt.Errorf("%q is not a configured audience", t)), "")
			}
			out = append(out, t)
		}
	}
	return dedupe(out), nil
}

// absoluteWithoutFragment reports whether s is an absolute URI with no fragment
// component, not even an empty one (RFC 8707 §2).
func absoluteWithoutFragment(s string) bool {
	if strings.IndexByte(s, '#') >= 0 {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && u.IsAbs()
}

// dedupe removes repeated values from s in place, keeping first occurrences in order.
func dedupe(s []string) []string {
	if len(s) > 32 {
		seen := make(map[string]struct{}, len(s))
		return slices.DeleteFunc(s, func(v string) bool {
			_, dup := seen[v]
			seen[v] = struct{}{}
			return dup
		})
	}
	n := 0
	for _, v := range s {
		if !slices.Contains(s[:n], v) {
			s[n] = v
			n++
		}
	}
	return s[:n]
}

// defaultTarget picks the target when the request names none: the single audience the
// remaining rules allow, decided by the first of them (design §5 "Targets").
func defaultTarget(live []*policy.Rule) (*policy.Rule, []string, error) {
	var only string
	var first *policy.Rule
	var union []string // collected only to explain an ambiguity
	for _, r := range live {
		for _, a := range r.Audiences {
			switch {
			case first == nil:
				only, first = a, r
			case a != only && union == nil:
				union = []string{only, a}
			case a != only && !slices.Contains(union, a):
				union = append(union, a)
			}
		}
	}
	if first == nil || union != nil {
		return nil, nil, deny(oauth.InvalidRequest("audience or resource required",
			fmt.Errorf("no audience or resource requested, and the client's policies allow %d audiences %q", len(union), union)), "")
	}
	return first, []string{only}, nil
}

// grantScopes applies design §5 "Scopes": allowed = subject scopes (deputy's own
// tokens only) ∩ union of the target audiences' scopes ∩ the rule's scopes (when it
// lists any). The requested scopes must all be allowed; none requested grants all of
// allowed. The result is sorted and de-duplicated, nil when empty.
func (x *Exchanger) grantScopes(rule *policy.Rule, sub *Principal, targets, requested []string) ([]string, error) {
	self := sub.Issuer == policy.SelfIssuer
	var out []string
	asked := false
	for _, s := range requested {
		if s == "" {
			continue
		}
		asked = true
		if why := x.scopeRefusal(s, rule, sub, self, targets); why != "" {
			return nil, &Denial{Err: oauth.InvalidScope(fmt.Sprintf("scope %q is beyond what may be granted", s),
				fmt.Errorf("scope %q %s (policy %s, audiences %q)", s, why, rule.Name, targets)), Rule: rule.Name, Scope: s}
		}
		out = append(out, s)
	}
	if !asked {
		if self {
			for _, s := range sub.Scopes {
				if x.scopeRefusal(s, rule, sub, self, targets) == "" {
					out = append(out, s)
				}
			}
		} else {
			for _, t := range targets {
				for _, s := range x.audiences[t].scopes {
					if rule.AllowsScope(s) {
						out = append(out, s)
					}
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// scopeRefusal says why scope may not be granted, or "" when it may. It runs for every
// scope of every exchange, so it returns constant text and never allocates.
func (x *Exchanger) scopeRefusal(scope string, rule *policy.Rule, sub *Principal, self bool, targets []string) string {
	if self && !slices.Contains(sub.Scopes, scope) {
		return "is not in the subject token's scopes"
	}
	offered := false
	for _, t := range targets {
		if _, ok := x.audiences[t].scopeSet[scope]; ok {
			offered = true
			break
		}
	}
	if !offered {
		return "is offered by none of the requested audiences"
	}
	if !rule.AllowsScope(scope) {
		return "is beyond the policy's scopes"
	}
	return ""
}

// expiry is design §5 "Lifetime": the configured TTL of the issued type, capped by the
// subject and actor tokens' expiry. Both were checked to be after now.
func (x *Exchanger) expiry(typ oauth.TokenType, sub, act *Principal, now time.Time) time.Time {
	ttl := x.opts.AccessTTL
	switch typ {
	case oauth.TokenTypeIDToken:
		ttl = x.opts.IDTokenTTL
	case oauth.TokenTypeRefreshToken:
		ttl = x.opts.RefreshTTL
	case oauth.TokenTypeTxnToken:
		ttl = x.opts.TxnTTL
	}
	exp := now.Add(ttl)
	if !sub.ExpiresAt.IsZero() && sub.ExpiresAt.Before(exp) {
		exp = sub.ExpiresAt
	}
	if act != nil && !act.ExpiresAt.IsZero() && act.ExpiresAt.Before(exp) {
		exp = act.ExpiresAt
	}
	return exp
}

// actChain copies the subject token's act chain into a chain of n actors, the
// subject's chain filling the innermost ones (n is its depth, or its depth+1 leaving
// the outermost empty for the delegating actor). Only sub and iss are copied (RFC 8693
// §4.1: identity claims only). An actor without iss in a foreign token is named by that
// token's issuer, and deputy's own issuer URL is left implicit, so that an act without
// iss always means one of deputy's clients.
func (x *Exchanger) actChain(sub *Principal, n int) *oauth.Actor {
	nodes := make([]oauth.Actor, n)
	i := n - sub.Act.Depth()
	for a := sub.Act; a != nil; a = a.Actor {
		iss := a.Issuer
		if iss == "" && sub.Issuer != policy.SelfIssuer {
			iss = sub.IssuerURL
		}
		if iss == x.opts.IssuerURL {
			iss = ""
		}
		nodes[i] = oauth.Actor{Subject: a.Subject, Issuer: iss}
		i++
	}
	for i := 0; i+1 < n; i++ {
		nodes[i].Actor = &nodes[i+1]
	}
	return &nodes[0]
}

// reservedClaim reports whether a claim is set by issuance from the Decision itself,
// or must never be carried from a subject token into an exchanged one (may_act,
// design §5).
func reservedClaim(name string) bool {
	switch name {
	case "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scope", "scp",
		"act", "may_act", "cnf", "azp", "nonce", "at_hash", "c_hash", "typ",
		ClaimTxn, ClaimTctx, ClaimRctx:
		return true
	}
	return false
}

// carriedClaims copies the subject's extra identity claims, without reserved ones.
func carriedClaims(claims map[string]any) map[string]any {
	if len(claims) == 0 {
		return nil
	}
	out := make(map[string]any, len(claims))
	for k, v := range claims {
		if !reservedClaim(k) {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
