package server_test

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/server"
)

// alertRules is the shape of a Prometheus rules file, as far as the test reads it.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// metricName finds the metric names an expression reads: deputy's own, and the
// Go and process collectors' (up is Prometheus' own).
var metricName = regexp.MustCompile(`\b(deputy|process|go)_[a-z0-9_]+\b`)

// TestAlertRulesReadRealMetrics: every alert of deploy/prometheus/deputy-alerts.yaml
// (README: Operating deputy › Alerts) is complete, and every metric it reads is
// one a node really exports — an alert on a misspelt or renamed metric would
// never fire.
func TestAlertRulesReadRealMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/prometheus/deputy-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules alertRules
	if err := yaml.UnmarshalWithOptions(raw, &rules, yaml.Strict()); err != nil {
		t.Fatalf("deputy-alerts.yaml: %v", err)
	}

	// A node that has served the requests whose series the alerts read: tokens,
	// an exchange, and a subject token of a trusted issuer whose keys cannot be
	// fetched.
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer down.Close()
	cfg := config.Dev(t.TempDir())
	cfg.TrustedIssuers = append(cfg.TrustedIssuers,
		config.TrustedIssuer{Name: "down", Issuer: "https://down.example", JWKSURI: down.URL, Audiences: []string{"https://deputy.test"}})
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := accessToken(t, post(s.Handler, "web-app", "web-app-secret", url.Values{"grant_type": {"client_credentials"}}))
	accessToken(t, post(s.Handler, "api1", "api1-secret", exchangeForm(t0, "https://api2.example")))
	enc := base64.RawURLEncoding.EncodeToString
	foreign := enc([]byte(`{"alg":"RS256","kid":"k1","typ":"JWT"}`)) + "." +
		enc([]byte(`{"iss":"https://down.example","sub":"x","aud":"https://deputy.test","exp":4102444800}`)) + "." + enc([]byte("sig"))
	if w := post(s.Handler, "api1", "api1-secret", exchangeForm(foreign, "https://api2.example")); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("subject token of an issuer whose keys are unreachable: %d %s, want 503 temporarily_unavailable", w.Code, w.Body.String())
	}
	fams := scrape(t, s.Handler)
	exported := func(name string) bool {
		if fams[name] != nil {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && fams[base] != nil {
				return true
			}
		}
		return false
	}

	var names []string
	for _, g := range rules.Groups {
		if len(g.Rules) == 0 {
			t.Errorf("group %q has no rules", g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" || strings.TrimSpace(r.Expr) == "" || r.For == "" {
				t.Errorf("rule %+v: alert, expr and for are required", r)
			}
			if !slices.Contains([]string{"critical", "warning"}, r.Labels["severity"]) {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs a summary and a description", r.Alert)
			}
			if slices.Contains(names, r.Alert) {
				t.Errorf("%s: two alerts of that name", r.Alert)
			}
			names = append(names, r.Alert)
			for _, m := range metricName.FindAllString(r.Expr, -1) {
				if !exported(m) {
					t.Errorf("%s reads %s, which deputy does not export", r.Alert, m)
				}
			}
		}
	}
	if len(names) < 10 {
		t.Errorf("%d alerts; the README lists more", len(names))
	}

	// The README lists every alert of the file, and no other.
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	listed := regexp.MustCompile("(?m)^\\| `(Deputy[A-Za-z]+)` \\|").FindAllStringSubmatch(string(readme), -1)
	var inReadme []string
	for _, m := range listed {
		inReadme = append(inReadme, m[1])
	}
	if !slices.Equal(inReadme, names) {
		t.Errorf("README's alerts table lists %v, the rules file has %v", inReadme, names)
	}
}
