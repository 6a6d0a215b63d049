package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// buildDeputy builds cmd/deputy from the module root (found by go env GOMOD)
// into a temporary directory.
func buildDeputy(t *testing.T) string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	bin := filepath.Join(t.TempDir(), "deputy")
	build := exec.Command("go", "build", "-o", bin, "./cmd/deputy")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/deputy: %v\n%s", err, out)
	}
	return bin
}

func readRecords(t *testing.T, path string) []runRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []runRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r runRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%v: %s", err, sc.Bytes())
		}
		recs = append(recs, r)
	}
	return recs
}

// TestEndToEnd starts a real deputy through the tool and runs every scenario
// for about a second with 4 connections (exchange-dpop: every request with a
// DPoP proof, every answer a DPoP-bound token), then exchange-same on an open loop:
// each must report requests per second, no errors, server CPU and RSS, and a
// floor ratio.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs deputy")
	}
	bin := buildDeputy(t)
	jsonPath := filepath.Join(t.TempDir(), "runs.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	run := func(args ...string) string { t.Helper(); return runBench(ctx, t, bin, jsonPath, args...) }
	// exchange-distinct sizes its pool from the rate the runs before it reached,
	// padded by a quarter; a machine whose speed jumps between runs (other tests
	// share it) can outrun that, so the pool starts large enough for any rate this
	// one-second run can reach (the padding itself is tested in load_test.go): on
	// the CI machine exchange-distinct alone reaches ~5,000/s, 1.3 s with warm-up.
	out := run("--subjects", "8000", "-c", "4", "-d", "1")
	for _, want := range []string{"floor     go-jose ES256 on CPU", "exchange-same", "exchange-dpop", "exchange-distinct", "client-credentials",
		"× the ES256 verify+sign floor", "none reused", "none signed during it"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	run("--scenario", "exchange-same", "--rate", "100", "-c", "4", "-d", "1")

	recs := readRecords(t, jsonPath)
	if len(recs) != 5 {
		t.Fatalf("%d JSON lines, want 5", len(recs))
	}
	for i, r := range recs {
		want := allScenarios[min(i, 3)]
		if i == 4 {
			want = scenarioExchangeSame
		}
		if r.Scenario != want || r.Conns != 4 {
			t.Errorf("line %d: scenario %s conns %d, want %s 4", i, r.Scenario, r.Conns, want)
		}
		checkRun(t, r)
		if r.Floor == nil || r.Floor.ExchangeOps <= 0 || r.Mode != "open" && (r.FloorRatio == nil || *r.FloorRatio <= 0) {
			t.Errorf("%s: floor %+v ratio %v", r.Scenario, r.Floor, r.FloorRatio)
		}
	}
	// Every exchange-dpop request got a DPoP-bound token (any other answer is an
	// error above), with a proof signed before the run.
	if d := recs[1]; d.ProofsPresigned == nil || uint64(*d.ProofsPresigned) < d.Requests || d.ProofsLive == nil || *d.ProofsLive != 0 {
		t.Errorf("exchange-dpop: %v proofs signed before, %v during the run, for %d requests", d.ProofsPresigned, d.ProofsLive, d.Requests)
	}
	if d := recs[2]; d.PoolSize == nil || d.Reused == nil || *d.Reused != 0 || uint64(*d.PoolSize) < d.Requests {
		t.Errorf("exchange-distinct: pool %v reused %v for %d requests", d.PoolSize, d.Reused, d.Requests)
	}
	if o := recs[4]; o.Mode != "open" || o.Rate != 100 || o.Requests < 90 || o.Requests > 110 || o.ServiceP50Ms == nil {
		t.Errorf("open loop: mode %s rate %v requests %d", o.Mode, o.Rate, o.Requests)
	}
}

// runBench runs the tool on the deputy binary bin with short warm-up, floor and
// pool, appending its JSON lines to jsonPath, and returns its output.
func runBench(ctx context.Context, t *testing.T, bin, jsonPath string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append([]string{"--deputy", bin, "--json", jsonPath, "--warmup", "300ms", "--floor-time", "200ms", "--subjects", "100"}, args...)
	if code := realMain(ctx, args, &stdout, &stderr, false); code != 0 {
		t.Fatalf("deputy-bench %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	}
	t.Logf("deputy-bench %s\n%s", strings.Join(args, " "), stdout.String())
	return stdout.String()
}

// checkRun fails the test unless a run measured requests without errors, with
// latencies, the server's CPU and RSS.
func checkRun(t *testing.T, r runRecord) {
	t.Helper()
	if r.RPS <= 0 || r.Requests == 0 || r.Errors != 0 || r.WarmupErrors != 0 {
		t.Errorf("%s: rps %v requests %d errors %d (%s) warm-up errors %d", r.Scenario, r.RPS, r.Requests, r.Errors, r.FirstError, r.WarmupErrors)
	}
	if r.P50Ms <= 0 || r.P99Ms < r.P50Ms || r.MaxMs < r.P999Ms {
		t.Errorf("%s: latencies p50 %v p99 %v p99.9 %v max %v", r.Scenario, r.P50Ms, r.P99Ms, r.P999Ms, r.MaxMs)
	}
	if r.ServerCPUPct == nil || *r.ServerCPUPct <= 0 || r.ServerRSSMaxMB == nil || *r.ServerRSSMaxMB <= 0 || r.ServerRSSEndMB == nil {
		t.Errorf("%s: server CPU %v RSS %v/%v", r.Scenario, r.ServerCPUPct, r.ServerRSSMaxMB, r.ServerRSSEndMB)
	}
}

// TestEndToEndEdDSA runs the exchanges (bearer and DPoP) and client credentials
// with deputy signing EdDSA: the tool reads the algorithm from a token deputy
// issued, measures the floor for it and names it in the report.
func TestEndToEndEdDSA(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs deputy")
	}
	bin := buildDeputy(t)
	jsonPath := filepath.Join(t.TempDir(), "runs.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := runBench(ctx, t, bin, jsonPath, "--alg", "EdDSA", "--scenario", "exchange-same,exchange-dpop,client-credentials", "-c", "4", "-d", "1")
	for _, want := range []string{"signing EdDSA (access tokens, read from one the server issued; the floor is EdDSA too)",
		"floor     go-jose EdDSA on CPU", "× the EdDSA verify+sign floor", "× the EdDSA sign floor"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	recs := readRecords(t, jsonPath)
	if len(recs) != 3 {
		t.Fatalf("%d JSON lines, want 3", len(recs))
	}
	for _, r := range recs {
		checkRun(t, r)
		if r.Alg != "EdDSA" || r.Floor == nil || r.Floor.Alg != "EdDSA" || r.Storage != "sqlite" {
			t.Errorf("%s: alg %q, floor %+v, storage %q", r.Scenario, r.Alg, r.Floor, r.Storage)
		}
	}
}

// TestEndToEndPostgresTwoNodes starts two deputy nodes on one PostgreSQL schema
// (DEPUTY_TEST_POSTGRES_DSN; skipped without it, run in CI) and spreads the
// connections over them: every scenario's answers come from both nodes, each
// node's req/s, p99, CPU and RSS are reported with the total and PostgreSQL's
// CPU, and the schema is dropped at the end.
func TestEndToEndPostgresTwoNodes(t *testing.T) {
	dsn := os.Getenv("DEPUTY_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("DEPUTY_TEST_POSTGRES_DSN is not set: the PostgreSQL two-node run is skipped (e.g. DEPUTY_TEST_POSTGRES_DSN=postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	if testing.Short() {
		t.Skip("builds and runs deputy")
	}
	bin := buildDeputy(t)
	jsonPath := filepath.Join(t.TempDir(), "runs.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := []string{"--postgres", dsn, "--nodes", "2", "--scenario", "exchange-same,exchange-dpop,client-credentials", "-c", "4", "-d", "1"}
	pinned := false
	if _, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() >= 2 {
		args, pinned = append(args, "--node-cpus", "0,1"), true
	}
	out := runBench(ctx, t, bin, jsonPath, args...)
	for _, want := range []string{"started: 2 nodes on PostgreSQL, schema deputy_bench_", "node 1    http://127.0.0.1:", "node 2    http://127.0.0.1:",
		"spread    connection i to node i mod 2", "PostgreSQL (not pinned by the tool) share them", "all 2 nodes:", "per server core busy"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if pinned && !strings.Contains(out, "node 1 on CPU 0, node 2 on CPU 1") {
		t.Errorf("output does not say where the nodes were pinned")
	}
	// PostgreSQL's CPU is measured where its processes are in this /proc (a
	// server on this machine, as in CI).
	pgVisible := len(postgresTicks()) > 0
	recs := readRecords(t, jsonPath)
	if len(recs) != 3 {
		t.Fatalf("%d JSON lines, want 3", len(recs))
	}
	for _, r := range recs {
		checkRun(t, r)
		if r.Storage != "postgres" || len(r.Nodes) != 2 || pgVisible && (r.PostgresCPUPct == nil || *r.PostgresCPUPct <= 0) || r.FloorRatio != nil {
			t.Errorf("%s: storage %q, %d nodes, PostgreSQL CPU %v, floor ratio %v (none: the floor is one core's)", r.Scenario, r.Storage, len(r.Nodes), r.PostgresCPUPct, r.FloorRatio)
			continue
		}
		var sum uint64
		for i, n := range r.Nodes {
			if n.Requests == 0 || n.Errors != 0 || n.P99Ms <= 0 || n.CPUPct == nil || *n.CPUPct <= 0 || n.RSSMaxMB == nil || n.PID == 0 {
				t.Errorf("%s node %d: %+v", r.Scenario, i+1, n)
			}
			if pinned && n.CPUs != strconv.Itoa(i) {
				t.Errorf("%s node %d: CPUs %q, want %d", r.Scenario, i+1, n.CPUs, i)
			}
			sum += n.Requests
		}
		if sum != r.Requests || r.Nodes[0].URL == r.Nodes[1].URL {
			t.Errorf("%s: nodes %s and %s served %d of %d requests", r.Scenario, r.Nodes[0].URL, r.Nodes[1].URL, sum, r.Requests)
		}
	}
	// The schema went with the run.
	schema := ""
	if _, rest, ok := strings.Cut(out, "schema "); ok {
		schema, _, _ = strings.Cut(rest, ")")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, schema).Scan(&n); err != nil || n != 0 || schema == "" {
		t.Errorf("schema %q: %d left (%v), want it dropped", schema, n, err)
	}
}

// TestFloorOnly measures the floor alone and prints it as JSON.
func TestFloorOnly(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := realMain(context.Background(), []string{"--floor-only", "--floor-time", "100ms", "--alg", "EdDSA"}, &stdout, &stderr, false); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var f floorResult
	if err := json.Unmarshal(stdout.Bytes(), &f); err != nil {
		t.Fatalf("%v: %q", err, stdout.String())
	}
	if f.Alg != "EdDSA" || f.ExchangeOps <= 0 || f.SignOps <= f.ExchangeOps || f.ExchangeOpsWall <= 0 || f.CPUShare <= 0 {
		t.Errorf("%+v", f)
	}
}

func TestSlicedRuns(t *testing.T) {
	calls := 0
	per, all, err := slicedRuns(40*time.Millisecond, 4, func() error {
		calls++
		for i := range 1000 {
			_ = i * i
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(per) != 4 || all.n != calls || all.wall < 40*time.Millisecond || all.perWall() <= 0 {
		t.Errorf("slices %v, run %+v, calls %d", per, all, calls)
	}
	for _, r := range per {
		if r <= 0 {
			t.Errorf("slice rate %v", r)
		}
	}
}
