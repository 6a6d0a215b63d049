package exchange

import (
	"testing"

	"github.com/deputy-auth/deputy/oauth"
)

// benchRequest is the hot path of every token exchange: a hop past the first of
// design §1 (a token that already carries act), with carried claims and two
// candidate rules, the first of which (api1-to-api2) drops out on its target.
func benchRequest() Request {
	req := baseRequest()
	req.Audiences = []string{api3}
	req.Subject.Act = &oauth.Actor{Subject: "web-app"}
	req.Subject.Claims = map[string]any{"acr": "mfa", "auth_time": int64(1700000000)}
	return req
}

// BenchmarkDecide measures benchRequest, its scope either requested or left to
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
		req := benchRequest()
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

// BenchmarkDecideCondition measures what a CEL condition (design §12) adds to the
// request of BenchmarkDecide/requested-scope: the gateway's deciding rule carries
// the condition, and the rule before it (which drops out on may_act) carries none.
// Compare with BenchmarkDecide/requested-scope, and with internal/token's
// BenchmarkMint (one ES256 signature), which every exchange also pays.
func BenchmarkDecideCondition(b *testing.B) {
	for _, bc := range []struct{ name, cond string }{
		{"none", ""},
		{"claim", `subject.claims.acr == "mfa"`},
		{"act-chain", `size(subject.act) > 0 && subject.act[0].sub == "web-app"`},
		{"scopes-and-hours", `request.scopes.all(s, s.startsWith("ledger:")) && now.getHours("UTC") >= 8 && now.getHours("UTC") < 18`},
	} {
		policies := testPolicies()
		for i := range policies {
			if policies[i].Name == "api1-wide" {
				policies[i].Condition = bc.cond
			}
		}
		x, err := New(policies, testAudiences(), opts)
		if err != nil {
			b.Fatal(err)
		}
		req := benchRequest()
		req.Scopes = []string{"ledger:read"}
		b.Run(bc.name, func(b *testing.B) {
			if d, err := x.Decide(req, now); err != nil || d.Rule != "api1-wide" {
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
