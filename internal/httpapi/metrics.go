package httpapi

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/deputy-auth/deputy/oauth"
)

// NewRegistry is a Prometheus registry with the Go runtime and process
// collectors, so that the first scrape of /metrics already has the node's memory,
// goroutines and file descriptors (README "Metrics").
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deputy_token_requests_total",
			Help: "Token endpoint requests by grant type, outcome (ok or denied) and OAuth error code (empty when ok).",
		}, []string{"grant_type", "outcome", "error"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "deputy_token_request_duration_seconds",
			Help:    "Token endpoint latency by grant type, including the durable audit commit.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, 1, 2.5, 5},
		}, []string{"grant_type"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "deputy_http_in_flight",
			Help: "HTTP requests being served now.",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.inFlight)
	return m
}

// knownGrants bounds the grant_type label to the grants deputy serves; anything a
// client sends beyond them is "other", so outside text never becomes a series.
var knownGrants = map[string]bool{
	oauth.GrantClientCredentials: true, oauth.GrantAuthorizationCode: true,
	oauth.GrantRefreshToken: true, oauth.GrantTokenExchange: true, oauth.GrantJWTBearer: true,
}

// knownCodes bounds the error label to the OAuth error codes (RFC 6749 §5.2,
// RFC 8693 §2.2.2, RFC 9449 §5 and §8).
var knownCodes = map[oauth.Code]bool{
	oauth.CodeInvalidRequest: true, oauth.CodeInvalidClient: true, oauth.CodeInvalidGrant: true,
	oauth.CodeUnauthorizedClient: true, oauth.CodeUnsupportedGrantType: true, oauth.CodeInvalidScope: true,
	oauth.CodeInvalidTarget: true, oauth.CodeUnsupportedTokenType: true, oauth.CodeServerError: true,
	oauth.CodeTemporarilyUnavail: true, oauth.CodeAccessDenied: true, oauth.CodeInvalidDPoPProof: true,
	oauth.CodeUseDPoPNonce: true,
}

// grantLabel is grantType as the metrics and the access log show it: one of
// knownGrants, else "other".
func grantLabel(grantType string) string {
	if !knownGrants[grantType] {
		return "other"
	}
	return grantType
}

// observe counts one token request: code is "" when it succeeded.
func (m *metrics) observe(grantType string, code oauth.Code, start time.Time) {
	grantType = grantLabel(grantType)
	outcome := "ok"
	if code != "" {
		outcome = "denied"
		if !knownCodes[code] {
			code = oauth.CodeServerError
		}
	}
	m.requests.WithLabelValues(grantType, outcome, string(code)).Inc()
	m.latency.WithLabelValues(grantType).Observe(time.Since(start).Seconds())
}
