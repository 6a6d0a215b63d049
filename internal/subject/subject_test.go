package subject_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/keys"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/store/sqlstore"
	"github.com/deputy-auth/deputy/internal/subject"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

func TestVerify(t *testing.T) {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, "sqlite", filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ks, err := keys.Open(ctx, st, keys.Options{Algorithm: "ES256", RetireAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	revoked := token.NewRevoked()
	svc := token.NewService("https://deputy.test", ks, revoked, 16384)
	v := subject.NewVerifier(svc)
	now := time.Now()
	mint := func(typ string, mod func(c *token.Claims)) string {
		c := &token.Claims{Subject: "alice", Audience: token.Audience{"https://api1.example"}, ClientID: "web",
			Scope: "a b", IssuedAt: now.Unix(), Expiry: now.Add(time.Minute).Unix(), ID: token.NewID(),
			AuthTime: now.Add(-time.Hour).Unix(), AMR: []string{"pwd"}, Extra: map[string]any{"idp": "local"},
			Act: &oauth.Actor{Subject: "api1"}, MayAct: &oauth.Actor{Subject: "api2"}}
		if mod != nil {
			mod(c)
		}
		raw, err := svc.Mint(typ, c)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	at := mint(oauth.JWTTypeAccessToken, nil)
	plain := mint(oauth.JWTTypeJWT, nil)
	var revokedJTI string
	rev := mint(oauth.JWTTypeAccessToken, func(c *token.Claims) { revokedJTI = c.ID })
	revoked.Add([]store.Revocation{{JTI: revokedJTI}})
	expired := mint(oauth.JWTTypeAccessToken, func(c *token.Claims) { c.Expiry = now.Add(-time.Second).Unix() })

	t.Run("ok/access-token-normalised", func(t *testing.T) {
		p, err := v.Verify(ctx, "subject", at, oauth.TokenTypeAccessToken, now)
		if err != nil {
			t.Fatal(err)
		}
		if p.Issuer != subject.Self || p.Subject != "alice" || p.ClientID != "web" || len(p.Scopes) != 2 ||
			p.Act.Subject != "api1" || p.MayAct.Subject != "api2" || p.JTI == "" || p.ExpiresAt.IsZero() {
			t.Errorf("principal %+v", p)
		}
		if p.Claims["idp"] != "local" || p.Claims["auth_time"] == nil || p.Claims["amr"] == nil {
			t.Errorf("carried claims %v", p.Claims)
		}
	})
	t.Run("ok/jwt-declared-jwt", func(t *testing.T) {
		if _, err := v.Verify(ctx, "subject", plain, oauth.TokenTypeJWT, now); err != nil {
			t.Fatal(err)
		}
	})
	for _, tc := range []struct {
		name, raw string
		typ       oauth.TokenType
		wantSub   bool // the refused principal still names the token, for the audit record
	}{
		{"fail/jwt-declared-access-token", plain, oauth.TokenTypeAccessToken, false},
		{"fail/refresh-token-type-unsupported", at, oauth.TokenTypeRefreshToken, false},
		{"fail/saml2-type-unsupported", at, oauth.TokenTypeSAML2, false},
		{"fail/revoked", rev, oauth.TokenTypeAccessToken, true},
		{"fail/expired", expired, oauth.TokenTypeAccessToken, true},
		{"fail/garbage", "x.y.z", oauth.TokenTypeAccessToken, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify(ctx, "actor", tc.raw, tc.typ, now)
			var oe *oauth.Error
			if !errors.As(err, &oe) || oe.Code != oauth.CodeInvalidRequest {
				t.Fatalf("err %v, want invalid_request", err)
			}
			if tc.wantSub != (p.Subject == "alice" && p.JTI != "") {
				t.Errorf("principal of the refused token %+v", p)
			}
			if len(oe.Description) < 6 || oe.Description[:6] != "actor_" {
				t.Errorf("description %q does not name the actor token", oe.Description)
			}
		})
	}
}
