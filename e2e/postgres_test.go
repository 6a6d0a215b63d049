package e2e

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib"
)

// PostgreSQL in the end-to-end tests. DEPUTY_TEST_POSTGRES_DSN names a database the
// tests may create schemas in (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable);
// without it the PostgreSQL tests skip. Every test gets a schema of its own, selected
// by a search_path run-time parameter in the DSN deputy is given, and dropped at the
// end. DEPUTY_E2E_STORAGE=postgres runs the whole single-node suite on PostgreSQL:
// start turns each configuration's SQLite storage into a fresh schema.
const (
	envPostgresDSN = "DEPUTY_TEST_POSTGRES_DSN"
	envE2EStorage  = "DEPUTY_E2E_STORAGE"
)

// sqliteStorage is the storage line of every configuration in this package; in
// postgres mode start replaces it.
const sqliteStorage = `storage: {driver: sqlite, dsn: "%DIR%/deputy.db"}`

// checkStorageMode refuses a DEPUTY_E2E_STORAGE the suite cannot honour, before
// anything runs.
func checkStorageMode() error {
	switch os.Getenv(envE2EStorage) {
	case "", "sqlite":
		return nil
	case "postgres":
		if os.Getenv(envPostgresDSN) == "" {
			return fmt.Errorf("%s=postgres needs %s (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)", envE2EStorage, envPostgresDSN)
		}
		return nil
	default:
		return fmt.Errorf("%s=%q: want sqlite or postgres", envE2EStorage, os.Getenv(envE2EStorage))
	}
}

func onPostgres() bool { return os.Getenv(envE2EStorage) == "postgres" }

// skipOnPostgres skips a test that cannot run when the suite runs on PostgreSQL.
func skipOnPostgres(t *testing.T, why string) {
	t.Helper()
	if onPostgres() {
		t.Skipf("skipped with %s=postgres: %s", envE2EStorage, why)
	}
}

// storageForMode is the configuration start runs: unchanged on SQLite, on a fresh
// PostgreSQL schema in postgres mode.
func storageForMode(t *testing.T, configYAML string) string {
	t.Helper()
	if !onPostgres() {
		return configYAML
	}
	return withPostgresStorage(t, configYAML, newSchema(t, postgresDSN(t)))
}

// withPostgresStorage replaces the configuration's SQLite storage by PostgreSQL at dsn.
func withPostgresStorage(t *testing.T, configYAML, dsn string) string {
	t.Helper()
	if strings.Count(configYAML, sqliteStorage) != 1 {
		t.Fatalf("the configuration does not hold exactly one %q to replace by PostgreSQL storage:\n%s", sqliteStorage, configYAML)
	}
	quoted, _ := json.Marshal(dsn) // a JSON string is a YAML double-quoted scalar
	return strings.Replace(configYAML, sqliteStorage, "storage: {driver: postgres, dsn: "+string(quoted)+"}", 1)
}

// postgresDSN is DEPUTY_TEST_POSTGRES_DSN; the test skips without it.
func postgresDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv(envPostgresDSN)
	if dsn == "" {
		t.Skipf("%s is not set: PostgreSQL tests skipped (e.g. %s=postgres://postgres@127.0.0.1:5432/test?sslmode=disable)", envPostgresDSN, envPostgresDSN)
	}
	return dsn
}

// newSchema creates a schema of its own for the test, dropped at its end (after
// the deputy processes started later have stopped), and returns base with that
// schema as search_path.
func newSchema(t *testing.T, base string) string {
	t.Helper()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	schema := "deputy_e2e_" + hex.EncodeToString(b)
	db := openPostgres(t, base)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("creating schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Logf("dropping schema %s: %v", schema, err)
		}
	})
	return dsnWithParam(base, "search_path", schema)
}

// openPostgres opens the database for the test itself, closed at the test's end.
func openPostgres(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("PostgreSQL (%s): %v", envPostgresDSN, err)
	}
	return db
}

// schemaTables is the number of tables deputy created in the DSN's schema (it
// checks that deputy honours search_path, so that tests stay apart).
func schemaTables(t *testing.T, dsn string) int {
	t.Helper()
	schema := dsnParam(t, dsn, "search_path")
	var n int
	if err := openPostgres(t, dsn).QueryRow(`SELECT count(*) FROM information_schema.tables WHERE table_schema = $1`, schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func isURLDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// dsnWithParam sets a parameter of a URL or keyword/value DSN.
func dsnWithParam(dsn, key, value string) string {
	if isURLDSN(dsn) {
		u, err := url.Parse(dsn)
		if err == nil {
			q := u.Query()
			q.Set(key, value)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " " + key + "=" + value
}

func dsnParam(t *testing.T, dsn, key string) string {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.RuntimeParams[key]
}

// dsnAt is dsn with the server address replaced by addr (host:port); user, database
// and parameters stay.
func dsnAt(t *testing.T, dsn, addr string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	if isURLDSN(dsn) {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		u.Host = addr
		return u.String()
	}
	return dsn + " host=" + host + " port=" + port // later keywords win
}

// dsnTarget is the host:port the DSN connects to.
func dsnTarget(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(cfg.Host, "/") {
		t.Skipf("%s names a Unix socket; the test needs PostgreSQL on TCP", envPostgresDSN)
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
}

// TestPostgresUnreachableAtStart: deputy serve on a PostgreSQL nobody listens for
// exits non-zero promptly, saying what is wrong, instead of serving or hanging.
func TestPostgresUnreachableAtStart(t *testing.T) {
	base := postgresDSN(t)
	closed := freePort(t)
	// Another user than "postgres", so the word in the message is deputy's own
	// (or its DSN's scheme), not the user name.
	dsn := dsnAt(t, base, closed)
	if isURLDSN(dsn) {
		u, _ := url.Parse(dsn)
		u.User = url.User("deputy_e2e")
		dsn = u.String()
	} else {
		dsn += " user=deputy_e2e"
	}
	dir := t.TempDir()
	cfg := strings.NewReplacer("%ISSUER%", "http://"+freePort(t), "%LISTEN%", freePort(t), "%DIR%", dir).
		Replace(withPostgresStorage(t, bankConfig, dsn))
	file := dir + "/deputy.yaml"
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "serve", "--config", file)
	cmd.Env = cleanEnv()
	began := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(began)
	if ctx.Err() != nil {
		t.Fatalf("deputy serve still running after 15s with PostgreSQL unreachable at %s:\n%s", closed, out)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("deputy serve with PostgreSQL unreachable: %v, want a non-zero exit:\n%s", err, out)
	}
	msg := strings.ToLower(string(out))
	if !strings.Contains(msg, "postgres") || !(strings.Contains(msg, "unreachable") || strings.Contains(msg, "connect")) {
		t.Errorf("the error does not say that PostgreSQL cannot be reached:\n%s", out)
	}
	t.Logf("exit %d after %v:\n%s", ee.ExitCode(), took.Round(time.Millisecond), strings.TrimSpace(string(out)))
}

// TestPostgresOutageRecovery: node A reaches PostgreSQL through a proxy that the
// test cuts and restores; node B of the same cluster reaches it directly. While
// the database is gone, A refuses what needs it with 503 temporarily_unavailable
// and issues nothing, and its /readyz says 503; it recovers by itself when the
// database is back, catches up with a revocation made on B meanwhile, and takes
// part in revocation propagation again.
func TestPostgresOutageRecovery(t *testing.T) {
	dsn := newSchema(t, postgresDSN(t))
	proxy := startProxy(t, dsnTarget(t, dsn))
	nodes := startCluster(t, bankConfig, dsnAt(t, dsn, proxy.addr), dsn)
	a, b := nodes[0], nodes[1]

	var issued, exchanged int // tokens that left deputy, to compare with the trail
	t0 := a.token("web-app", "web-secret", clientCredentials("")).str("access_token")
	t1 := a.token("web-app", "web-secret", clientCredentials("")).str("access_token")
	issued += 2

	proxy.outage()
	cut := time.Now()
	short := &http.Client{Timeout: 10 * time.Second} // a node that hangs is as bad as one that answers wrong
	unavailable := func(what string, r reply, err error) {
		t.Helper()
		switch {
		case err != nil:
			t.Errorf("%s during the outage: %v", what, err)
		case r.Status == 200:
			t.Errorf("%s during the outage succeeded: %s", what, r.Raw)
		case r.Status != 503 || r.str("error") != "temporarily_unavailable":
			t.Errorf("%s during the outage: %d %s, want 503 temporarily_unavailable", what, r.Status, r.Raw)
		}
	}
	tokenURL, revokeURL := a.endpoint("token_endpoint"), a.endpoint("revocation_endpoint")
	form := "application/x-www-form-urlencoded"
	for i := 0; i < 3; i++ {
		r, err := tryPost(short, tokenURL, basic("web-app", "web-secret"), form, clientCredentials("").Encode())
		unavailable("client credentials", r, err)
	}
	r, err := tryPost(short, tokenURL, basic("api1", "api1-secret"), form, exchangeForm(t0, "audience", "https://api2.example").Encode())
	unavailable("token exchange", r, err)
	if r, err := tryPost(short, revokeURL, basic("web-app", "web-secret"), form, url.Values{"token": {t0}}.Encode()); err != nil || r.Status != 503 {
		t.Errorf("revocation during the outage: %v %d %s, want 503", err, r.Status, r.Raw)
	}
	if took, ok := eventually(5*time.Second, 20*time.Millisecond, func() bool { return getStatus(short, a.url()+"/readyz") == 503 }); !ok {
		t.Errorf("/readyz of the cut-off node not 503 within 5s")
	} else {
		t.Logf("/readyz 503 %v after the cut", took.Round(time.Millisecond))
	}
	// The other node carries on; its revocation of t1 happens while A cannot hear it.
	b.token("web-app", "web-secret", clientCredentials(""))
	issued++
	if r := b.post("revocation_endpoint", "web-app", "web-secret", url.Values{"token": {t1}}); r.Status != 200 {
		t.Fatalf("revocation on the healthy node: %d %s", r.Status, r.Raw)
	}
	if t.Failed() {
		t.Logf("node A:\n%s", a.logs.String())
	}

	proxy.restore(t)
	back := time.Now()
	t.Logf("outage lasted %v", back.Sub(cut).Round(time.Millisecond))
	var recovered, unexpected string
	took, ok := eventually(15*time.Second, 50*time.Millisecond, func() bool {
		r, err := tryPost(short, tokenURL, basic("web-app", "web-secret"), form, clientCredentials("").Encode())
		switch {
		case err != nil:
			unexpected = err.Error()
		case r.Status == 200:
			recovered = r.str("access_token")
		case r.Status != 503 || r.str("error") != "temporarily_unavailable":
			unexpected = fmt.Sprintf("%d %s", r.Status, r.Raw)
		default:
			return false
		}
		return true
	})
	if unexpected != "" {
		t.Fatalf("client credentials while PostgreSQL comes back: %s, want 200 or 503 temporarily_unavailable", unexpected)
	}
	if !ok {
		t.Fatalf("node A issues no token 15s after PostgreSQL came back:\n%s", a.logs.String())
	}
	issued++
	t.Logf("node A issues tokens again %v after PostgreSQL came back", took.Round(time.Millisecond))
	if _, ok := eventually(5*time.Second, 20*time.Millisecond, func() bool { return getStatus(short, a.url()+"/readyz") == 200 }); !ok {
		t.Fatalf("/readyz of node A not 200 5s after it issued tokens again")
	}

	// The revocation A missed reaches it (safety net), and revocations propagate again.
	if took, ok := eventually(5*time.Second, 20*time.Millisecond, func() bool { return a.inactive(t1) }); !ok {
		t.Errorf("node A still accepts a token revoked on node B during its outage, 5s after recovery")
	} else {
		t.Logf("node A refuses the token revoked during its outage %v after it was ready again", took.Round(time.Millisecond))
	}
	if took, ok := revokeAndWait(t, b, a, recovered); !ok {
		t.Errorf("a revocation on node B after the recovery did not reach node A within 1s")
	} else {
		t.Logf("revocation on B after recovery reached A in %v", took.Round(time.Millisecond))
	}
	a.token("api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example"))
	exchanged++

	// Nothing was issued that is not on record, nothing on record was not issued.
	for typ, want := range map[string]int{"token.issued": issued, "token.exchanged": exchanged} {
		out, code := a.deputy("audit", "query", "--type", typ, "--json")
		if code != 0 {
			t.Fatalf("audit query: %s", out)
		}
		if got := strings.Count(out, "\n"); got != want {
			t.Errorf("%d %s events, want %d (the tokens that were issued):\n%s", got, typ, want, out)
		}
	}
	if out, code := a.deputy("audit", "verify"); code != 0 {
		t.Errorf("audit verify after the outage: exit %d %s", code, out)
	}
}

// getStatus is the status of a GET, 0 when there is no answer.
func getStatus(c *http.Client, u string) int {
	resp, err := c.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// eventually polls cond every interval until it holds (returning how long that
// took) or within has passed.
func eventually(within, interval time.Duration, cond func() bool) (time.Duration, bool) {
	began := time.Now()
	for {
		if cond() {
			return time.Since(began), true
		}
		if time.Since(began) > within {
			return time.Since(began), false
		}
		time.Sleep(interval)
	}
}

// tcpProxy forwards TCP connections to a target; outage closes its listener and
// every connection it carries, restore listens again on the same address. stall
// keeps every connection open but forwards nothing (and connects nothing new) —
// a database whose backends hang — until resume.
type tcpProxy struct {
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener // nil during an outage
	conns  map[net.Conn]struct{}
	// flowing is closed while bytes flow; stall replaces it with an open one.
	flowing chan struct{}
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	flowing := make(chan struct{})
	close(flowing)
	p := &tcpProxy{target: target, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}, flowing: flowing}
	p.serve(ln)
	t.Cleanup(p.outage)
	t.Cleanup(p.resume)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *tcpProxy) pipe(c net.Conn) {
	<-p.gate()
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // cut while dialling
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _ = p.copy(up, c); done <- struct{}{} }()
	go func() { _ = p.copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// gate is closed while the proxy forwards.
func (p *tcpProxy) gate() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flowing
}

// copy is io.Copy that holds what it read while the proxy is stalled.
func (p *tcpProxy) copy(dst, src net.Conn) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			<-p.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err != nil {
			return err
		}
	}
}

// stall stops forwarding: connections stay open, nothing reaches either side.
func (p *tcpProxy) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flowing:
		p.flowing = make(chan struct{})
	default: // stalled already
	}
}

// resume forwards again what was held and what comes.
func (p *tcpProxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flowing:
	default:
		close(p.flowing)
	}
}

// outage: nothing listens any more, and every open connection is closed.
func (p *tcpProxy) outage() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// restore listens again on the proxy's address.
func (p *tcpProxy) restore(t *testing.T) {
	t.Helper()
	var ln net.Listener
	if _, ok := eventually(5*time.Second, 20*time.Millisecond, func() bool {
		var err error
		ln, err = net.Listen("tcp", p.addr)
		return err == nil
	}); !ok {
		t.Fatalf("the proxy cannot listen on %s again", p.addr)
	}
	p.serve(ln)
}
