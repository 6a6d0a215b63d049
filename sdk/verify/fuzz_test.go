package verify

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

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
