package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// checkLocalDSN accepts a PostgreSQL DSN only for a server on this machine (a
// loopback address or a Unix socket), as --url accepts only loopback: the tool
// loads it with thousands of writes per second.
func checkLocalDSN(dsn string) error {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("--postgres: %v", err)
	}
	hosts := []string{cfg.Host}
	for _, f := range cfg.Fallbacks {
		hosts = append(hosts, f.Host)
	}
	for _, h := range hosts {
		if h != "127.0.0.1" && h != "::1" && h != "localhost" && !strings.HasPrefix(h, "/") {
			return fmt.Errorf("--postgres: refusing host %q; only PostgreSQL on this machine (127.0.0.1, ::1, localhost or a Unix socket)", h)
		}
	}
	return nil
}

// dsnWithParam sets a run-time parameter of a URL or keyword/value DSN.
func dsnWithParam(dsn, key, value string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			q := u.Query()
			q.Set(key, value)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " " + key + "=" + value
}

// benchSchema is a schema of the --postgres database that the started nodes
// share for one invocation, so that runs start from empty tables (as on a fresh
// SQLite file) and never meet another deployment's data.
type benchSchema struct {
	db   *sql.DB
	name string
	dsn  string // the DSN with the schema as search_path: the nodes'
}

// newBenchSchema creates the schema.
func newBenchSchema(ctx context.Context, dsn string) (*benchSchema, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("--postgres: %w", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "deputy_bench_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, `CREATE SCHEMA `+name); err != nil {
		db.Close()
		return nil, fmt.Errorf("--postgres: creating schema %s: %w", name, err)
	}
	return &benchSchema{db: db, name: name, dsn: dsnWithParam(dsn, "search_path", name)}, nil
}

// drop removes the schema with everything the nodes wrote in it.
func (s *benchSchema) drop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := s.db.ExecContext(ctx, `DROP SCHEMA `+s.name+` CASCADE`)
	s.db.Close()
	return err
}

// postgresTicks is the CPU time (clock ticks) of every process named postgres
// that this user may read, by pid: PostgreSQL's own share of a run on this
// machine, the nodes' backends included.
func postgresTicks() map[string]uint64 {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil
	}
	out := map[string]uint64{}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(procRoot + "/" + e.Name() + "/stat")
		if err != nil || !strings.Contains(string(b), "(postgres)") {
			continue
		}
		if st, err := parseStat(b); err == nil && st.Comm == "postgres" {
			out[e.Name()] = st.UTime + st.STime
		}
	}
	return out
}
