package audit

import (
	"context"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/deputy-auth/deputy/internal/store"
)

// ErrClosed is returned by Record and Revoke once the Writer is closed.
var ErrClosed = errors.New("audit: writer closed")

// ErrStuck is what Record, RecordAll, Revoke and Healthy return while the writer's
// store call has run past its StoreTimeout (a database that ignores the deadline):
// requests fail at once instead of queueing behind it. It wraps
// store.ErrUnavailable.
var ErrStuck = fmt.Errorf("audit: the writer's commit is stuck past its deadline: %w", store.ErrUnavailable)

// DefaultMaxBatch is the batch limit of a Writer whose options leave MaxBatch at 0.
const DefaultMaxBatch = 256

// WriterOptions configure a Writer. The zero value is usable.
type WriterOptions struct {
	// MaxBatch bounds how many events go into one Append (one transaction).
	// 0 means DefaultMaxBatch.
	MaxBatch int
	// Admit, if set, is called in the writer goroutine for each event just before its
	// batch is appended, serialised with revocations. A non-nil error refuses that
	// event alone: it is not appended and its Record returns the error. This is where
	// an exchange is refused whose parent token was revoked while it waited.
	Admit func(e *store.AuditEvent) error
	// OnRevoked, if set, is called in the writer goroutine with every revocation that
	// Revoke recorded, before any later batch is admitted, so that the revoked set
	// Admit consults is current.
	OnRevoked func([]store.Revocation)
	// StoreTimeout bounds each call of the writer to the store. 0 means
	// DefaultStoreTimeout.
	StoreTimeout time.Duration
	// OnCommit, if set, is called in the writer goroutine after each batch of
	// events was given to the store, with how many it held and how long the
	// commit took (README "Metrics"; internal/server feeds it to Prometheus).
	OnCommit func(events int, took time.Duration)
}

// Writer appends audit events with group commit: one goroutine takes every event
// queued when it becomes free (up to MaxBatch) and commits them with a single
// store.AuditLog.Append — one transaction, one fsync — so under load batches grow by
// themselves while a lone event is committed at once, with no timer or linger.
//
// Record and Revoke are safe for concurrent use. Revocations run in the same
// goroutine as the batches, so each one sees every event committed before it and
// every event committed after it passes Admit with the revoked set updated.
type Writer struct {
	log       store.AuditLog
	nonces    store.AuditNonces // log, if it records nonces; see UseNonce
	rev       store.Revocations
	maxBatch  int
	admit     func(*store.AuditEvent) error
	onRevoked func([]store.Revocation)
	onCommit  func(int, time.Duration)
	timeout   time.Duration

	mu     sync.Mutex
	queue  []*request // FIFO; requests cancelled while queued are skipped
	closed bool
	// failed is the error of the last store call when it failed for the
	// database's sake (see healthError), nil after one that succeeded; busySince
	// is when the store call under way began (zero when none is).
	failed    error
	busySince time.Time
	wake      chan struct{} // capacity 1: "the queue may be non-empty"
	done      chan struct{} // closed when the writer goroutine has drained and exited
}

// request states, guarded by Writer.mu.
const (
	queued    = iota // in the queue, the caller may still withdraw it
	taken            // handed to the writer goroutine: it will be written or fail
	withdrawn        // the caller's context ended while queued: skipped
)

type request struct {
	e     *store.AuditEvent
	state int
	// revocation requests only
	revoke bool
	ctx    context.Context
	r      store.Revocation
	revs   []store.Revocation
	// probe requests only (see Healthy); e is the audit.recovered event
	probe bool
	// nonce requests only (see UseNonce); e is nil
	nonce *store.NonceUse

	err  error
	done chan struct{}
	// batch is the number of events of the commit that carried e, set before
	// done is closed (for the audit.commit span).
	batch int
}

// NewWriter starts a Writer's goroutine. rev may be nil if Revoke is never called.
// Close stops it.
func NewWriter(log store.AuditLog, rev store.Revocations, opts WriterOptions) *Writer {
	w := &Writer{
		log:       log,
		rev:       rev,
		maxBatch:  opts.MaxBatch,
		admit:     opts.Admit,
		onRevoked: opts.OnRevoked,
		onCommit:  opts.OnCommit,
		timeout:   opts.StoreTimeout,
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	w.nonces, _ = log.(store.AuditNonces)
	if w.maxBatch <= 0 {
		w.maxBatch = DefaultMaxBatch
	}
	if w.timeout <= 0 {
		w.timeout = DefaultStoreTimeout
	}
	go w.run()
	return w
}

// Record appends e to the audit trail and returns once it is durably committed.
// It fills e.Time (now) and e.ID (time-ordered, see eventID) when they are empty,
// e.TraceID from ctx when empty (traceFromContext), and normalises Time and
// TokenExpires to UTC at microsecond precision, as stored. On
// success e also carries the Seq, PrevHash and Hash it was stored with.
//
// The result is exact: nil means the event is stored; an error means it is not
// (as far as the store can tell: a commit whose acknowledgement the database
// connection lost is reported as a failure by the store).
// If ctx has ended, or ends while the event is still queued, the event is
// withdrawn (never written) and Record returns ctx.Err(). Once the writer goroutine has taken it, it
// is written or fails with its batch, and Record waits for that outcome even if ctx
// has ended meanwhile — a commit in flight takes one transaction's time. Appends
// have their own deadline (StoreTimeout): a store that hangs fails the events it
// was given after it, while callers still queued can leave through their contexts.
//
// The Writer owns e until Record returns: the caller must not read or change it
// concurrently.
func (w *Writer) Record(ctx context.Context, e *store.AuditEvent) error {
	traceFromContext(ctx, e)
	if e == nil {
		return errors.New("audit: Record of a nil event")
	}
	if err := ctx.Err(); err != nil {
		return err // a request out of time queues nothing: it would hold the writer
	}
	prepare(e)
	req := &request{e: e, done: make(chan struct{})}
	span := startCommit(ctx, 1, string(e.Type))
	err := w.enqueue(req)
	if err == nil {
		err = w.wait(ctx, req)
	}
	endCommit(span, req.batch, err)
	return err
}

// RecordAll records several events that belong to one response (an access token,
// its refresh token and ID token): they are queued together, so they normally share
// one commit, and RecordAll returns only when every one is stored. The first error
// is returned; events that were stored stay stored (the caller must then not hand
// out what they describe).
func (w *Writer) RecordAll(ctx context.Context, events ...*store.AuditEvent) error {
	traceFromContext(ctx, events...)
	if err := ctx.Err(); err != nil {
		return err
	}
	span := startCommit(ctx, len(events), "")
	batch, err := w.recordAll(ctx, events)
	endCommit(span, batch, err)
	return err
}

// recordAll is RecordAll; it also returns the size of the (last) batch that
// carried the events.
func (w *Writer) recordAll(ctx context.Context, events []*store.AuditEvent) (batch int, _ error) {
	reqs := make([]*request, 0, len(events))
	w.mu.Lock()
	if err := w.refuseLocked(time.Now()); err != nil {
		w.mu.Unlock()
		return 0, err
	}
	for _, e := range events {
		if e == nil {
			w.mu.Unlock()
			return 0, errors.New("audit: RecordAll of a nil event")
		}
		prepare(e)
		req := &request{e: e, done: make(chan struct{})}
		reqs = append(reqs, req)
		w.queue = append(w.queue, req)
	}
	w.signal()
	w.mu.Unlock()
	var first error
	for _, req := range reqs {
		if err := w.wait(ctx, req); err != nil && first == nil {
			first = err
		}
		batch = max(batch, req.batch)
	}
	return batch, first
}

// UseNonce records key as used until expiresAt, as store.Nonces.UseNonce does —
// store.ErrConflict for a key recorded before and not expired, durable when it
// returns nil — in the writer's next commit, with the audit events queued by
// then: a DPoP proof's jti (RFC 9449 §11.1) is checked on every DPoP request,
// and its record shares the commit, and the fsync, of the audit trail's. Nonces
// in one commit are checked in the order they were queued. Cancellation is as
// for Record. It is an error unless the writer's store records nonces
// (store.AuditNonces, as every store.Store does).
func (w *Writer) UseNonce(ctx context.Context, key string, expiresAt time.Time) error {
	if w.nonces == nil {
		return errors.New("audit: UseNonce on a writer whose store does not record nonces")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	req := &request{nonce: &store.NonceUse{Key: key, ExpiresAt: expiresAt, At: time.Now()}, done: make(chan struct{})}
	if err := w.enqueue(req); err != nil {
		return err
	}
	return w.wait(ctx, req)
}

// Revoke revokes r.JTI and every token derived from it, and records e (a
// token.revoked event) — all in the writer goroutine, between two batches. It calls
// rev.Revoke, which stores the revocations and e, e's Detail holding {"revoked":
// [jti, …]} (root first, other keys of an existing Detail kept), in one
// transaction; then OnRevoked with the revocations recorded; and returns them.
//
// e may be nil. Empty fields of e are filled: Type token.revoked, TokenJTI r.JTI,
// TokenExpires r.ExpiresAt, Decision allow, Reason r.Reason, and ID and Time as in
// Record. Admit is not consulted for e: the revocation has happened and must be
// recorded.
//
// The revocations and e are stored in one transaction (store.Revocations.Revoke):
// both or neither, also across a crash. Storage calls run with ctx's values but not
// its cancellation, as they run for the queue rather than the caller. If ctx ends
// while the request is still queued, nothing happens and ctx.Err() is returned. On
// an error nothing was revoked and nothing recorded.
func (w *Writer) Revoke(ctx context.Context, r store.Revocation, e *store.AuditEvent) ([]store.Revocation, error) {
	if w.rev == nil {
		return nil, errors.New("audit: Revoke on a writer without store.Revocations")
	}
	if r.JTI == "" {
		return nil, errors.New("audit: Revoke without a jti")
	}
	if e == nil {
		e = &store.AuditEvent{}
	}
	traceFromContext(ctx, e)
	if e.Detail != "" {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(e.Detail), &m); err != nil || m == nil {
			return nil, fmt.Errorf("audit: Revoke: Detail is not a JSON object: %q", e.Detail)
		}
	}
	if e.Type == "" {
		e.Type = store.EventTokenRevoked
	}
	if e.TokenJTI == "" {
		e.TokenJTI = r.JTI
	}
	if e.TokenExpires.IsZero() {
		e.TokenExpires = r.ExpiresAt
	}
	if e.Decision == "" {
		e.Decision = store.DecisionAllow
	}
	if e.Reason == "" {
		e.Reason = r.Reason
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	prepare(e)
	req := &request{e: e, revoke: true, ctx: context.WithoutCancel(ctx), r: r, done: make(chan struct{})}
	span := startCommit(ctx, 1, string(e.Type))
	err := w.enqueue(req)
	if err == nil {
		err = w.wait(ctx, req)
	}
	endCommit(span, 1, err)
	return req.revs, err
}

// traceFromContext gives each event without a TraceID the W3C trace-id of the
// span context ctx carries — the request's, from its traceparent header or begun
// for it (README "Traces") — so that the event can be found from the trace and the
// trace from the event. An event that has a TraceID keeps it; without a valid span
// context in ctx nothing changes.
func traceFromContext(ctx context.Context, events ...*store.AuditEvent) {
	id := trace.SpanContextFromContext(ctx).TraceID()
	if !id.IsValid() {
		return
	}
	for _, e := range events {
		if e != nil && e.TraceID == "" {
			e.TraceID = id.String()
		}
	}
}

// Close stops accepting events, waits until every queued one is committed (or has
// failed) and stops the writer goroutine. Record and Revoke return ErrClosed after
// Close. Close is idempotent and always returns nil.
func (w *Writer) Close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		w.signal()
	}
	w.mu.Unlock()
	<-w.done
	return nil
}

// Prepare readies an event that is stored other than through a Writer (in the
// transaction of the change it records, see store.Users): it fills ID and Time and
// normalises the event as Record does. Store it sealed with Seal.
func Prepare(e *store.AuditEvent) { prepare(e) }

// eventID is a new event id: 26 characters of base32 (the extended hex alphabet,
// which sorts like the bytes) of a store.SortableID, so ids sort by time and the
// unique index on them grows at its end.
func eventID(t time.Time) string {
	b := store.SortableID(t)
	return base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
}

// prepare fills the ID and time of e and normalises its times to what is stored,
// and its text: NUL and invalid UTF-8 (a client id or username sent by anyone)
// become U+FFFD, which every database stores as given — PostgreSQL refuses the
// originals, which would fail the whole batch the event is committed in.
func prepare(e *store.AuditEvent) {
	for _, f := range []*string{&e.ID, &e.Type, &e.ClientID, &e.Subject, &e.SubjectIssuer, &e.ParentJTI,
		&e.TokenJTI, &e.Decision, &e.Reason, &e.Rule, &e.RequestID, &e.RemoteAddr, &e.Detail} {
		*f = store.CleanText(*f)
	}
	// The lists may be shared with other requests' events (a client's configured
	// audiences and scopes): a list is copied before anything in it changes, never
	// written in place.
	for _, l := range []*[]string{&e.Actors, &e.Audiences, &e.Scopes} {
		cloned := false
		for i, v := range *l {
			if c := store.CleanText(v); c != v {
				if !cloned {
					*l, cloned = slices.Clone(*l), true
				}
				(*l)[i] = c
			}
		}
	}
	Bound(e) // text from outside is stored within bounds (bound.go)
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.ID == "" {
		e.ID = eventID(e.Time)
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	if !e.TokenExpires.IsZero() {
		e.TokenExpires = e.TokenExpires.UTC().Truncate(time.Microsecond)
	}
}

func (w *Writer) enqueue(req *request) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.refuseLocked(time.Now()); err != nil {
		return err
	}
	w.queue = append(w.queue, req)
	w.signal()
	return nil
}

// refuseLocked is why a new request is refused at once: the writer is closed, or
// stuck. Called with w.mu held.
func (w *Writer) refuseLocked(now time.Time) error {
	switch {
	case w.closed:
		return ErrClosed
	case w.stuckLocked(now):
		return ErrStuck
	}
	return nil
}

// stuckLocked reports a store call under way for longer than its deadline allows.
// Called with w.mu held.
func (w *Writer) stuckLocked(now time.Time) bool {
	return !w.busySince.IsZero() && now.Sub(w.busySince) > w.timeout
}

// QueueDepth is how many requests wait for the writer goroutine now (README
// "Metrics").
func (w *Writer) QueueDepth() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// Healthy reports whether the writer can commit: nil, unless its store call is
// stuck past its deadline (ErrStuck), or the last one failed for the database's
// sake (full disk, read-only file, unreachable or hung server). In that case
// Healthy probes: it appends an audit.recovered event (in the writer goroutine,
// waiting for its turn as long as ctx allows), a commit like any other. If that
// succeeds the writer is healthy again — a node reported unready gets no traffic
// whose commits could tell — and the trail records the outage it recovered from;
// if it fails nothing is written. A node is ready only while its writer is
// healthy: the requests it takes would fail.
func (w *Writer) Healthy(ctx context.Context) error {
	w.mu.Lock()
	failed, stuck := w.failed, w.stuckLocked(time.Now())
	w.mu.Unlock()
	switch {
	case stuck:
		return ErrStuck
	case failed == nil:
		return nil
	}
	e := &store.AuditEvent{Type: store.EventAuditRecovered, Decision: store.DecisionAllow,
		Reason: "the audit trail can be written again after a failed commit: " + failed.Error()}
	prepare(e)
	req := &request{e: e, probe: true, ctx: context.WithoutCancel(ctx), done: make(chan struct{})}
	if err := w.enqueue(req); err != nil {
		return err
	}
	if err := w.wait(ctx, req); err != nil {
		return fmt.Errorf("audit: the last commit failed (%w), and so did a probe: %w", failed, err)
	}
	return nil
}

// call runs one store call within the writer's StoreTimeout, and keeps what
// Healthy reports up to date.
func (w *Writer) call(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	w.mu.Lock()
	w.busySince = time.Now()
	w.mu.Unlock()
	err := fn(ctx)
	w.mu.Lock()
	w.busySince = time.Time{}
	w.failed = healthError(err)
	w.mu.Unlock()
	return err
}

// healthError is err when it says the database cannot take writes, nil when the
// call succeeded or the database refused what it was given (a revoked parent, a
// duplicate id) — it answered.
func healthError(err error) error {
	var pre *store.ParentRevokedError
	if err == nil || errors.As(err, &pre) || errors.Is(err, store.ErrConflict) {
		return nil
	}
	return err
}

// signal wakes the writer goroutine without blocking; called with w.mu held.
func (w *Writer) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *Writer) wait(ctx context.Context, req *request) error {
	select {
	case <-req.done:
		return req.err
	case <-ctx.Done():
	}
	w.mu.Lock()
	if req.state == queued {
		req.state = withdrawn
		w.mu.Unlock()
		return ctx.Err()
	}
	w.mu.Unlock()
	<-req.done // taken: its outcome is coming
	return req.err
}

// run is the writer goroutine.
func (w *Writer) run() {
	defer close(w.done)
	batch := make([]*request, 0, w.maxBatch)
	events := make([]*store.AuditEvent, 0, w.maxBatch)
	var (
		revoke       *request
		more, closed bool
	)
	for {
		w.mu.Lock()
		batch, revoke, more, closed = w.take(batch[:0])
		w.mu.Unlock()
		switch {
		case revoke != nil && revoke.probe:
			w.doProbe(revoke)
		case revoke != nil:
			w.doRevoke(revoke)
		case len(batch) > 0:
			events = w.commit(batch, events[:0])
			clear(events) // drop references to callers' events
			clear(batch)
		}
		if more {
			continue
		}
		if closed {
			return
		}
		<-w.wake
	}
}

// take moves requests from the head of the queue: either one revocation or probe
// (returned as revoke), or up to maxBatch records stopping before one. It reports
// whether requests remain and whether the writer is closed. Called with w.mu held.
func (w *Writer) take(batch []*request) (_ []*request, revoke *request, more, closed bool) {
	i := 0
	for ; i < len(w.queue) && len(batch) < w.maxBatch; i++ {
		req := w.queue[i]
		if req.state == withdrawn {
			continue
		}
		if req.revoke || req.probe {
			if len(batch) == 0 {
				req.state = taken
				revoke = req
				i++
			}
			break
		}
		req.state = taken
		batch = append(batch, req)
	}
	clear(w.queue[:i])
	w.queue = w.queue[i:]
	if len(w.queue) == 0 {
		w.queue = w.queue[:0:0] // let the old backing array go once drained
	}
	return batch, revoke, len(w.queue) > 0, w.closed
}

// commit admits and appends one batch and completes its requests. The nonces of
// the batch (UseNonce) are recorded in the same commit as its events.
func (w *Writer) commit(batch []*request, events []*store.AuditEvent) []*store.AuditEvent {
	var (
		nonceReqs []*request
		nonces    []store.NonceUse
		results   []error // of nonces, after a commit that succeeded
	)
	admitted := batch[:0] // filtered in place
	for _, req := range batch {
		if req.nonce != nil {
			nonceReqs = append(nonceReqs, req)
			nonces = append(nonces, *req.nonce)
			continue
		}
		if w.admit != nil {
			if err := w.admit(req.e); err != nil {
				req.err = err
				close(req.done)
				continue
			}
		}
		admitted = append(admitted, req)
		events = append(events, req.e)
	}
	if len(events) == 0 && len(nonces) == 0 {
		return events
	}
	for _, req := range admitted {
		req.batch = len(events)
	}
	if w.onCommit != nil && len(events) > 0 {
		start, n := time.Now(), len(events)
		defer func() { w.onCommit(n, time.Since(start)) }()
	}
	appendAll := func(events []*store.AuditEvent) error {
		if len(nonces) == 0 {
			return w.append(context.Background(), events)
		}
		return w.call(context.Background(), func(ctx context.Context) error {
			var err error
			results, err = w.nonces.AppendNonces(ctx, nonces, events, Seal)
			if err == nil && len(results) != len(nonces) {
				err = fmt.Errorf("audit: the store gave %d outcomes for %d nonces", len(results), len(nonces))
			}
			return err
		})
	}
	err := appendAll(events)
	// The store refuses a token issued from a parent revoked meanwhile (by another
	// node: this one's revocations already failed Admit): that request fails, the
	// others are appended without it.
	var pre *store.ParentRevokedError
	for errors.As(err, &pre) && pre.Index >= 0 && pre.Index < len(events) {
		req := admitted[pre.Index]
		req.err = fmt.Errorf("audit: %w", err)
		close(req.done)
		admitted = slices.Delete(admitted, pre.Index, pre.Index+1)
		events = slices.Delete(events, pre.Index, pre.Index+1)
		if len(events) == 0 && len(nonces) == 0 {
			return events
		}
		err = appendAll(events)
	}
	if err != nil && len(events)+len(nonces) > 1 && !errors.Is(err, store.ErrUnavailable) {
		// Refused for something in the events or nonces (not the database's
		// state): append them one by one, so that one bad event or nonce fails
		// alone.
		for i, req := range admitted {
			req.err = w.append(context.Background(), events[i:i+1])
			if req.err != nil {
				req.e.Seq, req.e.PrevHash, req.e.Hash = 0, nil, nil
			}
			close(req.done)
		}
		for i, req := range nonceReqs {
			req.err = w.call(context.Background(), func(ctx context.Context) error {
				r, err := w.nonces.AppendNonces(ctx, nonces[i:i+1], nil, Seal)
				if err == nil && len(r) != 1 {
					err = fmt.Errorf("audit: the store gave %d outcomes for 1 nonce", len(r))
				}
				if err == nil {
					err = r[0]
				}
				return err
			})
			close(req.done)
		}
		return events
	}
	for _, req := range admitted {
		if err != nil {
			req.e.Seq, req.e.PrevHash, req.e.Hash = 0, nil, nil
			req.err = err
		}
		close(req.done)
	}
	for i, req := range nonceReqs {
		if req.err = err; err == nil {
			req.err = results[i]
		}
		close(req.done)
	}
	return events
}

// DefaultStoreTimeout bounds each call of the writer to the store unless
// WriterOptions.StoreTimeout says otherwise: a database that hangs (a connection
// black-holed by the network) fails the requests waiting for it instead of holding
// them, and the writer, forever.
const DefaultStoreTimeout = 30 * time.Second

// append appends events with Seal, within the store timeout.
func (w *Writer) append(ctx context.Context, events []*store.AuditEvent) error {
	return w.call(ctx, func(ctx context.Context) error { return w.log.Append(ctx, events, Seal) })
}

// doProbe appends the probe's event, unless a commit since the probe was queued
// has made the writer healthy.
func (w *Writer) doProbe(req *request) {
	defer close(req.done)
	w.mu.Lock()
	failed := w.failed
	w.mu.Unlock()
	if failed == nil {
		return
	}
	if req.err = w.append(req.ctx, []*store.AuditEvent{req.e}); req.err != nil {
		req.e.Seq, req.e.PrevHash, req.e.Hash = 0, nil, nil
	}
}

func (w *Writer) doRevoke(req *request) {
	defer close(req.done)
	// The revocations and their event are one transaction: a crash or a failed
	// append leaves neither (a token revoked without its record is impossible).
	var revs []store.Revocation
	err := w.call(req.ctx, func(ctx context.Context) (err error) {
		revs, err = w.rev.Revoke(ctx, req.r, func(revs []store.Revocation) (*store.AuditEvent, error) {
			detail, err := revokedDetail(req.e.Detail, revs)
			if err != nil {
				return nil, err
			}
			req.e.Detail = detail
			return req.e, nil
		}, Seal)
		return err
	})
	if err != nil {
		req.e.Seq, req.e.PrevHash, req.e.Hash = 0, nil, nil
		req.err = err
		return
	}
	req.revs = revs
	if w.onRevoked != nil {
		w.onRevoked(revs)
	}
}

// revokedDetail returns detail (a JSON object or "") with its "revoked" key set to
// the jtis of revs, in order.
func revokedDetail(detail string, revs []store.Revocation) (string, error) {
	m := map[string]json.RawMessage{}
	if detail != "" {
		if err := json.Unmarshal([]byte(detail), &m); err != nil {
			return "", err
		}
	}
	jtis := make([]string, len(revs))
	for i, r := range revs {
		jtis[i] = r.JTI
	}
	raw, err := json.Marshal(jtis)
	if err != nil {
		return "", err
	}
	m["revoked"] = raw
	out, err := json.Marshal(m)
	return string(out), err
}
