package e2e

import (
	"net/url"
	"strings"
	"testing"
)

// typesConfig lets api1 ask for ID tokens and refresh tokens (design §5 response
// rules), and lets api2 bring ID tokens and refresh tokens as subject tokens.
const typesConfig = `
issuer: %ISSUER%
listen: %LISTEN%
storage: {driver: sqlite, dsn: "%DIR%/deputy.db"}
tokens: {access_token_ttl: 10m, id_token_ttl: 5m, refresh_token_ttl: 1h}
audiences:
  - id: https://api1.example
    scopes: [payments:read]
    client: api1
  - id: https://api2.example
    scopes: [ledger:read, ledger:write]
    client: api2
  - id: https://api3.example
    scopes: [fraud:check]
    client: api3
clients:
  - id: web-app
    secret: web-secret
    grant_types: [client_credentials]
    scopes: [payments:read, ledger:read, ledger:write]
    audiences: ["https://api1.example"]
  - {id: api1, secret: api1-secret, grant_types: [refresh_token, "urn:ietf:params:oauth:grant-type:token-exchange"]}
  - {id: api2, secret: api2-secret, grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]}
  - {id: api3, secret: api3-secret, grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]}
exchange:
  policies:
    - name: api1-from-refresh
      client: api1
      subject_token_types: [refresh_token]
      audiences: ["https://api2.example"]
    - name: api1-to-api2
      client: api1
      audiences: ["https://api2.example"]
      requested_token_types: [access_token, id_token, refresh_token, jwt]
    - name: api2-to-api3
      client: api2
      subject_token_types: [access_token, id_token, refresh_token]
      audiences: ["https://api3.example"]
`

const (
	typeIDToken      = "urn:ietf:params:oauth:token-type:id_token"
	typeRefreshToken = "urn:ietf:params:oauth:token-type:refresh_token"
)

func TestExchangeIssuesIDAndRefreshTokens(t *testing.T) {
	s := start(t, typesConfig)
	t0 := s.token("web-app", "web-secret", clientCredentials("payments:read ledger:read ledger:write")).str("access_token")
	t0exp := claims(t, t0)["exp"].(float64)

	// An access token, and beside it a refresh token: api1-to-api2 lists
	// refresh_token and api1 may use the refresh_token grant.
	r := s.token("api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example", "scope", "ledger:read"))
	rt := r.str("refresh_token")
	if r.str("issued_token_type") != typeAccessToken || r.str("token_type") != "Bearer" || !strings.HasPrefix(rt, "drt_") {
		t.Fatalf("exchange answer %s", r.Raw)
	}
	at := claims(t, r.str("access_token"))
	if at["aud"] != "https://api2.example" || actJSON(t, at["act"]) != `{"sub":"api1"}` || at["scope"] != "ledger:read" {
		t.Fatalf("exchanged access token %v", at)
	}

	t.Run("ok/refresh-keeps-the-delegation", func(t *testing.T) {
		r2 := s.token("api1", "api1-secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		c := claims(t, r2.str("access_token"))
		if c["sub"] != "web-app" || c["aud"] != "https://api2.example" || actJSON(t, c["act"]) != `{"sub":"api1"}` ||
			c["scope"] != "ledger:read" || c["client_id"] != "api1" {
			t.Errorf("refreshed access token %v", c)
		}
		if c["exp"].(float64) > t0exp {
			t.Errorf("refreshed token expires at %v, after its exchange's subject token (%v)", c["exp"], t0exp)
		}
		next := r2.str("refresh_token")
		if next == "" || next == rt {
			t.Fatalf("refresh did not rotate: %s", r2.Raw)
		}
		// Reuse of the rotated token revokes the family: the new one dies with it.
		wantError(t, s.post("token_endpoint", "api1", "api1-secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}), 400, "invalid_grant")
		wantError(t, s.post("token_endpoint", "api1", "api1-secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next}}), 400, "invalid_grant")
	})

	t.Run("ok/requested-refresh-token", func(t *testing.T) {
		r := s.token("api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example", "requested_token_type", typeRefreshToken))
		if r.str("issued_token_type") != typeRefreshToken || r.str("token_type") != "N_A" ||
			!strings.HasPrefix(r.str("access_token"), "drt_") || r.str("refresh_token") != "" || r.str("scope") != "ledger:read ledger:write" {
			t.Fatalf("answer %s", r.Raw)
		}
		if exp := r.Body["expires_in"].(float64); exp > 600 || exp < 590 {
			t.Errorf("expires_in %v: want capped by the 10-minute subject token", exp)
		}
		own := r.str("access_token")

		// Its own client may exchange it (policy api1-from-refresh) ...
		x := s.token("api1", "api1-secret", url.Values{
			"grant_type": {tokenExchange}, "subject_token": {own}, "subject_token_type": {typeRefreshToken},
			"audience": {"https://api2.example"}, "scope": {"ledger:write"},
		})
		c := claims(t, x.str("access_token"))
		if c["sub"] != "web-app" || c["scope"] != "ledger:write" || actJSON(t, c["act"]) != `{"act":{"sub":"api1"},"sub":"api1"}` {
			t.Errorf("exchanged from a refresh token: %v", c)
		}
		// ... no other client may.
		asSubject := url.Values{"grant_type": {tokenExchange}, "subject_token": {own}, "subject_token_type": {typeRefreshToken}}
		wantError(t, s.post("token_endpoint", "api2", "api2-secret", asSubject), 400, "invalid_request")
		// Once rotated it is no subject token any more.
		s.token("api1", "api1-secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {own}})
		asSubject.Set("audience", "https://api2.example")
		wantError(t, s.post("token_endpoint", "api1", "api1-secret", asSubject), 400, "invalid_request")
		// Declared as an access token it is nothing.
		wantError(t, s.post("token_endpoint", "api1", "api1-secret", exchangeForm(own, "audience", "https://api2.example")), 400, "invalid_request")
	})

	t.Run("ok/requested-id-token", func(t *testing.T) {
		r := s.token("api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example", "requested_token_type", typeIDToken))
		if r.str("issued_token_type") != typeIDToken || r.str("token_type") != "N_A" || r.str("refresh_token") != "" {
			t.Fatalf("answer %s", r.Raw)
		}
		if exp := r.Body["expires_in"].(float64); exp > 300 || exp < 290 {
			t.Errorf("expires_in %v, want id_token_ttl 5m", exp)
		}
		idt := r.str("access_token")
		if h := header(t, idt); h["typ"] != "JWT" {
			t.Errorf("ID token header %v", h)
		}
		c := claims(t, idt)
		if c["sub"] != "web-app" || c["aud"] != "https://api2.example" || c["azp"] != "api1" || c["iss"] != s.issuer ||
			actJSON(t, c["act"]) != `{"sub":"api1"}` || c["scope"] != nil || c["client_id"] != nil {
			t.Errorf("ID token claims %v", c)
		}
		// api2, its audience, brings it on as a subject token; the chain grows.
		x := s.token("api2", "api2-secret", url.Values{
			"grant_type": {tokenExchange}, "subject_token": {idt}, "subject_token_type": {typeIDToken},
		})
		c = claims(t, x.str("access_token"))
		if c["aud"] != "https://api3.example" || actJSON(t, c["act"]) != `{"act":{"sub":"api1"},"sub":"api2"}` || x.str("scope") != "" {
			t.Errorf("exchanged from an ID token: %s %v", x.Raw, c)
		}
	})

	t.Run("fail/jwt-declared-as-id-token", func(t *testing.T) {
		j := s.token("api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example", "requested_token_type", typeJWT)).str("access_token")
		wantError(t, s.post("token_endpoint", "api2", "api2-secret", url.Values{
			"grant_type": {tokenExchange}, "subject_token": {j}, "subject_token_type": {typeIDToken},
		}), 400, "invalid_request")
	})
	t.Run("fail/requested-type-not-in-policy", func(t *testing.T) {
		a2 := s.token("api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example")).str("access_token")
		wantError(t, s.post("token_endpoint", "api2", "api2-secret", exchangeForm(a2, "requested_token_type", typeRefreshToken)), 400, "invalid_request")
	})
	t.Run("fail/refresh-token-as-actor-token", func(t *testing.T) {
		own := s.token("api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example", "requested_token_type", typeRefreshToken)).str("access_token")
		wantError(t, s.post("token_endpoint", "api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example",
			"actor_token", own, "actor_token_type", typeRefreshToken)), 400, "invalid_request")
	})

	t.Run("ok/revoking-the-subject-revokes-exchanged-refresh-tokens", func(t *testing.T) {
		t1 := s.token("web-app", "web-secret", clientCredentials("payments:read ledger:read")).str("access_token")
		x := s.token("api1", "api1-secret", exchangeForm(t1, "audience", "https://api2.example"))
		fresh := x.str("refresh_token")
		rotated := s.token("api1", "api1-secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fresh}}).str("refresh_token")
		if r := s.post("revocation_endpoint", "web-app", "web-secret", url.Values{"token": {t1}}); r.Status != 200 {
			t.Fatalf("revocation: %d %s", r.Status, r.Raw)
		}
		wantError(t, s.post("token_endpoint", "api1", "api1-secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rotated}}), 400, "invalid_grant")
	})

	// Every issued token has its record, linked to its subject token.
	out, code := s.deputy("audit", "verify")
	if code != 0 {
		t.Fatalf("audit verify: %d %s", code, out)
	}
	tr, code := s.deputy("audit", "trace", claims(t, t0)["jti"].(string))
	if code != 0 || !strings.Contains(tr, "refresh token") || !strings.Contains(tr, "api1-to-api2") {
		t.Errorf("trace of the subject token (%d):\n%s", code, tr)
	}
}
