package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/deputy-auth/deputy/oauth"
)

// wellKnown is the RFC 8414 §3 metadata path, appended to the issuer.
const wellKnown = "/.well-known/oauth-authorization-server"

// run is the sender goroutine: it gathers queued calls into batches and delivers a
// batch when it is full, when FlushInterval has passed since its first call, on
// Flush, and on Close. Batches are delivered one at a time, in order.
func (r *Reporter) run() {
	defer close(r.done)
	var batch []Call
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	send := func() {
		timer.Stop()
		if len(batch) > 0 {
			r.deliver(batch)
			batch = nil // the delivered slice may live on in a DeliveryError
		}
	}
	add := func(c Call) {
		batch = append(batch, c)
		if len(batch) == 1 {
			timer.Reset(r.flushInterval)
		}
		if len(batch) >= r.batchSize {
			send()
		}
	}
	for {
		select {
		case c := <-r.queue:
			add(c)
		case <-timer.C:
			send()
		case <-r.wake:
			r.tellDrops()
		case done := <-r.flushes:
			// Every call queued before Flush was called is in the queue now, or
			// already taken from it.
			for n := len(r.queue); n > 0; n-- {
				add(<-r.queue)
			}
			send()
			r.tellDrops()
			close(done)
		case <-r.stop:
			// Close set closed before stop: nothing enters the queue any more.
			for len(r.queue) > 0 {
				add(<-r.queue)
			}
			send()
			r.tellDrops()
			return
		}
	}
}

func (r *Reporter) tell(err error) {
	if r.onError != nil {
		r.onError(err)
	}
}

// tellDrops tells OnError of the drops counted since it last did, one DropError per
// reason.
func (r *Reporter) tellDrops() {
	for i := range r.untold {
		if n := r.untold[i].Swap(0); n > 0 {
			r.tell(&DropError{Err: dropReasons[i], Count: n})
		}
	}
}

// wireCall is one call of a report, as deputy reads it.
type wireCall struct {
	TokenJTI string `json:"token_jti"`
	Action   string `json:"action"`
	Resource string `json:"resource,omitempty"`
	Outcome  string `json:"outcome,omitempty"`
	Time     string `json:"time,omitempty"`
	Detail   string `json:"detail,omitempty"`
	TraceID  string `json:"trace_id,omitempty"`
}

// wireTime is RFC 3339 in UTC with microseconds, as deputy's examples have it.
const wireTime = "2006-01-02T15:04:05.000000Z07:00"

// wireResult is deputy's answer to an accepted report.
type wireResult struct {
	Accepted int `json:"accepted"`
	Rejected []struct {
		Index int    `json:"index"`
		Error string `json:"error"`
	} `json:"rejected"`
}

// outgoing is one report: its calls and the encoded body.
type outgoing struct {
	calls []Call
	body  []byte
}

// encodeReports encodes calls as reports of at most MaxBatchSize calls and maxBody
// bytes each, in order. A call that alone would exceed maxBody is left out and
// returned as a rejection.
func encodeReports(calls []Call) (reports []outgoing, tooLarge []Rejection) {
	const open, end = `{"calls":[`, `]}`
	var cur outgoing
	var buf bytes.Buffer
	finish := func() {
		if len(cur.calls) == 0 {
			return
		}
		buf.WriteString(end)
		cur.body = buf.Bytes()
		reports = append(reports, cur)
		cur, buf = outgoing{}, bytes.Buffer{}
	}
	for _, c := range calls {
		w := wireCall{TokenJTI: c.TokenJTI, Action: c.Action, Resource: c.Resource, Outcome: c.Outcome, Detail: c.Detail, TraceID: c.TraceID}
		if !c.Time.IsZero() {
			w.Time = c.Time.UTC().Format(wireTime)
		}
		b, err := json.Marshal(w)
		if err != nil {
			tooLarge = append(tooLarge, Rejection{Call: c, Reason: err.Error()})
			continue
		}
		if len(open)+len(b)+len(end) > maxBody {
			tooLarge = append(tooLarge, Rejection{Call: c, Reason: fmt.Sprintf("call too large for a report of at most %d bytes", maxBody)})
			continue
		}
		if len(cur.calls) > 0 && (buf.Len()+1+len(b)+len(end) > maxBody || len(cur.calls) >= MaxBatchSize) {
			finish()
		}
		if len(cur.calls) == 0 {
			buf.WriteString(open)
		} else {
			buf.WriteByte(',')
		}
		buf.Write(b)
		cur.calls = append(cur.calls, c)
	}
	finish()
	return reports, tooLarge
}

// deliver sends a batch as one or more reports, in order.
func (r *Reporter) deliver(calls []Call) {
	reports, tooLarge := encodeReports(calls)
	if len(tooLarge) > 0 {
		r.rejected.Add(int64(len(tooLarge)))
		r.tell(&RejectedError{Rejections: tooLarge})
	}
	for _, o := range reports {
		r.send(o)
	}
}

// send delivers one report, retrying with exponential backoff while the failure may
// pass, and accounts for its calls.
func (r *Reporter) send(o outgoing) {
	wait := minBackoff
	var (
		attempts, status int
		err              error
	)
	for {
		if r.ctx.Err() != nil {
			break
		}
		attempts++
		var retry bool
		status, retry, err = r.attempt(o)
		if err == nil {
			return
		}
		if !retry || attempts > r.maxRetries || !r.sleep(wait) {
			break
		}
		wait = min(2*wait, maxBackoff)
	}
	if r.ctx.Err() != nil {
		if err == nil {
			err = fmt.Errorf("%w before the report was sent", context.Cause(r.ctx))
		} else {
			err = fmt.Errorf("%w before the report was delivered (last attempt: %v)", context.Cause(r.ctx), err)
		}
	}
	r.failed.Add(int64(len(o.calls)))
	r.tell(&DeliveryError{Calls: o.calls, Attempts: attempts, Status: status, Err: err})
}

// sleep waits d, or less if the Reporter's context ends; it reports whether the whole
// wait passed.
func (r *Reporter) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.ctx.Done():
		return false
	}
}

// retryable is whether an answer with status may succeed if the request is repeated.
func retryable(status int) bool {
	return status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout
}

// attempt sends a report once. A 2xx answer delivers it (err nil); otherwise retry
// says whether sending it again may succeed.
func (r *Reporter) attempt(o outgoing) (status int, retry bool, err error) {
	endpoint, retry, err := r.callEndpoint()
	if err != nil {
		return 0, retry, err
	}
	req, err := http.NewRequestWithContext(r.ctx, http.MethodPost, endpoint, bytes.NewReader(o.body))
	if err != nil {
		return 0, false, fmt.Errorf("report: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(r.clientID), url.QueryEscape(r.clientSecret))
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, true, fmt.Errorf("report: sending to the call report endpoint: %w", err)
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	status = resp.StatusCode
	switch {
	case status >= 200 && status < 300:
		r.accepted(o, body, readErr)
		return status, false, nil
	case readErr != nil:
		return status, retryable(status), fmt.Errorf("report: call report endpoint answered %s: %w", resp.Status, readErr)
	}
	return status, retryable(status), answerError(resp.Status, body)
}

// answerError is the error of a refused report: the *oauth.Error deputy gave (RFC
// 6749 §5.2), or an error naming the status when the body holds none.
func answerError(status string, body []byte) error {
	var oe struct {
		Code        string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &oe) == nil && oe.Code != "" {
		return &oauth.Error{Code: oauth.Code(oe.Code), Description: oe.Description}
	}
	return fmt.Errorf("report: call report endpoint answered %s", status)
}

// accepted accounts for a report deputy took: its calls are sent except those it
// rejected by index. An unreadable answer counts all as sent, and is told.
func (r *Reporter) accepted(o outgoing, body []byte, readErr error) {
	var res wireResult
	err := readErr
	if err == nil {
		err = json.Unmarshal(body, &res)
	}
	if err != nil {
		r.sent.Add(int64(len(o.calls)))
		r.tell(fmt.Errorf("report: deputy accepted a report of %d call(s), but its answer is unreadable: %w", len(o.calls), err))
		return
	}
	seen := make(map[int]bool, len(res.Rejected))
	var rejected []Rejection
	for _, x := range res.Rejected {
		if x.Index < 0 || x.Index >= len(o.calls) || seen[x.Index] {
			continue
		}
		seen[x.Index] = true
		rejected = append(rejected, Rejection{Call: o.calls[x.Index], Reason: x.Error})
	}
	r.sent.Add(int64(len(o.calls) - len(rejected)))
	if len(rejected) > 0 {
		r.rejected.Add(int64(len(rejected)))
		r.tell(&RejectedError{Rejections: rejected})
	}
}

// callEndpoint returns the configured or discovered call report endpoint. A failed
// discovery is not remembered: the next attempt tries again; retry says whether the
// failure may pass.
func (r *Reporter) callEndpoint() (endpoint string, retry bool, err error) {
	if r.endpoint != "" {
		return r.endpoint, false, nil
	}
	where := strings.TrimSuffix(r.issuer, "/") + wellKnown
	req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, where, nil)
	if err != nil {
		return "", false, fmt.Errorf("report: discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return "", true, fmt.Errorf("report: discovery: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return "", true, fmt.Errorf("report: discovery: reading %s: %w", where, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", retryable(resp.StatusCode), fmt.Errorf("report: discovery: %s answered %s", where, resp.Status)
	}
	var md struct {
		Issuer             string `json:"issuer"`
		CallReportEndpoint string `json:"call_report_endpoint"`
	}
	if err := json.Unmarshal(body, &md); err != nil {
		return "", false, fmt.Errorf("report: discovery: %s: %w", where, err)
	}
	if md.Issuer != r.issuer {
		return "", false, fmt.Errorf("report: discovery: %s names issuer %q, want %q", where, md.Issuer, r.issuer)
	}
	if !httpURL(md.CallReportEndpoint) {
		return "", false, fmt.Errorf("report: discovery: %s has no usable call_report_endpoint (%q)", where, md.CallReportEndpoint)
	}
	r.endpoint = md.CallReportEndpoint
	return r.endpoint, false, nil
}
