package httpapi

import (
	"crypto/rand"
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
	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/signin"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
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
	s        *Server
	consents consentMemory
}

type hidden struct{ Name, Value string }

type page struct {
	Title, Error, Message, Client, Subject, CSRF, Action, UpstreamAction, ReturnTo, Username, Button string
	Scopes                                                                                           []string
	Params                                                                                           []hidden
	IdPs                                                                                             []upstreamButton
}

func (wb *web) render(w http.ResponseWriter, status int, name string, p page) error {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'")
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
	r.Body = http.MaxBytesReader(w, r.Body, wb.s.cfg.MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		return oauth.InvalidRequest("malformed form", err)
	}
	return nil
}

// refuse records a refused browser request and renders its error page, or
// redirects it to the client when the error allows.
func (wb *web) refuse(w http.ResponseWriter, r *http.Request, clientID string, err error) error {
	req := &grant.Request{Endpoint: "authorization", RequestID: requestID(r), RemoteAddr: remoteHost(r), Now: wb.s.cfg.Now()}
	req.Credentials.FormID = clientID
	var ae *authorize.Error
	if errors.As(err, &ae) {
		_ = wb.s.cfg.Dispatcher.Refuse(r.Context(), req, ae.Err)
		if ae.Redirect {
			http.Redirect(w, r, authorize.ErrorRedirect(ae, wb.s.cfg.Issuer), http.StatusSeeOther)
			return nil
		}
		return wb.render(w, http.StatusBadRequest, "message.html", page{Title: "This sign-in link is not valid",
			Error: ae.Err.Description, Message: "Go back to the application and try again."})
	}
	oe := oauth.AsError(wb.s.cfg.Dispatcher.Refuse(r.Context(), req, err))
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
		return r.URL.Query(), true, nil
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
		return wb.render(w, http.StatusOK, "login.html", page{Title: "Sign in", Client: areq.Client.ID,
			CSRF: wb.csrf(w, r), Action: PathLogin, ReturnTo: PathAuthorize + "?" + back.Encode(), Username: areq.LoginHint,
			IdPs: wb.upstreamNames(), UpstreamAction: PathUpstreamLogin})
	}
	if !areq.HasPrompt("consent") && wb.approved(sess.ID, areq) {
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
	return wb.render(w, http.StatusOK, "consent.html", page{Title: "Allow access", Client: areq.Client.ID,
		Subject: sess.Subject, Scopes: areq.Scopes, CSRF: wb.csrf(w, r), Action: PathConsent, Params: hs})
}

func (wb *web) approved(sid string, areq *authorize.Request) bool {
	granted := wb.consents.get(sid, areq.Client.ID, wb.s.cfg.Now())
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
	sess, ok := wb.session(r)
	if !ok {
		return wb.refuse(w, r, areq.Client.ID, redirectErr(areq, authorize.CodeLoginRequired, "the session ended before consent"))
	}
	if decision != "allow" {
		return wb.refuse(w, r, areq.Client.ID, redirectErr(areq, oauth.CodeAccessDenied, "the user denied access"))
	}
	wb.consents.add(sess.ID, areq.Client.ID, areq.Scopes, sess.ExpiresAt, wb.s.cfg.Now())
	return wb.issue(w, r, sess, areq)
}

func (wb *web) issue(w http.ResponseWriter, r *http.Request, sess store.Session, areq *authorize.Request) error {
	code, err := wb.s.cfg.SignIn.IssueCode(r.Context(), sess, areq, wb.meta(r, areq.Client.ID))
	if err != nil {
		return oauth.TemporarilyUnavailable("cannot issue a code now", err)
	}
	http.Redirect(w, r, authorize.CodeRedirect(areq, code, wb.s.cfg.Issuer), http.StatusSeeOther)
	return nil
}

// login receives the sign-in form.
func (wb *web) login(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet:
		if _, ok := wb.session(r); ok {
			return wb.render(w, http.StatusOK, "message.html", page{Title: "Signed in", Message: "You are signed in."})
		}
		return wb.render(w, http.StatusOK, "login.html", page{Title: "Sign in", CSRF: wb.csrf(w, r), Action: PathLogin, ReturnTo: PathLogin,
			IdPs: wb.upstreamNames(), UpstreamAction: PathUpstreamLogin})
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
	retry := page{Title: "Sign in", Client: clientID, CSRF: wb.csrf(w, r), Action: PathLogin, ReturnTo: returnTo,
		Username: r.PostForm.Get("username"), IdPs: wb.upstreamNames(), UpstreamAction: PathUpstreamLogin}
	if !csrfOK(r) {
		retry.Error = "The form expired. Please sign in again."
		return wb.render(w, http.StatusBadRequest, "login.html", retry)
	}
	username, password := r.PostForm.Get("username"), r.PostForm.Get("password")
	if username == "" || password == "" || len(username) > 256 || len(password) > 1024 {
		retry.Error = "Enter your username and password."
		return wb.render(w, http.StatusBadRequest, "login.html", retry)
	}
	_, cookie, err := wb.s.cfg.SignIn.SignInLocal(r.Context(), username, password, wb.meta(r, clientID))
	if err != nil {
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

// userinfo serves OIDC Core §5.3 for access tokens that carry the openid scope.
func (wb *web) userinfo(w http.ResponseWriter, r *http.Request) error {
	var raw string
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, v, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			raw = strings.TrimSpace(v)
		}
	} else if r.Method == http.MethodPost {
		if err := wb.readForm(w, r); err == nil {
			raw = r.PostForm.Get("access_token")
		}
	}
	bearer := func(code, desc string) error {
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
	v, err := wb.s.cfg.Tokens.Verify(raw, []string{oauth.JWTTypeAccessToken}, wb.s.cfg.Now())
	if err != nil {
		return bearer("invalid_token", "the access token is invalid, expired or revoked")
	}
	scopes := v.Claims.Scopes()
	if !slices.Contains(scopes, "openid") {
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

// endSession serves RP-Initiated Logout 1.0: it ends the browser's session and
// revokes everything issued in it. Without a valid id_token_hint for the same
// session, the user confirms with a form (so a cross-site link cannot sign anyone out).
func (wb *web) endSession(w http.ResponseWriter, r *http.Request) error {
	params, ok, err := wb.params(w, r)
	if !ok {
		return err
	}
	clientID := params.Get("client_id")
	hintOK := false
	var hintSID string
	if hint := params.Get("id_token_hint"); hint != "" {
		c, err := wb.s.cfg.Tokens.VerifyIDToken(hint)
		if err != nil {
			return wb.refuse(w, r, clientID, oauth.InvalidRequest("id_token_hint is not a valid ID token of this server", err))
		}
		if len(c.Audience) != 1 || (clientID != "" && c.Audience[0] != clientID) {
			return wb.refuse(w, r, clientID, oauth.InvalidRequest("id_token_hint was issued to another client", nil))
		}
		clientID, hintOK, hintSID = c.Audience[0], true, c.SID
	}
	redirect := params.Get("post_logout_redirect_uri")
	if redirect != "" {
		c, ok := wb.s.cfg.Clients.Lookup(clientID)
		if !ok || !slices.Contains(c.RedirectURIs, redirect) {
			return wb.refuse(w, r, clientID, oauth.InvalidRequest("post_logout_redirect_uri is not registered for the client", nil))
		}
	}
	sess, ok := wb.session(r)
	confirmed := r.Method == http.MethodPost && csrfOK(r)
	if ok && !confirmed && !(hintOK && hintSID == sess.ID) {
		var hs []hidden
		for _, k := range []string{"client_id", "post_logout_redirect_uri", "state", "id_token_hint"} {
			if v := params.Get(k); v != "" {
				hs = append(hs, hidden{k, v})
			}
		}
		return wb.render(w, http.StatusOK, "message.html", page{Title: "Sign out?", Message: "Signed in as " + sess.Subject + ".",
			CSRF: wb.csrf(w, r), Action: PathEndSession, Params: hs, Button: "Sign out"})
	}
	if ok {
		if err := wb.s.cfg.SignIn.SignOut(r.Context(), sess, wb.meta(r, clientID)); err != nil {
			return oauth.TemporarilyUnavailable("cannot sign out now", err)
		}
		wb.consents.forget(sess.ID)
	}
	wb.setCookie(w, sessionCookie, "", -time.Second)
	if redirect != "" {
		if st := params.Get("state"); st != "" {
			redirect += map[bool]string{true: "&", false: "?"}[strings.Contains(redirect, "?")] + url.Values{"state": {st}}.Encode()
		}
		http.Redirect(w, r, redirect, http.StatusSeeOther)
		return nil
	}
	return wb.render(w, http.StatusOK, "message.html", page{Title: "Signed out", Message: "You are signed out."})
}
