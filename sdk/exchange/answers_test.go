package exchange_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/exchange"
)

// TestExchangeRequest: the request is RFC 8693 §2.1's, authenticated with
// client_secret_basic (RFC 6749 §2.3.1), with the scopes sorted and deduplicated.
func TestExchangeRequest(t *testing.T) {
	var got atomic.Pointer[http.Request]
	var form atomic.Pointer[url.Values]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		got.Store(r)
		form.Store(&r.PostForm)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(tokenJSON("at", 60)))
	}))
	defer srv.Close()
	e, err := exchange.New(exchange.Config{TokenURL: srv.URL + "/token", ClientID: "api 1", ClientSecret: "a:b+c"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Exchange(context.Background(), "subject", api2, "b", "a b", "a"); err != nil {
		t.Fatal(err)
	}
	r, f := got.Load(), *form.Load()
	want := url.Values{
		"grant_type":         {oauth.GrantTokenExchange},
		"subject_token":      {"subject"},
		"subject_token_type": {string(oauth.TokenTypeAccessToken)},
		"audience":           {api2},
		"scope":              {"a b"},
	}
	if f.Encode() != want.Encode() {
		t.Errorf("form %v, want %v", f, want)
	}
	if r.Method != http.MethodPost || r.URL.Path != "/token" {
		t.Errorf("%s %s", r.Method, r.URL.Path)
	}
	id, secret, ok := r.BasicAuth()
	if !ok || id != "api+1" || secret != "a%3Ab%2Bc" {
		t.Errorf("basic credentials %q:%q, want each form-urlencoded", id, secret)
	}
}

// TestExchangeOtherAnswers: answers that are not OAuth JSON, and transport
// failures, are errors other than *oauth.Error that wrap their cause; they are not
// cached.
func TestExchangeOtherAnswers(t *testing.T) {
	var syntax *json.SyntaxError
	for _, tt := range []struct {
		name   string
		status int
		ct     string
		body   string
		check  func(error) bool
		oauth  oauth.Code // "" = not an *oauth.Error
	}{
		{name: "fail/html-502", status: 502, ct: "text/html", body: "<html>bad gateway</html>", check: func(err error) bool { return errors.As(err, &syntax) }},
		{name: "fail/200-not-json", status: 200, ct: "text/plain", body: "ok", check: func(err error) bool { return errors.As(err, &syntax) }},
		{name: "fail/400-json-without-error", status: 400, ct: "application/json", body: `{"message":"no"}`},
		{name: "fail/200-without-access-token", status: 200, ct: "application/json", body: `{"token_type":"Bearer","expires_in":60}`},
		{name: "fail/200-without-token-type", status: 200, ct: "application/json", body: `{"access_token":"x","expires_in":60}`},
		{name: "fail/503-oauth-json", status: 503, ct: "application/json", body: `{"error":"temporarily_unavailable","error_description":"storage down"}`, oauth: oauth.CodeTemporarilyUnavail},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeEndpoint(t, func(url.Values) (int, string, string) { return tt.status, tt.ct, tt.body })
			e, err := exchange.New(exchange.Config{TokenURL: f.URL + "/token", ClientID: "api1", ClientSecret: "s"})
			if err != nil {
				t.Fatal(err)
			}
			for attempt := int64(1); attempt <= 2; attempt++ {
				tok, err := e.Exchange(context.Background(), "subject", api2)
				if err == nil || tok != nil {
					t.Fatalf("token %v, error %v; want an error", tok, err)
				}
				var oe *oauth.Error
				if isOAuth := errors.As(err, &oe); isOAuth != (tt.oauth != "") || (isOAuth && (oe.Code != tt.oauth || oe.Description != "storage down")) {
					t.Errorf("error %v (%T), want oauth code %q", err, err, tt.oauth)
				}
				if tt.check != nil && !tt.check(err) {
					t.Errorf("error %v does not wrap its cause", err)
				}
				if n := f.n.Load(); n != attempt {
					t.Errorf("%d requests after attempt %d (errors are not cached)", n, attempt)
				}
			}
		})
	}

	t.Run("fail/transport", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		tokenURL := srv.URL + "/token"
		srv.Close()
		e, err := exchange.New(exchange.Config{TokenURL: tokenURL, ClientID: "api1", ClientSecret: "s"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.Exchange(context.Background(), "subject", api2)
		var ue *url.Error
		var oe *oauth.Error
		if !errors.As(err, &ue) || errors.As(err, &oe) {
			t.Errorf("error %v (%T), want one wrapping *url.Error", err, err)
		}
	})

	t.Run("fail/empty-subject", func(t *testing.T) {
		f := newFakeEndpoint(t, func(url.Values) (int, string, string) { return 200, "application/json", tokenJSON("at", 60) })
		e, err := exchange.New(exchange.Config{TokenURL: f.URL, ClientID: "api1", ClientSecret: "s"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Exchange(context.Background(), "", api2); err == nil || f.n.Load() != 0 {
			t.Errorf("error %v after %d requests; want an error and no request", err, f.n.Load())
		}
	})
}

// TestExchangeDiscovery: the token endpoint comes from the issuer's metadata
// (RFC 8414), which must name the same issuer; a failed discovery is tried again.
func TestExchangeDiscovery(t *testing.T) {
	tokens := newFakeEndpoint(t, func(url.Values) (int, string, string) { return 200, "application/json", tokenJSON("at", 60) })
	var answers atomic.Int64
	var issuer string
	meta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/oauth-authorization-server" {
			http.NotFound(w, r)
			return
		}
		switch answers.Add(1) {
		case 1:
			http.Error(w, "starting", http.StatusServiceUnavailable)
		case 2:
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": "https://other.example", "token_endpoint": tokens.URL + "/token"})
		default:
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "token_endpoint": tokens.URL + "/token"})
		}
	}))
	defer meta.Close()
	issuer = meta.URL

	e, err := exchange.New(exchange.Config{Issuer: issuer, ClientID: "api1", ClientSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name string
		want string // part of the error; "" = success
	}{
		{"fail/metadata-unavailable", "503"},
		{"fail/issuer-mismatch", "https://other.example"},
		{"ok", ""},
		{"ok/remembered", ""},
	} {
		_, err := e.Exchange(context.Background(), "subject", api2)
		switch {
		case step.want == "" && err != nil:
			t.Errorf("%s: %v", step.name, err)
		case step.want != "" && (err == nil || !strings.Contains(err.Error(), step.want)):
			t.Errorf("%s: %v, want an error mentioning %q", step.name, err, step.want)
		}
	}
	if n := answers.Load(); n != 3 {
		t.Errorf("%d metadata requests, want 3 (the endpoint is remembered once found)", n)
	}
	if n := tokens.n.Load(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
}

// TestEvictionOrder: when the cache is full, stale entries go first, then those
// closest to expiry.
func TestEvictionOrder(t *testing.T) {
	// Each audience's token lives as many seconds as its path says; RefreshBefore is
	// 10s, so each is due for refresh 10s earlier.
	ttl := map[string]int{"https://a.example/100": 100, "https://b.example/300": 300, "https://c.example/200": 200, "https://d.example/400": 400}
	f := newFakeEndpoint(t, func(form url.Values) (int, string, string) {
		return 200, "application/json", tokenJSON("at-"+form.Get("audience"), ttl[form.Get("audience")])
	})
	clk := &clock{t: time.Unix(1_000_000, 0)}
	e, err := exchange.New(exchange.Config{TokenURL: f.URL, ClientID: "api1", ClientSecret: "s", MaxEntries: 2, RefreshBefore: 10 * time.Second, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name     string
		advance  time.Duration
		audience string
		asks     bool
		cached   int // entries after the step
	}{
		{"fill/a", 0, "https://a.example/100", true, 1},     // refresh at 90s
		{"fill/b", 0, "https://b.example/300", true, 2},     // refresh at 290s
		{"c-evicts-a", 0, "https://c.example/200", true, 2}, // refresh at 190s
		{"b-kept", 0, "https://b.example/300", false, 2},
		{"c-kept", 0, "https://c.example/200", false, 2},
		{"a-evicts-c", 0, "https://a.example/100", true, 2}, // c (190s) is closer than b (290s)
		{"b-still-kept", 0, "https://b.example/300", false, 2},
		{"c-evicts-a-again", 0, "https://c.example/200", true, 2},
		// At 300s, b and c are both stale: adding d drops both.
		{"d-drops-all-stale", 300 * time.Second, "https://d.example/400", true, 1},
		{"b-stale", 0, "https://b.example/300", true, 2},
		{"d-kept", 0, "https://d.example/400", false, 2},
	} {
		clk.Set(clk.Now().Add(step.advance))
		before := f.n.Load()
		if _, err := e.Exchange(context.Background(), "subject", step.audience); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		want := int64(0)
		if step.asks {
			want = 1
		}
		if asked := f.n.Load() - before; asked != want {
			t.Errorf("%s: %d requests to the token endpoint, want %d", step.name, asked, want)
		}
		if n := exchange.CacheLen(e); n != step.cached {
			t.Errorf("%s: %d cached tokens, want %d", step.name, n, step.cached)
		}
	}
}
