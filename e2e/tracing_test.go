package e2e

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/deputy-auth/deputy/sdk"
	"github.com/deputy-auth/deputy/sdk/exchange"
	"github.com/deputy-auth/deputy/sdk/verify"
)

// otlpReceiver is an OTLP/HTTP trace receiver: it decodes every POST /v1/traces
// as the official ExportTraceServiceRequest protobuf and keeps the spans.
type otlpReceiver struct {
	*httptest.Server
	t     *testing.T
	mu    sync.Mutex
	spans []gotSpan
}

// gotSpan is one received span and the service.name of its resource.
type gotSpan struct {
	service string
	*tracepb.Span
}

func (s gotSpan) traceID() string  { return hex.EncodeToString(s.TraceId) }
func (s gotSpan) spanID() string   { return hex.EncodeToString(s.SpanId) }
func (s gotSpan) parentID() string { return hex.EncodeToString(s.ParentSpanId) }

// attrs are the span's attributes, each value as text.
func (s gotSpan) attrs() map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes {
		m[kv.Key] = anyValue(kv.Value)
	}
	return m
}

func anyValue(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	default:
		return v.String()
	}
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{t: t}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *otlpReceiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		r.t.Errorf("OTLP receiver: %s %s, want POST /v1/traces", req.Method, req.URL.Path)
		http.NotFound(w, req)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		r.t.Errorf("OTLP receiver: Content-Type %q", ct)
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = gz
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var export coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &export); err != nil {
		r.t.Errorf("OTLP receiver: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rs := range export.ResourceSpans {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				service = anyValue(kv.Value)
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				r.spans = append(r.spans, gotSpan{service: service, Span: sp})
			}
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// received returns the spans received so far.
func (r *otlpReceiver) received() []gotSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]gotSpan(nil), r.spans...)
}

// waitFor waits (up to 30 s) until ok holds for the spans received, and returns them.
func (r *otlpReceiver) waitFor(t *testing.T, what string, ok func([]gotSpan) bool) []gotSpan {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		spans := r.received()
		if ok(spans) {
			return spans
		}
		if time.Now().After(deadline) {
			for _, s := range spans {
				t.Logf("span %s %q trace %s span %s parent %s %v", s.service, s.Name, s.traceID(), s.spanID(), s.parentID(), s.attrs())
			}
			t.Fatalf("the OTLP receiver did not get %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inTrace returns the spans of trace id (hex) named name ("" for any).
func inTrace(spans []gotSpan, id, name string) []gotSpan {
	var out []gotSpan
	for _, s := range spans {
		if s.traceID() == id && (name == "" || s.Name == name) {
			out = append(out, s)
		}
	}
	return out
}

// childrenOf returns the names of the spans whose parent is parent, by name.
func childrenOf(spans []gotSpan, parent gotSpan) map[string]gotSpan {
	out := map[string]gotSpan{}
	for _, s := range spans {
		if s.parentID() == parent.spanID() && s.traceID() == parent.traceID() {
			out[s.Name] = s
		}
	}
	return out
}

// noSecrets fails if any name, attribute, event or status of the spans holds one
// of the secrets, or a JWT.
func noSecrets(t *testing.T, spans []gotSpan, secrets ...string) {
	t.Helper()
	check := func(where, v string) {
		if strings.Contains(v, "eyJ") {
			t.Errorf("%s holds a JWT: %q", where, v)
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(v, s) {
				t.Errorf("%s holds a secret or token: %q", where, v)
			}
		}
	}
	for _, s := range spans {
		check("span name", s.Name)
		check("span status of "+s.Name, s.GetStatus().GetMessage())
		for k, v := range s.attrs() {
			check("attribute "+k+" of "+s.Name, v)
		}
		for _, e := range s.Events {
			check("event of "+s.Name, e.Name)
			for _, kv := range e.Attributes {
				check("event attribute "+kv.Key+" of "+s.Name, anyValue(kv.Value))
			}
		}
	}
}

// serviceTracer is a service's own OpenTelemetry SDK, exporting each span to
// the receiver as it ends.
func serviceTracer(t *testing.T, rcv *otlpReceiver, name string) trace.Tracer {
	t.Helper()
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(rcv.URL+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(exp)),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name))))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp.Tracer("e2e/" + name)
}

// TestTracingTwoHops is issue 14's real components test of traces: deputy
// exports to a real OTLP/HTTP receiver (OTEL_EXPORTER_OTLP_ENDPOINT), and two
// services on the Go SDK run one trace through it. Service A (api1, its own
// OpenTelemetry SDK) starts a span and calls service B through sdk/exchange's
// client, which exchanges A's token at deputy and sends both requests with A's
// traceparent; service B (api2) behind sdk/verify's middleware continues the
// trace in a span of its own and exchanges again. One trace id runs through all;
// each of deputy's server spans is the child of its caller's span, and the
// token request's steps are children of the server span; no attribute holds a
// token or a secret.
func TestTracingTwoHops(t *testing.T) {
	rcv := newOTLPReceiver(t)
	s := startEnv(t, bankConfig,
		"OTEL_EXPORTER_OTLP_ENDPOINT="+rcv.URL, "OTEL_BSP_SCHEDULE_DELAY=50", "OTEL_SERVICE_NAME=deputy-e2e")
	ctx := context.Background()
	tracerA, tracerB := serviceTracer(t, rcv, "service-a"), serviceTracer(t, rcv, "service-b")

	// Service B: api2, behind sdk/verify; it exchanges the token it received for
	// one to api3, within a span of its own.
	vB, err := verify.New(ctx, verify.Config{Issuer: s.issuer, Audience: "https://api2.example"})
	if err != nil {
		t.Fatal(err)
	}
	xB, err := exchange.New(exchange.Config{Issuer: s.issuer, ClientID: "api2", ClientSecret: "api2-secret"})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		t1, t2 string
	)
	serviceB := httptest.NewServer(vB.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := tracerB.Start(r.Context(), "service-b book", trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		raw, _ := sdk.TokenFromContext(ctx)
		tok, err := xB.Exchange(ctx, raw, "https://api3.example", "ledger:read")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		mu.Lock()
		t1, t2 = raw, tok.AccessToken
		mu.Unlock()
		_, _ = io.WriteString(w, "booked")
	})))
	defer serviceB.Close()

	// Service A: api1, with web-app's token T0; its client exchanges T0 for a
	// token to api2 and calls B with it.
	t0 := s.token("web-app", "web-secret", clientCredentials("")).str("access_token")
	xA, err := exchange.New(exchange.Config{Issuer: s.issuer, ClientID: "api1", ClientSecret: "api1-secret"})
	if err != nil {
		t.Fatal(err)
	}
	ctxA, spanA := tracerA.Start(ctx, "service-a pay", trace.WithSpanKind(trace.SpanKindServer))
	req, err := http.NewRequestWithContext(sdk.ContextWithToken(ctxA, t0), http.MethodPost, serviceB.URL+"/book", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := xA.Client("https://api2.example", "ledger:read").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	spanA.End()
	if resp.StatusCode != 200 {
		t.Fatalf("service B answered %s: %s", resp.Status, body)
	}
	traceID := spanA.SpanContext().TraceID().String()

	spans := rcv.waitFor(t, "both token exchanges' spans, all four steps each, and B's span", func(spans []gotSpan) bool {
		servers := inTrace(spans, traceID, "POST /token")
		if len(servers) != 2 || len(inTrace(spans, traceID, "service-b book")) != 1 {
			return false
		}
		for _, sv := range servers {
			if len(childrenOf(spans, sv)) < 4 {
				return false
			}
		}
		return true
	})

	a := inTrace(spans, traceID, "service-a pay")
	b := inTrace(spans, traceID, "service-b book")
	if len(a) != 1 || len(b) != 1 {
		t.Fatalf("service spans: A %d, B %d", len(a), len(b))
	}
	if b[0].parentID() != a[0].spanID() {
		t.Errorf("B's span has parent %s, want A's span %s (sdk/exchange sends A's traceparent, sdk/verify reads it)", b[0].parentID(), a[0].spanID())
	}
	parents := map[string]gotSpan{"api1": a[0], "api2": b[0]}
	rules := map[string]string{"api1": "api1-to-api2", "api2": "api2-to-api3"}
	for _, sv := range inTrace(spans, traceID, "POST /token") {
		at := sv.attrs()
		client := at["deputy.client_id"]
		caller, ok := parents[client]
		if !ok {
			t.Errorf("server span of client %q", client)
			continue
		}
		if sv.parentID() != caller.spanID() {
			t.Errorf("deputy's span for %s has parent %s, want its caller's span %s", client, sv.parentID(), caller.spanID())
		}
		if sv.service != "deputy-e2e" {
			t.Errorf("deputy's span has service.name %q, want OTEL_SERVICE_NAME's deputy-e2e", sv.service)
		}
		if sv.Kind != tracepb.Span_SPAN_KIND_SERVER {
			t.Errorf("deputy's span kind %v", sv.Kind)
		}
		for k, want := range map[string]string{
			"http.request.method": "POST", "http.route": "/token", "http.response.status_code": "200",
			"deputy.grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
		} {
			if at[k] != want {
				t.Errorf("%s's server span: %s = %q, want %q", client, k, at[k], want)
			}
		}
		if sv.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
			t.Errorf("%s's server span has status error", client)
		}
		kids := childrenOf(spans, sv)
		for name, want := range map[string]map[string]string{
			"subject.verify":  {"deputy.token.role": "subject", "deputy.token.type": "access_token", "deputy.token.issuer": "self"},
			"exchange.decide": {"deputy.decision": "allow", "deputy.rule": rules[client], "deputy.exchange.mode": "delegation"},
			"token.sign":      {"deputy.token.jwt_type": "at+jwt", "deputy.token.algorithm": "ES256"},
			"audit.commit":    {"deputy.audit.events": "1", "deputy.audit.event_type": ""},
		} {
			k, ok := kids[name]
			if !ok {
				t.Errorf("%s's token request has no %s span under the server span; children %v", client, name, kids)
				continue
			}
			got := k.attrs()
			for key, v := range want {
				if v != "" && got[key] != v {
					t.Errorf("%s's %s: %s = %q, want %q", client, name, key, got[key], v)
				}
			}
			if name == "audit.commit" && got["deputy.audit.batch_size"] == "" {
				t.Errorf("%s's audit.commit has no batch size: %v", client, got)
			}
			if k.StartTimeUnixNano < sv.StartTimeUnixNano || k.EndTimeUnixNano > sv.EndTimeUnixNano {
				t.Errorf("%s's %s lies outside its server span", client, name)
			}
		}
	}
	mu.Lock()
	noSecrets(t, spans, t0, t1, t2, "web-secret", "api1-secret", "api2-secret")
	mu.Unlock()
}

// TestTracingTraceparent: with tracing.endpoint (the configuration key) and the
// batch span processor's delay far beyond the test, every endpoint honours a
// valid traceparent (its trace id, its span as parent), a malformed one is
// ignored (a fresh trace, no error), a denial is a span with status error and
// its OAuth error code (an exchange no policy allows: its decision span too), OTEL_TRACES_SAMPLER is honoured (always_on records a
// request whose traceparent is not sampled) — and the spans reach the receiver
// because deputy exports them when it stops.
func TestTracingTraceparent(t *testing.T) {
	rcv := newOTLPReceiver(t)
	cfg := bankConfig + "tracing:\n  endpoint: " + rcv.URL + "\n"
	s := startEnv(t, cfg, "OTEL_BSP_SCHEDULE_DELAY=3600000", "OTEL_TRACES_SAMPLER=always_on")

	const sid = "00f067aa0ba902b7"
	tp := func(n int, flags string) (traceID, header string) {
		traceID = fmt.Sprintf("%032x", 0x4bf92f3577b34da6+n)
		return traceID, "00-" + traceID + "-" + sid + "-" + flags
	}
	send := func(method, path, authorization, traceparent string, form url.Values) int {
		t.Helper()
		req, err := http.NewRequest(method, s.issuer+path, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		req.Header.Set("traceparent", traceparent)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}

	tokenTrace, h := tp(1, "01")
	if st := send("POST", "/token", basic("web-app", "web-secret"), h, clientCredentials("")); st != 200 {
		t.Fatalf("token request: %d", st)
	}
	deniedTrace, h := tp(2, "01")
	if st := send("POST", "/token", basic("web-app", "wrong-secret"), h, clientCredentials("")); st != 401 {
		t.Fatalf("token request with a wrong secret: %d", st)
	}
	// An exchange no policy allows (api1 to api3): the decision span says deny.
	t0 := s.token("web-app", "web-secret", clientCredentials("")).str("access_token")
	refusedTrace, h := tp(5, "01")
	if st := send("POST", "/token", basic("api1", "api1-secret"), h, exchangeForm(t0, "audience", "https://api3.example")); st < 400 {
		t.Fatalf("exchange api1 → api3: %d, want a refusal", st)
	}
	unsampledTrace, h := tp(3, "00")
	if st := send("GET", "/healthz", "", h, nil); st != 200 {
		t.Fatalf("healthz: %d", st)
	}
	// A malformed traceparent (upper-case hex, W3C Trace Context §3.2.2.3) is
	// ignored, not refused.
	malformedTrace, _ := tp(4, "01")
	if st := send("GET", "/jwks", "", "00-"+strings.ToUpper(malformedTrace)+"-"+sid+"-01", nil); st != 200 {
		t.Fatalf("jwks with a malformed traceparent: %d", st)
	}
	endpoints := []struct {
		method, path, route, auth string
		form                      url.Values
		status                    int
	}{
		{"GET", "/.well-known/openid-configuration", "/.well-known/openid-configuration", "", nil, 200},
		{"GET", "/jwks", "/jwks", "", nil, 200},
		{"GET", "/readyz", "/readyz", "", nil, 200},
		{"GET", "/metrics", "/metrics", "", nil, 200},
		{"POST", "/introspect", "/introspect", basic("api1", "api1-secret"), url.Values{"token": {"not-a-token"}}, 200},
		{"POST", "/revoke", "/revoke", basic("web-app", "web-secret"), url.Values{"token": {"not-a-token"}}, 200},
		{"GET", "/nowhere", "", "", nil, 404},
	}
	endpointTraces := map[string]int{}
	for i, e := range endpoints {
		id, h := tp(10+i, "01")
		endpointTraces[id] = i
		if st := send(e.method, e.path, e.auth, h, e.form); st != e.status {
			t.Fatalf("%s %s: %d, want %d", e.method, e.path, st, e.status)
		}
	}

	s.stop() // the spans leave now: the batch delay is an hour
	spans := rcv.waitFor(t, "the spans exported at shutdown", func(spans []gotSpan) bool {
		return len(inTrace(spans, tokenTrace, "audit.commit")) == 1 && len(inTrace(spans, deniedTrace, "POST /token")) == 1
	})

	sv := inTrace(spans, tokenTrace, "POST /token")
	if len(sv) != 1 || sv[0].parentID() != sid {
		t.Fatalf("token request with traceparent: server spans %d, parent %v", len(sv), sv)
	}
	if sv[0].service != "deputy" {
		t.Errorf("service.name %q, want deputy", sv[0].service)
	}
	kids := childrenOf(spans, sv[0])
	for _, name := range []string{"token.sign", "audit.commit"} {
		if _, ok := kids[name]; !ok {
			t.Errorf("client_credentials has no %s span under its server span; children %v", name, kids)
		}
	}
	if at := sv[0].attrs(); at["deputy.client_id"] != "web-app" || at["deputy.grant_type"] != "client_credentials" {
		t.Errorf("server span attributes %v", at)
	}

	den := inTrace(spans, deniedTrace, "POST /token")
	if len(den) != 1 {
		t.Fatalf("denied request: %d server spans", len(den))
	}
	if st := den[0].GetStatus(); st.GetCode() != tracepb.Status_STATUS_CODE_ERROR || st.GetMessage() != "invalid_client" {
		t.Errorf("denied request's span status %v, want error invalid_client", st)
	}
	if at := den[0].attrs(); at["oauth.error"] != "invalid_client" || at["http.response.status_code"] != "401" || at["deputy.client_id"] != "" {
		t.Errorf("denied request's span attributes %v (an unauthenticated client is not named)", at)
	}

	ref := inTrace(spans, refusedTrace, "POST /token")
	if len(ref) != 1 {
		t.Fatalf("refused exchange: %d server spans", len(ref))
	}
	code := ref[0].attrs()["oauth.error"]
	if code == "" || ref[0].GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR || ref[0].GetStatus().GetMessage() != code {
		t.Errorf("refused exchange's server span: status %v, attributes %v", ref[0].GetStatus(), ref[0].attrs())
	}
	if dec, ok := childrenOf(spans, ref[0])["exchange.decide"]; !ok {
		t.Errorf("refused exchange has no exchange.decide span")
	} else if at := dec.attrs(); at["deputy.decision"] != "deny" || at["oauth.error"] != code || dec.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("refused exchange's decision span: status %v, attributes %v", dec.GetStatus(), at)
	}

	if u := inTrace(spans, unsampledTrace, "GET /healthz"); len(u) != 1 {
		t.Errorf("OTEL_TRACES_SAMPLER=always_on: the unsampled request has %d spans, want 1", len(u))
	}

	var jwks []gotSpan
	for _, sp := range spans {
		if _, ok := endpointTraces[sp.traceID()]; sp.Name == "GET /jwks" && !ok {
			jwks = append(jwks, sp)
		}
	}
	if len(jwks) != 1 {
		t.Fatalf("GET /jwks with a malformed traceparent: %d spans", len(jwks))
	}
	if jwks[0].traceID() == malformedTrace || len(jwks[0].ParentSpanId) != 0 {
		t.Errorf("the malformed traceparent was used: trace %s parent %s", jwks[0].traceID(), jwks[0].parentID())
	}
	if st := jwks[0].attrs()["http.response.status_code"]; st != "200" {
		t.Errorf("GET /jwks with a malformed traceparent: status %s", st)
	}

	for id, i := range endpointTraces {
		e := endpoints[i]
		name := e.method
		if e.route != "" {
			name += " " + e.route
		}
		got := inTrace(spans, id, name)
		if len(got) != 1 {
			t.Errorf("%s %s: %d spans named %q in its trace", e.method, e.path, len(got), name)
			continue
		}
		at := got[0].attrs()
		if got[0].parentID() != sid || at["http.route"] != e.route || at["http.response.status_code"] != fmt.Sprint(e.status) {
			t.Errorf("%s %s: parent %s, attributes %v", e.method, e.path, got[0].parentID(), at)
		}
	}
	noSecrets(t, spans, t0, "web-secret", "api1-secret", "wrong-secret")
}
