package grant

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/deputy-auth/deputy/internal/authorize"
	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// AuthorizationCode is the authorization_code grant (RFC 6749 §4.1.3, RFC 7636 §4.5,
// OIDC Core §3.1.3). A code is redeemed once; a second redemption revokes every
// token issued from it, down the exchange lineage.
type AuthorizationCode struct {
	Codes   store.Codes
	Revoker Revoker
	Users   *UserTokens
	Trail   Trail // optional: a replay waits for the first redemption's tokens (see settle)
}

// Handle redeems the code and issues the user's tokens.
func (g *AuthorizationCode) Handle(ctx context.Context, req *Request, c *client.Client, ev *store.AuditEvent) (*Issued, error) {
	code, err := single(req.Form, "code")
	if err != nil {
		return nil, err
	}
	redirectURI, err := optional(req.Form, "redirect_uri")
	if err != nil {
		return nil, err
	}
	verifier, err := optional(req.Form, "code_verifier")
	if err != nil {
		return nil, err
	}
	now, hash := req.Now, hashOf(code)
	// RFC 6749 §4.1.3 and RFC 7636 §4.6 list what a redemption must pass: the code
	// issued to this client, its redirect_uri, its code_verifier. They are checked
	// before the code is redeemed, so that a request failing them does not use it up
	// and, for a code redeemed before, revokes nothing: whoever intercepted a code —
	// the attack PKCE makes harmless — can neither lock the user out of the sign-in
	// nor fake a replay. A replay that passes them revokes what the code issued.
	ac, err := g.Codes.CodeByHash(ctx, hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, oauth.InvalidGrant("authorization code is invalid", errors.New("no such code"))
	case err != nil:
		return nil, oauth.TemporarilyUnavailable("cannot redeem the code now", err)
	}
	ev.Subject, ev.ParentJTI = ac.Subject, ac.ID
	if err := presentedBy(&ac, c, redirectURI, verifier); err != nil {
		return nil, err
	}
	if err := provesKey(req, ac.DPoPJKT, "authorization code"); err != nil {
		return nil, err
	}
	if ac.RedeemedAt.IsZero() {
		if err := g.usable(&ac, now); err != nil {
			return nil, err
		}
	}
	ac, err = g.Codes.RedeemCode(ctx, hash, now)
	if errors.Is(err, store.ErrConflict) && !settle(ctx, g.Trail, ac.ID) {
		// Redeemed, but nothing issued from it is recorded: the redemption handed
		// nothing out (see settle). It may have given the code back since.
		first := ac
		if ac, err = g.Codes.RedeemCode(ctx, hash, now); errors.Is(err, store.ErrConflict) {
			return nil, oauth.InvalidGrant("authorization code was already used",
				fmt.Errorf("code %s redeemed at %s with no tokens recorded for it: not taken for a replay",
					first.ID, first.RedeemedAt.UTC().Format(time.RFC3339Nano)))
		}
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, oauth.InvalidGrant("authorization code is invalid", errors.New("no such code"))
	case errors.Is(err, store.ErrConflict):
		return nil, g.replayed(ctx, req, c, ac)
	case err != nil:
		return nil, oauth.TemporarilyUnavailable("cannot redeem the code now", err)
	}
	giveBack := func(ctx context.Context) {
		release(ctx, func(ctx context.Context) error { return g.Codes.ReleaseCode(ctx, hash, now) })
	}
	issued, err := g.issue(ctx, c, ac, req.Binding, now, ev)
	if err != nil {
		giveBack(ctx)
		return nil, err
	}
	issued.Undo = giveBack
	return issued, nil
}

// issue issues the user's tokens for a code just redeemed.
func (g *AuthorizationCode) issue(ctx context.Context, c *client.Client, ac store.AuthCode, binding *oauth.Confirmation, now time.Time, ev *store.AuditEvent) (*Issued, error) {
	// A sign-out may have landed since the checks above.
	if err := g.usable(&ac, now); err != nil {
		return nil, err
	}
	return g.Users.issue(ctx, c, userGrant{
		subject: ac.Subject, sessionID: ac.SessionID, idp: ac.IdP, acr: ac.ACR, amr: ac.AMR, nonce: ac.Nonce,
		authTime: ac.AuthTime, scopes: ac.Scopes, parent: ac.ID, family: ac.ID,
		binding: binding, refreshJKT: refreshJKT(c, binding),
	}, now, ev)
}

// presentedBy refuses a redemption by another client than the code's, or without
// the redirect_uri and code_verifier of its authorization request (RFC 6749 §4.1.3,
// RFC 7636 §4.6).
func presentedBy(ac *store.AuthCode, c *client.Client, redirectURI, verifier string) error {
	switch {
	case ac.ClientID != c.ID:
		return oauth.InvalidGrant("authorization code was issued to another client",
			fmt.Errorf("code of client %q presented by %q", ac.ClientID, c.ID))
	case ac.RedirectURI != "" && redirectURI != ac.RedirectURI:
		// Required, and identical, when the authorization request carried it (the
		// code then records it).
		return oauth.InvalidGrant("redirect_uri does not match the authorization request", nil)
	case ac.RedirectURI == "" && redirectURI != "" && !slices.Contains(c.RedirectURIs, redirectURI):
		return oauth.InvalidGrant("redirect_uri is not registered for this client", nil)
	case ac.CodeChallenge != "" && verifier == "":
		return oauth.InvalidGrant("code_verifier is required", nil)
	case ac.CodeChallenge != "" && !authorize.VerifyPKCE(ac.CodeChallenge, verifier):
		return oauth.InvalidGrant("code_verifier does not match the code_challenge", nil)
	case ac.CodeChallenge == "" && verifier != "":
		return oauth.InvalidGrant("code_verifier sent for a code without code_challenge", nil)
	}
	return nil
}

// usable refuses a code that is expired, or revoked (itself or its session).
func (g *AuthorizationCode) usable(ac *store.AuthCode, now time.Time) error {
	switch {
	case !now.Before(ac.ExpiresAt):
		return oauth.InvalidGrant("authorization code is expired", nil)
	case g.Users.Tokens.IsRevoked(ac.ID) || g.Users.Tokens.IsRevoked(ac.SessionID):
		return oauth.InvalidGrant("authorization code is revoked", errors.New("its session ended"))
	}
	return nil
}

// replayed revokes everything issued from a code presented a second time
// (RFC 6749 §4.1.2, RFC 9700 §4.5) — its first redemption's tokens recorded, see
// settle — and refuses the request.
func (g *AuthorizationCode) replayed(ctx context.Context, req *Request, c *client.Client, ac store.AuthCode) error {
	reason := "authorization code presented again"
	_, err := g.Revoker.Revoke(ctx, store.Revocation{JTI: ac.ID, ExpiresAt: req.Now.Add(g.Users.RefreshTTL), RevokedAt: req.Now, Reason: reason},
		&store.AuditEvent{ClientID: c.ID, Subject: ac.Subject, RequestID: req.RequestID, RemoteAddr: req.RemoteAddr, Reason: reason})
	if err != nil {
		return oauth.TemporarilyUnavailable("cannot revoke the replayed code's tokens now", err)
	}
	return oauth.InvalidGrant("authorization code was already used; the tokens issued for it are revoked",
		fmt.Errorf("code %s first redeemed at %s", ac.ID, ac.RedeemedAt.UTC().Format(time.RFC3339)))
}
