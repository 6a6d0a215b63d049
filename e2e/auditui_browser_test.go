package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The audit explorer (README "Audit explorer", /audit/ui) in Chromium, on the
// trail `deputy demo --dir D` leaves, served by `deputy serve --config
// D/deputy-demo.yaml` as the README's tour does. With DEPUTY_SCREENSHOTS=dir
// the test also writes the README's screenshots of the search and tree pages at
// 1280 and 390 CSS px: DEPUTY_SCREENSHOTS=$PWD/docs/screenshots go test -tags
// auditui -run TestBrowserAuditExplorer ./e2e/

// demoExplorer runs the demo into a directory of its own, adds an auditor
// account (`deputy users add --role auditor`) and one without the role, and serves the demo's
// configuration on a free port. The demo's trail is SQLite, whatever
// DEPUTY_E2E_STORAGE says.
func demoExplorer(t *testing.T) *server {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	demo := exec.CommandContext(ctx, binary, "demo", "--dir", dir)
	demo.Env = cleanEnv()
	if out, err := demo.CombinedOutput(); err != nil {
		t.Fatalf("deputy demo --dir: %v\n%s", err, out)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "deputy-demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The demo's issuer was a port of the demo's run: serve on a free one.
	issuer := regexp.MustCompile(`(?m)^issuer: .*$`)
	if !issuer.Match(cfg) {
		t.Fatalf("no issuer line in deputy-demo.yaml:\n%s", cfg)
	}
	addr := freePort(t)
	s := &server{t: t, dir: dir, issuer: "http://" + addr, logs: &syncBuffer{}, exited: make(chan struct{})}
	s.writeConfig(issuer.ReplaceAllString(string(cfg), "issuer: %ISSUER%\nlisten: %LISTEN%"), addr)

	// audrey is an auditor, bob is not: accounts in the database, added as an
	// administrator would.
	for _, u := range [][]string{{"audrey", "--role", "auditor"}, {"bob"}} {
		add := exec.CommandContext(ctx, binary, append(append([]string{"users", "add"}, u...), "--password-stdin", "--config", s.config)...)
		add.Env = cleanEnv()
		add.Stdin = strings.NewReader(u[0] + "-password\n")
		if out, err := add.CombinedOutput(); err != nil {
			t.Fatalf("deputy users add %v: %v\n%s", u, err, out)
		}
	}
	s.run()
	return s
}

// traceTree is the part of `deputy audit trace --json` the picture must show.
type traceTree struct {
	Root *traceNode `json:"root"`
}

type traceNode struct {
	JTI    string `json:"jti"`
	Events []struct {
		ID       string `json:"id"`
		Relation string `json:"relation"`
	} `json:"events"`
	Children []*traceNode `json:"children"`
}

// svgEdge is an edge of the tree's SVG.
type svgEdge struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// TestBrowserAuditExplorer: an anonymous visitor of /audit/ui is sent to sign in
// and back; a signed-in user without the auditor role gets 403; an auditor
// searches for alice with the keyboard, opens the demo's chain, whose SVG has
// one node per token and one edge per exchange of `deputy audit trace --json`,
// and exports the search as CSV, row for row `deputy audit query --json`. Every
// page fits a 390 px window.
func TestBrowserAuditExplorer(t *testing.T) {
	s := demoExplorer(t)
	c := newChrome(t)
	searchURL := s.url() + "/audit/ui?" + url.Values{"subject": {"alice"}}.Encode()

	// Anonymous: sent to sign in, and back to the page asked for.
	c.navigate(searchURL)
	if u, _ := url.Parse(c.location()); u.Path != "/login" || u.Query().Get("return_to") != "/audit/ui?subject=alice" {
		t.Fatalf("an anonymous visitor is at %s, want the login page returning to the search", c.location())
	}

	// Signed in without the role: 403.
	c.signInPage("bob", "bob-password")
	if status := c.navigateStatus(searchURL); status != 403 {
		t.Fatalf("bob (no auditor role) got %d at %s:\n%s", status, c.location(), c.text("body"))
	}
	if body := c.text("body"); !strings.Contains(body, "auditor") {
		t.Errorf("the 403 page does not say which role is missing:\n%s", body)
	}

	// The auditor, after the sign-in, lands on the page asked for.
	c.clearCookies()
	c.navigate(s.url() + "/audit/ui")
	c.signInPage("audrey", "audrey-password")
	if u, _ := url.Parse(c.location()); u.Path != "/audit/ui" {
		t.Fatalf("the auditor is at %s after signing in", c.location())
	}
	c.noHorizontalScroll(390)
	c.viewport(1280, 900)

	// Search with the keyboard: type into the subject field, Enter sends the form.
	c.fill(`input[name=subject]`, "alice")
	before := eval[float64](c, "performance.timeOrigin")
	c.do(chromedp.SendKeys(chromedp.CSS(`input[name=subject]`), kb.Enter))
	c.waitFor(fmt.Sprintf("performance.timeOrigin !== %v && document.readyState === 'complete'", before), "the search's results")
	if u, _ := url.Parse(c.location()); u.Query().Get("subject") != "alice" {
		t.Fatalf("the search is not in the page's URL: %s", c.location())
	}
	c.saveScreenshots("audit-search")
	c.noHorizontalScroll(390)
	c.viewport(1280, 900)

	// Export the search as CSV: the browser downloads it (its session, the
	// page's link), and it is the CLI's query, row for row.
	exported := c.download(`a[href*="/audit/ui/export"][href*="format=csv"]`, ".csv")
	query, code := s.deputy("audit", "query", "--subject", "alice", "--json")
	if code != 0 {
		t.Fatalf("deputy audit query: %s", query)
	}
	compareCSV(t, exported, query)

	// Open the demo's chain from the results: its tree page.
	treeHref := eval[string](c, `(document.querySelector('main a[href*="/audit/ui/tree?id="]') || {}).href || ""`)
	if treeHref == "" {
		t.Fatalf("no link to a tree in the results:\n%s", c.text("body"))
	}
	c.click(fmt.Sprintf(`main a[href=%q]`, strings.TrimPrefix(treeHref, s.url())))
	tu, _ := url.Parse(c.location())
	id := tu.Query().Get("id")
	if tu.Path != "/audit/ui/tree" || id == "" {
		t.Fatalf("the tree link led to %s", c.location())
	}
	out, code := s.deputy("audit", "trace", id, "--json")
	if code != 0 {
		t.Fatalf("deputy audit trace %s --json: %s", id, out)
	}
	var tree traceTree
	if err := json.Unmarshal([]byte(out), &tree); err != nil || tree.Root == nil {
		t.Fatalf("deputy audit trace %s --json: %v\n%s", id, err, out)
	}
	compareTree(t, c, tree)
	c.saveScreenshots("audit-tree")
	c.noHorizontalScroll(390)
}

// compareTree checks the tree page's SVG against the trail's tree (the
// drawing's structure is internal/audit/treesvg's): one element with data-jti
// per token, an edge (data-from, data-to) from each token to each token
// exchanged from it, and a line (data-from, data-event) from each token to each
// event the trail attaches to it (calls, denials, revocations).
func compareTree(t *testing.T, c *chrome, tree traceTree) {
	t.Helper()
	var tokens []string
	var edges, eventEdges []svgEdge
	var walk func(n *traceNode)
	walk = func(n *traceNode) {
		tokens = append(tokens, n.JTI)
		for _, e := range n.Events {
			eventEdges = append(eventEdges, svgEdge{n.JTI, e.ID})
		}
		for _, ch := range n.Children {
			edges = append(edges, svgEdge{n.JTI, ch.JTI})
			walk(ch)
		}
	}
	walk(tree.Root)
	if len(tokens) < 4 {
		t.Errorf("the chain opened has %d tokens, want the demo's sign-in and three hops at least", len(tokens))
	}
	gotTokens := eval[[]string](c, `[...document.querySelectorAll("svg [data-jti]")].map(e => e.getAttribute("data-jti"))`)
	gotEdges := eval[[]svgEdge](c, `[...document.querySelectorAll("svg [data-from][data-to]")].map(e => ({from: e.getAttribute("data-from"), to: e.getAttribute("data-to")}))`)
	gotEventEdges := eval[[]svgEdge](c, `[...document.querySelectorAll("svg path[data-from][data-event]")].map(e => ({from: e.getAttribute("data-from"), to: e.getAttribute("data-event")}))`)
	slices.Sort(tokens)
	slices.Sort(gotTokens)
	if !slices.Equal(gotTokens, tokens) {
		t.Errorf("SVG nodes (data-jti) %v, want the trail's tokens %v", gotTokens, tokens)
	}
	cmp := func(a, b svgEdge) int { return strings.Compare(a.From+" "+a.To, b.From+" "+b.To) }
	for _, pair := range []struct {
		what      string
		got, want []svgEdge
	}{{"exchange edges (data-from → data-to)", gotEdges, edges}, {"event lines (data-from → data-event)", gotEventEdges, eventEdges}} {
		slices.SortFunc(pair.got, cmp)
		slices.SortFunc(pair.want, cmp)
		if !slices.Equal(pair.got, pair.want) {
			t.Errorf("SVG %s %v, want the trail's %v", pair.what, pair.got, pair.want)
		}
	}
}

// compareCSV checks a CSV export (a header row, one row per event) against
// `deputy audit query --json` of the same search: the same events in the same
// order, each column holding the JSON's value (lists space-separated, a cell a
// spreadsheet would take for a formula quoted with a leading ').
func compareCSV(t *testing.T, exported, jsonLines string) {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(exported)).ReadAll()
	if err != nil || len(rows) == 0 {
		t.Fatalf("the CSV export does not parse (%v):\n%s", err, exported)
	}
	header, rows := rows[0], rows[1:]
	var events []map[string]any
	for line := range strings.Lines(jsonLines) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var m map[string]any
		d := json.NewDecoder(strings.NewReader(line))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			t.Fatalf("deputy audit query --json: %v: %s", err, line)
		}
		events = append(events, m)
	}
	if len(events) == 0 {
		t.Fatal("deputy audit query --subject alice found nothing: the demo left no trail")
	}
	if len(rows) != len(events) {
		t.Fatalf("the CSV export has %d rows, deputy audit query --json %d events", len(rows), len(events))
	}
	for k := range events[0] {
		if !slices.Contains(header, k) {
			t.Errorf("the CSV header %v lacks %q", header, k)
		}
	}
	for i, row := range rows {
		if len(row) != len(header) {
			t.Fatalf("row %d has %d cells, the header %d", i+1, len(row), len(header))
		}
		for j, k := range header {
			if !cellMatches(row[j], events[i][k]) {
				t.Errorf("row %d (event %v) column %s: CSV %q, JSON %v", i+1, events[i]["id"], k, row[j], events[i][k])
			}
		}
	}
}

// cellMatches reports whether a CSV cell holds the JSON value v.
func cellMatches(cell string, v any) bool {
	if strings.HasPrefix(cell, "'") && cell != "'" && strings.ContainsRune("=+-@\t\r", rune(cell[1])) {
		cell = cell[1:]
	}
	switch v := v.(type) {
	case nil:
		return cell == ""
	case json.Number:
		n, err := strconv.ParseInt(cell, 10, 64)
		return err == nil && strconv.FormatInt(n, 10) == v.String()
	case string:
		if cell == v {
			return true
		}
		a, errA := time.Parse(time.RFC3339Nano, cell)
		b, errB := time.Parse(time.RFC3339Nano, v)
		return errA == nil && errB == nil && a.Equal(b)
	case []any:
		var parts []string
		for _, p := range v {
			parts = append(parts, fmt.Sprint(p))
		}
		return cell == strings.Join(parts, " ")
	default: // an object: the detail
		var got any
		d := json.NewDecoder(bytes.NewReader([]byte(cell)))
		d.UseNumber()
		return d.Decode(&got) == nil && reflect.DeepEqual(got, v)
	}
}

// screenshotDir is where screenshots are written (DEPUTY_SCREENSHOTS), "" when
// they are not asked for.
func screenshotDir() string { return os.Getenv("DEPUTY_SCREENSHOTS") }

// saveScreenshot writes the page's screenshots at 1280 and 390 CSS px as
// name-1280.png and name-390.png into DEPUTY_SCREENSHOTS, when it is set.
func (c *chrome) saveScreenshots(name string) {
	c.t.Helper()
	dir := screenshotDir()
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	for _, w := range []int64{1280, 390} {
		png := c.screenshot(w)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, w)), png, 0o644); err != nil {
			c.t.Fatal(err)
		}
	}
	c.viewport(1280, 900)
}

// navigateStatus opens u and returns the HTTP status of the page it ends on.
func (c *chrome) navigateStatus(u string) int64 {
	c.t.Helper()
	resp := run(c, chromedp.NavigateResponse(u))
	if resp == nil {
		c.t.Fatalf("no response for %s", u)
	}
	return resp.Status
}

// clearCookies forgets every cookie of the browser (a new visitor).
func (c *chrome) clearCookies() {
	c.t.Helper()
	c.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, network.ClearBrowserCookies, cdp.Empty{})
		return err
	}))
}

// screenshot is a PNG of the whole page at width CSS px.
func (c *chrome) screenshot(width int64) []byte {
	c.t.Helper()
	c.viewport(width, 900)
	return run(c, chromedp.FullScreenshot(100))
}

// download clicks the link selector finds and returns the file the browser
// saved, whose name ends in suffix.
func (c *chrome) download(selector, suffix string) string {
	c.t.Helper()
	dir := c.t.TempDir()
	_, err := chromedp.CallBrowser(c.ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir})
	if err != nil {
		c.t.Fatal(err)
	}
	c.clickStay(selector)
	deadline := time.Now().Add(stepTimeout)
	for {
		names, _ := filepath.Glob(filepath.Join(dir, "*"+suffix))
		if len(names) == 1 {
			b, err := os.ReadFile(names[0])
			if err != nil {
				c.t.Fatal(err)
			}
			return string(b)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no %s file downloaded from %s (files %v)\nconsole:\n%s", suffix, selector, names, c.consoleText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
