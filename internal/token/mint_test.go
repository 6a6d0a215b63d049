package token_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/keys"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/verify"
)

// TestMintVerifiesEverywhere: a token Mint signs verifies with go-jose against
// the published key, with deputy's own Verify, and with the SDK's verifier
// reading deputy's JWKS; its header is alg, kid and typ, nothing else, and an
// ES256 or EdDSA signature is 64 octets (RFC 7518 §3.4, RFC 8037 §3.1).
func TestMintVerifiesEverywhere(t *testing.T) {
	for _, alg := range keys.Algorithms {
		t.Run(alg, func(t *testing.T) {
			var ks *keys.Set
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Write(ks.JWKS())
			}))
			t.Cleanup(srv.Close)
			ks = openKeys(t, newStore(t), alg)
			svc := token.NewService(srv.URL, ks, token.NewRevoked(), 16384)
			token.DisableCache(svc)
			now := time.Now()
			c := sample(now)
			c.Cnf = nil
			c.Extra["groups"] = []any{"ledger", "<admins>"}
			raw, err := svc.Mint(oauth.JWTTypeAccessToken, c)
			if err != nil {
				t.Fatal(err)
			}

			// go-jose, with the key as the JWKS publishes it.
			var set jose.JSONWebKeySet
			if err := json.Unmarshal(ks.JWKS(), &set); err != nil {
				t.Fatal(err)
			}
			jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
			if err != nil {
				t.Fatal(err)
			}
			h := jws.Signatures[0].Header
			keysFor := set.Key(h.KeyID)
			if len(keysFor) != 1 {
				t.Fatalf("kid %q names %d published keys", h.KeyID, len(keysFor))
			}
			payload, err := jws.Verify(&keysFor[0])
			if err != nil {
				t.Fatalf("go-jose: %v", err)
			}
			var header map[string]any
			seg, _ := base64.RawURLEncoding.DecodeString(raw[:strings.IndexByte(raw, '.')])
			if err := json.Unmarshal(seg, &header); err != nil {
				t.Fatal(err)
			}
			if want := map[string]any{"alg": alg, "kid": ks.Active().ID, "typ": "at+jwt"}; !reflect.DeepEqual(header, want) {
				t.Errorf("header %v, want %v", header, want)
			}
			sig, _ := base64.RawURLEncoding.DecodeString(raw[strings.LastIndexByte(raw, '.')+1:])
			if (alg == "ES256" || alg == "EdDSA") && len(sig) != 64 {
				t.Errorf("signature of %d octets", len(sig))
			}
			var claims map[string]any
			if err := json.Unmarshal(payload, &claims); err != nil {
				t.Fatal(err)
			}
			if claims["sub"] != "alice" || claims["email"] != "alice@example.com" || claims["iss"] != srv.URL {
				t.Errorf("claims %v", claims)
			}

			// deputy's own Verify.
			v, err := svc.Verify(raw, token.TypesFor(oauth.TokenTypeAccessToken), now)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if v.Claims.Subject != "alice" || v.Type != "at+jwt" || !reflect.DeepEqual(v.Claims.Extra["groups"], []any{"ledger", "<admins>"}) {
				t.Errorf("Verify: %+v", v)
			}

			// The SDK.
			vr, err := verify.New(context.Background(), verify.Config{Issuer: srv.URL, Audience: "https://api1.example", JWKSURL: srv.URL + "/jwks"})
			if err != nil {
				t.Fatal(err)
			}
			p, err := vr.Verify(context.Background(), raw)
			if err != nil {
				t.Fatalf("sdk/verify: %v", err)
			}
			if p.Subject != "alice" || !reflect.DeepEqual(p.Actors, []string{"api2", "api1"}) || p.Claims["email"] != "alice@example.com" {
				t.Errorf("sdk/verify: %+v", p)
			}
		})
	}
}
