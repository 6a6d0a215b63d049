package e2e

import (
	"encoding/csv"
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// auditorConfig: alice is an auditor, bob is not.
const auditorConfig = bankConfig + `
users:
  - username: alice
    password: alice-password
    roles: [auditor]
  - username: bob
    password: bob-password
`

// TestAuditExplorer: the audit explorer of the built binary, through an HTTP
// client with cookies: an anonymous visitor is sent to sign in and comes back
// to the page asked for; alice (auditor) searches, opens an event, its tree and
// the chain status, and exports her search, which matches `deputy audit query
// --json`; bob (no role) gets 403; signed out, alice's old cookie is refused.
func TestAuditExplorer(t *testing.T) {
	cfg := strings.Replace(auditorConfig, "\nclients:\n", "\nclients:"+signinClients, 1)
	s := start(t, cfg)
	page := "/audit/ui?subject=alice"

	noRedirect := func(jar http.CookieJar) *http.Client {
		return &http.Client{Jar: jar, Timeout: httpClient.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	res, err := noRedirect(nil).Get(s.issuer + page)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	want := "/login?" + url.Values{"return_to": {page}}.Encode()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != want {
		t.Fatalf("anonymous: %d %q, want 303 %q", res.StatusCode, res.Header.Get("Location"), want)
	}

	b := newBrowser(t, "https://nowhere.example")
	login := b.get(s.issuer + page)
	if !strings.Contains(login.body, `name="password"`) {
		t.Fatalf("expected the login page: %d %s", login.status, login.body)
	}
	home := b.submit(s.issuer, login, url.Values{"username": {"alice"}, "password": {"alice-password"}})
	if home.status != http.StatusOK || home.url != s.issuer+page || !strings.Contains(home.body, "Search the audit trail") {
		t.Fatalf("after sign-in: %d %s\n%s", home.status, home.url, home.body)
	}
	m := regexp.MustCompile(`<a href="(/audit/ui/event\?id=[^"]+)" aria-label="Event \d+">`).FindStringSubmatch(home.body)
	if m == nil || !strings.Contains(home.body, "<code>signin</code>") {
		t.Fatalf("alice's sign-in is not listed:\n%s", home.body)
	}
	ev := b.get(s.issuer + html.UnescapeString(m[1]))
	if ev.status != http.StatusOK || !strings.Contains(ev.body, "<code>signin</code>") {
		t.Fatalf("event page: %d", ev.status)
	}
	tm := regexp.MustCompile(`<a class="btn" href="(/audit/ui/tree\?id=[^"]+)">`).FindStringSubmatch(ev.body)
	if tm == nil {
		t.Fatalf("the sign-in's page has no tree link:\n%s", ev.body)
	}
	if tr := b.get(s.issuer + html.UnescapeString(tm[1])); tr.status != http.StatusOK || !strings.Contains(tr.body, `<li class="node asked">`) {
		t.Errorf("tree page: %d %s", tr.status, tr.body)
	}
	if v := b.get(s.issuer + "/audit/ui/verify"); !strings.Contains(v.body, `<span class="badge ok">Intact</span>`) {
		t.Errorf("chain status: %d %s", v.status, v.body)
	}
	if nf := b.get(s.issuer + "/audit/ui/event?id=nope"); nf.status != http.StatusNotFound {
		t.Errorf("unknown event: %d", nf.status)
	}

	jsonl := b.get(s.issuer + "/audit/ui/export?format=jsonl&subject=alice")
	csvPage := b.get(s.issuer + "/audit/ui/export?format=csv&subject=alice")
	// The CSV export was the last view: the CLI reads what it exported, and the
	// JSON Lines export lacks only the CSV export's own record.
	cli, code := s.deputy("audit", "query", "--subject", "alice", "--json")
	if code != 0 {
		t.Fatalf("deputy audit query: %d %s", code, cli)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(cli, "\n"), "\n")
	if jsonl.status != http.StatusOK || jsonl.body != strings.Join(lines[:len(lines)-1], "") {
		t.Errorf("JSON Lines export differs from deputy audit query --json:\n%s\nwant\n%s", jsonl.body, cli)
	}
	rows, err := csv.NewReader(strings.NewReader(csvPage.body)).ReadAll()
	if err != nil || len(rows) != len(lines)+1 || rows[0][0] != "seq" {
		t.Fatalf("CSV export: %d rows for %d events, %v", len(rows), len(lines), err)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, `{"seq":`+rows[i+1][0]+`,"id":"`+rows[i+1][1]+`"`) {
			t.Errorf("CSV row %d %v, JSON %s", i+1, rows[i+1][:2], l)
		}
	}
	viewed, _ := s.deputy("audit", "query", "--type", "audit.viewed", "--subject", "alice")
	if n := strings.Count(viewed, "audit.viewed"); n < 7 {
		t.Errorf("%d views on record, want every one:\n%s", n, viewed)
	}

	bob := newBrowser(t, "https://nowhere.example")
	bl := bob.get(s.issuer + page)
	if p := bob.submit(s.issuer, bl, url.Values{"username": {"bob"}, "password": {"bob-password"}}); p.status != http.StatusForbidden {
		t.Errorf("bob: %d %s", p.status, p.body)
	}

	u, _ := url.Parse(s.issuer)
	var cookie *http.Cookie
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == "deputy_session" {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatal("no session cookie")
	}
	forged := b.post(s.issuer+"/audit/ui/logout", url.Values{"csrf": {strings.Repeat("x", 43)}})
	if forged.status != http.StatusForbidden {
		t.Errorf("forged sign-out: %d", forged.status)
	}
	out := b.submit(s.issuer, home, nil)
	if !strings.Contains(out.url, "/login") || !strings.Contains(out.body, `name="password"`) {
		t.Errorf("after sign-out: %s %d", out.url, out.status)
	}
	jar, _ := cookiejar.New(nil)
	jar.SetCookies(u, []*http.Cookie{{Name: cookie.Name, Value: cookie.Value}})
	res, err = noRedirect(jar).Get(s.issuer + page)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Errorf("the signed-out session cookie: %d, want 303 to sign in", res.StatusCode)
	}
}
