package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// InsertCode adds c, its times kept at microsecond precision in UTC. A code whose
// Hash or ID exists already is store.ErrConflict.
func (db *DB) InsertCode(ctx context.Context, c store.AuthCode) error {
	if len(c.Hash) == 0 || c.ID == "" {
		return errors.New("sqlstore: insert authorization code: empty hash or id")
	}
	s, err := db.ws.get(ctx, db.d.q.insertCode)
	if err != nil {
		return db.fail("insert authorization code", err)
	}
	_, err = s.ExecContext(ctx, c.Hash, c.ID, c.ClientID, c.SessionID, c.Subject, c.RedirectURI,
		encodeList(c.Scopes), c.Nonce, c.CodeChallenge, c.IdP, encodeList(c.AMR), c.ACR,
		nullMicros(c.AuthTime), micros(c.ExpiresAt), nullMicros(c.RedeemedAt), c.DPoPJKT)
	if db.d.isConflict(err) {
		return fmt.Errorf("sqlstore: insert authorization code %q: hash or id exists: %w", c.ID, store.ErrConflict)
	}
	if err != nil {
		return db.fail("insert authorization code", err)
	}
	return nil
}

// RedeemCode marks the code whose Hash is hash redeemed at `at` and returns it, in
// one write transaction: a conditional UPDATE that only a code not redeemed yet
// passes, then a read of the row. Of any number of concurrent calls, in this
// process or others on the same database, exactly one passes; the others return
// the code with the winner's RedeemedAt and store.ErrConflict. store.ErrNotFound if
// no code has that hash. Expiry is not checked. The zero at is refused.
func (db *DB) RedeemCode(ctx context.Context, hash []byte, at time.Time) (store.AuthCode, error) {
	const op = "redeem authorization code"
	if err := nonZeroTime(op, at); err != nil {
		return store.AuthCode{}, err
	}
	var c store.AuthCode
	used, err := db.useOnce(ctx, op, db.d.q.redeemCode, db.d.q.codeByHash, hash, at, func(row *sql.Row) error {
		var err error
		c, err = scanCode(row)
		return err
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.AuthCode{}, fmt.Errorf("sqlstore: %s: %w", op, store.ErrNotFound)
	case err != nil:
		return store.AuthCode{}, err
	case used:
		return c, fmt.Errorf("sqlstore: %s %q: redeemed before, at %s: %w",
			op, c.ID, c.RedeemedAt.Format(time.RFC3339Nano), store.ErrConflict)
	}
	return c, nil
}

// ReleaseCode clears the redemption of the code whose Hash is hash if it was
// redeemed at `at` (a redemption whose tokens were not recorded); ErrConflict if
// it was not, ErrNotFound if there is no such code.
func (db *DB) ReleaseCode(ctx context.Context, hash []byte, at time.Time) error {
	return db.release(ctx, "release authorization code", db.d.q.releaseCode, db.d.q.codeByHash, hash, at,
		func(row *sql.Row) error { _, err := scanCode(row); return err })
}

// release runs query (parameters hash, at) on the writer and, when it changed no
// row, tells with read (parameter hash, its row passed to scan) whether the row
// exists.
func (db *DB) release(ctx context.Context, op, query, read string, hash []byte, at time.Time, scan func(*sql.Row) error) error {
	if err := nonZeroTime(op, at); err != nil {
		return err
	}
	s, err := db.ws.get(ctx, query)
	if err != nil {
		return db.fail(op, err)
	}
	res, err := s.ExecContext(ctx, hash, micros(at))
	if err != nil {
		return db.fail(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return db.fail(op, err)
	}
	if n > 0 {
		return nil
	}
	r, err := db.rs.get(ctx, read)
	if err != nil {
		return db.fail(op, err)
	}
	switch err := scan(r.QueryRowContext(ctx, hash)); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlstore: %s: %w", op, store.ErrNotFound)
	case err != nil:
		return db.fail(op, err)
	}
	return fmt.Errorf("sqlstore: %s: not used at %s: %w", op, at.UTC().Format(time.RFC3339Nano), store.ErrConflict)
}

// CodeByHash returns the code whose Hash is h without redeeming it.
// store.ErrNotFound if there is none.
func (db *DB) CodeByHash(ctx context.Context, h []byte) (store.AuthCode, error) {
	st, err := db.rs.get(ctx, db.d.q.codeByHash)
	if err != nil {
		return store.AuthCode{}, db.fail("authorization code by hash", err)
	}
	c, err := scanCode(st.QueryRowContext(ctx, h))
	if errors.Is(err, sql.ErrNoRows) {
		return store.AuthCode{}, fmt.Errorf("sqlstore: authorization code by hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.AuthCode{}, db.fail("authorization code by hash", err)
	}
	return c, nil
}

// useOnce runs, in one write transaction, update (parameters at, hash; affects no
// row once the row is used) and then read (parameter hash), whose row it passes to
// scan. used reports that the update affected nothing although the row exists: it
// had been used before. An absent row is sql.ErrNoRows, unwrapped.
func (db *DB) useOnce(ctx context.Context, op, update, read string, hash []byte, at time.Time,
	scan func(*sql.Row) error) (used bool, err error) {
	err = db.inTx(ctx, op, []string{update, read}, func(_ *sql.Tx, stmts []*sql.Stmt) error {
		res, err := stmts[0].ExecContext(ctx, micros(at), hash)
		if err != nil {
			return db.fail(op, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return db.fail(op, err)
		}
		if err := scan(stmts[1].QueryRowContext(ctx, hash)); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return err
			}
			return db.fail(op, err)
		}
		used = n == 0
		return nil
	})
	return used, err
}

// scanCode reads codeColumns.
func scanCode(row interface{ Scan(...any) error }) (store.AuthCode, error) {
	var (
		c                  store.AuthCode
		scopes, amr        string
		authTime, redeemed sql.NullInt64
		expires            int64
	)
	err := row.Scan(&c.Hash, &c.ID, &c.ClientID, &c.SessionID, &c.Subject, &c.RedirectURI,
		&scopes, &c.Nonce, &c.CodeChallenge, &c.IdP, &amr, &c.ACR, &authTime, &expires, &redeemed, &c.DPoPJKT)
	if err != nil {
		return store.AuthCode{}, err
	}
	c.Scopes, c.AMR = decodeList(scopes), decodeList(amr)
	c.AuthTime, c.ExpiresAt, c.RedeemedAt = fromNullMicros(authTime), fromMicros(expires), fromNullMicros(redeemed)
	return c, nil
}
