package sqlstore

import (
	"context"
	"database/sql"
	"time"
)

// PurgeExpired deletes, in one transaction, the authorization codes, refresh tokens
// and sessions whose ExpiresAt is before t (a row expiring at t itself is kept),
// redeemed, used and ended or not; nothing else. A t between two microseconds
// counts the earlier one as before it.
func (db *DB) PurgeExpired(ctx context.Context, t time.Time) error {
	cut := micros(t)
	if t.Nanosecond()%1000 != 0 {
		cut++ // the first microsecond not before t
	}
	queries := []string{db.d.q.purgeCodes, db.d.q.purgeRefreshTokens, db.d.q.purgeSessions}
	return db.inTx(ctx, "purge expired", queries, func(_ *sql.Tx, stmts []*sql.Stmt) error {
		for _, s := range stmts {
			if _, err := s.ExecContext(ctx, cut); err != nil {
				return db.fail("purge expired", err)
			}
		}
		return nil
	})
}
