package e2e

import (
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRevocationRacesExchanges revokes a token while several clients keep exchanging
// it. Whatever the interleaving, every token that was issued is on record, and after
// the revocation none of them is active: those issued before it are revoked with
// their parent, and no exchange decided before it may commit after it.
func TestRevocationRacesExchanges(t *testing.T) {
	s := start(t, bankConfig)
	t0 := s.token("web-app", "web-secret", clientCredentials("")).str("access_token")

	var (
		mu     sync.Mutex
		issued []string
		wg     sync.WaitGroup
		stop   = make(chan struct{})
	)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := s.post("token_endpoint", "api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example"))
				switch {
				case r.Status == 200:
					mu.Lock()
					issued = append(issued, r.str("access_token"))
					mu.Unlock()
				case r.Status == 400 && r.str("error") == "invalid_request":
				default:
					t.Errorf("unexpected answer %d %s", r.Status, r.Raw)
					return
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	if r := s.post("revocation_endpoint", "web-app", "web-secret", url.Values{"token": {t0}}); r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Raw)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()

	if len(issued) == 0 {
		t.Fatal("no exchange succeeded before the revocation")
	}
	for _, tok := range issued {
		if in := s.post("introspection_endpoint", "api2", "api2-secret", url.Values{"token": {tok}}); in.Raw != `{"active":false}` {
			t.Fatalf("token %s still active after its parent was revoked: %s", claims(t, tok)["jti"], in.Raw)
		}
	}
	out, code := s.deputy("audit", "query", "--type", "token.exchanged", "--json")
	if code != 0 {
		t.Fatal(out)
	}
	for _, tok := range issued {
		if !strings.Contains(out, claims(t, tok)["jti"].(string)) {
			t.Fatalf("issued token %s has no audit record", claims(t, tok)["jti"])
		}
	}
	if got := strings.Count(out, "\n"); got != len(issued) {
		t.Errorf("%d exchange records for %d issued tokens", got, len(issued))
	}
	if out, code := s.deputy("audit", "verify"); code != 0 {
		t.Fatalf("verify: %s", out)
	}
	t.Logf("%d tokens issued before the revocation, all revoked", len(issued))
}
