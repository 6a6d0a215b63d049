package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// runRecord is one run: one JSON line of --json, one row of the table. Values
// that were not measured are null.
type runRecord struct {
	Name     string  `json:"name"` // deputy-<scenario>
	Scenario string  `json:"scenario"`
	Mode     string  `json:"mode"` // closed | open
	Conns    int     `json:"conns"`
	Rate     float64 `json:"rate,omitempty"` // open loop: requests per second asked for
	Secs     float64 `json:"secs"`           // -d
	Warmup   float64 `json:"warmup_secs"`
	// Window is the measured time req/s is computed over: -d, or (open loop)
	// until the last answer to a request due in -d.
	Window float64 `json:"window_secs"`

	RPS          float64           `json:"rps"`
	Requests     uint64            `json:"requests"`
	Errors       uint64            `json:"errors"`
	ErrRate      float64           `json:"err_rate"`
	ErrDetail    map[string]uint64 `json:"err_detail,omitempty"`
	FirstError   string            `json:"first_error,omitempty"`
	WarmupErrors uint64            `json:"warmup_errors"`
	Unsent       uint64            `json:"unsent,omitempty"` // open loop: due but never sent

	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
	MeanMs float64 `json:"mean_ms"`
	// Open loop: latency from the actual send, without the wait for a free
	// connection (what a tool with coordinated omission would report).
	ServiceP50Ms *float64 `json:"service_p50_ms,omitempty"`
	ServiceP99Ms *float64 `json:"service_p99_ms,omitempty"`

	ServerCPUPct   *float64 `json:"server_cpu_pct"`
	ServerRSSMaxMB *float64 `json:"server_rss_max_mb"`
	ServerRSSEndMB *float64 `json:"server_rss_end_mb"`
	ClientCPUPct   *float64 `json:"client_cpu_pct"`
	MachineBusyPct *float64 `json:"machine_busy_pct"`
	// OtherCPUPct is the machine's busy time that was neither the server nor the
	// load generator: other processes disturbing the measurement.
	OtherCPUPct *float64 `json:"other_cpu_pct"`
	StealPct    *float64 `json:"steal_pct"`

	// exchange-distinct: subject tokens prepared for the run, and requests that
	// reused one.
	PoolSize *int    `json:"pool_size,omitempty"`
	Reused   *uint64 `json:"reused,omitempty"`

	// exchange-dpop: DPoP proofs signed before the run (and how many per second
	// the load generator signed them), and proofs signed during it because the
	// pool was used up or --dpop-max-age left no time for one.
	ProofsPresigned *int     `json:"proofs_presigned,omitempty"`
	ProofSignRate   *float64 `json:"proof_sign_rate,omitempty"`
	ProofsLive      *uint64  `json:"proofs_live,omitempty"`

	Floor *floorResult `json:"floor,omitempty"`
	// FloorRatio is req/s over the floor (verify+sign, or sign for
	// client-credentials); closed loop only, as an open loop's req/s is the rate
	// asked for. FloorRatioPerCore is req/s per core the server kept busy over it.
	FloorRatio        *float64 `json:"floor_ratio,omitempty"`
	FloorRatioPerCore *float64 `json:"floor_ratio_per_core,omitempty"`

	// Nodes is each node's share of a run on several nodes (the total is above):
	// the requests its connections sent, their latency, its CPU and RSS.
	Nodes []*nodeRecord `json:"nodes,omitempty"`
	// PostgresCPUPct is the CPU of every postgres process during the window
	// (started nodes on --postgres).
	PostgresCPUPct *float64 `json:"postgres_cpu_pct,omitempty"`

	Alg           string   `json:"alg"`               // the server's access tokens', and the floor's
	Storage       string   `json:"storage,omitempty"` // of a started deputy: sqlite | postgres
	Target        string   `json:"target"`
	DeputyVersion string   `json:"deputy_version,omitempty"`
	ServerPID     int      `json:"server_pid,omitempty"`
	ServerCPUs    string   `json:"server_cpus,omitempty"` // Cpus_allowed_list of the server
	ClientCPUs    string   `json:"client_cpus,omitempty"` // Cpus_allowed_list of the load generator
	GoMaxProcs    int      `json:"client_gomaxprocs"`
	Note          string   `json:"note,omitempty"`
	LoadAvg       []string `json:"loadavg,omitempty"`
	TS            string   `json:"ts"`
}

// nodeRecord is one node's part of a run.
type nodeRecord struct {
	URL      string   `json:"url"` // its token endpoint
	PID      int      `json:"pid,omitempty"`
	CPUs     string   `json:"cpus,omitempty"`
	RPS      float64  `json:"rps"`
	Requests uint64   `json:"requests"`
	Errors   uint64   `json:"errors"`
	P50Ms    float64  `json:"p50_ms"`
	P99Ms    float64  `json:"p99_ms"`
	CPUPct   *float64 `json:"cpu_pct"`
	RSSMaxMB *float64 `json:"rss_max_mb"`
	RSSEndMB *float64 `json:"rss_end_mb"`
}

func ms(d time.Duration) float64 { return round(float64(d)/1e6, 3) }

func round(v float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(v*p) / p
}

// measured turns a /proc value (negative: not measured) into a JSON value.
func measured(v float64) *float64 {
	if v < 0 {
		return nil
	}
	r := round(v, 1)
	return &r
}

// fillStats copies the measurement of a run into r.
func (r *runRecord) fillStats(s *runStats, pr procResult) {
	r.Requests = s.ok + s.errorCount()
	r.Errors = s.errorCount()
	r.RPS = round(float64(r.Requests)/s.window.Seconds(), 1)
	r.ErrRate = round(float64(r.Errors)/math.Max(1, float64(r.Requests)), 5)
	r.ErrDetail = s.errorKinds()
	r.FirstError = s.firstErr
	r.WarmupErrors = s.warmErrs
	r.Unsent = s.unsent
	r.Window = round(s.window.Seconds(), 3)
	h := s.lat
	r.P50Ms, r.P90Ms, r.P99Ms, r.P999Ms = ms(h.Percentile(50)), ms(h.Percentile(90)), ms(h.Percentile(99)), ms(h.Percentile(99.9))
	r.MaxMs, r.MeanMs = ms(h.Max()), ms(h.Mean())
	if r.Mode == "open" {
		p50, p99 := ms(s.service.Percentile(50)), ms(s.service.Percentile(99))
		r.ServiceP50Ms, r.ServiceP99Ms = &p50, &p99
	}
	r.ServerCPUPct = measured(pr.ServerCPU)
	r.ServerRSSMaxMB = measured(pr.ServerRSSMax)
	r.ServerRSSEndMB = measured(pr.ServerRSSEnd)
	r.ClientCPUPct = measured(pr.ClientCPU)
	r.MachineBusyPct = measured(pr.MachineBusy)
	if pr.MachineBusy >= 0 && pr.ServerCPU >= 0 && pr.ClientCPU >= 0 {
		r.OtherCPUPct = measured(max(0, pr.MachineBusy-pr.ServerCPU-pr.ClientCPU))
	}
	if pr.StealPct >= 0 {
		v := round(pr.StealPct, 2)
		r.StealPct = &v
	}
	r.PostgresCPUPct = measured(pr.PostgresCPU)
	if pr.PostgresCPU >= 0 && r.OtherCPUPct != nil {
		// PostgreSQL is part of the target, not a disturbance.
		r.OtherCPUPct = measured(max(0, *r.OtherCPUPct-pr.PostgresCPU))
	}
	for i, n := range s.nodes {
		nr := &nodeRecord{
			Requests: n.ok + n.errorCount(), Errors: n.errorCount(),
			P50Ms: ms(n.lat.Percentile(50)), P99Ms: ms(n.lat.Percentile(99)),
		}
		nr.RPS = round(float64(nr.Requests)/s.window.Seconds(), 1)
		if i < len(pr.Nodes) {
			p := pr.Nodes[i]
			nr.CPUPct, nr.RSSMaxMB, nr.RSSEndMB = measured(p.CPU), measured(p.RSSMax), measured(p.RSSEnd)
		}
		r.Nodes = append(r.Nodes, nr)
	}
}

func appendJSONLine(path string, r *runRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func deref(v *float64) float64 {
	if v == nil {
		return math.NaN()
	}
	return *v
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func fmtOpt(v *float64, format string) string {
	if v == nil {
		return "—"
	}
	return fmt.Sprintf(format, *v)
}

// thousands formats a rate with a thin separator every three digits: 12 345.6.
func thousands(v float64, decimals int) string {
	s := fmt.Sprintf("%.*f", decimals, v)
	intPart, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(intPart, "-")
	intPart = strings.TrimPrefix(intPart, "-")
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	out := b.String()
	if neg {
		out = "-" + out
	}
	if frac != "" {
		out += "." + frac
	}
	return out
}

// printTable writes the runs as a table, then their errors and the floor ratios.
func printTable(w io.Writer, recs []*runRecord, floor *floorResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tconns\trate\treq/s\terrors\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\tsrv CPU%\tsrv RSS max/end MB\tcli CPU%\tother CPU%\t")
	for _, r := range recs {
		rate := "closed"
		if r.Mode == "open" {
			rate = thousands(r.Rate, 0) + "/s"
		}
		rss := "—"
		if r.ServerRSSMaxMB != nil && r.ServerRSSEndMB != nil {
			rss = fmt.Sprintf("%.1f/%.1f", *r.ServerRSSMaxMB, *r.ServerRSSEndMB)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%s\t%s\t%s\t\n",
			r.Scenario, r.Conns, rate, thousands(r.RPS, 1), r.Errors, r.P50Ms, r.P99Ms, r.P999Ms, r.MaxMs,
			fmtOpt(r.ServerCPUPct, "%.1f"), rss, fmtOpt(r.ClientCPUPct, "%.1f"), fmtOpt(r.OtherCPUPct, "%.1f"))
	}
	tw.Flush()
	fmt.Fprintln(w, "  (CPU%: 100 = one core busy over the measured window; other = the rest of the machine: processes that are neither server nor load generator)")
	for _, r := range recs {
		var notes []string
		if r.OtherCPUPct != nil && *r.OtherCPUPct >= 10 {
			notes = append(notes, fmt.Sprintf("other processes used %.0f%% of a core during the run: the numbers are disturbed", *r.OtherCPUPct))
		}
		if r.Errors > 0 {
			notes = append(notes, fmt.Sprintf("%d errors %v; first: %s", r.Errors, r.ErrDetail, r.FirstError))
		}
		if r.WarmupErrors > 0 {
			notes = append(notes, fmt.Sprintf("%d errors during the warm-up", r.WarmupErrors))
		}
		if r.Unsent > 0 {
			notes = append(notes, fmt.Sprintf("%d requests due in the window were never sent: the server fell more than the grace period behind the schedule (rate above capacity)", r.Unsent))
		}
		if r.PoolSize != nil && r.Reused != nil {
			if *r.Reused > 0 {
				notes = append(notes, fmt.Sprintf("subject tokens: %d distinct, %d requests reused one (raise --max-subjects)", *r.PoolSize, *r.Reused))
			} else {
				notes = append(notes, fmt.Sprintf("subject tokens: %d distinct, none reused", *r.PoolSize))
			}
		}
		if r.ProofsPresigned != nil && r.ProofsLive != nil {
			n := fmt.Sprintf("DPoP proofs: %d signed before the run", *r.ProofsPresigned)
			if r.ProofSignRate != nil {
				n += fmt.Sprintf(" (%s/s)", thousands(*r.ProofSignRate, 0))
			}
			if *r.ProofsLive > 0 {
				n += fmt.Sprintf(", %d signed during it on the load generator's CPU (raise --max-proofs, or shorten -d below --dpop-max-age)", *r.ProofsLive)
			} else {
				n += ", none signed during it"
			}
			notes = append(notes, n)
		}
		if r.Storage == "postgres" && r.PostgresCPUPct == nil {
			notes = append(notes, "PostgreSQL's CPU not measured: no postgres process in this /proc (another container or machine); it is in \"other CPU%\"")
		}
		if r.PostgresCPUPct != nil {
			notes = append(notes, fmt.Sprintf("PostgreSQL used %.1f%% of a core (every postgres process), the %s %.1f%%, the load generator %s%%",
				*r.PostgresCPUPct, plural(len(r.Nodes), "server", "nodes together"), deref(r.ServerCPUPct), fmtOpt(r.ClientCPUPct, "%.1f")))
		}
		if r.ServiceP99Ms != nil {
			notes = append(notes, fmt.Sprintf("open loop: latency from the due time; from the actual send p50 %.2f ms, p99 %.2f ms", *r.ServiceP50Ms, *r.ServiceP99Ms))
		}
		for _, n := range notes {
			fmt.Fprintf(w, "  %s c=%d: %s\n", r.Scenario, r.Conns, n)
		}
		for i, n := range r.Nodes {
			rss := "—"
			if n.RSSMaxMB != nil && n.RSSEndMB != nil {
				rss = fmt.Sprintf("%.1f/%.1f MB", *n.RSSMaxMB, *n.RSSEndMB)
			}
			fmt.Fprintf(w, "  %s c=%d: node %d (%s, CPUs %s): %s req/s, %d errors, p50 %.2f ms, p99 %.2f ms, CPU %s%%, RSS %s\n",
				r.Scenario, r.Conns, i+1, n.URL, orDash(n.CPUs), thousands(n.RPS, 1), n.Errors, n.P50Ms, n.P99Ms, fmtOpt(n.CPUPct, "%.1f"), rss)
		}
		if len(r.Nodes) > 0 {
			fmt.Fprintf(w, "  %s c=%d: all %d nodes: %s req/s, p99 %.2f ms\n", r.Scenario, r.Conns, len(r.Nodes), thousands(r.RPS, 1), r.P99Ms)
		}
	}
	if floor == nil {
		return
	}
	fmt.Fprintln(w)
	for _, r := range recs {
		if r.Floor == nil {
			continue
		}
		what, ops := "verify+sign", floor.ExchangeOps
		if r.Scenario == scenarioClientCreds {
			what, ops = "sign", floor.SignOps
		}
		perCore, cpu := "", ""
		if r.FloorRatioPerCore != nil {
			perCore = fmt.Sprintf("%.2f× per server core busy", *r.FloorRatioPerCore)
			cpu = fmt.Sprintf(" at %.1f%% server CPU", *r.ServerCPUPct)
		}
		if r.Mode == "open" {
			if r.FloorRatioPerCore != nil {
				fmt.Fprintf(w, "deputy %s (open loop %s/s, c=%d): %s req/s%s = %.2f× the %s %s floor per server core busy (floor %s/s)\n",
					r.Scenario, thousands(r.Rate, 0), r.Conns, thousands(r.RPS, 0), cpu, *r.FloorRatioPerCore, floor.Alg, what, thousands(ops, 0))
			}
			continue
		}
		if r.FloorRatio == nil {
			if len(r.Nodes) > 0 && r.FloorRatioPerCore != nil {
				fmt.Fprintf(w, "deputy %s (c=%d, %d nodes): %s req/s%s = %.2f× the %s %s floor per server core busy (floor %s/s per core)\n",
					r.Scenario, r.Conns, len(r.Nodes), thousands(r.RPS, 0), cpu, *r.FloorRatioPerCore, floor.Alg, what, thousands(ops, 0))
			}
			continue
		}
		if perCore != "" {
			perCore = "; " + perCore
		}
		fmt.Fprintf(w, "deputy %s (c=%d) = %.2f× the %s %s floor (%s req/s%s vs %s/s%s)\n",
			r.Scenario, r.Conns, *r.FloorRatio, floor.Alg, what, thousands(r.RPS, 0), cpu, thousands(ops, 0), perCore)
	}
}
