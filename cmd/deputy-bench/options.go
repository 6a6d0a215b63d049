package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Scenario names.
const (
	scenarioExchangeSame     = "exchange-same"
	scenarioExchangeDistinct = "exchange-distinct"
	scenarioExchangeDPoP     = "exchange-dpop"
	scenarioClientCreds      = "client-credentials"
)

var allScenarios = []string{scenarioExchangeSame, scenarioExchangeDPoP, scenarioExchangeDistinct, scenarioClientCreds}

// Limits that keep every run bounded.
const (
	maxDuration   = 300 * time.Second
	maxWarmup     = 60 * time.Second
	maxTimeout    = 60 * time.Second
	maxFloorTime  = 30 * time.Second
	maxConns      = 4096
	maxConnsList  = 8
	maxRate       = 1_000_000
	maxSubjectCap = 1_000_000
	maxProofs     = 1_000_000
	maxDPoPMaxAge = 10 * time.Minute // the server's own bound
	maxNodes      = 8
)

var algorithms = []string{"ES256", "EdDSA", "RS256", "PS256"}

// credentials are a client id and secret, for HTTP Basic authentication.
type credentials struct{ ID, Secret string }

func (c credentials) String() string { return c.ID + ":" + c.Secret }

func (c *credentials) Set(s string) error {
	id, secret, ok := strings.Cut(s, ":")
	if !ok || id == "" || secret == "" {
		return fmt.Errorf("%q is not id:secret", s)
	}
	*c = credentials{id, secret}
	return nil
}

// seconds is a duration flag that also takes a bare number of seconds ("15").
type seconds time.Duration

func (s seconds) String() string { return time.Duration(s).String() }

func (s *seconds) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		*s = seconds(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%q is neither seconds nor a duration like 15s", v)
	}
	*s = seconds(d)
	return nil
}

// intList is a comma-separated list of integers ("16,64").
type intList []int

func (l intList) String() string {
	s := make([]string, len(l))
	for i, v := range l {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

func (l *intList) Set(v string) error {
	var out intList
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("%q is not a comma-separated list of numbers", v)
		}
		out = append(out, n)
	}
	*l = out
	return nil
}

// options is the parsed command line.
type options struct {
	URL         string   // base URL of a running deputy (the first of URLs); "" with Start
	URLs        []string // base URLs of the running nodes; the load's connections go round-robin over them
	PID         int      // the running deputy's pid, for CPU and RSS (--url only; the first of PIDs)
	PIDs        []int    // the pids of the running nodes, in the order of URLs
	Nodes       int      // nodes to start (--start) or given by --url
	Postgres    string   // the started nodes' PostgreSQL DSN; "" for SQLite
	NodeCPUs    []string // the started nodes' CPUs, one CPU list per node
	Start       bool
	Deputy      string
	Alg         string
	ServerCPUs  string
	ClientCPUs  string
	FloorCPUs   string
	Scenarios   []string
	Conns       []int
	Duration    time.Duration
	Warmup      time.Duration
	Rate        float64
	Subjects    int
	MaxSubjects int
	Timeout     time.Duration
	FloorTime   time.Duration
	FloorOnly   bool
	JSON        string
	Note        string
	Keep        bool
	SubjectCli  credentials // gets the subject tokens (client credentials)
	ExchangeCli credentials // exchanges them
	CCCli       credentials // the client-credentials scenario
	Audience    string      // the exchange's target audience
	DPoPMaxAge  time.Duration
	MaxProofs   int
}

const usageText = `deputy-bench: load tool for deputy's token endpoint (issue 7).

Measures token exchange (RFC 8693) and client credentials throughput and latency
of one deputy, the server's CPU and memory from /proc, and the go-jose
verify+sign floor on one core, under the same conditions as the peer servers
(server pinned to one CPU, load generator to another, loopback only, warm-up,
then a measured window).

Usage:
  deputy-bench [--start] [--deputy PATH] [flags]      start a deputy, load it, stop it
  deputy-bench --url http://127.0.0.1:PORT [--pid PID] [flags]
  deputy-bench --postgres DSN --nodes 2 [--node-cpus 0,1] [flags]
                                                      two nodes on one PostgreSQL
  deputy-bench --url http://127.0.0.1:P1,http://127.0.0.1:P2 [--pid PID1,PID2] [flags]
  deputy-bench --floor-only [--alg ES256] [--floor-time 2s]

Examples:
  go build -o /tmp/deputy ./cmd/deputy
  go run ./cmd/deputy-bench --deputy /tmp/deputy --server-cpus 1 --client-cpus 0 -c 16,64 -d 15
  go run ./cmd/deputy-bench --deputy /tmp/deputy --server-cpus 1 --client-cpus 0 \
      --scenario exchange-same --rate 1000 -c 64 -d 15
  go run ./cmd/deputy-bench --deputy /tmp/deputy --alg EdDSA --json /tmp/deputy-bench.jsonl
  go run ./cmd/deputy serve &      # the development setup on 127.0.0.1:8080
  go run ./cmd/deputy-bench --url http://127.0.0.1:8080 --pid $! -c 16 -d 10
  go run ./cmd/deputy-bench --deputy /tmp/deputy --nodes 2 --node-cpus 0,1 \
      --postgres 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable' -c 16,64 -d 15

Scenarios (--scenario, comma-separated; default all):
  exchange-same       api1 exchanges one subject token for the audience on every
                      request (how the peer servers are measured)
  exchange-dpop       exchange-same sender-constrained (RFC 9449): the subject
                      token is DPoP-bound to the subject client's key, and every
                      exchange carries a fresh ES256 proof (new jti) of the
                      exchanging client's own key and gets a DPoP-bound token;
                      the proofs are signed before the run while
                      --dpop-max-age allows, else during it (reported)
  exchange-distinct   a different subject token on every request, from a pool
                      sized to the expected requests (reuse is reported)
  client-credentials  web-app's client credentials grant

Load: closed loop by default (-c connections, each sending its next request
when the previous answer arrived); --rate R is an open loop: requests are due
at a steady R per second over at most -c connections, and latency counts from
the time a request was due, not from when it could be sent (corrected for
coordinated omission).

Several nodes (--nodes N with --postgres, or --url with N URLs): the load's
connections are spread round-robin over the nodes (connection i to node i mod N),
and the report gives each node's req/s, p99, CPU and RSS beside the total. The
started nodes share one configuration (issuer: the first node's URL) and one fresh
schema of the --postgres database (dropped at the end unless --keep); each node
creates nothing of its own, the signing keys are in the database.

Flags:
`

// parseOptions parses and checks the command line. It returns flag.ErrHelp for
// -h/--help (after printing the usage to out).
func parseOptions(args []string, out io.Writer) (*options, error) {
	o := &options{
		Alg:         "ES256",
		Conns:       []int{16, 64},
		Duration:    15 * time.Second,
		Warmup:      2 * time.Second,
		Subjects:    1000,
		MaxSubjects: 100_000,
		Timeout:     10 * time.Second,
		FloorTime:   2 * time.Second,
		SubjectCli:  credentials{"web-app", "web-app-secret"},
		ExchangeCli: credentials{"api1", "api1-secret"},
		CCCli:       credentials{"web-app", "web-app-secret"},
		Audience:    "https://api2.example",
		DPoPMaxAge:  60 * time.Second,
		MaxProofs:   400_000,
	}
	fs := flag.NewFlagSet("deputy-bench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(out, usageText)
		fs.PrintDefaults()
	}
	var (
		scenarios = strings.Join(allScenarios, ",")
		conns     = intList(o.Conns)
		dur       = seconds(o.Duration)
		warmup    = seconds(o.Warmup)
		timeout   = seconds(o.Timeout)
		floorTime = seconds(o.FloorTime)
		dpopAge   = seconds(o.DPoPMaxAge)
	)
	var urls, nodeCPUs string
	var pids intList
	fs.StringVar(&urls, "url", "", "base URL of a running deputy, or comma-separated those of several nodes (one cluster: the load goes round-robin over them); only http://127.0.0.1:PORT is accepted")
	fs.Var(&pids, "pid", "with --url: the deputy's process id (comma-separated, one per URL), to measure its CPU and RSS from /proc")
	fs.IntVar(&o.Nodes, "nodes", 1, "deputy nodes to start on the --postgres database (at most 8); the load goes round-robin over them")
	fs.StringVar(&o.Postgres, "postgres", "", "start deputy on PostgreSQL at this DSN (on this machine: 127.0.0.1, ::1, localhost or a Unix socket), in a fresh schema dropped at the end; default SQLite")
	fs.StringVar(&nodeCPUs, "node-cpus", "", "pin the started nodes one CPU each, comma-separated in node order (e.g. 0,1: node 1 on CPU 0, node 2 on CPU 1)")
	fs.BoolVar(&o.Start, "start", false, "start a deputy (the default without --url): deputy serve on a generated configuration and SQLite in a temporary directory, stopped at the end")
	fs.StringVar(&o.Deputy, "deputy", "", "the deputy binary for --start (default: deputy next to this binary, else on PATH; build one with go build -o /tmp/deputy ./cmd/deputy)")
	fs.StringVar(&o.Alg, "alg", o.Alg, "signing algorithm of the started deputy and of the floor: "+strings.Join(algorithms, ", "))
	fs.StringVar(&o.ServerCPUs, "server-cpus", "", "pin the started deputy with taskset -c CPUS, e.g. 1")
	fs.StringVar(&o.ClientCPUs, "client-cpus", "", "pin the load generator (this process, re-executed under taskset -c CPUS), e.g. 0")
	fs.StringVar(&o.FloorCPUs, "floor-cpus", "", "measure the crypto floor on these CPUs (default: where the load generator runs)")
	fs.StringVar(&scenarios, "scenario", scenarios, "scenarios to run, comma-separated")
	fs.Var(&conns, "c", "connections, comma-separated for several runs (e.g. 16,64)")
	fs.Var(&dur, "d", fmt.Sprintf("measured duration of each run, in seconds or as a duration (at most %v)", maxDuration))
	fs.Var(&warmup, "warmup", fmt.Sprintf("unmeasured load before each run (at most %v)", maxWarmup))
	fs.Float64Var(&o.Rate, "rate", 0, "open loop: requests per second on a steady schedule (0: closed loop)")
	fs.IntVar(&o.Subjects, "subjects", o.Subjects, "subject tokens prepared up front (client credentials of the subject client); exchange-distinct tops the pool up to the requests a run is expected to send")
	fs.IntVar(&o.MaxSubjects, "max-subjects", o.MaxSubjects, "most subject tokens one exchange-distinct run prepares; beyond that tokens are reused, and the reuse is reported")
	fs.Var(&timeout, "timeout", "per-request timeout; a request that takes longer is an error")
	fs.Var(&floorTime, "floor-time", fmt.Sprintf("time spent measuring the verify+sign floor (half as much again for sign alone); 0 skips it (at most %v)", maxFloorTime))
	fs.BoolVar(&o.FloorOnly, "floor-only", false, "only measure the floor: a readable line on stderr, one JSON object on stdout")
	fs.StringVar(&o.JSON, "json", "", "append one JSON object per run to this file")
	fs.StringVar(&o.Note, "note", "", "free text copied into every JSON line")
	fs.BoolVar(&o.Keep, "keep", false, "keep the started deputy's directory (configuration, database, log)")
	fs.Var(&o.SubjectCli, "subject-client", "id:secret of the client whose client-credentials tokens are the subject tokens")
	fs.Var(&o.ExchangeCli, "exchange-client", "id:secret of the client that exchanges them")
	fs.Var(&o.CCCli, "cc-client", "id:secret of the client of the client-credentials scenario")
	fs.StringVar(&o.Audience, "audience", o.Audience, "audience the exchange asks for")
	fs.Var(&dpopAge, "dpop-max-age", "dpop.max_age of the server (the started deputy is configured with it): exchange-dpop signs its proofs before a run only when the oldest is still this young at the run's end")
	fs.IntVar(&o.MaxProofs, "max-proofs", o.MaxProofs, "most DPoP proofs exchange-dpop signs before one run (about 600 bytes each); beyond that they are signed during the run, and that is reported")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	o.Conns = conns
	if urls != "" {
		for u := range strings.SplitSeq(urls, ",") {
			o.URLs = append(o.URLs, strings.TrimSuffix(strings.TrimSpace(u), "/"))
		}
		o.URL = o.URLs[0]
		if !isFlagSet(fs, "nodes") {
			o.Nodes = len(o.URLs)
		}
	}
	o.PIDs = pids
	if len(pids) > 0 {
		o.PID = pids[0]
	}
	if nodeCPUs != "" {
		o.NodeCPUs = strings.Split(nodeCPUs, ",")
	}
	o.Duration, o.Warmup, o.Timeout, o.FloorTime = time.Duration(dur), time.Duration(warmup), time.Duration(timeout), time.Duration(floorTime)
	o.DPoPMaxAge = time.Duration(dpopAge)
	o.Scenarios = nil
	for s := range strings.SplitSeq(scenarios, ",") {
		if s = strings.TrimSpace(s); s != "" && !slices.Contains(o.Scenarios, s) {
			o.Scenarios = append(o.Scenarios, s)
		}
	}
	if o.URL == "" {
		o.Start = true
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	return o, nil
}

func isFlagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

var cpuListRE = regexp.MustCompile(`^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$`)

// check returns every problem with the options at once.
func (o *options) check() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if o.URL != "" {
		for _, u := range o.URLs {
			if err := checkLoopbackURL(u); err != nil {
				errs = append(errs, err)
			}
		}
		if o.Start {
			bad("--start and --url exclude each other: either start a deputy or load a running one")
		}
		if o.Deputy != "" || o.ServerCPUs != "" || o.Postgres != "" || len(o.NodeCPUs) > 0 {
			bad("--deputy, --server-cpus, --postgres and --node-cpus are for --start; configure and pin a running deputy yourself")
		}
		if o.Nodes != len(o.URLs) {
			bad("--nodes %d with %d URL(s): a running cluster is its --url list", o.Nodes, len(o.URLs))
		}
		if len(o.PIDs) > 0 && len(o.PIDs) != len(o.URLs) {
			bad("--pid lists %d process(es) for %d URL(s): give one per URL, in the same order", len(o.PIDs), len(o.URLs))
		}
	} else if len(o.PIDs) > 0 {
		bad("--pid is for --url; a started deputy is measured anyway")
	}
	for _, p := range o.PIDs {
		if p <= 0 {
			bad("--pid %d is not a process id", p)
		}
	}
	if o.Nodes < 1 || o.Nodes > maxNodes {
		bad("--nodes %d is not between 1 and %d", o.Nodes, maxNodes)
	} else if o.Start && o.Nodes > 1 && o.Postgres == "" {
		bad("--nodes %d needs --postgres: nodes share their state through one PostgreSQL database (SQLite is one node's)", o.Nodes)
	}
	if o.Postgres != "" {
		if err := checkLocalDSN(o.Postgres); err != nil {
			errs = append(errs, err)
		}
	}
	if len(o.NodeCPUs) > 0 {
		if len(o.NodeCPUs) != o.Nodes {
			bad("--node-cpus lists %d CPU(s) for %d node(s): give one per node", len(o.NodeCPUs), o.Nodes)
		}
		if o.ServerCPUs != "" {
			bad("--node-cpus and --server-cpus exclude each other: pin every node to the same CPUs, or each to its own")
		}
		for _, c := range o.NodeCPUs {
			if _, err := strconv.ParseUint(c, 10, 16); err != nil {
				bad("--node-cpus %q: %q is not a CPU number", strings.Join(o.NodeCPUs, ","), c)
			}
		}
	}
	if !slices.Contains(algorithms, o.Alg) {
		bad("--alg %q is not one of %s", o.Alg, strings.Join(algorithms, ", "))
	}
	for _, f := range []struct{ name, v string }{{"--server-cpus", o.ServerCPUs}, {"--client-cpus", o.ClientCPUs}, {"--floor-cpus", o.FloorCPUs}} {
		if f.v != "" && !cpuListRE.MatchString(f.v) {
			bad("%s %q is not a CPU list like 0 or 0-1,3", f.name, f.v)
		}
	}
	if len(o.Scenarios) == 0 {
		bad("--scenario lists no scenario")
	}
	for _, s := range o.Scenarios {
		if !slices.Contains(allScenarios, s) {
			bad("--scenario %q is not one of %s", s, strings.Join(allScenarios, ", "))
		}
	}
	if len(o.Conns) == 0 || len(o.Conns) > maxConnsList {
		bad("-c lists %d values; give 1 to %d", len(o.Conns), maxConnsList)
	}
	for _, c := range o.Conns {
		if c < 1 || c > maxConns {
			bad("-c %d is not between 1 and %d", c, maxConns)
		}
	}
	if o.Duration <= 0 || o.Duration > maxDuration {
		bad("-d %v is not between 0 and %v", o.Duration, maxDuration)
	}
	if o.Warmup < 0 || o.Warmup > maxWarmup {
		bad("--warmup %v is not between 0 and %v", o.Warmup, maxWarmup)
	}
	if o.Timeout <= 0 || o.Timeout > maxTimeout {
		bad("--timeout %v is not between 0 and %v", o.Timeout, maxTimeout)
	}
	if o.FloorTime < 0 || o.FloorTime > maxFloorTime {
		bad("--floor-time %v is not between 0 and %v", o.FloorTime, maxFloorTime)
	}
	if o.FloorOnly && o.FloorTime == 0 {
		bad("--floor-only needs a --floor-time above 0")
	}
	if o.Rate < 0 || o.Rate > maxRate {
		bad("--rate %v is not between 0 and %d", o.Rate, maxRate)
	}
	if o.Subjects < 1 || o.Subjects > maxSubjectCap {
		bad("--subjects %d is not between 1 and %d", o.Subjects, maxSubjectCap)
	}
	if o.MaxSubjects < o.Subjects || o.MaxSubjects > maxSubjectCap {
		bad("--max-subjects %d is not between --subjects (%d) and %d", o.MaxSubjects, o.Subjects, maxSubjectCap)
	}
	if o.DPoPMaxAge < time.Second || o.DPoPMaxAge > maxDPoPMaxAge || o.DPoPMaxAge%time.Second != 0 {
		bad("--dpop-max-age %v is not whole seconds between 1s and %v", o.DPoPMaxAge, maxDPoPMaxAge)
	}
	if o.MaxProofs < 0 || o.MaxProofs > maxProofs {
		bad("--max-proofs %d is not between 0 and %d", o.MaxProofs, maxProofs)
	}
	if o.Audience == "" {
		bad("--audience must not be empty")
	}
	return errors.Join(errs...)
}

// checkLoopbackURL accepts only http://127.0.0.1:PORT (with an optional path):
// the tool sends thousands of requests per second and must never point them at
// another machine.
func checkLoopbackURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("--url %q: %v", s, err)
	}
	if u.Scheme != "http" || u.Opaque != "" {
		return fmt.Errorf("--url %q: only http://127.0.0.1:PORT is allowed", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("--url %q: no user info, query or fragment, only http://127.0.0.1:PORT", s)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return fmt.Errorf("--url %q: only http://127.0.0.1:PORT is allowed (with a port)", s)
	}
	if host != "127.0.0.1" {
		return fmt.Errorf("--url %q: refusing to load %q; only 127.0.0.1 is allowed", s, host)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 || strconv.FormatUint(n, 10) != port {
		return fmt.Errorf("--url %q: port %q is not a port number", s, port)
	}
	return nil
}
