package grant_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/subject"
	"github.com/deputy-auth/deputy/oauth"
)

// TestRefreshRefusalSpendsNothing: the preconditions of a refresh that do not need the
// token spent — the client it was issued to first, then expiry and revocation — are
// checked before it is rotated (RFC 6749 §6: the refresh token must be bound to the
// authenticated client). A token presented by another client is invalid_grant and is
// neither spent nor its family revoked, so whoever holds a stolen token cannot make
// its owner's next refresh look like reuse (RFC 9700 §4.14.2), rotated or not.
func TestRefreshRefusalSpendsNothing(t *testing.T) {
	f := newFixture(t, nil)

	t.Run("fail/other-client-then-owner-refreshes", func(t *testing.T) {
		first, ac := signedIn(t, f, nil)
		req, resp, err := f.refresh("other", first.RefreshToken)
		if resp != nil {
			t.Fatalf("response %+v", resp)
		}
		wantCode(t, err, oauth.CodeInvalidGrant)
		e := wantDenied(t, f, req, oauth.CodeInvalidGrant)
		if !strings.Contains(e.Reason, "another client") || e.ClientID != "other" {
			t.Errorf("denial %+v", e)
		}
		if rt := f.refreshRecord(t, first.RefreshToken); !rt.UsedAt.IsZero() {
			t.Fatalf("another client's presentation spent the token at %v", rt.UsedAt)
		}
		if _, _, err := f.refresh("web", first.RefreshToken); err != nil {
			t.Fatalf("the owner's refresh after another client's attempt: %v", err)
		}
		if f.tokens.IsRevoked(ac.ID) {
			t.Error("family revoked")
		}
	})

	t.Run("fail/other-client-presenting-a-rotated-token-revokes-nothing", func(t *testing.T) {
		first, ac := signedIn(t, f, nil)
		_, second, err := f.refresh("web", first.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		req, resp, err := f.refresh("other", first.RefreshToken)
		if resp != nil {
			t.Fatalf("response %+v", resp)
		}
		wantCode(t, err, oauth.CodeInvalidGrant)
		wantDenied(t, f, req, oauth.CodeInvalidGrant)
		if f.tokens.IsRevoked(ac.ID) {
			t.Fatal("another client's presentation of a rotated token revoked the family")
		}
		if _, _, err := f.refresh("web", second.RefreshToken); err != nil {
			t.Fatalf("the owner's next refresh: %v", err)
		}
	})

	for _, tc := range []struct {
		name    string
		present func(t *testing.T, rt string) // before the refused request
		after   time.Duration
		params  []string
	}{
		{name: "fail/expired", after: refreshTTL},
		{name: "fail/token-revoked", present: func(t *testing.T, rt string) { revoke(t, f, f.refreshRecord(t, rt).ID) }},
		{name: "fail/scope-widening", params: []string{"scope", "read write"}},
	} {
		t.Run(tc.name+"-spends-nothing", func(t *testing.T) {
			first, _ := signedIn(t, f, nil)
			if tc.present != nil {
				tc.present(t, first.RefreshToken)
			}
			req := f.request("web", append([]string{"grant_type", oauth.GrantRefreshToken, "refresh_token", first.RefreshToken}, tc.params...)...)
			req.Now = req.Now.Add(tc.after)
			if resp, err := f.disp.Token(context.Background(), req); err == nil {
				t.Fatalf("refresh answered %+v", resp)
			}
			if rt := f.refreshRecord(t, first.RefreshToken); !rt.UsedAt.IsZero() {
				t.Errorf("a refused refresh spent the token at %v", rt.UsedAt)
			}
		})
	}
}

// TestCodeRefusalSpendsNothing: RFC 6749 §4.1.3 lists what a redemption must pass —
// the code issued to the authenticated client, its redirect_uri, and (RFC 7636 §4.6)
// the code_verifier. A request that fails any of them has not used the code: it is
// invalid_grant, the code stays redeemable by its client until it expires, and a
// request failing them for a code redeemed before revokes nothing. Otherwise whoever
// intercepted a code — the attack PKCE makes harmless — could lock the user out of
// the sign-in, or revoke its tokens by faking a replay. A replay that passes them is
// still refused and revokes every token issued from the code (RFC 6749 §4.1.2).
func TestCodeRefusalSpendsNothing(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	std := []string{"redirect_uri", webRedirect, "code_verifier", verifier}
	for _, tc := range []struct {
		name   string
		client string
		params []string
	}{
		{name: "fail/other-client", client: "other", params: std},
		{name: "fail/redirect-uri-mismatch", client: "web", params: []string{"redirect_uri", "https://web.example/other", "code_verifier", verifier}},
		{name: "fail/verifier-missing", client: "web", params: []string{"redirect_uri", webRedirect}},
		{name: "fail/verifier-wrong", client: "web", params: []string{"redirect_uri", webRedirect, "code_verifier", strings.Repeat("x", 43)}},
	} {
		t.Run(tc.name+"-then-client-redeems", func(t *testing.T) {
			code, ac := f.code(t, nil)
			req := f.request(tc.client, append([]string{"grant_type", oauth.GrantAuthorizationCode, "code", code}, tc.params...)...)
			resp, err := f.disp.Token(ctx, req)
			if resp != nil {
				t.Fatalf("response %+v", resp)
			}
			wantCode(t, err, oauth.CodeInvalidGrant)
			e := wantDenied(t, f, req, oauth.CodeInvalidGrant)
			if e.ParentJTI != ac.ID || e.Subject != "alice" {
				t.Errorf("denial %+v", e)
			}
			if _, resp, err = f.redeem(code); err != nil {
				t.Fatalf("the client's redemption after a refused one: %v", err)
			}
			if f.tokens.IsRevoked(ac.ID) || f.tokens.IsRevoked(f.access(t, resp.AccessToken).ID) {
				t.Error("tokens of the code revoked")
			}
		})
		t.Run(tc.name+"-after-redemption-revokes-nothing", func(t *testing.T) {
			code, ac := f.code(t, nil)
			_, first, err := f.redeem(code)
			if err != nil {
				t.Fatal(err)
			}
			req := f.request(tc.client, append([]string{"grant_type", oauth.GrantAuthorizationCode, "code", code}, tc.params...)...)
			if resp, err := f.disp.Token(ctx, req); resp != nil || oauth.AsError(err).Code != oauth.CodeInvalidGrant {
				t.Fatalf("got %+v, %v; want invalid_grant", resp, err)
			}
			for _, e := range f.events(t, req.RequestID) {
				if e.Type == store.EventTokenRevoked {
					t.Errorf("revocation recorded: %+v", e)
				}
			}
			if f.tokens.IsRevoked(ac.ID) || f.tokens.IsRevoked(f.access(t, first.AccessToken).ID) {
				t.Error("a refused presentation of a redeemed code revoked its tokens")
			}
		})
	}
}

// TestExchangedRefreshTokenSpendsNothing: a refresh token presented as a subject token
// (RFC 8693 §3; design §5: only by the client it was issued to) is read, never
// rotated. Presented by another client it is refused as invalid_request, and neither
// spent nor its family revoked, rotated or not; its owner refreshes as before.
func TestExchangedRefreshTokenSpendsNothing(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	v, err := subject.New(ctx, f.tokens, subject.Options{Refresh: f.st})
	if err != nil {
		t.Fatal(err)
	}
	x, err := exchange.New([]config.Policy{{Name: "other-from-refresh", Client: "other",
		SubjectTokenTypes: []string{"refresh_token"}, Audiences: []string{api2}}},
		[]config.Audience{{ID: apiAudience, Client: "api"}, {ID: api2, Scopes: []string{"read"}}}, exchange.Options{IssuerURL: issuer})
	if err != nil {
		t.Fatal(err)
	}
	disp := grant.NewDispatcher(f.clients, f.audit, map[string]grant.Grant{
		oauth.GrantTokenExchange: &grant.TokenExchange{Tokens: f.tokens, Subjects: v, Exchange: x, Refresh: f.st},
	}, discard)
	present := func(t *testing.T, rt string) store.AuditEvent {
		t.Helper()
		req := f.request("other", "grant_type", oauth.GrantTokenExchange, "subject_token", rt,
			"subject_token_type", string(oauth.TokenTypeRefreshToken), "audience", api2)
		resp, err := disp.Token(ctx, req)
		if resp != nil {
			t.Fatalf("another client exchanged web's refresh token: %+v", resp)
		}
		wantCode(t, err, oauth.CodeInvalidRequest)
		return wantDenied(t, f, req, oauth.CodeInvalidRequest)
	}

	t.Run("fail/other-client-then-owner-refreshes", func(t *testing.T) {
		first, ac := signedIn(t, f, nil)
		if e := present(t, first.RefreshToken); !strings.Contains(e.Reason, "not issued to the client") {
			t.Errorf("denial %q, want the client binding", e.Reason)
		}
		if rt := f.refreshRecord(t, first.RefreshToken); !rt.UsedAt.IsZero() {
			t.Fatalf("spent at %v", rt.UsedAt)
		}
		if _, _, err := f.refresh("web", first.RefreshToken); err != nil {
			t.Fatalf("the owner's refresh: %v", err)
		}
		if f.tokens.IsRevoked(ac.ID) {
			t.Error("family revoked")
		}
	})
	t.Run("fail/other-client-presenting-a-rotated-token-revokes-nothing", func(t *testing.T) {
		first, ac := signedIn(t, f, nil)
		_, second, err := f.refresh("web", first.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		present(t, first.RefreshToken)
		if f.tokens.IsRevoked(ac.ID) {
			t.Fatal("family revoked")
		}
		if _, _, err := f.refresh("web", second.RefreshToken); err != nil {
			t.Fatalf("the owner's next refresh: %v", err)
		}
	})
}
