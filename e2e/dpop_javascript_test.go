package e2e

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dpopJSDir holds the JavaScript DPoP clients (package.json, package-lock.json);
// scripts/test runs `npm ci` there when its node_modules is missing.
const dpopJSDir = "testdata/dpop-js"

// TestDPoPJavaScriptClients: panva's openid-client (discovery, client_credentials
// with a DPoP handle that retries on use_dpop_nonce) and dpop (a proof made by
// hand, PS256), unmodified, obtain DPoP-bound tokens from the built binary, which
// requires nonces and a proof of the client.
func TestDPoPJavaScriptClients(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: the JavaScript DPoP clients need it (apt-get install -y nodejs npm)")
	}
	dir, err := filepath.Abs(dpopJSDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openid-client")); err != nil {
		t.Fatalf("run `npm ci` in e2e/%s first (scripts/test does): %v", dpopJSDir, err)
	}
	s := start(t, dpopConfig())
	cmd := exec.Command(node, filepath.Join(dir, "dpop_client.mjs"), s.issuer, "batch", "batch-secret")
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("node: %v\n%s\n%s", err, out, stderr)
	}
	var got map[string]struct {
		Status      int    `json:"status"`
		TokenType   string `json:"token_type"`
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node printed %q: %v", out, err)
	}
	for _, lib := range []string{"openid_client", "dpop"} {
		r := got[lib]
		// token_type is case-insensitive (RFC 6749 §7.1): openid-client lower-cases it.
		if !strings.EqualFold(r.TokenType, "DPoP") || r.AccessToken == "" {
			t.Errorf("%s: %+v, want a DPoP token", lib, r)
			continue
		}
		cnf, _ := claims(t, r.AccessToken)["cnf"].(map[string]any)
		in := s.post("introspection_endpoint", "batch", "batch-secret", url.Values{"token": {r.AccessToken}})
		if jkt, _ := cnf["jkt"].(string); jkt == "" || in.str("token_type") != "DPoP" {
			t.Errorf("%s: cnf %v, introspection %s", lib, cnf, in.Raw)
		}
	}
}
