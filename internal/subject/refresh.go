package subject

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// verifyRefresh checks a refresh token deputy issued, presented as a subject token
// (design §5: own refresh tokens, only by the client they were issued to — the
// exchange core checks that binding against the principal's ClientID). The token
// must be stored, not rotated, not expired and not revoked, nor its family or
// session. Presenting it does not use it up: it stays the client's to refresh with.
func (v *Verifier) verifyRefresh(ctx context.Context, role, raw string, now time.Time) (exchange.Principal, error) {
	typ := oauth.TokenTypeRefreshToken
	if role != "subject" || v.refresh == nil {
		return exchange.Principal{}, oauth.InvalidRequest(
			fmt.Sprintf("%s_token_type %s is not accepted", role, typ),
			fmt.Errorf("refresh tokens are not accepted as %s tokens here", role))
	}
	if len(raw) > 1024 {
		return exchange.Principal{}, oauth.InvalidRequest(role+"_token is too large", fmt.Errorf("refresh token of %d bytes", len(raw)))
	}
	sum := sha256.Sum256([]byte(raw))
	rt, err := v.refresh.RefreshTokenByHash(ctx, sum[:])
	switch {
	case errors.Is(err, store.ErrNotFound):
		return exchange.Principal{}, oauth.InvalidRequest(role+"_token is invalid", errors.New("no such refresh token"))
	case err != nil:
		return exchange.Principal{}, oauth.TemporarilyUnavailable("cannot check the refresh token now", err)
	}
	p := exchange.Principal{
		TokenType: typ, Issuer: Self, IssuerURL: v.tokens.Issuer(), Subject: rt.Subject,
		Audiences: rt.Audiences, Scopes: rt.Scopes, ClientID: rt.ClientID, JTI: rt.ID, ExpiresAt: rt.ExpiresAt,
	}
	if rt.JKT != "" {
		// Bound to a DPoP key (RFC 9449 §5): the exchange asks for a proof of it.
		p.Cnf = &oauth.Confirmation{JKT: rt.JKT}
	}
	fail := func(desc string, cause error) (exchange.Principal, error) {
		return exchange.Principal{TokenType: typ, Issuer: Self, Subject: rt.Subject, JTI: rt.ID},
			oauth.InvalidRequest(desc, fmt.Errorf("%s refresh token %s: %w", role, rt.ID, cause))
	}
	switch {
	case !rt.UsedAt.IsZero():
		return fail(role+"_token was already rotated", fmt.Errorf("rotated at %s", rt.UsedAt.UTC().Format(time.RFC3339)))
	case !now.Before(rt.ExpiresAt):
		return fail(role+"_token is expired", fmt.Errorf("expired at %s", rt.ExpiresAt.UTC().Format(time.RFC3339)))
	case v.tokens.IsRevoked(rt.ID) || v.tokens.IsRevoked(rt.FamilyID) || (rt.SessionID != "" && v.tokens.IsRevoked(rt.SessionID)):
		return fail(role+"_token is revoked", errors.New("it, its family or its session is revoked"))
	}
	if rt.Act != "" {
		if err := json.Unmarshal([]byte(rt.Act), &p.Act); err != nil {
			return fail(role+"_token is invalid", fmt.Errorf("stored act: %w", err))
		}
	}
	claims := map[string]any{}
	if rt.Claims != "" {
		if err := json.Unmarshal([]byte(rt.Claims), &claims); err != nil {
			return fail(role+"_token is invalid", fmt.Errorf("stored claims: %w", err))
		}
	}
	if !rt.AuthTime.IsZero() {
		claims["auth_time"] = rt.AuthTime.Unix()
	}
	if rt.ACR != "" {
		claims["acr"] = rt.ACR
	}
	if len(rt.AMR) > 0 {
		claims["amr"] = rt.AMR
	}
	if rt.IdP != "" {
		claims["idp"] = rt.IdP
	}
	if len(claims) > 0 {
		p.Claims = claims
	}
	return p, nil
}
