package grant

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/deputy-auth/deputy/oauth"
)

// TestParseRequestContext: what request_context accepts, and why it refuses.
func TestParseRequestContext(t *testing.T) {
	nested := func(n int) string { return strings.Repeat(`{"a":`, n-1) + `{}` + strings.Repeat(`}`, n-1) }
	arrays := func(n int) string { return `{"a":` + strings.Repeat(`[`, n-1) + strings.Repeat(`]`, n-1) + `}` }
	tests := []struct {
		name, v, want string // want: the compacted object, or a substring of the refusal
		ok            bool
	}{
		{"ok/empty", ``, ``, true},
		{"ok/object", ` {"a": 1, "b": [1, {"c": "x"}]} `, `{"a":1,"b":[1,{"c":"x"}]}`, true},
		{"ok/same-name-in-different-objects", `{"a":{"a":1},"b":[{"a":1},{"a":2}]}`, `{"a":{"a":1},"b":[{"a":1},{"a":2}]}`, true},
		{"ok/depth-32", nested(32), nested(32), true},
		{"ok/array-depth-32", arrays(32), arrays(32), true},
		{"ok/large-number-in-range", `{"n":1e308,"m":-12345678901234567890}`, `{"n":1e308,"m":-12345678901234567890}`, true},
		{"ok/html-characters", `{"a":"<&>"}`, `{"a":"<&>"}`, true},
		{"fail/not-object", `["a"]`, "not a JSON object", false},
		{"fail/null", `null`, "not a JSON object", false},
		{"fail/trailing", `{} {}`, "not a JSON object", false},
		{"fail/trailing-garbage", `{}x`, "not a JSON object", false},
		{"fail/truncated", `{"a":[1,`, "not a JSON object", false},
		{"fail/duplicate-name", `{"amount":1,"amount":1000000}`, "member name twice", false},
		{"fail/duplicate-name-escaped", `{"a":1,"\u0061":2}`, "member name twice", false},
		{"fail/duplicate-name-nested", `{"x":[{"k":1,"k":2}]}`, "member name twice", false},
		{"fail/depth-33", nested(33), "nested more than 32 deep", false},
		{"fail/array-depth-33", arrays(33), "nested more than 32 deep", false},
		{"fail/depth-2000", nested(2000)[:MaxRequestContextBytes-10] + `}`, "nested more than 32 deep", false},
		{"fail/number-out-of-range", `{"amount":1e400}`, "number out of range", false},
		{"fail/number-out-of-range-nested", `{"a":[-1e999]}`, "number out of range", false},
		{"fail/not-utf8", "{\"a\":\"\xff\"}", "not a JSON object", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRequestContext(tt.v)
			if tt.ok {
				if err != nil || string(got) != tt.want {
					t.Fatalf("parseRequestContext(%.60q) = %s, %v; want %s", tt.v, got, err, tt.want)
				}
				return
			}
			oe, ok := err.(*oauth.Error)
			if !ok || oe.Code != oauth.CodeInvalidRequest || !strings.Contains(oe.Description, tt.want) || got != nil {
				t.Fatalf("parseRequestContext(%.60q) = %s, %v; want invalid_request …%s…", tt.v, got, err, tt.want)
			}
		})
	}
}

// FuzzRequestContext: parseRequestContext, which reads the request_context
// parameter from outside, never panics, and what it accepts is a JSON object of
// at most MaxRequestContextBytes as sent, compacted, nested at most
// MaxRequestContextDepth deep, that the verifiers read (as map[string]any).
func FuzzRequestContext(f *testing.F) {
	for _, s := range []string{``, `{}`, ` {"a": 1} `, `{"a":{"b":[1,2,"x"]}}`, `[]`, `null`, `"x"`, `{} {}`, `{"a":`, `{"a":"\u0000"}`, "{\"a\":\"\xff\"}",
		`{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"a":[{"b":1,"b":1}]}`, `{"amount":1e400}`, `{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
		`{"a":"<&>"}`, `{"a":{},"b":{"a":1}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, err := parseRequestContext(v)
		if err != nil {
			if got != nil {
				t.Fatalf("parseRequestContext(%q) = %s with error %v", v, got, err)
			}
			return
		}
		if v == "" {
			if got != nil {
				t.Fatalf("parseRequestContext(\"\") = %s", got)
			}
			return
		}
		if len(v) > MaxRequestContextBytes || len(got) > len(v) || !utf8.Valid(got) {
			t.Fatalf("accepted %d bytes (%d compacted)", len(v), len(got))
		}
		var m map[string]any
		if err := json.Unmarshal(got, &m); err != nil || m == nil {
			t.Fatalf("accepted %q as %s, which is not a JSON object: %v", v, got, err)
		}
		if d := depth(got); d > MaxRequestContextDepth {
			t.Fatalf("accepted %q, nested %d deep", v, d)
		}
	})
}

// depth is the deepest nesting of objects and arrays in the JSON text b.
func depth(b []byte) int {
	d, deepest, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			d++
			deepest = max(deepest, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return deepest
}
