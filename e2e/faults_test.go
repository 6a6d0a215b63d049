package e2e

import (
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPostgresHung: node A reaches PostgreSQL through a proxy that stops
// forwarding (connections stay open, nothing comes back: backends that hang); node
// B of the same cluster reaches it directly. While A's database hangs, A answers
// token requests promptly with 503 temporarily_unavailable and Retry-After instead
// of holding them, and its /readyz says 503; B goes on. When the database answers
// again, A recovers by itself, and the trail verifies.
func TestPostgresHung(t *testing.T) {
	dsn := newSchema(t, postgresDSN(t))
	proxy := startProxy(t, dsnTarget(t, dsn))
	nodes := startCluster(t, bankConfig, dsnAt(t, dsn, proxy.addr), dsn)
	a, b := nodes[0], nodes[1]
	a.token("web-app", "web-secret", clientCredentials(""))

	proxy.stall()
	// Longer than any bound deputy puts on a database wait: an answer within it
	// is deputy's, a timeout here is a node that hangs.
	short := &http.Client{Timeout: 20 * time.Second}
	tokenURL, form := a.endpoint("token_endpoint"), "application/x-www-form-urlencoded"
	for i := range 3 {
		began := time.Now()
		r, err := tryPost(short, tokenURL, basic("web-app", "web-secret"), form, clientCredentials("").Encode())
		t.Logf("token request %d while the database hangs: %d after %v", i, r.Status, time.Since(began).Round(time.Millisecond))
		switch {
		case err != nil:
			t.Fatalf("token request %d while the database hangs: %v (no answer)", i, err)
		case r.Status != 503 || r.str("error") != "temporarily_unavailable":
			t.Fatalf("token request %d while the database hangs: %d %s, want 503 temporarily_unavailable", i, r.Status, r.Raw)
		}
		if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra <= 0 {
			t.Errorf("503 without a Retry-After in seconds: %q", r.Header.Get("Retry-After"))
		}
		if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("503 headers: %v", r.Header)
		}
	}
	if _, ok := eventually(20*time.Second, 50*time.Millisecond, func() bool { return getStatus(short, a.url()+"/readyz") == 503 }); !ok {
		t.Errorf("/readyz of the node whose database hangs is not 503")
	}
	b.token("web-app", "web-secret", clientCredentials(""))

	proxy.resume()
	if _, ok := eventually(30*time.Second, 100*time.Millisecond, func() bool {
		r, err := tryPost(short, tokenURL, basic("web-app", "web-secret"), form, clientCredentials("").Encode())
		return err == nil && r.Status == 200
	}); !ok {
		t.Fatalf("node A issues no token 30s after its database answers again:\n%s", a.logs.String())
	}
	if _, ok := eventually(10*time.Second, 50*time.Millisecond, func() bool { return getStatus(short, a.url()+"/readyz") == 200 }); !ok {
		t.Fatalf("/readyz of node A not 200 after it issued tokens again")
	}
	if out, code := a.deputy("audit", "verify"); code != 0 {
		t.Errorf("audit verify after the hang: exit %d %s", code, out)
	}
}

// TestDiskFullNotReady: when the SQLite database cannot grow (a full disk:
// SQLite's max_page_count gives the same SQLITE_FULL on every write), token
// requests fail closed with 503 and /readyz says 503 too, so a load balancer
// stops sending traffic to a node that can only refuse it.
func TestDiskFullNotReady(t *testing.T) {
	skipOnPostgres(t, "fills a SQLite database")
	s := start(t, bankConfig)
	s.token("web-app", "web-secret", clientCredentials(""))
	s.stop()

	db, err := sql.Open("sqlite", filepath.Join(s.dir, "deputy.db"))
	if err != nil {
		t.Fatal(err)
	}
	var pages int
	if err := db.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// A few pages of room: the node starts and serves, then the disk is full.
	full := strings.Replace(bankConfig, `dsn: "%DIR%/deputy.db"`,
		fmt.Sprintf(`dsn: "%%DIR%%/deputy.db?_pragma=max_page_count(%d)"`, pages+4), 1)
	if full == bankConfig {
		t.Fatal("bankConfig's storage line changed; update this test")
	}
	s.writeConfig(full, strings.TrimPrefix(s.issuer, "http://"))
	s.run()

	var last reply
	for i := 0; ; i++ {
		last = s.post("token_endpoint", "web-app", "web-secret", clientCredentials(""))
		if last.Status != 200 {
			break
		}
		if i == 5000 {
			t.Fatalf("5000 tokens issued into a database of %d pages", pages+4)
		}
	}
	wantError(t, last, 503, "temporarily_unavailable")
	if ra, err := strconv.Atoi(last.Header.Get("Retry-After")); err != nil || ra <= 0 {
		t.Errorf("503 without a Retry-After in seconds: %q", last.Header.Get("Retry-After"))
	}
	if got := getStatus(httpClient, s.url()+"/readyz"); got != 503 {
		t.Fatalf("/readyz = %d while every token request fails for a full disk, want 503\n%s", got, s.logs.String())
	}
	if out, code := s.deputy("audit", "verify"); code != 0 {
		t.Errorf("audit verify after the disk filled: exit %d %s", code, out)
	}
}
