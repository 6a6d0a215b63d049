package grant_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// eventsFrom returns the events recorded for requests from remote.
func eventsFrom(t *testing.T, f *fixture, remote string) []store.AuditEvent {
	t.Helper()
	all, err := f.st.Query(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []store.AuditEvent
	for _, e := range all {
		if e.RemoteAddr == remote {
			out = append(out, e)
		}
	}
	return out
}

type aggregated struct {
	Aggregated struct {
		Count      int                `json:"count"`
		Errors     map[oauth.Code]int `json:"errors"`
		FirstEvent string             `json:"first_event"`
		First      time.Time          `json:"first"`
		Last       time.Time          `json:"last"`
	} `json:"aggregated"`
}

func TestUnauthenticatedDenials(t *testing.T) {
	ctx := context.Background()
	unknown := func(f *fixture, remote string, at time.Time) *grant.Request {
		r := f.request("web", "grant_type", oauth.GrantClientCredentials)
		r.Credentials.BasicID, r.RemoteAddr, r.Now = "nobody", remote, at
		return r
	}

	t.Run("ok/first-at-once-the-rest-summed-up", func(t *testing.T) {
		f := newFixture(t, nil)
		const remote = "192.0.2.7:1"
		for i := range 5 {
			_, err := f.disp.Token(ctx, unknown(f, remote, f.now.Add(time.Duration(i)*time.Second)))
			wantCode(t, err, oauth.CodeInvalidClient)
			if evs := eventsFrom(t, f, remote); len(evs) != 1 {
				t.Fatalf("after %d denials %d events, want the first only", i+1, len(evs))
			}
		}
		// Another window: the first one is summed up, the new one starts with a record.
		later := f.now.Add(grant.DenialWindow + time.Second)
		_, err := f.disp.Token(ctx, unknown(f, remote, later))
		wantCode(t, err, oauth.CodeInvalidClient)
		evs := eventsFrom(t, f, remote)
		if len(evs) != 3 {
			t.Fatalf("%d events, want first, summary, first of the next window: %+v", len(evs), evs)
		}
		sum := evs[1]
		var d aggregated
		if err := json.Unmarshal([]byte(sum.Detail), &d); err != nil {
			t.Fatal(err)
		}
		want := "invalid_client: 5 denied unauthenticated requests from " + remote + ` for client "nobody" between `
		if sum.Type != store.EventDenied || sum.ClientID != "nobody" || !strings.HasPrefix(sum.Reason, want) ||
			d.Aggregated.Count != 5 || d.Aggregated.Errors[oauth.CodeInvalidClient] != 5 || d.Aggregated.FirstEvent != evs[0].ID ||
			!d.Aggregated.First.Equal(f.now) || !d.Aggregated.Last.Equal(f.now.Add(4*time.Second)) {
			t.Errorf("summary %+v\ndetail %+v", sum, d)
		}
		if evs[2].RequestID == "" || strings.Contains(evs[2].Reason, "denied unauthenticated requests") {
			t.Errorf("the next window's first denial is %+v", evs[2])
		}
		// Close the last window: one denial, nothing to sum up.
		if err := f.disp.FlushDenials(ctx, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if evs := eventsFrom(t, f, remote); len(evs) != 3 {
			t.Errorf("a window of one denial was summed up: %+v", evs[3:])
		}
	})

	t.Run("ok/flush-sums-up-ended-windows-only", func(t *testing.T) {
		f := newFixture(t, nil)
		for _, remote := range []string{"192.0.2.8:1", "192.0.2.9:1"} {
			for range 3 {
				f.disp.Token(ctx, unknown(f, remote, f.now))
			}
		}
		f.disp.Token(ctx, unknown(f, "192.0.2.9:1", f.now.Add(30*time.Second))) // its window is still open at now+59s
		if err := f.disp.FlushDenials(ctx, f.now.Add(59*time.Second)); err != nil {
			t.Fatal(err)
		}
		if n := len(eventsFrom(t, f, "192.0.2.8:1")); n != 1 {
			t.Errorf("%d events before the window ended, want 1", n)
		}
		if err := f.disp.FlushDenials(ctx, f.now.Add(grant.DenialWindow)); err != nil {
			t.Fatal(err)
		}
		for remote, n := range map[string]int{"192.0.2.8:1": 2, "192.0.2.9:1": 2} {
			if got := len(eventsFrom(t, f, remote)); got != n {
				t.Errorf("%s: %d events, want %d", remote, got, n)
			}
		}
	})

	t.Run("ok/one-window-per-claimed-client-a-shared-one-beyond", func(t *testing.T) {
		f := newFixture(t, nil)
		const remote = "192.0.2.10:1"
		for i := range 40 {
			r := unknown(f, remote, f.now)
			r.Credentials.BasicID = "nobody-" + strings.Repeat("x", i)
			f.disp.Token(ctx, r)
		}
		f.disp.FlushDenials(ctx, time.Time{})
		evs := eventsFrom(t, f, remote)
		// 16 client ids get their own window, the 24 others share one: 17 first
		// denials and one summary of 24.
		if len(evs) != 18 || !strings.HasPrefix(evs[17].Reason, "invalid_client: 24 denied") {
			t.Errorf("%d events, last %q", len(evs), evs[len(evs)-1].Reason)
		}
	})

	t.Run("ok/authenticated-denials-are-each-recorded", func(t *testing.T) {
		f := newFixture(t, nil)
		const remote = "192.0.2.11:1"
		for range 3 {
			r := f.request("web", "grant_type", "password")
			r.RemoteAddr = remote
			_, err := f.disp.Token(ctx, r)
			wantCode(t, err, oauth.CodeUnsupportedGrantType)
		}
		r := f.request("api")
		r.RemoteAddr = remote
		if _, err := f.disp.Authenticate(ctx, r); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			f.disp.Refuse(ctx, r, oauth.InvalidRequest("malformed report", nil))
		}
		if n := len(eventsFrom(t, f, remote)); n != 5 {
			t.Errorf("%d events for 5 denials of authenticated clients", n)
		}
	})

	t.Run("ok/refused-before-authentication-is-aggregated", func(t *testing.T) {
		f := newFixture(t, nil)
		const remote = "192.0.2.12:1"
		for range 3 {
			r := f.request("web")
			r.RemoteAddr = remote
			f.disp.Refuse(ctx, r, oauth.InvalidRequest("malformed body", nil))
		}
		if n := len(eventsFrom(t, f, remote)); n != 1 {
			t.Errorf("%d events, want the first", n)
		}
	})

	// A client id no client can have: refused as a failed client authentication,
	// before any lookup, and never stored raw.
	for _, tc := range []struct{ name, id string }{
		{"fail/esc", "web\x1b[2J"},
		{"fail/cr-lf", "web\r\nforged line"},
		{"fail/nul", "web\x00"},
		{"fail/tab", "web\tx"},
		{"fail/del", "web\x7f"},
		{"fail/c1-csi", "web\u009b31m"},
		{"fail/line-separator", "web\u2028x"},
		{"fail/bidi-override", "web\u202eppa"},
		{"fail/bidi-isolate", "web\u2066x"},
		{"fail/invalid-utf8", "web\xff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			for _, form := range []bool{false, true} {
				r := f.request("web", "grant_type", oauth.GrantClientCredentials)
				if form {
					r.Credentials.Basic, r.Credentials.BasicID, r.Credentials.FormID = false, "", tc.id
				} else {
					r.Credentials.BasicID = tc.id
				}
				r.RemoteAddr = "192.0.2.13:1"
				_, err := f.disp.Token(ctx, r)
				wantCode(t, err, oauth.CodeInvalidClient)
				if d := oauth.AsError(err).Description; d != "client_id holds control characters" {
					t.Errorf("description %q", d)
				}
			}
		})
	}
	t.Run("ok/non-ascii-letters-are-a-client-id", func(t *testing.T) {
		f := newFixture(t, nil)
		r := f.request("web", "grant_type", oauth.GrantClientCredentials)
		r.Credentials.BasicID = "José-app"
		_, err := f.disp.Token(ctx, r)
		wantCode(t, err, oauth.CodeInvalidClient)
		if d := oauth.AsError(err).Description; d == "client_id holds control characters" {
			t.Errorf("a printable client id refused as %q", d)
		}
	})
}
