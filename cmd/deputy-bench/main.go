// Command deputy-bench is deputy's load tool: it measures the token endpoint of
// one deputy the way the peer servers were measured (bench/peers in the shared
// workspace), so that the numbers can stand side by side.
//
// What it measures, per scenario and number of connections:
//
//   - exchange-same: api1 exchanges one subject token (web-app's client
//     credentials token for api1) for https://api2.example on every request, by
//     delegation (RFC 8693) — the request the peers were measured with;
//   - exchange-dpop: the exchange-same request sender-constrained (RFC 9449): the
//     subject token is DPoP-bound to web-app's key, every exchange carries a
//     fresh ES256 DPoP proof of api1's own key (a new jti, as a real client's)
//     and must get a DPoP-bound token; the proofs are signed before the run, as
//     many as it is expected to send, as long as the oldest is still within
//     --dpop-max-age when it ends, and any signed during the run are reported;
//   - exchange-distinct: the same exchange with a different subject token on
//     every request, from a pool of tokens fetched beforehand and sized to the
//     requests the run is expected to send, so that no per-token cache helps
//     (when a run sends more than --max-subjects requests, tokens are reused and
//     the reuse is reported);
//   - client-credentials: web-app's client credentials grant.
//
// For each: requests per second, errors (any answer but 200 with an
// access_token, counted by kind, with the first error's body), latency
// percentiles (p50, p90, p99, p99.9, max; log-linear histogram, < 1% error), and
// from /proc the server's CPU (utime+stime of /proc/<pid>/stat over the measured
// window; 100% = one core) and resident memory (VmRSS of /proc/<pid>/status,
// the maximum of samples every 250 ms and the value at the end), and the load
// generator's own CPU. Closed loop by default (-c connections, each sending its
// next request when the previous one was answered, like wrk); --rate R is an open
// loop whose latency counts from when a request was due on a steady schedule,
// corrected for coordinated omission (like wrk2).
//
// In the same run, before the load, it measures the floor: go-jose v4 verifying
// a subject token and signing a new token with an act claim in a tight loop in
// one goroutine (the peers' cryptofloor), per CPU-second and as the best of four
// slices, so that other processes or guests slow it as little as possible; sign
// alone is the floor of client credentials. It reports deputy's req/s as a
// multiple of it, and req/s per core the server kept busy as another.
//
// Pinning: --server-cpus runs the started deputy under taskset -c; --client-cpus
// re-executes this process under taskset -c, so that the load generator, its Go
// runtime and the in-process floor share those CPUs (GOMAXPROCS follows the
// affinity); --floor-cpus measures the floor in a child process pinned there.
// On a two-core machine, --server-cpus 1 --client-cpus 0 is the peers' setup.
//
// --alg sets the started deputy's signing.algorithm (ES256, EdDSA, RS256,
// PS256); the tool reads the algorithm back from a token the server issued and
// measures the floor with it (a --url target signing otherwise is refused).
//
// Several nodes: --postgres DSN --nodes N starts N deputies on one fresh schema
// of a local PostgreSQL database, sharing one configuration but for listen
// (README "Running on PostgreSQL with several nodes"), and --url takes the URLs
// of a running cluster. Connection i sends to node i mod N; each node's req/s,
// latency, CPU and RSS are reported beside the total, and PostgreSQL's CPU
// (every postgres process in /proc). --node-cpus pins the nodes one CPU each.
//
// Only http://127.0.0.1 targets are accepted, and every run is bounded: -d is at
// most 300 s, and a watchdog ends the whole tool after the time its runs can
// take.
//
//	go build -o /tmp/deputy ./cmd/deputy
//	go run ./cmd/deputy-bench --deputy /tmp/deputy --server-cpus 1 --client-cpus 0 -c 16,64 -d 15
//	go run ./cmd/deputy-bench --deputy /tmp/deputy --nodes 2 --node-cpus 0,1 \
//	    --postgres 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable' -c 16,64 -d 15
package main

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pinnedEnv marks a process that was re-executed under taskset for
// --client-cpus, so that it does not do it again.
const pinnedEnv = "DEPUTY_BENCH_PINNED"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr, true)
	stop()
	os.Exit(code)
}

// realMain runs the tool and returns its exit code: 0 when every run completed
// (errors of the server are reported, not fatal), 1 when the tool could not do
// its job, 2 for a bad command line. With reexec, --client-cpus re-executes the
// process under taskset (tests pass false).
func realMain(ctx context.Context, args []string, stdout, stderr io.Writer, reexec bool) int {
	o, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "deputy-bench:", err)
		return 2
	}
	if reexec && o.ClientCPUs != "" && os.Getenv(pinnedEnv) == "" {
		err := reexecPinned(o.ClientCPUs) // returns only on failure
		fmt.Fprintln(stderr, "deputy-bench: --client-cpus:", err)
		return 1
	}
	if o.FloorOnly {
		return floorOnly(o, stdout, stderr)
	}
	b := &bench{o: o, out: stdout, log: stderr}
	if err := b.run(ctx); err != nil {
		fmt.Fprintln(stderr, "deputy-bench:", err)
		if errors.Is(err, context.DeadlineExceeded) {
			fmt.Fprintf(stderr, "deputy-bench: the watchdog ended the tool after %v, the longest its runs may take\n", b.budget())
		}
		return 1
	}
	return 0
}

// reexecPinned replaces this process by itself under taskset -c cpus.
func reexecPinned(cpus string) error {
	ts, err := exec.LookPath("taskset")
	if err != nil {
		return fmt.Errorf("taskset (util-linux) is needed to pin the load generator: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	argv := append([]string{"taskset", "-c", cpus, exe}, os.Args[1:]...)
	return syscall.Exec(ts, argv, append(os.Environ(), pinnedEnv+"="+cpus))
}

func floorOnly(o *options, stdout, stderr io.Writer) int {
	f, err := measureFloor(o.Alg, o.FloorTime)
	if err != nil {
		fmt.Fprintln(stderr, "deputy-bench: floor:", err)
		return 1
	}
	f.CPUs = procStatusField("self", "Cpus_allowed_list")
	fmt.Fprintln(stderr, floorLine(&f))
	b, _ := json.Marshal(f)
	fmt.Fprintln(stdout, string(b))
	return 0
}

// floorLine describes a floor measurement in one line (two when the loop did
// not have its core to itself).
func floorLine(f *floorResult) string {
	s := fmt.Sprintf("floor     go-jose %s on CPU %s, per core: verify+sign %s/s (%.1f µs), sign %s/s (%.1f µs)",
		f.Alg, f.CPUs, thousands(f.ExchangeOps, 0), 1e6/f.ExchangeOps, thousands(f.SignOps, 0), 1e6/f.SignOps)
	if len(f.ExchangeOpsSlices) > 1 {
		s += fmt.Sprintf("\n          (best of %d slices; verify+sign slices %s–%s/s)", len(f.ExchangeOpsSlices),
			thousands(slices.Min(f.ExchangeOpsSlices), 0), thousands(slices.Max(f.ExchangeOpsSlices), 0))
	}
	if f.CPUShare > 0 && f.CPUShare < 0.95 {
		s += fmt.Sprintf("\n          (the loop got %.0f%% of a core, other processes ran there: %s/s per wall-clock second; the rates above are per CPU-second)",
			100*f.CPUShare, thousands(f.ExchangeOpsWall, 0))
	}
	return s
}

// bench is one invocation: a target, a floor, and the runs.
type bench struct {
	o        *options
	out, log io.Writer

	base       string   // where the server (the first node) answers
	token      *url.URL // its token endpoint
	htu        string   // the token endpoint as the server names it: DPoP proofs' htu
	pid        string   // the server's (first node's) pid, "" if unknown
	srv        *deputyProc
	version    string
	serverCPUs string
	clientCPUs string
	nodes      []*benchNode // every node, the first one's values above
	schema     *benchSchema // --postgres: the started nodes' schema
	signAlg    string       // the algorithm of the server's access tokens, as read from one
	floor      *floorResult
	pool       *subjectPool
	boundPool  *subjectPool    // exchange-dpop: DPoP-bound subject tokens
	proofKey   crypto.Signer   // exchange-dpop: the exchanging client's DPoP key
	estimate   map[int]float64 // exchange req/s by connections, from earlier runs
	dpopRate   map[int]float64 // exchange-dpop req/s by connections, from earlier runs
	records    []*runRecord
}

// benchNode is one node of the target: one deputy, or one of a cluster's.
type benchNode struct {
	base  string
	token *url.URL // its token endpoint
	pid   string   // "" if unknown
	cpus  string   // Cpus_allowed_list of pid
	srv   *deputyProc
}

// pids are the nodes' pids to measure: all of them, or none when one is unknown.
func (b *bench) pids() []string {
	var out []string
	for _, n := range b.nodes {
		if n.pid == "" {
			return nil
		}
		out = append(out, n.pid)
	}
	return out
}

// tokenURLs are the nodes' token endpoints, in node order.
func (b *bench) tokenURLs() []*url.URL {
	out := make([]*url.URL, len(b.nodes))
	for i, n := range b.nodes {
		out[i] = n.token
	}
	return out
}

// budget is the longest the whole invocation may take; past it the watchdog
// ends it.
func (b *bench) budget() time.Duration {
	o := b.o
	runs := len(o.Scenarios) * len(o.Conns)
	perRun := o.Warmup + o.Duration + max(2*time.Second, o.Timeout) + o.Timeout + 90*time.Second // + pool filling
	return 2*time.Minute + 2*o.FloorTime + time.Duration(runs)*perRun
}

func (b *bench) run(ctx context.Context) error {
	o := b.o
	ctx, cancel := context.WithTimeout(ctx, b.budget())
	defer cancel()

	if o.Start {
		pgDSN := ""
		if o.Postgres != "" {
			s, err := newBenchSchema(ctx, o.Postgres)
			if err != nil {
				return err
			}
			b.schema, pgDSN = s, s.dsn
			defer func() {
				if o.Keep {
					fmt.Fprintf(b.out, "PostgreSQL schema kept: %s\n", s.name)
					s.db.Close()
				} else if err := s.drop(); err != nil {
					fmt.Fprintf(b.log, "deputy-bench: dropping schema %s: %v\n", s.name, err)
				}
			}()
		}
		fmt.Fprintf(b.log, "starting %s …\n", plural(o.Nodes, "deputy", "deputy nodes"))
		srvs, err := startDeputies(ctx, o, pgDSN)
		if err != nil {
			return err
		}
		// The nodes stop before the schema is dropped (defers run last first).
		defer func() {
			for _, s := range srvs {
				s.stop()
			}
		}()
		for _, s := range srvs {
			b.nodes = append(b.nodes, &benchNode{base: s.url, pid: strconv.Itoa(s.pid()), srv: s})
		}
		b.srv, b.version = srvs[0], srvs[0].version
	} else {
		for i, u := range o.URLs {
			n := &benchNode{base: u}
			if i < len(o.PIDs) {
				n.pid = strconv.Itoa(o.PIDs[i])
				if _, err := readStat(n.pid); err != nil {
					return fmt.Errorf("--pid %d: %w", o.PIDs[i], err)
				}
			}
			b.nodes = append(b.nodes, n)
		}
	}
	for i, n := range b.nodes {
		if n.pid != "" {
			n.cpus = procStatusField(n.pid, "Cpus_allowed_list")
		}
		tokenURL, htu, err := tokenEndpoint(ctx, n.base)
		if err != nil {
			return err
		}
		if n.token, err = url.Parse(tokenURL); err != nil {
			return err
		}
		switch {
		case i == 0:
			b.htu = htu
		case htu != b.htu && slices.Contains(o.Scenarios, scenarioExchangeDPoP):
			// Proofs name the token endpoint (RFC 9449 §4.2): one htu must do for
			// every node.
			return fmt.Errorf("node %s names its token endpoint %s, node %s %s: not one cluster (the nodes of one share their issuer), and exchange-dpop's proofs could not serve both", n.base, htu, b.nodes[0].base, b.htu)
		case htu != b.htu:
			fmt.Fprintf(b.log, "deputy-bench: node %s names its token endpoint %s, node %s %s: are they one cluster?\n", n.base, htu, b.nodes[0].base, b.htu)
		}
	}
	first := b.nodes[0]
	b.base, b.token, b.pid, b.serverCPUs = first.base, first.token, first.pid, first.cpus
	b.clientCPUs = procStatusField("self", "Cpus_allowed_list")

	// The algorithm the server signs with, from one of its tokens: the floor is
	// measured for it, and a --url target that signs otherwise than --alg says
	// is refused rather than compared with the wrong floor.
	alg, err := serverSigningAlg(ctx, b.token, o.SubjectCli, o.Timeout)
	if err != nil {
		return err
	}
	if alg != o.Alg {
		return fmt.Errorf("the server signs its access tokens with %s, not --alg %s: pass --alg %s so that the floor is measured for the same algorithm", alg, o.Alg, alg)
	}
	b.signAlg = alg
	b.header()

	if o.FloorTime > 0 {
		fmt.Fprintln(b.log, "measuring the floor …")
		f, err := b.measureFloor(ctx)
		if err != nil {
			return fmt.Errorf("floor: %w", err)
		}
		b.floor = f
		fmt.Fprintln(b.out, floorLine(f))
	}

	b.pool = &subjectPool{target: b.token, client: o.SubjectCli, audience: o.Audience, timeout: o.Timeout}
	b.estimate, b.dpopRate = map[int]float64{}, map[int]float64{}
	fmt.Fprintf(b.log, "preparing %d subject tokens …\n", o.Subjects)
	if err := b.pool.fill(ctx, o.Subjects, time.Now().Add(poolExpiryHeadroom)); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "subjects  %d tokens of %s for the pool (%s/s)\n", o.Subjects, o.SubjectCli.ID, thousands(b.pool.rate, 0))

	for _, sc := range o.Scenarios {
		for _, c := range o.Conns {
			rec, err := b.runOne(ctx, sc, c)
			if err != nil {
				return fmt.Errorf("%s c=%d: %w", sc, c, err)
			}
			b.records = append(b.records, rec)
			if o.JSON != "" {
				if err := appendJSONLine(o.JSON, rec); err != nil {
					return fmt.Errorf("--json: %w", err)
				}
			}
		}
	}
	for _, n := range b.nodes {
		if n.srv == nil {
			continue
		}
		select {
		case <-n.srv.exited:
			return fmt.Errorf("deputy %s exited during the runs:\n%s", n.base, n.srv.logTail())
		default:
		}
	}
	fmt.Fprintln(b.out)
	printTable(b.out, b.records, b.floor)
	if o.JSON != "" {
		fmt.Fprintf(b.out, "\n%d JSON line(s) appended to %s\n", len(b.records), o.JSON)
	}
	if o.Keep {
		for _, n := range b.nodes {
			if n.srv != nil {
				fmt.Fprintf(b.out, "deputy's directory (configuration, database, log) of %s: %s\n", n.base, n.srv.dir)
			}
		}
	}
	return nil
}

// header prints what is measured, and where.
func (b *bench) header() {
	o := b.o
	w := b.out
	where := "a running deputy"
	switch {
	case b.srv != nil && b.schema != nil:
		where = fmt.Sprintf("%s (started: %s on PostgreSQL, schema %s)", b.version, plural(len(b.nodes), "node", "nodes"), b.schema.name)
	case b.srv != nil:
		where = b.version + " (started; SQLite in " + b.srv.dir + ")"
	case len(b.nodes) > 1:
		where = fmt.Sprintf("a running cluster of %d nodes", len(b.nodes))
	}
	fmt.Fprintf(w, "target    %s at %s, token endpoint %s\n", where, b.base, b.token)
	for i, n := range b.nodes {
		name := "server   "
		if len(b.nodes) > 1 {
			name = fmt.Sprintf("node %-4d", i+1)
		}
		switch {
		case n.pid == "":
			fmt.Fprintf(w, "%s %s, pid unknown (--pid): no server CPU or RSS\n", name, n.token)
		case len(b.nodes) > 1:
			fmt.Fprintf(w, "%s %s, pid %s, CPUs %s\n", name, n.token, n.pid, n.cpus)
		default:
			fmt.Fprintf(w, "server    pid %s, CPUs %s\n", n.pid, n.cpus)
		}
	}
	fmt.Fprintf(w, "client    pid %d, CPUs %s, GOMAXPROCS %d\n", os.Getpid(), b.clientCPUs, runtime.GOMAXPROCS(0))
	if len(b.nodes) > 1 {
		fmt.Fprintf(w, "spread    connection i to node i mod %d (round-robin over the nodes' token endpoints)\n", len(b.nodes))
	}
	if note := b.sharingNote(); note != "" {
		fmt.Fprintf(w, "sharing   %s\n", note)
	}
	load := fmt.Sprintf("closed loop, %v warm-up + %v measured per run", o.Warmup, o.Duration)
	if o.Rate > 0 {
		load = fmt.Sprintf("open loop at %s req/s, %v warm-up + %v measured per run", thousands(o.Rate, 0), o.Warmup, o.Duration)
	}
	fmt.Fprintf(w, "load      %s; connections %s; scenarios %s; signing %s (access tokens, read from one the server issued; the floor is %s too)\n",
		load, intList(o.Conns), strings.Join(o.Scenarios, ", "), b.signAlg, b.signAlg)
}

// sharingNote says which processes share the CPUs the nodes run on: with
// several nodes on a machine's cores, the load generator and PostgreSQL take
// their share of the same cores, and the numbers are those of the whole machine.
func (b *bench) sharingNote() string {
	if len(b.nodes) < 2 && b.schema == nil {
		return ""
	}
	var pinned []string
	for i, n := range b.nodes {
		if n.cpus != "" {
			pinned = append(pinned, fmt.Sprintf("node %d on CPU %s", i+1, n.cpus))
		}
	}
	s := ""
	if len(pinned) > 0 {
		s = strings.Join(pinned, ", ") + "; "
	}
	s += fmt.Sprintf("the load generator on CPU %s", b.clientCPUs)
	if b.schema != nil {
		s += " and PostgreSQL (not pinned by the tool) share them: every core is in the measurement, req/s is the whole machine's, and PostgreSQL's CPU is reported beside the nodes'"
	} else {
		s += " shares them"
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// measureFloor runs the floor here, or in a child pinned to --floor-cpus.
func (b *bench) measureFloor(ctx context.Context) (*floorResult, error) {
	o := b.o
	if o.FloorCPUs == "" || o.FloorCPUs == os.Getenv(pinnedEnv) {
		f, err := measureFloor(o.Alg, o.FloorTime)
		if err != nil {
			return nil, err
		}
		f.CPUs = b.clientCPUs
		return &f, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ts, err := exec.LookPath("taskset")
	if err != nil {
		return nil, fmt.Errorf("--floor-cpus needs taskset: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*o.FloorTime+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ts, "-c", o.FloorCPUs, exe, "--floor-only", "--alg", o.Alg, "--floor-time", o.FloorTime.String())
	cmd.Env = append(os.Environ(), pinnedEnv+"="+o.FloorCPUs)
	cmd.Stderr = io.Discard
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("floor on CPUs %s: %w", o.FloorCPUs, err)
	}
	var f floorResult
	if err := json.Unmarshal(out, &f); err != nil {
		return nil, fmt.Errorf("floor on CPUs %s: %q: %w", o.FloorCPUs, out, err)
	}
	return &f, nil
}

// runOne prepares and runs one scenario at one number of connections.
func (b *bench) runOne(ctx context.Context, scenario string, conns int) (*runRecord, error) {
	o := b.o
	open := o.Rate > 0
	rec := &runRecord{
		Name: "deputy-" + scenario, Scenario: scenario, Mode: "closed", Conns: conns,
		Secs: o.Duration.Seconds(), Warmup: o.Warmup.Seconds(), Alg: b.signAlg, Target: b.token.String(), DeputyVersion: b.version,
		ServerCPUs: b.serverCPUs, ClientCPUs: b.clientCPUs, GoMaxProcs: runtime.GOMAXPROCS(0), Note: o.Note,
	}
	if open {
		rec.Mode, rec.Rate = "open", o.Rate
	}
	if b.pid != "" {
		rec.ServerPID, _ = strconv.Atoi(b.pid)
	}
	var spec *requestSpec
	switch scenario {
	case scenarioExchangeSame:
		// A fresh subject token, so that it cannot expire during the run.
		if err := b.pool.fill(ctx, 1, time.Now().Add(o.Warmup+o.Duration+poolExpiryHeadroom)); err != nil {
			return nil, err
		}
		spec = newRequestSpec(b.token, o.ExchangeCli, b.pool.take(1))
	case scenarioExchangeDistinct:
		rate := o.Rate
		if !open {
			rate = b.expectedRate(conns)
		}
		n := distinctPoolSize(rate, open, o.Warmup, o.Duration, conns, o.Subjects, o.MaxSubjects)
		if n > len(b.pool.bodies) {
			fmt.Fprintf(b.log, "preparing %d subject tokens for %s c=%d …\n", n, scenario, conns)
		}
		if err := b.pool.fill(ctx, n, time.Now().Add(o.Warmup+o.Duration+poolExpiryHeadroom)); err != nil {
			return nil, err
		}
		spec = newRequestSpec(b.token, o.ExchangeCli, b.pool.take(n))
		rec.PoolSize = &n
	case scenarioExchangeDPoP:
		ps, err := b.prepareDPoP(ctx, conns, rec)
		if err != nil {
			return nil, err
		}
		spec = newRequestSpec(b.token, o.ExchangeCli, b.boundPool.take(1)).withProofs(ps)
	case scenarioClientCreds:
		spec = newRequestSpec(b.token, o.CCCli, [][]byte{[]byte(clientCredsBody)})
	}
	spec.onNodes(b.tokenURLs())
	if b.srv != nil {
		rec.Storage = "sqlite"
		if b.schema != nil {
			rec.Storage = "postgres"
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fmt.Fprintf(b.log, "running %s c=%d (%v + %v) …\n", scenario, conns, o.Warmup, o.Duration)
	var (
		st *runStats
		pr procResult
	)
	if open {
		st, pr = openLoop(ctx, spec, conns, o.Rate, o.Warmup, o.Duration, o.Timeout, b.pids(), b.schema != nil)
	} else {
		st, pr = closedLoop(ctx, spec, conns, o.Warmup, o.Duration, o.Timeout, b.pids(), b.schema != nil)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("stopped: %w", err)
	}
	rec.fillStats(st, pr)
	for i, n := range rec.Nodes {
		n.URL, n.CPUs = b.nodes[i].token.String(), b.nodes[i].cpus
		n.PID, _ = strconv.Atoi(b.nodes[i].pid)
	}
	rec.TS = time.Now().Format(time.RFC3339)
	if la, err := os.ReadFile(procRoot + "/loadavg"); err == nil {
		if f := strings.Fields(string(la)); len(f) >= 3 {
			rec.LoadAvg = f[:3]
		}
	}
	if scenario == scenarioExchangeDistinct {
		reused := spec.reused()
		rec.Reused = &reused
	}
	if spec.proofs != nil {
		live := spec.proofs.live.Load()
		rec.ProofsLive = &live
	}
	if (scenario == scenarioExchangeSame || scenario == scenarioExchangeDistinct) && rec.Errors == 0 && rec.RPS > 0 {
		b.estimate[conns] = rec.RPS
	}
	if scenario == scenarioExchangeDPoP && rec.Errors == 0 && rec.RPS > 0 {
		b.dpopRate[conns] = rec.RPS
	}
	if b.floor != nil {
		rec.Floor = b.floor
		ops := b.floor.ExchangeOps
		if scenario == scenarioClientCreds {
			ops = b.floor.SignOps
		}
		// The floor is one core's; several nodes run on several cores, so only
		// req/s per server core busy compares with it.
		if !open && len(b.nodes) == 1 {
			ratio := round(rec.RPS/ops, 3)
			rec.FloorRatio = &ratio
		}
		if rec.ServerCPUPct != nil && *rec.ServerCPUPct > 0 {
			ratio := round(rec.RPS/(*rec.ServerCPUPct/100)/ops, 3)
			rec.FloorRatioPerCore = &ratio
		}
	}
	fmt.Fprintf(b.log, "  %s req/s, %d errors, p50 %.2f ms, p99 %.2f ms, server CPU %s%%\n",
		thousands(rec.RPS, 1), rec.Errors, rec.P50Ms, rec.P99Ms, fmtOpt(rec.ServerCPUPct, "%.1f"))
	return rec, nil
}

// expectedRate is the exchange rate a closed-loop run with conns connections is
// expected to reach: an earlier exchange run's, else the rate at which the pool
// was filled (client credentials, which costs less than an exchange: an
// overestimate, so the pool is large enough).
func (b *bench) expectedRate(conns int) float64 {
	if r, ok := b.estimate[conns]; ok {
		return r
	}
	best := 0.0
	for _, r := range b.estimate {
		best = max(best, r)
	}
	if best > 0 {
		return best
	}
	return b.pool.rate
}

// prepareDPoP gets a fresh DPoP-bound subject token (the subject client's client
// credentials grant with a proof of its own key) and signs the exchanging
// client's proofs for a run at conns: as many as the run is expected to send
// (--max-proofs at most), as long as the oldest stays younger than
// --dpop-max-age until the run ends. The rest are signed during the run, on the
// load generator's CPU, and counted.
func (b *bench) prepareDPoP(ctx context.Context, conns int, rec *runRecord) (*proofSource, error) {
	o := b.o
	if b.boundPool == nil {
		subjectKey, err := newProofKey()
		if err != nil {
			return nil, err
		}
		if b.proofKey, err = newProofKey(); err != nil {
			return nil, err
		}
		b.boundPool = &subjectPool{target: b.token, client: o.SubjectCli, audience: o.Audience, timeout: o.Timeout,
			proofs: &proofSource{signer: subjectKey, htu: b.htu}}
	}
	if err := b.boundPool.fill(ctx, 1, time.Now().Add(o.Warmup+o.Duration+poolExpiryHeadroom)); err != nil {
		return nil, fmt.Errorf("a DPoP-bound subject token: %w", err)
	}
	ps := &proofSource{signer: b.proofKey, htu: b.htu}
	rate := o.Rate
	if rate <= 0 {
		rate = b.expectedDPoPRate(conns)
	}
	n := proofsNeeded(rate, o.Rate > 0, o.Warmup, o.Duration, conns, o.MaxProofs)
	budget := proofBudget(o.DPoPMaxAge, o.Warmup, o.Duration)
	if budget > 0 && n > 0 {
		fmt.Fprintf(b.log, "signing up to %d DPoP proofs for %s c=%d (at most %v) …\n", n, scenarioExchangeDPoP, conns, budget.Round(time.Millisecond))
	}
	perSec, err := fillProofs(ps, n, budget)
	if err != nil {
		return nil, err
	}
	pre := len(ps.pool)
	rec.ProofsPresigned = &pre
	if perSec > 0 {
		r := round(perSec, 0)
		rec.ProofSignRate = &r
	}
	return ps, nil
}

// expectedDPoPRate is the closed-loop req/s an exchange-dpop run at conns is
// expected to reach, to sign enough proofs for it: as fast as it ran at conns
// before; else twice its fastest run at other connections, at most the bearer
// exchange's rate; else the bearer exchange's (faster: more proofs than needed).
func (b *bench) expectedDPoPRate(conns int) float64 {
	if r, ok := b.dpopRate[conns]; ok {
		return r
	}
	bearer := b.expectedRate(conns)
	best := 0.0
	for _, r := range b.dpopRate {
		best = max(best, r)
	}
	if best > 0 {
		return min(2*best, bearer)
	}
	return bearer
}
