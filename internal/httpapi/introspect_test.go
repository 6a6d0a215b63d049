package httpapi_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/url"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/dpop"
)

// TestIntrospectRefreshTokenCnf: introspecting a refresh token bound to a DPoP key
// (a public client's, RFC 9449 §5) shows that binding as cnf.jkt (RFC 7662 §2.2,
// RFC 9449 §6.2), like an access token's; an unbound refresh token shows none.
func TestIntrospectRefreshTokenCnf(t *testing.T) {
	s, ts := webNode(t, nil)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jkt, _ := dpop.Thumbprint(k.Public())

	// signIn returns spa's refresh token, bound to k when withKey.
	signIn := func(t *testing.T, withKey bool) string {
		t.Helper()
		b := newBrowser(t, ts)
		back := b.submit(b.signIn(authURL("spa", spaCB, "s1")), url.Values{"decision": {"allow"}})
		redeem := url.Values{"grant_type": {oauth.GrantAuthorizationCode}, "client_id": {"spa"},
			"code": {query(t, back.location).Get("code")}, "redirect_uri": {spaCB}, "code_verifier": {pkceVerifier}}
		call := dpopCall{"POST", ts.URL + "/token", redeem, "", ""}
		if withKey {
			p, err := dpop.NewProof(k, jose.ES256, "POST", s.Config.Issuer+"/token", "", "")
			if err != nil {
				t.Fatal(err)
			}
			call.proof = p
		}
		st, _, body := call.do(t)
		var tr oauth.TokenResponse
		_ = json.Unmarshal(body, &tr)
		if st != 200 || tr.RefreshToken == "" {
			t.Fatalf("token: %d %s", st, body)
		}
		return tr.RefreshToken
	}
	introspect := func(t *testing.T, rt string) oauth.IntrospectionResponse {
		t.Helper()
		st, _, body := dpopCall{"POST", ts.URL + "/introspect", url.Values{"token": {rt}, "client_id": {"spa"}}, "", ""}.do(t)
		var ir oauth.IntrospectionResponse
		if err := json.Unmarshal(body, &ir); err != nil || st != 200 || !ir.Active {
			t.Fatalf("introspection: %d %s", st, body)
		}
		return ir
	}

	t.Run("ok/bound", func(t *testing.T) {
		ir := introspect(t, signIn(t, true))
		if ir.Cnf == nil || ir.Cnf.JKT != jkt || ir.Cnf.X5TS256 != "" {
			t.Errorf("cnf %+v, want jkt %s", ir.Cnf, jkt)
		}
	})
	t.Run("ok/unbound", func(t *testing.T) {
		if ir := introspect(t, signIn(t, false)); ir.Cnf != nil {
			t.Errorf("cnf %+v of an unbound refresh token", ir.Cnf)
		}
	})
}
