package exchange

import (
	"testing"

	"github.com/deputy-auth/deputy/oauth"
)

// BenchmarkDecide measures the hot path of every token exchange: the second hop of
// design §1 (api2 exchanging a token that already carries act), with requested scopes,
// carried claims and two candidate rules.
func BenchmarkDecide(b *testing.B) {
	x := newTestExchanger(b)
	req := baseRequest()
	req.ClientID = "gateway"
	req.Subject.Audiences = []string{"gateway"}
	req.Subject.Act = &oauth.Actor{Subject: "api1"}
	req.Subject.Claims = map[string]any{"acr": "mfa", "auth_time": int64(1700000000)}
	req.Scopes = []string{"ledger:read"}
	if _, err := x.Decide(req, now); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := x.Decide(req, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecideDenied measures a refusal, which builds its audit explanation.
func BenchmarkDecideDenied(b *testing.B) {
	x := newTestExchanger(b)
	req := baseRequest()
	req.Audiences = []string{api4}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := x.Decide(req, now); err == nil {
			b.Fatal("allowed")
		}
	}
}
