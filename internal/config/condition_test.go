package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConditionProblems: a condition that does not type-check is refused at load,
// at the line and column of the fault in the file, in every YAML scalar style (plain,
// double- or single-quoted, literal or folded block; on one line or several, with
// escapes, doubled quotes, blank lines, more-indented lines), through an alias, or
// in the variable when it comes from the environment.
func TestConditionProblems(t *testing.T) {
	const base = `audiences:
  - id: https://api2.example
    client: api2
clients:
  - id: api1
    secret: s
    grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]
  - id: api2
    secret: s
    grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"]
exchange:
  policies:
    - client: api1
      audiences: ["https://api2.example"]
`
	for _, tc := range []struct {
		name string
		cond string // the condition key and value, indented as a policy key
		env  []string
		want []string // problems, with FILE for the file
	}{
		{"ok/plain", `      condition: subject.claims.?tenant.orValue("") == "bank"`, nil, nil},
		{"ok/block", "      condition: |\n        size(subject.act) > 0 &&\n          subject.act[0].sub == \"payments\"", nil, nil},
		{"fail/plain-unknown-field", `      condition: subject.claim.tenant == "bank"`, nil,
			[]string{`FILE:15:25: exchange.policies[0].condition: undefined field 'claim'`}},
		{"fail/double-quoted", `      condition: "subject.sub"`, nil,
			[]string{`FILE:15:19: exchange.policies[0].condition: is of type string, not bool; compare it, as in (subject.sub) == true`}},
		{"fail/single-quoted-unknown-variable", `      condition: 'tenant == "bank"'`, nil,
			[]string{`FILE:15:19: exchange.policies[0].condition: undeclared reference to 'tenant'`}},
		{"fail/block-second-line", "      condition: |\n        subject.sub == \"alice\" &&\n          tennant == \"x\"", nil,
			[]string{`FILE:17:11: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/two-problems", `      condition: foo == 1 && bar == 2`, nil, []string{
			`FILE:15:18: exchange.policies[0].condition: undeclared reference to 'foo'`,
			`FILE:15:30: exchange.policies[0].condition: undeclared reference to 'bar'`}},
		{"fail/cost", `      condition: subject.scopes.all(a, subject.scopes.all(b, subject.scopes.all(c, a + b + c != "")))`, nil,
			[]string{`FILE:15:18: exchange.policies[0].condition: may cost up to`}},
		{"fail/plain-multi-line", "      condition: subject.sub == \"alice\" &&\n        tennant == \"x\"", nil,
			[]string{`FILE:16:9: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/plain-multi-line-deeper", "      condition: subject.sub == \"alice\" &&\n             tennant == \"x\"", nil,
			[]string{`FILE:16:14: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/plain-multi-line-trailing-spaces-and-tab", "      condition: subject.sub == \"alice\" &&   \n        \t tennant == \"x\"", nil,
			[]string{`FILE:16:11: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/plain-multi-line-number-first", "      condition: 1 == 1 &&\n        tennant == \"x\"", nil,
			[]string{`FILE:16:9: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/plain-after-comment", "      condition: # who may\n        subject.sub == \"alice\" && tennant == \"x\"", nil,
			[]string{`FILE:16:35: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/plain-multi-line-blank-line", "      condition: subject.sub == \"alice\" &&\n\n        tennant == \"x\"", nil,
			[]string{`FILE:17:9: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/plain-wide-characters", `      condition: subject.sub == "é€😀" && tennant == "x"`, nil,
			[]string{`FILE:15:42: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/double-quoted-escapes", `      condition: "subject.sub == \"a\\b\" && tennant == \"x\""`, nil,
			[]string{`FILE:15:46: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/double-quoted-unicode-escape", `      condition: "'caf\u00e9\x21' == 'x' && tennant == 'x'"`, nil,
			[]string{`FILE:15:45: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/double-quoted-newline-escape", `      condition: "subject.sub == 'a' &&\n   tennant == 'x'"`, nil,
			[]string{`FILE:15:45: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/double-quoted-multi-line", "      condition: \"subject.sub == 'alice' &&\n        tennant == 'x'\"", nil,
			[]string{`FILE:16:9: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/double-quoted-multi-line-deeper", "      condition: \"subject.sub == 'alice' &&  \n\n            tennant == 'x'\"", nil,
			[]string{`FILE:17:13: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/double-quoted-escaped-line-break", "      condition: \"subject.sub == 'alice' && \\\n          tennant == 'x'\"", nil,
			[]string{`FILE:16:11: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/single-quoted-doubled-quote", `      condition: 'subject.sub == "it''s" && tennant == "x"'`, nil,
			[]string{`FILE:15:45: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/single-quoted-multi-line", "      condition: 'subject.sub == \"it''s\" &&\n        tennant == \"x\"'", nil,
			[]string{`FILE:16:9: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/single-quoted-multi-line-deeper", "      condition: 'subject.sub == \"alice\" &&\n\n           tennant == \"x\"'", nil,
			[]string{`FILE:17:12: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/block-strip-deeper", "      condition: |-\n            subject.sub == \"alice\" &&\n\n              tennant == \"x\"", nil,
			[]string{`FILE:18:15: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/block-indentation-indicator", "      condition: |4\n            subject.sub == \"alice\" &&\n          tennant == \"x\"", nil,
			[]string{`FILE:17:11: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/folded", "      condition: >\n        subject.sub == \"alice\" &&\n        tennant == \"x\"", nil,
			[]string{`FILE:17:9: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/folded-strip-deeper", "      condition: >-\n             subject.sub == \"alice\" &&\n             tennant == \"x\"", nil,
			[]string{`FILE:17:14: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/folded-more-indented", "      condition: >-\n        subject.sub == \"alice\"\n          && tennant == \"x\"", nil,
			[]string{`FILE:17:14: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/folded-blank-line", "      condition: >\n        subject.sub == \"alice\" &&\n\n        tennant == \"x\"", nil,
			[]string{`FILE:18:9: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/folded-end", "      condition: >-\n        subject.sub == \"alice\" &&\n        subject.sub ==", nil,
			[]string{`FILE:17:23: exchange.policies[0].condition: Syntax error`}},
		{"fail/from-environment-over-file", `      condition: subject.sub == "alice"`, []string{`DEPUTY_EXCHANGE_POLICIES_0_CONDITION=subject.sub == 1`},
			[]string{`$DEPUTY_EXCHANGE_POLICIES_0_CONDITION:1:13: exchange.policies[0].condition: found no matching overload for '_==_' applied to '(string, int)'`}},
		{"fail/plain-multi-line-crlf", "      condition: subject.sub == \"alice\" &&\r\n        tennant == \"x\"\r", nil,
			[]string{`FILE:16:9: exchange.policies[0].condition: undeclared reference to 'tennant'`}},
		{"fail/alias", "      condition: &c subject.sub == \"alice\" &&\n        tennant == \"x\"\n    - client: api1\n      audiences: [\"https://api2.example\"]\n      condition: *c", nil, []string{
			`FILE:16:9: exchange.policies[0].condition: undeclared reference to 'tennant'`,
			`FILE:16:9: exchange.policies[1].condition: undeclared reference to 'tennant'`}},
		{"fail/number", `      condition: 12`, nil,
			[]string{`FILE:15:18: exchange.policies[0].condition: is of type int, not bool`}},
		{"fail/from-environment", "", []string{`DEPUTY_EXCHANGE_POLICIES_0_CONDITION=subject.sub == 1`},
			[]string{`$DEPUTY_EXCHANGE_POLICIES_0_CONDITION:1:13: exchange.policies[0].condition: found no matching overload for '_==_' applied to '(string, int)'`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "deputy.yaml")
			src := base
			if tc.cond != "" {
				src += tc.cond + "\n"
			}
			if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(file, tc.env)
			ps := problems(t, err)
			if len(ps) != len(tc.want) {
				t.Fatalf("problems %q, want %d: %q", ps, len(tc.want), tc.want)
			}
			for i, p := range ps {
				want := strings.ReplaceAll(tc.want[i], "FILE", file)
				if got := p.String(); !strings.HasPrefix(got, want) {
					t.Errorf("problem %d:\n got %s\nwant %s…", i, got, want)
				}
			}
		})
	}
}
