package verify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/testdeputy"
	"github.com/deputy-auth/deputy/oauth"
)

// FuzzVerify feeds arbitrary strings to Verify: it never panics, returns exactly one
// of a Principal and an error, every error is a protocol error wrapping
// ErrInvalidToken or ErrUnavailable that does not echo the token, and every
// Principal is one Verify's rules allow.
func FuzzVerify(f *testing.F) {
	d := testdeputy.Start(f, nil)
	cc := d.ClientCredentials("web-app", "payments:read")
	v, _, clk := newVerifier(f, d, api1, nil) // the clock stands still: one JWKS fetch in all
	now := clk.Now()
	hdr, payload := segments(f, cc)
	for _, seed := range []string{
		cc,
		cc[:len(cc)-2] + "AA",
		strings.Replace(cc, ".", "..", 1),
		compact(f, map[string]any{"alg": "none", "kid": hdr["kid"], "typ": "at+jwt"}, payload, nil),
		compact(f, map[string]any{"alg": "ES256", "kid": hdr["kid"], "typ": "at+jwt", "jku": "x"}, payload, []byte("sig")),
		"", ".", "..", "a.b.c", "e30.e30.", "eyJhbGciOiJFUzI1NiJ9.bnVsbA.", `{"payload":""}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := v.Verify(context.Background(), raw)
		if (p == nil) == (err == nil) {
			t.Fatalf("Verify = %v, %v: want exactly one of a Principal and an error", p, err)
		}
		if err != nil {
			var e *oauth.Error
			if !errors.As(err, &e) || !(errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrUnavailable)) {
				t.Fatalf("error %#v is not a protocol error wrapping a sentinel", err)
			}
			if len(raw) >= 40 && strings.Contains(err.Error(), raw) {
				t.Fatalf("the error echoes the token: %v", err)
			}
			return
		}
		if p.Subject == "" || p.Issuer != d.URL || !slices.Contains(p.Audience, api1) ||
			!now.Before(p.ExpiresAt.Add(DefaultLeeway)) || p.Claims == nil {
			t.Fatalf("Verify accepted a token its rules refuse: %+v", p)
		}
	})
}

// FuzzAuthorization: any Authorization header either yields a token without
// whitespace under the Bearer or DPoP scheme, or the no-credentials error.
func FuzzAuthorization(f *testing.F) {
	for _, s := range []string{"Bearer abc", "DPoP abc", "dpop  abc", "Basic x", "Bearer", "DPoP a b", "", "Bearer\tabc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		raw, sch, err := authorization(http.Header{"Authorization": {value}})
		if err != nil {
			if !errors.Is(err, errNoCredentials) || raw != "" {
				t.Fatalf("authorization(%q) = %q, %v", value, raw, err)
			}
			return
		}
		if raw == "" || strings.ContainsAny(raw, " \t") || (sch != schemeBearer && sch != schemeDPoP) {
			t.Fatalf("authorization(%q) = %q, %v", value, raw, sch)
		}
	})
}

// FuzzTxnVerify feeds arbitrary strings to TxnVerifier.Verify, seeded with a
// good transaction token, an access token and broken variants: it never panics,
// returns exactly one of a TxnPrincipal and an error, every error is a protocol
// error wrapping a sentinel, and every TxnPrincipal has a txn and a sub.
func FuzzTxnVerify(f *testing.F) {
	d := testdeputy.Start(f, nil)
	tv, _, _ := newTxnVerifier(f, d, nil) // the clock stands still: one JWKS fetch in all
	good := signAsDeputy(f, d, "txntoken+jwt", txnClaimsFor(d, time.Now()), nil)
	hdr, payload := segments(f, good)
	for _, seed := range []string{
		good,
		d.ClientCredentials("web-app", "payments:read"),
		good[:len(good)-2] + "AA",
		compact(f, map[string]any{"alg": "none", "kid": hdr["kid"], "typ": "txntoken+jwt"}, payload, nil),
		"", "..", "e30.e30.", `{"payload":""}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := tv.Verify(context.Background(), raw)
		if (p == nil) == (err == nil) {
			t.Fatalf("Verify = %v, %v: want exactly one of a TxnPrincipal and an error", p, err)
		}
		if err != nil {
			var e *oauth.Error
			if !errors.As(err, &e) || !(errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrUnavailable)) {
				t.Fatalf("error %#v is not a protocol error wrapping a sentinel", err)
			}
			return
		}
		if p.Txn == "" || p.Subject == "" || p.Issuer != d.URL {
			t.Fatalf("Verify accepted a token its rules refuse: %+v", p)
		}
	})
}

// FuzzTxnClaims: parseTxnClaims reads any payload without panicking, and a
// tctx or rctx it accepts was a JSON object.
func FuzzTxnClaims(f *testing.F) {
	for _, s := range []string{
		`{"txn":"t","sub":"alice","tctx":{"a":1},"rctx":{"req_ip":"::1","authn":"pwd","req_wl":"payments"}}`,
		`{"tctx":null}`, `{"rctx":[]}`, `{"rctx":{"req_ip":1}}`, `{"aud":["a","b"]}`, `null`, `[]`, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := parseTxnClaims(payload)
		if err != nil {
			return
		}
		var raw map[string]json.RawMessage
		if json.Unmarshal(payload, &raw) != nil {
			t.Fatalf("accepted a payload that is not a JSON object: %q", payload)
		}
		if _, ok := raw["tctx"]; ok && c.Context == nil {
			t.Fatalf("accepted a tctx that is not an object: %s", raw["tctx"])
		}
	})
}
