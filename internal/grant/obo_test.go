package grant_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
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
// calls a ledger on behalf of the user whose token it received, under one
// policy for deputy's tokens (access_token only) and one for corp's (jwt only),
// so that a wrong type choice for an assertion fails; it may also use the token
// exchange, to compare. mid2 does the same under a policy that also issues
// refresh tokens, mid3 under one that issues JWTs only, mid4 impersonates, mid5
// is refused unbound tokens (require_binding). hr is another middle tier (api://hr)
// that takes corp's tokens: corp, a trusted issuer, addresses its tokens to
// api://mid, api://hr or mid itself. down is a trusted issuer whose key set
// cannot be fetched.
const (
	midAudience  = "api://mid"
	hrAudience   = "api://hr"
	ledgerURN    = "api://ledger"
	ledgerURL    = "https://ledger.bank.example"
	corpIssuer   = "https://idp.corp.example"
	downIssuer   = "https://down.example"
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
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	v, err := subject.New(context.Background(), f.tokens, subject.Options{Refresh: f.st, TrustedIssuers: []config.TrustedIssuer{{
		Name: "corp", Issuer: corpIssuer, JWKSFile: file, Audiences: []string{midAudience, hrAudience, "mid"}, Algorithms: []string{"ES256"},
		Claims: map[string]string{"tenant": "tid"},
	}, {
		Name: "down", Issuer: downIssuer, JWKSURI: down.URL, Audiences: []string{midAudience}, Algorithms: []string{"ES256"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	secretPost := func(id string, grants ...string) config.Client {
		return config.Client{ID: id, Secret: midSecret, AuthMethod: oauth.AuthClientSecretPost, GrantTypes: grants}
	}
	cfgs := append(slices.Clone(clientConfigs),
		secretPost("mid", oauth.GrantJWTBearer, oauth.GrantRefreshToken, oauth.GrantTokenExchange),
		secretPost("mid2", oauth.GrantJWTBearer, oauth.GrantRefreshToken),
		secretPost("mid3", oauth.GrantJWTBearer),
		secretPost("mid4", oauth.GrantJWTBearer, oauth.GrantRefreshToken),
		secretPost("mid5", oauth.GrantJWTBearer),
		secretPost("hr", oauth.GrantJWTBearer, oauth.GrantTokenExchange),
		// Holds the grant, but no policy names it.
		secretPost("nopolicy", oauth.GrantJWTBearer),
	)
	clients, err := client.NewRegistry(cfgs, issuer, issuer+"/token", f.st)
	if err != nil {
		t.Fatal(err)
	}
	x, err := exchange.New([]config.Policy{{
		Name: "mid-to-ledger", Client: "mid", Audiences: []string{ledgerURN, ledgerURL},
		SubjectIssuers: []string{"self"}, SubjectTokenTypes: []string{"access_token"},
		Mode: config.ModeDelegation, RequestedTokenTypes: []string{"access_token"},
	}, {
		Name: "mid-corp-to-ledger", Client: "mid", Audiences: []string{ledgerURN},
		SubjectIssuers: []string{"corp"}, SubjectTokenTypes: []string{"jwt"},
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
	}, {
		Name: "mid5-bound-only", Client: "mid5", Audiences: []string{ledgerURN}, RequireBinding: true,
		Mode: config.ModeDelegation, RequestedTokenTypes: []string{"access_token"},
	}, {
		Name: "hr-corp-to-ledger", Client: "hr", Audiences: []string{ledgerURN},
		SubjectIssuers: []string{"corp"}, SubjectTokenTypes: []string{"jwt"},
		Mode: config.ModeDelegation, RequestedTokenTypes: []string{"access_token"},
	}}, []config.Audience{
		{ID: "api://mid5", Scopes: []string{"read"}, Client: "mid5"},
		{ID: "api://mid4", Scopes: []string{"read"}, Client: "mid4"},
		{ID: "api://mid3", Scopes: []string{"read"}, Client: "mid3"},
		{ID: midAudience, Scopes: []string{"read", "write"}, Client: "mid"},
		{ID: hrAudience, Scopes: []string{"read"}, Client: "hr"},
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

// corpToken signs a JWT of issuer iss (corp's key) for bob, addressed to
// api://mid.
func (o *oboFixture) corpToken(t *testing.T, iss string) string {
	t.Helper()
	return o.corpTokenWith(t, "iss", iss)
}

// corpTokenWith signs a JWT of corp for bob (tenant t-1), addressed to
// api://mid, with kv overriding or adding claims.
func (o *oboFixture) corpTokenWith(t *testing.T, kv ...any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: o.corpKey},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "corp-1"))
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"iss": corpIssuer, "sub": "bob", "aud": midAudience, "tid": "t-1", "scp": "access_as_user",
		"iat": o.now.Unix(), "exp": o.now.Add(time.Hour).Unix(), "jti": token.NewID()}
	for i := 0; i+1 < len(kv); i += 2 {
		claims[kv[i].(string)] = kv[i+1]
	}
	b, _ := json.Marshal(claims)
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
		wantRule  string
		refresh   bool
	}{
		{name: "ok/default", client: "mid", scope: ledgerURN + "/.default",
			wantScope: ledgerURN + "/read " + ledgerURN + "/write", wantAud: ledgerURN, wantSub: "alice", wantRule: "mid-to-ledger"},
		{name: "ok/named-scope", client: "mid", scope: ledgerURN + "/read",
			wantScope: ledgerURN + "/read", wantAud: ledgerURN, wantSub: "alice", wantRule: "mid-to-ledger"},
		{name: "ok/openid-profile-offline-access-ignored", client: "mid", scope: "openid " + ledgerURN + "/read profile offline_access " + ledgerURN + "/write",
			wantScope: ledgerURN + "/read " + ledgerURN + "/write", wantAud: ledgerURN, wantSub: "alice", wantRule: "mid-to-ledger"},
		{name: "ok/url-audience", client: "mid", scope: ledgerURL + "/.default",
			wantScope: ledgerURL + "/read", wantAud: ledgerURL, wantSub: "alice", wantRule: "mid-to-ledger"},
		// mid's policy for corp accepts jwt only, the one for deputy's tokens
		// access_token only: each assertion is matched as its issuer's type.
		{name: "ok/trusted-issuer-assertion-as-jwt", client: "mid", scope: ledgerURN + "/read",
			assertion: func(t *testing.T) string { return o.corpToken(t, corpIssuer) },
			wantScope: ledgerURN + "/read", wantAud: ledgerURN, wantSub: "bob", wantRule: "mid-corp-to-ledger"},
		// Entra addresses a token to the API's application id: the client id.
		{name: "ok/trusted-assertion-addressed-to-client-id", client: "mid", scope: ledgerURN + "/read",
			assertion: func(t *testing.T) string { return o.corpTokenWith(t, "aud", "mid") },
			wantScope: ledgerURN + "/read", wantAud: ledgerURN, wantSub: "bob", wantRule: "mid-corp-to-ledger"},
		{name: "ok/trusted-assertion-addressed-to-audience-of-client", client: "hr", scope: ledgerURN + "/read",
			assertion: func(t *testing.T) string { return o.corpTokenWith(t, "aud", []string{"api://elsewhere", hrAudience}) },
			wantScope: ledgerURN + "/read", wantAud: ledgerURN, wantSub: "bob", wantRule: "hr-corp-to-ledger"},
		{name: "ok/refresh-token-where-policy-lists-it", client: "mid2", scope: ledgerURN + "/.default",
			assertion: func(t *testing.T) string { raw, _ := o.userToken(t, "api://mid2", o.now.Add(time.Hour)); return raw },
			wantScope: ledgerURN + "/read " + ledgerURN + "/write", wantAud: ledgerURN, wantSub: "alice", wantRule: "mid2-to-ledger", refresh: true},
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
			if len(evs) == 0 || evs[0].Type != store.EventTokenExchanged || evs[0].TokenJTI != got.ID || evs[0].Rule != tc.wantRule {
				t.Fatalf("events %+v, want the exchange decided by %s", evs, tc.wantRule)
			}
			for _, e := range evs {
				oboDetail(t, e)
			}
			if tc.refresh && len(evs) != 2 {
				t.Fatalf("%d events, want the access and the refresh token's", len(evs))
			}
		})
	}

	// The bad inputs of the on-behalf-of flow: each is refused with its code and
	// description, nothing is issued, and the denial is recorded with grant obo
	// and its reason.
	fails := []struct {
		name      string
		client    string
		kv        []string
		assertion func(t *testing.T) string
		binding   *oauth.Confirmation
		code      oauth.Code
		desc      string // the description, exactly
		reason    string // a substring of the recorded reason
	}{
		{name: "fail/assertion-for-another-client", client: "mid",
			assertion: func(t *testing.T) string { raw, _ := o.userToken(t, apiAudience, o.now.Add(time.Hour)); return raw },
			code:      oauth.CodeInvalidGrant, desc: "assertion is not addressed to the client",
			reason: `subject token audiences ["` + apiAudience + `"] hold neither client "mid" nor an audience of it`},
		// As Entra requires, whoever issued the assertion: alice's corp token for
		// mid (api://mid, which corp may address) presented by hr.
		{name: "fail/trusted-assertion-for-another-client", client: "hr",
			assertion: func(t *testing.T) string { return o.corpToken(t, corpIssuer) },
			code:      oauth.CodeInvalidGrant, desc: "assertion is not addressed to the client",
			reason: `subject token audiences ["api://mid"] hold neither client "hr" nor an audience of it`},
		{name: "fail/assertion-expired", client: "mid",
			assertion: func(t *testing.T) string { raw, _ := o.userToken(t, midAudience, o.now.Add(-time.Minute)); return raw },
			code:      oauth.CodeInvalidGrant, desc: "assertion is expired", reason: "token is expired"},
		{name: "fail/assertion-of-foreign-issuer", client: "mid",
			assertion: func(t *testing.T) string { return o.corpToken(t, "https://evil.example") },
			code:      oauth.CodeInvalidGrant, desc: "assertion is from an issuer this server does not trust",
			reason: `subject token issuer "https://evil.example" is not in trusted_issuers`},
		// A refresh token is no JWT: RFC 7523 §2.1 takes a JWT as assertion.
		{name: "fail/refresh-token-as-assertion", client: "mid2",
			assertion: func(t *testing.T) string {
				raw, _ := o.userToken(t, "api://mid2", o.now.Add(time.Hour))
				resp, err := o.disp.Token(ctx, o.obo("mid2", "assertion", raw, "scope", ledgerURN+"/.default"))
				if err != nil || resp.RefreshToken == "" {
					t.Fatalf("no refresh token to present: %v %+v", err, resp)
				}
				return resp.RefreshToken
			},
			code: oauth.CodeInvalidGrant, desc: "assertion is invalid",
			reason: "invalid_grant: assertion is invalid: subject token: token is not a well-formed signed JWT"},
		{name: "fail/id-token-as-assertion", client: "mid",
			assertion: func(t *testing.T) string {
				raw, err := o.tokens.MintIDToken("", &token.IDClaims{Subject: "alice", Audience: token.Audience{"mid"}, AZP: "mid",
					IssuedAt: o.now.Unix(), Expiry: o.now.Add(time.Hour).Unix(), ID: token.NewID()})
				if err != nil {
					t.Fatal(err)
				}
				return raw
			},
			code: oauth.CodeInvalidGrant, desc: "assertion is not an access token",
			reason: `invalid_grant: assertion is not an access token: subject token: token type header is not accepted: "JWT"`},
		// A trusted issuer's ID token of mid's own sign-in (nonce, azp, aud mid).
		{name: "fail/trusted-id-token-as-assertion", client: "mid",
			assertion: func(t *testing.T) string {
				return o.corpTokenWith(t, "aud", "mid", "azp", "mid", "nonce", "n-0S6_WzA2Mj", "scp", nil)
			},
			code: oauth.CodeInvalidGrant, desc: "assertion is an ID token, not an access token",
			reason: "the corp token has nonce, claims only an ID token carries"},
		{name: "fail/trusted-token-with-at-hash-as-assertion", client: "mid",
			assertion: func(t *testing.T) string { return o.corpTokenWith(t, "at_hash", "77QmUPtjPfzWtF2AnpK9RQ") },
			code:      oauth.CodeInvalidGrant, desc: "assertion is an ID token, not an access token",
			reason: "the corp token has at_hash, claims only an ID token carries"},
		// An issuer's outage is no verdict on the assertion: the client may retry.
		{name: "fail/issuer-keys-unavailable", client: "mid",
			assertion: func(t *testing.T) string { return o.corpTokenWith(t, "iss", downIssuer) },
			code:      oauth.CodeTemporarilyUnavail, desc: "assertion cannot be verified now: its issuer's keys are unavailable",
			reason: "subject token of trusted issuer down (https://down.example)"},
		// What the request lacks, not the assertion: invalid_request, as for an
		// exchange. A policy's require_binding…
		{name: "fail/policy-requires-binding", client: "mid5", kv: []string{"scope", ledgerURN + "/.default"},
			assertion: func(t *testing.T) string { raw, _ := o.userToken(t, "api://mid5", o.now.Add(time.Hour)); return raw },
			code:      oauth.CodeInvalidRequest, desc: "the policy for this target issues only sender-constrained tokens; send a DPoP proof or use a bound client certificate",
			reason: "policy mid5-bound-only requires a sender-constrained request"},
		// …and a sender-constrained assertion sent without a proof of any key.
		{name: "fail/bound-assertion-without-proof", client: "mid",
			assertion: func(t *testing.T) string { return o.boundUserToken(t) },
			code:      oauth.CodeInvalidRequest, desc: "the assertion is sender-constrained; the exchange must be too",
			reason: "subject token is bound to jkt " + jktOBO + ", the request proves no key"},
		{name: "fail/scopes-for-two-audiences", client: "mid", kv: []string{"scope", ledgerURN + "/read " + ledgerURL + "/read"},
			code: oauth.CodeInvalidScope, desc: `scope names two audiences, "api://ledger" and "https://ledger.bank.example"; ask for one audience per request`,
			reason: "two audiences"},
		{name: "fail/default-mixed-with-named-scopes", client: "mid", kv: []string{"scope", ledgerURN + "/.default " + ledgerURN + "/read"},
			code: oauth.CodeInvalidScope, desc: "scope mixes <audience>/.default with named scopes; send one or the other", reason: ".default with named scopes"},
		{name: "fail/missing-requested-token-use", client: "mid", kv: []string{"requested_token_use", ""},
			code: oauth.CodeInvalidRequest, desc: "missing parameter requested_token_use (on_behalf_of)", reason: "missing parameter requested_token_use"},
		{name: "fail/other-requested-token-use", client: "mid", kv: []string{"requested_token_use", "on_behalf_of_someone"},
			code: oauth.CodeInvalidRequest, desc: `requested_token_use "on_behalf_of_someone" is not supported; this server answers on_behalf_of only`,
			reason: `requested_token_use "on_behalf_of_someone" is not supported`},
		{name: "fail/missing-assertion", client: "mid", kv: []string{"assertion", ""},
			code: oauth.CodeInvalidRequest, desc: "missing parameter assertion", reason: "missing parameter assertion"},
		{name: "fail/missing-scope", client: "mid", kv: []string{"scope", ""},
			code: oauth.CodeInvalidRequest, desc: "missing parameter scope", reason: "missing parameter scope"},
		{name: "fail/only-openid-scopes", client: "mid", kv: []string{"scope", "openid profile offline_access"},
			code: oauth.CodeInvalidScope, desc: "scope names no audience: send <audience>/.default or <audience>/<scope> values", reason: "names no audience"},
		{name: "fail/unknown-audience", client: "mid", kv: []string{"scope", "api://treasury/.default"},
			code: oauth.CodeInvalidScope, desc: "requested audience is not known", reason: `"api://treasury" is not a configured audience`},
		{name: "fail/audience-no-policy-allows", client: "mid2", kv: []string{"scope", ledgerURL + "/.default"},
			assertion: func(t *testing.T) string { raw, _ := o.userToken(t, "api://mid2", o.now.Add(time.Hour)); return raw },
			code:      oauth.CodeInvalidScope, desc: "requested audience is not allowed for this client", reason: "requested audience is not allowed"},
		{name: "fail/scope-beyond-policy", client: "mid", kv: []string{"scope", ledgerURN + "/audit"},
			code: oauth.CodeInvalidScope, desc: `scope "api://ledger/audit" is beyond what may be granted`,
			reason: `scope "audit" is not in the subject token's scopes (policy mid-to-ledger, audiences ["api://ledger"])`},
		{name: "fail/policy-issues-no-access-token", client: "mid3", kv: []string{"scope", ledgerURN + "/.default"},
			assertion: func(t *testing.T) string { raw, _ := o.userToken(t, "api://mid3", o.now.Add(time.Hour)); return raw },
			code:      oauth.CodeInvalidRequest, desc: "the policy for this audience issues no access tokens",
			reason: "policy mid3-jwt-only does not allow requested token type access_token (allows jwt)"},
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
			req.Binding = tc.binding
			resp, err := o.disp.Token(ctx, req)
			wantCode(t, err, tc.code)
			if resp != nil {
				t.Fatalf("issued %+v", resp)
			}
			d := oauth.AsError(err).Description
			if tc.desc != "" && d != tc.desc {
				t.Errorf("description %q, want %q", d, tc.desc)
			}
			// The request sent an assertion and scope values; it declared no
			// token type and asked for none.
			for _, never := range []string{"subject_token", "subject token", "assertion_type", "token_type", "token type"} {
				if strings.Contains(d, never) {
					t.Errorf("description %q speaks of %q, which the request never sent", d, never)
				}
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
		if pols, _ := d["policies"].([]any); len(pols) != 2 {
			t.Fatalf("detail %s: want what policies mid-to-ledger and mid-corp-to-ledger made of the request", e.Detail)
		}
	})

	t.Run("ok/bound-assertion-with-proof", func(t *testing.T) {
		req := o.obo("mid", "assertion", o.boundUserToken(t), "scope", ledgerURN+"/read")
		req.Binding = &oauth.Confirmation{JKT: jktMid}
		resp, err := o.disp.Token(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if got := o.access(t, resp.AccessToken); resp.TokenType != oauth.TokenTypeDPoP || got.Cnf == nil || got.Cnf.JKT != jktMid {
			t.Fatalf("token type %q, cnf %+v: want the token bound to mid's key", resp.TokenType, got.Cnf)
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
}

// Thumbprints (RFC 7638) of a user's DPoP key and of mid's.
const (
	jktOBO = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
	jktMid = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
)

// boundUserToken mints deputy's access token of alice for api://mid, bound to
// the DPoP key jktOBO (RFC 9449 §6).
func (o *oboFixture) boundUserToken(t *testing.T) string {
	t.Helper()
	c := token.Claims{Subject: "alice", Audience: token.Audience{midAudience}, ClientID: "web", Scope: "read write",
		IssuedAt: o.now.Unix(), NotBef: o.now.Unix(), Expiry: o.now.Add(time.Hour).Unix(), ID: token.NewID(),
		Cnf: &oauth.Confirmation{JKT: jktOBO}}
	raw, err := o.tokens.Mint(oauth.JWTTypeAccessToken, &c)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestOnBehalfOfSameDecisionAsTokenExchange: an on-behalf-of request is decided
// as the token exchange of its assertion for its audience and scopes: the same
// client sends both, and the same policy decides, for the same subject,
// audiences, scopes, actors and claims; only the answer's scope is written
// <audience>/<scope>. A refusal is the same refusal too, with its OAuth code
// mapped as Entra answers.
func TestOnBehalfOfSameDecisionAsTokenExchange(t *testing.T) {
	ctx := context.Background()
	o := newOBOFixture(t)
	own, _ := o.userToken(t, midAudience, o.now.Add(time.Hour))
	corp := o.corpToken(t, corpIssuer)
	down := o.corpTokenWith(t, "iss", downIssuer)
	for _, tc := range []struct {
		name, client, assertion string
		typ                     oauth.TokenType // the subject_token_type of the exchange
		aud, scope              string          // the exchange's audience and scope
		oboScope                string
	}{
		{"ok/own-token-all-scopes", "mid", own, oauth.TokenTypeAccessToken, ledgerURN, "", ledgerURN + "/.default"},
		{"ok/own-token-named-scope", "mid", own, oauth.TokenTypeAccessToken, ledgerURL, "read", ledgerURL + "/read"},
		{"ok/corp-token", "mid", corp, oauth.TokenTypeJWT, ledgerURN, "read write", ledgerURN + "/read " + ledgerURN + "/write"},
		{"fail/scope-beyond", "mid", own, oauth.TokenTypeAccessToken, ledgerURN, "audit", ledgerURN + "/audit"},
		// An issuer's outage is temporarily_unavailable through either door.
		{"fail/issuer-keys-unavailable", "mid", down, oauth.TokenTypeJWT, ledgerURN, "", ledgerURN + "/.default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			xform := []string{"grant_type", oauth.GrantTokenExchange, "requested_token_use", "", "subject_token", tc.assertion,
				"subject_token_type", string(tc.typ), "audience", tc.aud, "scope", tc.scope}
			xreq := o.obo(tc.client, xform...)
			xresp, xerr := o.disp.Token(ctx, xreq)
			oreq := o.obo(tc.client, "assertion", tc.assertion, "scope", tc.oboScope)
			oresp, oerr := o.disp.Token(ctx, oreq)
			xe, oe := o.events(t, xreq.RequestID), o.events(t, oreq.RequestID)
			if len(xe) != 1 || len(oe) != 1 {
				t.Fatalf("events: exchange %+v, on-behalf-of %+v", xe, oe)
			}
			if (xerr == nil) != (oerr == nil) {
				t.Fatalf("exchange: %v, on-behalf-of: %v", xerr, oerr)
			}
			x, b := xe[0], oe[0]
			if x.Type != b.Type || x.Rule != b.Rule || x.Subject != b.Subject || x.SubjectIssuer != b.SubjectIssuer ||
				x.ParentJTI != b.ParentJTI || !slices.Equal(x.Audiences, b.Audiences) || !slices.Equal(x.Scopes, b.Scopes) ||
				!slices.Equal(x.Actors, b.Actors) {
				t.Fatalf("exchange recorded %+v\non-behalf-of recorded %+v", x, b)
			}
			if xerr != nil {
				xoe, ooe := oauth.AsError(xerr), oauth.AsError(oerr)
				if xoe.Cause == nil || ooe.Cause == nil || xoe.Cause.Error() != ooe.Cause.Error() || xoe.Code != ooe.Code {
					t.Fatalf("refusals differ: exchange %v, on-behalf-of %v", xerr, oerr)
				}
				return
			}
			xc, oc := o.access(t, xresp.AccessToken), o.access(t, oresp.AccessToken)
			if xc.Subject != oc.Subject || !slices.Equal(xc.Audience, oc.Audience) || xc.Scope != oc.Scope || xc.ClientID != oc.ClientID ||
				actString(xc.Act) != actString(oc.Act) || !reflect.DeepEqual(xc.Extra, oc.Extra) || xc.Expiry-xc.IssuedAt != oc.Expiry-oc.IssuedAt {
				t.Fatalf("exchange issued %+v act %s\non-behalf-of issued %+v act %s", xc, actString(xc.Act), oc, actString(oc.Act))
			}
			var want []string
			for _, s := range strings.Fields(xresp.Scope) {
				want = append(want, x.Audiences[0]+"/"+s)
			}
			if oresp.Scope != strings.Join(want, " ") || oresp.ExpiresIn != xresp.ExpiresIn {
				t.Fatalf("on-behalf-of answered scope %q expires_in %d, the exchange %q %d", oresp.Scope, oresp.ExpiresIn, xresp.Scope, xresp.ExpiresIn)
			}
			if tc.typ == oauth.TokenTypeJWT && oc.Extra["tenant"] != "t-1" {
				t.Fatalf("corp's mapped claim not carried: %+v", oc.Extra)
			}
		})
	}
}

// actString is an act chain as text, for comparisons.
func actString(a *oauth.Actor) string {
	b, _ := json.Marshal(a)
	return string(b)
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

// TestParseOBOScopeLinear: the scope parameter is read in linear time. A body of
// a mebibyte of distinct values (130,000 of them) is read in well under a
// second; a parser that compared each value with every earlier one took minutes.
func TestParseOBOScopeLinear(t *testing.T) {
	var b strings.Builder
	for i := 0; b.Len() < 1<<20; i++ {
		fmt.Fprintf(&b, "a/%x ", i)
	}
	scope := b.String()
	done := make(chan []string, 1)
	go func() {
		_, scopes, _ := grant.ParseOBOScope(scope)
		done <- scopes
	}()
	select {
	case scopes := <-done:
		if len(scopes) != len(strings.Fields(scope)) {
			t.Fatalf("%d scopes of %d values", len(scopes), len(strings.Fields(scope)))
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("ParseOBOScope of %d values takes more than 5s", len(strings.Fields(scope)))
	}
}

func BenchmarkParseOBOScope(b *testing.B) {
	var sb strings.Builder
	for i := 0; sb.Len() < 64<<10; i++ {
		fmt.Fprintf(&sb, "api://ledger/s%x ", i)
	}
	scope := sb.String()
	b.SetBytes(int64(len(scope)))
	for b.Loop() {
		if _, _, err := grant.ParseOBOScope(scope); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParseOBOScope: any scope parameter is accepted exactly when its values,
// the OpenID Connect ones aside, are <audience>/<scope> of one audience, and
// not .default beside named scopes; the scopes read are then the named ones,
// each once, in order.
func FuzzParseOBOScope(f *testing.F) {
	for _, s := range []string{"api://ledger/.default", "openid api://a/x api://a/y", "https://h/p/q/r", "a/b c/d", "/", "x/",
		"api://a/.default api://a/b", "api://a/b api://a/.default", "a/x a/x a/.default a/.default", "profile", "a/b/c a/b/d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, scope string) {
		aud, scopes, err := grant.ParseOBOScope(scope)

		// What the rules say of scope, worked out apart from the parser.
		auds := map[string]bool{}
		var named []string
		valid, all := true, false
		for _, v := range strings.Fields(scope) {
			if v == "openid" || v == "profile" || v == "offline_access" {
				continue
			}
			i := strings.LastIndexByte(v, '/')
			if i <= 0 || i == len(v)-1 {
				valid = false
				continue
			}
			auds[v[:i]] = true
			if v[i+1:] == ".default" {
				all = true
			} else if !slices.Contains(named, v[i+1:]) {
				named = append(named, v[i+1:])
			}
		}
		valid = valid && len(auds) == 1 && !(all && len(named) > 0)

		if err != nil {
			if c := oauth.AsError(err).Code; c != oauth.CodeInvalidScope {
				t.Fatalf("code %s", c)
			}
			if valid {
				t.Fatalf("ParseOBOScope(%q) refused a scope of one audience without mixing: %v", scope, err)
			}
			return
		}
		if !valid {
			t.Fatalf("ParseOBOScope(%q) = %q %q: accepted two audiences, .default with named scopes, or a value that is not <audience>/<scope>", scope, aud, scopes)
		}
		if !auds[aud] || !slices.Equal(scopes, named) {
			t.Fatalf("ParseOBOScope(%q) = %q %q, want %q %q", scope, aud, scopes, slices.Collect(maps.Keys(auds)), named)
		}
	})
}
