package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/deputy-auth/deputy/examples/bank"
)

var (
	formAction  = regexp.MustCompile(`<form method="post" action="([^"]+)">`)
	hiddenField = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// browser is alice's user agent: it follows redirects, keeps cookies and fills
// deputy's login and consent forms as she would.
type browser struct{ client *http.Client }

func newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{client: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

func (b *browser) fetch(ctx context.Context, method, u string, form url.Values) (string, string, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return "", "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	page, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("%s %s: %s: %s", method, resp.Request.URL.Path, resp.Status, strings.TrimSpace(string(page)))
	}
	return string(page), resp.Request.URL.String(), nil
}

// submit fills the page's form (its hidden fields plus fields) and posts it.
func (b *browser) submit(ctx context.Context, pageURL, page string, fields url.Values) (string, string, error) {
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		return "", "", errors.New("no form on " + pageURL)
	}
	action, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		return "", "", err
	}
	base, _ := url.Parse(pageURL)
	form := url.Values{}
	for _, h := range hiddenField.FindAllStringSubmatch(page, -1) {
		form.Add(html.UnescapeString(h[1]), html.UnescapeString(h[2]))
	}
	for k, vs := range fields {
		form[k] = vs
	}
	return b.fetch(ctx, http.MethodPost, base.ResolveReference(action).String(), form)
}

// signInAndPay is alice at the web app: sign in (login page, consent page), then
// pay.
func (w *world) signInAndPay(ctx context.Context, user, password string, p bank.Payment) (*bank.Receipt, error) {
	b := newBrowser()
	page, at, err := b.fetch(ctx, http.MethodGet, w.webURL+"/login", nil)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(page, `name="password"`) {
		return nil, errors.New("expected deputy's login page at " + at)
	}
	page, at, err = b.submit(ctx, at, page, url.Values{"username": {user}, "password": {password}})
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	if strings.Contains(page, `name="decision"`) {
		if page, at, err = b.submit(ctx, at, page, url.Values{"decision": {"allow"}}); err != nil {
			return nil, fmt.Errorf("consent: %w", err)
		}
	}
	if !strings.HasPrefix(at, w.webURL+"/callback") || !strings.Contains(page, "signed in") {
		return nil, fmt.Errorf("sign-in ended at %s: %s", at, page)
	}
	body, _ := json.Marshal(p)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.webURL+"/pay", strings.NewReader(string(body)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("pay: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	var rc bank.Receipt
	return &rc, json.NewDecoder(resp.Body).Decode(&rc)
}
