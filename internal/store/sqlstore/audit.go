package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/deputy-auth/deputy/internal/store"
)

// scanPage is how many events Scan reads per query. Scan holds no read transaction
// while fn runs, so a long scan neither blocks WAL checkpoints nor pins a connection.
const scanPage = 512

// Append stores events at the end of the chain in one transaction, durable when
// Append returns nil. For each event in order it sets Seq, normalises the fields the
// way the store gives them back (times to UTC microseconds, empty lists and hashes
// to nil) so that what seal hashes is what is read back, calls seal with the hash of
// the event before it, and inserts it. An event whose ID exists already is
// store.ErrConflict, and nothing is stored. If Append fails, the Seq, PrevHash and
// Hash it set mean nothing.
//
// An allowed event that issues a token from a parent (store.IssuesFromParent) whose
// parent is revoked is refused with a *store.ParentRevokedError, nothing stored:
// checked in the same transaction, which on PostgreSQL holds the chain lock that
// Revoke takes too.
func (db *DB) Append(ctx context.Context, events []*store.AuditEvent, seal store.SealFunc) error {
	if len(events) == 0 {
		return nil
	}
	if err := checkEvents(events); err != nil {
		return err
	}
	return db.inLockedTx(ctx, "append audit events", db.d.q.lockChain, db.appendQueries(len(events)), func(_ *sql.Tx, stmts []*sql.Stmt) error {
		return db.appendIn(ctx, stmts, events, seal)
	})
}

// checkEvents refuses a batch with a nil event or one without an ID.
func checkEvents(events []*store.AuditEvent) error {
	for i, e := range events {
		if e == nil || e.ID == "" {
			return fmt.Errorf("sqlstore: append: event %d has no ID", i)
		}
	}
	return nil
}

// appendQueries are the statements appendIn runs to append n events, in the
// order it takes them: the tail, the revocation check, the insert of a full chunk
// (maxInsertEvents rows, or n if fewer) and that of the last chunk's remainder.
// They are prepared before the transaction begins: SQLite's writer pool has one
// connection, which the transaction holds.
func (db *DB) appendQueries(n int) []string {
	full := min(max(n, 1), maxInsertEvents)
	rest := full
	if n > maxInsertEvents && n%maxInsertEvents != 0 {
		rest = n % maxInsertEvents
	}
	return []string{db.d.q.auditTail, db.d.q.isRevoked, db.d.q.insertEvents[full], db.d.q.insertEvents[rest]}
}

// appendIn is Append inside a transaction that holds the chain (the chain lock on
// PostgreSQL, the one writer on SQLite), with the statements of
// appendQueries(len(events)) bound to it.
func (db *DB) appendIn(ctx context.Context, stmts []*sql.Stmt, events []*store.AuditEvent, seal store.SealFunc) error {
	tail, revoked, insertFull, insertRest := stmts[0], stmts[1], stmts[2], stmts[3]
	checked := make(map[string]bool, 4) // parents known not revoked
	for i, e := range events {
		if !store.IssuesFromParent(e) || checked[e.ParentJTI] {
			continue
		}
		checked[e.ParentJTI] = true
		var one int
		err := revoked.QueryRowContext(ctx, e.ParentJTI).Scan(&one)
		if err == nil {
			return &store.ParentRevokedError{Index: i, ParentJTI: e.ParentJTI}
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return db.fail("append audit events: is the parent revoked", err)
		}
	}
	var (
		seq  int64
		prev []byte
	)
	err := tail.QueryRowContext(ctx).Scan(&seq, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return db.fail("append audit events: read the tail", err)
	}
	for _, e := range events {
		seq++
		e.Seq = seq
		normaliseEvent(e)
		seal(prev, e)
		if len(e.PrevHash) == 0 {
			e.PrevHash = nil
		}
		if len(e.Hash) == 0 {
			e.Hash = nil
		}
		prev = e.Hash
	}
	full := min(len(events), maxInsertEvents)
	for len(events) > 0 {
		chunk := events[:min(len(events), full)]
		events = events[len(chunk):]
		insert := insertFull
		if len(chunk) < full {
			insert = insertRest
		}
		if err := db.insertEvents(ctx, insert, chunk); err != nil {
			return err
		}
	}
	return nil
}

// insertEvents runs insert, a statement of the dialect's insertEvents for
// len(events) rows, with the columns of each event in turn.
func (db *DB) insertEvents(ctx context.Context, insert *sql.Stmt, events []*store.AuditEvent) error {
	args := make([]any, 0, len(events)*eventColumnCount)
	for _, e := range events {
		args = append(args, e.Seq, e.ID, micros(e.Time), e.Type, e.ClientID,
			e.Subject, e.SubjectIssuer, encodeList(e.Actors), encodeList(e.Audiences),
			encodeList(e.Scopes), e.ParentJTI, e.TokenJTI, nullMicros(e.TokenExpires),
			e.Decision, e.Reason, e.Rule, e.RequestID, e.RemoteAddr, e.Detail,
			e.PrevHash, e.Hash, e.TraceID)
	}
	_, err := insert.ExecContext(ctx, args...)
	what := fmt.Sprintf("append audit event %q", events[0].ID)
	if len(events) > 1 {
		what = fmt.Sprintf("append audit events %q to %q", events[0].ID, events[len(events)-1].ID)
	}
	if db.d.isConflict(err) {
		return fmt.Errorf("sqlstore: %s: %w", what, store.ErrConflict)
	}
	if err != nil {
		return db.fail(what, err)
	}
	return nil
}

// eventColumnCount is how many columns insertEvent sets per event.
const eventColumnCount = 22

// normaliseEvent gives e the values a round trip through the database gives back.
func normaliseEvent(e *store.AuditEvent) {
	e.Time = normalTime(e.Time)
	e.TokenExpires = normalTime(e.TokenExpires)
	for _, l := range []*[]string{&e.Actors, &e.Audiences, &e.Scopes} {
		if len(*l) == 0 {
			*l = nil
		}
	}
}

// Scan calls fn for every event with Seq > afterSeq in chain order, reading them a
// page at a time; it returns the first error of fn unchanged.
func (db *DB) Scan(ctx context.Context, afterSeq int64, fn func(store.AuditEvent) error) error {
	s, err := db.rs.get(ctx, db.d.q.scanEvents)
	if err != nil {
		return db.fail("scan audit events", err)
	}
	for {
		page, err := db.queryEvents(ctx, "scan audit events", s, afterSeq, scanPage)
		if err != nil {
			return err
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(page) < scanPage {
			return nil
		}
		afterSeq = page[len(page)-1].Seq
	}
}

// Query returns the events matching every non-empty field of f, in chain order.
// Since and Until are both inclusive. Actor and Audience match an element of
// the list exactly (case-sensitively, no wildcards).
func (db *DB) Query(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	var (
		conds []string
		args  []any
	)
	param := func(v any) string {
		if t, ok := v.(string); ok {
			v = store.CleanText(t)
		}
		args = append(args, v)
		return db.d.placeholder(len(args))
	}
	if f.Subject != "" {
		conds = append(conds, "subject = "+param(f.Subject))
	}
	if f.Actor != "" {
		conds = append(conds, db.d.contains("actors", param(listNeedle(f.Actor))))
	}
	if f.ClientID != "" {
		conds = append(conds, "client_id = "+param(f.ClientID))
	}
	if f.Audience != "" {
		conds = append(conds, db.d.contains("audiences", param(listNeedle(f.Audience))))
	}
	if f.Type != "" {
		conds = append(conds, "type = "+param(f.Type))
	}
	if f.TraceID != "" {
		// The second condition lets SQLite use the partial index.
		conds = append(conds, "trace_id = "+param(f.TraceID)+" AND trace_id <> ''")
	}
	if !f.Since.IsZero() {
		since := micros(f.Since)
		if f.Since.Nanosecond()%1000 != 0 {
			since++ // the first microsecond not before Since
		}
		conds = append(conds, "time >= "+param(since))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "time <= "+param(micros(f.Until)))
	}
	if f.AfterSeq > 0 {
		conds = append(conds, "seq > "+param(f.AfterSeq))
	}
	var b strings.Builder
	b.WriteString(db.d.q.selectEvents)
	if len(conds) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(conds, " AND "))
	}
	b.WriteString(" ORDER BY seq")
	if f.Limit > 0 {
		b.WriteString(" LIMIT " + param(int64(f.Limit)))
	}
	// The filter shapes are few (a subset of ten conditions), so caching them is
	// bounded.
	s, err := db.rs.get(ctx, b.String())
	if err != nil {
		return nil, db.fail("query audit events", err)
	}
	return db.queryEvents(ctx, "query audit events", s, args...)
}

// EventByID returns the event with that id; store.ErrNotFound if none.
func (db *DB) EventByID(ctx context.Context, id string) (store.AuditEvent, error) {
	s, err := db.rs.get(ctx, db.d.q.eventByID)
	if err != nil {
		return store.AuditEvent{}, db.fail("audit event by id", err)
	}
	es, err := db.queryEvents(ctx, "audit event by id", s, store.CleanText(id))
	if err != nil {
		return store.AuditEvent{}, err
	}
	if len(es) == 0 {
		return store.AuditEvent{}, fmt.Errorf("sqlstore: audit event %q: %w", id, store.ErrNotFound)
	}
	return es[0], nil
}

// EventsByToken returns the events whose TokenJTI is jti, in chain order; none for
// the empty jti.
func (db *DB) EventsByToken(ctx context.Context, jti string) ([]store.AuditEvent, error) {
	if jti == "" {
		return nil, nil
	}
	s, err := db.rs.get(ctx, db.d.q.eventsByToken)
	if err != nil {
		return nil, db.fail("audit events by token", err)
	}
	return db.queryEvents(ctx, "audit events by token", s, store.CleanText(jti))
}

// EventsByParent returns the events whose ParentJTI is jti, in chain order; none for
// the empty jti.
func (db *DB) EventsByParent(ctx context.Context, jti string) ([]store.AuditEvent, error) {
	if jti == "" {
		return nil, nil
	}
	s, err := db.rs.get(ctx, db.d.q.eventsByParent)
	if err != nil {
		return nil, db.fail("audit events by parent", err)
	}
	return db.queryEvents(ctx, "audit events by parent", s, store.CleanText(jti))
}

// queryEvents runs s, which selects eventColumns, and reads every row.
func (db *DB) queryEvents(ctx context.Context, op string, s *sql.Stmt, args ...any) ([]store.AuditEvent, error) {
	rows, err := s.QueryContext(ctx, args...)
	if err != nil {
		return nil, db.fail(op, err)
	}
	defer rows.Close()
	var es []store.AuditEvent
	for rows.Next() {
		var (
			e                         store.AuditEvent
			t                         int64
			expires                   sql.NullInt64
			actors, audiences, scopes string
		)
		err := rows.Scan(&e.Seq, &e.ID, &t, &e.Type, &e.ClientID, &e.Subject,
			&e.SubjectIssuer, &actors, &audiences, &scopes, &e.ParentJTI, &e.TokenJTI,
			&expires, &e.Decision, &e.Reason, &e.Rule, &e.RequestID, &e.RemoteAddr,
			&e.Detail, &e.PrevHash, &e.Hash, &e.TraceID)
		if err != nil {
			return nil, db.fail(op, err)
		}
		e.Time, e.TokenExpires = fromMicros(t), fromNullMicros(expires)
		e.Actors, e.Audiences, e.Scopes = decodeList(actors), decodeList(audiences), decodeList(scopes)
		if len(e.PrevHash) == 0 {
			e.PrevHash = nil
		}
		if len(e.Hash) == 0 {
			e.Hash = nil
		}
		es = append(es, e)
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail(op, err)
	}
	return es, nil
}

// Lists are stored as text an operator can read and query (see
// migrations/sqlite/0001_init.sql): ' a b c ', each element with '%' as '%25' and
// ' ' as '%20'; the empty list is the empty string. A list of one empty string is
// two spaces.
var (
	listEscaper   = strings.NewReplacer("%", "%25", " ", "%20")
	listUnescaper = strings.NewReplacer("%20", " ", "%25", "%")
)

func encodeList(l []string) string {
	if len(l) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte(' ')
	for _, x := range l {
		listEscaper.WriteString(&b, x)
		b.WriteByte(' ')
	}
	return b.String()
}

func decodeList(s string) []string {
	if s == "" {
		return nil
	}
	s = strings.TrimPrefix(s, " ")
	s = strings.TrimSuffix(s, " ")
	l := strings.Split(s, " ")
	for i, x := range l {
		if strings.Contains(x, "%") {
			l[i] = listUnescaper.Replace(x)
		}
	}
	return l
}

// listNeedle is the text whose presence in an encoded list means x is an element.
func listNeedle(x string) string {
	return " " + listEscaper.Replace(x) + " "
}
