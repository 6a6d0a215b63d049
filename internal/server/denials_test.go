package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/store/sqlstore"
)

// storedBytes is the text an event stores: every field but the fixed-width ones.
func storedBytes(e store.AuditEvent) int {
	n := len(e.ID) + len(e.Type) + len(e.ClientID) + len(e.Subject) + len(e.SubjectIssuer) + len(e.ParentJTI) +
		len(e.TokenJTI) + len(e.Decision) + len(e.Reason) + len(e.Rule) + len(e.RequestID) + len(e.RemoteAddr) +
		len(e.Detail) + len(e.PrevHash) + len(e.Hash)
	for _, l := range [][]string{e.Actors, e.Audiences, e.Scopes} {
		for _, s := range l {
			n += len(s)
		}
	}
	return n
}

// TestUnauthenticatedDenialsAreBounded: requests without valid credentials claiming
// a 60 KB client id once stored one audit record each, of that size and more; a
// loop of them grew the database by hundreds of megabytes. Now each field is
// bounded and such denials are aggregated per address and claimed client: the
// first of a window is recorded, the rest summed up in one event.
func TestUnauthenticatedDenialsAreBounded(t *testing.T) {
	for _, tc := range []struct {
		name     string
		requests int
		clientID func(i int) string // the client id request i claims
		remote   func(i int) string
		// bounds on what the whole loop may add to the trail
		maxEvents, maxBytes int
	}{
		{
			name: "ok/one-client-id-one-address", requests: 10_000,
			clientID: func(int) string { return strings.Repeat("x", 60<<10) },
			remote:   func(int) string { return "192.0.2.1:1234" },
			// the first and a summary, and the one request over HTTP, from another address
			maxEvents: 3,
			maxBytes:  3 * 4 << 10,
		},
		{
			name: "ok/a-new-client-id-each-time", requests: 2_000,
			clientID: func(i int) string {
				var b [8]byte
				_, _ = rand.Read(b[:])
				return hex.EncodeToString(b[:]) + strings.Repeat("y", 60<<10)
			},
			remote: func(i int) string { return []string{"192.0.2.1:1", "192.0.2.2:2"}[i%2] },
			// per address: 16 client ids with windows of their own (one denial each)
			// and one window for the others (a first denial and a summary); and the
			// one request over HTTP
			maxEvents: 2*(16+2) + 1,
			maxBytes:  (2*(16+2) + 1) * 4 << 10,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := config.Dev(dir)
			// One instant for every request: what is asserted is how the denials of
			// one window are stored, however long the loop takes (-race).
			at := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
			s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)),
				server.WithClock(func() time.Time { return at }))
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(s.Handler)
			defer srv.Close()
			for i := range tc.requests {
				form := url.Values{"grant_type": {"client_credentials"}, "client_id": {tc.clientID(i)}, "client_secret": {"guess"}}
				r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(form.Encode()))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				r.RemoteAddr = tc.remote(i)
				w := httptest.NewRecorder()
				s.Handler.ServeHTTP(w, r)
				if w.Code != http.StatusUnauthorized {
					t.Fatalf("request %d: %d %s", i, w.Code, w.Body)
				}
			}
			// One request over the wire too, as a client sends it.
			resp, err := http.PostForm(srv.URL+"/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {tc.clientID(0)}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("over HTTP: %d", resp.StatusCode)
			}
			srv.Close()
			s.Close() // records the summaries of the windows still open

			st, err := sqlstore.Open(context.Background(), config.DriverSQLite, cfg.Storage.DSN)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			events, err := st.Query(context.Background(), store.AuditFilter{})
			if err != nil {
				t.Fatal(err)
			}
			total, counted := 0, 0
			for _, e := range events {
				total += storedBytes(e)
				if e.Type != store.EventDenied || !strings.HasPrefix(e.Reason, "invalid_client") {
					t.Errorf("event %s %q: want only invalid_client denials", e.Type, e.Reason)
				}
				if len(e.ClientID) > audit.MaxClientIDBytes {
					t.Errorf("client id of %d bytes stored", len(e.ClientID))
				}
				if strings.Contains(e.Reason, "denied unauthenticated requests") {
					var n int
					if _, err := fmt.Sscanf(e.Reason, "invalid_client: %d denied", &n); err != nil {
						t.Errorf("summary %q: %v", e.Reason, err)
					}
					counted += n
				} else {
					counted++ // recorded on its own ...
				}
			}
			// ... and counted again in its window's summary, if it has one: every
			// request is accounted for at least once.
			if counted < tc.requests+1 {
				t.Errorf("the trail accounts for %d requests, want at least %d", counted, tc.requests+1)
			}
			t.Logf("%d requests: %d events, %d bytes", tc.requests+1, len(events), total)
			if len(events) > tc.maxEvents || total > tc.maxBytes {
				t.Errorf("%d requests stored %d events, %d bytes; want at most %d events, %d bytes",
					tc.requests+1, len(events), total, tc.maxEvents, tc.maxBytes)
			}
			rep, err := audit.Verify(context.Background(), st)
			if err != nil || rep.FirstBad != nil {
				t.Errorf("chain: %+v, %v", rep, err)
			}
		})
	}
}
