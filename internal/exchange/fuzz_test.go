package exchange

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/policy"
	"github.com/deputy-auth/deputy/oauth"
)

// FuzzActNesting feeds act chains decoded from arbitrary JSON, as a trusted issuer
// could assert them, through delegation and impersonation under any max_chain, and
// checks RFC 8693 §4.1 nesting: the issued chain is the subject's with the current
// actor outermost (delegation) or unchanged (impersonation), never longer than
// max_chain, holding sub and iss only, and sharing no memory with the subject token.
func FuzzActNesting(f *testing.F) {
	for _, seed := range []string{
		`null`, `{"sub":"api0"}`, `{"sub":"api1","act":{"sub":"api0"}}`,
		`{"sub":"b","iss":"https://deputy.example","act":{"sub":"a","iss":"https://other"}}`,
		`{"sub":"c","act":{"sub":"b","act":{"sub":"a","act":{"sub":"z"}}}}`,
		`{}`, `{"sub":"a","act":{}}`, `{"sub":"a","exp":1,"aud":"x","act":{"sub":"b","may_act":{"sub":"c"}}}`,
	} {
		f.Add([]byte(seed), uint8(0), false, false)
		f.Add([]byte(seed), uint8(2), true, true)
	}
	f.Fuzz(func(t *testing.T, actJSON []byte, maxChain uint8, impersonate, foreign bool) {
		var act *oauth.Actor
		if json.Unmarshal(actJSON, &act) != nil {
			return
		}
		p := config.Policy{Name: "p", Client: "c", Audiences: []string{api2}, MaxChain: int(maxChain % 12),
			SubjectIssuers: []string{"self", "entra"}}
		if impersonate {
			p.Mode = "impersonation"
		}
		x, err := New([]config.Policy{p}, testAudiences(), opts)
		if err != nil {
			t.Fatal(err)
		}
		sub := Principal{TokenType: oauth.TokenTypeAccessToken, Issuer: "self", IssuerURL: issuerURL, Subject: "alice",
			Audiences: []string{"c"}, Act: act, ExpiresAt: subjectExp}
		if foreign {
			sub.Issuer, sub.IssuerURL = "entra", entraURL
		}
		d, err := x.Decide(Request{ClientID: "c", Subject: sub, Audiences: []string{api2}}, now)

		max := int(maxChain % 12)
		if max == 0 {
			max = policy.DefaultMaxChain
		}
		want := act.Chain()
		if !impersonate {
			want = append([]string{"c"}, want...)
		}
		switch {
		case slices.Contains(act.Chain(), ""):
			wantCode(t, err, oauth.CodeInvalidRequest)
			return
		case len(want) > max:
			wantCode(t, err, oauth.CodeInvalidRequest)
			return
		case err != nil:
			t.Fatalf("Decide: %v", err)
		}

		if got := d.Act.Chain(); !slices.Equal(got, want) {
			t.Fatalf("issued chain %q, want %q", got, want)
		}
		wantDepth := act.Depth() // impersonation keeps the chain
		if !impersonate {
			wantDepth++ // delegation adds the current actor
		}
		if d.Act.Depth() != wantDepth || wantDepth > max {
			t.Fatalf("issued depth %d from subject depth %d, max_chain %d", d.Act.Depth(), act.Depth(), max)
		}
		if d.Actor != "c" {
			t.Fatalf("Decision.Actor = %q", d.Actor)
		}
		// Levels copied from the subject: sub kept, iss made explicit for a foreign
		// token's own actors and left implicit for deputy's.
		got := d.Act
		if !impersonate {
			if got.Issuer != "" {
				t.Fatalf("delegating client named with iss %q", got.Issuer)
			}
			got = got.Actor
		}
		for in := act; in != nil; in, got = in.Actor, got.Actor {
			if got == in {
				t.Fatal("issued act shares memory with the subject token's")
			}
			wantIss := in.Issuer
			if wantIss == "" && foreign {
				wantIss = entraURL
			}
			if wantIss == issuerURL {
				wantIss = ""
			}
			if got.Issuer != wantIss {
				t.Fatalf("level %q: iss %q, want %q", in.Subject, got.Issuer, wantIss)
			}
		}
		if got != nil {
			t.Fatal("issued chain longer than the subject's")
		}
	})
}

func wantCode(t *testing.T, err error, code oauth.Code) {
	t.Helper()
	var den *Denial
	if !errors.As(err, &den) || den.Err.Code != code {
		t.Fatalf("got %v, want a %s denial", err, code)
	}
}

// FuzzDecide runs arbitrary request strings against the test configuration and checks
// what must hold of every answer: a denial is a *Denial with a §5 code; a Decision
// stays within the policy, audiences, subject scopes and lifetimes, is bound to the
// request's key only (never the subject token's), never downgrades a bound subject
// token, and is deterministic. subCnf and binding are "" (none), "jkt:<v>" or
// "x5t:<v>".
func FuzzDecide(f *testing.F) {
	f.Add("api1", "self", "access_token", "https://api1.example", "https://api2.example", "", "", "ledger:read ledger:write", "", int64(3600), "", "")
	f.Add("api1", "self", "refresh_token", "", "https://api3.example", "https://api2.example", "ledger:read", "ledger:read", "refresh_token", int64(60), "jkt:a", "jkt:b")
	f.Add("api2", "self", "access_token", "api2", "", "", "", "ledger:read", "", int64(0), "", "x5t:c")
	f.Add("partner", "entra", "jwt", "api://x", "", "https://api2.example#f", "ledger:read", "", "jwt", int64(-5), "", "")
	f.Add("partner", "corp", "saml2", "", "", "https://api3.example", "audit:read", "", "", int64(100), "", "")
	f.Add("batch", "self", "access_token", "batch", "https://api2.example", "", " ", "ledger:write", "id_token", int64(1), "x5t:d", "")
	// The one rule for api2 requires may_act, which the subject lacks: invalid_request naming that rule.
	f.Add("router", "self", "access_token", "router", "https://api2.example", "", "", "ledger:read", "", int64(3600), "", "")
	// A bound subject exchanged without a proof; the rule that requires binding.
	f.Add("api1", "self", "access_token", "api1", "https://api2.example", "", "", "ledger:read", "", int64(3600), "jkt:a", "")
	f.Add("vault", "self", "access_token", "vault", "", "", "", "ledger:read", "jwt", int64(3600), "", "jkt:v")
	f.Fuzz(func(t *testing.T, client, issuer, typ, subAud, aud, res, scope, subScopes, reqType string, expIn int64, subCnf, binding string) {
		x := newTestExchanger(t)
		split := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, " ")
		}
		tokenType := func(s string) oauth.TokenType {
			if t, ok := oauth.TokenTypeFromShort(s); ok {
				return t
			}
			return oauth.TokenType(s)
		}
		req := Request{
			ClientID: client,
			Subject: Principal{TokenType: tokenType(typ), Issuer: issuer, IssuerURL: "https://" + issuer, Subject: "alice",
				Audiences: split(subAud), Scopes: split(subScopes), ClientID: client, JTI: "j"},
			Audiences: split(aud), Resources: split(res), Scopes: split(scope),
		}
		if reqType != "" {
			req.RequestedType = tokenType(reqType)
		}
		req.Subject.Cnf, req.Binding = confirmation(subCnf), confirmation(binding)
		if expIn != 0 {
			req.Subject.ExpiresAt = now.Add(time.Duration(expIn%1e6) * time.Second)
		}

		d, err := x.Decide(req, now)
		d2, err2 := x.Decide(req, now)
		if !reflect.DeepEqual(d, d2) || (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("Decide is not deterministic: %v / %v", err, err2)
		}
		if err != nil {
			var den *Denial
			if !errors.As(err, &den) || den.Err == nil || den.Err.Description == "" || den.Err.Cause == nil {
				t.Fatalf("error %#v is not a complete *Denial", err)
			}
			switch c := den.Err.Code; c {
			case oauth.CodeUnauthorizedClient:
				if x.Permits(client) {
					t.Fatalf("unauthorized_client for a permitted client: %v", err)
				}
			case oauth.CodeInvalidRequest, oauth.CodeInvalidTarget:
				// A refusal that names a rule names one of the client's.
				if den.Rule != "" && !slices.ContainsFunc(x.rules.ForClient(client), func(r *policy.Rule) bool { return r.Name == den.Rule }) {
					t.Fatalf("denial names rule %q, not one of client %q's", den.Rule, client)
				}
			case oauth.CodeInvalidScope:
				if den.Rule == "" {
					t.Fatalf("invalid_scope without a rule: %v", err)
				}
			default:
				t.Fatalf("unexpected code %s: %v", c, err)
			}
			if !reflect.DeepEqual(d, Decision{}) {
				t.Fatalf("denial with a Decision %+v", d)
			}
			return
		}

		// The rule is the client's, and accepts the subject.
		var rule *policy.Rule
		for _, r := range x.rules.ForClient(client) {
			if r.Name == d.Rule {
				rule = r
			}
		}
		if rule == nil {
			t.Fatalf("decided by %q, not a rule of client %q", d.Rule, client)
		}
		if rule.MatchSubject(issuer, req.Subject.TokenType) != nil {
			t.Fatalf("rule %s does not accept the subject", d.Rule)
		}
		if d.Subject != "alice" || d.Actor != client || d.SubjectIssuer != issuer || d.ParentJTI != "j" {
			t.Fatalf("identity fields: %+v", d)
		}
		if (d.Mode == ModeDelegation) != (d.Act != nil && d.Act.Subject == client) {
			t.Fatalf("mode %s with act %s", d.Mode, actString(d.Act))
		}
		if issuer == "self" && req.Subject.TokenType != oauth.TokenTypeRefreshToken {
			bound := false
			for _, a := range req.Subject.Audiences {
				bound = bound || a == client || (x.audiences[a] != nil && x.audiences[a].client == client)
			}
			if !bound {
				t.Fatalf("subject audiences %q not bound to %s", req.Subject.Audiences, client)
			}
		}

		// Targets: configured, allowed by the rule, unique, the ones requested.
		if len(d.Audiences) == 0 {
			t.Fatal("no audience")
		}
		for i, a := range d.Audiences {
			if x.audiences[a] == nil || !rule.AllowsAudience(a) || slices.Contains(d.Audiences[:i], a) {
				t.Fatalf("audience %q: unknown, not allowed or repeated in %q", a, d.Audiences)
			}
		}
		asked := append(slices.Clone(req.Audiences), req.Resources...)
		for _, a := range asked {
			if !slices.Contains(d.Audiences, a) {
				t.Fatalf("requested target %q missing from %q", a, d.Audiences)
			}
		}
		if len(asked) > 0 && len(d.Audiences) > len(asked) {
			t.Fatalf("audiences %q beyond the requested %q", d.Audiences, asked)
		}
		// The first rule, in config order, that accepts the subject and allows the
		// targets decides, and meets its own requirements (README "Token exchange
		// rules").
		if len(asked) > 0 {
			for _, r := range x.rules.ForClient(client) {
				if r.AcceptsSubject(issuer, req.Subject.TokenType) && r.AllowsTargets(asked) {
					if r != rule {
						t.Fatalf("decided by %s, but %s comes first and matches", rule.Name, r.Name)
					}
					break
				}
			}
		}
		if !rule.AllowsMayAct(req.Subject.MayAct != nil) || !rule.AllowsChain(req.Subject.Act.Depth()) {
			t.Fatalf("rule %s decided against its own requirements", rule.Name)
		}

		// Scopes: sorted, unique, within every bound, and exactly those asked for.
		if !slices.IsSorted(d.Scopes) || len(slices.Compact(slices.Clone(d.Scopes))) != len(d.Scopes) {
			t.Fatalf("scopes %q not sorted and unique", d.Scopes)
		}
		for _, s := range d.Scopes {
			offered := false
			for _, a := range d.Audiences {
				offered = offered || slices.Contains(x.audiences[a].scopes, s)
			}
			if !offered || !rule.AllowsScope(s) || (issuer == "self" && !slices.Contains(req.Subject.Scopes, s)) {
				t.Fatalf("scope %q granted beyond its bounds", s)
			}
		}
		for _, s := range req.Scopes {
			if s != "" && !slices.Contains(d.Scopes, s) {
				t.Fatalf("requested scope %q not granted in %q", s, d.Scopes)
			}
		}

		// Binding: the request's key or none, never the subject token's, and never
		// none for a bound subject token or under require_binding.
		switch {
		case d.Cnf != nil && !reflect.DeepEqual(d.Cnf, req.Binding):
			t.Fatalf("issued cnf %+v, the request proved %+v", d.Cnf, req.Binding)
		case d.Cnf != nil && d.Cnf == req.Binding:
			t.Fatal("issued cnf shares memory with the request's binding")
		case (req.Subject.Cnf.Bound() || rule.RequireBinding) && !d.Cnf.Bound():
			t.Fatalf("bound subject %+v (require_binding %v) yields an unbound token", req.Subject.Cnf, rule.RequireBinding)
		case (req.Subject.Cnf.Bound() || rule.RequireBinding) && !d.RefreshExpiresAt.IsZero():
			t.Fatal("an unbound refresh token beside a token that must stay bound")
		case req.Binding.Bound() && (d.IssuedType == oauth.TokenTypeAccessToken || d.IssuedType == oauth.TokenTypeJWT) && d.Cnf == nil:
			t.Fatalf("a bound request yields an unbound %s", d.IssuedType)
		}

		// Type and lifetime: DPoP for an access token bound to a DPoP key, Bearer for
		// other access tokens, N_A for the rest.
		wantTokenType := oauth.TokenTypeNA
		if d.IssuedType == oauth.TokenTypeAccessToken {
			wantTokenType = oauth.TokenTypeBearer
			if d.Cnf != nil && d.Cnf.JKT != "" {
				wantTokenType = oauth.TokenTypeDPoP
			}
		}
		if rule.MatchRequestedType(d.IssuedType) != nil || d.TokenType != wantTokenType {
			t.Fatalf("issued type %s, token type %s", d.IssuedType, d.TokenType)
		}
		if !d.ExpiresAt.After(now) || d.ExpiresAt.After(now.Add(24*time.Hour)) ||
			(!req.Subject.ExpiresAt.IsZero() && d.ExpiresAt.After(req.Subject.ExpiresAt)) {
			t.Fatalf("expires at %v (now %v, subject %v)", d.ExpiresAt, now, req.Subject.ExpiresAt)
		}
	})
}

// confirmation parses a fuzzed cnf: "jkt:<v>" or "x5t:<v>"; anything else is nil.
func confirmation(s string) *oauth.Confirmation {
	switch k, v, _ := strings.Cut(s, ":"); k {
	case "jkt":
		return &oauth.Confirmation{JKT: v}
	case "x5t":
		return &oauth.Confirmation{X5TS256: v}
	}
	return nil
}
