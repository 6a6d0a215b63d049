package httpapi

import (
	"encoding/json"
	"net/http"
	"sync/atomic"

	"github.com/deputy-auth/deputy/oauth"
)

// retryAfterShed is the Retry-After (seconds) of a request refused because the
// node is at limits.max_in_flight: by then the requests ahead of it are answered.
const retryAfterShed = "1"

// shedder caps the requests served at once (limits.max_in_flight). A request
// beyond the cap is refused at once, before its body is read or parsed, so the
// requests admitted keep their latency instead of every request slowing down
// (README, Operating deputy › Limits).
type shedder struct {
	max      int64 // 0: no cap
	inFlight atomic.Int64
}

// exempt reports the paths never shed: a load balancer's and a scraper's view of
// an overloaded node must stay true.
func exempt(path string) bool {
	return path == PathHealth || path == PathReady || path == PathMetrics
}

// admit counts r in; it reports false (and answers r) when the node is full.
// The caller calls done once the request is answered, when admit returned true.
func (sh *shedder) admit(w http.ResponseWriter, r *http.Request) bool {
	if sh.max <= 0 || exempt(r.URL.Path) {
		return true
	}
	if sh.inFlight.Add(1) > sh.max {
		sh.inFlight.Add(-1)
		writeRefusal(w, r, http.StatusServiceUnavailable, retryAfterShed,
			oauth.TemporarilyUnavailable("the server is busy; retry later", nil), true)
		return false
	}
	return true
}

func (sh *shedder) done(r *http.Request) {
	if sh.max > 0 && !exempt(r.URL.Path) {
		sh.inFlight.Add(-1)
	}
}

// writeRefusal answers a request refused by limits (shed or rate limited) with
// status, Retry-After and an RFC 6749 §5.2-shaped JSON error. unread: the body
// was not read (refused before parsing), so the connection is closed rather than
// kept for a next request behind an unread body.
func writeRefusal(w http.ResponseWriter, r *http.Request, status int, retryAfter string, oe *oauth.Error, unread bool) {
	accessOf(r).deny(oe.Code)
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Type", "application/json")
	h.Set("Retry-After", retryAfter)
	if unread {
		h.Set("Connection", "close")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(oe)
}
