package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// The access log: one line per request, written once it is answered (README,
// Operating deputy › Logs). Every value on it is deputy's own or from a fixed set
// — the route, never the path as sent or its query; the OAuth error code, never
// a description or a cause — so no token, secret, password, code, assertion,
// proof, cookie or header reaches it. The values a client chooses are its
// X-Request-Id (printable ASCII, at most 64 bytes: newRequestID) and a client id
// it claims, cut to maxLoggedClientID bytes and quoted when it holds characters a
// terminal would interpret.

// MsgRequest is the message of every access-log line.
const MsgRequest = "request"

// Outcomes of a request on its access-log line: answered as asked, refused (a
// 4xx, or an error sent back by redirect), or failed on the server's side (5xx).
const (
	OutcomeOK     = "ok"
	OutcomeDenied = "denied"
	OutcomeError  = "error"
)

// maxLoggedClientID bounds the client id a line shows.
const maxLoggedClientID = 128

// access is what one request's access-log line says. ServeHTTP puts one in every
// request's context (beginAccess); handlers fill in what only they learn — the
// grant type, the client, the OAuth error — and endAccess writes the line. All
// of it is written and read by the request's own goroutine.
type access struct {
	start     time.Time
	requestID string
	remote    string
	traceID   string
	// grant is the token endpoint's grant_type, as deputy_token_requests_total
	// labels it (grantLabel).
	grant string
	// code is the OAuth error the request was answered with ("" when none).
	code oauth.Code
	// req is the request as the Dispatcher saw it (token, introspection,
	// revocation, calls, audit, refused browser requests): the client it
	// authenticated, or failing that the one the request names.
	req *grant.Request
	// client is the client a handler learned otherwise (a browser request's
	// client_id, the client a userinfo token was issued to); verified says
	// whether deputy checked it (a token it issued) or the request merely names it.
	client   string
	verified bool
}

type accessKey struct{}

// accessOf is the access record of r; a throwaway one for a request that did
// not come through ServeHTTP, so handlers never check.
func accessOf(r *http.Request) *access {
	if a, ok := r.Context().Value(accessKey{}).(*access); ok {
		return a
	}
	return &access{}
}

// setRequest tells the line the Dispatcher's view of the request, for its client.
func (a *access) setRequest(req *grant.Request) { a.req = req }

// setClient names the request's client when no grant.Request does.
func (a *access) setClient(id string, verified bool) { a.client, a.verified = id, verified }

// deny records the OAuth error a request is refused with.
func (a *access) deny(code oauth.Code) { a.code = code }

// sawContext takes the trace id of ctx's span, when it has a valid one (a
// traceparent the request carried, or a span deputy started for it).
func (a *access) sawContext(ctx context.Context) {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		a.traceID = sc.TraceID().String()
	}
}

// clientID is the request's client and whether deputy verified it: the client
// the Dispatcher authenticated, else the one a handler named, else the one the
// request claims (a failed client authentication).
func (a *access) clientID() (string, bool) {
	if a.req != nil {
		if id := a.req.ClientID(); id != "" {
			return id, true
		}
	}
	if a.client != "" {
		return a.client, a.verified
	}
	if a.req != nil {
		return a.req.Credentials.ClaimedID(), false
	}
	return "", false
}

// accessWriter remembers the status a request was answered with.
type accessWriter struct {
	http.ResponseWriter
	status int
}

func (w *accessWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *accessWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *accessWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// connWriter is the writer of the connection under w, for http.MaxBytesReader:
// on a body over its limit it tells the server to close the connection rather
// than read the rest, which it can only through the server's own writer.
func connWriter(w http.ResponseWriter) http.ResponseWriter {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
}

// beginAccess starts r's access record: its request id (the one its audit
// events record), address and start. The caller defers endAccess with what it
// returns.
func (s *Server) beginAccess(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request) {
	a := &access{start: time.Now(), requestID: newRequestID(r), remote: remoteHost(r)}
	a.sawContext(r.Context())
	return &accessWriter{ResponseWriter: w}, r.WithContext(context.WithValue(r.Context(), accessKey{}, a))
}

// endAccess writes r's access-log line.
func (s *Server) endAccess(w http.ResponseWriter, r *http.Request) {
	a := accessOf(r)
	status := http.StatusOK // what net/http answers for a handler that wrote nothing
	if aw, ok := w.(*accessWriter); ok && aw.status != 0 {
		status = aw.status
	}
	rt := route(r.URL.Path)
	level := accessLevel(rt, status)
	if s.cfg.Log == nil || !s.cfg.Log.Enabled(r.Context(), level) {
		return
	}
	a.sawContext(r.Context())
	attrs := make([]slog.Attr, 0, 13)
	attrs = append(attrs,
		slog.String("request_id", a.requestID),
		slog.String("method", method(r.Method)),
		slog.String("route", rt),
		slog.Int("status", status),
		slog.String("outcome", outcome(status, a.code)),
	)
	if a.code != "" {
		attrs = append(attrs, slog.String("error", codeLabel(a.code)))
	}
	if id, verified := a.clientID(); id != "" {
		attrs = append(attrs, slog.String("client", loggedClientID(id)), slog.Bool("client_verified", verified))
	}
	if a.grant != "" {
		attrs = append(attrs, slog.String("grant", a.grant))
	}
	attrs = append(attrs,
		slog.Float64("duration_ms", float64(time.Since(a.start).Microseconds())/1000),
		slog.String("remote", a.remote),
	)
	if a.traceID != "" {
		attrs = append(attrs, slog.String("trace_id", a.traceID))
	}
	s.cfg.Log.LogAttrs(r.Context(), level, MsgRequest, attrs...)
}

// accessLevel: the probes (/healthz, /readyz, /metrics) at debug whatever they
// answer — they are polled every few seconds, and what a failing one reports is
// logged where it happens; 500 (a fault of deputy) at error; any other 5xx (the
// database or audit trail unavailable, a full node shedding) at warn; the rest,
// granted or refused, at info.
func accessLevel(route string, status int) slog.Level {
	switch {
	case route == PathHealth || route == PathReady || route == PathMetrics:
		return slog.LevelDebug
	case status == http.StatusInternalServerError:
		return slog.LevelError
	case status >= 500:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// outcome is error for a 5xx, and for a server-side failure deputy sent back
// to the client by redirect (RFC 6749 §4.1.2.1); denied for any other 4xx or
// OAuth error; else ok.
func outcome(status int, code oauth.Code) string {
	switch {
	case status >= 500, status < 400 && (code == oauth.CodeServerError || code == oauth.CodeTemporarilyUnavail):
		return OutcomeError
	case status >= 400 || code != "":
		return OutcomeDenied
	}
	return OutcomeOK
}

// Discovery paths (RFC 8414 §3, OpenID Connect Discovery 1.0 §4).
const (
	pathOAuthMetadata = "/.well-known/oauth-authorization-server"
	pathOIDCMetadata  = "/.well-known/openid-configuration"
)

// routes are the paths deputy serves, the route of a line; any other is "other".
var routes = map[string]bool{
	PathToken: true, PathJWKS: true, PathIntrospection: true, PathRevocation: true,
	PathHealth: true, PathReady: true, PathMetrics: true,
	PathCalls: true, PathAuditEvents: true, PathAuditTrace: true,
	PathAuditUI: true, PathAuditUIEvent: true, PathAuditUITree: true, PathAuditUIVerify: true, PathAuditUIExport: true, PathAuditUILogout: true,
	PathAuthorize: true, PathConsent: true, PathLogin: true, PathUserinfo: true, PathEndSession: true,
	PathUpstreamLogin: true, pathOAuthMetadata: true, pathOIDCMetadata: true,
}

// route is the line's route for path: the path itself when deputy serves it,
// /callback/{idp} for an upstream callback, else "other" — never what a client
// made up.
func route(path string) string {
	if routes[path] {
		return path
	}
	if strings.HasPrefix(path, PathCallback) {
		return PathCallback + "{idp}"
	}
	return "other"
}

var methods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true, http.MethodPatch: true,
	http.MethodDelete: true, http.MethodConnect: true, http.MethodOptions: true, http.MethodTrace: true,
}

// method is the request's method, or "other" for one HTTP does not define.
func method(m string) string {
	if methods[m] {
		return m
	}
	return "other"
}

// codeLabel is an OAuth error code as the line shows it: codes are deputy's own
// (oauth.Code* and RFC 6750's), a lower-case word; anything else is server_error.
func codeLabel(c oauth.Code) string {
	if len(c) == 0 || len(c) > 40 || strings.ContainsFunc(string(c), func(r rune) bool { return (r < 'a' || r > 'z') && r != '_' }) {
		return string(oauth.CodeServerError)
	}
	return string(c)
}

// loggedClientID is id as a line shows it: at most maxLoggedClientID bytes, and
// Go-quoted (ASCII) when it is not UTF-8 or holds characters oauth.SafeText
// refuses, so a claimed id can neither forge a line nor reorder a terminal's text.
func loggedClientID(id string) string {
	if !oauth.SafeText(id) {
		id = strconv.QuoteToASCII(id)
	}
	return store.Truncate(id, maxLoggedClientID)
}
