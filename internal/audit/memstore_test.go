package audit

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// backend is what the tests of this package need from storage. memStore is the
// in-memory one; sqlstore can be added to backends once it exists (a test file in
// this package importing sqlstore does not create a cycle: sqlstore does not import
// audit).
type backend interface {
	store.AuditLog
	store.Revocations
}

// tamperer is the extra ability the Verify tests need: changing stored records
// behind the chain's back, as someone with write access to the table could.
type tamperer interface {
	// alter changes the stored record with that seq in place.
	alter(t *testing.T, seq int64, fn func(*store.AuditEvent))
	// remove deletes the stored record with that seq.
	remove(t *testing.T, seq int64)
}

// backends are the storage implementations every test runs against.
var backends = []struct {
	name string
	open func(t *testing.T) backend
}{
	{"mem", func(*testing.T) backend { return newMemStore() }},
}

func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, bk := range backends {
		t.Run(bk.name, func(t *testing.T) { fn(t, bk.open(t)) })
	}
}

// memStore is an in-memory store.AuditLog and store.Revocations, faithful to the
// contract of internal/store: Append is atomic, events are copied in and out, and
// Revoke cascades through the lineage of allow events (ParentJTI → TokenJTI).
type memStore struct {
	mu      sync.Mutex
	events  []store.AuditEvent // chain order
	ids     map[string]int     // event id → index in events
	revoked map[string]store.Revocation
	seq     int64 // of the last revocation
}

func newMemStore() *memStore {
	return &memStore{ids: map[string]int{}, revoked: map[string]store.Revocation{}}
}

func cloneEvent(e store.AuditEvent) store.AuditEvent {
	e.Actors = slices.Clone(e.Actors)
	e.Audiences = slices.Clone(e.Audiences)
	e.Scopes = slices.Clone(e.Scopes)
	e.PrevHash = slices.Clone(e.PrevHash)
	e.Hash = slices.Clone(e.Hash)
	return e
}

func (m *memStore) Append(ctx context.Context, events []*store.AuditEvent, seal store.SealFunc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.appendLocked(events, seal)
}

// appendLocked is Append with m.mu held.
func (m *memStore) appendLocked(events []*store.AuditEvent, seal store.SealFunc) error {
	var (
		seq  int64
		prev []byte
	)
	if n := len(m.events); n > 0 {
		seq, prev = m.events[n-1].Seq, m.events[n-1].Hash
	}
	for i, e := range events {
		if _, revoked := m.revoked[e.ParentJTI]; revoked && store.IssuesFromParent(e) {
			return &store.ParentRevokedError{Index: i, ParentJTI: e.ParentJTI}
		}
	}
	staged := make([]store.AuditEvent, 0, len(events))
	ids := map[string]bool{}
	for _, e := range events {
		if _, dup := m.ids[e.ID]; dup || ids[e.ID] {
			return fmt.Errorf("mem: event id %q: %w", e.ID, store.ErrConflict)
		}
		ids[e.ID] = true
		seq++
		e.Seq = seq
		seal(prev, e)
		prev = e.Hash
		staged = append(staged, cloneEvent(*e))
	}
	for _, e := range staged {
		m.ids[e.ID] = len(m.events)
		m.events = append(m.events, e)
	}
	return nil
}

func (m *memStore) snapshot() []store.AuditEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]store.AuditEvent, len(m.events))
	for i, e := range m.events {
		out[i] = cloneEvent(e)
	}
	return out
}

func (m *memStore) Scan(ctx context.Context, afterSeq int64, fn func(store.AuditEvent) error) error {
	for _, e := range m.snapshot() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.Seq <= afterSeq {
			continue
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) Query(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	var out []store.AuditEvent
	for _, e := range m.snapshot() {
		switch {
		case e.Seq <= f.AfterSeq,
			f.Subject != "" && e.Subject != f.Subject,
			f.Actor != "" && !slices.Contains(e.Actors, f.Actor),
			f.ClientID != "" && e.ClientID != f.ClientID,
			f.Audience != "" && !slices.Contains(e.Audiences, f.Audience),
			f.Type != "" && e.Type != f.Type,
			f.TraceID != "" && e.TraceID != f.TraceID,
			!f.Since.IsZero() && e.Time.Before(f.Since),
			!f.Until.IsZero() && e.Time.After(f.Until):
			continue
		}
		out = append(out, e)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, ctx.Err()
}

func (m *memStore) EventByID(ctx context.Context, id string) (store.AuditEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i, ok := m.ids[id]; ok {
		return cloneEvent(m.events[i]), nil
	}
	return store.AuditEvent{}, fmt.Errorf("mem: event %q: %w", id, store.ErrNotFound)
}

func (m *memStore) EventsByToken(ctx context.Context, jti string) ([]store.AuditEvent, error) {
	var out []store.AuditEvent
	for _, e := range m.snapshot() {
		if e.TokenJTI == jti {
			out = append(out, e)
		}
	}
	return out, ctx.Err()
}

func (m *memStore) EventsByParent(ctx context.Context, jti string) ([]store.AuditEvent, error) {
	var out []store.AuditEvent
	for _, e := range m.snapshot() {
		if e.ParentJTI == jti {
			out = append(out, e)
		}
	}
	return out, ctx.Err()
}

// Revoke records r and the revocation of every token derived from r.JTI through
// allow events (ParentJTI → TokenJTI), breadth first, the root first, and appends
// the event that event returns for them; if that fails, nothing is recorded. A
// token that is already revoked keeps its first revocation, which is returned.
func (m *memStore) Revoke(ctx context.Context, r store.Revocation, event store.RevocationEvent, seal store.SealFunc) ([]store.Revocation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	children := map[string][]store.AuditEvent{}
	for _, e := range m.events {
		if store.IssuesFromParent(&e) {
			children[e.ParentJTI] = append(children[e.ParentJTI], e)
		}
	}
	var (
		out   []store.Revocation
		added []string
	)
	seq := m.seq
	seen := map[string]bool{r.JTI: true}
	todo := []store.Revocation{r}
	for len(todo) > 0 {
		x := todo[0]
		todo = todo[1:]
		if old, ok := m.revoked[x.JTI]; ok {
			x = old
		} else {
			seq++
			x.Seq = seq
			m.revoked[x.JTI] = x
			added = append(added, x.JTI)
		}
		out = append(out, x)
		for _, c := range children[x.JTI] {
			if seen[c.TokenJTI] {
				continue
			}
			seen[c.TokenJTI] = true
			todo = append(todo, store.Revocation{JTI: c.TokenJTI, ExpiresAt: c.TokenExpires, RevokedAt: r.RevokedAt, Reason: r.Reason})
		}
	}
	undo := func() {
		for _, j := range added {
			delete(m.revoked, j)
		}
	}
	e, err := event(out)
	if err == nil {
		err = m.appendLocked([]*store.AuditEvent{e}, seal)
	}
	if err != nil {
		undo()
		return nil, err
	}
	m.seq = seq
	return out, nil
}

func (m *memStore) ListRevocations(ctx context.Context, t time.Time) ([]store.Revocation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.Revocation
	for _, r := range m.revoked {
		if r.ExpiresAt.After(t) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b store.Revocation) int { return a.RevokedAt.Compare(b.RevokedAt) })
	return out, ctx.Err()
}

func (m *memStore) RevocationsAfter(ctx context.Context, afterSeq int64, limit int) ([]store.Revocation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.Revocation
	for _, r := range m.revoked {
		if r.Seq > afterSeq {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b store.Revocation) int { return cmp.Compare(a.Seq, b.Seq) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, ctx.Err()
}

func (m *memStore) alter(t *testing.T, seq int64, fn func(*store.AuditEvent)) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.events {
		if m.events[i].Seq == seq {
			fn(&m.events[i])
			return
		}
	}
	t.Fatalf("alter: no record with seq %d", seq)
}

func (m *memStore) remove(t *testing.T, seq int64) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.events {
		if m.events[i].Seq == seq {
			m.events = slices.Delete(m.events, i, i+1)
			clear(m.ids)
			for j, e := range m.events {
				m.ids[e.ID] = j
			}
			return
		}
	}
	t.Fatalf("remove: no record with seq %d", seq)
}

// countingLog wraps a store.AuditLog, counting Append calls and the events they
// carried, and optionally failing or gating them.
type countingLog struct {
	store.AuditLog
	mu      sync.Mutex
	appends int
	events  int
	largest int
	// before, if set, runs before each Append (outside mu) and may fail it.
	before func(n int, events []*store.AuditEvent) error
}

func (c *countingLog) Append(ctx context.Context, events []*store.AuditEvent, seal store.SealFunc) error {
	c.mu.Lock()
	c.appends++
	n := c.appends
	before := c.before
	c.mu.Unlock()
	if before != nil {
		if err := before(n, events); err != nil {
			return err
		}
	}
	if err := c.AuditLog.Append(ctx, events, seal); err != nil {
		return err
	}
	c.mu.Lock()
	c.events += len(events)
	c.largest = max(c.largest, len(events))
	c.mu.Unlock()
	return nil
}

func (c *countingLog) stats() (appends, events, largest int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.appends, c.events, c.largest
}
