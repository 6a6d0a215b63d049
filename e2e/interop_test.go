package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	zclient "github.com/zitadel/oidc/v3/pkg/client"
	"github.com/zitadel/oidc/v3/pkg/client/tokenexchange"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// TestZitadelTokenExchange: zitadel/oidc's RFC 8693 client, unmodified, exchanges a
// token against the built binary. It finds the token endpoint through discovery and
// sends every parameter of its request struct, the unused ones without a value
// (actor_token=&actor_token_type=&scope=&requested_token_type=…), which deputy must
// treat as omitted (RFC 6749 §3.1).
func TestZitadelTokenExchange(t *testing.T) {
	s := start(t, bankConfig)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t0 := s.token("web-app", "web-secret", clientCredentials("")).str("access_token")

	te, err := tokenexchange.NewTokenExchangerClientCredentials(ctx, s.issuer, "api1", "api1-secret",
		tokenexchange.WithHTTPClient(httpClient))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tokenexchange.ExchangeToken(ctx, te, t0, oidc.AccessTokenType, "", "", nil,
		[]string{"https://api2.example"}, nil, "")
	if err != nil {
		t.Fatalf("zitadel/oidc token exchange: %v", err)
	}
	c := claims(t, resp.AccessToken)
	if resp.IssuedTokenType != oidc.AccessTokenType || resp.TokenType != "Bearer" || c["sub"] != "web-app" ||
		c["aud"] != "https://api2.example" || actJSON(t, c["act"]) != `{"sub":"api1"}` {
		t.Errorf("response %+v, claims %v", resp, c)
	}

	// With scopes and an explicit requested_token_type, the second hop.
	te2, err := tokenexchange.NewTokenExchangerClientCredentials(ctx, s.issuer, "api2", "api2-secret",
		tokenexchange.WithHTTPClient(httpClient))
	if err != nil {
		t.Fatal(err)
	}
	resp, err = tokenexchange.ExchangeToken(ctx, te2, resp.AccessToken, oidc.AccessTokenType, "", "", nil,
		[]string{"https://api3.example"}, []string{"ledger:read"}, oidc.JWTTokenType)
	if err != nil {
		t.Fatalf("zitadel/oidc second hop: %v", err)
	}
	c = claims(t, resp.AccessToken)
	if resp.IssuedTokenType != oidc.JWTTokenType || c["scope"] != "ledger:read" || actJSON(t, c["act"]) != `{"act":{"sub":"api1"},"sub":"api2"}` {
		t.Errorf("second hop %+v, claims %v", resp, c)
	}

	// A refusal reaches the client as the OAuth error.
	if _, err := tokenexchange.ExchangeToken(ctx, te, t0, oidc.AccessTokenType, "", "", nil,
		[]string{"https://api3.example"}, nil, ""); err == nil {
		t.Error("an audience no policy allows was exchanged")
	}
}

// signerConfig: api1 authenticates with private_key_jwt (its public key in %JWKS%)
// and exchanges web-app's tokens for api2.
const signerConfig = `
issuer: %ISSUER%
listen: %LISTEN%
storage: {driver: sqlite, dsn: "%DIR%/deputy.db"}
audiences:
  - {id: "https://api1.example", client: api1}
  - {id: "https://api2.example", scopes: ["ledger:read"]}
clients:
  - {id: web-app, secret: web-secret, grant_types: [client_credentials], audiences: ["https://api1.example"]}
  - id: api1
    auth_method: private_key_jwt
    jwks_file: "%JWKS%"
    grant_types: [client_credentials, "urn:ietf:params:oauth:grant-type:token-exchange"]
exchange:
  policies:
    - {name: api1-to-api2, client: api1, audiences: ["https://api2.example"]}
`

// TestZitadelPrivateKeyJWT: zitadel/oidc's JWT-profile token exchanger authenticates
// with private_key_jwt (RFC 7523: iss = sub = the client, aud = the issuer) and
// exchanges a token. An assertion of one client sent with the client_id of another is
// a failed client authentication: 401 invalid_client with WWW-Authenticate (RFC 7521
// §4.2, RFC 7523 §3.2), like every other fault of an assertion.
func TestZitadelPrivateKeyJWT(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	jwks := filepath.Join(t.TempDir(), "api1.jwks")
	if err := os.WriteFile(jwks, set, 0o600); err != nil {
		t.Fatal(err)
	}
	s := start(t, strings.ReplaceAll(signerConfig, "%JWKS%", jwks))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := s.token("web-app", "web-secret", clientCredentials("")).str("access_token")

	te, err := tokenexchange.NewTokenExchangerJWTProfile(ctx, s.issuer, "api1", signer, tokenexchange.WithHTTPClient(httpClient))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tokenexchange.ExchangeToken(ctx, te, t0, oidc.AccessTokenType, "", "", nil, nil, nil, "")
	if err != nil {
		t.Fatalf("zitadel/oidc exchange with private_key_jwt: %v", err)
	}
	if c := claims(t, resp.AccessToken); c["aud"] != "https://api2.example" || actJSON(t, c["act"]) != `{"sub":"api1"}` {
		t.Errorf("claims %v", c)
	}

	t.Run("fail/assertion-of-another-client-than-client_id", func(t *testing.T) {
		assertion, err := zclient.SignedJWTProfileAssertion("api1", []string{s.issuer}, time.Minute, signer)
		if err != nil {
			t.Fatal(err)
		}
		f := exchangeForm(t0, "client_assertion_type", oidc.ClientAssertionTypeJWTAssertion, "client_assertion", assertion,
			"client_id", "web-app")
		r := s.post("token_endpoint", "", "", f)
		wantError(t, r, 401, "invalid_client")
		if r.Header.Get("WWW-Authenticate") == "" {
			t.Error("401 without WWW-Authenticate")
		}
	})
	t.Run("fail/assertion-for-another-audience", func(t *testing.T) {
		assertion, err := zclient.SignedJWTProfileAssertion("api1", []string{"https://elsewhere.example"}, time.Minute, signer)
		if err != nil {
			t.Fatal(err)
		}
		f := exchangeForm(t0, "client_assertion_type", oidc.ClientAssertionTypeJWTAssertion, "client_assertion", assertion)
		wantError(t, s.post("token_endpoint", "", "", f), 401, "invalid_client")
	})
}
