package report_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/sdk/report"
)

// guard bounds every wait of a test; it is only a failure guard, never a measure.
const guard = 10 * time.Second

// abort, in a script, makes the fake drop the connection: a transport failure.
const abort = -1

// fakeDeputy implements deputy's side of the call report contract: discovery, then
// POST with client_secret_basic and a JSON body of at most 1 MiB and 500 calls,
// answered 200 {"accepted","rejected"}, 400 invalid_request or 401 invalid_client.
// Its fields are set before the first request.
type fakeDeputy struct {
	t              *testing.T
	srv            *httptest.Server
	id, secret     string
	path           string            // of the call report endpoint
	issuer         string            // in the metadata; default the server's URL
	script         []int             // statuses answered to the first reports, in order
	discoverScript []int             // likewise for discovery
	reject         map[string]string // jti → reason it is rejected with
	release        chan struct{}     // when set, reports wait until it is closed
	entered        chan struct{}     // signalled when a report is received
	arrived        chan struct{}     // signalled when a report has been recorded

	mu          sync.Mutex
	requests    int // reports received
	discoveries int
	bodies      [][]byte   // of recorded reports
	calls       []wireCall // of recorded reports, accepted or rejected, in order
}

type wireCall struct {
	TraceID  string  `json:"trace_id"`
	TokenJTI string  `json:"token_jti"`
	Action   string  `json:"action"`
	Resource string  `json:"resource"`
	Outcome  string  `json:"outcome"`
	Time     *string `json:"time"`
	Detail   string  `json:"detail"`
}

func newFake(t *testing.T) *fakeDeputy {
	t.Helper()
	f := &fakeDeputy{
		t:       t,
		id:      "svc:ledger/eu",
		secret:  "s3cr3t +&=%:",
		path:    "/calls",
		entered: make(chan struct{}, 1),
		arrived: make(chan struct{}, 1),
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeDeputy) endpoint() string { return f.srv.URL + f.path }

func (f *fakeDeputy) config() report.Config {
	return report.Config{Endpoint: f.endpoint(), ClientID: f.id, ClientSecret: f.secret}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int) {
	code := map[int]string{400: "invalid_request", 401: "invalid_client", 429: "slow_down", 503: "temporarily_unavailable"}[status]
	if code == "" {
		code = "server_error"
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": "scripted " + code})
}

// pop takes the next scripted status, 0 when there is none.
func pop(script *[]int) int {
	if len(*script) == 0 {
		return 0
	}
	s := (*script)[0]
	*script = (*script)[1:]
	return s
}

func (f *fakeDeputy) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/.well-known/oauth-authorization-server":
		f.mu.Lock()
		f.discoveries++
		s := pop(&f.discoverScript)
		f.mu.Unlock()
		if s != 0 {
			writeError(w, s)
			return
		}
		iss := f.issuer
		if iss == "" {
			iss = f.srv.URL
		}
		writeJSON(w, 200, map[string]any{"issuer": iss, "call_report_endpoint": f.srv.URL + f.path, "token_endpoint": f.srv.URL + "/token"})
	case r.Method == http.MethodPost && r.URL.Path == f.path:
		f.report(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeDeputy) report(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	s := pop(&f.script)
	f.mu.Unlock()
	signal(f.entered)
	if f.release != nil {
		select {
		case <-f.release:
		case <-r.Context().Done():
			return
		}
	}
	switch s {
	case 0:
	case abort:
		panic(http.ErrAbortHandler)
	default:
		writeError(w, s)
		return
	}

	// client_secret_basic: id and secret each form-urlencoded (RFC 6749 §2.3.1).
	id, secret, ok := r.BasicAuth()
	if ok {
		var e1, e2 error
		id, e1 = url.QueryUnescape(id)
		secret, e2 = url.QueryUnescape(secret)
		ok = e1 == nil && e2 == nil
	}
	if !ok || id != f.id || secret != f.secret {
		f.t.Errorf("fake deputy: bad client authentication %q", r.Header.Get("Authorization"))
		writeError(w, 401)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		f.t.Errorf("fake deputy: Content-Type %q", r.Header.Get("Content-Type"))
		writeError(w, 400)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		f.t.Errorf("fake deputy: body: %v", err)
		writeError(w, 400)
		return
	}
	var req struct {
		Calls []wireCall `json:"calls"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || len(req.Calls) == 0 || len(req.Calls) > 500 {
		f.t.Errorf("fake deputy: report of %d calls: %v", len(req.Calls), err)
		writeError(w, 400)
		return
	}
	type rejection struct {
		Index int    `json:"index"`
		Error string `json:"error"`
	}
	rejected := []rejection{}
	for i, c := range req.Calls {
		why := f.reject[c.TokenJTI]
		switch {
		case c.TokenJTI == "":
			why = "token_jti is missing"
		case c.Action == "":
			why = "action is missing"
		case c.Time != nil:
			if _, err := time.Parse(time.RFC3339Nano, *c.Time); err != nil {
				why = "time is not RFC 3339"
			}
		}
		if why != "" {
			rejected = append(rejected, rejection{i, why})
		}
	}
	f.mu.Lock()
	f.bodies = append(f.bodies, body)
	f.calls = append(f.calls, req.Calls...)
	f.mu.Unlock()
	signal(f.arrived)
	writeJSON(w, 200, map[string]any{"accepted": len(req.Calls) - len(rejected), "rejected": rejected})
}

// received returns the calls of the recorded reports, and their bodies.
func (f *fakeDeputy) received() ([]wireCall, [][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]wireCall(nil), f.calls...), append([][]byte(nil), f.bodies...)
}

func (f *fakeDeputy) counts() (requests, discoveries int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests, f.discoveries
}

// waitCalls waits until at least n calls were recorded.
func (f *fakeDeputy) waitCalls(t *testing.T, n int) []wireCall {
	t.Helper()
	deadline := time.After(guard)
	for {
		if calls, _ := f.received(); len(calls) >= n {
			return calls
		}
		select {
		case <-f.arrived:
		case <-deadline:
			calls, _ := f.received()
			t.Fatalf("fake deputy recorded %d calls, want %d", len(calls), n)
		}
	}
}

// newReporter starts a Reporter that is closed when the test ends.
func newReporter(t *testing.T, cfg report.Config) *report.Reporter {
	t.Helper()
	r, err := report.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

func flush(t *testing.T, r *report.Reporter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := r.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// errLog collects what OnError is told.
type errLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *errLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

// dropped sums the counts of the DropErrors told for reason.
func (l *errLog) dropped(reason error) int64 {
	var n int64
	for _, err := range l.all() {
		var de *report.DropError
		if errors.As(err, &de) && errors.Is(de, reason) {
			n += de.Count
		}
	}
	return n
}

// find returns the first error told that is a T.
func find[T error](l *errLog) (T, bool) {
	for _, err := range l.all() {
		var e T
		if errors.As(err, &e) {
			return e, true
		}
	}
	var zero T
	return zero, false
}

// calls returns n calls named jti-0 … jti-(n-1).
func calls(n int) []report.Call {
	out := make([]report.Call, n)
	for i := range out {
		out[i] = report.Call{TokenJTI: fmt.Sprintf("jti-%d", i), Action: "read", Resource: fmt.Sprintf("account/%d", i), Outcome: "ok"}
	}
	return out
}

func jtis(cs []wireCall) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.TokenJTI
	}
	return out
}

func wantJTIs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("jti-%d", i)
	}
	return out
}

// jwt returns an unsigned-looking JWS compact serialisation with claims.
func jwt(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"ES256","typ":"at+jwt"}`)) + "." + enc([]byte(claims)) + ".c2ln"
}
