package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// InsertRefreshToken adds t, its times kept at microsecond precision in UTC. A
// token whose Hash or ID exists already is store.ErrConflict.
func (db *DB) InsertRefreshToken(ctx context.Context, t store.RefreshToken) error {
	if len(t.Hash) == 0 || t.ID == "" {
		return errors.New("sqlstore: insert refresh token: empty hash or id")
	}
	s, err := db.ws.get(ctx, db.d.q.insertRefreshToken)
	if err != nil {
		return db.fail("insert refresh token", err)
	}
	_, err = s.ExecContext(ctx, t.Hash, t.ID, t.FamilyID, t.ClientID, t.SessionID, t.Subject,
		encodeList(t.Scopes), encodeList(t.Audiences), t.IdP, encodeList(t.AMR), t.ACR,
		nullMicros(t.AuthTime), micros(t.IssuedAt), micros(t.ExpiresAt), nullMicros(t.UsedAt),
		t.Rule, t.Act, t.Claims, t.JKT)
	if db.d.isConflict(err) {
		return fmt.Errorf("sqlstore: insert refresh token %q: hash or id exists: %w", t.ID, store.ErrConflict)
	}
	if err != nil {
		return db.fail("insert refresh token", err)
	}
	return nil
}

// UseRefreshToken marks the token whose Hash is hash used at `at` and returns it,
// as RedeemCode does for codes: of any number of concurrent calls, in this process
// or others on the same database, exactly one passes; the others return the token
// with the winner's UsedAt and store.ErrConflict. store.ErrNotFound if no token has
// that hash. Expiry is not checked. The zero at is refused.
func (db *DB) UseRefreshToken(ctx context.Context, hash []byte, at time.Time) (store.RefreshToken, error) {
	const op = "use refresh token"
	if err := nonZeroTime(op, at); err != nil {
		return store.RefreshToken{}, err
	}
	var t store.RefreshToken
	used, err := db.useOnce(ctx, op, db.d.q.useRefreshToken, db.d.q.refreshTokenByHash, hash, at, func(row *sql.Row) error {
		var err error
		t, err = scanRefreshToken(row)
		return err
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.RefreshToken{}, fmt.Errorf("sqlstore: %s: %w", op, store.ErrNotFound)
	case err != nil:
		return store.RefreshToken{}, err
	case used:
		return t, fmt.Errorf("sqlstore: %s %q (family %q): used before, at %s: %w",
			op, t.ID, t.FamilyID, t.UsedAt.Format(time.RFC3339Nano), store.ErrConflict)
	}
	return t, nil
}

// ReleaseRefreshToken clears the use of the token whose Hash is hash if it was
// used at `at` (a rotation whose tokens were not recorded); ErrConflict if it
// was not, ErrNotFound if there is no such token.
func (db *DB) ReleaseRefreshToken(ctx context.Context, hash []byte, at time.Time) error {
	return db.release(ctx, "release refresh token", db.d.q.releaseRefreshToken, db.d.q.refreshTokenByHash, hash, at,
		func(row *sql.Row) error { _, err := scanRefreshToken(row); return err })
}

// scanRefreshToken reads refreshTokenColumns.
func scanRefreshToken(row interface{ Scan(...any) error }) (store.RefreshToken, error) {
	var (
		t                      store.RefreshToken
		scopes, audiences, amr string
		authTime, used         sql.NullInt64
		issued, expires        int64
	)
	err := row.Scan(&t.Hash, &t.ID, &t.FamilyID, &t.ClientID, &t.SessionID, &t.Subject,
		&scopes, &audiences, &t.IdP, &amr, &t.ACR, &authTime, &issued, &expires, &used,
		&t.Rule, &t.Act, &t.Claims, &t.JKT)
	if err != nil {
		return store.RefreshToken{}, err
	}
	t.Scopes, t.Audiences, t.AMR = decodeList(scopes), decodeList(audiences), decodeList(amr)
	t.AuthTime, t.IssuedAt = fromNullMicros(authTime), fromMicros(issued)
	t.ExpiresAt, t.UsedAt = fromMicros(expires), fromNullMicros(used)
	return t, nil
}

// RefreshTokenByHash returns the token whose Hash is h without using it.
// store.ErrNotFound if there is none.
func (db *DB) RefreshTokenByHash(ctx context.Context, h []byte) (store.RefreshToken, error) {
	st, err := db.rs.get(ctx, db.d.q.refreshTokenByHash)
	if err != nil {
		return store.RefreshToken{}, db.fail("refresh token by hash", err)
	}
	t, err := scanRefreshToken(st.QueryRowContext(ctx, h))
	if errors.Is(err, sql.ErrNoRows) {
		return store.RefreshToken{}, fmt.Errorf("sqlstore: refresh token by hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.RefreshToken{}, db.fail("refresh token by hash", err)
	}
	return t, nil
}
