package grant

import (
	"encoding/json"
	"testing"
)

// detailByMarshal is what detailWith must write: encoding/json's map encoding.
func detailByMarshal(grantType, k, v string) string {
	m := map[string]string{}
	if grantType != "" {
		m["grant_type"] = grantType
	}
	if k != "" {
		m[k] = v
	}
	if len(m) == 0 {
		return ""
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func TestDetailWithAsMarshal(t *testing.T) {
	for _, tc := range [][3]string{
		{"", "", ""}, {"client_credentials", "", ""}, {"", "endpoint", "token"},
		{"client_credentials", "withdrawn_jti", "abc"}, {"x", "aaa", "first"}, {"x", "zzz", ""},
		{"x", "grant_type", "override"}, {"", "grant_type", "alone"}, {"<&>", "\xff", "\u2028"},
	} {
		if got, want := detailWith(tc[0], tc[1], tc[2]), detailByMarshal(tc[0], tc[1], tc[2]); got != want {
			t.Errorf("detailWith(%q, %q, %q) = %s, want %s", tc[0], tc[1], tc[2], got, want)
		}
	}
}

func FuzzDetailWith(f *testing.F) {
	f.Add("client_credentials", "mode", "impersonation")
	f.Add("g", "grant_type", "\xff<")
	f.Fuzz(func(t *testing.T, grantType, k, v string) {
		if got, want := detailWith(grantType, k, v), detailByMarshal(grantType, k, v); got != want {
			t.Fatalf("detailWith(%q, %q, %q) = %s, want %s", grantType, k, v, got, want)
		}
	})
}
