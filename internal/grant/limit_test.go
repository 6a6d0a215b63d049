package grant_test

import (
	"context"
	"errors"
	"testing"

	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/oauth"
)

// limitLog is a grant.Limit that notes what it was told and refuses every
// client with refuse (when set).
type limitLog struct {
	admitted        []string
	unauthenticated int
	refuse          error
}

func (l *limitLog) Admit(c *client.Client) error {
	l.admitted = append(l.admitted, c.ID)
	return l.refuse
}

func (l *limitLog) Unauthenticated() { l.unauthenticated++ }

func (l *limitLog) Blocked(string) error { return nil }

var errOverRate = errors.New("over the rate")

// TestDispatcherLimit: a request's Limit hears of its client once the client
// authenticated, of a failure otherwise — exactly once either way — and a refusal
// of the Limit is the answer as it is, with nothing recorded or issued and no
// proof of possession checked.
func TestDispatcherLimit(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	for _, tc := range []struct {
		name   string
		req    func() *grant.Request
		call   func(*grant.Request) error // Token or Authenticate
		refuse error
		// want
		admitted        []string
		unauthenticated int
		err             error  // the Limit's, returned as it is
		code            string // else the OAuth error ("" for none)
		events          int
		proved          int // calls of req.Prove
	}{
		{
			name: "ok/token-admitted", req: func() *grant.Request { return f.request("web", "grant_type", oauth.GrantClientCredentials) },
			call: func(r *grant.Request) error { _, err := f.disp.Token(ctx, r); return err }, admitted: []string{"web"}, events: 1, proved: 1,
		},
		{
			name: "fail/token-refused-by-the-limit", req: func() *grant.Request { return f.request("web", "grant_type", oauth.GrantClientCredentials) },
			call:   func(r *grant.Request) error { _, err := f.disp.Token(ctx, r); return err },
			refuse: errOverRate, admitted: []string{"web"}, err: errOverRate,
		},
		{
			name: "fail/token-wrong-secret-is-unauthenticated", req: func() *grant.Request {
				r := f.request("web", "grant_type", oauth.GrantClientCredentials)
				r.Credentials.BasicSecret = "wrong"
				return r
			},
			call:            func(r *grant.Request) error { _, err := f.disp.Token(ctx, r); return err },
			unauthenticated: 1, code: string(oauth.CodeInvalidClient), events: 1,
		},
		{
			name: "fail/token-denied-after-admission-is-not-unauthenticated", req: func() *grant.Request { return f.request("web", "grant_type", "urn:nope") },
			call:     func(r *grant.Request) error { _, err := f.disp.Token(ctx, r); return err },
			admitted: []string{"web"}, code: string(oauth.CodeUnsupportedGrantType), events: 1, proved: 1,
		},
		{
			name: "ok/authenticate-admitted", req: func() *grant.Request { r := f.request("api"); r.Endpoint = "introspection"; return r },
			call: func(r *grant.Request) error { _, err := f.disp.Authenticate(ctx, r); return err }, admitted: []string{"api"},
		},
		{
			name: "fail/authenticate-refused-by-the-limit", req: func() *grant.Request { r := f.request("api"); r.Endpoint = "introspection"; return r },
			call:   func(r *grant.Request) error { _, err := f.disp.Authenticate(ctx, r); return err },
			refuse: errOverRate, admitted: []string{"api"}, err: errOverRate,
		},
		{
			name: "fail/refuse-before-authentication-is-unauthenticated", req: func() *grant.Request { r := f.request("api"); r.Endpoint = "revocation"; return r },
			call: func(r *grant.Request) error {
				return f.disp.Refuse(ctx, r, oauth.InvalidRequest("request body is larger than 10 bytes", nil))
			},
			unauthenticated: 1, code: string(oauth.CodeInvalidRequest), events: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req()
			req.RemoteAddr = "198.51.100.7:1" // its own aggregation windows
			lim := &limitLog{refuse: tc.refuse}
			req.Limit = lim
			proved := 0
			req.Prove = func() { proved++ }
			err := tc.call(req)
			switch {
			case tc.err != nil:
				if err != tc.err {
					t.Errorf("error %v, want the Limit's %v as it is", err, tc.err)
				}
			case tc.code != "":
				wantCode(t, err, oauth.Code(tc.code))
			case err != nil:
				t.Errorf("error %v", err)
			}
			if len(lim.admitted) != len(tc.admitted) || (len(tc.admitted) > 0 && lim.admitted[0] != tc.admitted[0]) || lim.unauthenticated != tc.unauthenticated {
				t.Errorf("the Limit heard admitted %v, unauthenticated %d; want %v, %d", lim.admitted, lim.unauthenticated, tc.admitted, tc.unauthenticated)
			}
			if proved != tc.proved {
				t.Errorf("the proof was checked %d times, want %d (only once admitted)", proved, tc.proved)
			}
			if got := len(f.events(t, req.RequestID)); got != tc.events {
				t.Errorf("%d events recorded, want %d", got, tc.events)
			}
		})
	}
}
