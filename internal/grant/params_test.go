package grant_test

import (
	"context"
	"testing"

	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// TestEmptyParametersAreOmitted: a parameter sent without a value is treated as if it
// were omitted (RFC 6749 §3.1, §3.2), in every grant. Real clients send them:
// zitadel/oidc's token-exchange client sends actor_token=&actor_token_type= and
// scope= on every request. A parameter repeated with values stays invalid_request.
func TestEmptyParametersAreOmitted(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	subject, err := f.disp.Token(ctx, f.request("web", "grant_type", oauth.GrantClientCredentials))
	if err != nil {
		t.Fatal(err)
	}
	exchange := func(kv ...string) []string {
		return append([]string{"grant_type", oauth.GrantTokenExchange, "subject_token", subject.AccessToken,
			"subject_token_type", string(oauth.TokenTypeAccessToken)}, kv...)
	}
	cc := func(kv ...string) []string {
		return append([]string{"grant_type", oauth.GrantClientCredentials}, kv...)
	}

	for _, tc := range []struct {
		name   string
		client string
		params []string
		code   oauth.Code // "" = issued
	}{
		{name: "ok/client-credentials-empty-scope", client: "api", params: cc("scope", "")},
		{name: "ok/client-credentials-empty-resource", client: "api", params: cc("resource", "")},
		{name: "ok/client-credentials-empty-scope-beside-value", client: "api", params: cc("scope", "", "scope", "read")},
		{name: "ok/client-credentials-empty-resource-beside-value", client: "api", params: cc("resource", "", "resource", apiAudience)},
		{name: "ok/client-credentials-empty-client-id", client: "api", params: cc("client_id", "", "client_secret", "")},
		{name: "ok/exchange-empty-actor-token-and-type", client: "api", params: exchange("actor_token", "", "actor_token_type", "")},
		{name: "ok/exchange-every-optional-parameter-empty", client: "api", params: exchange("actor_token", "", "actor_token_type", "",
			"audience", "", "resource", "", "scope", "", "requested_token_type", "")},
		{name: "ok/exchange-empty-audience-beside-value", client: "api", params: exchange("audience", "", "audience", api2)},
		{name: "fail/empty-grant-type", client: "api", params: []string{"grant_type", ""}, code: oauth.CodeInvalidRequest},
		{name: "fail/exchange-empty-subject-token", client: "api", params: []string{"grant_type", oauth.GrantTokenExchange,
			"subject_token", "", "subject_token_type", string(oauth.TokenTypeAccessToken)}, code: oauth.CodeInvalidRequest},
		{name: "fail/exchange-actor-token-with-empty-type", client: "api", params: exchange("actor_token", subject.AccessToken, "actor_token_type", ""),
			code: oauth.CodeInvalidRequest},
		{name: "fail/exchange-repeated-scope-values", client: "api", params: exchange("scope", "read", "scope", "read"), code: oauth.CodeInvalidRequest},
		{name: "fail/exchange-repeated-subject-token", client: "api", params: exchange("subject_token", subject.AccessToken), code: oauth.CodeInvalidRequest},
		{name: "fail/client-credentials-repeated-scope-values", client: "api", params: cc("scope", "read", "scope", "write"), code: oauth.CodeInvalidRequest},
		{name: "fail/refresh-empty-refresh-token", client: "web", params: []string{"grant_type", oauth.GrantRefreshToken, "refresh_token", ""},
			code: oauth.CodeInvalidRequest},
		{name: "fail/code-empty-code", client: "web", params: []string{"grant_type", oauth.GrantAuthorizationCode, "code", "", "redirect_uri", webRedirect},
			code: oauth.CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := f.request(tc.client, tc.params...)
			resp, err := f.disp.Token(ctx, req)
			if tc.code != "" {
				wantCode(t, err, tc.code)
				wantDenied(t, f, req, tc.code)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.AccessToken == "" {
				t.Fatalf("no access token: %+v", resp)
			}
		})
	}

	t.Run("ok/refresh-empty-scope", func(t *testing.T) {
		code, _ := f.code(t, func(ac *store.AuthCode) { ac.Scopes = []string{"openid", "read"} })
		_, first, err := f.redeem(code)
		if err != nil {
			t.Fatal(err)
		}
		_, resp, err := f.refresh("web", first.RefreshToken, "scope", "")
		if err != nil {
			t.Fatal(err)
		}
		if resp.Scope != "openid read" {
			t.Errorf("scope %q, want the original grant's", resp.Scope)
		}
	})
	t.Run("ok/code-empty-redirect-uri-beside-value", func(t *testing.T) {
		code, _ := f.code(t, nil)
		req := f.request("web", "grant_type", oauth.GrantAuthorizationCode, "code", code, "redirect_uri", "",
			"redirect_uri", webRedirect, "code_verifier", verifier, "code_verifier", "")
		if _, err := f.disp.Token(ctx, req); err != nil {
			t.Fatal(err)
		}
	})
}
