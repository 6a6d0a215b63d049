package report

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/deputy-auth/deputy/sdk"
)

// Defaults and bounds of Config.
const (
	DefaultTimeout       = 10 * time.Second // of the default HTTPClient
	DefaultBatchSize     = 100
	MaxBatchSize         = 500 // calls deputy accepts in one report
	DefaultFlushInterval = time.Second
	DefaultQueueSize     = 10000
	DefaultMaxRetries    = 5
)

// Bounds of the call report endpoint and of the retries.
const (
	maxBody    = 1 << 20 // bytes of one report, and of an answer read
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Config configures a Reporter.
type Config struct {
	// Issuer is deputy's issuer URL. Unless Endpoint is set, the call report endpoint
	// is read from Issuer+"/.well-known/oauth-authorization-server" (RFC 8414 §3,
	// member call_report_endpoint) before the first report is sent, and the
	// metadata's issuer must equal Issuer (RFC 8414 §3.3). A failed discovery fails
	// that batch like a failed send and is tried again for the next.
	Issuer string
	// Endpoint is deputy's call report endpoint; when set, no discovery is made.
	Endpoint string
	// ClientID and ClientSecret are this service's client credentials, sent as
	// client_secret_basic: each form-urlencoded, then HTTP Basic (RFC 6749 §2.3.1).
	ClientID, ClientSecret string
	// HTTPClient sends the reports; default a client with a DefaultTimeout timeout.
	HTTPClient *http.Client
	// BatchSize is the most calls sent in one report; default DefaultBatchSize, at
	// most MaxBatchSize. A batch is also split so that no report exceeds 1 MiB.
	BatchSize int
	// FlushInterval: a partial batch is sent this long after its first call was
	// queued; default DefaultFlushInterval.
	FlushInterval time.Duration
	// QueueSize bounds the calls waiting for the sender; default DefaultQueueSize.
	// Report never blocks: when the queue is full the call is dropped and counted.
	QueueSize int
	// MaxRetries is how many times a report is sent again after a 5xx or 429 answer
	// or a transport failure before its calls are given up; default
	// DefaultMaxRetries, negative for none. The waits double from 100ms up to 5s.
	MaxRetries int
	// OnError, when set, is told of calls that were lost (a *DeliveryError), refused
	// one by one by deputy (a *RejectedError) or dropped before being queued (a
	// *DropError, drops coalesced). It is called from the sending goroutine, one call
	// at a time; it should return quickly, since sending waits for it.
	OnError func(error)
}

// Call is one call a service handled, named by the jti of the access token it
// received.
type Call struct {
	TokenJTI string    // required: the jti claim of the access token the service received
	Action   string    // required: what the service did, e.g. "read"
	Resource string    // optional: what it did it to, e.g. "account/42"
	Outcome  string    // optional: e.g. "ok", "denied", "not_found"
	Detail   string    // optional: free text
	Time     time.Time // when it was handled; zero means the time of Report
	// TraceID is the W3C trace id (32 lowercase hex digits) of the request the
	// service handled, so that the call's audit event is found in that trace;
	// ReportRequest takes it from the request's context. Empty: the event has the
	// trace of the report that carries it.
	TraceID string
}

// Stats counts what became of the calls given to a Reporter. Once everything queued
// has been sent (after Flush or Close), Sent+Rejected+Dropped+Failed is the number of
// calls given to Report and ReportRequest.
type Stats struct {
	Sent     int64 // accepted by deputy
	Rejected int64 // refused by deputy one by one (e.g. unknown jti), or too large to send; not retried
	Dropped  int64 // never queued: queue full, reporter closed, missing token, jti or action
	Failed   int64 // lost with their report: refused for good (400, 401, …) or retries exhausted
}

// Errors that a *DropError wraps, and that Flush returns after Close.
var (
	ErrClosed      = errors.New("report: reporter closed")
	ErrQueueFull   = errors.New("report: queue full")
	ErrNoToken     = errors.New("report: the request's context carries no access token (see sdk.ContextWithToken)")
	ErrNoJTI       = errors.New("report: the access token has no readable jti claim")
	ErrInvalidCall = errors.New("report: call without token_jti or action")
)

// dropReasons are the reasons a call is dropped before being queued, indexed by the
// reason constants below; Reporter.untold counts drops by reason.
var dropReasons = [...]error{ErrQueueFull, ErrNoToken, ErrNoJTI, ErrInvalidCall}

const (
	dropQueueFull = iota
	dropNoToken
	dropNoJTI
	dropInvalidCall
)

// Reporter queues calls and sends them to deputy's call report endpoint from one
// background goroutine. Its methods are safe for concurrent use.
type Reporter struct {
	client                 *http.Client
	clientID, clientSecret string
	issuer                 string
	endpoint               string // configured or discovered; read and written by the sender only
	batchSize              int
	flushInterval          time.Duration
	maxRetries             int
	onError                func(error)

	// mu orders enqueueing against Close: once closed is set under the write lock, no
	// call enters queue, so the sender's final drain sees all of them.
	mu      sync.RWMutex
	closed  bool
	queue   chan Call
	flushes chan chan struct{} // Flush requests; closed by the sender when done
	wake    chan struct{}      // one slot: there are drops to tell OnError
	stop    chan struct{}      // closed by the first Close
	done    chan struct{}      // closed when the sender has returned
	// ctx bounds every request and wait of the sender; Close cancels it when its own
	// context ends first.
	ctx    context.Context
	cancel context.CancelCauseFunc

	sent, rejected, dropped, failed atomic.Int64
	untold                          [len(dropReasons)]atomic.Int64 // drops not yet told to OnError
}

// New returns a Reporter for cfg and starts its sender goroutine; Close stops it. It
// makes no request: discovery, when needed, happens before the first report is sent.
func New(cfg Config) (*Reporter, error) {
	var errs []error
	for _, c := range []struct {
		bad bool
		msg string
	}{
		{cfg.ClientID == "", "ClientID is required"},
		{cfg.ClientSecret == "", "ClientSecret is required"},
		{cfg.Issuer == "" && cfg.Endpoint == "", "Issuer or Endpoint is required"},
		{cfg.Issuer != "" && !httpURL(cfg.Issuer), "Issuer must be an absolute http or https URL"},
		{cfg.Endpoint != "" && !httpURL(cfg.Endpoint), "Endpoint must be an absolute http or https URL"},
		{cfg.BatchSize < 0 || cfg.BatchSize > MaxBatchSize, "BatchSize must be 0 (default) to 500"},
		{cfg.FlushInterval < 0, "FlushInterval must not be negative"},
		{cfg.QueueSize < 0, "QueueSize must not be negative"},
	} {
		if c.bad {
			errs = append(errs, errors.New("report: config: "+c.msg))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	r := &Reporter{
		client:        cfg.HTTPClient,
		clientID:      cfg.ClientID,
		clientSecret:  cfg.ClientSecret,
		issuer:        cfg.Issuer,
		endpoint:      cfg.Endpoint,
		batchSize:     cmp.Or(cfg.BatchSize, DefaultBatchSize),
		flushInterval: cmp.Or(cfg.FlushInterval, DefaultFlushInterval),
		maxRetries:    cmp.Or(cfg.MaxRetries, DefaultMaxRetries),
		onError:       cfg.OnError,
		queue:         make(chan Call, cmp.Or(cfg.QueueSize, DefaultQueueSize)),
		flushes:       make(chan chan struct{}),
		wake:          make(chan struct{}, 1),
		stop:          make(chan struct{}),
		done:          make(chan struct{}),
	}
	if r.client == nil {
		r.client = &http.Client{Timeout: DefaultTimeout}
	}
	r.maxRetries = max(r.maxRetries, 0)
	r.ctx, r.cancel = context.WithCancelCause(context.Background())
	go r.run()
	return r, nil
}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Fragment == ""
}

// Report queues c for sending and returns at once. A call without TokenJTI or Action,
// or one that finds the queue full or the Reporter closed, is dropped and counted in
// Stats().Dropped; OnError is told (except after Close, when the sender is gone).
func (r *Reporter) Report(c Call) {
	if c.TokenJTI == "" || c.Action == "" {
		r.drop(dropInvalidCall)
		return
	}
	if c.Time.IsZero() {
		c.Time = time.Now()
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		r.dropped.Add(1)
		return
	}
	select {
	case r.queue <- c:
	default:
		r.drop(dropQueueFull)
	}
}

// ReportRequest reports a call on the access token the request being served carries:
// it reads the token from ctx (sdk.TokenFromContext) and takes its jti claim from the
// JWT payload WITHOUT verifying the token, which the verify middleware has already
// done. A context without a token, or a token without a readable jti (not a JWS
// compact serialisation, e.g. an encrypted or opaque token), drops the call: it is
// counted in Stats().Dropped and OnError is told (ErrNoToken, ErrNoJTI).
func (r *Reporter) ReportRequest(ctx context.Context, action, resource, outcome string) {
	raw, ok := sdk.TokenFromContext(ctx)
	if !ok {
		r.drop(dropNoToken)
		return
	}
	jti, err := unsafeJTI(raw)
	if err != nil {
		r.drop(dropNoJTI)
		return
	}
	var traceID string
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		traceID = sc.TraceID().String()
	}
	r.Report(Call{TokenJTI: jti, Action: action, Resource: resource, Outcome: outcome, TraceID: traceID})
}

// drop counts a call dropped for reason and wakes the sender to tell OnError.
func (r *Reporter) drop(reason int) {
	r.dropped.Add(1)
	r.untold[reason].Add(1)
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Flush sends every call queued before it was called, and waits until deputy has
// answered for them (or they were given up) or ctx ends. What became of them is in
// Stats and told to OnError; Flush returns only ctx.Err(), or ErrClosed after Close.
func (r *Reporter) Flush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case r.flushes <- done:
	case <-r.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops taking calls, sends everything queued, and stops the sender. If ctx ends
// first, the sending is abandoned (the calls not yet delivered count as Failed), the
// sender stops, and Close returns ctx.Err(). Calls reported after Close are dropped.
// Closing again returns nil once the sender has stopped.
func (r *Reporter) Close(ctx context.Context) error {
	r.mu.Lock()
	first := !r.closed
	r.closed = true
	r.mu.Unlock()
	if first {
		close(r.stop)
	}
	defer r.cancel(ErrClosed)
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		r.cancel(ErrClosed)
		<-r.done
		return ctx.Err()
	}
}

// Stats returns the counts so far.
func (r *Reporter) Stats() Stats {
	return Stats{
		Sent:     r.sent.Load(),
		Rejected: r.rejected.Load(),
		Dropped:  r.dropped.Load(),
		Failed:   r.failed.Load(),
	}
}
