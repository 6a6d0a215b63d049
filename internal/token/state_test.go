package token_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

func TestSealedState(t *testing.T) {
	svc, _, _ := newService(t, "ES256")
	now := time.Now()
	type st struct{ A string }
	sealed, err := svc.SealState("upstream", st{A: "x"}, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var got st
	if err := svc.OpenState(sealed, "upstream", now, &got); err != nil || got.A != "x" {
		t.Fatalf("open: %v %+v", err, got)
	}
	access, _ := svc.Mint(oauth.JWTTypeAccessToken, sample(now))
	parts := strings.Split(sealed, ".")
	for name, tc := range map[string]struct {
		raw, purpose string
		at           time.Time
		want         error
	}{
		"fail/tampered":      {parts[0] + "." + parts[1][:len(parts[1])-2] + "AA." + parts[2], "upstream", now, token.ErrSignature},
		"fail/other-purpose": {sealed, "login", now, token.ErrMalformed},
		"fail/expired":       {sealed, "upstream", now.Add(2 * time.Minute), token.ErrExpired},
		"fail/a-token":       {access, "upstream", now, token.ErrType},
	} {
		t.Run(name, func(t *testing.T) {
			if err := svc.OpenState(tc.raw, tc.purpose, tc.at, &got); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("fail/state-is-not-a-token", func(t *testing.T) {
		if _, err := svc.Verify(sealed, token.TypesFor(oauth.TokenTypeJWT), now); !errors.Is(err, token.ErrType) {
			t.Fatalf("a sealed state verified as a token: %v", err)
		}
	})
}
