package httpapi

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deputy_token_requests_total",
			Help: "Token endpoint requests by grant type and outcome (ok or the OAuth error code).",
		}, []string{"grant_type", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "deputy_token_request_duration_seconds",
			Help:    "Token endpoint latency by grant type, including the durable audit commit.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"grant_type"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// known bounds the grant_type label to real values.
var known = map[string]bool{
	"client_credentials": true, "authorization_code": true, "refresh_token": true,
	"urn:ietf:params:oauth:grant-type:token-exchange": true,
}

func (m *metrics) observe(grantType, outcome string, start time.Time) {
	if !known[grantType] {
		grantType = "other"
	}
	m.requests.WithLabelValues(grantType, outcome).Inc()
	m.latency.WithLabelValues(grantType).Observe(time.Since(start).Seconds())
}
