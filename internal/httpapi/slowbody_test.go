package httpapi_test

import (
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/oauth"
)

// slowBody yields its text only after a delay, as a client on a slow link does.
type slowBody struct {
	delay time.Duration
	r     io.Reader
	slept bool
}

func (b *slowBody) Read(p []byte) (int, error) {
	if !b.slept {
		time.Sleep(b.delay)
		b.slept = true
	}
	return b.r.Read(p)
}

// TestSlowBodyIsNotADatabaseStall: storage.timeout bounds the waits for the
// database, not how long a client takes to send its body (http.read_timeout
// does): a token request whose body arrives after storage.timeout is answered.
func TestSlowBodyIsNotADatabaseStall(t *testing.T) {
	cfg := config.Dev(t.TempDir())
	cfg.Storage.Timeout = config.Duration(100 * time.Millisecond)
	s, err := server.New(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	body := &slowBody{delay: 400 * time.Millisecond, r: strings.NewReader("grant_type=" + oauth.GrantClientCredentials)}
	r := httptest.NewRequest(http.MethodPost, "/token", body)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("web-app:web-app-secret")))
	w := httptest.NewRecorder()
	s.Handler.ServeHTTP(w, r)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "access_token") {
		t.Fatalf("slow body: %d %s", w.Code, w.Body)
	}
}
