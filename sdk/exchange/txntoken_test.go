package exchange_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/testdeputy"
	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/exchange"
)

const trustDomain = "bank.internal"

// startTxnDeputy is the development deputy where api1 may obtain transaction
// tokens for trust domain bank.internal, for at most ledger:read and fraud:check.
func startTxnDeputy(t *testing.T) *testdeputy.Deputy {
	return testdeputy.Start(t, func(c *config.Config) {
		c.TxnTokens.TrustDomain = trustDomain
		c.Exchange.Policies = append(c.Exchange.Policies, config.Policy{
			Name: "api1-transactions", Client: "api1",
			RequestedTokenTypes: []string{config.TxnTokenType},
			Scopes:              []string{"ledger:read", "fraud:check"},
		})
	})
}

// payload decodes the claims of a JWS compact token, unverified: deputy signed
// it, and the test reads what it says.
func payload(t *testing.T, raw string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", raw)
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

// TestTxnToken: against a real deputy, TxnToken obtains a transaction token of
// the purpose and context asked for, a fresh txn every call (nothing cached),
// unbound also when the exchanging client proves a DPoP key.
func TestTxnToken(t *testing.T) {
	d := startTxnDeputy(t)
	t0 := d.ClientCredentials("web-app", "payments:read ledger:read fraud:check")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		edit func(*exchange.Config)
	}{
		{"ok/bearer", nil},
		{"ok/dpop-client", func(c *exchange.Config) { c.DPoPKey = key }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newExchanger(t, d, "api1", tt.edit)
			ctx := context.Background()
			tok, err := e.TxnToken(ctx, t0, exchange.TxnRequest{
				Scopes:  []string{"ledger:read"},
				Context: map[string]any{"payment": map[string]any{"to": "bob", "amount": "42.00"}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if tok.IssuedTokenType != string(oauth.TokenTypeTxnToken) || tok.TokenType != oauth.TokenTypeNA || tok.Scope != "ledger:read" || tok.ExpiresAt.IsZero() {
				t.Fatalf("token = %+v", tok)
			}
			h, c := payload(t, tok.AccessToken)
			if h["typ"] != oauth.JWTTypeTxnToken || c["aud"] != trustDomain || c["sub"] != "web-app" || c["scope"] != "ledger:read" {
				t.Fatalf("header %v, claims %v", h, c)
			}
			if _, bound := c["cnf"]; bound {
				t.Fatalf("transaction token is bound: %v", c["cnf"])
			}
			tctx, _ := json.Marshal(c["tctx"])
			if string(tctx) != `{"payment":{"amount":"42.00","to":"bob"}}` {
				t.Fatalf("tctx = %s", tctx)
			}
			again, err := e.TxnToken(ctx, t0, exchange.TxnRequest{Scopes: []string{"ledger:read"}})
			if err != nil {
				t.Fatal(err)
			}
			if _, c2 := payload(t, again.AccessToken); c2["txn"] == c["txn"] || c2["txn"] == "" {
				t.Fatalf("two transactions share txn %v", c2["txn"])
			}
		})
	}
}

// TestTxnTokenErrors: deputy's refusals are *oauth.Error; a context that is not
// JSON is refused before any request.
func TestTxnTokenErrors(t *testing.T) {
	d := startTxnDeputy(t)
	t0 := d.ClientCredentials("web-app", "payments:read ledger:read")
	ctx := context.Background()
	for _, tt := range []struct {
		name   string
		client string
		token  string
		req    exchange.TxnRequest
		code   oauth.Code // "" for an error deputy did not answer
		calls  int        // requests to the token endpoint
	}{
		{"fail/scope-wider-than-subject", "api1", t0, exchange.TxnRequest{Scopes: []string{"fraud:check"}}, oauth.CodeInvalidScope, 1},
		{"fail/other-trust-domain", "api1", t0, exchange.TxnRequest{TrustDomain: "other.internal"}, oauth.CodeInvalidTarget, 1},
		{"fail/client-without-txn-policy", "api2", t0, exchange.TxnRequest{}, oauth.CodeInvalidRequest, 1},
		{"fail/context-not-json", "api1", t0, exchange.TxnRequest{Context: map[string]any{"f": func() {}}}, "", 0},
		{"fail/empty-subject", "api1", "", exchange.TxnRequest{}, "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, counter := newExchanger(t, d, tt.client, nil)
			tok, err := e.TxnToken(ctx, tt.token, tt.req)
			if err == nil {
				t.Fatalf("token %+v, want an error", tok)
			}
			var oe *oauth.Error
			switch {
			case tt.code == "" && errors.As(err, &oe):
				t.Fatalf("err = %v, want one of the SDK's own", err)
			case tt.code != "" && (!errors.As(err, &oe) || oe.Code != tt.code):
				t.Fatalf("err = %v, want %s", err, tt.code)
			}
			if n := counter.requests("/token"); n != tt.calls {
				t.Fatalf("%d token requests, want %d", n, tt.calls)
			}
		})
	}
}
