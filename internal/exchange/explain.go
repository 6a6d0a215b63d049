package exchange

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/deputy-auth/deputy/internal/policy"
	"github.com/deputy-auth/deputy/internal/policy/condition"
	"github.com/deputy-auth/deputy/oauth"
)

// Check names one check a policy makes of an exchange request, in the order they
// are made (design §5, §12). RuleResult.Check is the first one a policy failed.
type Check string

// Checks, in order.
const (
	CheckSubject   Check = "subject"   // subject issuer and token type (subject_issuers, subject_token_types)
	CheckCondition Check = "condition" // the CEL condition is false, or cannot be evaluated
	CheckTargets   Check = "targets"   // the requested audiences and resources (audiences)
	// CheckOrder: the policy matches, but an earlier one matched first and decides.
	CheckOrder     Check = "order"
	CheckMayAct    Check = "may_act"              // require_may_act
	CheckMaxChain  Check = "max_chain"            // the act chain would be too long
	CheckBinding   Check = "binding"              // require_binding, or a bound subject token
	CheckScope     Check = "scope"                // a requested scope beyond what may be granted
	CheckTokenType Check = "requested_token_type" // requested_token_types
)

// RuleResult is what one policy made of an exchange request: the first check it
// failed and why, or, for the policy that decides, no check. It goes into the
// audit record of a denial and `deputy policy explain` prints it.
type RuleResult struct {
	Rule   string `json:"policy"`
	Check  Check  `json:"check,omitempty"` // "" when the policy matches and decides
	Reason string `json:"reason"`
}

// Explain runs the checks of design §5 and §12 for every policy of req.ClientID,
// in config order, and says for each the first check it failed, or that it
// decides. It runs the same predicates and the same condition programs as Decide,
// and it needs no more than Decide does; it writes nothing. Checks that concern
// no policy in particular (the subject token's own validity, its addressee, the
// actor token, may_act, what an on-behalf-of assertion must be) are Decide's to
// report: a request that fails one of them is denied even when a policy here says
// it decides.
func (x *Exchanger) Explain(req Request, now time.Time) []RuleResult {
	rules := x.rules.ForClient(req.ClientID)
	if len(rules) == 0 {
		return nil
	}
	if req.RequestedType == oauth.TokenTypeTxnToken {
		return x.explainTxn(req, rules, now)
	}
	sub := &req.Subject
	actor, actorIss := x.actorOf(&req)
	conds := conditions{x: x, req: &req, actor: actor, actorIss: actorIss, now: now}
	targets, targetErr := x.targets(req.Audiences, req.Resources)
	conds.targets = targets
	// blocked names the rule whose condition cannot be evaluated where Decide
	// evaluates it before any rule matches: Decide then denies, and no rule decides.
	var blocked string
	if targetErr == nil && len(targets) == 0 {
		// No target requested: the single audience the policies accepting the
		// subject whose condition holds allow, or an explanation why there is
		// none. Decide evaluates every such condition here, and the first that
		// cannot be evaluated denies.
		var live []*policy.Rule
		for _, r := range rules {
			if !r.AcceptsSubject(sub.Issuer, sub.TokenType) {
				continue
			}
			ok, err := conds.holds(r)
			if err != nil && blocked == "" {
				blocked = r.Name
			}
			if err == nil && ok {
				live = append(live, r)
			}
		}
		_, targets, targetErr = defaultTarget(live)
	}

	return explainRules(rules, sub, &conds, targetErr, blocked, ruleWalk{
		allows: func(r *policy.Rule) bool { return r.AllowsTargets(targets) },
		match: func(r *policy.Rule) (Check, error) {
			return CheckTargets, r.MatchTargets(targets)
		},
		checks: func(r *policy.Rule) error {
			_, err := x.ruleChecks(r, &req, targets)
			return err
		},
	})
}

// ruleWalk is what differs between Explain's walks over a client's rules for
// one kind of request: which rules could decide it (allows), why a rule
// cannot (match: the check and its failure, nil when it can), and the
// deciding rule's own checks, as Decide makes them.
type ruleWalk struct {
	allows func(*policy.Rule) bool
	match  func(*policy.Rule) (Check, error)
	checks func(*policy.Rule) error
}

// explainRules says, for every rule in order, the first check it fails —
// subject, condition, targets (targetErr: the request's own, for every rule),
// w.match, order — or, for the first that passes them, its own checks or
// "decides". blocked names a rule whose condition could not be evaluated
// before the walk where Decide evaluates it (Decide then denies, and no rule
// decides); a condition that cannot be evaluated in the walk blocks too when
// it is the first, before any rule matched, of a rule w.allows.
func explainRules(rules []*policy.Rule, sub *Principal, conds *conditions, targetErr error, blocked string, w ruleWalk) []RuleResult {
	out := make([]RuleResult, 0, len(rules))
	var selected *policy.Rule
	for _, r := range rules {
		res := RuleResult{Rule: r.Name}
		if err := r.MatchSubject(sub.Issuer, sub.TokenType); err != nil {
			res.Check, res.Reason = CheckSubject, mismatchReason(err)
			out = append(out, res)
			continue
		}
		if ok, err := conds.holds(r); err != nil {
			res.Check, res.Reason = CheckCondition, "condition cannot be evaluated: "+evalError(err)
			// Decide evaluates a condition only for a rule that could
			// decide the request, until one matches.
			if blocked == "" && selected == nil && targetErr == nil && w.allows(r) {
				blocked = r.Name
			}
			out = append(out, res)
			continue
		} else if !ok {
			res.Check, res.Reason = CheckCondition, "condition is false"
			out = append(out, res)
			continue
		}
		if targetErr != nil {
			res.Check, res.Reason = CheckTargets, causeOf(targetErr)
			out = append(out, res)
			continue
		}
		if check, err := w.match(r); err != nil {
			res.Check, res.Reason = check, mismatchReason(err)
			out = append(out, res)
			continue
		}
		if selected != nil {
			res.Check, res.Reason = CheckOrder, "matches, but policy "+selected.Name+" comes first and decides"
			out = append(out, res)
			continue
		}
		if blocked != "" {
			res.Check, res.Reason = CheckOrder, "matches, but the condition of policy "+blocked+" cannot be evaluated, which denies the request"
			out = append(out, res)
			continue
		}
		selected = r
		if err := w.checks(r); err != nil {
			var den *Denial
			if errors.As(err, &den) {
				res.Check = den.check
			}
			res.Reason = causeOf(err)
		} else {
			res.Reason = "decides"
		}
		out = append(out, res)
	}
	return out
}

// actorOf is who acts in req: the actor token's subject and issuer, or the client
// (with deputy's issuer). Decide checks the actor token; Explain and conditions
// only name the actor.
func (x *Exchanger) actorOf(req *Request) (string, string) {
	if a := req.Actor; a != nil {
		return a.Subject, x.issuerURL(a)
	}
	return req.ClientID, x.opts.IssuerURL
}

// granted is what the deciding rule's own checks (ruleChecks) settle.
type granted struct {
	scopes     []string
	typ        oauth.TokenType
	carriesCnf bool // the issued token can carry the request's binding
	mustBind   bool // the issued token must be bound
}

// ruleChecks applies the checks of the deciding rule: its require_may_act, max_chain
// and require_binding (step 4, continued), scopes (step 6) and requested token type
// (step 7). A refusal is a *Denial naming the rule, its check set for Explain.
func (x *Exchanger) ruleChecks(rule *policy.Rule, req *Request, targets []string) (granted, error) {
	sub := &req.Subject
	if err := rule.MatchMayAct(sub.MayAct != nil); err != nil {
		return granted{}, denyCheck(oauth.InvalidRequest("subject token has no may_act claim, which the policy for this target requires", err), rule.Name, CheckMayAct)
	}
	if err := rule.MatchChain(sub.Act.Depth()); err != nil {
		return granted{}, denyCheck(oauth.InvalidRequest("act chain would be longer than the policy for this target allows (max_chain)", err), rule.Name, CheckMaxChain)
	}
	if err := rule.MatchBinding(req.Binding.Bound()); err != nil {
		return granted{}, denyCheck(oauth.InvalidRequest("the policy for this target issues only sender-constrained tokens; send a DPoP proof or use a bound client certificate", err), rule.Name, CheckBinding)
	}
	// The issued token must be bound: the subject token is, or the rule says so.
	g := granted{mustBind: sub.Cnf.Bound() || rule.RequireBinding}

	scopes, err := x.grantScopes(rule, sub, targets, req.Scopes)
	if err != nil {
		return granted{}, withCheck(err, CheckScope)
	}
	g.scopes = scopes

	typ := req.RequestedType
	if typ == "" {
		typ = oauth.TokenTypeAccessToken
	}
	if !rule.AllowsRequestedType(typ) {
		return granted{}, denyCheck(oauth.InvalidRequest("requested token type is not allowed", rule.MatchRequestedType(typ)), rule.Name, CheckTokenType)
	}
	g.typ = typ
	g.carriesCnf = carriesBinding(typ, req.Binding)
	if g.mustBind && !g.carriesCnf {
		why := fmt.Errorf("policy %s requires binding", rule.Name)
		if sub.Cnf.Bound() {
			why = fmt.Errorf("the subject token is bound to %s", keyName(sub.Cnf))
		}
		what := "a " + policy.TypeName(typ) + " carries no cnf"
		if typ == oauth.TokenTypeRefreshToken {
			what = "a refresh token is bound to a DPoP key only, the request proves " + keyName(req.Binding)
		}
		return granted{}, denyCheck(oauth.InvalidRequest("requested token type "+policy.TypeName(typ)+" cannot be sender-constrained, and this exchange must issue a bound token",
			fmt.Errorf("%w, and %s", why, what)), rule.Name, CheckTokenType)
	}
	return g, nil
}

// conditions evaluates rules' conditions for one request, building the input
// once, on first use.
type conditions struct {
	x               *Exchanger
	req             *Request
	actor, actorIss string
	now             time.Time
	targets         []string // the validated targets; nil when none were requested or they are invalid
	txn             bool     // a transaction token request: its target is the trust domain

	in   *condition.Input
	sent *condition.Request // the request as sent, shared by the rules that need no effective values
}

// holds reports whether rule's condition is true (a rule without one always
// holds). An evaluation error is a *Denial: the request is refused (fails closed).
func (c *conditions) holds(r *policy.Rule) (bool, error) {
	if r.Condition == nil {
		return true, nil
	}
	if c.in == nil {
		c.in = c.x.conditionInput(c.req, c.actor, c.actorIss, c.now)
		c.sent = c.in.Request
	}
	c.in.Request = c.request(r)
	ok, err := r.Condition.Eval(c.in)
	if err != nil {
		return false, denyCheck(oauth.InvalidRequest("a condition of the client's policies cannot be evaluated for this request",
			fmt.Errorf("policy %s condition cannot be evaluated: %w", r.Name, err)), r.Name, CheckCondition)
	}
	return ok, nil
}

// request is what rule r's condition sees of the request: as sent, but with the
// effective values where a parameter was left out, so that a condition cannot be
// bypassed by leaving it out. With no audience or resource, request.audiences is
// r's audiences (the default target, should r decide); with no scope,
// request.scopes is every scope r would grant for those targets.
func (c *conditions) request(r *policy.Rule) *condition.Request {
	sent := c.sent
	noTargets := len(sent.Audiences) == 0 && len(sent.Resources) == 0
	noScopes := len(sent.Scopes) == 0
	if !noTargets && !noScopes {
		return sent
	}
	eff := *sent
	if c.txn {
		// A transaction token's audience is the trust domain, its scopes those of
		// txnScopes.
		if noTargets {
			eff.Audiences = []string{c.x.opts.TrustDomain}
		}
		if noScopes {
			eff.Scopes, _ = txnScopes(r, &c.req.Subject, nil)
			if eff.Scopes == nil {
				eff.Scopes = []string{}
			}
		}
		return &eff
	}
	targets := c.targets
	if noTargets {
		eff.Audiences, targets = r.Audiences, r.Audiences
	} else if targets == nil {
		// Invalid targets (Decide refuses them after the conditions): the
		// configured ones among them.
		for _, list := range [2][]string{sent.Audiences, sent.Resources} {
			for _, t := range list {
				if _, ok := c.x.audiences[t]; ok {
					targets = append(targets, t)
				}
			}
		}
	}
	if noScopes {
		eff.Scopes, _ = c.x.grantScopes(r, &c.req.Subject, targets, nil)
		if eff.Scopes == nil {
			eff.Scopes = []string{}
		}
	}
	return &eff
}

// filter keeps the rules whose condition holds. When none is left because of
// false conditions, the subject is unacceptable to the client's policies (design
// §12: step 4, invalid_request).
//
// With strict, a condition that cannot be evaluated denies: the rules left choose
// the default target, and the erroring rule might have made it ambiguous. Without,
// it only drops its rule, with its reason: filter then runs to classify a denial
// already certain (no rule allows the targets), and an erroring condition of a rule
// that does not allow them must not turn invalid_target into its own refusal.
func (c *conditions) filter(rules []*policy.Rule, strict bool) ([]*policy.Rule, error) {
	out := make([]*policy.Rule, 0, len(rules))
	var why policy.Mismatches
	for _, r := range rules {
		ok, err := c.holds(r)
		if err != nil && strict {
			return nil, err
		}
		if err != nil {
			why = append(why, &policy.Mismatch{Rule: r.Name, Reason: "condition cannot be evaluated: " + evalError(err)})
			continue
		}
		if ok {
			out = append(out, r)
		} else {
			why = append(why, &policy.Mismatch{Rule: r.Name, Reason: "condition is false"})
		}
	}
	if len(out) == 0 && len(rules) > 0 {
		return nil, deny(oauth.InvalidRequest("the subject token is not acceptable to the client's policies: no policy's condition holds", why), "")
	}
	return out, nil
}

// conditionInput is what a condition sees of req (design §12).
func (x *Exchanger) conditionInput(req *Request, actor, actorIss string, now time.Time) *condition.Input {
	sub := &req.Subject
	in := &condition.Input{
		Subject: &condition.Subject{
			Sub: sub.Subject, Iss: x.issuerURL(sub), Type: sub.TokenType.ShortName(),
			Claims: sub.Claims, Scopes: sub.Scopes, Aud: sub.Audiences,
		},
		Actor:  &condition.Actor{Sub: actor, Iss: actorIss},
		Client: req.ClientID,
		Request: &condition.Request{
			Audiences: req.Audiences, Resources: req.Resources, Scopes: nonEmpty(req.Scopes),
			RequestedTokenType: oauth.TokenTypeAccessToken.ShortName(),
		},
		Now: now,
	}
	if req.RequestedType != "" {
		in.Request.RequestedTokenType = req.RequestedType.ShortName()
	}
	if d := sub.Act.Depth(); d > 0 {
		in.Subject.Act = make([]map[string]string, 0, d)
		for a := sub.Act; a != nil; a = a.Actor {
			iss := a.Issuer
			if iss == "" {
				iss = in.Subject.Iss // an actor without iss is one of the token issuer's own
			}
			in.Subject.Act = append(in.Subject.Act, map[string]string{"sub": a.Subject, "iss": iss})
		}
	}
	return in
}

// nonEmpty returns s without empty strings (a scope parameter's), s itself when it
// has none.
func nonEmpty(s []string) []string {
	if !slices.Contains(s, "") {
		return s
	}
	out := make([]string, 0, len(s))
	for _, v := range s {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// denyCheck is deny for a refusal Explain attributes to check of rule.
func denyCheck(err *oauth.Error, rule string, check Check) error {
	return &Denial{Err: err, Rule: rule, check: check}
}

// withCheck sets the check of a *Denial err.
func withCheck(err error, check Check) error {
	var den *Denial
	if errors.As(err, &den) {
		den.check = check
	}
	return err
}

// causeOf is the audit reason of a refusal: its cause, else its description.
func causeOf(err error) string {
	var oe *oauth.Error
	if !errors.As(err, &oe) {
		return err.Error()
	}
	if oe.Cause != nil {
		return oe.Cause.Error()
	}
	return oe.Description
}

// evalError is the evaluation error inside the refusal holds returns.
func evalError(err error) string {
	var oe *oauth.Error
	if errors.As(err, &oe) && oe.Cause != nil {
		if inner := errors.Unwrap(oe.Cause); inner != nil {
			return inner.Error()
		}
	}
	return causeOf(err)
}

// mismatchReason is a policy mismatch without the "policy NAME" prefix, which the
// RuleResult says already.
func mismatchReason(err error) string {
	var m *policy.Mismatch
	if errors.As(err, &m) {
		return m.Reason
	}
	return err.Error()
}
