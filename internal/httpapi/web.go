package httpapi

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/deputy-auth/deputy/internal/account"
	"github.com/deputy-auth/deputy/internal/authorize"
	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/signin"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/dpop"
)

// Paths of the browser-facing endpoints.
const (
	PathAuthorize  = "/authorize"
	PathConsent    = "/authorize/consent"
	PathLogin      = "/login"
	PathUserinfo   = "/userinfo"
	PathEndSession = "/end-session"
)

const (
	sessionCookie = "deputy_session"
	csrfCookie    = "deputy_csrf"
)

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// web serves sign-in, consent, userinfo and logout.
type web struct {
	s *Server // its node keeps the consents remembered (consentMemory), across reloads
}

type hidden struct{ Name, Value string }

// scopeLine is one scope on the consent page: its description for people, and its
// name.
type scopeLine struct{ Name, Description string }

type page struct {
	Title, Error, Message, Subject, CSRF, Action, UpstreamAction, ReturnTo, Username, Button string
	// Client is the client's name for people; ClientID its id, shown beside the
	// name when they differ.
	Client, ClientID string
	Scopes           []scopeLine
	Params           []hidden
	IdPs             []upstreamButton
	// Cancel offers, on the login page, to go back to the application
	// (access_denied, RFC 6749 §4.1.2.1).
	Cancel bool
	// CancelURL is a link back to the application (the validated post-logout
	// redirect URI; it may be a native app's private-use scheme, hence a URL value
	// html/template does not filter).
	CancelURL template.URL
	// formTargets are where the page's forms may end up besides deputy itself (see
	// pageCSP); never rendered.
	formTargets []string
}

// styleHash is the CSP hash of the pages' one style sheet (layout.html), so that
// no other inline style is allowed.
var styleHash = func() string {
	b, err := templateFS.ReadFile("templates/layout.html")
	if err != nil {
		panic(err)
	}
	_, rest, _ := strings.Cut(string(b), "<style>")
	css, _, ok := strings.Cut(rest, "</style>")
	if !ok {
		panic("templates/layout.html: no <style> element")
	}
	sum := sha256.Sum256([]byte(css))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

// pageCSP is the Content-Security-Policy of a page: nothing is loaded, the one
// style sheet is allowed by its hash, and forms may be sent to deputy and to the
// page's formTargets only. form-action also governs the redirects that answer a
// form (Chromium checks every hop), so a page whose form ends at the client — the
// consent page, the login page of an authorization request, the sign-out
// confirmation — lists exactly that client's redirect target.
func pageCSP(targets []string) string {
	fa := []string{"'self'"}
	for _, t := range targets {
		if src := formSource(t); src != "" && !slices.Contains(fa, src) {
			fa = append(fa, src)
		}
	}
	return "default-src 'none'; style-src " + styleHash + "; form-action " + strings.Join(fa, " ") +
		"; frame-ancestors 'none'; base-uri 'none'"
}

// formSource is the CSP source expression (CSP3 §2.3.1) that matches redirects to
// uri: its origin for http(s) (CSP ignores paths after a redirect), its scheme for
// a private-use URI scheme (RFC 8252 §7.1), which has no host to name. A host CSP
// cannot spell (an IPv6 literal) falls back to the scheme. "" when uri is none of
// these.
func formSource(uri string) string {
	switch uri {
	case "http:", "https:": // the login page's upstream providers, see upstreamTargets
		return uri
	}
	u, err := url.Parse(uri)
	if err != nil || !cspScheme(u.Scheme) {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return scheme + ":"
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return ""
	}
	if !cspHost(host) {
		return scheme + ":"
	}
	if p := u.Port(); p != "" {
		return scheme + "://" + host + ":" + p
	}
	return scheme + "://" + host
}

// cspScheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 §3.1).
func cspScheme(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range []byte(s) {
		alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !alpha && (i == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}

// cspHost: host-char and "." only (CSP3 §2.3.1 host-part).
func cspHost(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return s != ""
}

// upstreamTargets are where the login page's upstream buttons lead: the
// providers' own sign-in pages, whose addresses the providers know and this page
// does not, so any http(s) target; none without providers.
func (wb *web) upstreamTargets() []string {
	if len(wb.s.cfg.Upstreams) == 0 {
		return nil
	}
	return []string{"https:", "http:"}
}

func (wb *web) render(w http.ResponseWriter, status int, name string, p page) error {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", pageCSP(p.formTargets))
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	return pages.ExecuteTemplate(w, name, p)
}

func (wb *web) secure() bool { return strings.HasPrefix(wb.s.cfg.Issuer, "https://") }

func (wb *web) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", HttpOnly: true, Secure: wb.secure(),
		SameSite: http.SameSiteLaxMode, MaxAge: int(maxAge / time.Second),
	})
}

// csrf returns the request's CSRF token, setting the cookie when there is none
// (double-submit: the form field must equal the cookie).
func (wb *web) csrf(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	wb.setCookie(w, csrfCookie, v, 12*time.Hour)
	return v
}

func csrfOK(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || len(c.Value) < 32 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) == 1
}

func (wb *web) meta(r *http.Request, clientID string) signin.Meta {
	return signin.Meta{RequestID: requestID(r), RemoteAddr: remoteHost(r), ClientID: clientID, Now: wb.s.cfg.Now()}
}

// session returns the request's active session, if any.
func (wb *web) session(r *http.Request) (store.Session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return store.Session{}, false
	}
	sess, err := wb.s.cfg.SignIn.Session(r.Context(), c.Value, wb.s.cfg.Now())
	if err != nil {
		if !errors.Is(err, signin.ErrNoSession) {
			wb.s.cfg.Log.Warn("session lookup failed", "err", err)
		}
		return store.Session{}, false
	}
	return sess, true
}

// readForm parses a POSTed form body within the size limit.
func (wb *web) readForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(connWriter(w), r.Body, wb.s.cfg.MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		return oauth.InvalidRequest("malformed form", err)
	}
	omitEmpty(r.PostForm)
	omitEmpty(r.Form)
	return nil
}

// refuse records a refused browser request and renders its error page, or
// redirects it to the client when the error allows.
func (wb *web) refuse(w http.ResponseWriter, r *http.Request, clientID string, err error) error {
	req := &grant.Request{Endpoint: "authorization", RequestID: requestID(r), RemoteAddr: remoteHost(r), Now: wb.s.cfg.Now()}
	req.Credentials.FormID = clientID
	a := accessOf(r)
	a.setRequest(req)
	var ae *authorize.Error
	if errors.As(err, &ae) {
		a.deny(ae.Err.Code)
		_ = wb.s.cfg.Dispatcher.Refuse(r.Context(), req, ae.Err)
		if ae.Redirect {
			http.Redirect(w, r, authorize.ErrorRedirect(ae, wb.s.cfg.Issuer), http.StatusSeeOther)
			return nil
		}
		return wb.render(w, http.StatusBadRequest, "message.html", page{Title: "This sign-in link is not valid",
			Error: ae.Err.Description, Message: "Go back to the application and try again."})
	}
	oe := oauth.AsError(wb.s.cfg.Dispatcher.Refuse(r.Context(), req, err))
	a.deny(oe.Code)
	status := oe.Status()
	if status == http.StatusUnauthorized {
		status = http.StatusBadRequest
	}
	return wb.render(w, status, "message.html", page{Title: "Request refused", Error: oe.Description})
}

// params are the parameters of a request that may come as a GET query or a POSTed
// form (authorization and end-session endpoints).
// When ok is false the request was answered (with err, if not nil, to render).
func (wb *web) params(w http.ResponseWriter, r *http.Request) (params url.Values, ok bool, err error) {
	switch r.Method {
	case http.MethodGet:
		return omitEmpty(r.URL.Query()), true, nil
	case http.MethodPost:
		if err := wb.readForm(w, r); err != nil {
			return nil, false, wb.refuse(w, r, "", err)
		}
		return r.PostForm, true, nil
	}
	return nil, false, &methodError{allow: "GET, POST"}
}

// authorize serves the authorization endpoint (GET, or POST per OIDC Core §3.1.2.1).
func (wb *web) authorize(w http.ResponseWriter, r *http.Request) error {
	params, ok, err := wb.params(w, r)
	if !ok {
		return err
	}
	areq, err := authorize.Parse(params, wb.s.cfg.Clients)
	if err != nil {
		return wb.refuse(w, r, params.Get("client_id"), err)
	}
	accessOf(r).setClient(areq.Client.ID, false)
	sess, ok := wb.session(r)
	now := wb.s.cfg.Now()
	fresh := ok && !areq.HasPrompt("login") && (areq.MaxAge < 0 || now.Sub(sess.AuthTime) <= areq.MaxAge)
	if !fresh {
		if areq.HasPrompt("none") {
			return wb.refuse(w, r, areq.Client.ID, redirectErr(areq, authorize.CodeLoginRequired, "the user is not signed in"))
		}
		// After signing in, come back without prompt=login and max_age (now met).
		back := cloneValues(params)
		back.Set("prompt", strings.Join(slices.DeleteFunc(slices.Clone(areq.Prompt), func(p string) bool { return p == "login" }), " "))
		if back.Get("prompt") == "" {
			back.Del("prompt")
		}
		back.Del("max_age")
		p := wb.loginPage(w, r, areq, PathAuthorize+"?"+back.Encode())
		p.Username = areq.LoginHint
		return wb.render(w, http.StatusOK, "login.html", p)
	}
	// A consent given before counts only for a client whose identity is assured
	// (RFC 8252 §8.6); others are asked again, and prompt=none gets consent_required.
	if !areq.HasPrompt("consent") && areq.IdentityAssured() && wb.approved(sess.ID, areq) {
		return wb.issue(w, r, sess, areq)
	}
	if areq.HasPrompt("none") {
		return wb.refuse(w, r, areq.Client.ID, redirectErr(areq, authorize.CodeConsentRequired, "the user has not approved this client"))
	}
	return wb.consentPage(w, r, sess, areq, params)
}

func redirectErr(r *authorize.Request, code oauth.Code, desc string) *authorize.Error {
	return &authorize.Error{Err: &oauth.Error{Code: code, Description: desc}, Redirect: true, RedirectURI: r.RedirectURI, State: r.State}
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

func (wb *web) consentPage(w http.ResponseWriter, r *http.Request, sess store.Session, areq *authorize.Request, params url.Values) error {
	var hs []hidden
	keys := make([]string, 0, len(params))
	for k := range params {
		if k != "csrf" && k != "decision" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range params[k] {
			hs = append(hs, hidden{k, v})
		}
	}
	lines := make([]scopeLine, 0, len(areq.Scopes))
	for _, sc := range areq.Scopes {
		lines = append(lines, scopeLine{Name: sc, Description: wb.s.cfg.ScopeDescriptions[sc]})
	}
	return wb.render(w, http.StatusOK, "consent.html", page{Title: "Allow access", Client: areq.Client.DisplayName(), ClientID: areq.Client.ID,
		Subject: sess.Subject, Scopes: lines, CSRF: wb.csrf(w, r), Action: PathConsent, Params: hs,
		formTargets: []string{areq.RedirectURI}})
}

// loginPage is the login page of an authorization request (areq, which may be
// nil) that returns to returnTo after sign-in.
func (wb *web) loginPage(w http.ResponseWriter, r *http.Request, areq *authorize.Request, returnTo string) page {
	p := page{Title: "Sign in", CSRF: wb.csrf(w, r), Action: PathLogin, ReturnTo: returnTo,
		IdPs: wb.upstreamNames(), UpstreamAction: PathUpstreamLogin, formTargets: wb.upstreamTargets()}
	if areq == nil && auditReturnTo(returnTo) {
		p.Client = "the audit explorer"
	}
	if areq != nil {
		// Signing in lands at the client when it was approved before; cancelling
		// always does.
		p.Client, p.ClientID, p.Cancel = areq.Client.DisplayName(), areq.Client.ID, true
		p.formTargets = append(p.formTargets, areq.RedirectURI)
	}
	return p
}

// pending is the authorization request a login form returns to, validated again;
// nil when returnTo is no authorization request or the request is not valid.
func (wb *web) pending(returnTo string) *authorize.Request {
	rest, ok := strings.CutPrefix(returnTo, PathAuthorize+"?")
	if !ok {
		return nil
	}
	q, err := url.ParseQuery(rest)
	if err != nil {
		return nil
	}
	areq, err := authorize.Parse(q, wb.s.cfg.Clients)
	if err != nil {
		return nil
	}
	return areq
}

func (wb *web) approved(sid string, areq *authorize.Request) bool {
	granted := wb.s.consents.get(sid, areq.Client.ID, wb.s.cfg.Now())
	for _, s := range areq.Scopes {
		if !slices.Contains(granted, s) {
			return false
		}
	}
	return granted != nil
}

// consentMemory remembers, per session and client, the scopes the user approved,
// until the session ends or expires. It is per node (a second node asks again) and
// bounded: past maxConsents entries, expired ones are swept.
type consentMemory struct {
	mu sync.Mutex
	m  map[string]consent
}

type consent struct {
	scopes []string
	exp    time.Time
}

const maxConsents = 100_000

func (c *consentMemory) get(sid, clientID string, now time.Time) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[sid+"\x00"+clientID]
	if !ok || !now.Before(v.exp) {
		return nil
	}
	return v.scopes
}

func (c *consentMemory) add(sid, clientID string, scopes []string, exp, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]consent{}
	}
	if len(c.m) >= maxConsents {
		for k, v := range c.m {
			if !now.Before(v.exp) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxConsents {
			clear(c.m) // still full: forget all; users are asked again
		}
	}
	key := sid + "\x00" + clientID
	v := c.m[key]
	v.scopes = slices.Clone(v.scopes)
	for _, s := range scopes {
		if !slices.Contains(v.scopes, s) {
			v.scopes = append(v.scopes, s)
		}
	}
	if v.scopes == nil {
		v.scopes = []string{}
	}
	v.exp = exp
	c.m[key] = v
}

func (c *consentMemory) forget(sid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if strings.HasPrefix(k, sid+"\x00") {
			delete(c.m, k)
		}
	}
}

// consent receives the consent form.
func (wb *web) consent(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return &methodError{allow: "POST"}
	}
	if err := wb.readForm(w, r); err != nil {
		return wb.refuse(w, r, "", err)
	}
	if !csrfOK(r) {
		return wb.refuse(w, r, r.PostForm.Get("client_id"), oauth.InvalidRequest("the form expired; go back and try again", errors.New("CSRF token mismatch on consent")))
	}
	params := cloneValues(r.PostForm)
	decision := params.Get("decision")
	params.Del("csrf")
	params.Del("decision")
	areq, err := authorize.Parse(params, wb.s.cfg.Clients)
	if err != nil {
		return wb.refuse(w, r, params.Get("client_id"), err)
	}
	accessOf(r).setClient(areq.Client.ID, false)
	sess, ok := wb.session(r)
	if !ok {
		return wb.refuse(w, r, areq.Client.ID, redirectErr(areq, authorize.CodeLoginRequired, "the session ended before consent"))
	}
	if decision != "allow" {
		return wb.refuse(w, r, areq.Client.ID, redirectErr(areq, oauth.CodeAccessDenied, "the user denied access"))
	}
	if areq.IdentityAssured() {
		wb.s.consents.add(sess.ID, areq.Client.ID, areq.Scopes, sess.ExpiresAt, wb.s.cfg.Now())
	}
	return wb.issue(w, r, sess, areq)
}

func (wb *web) issue(w http.ResponseWriter, r *http.Request, sess store.Session, areq *authorize.Request) error {
	code, err := wb.s.cfg.SignIn.IssueCode(r.Context(), sess, areq, wb.meta(r, areq.Client.ID))
	if err != nil {
		// The request is valid: the client hears of the failure, with its state
		// (RFC 6749 §4.1.2.1), rather than the user being left on a JSON error.
		wb.s.cfg.Log.Warn("cannot issue an authorization code", "err", err)
		return wb.refuse(w, r, areq.Client.ID, &authorize.Error{Err: oauth.TemporarilyUnavailable("cannot issue a code now", err),
			Redirect: true, RedirectURI: areq.RedirectURI, State: areq.State})
	}
	http.Redirect(w, r, authorize.CodeRedirect(areq, code, wb.s.cfg.Issuer), http.StatusSeeOther)
	return nil
}

// login receives the sign-in form.
func (wb *web) login(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet:
		// ?return_to= a page of the audit explorer, which sends visitors here to
		// sign in (auditui.go); any other value is ignored.
		returnTo := PathLogin
		if v := r.URL.Query().Get("return_to"); auditReturnTo(v) {
			returnTo = v
		}
		if _, ok := wb.session(r); ok {
			if returnTo != PathLogin {
				http.Redirect(w, r, returnTo, http.StatusSeeOther)
				return nil
			}
			return wb.render(w, http.StatusOK, "message.html", page{Title: "Signed in", Message: "You are signed in."})
		}
		return wb.render(w, http.StatusOK, "login.html", wb.loginPage(w, r, nil, returnTo))
	case http.MethodPost:
	default:
		return &methodError{allow: "GET, POST"}
	}
	if err := wb.readForm(w, r); err != nil {
		return wb.refuse(w, r, "", err)
	}
	returnTo := safeReturnTo(r.PostForm.Get("return_to"))
	clientID := ""
	if u, err := url.Parse(returnTo); err == nil {
		clientID = u.Query().Get("client_id")
	}
	areq := wb.pending(returnTo)
	a := accessOf(r)
	if areq != nil {
		a.setClient(areq.Client.ID, false)
	}
	retry := wb.loginPage(w, r, areq, returnTo)
	retry.Username = r.PostForm.Get("username")
	if !csrfOK(r) {
		retry.Error = "The form expired. Please sign in again."
		a.deny(oauth.CodeInvalidRequest)
		return wb.render(w, http.StatusBadRequest, "login.html", retry)
	}
	if r.PostForm.Get("cancel") != "" {
		if areq == nil {
			return wb.render(w, http.StatusOK, "message.html", page{Title: "Sign-in cancelled", Message: "You did not sign in."})
		}
		return wb.refuse(w, r, areq.Client.ID, redirectErr(areq, oauth.CodeAccessDenied, "the user cancelled the sign-in"))
	}
	username, password := r.PostForm.Get("username"), r.PostForm.Get("password")
	if username == "" || password == "" || len(username) > 256 || len(password) > 1024 {
		retry.Error = "Enter your username and password."
		a.deny(oauth.CodeInvalidRequest)
		return wb.render(w, http.StatusBadRequest, "login.html", retry)
	}
	_, cookie, err := wb.s.cfg.SignIn.SignInLocal(r.Context(), username, password, wb.meta(r, clientID))
	if err != nil {
		// As the audit trail records a failed sign-in (signin.SignInLocal).
		a.deny(oauth.CodeAccessDenied)
		var te *account.ThrottledError
		if errors.As(err, &te) {
			retry.Error = "Too many attempts. Try again in " + te.RetryAfter.Round(time.Second).String() + "."
			w.Header().Set("Retry-After", itoa(int(te.RetryAfter.Seconds())+1))
			return wb.render(w, http.StatusTooManyRequests, "login.html", retry)
		}
		retry.Error = "Invalid username or password."
		return wb.render(w, http.StatusUnauthorized, "login.html", retry)
	}
	wb.setCookie(w, sessionCookie, cookie, wb.s.cfg.SessionTTL)
	http.Redirect(w, r, returnTo, http.StatusSeeOther)
	return nil
}

func itoa(n int) string {
	if n <= 0 {
		return "1"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// userinfo serves OIDC Core §5.3 for access tokens that carry the openid scope. A
// DPoP-bound token is accepted only as "Authorization: DPoP" with a proof of its
// key for this request (RFC 9449 §7); sent as a bearer token it is refused.
func (wb *web) userinfo(w http.ResponseWriter, r *http.Request) error {
	var raw string
	isDPoP := false
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, v, ok := strings.Cut(h, " ")
		if ok && (strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "DPoP")) {
			raw, isDPoP = strings.TrimSpace(v), strings.EqualFold(scheme, "DPoP")
		}
	} else if r.Method == http.MethodPost {
		if err := wb.readForm(w, r); err == nil {
			raw = r.PostForm.Get("access_token")
		}
	}
	a := accessOf(r)
	bearer := func(code, desc string) error {
		a.deny(oauth.Code(code))
		w.Header().Set("WWW-Authenticate", `Bearer realm="deputy", error="`+code+`", error_description="`+desc+`"`)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusUnauthorized)
		return nil
	}
	if raw == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="deputy"`)
		w.WriteHeader(http.StatusUnauthorized)
		return nil
	}
	now := wb.s.cfg.Now()
	v, err := wb.s.cfg.Tokens.VerifyContext(r.Context(), raw, []string{oauth.JWTTypeAccessToken}, now)
	if err != nil {
		desc := "the access token is invalid, expired or revoked"
		if errors.Is(err, token.ErrType) {
			// One of deputy's tokens that is no access token: a transaction token
			// (typ txntoken+jwt) or an ID token is never one (RFC 9068 §2.1).
			desc = "the token is not an access token (wrong typ)"
		}
		if isDPoP {
			return dpopRefusal(w, r, "invalid_token", desc)
		}
		return bearer("invalid_token", desc)
	}
	a.setClient(v.Claims.ClientID, true)
	if ok, err := wb.userinfoProof(w, r, raw, isDPoP, v.Claims.Cnf, now); !ok {
		return err
	}
	if cnf := v.Claims.Cnf; cnf != nil && cnf.X5TS256 != "" && !wb.s.certificateMatches(r, cnf.X5TS256) {
		// RFC 8705 §3: a certificate-bound token, used without its certificate.
		return bearer("invalid_token", "the access token is bound to a TLS client certificate this request does not present")
	}
	scopes := v.Claims.Scopes()
	if !slices.Contains(scopes, "openid") {
		a.deny("insufficient_scope") // RFC 6750 §3.1
		w.Header().Set("WWW-Authenticate", `Bearer realm="deputy", error="insufficient_scope", scope="openid"`)
		w.WriteHeader(http.StatusForbidden)
		return nil
	}
	out := map[string]any{}
	if wb.s.cfg.Profiles != nil {
		// The claims of the account the token's sign-in was with (idp), not of
		// whoever else has the same subject.
		idp, _ := v.Claims.Extra["idp"].(string)
		for k, val := range grant.Released(wb.s.cfg.Profiles(r.Context(), v.Claims.Subject, idp), scopes) {
			out[k] = val
		}
	}
	out["sub"] = v.Claims.Subject
	return writeJSON(w, out)
}

// userinfoProof checks how a token is presented at userinfo (RFC 9449 §7): a
// DPoP-bound token (cnf.jkt) only with the DPoP scheme and a proof of its key for
// this request, with ath of the token; a token without cnf.jkt only as a bearer
// token. It reports whether the request may go on; a refusal it has answered
// (401 with a DPoP challenge), or returns as an error (the store is unavailable).
func (wb *web) userinfoProof(w http.ResponseWriter, r *http.Request, raw string, isDPoP bool, cnf *oauth.Confirmation, now time.Time) (bool, error) {
	bound := cnf != nil && cnf.JKT != ""
	switch {
	case !bound && !isDPoP:
		return true, nil
	case !bound:
		return false, dpopRefusal(w, r, "invalid_token", "the access token is not DPoP-bound; send it as a Bearer token")
	case !isDPoP:
		return false, dpopRefusal(w, r, "invalid_token", "the access token is DPoP-bound; send it with the DPoP scheme and a DPoP proof")
	}
	s := wb.s
	p, err := s.dpopProof(r.Context(), r.Header.Values(dpop.Header), r.Method, s.cfg.Issuer+PathUserinfo, raw, now)
	if err != nil {
		oe := oauth.AsError(err)
		if oe.Code == oauth.CodeTemporarilyUnavail {
			return false, oe
		}
		if oe.Code == oauth.CodeUseDPoPNonce {
			if n := s.dpopNonce(now); n != "" {
				w.Header().Set(dpop.NonceHeader, n)
			}
		}
		return false, dpopRefusal(w, r, string(oe.Code), oe.Description)
	}
	if p.JKT != cnf.JKT {
		return false, dpopRefusal(w, r, "invalid_dpop_proof", "the DPoP proof is not of the key the access token is bound to")
	}
	if s.cfg.DPoP.RequireNonce {
		// The nonce for the next proof (RFC 9449 §8.2).
		if n := s.dpopNonce(now); n != "" {
			w.Header().Set(dpop.NonceHeader, n)
		}
	}
	return true, nil
}

// dpopRefusal answers 401 with a DPoP challenge (RFC 9449 §7.1).
func dpopRefusal(w http.ResponseWriter, r *http.Request, code, desc string) error {
	accessOf(r).deny(oauth.Code(code))
	w.Header().Set("WWW-Authenticate", dpopChallenge(code, desc))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusUnauthorized)
	return nil
}

// logoutRequest is an RP-initiated logout request (OIDC RP-Initiated Logout 1.0
// §2) after validation: a parameter that fails it counts as absent (§4).
type logoutRequest struct {
	client *client.Client // from a valid id_token_hint's aud, or client_id; nil if neither
	// hintSID and hintSub are the session and subject of a valid id_token_hint.
	hintSID, hintSub string
	// redirect is post_logout_redirect_uri when it is exactly one of the client's
	// post_logout_redirect_uris (§3); "" otherwise.
	redirect   string
	state      string
	logoutHint string
}

// logoutParams are the parameters a sign-out confirmation carries over.
var logoutParams = []string{"id_token_hint", "client_id", "post_logout_redirect_uri", "state", "logout_hint", "ui_locales"}

func (wb *web) logoutRequest(params url.Values) logoutRequest {
	lr := logoutRequest{state: params.Get("state"), logoutHint: params.Get("logout_hint")}
	clientID := params.Get("client_id")
	if hint := params.Get("id_token_hint"); hint != "" {
		aud, sid, sub, ok := wb.idTokenHint(hint)
		switch {
		case ok && (clientID == "" || clientID == aud):
			clientID, lr.hintSID, lr.hintSub = aud, sid, sub
		case ok:
			// §2: client_id must be the hint's client; when they disagree neither
			// says who is asking.
			clientID = ""
		}
	}
	if c, ok := wb.s.cfg.Clients.Lookup(clientID); ok && clientID != "" {
		lr.client = c
		if u := params.Get("post_logout_redirect_uri"); u != "" && slices.Contains(c.PostLogoutRedirectURIs, u) {
			lr.redirect = u
		}
	}
	return lr
}

// idTokenHint checks an id_token_hint: an ID token deputy issued to a client at
// sign-in (typ JWT, deputy's signature and issuer, one aud that is its azp, no
// client_id or scope: not an access token or an exchange's jwt), expired or not
// (§2: the OP should accept it past its exp) and revoked or not (signing out
// revokes it, and asking again must stay harmless). It returns the client, the
// session and the subject.
func (wb *web) idTokenHint(raw string) (aud, sid, sub string, ok bool) {
	v, err := wb.s.cfg.Tokens.VerifyIgnoringRevocation(raw, []string{oauth.JWTTypeJWT}, wb.s.cfg.Now())
	if v == nil || err != nil && !errors.Is(err, token.ErrExpired) {
		return "", "", "", false
	}
	c := &v.Claims
	azp, _ := c.Extra["azp"].(string)
	if len(c.Audience) != 1 || azp != c.Audience[0] || c.ClientID != "" || c.Scope != "" {
		return "", "", "", false
	}
	return azp, c.SID, c.Subject, true
}

// endSession serves RP-Initiated Logout 1.0: it ends the browser's session and
// revokes everything issued in it. Only a valid id_token_hint of this very session
// signs out at once; otherwise the user confirms with a CSRF-protected form (§2: a
// cross-site link must not sign anyone out). The browser goes back to the client
// only to one of its post_logout_redirect_uris, with state (§3).
func (wb *web) endSession(w http.ResponseWriter, r *http.Request) error {
	params, ok, err := wb.params(w, r)
	if !ok {
		return err
	}
	lr := wb.logoutRequest(params)
	clientID := ""
	if lr.client != nil {
		clientID = lr.client.ID
	}
	back := ""
	if lr.redirect != "" {
		back = lr.redirect
		if lr.state != "" {
			back += map[bool]string{true: "&", false: "?"}[strings.Contains(back, "?")] + url.Values{"state": {lr.state}}.Encode()
		}
	}
	sess, signedIn := wb.session(r)
	confirmed := r.Method == http.MethodPost && csrfOK(r)
	atOnce := lr.hintSID != "" && lr.hintSID == sess.ID && lr.hintSub == sess.Subject
	if signedIn && !confirmed && !atOnce {
		var hs []hidden
		for _, k := range logoutParams {
			if v := params.Get(k); v != "" {
				hs = append(hs, hidden{k, v})
			}
		}
		msg := "You are signed in as " + sess.Subject + "."
		if lr.client != nil {
			msg = lr.client.DisplayName() + " asks to sign you out. " + msg
		}
		if lr.logoutHint != "" && lr.logoutHint != sess.Subject {
			msg += " The application asked to sign out " + lr.logoutHint + ", not you."
		}
		p := page{Title: "Sign out?", Message: msg, CSRF: wb.csrf(w, r), Action: PathEndSession, Params: hs, Button: "Sign out"}
		if back != "" {
			// Validated against the client's own list: a link the page may show.
			p.CancelURL, p.formTargets = template.URL(back), []string{lr.redirect}
		}
		return wb.render(w, http.StatusOK, "message.html", p)
	}
	if signedIn {
		if err := wb.s.cfg.SignIn.SignOut(r.Context(), sess, wb.meta(r, clientID)); err != nil {
			return oauth.TemporarilyUnavailable("cannot sign out now", err)
		}
		wb.s.consents.forget(sess.ID)
	}
	wb.setCookie(w, sessionCookie, "", -time.Second)
	if back != "" {
		http.Redirect(w, r, back, http.StatusSeeOther)
		return nil
	}
	return wb.render(w, http.StatusOK, "message.html", page{Title: "Signed out", Message: "You are signed out."})
}
