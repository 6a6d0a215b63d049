package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// Revoke records, in one transaction, the revocation of r.JTI and of every token
// derived from it: the TokenJTI of allowed audit events whose ParentJTI is r.JTI or
// a descendant, transitively and however deep (one recursive query on the
// parent_jti index; every refresh adds a level, so a lineage grows for as long as
// its refresh tokens are used). A descendant's revocation expires with the token
// (its TokenExpires) and gives the reason "ancestor <r.JTI> revoked: <r.Reason>".
// Jtis revoked before keep their first revocation. It returns the revocation of
// every one of these jtis as stored, the root first, then descendants in the order
// they were issued. The event that event returns for them is appended to the chain
// in the same transaction, so a crash leaves both or neither.
func (db *DB) Revoke(ctx context.Context, r store.Revocation, event store.RevocationEvent, seal store.SealFunc) ([]store.Revocation, error) {
	if r.JTI == "" {
		return nil, errors.New("sqlstore: revoke: empty jti")
	}
	if event == nil || seal == nil {
		return nil, errors.New("sqlstore: revoke: no audit event")
	}
	var out []store.Revocation
	queries := append([]string{db.d.q.lineage, db.d.q.insertRevocation, db.d.q.revocationByJTI},
		db.appendQueries(1)...)
	err := db.inLockedTx(ctx, "revoke", db.d.q.lockChain, queries, func(_ *sql.Tx, stmts []*sql.Stmt) error {
		lineage, insert, get := stmts[0], stmts[1], stmts[2]
		type node struct {
			jti     string
			expires sql.NullInt64
		}
		rows, err := lineage.QueryContext(ctx, r.JTI, store.DecisionAllow)
		if err != nil {
			return db.fail("revoke: lineage", err)
		}
		nodes := []node{{r.JTI, sql.NullInt64{}}}
		if !r.ExpiresAt.IsZero() {
			nodes[0].expires = sql.NullInt64{Int64: micros(r.ExpiresAt), Valid: true}
		}
		for rows.Next() {
			var (
				n     node
				first int64
			)
			if err := rows.Scan(&n.jti, &n.expires, &first); err != nil {
				rows.Close()
				return db.fail("revoke: lineage", err)
			}
			nodes = append(nodes, n)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return db.fail("revoke: lineage", err)
		}

		childReason := fmt.Sprintf("ancestor %s revoked: %s", r.JTI, r.Reason)
		for i, n := range nodes {
			reason := r.Reason
			if i > 0 {
				reason = childReason
			}
			var expires any
			if n.expires.Valid {
				expires = n.expires.Int64
			}
			if _, err := insert.ExecContext(ctx, n.jti, expires, micros(r.RevokedAt), reason); err != nil {
				return db.fail("revoke: insert "+n.jti, err)
			}
			rev, err := scanRevocation(get.QueryRowContext(ctx, n.jti))
			if err != nil {
				return db.fail("revoke: read back "+n.jti, err)
			}
			out = append(out, rev)
		}
		e, err := event(out)
		if err != nil {
			return fmt.Errorf("sqlstore: revoke: the revocation event: %w", err)
		}
		if e == nil || e.ID == "" {
			return errors.New("sqlstore: revoke: the revocation event has no ID")
		}
		return db.appendIn(ctx, stmts[3:], []*store.AuditEvent{e}, seal)
	})
	if err != nil {
		return nil, err
	}
	db.notify(ctx, db.d.q.notifyRevocations)
	return out, nil
}

// ListRevocations returns the revocations of tokens that expire after t, and of
// those that never expire (zero ExpiresAt), oldest revocation first.
func (db *DB) ListRevocations(ctx context.Context, t time.Time) ([]store.Revocation, error) {
	s, err := db.rs.get(ctx, db.d.q.listRevocations)
	if err != nil {
		return nil, db.fail("list revocations", err)
	}
	rows, err := s.QueryContext(ctx, micros(t))
	if err != nil {
		return nil, db.fail("list revocations", err)
	}
	defer rows.Close()
	var out []store.Revocation
	for rows.Next() {
		rev, err := scanRevocation(rows)
		if err != nil {
			return nil, db.fail("list revocations", err)
		}
		out = append(out, rev)
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail("list revocations", err)
	}
	return out, nil
}

// RevocationsAfter returns at most limit revocations numbered above afterSeq, in
// order. Revoke numbers rows under the chain lock (PostgreSQL) or the one writer
// (SQLite), so numbers grow with commit order and a reader that has seen n has seen
// every revocation numbered below n.
func (db *DB) RevocationsAfter(ctx context.Context, afterSeq int64, limit int) ([]store.Revocation, error) {
	if limit <= 0 {
		return nil, nil
	}
	s, err := db.rs.get(ctx, db.d.q.revocationsAfter)
	if err != nil {
		return nil, db.fail("revocations after", err)
	}
	rows, err := s.QueryContext(ctx, afterSeq, limit)
	if err != nil {
		return nil, db.fail("revocations after", err)
	}
	defer rows.Close()
	var out []store.Revocation
	for rows.Next() {
		rev, err := scanRevocation(rows)
		if err != nil {
			return nil, db.fail("revocations after", err)
		}
		out = append(out, rev)
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail("revocations after", err)
	}
	return out, nil
}

// scanRevocation reads seq, jti, expires_at, revoked_at, reason.
func scanRevocation(row interface{ Scan(...any) error }) (store.Revocation, error) {
	var (
		rev     store.Revocation
		expires sql.NullInt64
		revoked int64
	)
	if err := row.Scan(&rev.Seq, &rev.JTI, &expires, &revoked, &rev.Reason); err != nil {
		return store.Revocation{}, err
	}
	rev.ExpiresAt, rev.RevokedAt = fromNullMicros(expires), fromMicros(revoked)
	return rev, nil
}
