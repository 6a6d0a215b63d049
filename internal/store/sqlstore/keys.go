package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// InsertKey adds k. Its times are kept at microsecond precision, in UTC. A key whose
// ID exists already is store.ErrConflict.
func (db *DB) InsertKey(ctx context.Context, k store.Key) error {
	s, err := db.ws.get(ctx, db.d.q.insertKey)
	if err != nil {
		return db.fail("insert key", err)
	}
	_, err = s.ExecContext(ctx, k.ID, k.Algorithm, k.Private,
		micros(k.CreatedAt), micros(k.ActiveAt), nullMicros(k.RetiredAt))
	if db.d.isConflict(err) {
		return fmt.Errorf("sqlstore: insert key %q: %w", k.ID, store.ErrConflict)
	}
	if err != nil {
		return db.fail("insert key", err)
	}
	db.notify(ctx, db.d.q.notifyKeys)
	return nil
}

// RotateKeys inserts r.Add, retires r.Retire at r.RetireAt and appends events, in
// one transaction holding the chain (as Append does); see store.Keys.
func (db *DB) RotateKeys(ctx context.Context, r store.KeyRotation, events []*store.AuditEvent, seal store.SealFunc) error {
	const op = "rotate keys"
	for i, e := range events {
		if e == nil || e.ID == "" || seal == nil {
			return fmt.Errorf("sqlstore: %s: event %d has no ID, or there is no seal", op, i)
		}
	}
	queries := append([]string{db.d.q.insertKey, db.d.q.retireKey}, db.appendQueries(len(events))...)
	err := db.inLockedTx(ctx, op, db.d.q.lockChain, queries, func(_ *sql.Tx, stmts []*sql.Stmt) error {
		for _, k := range r.Add {
			_, err := stmts[0].ExecContext(ctx, k.ID, k.Algorithm, k.Private,
				micros(k.CreatedAt), micros(k.ActiveAt), nullMicros(k.RetiredAt))
			if db.d.isConflict(err) {
				return fmt.Errorf("sqlstore: %s: insert key %q: %w", op, k.ID, store.ErrConflict)
			}
			if err != nil {
				return db.fail(op, err)
			}
		}
		for _, id := range r.Retire {
			res, err := stmts[1].ExecContext(ctx, nullMicros(r.RetireAt), id)
			if err != nil {
				return db.fail(op, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return db.fail(op, err)
			}
			if n == 0 {
				return fmt.Errorf("sqlstore: %s: retire key %q: %w", op, id, store.ErrNotFound)
			}
		}
		if len(events) == 0 {
			return nil
		}
		return db.appendIn(ctx, stmts[2:], events, seal)
	})
	if err != nil {
		return err
	}
	db.notify(ctx, db.d.q.notifyKeys)
	return nil
}

// ListKeys returns every key, oldest (CreatedAt) first, ties in ID order.
func (db *DB) ListKeys(ctx context.Context) ([]store.Key, error) {
	s, err := db.rs.get(ctx, db.d.q.listKeys)
	if err != nil {
		return nil, db.fail("list keys", err)
	}
	rows, err := s.QueryContext(ctx)
	if err != nil {
		return nil, db.fail("list keys", err)
	}
	defer rows.Close()
	var keys []store.Key
	for rows.Next() {
		var (
			k                  store.Key
			created, activated int64
			retired            sql.NullInt64
		)
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.Private, &created, &activated, &retired); err != nil {
			return nil, db.fail("list keys", err)
		}
		k.CreatedAt, k.ActiveAt, k.RetiredAt = fromMicros(created), fromMicros(activated), fromNullMicros(retired)
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail("list keys", err)
	}
	return keys, nil
}

// RetireKey sets the RetiredAt of key id to at (replacing an earlier one);
// store.ErrNotFound if there is no such key.
func (db *DB) RetireKey(ctx context.Context, id string, at time.Time) error {
	s, err := db.ws.get(ctx, db.d.q.retireKey)
	if err != nil {
		return db.fail("retire key", err)
	}
	res, err := s.ExecContext(ctx, nullMicros(at), id)
	if err != nil {
		return db.fail("retire key", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return db.fail("retire key", err)
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: retire key %q: %w", id, store.ErrNotFound)
	}
	db.notify(ctx, db.d.q.notifyKeys)
	return nil
}

// ReplaceKeyPrivate sets the private key of id to next where it is still old;
// store.ErrConflict if it is not (another process replaced it) or id is absent.
func (db *DB) ReplaceKeyPrivate(ctx context.Context, id string, old, next []byte) error {
	s, err := db.ws.get(ctx, db.d.q.replaceKeyPrivate)
	if err != nil {
		return db.fail("replace key", err)
	}
	res, err := s.ExecContext(ctx, next, id, old)
	if err != nil {
		return db.fail("replace key", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return db.fail("replace key", err)
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: replace key %q: %w", id, store.ErrConflict)
	}
	db.notify(ctx, db.d.q.notifyKeys)
	return nil
}

// eraseCheckpointAttempts and eraseCheckpointWait bound how long EraseFreed waits
// for the readers of the WAL to let it be truncated (about two seconds).
const (
	eraseCheckpointAttempts = 100
	eraseCheckpointWait     = 20 * time.Millisecond
)

// EraseFreed, on SQLite, rewrites the database file with only its live content
// (VACUUM: the pages and free space that held replaced rows are gone) and then
// copies the WAL into it and truncates it to nothing, so neither file keeps the
// bytes of a row replaced before the writer's secure_delete zeroed what it frees
// (a database written by an older deputy, or pages freed before). It takes as
// long as copying the database twice, and as much free disk: it is for a one-off
// change such as encrypting the stored keys. On PostgreSQL and an in-memory
// database it does nothing.
func (db *DB) EraseFreed(ctx context.Context) error {
	if db.d.name != "sqlite" || db.w == db.r {
		return nil
	}
	if _, err := db.w.ExecContext(ctx, "VACUUM"); err != nil {
		return db.fail("erase freed pages: vacuum", err)
	}
	// A reader of the WAL (a query on another connection, the checkpoint beside
	// the writer) holds the truncation back for as long as it reads: try again a
	// while before giving up.
	var busy, frames, copied int
	for attempt := 0; ; attempt++ {
		if err := db.w.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &frames, &copied); err != nil {
			return db.fail("erase freed pages: checkpoint", err)
		}
		if busy == 0 || attempt == eraseCheckpointAttempts {
			break
		}
		select {
		case <-ctx.Done():
			return db.fail("erase freed pages: checkpoint", ctx.Err())
		case <-time.After(eraseCheckpointWait):
		}
	}
	if busy != 0 {
		return fmt.Errorf("sqlstore: erase freed pages: the WAL could not be emptied, another connection reads from it: %w", store.ErrUnavailable)
	}
	return nil
}
