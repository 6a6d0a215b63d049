package sqlstore

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

func testHash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// singleUseRows inserts n codes ("code-<i>") and n refresh tokens ("rt-<i>").
func singleUseRows(t *testing.T, db *DB, n int) {
	t.Helper()
	now := time.Now()
	for i := range n {
		c := store.AuthCode{Hash: testHash(fmt.Sprintf("code-%d", i)), ID: fmt.Sprintf("code-%d", i),
			ClientID: "web-app", Subject: "alice", ExpiresAt: now.Add(time.Hour)}
		if err := db.InsertCode(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		rt := store.RefreshToken{Hash: testHash(fmt.Sprintf("rt-%d", i)), ID: fmt.Sprintf("rt-%d", i),
			FamilyID: "f", ClientID: "web-app", Subject: "alice", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := db.InsertRefreshToken(t.Context(), rt); err != nil {
			t.Fatal(err)
		}
	}
}

// useAll redeems every code and uses every refresh token of singleUseRows once,
// several at a time, and reports each outcome as "<id> ok" or "<id> conflict".
func useAll(t *testing.T, db *DB, n int, report func(line string)) {
	var wg sync.WaitGroup
	for i := range n {
		for _, kind := range []string{"code", "rt"} {
			id := fmt.Sprintf("%s-%d", kind, i)
			wg.Go(func() {
				var err error
				if kind == "code" {
					_, err = db.RedeemCode(t.Context(), testHash(id), time.Now())
				} else {
					_, err = db.UseRefreshToken(t.Context(), testHash(id), time.Now())
				}
				switch {
				case err == nil:
					report(id + " ok")
				case errors.Is(err, store.ErrConflict):
					report(id + " conflict")
				default:
					report(id + " error " + err.Error())
				}
			})
		}
	}
	wg.Wait()
}

// checkOnce fails t unless each of the n codes and n tokens was used exactly once
// in users attempts each.
func checkOnce(t *testing.T, lines []string, n, users int) {
	t.Helper()
	ok, conflict := map[string]int{}, map[string]int{}
	for _, l := range lines {
		id, outcome, _ := strings.Cut(l, " ")
		switch outcome {
		case "ok":
			ok[id]++
		case "conflict":
			conflict[id]++
		default:
			t.Errorf("%s: %s", id, outcome)
		}
	}
	for i := range n {
		for _, kind := range []string{"code", "rt"} {
			id := fmt.Sprintf("%s-%d", kind, i)
			if ok[id] != 1 || conflict[id] != users-1 {
				t.Errorf("%s: %d successes and %d conflicts, want 1 and %d", id, ok[id], conflict[id], users-1)
			}
		}
	}
}

// TestSingleUseAcrossProcesses redeems the same codes and refresh tokens from
// several processes at once: each is used exactly once, as the grants need when
// deputy runs more than one process on a database.
func TestSingleUseAcrossProcesses(t *testing.T) {
	const n = 25
	if dsn := os.Getenv("SQLSTORE_SINGLE_USE_CHILD_DSN"); dsn != "" {
		db := openFile(t, dsn)
		io.Copy(io.Discard, os.Stdin) // start together: when the parent closes stdin
		var mu sync.Mutex
		useAll(t, db, n, func(line string) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Println("used " + line)
		})
		return
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	const procs = 4
	dsn := tempDSN(t)
	singleUseRows(t, openFile(t, dsn), n)
	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   io.Reader
	}
	var children []child
	for range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSingleUseAcrossProcesses$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SQLSTORE_SINGLE_USE_CHILD_DSN="+dsn)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children = append(children, child{cmd, stdin, out})
	}
	for _, c := range children {
		c.stdin.Close()
	}
	var (
		mu    sync.Mutex
		lines []string
		wg    sync.WaitGroup
	)
	for _, c := range children {
		wg.Go(func() {
			sc := bufio.NewScanner(c.out)
			for sc.Scan() {
				if l, ok := strings.CutPrefix(sc.Text(), "used "); ok {
					mu.Lock()
					lines = append(lines, l)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for i, c := range children {
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("child %d: %v", i, err)
		}
	}
	if len(lines) != procs*2*n {
		t.Fatalf("children reported %d uses, want %d", len(lines), procs*2*n)
	}
	checkOnce(t, lines, n, procs)
}

// TestSingleUseAcrossHandles is TestSingleUseAcrossProcesses within one process:
// several DBs on one file, each with its own writer connection.
func TestSingleUseAcrossHandles(t *testing.T) {
	const n, handles = 10, 4
	dsn := tempDSN(t)
	singleUseRows(t, openFile(t, dsn), n)
	var (
		mu    sync.Mutex
		lines []string
		wg    sync.WaitGroup
	)
	for range handles {
		db := openFile(t, dsn)
		wg.Go(func() {
			useAll(t, db, n, func(line string) {
				mu.Lock()
				defer mu.Unlock()
				lines = append(lines, line)
			})
		})
	}
	wg.Wait()
	checkOnce(t, lines, n, handles)
}

// TestSignInRefusesEmptyKeys: rows without the key they are found by, or uses at
// the zero time (which would read back as "never"), are refused, and with neither
// ErrConflict nor ErrNotFound, which callers act on.
func TestSignInRefusesEmptyKeys(t *testing.T) {
	db := openFile(t, tempDSN(t))
	ctx := t.Context()
	now := time.Now()
	code := store.AuthCode{Hash: testHash("c"), ID: "c", ClientID: "web-app", Subject: "alice", ExpiresAt: now}
	rt := store.RefreshToken{Hash: testHash("r"), ID: "r", FamilyID: "f", ClientID: "web-app", Subject: "alice", IssuedAt: now, ExpiresAt: now}
	sess := store.Session{ID: "s", TokenHash: testHash("s"), Subject: "alice", AuthTime: now, ExpiresAt: now}
	if err := db.InsertCode(ctx, code); err != nil {
		t.Fatal(err)
	}
	if err := db.InsertRefreshToken(ctx, rt); err != nil {
		t.Fatal(err)
	}
	if err := db.InsertSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"fail/empty-username", func() error { return db.InsertUser(ctx, store.User{PasswordHash: "h", CreatedAt: now}, nil, nil) }},
		{"fail/empty-session-id", func() error {
			s := sess
			s.ID, s.TokenHash = "", testHash("other")
			return db.InsertSession(ctx, s)
		}},
		{"fail/empty-session-token-hash", func() error {
			s := sess
			s.ID, s.TokenHash = "other", nil
			return db.InsertSession(ctx, s)
		}},
		{"fail/empty-code-hash", func() error {
			c := code
			c.ID, c.Hash = "other", []byte{}
			return db.InsertCode(ctx, c)
		}},
		{"fail/empty-code-id", func() error {
			c := code
			c.ID, c.Hash = "", testHash("other")
			return db.InsertCode(ctx, c)
		}},
		{"fail/empty-refresh-token-hash", func() error {
			r := rt
			r.ID, r.Hash = "other", nil
			return db.InsertRefreshToken(ctx, r)
		}},
		{"fail/empty-refresh-token-id", func() error {
			r := rt
			r.ID, r.Hash = "", testHash("other")
			return db.InsertRefreshToken(ctx, r)
		}},
		{"fail/redeem-at-zero-time", func() error { _, err := db.RedeemCode(ctx, code.Hash, time.Time{}); return err }},
		{"fail/use-at-zero-time", func() error { _, err := db.UseRefreshToken(ctx, rt.Hash, time.Time{}); return err }},
		{"fail/end-at-zero-time", func() error { return db.EndSession(ctx, sess.ID, time.Time{}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
				t.Fatalf("got %v, want an error that is neither ErrConflict nor ErrNotFound", err)
			}
		})
	}
	// Nothing was used or ended by the refused calls.
	if _, err := db.RedeemCode(ctx, code.Hash, now); err != nil {
		t.Errorf("RedeemCode after the refusals: %v", err)
	}
	if _, err := db.UseRefreshToken(ctx, rt.Hash, now); err != nil {
		t.Errorf("UseRefreshToken after the refusals: %v", err)
	}
	if s, err := db.SessionByTokenHash(ctx, sess.TokenHash); err != nil || !s.EndedAt.IsZero() {
		t.Errorf("session after the refusals: %+v, %v", s, err)
	}
	if users, err := db.ListUsers(ctx); err != nil || len(users) != 0 {
		t.Errorf("users after the refusals: %v, %v", users, err)
	}
}

// TestSignInColumns checks the encoding operators query: claims as JSON, lists as
// ' a b ', times as unix microseconds, NULL for "not yet", secrets only hashed.
func TestSignInColumns(t *testing.T) {
	db := openFile(t, tempDSN(t))
	ctx := t.Context()
	at := time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)
	u := store.User{Username: "alice", PasswordHash: "h", Claims: map[string]string{"email": "a@example", "name": "<Al & Co>"}, CreatedAt: at}
	if err := db.InsertUser(ctx, u, nil, nil); err != nil {
		t.Fatal(err)
	}
	c := store.AuthCode{Hash: testHash("the code"), ID: "c1", ClientID: "web-app", Subject: "alice",
		Scopes: []string{"openid", "payments:read"}, AMR: []string{"pwd"}, ExpiresAt: at}
	if err := db.InsertCode(ctx, c); err != nil {
		t.Fatal(err)
	}
	var (
		email, name, claims string
		hits                int
		expires             int64
		authTime, redeemed  any
		hash                []byte
	)
	err := db.r.QueryRowContext(ctx, `SELECT json_extract(claims, '$.email'), json_extract(claims, '$.name'), claims
		FROM users WHERE username = 'alice'`).Scan(&email, &name, &claims)
	if err != nil {
		t.Fatal(err)
	}
	if email != "a@example" || name != "<Al & Co>" || claims != `{"email":"a@example","name":"<Al & Co>"}` {
		t.Errorf("claims column %s: email %q, name %q", claims, email, name)
	}
	err = db.r.QueryRowContext(ctx, `SELECT count(*) FROM auth_codes
		WHERE instr(scopes, ' openid ') > 0 AND amr = ' pwd '`).Scan(&hits)
	if err != nil || hits != 1 {
		t.Errorf("list columns: %d rows, %v", hits, err)
	}
	err = db.r.QueryRowContext(ctx, `SELECT hash, expires_at, auth_time, redeemed_at FROM auth_codes WHERE id = 'c1'`).
		Scan(&hash, &expires, &authTime, &redeemed)
	if err != nil {
		t.Fatal(err)
	}
	if string(hash) != string(c.Hash) || expires != at.UnixMicro() || authTime != nil || redeemed != nil {
		t.Errorf("auth_codes row: hash %x, expires_at %d, auth_time %v, redeemed_at %v", hash, expires, authTime, redeemed)
	}
	if _, err := db.w.ExecContext(ctx, `UPDATE users SET claims = 'not json' WHERE username = 'alice'`); err == nil {
		t.Error("users.claims accepted text that is not JSON")
	}
}

// TestSignInLookupsUseIndexes keeps the lookups of every sign-in and token request,
// and the purge, off full table scans.
func TestSignInLookupsUseIndexes(t *testing.T) {
	db := openFile(t, tempDSN(t))
	q := db.d.q
	h := testHash("x")
	for _, tc := range []struct {
		name, query string
		args        []any
		index       string
	}{
		{"user-by-name", q.userByName, []any{"alice"}, "sqlite_autoindex_users_1"},
		{"session-by-token-hash", q.sessionByTokenHash, []any{h}, "sqlite_autoindex_sessions_2"},
		{"end-session", q.endSession, []any{1, "s"}, "sqlite_autoindex_sessions_1"},
		{"code-by-hash", q.codeByHash, []any{h}, "sqlite_autoindex_auth_codes_1"},
		{"redeem-code", q.redeemCode, []any{1, h}, "sqlite_autoindex_auth_codes_1"},
		{"refresh-token-by-hash", q.refreshTokenByHash, []any{h}, "sqlite_autoindex_refresh_tokens_1"},
		{"use-refresh-token", q.useRefreshToken, []any{1, h}, "sqlite_autoindex_refresh_tokens_1"},
		{"purge-codes", q.purgeCodes, []any{1}, "auth_codes_expires_at"},
		{"purge-refresh-tokens", q.purgeRefreshTokens, []any{1}, "refresh_tokens_expires_at"},
		{"purge-sessions", q.purgeSessions, []any{1}, "sessions_expires_at"},
		{"refresh-token-family", "SELECT id FROM refresh_tokens WHERE family_id = ?", []any{"f"}, "refresh_tokens_family_id"},
		{"sessions-of-subject", "SELECT id FROM sessions WHERE subject = ?", []any{"alice"}, "sessions_subject"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := db.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+tc.query, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, notused int
				var detail string
				if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			text := strings.Join(plan, "\n")
			if !strings.Contains(text, "USING INDEX "+tc.index) && !strings.Contains(text, "USING COVERING INDEX "+tc.index) {
				t.Errorf("plan does not use %s:\n%s", tc.index, text)
			}
			if strings.Contains(text, "SCAN ") {
				t.Errorf("plan scans a table:\n%s", text)
			}
		})
	}
}

// TestUserRolesColumn: roles are a list column an operator can query, with one
// spelling per set, and a row written without it (as every account stored before
// the column existed) has none.
func TestUserRolesColumn(t *testing.T) {
	db := openFile(t, tempDSN(t))
	ctx := t.Context()
	for _, u := range []store.User{
		{Username: "alice", PasswordHash: "h", Roles: []string{"x", "auditor", "x"}},
		{Username: "bob", PasswordHash: "h"},
		{Username: "carol", PasswordHash: "h", Roles: []string{"auditors"}},
	} {
		if err := db.InsertUser(ctx, u, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	var roles string
	if err := db.r.QueryRowContext(ctx, `SELECT roles FROM users WHERE username = 'alice'`).Scan(&roles); err != nil {
		t.Fatal(err)
	}
	if roles != " auditor x " {
		t.Errorf("roles column %q, want %q", roles, " auditor x ")
	}
	var holders []string
	rows, err := db.r.QueryContext(ctx, `SELECT username FROM users WHERE instr(roles, ' auditor ') > 0`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		holders = append(holders, n)
	}
	if err := rows.Err(); err != nil || !slices.Equal(holders, []string{"alice"}) {
		t.Errorf("holders of auditor: %v, %v; want [alice]", holders, err)
	}
	if _, err := db.w.ExecContext(ctx, `INSERT INTO users (username, password_hash, created_at) VALUES ('dave', 'h', 0)`); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"bob", "dave"} {
		if u, err := db.UserByName(ctx, n); err != nil || u.Roles != nil {
			t.Errorf("roles of %s: %#v, %v; want none", n, u.Roles, err)
		}
	}
}
