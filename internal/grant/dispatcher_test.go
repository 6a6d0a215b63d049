package grant_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/subject"
	"github.com/deputy-auth/deputy/oauth"
)

// detail decodes an event's Detail.
func detail(t *testing.T, e store.AuditEvent) map[string]string {
	t.Helper()
	if e.Detail == "" {
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(e.Detail), &m); err != nil {
		t.Fatalf("detail %q: %v", e.Detail, err)
	}
	return m
}

// userAccessToken redeems a fresh code of web for alice and returns the response.
func userAccessToken(t *testing.T, f *fixture) *oauth.TokenResponse {
	t.Helper()
	code, _ := f.code(t, nil)
	_, resp, err := f.redeem(code)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestDispatcherRecordsIssuedTokens(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)

	t.Run("ok/client-credentials", func(t *testing.T) {
		req := f.request("web", "grant_type", oauth.GrantClientCredentials)
		resp, err := f.disp.Token(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		at := f.access(t, resp.AccessToken)
		evs := f.events(t, req.RequestID)
		if len(evs) != 1 {
			t.Fatalf("%d events, want 1: %+v", len(evs), evs)
		}
		e := evs[0]
		if e.Type != store.EventTokenIssued || e.Decision != store.DecisionAllow || e.ClientID != "web" || e.Subject != "web" ||
			e.TokenJTI != at.ID || !e.TokenExpires.Equal(time.Unix(at.Expiry, 0)) || !slices.Equal(e.Audiences, []string{apiAudience}) ||
			e.RemoteAddr != req.RemoteAddr || detail(t, e)["grant_type"] != oauth.GrantClientCredentials {
			t.Errorf("event %+v does not describe access token %+v", e, at)
		}
	})

	t.Run("ok/private-key-jwt-client-recorded-by-its-id", func(t *testing.T) {
		req := f.request("jwt", "grant_type", oauth.GrantClientCredentials)
		req.Credentials = f.assertion(t)
		if _, err := f.disp.Token(ctx, req); err != nil {
			t.Fatal(err)
		}
		evs := f.events(t, req.RequestID)
		if len(evs) != 1 || evs[0].ClientID != "jwt" || evs[0].Decision != store.DecisionAllow {
			t.Errorf("events %+v, want one allow event of client jwt", evs)
		}
	})

	t.Run("ok/authorization-code-records-every-token", func(t *testing.T) {
		code, ac := f.code(t, nil)
		req, resp, err := f.redeem(code)
		if err != nil {
			t.Fatal(err)
		}
		id, err := verifyIDToken(f, resp.IDToken)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{
			f.access(t, resp.AccessToken).ID:         false,
			f.refreshRecord(t, resp.RefreshToken).ID: false,
			id.ID:                                    false,
		}
		evs := f.events(t, req.RequestID)
		if len(evs) != len(want) {
			t.Fatalf("%d events, want %d: %+v", len(evs), len(want), evs)
		}
		for _, e := range evs {
			seen, ok := want[e.TokenJTI]
			if !ok || seen {
				t.Errorf("event of unexpected token %q: %+v", e.TokenJTI, e)
				continue
			}
			want[e.TokenJTI] = true
			if e.Type != store.EventTokenIssued || e.Decision != store.DecisionAllow || e.ClientID != "web" ||
				e.Subject != "alice" || e.ParentJTI != ac.ID || e.RemoteAddr != req.RemoteAddr ||
				detail(t, e)["grant_type"] != oauth.GrantAuthorizationCode {
				t.Errorf("event %+v", e)
			}
		}
	})

	t.Run("ok/token-exchange-names-its-rule", func(t *testing.T) {
		raw := userAccessToken(t, f).AccessToken
		sub := f.access(t, raw)
		req := f.request("api", "grant_type", oauth.GrantTokenExchange, "subject_token", raw,
			"subject_token_type", string(oauth.TokenTypeAccessToken), "audience", api2)
		resp, err := f.disp.Token(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		got := f.access(t, resp.AccessToken)
		evs := f.events(t, req.RequestID)
		if len(evs) != 1 {
			t.Fatalf("%d events, want 1: %+v", len(evs), evs)
		}
		e := evs[0]
		if e.Type != store.EventTokenExchanged || e.Decision != store.DecisionAllow || e.Rule != "api-to-api2" ||
			e.ClientID != "api" || e.Subject != "alice" || e.ParentJTI != sub.ID || e.TokenJTI != got.ID ||
			!slices.Equal(e.Actors, []string{"api"}) || !slices.Equal(e.Audiences, []string{api2}) {
			t.Errorf("event %+v", e)
		}
	})
}

func TestDispatcherRecordsDenials(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	subjectToken := userAccessToken(t, f).AccessToken
	subjectJTI := f.access(t, subjectToken).ID
	exchange := func(kv ...string) func() *grant.Request {
		return func() *grant.Request {
			return f.request("api", append([]string{"grant_type", oauth.GrantTokenExchange, "subject_token", subjectToken,
				"subject_token_type", string(oauth.TokenTypeAccessToken), "audience", api2}, kv...)...)
		}
	}
	for i, tc := range []struct {
		name   string
		req    func() *grant.Request
		code   oauth.Code
		client string // the client id recorded
		rule   string // the rule recorded
		parent string // the parent token recorded
	}{
		{name: "fail/unknown-client", req: func() *grant.Request {
			r := f.request("web", "grant_type", oauth.GrantClientCredentials)
			r.Credentials.BasicID = "nobody"
			return r
		}, code: oauth.CodeInvalidClient, client: "nobody"},
		{name: "fail/wrong-secret", req: func() *grant.Request {
			r := f.request("web", "grant_type", oauth.GrantClientCredentials)
			r.Credentials.BasicSecret = "not-the-secret"
			return r
		}, code: oauth.CodeInvalidClient, client: "web"},
		{name: "fail/confidential-client-without-credentials", req: func() *grant.Request {
			r := f.request("web", "grant_type", oauth.GrantClientCredentials)
			r.Credentials.Basic, r.Credentials.BasicID, r.Credentials.BasicSecret, r.Credentials.FormID = false, "", "", "web"
			return r
		}, code: oauth.CodeInvalidClient, client: "web"},
		{name: "fail/missing-grant-type", req: func() *grant.Request { return f.request("web") },
			code: oauth.CodeInvalidRequest, client: "web"},
		{name: "fail/empty-grant-type", req: func() *grant.Request { return f.request("web", "grant_type", "") },
			code: oauth.CodeInvalidRequest, client: "web"},
		{name: "fail/repeated-grant-type", req: func() *grant.Request {
			return f.request("web", "grant_type", oauth.GrantClientCredentials, "grant_type", oauth.GrantClientCredentials)
		}, code: oauth.CodeInvalidRequest, client: "web"},
		{name: "fail/unsupported-grant-type", req: func() *grant.Request { return f.request("web", "grant_type", "password") },
			code: oauth.CodeUnsupportedGrantType, client: "web"},
		{name: "fail/grant-not-registered", req: func() *grant.Request {
			return f.request("api", "grant_type", oauth.GrantAuthorizationCode, "code", "x")
		}, code: oauth.CodeUnauthorizedClient, client: "api"},
		{name: "fail/public-client-credentials", req: func() *grant.Request {
			return f.request("spa", "grant_type", oauth.GrantClientCredentials)
		}, code: oauth.CodeUnauthorizedClient, client: "spa"},
		{name: "fail/public-token-exchange", req: func() *grant.Request {
			r := exchange()()
			r.Credentials.Basic, r.Credentials.BasicID, r.Credentials.BasicSecret, r.Credentials.FormID = false, "", "", "spa"
			return r
		}, code: oauth.CodeUnauthorizedClient, client: "spa"},
		{name: "fail/exchange-without-policy", req: func() *grant.Request {
			r := exchange()()
			r.Credentials.BasicID, r.Credentials.BasicSecret = "other", "other-secret"
			return r
		}, code: oauth.CodeUnauthorizedClient, client: "other"},
		{name: "fail/grant-refuses", req: func() *grant.Request {
			return f.request("web", "grant_type", oauth.GrantAuthorizationCode, "code", "no-such-code")
		}, code: oauth.CodeInvalidGrant, client: "web"},
		{name: "fail/scope-not-allowed", req: func() *grant.Request {
			return f.request("web", "grant_type", oauth.GrantClientCredentials, "scope", "read admin")
		}, code: oauth.CodeInvalidScope, client: "web"},
		{name: "fail/exchange-scope-beyond-policy", req: exchange("scope", "write"),
			code: oauth.CodeInvalidScope, client: "api", rule: "api-to-api2", parent: subjectJTI},
		{name: "fail/exchange-type-beyond-policy", req: exchange("requested_token_type", string(oauth.TokenTypeJWT)),
			code: oauth.CodeInvalidRequest, client: "api", rule: "api-to-api2", parent: subjectJTI},
		{name: "fail/exchange-target-without-rule", req: exchange("audience", apiAudience),
			code: oauth.CodeInvalidTarget, client: "api", parent: subjectJTI},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req()
			// One address per case: unauthenticated denials from one address for
			// one client are recorded once a window (TestUnauthenticatedDenials).
			req.RemoteAddr = fmt.Sprintf("192.0.2.%d:1234", 10+i)
			resp, err := f.disp.Token(ctx, req)
			if resp != nil {
				t.Errorf("response %+v with error %v", resp, err)
			}
			wantCode(t, err, tc.code)
			e := wantDenied(t, f, req, tc.code)
			if e.ClientID != tc.client || e.Rule != tc.rule || e.ParentJTI != tc.parent {
				t.Errorf("denial client %q rule %q parent %q, want %q %q %q", e.ClientID, e.Rule, e.ParentJTI, tc.client, tc.rule, tc.parent)
			}
			if r := oauth.AsError(err).Reason(); r != "" && e.Reason != string(tc.code)+": "+r {
				t.Errorf("reason %q, want the error's reason %q", e.Reason, r)
			}
		})
	}
}

// A token whose audit event cannot be written is never handed out.
func TestDispatcherWithholdsUnrecordedTokens(t *testing.T) {
	ctx := context.Background()
	diskFull := errors.New("disk full")
	for _, tc := range []struct {
		name   string
		refuse func(*store.AuditEvent) error
		grant  string // the grant type of the request
		// closeFirst closes the writer before the request.
		closeFirst bool
		code       oauth.Code
	}{
		{name: "fail/writer-closed", grant: oauth.GrantClientCredentials, closeFirst: true,
			code: oauth.CodeTemporarilyUnavail},
		{name: "fail/access-token-refused", grant: oauth.GrantClientCredentials,
			refuse: func(e *store.AuditEvent) error {
				if e.Type == store.EventTokenIssued {
					return diskFull
				}
				return nil
			}, code: oauth.CodeTemporarilyUnavail},
		{name: "fail/id-token-refused", grant: oauth.GrantAuthorizationCode,
			refuse: func(e *store.AuditEvent) error {
				if e.Reason == "id token" {
					return diskFull
				}
				return nil
			}, code: oauth.CodeTemporarilyUnavail},
		{name: "fail/refresh-token-refused", grant: oauth.GrantAuthorizationCode,
			refuse: func(e *store.AuditEvent) error {
				if e.Reason == "refresh token" {
					return diskFull
				}
				return nil
			}, code: oauth.CodeTemporarilyUnavail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.refuse)
			var req *grant.Request
			switch tc.grant {
			case oauth.GrantClientCredentials:
				req = f.request("web", "grant_type", oauth.GrantClientCredentials)
			case oauth.GrantAuthorizationCode:
				code, _ := f.code(t, nil)
				req = f.request("web", "grant_type", oauth.GrantAuthorizationCode, "code", code,
					"redirect_uri", webRedirect, "code_verifier", verifier)
			}
			if tc.closeFirst {
				f.audit.Close()
			}
			resp, err := f.disp.Token(ctx, req)
			if resp != nil {
				t.Fatalf("response %+v handed out without its record", resp)
			}
			wantCode(t, err, tc.code)
			if tc.closeFirst {
				if evs := f.events(t, req.RequestID); len(evs) != 0 {
					t.Errorf("events recorded by a closed writer: %+v", evs)
				}
				return
			}
			var denials []store.AuditEvent
			for _, e := range f.events(t, req.RequestID) {
				if e.Type == store.EventDenied {
					denials = append(denials, e)
				}
			}
			if len(denials) != 1 {
				t.Fatalf("%d denials, want 1", len(denials))
			}
			d := denials[0]
			if d.TokenJTI != "" || d.Decision != store.DecisionDeny || detail(t, d)["withdrawn_jti"] == "" ||
				!strings.HasPrefix(d.Reason, string(tc.code)+": ") {
				t.Errorf("denial %+v", d)
			}
		})
	}
}

func TestDispatcherDenialUnrecorded(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	f.audit.Close()
	t.Run("fail/refusal-becomes-unavailable", func(t *testing.T) {
		// Nothing was issued, but the server must not pretend the denial is on record.
		_, err := f.disp.Token(ctx, f.request("web", "grant_type", "password"))
		wantCode(t, err, oauth.CodeTemporarilyUnavail)
	})
	t.Run("fail/invalid-client-stays-invalid-client", func(t *testing.T) {
		r := f.request("web", "grant_type", oauth.GrantClientCredentials)
		r.Credentials.BasicSecret = "wrong"
		_, err := f.disp.Token(ctx, r)
		wantCode(t, err, oauth.CodeInvalidClient)
	})
}

func TestDispatcherRefuseAndAuthenticate(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)

	t.Run("fail/refuse-records-the-denial", func(t *testing.T) {
		req := f.request("web")
		req.Endpoint = "introspection"
		err := f.disp.Refuse(ctx, req, oauth.InvalidRequest("malformed body", errors.New("invalid URL escape")))
		wantCode(t, err, oauth.CodeInvalidRequest)
		e := wantDenied(t, f, req, oauth.CodeInvalidRequest)
		if e.ClientID != "web" || e.Reason != "invalid_request: malformed body: invalid URL escape" ||
			detail(t, e)["endpoint"] != "introspection" {
			t.Errorf("denial %+v", e)
		}
	})
	t.Run("fail/refuse-of-a-plain-error-is-server-error", func(t *testing.T) {
		req := f.request("web")
		req.RemoteAddr = "192.0.2.2:1234" // not aggregated with the denial above
		err := f.disp.Refuse(ctx, req, errors.New("boom"))
		wantCode(t, err, oauth.CodeServerError)
		wantDenied(t, f, req, oauth.CodeServerError)
	})
	t.Run("ok/authenticate", func(t *testing.T) {
		req := f.request("api")
		req.Endpoint = "revocation"
		c, err := f.disp.Authenticate(ctx, req)
		if err != nil || c.ID != "api" {
			t.Fatalf("client %+v, err %v", c, err)
		}
		if evs := f.events(t, req.RequestID); len(evs) != 0 {
			t.Errorf("authentication alone recorded %+v", evs)
		}
	})
	t.Run("fail/authenticate-records-the-denial", func(t *testing.T) {
		req := f.request("api")
		req.Endpoint = "revocation"
		req.Credentials.BasicSecret = "web-secret"
		c, err := f.disp.Authenticate(ctx, req)
		if c != nil {
			t.Errorf("client %+v authenticated with another's secret", c)
		}
		wantCode(t, err, oauth.CodeInvalidClient)
		e := wantDenied(t, f, req, oauth.CodeInvalidClient)
		if e.ClientID != "api" || detail(t, e)["endpoint"] != "revocation" {
			t.Errorf("denial %+v", e)
		}
	})
}

// revokingVerifier verifies like subject.Verifier, then revokes the subject token it
// verified: a revocation that arrives while the exchange is being decided.
type revokingVerifier struct {
	t *testing.T
	f *fixture
}

func (r revokingVerifier) Verify(ctx context.Context, role, raw string, typ oauth.TokenType, now time.Time) (exchange.Principal, error) {
	p, err := subject.NewVerifier(r.f.tokens).Verify(ctx, role, raw, typ, now)
	if err == nil && role == "subject" {
		revoke(r.t, r.f, p.JTI)
	}
	return p, err
}

func TestDispatcherSubjectRevokedWhileExchanging(t *testing.T) {
	f := newFixture(t, nil)
	disp := grant.NewDispatcher(f.clients, f.audit, map[string]grant.Grant{
		oauth.GrantTokenExchange: &grant.TokenExchange{Tokens: f.tokens, Subjects: revokingVerifier{t, f}, Exchange: f.xchg},
	}, discard)
	raw := userAccessToken(t, f).AccessToken
	req := f.request("api", "grant_type", oauth.GrantTokenExchange, "subject_token", raw,
		"subject_token_type", string(oauth.TokenTypeAccessToken), "audience", api2)
	resp, err := disp.Token(context.Background(), req)
	if resp != nil {
		t.Fatalf("token exchanged from a revoked subject token: %+v", resp)
	}
	wantCode(t, err, oauth.CodeInvalidRequest)
	e := wantDenied(t, f, req, oauth.CodeInvalidRequest)
	if e.ParentJTI != f.access(t, raw).ID || e.Rule != "api-to-api2" || detail(t, e)["withdrawn_jti"] == "" {
		t.Errorf("denial %+v", e)
	}
}

// halfway is a Grant that learns what it would issue and then fails: the Grant
// contract lets a grant fill ev also when it fails.
type halfway struct{}

func (halfway) Handle(_ context.Context, _ *grant.Request, _ *client.Client, ev *store.AuditEvent) (*grant.Issued, error) {
	ev.Subject, ev.ParentJTI, ev.Rule = "alice", "parent-1", "rule-1"
	ev.TokenJTI, ev.TokenExpires = "minted-1", time.Now().Add(time.Minute)
	return nil, oauth.ServerError(errors.New("signing failed"))
}

func TestDispatcherDenialNamesNoToken(t *testing.T) {
	f := newFixture(t, nil)
	disp := grant.NewDispatcher(f.clients, f.audit, map[string]grant.Grant{oauth.GrantClientCredentials: halfway{}}, discard)
	req := f.request("web", "grant_type", oauth.GrantClientCredentials)
	_, err := disp.Token(context.Background(), req)
	wantCode(t, err, oauth.CodeServerError)
	// What the grant learnt is kept; the token it did not hand out is not named.
	e := wantDenied(t, f, req, oauth.CodeServerError)
	if e.Subject != "alice" || e.ParentJTI != "parent-1" || e.Rule != "rule-1" || e.Reason != "server_error: internal error: signing failed" {
		t.Errorf("denial %+v", e)
	}
}

func TestClientCredentials(t *testing.T) {
	f := newFixture(t, nil)
	web := []string{"openid", "profile", "email", "read", "write"}
	for _, tc := range []struct {
		name   string
		client string
		params []string
		aud    []string
		scope  string
		mayAct string
		code   oauth.Code
	}{
		{name: "ok/configured-audiences-and-scopes", client: "web", aud: []string{apiAudience}, scope: strings.Join(web, " "), mayAct: "api"},
		{name: "ok/scope-subset", client: "web", params: []string{"scope", "read read write"}, aud: []string{apiAudience}, scope: "read write", mayAct: "api"},
		{name: "ok/resource", client: "api", params: []string{"resource", apiAudience, "resource", apiAudience}, aud: []string{apiAudience}, scope: "read write"},
		{name: "ok/no-audiences-means-the-client", client: "jwt", aud: []string{"jwt"}, scope: "read"},
		{name: "fail/scope-beyond-the-client", client: "api", params: []string{"scope", "openid"}, code: oauth.CodeInvalidScope},
		{name: "fail/resource-beyond-the-client", client: "api", params: []string{"resource", api2}, code: oauth.CodeInvalidTarget},
		// Sent without a value = omitted (RFC 6749 §3.1); see TestEmptyParametersAreOmitted.
		{name: "ok/empty-resource-is-omitted", client: "api", params: []string{"resource", ""}, aud: []string{apiAudience}, scope: "read write"},
		{name: "ok/empty-scope-is-omitted", client: "api", params: []string{"scope", ""}, aud: []string{apiAudience}, scope: "read write"},
		{name: "fail/repeated-scope", client: "api", params: []string{"scope", "read", "scope", "write"}, code: oauth.CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := f.request(tc.client, append([]string{"grant_type", oauth.GrantClientCredentials}, tc.params...)...)
			if tc.client == "jwt" {
				req.Credentials = f.assertion(t)
			}
			resp, err := f.disp.Token(context.Background(), req)
			if tc.code != "" {
				wantCode(t, err, tc.code)
				wantDenied(t, f, req, tc.code)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			at := f.access(t, resp.AccessToken)
			var mayAct string
			if at.MayAct != nil {
				mayAct = at.MayAct.Subject
			}
			if at.Subject != tc.client || at.ClientID != tc.client || !slices.Equal(at.Audience, tc.aud) || at.Scope != tc.scope ||
				mayAct != tc.mayAct || at.Expiry != f.now.Add(accessTTL).Unix() || at.SID != "" || at.AuthTime != 0 {
				t.Errorf("access token claims %+v", at)
			}
			if resp.RefreshToken != "" || resp.IDToken != "" || resp.Scope != tc.scope || resp.TokenType != oauth.TokenTypeBearer ||
				resp.ExpiresIn != int64(accessTTL/time.Second) {
				t.Errorf("response %+v", resp)
			}
		})
	}
}
