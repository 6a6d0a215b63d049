package httpapi

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/authorize"
	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/keys"
	"github.com/deputy-auth/deputy/internal/signin"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/internal/upstream"
	"github.com/deputy-auth/deputy/oauth"
)

// Paths of deputy's endpoints, relative to the issuer URL.
const (
	PathToken         = "/token"
	PathJWKS          = "/jwks"
	PathIntrospection = "/introspect"
	PathRevocation    = "/revoke"
	PathHealth        = "/healthz"
	PathReady         = "/readyz"
	PathMetrics       = "/metrics"
)

// Revoker revokes a token and everything derived from it, recording the event.
type Revoker interface {
	Revoke(ctx context.Context, r store.Revocation, e *store.AuditEvent) ([]store.Revocation, error)
}

// Config holds what the server needs; every field is required unless noted.
type Config struct {
	Issuer     string
	Dispatcher *grant.Dispatcher
	Tokens     *token.Service
	Keys       *keys.Set
	Revoker    Revoker
	// AudienceClients maps an audience id to the client that is that service.
	AudienceClients map[string]string
	// Scopes are the scopes published in discovery.
	Scopes []string
	// IDTokenAlgorithms are the algorithms ID tokens may be signed with, for
	// discovery (OpenID Connect Discovery 1.0 §3: RS256 among them).
	IDTokenAlgorithms []string
	// Ready reports whether the server can serve (the database answers, the audit
	// writer commits).
	Ready func(ctx context.Context) error
	// RequestTimeout bounds how long a request waits for the database (optional:
	// no bound). The audit endpoints, whose queries may read much of the trail,
	// and the upstream sign-in endpoints, which wait for another server too, get
	// longTimeoutFactor times as long.
	RequestTimeout time.Duration
	MaxBodyBytes   int64
	Log            *slog.Logger
	// Registry receives the server's metrics and is what /metrics serves
	// (optional: NewRegistry makes one).
	Registry *prometheus.Registry
	Now      func() time.Time // optional

	// Browser sign-in (optional: without SignIn the authorization, login, userinfo
	// and end-session endpoints are not served).
	SignIn     *signin.Service
	Clients    authorize.Clients
	SessionTTL time.Duration
	// Profiles returns a user's identity claims for userinfo (optional): those
	// of the sign-in idp names (the token's idp claim; "local" for deputy's own
	// accounts), never another's who has the same subject.
	Profiles func(ctx context.Context, subject, idp string) map[string]string
	// Refresh finds refresh tokens for introspection and revocation (optional).
	Refresh store.RefreshTokens
	// Upstreams are the identity providers offered on the login page.
	Upstreams []upstream.Provider
	// RememberClaims keeps the claims upstream idp released for a subject (optional).
	RememberClaims func(idp, subject string, claims map[string]string)
	// Calls records the calls services report (optional: without it the call
	// report endpoint is not served).
	Calls *audit.Reporter
	// AuditLog answers audit queries and traces over HTTP (optional: without it
	// the audit endpoints are not served).
	AuditLog store.AuditLog
	// Roles gives local accounts' roles (optional: with SignIn and AuditLog it
	// serves the audit explorer, /audit/ui, to accounts with RoleAuditor; see
	// auditui.go).
	Roles Roles
	// LinkedIdPs are the upstream providers linked to local accounts
	// (link_local_accounts): their users have the roles of the local account of
	// their subject. Users of any other provider have none.
	LinkedIdPs map[string]bool
	// CORSOrigins may call /token, /userinfo and /revoke from a browser (see
	// cors.go), as browsers send them in Origin (optional: none).
	CORSOrigins []string
	// ScopeDescriptions say on the consent page what each scope lets a client do
	// (optional: scopes are shown by name).
	ScopeDescriptions map[string]string
	// TrustedProxies are the reverse proxies whose X-Forwarded-For and Forwarded
	// headers name the client (trusted_proxies); from anyone else they are ignored.
	TrustedProxies []netip.Prefix
	// ForwardedHeader is the header the trusted proxies write, HeaderXForwardedFor
	// ("" too) or HeaderForwarded (trusted_proxy_header); the other is not read.
	ForwardedHeader string
	// DPoP configures DPoP proofs at the token and userinfo endpoints (dpop.go).
	DPoP DPoP
	// ClientCertificates: clients may present TLS client certificates (RFC 8705),
	// on the connection or through a proxy; discovery lists the mutual-TLS
	// methods and certificate-bound tokens.
	ClientCertificates bool
	// ClientCertHeader is the header a TLS-terminating proxy forwards the client
	// certificate in (tls.client_cert_header, optional), read only from a peer in
	// CertProxies (tls.trusted_proxies); see mtls.go.
	ClientCertHeader string
	CertProxies      []netip.Prefix
	// MetricsElsewhere: /metrics is served on a separate listener
	// (metrics.listen) through Server.Metrics, not by this handler.
	MetricsElsewhere bool
	// MaxInFlight caps the requests served at once (limits.max_in_flight,
	// shed.go; optional: 0 is no cap).
	MaxInFlight int
	// RatePerSecond and RateBurst limit /token, /introspect, /revoke and /calls
	// per authenticated client, and per address for requests that did not
	// authenticate (limits.rate, ratelimit.go; optional: 0 is no limit).
	RatePerSecond, RateBurst int
	// Throttled records rate_limited events in aggregate (optional: not audited).
	Throttled *audit.Aggregator
}

// Server is deputy's HTTP handler.
type Server struct {
	cfg       Config
	mux       *http.ServeMux
	discovery []byte
	oidc      []byte
	// node is the state that outlives a reload: Reconfigure builds a Server of
	// a new configuration that shares it.
	*node
}

// node is the state of a Server that is the node's, not its configuration's: the
// metrics, the requests in flight and the rate limits, the drain, the DPoP nonce.
// Every Server Reconfigure derives shares it, so a reload loses none of it.
type node struct {
	metrics *metrics
	// proxyHint logs, once, that forwarding headers arrive while trusted_proxies
	// is empty.
	proxyHint sync.Once
	// draining: the node is shutting down; /readyz answers 503 (see SetDraining).
	draining atomic.Bool
	// headerHint logs, once, that a trusted proxy sends only the forwarding
	// header trusted_proxy_header does not name.
	headerHint sync.Once
	// nonces is the DPoP nonce this node hands out (dpop.go).
	nonces dpopNonces
	// consents are the approvals users gave on the consent page (web.go).
	consents consentMemory
	// shed caps the requests in flight (shed.go); clientRate, addrRate and
	// rateMetrics apply limits.rate (ratelimit.go).
	shed                 shedder
	clientRate, addrRate *limiter
	rateMetrics          *rateLimitMetrics
}

// Metrics serves the Prometheus text of the server's registry (README "Metrics"),
// counted in deputy_http_in_flight like every other request.
func (s *Server) Metrics() http.Handler {
	h := promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.MetricsElsewhere {
			w, r = s.beginAccess(w, r) // its access line, as ServeHTTP gives every other request
			defer s.endAccess(w, r)
			s.metrics.inFlight.Inc()
			defer s.metrics.inFlight.Dec()
		}
		h.ServeHTTP(w, r)
	})
}

// SetDraining marks the node as shutting down: from then on /readyz answers 503, so
// load balancers send it no new requests, while every endpoint still serves.
func (s *Server) SetDraining() { s.draining.Store(true) }

// New builds the handler.
func New(cfg Config) (*Server, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Registry == nil {
		cfg.Registry = NewRegistry()
	}
	if cfg.DPoP.Replay == nil {
		return nil, errors.New("httpapi: DPoP.Replay is required")
	}
	n := &node{metrics: newMetrics(cfg.Registry), rateMetrics: newRateLimitMetrics(cfg.Registry)}
	n.shed.max = int64(cfg.MaxInFlight)
	if cfg.RatePerSecond > 0 {
		n.clientRate = newLimiter(cfg.RatePerSecond, max(cfg.RateBurst, 1), DefaultMaxRateKeys)
		n.addrRate = newLimiter(cfg.RatePerSecond, max(cfg.RateBurst, 1), DefaultMaxRateKeys)
	}
	return build(cfg, n)
}

// Reconfigure returns a Server of cfg that shares s's node: its metrics,
// in-flight cap and rate limits, drain and DPoP nonce go on as they were (so
// cfg's Registry, MaxInFlight, RatePerSecond and RateBurst are s's, whatever
// cfg says). s is unchanged and may still serve requests begun before the
// caller switches to the new Server (a reload of the configuration file).
func (s *Server) Reconfigure(cfg Config) (*Server, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DPoP.Replay == nil {
		return nil, errors.New("httpapi: DPoP.Replay is required")
	}
	cfg.Registry, cfg.MaxInFlight, cfg.RatePerSecond, cfg.RateBurst = s.cfg.Registry, s.cfg.MaxInFlight, s.cfg.RatePerSecond, s.cfg.RateBurst
	return build(cfg, s.node)
}

// build makes the Server of cfg over node n: its routes and discovery documents.
func build(cfg Config, n *node) (*Server, error) {
	s := &Server{cfg: cfg, mux: http.NewServeMux(), node: n}
	var err error
	if s.discovery, s.oidc, err = s.metadata(); err != nil {
		return nil, err
	}
	cors := newCORSPolicy(cfg.CORSOrigins)
	for path, h := range map[string]http.Handler{
		"/.well-known/oauth-authorization-server": handler(s.serveDiscovery(false)),
		"/.well-known/openid-configuration":       handler(s.serveDiscovery(true)),
		PathJWKS:                                  handler(s.jwks),
	} {
		h = cors.public(h, http.MethodGet)
		s.mux.Handle("GET "+path, h)
		s.mux.Handle("OPTIONS "+path, h)
	}
	s.mux.Handle(PathToken, cors.api(handler(s.token), http.MethodPost))
	s.mux.Handle(PathIntrospection, handler(s.introspect))
	s.mux.Handle(PathRevocation, cors.api(handler(s.revoke), http.MethodPost))
	s.mux.Handle("GET "+PathHealth, handler(func(w http.ResponseWriter, r *http.Request) error {
		_, err := io.WriteString(w, "ok\n")
		return err
	}))
	s.mux.Handle("GET "+PathReady, handler(s.ready))
	if cfg.Calls != nil {
		s.mux.Handle(PathCalls, handler(s.calls))
	}
	if cfg.AuditLog != nil {
		s.mux.Handle(PathAuditEvents, handler(s.auditEvents))
		s.mux.Handle(PathAuditTrace, handler(s.auditTrace))
	}
	if !cfg.MetricsElsewhere {
		s.mux.Handle("GET "+PathMetrics, s.Metrics())
	}
	if cfg.SignIn != nil {
		wb := &web{s: s}
		s.mux.Handle(PathAuthorize, handler(wb.authorize))
		s.mux.Handle(PathConsent, handler(wb.consent))
		s.mux.Handle(PathLogin, handler(wb.login))
		s.mux.Handle(PathUserinfo, cors.api(handler(wb.userinfo), "GET, POST"))
		s.mux.Handle(PathEndSession, handler(wb.endSession))
		s.mux.Handle(PathUpstreamLogin, handler(wb.upstreamLogin))
		s.mux.Handle(PathCallback, handler(wb.callback))
		if cfg.AuditLog != nil && cfg.Roles != nil {
			(&explorer{wb: wb}).routes(s.mux)
		}
	}
	return s, nil
}

// readBodyFirst reads r's body into memory, at most one byte more than the
// largest body any endpoint accepts (so that endpoint's own limit still refuses
// a larger one), and gives the handler what was read followed by the error that
// ended the reading, if any.
func (s *Server) readBodyFirst(r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	limit := max(s.cfg.MaxBodyBytes, maxCallsBody, maxCallbackBody) + 1
	if r.ContentLength > s.maxBody(r.URL.Path) {
		return // refused by its handler without reading it (bodyTooLarge)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit))
	if err != nil {
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b), errReader{err}))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
}

// maxBody is the largest body the endpoint at path accepts.
func (s *Server) maxBody(path string) int64 {
	switch {
	case path == PathToken || path == PathIntrospection || path == PathRevocation:
		return s.cfg.MaxBodyBytes
	case path == PathCalls:
		return maxCallsBody
	}
	return max(s.cfg.MaxBodyBytes, maxCallsBody, maxCallbackBody)
}

// maxFormFields bounds the fields of a token, introspection or revocation form:
// the richest request (a token exchange with several audiences and resources)
// has a few dozen. A form with more is refused before url.ParseQuery allocates
// for each field.
const maxFormFields = 100

// bodyTooLarge is the cause of the invalid_request answering a body over an
// endpoint's limit: writeError answers it 413 (RFC 9110 §15.5.14). A body whose
// Content-Length says so is refused before any of it is read.
type bodyTooLarge struct{ how string }

func (e *bodyTooLarge) Error() string { return e.how }

// tooLarge is the error refusing r's body, over limit.
func tooLarge(r *http.Request, limit int64) error {
	how := "more than that was sent"
	if r.ContentLength > limit {
		how = "Content-Length " + strconv.FormatInt(r.ContentLength, 10)
	}
	return oauth.InvalidRequest("request body is larger than "+strconv.FormatInt(limit, 10)+" bytes", &bodyTooLarge{how: how})
}

// errReader fails every read with err.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// longTimeoutFactor is how many times RequestTimeout the audit and upstream
// sign-in endpoints get.
const longTimeoutFactor = 12

// retryAfterUnavailable is the Retry-After (seconds) of a 503: about when a node
// whose database stalled may have recovered, or the load balancer moved on.
const retryAfterUnavailable = "5"

// ServeHTTP serves a request, recovering from panics as server_error. Each
// request's context ends after RequestTimeout, which bounds every wait for the
// database (pool, query, audit commit) on its path: past it the request is
// answered 503 temporarily_unavailable rather than held.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w, r = s.beginAccess(w, r) // one access-log line per request (accesslog.go)
	defer s.endAccess(w, r)
	// Refused before anything is read or parsed: a full node, and an address
	// that flooded with requests that did not authenticate, cost as little as
	// possible (shed.go, ratelimit.go).
	if !s.shed.admit(w, r) {
		return
	}
	defer s.shed.done(r)
	r, endSpan := startSpan(w, r) // tracing.go
	defer endSpan()
	accessOf(r).sawContext(r.Context()) // the line names the request's trace
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			// The route, not the path: a client may have put anything there.
			s.cfg.Log.Error("panic serving request", "request_id", requestID(r), "route", route(r.URL.Path), "panic", v)
			writeError(w, r, oauth.ServerError(fmt.Errorf("panic: %v", v)))
		}
	}()
	if len(s.cfg.TrustedProxies) == 0 && (r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("Forwarded") != "") {
		s.proxyHint.Do(func() {
			s.cfg.Log.Warn("requests carry X-Forwarded-For or Forwarded but trusted_proxies is empty: the headers are ignored; " +
				"behind a reverse proxy every client has the proxy's address, for throttling and the audit trail")
		})
	}
	if len(s.cfg.TrustedProxies) > 0 && onlyOtherHeader(r, s.cfg.TrustedProxies, s.cfg.ForwardedHeader) {
		s.headerHint.Do(func() {
			s.cfg.Log.Warn("a trusted proxy sends the forwarding header trusted_proxy_header does not name, and not the one it names: "+
				"that header is ignored, and every client through that proxy has its address; set trusted_proxy_header to the header the proxy writes",
				"trusted_proxy_header", cmp.Or(s.cfg.ForwardedHeader, HeaderXForwardedFor))
		})
	}
	s.certSource(r)
	r, err := withClientAddr(r, s.cfg.TrustedProxies, s.cfg.ForwardedHeader)
	if err != nil {
		writeError(w, r, oauth.InvalidRequest(err.Error(), err))
		return
	}
	accessOf(r).remote = remoteHost(r)
	if !s.rateLimit(w, r) {
		return
	}
	if d := s.cfg.RequestTimeout; d > 0 {
		// The deadline bounds the database, not the client: a body still arriving
		// (bounded by http.read_timeout) is read first, so that a slow client's
		// request is not refused as if the database had stalled.
		s.readBodyFirst(r)
		if p := r.URL.Path; strings.HasPrefix(p, "/audit/") || p == PathUpstreamLogin || strings.HasPrefix(p, PathCallback) {
			d *= longTimeoutFactor
		}
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		r = r.WithContext(ctx)
	}
	s.mux.ServeHTTP(w, r)
}

// handler adapts a handler that returns an error; writeError renders it.
type handler func(w http.ResponseWriter, r *http.Request) error

func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	accessOf(r).sawContext(r.Context())
	if err := h(w, r); err != nil {
		writeError(w, r, err)
	}
}

// methodError answers a request with the wrong method.
type methodError struct{ allow string }

func (e *methodError) Error() string { return "method not allowed; use " + e.allow }

// writeError is the one place that renders errors; r's access-log line gets
// the OAuth error code answered.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Type", "application/json")
	var rl *rateLimitedError
	if errors.As(err, &rl) {
		writeRefusal(w, r, http.StatusTooManyRequests, rl.retryAfter, rl.oe, false)
		return
	}
	status := 0
	if tl := (*bodyTooLarge)(nil); errors.As(err, &tl) {
		status = http.StatusRequestEntityTooLarge
	}
	var me *methodError
	if errors.As(err, &me) {
		h.Set("Allow", me.allow)
		w.WriteHeader(http.StatusMethodNotAllowed)
		accessOf(r).deny(oauth.CodeInvalidRequest)
		_ = json.NewEncoder(w).Encode(oauth.InvalidRequest(me.Error(), nil))
		return
	}
	oe := oauth.AsError(err)
	if oe.Code == oauth.CodeServerError && unavailable(err) {
		oe = oauth.TemporarilyUnavailable("the database cannot be reached now", err)
	}
	switch oe.Code {
	case oauth.CodeInvalidClient:
		h.Set("WWW-Authenticate", `Basic realm="deputy", error="invalid_client"`)
	case oauth.CodeTemporarilyUnavail:
		h.Set("Retry-After", retryAfterUnavailable)
	}
	accessOf(r).deny(oe.Code)
	w.WriteHeader(cmp.Or(status, oe.Status()))
	_ = json.NewEncoder(w).Encode(oe)
}

// unavailable reports an error caused by the database's state or the request's
// deadline for it, rather than by a fault of the server.
func unavailable(err error) bool {
	return errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// writeJSON writes a successful JSON response that must not be cached.
func writeJSON(w http.ResponseWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return oauth.ServerError(err)
	}
	return writeJSONBytes(w, b)
}

// writeJSONBytes writes b, a JSON document, as writeJSON does. The header values
// are shared, read-only slices of capacity 1: a later Add copies, never writes
// into them.
func writeJSONBytes(w http.ResponseWriter, b []byte) error {
	h := w.Header()
	h["Content-Type"] = headerJSON
	h["Cache-Control"] = headerNoStore
	h["Pragma"] = headerNoCache
	_, err := w.Write(b)
	return err
}

var (
	headerJSON    = []string{"application/json"}
	headerNoStore = []string{"no-store"}
	headerNoCache = []string{"no-cache"}
)

// parse decodes a POSTed form request into a grant.Request. Failures are protocol
// errors; the caller records them.
func (s *Server) parse(w http.ResponseWriter, r *http.Request, endpoint string) (*grant.Request, error) {
	req := &grant.Request{
		Endpoint:   endpoint,
		RequestID:  requestID(r),
		RemoteAddr: remoteHost(r),
		Now:        s.cfg.Now(),
	}
	w.Header().Set("X-Request-Id", req.RequestID)
	req.Limit = s.rateGateFor(r, req.RequestID)
	req.Credentials = credentials(r.Header)
	accessOf(r).setRequest(req)
	certs, certErr := s.clientCertificates(r)
	req.Credentials.Certificates = certs
	if r.Method != http.MethodPost {
		// A protocol error (so audit and metrics record a client error) whose cause
		// tells writeError to answer 405 with Allow.
		me := &methodError{allow: http.MethodPost}
		return req, oauth.InvalidRequest("method not allowed", me)
	}
	if certErr != nil {
		return req, certErr
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return req, oauth.InvalidRequest("Content-Type must be application/x-www-form-urlencoded", nil)
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return req, tooLarge(r, s.cfg.MaxBodyBytes)
	}
	body, err := io.ReadAll(http.MaxBytesReader(connWriter(w), r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return req, tooLarge(r, s.cfg.MaxBodyBytes)
		}
		return req, oauth.InvalidRequest("cannot read request body", err)
	}
	if n := bytes.Count(body, []byte("&")) + 1; n > maxFormFields {
		return req, oauth.InvalidRequest(fmt.Sprintf("the form has more than %d fields", maxFormFields), nil)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return req, oauth.InvalidRequest("malformed form body", err)
	}
	req.Form = omitEmpty(form)
	cr := &req.Credentials
	if vs := form["client_id"]; len(vs) > 0 {
		if len(vs) > 1 {
			return req, oauth.InvalidRequest("parameter client_id is repeated", nil)
		}
		cr.FormID = vs[0]
	}
	for name, dst := range map[string]*string{
		"client_secret": &cr.FormSecret, "client_assertion": &cr.Assertion, "client_assertion_type": &cr.AssertionType,
	} {
		if vs := form[name]; len(vs) > 0 {
			if len(vs) > 1 {
				return req, oauth.InvalidRequest("parameter "+name+" is repeated", nil)
			}
			*dst = vs[0]
		}
	}
	return req, nil
}

// credentials reads HTTP Basic client credentials (RFC 6749 §2.3.1: both parts are
// form-urlencoded before being joined).
func credentials(h http.Header) client.Credentials {
	var cr client.Credentials
	vs := h.Values("Authorization")
	if len(vs) == 0 {
		return cr
	}
	cr.Basic = true
	if len(vs) > 1 {
		cr.BasicMalformed = true
		return cr
	}
	scheme, param, ok := strings.Cut(vs[0], " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		cr.BasicMalformed = true
		return cr
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(param))
	if err != nil {
		cr.BasicMalformed = true
		return cr
	}
	id, secret, ok := strings.Cut(string(raw), ":")
	if !ok {
		cr.BasicMalformed = true
		return cr
	}
	if cr.BasicID, err = url.QueryUnescape(id); err == nil {
		cr.BasicSecret, err = url.QueryUnescape(secret)
	}
	if err != nil || cr.BasicID == "" {
		cr.BasicMalformed = true
	}
	return cr
}

// requestID is r's request id: the one its access-log line and audit events
// record (beginAccess chose it).
func requestID(r *http.Request) string {
	if a, ok := r.Context().Value(accessKey{}).(*access); ok {
		return a.requestID
	}
	return newRequestID(r)
}

// newRequestID is the X-Request-Id r carries, when it is short printable ASCII,
// else a random one.
func newRequestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 64 && printable(id) {
		return id
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// remoteHost is the address of the client a request comes from: the peer, or
// the client a trusted proxy named (ServeHTTP puts it in RemoteAddr, see
// withClientAddr). Throttling and the audit trail key on it.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	// The request's access record holds its grant type, for the metrics and the
	// access-log line alike: "other" unless the form names one grant deputy serves.
	a := accessOf(r)
	a.grant = grantLabel("")
	req, err := s.parse(w, r, "token")
	if err == nil {
		if gt := req.Form["grant_type"]; len(gt) == 1 {
			a.grant = grantLabel(gt[0])
		}
		s.tokenProof(w, r, req)
		var resp *oauth.TokenResponse
		resp, err = s.cfg.Dispatcher.Token(r.Context(), req)
		if err == nil {
			s.metrics.observe(a.grant, "", start)
			return writeTokenResponse(w, resp)
		}
		var rl *rateLimitedError
		if errors.As(err, &rl) {
			return err // counted in deputy_rate_limited_total
		}
	} else {
		err = s.cfg.Dispatcher.Refuse(r.Context(), req, err)
	}
	s.metrics.observe(a.grant, oauth.AsError(err).Code, start)
	return err
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, err := w.Write(s.cfg.Keys.JWKS())
	return err
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) error {
	if s.draining.Load() {
		return oauth.TemporarilyUnavailable("shutting down", nil)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.cfg.Ready(ctx); err != nil {
		return oauth.TemporarilyUnavailable("not ready", err)
	}
	if err := s.cfg.Keys.CanSign(); err != nil {
		// Every algorithm, not only the access tokens': a client whose ID tokens
		// use another would get server_error from a node reported ready.
		return oauth.TemporarilyUnavailable("no active signing key", err)
	}
	_, err := io.WriteString(w, "ready\n")
	return err
}
