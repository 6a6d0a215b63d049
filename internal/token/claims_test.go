package token

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/oauth"
)

// marshalClaims is how deputy encoded claims before appendJSON: json.Marshal of
// the struct, and of Extra's claims not reserved, joined into one object. It is
// the reference appendJSON must match byte for byte.
func marshalClaims(c *Claims) ([]byte, error) {
	type plain Claims
	b, err := json.Marshal((*plain)(c))
	if err != nil || len(c.Extra) == 0 {
		return b, err
	}
	m := make(map[string]any, len(c.Extra))
	for k, v := range c.Extra {
		if !reserved[k] {
			m[k] = v
		}
	}
	if len(m) == 0 {
		return b, nil
	}
	extra, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(b)+len(extra))
	out = append(out, b[:len(b)-1]...)
	out = append(out, ',')
	out = append(out, extra[1:]...)
	return out, nil
}

// sameEncoding fails t unless appendJSON writes what marshalClaims writes, and
// both refuse the same claims.
func sameEncoding(t *testing.T, c *Claims) {
	t.Helper()
	want, wantErr := marshalClaims(c)
	got, err := c.appendJSON([]byte("prefix"))
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("appendJSON error %v, json.Marshal error %v", err, wantErr)
	}
	if err != nil {
		return
	}
	if !bytes.HasPrefix(got, []byte("prefix")) || !bytes.Equal(got[len("prefix"):], want) {
		t.Fatalf("appendJSON wrote\n%s\njson.Marshal writes\n%s", got, want)
	}
	var back Claims
	if err := decode(got[len("prefix"):], &back); err != nil {
		t.Fatalf("what appendJSON wrote does not decode: %v", err)
	}
}

func chain(n int) *oauth.Actor {
	var a *oauth.Actor
	for i := range n {
		a = &oauth.Actor{Subject: "svc" + strings.Repeat("x", i%3), Issuer: []string{"", "https://idp.example"}[i%2], Actor: a}
	}
	return a
}

func TestAppendJSONAsMarshal(t *testing.T) {
	base := func() *Claims {
		return &Claims{Issuer: "https://deputy.test", Subject: "alice", Audience: Audience{"https://api1.example"},
			Expiry: 1900000300, IssuedAt: 1900000000, NotBef: 1900000000, ID: "0123456789abcdefghijkl", ClientID: "web-app"}
	}
	cases := []struct {
		name string
		edit func(c *Claims)
	}{
		{"ok/minimal", func(c *Claims) {}},
		{"ok/zero", func(c *Claims) { *c = Claims{} }},
		{"ok/aud-nil", func(c *Claims) { c.Audience = nil }},
		{"ok/aud-empty", func(c *Claims) { c.Audience = Audience{} }},
		{"ok/aud-several", func(c *Claims) { c.Audience = Audience{"a", "b", "c"} }},
		{"ok/negative-times", func(c *Claims) { c.Expiry, c.IssuedAt, c.NotBef, c.AuthTime = -1, math.MinInt64, math.MaxInt64, -5 }},
		{"ok/every-claim", func(c *Claims) {
			c.Scope, c.AuthTime, c.ACR, c.AMR, c.SID = "a b", 1899999999, "urn:acr:mfa", []string{"pwd", "otp"}, "sess"
			c.Act, c.MayAct = chain(3), &oauth.Actor{Subject: "api2"}
			c.Cnf = &oauth.Confirmation{JKT: "thumb", X5TS256: "cert"}
		}},
		{"ok/amr-empty", func(c *Claims) { c.AMR = []string{} }},
		{"ok/cnf-empty", func(c *Claims) { c.Cnf = &oauth.Confirmation{} }},
		{"ok/cnf-jkt", func(c *Claims) { c.Cnf = &oauth.Confirmation{JKT: "thumb"} }},
		{"ok/cnf-x5t", func(c *Claims) { c.Cnf = &oauth.Confirmation{X5TS256: "cert"} }},
		{"ok/act-empty-subject", func(c *Claims) { c.Act = &oauth.Actor{} }},
		{"ok/act-deep", func(c *Claims) { c.Act = chain(100) }},
		{"ok/escapes", func(c *Claims) {
			c.Subject = "<a href=\"x\">&amp;</a>\\ \b\f\n\r\t\x00\x01\x1f\x7f é \u2028\u2029 \U0001F600"
			c.Audience = Audience{"\xff", "a\xc3", "\xed\xa0\x80"} // invalid UTF-8, a surrogate
			c.Scope = "\u2028"
		}},
		{"ok/extra", func(c *Claims) {
			c.Extra = map[string]any{"email": "a@example.com", "sub": "evil", "act": "evil", "n": 1.5, "big": 1e21,
				"obj": map[string]any{"z": 1, "a": []any{true, nil, "<"}}, "nil": nil, "b": false, "<k>": "v\u2028",
				"raw": json.RawMessage(`{ "x" : 1 }`), "\xff": "bad key"}
		}},
		{"ok/extra-only-reserved", func(c *Claims) { c.Extra = map[string]any{"iss": "evil", "cnf": 1} }},
		{"fail/extra-unencodable", func(c *Claims) { c.Extra = map[string]any{"ch": make(chan int)} }},
		{"fail/extra-nan", func(c *Claims) { c.Extra = map[string]any{"n": math.NaN()} }},
		{"ok/extra-reserved-unencodable", func(c *Claims) { c.Extra = map[string]any{"sub": make(chan int)} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(c)
			sameEncoding(t, c)
		})
	}
	t.Run("fail/act-loop", func(t *testing.T) {
		c := base()
		c.Act = &oauth.Actor{Subject: "a"}
		c.Act.Actor = c.Act
		if _, err := c.appendJSON(nil); err == nil {
			t.Fatal("encoded an actor chain that loops back")
		}
	})
}

// randomString is a short string, often with characters JSON escapes.
func randomString(r *rand.Rand) string {
	const alphabet = "ab<>&\"\\\x00\x1f\x7f/é\u2028\xff\xc3 "
	runes := []rune(alphabet)
	var b strings.Builder
	for range r.IntN(8) {
		if r.IntN(4) == 0 {
			b.WriteByte(byte(r.IntN(256)))
		} else {
			b.WriteRune(runes[r.IntN(len(runes))])
		}
	}
	return b.String()
}

func randomClaims(r *rand.Rand) *Claims {
	s := func() string { return randomString(r) }
	maybe := func() bool { return r.IntN(2) == 0 }
	c := &Claims{Issuer: s(), Subject: s(), Expiry: r.Int64() - r.Int64(), IssuedAt: r.Int64N(1 << 40), NotBef: r.Int64N(1 << 40), ID: s(), ClientID: s()}
	if maybe() {
		for range r.IntN(4) {
			c.Audience = append(c.Audience, s())
		}
	}
	if maybe() {
		c.Scope, c.ACR, c.SID, c.AuthTime = s(), s(), s(), r.Int64N(3)
	}
	if maybe() {
		c.Act = chain(r.IntN(5))
		if c.Act != nil {
			c.Act.Subject = s()
		}
	}
	if maybe() {
		c.MayAct = &oauth.Actor{Subject: s(), Issuer: s()}
	}
	if maybe() {
		for range r.IntN(3) {
			c.AMR = append(c.AMR, s())
		}
	}
	if maybe() {
		c.Cnf = &oauth.Confirmation{JKT: s(), X5TS256: s()}
	}
	if maybe() {
		c.Extra = map[string]any{}
		names := []string{"sub", "email", "groups", "aud", "n", "", "nested"}
		for range r.IntN(6) {
			var v any
			switch r.IntN(5) {
			case 0:
				v = s()
			case 1:
				v = r.Float64() * 1e6
			case 2:
				v = []any{s(), r.IntN(2) == 0}
			case 3:
				v = map[string]any{s(): s()}
			}
			name := names[r.IntN(len(names))]
			if r.IntN(3) == 0 {
				name = s()
			}
			c.Extra[name] = v
		}
	}
	return c
}

// TestAppendJSONRandom: for random claims appendJSON writes what json.Marshal
// writes, so the two decode to the same JSON.
func TestAppendJSONRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(18, 2026))
	for range 5000 {
		c := randomClaims(r)
		want, err := marshalClaims(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.appendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		var a, b any
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatalf("%v: %s", err, got)
		}
		if err := json.Unmarshal(want, &b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) || !reflect.DeepEqual(a, b) {
			t.Fatalf("appendJSON wrote\n%s\njson.Marshal writes\n%s", got, want)
		}
	}
}

// FuzzAppendJSON compares appendJSON with json.Marshal on claims made of the
// fuzzer's strings and numbers.
func FuzzAppendJSON(f *testing.F) {
	f.Add("alice", "https://api1.example", "a b", "api2", "email", "a@example.com", int64(1900000000), uint8(0))
	f.Add("<&>", "\xff\u2028", "", "", "sub", "\x00", int64(-1), uint8(0xff))
	f.Fuzz(func(t *testing.T, sub, aud, scope, actor, extraName, extraValue string, exp int64, shape uint8) {
		c := &Claims{Issuer: "https://deputy.test", Subject: sub, Expiry: exp, IssuedAt: exp / 2, NotBef: -exp, ID: extraValue, ClientID: actor, Scope: scope}
		if shape&1 != 0 {
			c.Audience = Audience{aud}
		} else if shape&2 != 0 {
			c.Audience = strings.Split(aud, " ")
		}
		if shape&4 != 0 {
			c.Act = &oauth.Actor{Subject: actor, Issuer: aud, Actor: &oauth.Actor{Subject: sub}}
		}
		if shape&8 != 0 {
			c.MayAct = &oauth.Actor{Subject: scope}
			c.Cnf = &oauth.Confirmation{JKT: actor}
		}
		if shape&16 != 0 {
			c.AMR, c.ACR, c.SID, c.AuthTime = strings.Fields(scope), sub, aud, exp
		}
		if shape&32 != 0 {
			c.Extra = map[string]any{extraName: extraValue, sub: float64(exp), "n": map[string]any{aud: []any{actor}}}
		}
		sameEncoding(t, c)
	})
}

// BenchmarkAppendJSON is the claims of a client_credentials access token with a
// cnf, and of an exchanged token with an actor and two identity claims.
func BenchmarkAppendJSON(b *testing.B) {
	cc := &Claims{Issuer: "https://deputy.example", Subject: "api1", Audience: Audience{"https://api2.example"}, Expiry: 1900000300,
		IssuedAt: 1900000000, NotBef: 1900000000, ID: "AZPlGnzUeHR3s1bWc2kDsQ", ClientID: "api1", Scope: "ledger:read ledger:write",
		Cnf: &oauth.Confirmation{JKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}
	ex := &Claims{Issuer: "https://deputy.example", Subject: "alice", Audience: Audience{"https://api2.example"}, Expiry: 1900000300,
		IssuedAt: 1900000000, NotBef: 1900000000, ID: "AZPlGnzUeHR3s1bWc2kDsQ", ClientID: "api1", Scope: "ledger:read",
		Act: &oauth.Actor{Subject: "api1"}, Extra: map[string]any{"email": "alice@example.com", "name": "Alice"}}
	for _, bc := range []struct {
		name string
		c    *Claims
	}{{"client_credentials", cc}, {"exchange", ex}} {
		b.Run("json.Marshal/"+bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := marshalClaims(bc.c); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("appendJSON/"+bc.name, func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 1024)
			for b.Loop() {
				if _, err := bc.c.appendJSON(buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
