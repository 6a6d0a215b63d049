package report

import (
	"fmt"
)

// DropError tells OnError that Count calls were dropped before being queued, for the
// reason Err (ErrQueueFull, ErrNoToken, ErrNoJTI or ErrInvalidCall). Drops are
// coalesced: one DropError may stand for many.
type DropError struct {
	Err   error
	Count int64
}

func (e *DropError) Error() string {
	return fmt.Sprintf("%v: %d call(s) dropped", e.Err, e.Count)
}

// Unwrap returns the reason, for errors.Is.
func (e *DropError) Unwrap() error { return e.Err }

// DeliveryError tells OnError that a report was lost with its calls: deputy refused
// it for good (a 4xx answer: then Err is the *oauth.Error it gave, when it gave one),
// it was still failing after MaxRetries retries, or Close gave up on it. The calls are
// counted in Stats().Failed.
type DeliveryError struct {
	Calls    []Call
	Attempts int // requests made; 0 when none could be
	Status   int // HTTP status of the last answer; 0 when there was none
	Err      error
}

func (e *DeliveryError) Error() string {
	return fmt.Sprintf("report: %d call(s) lost after %d attempt(s): %v", len(e.Calls), e.Attempts, e.Err)
}

// Unwrap returns the cause, for errors.Is and errors.As (*oauth.Error).
func (e *DeliveryError) Unwrap() error { return e.Err }

// RejectedError tells OnError that calls of an accepted report were refused one by
// one (deputy's "rejected" list: an unknown jti, a token not addressed to this
// client, a field too long, a time out of range), or were too large to be sent at
// all. They are not retried; they are counted in Stats().Rejected.
type RejectedError struct {
	Rejections []Rejection
}

// Rejection is one refused call and deputy's reason.
type Rejection struct {
	Call   Call
	Reason string
}

func (e *RejectedError) Error() string {
	if len(e.Rejections) == 0 {
		return "report: no call rejected"
	}
	first := e.Rejections[0]
	return fmt.Sprintf("report: %d call(s) rejected; first, %s on %q: %s",
		len(e.Rejections), first.Call.Action, first.Call.TokenJTI, first.Reason)
}
