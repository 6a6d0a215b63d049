package exchange

import (
	"testing"

	"github.com/deputy-auth/deputy/oauth"
)

// BenchmarkDecide measures the hot path of every token exchange: the second hop of
// design §1 (a token that already carries act), with carried claims and two candidate
// rules, the first of which drops out. The scope is either requested or left to
// default to everything allowed.
func BenchmarkDecide(b *testing.B) {
	x := newTestExchanger(b)
	for _, bc := range []struct {
		name   string
		scopes []string
	}{
		{"requested-scope", []string{"ledger:read"}},
		{"default-scopes", nil},
	} {
		req := baseRequest()
		req.ClientID = "gateway"
		req.Subject.Audiences = []string{"gateway"}
		req.Subject.Act = &oauth.Actor{Subject: "api1"}
		req.Subject.Claims = map[string]any{"acr": "mfa", "auth_time": int64(1700000000)}
		req.Scopes = bc.scopes
		b.Run(bc.name, func(b *testing.B) {
			if d, err := x.Decide(req, now); err != nil || len(d.Scopes) != 1 {
				b.Fatal(d, err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := x.Decide(req, now); err != nil {
					b.Fatal(err)
				}
			}
		})
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
