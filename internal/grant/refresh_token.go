package grant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// RefreshToken is the refresh_token grant (RFC 6749 §6) with rotation: every use
// returns a new refresh token and retires the old one; presenting a retired one
// again revokes the whole family — every refresh and access token descending from
// the same authorization code, and everything exchanged from them (RFC 9700 §4.14.2).
type RefreshToken struct {
	Store   store.RefreshTokens
	Revoker Revoker
	Users   *UserTokens
	Trail   Trail // optional: a reuse waits for the rotation's tokens (see settle)
}

// Handle rotates the refresh token and issues fresh tokens.
func (g *RefreshToken) Handle(ctx context.Context, req *Request, c *client.Client, ev *store.AuditEvent) (*Issued, error) {
	value, err := single(req.Form, "refresh_token")
	if err != nil {
		return nil, err
	}
	scopeParam, err := optional(req.Form, "scope")
	if err != nil {
		return nil, err
	}
	now, hash := req.Now, hashOf(value)
	// What does not need the token spent is checked before it is, so that a refused
	// request spends nothing and revokes nothing. The client first (RFC 6749 §6: the
	// token is bound to the client it was issued to): presented by another one it is
	// refused, rotated or not, so whoever holds a stolen token cannot make its
	// owner's next refresh look like reuse.
	cur, err := g.Store.RefreshTokenByHash(ctx, hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, oauth.InvalidGrant("refresh token is invalid", errors.New("no such refresh token"))
	case err != nil:
		return nil, oauth.TemporarilyUnavailable("cannot use the refresh token now", err)
	}
	ev.Subject, ev.ParentJTI = cur.Subject, cur.ID
	if cur.ClientID != c.ID {
		return nil, oauth.InvalidGrant("refresh token was issued to another client",
			fmt.Errorf("refresh token of client %q presented by %q", cur.ClientID, c.ID))
	}
	// A bound token presented without its key is refused unspent too: whoever
	// stole it cannot use it, nor make its owner's next refresh look like reuse.
	if err := provesKey(req, cur.JKT, "refresh token"); err != nil {
		return nil, err
	}
	if cur.UsedAt.IsZero() {
		// A rotated token is a reuse, whatever else is wrong with it; one not rotated
		// yet is refused unspent when expired, revoked or asked for more scopes (the
		// client retries with less, and that retry is no reuse).
		if err := g.usable(&cur, now); err != nil {
			return nil, err
		}
		if _, err := narrow(cur.Scopes, scopeParam); err != nil {
			return nil, err
		}
	}
	rt, err := g.Store.UseRefreshToken(ctx, hash, now)
	if errors.Is(err, store.ErrConflict) && !settle(ctx, g.Trail, rt.ID) {
		// Spent, but nothing issued from it is recorded: the rotation that spent it
		// handed nothing out (see settle). It may have given the token back since.
		first := rt
		if rt, err = g.Store.UseRefreshToken(ctx, hash, now); errors.Is(err, store.ErrConflict) {
			ev.Subject, ev.ParentJTI = first.Subject, first.ID
			return nil, oauth.InvalidGrant("refresh token was already used",
				fmt.Errorf("refresh token %s spent at %s with no tokens recorded for it: not taken for a reuse",
					first.ID, first.UsedAt.UTC().Format(time.RFC3339Nano)))
		}
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, oauth.InvalidGrant("refresh token is invalid", errors.New("no such refresh token"))
	case errors.Is(err, store.ErrConflict):
		ev.Subject, ev.ParentJTI = rt.Subject, rt.ID
		return nil, g.reused(ctx, req, c, rt)
	case err != nil:
		return nil, oauth.TemporarilyUnavailable("cannot use the refresh token now", err)
	}
	ev.Subject, ev.ParentJTI = rt.Subject, rt.ID
	giveBack := func(ctx context.Context) {
		release(ctx, func(ctx context.Context) error { return g.Store.ReleaseRefreshToken(ctx, hash, now) })
	}
	issued, err := g.rotate(ctx, c, rt, scopeParam, req.Binding, now, ev)
	if err != nil {
		giveBack(ctx)
		return nil, err
	}
	issued.Undo = giveBack
	return issued, nil
}

// rotate issues the tokens of a refresh token just spent.
func (g *RefreshToken) rotate(ctx context.Context, c *client.Client, rt store.RefreshToken, scopeParam string, binding *oauth.Confirmation, now time.Time, ev *store.AuditEvent) (*Issued, error) {
	// A revocation may have landed since the checks above.
	if err := g.usable(&rt, now); err != nil {
		return nil, err
	}
	scopes, err := narrow(rt.Scopes, scopeParam)
	if err != nil {
		return nil, err
	}
	if rt.Exchanged() {
		return g.exchanged(ctx, c, rt, scopes, binding, now, ev)
	}
	return g.Users.issue(ctx, c, userGrant{
		subject: rt.Subject, sessionID: rt.SessionID, idp: rt.IdP, acr: rt.ACR, amr: rt.AMR,
		authTime: rt.AuthTime, scopes: scopes, granted: rt.Scopes, parent: rt.ID, family: rt.FamilyID,
		binding: binding, refreshJKT: rotatedJKT(c, rt, binding),
	}, now, ev)
}

// usable refuses a refresh token that is expired or revoked (itself, its family or
// its session).
func (g *RefreshToken) usable(rt *store.RefreshToken, now time.Time) error {
	tokens := g.Users.Tokens
	switch {
	case !now.Before(rt.ExpiresAt):
		return oauth.InvalidGrant("refresh token is expired", nil)
	case tokens.IsRevoked(rt.ID) || tokens.IsRevoked(rt.FamilyID) || (rt.SessionID != "" && tokens.IsRevoked(rt.SessionID)):
		return oauth.InvalidGrant("refresh token is revoked", nil)
	}
	return nil
}

// narrow returns the scopes of the access token a refresh request asks for: those
// granted when it names none, else the named ones, each of which must have been
// granted (RFC 6749 §6).
func narrow(granted []string, scopeParam string) ([]string, error) {
	if scopeParam == "" {
		return granted, nil
	}
	scopes := strings.Fields(scopeParam)
	for _, s := range scopes {
		if !slices.Contains(granted, s) {
			return nil, oauth.InvalidScope("scope "+s+" was not granted to this refresh token", nil)
		}
	}
	return scopes, nil
}

// reused revokes the family of a refresh token presented after it was rotated
// (the rotation's tokens recorded, see settle).
func (g *RefreshToken) reused(ctx context.Context, req *Request, c *client.Client, rt store.RefreshToken) error {
	reason := "refresh token reused after rotation"
	_, err := g.Revoker.Revoke(ctx, store.Revocation{JTI: rt.FamilyID, ExpiresAt: req.Now.Add(g.Users.RefreshTTL), RevokedAt: req.Now, Reason: reason},
		&store.AuditEvent{ClientID: c.ID, Subject: rt.Subject, RequestID: req.RequestID, RemoteAddr: req.RemoteAddr, Reason: reason})
	if err != nil {
		return oauth.TemporarilyUnavailable("cannot revoke the reused refresh token's family now", err)
	}
	return oauth.InvalidGrant("refresh token was already used; its family is revoked",
		fmt.Errorf("refresh token %s rotated at %s", rt.ID, rt.UsedAt.UTC().Format(time.RFC3339)))
}

// exchanged refreshes a refresh token a token exchange issued: the new access token
// says what the exchange decided (subject, audiences, act, carried claims, the
// policy rule in the audit record), with the scopes asked for; neither it nor the
// rotated refresh token outlives the first one, which never outlived the exchange's
// subject token (design §5 "Lifetime").
func (g *RefreshToken) exchanged(ctx context.Context, c *client.Client, rt store.RefreshToken, scopes []string, binding *oauth.Confirmation, now time.Time, ev *store.AuditEvent) (*Issued, error) {
	at := &token.Claims{
		Subject: rt.Subject, Audience: rt.Audiences, ClientID: c.ID, Scope: strings.Join(scopes, " "),
		IssuedAt: now.Unix(), NotBef: now.Unix(), Expiry: now.Add(g.Users.AccessTTL).Unix(), ID: token.NewID(),
		Cnf: binding,
	}
	if limit := rt.ExpiresAt.Unix(); limit < at.Expiry {
		at.Expiry = limit
	}
	if rt.Act != "" {
		if err := json.Unmarshal([]byte(rt.Act), &at.Act); err != nil {
			return nil, oauth.ServerError(fmt.Errorf("refresh token %s: stored act: %w", rt.ID, err))
		}
	}
	if rt.Claims != "" {
		var claims map[string]any
		if err := json.Unmarshal([]byte(rt.Claims), &claims); err != nil {
			return nil, oauth.ServerError(fmt.Errorf("refresh token %s: stored claims: %w", rt.ID, err))
		}
		carry(at, claims)
	}
	if c.MayAct != "" {
		at.MayAct = &oauth.Actor{Subject: c.MayAct}
	}
	raw, err := g.Users.Tokens.MintContext(ctx, oauth.JWTTypeAccessToken, at)
	if err != nil {
		return nil, oauth.ServerError(err)
	}
	ev.Type, ev.Rule, ev.Actors = store.EventTokenIssued, rt.Rule, at.Act.Chain()
	ev.Audiences, ev.Scopes = rt.Audiences, at.Scopes()
	ev.TokenJTI, ev.TokenExpires = at.ID, time.Unix(at.Expiry, 0)

	value, hash := opaque(RefreshTokenPrefix)
	next := rt
	next.Hash, next.ID, next.IssuedAt, next.UsedAt = hash, token.NewID(), now, time.Time{}
	next.JKT = rotatedJKT(c, rt, binding)
	if err := g.Store.InsertRefreshToken(ctx, next); err != nil {
		return nil, oauth.TemporarilyUnavailable("cannot store the refresh token now", err)
	}
	// Each event names its own token's binding (README "Audit trail"); ev gets the
	// access token's once nothing can fail any more.
	base := ev.Detail
	ev.Detail = withCnf(base, detailCnf, binding)
	return &Issued{
		Response: oauth.TokenResponse{
			AccessToken: raw, IssuedTokenType: oauth.TokenTypeAccessToken, TokenType: accessTokenType(binding),
			ExpiresIn: at.Expiry - now.Unix(), Scope: at.Scope, RefreshToken: value,
		},
		Events: []*store.AuditEvent{{
			Type: store.EventTokenIssued, Subject: rt.Subject, ParentJTI: rt.ID, Scopes: rt.Scopes, Audiences: rt.Audiences,
			Actors: ev.Actors, Rule: rt.Rule, TokenJTI: next.ID, TokenExpires: next.ExpiresAt, Reason: "refresh token",
			Detail: withCnf(base, detailCnf, refreshCnf(next)),
		}},
	}, nil
}

// rotatedJKT is the DPoP key the refresh token that replaces rt is bound to: rt's
// (provesKey checked the request proved it), or, for a public client's token not
// bound yet, the key of this request's proof (RFC 9449 §5).
func rotatedJKT(c *client.Client, rt store.RefreshToken, binding *oauth.Confirmation) string {
	if rt.JKT != "" {
		return rt.JKT
	}
	return refreshJKT(c, binding)
}
