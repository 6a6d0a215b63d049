package grant_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/subject"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// Key thumbprints (RFC 7638 jkt, RFC 8705 x5t#S256) of web's and api's keys.
const (
	webJKT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
	apiJKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	apiX5T = "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0"
)

// boundUserToken mints, with deputy's real signing key, an access token of alice
// issued to web and addressed to api, bound to cnf (nil: a bearer token) — what
// web holds after a DPoP or mTLS token request.
func boundUserToken(t *testing.T, f *fixture, cnf *oauth.Confirmation) (string, token.Claims) {
	t.Helper()
	c := token.Claims{
		Subject: "alice", Audience: token.Audience{apiAudience}, ClientID: "web", Scope: "read write",
		IssuedAt: f.now.Unix(), NotBef: f.now.Unix(), Expiry: f.now.Add(accessTTL).Unix(), ID: token.NewID(), Cnf: cnf,
	}
	raw, err := f.tokens.Mint(oauth.JWTTypeAccessToken, &c)
	if err != nil {
		t.Fatal(err)
	}
	return raw, c
}

// eventCnf reads the cnf objects an exchange's audit event records in its Detail.
func eventCnf(t *testing.T, e store.AuditEvent) (issued, subject *oauth.Confirmation) {
	t.Helper()
	var d struct {
		Cnf        *oauth.Confirmation `json:"cnf"`
		SubjectCnf *oauth.Confirmation `json:"subject_cnf"`
	}
	if e.Detail != "" {
		if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
			t.Fatalf("detail %q: %v", e.Detail, err)
		}
	}
	return d.Cnf, d.SubjectCnf
}

// TestTokenExchangeBinding: a bound subject token is exchanged only by a
// sender-constrained request, and the token issued is bound to the requester's key,
// not the subject's (README "Token exchange rules"); the audit trail records both.
func TestTokenExchangeBinding(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	exchangeReq := func(subjectToken string, binding *oauth.Confirmation) *grant.Request {
		req := f.request("api", "grant_type", oauth.GrantTokenExchange, "subject_token", subjectToken,
			"subject_token_type", string(oauth.TokenTypeAccessToken), "audience", api2)
		req.Binding = binding
		return req
	}
	webKey := &oauth.Confirmation{JKT: webJKT}

	t.Run("fail/bound-subject-without-binding", func(t *testing.T) {
		raw, _ := boundUserToken(t, f, webKey)
		req := exchangeReq(raw, nil)
		resp, err := f.disp.Token(ctx, req)
		wantCode(t, err, oauth.CodeInvalidRequest)
		if resp != nil {
			t.Fatalf("issued %+v", resp)
		}
		if d := oauth.AsError(err).Description; d != "the subject token is sender-constrained; the exchange must be too" {
			t.Errorf("description %q", d)
		}
		e := wantDenied(t, f, req, oauth.CodeInvalidRequest)
		if !strings.Contains(e.Reason, "subject token is bound to jkt "+webJKT+", the request proves no key") {
			t.Errorf("reason %q", e.Reason)
		}
		if _, sub := eventCnf(t, e); sub == nil || sub.JKT != webJKT {
			t.Errorf("denial records subject cnf %+v, want jkt %s", sub, webJKT)
		}
	})

	t.Run("ok/bound-subject-bound-to-requester-dpop-key", func(t *testing.T) {
		raw, sub := boundUserToken(t, f, webKey)
		req := exchangeReq(raw, &oauth.Confirmation{JKT: apiJKT})
		resp, err := f.disp.Token(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.TokenType != oauth.TokenTypeDPoP {
			t.Errorf("token_type %q, want DPoP", resp.TokenType)
		}
		got := f.access(t, resp.AccessToken)
		if got.Cnf == nil || got.Cnf.JKT != apiJKT || got.Cnf.X5TS256 != "" {
			t.Fatalf("issued cnf %+v, want the requester's jkt %s (not the subject's %s)", got.Cnf, apiJKT, webJKT)
		}
		evs := f.events(t, req.RequestID)
		if len(evs) != 1 || evs[0].TokenJTI != got.ID || evs[0].ParentJTI != sub.ID {
			t.Fatalf("events %+v", evs)
		}
		issued, subj := eventCnf(t, evs[0])
		if issued == nil || issued.JKT != apiJKT || subj == nil || subj.JKT != webJKT {
			t.Errorf("event records cnf %+v, subject cnf %+v", issued, subj)
		}
	})

	t.Run("ok/bound-subject-bound-to-requester-certificate", func(t *testing.T) {
		raw, _ := boundUserToken(t, f, webKey)
		req := exchangeReq(raw, &oauth.Confirmation{X5TS256: apiX5T})
		resp, err := f.disp.Token(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.TokenType != oauth.TokenTypeBearer { // RFC 8705 keeps Bearer
			t.Errorf("token_type %q, want Bearer", resp.TokenType)
		}
		if got := f.access(t, resp.AccessToken); got.Cnf == nil || got.Cnf.X5TS256 != apiX5T || got.Cnf.JKT != "" {
			t.Fatalf("issued cnf %+v, want x5t#S256 %s", got.Cnf, apiX5T)
		}
	})

	t.Run("ok/unbound-subject-upgraded", func(t *testing.T) {
		raw, _ := boundUserToken(t, f, nil)
		req := exchangeReq(raw, &oauth.Confirmation{JKT: apiJKT})
		resp, err := f.disp.Token(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.access(t, resp.AccessToken); resp.TokenType != oauth.TokenTypeDPoP || got.Cnf == nil || got.Cnf.JKT != apiJKT {
			t.Fatalf("token_type %q cnf %+v", resp.TokenType, got.Cnf)
		}
		issued, subj := eventCnf(t, f.events(t, req.RequestID)[0])
		if issued == nil || issued.JKT != apiJKT || subj != nil {
			t.Errorf("event records cnf %+v, subject cnf %+v", issued, subj)
		}
	})

	t.Run("ok/unbound-stays-bearer", func(t *testing.T) {
		raw, _ := boundUserToken(t, f, nil)
		req := exchangeReq(raw, nil)
		resp, err := f.disp.Token(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.access(t, resp.AccessToken); resp.TokenType != oauth.TokenTypeBearer || got.Cnf != nil {
			t.Fatalf("token_type %q cnf %+v", resp.TokenType, got.Cnf)
		}
		e := f.events(t, req.RequestID)[0]
		if issued, subj := eventCnf(t, e); issued != nil || subj != nil {
			t.Errorf("event records cnf %+v, subject cnf %+v", issued, subj)
		}
		if e.Detail != `{"grant_type":"`+oauth.GrantTokenExchange+`"}` {
			t.Errorf("detail of a bearer exchange changed: %s", e.Detail)
		}
	})

}

// TestExchangedRefreshTokenBound: a refresh token issued beside a DPoP-bound
// exchanged token is bound to the same key (RFC 9449 §5), so the chain stays bound
// when it is refreshed: without a proof of that key the refresh is refused, with
// one it yields a token bound to it. Beside a certificate-bound token that must stay
// bound, none is issued.
func TestExchangedRefreshTokenBound(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	v, err := subject.New(ctx, f.tokens, subject.Options{Refresh: f.st})
	if err != nil {
		t.Fatal(err)
	}
	// apiAudience is other's here, so that web's token addressed to it is other's
	// to exchange; other may refresh.
	x, err := exchange.New([]config.Policy{{Name: "other-with-refresh", Client: "other", Audiences: []string{api2},
		SubjectTokenTypes: []string{"access_token", "refresh_token"}, RequestedTokenTypes: []string{"access_token", "refresh_token"}}},
		[]config.Audience{{ID: apiAudience, Client: "other"}, {ID: api2, Scopes: []string{"read"}}}, exchange.Options{IssuerURL: issuer})
	if err != nil {
		t.Fatal(err)
	}
	disp := grant.NewDispatcher(f.clients, f.audit, map[string]grant.Grant{
		oauth.GrantTokenExchange: &grant.TokenExchange{Tokens: f.tokens, Subjects: v, Exchange: x, Refresh: f.st},
		oauth.GrantRefreshToken:  &grant.RefreshToken{Store: f.st, Revoker: f.audit, Users: f.users},
	}, discard)
	exchangeAs := func(t *testing.T, binding *oauth.Confirmation) (*grant.Request, *oauth.TokenResponse) {
		t.Helper()
		raw, _ := boundUserToken(t, f, &oauth.Confirmation{JKT: webJKT})
		req := f.request("other", "grant_type", oauth.GrantTokenExchange, "subject_token", raw,
			"subject_token_type", string(oauth.TokenTypeAccessToken), "audience", api2)
		req.Binding = binding
		resp, err := disp.Token(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return req, resp
	}
	refresh := func(rt string, binding *oauth.Confirmation) (*grant.Request, *oauth.TokenResponse, error) {
		req := f.request("other", "grant_type", oauth.GrantRefreshToken, "refresh_token", rt)
		req.Binding = binding
		resp, err := disp.Token(ctx, req)
		return req, resp, err
	}

	t.Run("ok/bound-to-the-exchange-key", func(t *testing.T) {
		req, resp := exchangeAs(t, &oauth.Confirmation{JKT: apiJKT})
		if resp.RefreshToken == "" {
			t.Fatalf("no refresh token: %+v", resp)
		}
		rt := f.refreshRecord(t, resp.RefreshToken)
		if rt.JKT != apiJKT {
			t.Fatalf("refresh token bound to %q, want the exchange's key %s", rt.JKT, apiJKT)
		}
		for _, e := range f.events(t, req.RequestID) {
			if issued, _ := eventCnf(t, e); issued == nil || issued.JKT != apiJKT {
				t.Errorf("event of %s records cnf %+v", e.TokenJTI, issued)
			}
		}

		r, out, err := refresh(resp.RefreshToken, nil)
		wantCode(t, err, oauth.CodeInvalidGrant)
		if out != nil {
			t.Fatalf("refreshed without a proof: %+v", out)
		}
		wantDenied(t, f, r, oauth.CodeInvalidGrant)
		if _, _, err := refresh(resp.RefreshToken, &oauth.Confirmation{JKT: webJKT}); oauth.AsError(err).Code != oauth.CodeInvalidGrant {
			t.Fatalf("refresh with another key: %v", err)
		}
		// Presented as a subject token, it asks for a proof of its key too.
		for _, tc := range []struct {
			binding *oauth.Confirmation
			desc    string
		}{
			{nil, "the subject token is sender-constrained; the exchange must be too"},
			{&oauth.Confirmation{JKT: webJKT}, "the subject token is a refresh token bound to a DPoP key; send a DPoP proof of that key"},
		} {
			req := f.request("other", "grant_type", oauth.GrantTokenExchange, "subject_token", resp.RefreshToken,
				"subject_token_type", string(oauth.TokenTypeRefreshToken), "audience", api2)
			req.Binding = tc.binding
			_, err := disp.Token(ctx, req)
			if wantCode(t, err, oauth.CodeInvalidRequest); oauth.AsError(err).Description != tc.desc {
				t.Errorf("exchanged with %+v: %v", tc.binding, err)
			}
		}
		r, out, err = refresh(resp.RefreshToken, &oauth.Confirmation{JKT: apiJKT})
		if err != nil {
			t.Fatal(err)
		}
		if got := f.access(t, out.AccessToken); out.TokenType != oauth.TokenTypeDPoP || got.Cnf == nil || got.Cnf.JKT != apiJKT {
			t.Fatalf("refreshed token_type %q cnf %+v", out.TokenType, got.Cnf)
		}
		// The refresh records the binding of the access token and of the rotated
		// refresh token it issues (README "Audit trail").
		if evs := f.events(t, r.RequestID); len(evs) != 2 {
			t.Fatalf("refresh events %+v", evs)
		}
		for _, e := range f.events(t, r.RequestID) {
			if issued, _ := eventCnf(t, e); issued == nil || issued.JKT != apiJKT {
				t.Errorf("refresh event of %s (%s) records cnf %+v", e.TokenJTI, e.Reason, issued)
			}
		}
	})

	t.Run("ok/none-beside-a-certificate-bound-token", func(t *testing.T) {
		_, resp := exchangeAs(t, &oauth.Confirmation{X5TS256: apiX5T})
		if resp.RefreshToken != "" {
			t.Fatal("a refresh token beside a token that must stay bound, which it could not keep")
		}
		if got := f.access(t, resp.AccessToken); got.Cnf == nil || got.Cnf.X5TS256 != apiX5T {
			t.Fatalf("cnf %+v", got.Cnf)
		}
	})
}
