package grant

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/store"
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
	now := req.Now
	if scopeParam != "" {
		// A refused scope must not spend the token: the client retries with it, and
		// that retry is no reuse. Scopes never change, so they can be checked first.
		cur, err := g.Store.RefreshTokenByHash(ctx, hashOf(value))
		if err == nil && cur.UsedAt.IsZero() && cur.ClientID == c.ID {
			if _, err := narrow(cur.Scopes, scopeParam); err != nil {
				ev.Subject, ev.ParentJTI = cur.Subject, cur.ID
				return nil, err
			}
		}
	}
	rt, err := g.Store.UseRefreshToken(ctx, hashOf(value), now)
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
	tokens := g.Users.Tokens
	switch {
	case rt.ClientID != c.ID:
		return nil, oauth.InvalidGrant("refresh token was issued to another client",
			fmt.Errorf("refresh token of client %q presented by %q", rt.ClientID, c.ID))
	case !now.Before(rt.ExpiresAt):
		return nil, oauth.InvalidGrant("refresh token is expired", nil)
	case tokens.IsRevoked(rt.ID) || tokens.IsRevoked(rt.FamilyID) || (rt.SessionID != "" && tokens.IsRevoked(rt.SessionID)):
		return nil, oauth.InvalidGrant("refresh token is revoked", nil)
	}
	scopes, err := narrow(rt.Scopes, scopeParam)
	if err != nil {
		return nil, err
	}
	return g.Users.issue(ctx, c, userGrant{
		subject: rt.Subject, sessionID: rt.SessionID, idp: rt.IdP, acr: rt.ACR, amr: rt.AMR,
		authTime: rt.AuthTime, scopes: scopes, granted: rt.Scopes, parent: rt.ID, family: rt.FamilyID,
	}, now, ev)
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

// reused revokes the family of a refresh token presented after it was rotated.
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
