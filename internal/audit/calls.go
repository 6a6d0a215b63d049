package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// Limits of call reports (design §7: services report their own calls so the trail
// reaches the last API).
const (
	MaxCallsPerReport = 500
	maxCallField      = 1000
	maxCallDetail     = 4000
	// refusedCallPrefix is how much of a refused call the trail keeps (see
	// refusedDetail): enough to recognise it, never the whole of it.
	refusedCallPrefix = 256
	callPast          = 24 * time.Hour  // a reported time may be this old ...
	callFuture        = 5 * time.Minute // ... or this far ahead of deputy's clock
)

// Call is one call a service reports: what it did with a token it received (or
// was issued), named by the token's jti.
type Call struct {
	TokenJTI string    `json:"token_jti"`
	Action   string    `json:"action"`
	Resource string    `json:"resource,omitempty"`
	Outcome  string    `json:"outcome,omitempty"`
	Detail   string    `json:"detail,omitempty"`
	Time     time.Time `json:"time,omitzero"` // when the service handled it; zero = when reported
	// TraceID is the W3C trace id of the request the service handled (32
	// lowercase hex digits), which the call's event keeps instead of the trace of
	// the report that carried it; "" = none.
	TraceID string `json:"trace_id,omitempty"`
}

// Rejection names a call of a report that was refused, by its index.
type Rejection struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}

// CallResult is the answer to a report.
type CallResult struct {
	Accepted int         `json:"accepted"`
	Rejected []Rejection `json:"rejected"`
}

// Reporter records the calls services report. A call is linked to the token it
// names: the event carries that token's subject, issuer, actor chain and audiences
// (so the trail answers "api3 checked fraud for alice via api2 and api1") and its
// ParentJTI is the token's jti, so Trace shows it under that token.
type Reporter struct {
	Log    store.AuditLog
	Writer *Writer
	// AudienceClients maps an audience id to the client that is that service.
	AudienceClients map[string]string
}

// Origin is where a report came from, for its events.
type Origin struct {
	ClientID, RequestID, RemoteAddr string
}

// Record checks each call and records every one — accepted ones as call.reported,
// refused ones as request.denied with their reason — in one durable commit before
// it returns. A call is refused when a field is missing or too long, its time is
// implausible, its token is unknown to the trail, or the token was neither issued
// to the reporting client nor addressed to it.
func (r *Reporter) Record(ctx context.Context, o Origin, calls []Call, now time.Time) (CallResult, error) {
	res := CallResult{Rejected: []Rejection{}}
	events := make([]*store.AuditEvent, 0, len(calls))
	issuers := map[string]*store.AuditEvent{}
	for i, c := range calls {
		detail, _ := json.Marshal(callDetail{Action: c.Action, Resource: c.Resource, Outcome: c.Outcome, Detail: c.Detail, Time: c.Time})
		ev := &store.AuditEvent{
			ClientID: o.ClientID, RequestID: o.RequestID, RemoteAddr: o.RemoteAddr,
			ParentJTI: c.TokenJTI, Detail: string(detail),
		}
		iss, why, err := r.check(ctx, o.ClientID, c, issuers, now)
		if err != nil {
			return CallResult{}, err
		}
		if why != "" {
			ev.Type, ev.Decision, ev.Reason = store.EventDenied, store.DecisionDeny, "call report refused: "+why
			whole, _ := json.Marshal(c)
			ev.Detail = refusedDetail(why, whole)
			if !callField(c.TokenJTI) {
				ev.ParentJTI = ""
			}
			res.Rejected = append(res.Rejected, Rejection{Index: i, Error: why})
		} else {
			ev.Type, ev.Decision, ev.Reason = store.EventCallReported, store.DecisionAllow, summary(c)
			ev.Subject, ev.SubjectIssuer, ev.Actors = iss.Subject, iss.SubjectIssuer, iss.Actors
			ev.Audiences, ev.Scopes = iss.Audiences, iss.Scopes
			ev.TraceID = c.TraceID // the call's own trace; "" takes the report's (RecordAll)
			res.Accepted++
		}
		events = append(events, ev)
	}
	if len(events) == 0 {
		return res, nil
	}
	if err := r.Writer.RecordAll(ctx, events...); err != nil {
		return CallResult{}, err
	}
	return res, nil
}

// refusedDetail is the Detail of a refused call: why it was refused, the size of
// the call (as JSON) and its first refusedCallPrefix bytes — never the whole call,
// which its sender may have made as large and as full of characters JSON must
// escape as the report's limit allows.
//
//	{"refused":{"why":"detail is too long or not UTF-8","bytes":24061,"prefix":"{\"action\":\"read\",…"}}
func refusedDetail(why string, call []byte) string {
	b, _ := json.Marshal(map[string]any{"refused": map[string]any{
		"why": why, "bytes": len(call), "prefix": store.Truncate(store.CleanText(string(call)), refusedCallPrefix),
	}})
	return string(b)
}

type callDetail struct {
	Action   string    `json:"action,omitempty"`
	Resource string    `json:"resource,omitempty"`
	Outcome  string    `json:"outcome,omitempty"`
	Detail   string    `json:"detail,omitempty"`
	Time     time.Time `json:"time,omitzero"`
}

// summary is the one-line description of an accepted call: "read account/42: ok".
func summary(c Call) string {
	s := c.Action
	if c.Resource != "" {
		s += " " + c.Resource
	}
	if c.Outcome != "" {
		s += ": " + c.Outcome
	}
	return s
}

// check returns the issuance event of the call's token, or why the call is refused.
func (r *Reporter) check(ctx context.Context, clientID string, c Call, cache map[string]*store.AuditEvent, now time.Time) (*store.AuditEvent, string, error) {
	for _, f := range []struct{ name, v string }{
		{"token_jti", c.TokenJTI}, {"action", c.Action}, {"resource", c.Resource}, {"outcome", c.Outcome},
	} {
		if !callField(f.v) {
			return nil, f.name + " is too long, not UTF-8 or holds control characters", nil
		}
	}
	switch {
	case c.TokenJTI == "":
		return nil, "token_jti is missing", nil
	case c.Action == "":
		return nil, "action is missing", nil
	case len(c.Detail) > maxCallDetail || !utf8.ValidString(c.Detail):
		return nil, "detail is too long or not UTF-8", nil
	case c.TraceID != "" && !ValidTraceID(c.TraceID):
		return nil, "trace_id is not a W3C trace id (32 lowercase hex digits, not all zero)", nil
	case !c.Time.IsZero() && (c.Time.Before(now.Add(-callPast)) || c.Time.After(now.Add(callFuture))):
		return nil, fmt.Sprintf("time %s is more than %s before or %s after deputy's clock", c.Time.UTC().Format(time.RFC3339), callPast, callFuture), nil
	}
	iss, ok := cache[c.TokenJTI]
	if !ok {
		evs, err := r.Log.EventsByToken(ctx, c.TokenJTI)
		if err != nil {
			return nil, "", fmt.Errorf("audit: call report: %w", err)
		}
		for i := range evs {
			if isIssuance(&evs[i]) {
				iss = &evs[i]
				break
			}
		}
		cache[c.TokenJTI] = iss
	}
	if iss == nil {
		return nil, "no token with this token_jti was issued", nil
	}
	if !r.concerns(clientID, iss) {
		return nil, "the token was neither issued to nor addressed to the reporting client", nil
	}
	return iss, "", nil
}

// concerns: the token was issued to the client, or is addressed to it (its id or an
// audience whose client it is) — the tokens a service holds.
func (r *Reporter) concerns(clientID string, iss *store.AuditEvent) bool {
	if iss.ClientID == clientID || slices.Contains(iss.Audiences, clientID) {
		return true
	}
	for _, a := range iss.Audiences {
		if r.AudienceClients[a] == clientID {
			return true
		}
	}
	return false
}

// callField reports whether a token_jti, action, resource or outcome can be
// recorded as it is: at most maxCallField bytes of UTF-8 without the characters
// oauth.UnsafeRune refuses (control characters, line separators, bidi overrides).
func callField(v string) bool { return len(v) <= maxCallField && oauth.SafeText(v) }
