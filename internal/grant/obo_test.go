package grant_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/subject"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// The on-behalf-of fixture: mid is a middle-tier API (audience api://mid) that
// calls a ledger on behalf of the user whose token it received; mid2 does the
// same under a policy that also issues refresh tokens. corp is a trusted issuer.
const (
	midAudience  = "api://mid"
	ledgerURN    = "api://ledger"
	ledgerURL    = "https://ledger.bank.example"
	corpIssuer   = "https://idp.corp.example"
	midSecret    = "mid-secret"
	oboGrantType = oauth.GrantJWTBearer
)

type oboFixture struct {
	*fixture
	disp    *grant.Dispatcher
	corpKey *ecdsa.PrivateKey
}

func newOBOFixture(t *testing.T) *oboFixture {
	t.Helper()
	f := newFixture(t, nil)
	o := &oboFixture{fixture: f}
	var err error
	if o.corpKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: o.corpKey.Public(), KeyID: "corp-1", Algorithm: "ES256", Use: "sig"}}})
	file := filepath.Join(t.TempDir(), "corp.jwks")
	if err := os.WriteFile(file, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := subject.New(context.Background(), f.tokens, subject.Options{Refresh: f.st, TrustedIssuers: []config.TrustedIssuer{{
		Name: "corp", Issuer: corpIssuer, JWKSFile: file, Audiences: []string{midAudience}, Algorithms: []string{"ES256"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	cfgs := append(slices.Clone(clientConfigs),
		config.Client{ID: "mid", Secret: midSecret, AuthMethod: oauth.AuthClientSecretPost,
			GrantTypes: []string{oauth.GrantJWTBearer, oauth.GrantRefreshToken}},
		config.Client{ID: "mid2", Secret: midSecret, AuthMethod: oauth.AuthClientSecretPost,
			GrantTypes: []string{oauth.GrantJWTBearer, oauth.GrantRefreshToken}},
		config.Client{ID: "mid3", Secret: midSecret, AuthMethod: oauth.AuthClientSecretPost,
			GrantTypes: []string{oauth.GrantJWTBearer}},
		config.Client{ID: "mid4", Secret: midSecret, AuthMethod: oauth.AuthClientSecretPost,
			GrantTypes: []string{oauth.GrantJWTBearer, oauth.GrantRefreshToken}},
		// Holds the grant, but no policy names it.
		config.Client{ID: "nopolicy", Secret: midSecret, AuthMethod: oauth.AuthClientSecretPost,
			GrantTypes: []string{oauth.GrantJWTBearer}},
	)
	clients, err := client.NewRegistry(cfgs, issuer, issuer+"/token", f.st)
	if err != nil {
		t.Fatal(err)
	}
	x, err := exchange.New([]config.Policy{{
		Name: "mid-to-ledger", Client: "mid", Audiences: []string{ledgerURN, ledgerURL},
		SubjectIssuers: []string{"self", "corp"}, SubjectTokenTypes: []string{"access_token", "jwt"},
		Mode: config.ModeDelegation, RequestedTokenTypes: []string{"access_token"},
	}, {
		Name: "mid2-to-ledger", Client: "mid2", Audiences: []string{ledgerURN},
		Mode: config.ModeDelegation, RequestedTokenTypes: []string{"access_token", "refresh_token"},
	}, {
		// Issues JWTs only: never what an on-behalf-of request asks for.
		Name: "mid3-jwt-only", Client: "mid3", Audiences: []string{ledgerURN},
		Mode: config.ModeDelegation, RequestedTokenTypes: []string{"jwt"},
	}, {
		// Becomes the user at the ledger (impersonation), refresh tokens too.
		Name: "mid4-impersonates", Client: "mid4", Audiences: []string{ledgerURN},
		Mode: config.ModeImpersonation, RequestedTokenTypes: []string{"access_token", "refresh_token"},
	}}, []config.Audience{
		{ID: "api://mid4", Scopes: []string{"read"}, Client: "mid4"},
		{ID: "api://mid3", Scopes: []string{"read"}, Client: "mid3"},
		{ID: midAudience, Scopes: []string{"read", "write"}, Client: "mid"},
		{ID: "api://mid2", Scopes: []string{"read", "write"}, Client: "mid2"},
		{ID: apiAudience, Scopes: []string{"read", "write"}, Client: "api"},
		{ID: ledgerURN, Scopes: []string{"read", "write", "audit"}},
		{ID: ledgerURL, Scopes: []string{"read"}},
	}, exchange.Options{IssuerURL: issuer})
	if err != nil {
		t.Fatal(err)
	}
	xg := &grant.TokenExchange{Tokens: f.tokens, Subjects: v, Exchange: x, Refresh: f.st}
	o.disp = grant.NewDispatcher(clients, f.audit, map[string]grant.Grant{
		oauth.GrantTokenExchange: xg,
		oauth.GrantJWTBearer:     &grant.OnBehalfOf{Exchange: xg},
		oauth.GrantRefreshToken:  &grant.RefreshToken{Store: f.st, Revoker: f.audit, Users: f.users},
	}, discard)
	return o
}

// userToken mints deputy's access token of alice issued to web, addressed to
// aud, with scope "read write", expiring at exp.
func (o *oboFixture) userToken(t *testing.T, aud string, exp time.Time) (string, token.Claims) {
	t.Helper()
	c := token.Claims{
		Subject: "alice", Audience: token.Audience{aud}, ClientID: "web", Scope: "read write",
		IssuedAt: o.now.Add(-time.Hour).Unix(), NotBef: o.now.Add(-time.Hour).Unix(), Expiry: exp.Unix(), ID: token.NewID(),
	}
	raw, err := o.tokens.Mint(oauth.JWTTypeAccessToken, &c)
	if err != nil {
		t.Fatal(err)
	}
	return raw, c
}

// corpToken signs a JWT of issuer iss (corp's key), addressed to api://mid.
func (o *oboFixture) corpToken(t *testing.T, iss string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: o.corpKey},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "corp-1"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"iss": iss, "sub": "bob", "aud": midAudience,
		"iat": o.now.Unix(), "exp": o.now.Add(time.Hour).Unix(), "jti": token.NewID()})
	jws, err := signer.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// obo is an on-behalf-of request of clientID as MSAL sends it (client_secret_post,
// its extra parameters), with kv overriding or removing (value "") parameters.
func (o *oboFixture) obo(clientID string, kv ...string) *grant.Request {
	form := url.Values{
		"grant_type": {oboGrantType}, "requested_token_use": {"on_behalf_of"},
		"client_info": {"1"}, "x-client-SKU": {"msal.js.node"}, "x-client-VER": {"7.2.4"},
		"x-ms-lib-capability": {"retry-after, h429"}, "claims": {`{"access_token":{"xms_cc":{"values":["CP1"]}}}`},
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			form.Del(kv[i])
		} else {
			form.Set(kv[i], kv[i+1])
		}
	}
	return &grant.Request{
		Endpoint: "token", Form: form, Now: o.now,
		Credentials: client.Credentials{FormID: clientID, FormSecret: midSecret},
		RequestID:   "req-" + token.NewID(), RemoteAddr: "192.0.2.1:1234",
	}
}

// oboDetail reads an on-behalf-of record's Detail.
func oboDetail(t *testing.T, e store.AuditEvent) map[string]any {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
		t.Fatalf("detail %q: %v", e.Detail, err)
	}
	if d["grant_type"] != oauth.GrantJWTBearer || d["grant"] != "obo" {
		t.Errorf("detail %s lacks grant_type jwt-bearer and grant obo", e.Detail)
	}
	return d
}

// TestOnBehalfOf: Entra's on-behalf-of flow is the token exchange of the assertion
// for the audience of scope, under the same policies, answered as Entra answers
// and recorded with grant obo (README "On-behalf-of (Microsoft Entra's flow)").
func TestOnBehalfOf(t *testing.T) {
	ctx := context.Background()
	o := newOBOFixture(t)
	valid, _ := o.userToken(t, midAudience, o.now.Add(time.Hour))

	oks := []struct {
		name      string
		client    string
		assertion func(t *testing.T) string
		scope     string
		wantScope string
		wantAud   string
		wantSub   string
		refresh   bool
	}{
		{name: "ok/default", client: "mid", scope: ledgerURN + "/.default",
			wantScope: ledgerURN + "/read " + ledgerURN + "/write", wantAud: ledgerURN, wantSub: "alice"},
		{name: "ok/named-scope", client: "mid", scope: ledgerURN + "/read",
			wantScope: ledgerURN + "/read", wantAud: ledgerURN, wantSub: "alice"},
		{name: "ok/openid-profile-offline-access-ignored", client: "mid", scope: "openid " + ledgerURN + "/read profile offline_access " + ledgerURN + "/write",
			wantScope: ledgerURN + "/read " + ledgerURN + "/write", wantAud: ledgerURN, wantSub: "alice"},
		{name: "ok/url-audience", client: "mid", scope: ledgerURL + "/.default",
			wantScope: ledgerURL + "/read", wantAud: ledgerURL, wantSub: "alice"},
		{name: "ok/trusted-issuer-assertion-as-jwt", client: "mid", scope: ledgerURN + "/read",
			assertion: func(t *testing.T) string { return o.corpToken(t, corpIssuer) },
			wantScope: ledgerURN + "/read", wantAud: ledgerURN, wantSub: "bob"},
		{name: "ok/refresh-token-where-policy-lists-it", client: "mid2", scope: ledgerURN + "/.default",
			assertion: func(t *testing.T) string { raw, _ := o.userToken(t, "api://mid2", o.now.Add(time.Hour)); return raw },
			wantScope: ledgerURN + "/read " + ledgerURN + "/write", wantAud: ledgerURN, wantSub: "alice", refresh: true},
	}
	for _, tc := range oks {
		t.Run(tc.name, func(t *testing.T) {
			assertion := valid
			if tc.assertion != nil {
				assertion = tc.assertion(t)
			}
			req := o.obo(tc.client, "assertion", assertion, "scope", tc.scope)
			resp, err := o.disp.Token(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.TokenType != oauth.TokenTypeBearer || resp.Scope != tc.wantScope || resp.ExpiresIn <= 0 ||
				resp.ExtExpiresIn != resp.ExpiresIn || resp.IssuedTokenType != "" || resp.IDToken != "" {
				t.Fatalf("answer %+v, want Entra's shape with scope %q", resp, tc.wantScope)
			}
			if (resp.RefreshToken != "") != tc.refresh {
				t.Fatalf("refresh_token %q, want one: %v", resp.RefreshToken, tc.refresh)
			}
			got := o.access(t, resp.AccessToken)
			if got.Subject != tc.wantSub || !slices.Equal(got.Audience, token.Audience{tc.wantAud}) || got.ClientID != tc.client ||
				got.Act == nil || got.Act.Subject != tc.client {
				t.Fatalf("issued claims %+v act %+v", got, got.Act)
			}
			evs := o.events(t, req.RequestID)
			if len(evs) == 0 || evs[0].Type != store.EventTokenExchanged || evs[0].TokenJTI != got.ID {
				t.Fatalf("events %+v", evs)
			}
			for _, e := range evs {
				oboDetail(t, e)
			}
			if tc.refresh && len(evs) != 2 {
				t.Fatalf("%d events, want the access and the refresh token's", len(evs))
			}
		})
	}

	// The bad inputs of the on-behalf-of flow: each is refused with its code,
	// nothing is issued, and the denial is recorded with grant obo.
	fails := []struct {
		name      string
		client    string
		kv        []string
		assertion func(t *testing.T) string
		code      oauth.Code
		reason    string // a substring of the recorded reason
	}{
		{name: "fail/assertion-for-another-client", client: "mid",
			assertion: func(t *testing.T) string { raw, _ := o.userToken(t, apiAudience, o.now.Add(time.Hour)); return raw },
			code:      oauth.CodeInvalidGrant, reason: "assertion is not addressed to the client"},
		{name: "fail/assertion-expired", client: "mid",
			assertion: func(t *testing.T) string { raw, _ := o.userToken(t, midAudience, o.now.Add(-time.Minute)); return raw },
			code:      oauth.CodeInvalidGrant, reason: "assertion is expired"},
		{name: "fail/assertion-of-foreign-issuer", client: "mid",
			assertion: func(t *testing.T) string { return o.corpToken(t, "https://evil.example") },
			code:      oauth.CodeInvalidGrant, reason: "https://evil.example"},
		{name: "fail/refresh-token-as-assertion", client: "mid2",
			assertion: func(t *testing.T) string {
				raw, _ := o.userToken(t, "api://mid2", o.now.Add(time.Hour))
				resp, err := o.disp.Token(ctx, o.obo("mid2", "assertion", raw, "scope", ledgerURN+"/.default"))
				if err != nil || resp.RefreshToken == "" {
					t.Fatalf("no refresh token to present: %v %+v", err, resp)
				}
				return resp.RefreshToken
			},
			code: oauth.CodeInvalidGrant, reason: "invalid_grant: assertion"},
		{name: "fail/id-token-as-assertion", client: "mid",
			assertion: func(t *testing.T) string {
				raw, err := o.tokens.MintIDToken("", &token.IDClaims{Subject: "alice", Audience: token.Audience{"mid"}, AZP: "mid",
					IssuedAt: o.now.Unix(), Expiry: o.now.Add(time.Hour).Unix(), ID: token.NewID()})
				if err != nil {
					t.Fatal(err)
				}
				return raw
			},
			code: oauth.CodeInvalidGrant, reason: "invalid_grant: assertion"},
		{name: "fail/scopes-for-two-audiences", client: "mid", kv: []string{"scope", ledgerURN + "/read " + ledgerURL + "/read"},
			code: oauth.CodeInvalidScope, reason: "two audiences"},
		{name: "fail/default-mixed-with-named-scopes", client: "mid", kv: []string{"scope", ledgerURN + "/.default " + ledgerURN + "/read"},
			code: oauth.CodeInvalidScope, reason: ".default with named scopes"},
		{name: "fail/missing-requested-token-use", client: "mid", kv: []string{"requested_token_use", ""},
			code: oauth.CodeInvalidRequest, reason: "missing parameter requested_token_use"},
		{name: "fail/other-requested-token-use", client: "mid", kv: []string{"requested_token_use", "on_behalf_of_someone"},
			code: oauth.CodeInvalidRequest, reason: `requested_token_use "on_behalf_of_someone" is not supported`},
		{name: "fail/missing-assertion", client: "mid", kv: []string{"assertion", ""},
			code: oauth.CodeInvalidRequest, reason: "missing parameter assertion"},
		{name: "fail/missing-scope", client: "mid", kv: []string{"scope", ""},
			code: oauth.CodeInvalidRequest, reason: "missing parameter scope"},
		{name: "fail/only-openid-scopes", client: "mid", kv: []string{"scope", "openid profile offline_access"},
			code: oauth.CodeInvalidScope, reason: "names no audience"},
		{name: "fail/unknown-audience", client: "mid", kv: []string{"scope", "api://treasury/.default"},
			code: oauth.CodeInvalidScope, reason: "api://treasury"},
		{name: "fail/audience-no-policy-allows", client: "mid2", kv: []string{"scope", ledgerURL + "/.default"},
			assertion: func(t *testing.T) string { raw, _ := o.userToken(t, "api://mid2", o.now.Add(time.Hour)); return raw },
			code:      oauth.CodeInvalidScope, reason: "requested audience is not allowed"},
		{name: "fail/scope-beyond-policy", client: "mid", kv: []string{"scope", ledgerURN + "/audit"},
			code: oauth.CodeInvalidScope, reason: `scope "audit"`},
		{name: "fail/policy-issues-no-access-token", client: "mid3", kv: []string{"scope", ledgerURN + "/.default"},
			assertion: func(t *testing.T) string { raw, _ := o.userToken(t, "api://mid3", o.now.Add(time.Hour)); return raw },
			code:      oauth.CodeInvalidRequest, reason: "requested token type is not allowed"},
		{name: "fail/client-without-policy", client: "nopolicy", kv: []string{"scope", ledgerURN + "/.default"},
			code: oauth.CodeUnauthorizedClient, reason: "no policy permits"},
	}
	for _, tc := range fails {
		t.Run(tc.name, func(t *testing.T) {
			assertion := valid
			if tc.assertion != nil {
				assertion = tc.assertion(t)
			}
			req := o.obo(tc.client, append([]string{"assertion", assertion, "scope", ledgerURN + "/read"}, tc.kv...)...)
			resp, err := o.disp.Token(ctx, req)
			wantCode(t, err, tc.code)
			if resp != nil {
				t.Fatalf("issued %+v", resp)
			}
			if d := oauth.AsError(err).Description; strings.Contains(d, "subject_token") || strings.Contains(d, "subject token") {
				t.Errorf("description %q speaks of a subject token; the request sent an assertion", d)
			}
			e := wantDenied(t, o.fixture, req, tc.code)
			if !strings.Contains(e.Reason, tc.reason) {
				t.Errorf("reason %q lacks %q", e.Reason, tc.reason)
			}
			oboDetail(t, e)
		})
	}

	t.Run("fail/denial-keeps-policies", func(t *testing.T) {
		raw, _ := o.userToken(t, apiAudience, o.now.Add(time.Hour))
		req := o.obo("mid", "assertion", raw, "scope", ledgerURN+"/audit")
		_, err := o.disp.Token(ctx, req)
		wantCode(t, err, oauth.CodeInvalidGrant)
		e := wantDenied(t, o.fixture, req, oauth.CodeInvalidGrant)
		d := oboDetail(t, e)
		if pols, _ := d["policies"].([]any); len(pols) != 1 {
			t.Fatalf("detail %s: want what policy mid-to-ledger made of the request", e.Detail)
		}
	})

	t.Run("ok/impersonation-recorded-as-obo", func(t *testing.T) {
		raw, _ := o.userToken(t, "api://mid4", o.now.Add(time.Hour))
		req := o.obo("mid4", "assertion", raw, "scope", ledgerURN+"/.default")
		resp, err := o.disp.Token(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if got := o.access(t, resp.AccessToken); got.Act != nil || got.Subject != "alice" || resp.RefreshToken == "" {
			t.Fatalf("claims %+v, refresh token %q", got, resp.RefreshToken)
		}
		evs := o.events(t, req.RequestID)
		if len(evs) != 2 {
			t.Fatalf("events %+v", evs)
		}
		for _, e := range evs {
			if d := oboDetail(t, e); d["mode"] != "impersonation" {
				t.Errorf("detail %s lacks the mode", e.Detail)
			}
		}
	})

	t.Run("ok/same-decision-as-token-exchange", func(t *testing.T) {
		req := o.obo("mid", "assertion", valid, "scope", ledgerURN+"/.default")
		resp, err := o.disp.Token(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		e := o.events(t, req.RequestID)[0]
		if e.Rule != "mid-to-ledger" || e.Subject != "alice" || !slices.Equal(e.Audiences, []string{ledgerURN}) ||
			!slices.Equal(e.Scopes, []string{"read", "write"}) || !slices.Equal(e.Actors, []string{"mid"}) {
			t.Fatalf("event %+v", e)
		}
		if got := o.access(t, resp.AccessToken); got.Scope != "read write" {
			t.Fatalf("token scope %q: the token carries the scopes themselves, the answer names them with the audience", got.Scope)
		}
	})
}

// TestParseOBOScope: the scope parameter of an on-behalf-of request.
func TestParseOBOScope(t *testing.T) {
	for _, tc := range []struct {
		name, scope string
		aud         string
		scopes      []string
		fail        string
	}{
		{name: "ok/default", scope: "api://ledger/.default", aud: "api://ledger"},
		{name: "ok/named", scope: "api://ledger/read api://ledger/write api://ledger/read", aud: "api://ledger", scopes: []string{"read", "write"}},
		{name: "ok/url-audience", scope: "https://ledger.bank.example/read", aud: "https://ledger.bank.example", scopes: []string{"read"}},
		{name: "ok/url-audience-with-path", scope: "https://bank.example/ledger/v2/read", aud: "https://bank.example/ledger/v2", scopes: []string{"read"}},
		{name: "ok/oidc-scopes-ignored", scope: "openid profile offline_access api://ledger/.default", aud: "api://ledger"},
		{name: "ok/default-twice", scope: "api://ledger/.default api://ledger/.default", aud: "api://ledger"},
		{name: "fail/two-audiences", scope: "api://ledger/read api://fraud/read", fail: "two audiences"},
		{name: "fail/default-mixed", scope: "api://ledger/read api://ledger/.default", fail: "mixes"},
		{name: "fail/empty", scope: "", fail: "names no audience"},
		{name: "fail/only-oidc", scope: "openid offline_access", fail: "names no audience"},
		{name: "fail/no-slash", scope: "read", fail: "is not <audience>/<scope>"},
		{name: "fail/trailing-slash", scope: "api://ledger/", fail: "is not <audience>/<scope>"},
		{name: "fail/leading-slash", scope: "/read", fail: "is not <audience>/<scope>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			aud, scopes, err := grant.ParseOBOScope(tc.scope)
			if tc.fail != "" {
				wantCode(t, err, oauth.CodeInvalidScope)
				if !strings.Contains(oauth.AsError(err).Description, tc.fail) {
					t.Fatalf("description %q lacks %q", oauth.AsError(err).Description, tc.fail)
				}
				return
			}
			if err != nil || aud != tc.aud || !slices.Equal(scopes, tc.scopes) {
				t.Fatalf("ParseOBOScope(%q) = %q %q %v, want %q %q", tc.scope, aud, scopes, err, tc.aud, tc.scopes)
			}
		})
	}
}

// FuzzParseOBOScope: any scope parameter either names one audience, with scopes
// that hold no white space and no ".default" beside them, or is invalid_scope.
func FuzzParseOBOScope(f *testing.F) {
	for _, s := range []string{"api://ledger/.default", "openid api://a/x api://a/y", "https://h/p/q/r", "a/b c/d", "/", "x/", "api://a/.default api://a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, scope string) {
		aud, scopes, err := grant.ParseOBOScope(scope)
		if err != nil {
			if c := oauth.AsError(err).Code; c != oauth.CodeInvalidScope {
				t.Fatalf("code %s", c)
			}
			return
		}
		if aud == "" || strings.ContainsAny(aud, " \t\r\n") {
			t.Fatalf("audience %q", aud)
		}
		for _, s := range scopes {
			if s == "" || s == ".default" || strings.ContainsAny(s, " /\t\r\n") {
				t.Fatalf("scope %q", s)
			}
			if !strings.Contains(scope, aud+"/"+s) {
				t.Fatalf("scope %q not in %q", aud+"/"+s, scope)
			}
		}
	})
}
