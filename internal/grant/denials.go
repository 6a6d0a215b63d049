package grant

import (
	"context"
	"time"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// DenialWindow is how long the denials of unauthenticated requests from one
// address for one claimed client and error code are counted together
// (audit.Aggregator): the first is recorded at once, the others summed up.
const DenialWindow = audit.DenialWindow

// FlushDenials records the summaries of the windows of unauthenticated denials
// that are over by now; with a zero now, of every open window (when the server
// stops). The server calls it every minute.
func (d *Dispatcher) FlushDenials(ctx context.Context, now time.Time) error {
	return d.denials.Flush(ctx, now)
}

// denyUnauthenticated records the denial of a request whose client did not
// authenticate, in aggregate: the first of its window at once, the others only
// counted (audit.Aggregator).
func (d *Dispatcher) denyUnauthenticated(ctx context.Context, req *Request, ev *store.AuditEvent, err error) error {
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	if req.Limit != nil {
		req.Limit.Unauthenticated()
	}
	oe := oauth.AsError(err)
	fill(ev, err)
	if _, rerr := d.denials.Deny(ctx, ev, string(oe.Code), now); rerr != nil {
		return d.unrecorded(ev, oe, rerr)
	}
	return oe
}
