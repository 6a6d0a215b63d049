package grant_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// payload decodes the claims of a JWT whose signature was checked elsewhere.
func payload(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// revoke revokes jti through the audit writer, as sign-out and revocation do.
func revoke(t *testing.T, f *fixture, jti string) {
	t.Helper()
	if _, err := f.audit.Revoke(context.Background(), store.Revocation{JTI: jti, RevokedAt: f.now, Reason: "test"}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestAuthorizationCode(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	std := []string{"redirect_uri", webRedirect, "code_verifier", verifier}
	revokedSession := "sid-" + token.NewID()
	revoke(t, f, revokedSession)
	revokedCode := "code-" + token.NewID()
	revoke(t, f, revokedCode)

	for _, tc := range []struct {
		name    string
		mod     func(*store.AuthCode)
		client  string   // presenting client; "" = web
		params  []string // besides grant_type and code
		present string   // a code value to present instead of the one stored
		code    oauth.Code
		early   bool // refused while parsing, before the code is redeemed
	}{
		{name: "ok/with-pkce", params: std},
		{name: "ok/confidential-without-pkce", mod: func(c *store.AuthCode) { c.CodeChallenge = "" },
			params: []string{"redirect_uri", webRedirect}},
		{name: "ok/redirect-uri-omitted-when-the-request-omitted-it", mod: func(c *store.AuthCode) { c.RedirectURI = "" },
			params: []string{"code_verifier", verifier}},
		{name: "ok/registered-redirect-uri-when-the-request-omitted-it", mod: func(c *store.AuthCode) { c.RedirectURI = "" },
			params: []string{"redirect_uri", "https://web.example/other", "code_verifier", verifier}},
		{name: "fail/missing-code", present: "-", params: std, code: oauth.CodeInvalidRequest},
		{name: "fail/unknown-code", present: "no-such-code", params: std, code: oauth.CodeInvalidGrant},
		{name: "fail/expired", mod: func(c *store.AuthCode) { c.ExpiresAt = f.now.Add(-time.Second) },
			params: std, code: oauth.CodeInvalidGrant},
		{name: "fail/expired-at-its-instant", mod: func(c *store.AuthCode) { c.ExpiresAt = f.now },
			params: std, code: oauth.CodeInvalidGrant},
		{name: "fail/other-client", client: "other", params: std, code: oauth.CodeInvalidGrant},
		{name: "fail/redirect-uri-mismatch", params: []string{"redirect_uri", "https://web.example/other", "code_verifier", verifier},
			code: oauth.CodeInvalidGrant},
		{name: "fail/redirect-uri-missing", params: []string{"code_verifier", verifier}, code: oauth.CodeInvalidGrant},
		{name: "fail/unregistered-redirect-uri-when-the-request-omitted-it", mod: func(c *store.AuthCode) { c.RedirectURI = "" },
			params: []string{"redirect_uri", "https://evil.example/cb", "code_verifier", verifier}, code: oauth.CodeInvalidGrant},
		{name: "fail/verifier-missing", params: []string{"redirect_uri", webRedirect}, code: oauth.CodeInvalidGrant},
		{name: "fail/verifier-wrong", params: []string{"redirect_uri", webRedirect, "code_verifier", strings.Repeat("x", 43)},
			code: oauth.CodeInvalidGrant},
		{name: "fail/verifier-without-challenge", mod: func(c *store.AuthCode) { c.CodeChallenge = "" },
			params: std, code: oauth.CodeInvalidGrant},
		{name: "fail/repeated-verifier", params: append(slices.Clone(std), "code_verifier", verifier), code: oauth.CodeInvalidRequest, early: true},
		{name: "fail/session-revoked", mod: func(c *store.AuthCode) { c.SessionID = revokedSession },
			params: std, code: oauth.CodeInvalidGrant},
		{name: "fail/code-revoked", mod: func(c *store.AuthCode) { c.ID = revokedCode },
			params: std, code: oauth.CodeInvalidGrant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			value, ac := f.code(t, tc.mod)
			kv := []string{"grant_type", oauth.GrantAuthorizationCode}
			switch tc.present {
			case "":
				kv = append(kv, "code", value)
			case "-":
			default:
				kv = append(kv, "code", tc.present)
			}
			cl := tc.client
			if cl == "" {
				cl = "web"
			}
			req := f.request(cl, append(kv, tc.params...)...)
			resp, err := f.disp.Token(ctx, req)
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				if at := f.access(t, resp.AccessToken); at.Subject != "alice" || at.ClientID != "web" {
					t.Errorf("access token claims %+v", at)
				}
				return
			}
			if resp != nil {
				t.Errorf("response %+v", resp)
			}
			wantCode(t, err, tc.code)
			e := wantDenied(t, f, req, tc.code)
			if w := detail(t, e)["withdrawn_jti"]; w != "" {
				t.Errorf("refused only after minting %s", w)
			}
			if tc.present == "" && !tc.early && (e.Subject != "alice" || e.ParentJTI != ac.ID) {
				t.Errorf("denial names subject %q code %q, want alice %q", e.Subject, e.ParentJTI, ac.ID)
			}
		})
	}
}

func TestAuthorizationCodeTokens(t *testing.T) {
	f := newFixture(t, nil)
	redeemAs := func(t *testing.T, cl string, mod func(*store.AuthCode)) (*oauth.TokenResponse, store.AuthCode) {
		t.Helper()
		value, ac := f.code(t, func(c *store.AuthCode) {
			c.ClientID = cl
			if mod != nil {
				mod(c)
			}
		})
		resp, err := f.disp.Token(context.Background(), f.request(cl, "grant_type", oauth.GrantAuthorizationCode,
			"code", value, "redirect_uri", webRedirect, "code_verifier", verifier))
		if err != nil {
			t.Fatal(err)
		}
		return resp, ac
	}

	t.Run("ok/access-token", func(t *testing.T) {
		resp, ac := redeemAs(t, "web", nil)
		at := f.access(t, resp.AccessToken)
		if at.Issuer != issuer || at.Subject != "alice" || !slices.Equal(at.Audience, []string{apiAudience}) ||
			at.ClientID != "web" || at.Scope != "openid profile read" || at.SID != "sid-1" ||
			at.AuthTime != ac.AuthTime.Unix() || !slices.Equal(at.AMR, []string{"pwd"}) || at.ACR != "urn:deputy:pwd" ||
			at.Extra["idp"] != "local" || at.MayAct == nil || at.MayAct.Subject != "api" || at.Act != nil ||
			at.IssuedAt != f.now.Unix() || at.Expiry != f.now.Add(accessTTL).Unix() || at.ID == "" {
			t.Errorf("access token claims %+v", at)
		}
		if resp.TokenType != oauth.TokenTypeBearer || resp.IssuedTokenType != oauth.TokenTypeAccessToken ||
			resp.ExpiresIn != int64(accessTTL/time.Second) || resp.Scope != "openid profile read" {
			t.Errorf("response %+v", resp)
		}
	})

	t.Run("ok/id-token", func(t *testing.T) {
		resp, ac := redeemAs(t, "web", nil)
		id, err := verifyIDToken(f, resp.IDToken)
		if err != nil {
			t.Fatal(err)
		}
		if id.Subject != "alice" || !slices.Equal(id.Audience, []string{"web"}) || id.AZP != "web" ||
			id.Nonce != ac.Nonce || id.ATHash != f.tokens.ATHash("", resp.AccessToken) || id.SID != "sid-1" ||
			id.AuthTime != ac.AuthTime.Unix() || !slices.Equal(id.AMR, []string{"pwd"}) || id.IdP != "local" ||
			id.Expiry != f.now.Add(idTTL).Unix() || id.ID == "" {
			t.Errorf("ID token claims %+v", id)
		}
		if id.ATHash == f.tokens.ATHash("", userAccessToken(t, f).AccessToken) {
			t.Error("at_hash does not depend on the access token")
		}
		claims := payload(t, resp.IDToken)
		// scope profile releases name and preferred_username; email and phone are not
		// granted; a profile claim never overrides a registered one.
		for k, want := range map[string]any{"name": "Alice", "preferred_username": "alice", "sub": "alice",
			"email": nil, "phone_number": nil} {
			if claims[k] != want {
				t.Errorf("ID token claim %s = %v, want %v", k, claims[k], want)
			}
		}
	})

	t.Run("ok/id-token-email-scope", func(t *testing.T) {
		resp, _ := redeemAs(t, "web", func(c *store.AuthCode) { c.Scopes = []string{"openid", "email"} })
		claims := payload(t, resp.IDToken)
		if claims["email"] != "alice@example.com" || claims["name"] != nil {
			t.Errorf("ID token claims %v", claims)
		}
	})

	t.Run("ok/id-token-without-nonce", func(t *testing.T) {
		resp, _ := redeemAs(t, "web", func(c *store.AuthCode) { c.Nonce = "" })
		if _, ok := payload(t, resp.IDToken)["nonce"]; ok {
			t.Error("nonce claim without a nonce in the request")
		}
	})

	t.Run("ok/no-id-token-without-openid", func(t *testing.T) {
		resp, _ := redeemAs(t, "web", func(c *store.AuthCode) { c.Scopes = []string{"profile", "read"} })
		if resp.IDToken != "" {
			t.Error("ID token without scope openid")
		}
		if resp.RefreshToken == "" {
			t.Error("no refresh token")
		}
	})

	t.Run("ok/refresh-token-only-with-the-grant", func(t *testing.T) {
		resp, _ := redeemAs(t, "plain", func(c *store.AuthCode) { c.Scopes = []string{"openid", "read"} })
		if resp.RefreshToken != "" {
			t.Error("refresh token issued to a client without the refresh_token grant")
		}
		// Without configured audiences the token is for the client itself; without
		// may_act nobody is named.
		at := f.access(t, resp.AccessToken)
		if !slices.Equal(at.Audience, []string{"plain"}) || at.MayAct != nil {
			t.Errorf("access token claims %+v", at)
		}
		if resp.IDToken == "" {
			t.Error("no ID token")
		}
	})

	t.Run("ok/refresh-token-stored-by-hash", func(t *testing.T) {
		resp, ac := redeemAs(t, "web", nil)
		if !strings.HasPrefix(resp.RefreshToken, grant.RefreshTokenPrefix) {
			t.Errorf("refresh token %q lacks prefix %q", resp.RefreshToken, grant.RefreshTokenPrefix)
		}
		rt := f.refreshRecord(t, resp.RefreshToken)
		if rt.FamilyID != ac.ID || rt.ClientID != "web" || rt.SessionID != "sid-1" || rt.Subject != "alice" ||
			!slices.Equal(rt.Scopes, ac.Scopes) || !rt.ExpiresAt.Equal(f.now.Add(refreshTTL)) || !rt.UsedAt.IsZero() {
			t.Errorf("stored refresh token %+v", rt)
		}
	})
}

// A code presented again revokes what its first redemption issued, down the lineage.
func TestAuthorizationCodeReplay(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	code, ac := f.code(t, nil)
	_, first, err := f.redeem(code)
	if err != nil {
		t.Fatal(err)
	}
	id, err := verifyIDToken(f, first.IDToken)
	if err != nil {
		t.Fatal(err)
	}
	// api exchanged the access token before the replay: its token descends from it.
	exchanged, err := f.disp.Token(ctx, f.request("api", "grant_type", oauth.GrantTokenExchange,
		"subject_token", first.AccessToken, "subject_token_type", string(oauth.TokenTypeAccessToken), "audience", api2))
	if err != nil {
		t.Fatal(err)
	}
	issued := map[string]string{
		"code":           ac.ID,
		"access token":   f.access(t, first.AccessToken).ID,
		"refresh token":  f.refreshRecord(t, first.RefreshToken).ID,
		"ID token":       id.ID,
		"exchange token": f.access(t, exchanged.AccessToken).ID,
	}
	for what, jti := range issued {
		if f.tokens.IsRevoked(jti) {
			t.Fatalf("%s %s revoked before the replay", what, jti)
		}
	}

	req, resp, err := f.redeem(code)
	if resp != nil {
		t.Fatalf("replayed code answered %+v", resp)
	}
	wantCode(t, err, oauth.CodeInvalidGrant)
	for what, jti := range issued {
		if !f.tokens.IsRevoked(jti) {
			t.Errorf("%s %s not revoked by the replay", what, jti)
		}
	}
	if _, err := f.tokens.Verify(first.AccessToken, []string{oauth.JWTTypeAccessToken}, f.now); err != token.ErrRevoked {
		t.Errorf("first access token verifies with %v, want %v", err, token.ErrRevoked)
	}
	// Also after a restart: the revocations are stored.
	stored, err := f.st.ListRevocations(ctx, f.now)
	if err != nil {
		t.Fatal(err)
	}
	for what, jti := range issued {
		if !slices.ContainsFunc(stored, func(r store.Revocation) bool { return r.JTI == jti }) {
			t.Errorf("revocation of %s %s not stored", what, jti)
		}
	}

	var denied, revoked int
	for _, e := range f.events(t, req.RequestID) {
		switch e.Type {
		case store.EventDenied:
			denied++
			if !strings.HasPrefix(e.Reason, "invalid_grant: ") || e.Subject != "alice" || e.ParentJTI != ac.ID {
				t.Errorf("denial %+v", e)
			}
		case store.EventTokenRevoked:
			revoked++
			if e.TokenJTI != ac.ID || e.ClientID != "web" {
				t.Errorf("revocation event %+v", e)
			}
		default:
			t.Errorf("unexpected event %+v", e)
		}
	}
	if denied != 1 || revoked != 1 {
		t.Errorf("%d denials and %d revocations recorded, want one each", denied, revoked)
	}

	req, resp, err = f.refresh("web", first.RefreshToken)
	if resp != nil {
		t.Fatalf("refresh token of a replayed code refreshed: %+v", resp)
	}
	wantCode(t, err, oauth.CodeInvalidGrant)
	wantDenied(t, f, req, oauth.CodeInvalidGrant)
}

// profilesFunc is a grant.Profiles made of a function.
type profilesFunc func(ctx context.Context, subject, idp string) map[string]string

func (p profilesFunc) Claims(ctx context.Context, subject, idp string) map[string]string {
	return p(ctx, subject, idp)
}

// A replay that lands while the first redemption is still issuing its tokens revokes
// the code before they are recorded: the first redemption is then refused too, as a
// revoked grant, and nothing it issued is recorded as allowed.
func TestAuthorizationCodeReplayedWhileIssuing(t *testing.T) {
	f := newFixture(t, nil)
	code, ac := f.code(t, nil)
	var replay error
	replayed := false
	f.users.Profiles = profilesFunc(func(context.Context, string, string) map[string]string {
		// Called while the first redemption builds its ID token, after the code was
		// redeemed and before anything is recorded.
		if !replayed {
			replayed = true
			_, _, replay = f.redeem(code)
		}
		return nil
	})
	req, resp, err := f.redeem(code)
	if !replayed {
		t.Fatal("the replay did not run")
	}
	wantCode(t, replay, oauth.CodeInvalidGrant)
	if resp != nil {
		t.Fatalf("tokens of a revoked code handed out: %+v", resp)
	}
	wantCode(t, err, oauth.CodeInvalidGrant)
	e := wantDenied(t, f, req, oauth.CodeInvalidGrant)
	if e.ParentJTI != ac.ID || detail(t, e)["withdrawn_jti"] == "" {
		t.Errorf("denial %+v", e)
	}
}
