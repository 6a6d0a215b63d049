package grant_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// signedIn redeems a fresh code of web (changed by mod) and returns its tokens.
func signedIn(t *testing.T, f *fixture, mod func(*store.AuthCode)) (*oauth.TokenResponse, store.AuthCode) {
	t.Helper()
	code, ac := f.code(t, mod)
	_, resp, err := f.redeem(code)
	if err != nil {
		t.Fatal(err)
	}
	return resp, ac
}

// jtis returns the ids of every token in a response: access, refresh and ID token.
func jtis(t *testing.T, f *fixture, resp *oauth.TokenResponse) []string {
	t.Helper()
	out := []string{f.access(t, resp.AccessToken).ID}
	if resp.RefreshToken != "" {
		out = append(out, f.refreshRecord(t, resp.RefreshToken).ID)
	}
	if resp.IDToken != "" {
		id, err := verifyIDToken(f, resp.IDToken)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, id.ID)
	}
	return out
}

func TestRefreshToken(t *testing.T) {
	f := newFixture(t, nil)

	t.Run("ok/rotation", func(t *testing.T) {
		first, ac := signedIn(t, f, nil)
		old := f.refreshRecord(t, first.RefreshToken)
		req, resp, err := f.refresh("web", first.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		if resp.RefreshToken == "" || resp.RefreshToken == first.RefreshToken {
			t.Fatalf("refresh token not rotated: %q", resp.RefreshToken)
		}
		if used := f.refreshRecord(t, first.RefreshToken); !used.UsedAt.Equal(f.now) {
			t.Errorf("old refresh token used at %v, want %v", used.UsedAt, f.now)
		}
		next := f.refreshRecord(t, resp.RefreshToken)
		if next.ID == old.ID || next.FamilyID != ac.ID || next.SessionID != "sid-1" || !next.UsedAt.IsZero() ||
			!slices.Equal(next.Scopes, ac.Scopes) {
			t.Errorf("new refresh token %+v", next)
		}
		at := f.access(t, resp.AccessToken)
		if at.Subject != "alice" || at.Scope != "openid profile read" || at.SID != "sid-1" ||
			at.AuthTime != ac.AuthTime.Unix() || at.Extra["idp"] != "local" || at.MayAct == nil || at.MayAct.Subject != "api" {
			t.Errorf("access token claims %+v", at)
		}
		// OIDC Core §12.2: the original auth_time, and no nonce.
		id, err := verifyIDToken(f, resp.IDToken)
		if err != nil {
			t.Fatal(err)
		}
		if id.AuthTime != ac.AuthTime.Unix() || id.Nonce != "" || id.ATHash != f.tokens.ATHash("", resp.AccessToken) {
			t.Errorf("ID token claims %+v", id)
		}
		evs := f.events(t, req.RequestID)
		if len(evs) != 3 {
			t.Fatalf("%d events, want 3: %+v", len(evs), evs)
		}
		for _, e := range evs {
			if e.Type != store.EventTokenIssued || e.Decision != store.DecisionAllow || e.ParentJTI != old.ID ||
				!slices.Contains(jtis(t, f, resp), e.TokenJTI) {
				t.Errorf("event %+v", e)
			}
		}
	})

	t.Run("ok/scope-narrowing", func(t *testing.T) {
		first, ac := signedIn(t, f, nil)
		_, resp, err := f.refresh("web", first.RefreshToken, "scope", "read")
		if err != nil {
			t.Fatal(err)
		}
		if at := f.access(t, resp.AccessToken); at.Scope != "read" || resp.Scope != "read" {
			t.Errorf("access token scope %q, response scope %q, want read", at.Scope, resp.Scope)
		}
		if resp.IDToken != "" {
			t.Error("ID token without scope openid")
		}
		// RFC 6749 §6: the new refresh token's scope is identical to the old one's,
		// so the narrowing applies to this access token only.
		if rt := f.refreshRecord(t, resp.RefreshToken); !slices.Equal(rt.Scopes, ac.Scopes) {
			t.Errorf("new refresh token scopes %q, want %q", rt.Scopes, ac.Scopes)
		}
		_, again, err := f.refresh("web", resp.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		if at := f.access(t, again.AccessToken); at.Scope != "openid profile read" {
			t.Errorf("scope after narrowing once: %q", at.Scope)
		}
	})

	t.Run("fail/scope-widening", func(t *testing.T) {
		first, _ := signedIn(t, f, nil)
		req, resp, err := f.refresh("web", first.RefreshToken, "scope", "read write")
		if resp != nil {
			t.Fatalf("response %+v", resp)
		}
		wantCode(t, err, oauth.CodeInvalidScope)
		if e := wantDenied(t, f, req, oauth.CodeInvalidScope); e.Subject != "alice" || e.ParentJTI != f.refreshRecord(t, first.RefreshToken).ID {
			t.Errorf("denial names subject %q parent %q", e.Subject, e.ParentJTI)
		}
		// The refusal spent nothing: the client may retry without the extra scope, and
		// that retry is not a reuse.
		if _, _, err := f.refresh("web", first.RefreshToken); err != nil {
			t.Fatalf("refresh after a refused scope: %v", err)
		}
		for _, jti := range jtis(t, f, first) {
			if f.tokens.IsRevoked(jti) {
				t.Errorf("%s revoked", jti)
			}
		}
	})

	t.Run("fail/reuse", func(t *testing.T) {
		first, ac := signedIn(t, f, nil)
		_, second, err := f.refresh("web", first.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		family := append(append([]string{ac.ID}, jtis(t, f, first)...), jtis(t, f, second)...)
		req, resp, err := f.refresh("web", first.RefreshToken)
		if resp != nil {
			t.Fatalf("reused refresh token answered %+v", resp)
		}
		wantCode(t, err, oauth.CodeInvalidGrant)
		for _, jti := range family {
			if !f.tokens.IsRevoked(jti) {
				t.Errorf("%s of the family not revoked", jti)
			}
		}
		var denied, revoked int
		for _, e := range f.events(t, req.RequestID) {
			switch e.Type {
			case store.EventDenied:
				denied++
				if !strings.HasPrefix(e.Reason, "invalid_grant: ") || e.Subject != "alice" ||
					e.ParentJTI != f.refreshRecord(t, first.RefreshToken).ID {
					t.Errorf("denial %+v", e)
				}
			case store.EventTokenRevoked:
				revoked++
				if e.TokenJTI != ac.ID {
					t.Errorf("revocation of %q, want the family root %q", e.TokenJTI, ac.ID)
				}
			default:
				t.Errorf("unexpected event %+v", e)
			}
		}
		if denied != 1 || revoked != 1 {
			t.Errorf("%d denials and %d revocations, want one each", denied, revoked)
		}
		// The token the rotation issued no longer refreshes either.
		req, resp, err = f.refresh("web", second.RefreshToken)
		if resp != nil {
			t.Fatalf("rotated refresh token of a revoked family answered %+v", resp)
		}
		wantCode(t, err, oauth.CodeInvalidGrant)
		wantDenied(t, f, req, oauth.CodeInvalidGrant)
	})

	for _, tc := range []struct {
		name   string
		client string                // presenting client; "" = web
		mod    func(*store.AuthCode) // changes the code the refresh token comes from
		// present returns the value to present given the refresh token issued; nil
		// presents that one.
		present func(t *testing.T, rt string) string
		params  []string      // besides grant_type and refresh_token
		after   time.Duration // request time after the fixture's
		code    oauth.Code
		family  bool // the refusal revokes the family
	}{
		{name: "fail/other-client", client: "other", code: oauth.CodeInvalidGrant},
		{name: "fail/other-client-asking-a-scope-beyond", client: "other", params: []string{"scope", "read write"},
			code: oauth.CodeInvalidGrant},
		{name: "fail/expired", after: refreshTTL, code: oauth.CodeInvalidGrant},
		{name: "fail/unknown", present: func(*testing.T, string) string { return grant.RefreshTokenPrefix + "unknown" },
			code: oauth.CodeInvalidGrant},
		{name: "fail/missing", present: func(*testing.T, string) string { return "" }, code: oauth.CodeInvalidRequest},
		{name: "fail/repeated-scope", params: []string{"scope", "read", "scope", "read"}, code: oauth.CodeInvalidRequest},
		{name: "fail/session-revoked", mod: func(c *store.AuthCode) { c.SessionID = "sid-signed-out" },
			present: func(t *testing.T, rt string) string {
				revoke(t, f, "sid-signed-out")
				return rt
			}, code: oauth.CodeInvalidGrant},
		{name: "fail/token-revoked", present: func(t *testing.T, rt string) string {
			revoke(t, f, f.refreshRecord(t, rt).ID)
			return rt
		}, code: oauth.CodeInvalidGrant},
		{name: "fail/family-revoked", present: func(t *testing.T, rt string) string {
			// A token of a revoked family that no recorded lineage reaches.
			family := "code-" + token.NewID()
			revoke(t, f, family)
			value := grant.RefreshTokenPrefix + token.NewID()
			r := f.refreshRecord(t, rt)
			r.Hash, r.ID, r.FamilyID = sha(value), token.NewID(), family
			if err := f.st.InsertRefreshToken(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			return value
		}, code: oauth.CodeInvalidGrant},
		// A scope parameter does not hide a reuse.
		{name: "fail/reuse-asking-a-scope-beyond", present: func(t *testing.T, rt string) string {
			if _, _, err := f.refresh("web", rt); err != nil {
				t.Fatal(err)
			}
			return rt
		}, params: []string{"scope", "read write"}, code: oauth.CodeInvalidGrant, family: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first, ac := signedIn(t, f, tc.mod)
			value := first.RefreshToken
			if tc.present != nil {
				value = tc.present(t, value)
			}
			cl := tc.client
			if cl == "" {
				cl = "web"
			}
			kv := []string{"grant_type", oauth.GrantRefreshToken}
			if value != "" {
				kv = append(kv, "refresh_token", value)
			}
			req := f.request(cl, append(kv, tc.params...)...)
			req.Now = req.Now.Add(tc.after)
			resp, err := f.disp.Token(context.Background(), req)
			if resp != nil {
				t.Fatalf("response %+v", resp)
			}
			wantCode(t, err, tc.code)
			if f.tokens.IsRevoked(ac.ID) != tc.family {
				t.Errorf("family revoked: %v, want %v", f.tokens.IsRevoked(ac.ID), tc.family)
			}
			if tc.family {
				return // the denial and the revocation are recorded, as fail/reuse shows
			}
			e := wantDenied(t, f, req, tc.code)
			if w := detail(t, e)["withdrawn_jti"]; w != "" {
				t.Errorf("refused only after minting %s", w)
			}
		})
	}
}

// A reuse that lands while the rotation it races is still issuing revokes the
// family before the rotation's tokens are recorded: the rotation is refused too.
func TestRefreshTokenReusedWhileRotating(t *testing.T) {
	f := newFixture(t, nil)
	first, ac := signedIn(t, f, nil)
	var reuse error
	reused := false
	f.users.Profiles = profilesFunc(func(context.Context, string, string) map[string]string {
		if !reused {
			reused = true
			_, _, reuse = f.refresh("web", first.RefreshToken)
		}
		return nil
	})
	req, resp, err := f.refresh("web", first.RefreshToken)
	if !reused {
		t.Fatal("the reuse did not run")
	}
	wantCode(t, reuse, oauth.CodeInvalidGrant)
	if resp != nil {
		t.Fatalf("tokens of a revoked family handed out: %+v", resp)
	}
	wantCode(t, err, oauth.CodeInvalidGrant)
	wantDenied(t, f, req, oauth.CodeInvalidGrant)
	if !f.tokens.IsRevoked(ac.ID) {
		t.Error("family not revoked")
	}
	if _, err := f.tokens.Verify(first.AccessToken, []string{oauth.JWTTypeAccessToken}, f.now); err != token.ErrRevoked {
		t.Errorf("first access token verifies with %v, want %v", err, token.ErrRevoked)
	}
}
