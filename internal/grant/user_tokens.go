package grant

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// Revoker revokes a token and its descendants, recording the event (audit.Writer).
type Revoker interface {
	Revoke(ctx context.Context, r store.Revocation, e *store.AuditEvent) ([]store.Revocation, error)
}

// Trail reads the audit trail: where a replay finds out whether the request that
// won the race has recorded what it issued.
type Trail interface {
	EventsByParent(ctx context.Context, jti string) ([]store.AuditEvent, error)
}

// How long a replayed code or reused refresh token waits for the request that won
// the redemption to record its tokens (polling every settlePoll), so that the
// revocation covers them: the winner is answered, then revoked with the rest.
const (
	settleWait = 2 * time.Second
	settlePoll = 5 * time.Millisecond
)

// settle waits, up to settleWait, until trail holds an allowed issuance from
// parent — the tokens of the request that redeemed it first, which may still be in
// flight on this or another node when the replay arrives — and reports whether it
// found one. A code or refresh token spent with nothing issued from it recorded
// was spent by a request that failed (which gives it back, see release) or whose
// node died between the two commits: it handed nothing out, and presenting the
// credential again is no replay. Without a trail settle reports true at once.
func settle(ctx context.Context, trail Trail, parent string) bool {
	if trail == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, settleWait)
	defer cancel()
	tick := time.NewTicker(settlePoll)
	defer tick.Stop()
	for {
		events, err := trail.EventsByParent(ctx, parent)
		if err == nil {
			for _, e := range events {
				if e.Decision == store.DecisionAllow && e.Type == store.EventTokenIssued {
					return true
				}
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// releaseWait bounds giving back a spent code or refresh token (release).
const releaseWait = 5 * time.Second

// release gives back a code or refresh token spent by a request that then failed
// — before its tokens were minted, or when their record could not be committed —
// so that the client's retry redeems it like the first attempt instead of being
// taken for a replay (RFC 6749 §10.5, RFC 9700 §4.14.2 revoke on reuse: nothing
// was handed out, so nothing was reused). It runs even when the request's context
// has ended. If it fails too, the credential stays spent with nothing recorded for
// it: refused, but no replay (see settle).
func release(ctx context.Context, give func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseWait)
	defer cancel()
	_ = give(ctx)
}

// Accounts tells whether a user may still be issued tokens: an error for a local
// account that was disabled or deleted since the sign-in (an error wrapping
// store.ErrUnavailable when that cannot be known now); nil for users of upstream
// identity providers, whom deputy does not keep.
type Accounts interface {
	Usable(ctx context.Context, subject, idp string) error
}

// Profiles returns the identity claims of a user (name, email, …) for ID tokens.
type Profiles interface {
	Claims(ctx context.Context, subject, idp string) map[string]string
}

// UserTokens issues what a user's sign-in yields to a client: an access token for
// the client's audiences, a rotating refresh token when the client may refresh, and
// an ID token for OpenID Connect requests. The authorization_code and refresh_token
// grants share it.
type UserTokens struct {
	Tokens   *token.Service
	Refresh  store.RefreshTokens
	Profiles Profiles // optional
	// Accounts refuses codes and refresh tokens of users disabled since they
	// signed in (optional). Disabling revokes their tokens too; this check holds
	// even before that revocation is done, or reached this node.
	Accounts   Accounts
	AccessTTL  time.Duration
	IDTokenTTL time.Duration
	RefreshTTL time.Duration
}

// userGrant is what a code or a refresh token carries about the sign-in.
type userGrant struct {
	subject, sessionID, idp, acr, nonce string
	amr                                 []string
	authTime                            time.Time
	scopes                              []string            // of the access and ID tokens
	granted                             []string            // of a new refresh token: those of the grant (RFC 6749 §6); nil = scopes
	parent                              string              // lineage parent: the code or the refresh token
	family                              string              // lineage root of the refresh family: the code
	binding                             *oauth.Confirmation // cnf of the access token: the key the request proved; nil = bearer
	refreshJKT                          string              // DPoP key a new refresh token is bound to; "" = unbound
}

// RefreshTokenPrefix starts every refresh token deputy issues, so endpoints that take
// any token (introspection, revocation) can tell them from JWTs.
const RefreshTokenPrefix = "drt_"

// opaque returns a random opaque credential and its SHA-256.
func opaque(prefix string) (string, []byte) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	v := prefix + base64.RawURLEncoding.EncodeToString(b[:])
	return v, hashOf(v)
}

func hashOf(v string) []byte {
	sum := sha256.Sum256([]byte(v))
	return sum[:]
}

func (u *UserTokens) issue(ctx context.Context, c *client.Client, g userGrant, now time.Time, ev *store.AuditEvent) (*Issued, error) {
	if u.Accounts != nil {
		switch err := u.Accounts.Usable(ctx, g.subject, g.idp); {
		case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
			return nil, oauth.TemporarilyUnavailable("cannot check the user's account now", err)
		case err != nil:
			return nil, oauth.InvalidGrant("the user's account is disabled", err)
		}
	}
	aud := c.Audiences
	if len(aud) == 0 {
		aud = []string{c.ID}
	}
	at := &token.Claims{
		Subject: g.subject, Audience: aud, ClientID: c.ID, Scope: strings.Join(g.scopes, " "),
		IssuedAt: now.Unix(), NotBef: now.Unix(), Expiry: now.Add(u.AccessTTL).Unix(), ID: token.NewID(),
		AuthTime: g.authTime.Unix(), ACR: g.acr, AMR: g.amr, SID: g.sessionID, Cnf: g.binding,
	}
	if c.MayAct != "" {
		at.MayAct = &oauth.Actor{Subject: c.MayAct}
	}
	if g.idp != "" {
		// How the user signed in; carried through every exchange that follows.
		at.Extra = map[string]any{"idp": g.idp}
	}
	raw, err := u.Tokens.MintContext(ctx, oauth.JWTTypeAccessToken, at)
	if err != nil {
		return nil, oauth.ServerError(err)
	}
	ev.Type, ev.Subject, ev.ParentJTI = store.EventTokenIssued, g.subject, g.parent
	ev.Audiences, ev.Scopes = aud, at.Scopes()
	ev.TokenJTI, ev.TokenExpires = at.ID, time.Unix(at.Expiry, 0)
	// Each event of this request names its own token's binding, or none: the
	// others get the request's Detail without the access token's cnf.
	base := ev.Detail
	out := &Issued{Response: oauth.TokenResponse{
		AccessToken: raw, IssuedTokenType: oauth.TokenTypeAccessToken, TokenType: accessTokenType(g.binding),
		ExpiresIn: at.Expiry - now.Unix(), Scope: at.Scope,
	}}

	if c.HasGrant(oauth.GrantRefreshToken) && u.Refresh != nil && !unboundRefresh(c, g.binding, g.refreshJKT) {
		granted := g.granted
		if granted == nil {
			granted = g.scopes
		}
		value, hash := opaque(RefreshTokenPrefix)
		rt := store.RefreshToken{
			Hash: hash, ID: token.NewID(), FamilyID: g.family, ClientID: c.ID, SessionID: g.sessionID,
			Subject: g.subject, Scopes: granted, Audiences: aud, IdP: g.idp, AMR: g.amr, ACR: g.acr,
			AuthTime: g.authTime, IssuedAt: now, ExpiresAt: now.Add(u.RefreshTTL), JKT: g.refreshJKT,
		}
		if err := u.Refresh.InsertRefreshToken(ctx, rt); err != nil {
			return nil, oauth.TemporarilyUnavailable("cannot store the refresh token now", err)
		}
		out.Response.RefreshToken = value
		out.Events = append(out.Events, &store.AuditEvent{
			Type: store.EventTokenIssued, Subject: g.subject, ParentJTI: g.parent, Scopes: granted,
			Audiences: aud, TokenJTI: rt.ID, TokenExpires: rt.ExpiresAt, Reason: "refresh token",
			Detail: withCnf(base, detailCnf, refreshCnf(rt)),
		})
	}

	if slices.Contains(g.scopes, "openid") {
		id := &token.IDClaims{
			Subject: g.subject, Audience: token.Audience{c.ID}, IssuedAt: now.Unix(),
			Expiry: now.Add(u.IDTokenTTL).Unix(), AuthTime: g.authTime.Unix(), Nonce: g.nonce,
			ACR: g.acr, AMR: g.amr, SID: g.sessionID, AZP: c.ID, ATHash: u.Tokens.ATHash(c.IDTokenAlg, raw), ID: token.NewID(),
			IdP: g.idp,
		}
		if u.Profiles != nil {
			id.Profile = released(u.Profiles.Claims(ctx, g.subject, g.idp), g.scopes)
		}
		idt, err := u.Tokens.MintIDTokenContext(ctx, c.IDTokenAlg, id)
		if err != nil {
			return nil, oauth.ServerError(err)
		}
		out.Response.IDToken = idt
		out.Events = append(out.Events, &store.AuditEvent{
			Type: store.EventTokenIssued, Subject: g.subject, ParentJTI: g.parent, Audiences: []string{c.ID},
			TokenJTI: id.ID, TokenExpires: time.Unix(id.Expiry, 0), Reason: "id token", Detail: base,
		})
	}
	// Only now, with everything issued: a denial never names a cnf of its own.
	ev.Detail = withCnf(base, detailCnf, g.binding)
	return out, nil
}

// scopeClaims are the standard claims each OIDC scope releases (OIDC Core §5.4).
var scopeClaims = map[string][]string{
	"profile": {"name", "family_name", "given_name", "middle_name", "nickname", "preferred_username",
		"profile", "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at"},
	"email":   {"email", "email_verified"},
	"address": {"address"},
	"phone":   {"phone_number", "phone_number_verified"},
}

// released keeps the claims the granted scopes release.
func released(claims map[string]string, scopes []string) map[string]string {
	out := map[string]string{}
	for _, sc := range scopes {
		for _, name := range scopeClaims[sc] {
			if v, ok := claims[name]; ok {
				out[name] = v
			}
		}
	}
	return out
}

// Released is the claims of a user that the given scopes release (for userinfo).
func Released(claims map[string]string, scopes []string) map[string]string {
	return released(claims, scopes)
}
