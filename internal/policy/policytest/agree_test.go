package policytest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/keys"
	"github.com/deputy-auth/deputy/internal/samlx"
	"github.com/deputy-auth/deputy/internal/store/sqlstore"
	"github.com/deputy-auth/deputy/internal/subject"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// TestPrincipalAgreesWithTheVerifier: a real token's claims, described to
// Principal, give the principal the server's own verifier (internal/subject)
// makes of the token — every field, the Go types of subject.claims included
// (auth_time int64, amr []string, other numbers float64), so a condition sees
// the same values under policy explain and test as on the server.
func TestPrincipalAgreesWithTheVerifier(t *testing.T) {
	env := testEnv(t)
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlstore.Open(ctx, "sqlite", filepath.Join(dir, "s.db"))
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
	svc := token.NewService(env.cfg.Issuer, ks, token.NewRevoked(), 16384)

	// A trusted issuer with a key in a jwks_file, its tid mapped to tenant and
	// its upn to email.
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &ecKey.PublicKey, KeyID: "e1", Algorithm: "ES256", Use: "sig"}}})
	ti := env.cfg.TrustedIssuers[0]
	ti.JWKSFile, ti.Algorithms = filepath.Join(dir, "jwks.json"), []string{"ES256"}
	if err := os.WriteFile(ti.JWKSFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := subject.New(ctx, svc, subject.Options{TrustedIssuers: []config.TrustedIssuer{ti}, TrustDomain: "spiffe://bank.example"})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: ecKey},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "e1"))
	if err != nil {
		t.Fatal(err)
	}
	foreign := func(claims map[string]any) string {
		b, _ := json.Marshal(claims)
		jws, err := signer.Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}

	now := time.Unix(time.Now().Unix(), 0)
	own := func(typ string) string {
		raw, err := svc.Mint(typ, &token.Claims{Subject: "alice", Audience: token.Audience{"https://ledger.example"}, ClientID: "web-app",
			Scope: "ledger:write fraud:check", IssuedAt: now.Unix(), NotBef: now.Unix(), Expiry: now.Add(time.Minute).Unix(), ID: token.NewID(),
			AuthTime: now.Add(-10 * time.Minute).Unix(), ACR: "mfa", AMR: []string{"pwd", "otp"}, SID: "s1",
			Act: &oauth.Actor{Subject: "payments", Actor: &oauth.Actor{Subject: "web-app"}}, MayAct: &oauth.Actor{Subject: "ledger"},
			Cnf:   &oauth.Confirmation{JKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
			Extra: map[string]any{"tenant": "bank", "level": 3, "tags": []string{"a", "b"}, "idp": "local"}})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	idToken, err := svc.MintIDToken("", &token.IDClaims{Subject: "alice", Audience: token.Audience{"ledger"}, Expiry: now.Add(time.Minute).Unix(),
		IssuedAt: now.Unix(), AuthTime: now.Add(-time.Hour).Unix(), Nonce: "n", ACR: "mfa", AMR: []string{"pwd"}, SID: "s1", AZP: "ledger",
		ATHash: "h", ID: token.NewID(), IdP: "corp", Act: &oauth.Actor{Subject: "payments"},
		Profile: map[string]string{"email": "alice@bank.example"}, Extra: map[string]any{"level": 2}})
	if err != nil {
		t.Fatal(err)
	}

	txnToken, err := svc.MintTxn(&token.TxnClaims{IssuedAt: now.Unix(), Expiry: now.Add(time.Minute).Unix(), ID: token.NewID(),
		Audience: "spiffe://bank.example", Txn: "t1", Subject: "alice", Scope: "ledger:write",
		Tctx: json.RawMessage(`{"action":"payment","amount":12345678901234567890}`), Rctx: map[string]any{"req_ip": "10.0.0.1", "authn": "mfa", "req_wl": "payments"}})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, client, issuer string
		typ                  oauth.TokenType
		raw                  string
		rename               map[string]string // the issuer's claim names → deputy's
	}{
		{"ok/access-token", "ledger", "", oauth.TokenTypeAccessToken, own(oauth.JWTTypeAccessToken), nil},
		{"ok/jwt", "ledger", "", oauth.TokenTypeJWT, own(oauth.JWTTypeJWT), nil},
		{"ok/id-token", "ledger", "", oauth.TokenTypeIDToken, idToken, nil},
		{"ok/txn-token", "ledger", "", oauth.TokenTypeTxnToken, txnToken, nil},
		{"ok/trusted-issuer", "payments", "entra", oauth.TokenTypeAccessToken, foreign(map[string]any{
			"iss": ti.Issuer, "sub": "alice", "aud": []string{"api://payments"}, "exp": now.Add(time.Minute).Unix(), "iat": now.Unix(),
			"jti": "j1", "tid": 42, "upn": "alice@bank.example", "act": map[string]any{"sub": "svc"},
			"cnf": map[string]any{"x5t#S256": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}),
			map[string]string{"tid": "tenant", "upn": "email"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := v.Verify(ctx, "subject", tt.raw, tt.typ, now)
			if err != nil {
				t.Fatal(err)
			}
			claims := payload(t, tt.raw)
			for from, to := range tt.rename {
				claims[to] = claims[from]
				delete(claims, from)
			}
			described, _ := json.Marshal(claims)
			got, err := env.Principal(tt.client, Subject{Claims: described, Issuer: tt.issuer, Type: tt.typ.ShortName()}, now)
			if err != nil {
				t.Fatalf("%s: %v", described, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("described by its claims %s:\n got %#v\nwant %#v (the verifier's)", described, got, want)
			}
		})
	}
}

// payload is a compact JWT's claims, read without verifying.
func payload(t *testing.T, raw string) map[string]json.RawMessage {
	t.Helper()
	parts := strings.Split(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSAMLClaimsAreSAMLXs: the claims Principal lets a SAML subject have are
// those the SAML verifier takes from attributes (samlx.Claim).
func TestSAMLClaimsAreSAMLXs(t *testing.T) {
	for _, c := range samlClaims {
		if samlx.Claim(c, "") != c {
			t.Errorf("samlx.Claim(%q) = %q: the SAML verifier never gives claim %s", c, samlx.Claim(c, ""), c)
		}
	}
	for _, name := range []string{"mail", "displayName", "givenName", "sn", "uid", "urn:oid:0.9.2342.19200300.100.1.3"} {
		if c := samlx.Claim(name, ""); c == "" || !contains(samlClaims, c) {
			t.Errorf("attribute %s gives claim %q, which Principal does not let a SAML subject have", name, c)
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
