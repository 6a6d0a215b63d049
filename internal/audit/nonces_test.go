package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/store/sqlstore"
)

// gatedNonces counts the commits of a store.AuditNonces, and holds the first
// until gate is closed.
type gatedNonces struct {
	*sqlstore.DB
	gate    chan struct{}
	mu      sync.Mutex
	commits int
	nonces  int
	events  int
}

func (g *gatedNonces) AppendNonces(ctx context.Context, n []store.NonceUse, e []*store.AuditEvent, seal store.SealFunc) ([]error, error) {
	g.count(len(n), len(e))
	return g.DB.AppendNonces(ctx, n, e, seal)
}

func (g *gatedNonces) Append(ctx context.Context, e []*store.AuditEvent, seal store.SealFunc) error {
	g.count(0, len(e))
	return g.DB.Append(ctx, e, seal)
}

func (g *gatedNonces) count(nonces, events int) {
	g.mu.Lock()
	g.commits++
	first := g.commits == 1
	g.nonces += nonces
	g.events += events
	g.mu.Unlock()
	if first {
		<-g.gate
	}
}

// waitCommits waits until g's store has begun n commits.
func waitCommits(t *testing.T, g *gatedNonces, n int) {
	t.Helper()
	for {
		g.mu.Lock()
		c := g.commits
		g.mu.Unlock()
		if c >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// held starts a writer over db whose first commit (of a lone event) waits for
// the returned release; the requests queued meanwhile share the next commit.
func held(t *testing.T, db *sqlstore.DB, opts WriterOptions) (*Writer, func()) {
	t.Helper()
	g := &gatedNonces{DB: db, gate: make(chan struct{})}
	w := NewWriter(g, db, opts)
	t.Cleanup(func() { w.Close() })
	go w.Record(context.Background(), &store.AuditEvent{Type: store.EventTokenIssued, Decision: store.DecisionAllow})
	waitCommits(t, g, 1)
	var once sync.Once
	release := func() { once.Do(func() { close(g.gate) }) }
	t.Cleanup(release)
	return w, release
}

// TestUseNonceSharesCommits: nonces and events queued while a commit is under
// way go into the next commit together, and each nonce is durable once
// UseNonce returns — the store refuses it afterwards.
func TestUseNonceSharesCommits(t *testing.T) {
	db := openSQLite(t)
	g := &gatedNonces{DB: db, gate: make(chan struct{})}
	w := NewWriter(g, db, WriterOptions{})
	defer w.Close()
	exp := time.Now().Add(time.Hour)
	// The first commit holds the writer while the rest queue.
	first := make(chan error, 1)
	go func() {
		first <- w.Record(t.Context(), &store.AuditEvent{Type: store.EventTokenIssued, Decision: store.DecisionAllow})
	}()
	waitCommits(t, g, 1)
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, 2*n)
	for i := range n {
		wg.Go(func() { errs[i] = w.UseNonce(t.Context(), fmt.Sprintf("dpop:k:%d", i), exp) })
		wg.Go(func() {
			errs[n+i] = w.Record(t.Context(), &store.AuditEvent{Type: store.EventTokenIssued, Decision: store.DecisionAllow})
		})
	}
	for w.QueueDepth() < 2*n {
		time.Sleep(time.Millisecond)
	}
	close(g.gate)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	if g.commits != 2 || g.nonces != n || g.events != n+1 {
		t.Errorf("%d commits of %d nonces and %d events, want 2 of %d and %d", g.commits, g.nonces, g.events, n, n+1)
	}
	for i := range n {
		if err := db.UseNonce(t.Context(), fmt.Sprintf("dpop:k:%d", i), exp); !errors.Is(err, store.ErrConflict) {
			t.Errorf("nonce %d after UseNonce: the store says %v, want ErrConflict", i, err)
		}
	}
}

func TestUseNonceReplay(t *testing.T) {
	db := openSQLite(t)
	w := NewWriter(db, db, WriterOptions{})
	defer w.Close()
	exp := time.Now().Add(time.Hour)
	if err := w.UseNonce(t.Context(), "a", exp); err != nil {
		t.Fatal(err)
	}
	if err := w.UseNonce(t.Context(), "a", exp); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second use: %v, want ErrConflict", err)
	}
	if err := db.UseNonce(t.Context(), "b", exp); err != nil {
		t.Fatal(err)
	}
	if err := w.UseNonce(t.Context(), "b", exp); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("use of a nonce the store recorded: %v, want ErrConflict", err)
	}
	// Many uses of one key at once, sharing commits: exactly one wins.
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() { errs[i] = w.UseNonce(t.Context(), "c", exp) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("use of c: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d uses of c succeeded, want 1", won)
	}
}

// TestUseNonceWithRefusedEvent: an event the store refuses (its parent revoked
// by another node) fails alone; the nonce of its batch is recorded.
func TestUseNonceWithRefusedEvent(t *testing.T) {
	db := openSQLite(t)
	g := &gatedNonces{DB: db, gate: make(chan struct{})}
	w := NewWriter(g, db, WriterOptions{})
	defer w.Close()
	exp := time.Now().Add(time.Hour)
	if err := db.Append(t.Context(), []*store.AuditEvent{{ID: "e1", Type: store.EventTokenIssued,
		Decision: store.DecisionAllow, TokenJTI: "T1", TokenExpires: exp}}, Seal); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Revoke(t.Context(), store.Revocation{JTI: "T1", ExpiresAt: exp, Reason: "test"},
		func([]store.Revocation) (*store.AuditEvent, error) {
			return &store.AuditEvent{ID: "r1", Type: store.EventTokenRevoked, Decision: store.DecisionAllow}, nil
		}, Seal); err != nil {
		t.Fatal(err)
	}
	go w.Record(t.Context(), &store.AuditEvent{Type: store.EventTokenIssued, Decision: store.DecisionAllow})
	waitCommits(t, g, 1)
	errs := make(chan error, 2)
	go func() {
		errs <- w.Record(t.Context(), &store.AuditEvent{Type: store.EventTokenExchanged, Decision: store.DecisionAllow,
			ParentJTI: "T1", TokenJTI: "T2", TokenExpires: exp})
	}()
	go func() { errs <- w.UseNonce(t.Context(), "n", exp) }()
	for w.QueueDepth() < 2 {
		time.Sleep(time.Millisecond)
	}
	close(g.gate)
	var revoked, ok int
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrRevoked):
			revoked++
		default:
			t.Errorf("unexpected: %v", err)
		}
	}
	if ok != 1 || revoked != 1 {
		t.Fatalf("%d succeeded and %d revoked, want 1 and 1", ok, revoked)
	}
	if err := db.UseNonce(t.Context(), "n", exp); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("the nonce of the batch: %v, want it recorded (ErrConflict)", err)
	}
}

func TestUseNonceWithoutSupport(t *testing.T) {
	m := newMemStore()
	w := NewWriter(m, m, WriterOptions{})
	defer w.Close()
	if err := w.UseNonce(t.Context(), "a", time.Now().Add(time.Hour)); err == nil {
		t.Fatal("UseNonce succeeded without a store that records nonces")
	}
}

func TestUseNonceCancelled(t *testing.T) {
	db := openSQLite(t)
	w := NewWriter(db, db, WriterOptions{})
	defer w.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	exp := time.Now().Add(time.Hour)
	if err := w.UseNonce(ctx, "a", exp); !errors.Is(err, context.Canceled) {
		t.Fatalf("UseNonce with an ended context: %v", err)
	}
	if err := db.UseNonce(t.Context(), "a", exp); err != nil {
		t.Fatalf("the cancelled nonce was recorded: %v", err)
	}
}

// TestUseNonceBatchFallback: a batch the store refuses for one of its events (an
// id taken) is retried one request at a time: that event fails alone, the nonce
// beside it is recorded, and its caller is told so.
func TestUseNonceBatchFallback(t *testing.T) {
	db := openSQLite(t)
	exp := time.Now().Add(time.Hour)
	if err := db.Append(t.Context(), []*store.AuditEvent{{ID: "taken", Type: store.EventTokenIssued,
		Decision: store.DecisionAllow}}, Seal); err != nil {
		t.Fatal(err)
	}
	w, release := held(t, db, WriterOptions{})
	errs := make([]error, 3)
	var wg sync.WaitGroup
	wg.Go(func() {
		errs[0] = w.Record(t.Context(), &store.AuditEvent{ID: "taken", Type: store.EventTokenIssued, Decision: store.DecisionAllow})
	})
	wg.Go(func() { errs[1] = w.UseNonce(t.Context(), "n", exp) })
	wg.Go(func() {
		errs[2] = w.Record(t.Context(), &store.AuditEvent{Type: store.EventTokenIssued, Decision: store.DecisionAllow})
	})
	for w.QueueDepth() < 3 {
		time.Sleep(time.Millisecond)
	}
	release()
	wg.Wait()
	if !errors.Is(errs[0], store.ErrConflict) || errs[1] != nil || errs[2] != nil {
		t.Fatalf("outcomes %v, want ErrConflict, nil, nil", errs)
	}
	if err := db.UseNonce(t.Context(), "n", exp); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("the nonce: %v, want it recorded", err)
	}
}

// TestUseNonceAdmitRefusal: an event refused by Admit fails alone; the nonce
// queued with it is recorded.
func TestUseNonceAdmitRefusal(t *testing.T) {
	db := openSQLite(t)
	refused := errors.New("refused by admit")
	w, release := held(t, db, WriterOptions{Admit: func(e *store.AuditEvent) error {
		if e.ParentJTI == "bad" {
			return refused
		}
		return nil
	}})
	exp := time.Now().Add(time.Hour)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	wg.Go(func() {
		errs[0] = w.Record(t.Context(), &store.AuditEvent{Type: store.EventTokenExchanged, Decision: store.DecisionAllow,
			ParentJTI: "bad", TokenJTI: "T", TokenExpires: exp})
	})
	wg.Go(func() { errs[1] = w.UseNonce(t.Context(), "n", exp) })
	for w.QueueDepth() < 2 {
		time.Sleep(time.Millisecond)
	}
	release()
	wg.Wait()
	if !errors.Is(errs[0], refused) || errs[1] != nil {
		t.Fatalf("outcomes %v, want the refusal and nil", errs)
	}
	if err := db.UseNonce(t.Context(), "n", exp); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("the nonce: %v, want it recorded", err)
	}
}

// TestUseNonceWithdrawn: a caller whose context ends while its nonce is queued
// gets the context's error, and the nonce is not recorded.
func TestUseNonceWithdrawn(t *testing.T) {
	db := openSQLite(t)
	w, release := held(t, db, WriterOptions{})
	exp := time.Now().Add(time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.UseNonce(ctx, "n", exp) }()
	for w.QueueDepth() < 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("UseNonce: %v, want context.Canceled", err)
	}
	release()
	if err := w.UseNonce(t.Context(), "other", exp); err != nil { // the writer goes on
		t.Fatal(err)
	}
	if err := db.UseNonce(t.Context(), "n", exp); err != nil {
		t.Fatalf("the withdrawn nonce was recorded: %v", err)
	}
}

// TestUseNonceCheckedWhenPresented: a record is live for a nonce presented before
// it expired, however late the commit — a proof checked in time and committed
// after its record's expiry is still a replay.
func TestUseNonceCheckedWhenPresented(t *testing.T) {
	db := openSQLite(t)
	w, release := held(t, db, WriterOptions{})
	exp := time.Now().Add(300 * time.Millisecond)
	if err := db.UseNonce(t.Context(), "n", exp); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.UseNonce(t.Context(), "n", exp) }() // presented now, before exp
	for w.QueueDepth() < 1 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(time.Until(exp) + 50*time.Millisecond) // the commit runs after exp
	release()
	if err := <-done; !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a replay presented before the record expired: %v, want ErrConflict", err)
	}
}
