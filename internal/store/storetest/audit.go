package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// fullEvent has every field set, times in a zone other than UTC, and list elements
// that a naive text encoding would mangle.
func fullEvent(id string) *store.AuditEvent {
	ny := time.FixedZone("EST", -5*3600)
	return &store.AuditEvent{
		ID:            id,
		Time:          t0.In(ny),
		Type:          store.EventTokenExchanged,
		ClientID:      "api1",
		Subject:       "alice",
		SubjectIssuer: "https://login.example/tenant/v2.0",
		Actors:        []string{"api2", "api 1", "100%", "x_y"},
		Audiences:     []string{"https://api3.example", ""},
		Scopes:        []string{"ledger:read"},
		ParentJTI:     "jti-parent",
		TokenJTI:      "jti-" + id,
		TokenExpires:  t0.Add(5 * time.Minute).In(ny),
		Decision:      store.DecisionAllow,
		Reason:        "exchange",
		Rule:          "policies[0]",
		RequestID:     "req-1",
		RemoteAddr:    "192.0.2.1:4711",
		TraceID:       traceA,
		Detail:        `{"k":"v w"}`,
	}
}

// W3C trace-ids of the suite's events.
const (
	traceA = "4bf92f3577b34da6a3ce929d0e0e4736"
	traceB = "0af7651916cd43dd8448eb211c80319c"
)

// inUTC is e with its times in UTC, as the store gives them back.
func inUTC(e store.AuditEvent) store.AuditEvent {
	e.Time = e.Time.UTC()
	if !e.TokenExpires.IsZero() {
		e.TokenExpires = e.TokenExpires.UTC()
	}
	return e
}

// sealCall is one call of a recording SealFunc.
type sealCall struct {
	seq  int64
	id   string
	prev []byte
}

var appendTests = []test{
	{"ok/empty-append-is-no-op", func(t *testing.T, s store.Store) {
		noSeal := func([]byte, *store.AuditEvent) { t.Error("seal called for an empty Append") }
		for _, events := range [][]*store.AuditEvent{nil, {}} {
			if err := s.Append(t.Context(), events, noSeal); err != nil {
				t.Fatalf("Append(%#v): %v", events, err)
			}
		}
		if got := scanAll(t, s, 0); len(got) != 0 {
			t.Fatalf("after empty Appends: %d events", len(got))
		}
		e := event("e1")
		appendEvents(t, s, e)
		if e.Seq != 1 {
			t.Fatalf("first event Seq = %d, want 1", e.Seq)
		}
	}},
	{"ok/seq-and-seal-across-appends", func(t *testing.T, s store.Store) {
		var calls []sealCall
		record := func(prev []byte, e *store.AuditEvent) {
			calls = append(calls, sealCall{e.Seq, e.ID, slices.Clone(prev)})
			Seal(prev, e)
		}
		var all []*store.AuditEvent
		for batch, n := range []int{1, 3, 2} {
			var events []*store.AuditEvent
			for i := range n {
				events = append(events, event(fmt.Sprintf("b%d-e%d", batch, i)))
			}
			if err := s.Append(t.Context(), events, record); err != nil {
				t.Fatalf("Append batch %d: %v", batch, err)
			}
			all = append(all, events...)
		}
		if len(calls) != len(all) {
			t.Fatalf("seal called %d times for %d events", len(calls), len(all))
		}
		var prev []byte
		for i, e := range all {
			c := calls[i]
			if c.id != e.ID || c.seq != int64(i+1) || e.Seq != int64(i+1) {
				t.Fatalf("call %d: seal(%s, Seq %d), event %s has Seq %d; want %s with Seq %d",
					i, c.id, c.seq, e.ID, e.Seq, e.ID, i+1)
			}
			if !reflect.DeepEqual(c.prev, prev) {
				t.Fatalf("call %d: seal got prevHash %x, want %x (the previous event's Hash)", i, c.prev, prev)
			}
			prev = e.Hash
		}
		got := scanAll(t, s, 0)
		checkChain(t, got)
		for i, e := range all {
			sameEvent(t, "stored "+e.ID, got[i], *e)
		}
	}},
	{"ok/concurrent-append-gapless-chain", func(t *testing.T, s store.Store) {
		const writers, appends = 8, 12
		var (
			wg   sync.WaitGroup
			errs = make(chan error, writers*appends)
		)
		for w := range writers {
			wg.Go(func() {
				for a := range appends {
					var events []*store.AuditEvent
					for i := range 1 + (w+a)%3 {
						events = append(events, event(fmt.Sprintf("w%d-a%d-e%d", w, a, i)))
					}
					if err := s.Append(t.Context(), events, Seal); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("concurrent Append: %v", err)
		}
		got := scanAll(t, s, 0)
		checkChain(t, got)
		want := 0
		for w := range writers {
			for a := range appends {
				want += 1 + (w+a)%3
			}
		}
		if len(got) != want {
			t.Fatalf("%d events stored, want %d", len(got), want)
		}
		// A batch is contiguous in the chain.
		for i := 1; i < len(got); i++ {
			var w, a, e, pw, pa, pe int
			fmt.Sscanf(got[i].ID, "w%d-a%d-e%d", &w, &a, &e)
			fmt.Sscanf(got[i-1].ID, "w%d-a%d-e%d", &pw, &pa, &pe)
			if e > 0 && (w != pw || a != pa || e != pe+1) {
				t.Fatalf("batch split: %s follows %s", got[i].ID, got[i-1].ID)
			}
		}
	}},
	{"ok/round-trip-every-field", func(t *testing.T, s store.Store) {
		first := fullEvent("e1")
		bare := &store.AuditEvent{ID: "e2", Time: t0, Type: store.EventCallReported} // every optional field empty
		lists := event("e3")
		lists.Actors, lists.Audiences, lists.Scopes = []string{"a"}, []string{"%20", "%", " ", "a  b"}, []string{""}
		events := []*store.AuditEvent{first, bare, lists}
		appendEvents(t, s, events...)
		if first.PrevHash != nil {
			t.Fatalf("first event PrevHash = %x, want nil", first.PrevHash)
		}
		for _, e := range events {
			want := inUTC(*e) // Append set Seq, PrevHash and Hash on e
			got, err := s.EventByID(t.Context(), e.ID)
			if err != nil {
				t.Fatalf("EventByID(%s): %v", e.ID, err)
			}
			sameEvent(t, "EventByID "+e.ID, got, want)
		}
		if got := scanAll(t, s, 0); len(got) != 3 || got[0].PrevHash != nil || got[1].Actors != nil ||
			got[1].Audiences != nil || got[1].Scopes != nil || !got[1].TokenExpires.IsZero() {
			t.Fatalf("Scan: first PrevHash, empty lists and zero times must read back nil/zero: %v", got)
		}
		if got := scanAll(t, s, 0); !reflect.DeepEqual(got[2].Scopes, []string{""}) {
			t.Fatalf("a list of one empty string read back as %#v", got[2].Scopes)
		}
	}},
	{"ok/normalised-before-seal", func(t *testing.T, s store.Store) {
		// Beyond the letter of store.go, and what keeps a hash chain verifiable: the
		// event seal sees is the event read back. Times are cut to microseconds in
		// UTC and empty lists are nil before seal is called.
		var sealed store.AuditEvent
		record := func(prev []byte, e *store.AuditEvent) {
			Seal(prev, e)
			sealed = *e
		}
		e := event("e1")
		e.Time = t0.Add(789 * time.Nanosecond).In(time.FixedZone("X", 7200))
		e.TokenExpires = t0.Add(time.Minute + 1)
		e.Actors, e.Audiences, e.Scopes = []string{}, []string{}, nil
		if err := s.Append(t.Context(), []*store.AuditEvent{e}, record); err != nil {
			t.Fatalf("Append: %v", err)
		}
		if !sealed.Time.Equal(t0) || !sealed.TokenExpires.Equal(t0.Add(time.Minute)) {
			t.Fatalf("seal saw Time %v, TokenExpires %v; want them cut to microseconds", sealed.Time, sealed.TokenExpires)
		}
		got, err := s.EventByID(t.Context(), "e1")
		if err != nil {
			t.Fatalf("EventByID: %v", err)
		}
		sameEvent(t, "read back", got, sealed)
	}},
	{"fail/duplicate-event-id", func(t *testing.T, s store.Store) {
		appendEvents(t, s, event("e1"))
		// A batch of more events than one statement inserts (sqlstore inserts 32
		// per statement), the duplicate in its last, shorter statement.
		var long []*store.AuditEvent
		for i := range 70 {
			long = append(long, event(fmt.Sprintf("long%d", i)))
		}
		long[66] = event("e1")
		for _, batch := range [][]*store.AuditEvent{
			{event("e2"), event("e1")},
			{event("e3"), event("e3")},
			long,
		} {
			if err := s.Append(t.Context(), batch, Seal); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("Append %s, %s: %v, want ErrConflict", batch[0].ID, batch[1].ID, err)
			}
		}
		// Nothing of a failed Append is stored, and the chain goes on from its tail.
		e4 := event("e4")
		appendEvents(t, s, e4)
		got := scanAll(t, s, 0)
		checkChain(t, got)
		if want := []string{"e1", "e4"}; !slices.Equal(ids(got), want) {
			t.Fatalf("chain = %v, want %v", ids(got), want)
		}
	}},
}

// chainOf appends n minimal events e1…en.
func chainOf(t *testing.T, s store.Store, n int) {
	t.Helper()
	for start := 0; start < n; start += 100 {
		var events []*store.AuditEvent
		for i := start; i < min(n, start+100); i++ {
			events = append(events, event(fmt.Sprintf("e%d", i+1)))
		}
		appendEvents(t, s, events...)
	}
}

var readTests = []test{
	{"ok/scan-after-seq", func(t *testing.T, s store.Store) {
		chainOf(t, s, 5)
		for _, tc := range []struct {
			after int64
			want  []string
		}{
			{0, []string{"e1", "e2", "e3", "e4", "e5"}},
			{3, []string{"e4", "e5"}},
			{5, nil},
			{99, nil},
		} {
			if got := ids(scanAll(t, s, tc.after)); !slices.Equal(got, tc.want) {
				t.Errorf("Scan(%d) = %v, want %v", tc.after, got, tc.want)
			}
		}
	}},
	{"ok/scan-long-chain", func(t *testing.T, s store.Store) {
		chainOf(t, s, 1234) // longer than a page of any sensible paging
		got := scanAll(t, s, 0)
		if len(got) != 1234 {
			t.Fatalf("Scan: %d events, want 1234", len(got))
		}
		checkChain(t, got)
	}},
	{"fail/scan-stops-at-fn-error", func(t *testing.T, s store.Store) {
		chainOf(t, s, 5)
		stop := errors.New("stop")
		var seen []int64
		err := s.Scan(t.Context(), 0, func(e store.AuditEvent) error {
			seen = append(seen, e.Seq)
			if e.Seq == 2 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) {
			t.Fatalf("Scan = %v, want fn's error", err)
		}
		if !slices.Equal(seen, []int64{1, 2}) {
			t.Fatalf("fn saw %v, want [1 2]", seen)
		}
	}},
	{"ok/every-read-keeps-trace-id", func(t *testing.T, s store.Store) {
		issued := event("issue")
		issued.TokenJTI, issued.TraceID = "T0", traceA
		child := exchanged("x1", "T0", "T1", t0.Add(time.Hour))
		child.TraceID = traceB
		none := event("none") // no trace id: stored and read back as ""
		appendEvents(t, s, issued, child, none)
		want := map[string]string{"issue": traceA, "x1": traceB, "none": ""}
		check := func(how string, es []store.AuditEvent, n int) {
			t.Helper()
			if len(es) != n {
				t.Fatalf("%s: %d events, want %d", how, len(es), n)
			}
			for _, e := range es {
				if e.TraceID != want[e.ID] {
					t.Errorf("%s: event %s has TraceID %q, want %q", how, e.ID, e.TraceID, want[e.ID])
				}
			}
		}
		check("Scan", scanAll(t, s, 0), 3)
		all, err := s.Query(t.Context(), store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		check("Query", all, 3)
		for id := range want {
			e, err := s.EventByID(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			check("EventByID", []store.AuditEvent{e}, 1)
		}
		byTok, err := s.EventsByToken(t.Context(), "T0")
		if err != nil {
			t.Fatal(err)
		}
		check("EventsByToken", byTok, 1)
		byPar, err := s.EventsByParent(t.Context(), "T0")
		if err != nil {
			t.Fatal(err)
		}
		check("EventsByParent", byPar, 1)
	}},
	{"ok/event-by-id", func(t *testing.T, s store.Store) {
		chainOf(t, s, 3)
		e, err := s.EventByID(t.Context(), "e2")
		if err != nil || e.ID != "e2" || e.Seq != 2 {
			t.Fatalf("EventByID(e2) = %s, %v", fmtEvent(e), err)
		}
	}},
	{"fail/event-by-id-not-found", func(t *testing.T, s store.Store) {
		chainOf(t, s, 3)
		for _, id := range []string{"nope", "", "E1"} {
			if _, err := s.EventByID(t.Context(), id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("EventByID(%q) = %v, want ErrNotFound", id, err)
			}
		}
	}},
	{"ok/events-by-token-and-parent", func(t *testing.T, s store.Store) {
		exp := t0.Add(time.Hour)
		issued := event("issue")
		issued.TokenJTI, issued.TokenExpires = "T0", exp
		denied := exchanged("deny", "T0", "", time.Time{})
		denied.Decision, denied.Type = store.DecisionDeny, store.EventDenied
		revoked := event("revoke")
		revoked.Type, revoked.TokenJTI = store.EventTokenRevoked, "T0"
		appendEvents(t, s, issued, exchanged("x1", "T0", "T1", exp), event("other"), denied,
			exchanged("x2", "T0", "T2", exp), exchanged("x3", "T1", "T3", exp), revoked)
		for _, tc := range []struct {
			name string
			get  func(context.Context, string) ([]store.AuditEvent, error)
			jti  string
			want []string
		}{
			{"EventsByToken", s.EventsByToken, "T0", []string{"issue", "revoke"}},
			{"EventsByToken", s.EventsByToken, "T3", []string{"x3"}},
			{"EventsByToken", s.EventsByToken, "T9", nil},
			// Not in store.go: the empty jti names no token, not every event without one.
			{"EventsByToken", s.EventsByToken, "", nil},
			{"EventsByParent", s.EventsByParent, "T0", []string{"x1", "deny", "x2"}},
			{"EventsByParent", s.EventsByParent, "T1", []string{"x3"}},
			{"EventsByParent", s.EventsByParent, "T3", nil},
			{"EventsByParent", s.EventsByParent, "", nil},
		} {
			got, err := tc.get(t.Context(), tc.jti)
			if err != nil {
				t.Fatalf("%s(%q): %v", tc.name, tc.jti, err)
			}
			if !slices.Equal(ids(got), tc.want) {
				t.Errorf("%s(%q) = %v, want %v", tc.name, tc.jti, ids(got), tc.want)
			}
		}
	}},
}
