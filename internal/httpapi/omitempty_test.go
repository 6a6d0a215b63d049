package httpapi

import (
	"net/url"
	"slices"
	"testing"
)

// FuzzOmitEmpty: for any form body, omitEmpty leaves no empty value and no key
// without values, and keeps every non-empty value of every key, in order.
func FuzzOmitEmpty(f *testing.F) {
	for _, seed := range []string{"", "a=", "a=&a=", "a=&a=1&a=&a=2", "actor_token=&actor_token_type=&scope=", "a&b=1", "=&=x", "a=1;b="} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		v, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		orig := url.Values{}
		for k, vs := range v {
			orig[k] = slices.Clone(vs)
		}
		got := omitEmpty(v)
		for k, vs := range got {
			if len(vs) == 0 || slices.Contains(vs, "") {
				t.Fatalf("key %q keeps %q", k, vs)
			}
		}
		for k, vs := range orig {
			want := slices.DeleteFunc(slices.Clone(vs), func(s string) bool { return s == "" })
			if !slices.Equal(got[k], want) {
				t.Fatalf("key %q: %q became %q, want %q", k, vs, got[k], want)
			}
		}
	})
}
