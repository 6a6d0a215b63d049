package httpapi

import (
	"encoding/json"
	"testing"

	"github.com/deputy-auth/deputy/oauth"
)

// sameTokenJSON fails unless appendTokenResponse writes r exactly as encoding/json.
func sameTokenJSON(t *testing.T, r *oauth.TokenResponse) {
	t.Helper()
	want, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if got := appendTokenResponse(nil, r); string(got) != string(want) {
		t.Fatalf("appendTokenResponse:\n got %s\nwant %s", got, want)
	}
}

func TestAppendTokenResponse(t *testing.T) {
	for _, r := range []*oauth.TokenResponse{
		{},
		{AccessToken: "eyJ.a.b", TokenType: "Bearer", ExpiresIn: 300, Scope: "ledger:read"},
		{AccessToken: "eyJ.a.b", IssuedTokenType: oauth.TokenTypeAccessToken, TokenType: "DPoP", ExpiresIn: 300, Scope: "a b"},
		{AccessToken: "t", TokenType: "Bearer", ExpiresIn: 3600, ExtExpiresIn: 3600, Scope: "api://ledger/read", RefreshToken: "r"},
		{AccessToken: "t", TokenType: "Bearer", ExpiresIn: -1, Scope: "openid", RefreshToken: "r", IDToken: "i"},
		{AccessToken: "<&>\u2028\"\\\x00\xff", TokenType: "N_A", Scope: "é"},
	} {
		sameTokenJSON(t, r)
	}
}

func FuzzAppendTokenResponse(f *testing.F) {
	f.Add("eyJ.a.b", "urn:ietf:params:oauth:token-type:access_token", "Bearer", int64(300), int64(0), "a b", "", "")
	f.Add("<&>", "\xff", "\u2029", int64(-7), int64(1), "\x00", "r", "i")
	f.Fuzz(func(t *testing.T, at, itt, tt string, exp, ext int64, scope, rt, id string) {
		sameTokenJSON(t, &oauth.TokenResponse{AccessToken: at, IssuedTokenType: oauth.TokenType(itt),
			TokenType: tt, ExpiresIn: exp, ExtExpiresIn: ext, Scope: scope, RefreshToken: rt, IDToken: id})
	})
}
