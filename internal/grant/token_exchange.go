package grant

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// SubjectVerifier verifies a presented subject or actor token (internal/subject).
type SubjectVerifier interface {
	Verify(ctx context.Context, role, raw string, typ oauth.TokenType, now time.Time) (exchange.Principal, error)
}

// Decider applies the exchange rules (internal/exchange).
type Decider interface {
	Permits(clientID string) bool
	Decide(req exchange.Request, now time.Time) (exchange.Decision, error)
}

// TokenExchange is the RFC 8693 grant.
type TokenExchange struct {
	Tokens   *token.Service
	Subjects SubjectVerifier
	Exchange Decider
	// Refresh stores refresh tokens issued by exchanges (requested_token_type
	// refresh_token, or alongside an access token where the policy allows); nil
	// refuses them.
	Refresh store.RefreshTokens
}

// Permits allows confidential clients that some policy names (design §5, step 2).
func (g *TokenExchange) Permits(c *client.Client) bool {
	return !c.Public() && g.Exchange.Permits(c.ID)
}

// exchangeParams are the parameters of RFC 8693 §2.1, as sent.
type exchangeParams struct {
	subjectToken, actorToken string
	subjectType, actorType   oauth.TokenType
	audiences, resources     []string
	scopes                   []string
	requested                oauth.TokenType
	// requestContext is the request_context parameter of a transaction token
	// request, as sent; tctx is it checked (checkRequestContext).
	requestContext string
	tctx           json.RawMessage
	// onBehalfOf: the subject token is an on-behalf-of assertion
	// (exchange.Request.OnBehalfOf).
	onBehalfOf bool
}

func parseExchange(form map[string][]string) (*exchangeParams, error) {
	p := &exchangeParams{}
	var err error
	var st, at, rt, scope string
	if p.subjectToken, err = single(form, "subject_token"); err != nil {
		return nil, err
	}
	if st, err = single(form, "subject_token_type"); err != nil {
		return nil, err
	}
	if p.subjectType, err = tokenType("subject_token_type", st); err != nil {
		return nil, err
	}
	if p.actorToken, err = optional(form, "actor_token"); err != nil {
		return nil, err
	}
	if at, err = optional(form, "actor_token_type"); err != nil {
		return nil, err
	}
	if (p.actorToken == "") != (at == "") {
		return nil, oauth.InvalidRequest("actor_token and actor_token_type must be sent together", nil)
	}
	if at != "" {
		if p.actorType, err = tokenType("actor_token_type", at); err != nil {
			return nil, err
		}
	}
	p.audiences, p.resources = repeated(form, "audience"), repeated(form, "resource")
	if scope, err = optional(form, "scope"); err != nil {
		return nil, err
	}
	p.scopes = strings.Fields(scope)
	if rt, err = optional(form, "requested_token_type"); err != nil {
		return nil, err
	}
	if rt != "" {
		if p.requested, err = tokenType("requested_token_type", rt); err != nil {
			return nil, err
		}
	}
	if p.requestContext, err = optional(form, paramRequestContext); err != nil {
		return nil, err
	}
	if err := checkRequestContext(p); err != nil {
		return nil, err
	}
	return p, nil
}

func tokenType(param, v string) (oauth.TokenType, error) {
	t := oauth.TokenType(v)
	if t.ShortName() == "" {
		return "", oauth.InvalidRequest(param+" "+v+" is not a known token type", nil)
	}
	return t, nil
}

// Handle verifies the tokens, decides, mints and describes the exchange.
func (g *TokenExchange) Handle(ctx context.Context, req *Request, c *client.Client, ev *store.AuditEvent) (*Issued, error) {
	p, err := parseExchange(req.Form)
	if err != nil {
		return nil, err
	}
	return g.exchange(ctx, req, c, ev, p)
}

// exchange is the exchange of p, whatever grant's parameters it was read from
// (RFC 8693's, or the on-behalf-of grant's): it verifies the tokens, decides,
// mints and describes the exchange in ev.
func (g *TokenExchange) exchange(ctx context.Context, req *Request, c *client.Client, ev *store.AuditEvent, p *exchangeParams) (*Issued, error) {
	now := req.Now
	subj, err := g.verifySubject(ctx, "subject", p.subjectToken, p.subjectType, req)
	ev.Subject, ev.ParentJTI = subj.Subject, subj.JTI
	if subj.Issuer != "self" {
		ev.SubjectIssuer = subj.IssuerURL
	}
	if err != nil {
		return nil, err
	}
	// The subject token's binding goes on record with the outcome, a denial too.
	ev.Detail = withCnf(ev.Detail, detailSubjectCnf, subj.Cnf)
	xreq := exchange.Request{
		ClientID: c.ID, Subject: subj, Audiences: p.audiences, Resources: p.resources,
		Scopes: p.scopes, RequestedType: p.requested, Binding: req.Binding, OnBehalfOf: p.onBehalfOf,
	}
	if p.actorToken != "" {
		act, err := g.verifySubject(ctx, "actor", p.actorToken, p.actorType, req)
		if err != nil {
			return nil, err
		}
		xreq.Actor = &act
	}
	d, err := g.decide(ctx, xreq, req)
	if err != nil {
		return nil, err
	}
	ev.Rule = d.Rule
	ev.Type = store.EventTokenExchanged
	ev.Actors = d.Act.Chain()
	if d.Mode == exchange.ModeImpersonation {
		ev.Actors = append([]string{d.Actor}, ev.Actors...)
		ev.Detail = withCnf(detailWith(oauth.GrantTokenExchange, "mode", "impersonation"), detailSubjectCnf, subj.Cnf)
	}

	ev.Audiences, ev.Scopes = d.Audiences, d.Scopes
	scope := strings.Join(d.Scopes, " ")
	out := &Issued{Response: oauth.TokenResponse{IssuedTokenType: d.IssuedType, TokenType: d.TokenType, Scope: scope}}
	var exp time.Time
	switch d.IssuedType {
	case oauth.TokenTypeAccessToken, oauth.TokenTypeJWT:
		typ := oauth.JWTTypeAccessToken
		if d.IssuedType == oauth.TokenTypeJWT {
			typ = oauth.JWTTypeJWT
		}
		claims := &token.Claims{
			Subject: d.Subject, Audience: d.Audiences, ClientID: c.ID, Scope: scope,
			Act: d.Act, IssuedAt: now.Unix(), NotBef: now.Unix(), Expiry: d.ExpiresAt.Unix(), ID: token.NewID(),
			Cnf: d.Cnf, // the requester's key (RFC 9449 §6, RFC 8705 §3), never the subject token's
		}
		if c.MayAct != "" {
			claims.MayAct = &oauth.Actor{Subject: c.MayAct}
		}
		carry(claims, d.Claims)
		if out.Response.AccessToken, err = g.Tokens.MintContext(ctx, typ, claims); err != nil {
			return nil, oauth.ServerError(err)
		}
		ev.TokenJTI, exp = claims.ID, time.Unix(claims.Expiry, 0)
	case oauth.TokenTypeIDToken:
		// An ID token of the subject for the target audiences (OIDC Core §2), the
		// delegating client as its azp and the delegation in act. It grants nothing:
		// no scope claim, and token_type N_A.
		var at token.Claims
		carry(&at, d.Claims)
		id := &token.IDClaims{
			Subject: d.Subject, Audience: d.Audiences, AZP: c.ID, IssuedAt: now.Unix(), Expiry: d.ExpiresAt.Unix(),
			AuthTime: at.AuthTime, ACR: at.ACR, AMR: at.AMR, Act: d.Act, ID: token.NewID(), Extra: at.Extra,
		}
		if idp, ok := at.Extra["idp"].(string); ok {
			id.IdP = idp
		}
		if out.Response.AccessToken, err = g.Tokens.MintIDTokenContext(ctx, c.IDTokenAlg, id); err != nil {
			return nil, oauth.ServerError(err)
		}
		ev.TokenJTI, exp = id.ID, time.Unix(id.Expiry, 0)
	case oauth.TokenTypeTxnToken:
		if out.Response.AccessToken, exp, err = g.mintTxn(ctx, req, c, d, p.tctx, ev); err != nil {
			return nil, err
		}
	case oauth.TokenTypeRefreshToken:
		value, rt, err := g.refreshToken(ctx, c, d, d.ExpiresAt, now)
		if err != nil {
			return nil, err
		}
		out.Response.AccessToken = value
		ev.TokenJTI, exp = rt.ID, rt.ExpiresAt
	default:
		return nil, &exchange.Denial{Rule: d.Rule, Err: oauth.InvalidRequest("requested_token_type "+string(d.IssuedType)+" is not supported by this server", nil)}
	}
	ev.TokenExpires = exp
	out.Response.ExpiresIn = exp.Unix() - now.Unix()

	// design §5: a refresh token alongside the access token only where the policy
	// lists refresh_token, and only for a client that may refresh.
	if d.IssuedType == oauth.TokenTypeAccessToken && !d.RefreshExpiresAt.IsZero() && c.HasGrant(oauth.GrantRefreshToken) && g.Refresh != nil {
		value, rt, err := g.refreshToken(ctx, c, d, d.RefreshExpiresAt, now)
		if err != nil {
			return nil, err
		}
		out.Response.RefreshToken = value
		out.Events = append(out.Events, &store.AuditEvent{
			Type: store.EventTokenExchanged, Subject: ev.Subject, SubjectIssuer: ev.SubjectIssuer, ParentJTI: ev.ParentJTI,
			Actors: ev.Actors, Audiences: d.Audiences, Scopes: d.Scopes, Rule: d.Rule,
			TokenJTI: rt.ID, TokenExpires: rt.ExpiresAt, Reason: "refresh token", Detail: withCnf(ev.Detail, detailCnf, refreshCnf(rt)),
		})
	}
	// Only now, with everything issued: a denial never names a cnf of its own.
	ev.Detail = withCnf(ev.Detail, detailCnf, d.Cnf)
	return out, nil
}

// refreshToken stores a refresh token of an exchange, the root of its own rotation
// family, remembering what every access token refreshed from it carries (subject,
// audiences, scopes, act, claims) and expiring at exp, which rotation keeps: it
// never outlives the subject token (design §5 "Lifetime").
func (g *TokenExchange) refreshToken(ctx context.Context, c *client.Client, d exchange.Decision, exp, now time.Time) (string, store.RefreshToken, error) {
	if g.Refresh == nil {
		return "", store.RefreshToken{}, &exchange.Denial{Rule: d.Rule, Err: oauth.InvalidRequest("refresh tokens are not issued by this server", nil)}
	}
	value, hash := opaque(RefreshTokenPrefix)
	id := token.NewID()
	rt := store.RefreshToken{
		Hash: hash, ID: id, FamilyID: id, ClientID: c.ID, Subject: d.Subject, Scopes: d.Scopes,
		Audiences: d.Audiences, IssuedAt: now, ExpiresAt: exp, Rule: d.Rule,
	}
	if d.Cnf != nil {
		// Bound to the exchange's DPoP key (RFC 9449 §5): refreshing asks for a proof
		// of it, and what it yields is bound to it again.
		rt.JKT = d.Cnf.JKT
	}
	if d.Act != nil {
		b, err := json.Marshal(d.Act)
		if err != nil {
			return "", rt, oauth.ServerError(err)
		}
		rt.Act = string(b)
	}
	if len(d.Claims) > 0 {
		b, err := json.Marshal(d.Claims)
		if err != nil {
			return "", rt, oauth.ServerError(err)
		}
		rt.Claims = string(b)
	}
	if err := g.Refresh.InsertRefreshToken(ctx, rt); err != nil {
		return "", rt, oauth.TemporarilyUnavailable("cannot store the refresh token now", err)
	}
	return value, rt, nil
}

// Keys of an exchange event's Detail that record bindings (README "Audit trail"):
// the cnf of the token issued and that of the subject token, each as the cnf claim
// reads ({"jkt": …} or {"x5t#S256": …}); absent for bearer tokens.
const (
	detailCnf        = "cnf"
	detailSubjectCnf = "subject_cnf"
)

// withCnf returns the event Detail JSON object detail with key set to cnf, or
// detail unchanged when cnf binds nothing: the records of bearer exchanges stay
// as they were.
func withCnf(detail, key string, cnf *oauth.Confirmation) string {
	if !cnf.Bound() {
		return detail
	}
	m := map[string]json.RawMessage{}
	if detail != "" {
		if err := json.Unmarshal([]byte(detail), &m); err != nil {
			m = map[string]json.RawMessage{}
		}
	}
	m[key], _ = json.Marshal(cnf)
	b, _ := json.Marshal(m)
	return string(b)
}

// refreshCnf is the binding of a stored refresh token, for its audit record.
func refreshCnf(rt store.RefreshToken) *oauth.Confirmation {
	if rt.JKT == "" {
		return nil
	}
	return &oauth.Confirmation{JKT: rt.JKT}
}

// carry copies the subject's identity claims that travel with it.
func carry(c *token.Claims, from map[string]any) {
	for k, v := range from {
		switch k {
		case "auth_time":
			if n, ok := v.(int64); ok {
				c.AuthTime = n
			} else if f, ok := v.(float64); ok {
				c.AuthTime = int64(f)
			}
		case "acr":
			c.ACR, _ = v.(string)
		case "amr":
			switch a := v.(type) {
			case []string:
				c.AMR = a
			case []any:
				for _, x := range a {
					if s, ok := x.(string); ok {
						c.AMR = append(c.AMR, s)
					}
				}
			}
		default:
			if c.Extra == nil {
				c.Extra = map[string]any{}
			}
			c.Extra[k] = v
		}
	}
}
