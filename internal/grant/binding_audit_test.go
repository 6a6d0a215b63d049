package grant_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// TestRootTokensRecordCnf: the grants that issue root tokens — client credentials,
// authorization code, refresh — record the cnf of every token they issue bound in
// its event's Detail, as token exchange does (README "Audit trail"), so that
// `audit trace` shows a root token's own binding even when nothing was exchanged
// from it. Bearer tokens' events are as they were: no cnf key at all.
func TestRootTokensRecordCnf(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	dpopKey := &oauth.Confirmation{JKT: apiJKT}
	cert := &oauth.Confirmation{X5TS256: apiX5T}

	// byReason returns the request's events by their Reason ("" for the access token).
	byReason := func(t *testing.T, req *grant.Request) map[string]store.AuditEvent {
		t.Helper()
		out := map[string]store.AuditEvent{}
		for _, e := range f.events(t, req.RequestID) {
			if e.Decision != store.DecisionAllow {
				t.Fatalf("event %+v", e)
			}
			out[e.Reason] = e
		}
		return out
	}
	wantCnf := func(t *testing.T, what string, e store.AuditEvent, want *oauth.Confirmation) {
		t.Helper()
		got, sub := eventCnf(t, e)
		switch {
		case sub != nil:
			t.Errorf("%s: records subject_cnf %+v, no subject token here", what, sub)
		case want == nil && got != nil:
			t.Errorf("%s: records cnf %+v of a bearer token (detail %s)", what, got, e.Detail)
		case want != nil && (got == nil || *got != *want):
			t.Errorf("%s: records cnf %+v, want %+v (detail %s)", what, got, want, e.Detail)
		}
	}
	// wantTraced: audit trace of jti shows the token with its own binding.
	wantTraced := func(t *testing.T, jti string, want *oauth.Confirmation) {
		t.Helper()
		tree, err := audit.Trace(ctx, f.st, jti)
		if err != nil {
			t.Fatal(err)
		}
		var find func(n *audit.Node) *audit.Node
		find = func(n *audit.Node) *audit.Node {
			if n == nil || n.JTI == jti {
				return n
			}
			for _, c := range n.Children {
				if m := find(c); m != nil {
					return m
				}
			}
			return nil
		}
		if n := find(tree.Root); n == nil || n.Unknown || (n.Cnf == nil) != (want == nil) || (want != nil && *n.Cnf != *want) {
			t.Errorf("trace of %s: node %+v, want cnf %+v", jti, n, want)
		}
	}

	for _, tc := range []struct {
		name    string
		binding *oauth.Confirmation
	}{
		{"ok/client-credentials-dpop", dpopKey},
		{"ok/client-credentials-certificate", cert},
		{"ok/client-credentials-bearer", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := f.request("api", "grant_type", oauth.GrantClientCredentials)
			req.Binding = tc.binding
			resp, err := f.disp.Token(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			e := byReason(t, req)[""]
			wantCnf(t, "access token", e, tc.binding)
			if tc.binding == nil && e.Detail != `{"grant_type":"client_credentials"}` {
				t.Errorf("detail of a bearer issuance changed: %s", e.Detail)
			}
			wantTraced(t, f.access(t, resp.AccessToken).ID, tc.binding)
		})
	}

	t.Run("ok/code-and-refresh-confidential-dpop", func(t *testing.T) {
		code, _ := f.code(t, nil)
		req := f.request("web", "grant_type", oauth.GrantAuthorizationCode, "code", code,
			"redirect_uri", webRedirect, "code_verifier", verifier)
		req.Binding = dpopKey
		resp, err := f.disp.Token(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		evs := byReason(t, req)
		wantCnf(t, "access token", evs[""], dpopKey)
		wantCnf(t, "refresh token", evs["refresh token"], nil) // a confidential client's is not bound
		wantCnf(t, "id token", evs["id token"], nil)
		wantTraced(t, evs[""].TokenJTI, dpopKey)
		wantTraced(t, evs["refresh token"].TokenJTI, nil)

		r, out, err := f.refresh("web", resp.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		wantCnf(t, "bearer refresh", byReason(t, r)[""], nil)

		r = f.request("web", "grant_type", oauth.GrantRefreshToken, "refresh_token", out.RefreshToken)
		r.Binding = cert
		if _, err := f.disp.Token(ctx, r); err != nil {
			t.Fatal(err)
		}
		evs = byReason(t, r)
		wantCnf(t, "refreshed access token", evs[""], cert)
		wantCnf(t, "rotated refresh token", evs["refresh token"], nil)
	})

	t.Run("ok/code-and-refresh-public-dpop", func(t *testing.T) {
		code, _ := f.code(t, func(ac *store.AuthCode) { ac.ClientID = "spa" })
		req := f.request("spa", "grant_type", oauth.GrantAuthorizationCode, "code", code,
			"redirect_uri", webRedirect, "code_verifier", verifier)
		req.Binding = dpopKey
		resp, err := f.disp.Token(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		evs := byReason(t, req)
		wantCnf(t, "access token", evs[""], dpopKey)
		wantCnf(t, "refresh token", evs["refresh token"], dpopKey) // a public client's is bound (RFC 9449 §5)
		wantCnf(t, "id token", evs["id token"], nil)
		wantTraced(t, evs[""].TokenJTI, dpopKey)
		wantTraced(t, evs["refresh token"].TokenJTI, dpopKey)

		r := f.request("spa", "grant_type", oauth.GrantRefreshToken, "refresh_token", resp.RefreshToken)
		r.Binding = dpopKey
		if _, err := f.disp.Token(ctx, r); err != nil {
			t.Fatal(err)
		}
		evs = byReason(t, r)
		wantCnf(t, "refreshed access token", evs[""], dpopKey)
		wantCnf(t, "rotated refresh token", evs["refresh token"], dpopKey)
		wantTraced(t, evs[""].TokenJTI, dpopKey)
	})
}

// TestWithheldTokenDenialKeepsBinding: when the record of an exchange cannot be
// written, the token is withheld and the denial recorded instead keeps the subject
// token's binding (subject_cnf) beside the withdrawn jti — and names no cnf of its
// own, since nothing bound left.
func TestWithheldTokenDenialKeepsBinding(t *testing.T) {
	diskFull := errors.New("disk full")
	f := newFixture(t, func(e *store.AuditEvent) error {
		if e.Type == store.EventTokenExchanged && e.Decision == store.DecisionAllow {
			return diskFull
		}
		return nil
	})
	raw, sub := boundUserToken(t, f, &oauth.Confirmation{JKT: webJKT})
	req := f.request("api", "grant_type", oauth.GrantTokenExchange, "subject_token", raw,
		"subject_token_type", string(oauth.TokenTypeAccessToken), "audience", api2)
	req.Binding = &oauth.Confirmation{JKT: apiJKT}
	resp, err := f.disp.Token(context.Background(), req)
	if resp != nil {
		t.Fatalf("handed out without its record: %+v", resp)
	}
	wantCode(t, err, oauth.CodeTemporarilyUnavail)
	e := wantDenied(t, f, req, oauth.CodeTemporarilyUnavail)
	if e.ParentJTI != sub.ID {
		t.Errorf("denial parent %q, want %q", e.ParentJTI, sub.ID)
	}
	issued, subj := eventCnf(t, e)
	if subj == nil || subj.JKT != webJKT {
		t.Errorf("denial records subject cnf %+v, want jkt %s (detail %s)", subj, webJKT, e.Detail)
	}
	if issued != nil {
		t.Errorf("denial records a cnf of its own %+v (detail %s)", issued, e.Detail)
	}
	var d struct {
		GrantType string `json:"grant_type"`
		Withdrawn string `json:"withdrawn_jti"`
	}
	if err := json.Unmarshal([]byte(e.Detail), &d); err != nil || d.Withdrawn == "" || d.GrantType != oauth.GrantTokenExchange {
		t.Errorf("denial detail %s (%v), want grant_type and withdrawn_jti", e.Detail, err)
	}
}

// twoTokens is a Grant that issues a token bound to a DPoP key, recording its cnf,
// and a second one whose event leaves Detail to the Dispatcher.
type twoTokens struct{}

func (twoTokens) Handle(_ context.Context, _ *grant.Request, _ *client.Client, ev *store.AuditEvent) (*grant.Issued, error) {
	ev.Type, ev.Subject, ev.TokenJTI, ev.TokenExpires = store.EventTokenIssued, "alice", "bound-1", time.Now().Add(time.Minute)
	ev.Detail = `{"cnf":{"jkt":"` + apiJKT + `"},"grant_type":"client_credentials"}`
	return &grant.Issued{Events: []*store.AuditEvent{{
		Type: store.EventTokenIssued, Subject: "alice", TokenJTI: "other-1", TokenExpires: time.Now().Add(time.Minute), Reason: "other token",
	}}}, nil
}

// TestDispatcherExtraEventNamesNoOtherCnf: an event the Dispatcher gives the
// request's Detail does not take the binding of the request's main token — a cnf
// on record names the key of the token the event issued, or none.
func TestDispatcherExtraEventNamesNoOtherCnf(t *testing.T) {
	f := newFixture(t, nil)
	disp := grant.NewDispatcher(f.clients, f.audit, map[string]grant.Grant{oauth.GrantClientCredentials: twoTokens{}}, discard)
	req := f.request("web", "grant_type", oauth.GrantClientCredentials)
	if _, err := disp.Token(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	for _, e := range f.events(t, req.RequestID) {
		issued, _ := eventCnf(t, e)
		switch e.TokenJTI {
		case "bound-1":
			if issued == nil || issued.JKT != apiJKT {
				t.Errorf("main event records cnf %+v", issued)
			}
		case "other-1":
			if issued != nil || e.Detail != `{"grant_type":"client_credentials"}` {
				t.Errorf("other event's detail %s: names the main token's cnf", e.Detail)
			}
		}
	}
}
