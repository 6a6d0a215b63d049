package exchange_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/deputy-auth/deputy/internal/testdeputy"
	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk"
	"github.com/deputy-auth/deputy/sdk/exchange"
)

// recorder stands for a downstream API on 127.0.0.1: it records the Authorization
// header of every request it receives.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	auth []string
}

func newRecorder(t *testing.T, h http.HandlerFunc) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.auth = append(rec.auth, r.Header.Get("Authorization"))
		rec.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		_, _ = io.WriteString(w, "ledger")
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (rec *recorder) received() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.auth)
}

// closeRecorder is a request body that records whether it was closed.
type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

// TestTransport: requests reach api2 with the token exchanged from the one in their
// context; the caller's request is left as it was.
func TestTransport(t *testing.T) {
	d := testdeputy.Start(t, nil)
	t0 := d.ClientCredentials("web-app", "payments:read ledger:read")
	e, c := newExchanger(t, d, "api1", nil)
	api := newRecorder(t, nil)
	client := e.Client(api2, "ledger:read")

	for _, tt := range []struct {
		name   string
		header http.Header
	}{
		{"no-authorization", http.Header{"X-Request-Id": {"r1"}}},
		{"authorization-replaced", http.Header{"X-Request-Id": {"r2"}, "Authorization": {"Bearer " + t0}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(sdk.ContextWithToken(context.Background(), t0), http.MethodGet, api.URL+"/ledger", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tt.header.Clone()
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != "ledger" {
				t.Errorf("answer %d %q", resp.StatusCode, body)
			}
			got := api.received()
			auth := got[len(got)-1]
			exchanged, ok := strings.CutPrefix(auth, "Bearer ")
			if !ok || exchanged == t0 {
				t.Fatalf("api2 received Authorization %q, want the exchanged token", auth)
			}
			cl := claims(t, exchanged)
			act, _ := json.Marshal(cl["act"])
			if !slices.Equal(audiences(cl), []string{api2}) || cl["sub"] != "web-app" || string(act) != `{"sub":"api1"}` {
				t.Errorf("api2 received aud %v sub %v act %s", audiences(cl), cl["sub"], act)
			}
			want, err := e.Exchange(context.Background(), t0, api2, "ledger:read")
			if err != nil || want.AccessToken != exchanged {
				t.Errorf("the transport's token is not Exchange's cached one (%v)", err)
			}
			if !equalHeaders(req.Header, tt.header) {
				t.Errorf("the caller's headers changed: %v, were %v", req.Header, tt.header)
			}
		})
	}
	if n := c.requests("/token"); n != 1 {
		t.Errorf("%d requests to deputy for two calls with one key, want 1", n)
	}
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestTransportRefuses: without a token in the context, or when the exchange fails,
// the request is not sent, the error says why, and the body is closed.
func TestTransportRefuses(t *testing.T) {
	d := testdeputy.Start(t, nil)
	e, c := newExchanger(t, d, "api1", nil)
	api := newRecorder(t, nil)

	for _, tt := range []struct {
		name  string
		ctx   context.Context
		check func(t *testing.T, err error)
		asks  int // requests to deputy's token endpoint
	}{
		{"fail/no-token-in-context", context.Background(), func(t *testing.T, err error) {
			if !errors.Is(err, exchange.ErrNoToken) || !strings.Contains(err.Error(), "no incoming token") {
				t.Errorf("error %v, want ErrNoToken", err)
			}
		}, 0},
		{"fail/empty-token-in-context", sdk.ContextWithToken(context.Background(), ""), func(t *testing.T, err error) {
			if !errors.Is(err, exchange.ErrNoToken) {
				t.Errorf("error %v, want ErrNoToken", err)
			}
		}, 0},
		{"fail/exchange-refused", sdk.ContextWithToken(context.Background(), "not-a-token"), func(t *testing.T, err error) {
			var oe *oauth.Error
			if !errors.As(err, &oe) || oe.Code != oauth.CodeInvalidRequest {
				t.Errorf("error %v, want invalid_request from deputy", err)
			}
		}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := c.requests("/token")
			body := &closeRecorder{Reader: strings.NewReader("payload")}
			req, err := http.NewRequestWithContext(tt.ctx, http.MethodPost, api.URL+"/ledger", body)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := e.Client(api2, "ledger:read").Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatal("the request was sent")
			}
			tt.check(t, err)
			if n := len(api.received()); n != 0 {
				t.Errorf("api2 was called %d times", n)
			}
			if !body.closed {
				t.Error("the request body was not closed")
			}
			if n := c.requests("/token") - before; n != tt.asks {
				t.Errorf("%d requests to deputy, want %d", n, tt.asks)
			}
		})
	}
}

// TestClientRedirects: Client follows redirects on api2's host, but does not carry
// the exchanged token to another host.
func TestClientRedirects(t *testing.T) {
	d := testdeputy.Start(t, nil)
	t0 := d.ClientCredentials("web-app", "payments:read ledger:read")
	e, _ := newExchanger(t, d, "api1", nil)
	elsewhere := newRecorder(t, nil)
	api := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, "/ledger", http.StatusFound)
		case "/away":
			http.Redirect(w, r, elsewhere.URL+"/ledger", http.StatusFound)
		default:
			_, _ = io.WriteString(w, "ledger")
		}
	})
	ctx := sdk.ContextWithToken(context.Background(), t0)
	client := e.Client(api2, "ledger:read")

	get := func(path string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, api.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get("/moved"); err != nil {
		t.Errorf("same-host redirect: %v", err)
	}
	if n := len(api.received()); n != 2 {
		t.Errorf("api2 received %d requests, want 2", n)
	}
	var ue *url.Error
	if err := get("/away"); !errors.As(err, &ue) || !strings.Contains(err.Error(), "redirect") {
		t.Errorf("cross-host redirect: %v, want a refusal", err)
	}
	if n := len(elsewhere.received()); n != 0 {
		t.Errorf("the other host received %d requests", n)
	}
}

// TestTransportBase: the base RoundTripper sends the clone.
func TestTransportBase(t *testing.T) {
	f := newFakeEndpoint(t, func(url.Values) (int, string, string) { return 200, "application/json", tokenJSON("exchanged", 60) })
	e, err := exchange.New(exchange.Config{TokenURL: f.URL, ClientID: "api1", ClientSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	var seen *http.Request
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = r
		return &http.Response{StatusCode: 204, Body: http.NoBody, Request: r}, nil
	})
	req, _ := http.NewRequestWithContext(sdk.ContextWithToken(context.Background(), "incoming"), http.MethodGet, "http://127.0.0.1:1/x", nil)
	resp, err := e.Transport(base, api2).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if seen == req || seen.Header.Get("Authorization") != "Bearer exchanged" || req.Header.Get("Authorization") != "" {
		t.Errorf("base saw the caller's request %v, or Authorization %q", seen == req, seen.Header.Get("Authorization"))
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestTransportRefusesNonBearer: a token that is not a bearer token is not sent as
// one.
func TestTransportRefusesNonBearer(t *testing.T) {
	f := newFakeEndpoint(t, func(url.Values) (int, string, string) {
		return 200, "application/json", `{"access_token":"x","issued_token_type":"urn:ietf:params:oauth:token-type:jwt","token_type":"N_A","expires_in":60,"scope":""}`
	})
	e, err := exchange.New(exchange.Config{TokenURL: f.URL, ClientID: "api1", ClientSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	called := false
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) { called = true; return nil, errors.New("sent") })
	req, _ := http.NewRequestWithContext(sdk.ContextWithToken(context.Background(), "incoming"), http.MethodGet, "http://127.0.0.1:1/x", nil)
	if _, err := e.Transport(base, api2).RoundTrip(req); err == nil || !strings.Contains(err.Error(), "N_A") || called {
		t.Errorf("error %v, sent %v; want a refusal naming the token_type", err, called)
	}
}
