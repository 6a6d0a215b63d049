package exchange_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/testdeputy"
	"github.com/deputy-auth/deputy/sdk/exchange"
)

const (
	api1 = "https://api1.example"
	api2 = "https://api2.example"
	api3 = "https://api3.example"
)

// counting is a RoundTripper that counts the requests it passes on, per URL path.
type counting struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[r.URL.Path]++
	c.mu.Unlock()
	return c.base.RoundTrip(r)
}

// requests is the number of requests to path.
func (c *counting) requests(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[path]
}

// clock is a settable Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// newExchanger returns an Exchanger of client id (secret id+"-secret") on deputy d,
// discovering its token endpoint, and the counter of its requests to d; edit may
// change the configuration.
func newExchanger(t *testing.T, d *testdeputy.Deputy, id string, edit func(*exchange.Config)) (*exchange.Exchanger, *counting) {
	t.Helper()
	c := &counting{base: http.DefaultTransport}
	cfg := exchange.Config{
		Issuer:       d.URL,
		ClientID:     id,
		ClientSecret: id + "-secret",
		HTTPClient:   &http.Client{Transport: c, Timeout: 10 * time.Second},
	}
	if edit != nil {
		edit(&cfg)
	}
	e, err := exchange.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e, c
}

// claims decodes the payload of a JWT without verifying it.
func claims(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// audiences reads an aud claim, a string or an array of strings.
func audiences(c map[string]any) []string {
	switch v := c["aud"].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, a := range v {
			s, _ := a.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

// revoke revokes token at deputy as client id (RFC 7009).
func revoke(t *testing.T, d *testdeputy.Deputy, id, token string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, d.URL+"/revoke", strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, id+"-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("revoke: %d %s", resp.StatusCode, b)
	}
}

// fakeEndpoint is a token endpoint on 127.0.0.1 that answers with answer, for the
// answers a real deputy does not give; it counts the requests.
type fakeEndpoint struct {
	*httptest.Server
	n atomic.Int64
}

func newFakeEndpoint(t testing.TB, answer func(form url.Values) (status int, contentType, body string)) *fakeEndpoint {
	t.Helper()
	f := &fakeEndpoint{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.n.Add(1)
		if err := r.ParseForm(); err != nil {
			t.Errorf("fake endpoint: %v", err)
		}
		status, ct, body := answer(r.PostForm)
		if ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(f.Close)
	return f
}

// tokenJSON is a successful token response with access token at, living ttl seconds.
func tokenJSON(at string, ttl int) string {
	b, _ := json.Marshal(map[string]any{
		"access_token": at, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
		"token_type": "Bearer", "expires_in": ttl, "scope": "",
	})
	return string(b)
}
