package httpapi

import (
	"crypto/sha256"
	"net/http"
	"strings"
	"time"

	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

var deputyTypes = []string{oauth.JWTTypeAccessToken, oauth.JWTTypeJWT}

// introspect answers RFC 7662 requests. A client may introspect tokens issued to it
// or addressed to it; anything else, and any inactive token, is {"active":false}.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) error {
	req, c, raw, err := s.tokenRequest(w, r, "introspection")
	if err != nil {
		return err
	}
	if isRefreshToken(raw) {
		return writeJSON(w, s.introspectRefresh(r, c, raw, req.Now))
	}
	v, err := s.cfg.Tokens.VerifyContext(r.Context(), raw, deputyTypes, req.Now)
	if err != nil || !s.mayInspect(c, &v.Claims) {
		return writeJSON(w, oauth.IntrospectionResponse{Active: false})
	}
	cl := &v.Claims
	resp := oauth.IntrospectionResponse{
		Active: true, Scope: cl.Scope, ClientID: cl.ClientID, Exp: cl.Expiry, Iat: cl.IssuedAt, Nbf: cl.NotBef,
		Sub: cl.Subject, Aud: cl.Audience, Iss: cl.Issuer, Jti: cl.ID, Act: cl.Act, MayAct: cl.MayAct,
	}
	if v.Type == oauth.JWTTypeAccessToken {
		// RFC 9449 §6.2: a DPoP-bound token's token_type is DPoP.
		resp.TokenType = oauth.TokenTypeBearer
		if cl.Cnf != nil && cl.Cnf.JKT != "" {
			resp.TokenType = oauth.TokenTypeDPoP
		}
	}
	if cl.Cnf != nil {
		resp.Cnf = cl.Cnf
	}
	return writeJSON(w, resp)
}

// mayInspect: the token was issued to c, or is addressed to c (its id, or an
// audience whose client c is).
func (s *Server) mayInspect(c *client.Client, cl *token.Claims) bool {
	if cl.ClientID == c.ID || cl.Audience.Contains(c.ID) {
		return true
	}
	for _, a := range cl.Audience {
		if s.cfg.AudienceClients[a] == c.ID {
			return true
		}
	}
	return false
}

// tokenRequest decodes an introspection or revocation request, authenticates its
// client and returns the token parameter; failures are recorded as denials.
func (s *Server) tokenRequest(w http.ResponseWriter, r *http.Request, endpoint string) (*grant.Request, *client.Client, string, error) {
	req, err := s.parse(w, r, endpoint)
	if err != nil {
		return nil, nil, "", s.cfg.Dispatcher.Refuse(r.Context(), req, err)
	}
	c, err := s.cfg.Dispatcher.Authenticate(r.Context(), req)
	if err != nil {
		return nil, nil, "", err
	}
	raw, err := tokenParam(req.Form)
	if err != nil {
		return nil, nil, "", s.cfg.Dispatcher.Refuse(r.Context(), req, err)
	}
	return req, c, raw, nil
}

func tokenParam(form map[string][]string) (string, error) {
	vs := form["token"]
	switch {
	case len(vs) == 0 || vs[0] == "":
		return "", oauth.InvalidRequest("missing parameter token", nil)
	case len(vs) > 1:
		return "", oauth.InvalidRequest("parameter token is repeated", nil)
	case len(form["token_type_hint"]) > 1:
		return "", oauth.InvalidRequest("parameter token_type_hint is repeated", nil)
	}
	return vs[0], nil
}

// revoke answers RFC 7009 requests: a client revokes a token issued to it, and with
// it every token derived from it by exchange. Unknown tokens answer 200.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) error {
	req, c, raw, err := s.tokenRequest(w, r, "revocation")
	if err != nil {
		return err
	}
	if isRefreshToken(raw) {
		return s.revokeRefresh(w, r, req, c, raw)
	}
	v, err := s.cfg.Tokens.VerifyIgnoringRevocationContext(r.Context(), raw, deputyTypes, req.Now)
	if err != nil && v == nil {
		// Not a token of ours, or unreadable: nothing to revoke (RFC 7009 §2.2).
		w.WriteHeader(http.StatusOK)
		return nil
	}
	cl := &v.Claims
	if cl.ClientID != c.ID {
		return s.cfg.Dispatcher.Refuse(r.Context(), req, oauth.UnauthorizedClient(
			"the token was not issued to this client", nil))
	}
	ev := &store.AuditEvent{
		Type: store.EventTokenRevoked, ClientID: c.ID, Subject: cl.Subject, Actors: cl.Act.Chain(),
		Audiences: cl.Audience, Scopes: cl.Scopes(), TokenJTI: cl.ID, TokenExpires: time.Unix(cl.Expiry, 0),
		Decision: store.DecisionAllow, Reason: "revoked by client " + c.ID,
		RequestID: req.RequestID, RemoteAddr: req.RemoteAddr,
	}
	rev := store.Revocation{JTI: cl.ID, ExpiresAt: time.Unix(cl.Expiry, 0), RevokedAt: req.Now, Reason: ev.Reason}
	if _, err := s.cfg.Revoker.Revoke(r.Context(), rev, ev); err != nil {
		return oauth.TemporarilyUnavailable("the revocation cannot be recorded now", err)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	return nil
}

// isRefreshToken tells deputy's opaque refresh tokens from its JWTs.
func isRefreshToken(raw string) bool { return strings.HasPrefix(raw, grant.RefreshTokenPrefix) }

// refreshToken finds a refresh token by its value (nil if unknown or unreadable).
func (s *Server) refreshToken(r *http.Request, raw string) *store.RefreshToken {
	if s.cfg.Refresh == nil {
		return nil
	}
	sum := sha256.Sum256([]byte(raw))
	rt, err := s.cfg.Refresh.RefreshTokenByHash(r.Context(), sum[:])
	if err != nil {
		return nil
	}
	return &rt
}

// introspectRefresh: only the client a refresh token was issued to may see it, and
// only while it can still be used.
func (s *Server) introspectRefresh(r *http.Request, c *client.Client, raw string, now time.Time) oauth.IntrospectionResponse {
	rt := s.refreshToken(r, raw)
	if rt == nil || rt.ClientID != c.ID || !rt.UsedAt.IsZero() || !now.Before(rt.ExpiresAt) ||
		s.cfg.Tokens.IsRevoked(rt.ID) || s.cfg.Tokens.IsRevoked(rt.FamilyID) || (rt.SessionID != "" && s.cfg.Tokens.IsRevoked(rt.SessionID)) {
		return oauth.IntrospectionResponse{Active: false}
	}
	resp := oauth.IntrospectionResponse{Active: true, Scope: strings.Join(rt.Scopes, " "), ClientID: rt.ClientID,
		Sub: rt.Subject, Exp: rt.ExpiresAt.Unix(), Iat: rt.IssuedAt.Unix(), Iss: s.cfg.Issuer, Jti: rt.ID}
	if rt.JKT != "" {
		// Bound to a DPoP key (RFC 9449 §5): the binding is shown as for an access
		// token (RFC 7662 §2.2, RFC 9449 §6.2).
		resp.Cnf = &oauth.Confirmation{JKT: rt.JKT}
	}
	return resp
}

// revokeRefresh revokes a refresh token and, as RFC 7009 §2.1 asks, every token
// of the same grant: the whole family, and what was exchanged from it.
func (s *Server) revokeRefresh(w http.ResponseWriter, r *http.Request, req *grant.Request, c *client.Client, raw string) error {
	rt := s.refreshToken(r, raw)
	if rt == nil {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	if rt.ClientID != c.ID {
		return s.cfg.Dispatcher.Refuse(r.Context(), req, oauth.UnauthorizedClient("the token was not issued to this client", nil))
	}
	reason := "refresh token revoked by client " + c.ID
	ev := &store.AuditEvent{Type: store.EventTokenRevoked, ClientID: c.ID, Subject: rt.Subject, Scopes: rt.Scopes,
		Audiences: rt.Audiences, TokenJTI: rt.FamilyID, Decision: store.DecisionAllow, Reason: reason,
		RequestID: req.RequestID, RemoteAddr: req.RemoteAddr}
	rev := store.Revocation{JTI: rt.FamilyID, ExpiresAt: rt.ExpiresAt, RevokedAt: req.Now, Reason: reason}
	if _, err := s.cfg.Revoker.Revoke(r.Context(), rev, ev); err != nil {
		return oauth.TemporarilyUnavailable("the revocation cannot be recorded now", err)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	return nil
}
