package grant

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// ClientCredentials is the client_credentials grant (RFC 6749 §4.4): the client's own
// token, sub = client_id = the client, aud = its configured audiences.
type ClientCredentials struct {
	Tokens *token.Service
	TTL    time.Duration
}

// Permits refuses public clients, which have no credentials to present.
func (g *ClientCredentials) Permits(c *client.Client) bool { return !c.Public() }

// Handle issues the access token.
func (g *ClientCredentials) Handle(ctx context.Context, req *Request, c *client.Client, ev *store.AuditEvent) (*Issued, error) {
	ev.Subject = c.ID
	scopeParam, err := optional(req.Form, "scope")
	if err != nil {
		return nil, err
	}
	resources := repeated(req.Form, "resource")
	scopes := c.Scopes
	if scopeParam != "" {
		scopes = strings.Fields(scopeParam)
		for _, s := range scopes {
			if !contains(c.Scopes, s) {
				return nil, oauth.InvalidScope("scope "+s+" is not allowed for this client", fmt.Errorf("client %q requested scope %q", c.ID, s))
			}
		}
	}
	aud := c.Audiences
	if len(resources) > 0 {
		for _, r := range resources {
			if !contains(c.Audiences, r) {
				return nil, oauth.InvalidTarget("resource "+r+" is not available to this client", nil)
			}
		}
		aud = dedupe(resources)
	}
	if len(aud) == 0 {
		aud = []string{c.ID}
	}
	now := req.Now
	exp := now.Add(g.TTL)
	claims := &token.Claims{
		Subject: c.ID, Audience: aud, ClientID: c.ID, Scope: strings.Join(dedupe(scopes), " "),
		IssuedAt: now.Unix(), NotBef: now.Unix(), Expiry: exp.Unix(), ID: token.NewID(), Cnf: req.Binding,
	}
	if c.MayAct != "" {
		claims.MayAct = &oauth.Actor{Subject: c.MayAct}
	}
	raw, err := g.Tokens.MintContext(ctx, oauth.JWTTypeAccessToken, claims)
	if err != nil {
		return nil, oauth.ServerError(err)
	}
	ev.Type = store.EventTokenIssued
	ev.Audiences, ev.Scopes = aud, claims.Scopes()
	ev.TokenJTI, ev.TokenExpires = claims.ID, time.Unix(claims.Expiry, 0)
	ev.Detail = withCnf(ev.Detail, detailCnf, claims.Cnf)
	return &Issued{Response: oauth.TokenResponse{
		AccessToken: raw, IssuedTokenType: oauth.TokenTypeAccessToken, TokenType: accessTokenType(req.Binding),
		ExpiresIn: claims.Expiry - now.Unix(), Scope: claims.Scope,
	}}, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func dedupe(list []string) []string {
	out := make([]string, 0, len(list))
	for _, v := range list {
		if !contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
