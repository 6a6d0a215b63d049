package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// Paths of the audit endpoints.
const (
	PathCalls       = "/calls"        // services report the calls they handled (POST, JSON)
	PathAuditEvents = "/audit/events" // audit query (GET), for clients holding ScopeAudit
	PathAuditTrace  = "/audit/trace"  // audit trace (GET ?id=), for clients holding ScopeAudit
)

// ScopeAudit is the scope a client's configuration must list for it to read the
// audit trail over HTTP.
const ScopeAudit = "deputy:audit"

// Bounds of the audit endpoints.
const (
	maxCallsBody     = 1 << 20
	defaultAuditPage = 100
	maxAuditPage     = 1000
)

// callsRequest is the body of a call report.
type callsRequest struct {
	Calls []audit.Call `json:"calls"`
}

// calls answers call reports: an authenticated confidential client sends
// {"calls":[{"token_jti","action","resource","outcome","time","detail"}…]} and
// gets {"accepted":N,"rejected":[{"index","error"}…]}; every call, accepted or
// refused, is in the audit trail before the answer leaves.
func (s *Server) calls(w http.ResponseWriter, r *http.Request) error {
	req := s.plainRequest(w, r, "calls")
	if r.Method != http.MethodPost {
		return s.cfg.Dispatcher.Refuse(r.Context(), req, oauth.InvalidRequest("method not allowed", &methodError{allow: http.MethodPost}))
	}
	c, err := s.cfg.Dispatcher.Authenticate(r.Context(), req)
	if err != nil {
		return err
	}
	if c.Public() {
		return s.cfg.Dispatcher.Refuse(r.Context(), req, oauth.UnauthorizedClient("public clients cannot report calls", nil))
	}
	body, err := s.readJSONBody(w, r, maxCallsBody)
	if err != nil {
		return s.cfg.Dispatcher.Refuse(r.Context(), req, err)
	}
	var cr callsRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cr); err != nil {
		return s.cfg.Dispatcher.Refuse(r.Context(), req, oauth.InvalidRequest("malformed call report: "+jsonProblem(err), err))
	}
	if dec.More() {
		return s.cfg.Dispatcher.Refuse(r.Context(), req, oauth.InvalidRequest("malformed call report: data after the JSON object", nil))
	}
	switch {
	case len(cr.Calls) == 0:
		return s.cfg.Dispatcher.Refuse(r.Context(), req, oauth.InvalidRequest("the report holds no calls", nil))
	case len(cr.Calls) > audit.MaxCallsPerReport:
		return s.cfg.Dispatcher.Refuse(r.Context(), req, oauth.InvalidRequest(
			fmt.Sprintf("a report holds at most %d calls, not %d", audit.MaxCallsPerReport, len(cr.Calls)), nil))
	}
	res, err := s.cfg.Calls.Record(r.Context(), audit.Origin{ClientID: c.ID, RequestID: req.RequestID, RemoteAddr: req.RemoteAddr}, cr.Calls, req.Now)
	if err != nil {
		return oauth.TemporarilyUnavailable("the calls cannot be recorded now", err)
	}
	return writeJSON(w, res)
}

// plainRequest describes a request that is not a form POST, for authentication and
// the audit trail.
func (s *Server) plainRequest(w http.ResponseWriter, r *http.Request, endpoint string) *grant.Request {
	req := &grant.Request{Endpoint: endpoint, RequestID: requestID(r), RemoteAddr: remoteHost(r), Now: s.cfg.Now()}
	w.Header().Set("X-Request-Id", req.RequestID)
	req.Limit = s.rateGateFor(r, req.RequestID)
	req.Credentials = credentials(r.Header)
	accessOf(r).setRequest(req)
	return req
}

func (s *Server) readJSONBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, oauth.InvalidRequest("Content-Type must be application/json", nil)
	}
	if r.ContentLength > limit {
		return nil, tooLarge(r, limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(connWriter(w), r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(r, limit)
		}
		return nil, oauth.InvalidRequest("cannot read request body", err)
	}
	return body, nil
}

// jsonProblem names what is wrong with a JSON body without echoing it.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "not JSON at offset " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		return "field " + te.Field + " has the wrong type"
	case errors.Is(err, io.EOF):
		return "empty body"
	}
	// Any other message may quote the body (an unknown field's name): cut it, and
	// keep it to characters a terminal shows as they are.
	return store.Truncate(strconv.QuoteToASCII(err.Error()), 200)
}

// auditClient authenticates a GET request of the audit endpoints: a confidential
// client whose configured scopes include ScopeAudit.
func (s *Server) auditClient(w http.ResponseWriter, r *http.Request, endpoint string) (*grant.Request, *client.Client, error) {
	req := s.plainRequest(w, r, endpoint)
	if r.Method != http.MethodGet {
		return nil, nil, s.cfg.Dispatcher.Refuse(r.Context(), req, oauth.InvalidRequest("method not allowed", &methodError{allow: http.MethodGet}))
	}
	c, err := s.cfg.Dispatcher.Authenticate(r.Context(), req)
	if err != nil {
		return nil, nil, err
	}
	if c.Public() || !slices.Contains(c.Scopes, ScopeAudit) {
		return nil, nil, s.cfg.Dispatcher.Refuse(r.Context(), req, oauth.UnauthorizedClient(
			"reading the audit trail needs a client whose scopes include "+ScopeAudit, nil))
	}
	return req, c, nil
}

// auditEvents answers audit queries: the filters of `deputy audit query` as query
// parameters (subject, actor, client, audience, type, trace_id as a W3C trace-id,
// since, until as RFC 3339),
// after (a sequence number, for paging) and limit (default 100, at most 1000). The
// answer is JSON Lines, one event per line in chain order, in the format of
// `deputy audit query --json`.
func (s *Server) auditEvents(w http.ResponseWriter, r *http.Request) error {
	req, _, err := s.auditClient(w, r, "audit")
	if err != nil {
		return err
	}
	f, err := auditFilter(omitEmpty(r.URL.Query()))
	if err != nil {
		return s.cfg.Dispatcher.Refuse(r.Context(), req, err)
	}
	events, err := s.cfg.AuditLog.Query(r.Context(), f)
	if err != nil {
		return oauth.TemporarilyUnavailable("the audit trail cannot be read now", err)
	}
	var b bytes.Buffer
	for _, e := range events {
		if err := audit.WriteEventJSON(&b, e); err != nil {
			return oauth.ServerError(err)
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/jsonl")
	h.Set("Cache-Control", "no-store")
	_, err = w.Write(b.Bytes())
	return err
}

func auditFilter(q url.Values) (store.AuditFilter, error) {
	f := store.AuditFilter{Limit: defaultAuditPage}
	for k, vs := range q {
		if len(vs) > 1 {
			return f, oauth.InvalidRequest("parameter "+k+" is repeated", nil)
		}
		v := vs[0]
		var err error
		switch k {
		case "subject":
			f.Subject = v
		case "actor":
			f.Actor = v
		case "client":
			f.ClientID = v
		case "audience":
			f.Audience = v
		case "type":
			f.Type = v
		case "trace_id":
			if !audit.ValidTraceID(v) {
				return f, oauth.InvalidRequest("parameter trace_id is not a W3C trace-id: 32 lowercase hex digits, not all zero", nil)
			}
			f.TraceID = v
		case "since", "until":
			var t time.Time
			if t, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return f, oauth.InvalidRequest("parameter "+k+" is not an RFC 3339 time", err)
			}
			if k == "since" {
				f.Since = t
			} else {
				f.Until = t
			}
		case "after":
			if f.AfterSeq, err = strconv.ParseInt(v, 10, 64); err != nil || f.AfterSeq < 0 {
				return f, oauth.InvalidRequest("parameter after is not a sequence number", err)
			}
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxAuditPage {
				return f, oauth.InvalidRequest(fmt.Sprintf("parameter limit must be 1 to %d", maxAuditPage), err)
			}
			f.Limit = n
		default:
			return f, oauth.InvalidRequest("unknown parameter "+k, nil)
		}
	}
	return f, nil
}

// auditTrace answers ?id=<jti, event id or txn> with the tree of `deputy audit trace
// --json`.
func (s *Server) auditTrace(w http.ResponseWriter, r *http.Request) error {
	req, _, err := s.auditClient(w, r, "audit")
	if err != nil {
		return err
	}
	q := omitEmpty(r.URL.Query())
	if len(q["id"]) != 1 || q.Get("id") == "" || len(q) != 1 {
		return s.cfg.Dispatcher.Refuse(r.Context(), req, oauth.InvalidRequest("give exactly one parameter id", nil))
	}
	tree, err := audit.Trace(r.Context(), s.cfg.AuditLog, q.Get("id"))
	if errors.Is(err, audit.ErrNotFound) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, err = io.WriteString(w, `{"error":"not_found","error_description":"no token or event with that id"}`+"\n")
		return err
	}
	if err != nil {
		return oauth.TemporarilyUnavailable("the audit trail cannot be read now", err)
	}
	var b bytes.Buffer
	if err := tree.WriteJSON(&b); err != nil {
		return oauth.ServerError(err)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(b.Bytes())
	return err
}
