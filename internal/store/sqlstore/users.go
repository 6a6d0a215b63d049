package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// InsertUser adds u, its CreatedAt kept at microsecond precision in UTC, its
// claims as a JSON object and its roles as a list (sorted, without repeats:
// encodeRoles), and appends e (unless nil) in the same transaction. A
// username that exists already (compared exactly, case-sensitively) is
// store.ErrConflict.
func (db *DB) InsertUser(ctx context.Context, u store.User, e *store.AuditEvent, seal store.SealFunc) error {
	if u.Username == "" {
		return errors.New("sqlstore: insert user: empty username")
	}
	if store.CleanText(u.Username) != u.Username {
		return fmt.Errorf("sqlstore: insert user %q: a username is UTF-8 text without NUL", u.Username)
	}
	claims, err := encodeClaims(u.Claims)
	if err != nil {
		return fmt.Errorf("sqlstore: insert user %q: %w", u.Username, err)
	}
	roles, err := encodeRoles(u.Roles)
	if err != nil {
		return fmt.Errorf("sqlstore: insert user %q: %w", u.Username, err)
	}
	return db.changeUser(ctx, "insert user", db.d.q.insertUser, e, seal, func(s *sql.Stmt) error {
		_, err := s.ExecContext(ctx, u.Username, u.PasswordHash, claims, boolInt(u.Disabled), micros(u.CreatedAt), roles)
		if db.d.isConflict(err) {
			return fmt.Errorf("sqlstore: insert user %q: %w", u.Username, store.ErrConflict)
		}
		if err != nil {
			return db.fail("insert user", err)
		}
		return nil
	})
}

// changeUser runs change with the statement of query on the writer and, when e
// is not nil, appends e to the chain in the same transaction (holding the chain
// lock, as Append does).
func (db *DB) changeUser(ctx context.Context, op, query string, e *store.AuditEvent, seal store.SealFunc, change func(*sql.Stmt) error) error {
	if e == nil {
		s, err := db.ws.get(ctx, query)
		if err != nil {
			return db.fail(op, err)
		}
		return change(s)
	}
	if e.ID == "" || seal == nil {
		return fmt.Errorf("sqlstore: %s: the audit event has no ID or no seal", op)
	}
	queries := append([]string{query}, db.appendQueries(1)...)
	return db.inLockedTx(ctx, op, db.d.q.lockChain, queries, func(_ *sql.Tx, stmts []*sql.Stmt) error {
		if err := change(stmts[0]); err != nil {
			return err
		}
		return db.appendIn(ctx, stmts[1:], []*store.AuditEvent{e}, seal)
	})
}

// affectedOne fails with store.ErrNotFound when res changed no row.
func (db *DB) affectedOne(op, username string, res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return db.fail(op, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: %s %q: %w", op, username, store.ErrNotFound)
	}
	return nil
}

// UserByName returns the account named exactly username; store.ErrNotFound if
// there is none. Empty claims read back as a nil map.
func (db *DB) UserByName(ctx context.Context, username string) (store.User, error) {
	s, err := db.rs.get(ctx, db.d.q.userByName)
	if err != nil {
		return store.User{}, db.fail("user by name", err)
	}
	u, err := scanUser(s.QueryRowContext(ctx, store.CleanText(username)))
	if errors.Is(err, sql.ErrNoRows) {
		return store.User{}, fmt.Errorf("sqlstore: user %q: %w", username, store.ErrNotFound)
	}
	if err != nil {
		return store.User{}, db.fail("user by name", err)
	}
	return u, nil
}

// ListUsers returns every account ordered by username, byte-wise (as Go compares
// strings).
func (db *DB) ListUsers(ctx context.Context) ([]store.User, error) {
	s, err := db.rs.get(ctx, db.d.q.listUsers)
	if err != nil {
		return nil, db.fail("list users", err)
	}
	rows, err := s.QueryContext(ctx)
	if err != nil {
		return nil, db.fail("list users", err)
	}
	defer rows.Close()
	var users []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, db.fail("list users", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail("list users", err)
	}
	return users, nil
}

// SetUserDisabled disables or enables the account, and appends e (unless nil) in
// the same transaction; setting the state it has is not an error.
// store.ErrNotFound if there is no such account.
func (db *DB) SetUserDisabled(ctx context.Context, username string, disabled bool, e *store.AuditEvent, seal store.SealFunc) error {
	return db.changeUser(ctx, "set user disabled", db.d.q.setUserDisabled, e, seal, func(s *sql.Stmt) error {
		res, err := s.ExecContext(ctx, boolInt(disabled), store.CleanText(username))
		if err != nil {
			return db.fail("set user disabled", err)
		}
		return db.affectedOne("set user disabled", username, res)
	})
}

// SetUserRoles replaces the account's roles (stored sorted, without repeats), and
// appends e (unless nil) in the same transaction; store.ErrNotFound if there is
// no such account.
func (db *DB) SetUserRoles(ctx context.Context, username string, roles []string, e *store.AuditEvent, seal store.SealFunc) error {
	r, err := encodeRoles(roles)
	if err != nil {
		return fmt.Errorf("sqlstore: set roles of user %q: %w", username, err)
	}
	return db.changeUser(ctx, "set user roles", db.d.q.setUserRoles, e, seal, func(s *sql.Stmt) error {
		res, err := s.ExecContext(ctx, r, store.CleanText(username))
		if err != nil {
			return db.fail("set user roles", err)
		}
		return db.affectedOne("set user roles", username, res)
	})
}

// DeleteUser removes the account, and appends e (unless nil) in the same
// transaction; store.ErrNotFound if there is none.
func (db *DB) DeleteUser(ctx context.Context, username string, e *store.AuditEvent, seal store.SealFunc) error {
	return db.changeUser(ctx, "delete user", db.d.q.deleteUser, e, seal, func(s *sql.Stmt) error {
		res, err := s.ExecContext(ctx, store.CleanText(username))
		if err != nil {
			return db.fail("delete user", err)
		}
		return db.affectedOne("delete user", username, res)
	})
}

// scanUser reads userColumns.
func scanUser(row interface{ Scan(...any) error }) (store.User, error) {
	var (
		u        store.User
		claims   string
		disabled int64
		created  int64
		roles    string
	)
	if err := row.Scan(&u.Username, &u.PasswordHash, &claims, &disabled, &created, &roles); err != nil {
		return store.User{}, err
	}
	c, err := decodeClaims(claims)
	if err != nil {
		return store.User{}, fmt.Errorf("claims of user %q: %w", u.Username, err)
	}
	u.Claims, u.Roles, u.Disabled, u.CreatedAt = c, decodeList(roles), disabled != 0, fromMicros(created)
	return u, nil
}

// Roles are stored as the other lists are (encodeList: " auditor x ", so that
// instr(roles, ' auditor ') > 0 finds the holders of a role on either engine),
// sorted byte-wise and without repeats: one spelling per set; no roles is the
// empty string. A
// role that is empty or not UTF-8 text without NUL is refused: it would not read
// back as written.
func encodeRoles(roles []string) (string, error) {
	for _, r := range roles {
		if r == "" || store.CleanText(r) != r {
			return "", fmt.Errorf("role %q is not a role name", r)
		}
	}
	return encodeList(slices.Compact(slices.Sorted(slices.Values(roles)))), nil
}

// Claims are stored as a JSON object of strings, keys sorted, HTML characters not
// escaped (so that an operator reads them as they are); no claims is "{}".
func encodeClaims(c map[string]string) (string, error) {
	if len(c) == 0 {
		return "{}", nil
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		return "", err
	}
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n"))), nil
}

// decodeClaims reads what encodeClaims wrote; no claims is a nil map.
func decodeClaims(s string) (map[string]string, error) {
	var c map[string]string
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		return nil, err
	}
	if len(c) == 0 {
		return nil, nil
	}
	return c, nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// nonZeroTime refuses the zero time where a method's time marks an event (a
// redemption, a use, an end): stored, it would read back as "never".
func nonZeroTime(op string, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("sqlstore: %s: zero time", op)
	}
	return nil
}
