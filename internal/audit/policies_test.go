package audit

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestBoundPolicies(t *testing.T) {
	t.Run("ok/within-bounds-unchanged", func(t *testing.T) {
		l := []PolicyResult{{Policy: "a", Check: "condition", Reason: "condition is false"}, {Policy: "b", Reason: "decides"}}
		got := BoundPolicies(l)
		if len(got) != 2 || &got[0] != &l[0] {
			t.Errorf("a list within bounds changed: %+v", got)
		}
	})
	t.Run("ok/long-reason-cut-list-kept", func(t *testing.T) {
		// A reason quoting what the request sent: an audience of 60 KiB.
		long := `does not allow audience "` + strings.Repeat("é", 30<<10) + `"`
		l := []PolicyResult{{Policy: "a", Check: "targets", Reason: long}, {Policy: strings.Repeat("p", 1000), Check: "condition", Reason: "condition is false"}}
		got := BoundPolicies(l)
		if len(got) != 2 || len(got[0].Reason) > MaxPolicyReasonBytes || !utf8.ValidString(got[0].Reason) ||
			!strings.Contains(got[0].Reason, " bytes, sha256 ") || len(got[1].Policy) > MaxRuleBytes || got[1].Reason != "condition is false" {
			t.Errorf("got %d policies: %.80q… %d bytes, %d bytes", len(got), got[0].Reason, len(got[0].Reason), len(got[1].Policy))
		}
		if l[0].Reason != long {
			t.Error("the list given was written")
		}
	})
	t.Run("ok/many-policies-cut-with-a-marker", func(t *testing.T) {
		var l []PolicyResult
		for range 200 {
			l = append(l, PolicyResult{Policy: "p", Check: "targets", Reason: strings.Repeat("\x01", 400)}) // 6 bytes each as JSON
		}
		got := BoundPolicies(l)
		b, _ := json.Marshal(got)
		last := got[len(got)-1]
		if len(b) > MaxPoliciesBytes || len(got) < 2 || !strings.HasPrefix(last.Policy, "…[") ||
			last.Policy != "…["+strconv.Itoa(len(l)-len(got)+1)+" more]" {
			t.Errorf("%d policies, %d bytes, last %+v", len(got), len(b), last)
		}
	})
}

func TestWithPolicies(t *testing.T) {
	l := []PolicyResult{{Policy: "ledger-to-fraud-check", Check: "condition", Reason: "condition is false"}, {Policy: "b", Reason: "a > b & c"}}
	tests := []struct {
		name, detail, want string
	}{
		{name: "ok/keeps-the-keys-there", detail: `{"grant_type":"g","subject_cnf":{"jkt":"k"}}`,
			want: `{"grant_type":"g","policies":[{"policy":"ledger-to-fraud-check","check":"condition","reason":"condition is false"},{"policy":"b","reason":"a > b & c"}],"subject_cnf":{"jkt":"k"}}`},
		{name: "ok/empty-detail", detail: "",
			want: `{"policies":[{"policy":"ledger-to-fraud-check","check":"condition","reason":"condition is false"},{"policy":"b","reason":"a > b & c"}]}`},
		{name: "fail/detail-not-an-object", detail: `not json`,
			want: `{"policies":[{"policy":"ledger-to-fraud-check","check":"condition","reason":"condition is false"},{"policy":"b","reason":"a > b & c"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := WithPolicies(tt.detail, l)
			if got != tt.want {
				t.Errorf("WithPolicies(%q) =\n%s\nwant\n%s", tt.detail, got, tt.want)
			}
			if back := policiesOf(got); len(back) != 2 || back[0] != l[0] || back[1] != l[1] {
				t.Errorf("policiesOf reads back %+v", back)
			}
		})
	}
	if got := WithPolicies(`{"a":1}`, nil); got != `{"a":1}` {
		t.Errorf("no policies changed the detail: %s", got)
	}
}

func TestPolicyLine(t *testing.T) {
	tests := []struct {
		name string
		p    PolicyResult
		want string
	}{
		{"ok/failed-check", PolicyResult{"ledger-to-fraud-check", "condition", "condition is false"},
			"policy ledger-to-fraud-check: condition — condition is false\n"},
		{"ok/decides", PolicyResult{"api1-to-api2", "", "decides"}, "policy api1-to-api2: decides\n"},
		{"ok/quote-inside-reason", PolicyResult{"p", "targets", `does not allow audience "https://x"`},
			`policy p: targets — does not allow audience "https://x"` + "\n"},
		{"fail/reason-begins-with-quote", PolicyResult{"p", "targets", `"x" is odd`}, `policy p: targets — "\"x\" is odd"` + "\n"},
		{"fail/reason-with-escape", PolicyResult{"p", "condition", "no such key: a\x1b[2J"},
			`policy p: condition — "no such key: a\x1b[2J"` + "\n"},
		{"fail/reason-forging-a-line", PolicyResult{"p\u202e", "condition", "x\n    policy q: decides"},
			`policy "p\u202e": condition — "x\n    policy q: decides"` + "\n"},
		{"fail/empty", PolicyResult{}, "policy -: -\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			writePolicyLine(&b, "", tt.p)
			if b.String() != tt.want {
				t.Errorf("got  %q\nwant %q", b.String(), tt.want)
			}
		})
	}
}

// FuzzPolicies: whatever the policies' names and reasons hold (a reason quotes
// the request), the Detail WithPolicies writes is a JSON object within
// MaxDetailBytes that keeps the other keys, each reason within its bound, and
// the trace shows each policy on one line of its own with nothing a terminal
// would obey.
func FuzzPolicies(f *testing.F) {
	f.Add("ledger-to-fraud-check", "condition", "condition is false", 1)
	f.Add("p", "targets", `does not allow audience "https://x"`, 3)
	f.Add("p\u202e", "", "x\n    policy q: decides\x1b[2J", 300)
	f.Fuzz(func(t *testing.T, name, check, reason string, n int) {
		n = max(1, min(n, 1000))
		l := make([]PolicyResult, n)
		for i := range l {
			l[i] = PolicyResult{Policy: name, Check: check, Reason: strings.Repeat(reason, 1+i%3)}
		}
		d := WithPolicies(`{"subject_cnf":{"jkt":"k"}}`, l)
		var back struct {
			SubjectCnf struct{ JKT string } `json:"subject_cnf"`
			Policies   []PolicyResult       `json:"policies"`
		}
		if len(d) > MaxDetailBytes || json.Unmarshal([]byte(d), &back) != nil || back.SubjectCnf.JKT != "k" || len(back.Policies) == 0 || len(back.Policies) > n {
			t.Fatalf("detail of %d bytes: %.200s", len(d), d)
		}
		for _, p := range back.Policies {
			if len(p.Reason) > MaxPolicyReasonBytes || len(p.Policy) > MaxRuleBytes {
				t.Fatalf("policy of %d bytes, reason of %d bytes", len(p.Policy), len(p.Reason))
			}
		}
		var b strings.Builder
		writeEventLine(&b, "", Event{Relation: RelDenied, Policies: policiesOf(d)})
		if lines := strings.Count(b.String(), "\n"); lines != 1+len(back.Policies) {
			t.Fatalf("%d policies on %d lines:\n%s", len(back.Policies), lines-1, b.String())
		}
		if r, bad := rawUnsafe(b.String()); bad {
			t.Fatalf("trace text holds %U raw: %q", r, b.String())
		}
	})
}
