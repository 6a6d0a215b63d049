package grant

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzRequestContext: parseRequestContext, which reads the request_context
// parameter from outside, never panics, and what it accepts is a JSON object of
// at most MaxRequestContextBytes as sent, compacted.
func FuzzRequestContext(f *testing.F) {
	for _, s := range []string{``, `{}`, ` {"a": 1} `, `{"a":{"b":[1,2,"x"]}}`, `[]`, `null`, `"x"`, `{} {}`, `{"a":`, `{"a":"\u0000"}`, "{\"a\":\"\xff\"}"} {
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
	})
}
