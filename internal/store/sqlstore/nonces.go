package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// nonceCommitTimeout bounds one group commit of nonces: it runs for every caller
// in it, so without the cancellation of the caller that leads it (see
// nonceBatcher), and a database that hangs must not hold them all forever.
const nonceCommitTimeout = 30 * time.Second

// nonceBatcher group-commits UseNonce calls: every nonce of a request (a DPoP
// proof's jti, RFC 9449 §11.1, on every DPoP request) must be durable and
// checked before the request goes on, and each in a commit of its own would
// cost an fsync per request and queue the requests behind one another's on
// SQLite's one writer. Callers that arrive while a commit is under way wait;
// when it ends, the first of them leads the next commit, which takes every nonce
// queued by then: one transaction, one fsync, however many requests. A lone
// call commits at once, with no timer or linger — as audit.Writer does for the
// audit trail.
type nonceBatcher struct {
	mu      sync.Mutex
	pending []*nonceUse // FIFO, waiting for the next commit
	busy    bool        // a caller leads a commit (or is about to)
}

// nonceUse is one UseNonce call; state and err are guarded by nonceBatcher.mu
// until ready is closed.
type nonceUse struct {
	key       string
	expiresAt time.Time
	at        time.Time // when UseNonce was called: see store.NonceUse.At
	state     int
	err       error
	ready     chan struct{} // closed when done, or when this call is to lead
}

// nonceUse states.
const (
	noncePending = iota // queued; the caller may still withdraw it
	nonceTaken          // in a commit under way
	nonceLead           // to lead the next commit (ready is closed)
	nonceDone           // err is its outcome (ready is closed)
)

// UseNonce records key as used until expiresAt. A nonce is expired from its
// expiresAt on; a key recorded before and not expired now is store.ErrConflict, an
// expired one is replaced. The record is durable when UseNonce returns nil; calls
// made at the same time share one transaction (see nonceBatcher), in which each
// key is checked in the order the calls queued: of two calls with one key, the
// later is the conflict.
func (db *DB) UseNonce(ctx context.Context, key string, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	u := &nonceUse{key: store.CleanText(key), expiresAt: expiresAt, at: time.Now(), ready: make(chan struct{})}
	b := &db.nonces
	b.mu.Lock()
	b.pending = append(b.pending, u)
	if !b.busy {
		b.busy = true
		u.state = nonceLead
		close(u.ready)
	}
	b.mu.Unlock()
	select {
	case <-u.ready:
	case <-ctx.Done():
		b.mu.Lock()
		if u.state == noncePending {
			b.withdraw(u)
			b.mu.Unlock()
			return ctx.Err()
		}
		b.mu.Unlock()
		<-u.ready // taken, or to lead: its outcome is coming
	}
	b.mu.Lock()
	lead := u.state == nonceLead
	b.mu.Unlock()
	if lead {
		db.commitNonces(ctx, u)
	}
	return u.err
}

// useNoncesIn records nonces with s, the useNonce statement of a transaction,
// and returns the outcome of each: nil, or a conflict (store.ErrConflict). Any
// other failure is returned as is, for the transaction to be rolled back.
//
// The keys are inserted in sorted order (a key used twice in its callers' order):
// transactions that insert the same keys, on several nodes, then lock their rows
// in one order and cannot deadlock — a replayed proof sent to two nodes at once
// would otherwise fail, on PostgreSQL, the audit batch it rides in.
func (db *DB) useNoncesIn(ctx context.Context, s *sql.Stmt, nonces []store.NonceUse) ([]error, error) {
	errs := make([]error, len(nonces))
	commit := time.Now()
	order := make([]int, len(nonces))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(nonces[a].Key, nonces[b].Key) })
	for _, i := range order {
		u := nonces[i]
		at := u.At
		if at.IsZero() {
			at = commit
		}
		used, err := useNonceIn(ctx, s, store.CleanText(u.Key), u.ExpiresAt, micros(at))
		if err != nil {
			return nil, err
		}
		if used {
			errs[i] = fmt.Errorf("sqlstore: nonce %q already used: %w", u.Key, store.ErrConflict)
		}
	}
	return errs, nil
}

// withdraw removes u, still pending, from the queue. Called with b.mu held.
func (b *nonceBatcher) withdraw(u *nonceUse) {
	for i, p := range b.pending {
		if p == u {
			b.pending = append(b.pending[:i], b.pending[i+1:]...)
			return
		}
	}
}

// commitNonces, run by the call that leads (self), commits every pending nonce
// (its own among them) in one transaction, completes the other calls, and hands
// the lead to the first call queued meanwhile.
func (db *DB) commitNonces(ctx context.Context, self *nonceUse) {
	b := &db.nonces
	b.mu.Lock()
	batch := b.pending
	b.pending = nil
	for _, u := range batch {
		u.state = nonceTaken
	}
	b.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), nonceCommitTimeout)
	defer cancel()
	errs := db.useNonces(ctx, batch)

	b.mu.Lock()
	defer b.mu.Unlock()
	for i, u := range batch {
		u.err, u.state = errs[i], nonceDone
		if u != self { // self's ready was closed to make it lead
			close(u.ready)
		}
	}
	if len(b.pending) > 0 {
		next := b.pending[0]
		next.state = nonceLead
		close(next.ready)
		return
	}
	b.busy = false
}

// useNonces records every nonce of batch in one transaction and returns the
// outcome of each. When the transaction fails for something other than the
// database's state, each nonce is tried in a commit of its own, so that one bad
// key fails alone.
func (db *DB) useNonces(ctx context.Context, batch []*nonceUse) []error {
	errs := make([]error, len(batch))
	if len(batch) == 1 {
		// Alone: one statement, committed by itself, without BEGIN and COMMIT.
		errs[0] = db.useNonce(ctx, batch[0])
		return errs
	}
	err := db.inTx(ctx, "use nonce", []string{db.d.q.useNonce}, func(_ *sql.Tx, stmts []*sql.Stmt) error {
		uses := make([]store.NonceUse, len(batch))
		for i, u := range batch {
			uses[i] = store.NonceUse{Key: u.key, ExpiresAt: u.expiresAt, At: u.at}
		}
		results, err := db.useNoncesIn(ctx, stmts[0], uses)
		if err != nil {
			return db.fail("use nonce", err)
		}
		copy(errs, results)
		return nil
	})
	if err == nil {
		return errs
	}
	if errors.Is(err, store.ErrUnavailable) {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	for i, u := range batch {
		errs[i] = db.useNonces(ctx, []*nonceUse{u})[0]
	}
	return errs
}

// useNonce records one nonce in a commit of its own.
func (db *DB) useNonce(ctx context.Context, u *nonceUse) error {
	s, err := db.ws.get(ctx, db.d.q.useNonce)
	if err != nil {
		return db.fail("use nonce", err)
	}
	used, err := useNonceIn(ctx, s, u.key, u.expiresAt, micros(u.at))
	switch {
	case err != nil:
		return db.fail("use nonce", err)
	case used:
		return fmt.Errorf("sqlstore: nonce %q already used: %w", u.key, store.ErrConflict)
	}
	return nil
}

// useNonceIn runs the dialect's useNonce statement for one key: used reports a
// live record of key (no row inserted or replaced).
func useNonceIn(ctx context.Context, s *sql.Stmt, key string, expiresAt time.Time, now int64) (used bool, _ error) {
	res, err := s.ExecContext(ctx, key, micros(expiresAt), now)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n == 0, nil
}

// PurgeNonces deletes the nonces expired at t (expiresAt not after t).
func (db *DB) PurgeNonces(ctx context.Context, t time.Time) error {
	s, err := db.ws.get(ctx, db.d.q.purgeNonces)
	if err != nil {
		return db.fail("purge nonces", err)
	}
	if _, err := s.ExecContext(ctx, micros(t)); err != nil {
		return db.fail("purge nonces", err)
	}
	return nil
}

// AppendNonces records nonces and appends events in one transaction (see
// store.AuditNonces): the audit writer's commit carries the DPoP proofs' jti of
// the requests it serves, with no commit, and no fsync, of their own.
func (db *DB) AppendNonces(ctx context.Context, nonces []store.NonceUse, events []*store.AuditEvent, seal store.SealFunc) ([]error, error) {
	if len(events) == 0 {
		var results []error
		err := db.inTx(ctx, "use nonces", []string{db.d.q.useNonce}, func(_ *sql.Tx, stmts []*sql.Stmt) error {
			var err error
			if results, err = db.useNoncesIn(ctx, stmts[0], nonces); err != nil {
				return db.fail("use nonces", err)
			}
			return nil
		})
		return results, err
	}
	if err := checkEvents(events); err != nil {
		return nil, err
	}
	var results []error
	queries := append(db.appendQueries(len(events)), db.d.q.useNonce)
	err := db.inLockedTx(ctx, "append audit events", db.d.q.lockChain, queries, func(_ *sql.Tx, stmts []*sql.Stmt) error {
		var err error
		if results, err = db.useNoncesIn(ctx, stmts[len(stmts)-1], nonces); err != nil {
			return db.fail("use nonces", err)
		}
		return db.appendIn(ctx, stmts, events, seal)
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}
