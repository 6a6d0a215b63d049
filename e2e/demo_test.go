package e2e

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `deputy demo` as the README tells users to: it must exit 0 and
// show alice, the three services in the right nesting, the calls each API
// reported, each payment's trace id and an intact audit chain — for the password
// sign-in and for the SAML assertion.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "demo", "--dir", t.TempDir())
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("deputy demo: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{
		// scenario 1: alice, her token through payments, ledger, fraud-check
		"sub    alice\n",
		"act    — (nobody acts for the user yet)",
		"act    {sub: payments}\n",
		"act    {sub: ledger, act: {sub: payments}}\n",
		// scenario 2: from the corporate IdP's assertion, the web app first in the chain
		"sub    alice@corp.example\n",
		"act    {sub: web-app}\n",
		"act    {sub: ledger, act: {sub: payments, act: {sub: web-app}}}\n",
		// the trace: the sign-in at the root, rules of each hop, the calls reported
		"(signin)",
		"rule payments-to-ledger",
		"rule ledger-to-fraud-check",
		"rule corp-sso-to-payments",
		"(presented from https://idp.corp.example, not issued by deputy)",
		`did "pay 42.00 EUR to bob: booked"`,
		`did "check debit of 42.00 EUR from alice: ok"`,
		`did "check debit of 12500.00 EUR from alice@corp.example: review"`,
		"hash chain intact",
		// every hop bound to its caller's DPoP key, and the trace says so
		"cnf    jkt ",
		"bound dpop:",
		// the token lifted from the ledger refused at fraud-check and at deputy
		"at fraud-check as Bearer",
		`401 invalid_token (DPoP error="invalid_token")`,
		`401 invalid_dpop_proof (DPoP error="invalid_dpop_proof")`,
		"no proof  → 400 invalid_request",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	// Each scenario's hops come in order: payments, then ledger, then fraud-check.
	order := regexp.MustCompile(`hop \d  (\S+) received`).FindAllStringSubmatch(s, -1)
	var got []string
	for _, m := range order {
		got = append(got, m[1])
	}
	if strings.Join(got, " ") != "payments ledger fraud-check payments ledger fraud-check" {
		t.Errorf("hops %v", got)
	}
	// Each payment is one trace, printed beside its audit trace: two scenarios,
	// two trace ids (the demo fails if a hop saw another).
	traces := regexp.MustCompile(`trace id ([0-9a-f]{32}): one W3C trace`).FindAllStringSubmatch(s, -1)
	if len(traces) != 2 || traces[0][1] == traces[1][1] || traces[0][1] == strings.Repeat("0", 32) {
		t.Errorf("trace ids %v, want two distinct ones", traces)
	}
	// No hop is a bearer token: six hops, six bindings.
	if n := strings.Count(s, "cnf    jkt "); n != 6 || strings.Contains(s, "cnf    — (bearer)") {
		t.Errorf("%d bound hops, want all 6", n)
	}
	if t.Failed() {
		t.Logf("output:\n%s", s)
	}
}
