package audit

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/deputy-auth/deputy/internal/store"
)

// Denials of requests whose sender did not authenticate — an unknown client, a
// wrong secret, a malformed Authorization header or body, a refused authorization
// request, a sign-in attempt refused by throttling — cost their sender nothing, so
// they are recorded in aggregate by an Aggregator, per remote address, claimed
// client id and error code, per DenialWindow:
//
//   - the first denial of a window is recorded at once, as every denial is, with
//     its reason: an operator sees an attack start;
//   - the next ones in the window are only counted;
//   - when the window is over, one more request.denied event sums it up, if there
//     was more than the first: "invalid_client: 10000 denied unauthenticated
//     requests from 192.0.2.1 for client "x" between t1 and t2", with the count per
//     error code in its Detail ({"aggregated": {…}}).
//
// A window is over at the first denial of its key after it ended, at the next
// Flush (which the server runs every minute) or when the server stops (Flush with
// a zero time). Summaries still in memory when the process is killed are lost;
// the first denial of each window is not.
//
// The keys are bounded: an address gets its own windows for at most
// MaxDenialKeysPerAddress claimed client ids and error codes at a time (more share
// one "any other client" window of that address), and at most MaxDenialKeys
// windows are open at once (more share one "any address" window). Whatever an
// attacker sends, a window's worth of such denials stores at most about
// 2 × MaxDenialKeys events, each within Bound.
const (
	DenialWindow            = time.Minute
	MaxDenialKeysPerAddress = 16
	MaxDenialKeys           = 4096
)

// Recorder commits one audit event durably (Writer).
type Recorder interface {
	Record(ctx context.Context, e *store.AuditEvent) error
}

// Aggregator records denials of unauthenticated requests in aggregate (see
// DenialWindow). The zero value is not usable: use NewAggregator. Safe for
// concurrent use.
type Aggregator struct {
	rec Recorder

	mu        sync.Mutex
	open      map[denialKey]*denialWindow
	perRemote map[string]int // open windows with anyClient false, per address
	swept     time.Time
}

// NewAggregator returns an Aggregator that records through rec.
func NewAggregator(rec Recorder) *Aggregator {
	return &Aggregator{rec: rec, open: map[denialKey]*denialWindow{}, perRemote: map[string]int{}}
}

// denialKey names a window: an address, a claimed client id (cut to
// MaxClientIDBytes, as it is stored) and an error code, or the overflow windows
// (any code).
type denialKey struct {
	remote, client, code string
	anyClient            bool // every other client id and code claimed from remote
	anyRemote            bool // every other address (and client id)
	// perClient: client's window from every address (DenyClient); remote is "".
	perClient bool
}

type denialWindow struct {
	first, last time.Time
	count       int
	codes       map[string]int
	firstEvent  string // id of the event that recorded the first denial
	typ         string // the first denial's event type; its summary has it too
}

type denialSummary struct {
	key denialKey
	w   denialWindow
}

// Deny records ev, the denial of a request whose sender did not authenticate, in
// aggregate: the first of its window (by ev.RemoteAddr, ev.ClientID and code, at
// now, time.Now() when zero) is recorded at once and Deny returns what Record
// returned, with recorded true if it is stored; any other is only counted
// (recorded false, nil error). Summaries of windows over by now are recorded
// first, with ctx's values but not its cancellation (they are not this
// request's); a summary that cannot be recorded is lost, and does not change the
// answer to this request.
func (a *Aggregator) Deny(ctx context.Context, ev *store.AuditEvent, code string, now time.Time) (recorded bool, err error) {
	return a.deny(ctx, ev, code, now, false)
}

// DenyClient is Deny for the refusal of a client that authenticated (a request
// over limits.rate): its windows are per client id and code, whatever address the
// requests come from, so a client is on record once a minute however many
// addresses it sends from. The first event keeps its address; the summary names
// none.
func (a *Aggregator) DenyClient(ctx context.Context, ev *store.AuditEvent, code string, now time.Time) (recorded bool, err error) {
	return a.deny(ctx, ev, code, now, true)
}

func (a *Aggregator) deny(ctx context.Context, ev *store.AuditEvent, code string, now time.Time, perClient bool) (recorded bool, err error) {
	if now.IsZero() {
		now = time.Now()
	}
	key, first, over := a.note(ev.RemoteAddr, ev.ClientID, code, ev.Type, now, perClient)
	// Summaries are not this request's: recorded without its cancellation or trace.
	_ = a.record(withoutTrace(context.WithoutCancel(ctx)), over, now) // lost summaries do not change this answer
	if !first {
		return false, nil
	}
	if err := a.rec.Record(ctx, ev); err != nil {
		a.forget(key) // not on record: the next denial opens the window again
		return false, err
	}
	a.recorded(key, ev.ID)
	return true, nil
}

// Flush records the summaries of the windows that are over by now; with a zero
// now, of every open window (when the server stops).
func (a *Aggregator) Flush(ctx context.Context, now time.Time) error {
	a.mu.Lock()
	over := a.sweep(now)
	if !now.IsZero() {
		a.swept = now
	}
	a.mu.Unlock()
	return a.record(ctx, over, now)
}

// withoutTrace is ctx without the span context it may carry, so that the events
// recorded with it get no request's trace id.
func withoutTrace(ctx context.Context) context.Context {
	return trace.ContextWithSpanContext(ctx, trace.SpanContext{})
}

func (a *Aggregator) record(ctx context.Context, over []denialSummary, now time.Time) error {
	var errs []error
	for _, s := range over {
		ev := s.event(now)
		if err := a.rec.Record(ctx, ev); err != nil {
			errs = append(errs, fmt.Errorf("audit: summary %q not recorded: %w", ev.Reason, err))
		}
	}
	return errors.Join(errs...)
}

// note counts one denial at now and reports whether it is the first of its window
// (to be recorded at once), with the windows that are over by now.
func (a *Aggregator) note(remote, clientID, code, typ string, now time.Time, perClient bool) (denialKey, bool, []denialSummary) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var over []denialSummary
	if now.Sub(a.swept) >= DenialWindow {
		over = a.sweep(now)
		a.swept = now
	}
	key := denialKey{remote: remote, client: store.Truncate(clientID, MaxClientIDBytes), code: code}
	if perClient {
		key = denialKey{client: key.client, code: code, perClient: true}
	}
	w := a.open[key]
	if w != nil && now.Sub(w.first) >= DenialWindow {
		over = a.close(key, w, over)
		w = nil
	}
	if w == nil {
		if !perClient && a.perRemote[remote] >= MaxDenialKeysPerAddress {
			key = denialKey{remote: remote, anyClient: true}
		}
		if _, ok := a.open[key]; !ok && len(a.open) >= MaxDenialKeys {
			key = denialKey{anyRemote: true, anyClient: true}
		}
		if w = a.open[key]; w != nil && now.Sub(w.first) >= DenialWindow {
			over = a.close(key, w, over)
			w = nil
		}
	}
	if w == nil {
		a.open[key] = &denialWindow{first: now, last: now, count: 1, codes: map[string]int{code: 1}, typ: typ}
		if !key.anyClient && !key.anyRemote && !key.perClient {
			a.perRemote[remote]++
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
func (a *Aggregator) recorded(key denialKey, id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if w := a.open[key]; w != nil && w.firstEvent == "" {
		w.firstEvent = id
	}
}

// forget drops key's window without a summary (its first denial could not be
// recorded).
func (a *Aggregator) forget(key denialKey) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if w := a.open[key]; w != nil {
		w.count = 0
		a.close(key, w, nil)
	}
}

// sweep closes every window over by now (every window if now is zero).
func (a *Aggregator) sweep(now time.Time) []denialSummary {
	var over []denialSummary
	for key, w := range a.open {
		if now.IsZero() || now.Sub(w.first) >= DenialWindow {
			over = a.close(key, w, over)
		}
	}
	slices.SortFunc(over, func(x, y denialSummary) int { return x.w.first.Compare(y.w.first) })
	return over
}

// close forgets key's window, adding it to over when it holds more than the
// denial recorded at once.
func (a *Aggregator) close(key denialKey, w *denialWindow, over []denialSummary) []denialSummary {
	delete(a.open, key)
	if !key.anyClient && !key.anyRemote && !key.perClient {
		if a.perRemote[key.remote]--; a.perRemote[key.remote] <= 0 {
			delete(a.perRemote, key.remote)
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
		client = fmt.Sprintf("client ids beyond the first %d claimed from there", MaxDenialKeysPerAddress)
	case s.key.client == "":
		client = "no client"
	case s.key.perClient:
		from = "any address"
	}
	what := "denied unauthenticated requests"
	if s.w.typ == store.EventRateLimited {
		// An authenticated client's too (limits.rate keys on it).
		what = "requests refused by limits.rate"
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
	return &store.AuditEvent{
		Time: now, Type: cmp.Or(s.w.typ, store.EventDenied), Decision: store.DecisionDeny,
		RemoteAddr: s.key.remote, ClientID: s.key.client,
		Reason: fmt.Sprintf("%s: %d %s from %s for %s between %s and %s (the first recorded on its own)",
			top, s.w.count, what, from, client, t1, t2),
		Detail: string(detail),
	}
}
