package e2e

import (
	"context"
	"testing"
	"time"

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
