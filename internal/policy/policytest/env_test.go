package policytest

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
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
trusted_issuers:
  - {name: entra, issuer: https://login.example/tenant, jwks_file: "%DIR%/jwks.json", audiences: [api://payments]}
exchange:
  policies:
    - name: payments-to-ledger
      client: payments
      subject_issuers: [self, entra]
      audiences: [https://ledger.example]
      scopes: ["ledger:write", "fraud:check"]
    - name: ledger-to-fraud
      client: ledger
      audiences: [https://fraud.example]
      condition: size(subject.act) > 0 && subject.act[0].sub == "payments" && subject.claims.tenant == "bank"
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
					want(t, "Claims", map[string]any{"tenant": "bank", "amr": []any{"pwd"}, "auth_time": float64(5)})
			}},
		{name: "ok/aud-list", client: "ledger", s: Subject{Claims: []byte(`{"sub":"a","aud":["x","y"]}`)},
			check: func(t *testing.T, p *principal) { p.want(t, "Audiences", []string{"x", "y"}) }},
		{name: "ok/refresh-token-issued-to-the-client", client: "ledger", s: Subject{Type: "refresh_token", Claims: []byte(`{"sub":"a"}`)},
			check: func(t *testing.T, p *principal) { p.want(t, "ClientID", "ledger") }},
		{name: "ok/trusted-issuer", client: "payments", s: Subject{Issuer: "entra", Claims: []byte(`{"sub":"a","scope":"x","act":{"sub":"svc"}}`)},
			check: func(t *testing.T, p *principal) {
				p.want(t, "IssuerURL", "https://login.example/tenant").want(t, "Audiences", []string{"api://payments"}).
					want(t, "Scopes", []string(nil)).want(t, "Act", &oauth.Actor{Subject: "svc", Issuer: "https://login.example/tenant"})
			}},
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
		{"fail/unknown-client", Input{Client: "nobody"}, `client "nobody" is not configured (clients: payments, ledger)`},
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
	f.Fuzz(func(t *testing.T, claims, issuer, typ string) {
		p, err := env.Principal("ledger", Subject{Claims: json.RawMessage(claims), Issuer: issuer, Type: typ}, time.Unix(0, 0))
		var ue *UsageError
		if err != nil && !errors.As(err, &ue) {
			t.Fatalf("error %v is not a *UsageError", err)
		}
		if err == nil && p.Issuer == "" {
			t.Fatal("a principal without issuer")
		}
	})
}
