package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// gate makes the first Append through a countingLog block until released, so that
// the tests can queue requests behind it and see them form one batch.
type gate struct {
	entered chan struct{} // closed when Append #1 has started
	release chan struct{} // close to let it continue
}

func newGate() *gate { return &gate{entered: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) before(n int, _ []*store.AuditEvent) error {
	if n == 1 {
		close(g.entered)
		<-g.release
	}
	return nil
}

// waitQueued waits until n requests are queued behind the writer goroutine.
func waitQueued(t *testing.T, w *Writer, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		w.mu.Lock()
		k := 0
		for _, r := range w.queue {
			if r.state == queued {
				k++
			}
		}
		w.mu.Unlock()
		if k >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued after 5s, want %d", k, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func issued(id, jti string) *store.AuditEvent {
	return &store.AuditEvent{
		ID: id, Type: store.EventTokenIssued, ClientID: "web-app", Subject: "web-app",
		TokenJTI: jti, Decision: store.DecisionAllow, TokenExpires: t0.Add(time.Hour),
	}
}

func exchanged(id, parent, jti string) *store.AuditEvent {
	return &store.AuditEvent{
		ID: id, Type: store.EventTokenExchanged, ClientID: "api1", Subject: "alice",
		Actors: []string{"api1"}, ParentJTI: parent, TokenJTI: jti,
		Decision: store.DecisionAllow, TokenExpires: t0.Add(time.Hour),
	}
}

func mustVerify(t *testing.T, log store.AuditLog, count int64) {
	t.Helper()
	r, err := Verify(context.Background(), log)
	if err != nil {
		t.Fatal(err)
	}
	if r.FirstBad != nil {
		t.Fatalf("chain broken: %+v", *r.FirstBad)
	}
	if r.Count != count {
		t.Fatalf("chain has %d records, want %d", r.Count, count)
	}
}

func TestWriterConcurrentRecords(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		const goroutines, each = 32, 40
		// Each commit takes a moment, as an fsync does, so that records queue up.
		log := &countingLog{AuditLog: b, before: func(int, []*store.AuditEvent) error {
			time.Sleep(200 * time.Microsecond)
			return nil
		}}
		w := NewWriter(log, b, WriterOptions{MaxBatch: 16})
		defer w.Close()
		var wg sync.WaitGroup
		errs := make(chan error, goroutines*each)
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					e := issued("", fmt.Sprintf("J-%d-%d", g, i))
					if err := w.Record(context.Background(), e); err != nil {
						errs <- err
						return
					}
					// Record returned: the event must be stored, as returned.
					got, err := b.EventByID(context.Background(), e.ID)
					if err != nil {
						errs <- fmt.Errorf("event %s not stored when Record returned: %w", e.ID, err)
						return
					}
					if got.Seq != e.Seq || string(got.Hash) != string(e.Hash) || got.TokenJTI != e.TokenJTI {
						errs <- fmt.Errorf("stored %+v, Record returned %+v", got, *e)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		appends, events, largest := log.stats()
		t.Logf("%d events in %d appends, largest batch %d", events, appends, largest)
		if events != goroutines*each {
			t.Errorf("%d events appended, want %d", events, goroutines*each)
		}
		if appends >= events {
			t.Errorf("%d appends for %d events: no batching", appends, events)
		}
		if largest > 16 {
			t.Errorf("largest batch %d exceeds MaxBatch 16", largest)
		}
		mustVerify(t, b, goroutines*each)
	})
}

func TestWriterFillsIDAndTime(t *testing.T) {
	b := newMemStore()
	w := NewWriter(b, b, WriterOptions{})
	defer w.Close()
	before := time.Now().Add(-time.Second)
	ids := map[string]bool{}
	for range 100 {
		e := &store.AuditEvent{Type: store.EventSignIn, Subject: "alice", TokenExpires: time.Now().Add(time.Hour)}
		if err := w.Record(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		if len(e.ID) < 26 || ids[e.ID] {
			t.Fatalf("ID %q: too short or repeated", e.ID)
		}
		ids[e.ID] = true
		for _, tm := range []time.Time{e.Time, e.TokenExpires} {
			if tm.Location() != time.UTC || tm.Nanosecond()%1000 != 0 || tm.Before(before) {
				t.Fatalf("time %v: want UTC, microseconds, now", tm)
			}
		}
	}
	// Given values are kept (normalised).
	at := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.FixedZone("X", 3600))
	e := &store.AuditEvent{ID: "mine", Time: at, Type: store.EventSignIn}
	if err := w.Record(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if e.ID != "mine" || !e.Time.Equal(at.Truncate(time.Microsecond)) || e.Time.Location() != time.UTC {
		t.Errorf("given ID/Time changed: %q %v", e.ID, e.Time)
	}
}

var errMallory = errors.New("mallory is not admitted")

func TestWriterAdmitRejectsOnlyItsEvent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := newGate()
		log := &countingLog{AuditLog: b, before: g.before}
		w := NewWriter(log, b, WriterOptions{Admit: func(e *store.AuditEvent) error {
			if e.Subject == "mallory" {
				return errMallory
			}
			return nil
		}})
		defer w.Close()

		first := make(chan error, 1)
		go func() { first <- w.Record(context.Background(), issued("E0", "J0")) }()
		<-g.entered
		// These three are queued behind the gated commit and go together.
		subjects := []string{"alice", "mallory", "bob"}
		results := make([]chan error, len(subjects))
		for i, s := range subjects {
			results[i] = make(chan error, 1)
			go func() {
				e := issued(fmt.Sprintf("E-%s", s), "J-"+s)
				e.Subject = s
				results[i] <- w.Record(context.Background(), e)
			}()
			waitQueued(t, w, i+1)
		}
		close(g.release)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		for i, s := range subjects {
			err := <-results[i]
			if s == "mallory" {
				if !errors.Is(err, errMallory) {
					t.Errorf("Record(mallory) = %v, want %v", err, errMallory)
				}
			} else if err != nil {
				t.Errorf("Record(%s) = %v", s, err)
			}
		}
		if _, err := b.EventByID(context.Background(), "E-mallory"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("rejected event stored (err %v)", err)
		}
		if appends, _, largest := log.stats(); appends != 2 || largest != 2 {
			t.Errorf("%d appends, largest %d; want 2 appends, the second of alice and bob", appends, largest)
		}
		mustVerify(t, b, 3)
	})
}

func TestWriterAppendFailureFailsTheWholeBatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := newGate()
		errDisk := fmt.Errorf("%w: disk on fire", store.ErrUnavailable)
		log := &countingLog{AuditLog: b, before: func(n int, ev []*store.AuditEvent) error {
			g.before(n, ev)
			if n == 2 {
				return errDisk
			}
			return nil
		}}
		w := NewWriter(log, b, WriterOptions{})
		defer w.Close()

		first := make(chan error, 1)
		go func() { first <- w.Record(context.Background(), issued("E0", "J0")) }()
		<-g.entered
		const n = 5
		events := make([]*store.AuditEvent, n)
		results := make(chan error, n)
		for i := range n {
			events[i] = issued(fmt.Sprintf("E%d", i+1), fmt.Sprintf("J%d", i+1))
			go func() { results <- w.Record(context.Background(), events[i]) }()
		}
		waitQueued(t, w, n)
		close(g.release)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		for range n {
			if err := <-results; !errors.Is(err, errDisk) {
				t.Errorf("Record = %v, want %v", err, errDisk)
			}
		}
		for _, e := range events {
			if e.Seq != 0 || e.Hash != nil {
				t.Errorf("failed event %s keeps Seq %d / Hash %x", e.ID, e.Seq, e.Hash)
			}
		}
		// The writer goes on after a failure.
		if err := w.Record(context.Background(), issued("E9", "J9")); err != nil {
			t.Fatal(err)
		}
		mustVerify(t, b, 2)
	})
}

// TestWriterBadEventFailsAlone: when the store refuses a batch for something in
// its events (not because it is unavailable), the events are appended one by one
// and only the offending one fails.
func TestWriterBadEventFailsAlone(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		g := newGate()
		errBad := errors.New("invalid byte sequence")
		log := &countingLog{AuditLog: b, before: func(n int, ev []*store.AuditEvent) error {
			g.before(n, ev)
			for _, e := range ev {
				if e.Subject == "bad" {
					return errBad
				}
			}
			return nil
		}}
		w := NewWriter(log, b, WriterOptions{})
		defer w.Close()
		first := make(chan error, 1)
		go func() { first <- w.Record(context.Background(), issued("E0", "J0")) }()
		<-g.entered
		subjects := []string{"alice", "bad", "bob"}
		results := make([]chan error, len(subjects))
		for i, sub := range subjects {
			results[i] = make(chan error, 1)
			e := issued("E-"+sub, "J-"+sub)
			e.Subject = sub
			go func() { results[i] <- w.Record(context.Background(), e) }()
			waitQueued(t, w, i+1)
		}
		close(g.release)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		for i, sub := range subjects {
			err := <-results[i]
			if sub == "bad" && !errors.Is(err, errBad) || sub != "bad" && err != nil {
				t.Errorf("Record(%s) = %v", sub, err)
			}
		}
		mustVerify(t, b, 3)
	})
}

// TestWriterCleansText: NUL and invalid UTF-8 from outside become U+FFFD before
// the event is sealed, so that every database stores what was hashed.
func TestWriterCleansText(t *testing.T) {
	b := newMemStore()
	w := NewWriter(b, b, WriterOptions{})
	defer w.Close()
	e := &store.AuditEvent{Type: store.EventDenied, Decision: store.DecisionDeny, ClientID: "a\x00b", Subject: "\xff\xfe",
		Actors: []string{"ok", "x\x00"}, Reason: "fine"}
	if err := w.Record(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	got, err := b.EventByID(context.Background(), e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ClientID != "a\uFFFDb" || got.Subject != "\uFFFD" || got.Actors[1] != "x\uFFFD" || got.Reason != "fine" {
		t.Errorf("stored %q %q %q %q", got.ClientID, got.Subject, got.Actors, got.Reason)
	}
	mustVerify(t, b, 1)
}

func TestWriterCancel(t *testing.T) {
	t.Run("queued-is-withdrawn", func(t *testing.T) {
		b := newMemStore()
		g := newGate()
		w := NewWriter(&countingLog{AuditLog: b, before: g.before}, b, WriterOptions{})
		defer w.Close()
		first := make(chan error, 1)
		go func() { first <- w.Record(context.Background(), issued("E0", "J0")) }()
		<-g.entered

		ctx, cancel := context.WithCancel(context.Background())
		res := make(chan error, 1)
		go func() { res <- w.Record(ctx, issued("E1", "J1")) }()
		waitQueued(t, w, 1)
		cancel()
		if err := <-res; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled Record = %v, want context.Canceled", err)
		}
		close(g.release)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		if err := w.Record(context.Background(), issued("E2", "J2")); err != nil {
			t.Fatal(err)
		}
		if _, err := b.EventByID(context.Background(), "E1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("withdrawn event was written (err %v)", err)
		}
		mustVerify(t, b, 2)
	})
	t.Run("taken-is-written", func(t *testing.T) {
		b := newMemStore()
		g := newGate()
		w := NewWriter(&countingLog{AuditLog: b, before: g.before}, b, WriterOptions{})
		defer w.Close()
		ctx, cancel := context.WithCancel(context.Background())
		res := make(chan error, 1)
		go func() { res <- w.Record(ctx, issued("E0", "J0")) }()
		<-g.entered // the writer has taken it and is committing
		cancel()
		select {
		case err := <-res:
			t.Fatalf("Record returned %v while its commit was in flight", err)
		case <-time.After(20 * time.Millisecond):
		}
		close(g.release)
		if err := <-res; err != nil {
			t.Errorf("Record of a taken event = %v, want nil (it was written)", err)
		}
		mustVerify(t, b, 1)
	})
}

func TestWriterClose(t *testing.T) {
	b := newMemStore()
	g := newGate()
	w := NewWriter(&countingLog{AuditLog: b, before: g.before}, b, WriterOptions{})
	first := make(chan error, 1)
	go func() { first <- w.Record(context.Background(), issued("E0", "J0")) }()
	<-g.entered
	const n = 10
	results := make(chan error, n)
	for i := range n {
		go func() { results <- w.Record(context.Background(), issued(fmt.Sprintf("E%d", i+1), "")) }()
	}
	waitQueued(t, w, n)
	closed := make(chan struct{})
	go func() { w.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned before the queue was drained")
	case <-time.After(20 * time.Millisecond):
	}
	close(g.release)
	<-closed
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-results; err != nil {
			t.Errorf("queued Record = %v, want nil (Close drains)", err)
		}
	}
	mustVerify(t, b, n+1)
	if err := w.Record(context.Background(), issued("late", "")); !errors.Is(err, ErrClosed) {
		t.Errorf("Record after Close = %v, want ErrClosed", err)
	}
	if _, err := w.Revoke(context.Background(), store.Revocation{JTI: "J0"}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Revoke after Close = %v, want ErrClosed", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// revokedSet is what the server keeps in memory: OnRevoked adds to it, Admit
// refuses exchanges whose parent is in it.
type revokedSet struct {
	mu   sync.Mutex
	jtis map[string]bool
}

var errRevoked = errors.New("subject token revoked")

func (s *revokedSet) onRevoked(revs []store.Revocation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range revs {
		s.jtis[r.JTI] = true
	}
}

func (s *revokedSet) admit(e *store.AuditEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Decision == store.DecisionAllow && e.ParentJTI != "" && s.jtis[e.ParentJTI] {
		return errRevoked
	}
	return nil
}

func (s *revokedSet) has(jti string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jtis[jti]
}

func TestWriterRevoke(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		set := &revokedSet{jtis: map[string]bool{}}
		w := NewWriter(b, b, WriterOptions{Admit: set.admit, OnRevoked: set.onRevoked})
		defer w.Close()
		ctx := context.Background()
		for _, e := range []*store.AuditEvent{issued("E0", "T0"), exchanged("E1", "T0", "T1"), exchanged("E2", "T1", "T2"), issued("E3", "U0")} {
			if err := w.Record(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		ev := &store.AuditEvent{ID: "R1", ClientID: "web-app", Detail: `{"hint":"access_token"}`}
		revs, err := w.Revoke(ctx, store.Revocation{JTI: "T0", ExpiresAt: t0.Add(time.Hour), RevokedAt: t0, Reason: "user logout"}, ev)
		if err != nil {
			t.Fatal(err)
		}
		var jtis []string
		for _, r := range revs {
			jtis = append(jtis, r.JTI)
		}
		if !slices.Equal(jtis, []string{"T0", "T1", "T2"}) {
			t.Errorf("revoked %v, want [T0 T1 T2]", jtis)
		}
		for _, j := range jtis {
			if !set.has(j) {
				t.Errorf("OnRevoked was not told about %s", j)
			}
		}
		stored, err := b.EventByID(ctx, "R1")
		if err != nil {
			t.Fatal(err)
		}
		var detail struct {
			Hint    string   `json:"hint"`
			Revoked []string `json:"revoked"`
		}
		if err := json.Unmarshal([]byte(stored.Detail), &detail); err != nil {
			t.Fatalf("Detail %q: %v", stored.Detail, err)
		}
		if detail.Hint != "access_token" || !slices.Equal(detail.Revoked, jtis) {
			t.Errorf("Detail = %s, want the hint kept and revoked %v", stored.Detail, jtis)
		}
		if stored.Type != store.EventTokenRevoked || stored.TokenJTI != "T0" || stored.Reason != "user logout" || stored.Decision != store.DecisionAllow {
			t.Errorf("revocation event = %+v", stored)
		}

		// An exchange of a revoked token is refused by Admit and not stored; one of an
		// unrelated token goes through.
		if err := w.Record(ctx, exchanged("E4", "T2", "T3")); !errors.Is(err, errRevoked) {
			t.Errorf("exchange of revoked T2 = %v, want %v", err, errRevoked)
		}
		if err := w.Record(ctx, exchanged("E5", "U0", "U1")); err != nil {
			t.Errorf("exchange of U0 = %v", err)
		}
		if _, err := b.EventByID(ctx, "E4"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("refused exchange was stored (err %v)", err)
		}
		mustVerify(t, b, 6)

		// Bad input is refused before anything happens.
		if _, err := w.Revoke(ctx, store.Revocation{JTI: "U0"}, &store.AuditEvent{Detail: "[1]"}); err == nil {
			t.Error("Revoke with a non-object Detail: no error")
		}
		if set.has("U0") {
			t.Error("U0 revoked despite the refused request")
		}
	})
}

// TestWriterRevokeRace runs exchanges of descendants of T0 while T0 is revoked:
// every exchange event that made it into the log must be covered by the
// revocation, or have been refused — no derived token escapes.
func TestWriterRevokeRace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		set := &revokedSet{jtis: map[string]bool{}}
		w := NewWriter(b, b, WriterOptions{Admit: set.admit, OnRevoked: set.onRevoked, MaxBatch: 8})
		defer w.Close()
		ctx := context.Background()
		if err := w.Record(ctx, issued("E0", "T0")); err != nil {
			t.Fatal(err)
		}
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			accepted []string // exchanges the caller would have answered with a token
			refused  atomic.Int64
			revs     []store.Revocation
		)
		for g := range 8 {
			wg.Go(func() {
				parent := "T0"
				for i := range 50 {
					jti := fmt.Sprintf("T-%d-%d", g, i)
					err := w.Record(ctx, exchanged("", parent, jti))
					switch {
					case errors.Is(err, errRevoked):
						refused.Add(1)
						return
					case err != nil:
						t.Error(err)
						return
					}
					mu.Lock()
					accepted = append(accepted, jti)
					mu.Unlock()
					parent = jti // a chain: each hop exchanges the previous token
				}
			})
		}
		wg.Go(func() {
			time.Sleep(time.Millisecond)
			r, err := w.Revoke(ctx, store.Revocation{JTI: "T0", ExpiresAt: t0.Add(time.Hour), RevokedAt: t0}, nil)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			revs = r
			mu.Unlock()
		})
		wg.Wait()
		revoked := map[string]bool{}
		for _, r := range revs {
			revoked[r.JTI] = true
		}
		for _, jti := range accepted {
			if !revoked[jti] {
				t.Errorf("token %s derived from T0 was issued but escaped its revocation", jti)
			}
		}
		t.Logf("%d exchanges accepted and revoked, %d refused after the revocation", len(accepted), refused.Load())
		mustVerify(t, b, int64(len(accepted))+2)
	})
}

// elsewhere is the revocation event of a revocation made straight in the store, as
// another node's writer makes it.
func elsewhere(revs []store.Revocation) (*store.AuditEvent, error) {
	e := &store.AuditEvent{Type: store.EventTokenRevoked, TokenJTI: revs[0].JTI, Decision: store.DecisionAllow}
	prepare(e)
	return e, nil
}

// BenchmarkWriterParallel measures Record under b.RunParallel against the in-memory
// log, once as is (the writer's own overhead) and once with a commit that takes as
// long as an fsync, where group commit pays off. To run it against sqlstore, add it
// to backends (see memstore_test.go) and run
//
//	go test -run - -bench WriterParallel -cpu 1,8,64 ./internal/audit
func BenchmarkWriterParallel(b *testing.B) {
	for _, bk := range backends {
		for _, fsync := range []time.Duration{0, 200 * time.Microsecond} {
			b.Run(fmt.Sprintf("%s/commit=%v", bk.name, fsync), func(b *testing.B) {
				st := bk.open(&testing.T{})
				log := &countingLog{AuditLog: st}
				if fsync > 0 {
					log.before = func(int, []*store.AuditEvent) error { time.Sleep(fsync); return nil }
				}
				w := NewWriter(log, st, WriterOptions{})
				defer w.Close()
				b.SetParallelism(16)
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						e := exchanged("", "T0", "")
						if err := w.Record(context.Background(), e); err != nil {
							b.Error(err)
							return
						}
					}
				})
				appends, events, _ := log.stats()
				if appends > 0 {
					b.ReportMetric(float64(events)/float64(appends), "events/append")
				}
			})
		}
	}
}

func TestWriterRecordAll(t *testing.T) {
	b := newMemStore()
	w := NewWriter(b, b, WriterOptions{Admit: func(e *store.AuditEvent) error {
		if e.Subject == "mallory" {
			return errMallory
		}
		return nil
	}})
	defer w.Close()
	at := &store.AuditEvent{Type: store.EventTokenIssued, Subject: "alice", TokenJTI: "at"}
	rt := &store.AuditEvent{Type: store.EventTokenIssued, Subject: "alice", TokenJTI: "rt"}
	if err := w.RecordAll(context.Background(), at, rt); err != nil {
		t.Fatal(err)
	}
	if at.Seq == 0 || rt.Seq != at.Seq+1 {
		t.Fatalf("seqs %d %d: want both stored, in order", at.Seq, rt.Seq)
	}
	// One refused event fails the call; the caller must not hand out the tokens.
	ok := &store.AuditEvent{Type: store.EventTokenIssued, Subject: "alice", TokenJTI: "at2"}
	bad := &store.AuditEvent{Type: store.EventTokenIssued, Subject: "mallory", TokenJTI: "rt2"}
	if err := w.RecordAll(context.Background(), ok, bad); !errors.Is(err, errMallory) {
		t.Fatalf("err %v, want the admit error", err)
	}
	w.Close()
	if err := w.RecordAll(context.Background(), ok); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestWriterParentRevokedElsewhere: a token revoked by another node (straight in
// the store: this writer's Admit and OnRevoked never saw it) is caught by Append,
// and only the exchange from it fails; the rest of its batch is stored.
func TestWriterParentRevokedElsewhere(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		g := newGate()
		log := &countingLog{AuditLog: b, before: g.before}
		w := NewWriter(log, b, WriterOptions{})
		defer w.Close()

		first := make(chan error, 1)
		go func() { first <- w.Record(ctx, issued("E0", "T0")) }()
		<-g.entered
		// Queued behind the gated commit, in one batch: an exchange from T0 between
		// two unrelated issuances.
		events := []*store.AuditEvent{issued("E1", "A1"), exchanged("E2", "T0", "T1"), issued("E3", "A3")}
		results := make([]chan error, len(events))
		for i, e := range events {
			results[i] = make(chan error, 1)
			go func() { results[i] <- w.Record(ctx, e) }()
			waitQueued(t, w, i+1)
		}
		// While the first commit is held, another node revokes T0 (in the store).
		if _, err := b.Revoke(ctx, store.Revocation{JTI: "T0", ExpiresAt: time.Now().Add(time.Hour), RevokedAt: time.Now(), Reason: "elsewhere"}, elsewhere, Seal); err != nil {
			t.Fatal(err)
		}
		close(g.release)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		for i := range events {
			err := <-results[i]
			if i == 1 {
				var pre *store.ParentRevokedError
				if !errors.Is(err, store.ErrRevoked) || !errors.As(err, &pre) || pre.ParentJTI != "T0" {
					t.Errorf("Record(exchange from revoked T0) = %v, want a ParentRevokedError", err)
				}
			} else if err != nil {
				t.Errorf("Record(%s) = %v", events[i].ID, err)
			}
		}
		if _, err := b.EventByID(ctx, "E2"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the exchange from a revoked token is stored (err %v)", err)
		}
		mustVerify(t, b, 4) // E0, E1, E3 and the other node's revocation event
	})
}
