package httpapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/account"
	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/httpapi"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/internal/store"
)

// fakeRoles gives the roles of the listed accounts; others are unknown.
type fakeRoles map[string][]string

func (f fakeRoles) Roles(_ context.Context, username string) ([]string, error) {
	if r, ok := f[username]; ok {
		return r, nil
	}
	return nil, account.ErrNotFound
}

// spyLog is the node's audit log, remembering the filters queried.
type spyLog struct {
	store.AuditLog
	mu      sync.Mutex
	filters []store.AuditFilter
}

func (s *spyLog) Query(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	s.mu.Lock()
	s.filters = append(s.filters, f)
	s.mu.Unlock()
	return s.AuditLog.Query(ctx, f)
}

func (s *spyLog) taken() []store.AuditFilter {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.filters
	s.filters = nil
	return out
}

// explorerNode is webNode's deputy serving the audit explorer, where alice is
// an auditor and bob is not.
func explorerNode(t *testing.T) (*server.Server, *httptest.Server, *spyLog) {
	t.Helper()
	s, _ := webNode(t, nil)
	spy := &spyLog{AuditLog: s.Store}
	api, err := s.API().WithAuditExplorer(fakeRoles{"alice": {httpapi.RoleAuditor}, "bob": {"operator"}}, spy)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(api)
	t.Cleanup(ts.Close)
	return s, ts, spy
}

// signInTo opens page as an anonymous visitor (who is sent to sign in), signs
// in as user and returns where the login form led.
func (b *browser) signInTo(page, user string) resp {
	b.t.Helper()
	login := b.get(page)
	if !strings.Contains(login.body, `name="password"`) || !strings.Contains(login.body, "<h1>Sign in to the audit explorer</h1>") {
		b.t.Fatalf("GET %s: expected the login page, got %d %s", page, login.status, login.body)
	}
	return b.submit(login, url.Values{"username": {user}, "password": {user + "-password"}})
}

// noFollow does one request without following redirects, with the cookies of
// jar (nil: none).
func noFollow(t *testing.T, jar http.CookieJar, method, u string, form url.Values) *http.Response {
	t.Helper()
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res
}

// viewed is the audit.viewed events recorded so far.
func viewed(t *testing.T, s *server.Server) []store.AuditEvent {
	t.Helper()
	evs, err := s.Store.Query(t.Context(), store.AuditFilter{Type: store.EventAuditViewed})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestAuditUIAccess: an anonymous visitor is sent to sign in (303) and comes
// back to the page asked for; a user without the auditor role gets a 403 page
// and the refusal is on record.
func TestAuditUIAccess(t *testing.T) {
	s, ts, _ := explorerNode(t)
	page := "/audit/ui?subject=alice&type=signin"

	t.Run("fail/anonymous-sent-to-sign-in", func(t *testing.T) {
		res := noFollow(t, nil, http.MethodGet, ts.URL+page, nil)
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("status %d, want 303", res.StatusCode)
		}
		want := "/login?" + url.Values{"return_to": {page}}.Encode()
		if got := res.Header.Get("Location"); got != want {
			t.Errorf("Location %q, want %q", got, want)
		}
	})
	t.Run("ok/back-to-the-page-after-sign-in", func(t *testing.T) {
		got := newBrowser(t, ts).signInTo(page, "alice")
		if got.status != http.StatusOK || !strings.Contains(got.body, "Search the audit trail") ||
			!strings.Contains(got.body, `<span class="k">Type</span> signin`) {
			t.Fatalf("after sign-in: %d %s", got.status, got.body)
		}
		if !strings.Contains(got.body, "Signed in as <strong>alice</strong>") {
			t.Error("the header does not name the auditor")
		}
	})
	t.Run("fail/not-an-auditor", func(t *testing.T) {
		got := newBrowser(t, ts).signInTo(page, "bob")
		if got.status != http.StatusForbidden || !strings.Contains(got.body, "Not an auditor") {
			t.Fatalf("bob: %d %s", got.status, got.body)
		}
		if strings.Contains(got.body, "<table") {
			t.Error("the 403 page shows events")
		}
		evs, err := s.Store.Query(t.Context(), store.AuditFilter{Subject: "bob", Type: store.EventDenied})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || !strings.Contains(evs[0].Reason, "auditor") || !strings.Contains(evs[0].Detail, `"page":"search"`) {
			t.Errorf("bob's refusal on record: %+v", evs)
		}
	})
	// Another site must not make an auditor's browser view or export what it
	// chose, on the auditor's record (review finding).
	t.Run("fail/opened-from-another-site", func(t *testing.T) {
		b := newBrowser(t, ts)
		b.signInTo(page, "alice")
		before := len(viewed(t, s))
		for _, path := range []string{page, "/audit/ui/export?format=csv&subject=ceo"} {
			r, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
			r.Header.Set("Sec-Fetch-Site", "cross-site")
			if got := b.do(r); got.status != http.StatusForbidden || !strings.Contains(got.body, "another site") {
				t.Errorf("%s from another site: %d %s", path, got.status, got.body)
			}
		}
		if n := len(viewed(t, s)); n != before {
			t.Errorf("%d views recorded for pages opened from another site", n-before)
		}
		r, _ := http.NewRequest(http.MethodGet, ts.URL+page, nil)
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		if got := b.do(r); got.status != http.StatusOK {
			t.Errorf("same-origin: %d", got.status)
		}
	})
	t.Run("fail/return-to-elsewhere-ignored", func(t *testing.T) {
		b := newBrowser(t, ts)
		login := b.get("/login?return_to=" + url.QueryEscape("https://evil.example/audit/ui"))
		if !strings.Contains(login.body, `name="return_to" value="/login"`) {
			t.Fatalf("return_to taken from the query: %s", login.body)
		}
	})
}

// TestAuditUIViewsAudited: every page view, an export included, is an
// audit.viewed event of the viewer, naming the page and its criteria or id,
// recorded before the page is sent.
func TestAuditUIViewsAudited(t *testing.T) {
	s, ts, _ := explorerNode(t)
	b := newBrowser(t, ts)
	b.signInTo(httpapi.PathAuditUI, "alice")
	signin, err := s.Store.Query(t.Context(), store.AuditFilter{Subject: "alice", Type: store.EventSignIn})
	if err != nil || len(signin) != 1 {
		t.Fatalf("alice's sign-in: %v %v", signin, err)
	}
	id := signin[0].ID
	for _, tt := range []struct{ path, page, key, value string }{
		{"/audit/ui?client=web-app", "search", "client", "web-app"},
		{"/audit/ui/event?id=" + id, "event", "id", id},
		{"/audit/ui/tree?id=" + id, "tree", "id", id},
		{"/audit/ui/verify", "verify", "", ""},
		{"/audit/ui/export?format=csv&subject=alice", "export", "subject", "alice"},
	} {
		t.Run("ok/"+tt.page, func(t *testing.T) {
			before := len(viewed(t, s))
			if r := b.get(tt.path); r.status != http.StatusOK {
				t.Fatalf("%s: %d %s", tt.path, r.status, r.body)
			}
			evs := viewed(t, s)
			if len(evs) != before+1 {
				t.Fatalf("%d audit.viewed events, want %d", len(evs), before+1)
			}
			e := evs[len(evs)-1]
			var d struct {
				Page  string            `json:"page"`
				Query map[string]string `json:"query"`
			}
			if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
				t.Fatal(err)
			}
			if e.Subject != "alice" || e.Decision != store.DecisionAllow || d.Page != tt.page || tt.key != "" && d.Query[tt.key] != tt.value {
				t.Errorf("event %+v, detail %+v", e, d)
			}
		})
	}
}

// TestAuditUISearchFieldsEscaped: search fields holding markup, quotes and
// control characters come back escaped — in the form's fields and in the
// criteria shown — and the page keeps its layout; a value from the trail with
// control characters and a bidi override is shown quoted.
func TestAuditUISearchFieldsEscaped(t *testing.T) {
	s, ts, _ := explorerNode(t)
	b := newBrowser(t, ts)
	b.signInTo(httpapi.PathAuditUI, "alice")
	hostile := "\"'><script>alert(1)</script><img src=x onerror=alert(2)>\x1b[31m\u202egnp.exe\r\n<!--"
	// A failed sign-in of that name puts it in the trail as the subject.
	other := newBrowser(t, ts)
	other.submit(other.get("/login"), url.Values{"username": {hostile}, "password": {"x"}})
	for _, tt := range []struct{ name, q string }{
		{"fail/subject", url.Values{"subject": {hostile}}.Encode()},
		{"fail/every-field", url.Values{"subject": {hostile}, "actor": {hostile}, "client": {hostile}, "audience": {hostile}, "type": {hostile}}.Encode()},
		{"fail/bad-time", url.Values{"since": {hostile}}.Encode()},
		{"fail/bad-trace-id", url.Values{"trace_id": {hostile}}.Encode()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := b.get("/audit/ui?" + tt.q)
			if r.status != http.StatusOK && r.status != http.StatusBadRequest {
				t.Fatalf("status %d", r.status)
			}
			for _, bad := range []string{"<script>alert", "<img src=x", "\x1b", "\u202e", "\r\n<!--"} {
				if strings.Contains(r.body, bad) {
					t.Errorf("the page holds %q raw", bad)
				}
			}
			if strings.Count(r.body, "<form ") != 2 || !strings.HasSuffix(strings.TrimSpace(r.body), "</html>") ||
				!strings.Contains(r.body, `</main>`) || !strings.Contains(r.body, `<footer class="foot">`) {
				t.Errorf("layout broken:\n%s", r.body)
			}
			if r.status == http.StatusBadRequest && !strings.Contains(r.body, `role="alert"`) {
				t.Error("a refused search does not say why")
			}
		})
	}
	t.Run("ok/row-of-the-hostile-subject", func(t *testing.T) {
		r := b.get("/audit/ui?" + url.Values{"subject": {hostile}}.Encode())
		if !strings.Contains(r.body, `<td data-label="Subject" class="w">`+html.EscapeString(`"\"'><script>`)) ||
			!strings.Contains(r.body, `\x1b[31m\u202egnp.exe\r\n`) {
			t.Errorf("the row does not show the subject quoted:\n%s", r.body)
		}
		if s, _ := s.Store.Query(t.Context(), store.AuditFilter{Subject: hostile}); len(s) == 0 {
			t.Fatal("no event of the hostile subject")
		}
	})
	t.Run("ok/search-as-shown", func(t *testing.T) {
		// The form shows the value quoted; sent back so, it finds the same events.
		r := b.get("/audit/ui?" + url.Values{"subject": {strconv.Quote(hostile)}}.Encode())
		if !strings.Contains(r.body, `<td data-label="Subject" class="w">`) || !strings.Contains(r.body, `value="`+html.EscapeString(strconv.Quote(hostile))+`"`) {
			t.Errorf("the quoted subject finds nothing:\n%s", r.body)
		}
	})
}

// recordIssued appends n token.issued events of client to the trail.
func recordIssued(t *testing.T, s *server.Server, n int, subject string) {
	t.Helper()
	for i := range n {
		if err := s.Audit.Record(t.Context(), &store.AuditEvent{Type: store.EventTokenIssued, Decision: store.DecisionAllow,
			ClientID: "batch", Subject: subject, TokenJTI: fmt.Sprintf("J-%s-%d", subject, i)}); err != nil {
			t.Fatal(err)
		}
	}
}

var rowSeqRe = regexp.MustCompile(`<td data-label="Seq" class="num"><a href="[^"]*" aria-label="Event (\d+)">`)

// TestAuditUIHugeTimeRangePages: a search over all time reads one page from
// the store (limit+1 events, never unbounded), and links to the next page,
// which goes on after the last event shown.
func TestAuditUIHugeTimeRangePages(t *testing.T) {
	s, ts, spy := explorerNode(t)
	recordIssued(t, s, 130, "carol")
	b := newBrowser(t, ts)
	b.signInTo(httpapi.PathAuditUI, "alice")
	spy.taken()
	q := url.Values{"client": {"batch"}, "since": {"1970-01-01T00:00"}, "until": {"9999-12-31T23:59:59Z"}}
	r := b.get("/audit/ui?" + q.Encode())
	for _, f := range spy.taken() {
		if f.Limit <= 0 || f.Limit > 201 {
			t.Errorf("the store was queried with limit %d", f.Limit)
		}
	}
	seen := map[string]bool{}
	for page := 1; ; page++ {
		rows := rowSeqRe.FindAllStringSubmatch(r.body, -1)
		if page < 3 && len(rows) != 50 || page == 3 && len(rows) != 30 {
			t.Fatalf("page %d: %d rows", page, len(rows))
		}
		for _, m := range rows {
			if seen[m[1]] {
				t.Fatalf("seq %s on two pages", m[1])
			}
			seen[m[1]] = true
		}
		next := regexp.MustCompile(`<a class="btn secondary" href="([^"]+)" rel="next">`).FindStringSubmatch(r.body)
		if next == nil {
			if page != 3 {
				t.Fatalf("no next page after page %d", page)
			}
			break
		}
		r = b.get(html.UnescapeString(next[1]))
		for _, f := range spy.taken() {
			if f.Limit != 51 || f.AfterSeq == 0 || f.ClientID != "batch" || f.Since.Year() != 1970 {
				t.Errorf("page %d queried %+v", page+1, f)
			}
		}
	}
	if len(seen) != 130 {
		t.Errorf("%d events over the pages, want 130", len(seen))
	}
	t.Run("fail/page-too-large", func(t *testing.T) {
		if r := b.get("/audit/ui?limit=100000"); r.status != http.StatusBadRequest || len(spy.taken()) != 0 {
			t.Errorf("limit=100000: %d", r.status)
		}
	})
}

// TestAuditUIUnknownID: an event or token id the trail does not hold, and a
// page the explorer does not have, are 404 pages.
func TestAuditUIUnknownID(t *testing.T) {
	_, ts, _ := explorerNode(t)
	b := newBrowser(t, ts)
	b.signInTo(httpapi.PathAuditUI, "alice")
	for _, tt := range []struct{ name, path string }{
		{"fail/unknown-event", "/audit/ui/event?id=no-such-event"},
		{"fail/unknown-token", "/audit/ui/tree?id=no-such-token"},
		{"fail/unknown-page", "/audit/ui/nothing-here"},
		{"fail/huge-id", "/audit/ui/event?id=" + strings.Repeat("x", 5000)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := b.get(tt.path)
			if r.status != http.StatusNotFound || !strings.Contains(r.body, "<h1>Not found</h1>") ||
				!strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
				t.Errorf("%d %s", r.status, r.body)
			}
		})
	}
	t.Run("fail/no-id", func(t *testing.T) {
		if r := b.get("/audit/ui/event"); r.status != http.StatusBadRequest {
			t.Errorf("%d", r.status)
		}
	})
}

// TestAuditUISignOutCSRF: the sign-out form is refused without its CSRF token
// or with a forged one, and the session goes on; signed out, the old session
// cookie is not accepted, by this browser or any other.
func TestAuditUISignOutCSRF(t *testing.T) {
	_, ts, _ := explorerNode(t)
	jar, _ := cookiejar.New(nil)
	b := newBrowser(t, ts)
	b.c.Jar = jar
	home := b.signInTo(httpapi.PathAuditUI, "alice")
	u, _ := url.Parse(ts.URL)
	var session string
	for _, c := range jar.Cookies(u) {
		if c.Name == "deputy_session" {
			session = c.Value
		}
	}
	if session == "" {
		t.Fatal("no session cookie")
	}
	for _, tt := range []struct {
		name string
		form url.Values
	}{
		{"fail/missing-csrf", url.Values{}},
		{"fail/forged-csrf", url.Values{"csrf": {strings.Repeat("A", 43)}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if r := b.post(httpapi.PathAuditUILogout, tt.form); r.status != http.StatusForbidden {
				t.Errorf("sign-out: %d", r.status)
			}
			if r := noFollow(t, jar, http.MethodGet, ts.URL+httpapi.PathAuditUI, nil); r.StatusCode != http.StatusOK {
				t.Errorf("after a refused sign-out the session is gone: %d", r.StatusCode)
			}
		})
	}
	t.Run("fail/get", func(t *testing.T) {
		if r := noFollow(t, jar, http.MethodGet, ts.URL+httpapi.PathAuditUILogout, nil); r.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET sign-out: %d", r.StatusCode)
		}
	})
	t.Run("ok/sign-out-ends-the-session", func(t *testing.T) {
		m := regexp.MustCompile(`<form method="post" action="/audit/ui/logout">\s*<input type="hidden" name="csrf" value="([^"]+)">`).FindStringSubmatch(home.body)
		if m == nil {
			t.Fatalf("no sign-out form:\n%s", home.body)
		}
		res := noFollow(t, jar, http.MethodPost, ts.URL+httpapi.PathAuditUILogout, url.Values{"csrf": {html.UnescapeString(m[1])}})
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/login?") {
			t.Fatalf("sign-out: %d %q", res.StatusCode, res.Header.Get("Location"))
		}
		// Whoever holds the old cookie — this browser kept it, another copied it.
		other, _ := cookiejar.New(nil)
		other.SetCookies(u, []*http.Cookie{{Name: "deputy_session", Value: session}})
		for _, j := range []http.CookieJar{other} {
			if r := noFollow(t, j, http.MethodGet, ts.URL+httpapi.PathAuditUI, nil); r.StatusCode != http.StatusSeeOther ||
				!strings.HasPrefix(r.Header.Get("Location"), "/login?") {
				t.Errorf("the old session cookie: %d %q", r.StatusCode, r.Header.Get("Location"))
			}
		}
	})
}

// TestAuditUICSP: the pages load nothing, run no script and allow only their
// own style sheet, by its hash; no element carries a style attribute.
func TestAuditUICSP(t *testing.T) {
	_, ts, _ := explorerNode(t)
	b := newBrowser(t, ts)
	b.signInTo(httpapi.PathAuditUI, "alice")
	for _, p := range []string{"/audit/ui", "/audit/ui/verify", "/audit/ui/event?id=none"} {
		r := b.get(p)
		csp := r.header.Get("Content-Security-Policy")
		_, rest, _ := strings.Cut(r.body, "<style>")
		css, _, _ := strings.Cut(rest, "</style>")
		sum := sha256.Sum256([]byte(css))
		if !strings.HasPrefix(csp, "default-src 'none';") || strings.Contains(csp, "unsafe") ||
			!strings.Contains(csp, "style-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"';") || !strings.Contains(csp, "form-action 'self';") {
			t.Errorf("%s: CSP %q", p, csp)
		}
		if strings.Contains(r.body, "<script") || strings.Contains(r.body, " style=") || strings.Count(r.body, "<style>") != 1 {
			t.Errorf("%s: script or inline style in the page", p)
		}
		if !strings.Contains(r.body, `<a class="skip" href="#main">`) || !strings.Contains(r.body, `<main id="main"`) {
			t.Errorf("%s: no skip link", p)
		}
	}
}

// TestAuditUIExport: an export holds every event of the search, read a page
// at a time: CSV with the header row and one row per event, cells made safe
// for spreadsheets; JSON Lines as `deputy audit query --json` writes them.
func TestAuditUIExport(t *testing.T) {
	s, ts, spy := explorerNode(t)
	recordIssued(t, s, 1203, "dave")
	if err := s.Audit.Record(t.Context(), &store.AuditEvent{Type: store.EventTokenIssued, Decision: store.DecisionAllow,
		ClientID: "batch", Subject: "=HYPERLINK(\"https://evil.example\")", Reason: "-2+3", Rule: "@SUM(A1)", TokenJTI: "J-formula"}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, ts)
	b.signInTo(httpapi.PathAuditUI, "alice")
	want, err := s.Store.Query(t.Context(), store.AuditFilter{ClientID: "batch"})
	if err != nil || len(want) != 1204 {
		t.Fatalf("%d events, %v", len(want), err)
	}
	spy.taken()

	t.Run("ok/csv", func(t *testing.T) {
		r := b.get("/audit/ui/export?format=csv&client=batch")
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") ||
			!strings.HasPrefix(r.header.Get("Content-Disposition"), `attachment; filename="deputy-audit-`) {
			t.Fatalf("%d %v", r.status, r.header)
		}
		for _, f := range spy.taken() {
			if f.Limit != 1000 {
				t.Errorf("export queried with limit %d", f.Limit)
			}
		}
		rows, err := csv.NewReader(strings.NewReader(r.body)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1+len(want) || strings.Join(rows[0], ",") != "seq,id,time,type,client_id,subject,subject_issuer,actors,audiences,scopes,parent_jti,token_jti,token_expires,decision,reason,rule,request_id,remote_addr,trace_id,detail,prev_hash,hash" {
			t.Fatalf("%d rows, header %v", len(rows), rows[0])
		}
		for i, e := range want {
			if row := rows[i+1]; row[0] != fmt.Sprint(e.Seq) || row[1] != e.ID || row[11] != e.TokenJTI && e.TokenJTI != "J-formula" {
				t.Fatalf("row %d = %v, want event %+v", i+1, row, e)
			}
		}
		last := rows[len(rows)-1]
		if last[5] != `'=HYPERLINK("https://evil.example")` || last[14] != "'-2+3" || last[15] != "'@SUM(A1)" {
			t.Errorf("formula cells not made inert: %q %q %q", last[5], last[14], last[15])
		}
	})
	t.Run("ok/jsonl-as-audit-query-json", func(t *testing.T) {
		r := b.get("/audit/ui/export?format=jsonl&client=batch")
		var wantBody bytes.Buffer
		for _, e := range want {
			if err := audit.WriteEventJSON(&wantBody, e); err != nil {
				t.Fatal(err)
			}
		}
		if r.status != http.StatusOK || r.body != wantBody.String() || r.header.Get("Content-Type") != "application/jsonl" {
			t.Errorf("%d: the export differs from audit query --json (%d bytes, want %d)", r.status, len(r.body), wantBody.Len())
		}
	})
	for _, tt := range []struct{ name, q string }{
		{"fail/no-format", "client=batch"},
		{"fail/other-format", "format=xlsx"},
		{"fail/paged", "format=csv&after=3"},
		{"fail/unknown-parameter", "format=csv&color=red"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if r := b.get("/audit/ui/export?" + tt.q); r.status != http.StatusBadRequest || r.header.Get("Content-Disposition") != "" {
				t.Errorf("%d %v", r.status, r.header)
			}
		})
	}
}

// TestAuditUITreeAndEvent: the tree page lists every token of the chain with
// its client, audience, rule and the calls reported with it, linked to their
// events; the event page shows the event's fields.
func TestAuditUITreeAndEvent(t *testing.T) {
	s, ts, _ := explorerNode(t)
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	for _, e := range []*store.AuditEvent{
		{Type: store.EventTokenIssued, Decision: store.DecisionAllow, ClientID: "web-app", Subject: "erin", TokenJTI: "T-root",
			Audiences: []string{"https://payments.example"}, Scopes: []string{"pay"}, TokenExpires: exp},
		{Type: store.EventTokenExchanged, Decision: store.DecisionAllow, ClientID: "payments", Subject: "erin", ParentJTI: "T-root",
			TokenJTI: "T-child", Actors: []string{"payments"}, Audiences: []string{"https://ledger.example"}, Rule: "payments-to-ledger", TokenExpires: exp},
		{Type: store.EventCallReported, Decision: store.DecisionAllow, ClientID: "ledger", Subject: "erin", ParentJTI: "T-child", Reason: "debit 42 EUR: ok"},
		{Type: store.EventDenied, Decision: store.DecisionDeny, ClientID: "ledger", Subject: "erin", ParentJTI: "T-child", Reason: "invalid_target: <no>"},
	} {
		if err := s.Audit.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	b := newBrowser(t, ts)
	b.signInTo(httpapi.PathAuditUI, "alice")
	r := b.get("/audit/ui/tree?id=T-child")
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	for _, want := range []string{
		`<a href="/audit/ui/tree?id=T-root"><code>T-root</code></a>`,
		`<li class="node asked">`, `<code>T-child</code>`, "payments-to-ledger", "https://ledger.example",
		`<span class="badge call">Call</span>`, "debit 42 EUR: ok", `<span class="badge deny">Denied</span>`, "invalid_target: &lt;no&gt;",
		"Tokens (2)",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the tree page lacks %q", want)
		}
	}
	evs, _ := s.Store.Query(ctx, store.AuditFilter{Type: store.EventTokenExchanged, Subject: "erin"})
	ev := b.get("/audit/ui/event?id=" + url.QueryEscape(evs[0].ID))
	for _, want := range []string{"<code>token.exchanged</code>", `<span class="badge allow">allow</span>`, "payments-to-ledger",
		`<a href="/audit/ui/tree?id=T-root">T-root</a>`, `<a href="/audit/ui?actor=payments">payments</a>`} {
		if !strings.Contains(ev.body, want) {
			t.Errorf("the event page lacks %q", want)
		}
	}
	v := b.get("/audit/ui/verify")
	if !strings.Contains(v.body, `<span class="badge ok">Intact</span>`) || !slices.ContainsFunc([]string{"Records checked"}, func(s string) bool { return strings.Contains(v.body, s) }) {
		t.Errorf("verify page: %s", v.body)
	}
}
