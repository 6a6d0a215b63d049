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

// TestVerifyTxn: a transaction token presented as subject token (README
// "Transaction tokens"): deputy's, typ txntoken+jwt, of this trust domain, not
// expired, not revoked; and never accepted as any other declared type.
func TestVerifyTxn(t *testing.T) {
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
	const domain = "spiffe://bank.example"
	v, err := subject.New(ctx, svc, subject.Options{TrustDomain: domain})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	mint := func(mod func(c *token.TxnClaims)) (string, *token.TxnClaims) {
		c := &token.TxnClaims{IssuedAt: now.Unix(), Expiry: now.Add(time.Minute).Unix(), ID: token.NewID(), Audience: domain,
			Txn: "txn-1", Subject: "alice", Scope: "payments:read", Tctx: []byte(`{"action":"payment"}`),
			Rctx: map[string]any{"req_ip": "10.0.0.1", "req_wl": "pay"}}
		if mod != nil {
			mod(c)
		}
		raw, err := svc.MintTxn(c)
		if err != nil {
			t.Fatal(err)
		}
		return raw, c
	}
	good, gc := mint(nil)

	t.Run("ok/txn-token", func(t *testing.T) {
		p, err := v.Verify(ctx, "subject", good, oauth.TokenTypeTxnToken, now)
		if err != nil {
			t.Fatal(err)
		}
		if p.TokenType != oauth.TokenTypeTxnToken || p.Issuer != subject.Self || p.Subject != "alice" || p.JTI != gc.ID ||
			len(p.Scopes) != 1 || p.Scopes[0] != "payments:read" || p.ClientID != "" || p.Cnf != nil || p.Act != nil ||
			len(p.Audiences) != 1 || p.Audiences[0] != domain || !p.ExpiresAt.Equal(time.Unix(gc.Expiry, 0)) {
			t.Errorf("principal %+v", p)
		}
		tctx, _ := p.Claims["tctx"].(map[string]any)
		rctx, _ := p.Claims["rctx"].(map[string]any)
		if string(p.Tctx) != `{"action":"payment"}` {
			t.Errorf("tctx as signed %s", p.Tctx)
		}
		if p.Claims["txn"] != "txn-1" || tctx["action"] != "payment" || rctx["req_wl"] != "pay" || rctx["req_ip"] != "10.0.0.1" {
			t.Errorf("claims %v", p.Claims)
		}
	})

	expired, _ := mint(func(c *token.TxnClaims) { c.Expiry = now.Add(-time.Second).Unix() })
	other, _ := mint(func(c *token.TxnClaims) { c.Audience = "spiffe://other.example" })
	noTxn, _ := mint(func(c *token.TxnClaims) { c.Txn = "" })
	rev, rc := mint(nil)
	revoked.Add([]store.Revocation{{JTI: rc.ID}})
	at, err := svc.Mint(oauth.JWTTypeAccessToken, &token.Claims{Subject: "alice", Audience: token.Audience{domain}, ClientID: "web",
		IssuedAt: now.Unix(), Expiry: now.Add(time.Minute).Unix(), ID: token.NewID(), Extra: map[string]any{"txn": "forged"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, raw string
		typ       oauth.TokenType
		role      string
		want      error  // a token.Err… cause, or nil
		desc      string // the client-facing description
	}{
		{"fail/expired", expired, oauth.TokenTypeTxnToken, "subject", token.ErrExpired, "subject_token is expired"},
		{"fail/revoked", rev, oauth.TokenTypeTxnToken, "subject", token.ErrRevoked, "subject_token is revoked"},
		{"fail/another-trust-domain", other, oauth.TokenTypeTxnToken, "subject", nil, "subject_token is a transaction token of another trust domain"},
		{"fail/without-txn", noTxn, oauth.TokenTypeTxnToken, "subject", nil, "subject_token is a transaction token without txn"},
		{"fail/access-token-declared-txn", at, oauth.TokenTypeTxnToken, "subject", token.ErrType, "subject_token is not of the declared subject_token_type"},
		{"fail/txn-declared-access-token", good, oauth.TokenTypeAccessToken, "subject", token.ErrType, "subject_token is not of the declared subject_token_type"},
		{"fail/txn-declared-jwt", good, oauth.TokenTypeJWT, "subject", token.ErrType, "subject_token is not of the declared subject_token_type"},
		{"fail/txn-declared-id-token", good, oauth.TokenTypeIDToken, "subject", nil, ""},
		{"fail/txn-as-actor-token", good, oauth.TokenTypeTxnToken, "actor", nil, "actor_token_type txn_token is not accepted: a transaction token is only ever a subject token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(ctx, tc.role, tc.raw, tc.typ, now)
			var oe *oauth.Error
			if !errors.As(err, &oe) || oe.Code != oauth.CodeInvalidRequest {
				t.Fatalf("Verify = %v, want invalid_request", err)
			}
			if tc.want != nil && !errors.Is(oe.Cause, tc.want) {
				t.Errorf("cause %v, want %v", oe.Cause, tc.want)
			}
			if tc.desc != "" && oe.Description != tc.desc {
				t.Errorf("description %q, want %q", oe.Description, tc.desc)
			}
		})
	}

	t.Run("fail/no-trust-domain", func(t *testing.T) {
		if _, err := subject.NewVerifier(svc).Verify(ctx, "subject", good, oauth.TokenTypeTxnToken, now); err == nil {
			t.Fatal("a verifier without a trust domain accepted a transaction token")
		}
	})
	t.Run("ok/types-for", func(t *testing.T) {
		for _, typ := range []oauth.TokenType{oauth.TokenTypeAccessToken, oauth.TokenTypeJWT, oauth.TokenTypeIDToken, oauth.TokenTypeRefreshToken} {
			for _, h := range token.TypesFor(typ) {
				if h == oauth.JWTTypeTxnToken {
					t.Errorf("TypesFor(%s) accepts %s", typ, h)
				}
			}
		}
		if got := token.TypesFor(oauth.TokenTypeTxnToken); len(got) != 1 || got[0] != oauth.JWTTypeTxnToken {
			t.Errorf("TypesFor(txn_token) = %v", got)
		}
	})
}
