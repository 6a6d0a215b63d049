package grant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// Denials of requests whose client did not authenticate — an unknown client, a
// wrong secret, a malformed Authorization header, a malformed body, a browser's
// refused authorization request — cost their sender nothing, so they are recorded
// in aggregate, per remote address, claimed client id and error code, per
// DenialWindow:
//
//   - the first denial of a window is recorded at once, as every denial is, with
//     its reason: an operator sees an attack start;
//   - the next ones in the window are only counted;
//   - when the window is over, one more request.denied event sums it up, if there
//     was more than the first: "invalid_client: 10000 denied unauthenticated
//     requests from 192.0.2.1 for client "x" between t1 and t2", with the count per
//     error code in its Detail ({"aggregated": {…}}).
//
// A window is over at the first denial of its key after it ended, at the
// Dispatcher's next sweep (FlushDenials, which the server runs every minute) or
// when the server stops (FlushDenials with a zero time). Summaries still in memory
// when the process is killed are lost; the first denial of each window is not.
//
// The keys are bounded: an address gets its own windows for at most
// maxClaimedPerAddress claimed client ids and error codes at a time (more share one
// "any other client" window of that address), and at most maxDenialKeys windows are open at
// once (more share one "any address" window). Whatever an attacker sends, a
// window's worth of such denials stores at most about 2 × maxDenialKeys events,
// each within audit.Bound.
const (
	DenialWindow         = time.Minute
	maxClaimedPerAddress = 16
	maxDenialKeys        = 4096
)

// denialKey names a window: an address, a claimed client id (cut to
// audit.MaxClientIDBytes, as it is stored) and an error code, or the overflow
// windows (any code).
type denialKey struct {
	remote, client string
	code           oauth.Code
	anyClient      bool // every other client id and code claimed from remote
	anyRemote      bool // every other address (and client id)
}

type denialWindow struct {
	first, last time.Time
	count       int
	codes       map[oauth.Code]int
	firstEvent  string // id of the event that recorded the first denial
}

type denials struct {
	mu        sync.Mutex
	open      map[denialKey]*denialWindow
	perRemote map[string]int // open windows with anyClient false, per address
	swept     time.Time
}

type denialSummary struct {
	key denialKey
	w   denialWindow
}

// note counts one denial at now and reports whether it is the first of its window
// (to be recorded at once), with the windows that are over by now.
func (ds *denials) note(remote, clientID string, code oauth.Code, now time.Time) (denialKey, bool, []denialSummary) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.open == nil {
		ds.open, ds.perRemote = map[denialKey]*denialWindow{}, map[string]int{}
	}
	var over []denialSummary
	if now.Sub(ds.swept) >= DenialWindow {
		over = ds.sweep(now)
		ds.swept = now
	}
	key := denialKey{remote: remote, client: store.Truncate(clientID, audit.MaxClientIDBytes), code: code}
	w := ds.open[key]
	if w != nil && now.Sub(w.first) >= DenialWindow {
		over = ds.close(key, w, over)
		w = nil
	}
	if w == nil {
		if ds.perRemote[remote] >= maxClaimedPerAddress {
			key = denialKey{remote: remote, anyClient: true}
		}
		if _, ok := ds.open[key]; !ok && len(ds.open) >= maxDenialKeys {
			key = denialKey{anyRemote: true, anyClient: true}
		}
		if w = ds.open[key]; w != nil && now.Sub(w.first) >= DenialWindow {
			over = ds.close(key, w, over)
			w = nil
		}
	}
	if w == nil {
		ds.open[key] = &denialWindow{first: now, last: now, count: 1, codes: map[oauth.Code]int{code: 1}}
		if !key.anyClient && !key.anyRemote {
			ds.perRemote[remote]++
		}
		return key, true, over
	}
	w.count++
	w.codes[code]++
	if now.After(w.last) {
		w.last = now
	}
	return key, false, over
}

// recorded notes the id of the event that recorded the first denial of key's window.
func (ds *denials) recorded(key denialKey, id string) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if w := ds.open[key]; w != nil && w.firstEvent == "" {
		w.firstEvent = id
	}
}

// forget drops key's window without a summary (its first denial could not be
// recorded).
func (ds *denials) forget(key denialKey) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if w := ds.open[key]; w != nil {
		w.count = 0
		ds.close(key, w, nil)
	}
}

// sweep closes every window over by now (every window if now is zero).
func (ds *denials) sweep(now time.Time) []denialSummary {
	var over []denialSummary
	for key, w := range ds.open {
		if now.IsZero() || now.Sub(w.first) >= DenialWindow {
			over = ds.close(key, w, over)
		}
	}
	slices.SortFunc(over, func(a, b denialSummary) int { return a.w.first.Compare(b.w.first) })
	return over
}

// close forgets key's window, adding it to over when it holds more than the
// denial recorded at once.
func (ds *denials) close(key denialKey, w *denialWindow, over []denialSummary) []denialSummary {
	delete(ds.open, key)
	if !key.anyClient && !key.anyRemote {
		if ds.perRemote[key.remote]--; ds.perRemote[key.remote] <= 0 {
			delete(ds.perRemote, key.remote)
		}
	}
	if w.count > 1 {
		over = append(over, denialSummary{key, *w})
	}
	return over
}

// event is the audit event that sums a window up.
func (s denialSummary) event(now time.Time) *store.AuditEvent {
	from, client := s.key.remote, fmt.Sprintf("client %q", s.key.client)
	switch {
	case s.key.anyRemote:
		from, client = "any other address", "any client"
	case s.key.anyClient:
		client = fmt.Sprintf("client ids beyond the first %d claimed from there", maxClaimedPerAddress)
	case s.key.client == "":
		client = "no client"
	}
	codes := slices.Sorted(maps.Keys(s.w.codes))
	top := codes[0]
	for _, c := range codes {
		if s.w.codes[c] > s.w.codes[top] {
			top = c
		}
	}
	t1, t2 := s.w.first.UTC().Format(time.RFC3339Nano), s.w.last.UTC().Format(time.RFC3339Nano)
	detail, _ := json.Marshal(map[string]any{"aggregated": map[string]any{
		"count": s.w.count, "first": t1, "last": t2, "errors": s.w.codes,
		"first_event": s.w.firstEvent, "any_client": s.key.anyClient, "any_address": s.key.anyRemote,
	}})
	ev := &store.AuditEvent{
		Time: now, Type: store.EventDenied, Decision: store.DecisionDeny,
		RemoteAddr: s.key.remote, ClientID: s.key.client,
		Reason: fmt.Sprintf("%s: %d denied unauthenticated requests from %s for %s between %s and %s (the first recorded on its own)",
			top, s.w.count, from, client, t1, t2),
		Detail: string(detail),
	}
	return ev
}

// FlushDenials records the summaries of the windows of unauthenticated denials
// that are over by now; with a zero now, of every open window (when the server
// stops). The server calls it every minute.
func (d *Dispatcher) FlushDenials(ctx context.Context, now time.Time) error {
	d.denials.mu.Lock()
	over := d.denials.sweep(now)
	if !now.IsZero() {
		d.denials.swept = now
	}
	d.denials.mu.Unlock()
	return d.recordSummaries(ctx, over, now)
}

func (d *Dispatcher) recordSummaries(ctx context.Context, over []denialSummary, now time.Time) error {
	var errs []error
	for _, s := range over {
		ev := s.event(now)
		if err := d.audit.Record(ctx, ev); err != nil {
			d.log.Error("audit: cannot record a summary of denials", "reason", ev.Reason, "err", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
