package condition

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC) // a Monday

func input() *Input {
	return &Input{
		Subject: &Subject{
			Sub: "alice", Iss: "https://deputy.example", Type: "access_token",
			Claims: map[string]any{"tenant": "bank", "amount": 1500.0, "acr": "mfa", "auth_time": now.Add(-30 * time.Minute).Unix(), "groups": []any{"tellers", "audit"}},
			Scopes: []string{"ledger:read", "ledger:write"},
			Aud:    []string{"https://api1.example"},
			Act:    []map[string]string{{"sub": "payments", "iss": "https://deputy.example"}, {"sub": "web-app", "iss": "https://deputy.example"}},
		},
		Actor:   &Actor{Sub: "ledger", Iss: "https://deputy.example"},
		Client:  "ledger",
		Request: &Request{Audiences: []string{"https://fraud.example"}, Scopes: []string{"fraud:check"}, RequestedTokenType: "access_token"},
		Now:     now,
	}
}

func TestEval(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      bool
	}{
		{"claim-equals", `subject.claims.tenant == "bank"`, true},
		{"claim-differs", `subject.claims.tenant == "insurer"`, false},
		{"number-claim-against-int", `subject.claims.amount > 1000`, true},
		{"optional-missing-claim", `subject.claims.?region.orValue("eu") == "eu"`, true},
		{"has-missing-claim", `has(subject.claims.region)`, false},
		{"list-claim", `"audit" in subject.claims.groups`, true},
		{"act-outermost-first", `subject.act[0].sub == "payments" && subject.act[1].sub == "web-app"`, true},
		{"act-size", `size(subject.act) == 2`, true},
		{"actor-and-client", `actor.sub == client && actor.iss == subject.iss`, true},
		{"request-scopes", `request.scopes.all(s, s.startsWith("fraud:"))`, true},
		{"request-audience", `"https://fraud.example" in request.audiences && size(request.resources) == 0`, true},
		{"requested-type", `request.requested_token_type == "access_token"`, true},
		{"subject-fields", `subject.sub == "alice" && subject.type == "access_token" && "ledger:write" in subject.scopes && subject.aud[0].endsWith("api1.example")`, true},
		{"business-hours", `now.getDayOfWeek("UTC") in [1, 2, 3, 4, 5] && now.getHours("UTC") >= 8 && now.getHours("UTC") < 18`, true},
		{"fresh-sign-in", `now - timestamp(subject.claims.auth_time) < duration("1h")`, true},
		{"strings-extension", `subject.claims.tenant.upperAscii() == "BANK"`, true},
		{"multi-line", "subject.sub == \"alice\" &&\n  subject.claims.acr == \"mfa\"", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compile(tc.src)
			if err != nil {
				t.Fatalf("Compile(%q): %v", tc.src, err)
			}
			got, err := c.Eval(input())
			if err != nil || got != tc.want {
				t.Fatalf("Eval(%q) = %v, %v; want %v", tc.src, got, err, tc.want)
			}
			if c.String() != tc.src {
				t.Errorf("String() = %q", c.String())
			}
		})
	}
}

func TestEvalEmptyInput(t *testing.T) {
	// A subject with no claims, scopes, aud or act: the lists and map are empty, not
	// missing.
	c, err := Compile(`size(subject.claims) == 0 && size(subject.scopes) == 0 && size(subject.aud) == 0 && size(subject.act) == 0 && size(request.audiences) == 0`)
	if err != nil {
		t.Fatal(err)
	}
	in := &Input{Subject: &Subject{Sub: "alice"}, Actor: &Actor{}, Request: &Request{}, Now: now}
	if ok, err := c.Eval(in); !ok || err != nil {
		t.Fatalf("Eval = %v, %v", ok, err)
	}
}

// TestCompileRefuses covers the bad conditions of issue 15: each is refused when
// the configuration is loaded, with its line and column.
func TestCompileRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, src  string
		line, col  int
		msgContain string
	}{
		{"fail/syntax", `subject.sub == `, 1, 16, "Syntax error"},
		{"fail/unbalanced", `(subject.sub == "a"`, 1, 20, "Syntax error"},
		{"fail/non-bool", `subject.sub`, 1, 1, "is of type string, not bool"},
		{"fail/non-bool-dyn-claim", `subject.claims.admin`, 1, 1, "not bool"},
		{"fail/unknown-variable", `tenant == "bank"`, 1, 1, "undeclared reference to 'tenant'"},
		{"fail/unknown-field", `subject.claim.tenant == "bank"`, 1, 8, "undefined field 'claim'"},
		{"fail/unknown-actor-field", `actor.name == "x"`, 1, 6, "undefined field 'name'"},
		{"fail/unknown-variable-second-line", "subject.sub == \"a\" &&\n    tennant == \"b\"", 2, 5, "undeclared reference to 'tennant'"},
		{"fail/type-mismatch", `subject.sub == 1`, 1, 13, "no matching overload"},
		{"fail/cost-limit", `subject.scopes.all(a, subject.scopes.all(b, subject.scopes.all(c, a + b + c != "")))`, 1, 1, "more than the limit of 10000"},
		{"fail/empty", "  ", 1, 1, "is empty"},
		{"fail/too-long", strings.Repeat(`subject.sub == "a" || `, 200) + "true", 1, 1, "more than 4096"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.src)
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("Compile(%q) = %v, want a *condition.Error", tc.src, err)
			}
			p := ce.Problems[0]
			if tc.col != 0 && (p.Line != tc.line || p.Column != tc.col) {
				t.Errorf("position %d:%d, want %d:%d (%s)", p.Line, p.Column, tc.line, tc.col, p.Message)
			}
			if !strings.Contains(p.Message, tc.msgContain) {
				t.Errorf("message %q does not contain %q", p.Message, tc.msgContain)
			}
		})
	}
}

// TestEvalFailsClosed: what cannot be evaluated is an error, never true or false.
func TestEvalFailsClosed(t *testing.T) {
	big := make([]any, 20_000)
	for i := range big {
		big[i] = "g"
	}
	for _, tc := range []struct {
		name, src string
		in        func(*Input)
		want      string
	}{
		{"fail/missing-claim", `subject.claims.tenant == "bank"`, func(in *Input) { delete(in.Subject.Claims, "tenant") }, "no such key: tenant"},
		{"fail/missing-claim-on-or", `subject.claims.region == "eu" || subject.sub == "bob"`, nil, "no such key: region"},
		{"fail/claim-of-other-type", `subject.claims.tenant.startsWith("b")`, func(in *Input) { in.Subject.Claims["tenant"] = 7.0 }, "no such overload"},
		{"fail/create-input-type", `deputy.Actor{sub: "x"} == actor`, nil, "cannot be created"},
		{"fail/act-index-out-of-range", `subject.act[5].sub == "x"`, nil, "index"},
		// Within the compile-time estimate (a list of up to 64), beyond the limit
		// at run time, where the token's list is far longer.
		{"fail/runtime-cost-limit", `subject.claims.groups.all(g, g == "g")`, func(in *Input) { in.Subject.Claims["groups"] = big }, "cost limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compile(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			in := input()
			if tc.in != nil {
				tc.in(in)
			}
			got, err := c.Eval(in)
			if err == nil || got {
				t.Fatalf("Eval = %v, %v; want an error", got, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestEvalConcurrent(t *testing.T) {
	c, err := Compile(`subject.claims.tenant == "bank" && size(subject.act) > 0`)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan bool)
	for range 8 {
		go func() {
			ok := true
			for range 200 {
				got, err := c.Eval(input())
				ok = ok && got && err == nil
			}
			done <- ok
		}()
	}
	for range 8 {
		if !<-done {
			t.Fatal("a concurrent evaluation failed")
		}
	}
}

// FuzzCompile: any text either compiles to a condition that evaluates without
// panicking, or is refused with positioned problems.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		`subject.claims.tenant == "bank"`, `size(subject.act) > 0 && subject.act[0].sub == "payments"`,
		`subject.claims.?x.orValue(1) == 1`, `now.getHours("Europe/Berlin") < 18`, `request.scopes.exists(s, s.matches("^ledger:"))`,
		`"a" in request.audiences`, `subject.sub == `, `[1,2,3].map(x, x * 2).size() == 3`, `timestamp("2026-01-01T00:00:00Z") < now`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		c, err := Compile(src)
		if err != nil {
			var ce *Error
			if errors.As(err, &ce) {
				for _, p := range ce.Problems {
					if p.Line < 1 || p.Column < 1 {
						t.Fatalf("problem without a position: %+v", p)
					}
				}
			}
			return
		}
		_, _ = c.Eval(input())
	})
}

// TestCompileRefusesAtRunTimeFailures: what would only fail, or cost without
// bound, when a request is decided is refused at load (review findings).
func TestCompileRefusesAtRunTimeFailures(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		col       int
		want      string
	}{
		{"fail/unknown-time-zone", `now.getHours("Europe/Pariss") < 18`, 14, `"Europe/Pariss" is not a time zone`},
		{"fail/unknown-time-zone-day", `now.getDayOfWeek("Mars/Olympus") != 0`, 18, "is not a time zone"},
		{"fail/replace-from-token", `subject.claims.x.replace("a", subject.claims.x) == ""`, 45, "must be a constant text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.src)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Compile = %v, want a *condition.Error", err)
			}
			if p := ce.Problems[0]; p.Column != tc.col || !strings.Contains(p.Message, tc.want) {
				t.Errorf("problem %+v, want column %d and %q", p, tc.col, tc.want)
			}
		})
	}
	for _, ok := range []string{
		`now.getHours("Europe/Paris") >= 8`, `now.getHours("+02:00") >= 8`, `now.getMinutes("UTC") < 30`,
		`subject.claims.email.replace("@", " at ") != ""`,
	} {
		c, err := Compile(ok)
		if err != nil {
			t.Errorf("Compile(%q): %v", ok, err)
			continue
		}
		if _, err := c.Eval(input()); err != nil && !strings.Contains(err.Error(), "no such key") {
			t.Errorf("Eval(%q): %v", ok, err)
		}
	}
}

// TestTimeZoneAccessors: the accessors redefined on cached zones answer as CEL's
// own (0-based month, day of year and day of month; 1-based date; Sunday 0).
func TestTimeZoneAccessors(t *testing.T) {
	// now is Monday 2026-03-02 09:30 UTC: 10:30 in Paris, 01:30 in -08:00.
	for src, want := range map[string]bool{
		`now.getHours("Europe/Paris") == 10 && now.getMinutes("Europe/Paris") == 30`:                  true,
		`now.getHours("-08:00") == 1 && now.getHours("2:00") == 11 && now.getMinutes("+05:45") == 15`: true,
		`now.getDayOfWeek("Europe/Paris") == 1 && now.getDayOfWeek("-10:00") == 0`:                    true,
		`now.getFullYear("UTC") == 2026 && now.getMonth("UTC") == 2 && now.getDate("UTC") == 2`:       true,
		`now.getDayOfMonth("UTC") == 1 && now.getDayOfYear("UTC") == 60`:                              true,
		`now.getSeconds("America/New_York") == 0 && now.getMilliseconds("Asia/Tokyo") == 0`:           true,
		`now.getHours("Europe/Paris") == now.getHours()`:                                              false,
	} {
		c, err := Compile(src)
		if err != nil {
			t.Fatalf("Compile(%q): %v", src, err)
		}
		if got, err := c.Eval(input()); err != nil || got != want {
			t.Errorf("Eval(%q) = %v, %v; want %v", src, got, err, want)
		}
	}
}
