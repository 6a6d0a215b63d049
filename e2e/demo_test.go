package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestDemo runs `deputy demo` as the README tells users to: it must exit 0 and
// show alice, the three services in the right nesting, the calls each API
// reported, each payment's trace id and an intact audit chain — for the password
// sign-in and for the SAML assertion.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	checkDemo(t, dir, runDemo(t, "--dir", dir))
}

// TestDemoFraudCheckNode runs the README's variant of the demo whose
// fraud-check is the Node service of examples/bank/node, on the TypeScript SDK
// (sdk/ts, built here first): every step holds as with the Go fraud-check — the
// bound token and its proof accepted, the stolen token refused, the call
// reports under the payment's trace, the same transaction token byte for byte.
func TestDemoFraudCheckNode(t *testing.T) {
	script := nodeFraudCheck(t)
	dir := t.TempDir()
	out := runDemo(t, "--dir", dir, "--fraud-check-node", script)
	if !strings.Contains(out, "fraud-check is the Node service "+script+", on deputy's TypeScript SDK\n") {
		t.Errorf("the demo does not say fraud-check runs in Node:\n%s", out)
	}
	checkDemo(t, dir, out)
}

// TestDemoFraudCheckNodeDiesWithDeputy: when deputy demo is killed (SIGKILL:
// no chance to stop its children, as when a test times out), the Node
// fraud-check stops too instead of holding its port forever.
func TestDemoFraudCheckNodeDiesWithDeputy(t *testing.T) {
	script := nodeFraudCheck(t)
	// A name of its own, to find the process by: Node resolves the link, so the
	// script's imports are the repository's.
	link := filepath.Join(t.TempDir(), "fraud-check-"+strconv.Itoa(os.Getpid())+".mjs")
	if err := os.Symlink(script, link); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "demo", "--dir", t.TempDir(), "--fraud-check-node", link)
	cmd.Env = cleanEnv()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() && !strings.Contains(sc.Text(), "fraud-check is the Node service") {
	}
	pids := slices.DeleteFunc(processesRunning(t, link), func(pid int) bool { return pid == cmd.Process.Pid })
	if len(pids) != 1 {
		t.Fatalf("%d processes run %s, want the one Node fraud-check", len(pids), link)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for len(processesRunning(t, link)) > 0 {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pids[0], syscall.SIGKILL)
			t.Fatalf("the Node fraud-check (pid %d) still runs 10 s after deputy demo was killed", pids[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nodeFraudCheck builds the TypeScript SDK (sdk/ts) and returns the absolute
// path of the Node fraud-check, examples/bank/node/fraud-check.mjs.
func nodeFraudCheck(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed: the Node fraud-check needs it (apt-get install -y nodejs npm)")
	}
	ts, err := filepath.Abs(filepath.Join("..", "sdk", "ts"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(ts, "node_modules", "typescript")); err != nil {
		t.Fatalf("run `npm ci` in sdk/ts first (scripts/test does): %v", err)
	}
	buildTS.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		build := exec.CommandContext(ctx, "npm", "run", "--silent", "build")
		build.Dir = ts
		if out, err := build.CombinedOutput(); err != nil {
			buildTSErr = fmt.Errorf("building the TypeScript SDK (npm run build in sdk/ts): %v\n%s", err, out)
		}
	})
	if buildTSErr != nil {
		t.Fatal(buildTSErr)
	}
	script, err := filepath.Abs(filepath.Join("..", "examples", "bank", "node", "fraud-check.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	return script
}

var (
	buildTS    sync.Once
	buildTSErr error
)

// processesRunning returns the processes whose command line names arg (Linux /proc).
func processesRunning(t *testing.T, arg string) []int {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err == nil && slices.Contains(strings.Split(string(b), "\x00"), arg) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// runDemo runs deputy demo with args and returns what it printed; it must exit 0.
func runDemo(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"demo"}, args...)...)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("deputy demo: %v\n%s", err, out)
	}
	return string(out)
}

// checkDemo checks what deputy demo printed, s, and the trail it kept in dir.
func checkDemo(t *testing.T, dir, s string) {
	t.Helper()
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
		// a token that did not come through payments: the ledger refused by the
		// condition of ledger-to-fraud-check, the trace of the denial says why
		`condition: size(subject.act) > 0 && subject.act[0].sub == "payments"`,
		"act {sub: web-app}",
		"the ledger exchanges it for fraud-check                 → 400 invalid_request",
		"(not issued in this audit trail)",
		"policy ledger-to-fraud-check: condition — condition is false\n",
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
	// Every payment is a transaction: ledger and fraud-check of scenarios 1 and
	// 2 each carried its transaction token.
	if n := strings.Count(s, "(Txn-Token: scope fraud:check ledger:write)\n"); n != 4 {
		t.Errorf("%d hops carried a transaction token, want 4 (ledger and fraud-check, twice)", n)
	}
	if t.Failed() {
		t.Logf("output:\n%s", s)
	}
	conditionalDenial(t, dir, s)
	transaction(t, dir, s)
}

// transaction checks the demo's fifth step: payments obtained a transaction
// token, ledger and fraud-check saw its txn, and deputy audit trace of the txn
// — from the trail the demo kept in dir — shows the transaction token under
// the token payments received, with its purpose and context.
func transaction(t *testing.T, dir, out string) {
	t.Helper()
	m := regexp.MustCompile(`(?s)── 5\..*\n     txn    (\S+)\n.*\n   ledger +saw txn (\S+) .*\n   fraud-check +saw txn (\S+) .*audit trace \(deputy audit trace (\S+)\):`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the demo's step 5 does not show the transaction:\n%s", out)
	}
	txn := m[1]
	if m[2] != txn || m[3] != txn || m[4] != txn {
		t.Fatalf("step 5: token txn %s, ledger saw %s, fraud-check %s, traced %s", txn, m[2], m[3], m[4])
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "audit", "trace", txn, "--config", filepath.Join(dir, "deputy-demo.yaml"))
	cmd.Env = cleanEnv()
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("deputy audit trace %s: %v\n%s", txn, err, b)
	}
	trace := string(b)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^ +│ +├─ token \S+ \(token\.exchanged\) .* client payments  rule payments-transactions  ◀ asked\n` +
			`.* sub alice  aud bank\.example  scope fraud:check,ledger:write  exp \S+  bearer\n` +
			`.* txn ` + regexp.QuoteMeta(txn) + `  purpose fraud:check,ledger:write  rctx req_ip 127\.0\.0\.1 authn pwd req_wl payments  tctx \{"payment":\{"to":"dave","amount":"250\.00"\}\}\n`),
		regexp.MustCompile(`did "check debit of 250\.00 EUR from alice: ok"`),
	} {
		if !want.MatchString(trace) {
			t.Errorf("deputy audit trace %s lacks %s:\n%s", txn, want, trace)
		}
	}
}

// conditionalDenial checks the demo's fourth step in the trail it kept in dir:
// the denial of the ledger's exchange keeps what policy ledger-to-fraud-check
// made of it (its condition is false), and deputy audit trace of the denial,
// the id the demo printed, shows it under the denial.
func conditionalDenial(t *testing.T, dir, out string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := regexp.MustCompile(`(?s)── 4\..*?audit trace \(deputy audit trace (\S+)\):`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the demo printed no audit trace of the denial in step 4")
	}
	id := m[1]
	tool := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, binary, append(args, "--config", filepath.Join(dir, "deputy-demo.yaml"))...)
		cmd.Env = cleanEnv()
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("deputy %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return string(b)
	}

	var denial struct {
		ID       string `json:"id"`
		Decision string `json:"decision"`
		Reason   string `json:"reason"`
		Detail   struct {
			Policies []struct{ Policy, Check, Reason string } `json:"policies"`
		} `json:"detail"`
	}
	for line := range strings.Lines(tool("audit", "query", "--client", "ledger", "--type", "request.denied", "--json")) {
		if strings.Contains(line, `"id":"`+id+`"`) {
			if err := json.Unmarshal([]byte(line), &denial); err != nil {
				t.Fatalf("%v: %s", err, line)
			}
		}
	}
	if denial.ID != id || denial.Decision != "deny" || !strings.HasPrefix(denial.Reason, "invalid_request: ") {
		t.Fatalf("denial %s in the trail: %+v", id, denial)
	}
	if p := denial.Detail.Policies; len(p) != 1 || p[0].Policy != "ledger-to-fraud-check" || p[0].Check != "condition" || p[0].Reason != "condition is false" {
		t.Errorf("denial %s keeps policies %+v, want ledger-to-fraud-check: condition — condition is false", id, p)
	}

	trace := tool("audit", "trace", id)
	if !regexp.MustCompile(`(?m)^  ✗ denied .* client ledger .*◀ asked\n      policy ledger-to-fraud-check: condition — condition is false\n`).MatchString(trace) {
		t.Errorf("deputy audit trace %s does not show the policy under the denial:\n%s", id, trace)
	}
	var tree struct {
		Root struct {
			Events []struct {
				ID       string                                   `json:"id"`
				Policies []struct{ Policy, Check, Reason string } `json:"policies"`
			} `json:"events"`
		} `json:"root"`
	}
	if err := json.Unmarshal([]byte(tool("audit", "trace", id, "--json")), &tree); err != nil {
		t.Fatal(err)
	}
	if ev := tree.Root.Events; len(ev) != 1 || ev[0].ID != id || len(ev[0].Policies) != 1 || ev[0].Policies[0].Check != "condition" {
		t.Errorf("deputy audit trace %s --json: events %+v", id, ev)
	}
}
