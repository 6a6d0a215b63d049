package exchange_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/testdeputy"
	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/exchange"
)

// TestExchangeDelegates: api1 trades the web app's token for one addressed to api2
// that still names the web app as subject and api1 as actor (design §1, RFC 8693 §4.1).
func TestExchangeDelegates(t *testing.T) {
	d := testdeputy.Start(t, nil)
	t0 := d.ClientCredentials("web-app", "payments:read ledger:read")
	e, c := newExchanger(t, d, "api1", nil)

	before := time.Now()
	tok, err := e.Exchange(context.Background(), t0, api2, "ledger:read")
	if err != nil {
		t.Fatal(err)
	}
	if tok.IssuedTokenType != string(oauth.TokenTypeAccessToken) || tok.TokenType != oauth.TokenTypeBearer || tok.Scope != "ledger:read" {
		t.Errorf("token %+v", tok)
	}
	if !tok.ExpiresAt.After(before) || tok.ExpiresAt.After(time.Now().Add(5*time.Minute)) {
		t.Errorf("ExpiresAt %v, want within the 5m access token lifetime", tok.ExpiresAt)
	}
	cl := claims(t, tok.AccessToken)
	if aud := audiences(cl); !slices.Equal(aud, []string{api2}) {
		t.Errorf("aud %v, want [%s]", aud, api2)
	}
	if cl["sub"] != "web-app" || cl["iss"] != d.URL {
		t.Errorf("sub %v iss %v", cl["sub"], cl["iss"])
	}
	act, _ := json.Marshal(cl["act"])
	if string(act) != `{"sub":"api1"}` {
		t.Errorf("act %s, want {\"sub\":\"api1\"}", act)
	}
	if _, ok := cl["may_act"]; ok {
		t.Error("may_act copied into the exchanged token")
	}
	if n := c.requests("/.well-known/oauth-authorization-server"); n != 1 {
		t.Errorf("%d discovery requests, want 1", n)
	}
	if _, err := e.Exchange(context.Background(), d.ClientCredentials("web-app", "ledger:read"), api2); err != nil {
		t.Fatal(err)
	}
	if n := c.requests("/.well-known/oauth-authorization-server"); n != 1 {
		t.Errorf("%d discovery requests after two exchanges, want 1 (the endpoint is remembered)", n)
	}
}

// TestExchangeCachesPerKey: a token is reused for the same subject token, audience
// and set of scopes, with no request to deputy; any other key asks deputy.
func TestExchangeCachesPerKey(t *testing.T) {
	d := testdeputy.Start(t, nil)
	t0 := d.ClientCredentials("web-app", "payments:read ledger:read")
	wide := d.ClientCredentials("web-app", "payments:read ledger:read fraud:check")
	other := d.ClientCredentials("web-app", "payments:read ledger:read")
	e, c := newExchanger(t, d, "api1", nil)

	got := map[string]string{} // step name → access token
	for _, step := range []struct {
		name     string
		subject  string
		audience string
		scopes   []string
		asks     bool   // a request to deputy is made
		sameAs   string // the step whose token comes back
	}{
		{name: "first", subject: t0, audience: api2, scopes: []string{"ledger:read"}, asks: true},
		{name: "same-key", subject: t0, audience: api2, scopes: []string{"ledger:read"}, sameAs: "first"},
		{name: "other-scopes/none", subject: t0, audience: api2, asks: true},
		{name: "other-scopes/none-again", subject: t0, audience: api2, sameAs: "other-scopes/none"},
		{name: "other-audience/none", subject: t0, audience: "", scopes: []string{"ledger:read"}, asks: true},
		{name: "other-subject", subject: other, audience: api2, scopes: []string{"ledger:read"}, asks: true},
		{name: "two-scopes", subject: wide, audience: api2, scopes: []string{"ledger:read", "fraud:check"}, asks: true},
		{name: "two-scopes/reordered-and-repeated", subject: wide, audience: api2, scopes: []string{"fraud:check", "ledger:read", "ledger:read"}, sameAs: "two-scopes"},
		{name: "two-scopes/one-string", subject: wide, audience: api2, scopes: []string{"fraud:check ledger:read"}, sameAs: "two-scopes"},
		{name: "first-again", subject: t0, audience: api2, scopes: []string{"ledger:read"}, sameAs: "first"},
	} {
		before := c.requests("/token")
		tok, err := e.Exchange(context.Background(), step.subject, step.audience, step.scopes...)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		got[step.name] = tok.AccessToken
		asked := c.requests("/token") - before
		switch {
		case step.asks && asked != 1:
			t.Errorf("%s: %d requests to deputy, want 1", step.name, asked)
		case !step.asks && asked != 0:
			t.Errorf("%s: %d requests to deputy, want 0 (cached)", step.name, asked)
		}
		if step.sameAs != "" && tok.AccessToken != got[step.sameAs] {
			t.Errorf("%s: a new token, want the one of %s", step.name, step.sameAs)
		}
		if step.asks {
			for name, at := range got {
				if name != step.name && at == tok.AccessToken {
					t.Errorf("%s: the token of %s", step.name, name)
				}
			}
		}
	}
	if n := exchange.CacheLen(e); n != 5 {
		t.Errorf("%d cached tokens, want 5", n)
	}
}

// TestExchangeRefreshBefore: a cached token is reused until RefreshBefore before it
// expires, then a new one is fetched; a token that is already that close to expiry
// is never reused.
func TestExchangeRefreshBefore(t *testing.T) {
	d := testdeputy.Start(t, nil)
	t0 := d.ClientCredentials("web-app", "payments:read ledger:read")

	t.Run("refreshed", func(t *testing.T) {
		clk := &clock{t: time.Now()}
		e, c := newExchanger(t, d, "api1", func(cfg *exchange.Config) { cfg.Now = clk.Now })
		first, err := e.Exchange(context.Background(), t0, api2, "ledger:read")
		if err != nil {
			t.Fatal(err)
		}
		refreshAt := first.ExpiresAt.Add(-exchange.DefaultRefreshBefore)
		for _, step := range []struct {
			name  string
			now   time.Time
			fresh bool
		}{
			{"just-before", refreshAt.Add(-time.Second), false},
			{"at-refresh-time", refreshAt, true},
		} {
			clk.Set(step.now)
			before := c.requests("/token")
			tok, err := e.Exchange(context.Background(), t0, api2, "ledger:read")
			if err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
			asked := c.requests("/token") - before
			if step.fresh && (asked != 1 || tok.AccessToken == first.AccessToken) {
				t.Errorf("%s: %d requests, same token %v; want a new token", step.name, asked, tok.AccessToken == first.AccessToken)
			}
			if !step.fresh && (asked != 0 || tok.AccessToken != first.AccessToken) {
				t.Errorf("%s: %d requests; want the cached token", step.name, asked)
			}
		}
	})

	t.Run("never-past-expiry", func(t *testing.T) {
		// RefreshBefore longer than the token lives: nothing is ever reused.
		e, c := newExchanger(t, d, "api1", func(cfg *exchange.Config) { cfg.RefreshBefore = time.Hour })
		for i := range 3 {
			if _, err := e.Exchange(context.Background(), t0, api2, "ledger:read"); err != nil {
				t.Fatal(err)
			}
			if n := c.requests("/token"); n != i+1 {
				t.Fatalf("call %d: %d requests, want %d", i+1, n, i+1)
			}
		}
		if n := exchange.CacheLen(e); n != 0 {
			t.Errorf("%d cached tokens, want 0", n)
		}
	})
}

// TestExchangeOneRequestPerKey: concurrent calls for one key share one request.
func TestExchangeOneRequestPerKey(t *testing.T) {
	d := testdeputy.Start(t, nil)
	t0 := d.ClientCredentials("web-app", "payments:read ledger:read")
	e, c := newExchanger(t, d, "api1", nil)
	// Hold the exchange until every caller has started, so that they overlap.
	gate := make(chan struct{})
	c.base = gated{gate: gate, path: "/token", base: http.DefaultTransport}

	const callers = 16
	var started, done sync.WaitGroup
	started.Add(callers)
	tokens := make([]string, callers)
	errs := make([]error, callers)
	for i := range callers {
		done.Add(1)
		go func() {
			defer done.Done()
			started.Done()
			tok, err := e.Exchange(context.Background(), t0, api2, "ledger:read")
			errs[i] = err
			if err == nil {
				tokens[i] = tok.AccessToken
			}
		}()
	}
	started.Wait()
	time.Sleep(5 * time.Millisecond) // lets the callers reach Exchange; not needed for correctness
	close(gate)
	done.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
		if tokens[i] != tokens[0] {
			t.Errorf("caller %d got another token", i)
		}
	}
	if n := c.requests("/token"); n != 1 {
		t.Errorf("%d requests to deputy for %d concurrent calls, want 1", n, callers)
	}
}

// gated holds requests to path until gate is closed; when arrived is not nil, it
// is sent a value (if there is room) as each such request arrives.
type gated struct {
	gate    <-chan struct{}
	arrived chan<- struct{}
	path    string
	base    http.RoundTripper
}

func (g gated) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == g.path {
		select {
		case g.arrived <- struct{}{}:
		default:
		}
		select {
		case <-g.gate:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return g.base.RoundTrip(r)
}

// TestExchangeErrors: deputy's refusals come back as *oauth.Error with its code and
// description (RFC 8693 §2.2.2), and are not cached.
func TestExchangeErrors(t *testing.T) {
	const strange = "s3cr:t+/ü %&=" // needs form-urlencoding (RFC 6749 §2.3.1)
	d := testdeputy.Start(t, func(cfg *config.Config) {
		for i := range cfg.Clients {
			if cfg.Clients[i].ID == "api2" {
				cfg.Clients[i].Secret = strange
			}
		}
	})
	t0 := d.ClientCredentials("web-app", "payments:read ledger:read")
	revoked := d.ClientCredentials("web-app", "payments:read ledger:read")
	revoke(t, d, "web-app", revoked)

	for _, tt := range []struct {
		name     string
		client   string
		secret   string
		subject  string
		audience string
		scopes   []string
		want     oauth.Code
	}{
		{name: "fail/audience-not-allowed", client: "api1", subject: t0, audience: api3, want: oauth.CodeInvalidTarget},
		{name: "fail/scope-beyond", client: "api1", subject: t0, audience: api2, scopes: []string{"ledger:write"}, want: oauth.CodeInvalidScope},
		{name: "fail/garbage-subject", client: "api1", subject: "not-a-token", audience: api2, want: oauth.CodeInvalidRequest},
		{name: "fail/revoked-subject", client: "api1", subject: revoked, audience: api2, want: oauth.CodeInvalidRequest},
		{name: "fail/subject-addressed-to-another", client: "api2", secret: strange, subject: t0, audience: api3, want: oauth.CodeInvalidRequest},
		{name: "fail/wrong-secret", client: "api1", secret: "wrong", subject: t0, audience: api2, want: oauth.CodeInvalidClient},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, c := newExchanger(t, d, tt.client, func(cfg *exchange.Config) {
				if tt.secret != "" {
					cfg.ClientSecret = tt.secret
				}
			})
			for attempt := 1; attempt <= 2; attempt++ {
				tok, err := e.Exchange(context.Background(), tt.subject, tt.audience, tt.scopes...)
				var oe *oauth.Error
				if !errors.As(err, &oe) {
					t.Fatalf("attempt %d: token %v, error %v (%T); want *oauth.Error", attempt, tok, err, err)
				}
				if oe.Code != tt.want || oe.Description == "" {
					t.Errorf("attempt %d: code %q description %q, want code %q with a description", attempt, oe.Code, oe.Description, tt.want)
				}
				if tok != nil {
					t.Errorf("attempt %d: a token with the error", attempt)
				}
				if n := c.requests("/token"); n != attempt {
					t.Errorf("attempt %d: %d requests to deputy, want %d (errors are not cached)", attempt, n, attempt)
				}
			}
		})
	}

	t.Run("form-urlencoded-secret", func(t *testing.T) {
		// The same client with its strange secret is authenticated: the failure
		// above is about the subject token, not the credentials.
		wide := d.ClientCredentials("web-app", "payments:read fraud:check")
		t1, err := mustExchanger(t, d, "api1").Exchange(context.Background(), wide, api2, "fraud:check")
		if err != nil {
			t.Fatal(err)
		}
		e, _ := newExchanger(t, d, "api2", func(cfg *exchange.Config) { cfg.ClientSecret = strange })
		if _, err := e.Exchange(context.Background(), t1.AccessToken, api3, "fraud:check"); err != nil {
			t.Fatalf("api2 with secret %q: %v", strange, err)
		}
	})
}

func mustExchanger(t *testing.T, d *testdeputy.Deputy, id string) *exchange.Exchanger {
	e, _ := newExchanger(t, d, id, nil)
	return e
}

// TestExchangeCallerCancels: a caller whose context ends stops waiting with its
// context's error; the shared exchange goes on for the others and fills the cache.
func TestExchangeCallerCancels(t *testing.T) {
	d := testdeputy.Start(t, nil)
	t0 := d.ClientCredentials("web-app", "payments:read ledger:read")
	e, c := newExchanger(t, d, "api1", nil)
	gate, arrived := make(chan struct{}), make(chan struct{}, 1)
	c.base = gated{gate: gate, arrived: arrived, path: "/token", base: http.DefaultTransport}

	// The first caller starts the exchange, then leaves while it is held.
	ctx, cancel := context.WithCancel(context.Background())
	leaving := make(chan error, 1)
	go func() {
		_, err := e.Exchange(ctx, t0, api2, "ledger:read")
		leaving <- err
	}()
	<-arrived
	staying := make(chan error, 1)
	go func() {
		_, err := e.Exchange(context.Background(), t0, api2, "ledger:read")
		staying <- err
	}()
	cancel()
	if err := <-leaving; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: %v, want context.Canceled", err)
	}
	close(gate)
	if err := <-staying; err != nil {
		t.Errorf("the other caller: %v", err)
	}
	if _, err := e.Exchange(context.Background(), t0, api2, "ledger:read"); err != nil {
		t.Fatal(err)
	}
	if n := c.requests("/token"); n != 1 {
		t.Errorf("%d requests to deputy, want 1", n)
	}

	if _, err := e.Exchange(ctx, t0, api2, "ledger:read"); !errors.Is(err, context.Canceled) {
		t.Errorf("call with a context already done: %v, want context.Canceled", err)
	}
}

// TestMaxEntriesAgainstDeputy: with MaxEntries 2, three keys leave two cached
// tokens, the newest among them.
func TestMaxEntriesAgainstDeputy(t *testing.T) {
	d := testdeputy.Start(t, nil)
	e, c := newExchanger(t, d, "api1", func(cfg *exchange.Config) { cfg.MaxEntries = 2 })
	var subjects []string
	for range 3 {
		subjects = append(subjects, d.ClientCredentials("web-app", "payments:read ledger:read"))
	}
	for i, s := range subjects {
		if _, err := e.Exchange(context.Background(), s, api2, "ledger:read"); err != nil {
			t.Fatal(err)
		}
		if n := exchange.CacheLen(e); n > 2 {
			t.Fatalf("after %d keys: %d cached tokens, want at most 2", i+1, n)
		}
	}
	if n := exchange.CacheLen(e); n != 2 {
		t.Errorf("%d cached tokens, want 2", n)
	}
	before := c.requests("/token")
	if _, err := e.Exchange(context.Background(), subjects[2], api2, "ledger:read"); err != nil {
		t.Fatal(err)
	}
	if n := c.requests("/token") - before; n != 0 {
		t.Errorf("the newest key asked deputy again (%d requests)", n)
	}
}

// TestNew: configuration checks, each naming the field.
func TestNew(t *testing.T) {
	ok := exchange.Config{Issuer: "https://deputy.example", ClientID: "api1", ClientSecret: "s"}
	for _, tt := range []struct {
		name string
		edit func(*exchange.Config)
		want string // "" = valid
	}{
		{"ok/issuer", func(*exchange.Config) {}, ""},
		{"ok/token-url", func(c *exchange.Config) { c.Issuer, c.TokenURL = "", "http://127.0.0.1:1/token" }, ""},
		{"fail/no-client-id", func(c *exchange.Config) { c.ClientID = "" }, "ClientID"},
		{"fail/no-secret", func(c *exchange.Config) { c.ClientSecret = "" }, "ClientSecret"},
		{"fail/no-issuer-nor-token-url", func(c *exchange.Config) { c.Issuer = "" }, "Issuer or TokenURL"},
		{"fail/relative-issuer", func(c *exchange.Config) { c.Issuer = "deputy.example" }, "Issuer must"},
		{"fail/ftp-token-url", func(c *exchange.Config) { c.TokenURL = "ftp://deputy.example/token" }, "TokenURL must"},
		{"fail/negative-refresh-before", func(c *exchange.Config) { c.RefreshBefore = -time.Second }, "RefreshBefore"},
		{"fail/negative-max-entries", func(c *exchange.Config) { c.MaxEntries = -1 }, "MaxEntries"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			e, err := exchange.New(cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("New: %v", err)
			case tt.want == "" && e == nil:
				t.Error("New returned nil")
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("New: %v, want an error naming %q", err, tt.want)
			}
		})
	}
}
