package e2e

import (
	"net/url"
	"strings"
	"testing"
)

// TestThrottledSignInsAggregated: once an account is locked, every further attempt
// is refused before any password is hashed — free for its sender — and each was
// recorded as a denial of its own. Such attempts are now recorded in aggregate:
// the first at once, the rest summed up when their minute is over.
func TestThrottledSignInsAggregated(t *testing.T) {
	s := startSignin(t)
	b := newBrowser(t, "https://portal.example/cb")
	authURL := s.endpointOIDC("authorization_endpoint") + "?" + url.Values{"response_type": {"code"}, "client_id": {"portal"},
		"redirect_uri": {"https://portal.example/cb"}, "scope": {"openid"}, "state": {"s"}}.Encode()
	p := b.get(authURL)
	const attempts = 200
	throttled := 0
	for range attempts {
		p = b.submit(s.issuer, p, url.Values{"username": {"alice"}, "password": {"wrong"}})
		switch p.status {
		case 401:
		case 429:
			throttled++
		default:
			t.Fatalf("attempt: %d", p.status)
		}
	}
	if throttled < attempts/2 {
		t.Fatalf("only %d of %d attempts throttled", throttled, attempts)
	}
	out, _ := s.deputy("audit", "query", "--type", "request.denied", "--subject", "alice")
	// Each lock that ends lets one more attempt through (recorded on its own); with
	// locks doubling from 1 s, a run of minutes sees a handful.
	if n := strings.Count(out, "sign-in failed"); n > (attempts-throttled)+1+10 || !strings.Contains(out, "too many failed sign-ins") {
		t.Errorf("%d throttled attempts of %d stored %d denials:\n%s", throttled, attempts, n, out)
	}
}
