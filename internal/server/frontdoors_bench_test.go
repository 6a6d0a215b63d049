package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"testing"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/oauth"
)

// BenchmarkFrontDoors is one request through the HTTP handler by each door to
// the exchange core, with the same subject token, client and durable audit
// append: an RFC 8693 exchange for api2, the on-behalf-of grant for api2
// (README "On-behalf-of (Microsoft Entra's flow)"), and a transaction token
// (README "Transaction tokens"). The difference between the first two is what
// the Entra front door costs.
//
//	go test -run - -bench FrontDoors -count 6 ./internal/server
func BenchmarkFrontDoors(b *testing.B) {
	cfg := config.Dev(b.TempDir())
	for i := range cfg.Clients {
		if cfg.Clients[i].ID == "api1" {
			cfg.Clients[i].GrantTypes = append(cfg.Clients[i].GrantTypes, oauth.GrantJWTBearer)
		}
	}
	cfg.TxnTokens.TrustDomain = "bank.internal"
	cfg.Exchange.Policies = append(cfg.Exchange.Policies, config.Policy{
		Name: "api1-transactions", Client: "api1", RequestedTokenTypes: []string{config.TxnTokenType},
		Scopes: []string{"ledger:read", "fraud:check"},
	})
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	t0 := accessToken(b, post(s.Handler, "web-app", "web-app-secret",
		url.Values{"grant_type": {"client_credentials"}, "scope": {"payments:read ledger:read fraud:check"}}))
	for _, door := range []struct {
		name string
		form url.Values
	}{
		{"token-exchange", exchangeForm(t0, "https://api2.example")},
		{"on-behalf-of", url.Values{
			"grant_type": {oauth.GrantJWTBearer}, "requested_token_use": {"on_behalf_of"},
			"assertion": {t0}, "scope": {"https://api2.example/.default openid profile offline_access"},
		}},
		{"txn-token", url.Values{
			"grant_type": {oauth.GrantTokenExchange}, "subject_token": {t0},
			"subject_token_type": {string(oauth.TokenTypeAccessToken)}, "requested_token_type": {string(oauth.TokenTypeTxnToken)},
			"scope": {"ledger:read"}, "request_context": {`{"payment":{"to":"bob","amount":"42.00"}}`},
		}},
	} {
		// serial: one request at a time, each waits for its own fsync;
		// parallel: 16 per core, the audit writer's group commit shares them,
		// and what is left is the work of each door.
		b.Run(door.name+"/serial", func(b *testing.B) {
			for b.Loop() {
				if w := post(s.Handler, "api1", "api1-secret", door.form); w.Code != 200 {
					b.Fatalf("%d %s", w.Code, w.Body.String())
				}
			}
		})
		b.Run(door.name+"/parallel", func(b *testing.B) {
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if w := post(s.Handler, "api1", "api1-secret", door.form); w.Code != 200 {
						b.Errorf("%d %s", w.Code, w.Body.String())
						return
					}
				}
			})
		})
	}
}
