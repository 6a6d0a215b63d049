package policytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/oauth"
)

const testConfig = `issuer: https://deputy.example
storage: {driver: sqlite, dsn: "%DIR%/d.db"}
audiences:
  - {id: https://ledger.example, client: ledger, scopes: ["ledger:write", "fraud:check"]}
  - {id: https://fraud.example, scopes: ["fraud:check"]}
clients:
  - {id: payments, secret: s, grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]}
  - {id: ledger, secret: s, grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]}
  - {id: treasury, secret: s, grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]}
  - {id: teller, secret: s, grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]}
  - {id: vault, secret: s, grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]}
trusted_issuers:
  - {name: entra, issuer: https://login.example/tenant, jwks_file: "%DIR%/jwks.json", audiences: [api://payments, api://other], claims: {tenant: tid, email: upn}}
saml_idps:
  - {name: corp, entity_id: https://idp.corp.example, certificate_file: "%DIR%/corp.pem", audience: https://deputy.example}
exchange:
  policies:
    - name: payments-to-ledger
      client: payments
      subject_issuers: [self, entra, corp]
      subject_token_types: [access_token, jwt, id_token, refresh_token, saml2]
      audiences: [https://ledger.example]
      scopes: ["ledger:write", "fraud:check"]
    - name: ledger-to-fraud
      client: ledger
      audiences: [https://fraud.example]
      condition: size(subject.act) > 0 && subject.act[0].sub == "payments" && subject.claims.tenant == "bank"
    - name: recent-sign-in
      client: treasury
      audiences: [https://fraud.example]
      condition: now - timestamp(subject.claims.auth_time) < duration("1h")
    - name: business-hours
      client: teller
      audiences: [https://fraud.example]
      condition: now.getDayOfWeek("UTC") >= 1 && now.getDayOfWeek("UTC") <= 5 && now.getHours("UTC") >= 9 && now.getHours("UTC") < 17
    - name: bound-only
      client: vault
      audiences: [https://fraud.example]
      require_binding: true
`

func testEnv(t testing.TB) *Env {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "deputy.yaml")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(testConfig, "%DIR%", dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	env, err := NewEnv(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestPrincipal(t *testing.T) {
	env := testEnv(t)
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name   string
		client string
		s      Subject
		check  func(t *testing.T, p *principal)
		want   string // error text, for fail/…
	}{
		{name: "ok/defaults-addressed-to-the-clients-audience", client: "ledger", s: Subject{Claims: []byte(`{"sub":"alice"}`)},
			check: func(t *testing.T, p *principal) {
				p.want(t, "Issuer", "self").want(t, "IssuerURL", "https://deputy.example").
					want(t, "Audiences", []string{"https://ledger.example"}).want(t, "TokenType", oauth.TokenTypeAccessToken).
					want(t, "ExpiresAt", now.Add(config.DefaultAccessTokenTTL))
			}},
		{name: "ok/defaults-addressed-to-the-client-id", client: "payments", s: Subject{Claims: []byte(`{"sub":"alice"}`)},
			check: func(t *testing.T, p *principal) { p.want(t, "Audiences", []string{"payments"}) }},
		{name: "ok/every-claim", client: "ledger", s: Subject{Type: "jwt", Claims: []byte(`{"iss":"https://deputy.example","sub":"alice","aud":"x",
			"scope":"a  b","act":{"sub":"payments","act":{"sub":"web-app"}},"may_act":{"sub":"ledger"},"client_id":"web-app","jti":"j1",
			"exp":1800000100,"cnf":{"jkt":"abc"},"iat":1,"nbf":1,"sid":"s","tenant":"bank","amr":["pwd"],"auth_time":5}`)},
			check: func(t *testing.T, p *principal) {
				p.want(t, "TokenType", oauth.TokenTypeJWT).want(t, "Subject", "alice").want(t, "Audiences", []string{"x"}).
					want(t, "Scopes", []string{"a", "b"}).want(t, "Act", &oauth.Actor{Subject: "payments", Actor: &oauth.Actor{Subject: "web-app"}}).
					want(t, "MayAct", &oauth.Actor{Subject: "ledger"}).want(t, "ClientID", "web-app").want(t, "JTI", "j1").
					want(t, "ExpiresAt", time.Unix(1800000100, 0)).want(t, "Cnf", &oauth.Confirmation{JKT: "abc"}).
					want(t, "Claims", map[string]any{"tenant": "bank", "amr": []string{"pwd"}, "auth_time": int64(5)})
			}},
		{name: "ok/aud-list", client: "ledger", s: Subject{Claims: []byte(`{"sub":"a","aud":["x","y"]}`)},
			check: func(t *testing.T, p *principal) { p.want(t, "Audiences", []string{"x", "y"}) }},
		{name: "ok/refresh-token-issued-to-the-client", client: "ledger", s: Subject{Type: "refresh_token", Claims: []byte(`{"sub":"a"}`)},
			check: func(t *testing.T, p *principal) { p.want(t, "ClientID", "ledger") }},
		{name: "ok/trusted-issuer", client: "payments", s: Subject{Issuer: "entra", Claims: []byte(`{"sub":"a","act":{"sub":"svc"}}`)},
			check: func(t *testing.T, p *principal) {
				p.want(t, "IssuerURL", "https://login.example/tenant").want(t, "Audiences", []string{"api://payments"}).
					want(t, "Scopes", []string(nil)).want(t, "Act", &oauth.Actor{Subject: "svc", Issuer: "https://login.example/tenant"}).
					want(t, "Claims", map[string]any(nil))
			}},
		// Claims typed as the server types them: a condition
		// timestamp(subject.claims.auth_time) needs an int.
		{name: "ok/own-claims-typed-as-the-token-has-them", client: "ledger", s: Subject{Claims: []byte(`{"sub":"a","auth_time":1799996400,"acr":"mfa",
			"amr":["pwd","otp"],"level":3,"tags":["x"],"idp":"corp","nothing":null}`)},
			check: func(t *testing.T, p *principal) {
				p.want(t, "Claims", map[string]any{"auth_time": int64(1799996400), "acr": "mfa", "amr": []string{"pwd", "otp"},
					"level": float64(3), "tags": []any{"x"}, "idp": "corp", "nothing": nil})
			}},
		{name: "ok/own-zero-claims-dropped", client: "ledger", s: Subject{Claims: []byte(`{"sub":"a","auth_time":0,"acr":"","amr":[],"sid":"s"}`)},
			check: func(t *testing.T, p *principal) { p.want(t, "Claims", map[string]any(nil)) }},
		{name: "ok/id-token", client: "ledger", s: Subject{Type: "id_token", Claims: []byte(`{"sub":"a","aud":"ledger","azp":"web-app",
			"nonce":"n","at_hash":"h","c_hash":"c","auth_time":5,"email":"a@bank.example","act":{"sub":"payments"}}`)},
			check: func(t *testing.T, p *principal) {
				p.want(t, "TokenType", oauth.TokenTypeIDToken).want(t, "ClientID", "web-app").want(t, "Scopes", []string(nil)).
					want(t, "Act", &oauth.Actor{Subject: "payments"}).want(t, "MayAct", (*oauth.Actor)(nil)).
					want(t, "Claims", map[string]any{"auth_time": int64(5), "email": "a@bank.example"})
			}},
		{name: "ok/id-token-azp-defaults-to-the-client", client: "ledger", s: Subject{Type: "id_token", Claims: []byte(`{"sub":"a"}`)},
			check: func(t *testing.T, p *principal) {
				p.want(t, "ClientID", "ledger").want(t, "Audiences", []string{"https://ledger.example"})
			}},
		{name: "ok/refresh-token", client: "ledger", s: Subject{Type: "refresh_token", Claims: []byte(`{"sub":"a","scope":"x","idp":"local","cnf":{"jkt":"k"}}`)},
			check: func(t *testing.T, p *principal) {
				p.want(t, "Scopes", []string{"x"}).want(t, "Cnf", &oauth.Confirmation{JKT: "k"}).want(t, "Claims", map[string]any{"idp": "local"})
			}},
		{name: "ok/trusted-mapped-claims-as-json-decodes-them", client: "payments", s: Subject{Issuer: "entra",
			Claims: []byte(`{"sub":"a","aud":["x","api://other"],"tenant":42,"email":null,"iat":1,"nbf":1,"exp":1800000000.5,"cnf":{"x5t#S256":"t"}}`)},
			check: func(t *testing.T, p *principal) {
				p.want(t, "Audiences", []string{"x", "api://other"}).want(t, "Claims", map[string]any{"tenant": float64(42)}).
					want(t, "ExpiresAt", time.Unix(1800000000, 5e8)).want(t, "Cnf", &oauth.Confirmation{X5TS256: "t"}).
					want(t, "ClientID", "").want(t, "MayAct", (*oauth.Actor)(nil))
			}},
		{name: "ok/saml-assertion", client: "payments", s: Subject{Issuer: "corp", Claims: []byte(`{"sub":"alice@corp.example","email":" alice@corp.example ","name":"","jti":"id-1"}`)},
			check: func(t *testing.T, p *principal) {
				p.want(t, "TokenType", oauth.TokenTypeSAML2).want(t, "IssuerURL", "https://idp.corp.example").want(t, "Audiences", []string(nil)).
					want(t, "JTI", "id-1").want(t, "Claims", map[string]any{"email": "alice@corp.example"})
			}},
		{name: "fail/auth-time-not-whole-seconds", client: "ledger", s: Subject{Claims: []byte(`{"auth_time":1.5}`)}, want: "auth_time 1.5 is not a NumericDate in whole seconds"},
		{name: "fail/auth-time-text", client: "ledger", s: Subject{Claims: []byte(`{"auth_time":"yesterday"}`)}, want: "auth_time must be a NumericDate"},
		{name: "fail/amr-not-strings", client: "ledger", s: Subject{Claims: []byte(`{"amr":[1]}`)}, want: "amr must be a list of strings"},
		{name: "fail/acr-number", client: "ledger", s: Subject{Claims: []byte(`{"acr":2}`)}, want: "acr must be a string"},
		{name: "fail/refresh-idp-number", client: "ledger", s: Subject{Type: "refresh_token", Claims: []byte(`{"idp":2}`)}, want: "idp must be a string"},
		{name: "fail/id-token-with-scope", client: "ledger", s: Subject{Type: "id_token", Claims: []byte(`{"sub":"a","scope":"x"}`)}, want: "an ID token has no client_id or scope"},
		{name: "fail/id-token-with-client-id", client: "ledger", s: Subject{Type: "id_token", Claims: []byte(`{"sub":"a","client_id":"web-app"}`)}, want: "describe it as type jwt"},
		{name: "fail/id-token-with-may-act", client: "ledger", s: Subject{Type: "id_token", Claims: []byte(`{"sub":"a","may_act":{"sub":"ledger"}}`)}, want: "an ID token has no may_act"},
		{name: "fail/id-token-with-cnf", client: "ledger", s: Subject{Type: "id_token", Claims: []byte(`{"sub":"a","cnf":{"jkt":"k"}}`)}, want: "an ID token has no cnf"},
		{name: "fail/id-token-without-aud", client: "ledger", s: Subject{Type: "id_token", Claims: []byte(`{"sub":"a","aud":[]}`)}, want: "an ID token's aud must name the client"},
		{name: "fail/id-token-empty-azp", client: "ledger", s: Subject{Type: "id_token", Claims: []byte(`{"sub":"a","azp":""}`)}, want: "azp must be the client id"},
		{name: "fail/refresh-token-with-may-act", client: "ledger", s: Subject{Type: "refresh_token", Claims: []byte(`{"may_act":{"sub":"x"}}`)}, want: "a refresh token has no may_act"},
		{name: "fail/refresh-token-bound-to-a-certificate", client: "ledger", s: Subject{Type: "refresh_token", Claims: []byte(`{"cnf":{"x5t#S256":"t"}}`)}, want: "bound only to a DPoP key"},
		{name: "fail/refresh-token-of-a-trusted-issuer", client: "payments", s: Subject{Issuer: "entra", Type: "refresh_token"}, want: "a refresh_token subject token is deputy's own"},
		{name: "fail/saml2-of-self", client: "ledger", s: Subject{Type: "saml2"}, want: "a saml2 subject token comes from a saml_idps issuer; self is not one"},
		{name: "fail/saml-idp-access-token", client: "payments", s: Subject{Issuer: "corp", Type: "access_token"}, want: "its subject tokens are saml2 assertions, not access_token"},
		{name: "fail/cnf-two-keys", client: "ledger", s: Subject{Claims: []byte(`{"cnf":{"jkt":"a","x5t#S256":"b"}}`)}, want: "cnf must hold exactly one of jkt and x5t#S256"},
		{name: "fail/cnf-not-a-thumbprint", client: "ledger", s: Subject{Claims: []byte(`{"cnf":{"jkt":"a b"}}`)}, want: "cnf jkt is not a base64url thumbprint"},
		{name: "fail/trusted-unmapped-claim", client: "payments", s: Subject{Issuer: "entra", Claims: []byte(`{"sub":"a","department":"x"}`)},
			want: "the server never shows department from trusted issuer entra: subject.claims holds only what trusted_issuers[].claims maps (email, tenant)"},
		{name: "fail/trusted-scope", client: "payments", s: Subject{Issuer: "entra", Claims: []byte(`{"sub":"a","scope":"x"}`)}, want: "scopes belong to its own domain"},
		{name: "fail/trusted-client-id", client: "payments", s: Subject{Issuer: "entra", Claims: []byte(`{"sub":"a","client_id":"x"}`)}, want: "client_id is read only from deputy's own tokens"},
		{name: "fail/trusted-may-act", client: "payments", s: Subject{Issuer: "entra", Claims: []byte(`{"sub":"a","may_act":{"sub":"x"}}`)}, want: "may_act is read only from deputy's own tokens"},
		{name: "fail/trusted-not-addressed-to-deputy", client: "payments", s: Subject{Issuer: "entra", Claims: []byte(`{"sub":"a","aud":"api://elsewhere"}`)}, want: "holds none of trusted issuer entra's audiences"},
		{name: "fail/trusted-act-without-sub", client: "payments", s: Subject{Issuer: "entra", Claims: []byte(`{"sub":"a","act":{"iss":"x"}}`)}, want: "an act level without sub"},
		{name: "fail/saml-unknown-claim", client: "payments", s: Subject{Issuer: "corp", Claims: []byte(`{"sub":"a","tenant":"bank"}`)},
			want: "the server never shows tenant from SAML IdP corp: subject.claims holds only email, family_name, given_name, name, preferred_username"},
		{name: "fail/saml-aud", client: "payments", s: Subject{Issuer: "corp", Claims: []byte(`{"sub":"a","aud":"x"}`)}, want: "an assertion of SAML IdP corp has no aud"},
		{name: "fail/saml-claim-not-a-string", client: "payments", s: Subject{Issuer: "corp", Claims: []byte(`{"sub":"a","email":["x"]}`)}, want: "email must be a string"},
		{name: "ok/no-claims", client: "ledger", s: Subject{},
			check: func(t *testing.T, p *principal) { p.want(t, "Subject", "").want(t, "Claims", map[string]any(nil)) }},
		{name: "fail/unknown-issuer", client: "ledger", s: Subject{Issuer: "okta"}, want: `subject issuer "okta" is neither self`},
		{name: "fail/unknown-type", client: "ledger", s: Subject{Type: "saml1"}, want: `subject type "saml1" is not one of`},
		{name: "fail/claims-not-an-object", client: "ledger", s: Subject{Claims: []byte(`["sub"]`)}, want: "subject claims are not a JSON object"},
		{name: "fail/claims-null", client: "ledger", s: Subject{Claims: []byte(`null`)}, want: "subject claims are not a JSON object"},
		{name: "fail/claims-malformed", client: "ledger", s: Subject{Claims: []byte(`{"sub":`)}, want: "subject claims are not a JSON object"},
		{name: "fail/iss-of-another-issuer", client: "ledger", s: Subject{Claims: []byte(`{"iss":"https://evil.example"}`)}, want: `iss "https://evil.example" is not issuer self's`},
		{name: "fail/aud-number", client: "ledger", s: Subject{Claims: []byte(`{"aud":5}`)}, want: "aud is neither a string nor a list"},
		{name: "fail/exp-not-seconds", client: "ledger", s: Subject{Claims: []byte(`{"exp":1.5}`)}, want: "exp 1.5 is not a NumericDate"},
		{name: "fail/act-malformed", client: "ledger", s: Subject{Claims: []byte(`{"act":"payments"}`)}, want: "subject claims"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := env.Principal(tt.client, tt.s, now)
			if tt.want != "" {
				var ue *UsageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Principal = %v; want a *UsageError with %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, &principal{v: reflect.ValueOf(p)})
		})
	}
}

// principal checks fields of an exchange.Principal by name.
type principal struct{ v reflect.Value }

func (p *principal) want(t *testing.T, field string, want any) *principal {
	t.Helper()
	got := p.v.FieldByName(field).Interface()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", field, got, want)
	}
	return p
}

func TestRun(t *testing.T) {
	env := testEnv(t)
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name   string
		in     Input
		expect Expect
		fails  string // what Check says, "" when the case passes
	}{
		{"ok/allowed", Input{Client: "payments", Subject: Subject{Claims: []byte(`{"sub":"alice","scope":"ledger:write fraud:check"}`)}, Audiences: []string{"https://ledger.example"}},
			Expect{Allow: true, Rule: "payments-to-ledger", Scopes: []string{"ledger:write", "fraud:check"}}, ""},
		{"ok/condition-holds", Input{Client: "ledger", Subject: Subject{Claims: []byte(`{"sub":"alice","tenant":"bank","act":{"sub":"payments"}}`)}},
			Expect{Allow: true, Rule: "ledger-to-fraud", Scopes: []string{}}, ""},
		{"ok/condition-false", Input{Client: "ledger", Subject: Subject{Claims: []byte(`{"sub":"alice","tenant":"bank"}`)}},
			Expect{Error: "invalid_request"}, ""},
		{"ok/condition-errs-on-a-missing-claim", Input{Client: "ledger", Subject: Subject{Claims: []byte(`{"sub":"alice","act":{"sub":"payments"}}`)}},
			Expect{Error: "invalid_request"}, ""},
		{"ok/scope-beyond", Input{Client: "payments", Subject: Subject{Claims: []byte(`{"sub":"alice","scope":"ledger:write"}`)}, Scope: "fraud:check"},
			Expect{Error: "invalid_scope"}, ""},
		{"ok/unknown-audience", Input{Client: "payments", Subject: Subject{Claims: []byte(`{"sub":"alice"}`)}, Audiences: []string{"https://x.example"}},
			Expect{Error: "invalid_target"}, ""},
		{"ok/actor-is-not-the-client", Input{Client: "payments", Subject: Subject{Claims: []byte(`{"sub":"alice"}`)}, Actor: "ledger"},
			Expect{Error: "invalid_request"}, ""},
		{"fail/allowed-by-another-rule", Input{Client: "payments", Subject: Subject{Claims: []byte(`{"sub":"alice","scope":"ledger:write"}`)}},
			Expect{Allow: true, Rule: "other"}, "want rule other, got allowed by rule payments-to-ledger"},
		{"fail/other-scopes", Input{Client: "payments", Subject: Subject{Claims: []byte(`{"sub":"alice","scope":"ledger:write"}`)}},
			Expect{Allow: true, Scopes: []string{"fraud:check"}}, `want scopes "fraud:check", got "ledger:write"`},
		{"fail/denied", Input{Client: "ledger", Subject: Subject{Claims: []byte(`{"sub":"alice","tenant":"bank"}`)}},
			Expect{Allow: true}, "want allowed, got invalid_request: the subject token is not acceptable to the client's policies: no policy's condition holds (policy ledger-to-fraud condition is false)"},
		{"fail/allowed", Input{Client: "payments", Subject: Subject{Claims: []byte(`{"sub":"alice","scope":"ledger:write"}`)}},
			Expect{Error: "invalid_scope"}, `want invalid_scope, got allowed by rule payments-to-ledger (scopes "ledger:write")`},
		{"fail/another-error", Input{Client: "payments", Subject: Subject{Claims: []byte(`{"sub":"alice"}`)}, Audiences: []string{"https://fraud.example"}},
			Expect{Error: "invalid_scope"}, "want invalid_scope, got invalid_target: requested audience is not allowed for this client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := env.Request(tt.in, now)
			if err != nil {
				t.Fatal(err)
			}
			o := env.Run(req, now)
			got := tt.expect.Check(o)
			if tt.fails == "" && got != "" || tt.fails != "" && !strings.HasPrefix(got, tt.fails) {
				t.Errorf("Check = %q, want %q", got, tt.fails)
			}
			if len(o.Policies) == 0 {
				t.Errorf("no explanation: %+v", o)
			}
		})
	}
}

// TestRunAtATime: conditions and expiry see the time a case is decided at, and
// the subject's claims with the server's types — auth_time an int, which
// timestamp() takes (a float64 it does not).
func TestRunAtATime(t *testing.T) {
	env := testEnv(t)
	monday := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	sunday := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	signedIn := monday.Add(-10 * time.Minute).Unix()
	tests := []struct {
		name   string
		in     Input
		now    time.Time
		expect Expect
	}{
		{"ok/recent-sign-in", Input{Client: "treasury", Subject: Subject{Claims: fmt.Appendf(nil, `{"sub":"alice","auth_time":%d}`, signedIn)}},
			monday, Expect{Allow: true, Rule: "recent-sign-in"}},
		{"ok/sign-in-too-old", Input{Client: "treasury", Subject: Subject{Claims: fmt.Appendf(nil, `{"sub":"alice","auth_time":%d}`, signedIn)}},
			monday.Add(2 * time.Hour), Expect{Error: "invalid_request"}},
		{"ok/business-hours-monday-10", Input{Client: "teller", Subject: Subject{Claims: []byte(`{"sub":"alice"}`)}},
			monday, Expect{Allow: true, Rule: "business-hours"}},
		{"ok/business-hours-sunday", Input{Client: "teller", Subject: Subject{Claims: []byte(`{"sub":"alice"}`)}},
			sunday, Expect{Error: "invalid_request"}},
		{"ok/business-hours-monday-18", Input{Client: "teller", Subject: Subject{Claims: []byte(`{"sub":"alice"}`)}},
			monday.Add(8 * time.Hour), Expect{Error: "invalid_request"}},
		{"ok/expired-at-that-time", Input{Client: "teller", Subject: Subject{Claims: fmt.Appendf(nil, `{"sub":"alice","exp":%d}`, monday.Unix())}},
			monday, Expect{Error: "invalid_request"}},
		{"ok/not-yet-expired", Input{Client: "teller", Subject: Subject{Claims: fmt.Appendf(nil, `{"sub":"alice","exp":%d}`, monday.Unix()+1)}},
			monday, Expect{Allow: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := env.Request(tt.in, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			o := env.Run(req, tt.now)
			if why := tt.expect.Check(o); why != "" {
				t.Errorf("%s (policies %+v)", why, o.Policies)
			}
		})
	}
}

// TestRunBound: a request that proves a key is what a require_binding policy,
// and a subject token bound with cnf, need; the issued token is bound to it.
func TestRunBound(t *testing.T) {
	env := testEnv(t)
	now := time.Unix(1_800_000_000, 0)
	const jkt, x5t = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I", "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"
	tests := []struct {
		name    string
		in      Input
		expect  Expect
		bound   *oauth.Confirmation
		explain exchange.Check // what vault's policy made of it, for a denial
	}{
		{"ok/dpop", Input{Client: "vault", Subject: Subject{Claims: []byte(`{"sub":"alice"}`)}, Binding: &oauth.Confirmation{JKT: jkt}},
			Expect{Allow: true, Rule: "bound-only"}, &oauth.Confirmation{JKT: jkt}, ""},
		{"ok/certificate", Input{Client: "vault", Subject: Subject{Claims: []byte(`{"sub":"alice"}`)}, Binding: &oauth.Confirmation{X5TS256: x5t}},
			Expect{Allow: true, Rule: "bound-only"}, &oauth.Confirmation{X5TS256: x5t}, ""},
		{"ok/bearer-refused", Input{Client: "vault", Subject: Subject{Claims: []byte(`{"sub":"alice"}`)}},
			Expect{Error: "invalid_request"}, nil, "binding"},
		{"ok/bound-subject-needs-a-bound-request", Input{Client: "ledger", Subject: Subject{Claims: []byte(`{"sub":"alice","tenant":"bank","act":{"sub":"payments"},"cnf":{"jkt":"` + jkt + `"}}`)}},
			Expect{Error: "invalid_request"}, nil, ""},
		{"ok/bound-subject-bound-request", Input{Client: "ledger", Subject: Subject{Claims: []byte(`{"sub":"alice","tenant":"bank","act":{"sub":"payments"},"cnf":{"jkt":"` + jkt + `"}}`)},
			Binding: &oauth.Confirmation{JKT: jkt}}, Expect{Allow: true, Rule: "ledger-to-fraud"}, &oauth.Confirmation{JKT: jkt}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := env.Request(tt.in, now)
			if err != nil {
				t.Fatal(err)
			}
			o := env.Run(req, now)
			if why := tt.expect.Check(o); why != "" {
				t.Fatalf("%s (policies %+v)", why, o.Policies)
			}
			if o.Allowed && !reflect.DeepEqual(o.Decision.Cnf, tt.bound) {
				t.Errorf("issued token bound to %+v, want %+v", o.Decision.Cnf, tt.bound)
			}
			if tt.explain != "" && (len(o.Policies) != 1 || o.Policies[0].Check != tt.explain) {
				t.Errorf("policies %+v, want check %s", o.Policies, tt.explain)
			}
		})
	}
}

// TestRunExplains: a denial carries, for each policy of the client, the check
// it failed — a condition that cannot be evaluated with its reason.
func TestRunExplains(t *testing.T) {
	env := testEnv(t)
	now := time.Unix(1_800_000_000, 0)
	req, err := env.Request(Input{Client: "ledger", Subject: Subject{Claims: []byte(`{"sub":"alice","act":{"sub":"payments"}}`)}}, now)
	if err != nil {
		t.Fatal(err)
	}
	o := env.Run(req, now)
	if o.Allowed || o.Err.Code != oauth.CodeInvalidRequest || o.Rule != "ledger-to-fraud" {
		t.Fatalf("outcome %+v", o)
	}
	if len(o.Policies) != 1 || o.Policies[0].Check != "condition" || !strings.Contains(o.Policies[0].Reason, "condition cannot be evaluated: ") ||
		!strings.Contains(o.Policies[0].Reason, "tenant") {
		t.Errorf("policies %+v", o.Policies)
	}
	if !strings.Contains(o.Reason(), "tenant") {
		t.Errorf("reason %q does not name the missing claim", o.Reason())
	}
}

func TestRequestProblems(t *testing.T) {
	env := testEnv(t)
	for _, tt := range []struct {
		name string
		in   Input
		want string
	}{
		{"fail/unknown-client", Input{Client: "nobody"}, `client "nobody" is not configured (clients: payments, ledger, treasury, teller, vault)`},
		{"fail/unknown-requested-type", Input{Client: "ledger", RequestedTokenType: "bearer"}, `requested token type "bearer" is not one of`},
		{"fail/bad-subject", Input{Client: "ledger", Subject: Subject{Type: "x"}}, `subject type "x"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := env.Request(tt.in, time.Now())
			var ue *UsageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Request = %v; want %q", err, tt.want)
			}
		})
	}
	req, err := env.Request(Input{Client: "ledger", Actor: "ledger", Scope: " a  b ", RequestedTokenType: "jwt"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if req.Actor == nil || req.Actor.Subject != "ledger" || req.Actor.Issuer != "self" || !slices.Equal(req.Scopes, []string{"a", "b"}) || req.RequestedType != oauth.TokenTypeJWT {
		t.Errorf("request %+v", req)
	}
}

// FuzzPrincipal: any claims are turned into a principal or refused with a
// *UsageError, never a panic.
func FuzzPrincipal(f *testing.F) {
	env := testEnv(f)
	f.Add(`{"sub":"alice","aud":["a"],"act":{"sub":"p","act":{"sub":"q"}},"exp":5,"cnf":{"jkt":"x"}}`, "", "")
	f.Add(`{"aud":"x","scope":7}`, "entra", "id_token")
	f.Add(`{"may_act":null,"act":null,"exp":null}`, "self", "refresh_token")
	f.Add(`{"sub":"a","azp":"x","nonce":"n","auth_time":5,"amr":["pwd"],"acr":"1"}`, "", "id_token")
	f.Add(`{"sub":"a","tenant":1,"email":"x","cnf":{"x5t#S256":"t"},"exp":1.5}`, "entra", "")
	f.Add(`{"sub":"a","email":"x","name":null}`, "corp", "saml2")
	f.Fuzz(func(t *testing.T, claims, issuer, typ string) {
		p, err := env.Principal("ledger", Subject{Claims: json.RawMessage(claims), Issuer: issuer, Type: typ}, time.Unix(0, 0))
		var ue *UsageError
		if err != nil && !errors.As(err, &ue) {
			t.Fatalf("error %v is not a *UsageError", err)
		}
		if err != nil {
			return
		}
		if p.Issuer == "" {
			t.Fatal("a principal without issuer")
		}
		// What the verifiers never produce: scopes, client_id or may_act from a
		// foreign issuer, audiences of a SAML assertion, claims of other types
		// than the server's.
		if p.Issuer != "self" && (p.Scopes != nil || p.ClientID != "" || p.MayAct != nil) {
			t.Fatalf("foreign principal %+v", p)
		}
		if p.TokenType == oauth.TokenTypeSAML2 && (p.Audiences != nil || p.Act != nil || p.Cnf != nil) {
			t.Fatalf("SAML principal %+v", p)
		}
		if p.Issuer == "self" {
			if v, ok := p.Claims["auth_time"]; ok {
				if _, ok := v.(int64); !ok {
					t.Fatalf("auth_time %T", v)
				}
			}
			if v, ok := p.Claims["amr"]; ok {
				if _, ok := v.([]string); !ok {
					t.Fatalf("amr %T", v)
				}
			}
		}
	})
}
