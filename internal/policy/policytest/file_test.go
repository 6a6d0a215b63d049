package policytest

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/oauth"
)

const goodFile = `# comment
- name: payments reaches the ledger
  client: payments
  subject:
    claims: {sub: alice, scope: "ledger:write", act: {sub: web-app}, tenant: 42}
    issuer: self
    type: access_token
  actor: payments
  audience: [https://ledger.bank.example]
  resource: https://ledger.bank.example
  scope: ledger:write
  requested_token_type: jwt
  expect: {allow: true, rule: payments-to-ledger, scopes: ["ledger:write"]}
- name: refused
  client: ledger
  now: 2026-12-07T10:00:00+01:00
  binding: {x5t#S256: bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2}
  expect:
    error: invalid_request
- name: bound by DPoP
  client: ledger
  binding:
    jkt: 0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I
  expect: {error: invalid_request}
`

func TestParse(t *testing.T) {
	cases, err := Parse("t.yaml", []byte(goodFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 3 {
		t.Fatalf("%d cases", len(cases))
	}
	c := cases[0]
	if c.Name != "payments reaches the ledger" || c.Where != "t.yaml:2" || c.Client != "payments" || c.ClientWhere != "t.yaml:3" {
		t.Errorf("case %+v", c)
	}
	if string(c.Subject.Claims) != `{"act":{"sub":"web-app"},"scope":"ledger:write","sub":"alice","tenant":42}` || c.Subject.Issuer != "self" || c.Subject.Type != "access_token" {
		t.Errorf("subject %+v (claims %s)", c.Subject, c.Subject.Claims)
	}
	if c.Actor != "payments" || !slices.Equal(c.Audiences, []string{"https://ledger.bank.example"}) ||
		!slices.Equal(c.Resources, []string{"https://ledger.bank.example"}) || c.Scope != "ledger:write" || c.RequestedTokenType != "jwt" {
		t.Errorf("request %+v", c.Input)
	}
	if !c.Expect.Allow || c.Expect.Rule != "payments-to-ledger" || !slices.Equal(c.Expect.Scopes, []string{"ledger:write"}) {
		t.Errorf("expect %+v", c.Expect)
	}
	if e := cases[1].Expect; e.Allow || e.Error != "invalid_request" || e.Scopes != nil {
		t.Errorf("expect %+v", e)
	}
	if !c.Now.IsZero() || c.Binding != nil {
		t.Errorf("now %v, binding %+v: want neither", c.Now, c.Binding)
	}
	if c := cases[1]; !c.Now.Equal(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)) ||
		!reflect.DeepEqual(c.Binding, &oauth.Confirmation{X5TS256: "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}) {
		t.Errorf("now %v, binding %+v", c.Now, c.Binding)
	}
	if c := cases[2]; !reflect.DeepEqual(c.Binding, &oauth.Confirmation{JKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}) {
		t.Errorf("binding %+v", c.Binding)
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"fail/unknown-key", "- name: a\n  client: c\n  expect: {error: x}\n  audiences: [b]\n", `t.yaml:4:3: unknown key "audiences"`},
		{"fail/unknown-subject-key", "- name: a\n  client: c\n  subject:\n    claim: {sub: x}\n  expect: {error: x}\n", `t.yaml:4:5: unknown key "claim" in subject`},
		{"fail/unknown-expect-key", "- name: a\n  client: c\n  expect: {allow: true, scope: [x]}\n", `t.yaml:3:25: unknown key "scope" in expect`},
		{"fail/no-expect", "- name: a\n  client: c\n", "t.yaml:1:3: the case has no expect"},
		{"fail/no-client", "- name: a\n  expect: {error: x}\n", "t.yaml:1:3: the case has no client"},
		{"fail/allow-and-error", "- name: a\n  client: c\n  expect: {allow: true, error: x}\n", "expect needs either allow: true or error: CODE"},
		{"fail/allow-false", "- name: a\n  client: c\n  expect: {allow: false}\n", "expect.allow must be true"},
		{"fail/rule-with-error", "- name: a\n  client: c\n  expect: {error: x, rule: r}\n", "expect.rule and expect.scopes go with allow: true"},
		{"fail/not-a-list", "name: a\nclient: c\n", "the file must be a YAML list of cases"},
		{"fail/empty", "# nothing\n", "no test cases"},
		{"fail/empty-list", "[]\n", "no test cases"},
		{"fail/duplicate-name", "- {name: a, client: c, expect: {error: x}}\n- {name: a, client: c, expect: {error: x}}\n", `t.yaml:2:4: name "a" is already the name of the case at t.yaml:1`},
		{"fail/duplicate-key", "- name: a\n  name: b\n  client: c\n  expect: {error: x}\n", `t.yaml:2:3: YAML syntax: mapping key "name" already defined`},
		{"fail/syntax", "- name: [a\n", "t.yaml"},
		{"fail/second-document", "- {name: a, client: c, expect: {error: x}}\n---\n- {name: b, client: c, expect: {error: x}}\n", "a second YAML document"},
		{"fail/claims-not-mapping", "- name: a\n  client: c\n  subject: {claims: [x]}\n  expect: {error: x}\n", "subject.claims must be a mapping, not a list"},
		{"fail/colon-in-flow-list", "- name: a\n  client: c\n  expect: {allow: true, scopes: [fraud:check]}\n", `quote a value with a colon`},
		{"fail/case-not-mapping", "- just text\n", "a case must be a mapping"},
		{"fail/now-not-rfc3339", "- name: a\n  client: c\n  now: Monday 10:00\n  expect: {error: x}\n", `t.yaml:3:8: now "Monday 10:00" is not an RFC 3339 time`},
		{"fail/now-without-zone", "- name: a\n  client: c\n  now: 2026-12-07T10:00:00\n  expect: {error: x}\n", `now "2026-12-07T10:00:00" is not an RFC 3339 time`},
		{"fail/binding-two-keys", "- name: a\n  client: c\n  binding: {jkt: a, x5t#S256: b}\n  expect: {error: x}\n", "binding must be one of {jkt: THUMBPRINT}"},
		{"fail/binding-unknown-kind", "- name: a\n  client: c\n  binding: {x5t: a}\n  expect: {error: x}\n", `t.yaml:3:13: unknown binding "x5t"`},
		{"fail/binding-not-a-thumbprint", "- name: a\n  client: c\n  binding: {jkt: a+b}\n  expect: {error: x}\n", `binding jkt "a+b" is not a base64url thumbprint`},
		{"fail/binding-text", "- name: a\n  client: c\n  binding: abc\n  expect: {error: x}\n", "binding must be a mapping"},
		{"fail/anchor", "- name: a\n  client: c\n  subject: &s {claims: {sub: x}}\n  expect: {error: x}\n", "anchor, alias or tag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cases, err := Parse("t.yaml", []byte(tt.src))
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Parse = %v, %v; want an *Error", cases, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

// FuzzParse: any file is parsed or refused with an *Error naming the file, never
// a panic; a parsed case has a name, a client and one expectation.
func FuzzParse(f *testing.F) {
	f.Add(goodFile)
	f.Add("- name: a\n  client: c\n  expect: {error: x}\n  audiences: [b]\n")
	f.Add("- {name: a, client: c, subject: {claims: {sub: x, aud: [a, b], exp: 1e99}}, expect: {allow: true, scopes: a b}}\n")
	f.Add("- name: &x a\n  client: *x\n  expect: {error: x}\n")
	f.Add("- !!map {name: a}\n")
	f.Add("- {name: a, client: c, now: 2026-12-07T10:00:00Z, binding: {x5t#S256: x}, expect: {error: x}}\n")
	f.Fuzz(func(t *testing.T, src string) {
		cases, err := Parse("f.yaml", []byte(src))
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || len(pe.Problems) == 0 {
				t.Fatalf("error %v is not an *Error with problems", err)
			}
			for _, p := range pe.Problems {
				if !strings.HasPrefix(p.Where, "f.yaml") {
					t.Fatalf("problem %q does not name the file", p)
				}
			}
			return
		}
		if len(cases) == 0 {
			t.Fatal("no cases and no error")
		}
		for _, c := range cases {
			if c.Name == "" || c.Client == "" && c.ClientWhere == "" || c.Expect.Allow == (c.Expect.Error != "") {
				t.Fatalf("case %+v", c)
			}
		}
	})
}
