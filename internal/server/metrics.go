package server

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/store"
)

// nodeMetrics are the metrics of the node's parts that must not import
// Prometheus themselves (the audit writer, the exchange rules): they report
// through hooks, which New wires here. Label values come from the configuration
// only (README "Metrics").
type nodeMetrics struct {
	decisions   *prometheus.CounterVec
	commit      prometheus.Histogram
	batch       prometheus.Histogram
	revocations prometheus.Counter
}

func newNodeMetrics(reg *prometheus.Registry) *nodeMetrics {
	m := &nodeMetrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deputy_exchange_decisions_total",
			Help: "Token exchange decisions by policy (rule; \"none\" when no policy was reached) and decision (allow or deny).",
		}, []string{"rule", "decision"}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "deputy_audit_commit_duration_seconds",
			Help:    "How long one group commit of audit events (one transaction, one fsync) took.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, 1, 5},
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "deputy_audit_batch_events",
			Help:    "Audit events per group commit.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		revocations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "deputy_revocations_total",
			Help: "Tokens this node revoked (a revoked token's descendants count too).",
		}),
	}
	reg.MustRegister(m.decisions, m.commit, m.batch, m.revocations)
	return m
}

// policyName is a policy's name as decisions report it: its name, or
// "policies[i]" (internal/policy).
func policyName(name string, i int) string {
	if name != "" {
		return name
	}
	return "policies[" + strconv.Itoa(i) + "]"
}

// watchQueue publishes the audit writer's queue depth, read at each scrape.
func (m *nodeMetrics) watchQueue(reg *prometheus.Registry, w *audit.Writer) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "deputy_audit_queue_depth",
		Help: "Audit events and revocations waiting for the audit writer.",
	}, func() float64 { return float64(w.QueueDepth()) }))
}

// watchSync publishes how long ago the revocations other nodes recorded were last
// read (lag, read at each scrape); past revocationsStale /readyz fails.
func (m *nodeMetrics) watchSync(reg *prometheus.Registry, lag func() float64) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "deputy_revocation_sync_lag_seconds",
		Help: "Seconds since this node last read the revocations recorded by any node.",
	}, lag))
}

func (m *nodeMetrics) committed(events int, took time.Duration) {
	m.batch.Observe(float64(events))
	m.commit.Observe(took.Seconds())
}

func (m *nodeMetrics) revoked(revs []store.Revocation) { m.revocations.Add(float64(len(revs))) }

// decider counts the decisions of x, whose policies are those of cfg: their
// names are the only values of the rule label (the names of every configuration
// the node has run, after reloads).
func (m *nodeMetrics) decider(x *exchange.Exchanger, cfg *config.Config) countedDecider {
	rules := map[string]bool{}
	for i, p := range cfg.Exchange.Policies {
		rules[policyName(p.Name, i)] = true
	}
	return countedDecider{x, m, rules}
}

func (m *nodeMetrics) decided(rules map[string]bool, rule string, err error) {
	decision := "allow"
	if err != nil {
		decision = "deny"
		var den *exchange.Denial
		rule = ""
		if errors.As(err, &den) {
			rule = den.Rule
		}
	}
	switch {
	case rule == "":
		rule = "none"
	case !rules[rule]:
		rule = "other"
	}
	m.decisions.WithLabelValues(rule, decision).Inc()
}

// countedDecider counts the decisions of the exchange rules.
type countedDecider struct {
	*exchange.Exchanger
	m     *nodeMetrics
	rules map[string]bool
}

func (d countedDecider) Decide(req exchange.Request, now time.Time) (exchange.Decision, error) {
	dec, err := d.Exchanger.Decide(req, now)
	d.m.decided(d.rules, dec.Rule, err)
	return dec, err
}

// jwksFetches counts the fetches of the trusted issuers' jwks_uri by the issuer's
// configured name.
type jwksFetches struct {
	c *prometheus.CounterVec
}

func newJWKSFetches(reg *prometheus.Registry) *jwksFetches {
	f := &jwksFetches{
		c: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deputy_jwks_fetches_total",
			Help: "Fetches of a trusted issuer's jwks_uri by issuer (its configured name) and outcome (ok or error).",
		}, []string{"issuer", "outcome"}),
	}
	reg.MustRegister(f.c)
	return f
}

// of returns the fetch hook of cfg's trusted issuers: their names are the only
// values of the issuer label.
func (f *jwksFetches) of(cfg *config.Config) func(issuer string, err error) {
	issuers := map[string]bool{}
	for _, ti := range cfg.TrustedIssuers {
		issuers[ti.Name] = true
	}
	return func(issuer string, err error) { f.fetched(issuers, issuer, err) }
}

func (f *jwksFetches) fetched(issuers map[string]bool, issuer string, err error) {
	if !issuers[issuer] {
		issuer = "other"
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	f.c.WithLabelValues(issuer, outcome).Inc()
}
