package grant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"time"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/jsonx"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// Request is one token request, parsed at the edge.
type Request struct {
	Endpoint    string // "token", "introspection", "revocation"
	Form        url.Values
	Credentials client.Credentials
	RequestID   string
	RemoteAddr  string
	Now         time.Time
	// Binding is the key the request proved possession of: a valid DPoP proof's
	// jkt (RFC 9449 §4.3), or the TLS client certificate's x5t#S256 (RFC 8705 §3)
	// for a client whose tokens are certificate-bound; nil for a bearer request.
	// Tokens the grant issues are bound to it.
	Binding *oauth.Confirmation
	// BindingErr is why the edge refused the request's proof of possession (a DPoP
	// proof that fails RFC 9449 §4.3, a replayed jti, a missing nonce). The
	// Dispatcher refuses the request with it once the client is authenticated, so
	// that the denial is recorded with the client.
	BindingErr error

	// Prove, when set, checks the request's proof of possession (a DPoP proof)
	// and sets Binding or BindingErr. Token calls it once the client is
	// authenticated and admitted by Limit, so that a request refused before
	// costs no proof check.
	Prove func()
	// Limit, when set, is told how the request's client authentication ended,
	// before anything else is done for the request (limits.rate, see Limit).
	Limit Limit

	// authenticated is set once the Dispatcher authenticated the request's client
	// (clientID): denials of requests without it are recorded in aggregate
	// (denials.go).
	authenticated bool
	clientID      string
}

// ClientID is the id of the client the Dispatcher authenticated for the request,
// "" while none is (before authentication, or when it failed).
func (r *Request) ClientID() string { return r.clientID }

// Limit applies a rate limit once a request's client authentication is decided,
// so that a client's allowance is only spent by requests that proved to be that
// client's (a claimed client id with a wrong secret spends its sender's instead).
// Admit is called when the client authenticated; an error it returns is the
// answer, as it is, and the Dispatcher records nothing for it (the Limit records
// its refusals, in aggregate). Unauthenticated is called when the request is
// refused without an authenticated client. Both are called on the request's
// goroutine, at most once per request.
//
// Blocked is called before authentication with the client id the request
// claims: it refuses (an error that is the answer) only when that client has
// already emptied its own allowance, spending nothing — so a client over its
// limit costs no assertion signature check or replay record, and whoever merely
// claims its id can empty nobody's allowance.
type Limit interface {
	Blocked(claimedID string) error
	Admit(c *client.Client) error
	Unauthenticated()
}

// Grant issues tokens for one grant type. Handle runs only for an authenticated
// client that may use the grant. It fills ev with what it learns — subject, parent
// token, rule, issued token — also when it fails, so that the denial is recorded
// with it; the Dispatcher sets the event's type, decision and reason and records it.
type Grant interface {
	Handle(ctx context.Context, req *Request, c *client.Client, ev *store.AuditEvent) (*Issued, error)
}

// Issued is what a grant hands out: the response, and the audit events of tokens
// it issues besides the one ev describes (a refresh token, an ID token). The
// Dispatcher records ev and every one of Events before the response leaves.
type Issued struct {
	Response oauth.TokenResponse
	Events   []*store.AuditEvent
	// Undo, if set, is called when the events cannot be recorded and the response
	// is withheld: it gives back the code or refresh token the grant spent.
	Undo func(ctx context.Context)
}

// Permitter is an optional ability of a Grant: it reports whether the client may use
// the grant at all beyond its grant_types (e.g. a token-exchange policy names it).
type Permitter interface {
	Permits(c *client.Client) bool
}

// Authenticator authenticates the client of a request.
type Authenticator interface {
	Authenticate(ctx context.Context, cr *client.Credentials, now time.Time) (*client.Client, error)
}

// Recorder commits audit events durably.
type Recorder interface {
	Record(ctx context.Context, e *store.AuditEvent) error
	RecordAll(ctx context.Context, events ...*store.AuditEvent) error
}

// Dispatcher routes token requests to their Grant.
type Dispatcher struct {
	clients Authenticator
	audit   Recorder
	grants  map[string]Grant
	log     *slog.Logger
	denials *audit.Aggregator // of requests whose client did not authenticate
}

// NewDispatcher returns a Dispatcher over the given grants, keyed by grant type.
func NewDispatcher(clients Authenticator, rec Recorder, grants map[string]Grant, log *slog.Logger) *Dispatcher {
	return &Dispatcher{clients: clients, audit: rec, grants: grants, log: log, denials: audit.NewAggregator(rec)}
}

// Reconfigure returns a Dispatcher over other clients and grants that records
// through d's recorder and sums up unauthenticated denials with d's (a reload of
// the configuration file): summaries counted before and after are one, and
// either Dispatcher's FlushDenials records them.
func (d *Dispatcher) Reconfigure(clients Authenticator, grants map[string]Grant) *Dispatcher {
	return &Dispatcher{clients: clients, audit: d.audit, grants: grants, log: d.log, denials: d.denials}
}

// GrantTypes lists the supported grant types.
func (d *Dispatcher) GrantTypes() []string {
	out := make([]string, 0, len(d.grants))
	for g := range d.grants {
		out = append(out, g)
	}
	return out
}

// Token handles a token request: authenticate, check the grant, run it, record the
// outcome, answer. The returned error is an *oauth.Error (or wraps one).
func (d *Dispatcher) Token(ctx context.Context, req *Request) (*oauth.TokenResponse, error) {
	ev := &store.AuditEvent{RequestID: req.RequestID, RemoteAddr: req.RemoteAddr, ClientID: req.Credentials.ClaimedID()}
	gt, gtErr := single(req.Form, "grant_type")
	ev.Detail = detail(gt)

	if err := req.blocked(); err != nil {
		return nil, err
	}
	c, err := d.authenticate(ctx, req)
	if err != nil {
		return nil, d.denyUnauthenticated(ctx, req, ev, err)
	}
	if err := req.admit(c); err != nil {
		return nil, err
	}
	if req.Prove != nil {
		req.Prove()
	}
	ev.ClientID = c.ID
	requestAttributes(ctx, c.ID, gt, d.grants[gt] != nil)
	if gtErr != nil {
		return nil, d.deny(ctx, ev, gtErr)
	}
	g, ok := d.grants[gt]
	if !ok {
		return nil, d.deny(ctx, ev, oauth.UnsupportedGrantType("grant_type "+gt+" is not supported", nil))
	}
	if !c.HasGrant(gt) {
		return nil, d.deny(ctx, ev, oauth.UnauthorizedClient("client may not use grant_type "+gt,
			fmt.Errorf("%s is not in client %q's grant_types", gt, c.ID)))
	}
	if p, ok := g.(Permitter); ok && !p.Permits(c) {
		return nil, d.deny(ctx, ev, oauth.UnauthorizedClient("client may not use grant_type "+gt,
			fmt.Errorf("no policy permits client %q to use %s", c.ID, gt)))
	}
	if err := proofOfPossession(req, c); err != nil {
		return nil, d.deny(ctx, ev, err)
	}
	if req.Binding == nil {
		// A client with certificate-bound tokens (RFC 8705 §3): bound to the
		// request's TLS client certificate, which it must present. A DPoP proof,
		// when sent, binds instead.
		if req.Binding, err = c.CertificateBinding(&req.Credentials); err != nil {
			return nil, d.deny(ctx, ev, err)
		}
	}
	issued, err := g.Handle(ctx, req, c, ev)
	if err != nil {
		return nil, d.deny(ctx, ev, err)
	}
	ev.Decision = store.DecisionAllow
	events := append([]*store.AuditEvent{ev}, issued.Events...)
	for _, e := range issued.Events {
		e.Decision = store.DecisionAllow
		e.RequestID, e.RemoteAddr = ev.RequestID, ev.RemoteAddr
		if e.ClientID == "" {
			e.ClientID = ev.ClientID
		}
		if e.Detail == "" {
			// The request's Detail, without the binding of ev's token: a cnf on
			// record names the key of the event's own token.
			e.Detail = withoutKey(ev.Detail, detailCnf)
		}
	}
	if err := d.audit.RecordAll(ctx, events...); err != nil {
		if issued.Undo != nil {
			issued.Undo(ctx)
		}
		// Without its record the token must not leave, and what it was issued
		// for is given back (Undo). A revocation that raced this
		// exchange is refused like any revoked subject token (RFC 8693 §2.2.2); one
		// that raced a code or refresh token (a replay, a reuse) like any revoked
		// grant (RFC 6749 §5.2).
		switch {
		case errors.Is(err, token.ErrRevoked) && gt == oauth.GrantTokenExchange:
			err = oauth.InvalidRequest("subject_token is revoked", err)
		case errors.Is(err, token.ErrRevoked):
			err = oauth.InvalidGrant("the grant was revoked", err)
		default:
			err = oauth.TemporarilyUnavailable("the audit trail cannot be written", err)
		}
		issued := ev.TokenJTI
		ev.TokenJTI, ev.TokenExpires = "", time.Time{}
		ev.Detail = withdrawn(ev.Detail, gt, issued)
		return nil, d.deny(ctx, ev, err)
	}
	return &issued.Response, nil
}

// proofOfPossession refuses a request whose proof the edge refused, and one of a
// client with dpop_bound_access_tokens that carries no DPoP proof (RFC 9449 §5.2).
func proofOfPossession(req *Request, c *client.Client) error {
	if req.BindingErr != nil {
		return req.BindingErr
	}
	if c.DPoPBoundAccessTokens && (req.Binding == nil || req.Binding.JKT == "") {
		return oauth.InvalidDPoPProof("a DPoP proof is required",
			fmt.Errorf("client %q has dpop_bound_access_tokens and sent no DPoP proof", c.ID))
	}
	return nil
}

// Refuse records the denial of a request refused before it reached a grant (a
// malformed body, failed client authentication at introspection or revocation) and
// returns the protocol error to answer with. Unless Authenticate authenticated the
// request's client, the denial is recorded in aggregate (see denials.go).
func (d *Dispatcher) Refuse(ctx context.Context, req *Request, err error) error {
	ev := &store.AuditEvent{RequestID: req.RequestID, RemoteAddr: req.RemoteAddr, ClientID: req.Credentials.ClaimedID()}
	ev.Detail = detailWith("", "endpoint", req.Endpoint)
	if !req.authenticated {
		return d.denyUnauthenticated(ctx, req, ev, err)
	}
	return d.deny(ctx, ev, err)
}

// Authenticate authenticates the client of a non-token request (introspection,
// revocation, call reports); a failure is recorded as a denial. A refusal of the
// request's Limit is returned as it is.
func (d *Dispatcher) Authenticate(ctx context.Context, req *Request) (*client.Client, error) {
	if err := req.blocked(); err != nil {
		return nil, err
	}
	c, err := d.authenticate(ctx, req)
	if err != nil {
		return nil, d.Refuse(ctx, req, err)
	}
	if err := req.admit(c); err != nil {
		return nil, err
	}
	return c, nil
}

// blocked asks req's Limit, if any, whether the client req claims is over its
// allowance already.
func (req *Request) blocked() error {
	if req.Limit == nil {
		return nil
	}
	if id := req.Credentials.ClaimedID(); id != "" {
		return req.Limit.Blocked(id)
	}
	return nil
}

// admit asks req's Limit, if any, whether its authenticated client c may go on.
func (req *Request) admit(c *client.Client) error {
	if req.Limit == nil {
		return nil
	}
	return req.Limit.Admit(c)
}

// authenticate authenticates req's client. A client id that is not UTF-8 or holds
// a character oauth.UnsafeRune refuses (a control character, a line separator, a
// bidirectional override) names no client deputy can have: it is a failed client
// authentication (RFC 6749 §5.2 invalid_client), refused before any lookup.
func (d *Dispatcher) authenticate(ctx context.Context, req *Request) (*client.Client, error) {
	for _, id := range []string{req.Credentials.BasicID, req.Credentials.FormID} {
		if !oauth.SafeText(id) {
			return nil, oauth.InvalidClient("client_id holds control characters",
				fmt.Errorf("client id %.64q… is not UTF-8 or holds control or bidirectional formatting characters", id))
		}
	}
	c, err := d.clients.Authenticate(ctx, &req.Credentials, req.Now)
	if err != nil {
		return nil, err
	}
	req.authenticated, req.clientID = true, c.ID
	return c, nil
}

// deny records a refused request and returns the protocol error to answer with.
func (d *Dispatcher) deny(ctx context.Context, ev *store.AuditEvent, err error) error {
	oe := oauth.AsError(err)
	fill(ev, err)
	if rerr := d.audit.Record(ctx, ev); rerr != nil {
		return d.unrecorded(ev, oe, rerr)
	}
	return oe
}

// fill makes ev the denial of a request refused with err. The denial of an
// exchange keeps what each policy of the client made of the request in its
// Detail, under "policies" (design §12, README "Audit trail").
func fill(ev *store.AuditEvent, err error) {
	oe := oauth.AsError(err)
	var den *exchange.Denial
	if errors.As(err, &den) {
		if den.Rule != "" {
			ev.Rule = den.Rule
		}
		ev.Detail = audit.WithPolicies(ev.Detail, policyResults(den.Policies))
	}
	ev.Type = store.EventDenied
	ev.Decision = store.DecisionDeny
	ev.Reason = string(oe.Code)
	if r := oe.Reason(); r != "" {
		ev.Reason += ": " + r
	}
	ev.TokenJTI, ev.TokenExpires = "", time.Time{}
	ev.ID, ev.Seq, ev.Hash, ev.PrevHash = "", 0, nil, nil
}

// policyResults is what each policy made of a denied exchange, as its audit
// record keeps it.
func policyResults(rs []exchange.RuleResult) []audit.PolicyResult {
	if len(rs) == 0 {
		return nil
	}
	out := make([]audit.PolicyResult, len(rs))
	for i, r := range rs {
		out[i] = audit.PolicyResult{Policy: r.Rule, Check: string(r.Check), Reason: r.Reason}
	}
	return out
}

// unrecorded is the answer to a request refused with oe whose denial ev could not
// be recorded.
func (d *Dispatcher) unrecorded(ev *store.AuditEvent, oe *oauth.Error, rerr error) error {
	d.log.Error("audit: cannot record denial", "request_id", ev.RequestID, "reason", ev.Reason, "err", rerr)
	if oe.Code != oauth.CodeInvalidClient {
		// Nothing was issued; say the server is unavailable rather than pretend
		// the denial is on record.
		return oauth.TemporarilyUnavailable("the audit trail cannot be written", rerr)
	}
	return oe
}

// detail is the Detail a request's record starts with. deputy answers the
// jwt-bearer grant only as the on-behalf-of flow, so its records, a refusal
// before the grant runs too, carry "grant": "obo" (obo.go).
func detail(grantType string) string {
	if grantType == oauth.GrantJWTBearer {
		return oboDetail("")
	}
	return detailWith(grantType, "", "")
}

// withdrawn is the Detail of the denial recorded for a token withheld because its
// record could not be written: the request's Detail — the subject token's binding
// (subject_cnf), the exchange mode — without the cnf of the token that never left
// (a denial names no cnf of its own), and the jti withdrawn.
func withdrawn(detail, grantType, jti string) string {
	m := map[string]json.RawMessage{}
	if detail == "" || json.Unmarshal([]byte(detail), &m) != nil {
		return detailWith(grantType, "withdrawn_jti", jti)
	}
	delete(m, detailCnf)
	m["withdrawn_jti"], _ = json.Marshal(jti)
	b, _ := json.Marshal(m)
	return string(b)
}

// withoutKey returns the Detail JSON object detail without key; detail itself when
// it has no such key (or is not a JSON object).
func withoutKey(detail, key string) string {
	m := map[string]json.RawMessage{}
	if json.Unmarshal([]byte(detail), &m) != nil {
		return detail
	}
	if _, ok := m[key]; !ok {
		return detail
	}
	delete(m, key)
	if len(m) == 0 {
		return ""
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func detailWith(grantType, k, v string) string {
	// As encoding/json writes map[string]string{"grant_type": grantType, k: v}
	// without its empty values (k's value wins a clash): members sorted by name.
	// Written on every request, hence by hand (TestDetailWithAsMarshal).
	var names, values [2]string
	n := 0
	if grantType != "" {
		names[n], values[n] = "grant_type", grantType
		n++
	}
	switch {
	case k == "":
	case n == 1 && k == names[0]:
		values[0] = v
	default:
		names[n], values[n] = k, v
		n++
	}
	if n == 0 {
		return ""
	}
	if n == 2 && names[1] < names[0] {
		names[0], names[1] = names[1], names[0]
		values[0], values[1] = values[1], values[0]
	}
	b := make([]byte, 0, 16+len(names[0])+len(values[0])+len(names[1])+len(values[1]))
	for i := range n {
		if i == 0 {
			b = append(b, '{')
		} else {
			b = append(b, ',')
		}
		b = jsonx.AppendString(b, names[i])
		b = append(b, ':')
		b = jsonx.AppendString(b, values[i])
	}
	return string(append(b, '}'))
}

// A parameter sent without a value is treated as if it were omitted (RFC 6749 §3.1,
// §3.2): single, optional and repeated skip empty values before counting, so that
// "scope=" is no scope and "scope=&scope=read" is scope=read. The HTTP edge drops
// them too; reading them the same way here keeps a Request built anywhere else
// meaning the same.

// single returns the one value of a required, non-repeatable parameter
// (RFC 6749 §3.2: parameters must not be included more than once).
func single(form url.Values, name string) (string, error) {
	v, err := optional(form, name)
	if err == nil && v == "" {
		return "", oauth.InvalidRequest("missing parameter "+name, nil)
	}
	return v, err
}

// optional returns the value of a non-repeatable parameter, "" when absent.
func optional(form url.Values, name string) (string, error) {
	v := ""
	for _, x := range form[name] {
		switch {
		case x == "":
		case v != "":
			return "", oauth.InvalidRequest("parameter "+name+" is repeated", nil)
		default:
			v = x
		}
	}
	return v, nil
}

// repeated returns every non-empty value of a repeatable parameter.
func repeated(form url.Values, name string) []string {
	vs := form[name]
	if !slices.Contains(vs, "") {
		return vs
	}
	return slices.DeleteFunc(slices.Clone(vs), func(v string) bool { return v == "" })
}
