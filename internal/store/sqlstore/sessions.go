package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// InsertSession adds s, its times kept at microsecond precision in UTC. A session
// whose ID or TokenHash exists already is store.ErrConflict.
func (db *DB) InsertSession(ctx context.Context, s store.Session) error {
	if s.ID == "" || len(s.TokenHash) == 0 {
		return errors.New("sqlstore: insert session: empty id or token hash")
	}
	st, err := db.ws.get(ctx, db.d.q.insertSession)
	if err != nil {
		return db.fail("insert session", err)
	}
	_, err = st.ExecContext(ctx, s.ID, s.TokenHash, s.Subject, s.IdP, encodeList(s.AMR), s.ACR,
		micros(s.AuthTime), micros(s.ExpiresAt), nullMicros(s.EndedAt))
	if db.d.isConflict(err) {
		return fmt.Errorf("sqlstore: insert session %q: id or token hash exists: %w", s.ID, store.ErrConflict)
	}
	if err != nil {
		return db.fail("insert session", err)
	}
	return nil
}

// SessionByTokenHash returns the session whose TokenHash is h, whether it is
// active, ended or expired; store.ErrNotFound if there is none.
func (db *DB) SessionByTokenHash(ctx context.Context, h []byte) (store.Session, error) {
	st, err := db.rs.get(ctx, db.d.q.sessionByTokenHash)
	if err != nil {
		return store.Session{}, db.fail("session by token hash", err)
	}
	s, err := scanSession(st.QueryRowContext(ctx, h))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Session{}, fmt.Errorf("sqlstore: session by token hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Session{}, db.fail("session by token hash", err)
	}
	return s, nil
}

// EndSession sets the EndedAt of session id to at, in one statement: a session
// ended before keeps its first EndedAt, and that is not an error. store.ErrNotFound
// if there is no such session. The zero at is refused.
func (db *DB) EndSession(ctx context.Context, id string, at time.Time) error {
	if err := nonZeroTime("end session", at); err != nil {
		return err
	}
	st, err := db.ws.get(ctx, db.d.q.endSession)
	if err != nil {
		return db.fail("end session", err)
	}
	res, err := st.ExecContext(ctx, micros(at), id)
	if err != nil {
		return db.fail("end session", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return db.fail("end session", err)
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: end session %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// scanSession reads sessionColumns.
func scanSession(row interface{ Scan(...any) error }) (store.Session, error) {
	var (
		s                 store.Session
		amr               string
		authTime, expires int64
		ended             sql.NullInt64
	)
	if err := row.Scan(&s.ID, &s.TokenHash, &s.Subject, &s.IdP, &amr, &s.ACR, &authTime, &expires, &ended); err != nil {
		return store.Session{}, err
	}
	s.AMR = decodeList(amr)
	s.AuthTime, s.ExpiresAt, s.EndedAt = fromMicros(authTime), fromMicros(expires), fromNullMicros(ended)
	return s, nil
}
