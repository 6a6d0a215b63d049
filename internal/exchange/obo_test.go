package exchange

import (
	"errors"
	"reflect"
	"testing"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/oauth"
)

// TestOnBehalfOf: an on-behalf-of assertion (Request.OnBehalfOf) is decided as
// the token exchange of it, with what Entra requires of it besides: an access
// token addressed to the client whoever issued it, and no ID token. Those are
// checks of no policy in particular, so Explain still says which policy would
// decide, and a denial carries what Explain says.
func TestOnBehalfOf(t *testing.T) {
	// partner's own audience, and a policy taking entra's ID tokens.
	x, err := New(append(testPolicies(), config.Policy{Name: "partner-id-tokens", Client: "partner",
		SubjectIssuers: []string{"entra"}, SubjectTokenTypes: []string{"id_token"}, Audiences: []string{api2}}),
		append(testAudiences(), config.Audience{ID: "api://partner", Scopes: []string{"read"}, Client: "partner"}), opts)
	if err != nil {
		t.Fatal(err)
	}
	entra := func(r *Request) {
		r.ClientID = "partner"
		r.Subject = entraSubject()
	}
	for _, tc := range []struct {
		name     string
		req      func(r *Request) // changes to baseRequest, with OnBehalfOf set
		wantRule string           // ok cases
		wantWhy  string           // fail cases: substring of the audit cause
		wantDesc string           // fail cases
	}{
		{name: "ok/own-token-addressed-to-client", req: func(r *Request) {}, wantRule: "api1-to-api2"},
		{name: "ok/trusted-token-addressed-to-client-id", req: func(r *Request) { entra(r); r.Subject.Audiences = []string{"partner"} },
			wantRule: "partner-from-entra"},
		{name: "ok/trusted-token-addressed-to-audience-of-client", req: func(r *Request) {
			entra(r)
			r.Subject.Audiences = []string{"api://other", "api://partner"}
		}, wantRule: "partner-from-entra"},
		{name: "fail/own-token-for-another-client", req: func(r *Request) { r.Subject.Audiences = []string{api2} },
			wantWhy: `hold neither client "api1" nor an audience of it`, wantDesc: "subject token is not addressed to the client"},
		{name: "fail/trusted-token-for-another-client", req: func(r *Request) { entra(r); r.Subject.Audiences = []string{api1} },
			wantWhy:  `subject token audiences ["https://api1.example"] hold neither client "partner" nor an audience of it`,
			wantDesc: "subject token is not addressed to the client"},
		{name: "fail/trusted-token-without-audience", req: func(r *Request) { entra(r); r.Subject.Audiences = nil },
			wantWhy: `hold neither client "partner"`, wantDesc: "subject token is not addressed to the client"},
		{name: "fail/trusted-id-token-claims", req: func(r *Request) {
			entra(r)
			r.Subject.Audiences = []string{"partner"}
			r.Subject.IDTokenClaims = []string{"at_hash", "nonce"}
		}, wantWhy: "the entra token has at_hash, nonce, claims only an ID token carries", wantDesc: "subject token is an ID token, not an access token"},
		// Which a policy of partner takes, from a token exchange.
		{name: "fail/id-token-type", req: func(r *Request) {
			entra(r)
			r.Subject.TokenType = oauth.TokenTypeIDToken
		}, wantWhy: "subject token of type id_token; an on-behalf-of assertion is an access token", wantDesc: "subject token is not an access token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := baseRequest()
			tc.req(&req)
			req.OnBehalfOf = true
			d, err := x.Decide(req, now)
			explained := x.Explain(req, now)
			decides := ""
			for _, r := range explained {
				if r.Check == "" {
					decides = r.Rule
				}
			}
			if tc.wantRule != "" {
				if err != nil || d.Rule != tc.wantRule || decides != tc.wantRule {
					t.Fatalf("Decide = %s, %v; Explain says %q decides; want %s", d.Rule, err, decides, tc.wantRule)
				}
				// The same decision as the token exchange of the same request.
				req.OnBehalfOf = false
				if x8693, err := x.Decide(req, now); err != nil || !reflect.DeepEqual(x8693, d) {
					t.Fatalf("the token exchange decides %+v, %v; on-behalf-of %+v", x8693, err, d)
				}
				return
			}
			oe := checkDenial(t, err, oauth.CodeInvalidRequest, "", tc.wantWhy)
			if tc.wantDesc != "" && oe.Description != tc.wantDesc {
				t.Errorf("description %q, want %q", oe.Description, tc.wantDesc)
			}
			var den *Denial
			if errors.As(err, &den) && !reflect.DeepEqual(den.Policies, explained) {
				t.Errorf("Denial.Policies = %+v, Explain = %+v", den.Policies, explained)
			}
		})
	}

	// The token exchange leaves a trusted issuer's addressee to
	// trusted_issuers[].audiences and takes its ID tokens as jwt (README "Across
	// trust domains"); only the on-behalf-of grant asks more.
	t.Run("ok/token-exchange-unchanged", func(t *testing.T) {
		req := baseRequest()
		entra(&req)
		req.Subject.Audiences = []string{api1}
		req.Subject.IDTokenClaims = []string{"nonce"}
		if d, err := x.Decide(req, now); err != nil || d.Rule != "partner-from-entra" {
			t.Fatalf("Decide = %+v, %v", d, err)
		}
		req.Subject.TokenType = oauth.TokenTypeIDToken
		if d, err := x.Decide(req, now); err != nil || d.Rule != "partner-id-tokens" {
			t.Fatalf("Decide = %+v, %v", d, err)
		}
	})
}

// TestBindingRefusalCheck: a refusal for a key the request does not prove names
// CheckBinding, a policy's require_binding or a bound subject or actor token
// alike, so that a caller tells what the request lacks from what its tokens
// are, without reading messages.
func TestBindingRefusalCheck(t *testing.T) {
	x := newTestExchanger(t)
	for _, tc := range []struct {
		name string
		req  func(r *Request)
		rule string
	}{
		{"fail/bound-subject-without-proof", func(r *Request) { r.Subject.Cnf = &oauth.Confirmation{JKT: jktWebApp} }, ""},
		{"fail/bound-refresh-token-other-key", func(r *Request) {
			r.Subject.TokenType = oauth.TokenTypeRefreshToken
			r.Subject.ClientID = "api1"
			r.Subject.Cnf = &oauth.Confirmation{JKT: jktWebApp}
			r.Binding = &oauth.Confirmation{JKT: jktAPI1}
			r.Audiences = []string{api3}
		}, ""},
		{"fail/bound-actor-without-its-key", func(r *Request) {
			r.Actor = &Principal{TokenType: oauth.TokenTypeAccessToken, Issuer: "self", IssuerURL: issuerURL, Subject: "api1",
				ExpiresAt: subjectExp, Cnf: &oauth.Confirmation{JKT: jktAPI1}}
		}, ""},
		{"fail/policy-requires-binding", func(r *Request) { r.ClientID = "vault"; r.Subject.Audiences = []string{"vault"} }, "vault-bound-only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := baseRequest()
			tc.req(&req)
			_, err := x.Decide(req, now)
			var den *Denial
			if !errors.As(err, &den) || den.Err.Code != oauth.CodeInvalidRequest || den.Check() != CheckBinding || den.Rule != tc.rule {
				t.Fatalf("Decide: %v, want invalid_request with check %s (rule %q)", err, CheckBinding, tc.rule)
			}
		})
	}
}
