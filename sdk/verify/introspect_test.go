package verify

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/internal/testdeputy"
)

// revoke revokes raw at deputy as web-app (RFC 7009).
func revoke(t *testing.T, d *testdeputy.Deputy, raw string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, d.URL+"/revoke", strings.NewReader(url.Values{"token": {raw}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("web-app", "web-app-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: HTTP %d", resp.StatusCode)
	}
}

// TestRevocation: a revoked token still passes the JWT checks alone (they cannot
// know), but introspection mode refuses it at once.
func TestRevocation(t *testing.T) {
	d := testdeputy.Start(t, nil)
	raw := d.ClientCredentials("web-app", "payments:read")
	jwtOnly, _, _ := newVerifier(t, d, api1, nil)
	introspecting, tr, _ := newVerifier(t, d, api1, func(c *Config) {
		c.Introspect, c.ClientID, c.ClientSecret = true, "api1", "api1-secret"
	})
	ctx := context.Background()

	for _, v := range []*Verifier{jwtOnly, introspecting} {
		if _, err := v.Verify(ctx, raw); err != nil {
			t.Fatalf("before revocation: %v", err)
		}
	}
	if n := tr.count("/introspect"); n != 1 {
		t.Fatalf("%d introspection requests, want 1", n)
	}

	revoke(t, d, raw)

	if p, err := jwtOnly.Verify(ctx, raw); err != nil || p.Subject != "web-app" {
		t.Errorf("JWT mode after revocation: %v, %v; want the token accepted", p, err)
	}
	p, err := introspecting.Verify(ctx, raw)
	if p != nil || !errors.Is(err, ErrInvalidToken) || !strings.Contains(description(err), "revoked or inactive") {
		t.Errorf("introspection mode after revocation: %v, %v; want ErrInvalidToken, revoked or inactive", p, err)
	}
	if n := tr.count("/introspect"); n != 2 {
		t.Errorf("%d introspection requests, want 2", n)
	}
}

// TestIntrospectionFailures: introspection mode never passes a token it could not
// check: an unreachable endpoint or refused credentials are ErrUnavailable, a
// client deputy will not answer about sees the token inactive, and the JWT checks
// run before any request.
func TestIntrospectionFailures(t *testing.T) {
	d := testdeputy.Start(t, nil)
	raw := d.ClientCredentials("web-app", "payments:read")
	tampered := raw[:len(raw)-4] + "AAAA"
	if tampered == raw {
		tampered = raw[:len(raw)-4] + "BBBB"
	}

	for _, tt := range []struct {
		name          string
		token         string
		edit          func(*Config)
		want          error
		desc          string
		introspection int // requests to deputy's introspection endpoint
	}{
		{name: "fail/endpoint-unreachable", token: raw, want: ErrUnavailable, desc: "cannot be used",
			edit: func(c *Config) { c.IntrospectionURL = closedURL(t) + "/unreachable" }},
		{name: "fail/wrong-client-secret", token: raw, want: ErrUnavailable, desc: "cannot be used", introspection: 1,
			edit: func(c *Config) { c.ClientSecret = "wrong" }},
		{name: "fail/client-not-audience", token: raw, want: ErrInvalidToken, desc: "revoked or inactive", introspection: 1,
			edit: func(c *Config) { c.ClientID, c.ClientSecret = "api3", "api3-secret" }},
		{name: "fail/jwt-checks-first", token: tampered, want: ErrInvalidToken, desc: "signature is invalid"},
		{name: "fail/answer-without-active", token: raw, want: ErrUnavailable, desc: "cannot be used", introspection: 1,
			edit: func(c *Config) { c.IntrospectionURL = answering(t, `{}`) }},
		{name: "fail/active-null", token: raw, want: ErrUnavailable, desc: "cannot be used", introspection: 1,
			edit: func(c *Config) { c.IntrospectionURL = answering(t, `{"active":null}`) }},
		{name: "fail/active-not-boolean", token: raw, want: ErrUnavailable, desc: "cannot be used", introspection: 1,
			edit: func(c *Config) { c.IntrospectionURL = answering(t, `{"active":"true"}`) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, tr, _ := newVerifier(t, d, api1, func(c *Config) {
				c.Introspect, c.ClientID, c.ClientSecret = true, "api1", "api1-secret"
				if tt.edit != nil {
					tt.edit(c)
				}
			})
			p, err := v.Verify(context.Background(), tt.token)
			if p != nil || !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, %v; want %v", p, err, tt.want)
			}
			if !strings.Contains(description(err), tt.desc) {
				t.Errorf("description %q, want %q", description(err), tt.desc)
			}
			if n := tr.count("/introspect"); n != tt.introspection {
				t.Errorf("%d introspection requests to deputy, want %d", n, tt.introspection)
			}
		})
	}
}

// answering is an introspection endpoint that answers body to every request.
func answering(t *testing.T, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/introspect"
}
