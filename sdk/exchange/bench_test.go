package exchange_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/deputy-auth/deputy/sdk/exchange"
)

// BenchmarkExchangeCached is the hot path: a call whose token is cached.
func BenchmarkExchangeCached(b *testing.B) {
	f := newFakeEndpoint(b, func(url.Values) (int, string, string) {
		return 200, "application/json", tokenJSON("exchanged", 3600)
	})
	e, err := exchange.New(exchange.Config{TokenURL: f.URL, ClientID: "api1", ClientSecret: "s"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := e.Exchange(ctx, "incoming", api2, "ledger:read"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.Exchange(ctx, "incoming", api2, "ledger:read"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
