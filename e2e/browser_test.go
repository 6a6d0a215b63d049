package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The tests in browser*_test.go drive a real browser: Debian's Chromium, headless,
// through the DevTools protocol (chromedp). scripts/test installs the chromium
// package when it is missing; a test that needs the browser and cannot find it
// fails.

// chromiumPath is the browser to drive: $DEPUTY_TEST_CHROMIUM, else chromium
// or chromium-browser on the PATH.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("DEPUTY_TEST_CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("DEPUTY_TEST_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("Chromium is not installed: the browser tests need it (apt-get install -y chromium, as scripts/test does, or set DEPUTY_TEST_CHROMIUM)")
	return ""
}

// browserTimeout bounds a whole browser test: the browser is killed then, so a
// hung page fails its test instead of the run. stepTimeout bounds one step.
const (
	browserTimeout = 3 * time.Minute
	stepTimeout    = 30 * time.Second
)

// chrome is one headless Chromium with one tab, started for one test and
// stopped by its cleanup.
type chrome struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []string  // console and browser-log messages, in order
	navs    []request // the tab's document requests, redirects included
	output  *syncBuffer
}

// request is a document request of the tab: its URL and, when a redirect led to
// it, that redirect's status.
type request struct {
	URL            string
	RedirectStatus int64
}

// newChrome starts Chromium headless (without the sandbox: the suite runs as
// root) with a fresh profile and a 1280×900 window.
func newChrome(t *testing.T) *chrome {
	t.Helper()
	c := &chrome{t: t, output: &syncBuffer{}}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(c.output),
	)
	bounded, cancelBound := context.WithTimeout(context.Background(), browserTimeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(bounded, opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancelBound()
	})
	c.ctx = ctx
	if err := chromedp.Do(ctx); err != nil { // starts the browser and opens the tab
		t.Fatalf("starting Chromium: %v\n%s", err, c.output.String())
	}
	t.Cleanup(func() { // runs before the browser stops
		if t.Failed() {
			c.keepScreenshot()
		}
	})
	err := chromedp.Listen(ctx, func(ev any) {
		var line string
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				args = append(args, strings.Trim(string(a.Value), `"`))
			}
			line = fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " "))
		case *runtime.EventExceptionThrown:
			line = "exception: " + ev.ExceptionDetails.Text
			if ex := ev.ExceptionDetails.Exception; ex != nil {
				line += " " + ex.Description
			}
		case *log.EventEntryAdded:
			line = fmt.Sprintf("log.%s(%s): %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text)
		case *network.EventRequestWillBeSent:
			if ev.Type != network.ResourceTypeDocument {
				return
			}
			r := request{URL: ev.Request.URL}
			if ev.RedirectResponse != nil {
				r.RedirectStatus = ev.RedirectResponse.Status
			}
			c.mu.Lock()
			c.navs = append(c.navs, r)
			c.mu.Unlock()
			return
		default:
			return
		}
		c.mu.Lock()
		c.console = append(c.console, line)
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// do runs steps on the tab, each call bounded by stepTimeout.
func (c *chrome) do(steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		c.t.Fatalf("browser: %v\nat %s\nconsole:\n%s", err, c.location(), c.consoleText())
	}
}

// run runs one action that returns a value on the chrome's tab.
func run[T any](c *chrome, a chromedp.Action[T]) T {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		c.t.Fatalf("browser: %v\nat %s\nconsole:\n%s", err, c.location(), c.consoleText())
	}
	return v
}

// eval evaluates a JavaScript expression in the page (awaiting a promise) and
// decodes its value into T.
func eval[T any](c *chrome, js string) T {
	c.t.Helper()
	return run(c, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// navigate opens u and waits for its load.
func (c *chrome) navigate(u string) {
	c.t.Helper()
	c.do(chromedp.Navigate(u))
}

// location is the tab's current URL ("" when it cannot be read).
func (c *chrome) location() string {
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	u, _ := chromedp.Run(ctx, chromedp.Location())
	return u
}

// fill types value into the field that selector (CSS) finds, after clearing it.
func (c *chrome) fill(selector, value string) {
	c.t.Helper()
	c.do(chromedp.Clear(chromedp.CSS(selector)), chromedp.SendKeys(chromedp.CSS(selector), value))
}

// click clicks what selector finds and, when the click leaves the page, waits
// until the next page has loaded.
func (c *chrome) click(selector string) {
	c.t.Helper()
	before := eval[float64](c, "performance.timeOrigin")
	c.do(chromedp.Click(chromedp.CSS(selector)))
	c.waitFor(fmt.Sprintf("performance.timeOrigin !== %v && document.readyState === 'complete'", before), "the page after clicking "+selector)
}

// clickStay clicks what selector finds without waiting for a navigation.
func (c *chrome) clickStay(selector string) {
	c.t.Helper()
	c.do(chromedp.Click(chromedp.CSS(selector)))
}

// waitFor polls the JavaScript condition until it is true; what names it in the
// failure.
func (c *chrome) waitFor(cond, what string) {
	c.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("waiting for %s (%s): %v\nat %s\nconsole:\n%s", what, cond, err, c.location(), c.consoleText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// text is the rendered text of what selector (CSS) finds.
func (c *chrome) text(selector string) string {
	c.t.Helper()
	// Read in the page, not through a DOM node id, which a navigation that
	// just ended can leave stale ("No node with given id found").
	return eval[string](c, fmt.Sprintf("(document.querySelector(%q) || {innerText: ''}).innerText", selector))
}

// has reports whether selector (CSS) finds anything in the current page.
func (c *chrome) has(selector string) bool {
	c.t.Helper()
	return eval[bool](c, fmt.Sprintf("document.querySelector(%q) !== null", selector))
}

// consoleLines is what the page and the browser wrote to the console so far.
func (c *chrome) consoleLines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.console...)
}

// documentRequests are the document requests the tab has sent so far.
func (c *chrome) documentRequests() []request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]request(nil), c.navs...)
}

// waitDocumentRequest waits until the tab has sent a document request for a URL
// starting with prefix, and returns the first one.
func (c *chrome) waitDocumentRequest(prefix string) request {
	c.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		for _, r := range c.documentRequests() {
			if strings.HasPrefix(r.URL, prefix) {
				return r
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the tab never asked for %s…\nrequests %+v\nconsole:\n%s", prefix, c.documentRequests(), c.consoleText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *chrome) consoleText() string { return strings.Join(c.consoleLines(), "\n") }

// waitConsole waits until a console line contains every one of parts, and
// returns it.
func (c *chrome) waitConsole(what string, parts ...string) string {
	c.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		for _, l := range c.consoleLines() {
			if containsAll(l, parts...) {
				return l
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no console message for %s (%q)\nat %s\nconsole:\n%s", what, parts, c.location(), c.consoleText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// viewport sets the window's width (CSS px) for the following steps; height
// is the visible height.
func (c *chrome) viewport(width, height int64) {
	c.t.Helper()
	c.do(chromedp.EmulateViewport(width, height))
}

// keepScreenshot writes what the tab shows into the temporary directory, for
// the log of a failed test.
func (c *chrome) keepScreenshot() {
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		c.t.Logf("no screenshot of the failed test: %v", err)
		return
	}
	name := filepath.Join(os.TempDir(), strings.NewReplacer("/", "_", " ", "_").Replace(c.t.Name())+".png")
	if err := os.WriteFile(name, png, 0o644); err != nil {
		c.t.Logf("no screenshot of the failed test: %v", err)
		return
	}
	c.t.Logf("the tab at %s when the test failed: %s", c.location(), name)
}

// noHorizontalScroll fails the test when the page, at width CSS px, is wider
// than the window (design §13: readable at 390 px without scrolling sideways).
func (c *chrome) noHorizontalScroll(width int64) {
	c.t.Helper()
	c.viewport(width, 844)
	type widths struct {
		Scroll float64 `json:"scroll"`
		Inner  float64 `json:"inner"`
		Widest string  `json:"widest"`
	}
	m := eval[widths](c, `(() => {
		let widest = "";
		for (const e of document.querySelectorAll("body *")) {
			if (e.getBoundingClientRect().right > window.innerWidth + 0.5) { widest = e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className && typeof e.className === "string" ? "." + e.className.split(" ").join(".") : ""); break; }
		}
		return {scroll: document.documentElement.scrollWidth, inner: window.innerWidth, widest};
	})()`)
	if m.Scroll > m.Inner {
		c.t.Errorf("%s at %d px: scrollWidth %v > innerWidth %v (first element past the edge: %s)", c.location(), width, m.Scroll, m.Inner, m.Widest)
	}
}
