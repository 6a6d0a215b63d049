package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/deputy-auth/deputy/internal/account"
	"github.com/deputy-auth/deputy/internal/signin"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// Paths of the audit explorer (README "Audit explorer"): server-rendered pages
// for people whose local account has the auditor role. Every page is a GET whose
// query says all it shows, so each view has its own URL.
const (
	PathAuditUI       = "/audit/ui"        // search (subject, actor, client, audience, type, since, until, trace_id; after, limit)
	PathAuditUIEvent  = "/audit/ui/event"  // one event (?id=)
	PathAuditUITree   = "/audit/ui/tree"   // the delegation tree of a token or event (?id=)
	PathAuditUIVerify = "/audit/ui/verify" // the hash chain's verification
	PathAuditUIExport = "/audit/ui/export" // a search as CSV or JSON Lines (?format=csv|jsonl and the search's criteria)
	PathAuditUILogout = "/audit/ui/logout" // sign out (POST, CSRF-protected)
)

// RoleAuditor is the role a local account needs to use the audit explorer
// (users[].roles).
const RoleAuditor = "auditor" // config.RoleAuditor; httpapi does not import config

// Roles gives the roles of a local account (users[].roles, `deputy users add
// --role`). An unknown or disabled account has none: Roles may then return no
// roles or account.ErrNotFound / account.ErrDisabled; any other error means the
// roles cannot be read now. Safe for concurrent use.
type Roles interface {
	Roles(ctx context.Context, username string) ([]string, error)
}

// explorer serves the audit explorer over deputy's own sign-in sessions.
type explorer struct{ wb *web }

// routes registers the explorer's pages on s's mux.
func (x *explorer) routes(mux *http.ServeMux) {
	for p, h := range map[string]pageFunc{
		PathAuditUI:       x.search,
		PathAuditUIEvent:  x.event,
		PathAuditUITree:   x.tree,
		PathAuditUIVerify: x.verify,
		PathAuditUIExport: x.export,
		PathAuditUI + "/": x.notFound, // any other page under /audit/ui
	} {
		mux.Handle(p, x.page(h))
	}
	mux.Handle(PathAuditUILogout, x.action(x.logout))
}

// viewer is the signed-in auditor a page is served to.
type viewer struct {
	sess store.Session
	csrf string // the sign-out form's CSRF token
}

// pageFunc serves one page of the explorer to an auditor.
type pageFunc func(w http.ResponseWriter, r *http.Request, v viewer) error

// page serves a GET page: to an auditor; anyone else is sent to sign in (303)
// or refused (403). Errors are rendered as pages by renderError.
func (x *explorer) page(h pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accessOf(r).sawContext(r.Context())
		err := x.access(w, r, func(v viewer) error {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				return &methodError{allow: "GET, HEAD"}
			}
			return h(w, r, v)
		})
		if err != nil {
			x.renderError(w, r, err)
		}
	})
}

// action serves a POSTed form of a signed-in user (sign-out), whose CSRF token
// must match.
func (x *explorer) action(h func(w http.ResponseWriter, r *http.Request, sess store.Session) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accessOf(r).sawContext(r.Context())
		err := func() error {
			if r.Method != http.MethodPost {
				return &methodError{allow: http.MethodPost}
			}
			if err := x.wb.readForm(w, r); err != nil {
				return &pageError{status: http.StatusBadRequest, code: oauth.CodeInvalidRequest, title: "Request refused", message: "The form could not be read."}
			}
			sess, ok := x.wb.session(r)
			if !ok {
				return &signInNeeded{returnTo: PathAuditUI}
			}
			if !csrfOK(r) {
				return &pageError{status: http.StatusForbidden, code: oauth.CodeInvalidRequest, title: "The form expired",
					message: "This form was not sent from a page of the audit explorer, or it expired. Nothing was done; go back and try again."}
			}
			return h(w, r, sess)
		}()
		if err != nil {
			x.renderError(w, r, err)
		}
	})
}

// access finds the request's auditor and calls h with them. Without a session
// the visitor is sent to sign in; with one whose account lacks the auditor role
// the refusal is recorded and answered 403.
func (x *explorer) access(w http.ResponseWriter, r *http.Request, h func(viewer) error) error {
	// Every view is recorded as the viewer's: another site must not make an
	// auditor's browser view (and export) what it chose. Browsers say where a
	// request comes from (Fetch Metadata); one from another site is refused.
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return &pageError{status: http.StatusForbidden, code: oauth.CodeAccessDenied, title: "Opened from another site",
			message: "This page of the audit explorer was opened from another site, and each view is recorded as yours. Open it from the explorer itself."}
	}
	sess, ok := x.wb.session(r)
	if !ok {
		return &signInNeeded{returnTo: r.URL.RequestURI()}
	}
	roles, err := x.roles(r.Context(), sess)
	if err != nil {
		return unavailablePage(err)
	}
	if !slices.Contains(roles, RoleAuditor) {
		e := x.viewEvent(r, sess, store.EventDenied)
		e.Decision = store.DecisionDeny
		e.Reason = "access_denied: the audit explorer needs the " + RoleAuditor + " role"
		e.Detail = viewDetail(pageOf(r.URL.Path), r.URL.Query())
		if err := x.record(r.Context(), e); err != nil {
			return err
		}
		return &pageError{status: http.StatusForbidden, code: oauth.CodeAccessDenied, title: "Not an auditor",
			message: "You are signed in as " + displayText(sess.Subject) + ", whose account does not have the " + RoleAuditor +
				" role. An administrator can grant it (users[].roles in the configuration, or deputy users add --role " + RoleAuditor + ").",
			sess: &sess, csrf: x.wb.csrf(w, r)}
	}
	return h(viewer{sess: sess, csrf: x.wb.csrf(w, r)})
}

// roles are the roles of a session's user: those of the local account it signed
// in with, or, for an upstream provider linked to local accounts
// (link_local_accounts), of the local account of its subject. Users of any
// other provider have none, whatever their name.
func (x *explorer) roles(ctx context.Context, sess store.Session) ([]string, error) {
	if sess.IdP != signin.IdPLocal && !x.wb.s.cfg.LinkedIdPs[sess.IdP] {
		return nil, nil
	}
	roles, err := x.wb.s.cfg.Roles.Roles(ctx, sess.Subject)
	if errors.Is(err, account.ErrNotFound) || errors.Is(err, account.ErrDisabled) || errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return roles, err
}

// viewEvent is an audit event of a page view (or its refusal) by sess's user.
func (x *explorer) viewEvent(r *http.Request, sess store.Session, typ string) *store.AuditEvent {
	return &store.AuditEvent{
		Type: typ, Decision: store.DecisionAllow, Subject: sess.Subject,
		RequestID: requestID(r), RemoteAddr: remoteHost(r),
	}
}

// viewed records that v viewed page with its criteria or id (detail), before
// the page is sent: a view that cannot be recorded is not shown.
func (x *explorer) viewed(r *http.Request, v viewer, page string, detail url.Values) error {
	e := x.viewEvent(r, v.sess, store.EventAuditViewed)
	e.Reason = "viewed " + page
	e.Detail = viewDetail(page, detail)
	return x.record(r.Context(), e)
}

func (x *explorer) record(ctx context.Context, e *store.AuditEvent) error {
	if err := x.wb.s.cfg.SignIn.Audit.Record(ctx, e); err != nil {
		return unavailablePage(err)
	}
	return nil
}

// viewDetail is the Detail of an audit.viewed event: {"page": …, "query": {…}}
// with each criterion (one value each; the first when repeated).
func viewDetail(page string, q url.Values) string {
	d := struct {
		Page  string            `json:"page"`
		Query map[string]string `json:"query,omitempty"`
	}{Page: page}
	for k, vs := range q {
		if len(vs) > 0 && vs[0] != "" {
			if d.Query == nil {
				d.Query = map[string]string{}
			}
			d.Query[store.Truncate(k, 64)] = store.Truncate(vs[0], 512)
		}
	}
	b, _ := json.Marshal(d)
	return string(b)
}

// pageOf names the page at p for the audit trail.
func pageOf(p string) string {
	switch p {
	case PathAuditUI:
		return "search"
	case PathAuditUIEvent:
		return "event"
	case PathAuditUITree:
		return "tree"
	case PathAuditUIVerify:
		return "verify"
	case PathAuditUIExport:
		return "export"
	}
	return "other"
}

// logout ends the session, revoking what was issued in it (as the end-session
// endpoint does), and goes back to the sign-in page.
func (x *explorer) logout(w http.ResponseWriter, r *http.Request, sess store.Session) error {
	if err := x.wb.s.cfg.SignIn.SignOut(r.Context(), sess, x.wb.meta(r, "")); err != nil {
		return unavailablePage(err)
	}
	x.wb.s.consents.forget(sess.ID)
	x.wb.setCookie(w, sessionCookie, "", -time.Second)
	http.Redirect(w, r, loginFor(PathAuditUI), http.StatusSeeOther)
	return nil
}

// notFound answers any other path under /audit/ui.
func (x *explorer) notFound(w http.ResponseWriter, r *http.Request, v viewer) error {
	return notFoundPage("There is no such page in the audit explorer.")
}

// pageError is a page answered instead of the one asked for.
type pageError struct {
	status         int
	code           oauth.Code // for the access log
	title, message string
	cause          error
	// sess, csrf: the page is shown to this signed-in user (the header offers
	// to sign out); nil for anyone else.
	sess *store.Session
	csrf string
}

func (e *pageError) Error() string {
	if e.cause != nil {
		return e.title + ": " + e.cause.Error()
	}
	return e.title
}

func (e *pageError) Unwrap() error { return e.cause }

func notFoundPage(msg string) error {
	return &pageError{status: http.StatusNotFound, code: "not_found", title: "Not found", message: msg}
}

func badRequestPage(msg string, cause error) error {
	return &pageError{status: http.StatusBadRequest, code: oauth.CodeInvalidRequest, title: "The request is not valid", message: msg, cause: cause}
}

func unavailablePage(cause error) error {
	return &pageError{status: http.StatusServiceUnavailable, code: oauth.CodeTemporarilyUnavail, title: "The audit trail cannot be read now",
		message: "The database did not answer in time. Try again in a moment.", cause: cause}
}

// signInNeeded sends a visitor without a session to the sign-in page, which
// brings them back to returnTo.
type signInNeeded struct{ returnTo string }

func (e *signInNeeded) Error() string { return "sign-in needed" }

// loginFor is the sign-in page that returns to returnTo (PathAuditUI when
// returnTo is no page of the explorer).
func loginFor(returnTo string) string {
	if !auditReturnTo(returnTo) {
		returnTo = PathAuditUI
	}
	return PathLogin + "?" + url.Values{"return_to": {returnTo}}.Encode()
}

// renderError is the one place that renders the explorer's errors.
func (x *explorer) renderError(w http.ResponseWriter, r *http.Request, err error) {
	var si *signInNeeded
	if errors.As(err, &si) {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, loginFor(si.returnTo), http.StatusSeeOther)
		return
	}
	var pe *pageError
	var me *methodError
	switch {
	case errors.As(err, &pe):
	case errors.As(err, &me):
		w.Header().Set("Allow", me.allow)
		pe = &pageError{status: http.StatusMethodNotAllowed, code: oauth.CodeInvalidRequest, title: "Method not allowed",
			message: "This page is read with " + me.allow + "."}
	case unavailable(err):
		pe = unavailablePage(err).(*pageError)
	default:
		pe = &pageError{status: http.StatusInternalServerError, code: oauth.CodeServerError, title: "Something went wrong",
			message: "The page could not be shown.", cause: err}
	}
	if pe.cause != nil && pe.status >= 500 {
		x.wb.s.cfg.Log.Warn("audit explorer", "request_id", requestID(r), "route", route(r.URL.Path), "err", pe.cause)
	}
	accessOf(r).deny(pe.code)
	p := uiPage{Title: pe.title, Message: &messageView{Title: pe.title, Text: pe.message}}
	if pe.sess != nil {
		p.Viewer, p.CSRF = displayText(pe.sess.Subject), pe.csrf
	}
	_ = x.render(w, pe.status, "audit_message.html", p)
}

// uiPage is what every template of the explorer gets: the layout's fields and
// the one view of the page.
type uiPage struct {
	Title  string
	Viewer string // the signed-in auditor ("" on a page shown to someone else)
	CSRF   string
	// Nav is the section of the header the page belongs to: "search" or "verify".
	Nav string
	// The page's view; one is set.
	Search  *searchView
	Event   *eventView
	Tree    *treeView
	Verify  *verifyView
	Message *messageView
}

type messageView struct{ Title, Text string }

func (v viewer) page(title, nav string) uiPage {
	return uiPage{Title: title, Viewer: displayText(v.sess.Subject), CSRF: v.csrf, Nav: nav}
}

// auditPages are the explorer's templates (web.go's templateFS), parsed apart
// from the other pages: they have their own layout and style.
var auditPages = template.Must(template.ParseFS(templateFS, "templates/audit*.html"))

// auditStyleHash is the CSP hash of the explorer's one style sheet
// (audit_layout.html), computed from the template as styleHash is.
var auditStyleHash = func() string {
	b, err := templateFS.ReadFile("templates/audit_layout.html")
	if err != nil {
		panic(err)
	}
	_, rest, _ := strings.Cut(string(b), "<style>")
	css, _, ok := strings.Cut(rest, "</style>")
	if !ok {
		panic("templates/audit_layout.html: no <style> element")
	}
	sum := sha256.Sum256([]byte(css))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

// auditCSP: nothing is fetched (no script, image, font or frame), the one style
// sheet is allowed by its hash, forms go to deputy only.
var auditCSP = "default-src 'none'; style-src " + auditStyleHash + "; img-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// render answers with the page name shows p. Once the status is sent nothing
// else can be, so it returns nil: a failure to write is logged.
func (x *explorer) render(w http.ResponseWriter, status int, name string, p uiPage) error {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", auditCSP)
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	if err := auditPages.ExecuteTemplate(w, name, p); err != nil {
		// The answer has begun: nothing else can be sent. The client went away,
		// or a template is wrong (which the tests catch).
		x.wb.s.cfg.Log.Debug("audit explorer: writing a page", "page", name, "err", err)
	}
	return nil
}

// maxReturnTo bounds the page the sign-in page returns to.
const maxReturnTo = 2048

// auditReturnTo reports whether v is a page of the explorer the sign-in page
// may return to: a relative reference whose path is /audit/ui or under it, in
// clean form (no dot segments, no doubled or encoded slashes, no backslash), so
// that the redirect after sign-in cannot leave deputy nor reach another of its
// pages.
func auditReturnTo(v string) bool {
	if v == "" || len(v) > maxReturnTo || strings.ContainsAny(v, "\\#") ||
		strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return false
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "" || u.Opaque != "" || u.User != nil || u.Host != "" || u.RawPath != "" || u.Fragment != "" {
		return false
	}
	p := u.Path
	if p != PathAuditUI && !strings.HasPrefix(p, PathAuditUI+"/") {
		return false
	}
	return path.Clean(p) == p && strings.HasPrefix(v, p)
}

// displayText is a value from the audit trail as a page shows it: as it is when
// it is valid UTF-8 whose every character prints (so no control character,
// line separator or bidi override reorders the page's text) and it does not
// begin with a double quote; else quoted in Go syntax, those characters
// escaped (strconv.Quote). The search reads a criterion so quoted back
// (unquoteCriterion), so what a page shows can be searched for as shown.
func displayText(s string) string {
	if utf8.ValidString(s) && !strings.HasPrefix(s, `"`) && !strings.ContainsFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) {
		return s
	}
	return strconv.Quote(s)
}

// unquoteCriterion is a search criterion as typed: a value in Go quotes, as
// displayText shows it, stands for the value quoted; anything else for itself.
func unquoteCriterion(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		if u, err := strconv.Unquote(v); err == nil {
			return u
		}
	}
	return v
}
