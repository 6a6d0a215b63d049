package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetricsListener: with metrics.listen set, the built binary serves /metrics
// there (Prometheus text with the runtime collectors and the token counters) and no
// longer on the main listener.
func TestMetricsListener(t *testing.T) {
	maddr := freePort(t)
	s := start(t, bankConfig+"metrics:\n  listen: "+maddr+"\n")
	if r := s.token("web-app", "web-secret", clientCredentials("payments:read")); r.Status != 200 {
		t.Fatalf("token: %d %v", r.Status, r.Body)
	}
	resp, err := http.Get(s.url() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("main listener /metrics: %d, want 404", resp.StatusCode)
	}
	resp, err = http.Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("metrics listener: %d, does not parse: %v", resp.StatusCode, err)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "deputy_token_requests_total", "deputy_audit_commit_duration_seconds"} {
		if fams[name] == nil {
			t.Errorf("metrics listener has no %s", name)
		}
	}
}
