package exchange

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/deputy-auth/deputy/internal/policy"
	"github.com/deputy-auth/deputy/oauth"
)

// Claim names of a transaction token (draft-ietf-oauth-transaction-tokens):
// the transaction's id, its context (the request_context parameter), and the
// request's context (rctx: req_ip, authn, req_wl).
const (
	ClaimTxn  = "txn"
	ClaimTctx = "tctx"
	ClaimRctx = "rctx"
)

// Txn is what a replacement transaction token keeps of the one presented as
// subject token (README "Transaction tokens"): its txn, its tctx and its rctx.
type Txn struct {
	ID             string          // the txn claim
	Context        json.RawMessage // tctx as signed; nil when the presented token has none
	RequestContext map[string]any  // rctx
}

// decideTxn decides a request for a transaction token (requested_token_type
// …:txn_token), after the subject checks of step 4 that every exchange makes:
//
//   - target, invalid_target: the audience must be the trust domain or absent,
//     and no resource may be sent (a transaction token is addressed to the trust
//     domain, never to a policy's audiences);
//   - the deciding rule is the first of the rules accepting the subject whose
//     condition holds and whose requested_token_types lists txn_token; none →
//     invalid_request (a false condition is told apart as for other exchanges);
//   - the rule's require_may_act, then scopes (step 6, invalid_scope): requested ⊆
//     subject scopes (deputy's own tokens: a replaced transaction token's scope
//     too) ∩ the rule's scopes (when it lists any); none requested grants that
//     intersection.
//
// A transaction token carries no act and no cnf: it names the requesting client
// in rctx.req_wl, and travels unchanged through many services.
func (x *Exchanger) decideTxn(req *Request, live []*policy.Rule, actor, actorIss string, now time.Time) (Decision, error) {
	sub := &req.Subject
	conds := conditions{x: x, req: req, actor: actor, actorIss: actorIss, now: now, txn: true}
	if err := x.txnTarget(req); err != nil {
		if _, ferr := conds.filter(live, false); ferr != nil {
			return Decision{}, ferr
		}
		return Decision{}, err
	}
	var rule *policy.Rule
	for _, r := range live {
		if !r.AllowsRequestedType(oauth.TokenTypeTxnToken) {
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
		live, err := conds.filter(live, false)
		if err != nil {
			return Decision{}, err
		}
		why := explain(live, func(r *policy.Rule) error { return r.MatchRequestedType(oauth.TokenTypeTxnToken) })
		return Decision{}, deny(oauth.InvalidRequest("requested token type txn_token is not allowed for this client", why), "")
	}
	g, err := x.txnRuleChecks(rule, req)
	if err != nil {
		return Decision{}, err
	}
	d := Decision{
		Rule:          rule.Name,
		Subject:       sub.Subject,
		SubjectIssuer: sub.Issuer,
		Actor:         actor,
		Audiences:     []string{x.opts.TrustDomain},
		Scopes:        g.scopes,
		ExpiresAt:     x.expiry(oauth.TokenTypeTxnToken, sub, nil, now),
		IssuedType:    oauth.TokenTypeTxnToken,
		TokenType:     oauth.TokenTypeNA,
		Claims:        carriedClaims(sub.Claims),
		ParentJTI:     sub.JTI,
	}
	if sub.TokenType == oauth.TokenTypeTxnToken {
		d.Txn = replacedTxn(sub)
	}
	return d, nil
}

// replacedTxn reads the claims a replacement keeps from a transaction token
// presented as subject token; the subject check made sure txn is there.
func replacedTxn(sub *Principal) *Txn {
	t := &Txn{}
	t.ID, _ = sub.Claims[ClaimTxn].(string)
	t.Context = sub.Tctx
	if m, ok := sub.Claims[ClaimTctx].(map[string]any); ok && t.Context == nil {
		// A principal described by its claims (deputy policy explain).
		t.Context, _ = json.Marshal(m)
	}
	t.RequestContext, _ = sub.Claims[ClaimRctx].(map[string]any)
	return t
}

// txnTarget checks the targets of a transaction token request: the audience,
// when sent, is the trust domain (repeated or not), and there is no resource.
func (x *Exchanger) txnTarget(req *Request) error {
	if x.opts.TrustDomain == "" {
		return deny(oauth.InvalidRequest("transaction tokens are not issued by this server",
			errors.New("txn_tokens.trust_domain is not configured")), "")
	}
	if len(req.Resources) > 0 {
		return deny(oauth.InvalidTarget("a transaction token takes no resource; its audience is the trust domain",
			fmt.Errorf("resource %q sent with requested_token_type txn_token", req.Resources)), "")
	}
	for _, a := range req.Audiences {
		if a != x.opts.TrustDomain {
			return deny(oauth.InvalidTarget("the audience of a transaction token is the trust domain "+x.opts.TrustDomain,
				fmt.Errorf("audience %q is not the trust domain %q", a, x.opts.TrustDomain)), "")
		}
	}
	return nil
}

// txnRuleChecks applies the deciding rule's checks to a transaction token
// request: require_may_act (step 4) and scopes (step 6). max_chain and
// require_binding do not apply: a transaction token carries neither act nor cnf
// (a policy issuing one cannot have require_binding).
func (x *Exchanger) txnRuleChecks(rule *policy.Rule, req *Request) (granted, error) {
	sub := &req.Subject
	if err := rule.MatchMayAct(sub.MayAct != nil); err != nil {
		return granted{}, denyCheck(oauth.InvalidRequest("subject token has no may_act claim, which the policy for transaction tokens requires", err), rule.Name, CheckMayAct)
	}
	scopes, err := txnScopes(rule, sub, req.Scopes)
	if err != nil {
		return granted{}, withCheck(err, CheckScope)
	}
	return granted{scopes: scopes, typ: oauth.TokenTypeTxnToken}, nil
}

// txnScopes grants the scopes of a transaction token: allowed = the subject
// token's scopes (deputy's own tokens only; for a replacement, the presented
// transaction token's) ∩ the rule's scopes (when it lists any). Requested scopes
// must all be allowed; none requested grants all of allowed. Sorted,
// de-duplicated, nil when empty.
//
// Another issuer's subject token caps nothing (its scopes are not deputy's), and
// a transaction token has no audience whose scopes would: the rule's scopes are
// the only bound. A rule that lists none (the configuration refuses it, README
// "Transaction tokens") grants no scope to such a subject, rather than any.
func txnScopes(rule *policy.Rule, sub *Principal, requested []string) ([]string, error) {
	self := sub.Issuer == policy.SelfIssuer
	unbounded := !self && !rule.BoundsScopes()
	var out []string
	asked := false
	for _, s := range requested {
		if s == "" {
			continue
		}
		asked = true
		why := ""
		switch {
		case self && !slices.Contains(sub.Scopes, s):
			why = "is not in the subject token's scopes"
			if sub.TokenType == oauth.TokenTypeTxnToken {
				why = "is not in the replaced transaction token's scopes"
			}
		case unbounded:
			why = "is not bounded: the policy lists no scopes and the subject token is not deputy's"
		case !rule.AllowsScope(s):
			why = "is beyond the policy's scopes"
		}
		if why != "" {
			return nil, deny(oauth.InvalidScope(fmt.Sprintf("scope %q is beyond what may be granted", s),
				fmt.Errorf("scope %q %s (policy %s, transaction token)", s, why, rule.Name)), rule.Name)
		}
		out = append(out, s)
	}
	if !asked {
		if self {
			for _, s := range sub.Scopes {
				if rule.AllowsScope(s) {
					out = append(out, s)
				}
			}
		} else {
			out = append(out, rule.Scopes...) // none when unbounded
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// explainTxn is Explain for a transaction token request: per rule, the subject,
// the condition, the targets (the trust domain), the requested token type, then
// order and the deciding rule's own checks, as decideTxn makes them.
func (x *Exchanger) explainTxn(req Request, rules []*policy.Rule, now time.Time) []RuleResult {
	actor, actorIss := x.actorOf(&req)
	conds := conditions{x: x, req: &req, actor: actor, actorIss: actorIss, now: now, txn: true}
	return explainRules(rules, &req.Subject, &conds, x.txnTarget(&req), "", ruleWalk{
		allows: func(r *policy.Rule) bool { return r.AllowsRequestedType(oauth.TokenTypeTxnToken) },
		match: func(r *policy.Rule) (Check, error) {
			return CheckTokenType, r.MatchRequestedType(oauth.TokenTypeTxnToken)
		},
		checks: func(r *policy.Rule) error {
			_, err := x.txnRuleChecks(r, &req)
			return err
		},
	})
}
