package e2e

import (
	"database/sql"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// bankConfig is the chain of design §1: web-app → api1 (payments) → api2 (ledger) →
// api3 (fraud), with a support client that may impersonate, a batch job whose tokens
// only api1 may exchange, and a client no policy names.
const bankConfig = `
issuer: %ISSUER%
listen: %LISTEN%
storage: {driver: sqlite, dsn: "%DIR%/deputy.db"}
tokens: {access_token_ttl: 10m}
audiences:
  - id: https://api1.example
    scopes: [payments:read, payments:write]
    client: api1
  - id: https://api2.example
    scopes: [ledger:read, ledger:write]
    client: api2
  - id: https://api3.example
    scopes: [fraud:check, ledger:read]
    client: api3
  - id: https://support.example
    client: support
clients:
  - id: web-app
    secret: web-secret
    grant_types: [client_credentials]
    scopes: [payments:read, payments:write, ledger:read, fraud:check]
    audiences: ["https://api1.example"]
  - id: batch
    secret: batch-secret
    grant_types: [client_credentials]
    scopes: [ledger:read]
    audiences: ["https://api1.example", "https://api2.example"]
    may_act: [api1]
  - {id: api1, secret: api1-secret, grant_types: [client_credentials, "urn:ietf:params:oauth:grant-type:token-exchange"], audiences: ["https://api1.example"]}
  - {id: api2, secret: api2-secret, grant_types: [client_credentials, "urn:ietf:params:oauth:grant-type:token-exchange"], audiences: ["https://api2.example"]}
  - {id: api3, secret: api3-secret, grant_types: [client_credentials, "urn:ietf:params:oauth:grant-type:token-exchange"], audiences: ["https://api3.example"]}
  - {id: support, secret: support-secret, grant_types: [client_credentials, "urn:ietf:params:oauth:grant-type:token-exchange"], audiences: ["https://api1.example"]}
  - id: helpdesk-ui
    secret: helpdesk-secret
    grant_types: [client_credentials]
    scopes: [ledger:read]
    audiences: ["https://support.example"]
  - {id: mallory, secret: mallory-secret, grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]}
  - {id: reader, auth_method: client_secret_post, secret: reader-secret, grant_types: [client_credentials]}
exchange:
  policies:
    - name: api1-to-api2
      client: api1
      audiences: ["https://api2.example"]
      scopes: [ledger:read, ledger:write]
    - name: api2-to-api3
      client: api2
      audiences: ["https://api3.example"]
      scopes: [fraud:check, ledger:read]
      max_chain: 2
      requested_token_types: [access_token, jwt]
    - {name: api3-to-api1, client: api3, audiences: ["https://api1.example"], max_chain: 2}
    - name: support-impersonates
      client: support
      mode: impersonation
      audiences: ["https://api2.example"]
      scopes: [ledger:read]
    - {name: api2-from-batch, client: api2, audiences: ["https://api2.example"], require_may_act: true}
`

func TestClientCredentials(t *testing.T) {
	s := start(t, bankConfig)
	r := s.token("web-app", "web-secret", clientCredentials("payments:read"))
	if r.str("token_type") != "Bearer" || r.str("scope") != "payments:read" || r.str("issued_token_type") != typeAccessToken {
		t.Fatalf("response %s", r.Raw)
	}
	if exp, _ := r.Body["expires_in"].(float64); exp < 590 || exp > 600 {
		t.Errorf("expires_in = %v, want 600", r.Body["expires_in"])
	}
	h := header(t, r.str("access_token"))
	if h["typ"] != "at+jwt" || h["alg"] != "ES256" || h["kid"] == "" {
		t.Errorf("header %v", h)
	}
	c := claims(t, r.str("access_token"))
	for k, want := range map[string]any{"iss": s.issuer, "sub": "web-app", "client_id": "web-app", "aud": "https://api1.example", "scope": "payments:read"} {
		if c[k] != want {
			t.Errorf("claim %s = %v, want %v", k, c[k], want)
		}
	}
	for _, k := range []string{"exp", "iat", "nbf", "jti"} {
		if c[k] == nil {
			t.Errorf("claim %s missing", k)
		}
	}

	t.Run("ok/client-secret-post", func(t *testing.T) {
		f := clientCredentials("")
		f.Set("client_id", "reader")
		f.Set("client_secret", "reader-secret")
		r := s.post("token_endpoint", "", "", f)
		if r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Raw)
		}
	})
	t.Run("fail/wrong-secret", func(t *testing.T) {
		r := s.post("token_endpoint", "web-app", "nope", clientCredentials(""))
		wantError(t, r, 401, "invalid_client")
		if r.Header.Get("WWW-Authenticate") == "" {
			t.Error("401 without WWW-Authenticate")
		}
	})
	t.Run("fail/malformed-authorization", func(t *testing.T) {
		r := s.postRaw(s.endpoint("token_endpoint"), "Basic !!!", "application/x-www-form-urlencoded", "grant_type=client_credentials")
		wantError(t, r, 401, "invalid_client")
	})
	t.Run("fail/two-auth-methods", func(t *testing.T) {
		f := clientCredentials("")
		f.Set("client_secret", "web-secret")
		wantError(t, s.post("token_endpoint", "web-app", "web-secret", f), 400, "invalid_request")
	})
	t.Run("fail/method-not-registered", func(t *testing.T) {
		wantError(t, s.post("token_endpoint", "reader", "reader-secret", clientCredentials("")), 401, "invalid_client")
	})
	t.Run("fail/scope-not-allowed", func(t *testing.T) {
		wantError(t, s.post("token_endpoint", "web-app", "web-secret", clientCredentials("admin")), 400, "invalid_scope")
	})
	t.Run("fail/grant-not-allowed", func(t *testing.T) {
		wantError(t, s.post("token_endpoint", "mallory", "mallory-secret", clientCredentials("")), 400, "unauthorized_client")
	})
	t.Run("fail/unsupported-grant", func(t *testing.T) {
		wantError(t, s.post("token_endpoint", "web-app", "web-secret", url.Values{"grant_type": {"password"}}), 400, "unsupported_grant_type")
	})
	t.Run("fail/repeated-grant-type", func(t *testing.T) {
		wantError(t, s.post("token_endpoint", "web-app", "web-secret", url.Values{"grant_type": {"client_credentials", "client_credentials"}}), 400, "invalid_request")
	})
	t.Run("fail/not-a-form", func(t *testing.T) {
		r := s.postRaw(s.endpoint("token_endpoint"), basic("web-app", "web-secret"), "application/json", `{"grant_type":"client_credentials"}`)
		wantError(t, r, 400, "invalid_request")
	})
	t.Run("fail/oversized-body", func(t *testing.T) {
		r := s.postRaw(s.endpoint("token_endpoint"), basic("web-app", "web-secret"), "application/x-www-form-urlencoded",
			"grant_type=client_credentials&pad="+strings.Repeat("x", 70000))
		wantError(t, r, 413, "invalid_request") // over limits.max_body_bytes: 413 Content Too Large
	})
}

// chain runs design §1 without the sign-in: web-app's token T0 for api1; api1 trades
// it for T1 to api2; api2 trades T1 for T2 to api3.
func chain(t *testing.T, s *server) (t0, t1, t2 string) {
	t.Helper()
	t0 = s.token("web-app", "web-secret", clientCredentials("")).str("access_token")
	t1 = s.token("api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example", "scope", "ledger:read")).str("access_token")
	t2 = s.token("api2", "api2-secret", exchangeForm(t1, "resource", "https://api3.example")).str("access_token")
	return
}

func TestDelegationChain(t *testing.T) {
	s := start(t, bankConfig)
	t0, t1, t2 := chain(t, s)
	c1, c2 := claims(t, t1), claims(t, t2)
	if c1["sub"] != "web-app" || c1["aud"] != "https://api2.example" || c1["scope"] != "ledger:read" || c1["client_id"] != "api1" {
		t.Errorf("T1 claims %v", c1)
	}
	if got := actJSON(t, c1["act"]); got != `{"sub":"api1"}` {
		t.Errorf("T1 act = %s", got)
	}
	// Scopes only shrink: T2 keeps what T1 had that api3 accepts.
	if c2["sub"] != "web-app" || c2["aud"] != "https://api3.example" || c2["scope"] != "ledger:read" {
		t.Errorf("T2 claims %v", c2)
	}
	if got := actJSON(t, c2["act"]); got != `{"act":{"sub":"api1"},"sub":"api2"}` {
		t.Errorf("T2 act = %s, want api2 acting, api1 nested", got)
	}
	if c2["exp"].(float64) > claims(t, t0)["exp"].(float64) {
		t.Error("T2 outlives its chain's first token")
	}

	// A third hop would make the chain three deep: api3-to-api1 allows two.
	r := s.post("token_endpoint", "api3", "api3-secret", exchangeForm(t2, "audience", "https://api1.example"))
	wantError(t, r, 400, "invalid_request")

	// Introspection by the token's audience shows the actor chain.
	in := s.post("introspection_endpoint", "api3", "api3-secret", url.Values{"token": {t2}})
	if in.Status != 200 || in.Body["active"] != true || actJSON(t, in.Body["act"]) != `{"act":{"sub":"api1"},"sub":"api2"}` || in.str("sub") != "web-app" {
		t.Fatalf("introspection %s", in.Raw)
	}
	// A client the token is neither issued to nor addressed to learns nothing.
	in = s.post("introspection_endpoint", "support", "support-secret", url.Values{"token": {t2}})
	if in.Raw != `{"active":false}` {
		t.Errorf("foreign introspection = %s", in.Raw)
	}

	// Audit: trace from the middle shows every hop; verify passes.
	out, code := s.deputy("audit", "trace", claims(t, t1)["jti"].(string))
	if code != 0 {
		t.Fatalf("trace exit %d: %s", code, out)
	}
	for _, want := range []string{claims(t, t0)["jti"].(string), claims(t, t1)["jti"].(string), c2["jti"].(string), "api1-to-api2", "api2-to-api3", "api1"} {
		if !strings.Contains(out, want) {
			t.Errorf("trace lacks %q:\n%s", want, out)
		}
	}
	out, code = s.deputy("audit", "verify")
	if code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("verify exit %d: %s", code, out)
	}
	out, code = s.deputy("audit", "query", "--actor", "api1", "--type", "token.exchanged", "--json")
	if code != 0 || strings.Count(out, "\n") != 2 {
		t.Errorf("query --actor api1 want 2 exchanges (T1, T2), got exit %d:\n%s", code, out)
	}
}

func TestExchangeRules(t *testing.T) {
	s := start(t, bankConfig)
	t0 := s.token("web-app", "web-secret", clientCredentials("")).str("access_token")
	batch := s.token("batch", "batch-secret", clientCredentials("")).str("access_token")
	helpdesk := s.token("helpdesk-ui", "helpdesk-secret", clientCredentials("")).str("access_token")
	// T1 for api2, without may_act: api2-from-batch, the one rule that lets api2 ask for
	// its own audience, requires may_act.
	t1 := s.token("api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example")).str("access_token")

	cases := []struct {
		name       string
		id, secret string
		form       url.Values
		status     int
		code       string
		desc       string // fail cases, optional: the error_description
		check      func(t *testing.T, c map[string]any)
	}{
		{name: "ok/scope-narrowed", id: "api1", secret: "api1-secret", form: exchangeForm(t0, "audience", "https://api2.example", "scope", "ledger:read"), status: 200,
			check: func(t *testing.T, c map[string]any) {
				if c["scope"] != "ledger:read" {
					t.Errorf("scope %v", c["scope"])
				}
			}},
		{name: "ok/default-audience-and-all-allowed-scopes", id: "api1", secret: "api1-secret", form: exchangeForm(t0), status: 200,
			check: func(t *testing.T, c map[string]any) {
				if c["aud"] != "https://api2.example" || c["scope"] != "ledger:read" {
					t.Errorf("aud %v scope %v", c["aud"], c["scope"])
				}
			}},
		{name: "fail/scope-escalation", id: "api1", secret: "api1-secret", form: exchangeForm(t0, "audience", "https://api2.example", "scope", "ledger:write"), status: 400, code: "invalid_scope"},
		{name: "fail/audience-not-allowed", id: "api1", secret: "api1-secret", form: exchangeForm(t0, "audience", "https://api3.example"), status: 400, code: "invalid_target"},
		{name: "fail/unknown-audience", id: "api1", secret: "api1-secret", form: exchangeForm(t0, "audience", "https://evil.example"), status: 400, code: "invalid_target"},
		{name: "fail/resource-with-fragment", id: "api1", secret: "api1-secret", form: exchangeForm(t0, "resource", "https://api2.example#x"), status: 400, code: "invalid_target"},
		{name: "fail/resource-relative", id: "api1", secret: "api1-secret", form: exchangeForm(t0, "resource", "api2"), status: 400, code: "invalid_target"},
		{name: "fail/subject-not-addressed-to-client", id: "api2", secret: "api2-secret", form: exchangeForm(t0, "audience", "https://api3.example"), status: 400, code: "invalid_request"},
		{name: "fail/no-policy-for-client", id: "mallory", secret: "mallory-secret", form: exchangeForm(t0), status: 400, code: "unauthorized_client"},
		{name: "fail/grant-not-in-client", id: "web-app", secret: "web-secret", form: exchangeForm(t0), status: 400, code: "unauthorized_client"},
		{name: "fail/bad-client", id: "api1", secret: "wrong", form: exchangeForm(t0), status: 401, code: "invalid_client"},
		{name: "fail/missing-subject-token-type", id: "api1", secret: "api1-secret", form: url.Values{"grant_type": {tokenExchange}, "subject_token": {t0}}, status: 400, code: "invalid_request"},
		{name: "fail/unknown-token-type", id: "api1", secret: "api1-secret", form: url.Values{"grant_type": {tokenExchange}, "subject_token": {t0}, "subject_token_type": {"urn:x:made-up"}}, status: 400, code: "invalid_request"},
		{name: "fail/duplicated-subject-token", id: "api1", secret: "api1-secret", form: exchangeForm(t0, "subject_token", t0), status: 400, code: "invalid_request"},
		{name: "fail/actor-token-without-type", id: "api1", secret: "api1-secret", form: exchangeForm(t0, "actor_token", t0), status: 400, code: "invalid_request"},
		{name: "fail/tampered-subject", id: "api1", secret: "api1-secret", form: exchangeForm(tamper(t0)), status: 400, code: "invalid_request"},
		{name: "fail/alg-none-subject", id: "api1", secret: "api1-secret", form: exchangeForm(algNone(t0)), status: 400, code: "invalid_request"},
		{name: "fail/garbage-subject", id: "api1", secret: "api1-secret", form: exchangeForm("not.a.jwt"), status: 400, code: "invalid_request"},
		{name: "fail/oversized-subject", id: "api1", secret: "api1-secret", form: exchangeForm(strings.Repeat("a", 20000)), status: 400, code: "invalid_request"},
		{name: "fail/requested-type-not-allowed", id: "api1", secret: "api1-secret", form: exchangeForm(t0, "requested_token_type", typeJWT), status: 400, code: "invalid_request"},
		{name: "ok/impersonation-adds-no-act", id: "support", secret: "support-secret", form: exchangeForm(helpdesk, "audience", "https://api2.example"), status: 200,
			check: func(t *testing.T, c map[string]any) {
				if c["sub"] != "helpdesk-ui" || c["act"] != nil || c["scope"] != "ledger:read" || c["client_id"] != "support" {
					t.Errorf("impersonation claims %v", c)
				}
			}},
		{name: "ok/may-act-matches", id: "api1", secret: "api1-secret", form: exchangeForm(batch, "audience", "https://api2.example"), status: 200,
			check: func(t *testing.T, c map[string]any) {
				if c["sub"] != "batch" || c["may_act"] != nil || actJSON(t, c["act"]) != `{"sub":"api1"}` {
					t.Errorf("claims %v", c)
				}
			}},
		{name: "fail/may-act-mismatch", id: "api2", secret: "api2-secret", form: exchangeForm(batch, "audience", "https://api2.example"), status: 400, code: "invalid_request"},
		{name: "fail/may-act-required-by-deciding-rule", id: "api2", secret: "api2-secret", form: exchangeForm(t1, "audience", "https://api2.example"), status: 400, code: "invalid_request",
			desc: "subject token has no may_act claim, which the policy for this target requires"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.post("token_endpoint", tc.id, tc.secret, tc.form)
			if tc.status != 200 {
				wantError(t, r, tc.status, tc.code)
				if tc.desc != "" && r.str("error_description") != tc.desc {
					t.Errorf("error_description = %q, want %q", r.str("error_description"), tc.desc)
				}
				return
			}
			if r.Status != 200 {
				t.Fatalf("%d %s", r.Status, r.Raw)
			}
			tc.check(t, claims(t, r.str("access_token")))
		})
	}

	t.Run("ok/actor-token-of-client", func(t *testing.T) {
		own := s.token("api1", "api1-secret", clientCredentials("")).str("access_token")
		r := s.token("api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example", "actor_token", own, "actor_token_type", typeAccessToken))
		if got := actJSON(t, claims(t, r.str("access_token"))["act"]); got != `{"sub":"api1"}` {
			t.Errorf("act %s", got)
		}
	})
	t.Run("fail/actor-token-of-other-client", func(t *testing.T) {
		other := s.token("api3", "api3-secret", clientCredentials("")).str("access_token")
		wantError(t, s.post("token_endpoint", "api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example", "actor_token", other, "actor_token_type", typeAccessToken)), 400, "invalid_request")
	})
	t.Run("ok/jwt-requested", func(t *testing.T) {
		t1 := s.token("api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example")).str("access_token")
		r := s.token("api2", "api2-secret", exchangeForm(t1, "audience", "https://api3.example", "requested_token_type", typeJWT))
		if r.str("issued_token_type") != typeJWT || r.str("token_type") != "N_A" || header(t, r.str("access_token"))["typ"] != "JWT" {
			t.Errorf("jwt response %s", r.Raw)
		}
	})
	t.Run("fail/jwt-declared-as-access-token", func(t *testing.T) {
		t1 := s.token("api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example")).str("access_token")
		j := s.token("api2", "api2-secret", exchangeForm(t1, "audience", "https://api3.example", "requested_token_type", typeJWT)).str("access_token")
		wantError(t, s.post("token_endpoint", "api3", "api3-secret", exchangeForm(j, "audience", "https://api1.example")), 400, "invalid_request")
	})

	// Every refusal above is on record as a denial with its reason.
	out, code := s.deputy("audit", "query", "--type", "request.denied", "--json")
	if code != 0 {
		t.Fatalf("query: %s", out)
	}
	for _, want := range []string{"invalid_scope", "invalid_target", "unauthorized_client", "invalid_client", "may_act", `"rule":"api1-to-api2"`, `"rule":"api2-from-batch"`} {
		if !strings.Contains(out, want) {
			t.Errorf("denials lack %q", want)
		}
	}
}

func tamper(jwt string) string {
	p := strings.Split(jwt, ".")
	b := []byte(p[1])
	if b[10] == 'A' {
		b[10] = 'B'
	} else {
		b[10] = 'A'
	}
	return p[0] + "." + string(b) + "." + p[2]
}

func algNone(jwt string) string {
	p := strings.Split(jwt, ".")
	return "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0." + p[1] + "."
}

func TestRevocationCascade(t *testing.T) {
	s := start(t, bankConfig)
	t0, t1, t2 := chain(t, s)
	// A sibling branch from T0, and an unrelated token.
	sib := s.token("api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example")).str("access_token")
	other := s.token("web-app", "web-secret", clientCredentials("")).str("access_token")

	// Only the client a token was issued to may revoke it.
	wantError(t, s.post("revocation_endpoint", "api2", "api2-secret", url.Values{"token": {t0}}), 400, "unauthorized_client")
	// Unknown tokens answer 200.
	if r := s.post("revocation_endpoint", "web-app", "web-secret", url.Values{"token": {"nonsense"}}); r.Status != 200 {
		t.Fatalf("unknown token revocation: %d %s", r.Status, r.Raw)
	}
	if r := s.post("revocation_endpoint", "web-app", "web-secret", url.Values{"token": {t0}, "token_type_hint": {"refresh_token"}}); r.Status != 200 {
		t.Fatalf("revocation: %d %s", r.Status, r.Raw)
	}
	for name, tok := range map[string]string{"T0": t0, "T1": t1, "T2": t2, "sibling": sib} {
		in := s.post("introspection_endpoint", "web-app", "web-secret", url.Values{"token": {tok}})
		if in.Raw != `{"active":false}` {
			// web-app may not see T1/T2 anyway; ask their audiences too.
			t.Errorf("%s still active for web-app: %s", name, in.Raw)
		}
	}
	if in := s.post("introspection_endpoint", "api3", "api3-secret", url.Values{"token": {t2}}); in.Raw != `{"active":false}` {
		t.Errorf("T2 active after its root was revoked: %s", in.Raw)
	}
	if in := s.post("introspection_endpoint", "web-app", "web-secret", url.Values{"token": {other}}); in.Body["active"] != true {
		t.Errorf("unrelated token inactive: %s", in.Raw)
	}
	// Revoked tokens cannot be exchanged, at any depth.
	wantError(t, s.post("token_endpoint", "api2", "api2-secret", exchangeForm(t1, "audience", "https://api3.example")), 400, "invalid_request")
	wantError(t, s.post("token_endpoint", "api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example")), 400, "invalid_request")

	// The cascade survives a restart (it is in the store, not only in memory).
	s.stop()
	s.run()
	if in := s.post("introspection_endpoint", "api3", "api3-secret", url.Values{"token": {t2}}); in.Raw != `{"active":false}` {
		t.Errorf("T2 active after restart: %s", in.Raw)
	}
	out, _ := s.deputy("audit", "query", "--type", "token.revoked", "--json")
	for _, jti := range []string{claims(t, t1)["jti"].(string), claims(t, t2)["jti"].(string), claims(t, sib)["jti"].(string)} {
		if !strings.Contains(out, jti) {
			t.Errorf("revocation record lacks descendant %s:\n%s", jti, out)
		}
	}
}

func TestAuditTamperingDetected(t *testing.T) {
	skipOnPostgres(t, "it tampers with the SQLite file directly")
	s := start(t, bankConfig)
	chain(t, s)
	s.post("token_endpoint", "api1", "api1-secret", exchangeForm("garbage"))
	s.stop()
	if out, code := s.deputy("audit", "verify"); code != 0 {
		t.Fatalf("verify before tampering: exit %d %s", code, out)
	}

	db, err := sql.Open("sqlite", filepath.Join(s.dir, "deputy.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id string
	if err := db.QueryRow(`SELECT id FROM audit_events WHERE seq = 3`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_events SET subject = 'mallory' WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	out, code := s.deputy("audit", "verify")
	if code == 0 {
		t.Fatalf("verify passed a tampered log: %s", out)
	}
	if !strings.Contains(out, id) || !regexp.MustCompile(`\b3\b`).MatchString(out) {
		t.Errorf("verify does not name record 3 (%s): %s", id, out)
	}

	// Deleting a record is detected too.
	if _, err := db.Exec(`UPDATE audit_events SET subject = 'web-app' WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	if out, code := s.deputy("audit", "verify"); code != 0 {
		t.Fatalf("restored log does not verify: %s", out)
	}
	if _, err := db.Exec(`DELETE FROM audit_events WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	if out, code := s.deputy("audit", "verify"); code == 0 || !strings.Contains(out, "3") {
		t.Fatalf("deletion not detected: exit %d %s", code, out)
	}
	_ = time.Second
}
