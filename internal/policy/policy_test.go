package policy

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/oauth"
)

func TestCompileDefaults(t *testing.T) {
	s, err := Compile([]config.Policy{
		{Client: "api1", Audiences: []string{"https://api2"}},
		{Name: "explicit", Client: "api1", Audiences: []string{"https://api3"}, Scopes: []string{"a", "b"},
			SubjectIssuers: []string{"entra", "self"}, SubjectTokenTypes: []string{"jwt", "saml2"}, Mode: "impersonation",
			RequireMayAct: true, MaxChain: 7, RequestedTokenTypes: []string{"id_token", "refresh_token"}, RequireBinding: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []*Rule{
		{Name: "policies[0]", Index: 0, Client: "api1", SubjectIssuers: []string{"self"},
			SubjectTokenTypes: []oauth.TokenType{oauth.TokenTypeAccessToken}, Audiences: []string{"https://api2"},
			Mode: Delegation, MaxChain: 4, RequestedTokenTypes: []oauth.TokenType{oauth.TokenTypeAccessToken},
			audiences: map[string]struct{}{"https://api2": {}}},
		{Name: "explicit", Index: 1, Client: "api1", SubjectIssuers: []string{"entra", "self"},
			SubjectTokenTypes: []oauth.TokenType{oauth.TokenTypeJWT, oauth.TokenTypeSAML2}, Audiences: []string{"https://api3"},
			Scopes: []string{"a", "b"}, Mode: Impersonation, RequireMayAct: true, MaxChain: 7,
			RequestedTokenTypes: []oauth.TokenType{oauth.TokenTypeIDToken, oauth.TokenTypeRefreshToken}, RequireBinding: true,
			audiences: map[string]struct{}{"https://api3": {}}, scopes: map[string]struct{}{"a": {}, "b": {}}},
	}
	if !reflect.DeepEqual(s.Rules(), want) {
		t.Fatalf("rules\n got %+v\nwant %+v", deref(s.Rules()), deref(want))
	}
}

func deref(rs []*Rule) []Rule {
	out := make([]Rule, len(rs))
	for i, r := range rs {
		out[i] = *r
	}
	return out
}

// TestCompileDoesNotAliasConfig checks that later changes to the config slices do not
// reach the compiled rules.
func TestCompileDoesNotAliasConfig(t *testing.T) {
	p := config.Policy{Client: "c", Audiences: []string{"https://a"}, Scopes: []string{"x"}, SubjectIssuers: []string{"self"}}
	s, err := Compile([]config.Policy{p})
	if err != nil {
		t.Fatal(err)
	}
	p.Audiences[0], p.Scopes[0], p.SubjectIssuers[0] = "https://b", "y", "entra"
	r := s.Rules()[0]
	if r.Audiences[0] != "https://a" || r.Scopes[0] != "x" || r.SubjectIssuers[0] != "self" {
		t.Fatalf("rule changed with its config: %+v", *r)
	}
}

func TestCompileErrors(t *testing.T) {
	ok := config.Policy{Client: "c", Audiences: []string{"https://a"}}
	tests := []struct {
		name string
		bad  func(p *config.Policy)
		msg  string
	}{
		{"fail/no-client", func(p *config.Policy) { p.Client = "" }, "exchange.policies[1].client: required"},
		{"fail/no-audiences", func(p *config.Policy) { p.Audiences = nil }, "exchange.policies[1].audiences: at least one audience is required"},
		{"fail/empty-audience", func(p *config.Policy) { p.Audiences = []string{"https://a", ""} }, "exchange.policies[1].audiences[1]: empty audience"},
		{"fail/unknown-mode", func(p *config.Policy) { p.Mode = "Delegation" }, `exchange.policies[1].mode: unknown mode "Delegation"`},
		{"fail/negative-max-chain", func(p *config.Policy) { p.MaxChain = -1 }, "exchange.policies[1].max_chain: -1 is negative"},
		{"fail/empty-subject-issuer", func(p *config.Policy) { p.SubjectIssuers = []string{""} }, "exchange.policies[1].subject_issuers[0]: empty issuer name"},
		{"fail/unknown-subject-type", func(p *config.Policy) { p.SubjectTokenTypes = []string{"jwt", "bogus"} },
			`exchange.policies[1].subject_token_types[1]: token type "bogus" is not one of access_token, jwt, id_token, refresh_token, saml2`},
		{"fail/saml1-subject-type", func(p *config.Policy) { p.SubjectTokenTypes = []string{"saml1"} }, `subject_token_types[0]: token type "saml1"`},
		{"fail/urn-instead-of-short-name", func(p *config.Policy) { p.SubjectTokenTypes = []string{string(oauth.TokenTypeJWT)} }, "subject_token_types[0]"},
		{"fail/unissuable-requested-type", func(p *config.Policy) { p.RequestedTokenTypes = []string{"saml2"} },
			`exchange.policies[1].requested_token_types[0]: token type "saml2" is not one of access_token, jwt, id_token, refresh_token`},
		{"fail/duplicate-name", func(p *config.Policy) { p.Name = "first" }, `exchange.policies[1].name: "first" is already the name of exchange.policies[0]`},
		{"fail/name-clashes-with-default", func(p *config.Policy) { p.Name = "policies[0]" }, `"policies[0]" is already the name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := ok
			if tt.name != "fail/name-clashes-with-default" {
				first.Name = "first"
			}
			p := ok
			tt.bad(&p)
			s, err := Compile([]config.Policy{first, p})
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Compile error = %v, want %q", err, tt.msg)
			}
			if s != nil {
				t.Fatal("Compile returned a Set with its error")
			}
		})
	}
}

func TestForClient(t *testing.T) {
	s, err := Compile([]config.Policy{
		{Name: "a1", Client: "a", Audiences: []string{"x"}},
		{Name: "b1", Client: "b", Audiences: []string{"x"}},
		{Name: "a2", Client: "a", Audiences: []string{"y"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	names := func(rs []*Rule) (out []string) {
		for _, r := range rs {
			out = append(out, r.Name)
		}
		return out
	}
	if got := names(s.ForClient("a")); !reflect.DeepEqual(got, []string{"a1", "a2"}) {
		t.Errorf("ForClient(a) = %q, want config order [a1 a2]", got)
	}
	if got := names(s.ForClient("b")); !reflect.DeepEqual(got, []string{"b1"}) {
		t.Errorf("ForClient(b) = %q", got)
	}
	if got := s.ForClient("c"); got != nil {
		t.Errorf("ForClient(c) = %v, want nil", got)
	}
	if got := names(s.Rules()); !reflect.DeepEqual(got, []string{"a1", "b1", "a2"}) {
		t.Errorf("Rules() = %q", got)
	}
}

func mustRule(t *testing.T, p config.Policy) *Rule {
	t.Helper()
	if p.Name == "" {
		p.Name = "r"
	}
	if p.Client == "" {
		p.Client = "c"
	}
	if p.Audiences == nil {
		p.Audiences = []string{"https://a", "https://b"}
	}
	s, err := Compile([]config.Policy{p})
	if err != nil {
		t.Fatal(err)
	}
	return s.Rules()[0]
}

// TestMatch covers each predicate with a match and a mismatch, and the explanation.
func TestMatch(t *testing.T) {
	def := mustRule(t, config.Policy{})
	wide := mustRule(t, config.Policy{SubjectIssuers: []string{"self", "entra"}, SubjectTokenTypes: []string{"jwt", "access_token"},
		RequireMayAct: true, MaxChain: 2, Mode: "impersonation", RequestedTokenTypes: []string{"jwt", "id_token"}, RequireBinding: true})
	tests := []struct {
		name string
		got  error
		want string // "" = match
	}{
		{"ok/subject-default", def.MatchSubject("self", oauth.TokenTypeAccessToken), ""},
		{"fail/subject-issuer", def.MatchSubject("entra", oauth.TokenTypeAccessToken), `policy r does not accept subject tokens from issuer "entra" (accepts self)`},
		{"fail/subject-type", def.MatchSubject("self", oauth.TokenTypeJWT), "policy r does not accept subject tokens of type jwt (accepts access_token)"},
		{"fail/subject-unknown-type", def.MatchSubject("self", "urn:x"), `policy r does not accept subject tokens of type "urn:x" (accepts access_token)`},
		{"ok/subject-listed", wide.MatchSubject("entra", oauth.TokenTypeJWT), ""},
		{"fail/subject-issuer-listed-type-not", wide.MatchSubject("entra", oauth.TokenTypeSAML2), "of type saml2 (accepts jwt, access_token)"},

		{"ok/may-act-not-required", def.MatchMayAct(false), ""},
		{"ok/may-act-required-present", wide.MatchMayAct(true), ""},
		{"fail/may-act-required", wide.MatchMayAct(false), "policy r requires a may_act claim in the subject token"},

		{"ok/binding-not-required", def.MatchBinding(false), ""},
		{"ok/binding-required-bound", wide.MatchBinding(true), ""},
		{"fail/binding-required", wide.MatchBinding(false), "policy r requires a sender-constrained request (require_binding)"},

		{"ok/delegation-chain-at-default-max", def.MatchChain(3), ""},
		{"fail/delegation-chain-over-default-max", def.MatchChain(4), "policy r allows an act chain of at most 4 in delegation, the issued token would carry 5"},
		{"ok/impersonation-chain-at-max", wide.MatchChain(2), ""},
		{"fail/impersonation-chain-over-max", wide.MatchChain(3), "policy r allows an act chain of at most 2 in impersonation, the issued token would carry 3"},

		{"ok/targets", def.MatchTargets([]string{"https://b", "https://a"}), ""},
		{"ok/no-targets", def.MatchTargets(nil), ""},
		{"fail/target", def.MatchTargets([]string{"https://a", "https://x", "https://y"}), `policy r does not allow audience "https://x"`},

		{"ok/requested-default", def.MatchRequestedType(oauth.TokenTypeAccessToken), ""},
		{"fail/requested-default", def.MatchRequestedType(oauth.TokenTypeRefreshToken), "policy r does not allow requested token type refresh_token (allows access_token)"},
		{"ok/requested-listed", wide.MatchRequestedType(oauth.TokenTypeIDToken), ""},
		{"fail/requested-not-listed", wide.MatchRequestedType(oauth.TokenTypeAccessToken), "(allows jwt, id_token)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want == "" {
				if tt.got != nil {
					t.Fatalf("mismatch %v, want a match", tt.got)
				}
				return
			}
			var m *Mismatch
			if !errors.As(tt.got, &m) || m.Rule != "r" {
				t.Fatalf("got %#v, want a *Mismatch of rule r", tt.got)
			}
			if !strings.Contains(tt.got.Error(), tt.want) {
				t.Fatalf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestChainDepth(t *testing.T) {
	del := mustRule(t, config.Policy{})
	imp := mustRule(t, config.Policy{Mode: "impersonation"})
	if del.ChainDepth(2) != 3 || imp.ChainDepth(2) != 2 || del.ChainDepth(0) != 1 || imp.ChainDepth(0) != 0 {
		t.Fatal("ChainDepth: delegation adds one actor, impersonation none")
	}
}

func TestScopes(t *testing.T) {
	unbounded := mustRule(t, config.Policy{})
	bounded := mustRule(t, config.Policy{Scopes: []string{"a"}})
	if unbounded.BoundsScopes() || !unbounded.AllowsScope("anything") {
		t.Error("a rule listing no scopes must impose no bound")
	}
	if !bounded.BoundsScopes() || !bounded.AllowsScope("a") || bounded.AllowsScope("b") || bounded.AllowsScope("") {
		t.Error("a rule listing scopes allows exactly those")
	}
	if !bounded.AllowsAudience("https://a") || bounded.AllowsAudience("https://c") {
		t.Error("AllowsAudience")
	}
}

func TestMismatches(t *testing.T) {
	ms := Mismatches{&Mismatch{Rule: "a", Reason: "does x"}, &Mismatch{Rule: "b", Reason: "does y"}}
	if got, want := ms.Error(), "policy a does x; policy b does y"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var m *Mismatch
	if !errors.As(ms, &m) || m.Rule != "a" {
		t.Errorf("errors.As does not find the first *Mismatch")
	}
}

func TestTypeName(t *testing.T) {
	if got := TypeName(oauth.TokenTypeSAML2); got != "saml2" {
		t.Errorf("TypeName(saml2) = %q", got)
	}
	if got := TypeName("urn:x\n"); got != `"urn:x\n"` {
		t.Errorf("TypeName of an unknown type = %q, want it quoted", got)
	}
}

// TestPredicatesAgreeWithMatch checks that each predicate and its explanation give
// the same answer, so a refusal is always explained and never explained wrongly.
func TestPredicatesAgreeWithMatch(t *testing.T) {
	rules := []*Rule{
		mustRule(t, config.Policy{}),
		mustRule(t, config.Policy{SubjectIssuers: []string{"self", "entra"}, SubjectTokenTypes: []string{"jwt", "saml2"},
			RequireMayAct: true, MaxChain: 2, Mode: "impersonation", RequestedTokenTypes: []string{"jwt", "refresh_token"}}),
	}
	types := []oauth.TokenType{oauth.TokenTypeAccessToken, oauth.TokenTypeJWT, oauth.TokenTypeIDToken, oauth.TokenTypeRefreshToken, oauth.TokenTypeSAML2, "", "urn:x"}
	agree := func(what string, allows bool, match error) {
		t.Helper()
		if allows != (match == nil) {
			t.Errorf("%s: predicate %v, explanation %v", what, allows, match)
		}
	}
	for _, r := range rules {
		for _, typ := range types {
			for _, iss := range []string{"self", "entra", "corp", ""} {
				agree("subject "+iss+" "+string(typ), r.AcceptsSubject(iss, typ), r.MatchSubject(iss, typ))
			}
			agree("requested "+string(typ), r.AllowsRequestedType(typ), r.MatchRequestedType(typ))
		}
		for _, present := range []bool{false, true} {
			agree("may_act", r.AllowsMayAct(present), r.MatchMayAct(present))
		}
		for depth := 0; depth < 7; depth++ {
			agree("chain "+strconv.Itoa(depth), r.AllowsChain(depth), r.MatchChain(depth))
		}
		for _, ts := range [][]string{nil, {"https://a"}, {"https://b", "https://a"}, {"https://a", "https://c"}, {""}} {
			agree("targets "+strings.Join(ts, ","), r.AllowsTargets(ts), r.MatchTargets(ts))
		}
	}
}
