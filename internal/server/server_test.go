package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/oauth"
)

// node starts an in-process deputy on the development configuration with its
// database in a temporary directory.
func node(tb testing.TB) *server.Server {
	tb.Helper()
	cfg := config.Dev(tb.TempDir())
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func post(h http.Handler, id, secret string, form url.Values) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(id+":"+secret)))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func accessToken(tb testing.TB, w *httptest.ResponseRecorder) string {
	tb.Helper()
	if w.Code != 200 {
		tb.Fatalf("%d %s", w.Code, w.Body.String())
	}
	var resp oauth.TokenResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		tb.Fatal(err)
	}
	return resp.AccessToken
}

func exchangeForm(subject, audience string) url.Values {
	return url.Values{
		"grant_type":         {oauth.GrantTokenExchange},
		"subject_token":      {subject},
		"subject_token_type": {string(oauth.TokenTypeAccessToken)},
		"audience":           {audience},
	}
}

func TestNodeExchanges(t *testing.T) {
	s := node(t)
	t0 := accessToken(t, post(s.Handler, "web-app", "web-app-secret", url.Values{"grant_type": {"client_credentials"}}))
	t1 := accessToken(t, post(s.Handler, "api1", "api1-secret", exchangeForm(t0, "https://api2.example")))
	w := post(s.Handler, "api2", "api2-secret", exchangeForm(t1, "https://api3.example"))
	accessToken(t, w)
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q", got)
	}
}

// BenchmarkExchange is one token exchange through the HTTP handler: parse, client
// authentication, subject token verification, policy decision, signing, and the
// durable audit append (SQLite, synchronous=FULL). Run with -cpu to see the group
// commit at work: go test -run - -bench Exchange -cpu 1,2 ./internal/server
func BenchmarkExchange(b *testing.B) {
	s := node(b)
	t0 := accessToken(b, post(s.Handler, "web-app", "web-app-secret", url.Values{"grant_type": {"client_credentials"}}))
	form := exchangeForm(t0, "https://api2.example")
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if w := post(s.Handler, "api1", "api1-secret", form); w.Code != 200 {
				b.Fatalf("%d %s", w.Code, w.Body.String())
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if w := post(s.Handler, "api1", "api1-secret", form); w.Code != 200 {
					b.Errorf("%d %s", w.Code, w.Body.String())
					return
				}
			}
		})
	})
}

// BenchmarkClientCredentials is one client_credentials grant through the handler.
func BenchmarkClientCredentials(b *testing.B) {
	s := node(b)
	form := url.Values{"grant_type": {"client_credentials"}}
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if w := post(s.Handler, "api1", "api1-secret", form); w.Code != 200 {
				b.Errorf("%d %s", w.Code, w.Body.String())
				return
			}
		}
	})
}

var _ = os.Getenv
var _ = filepath.Join
