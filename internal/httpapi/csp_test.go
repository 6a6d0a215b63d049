package httpapi

import (
	"strings"
	"testing"
)

// TestFormSource: the CSP source expression of a redirect target (CSP3 §2.3.1).
func TestFormSource(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"ok/https-origin", "https://App.Example/cb?x=1", "https://app.example"},
		{"ok/port", "http://127.0.0.1:9000/callback", "http://127.0.0.1:9000"},
		{"ok/private-use-scheme", "com.example.app:/callback", "com.example.app:"},
		{"ok/private-use-scheme-authority", "com.example.app://callback", "com.example.app:"},
		{"ok/ipv6-falls-back-to-scheme", "http://[::1]:8000/cb", "http:"},
		{"fail/relative", "/cb", ""},
		{"fail/no-host", "https:///cb", ""},
		{"fail/bad-scheme", "1x:/cb", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := formSource(tt.in); got != tt.want {
				t.Errorf("formSource(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzFormSource: whatever the URI, its source expression cannot end the
// form-action directive or add another (no white space, ';', ',' or quote).
func FuzzFormSource(f *testing.F) {
	for _, s := range []string{"https://a.example/cb", "com.example.app:/cb", "http://[::1]:1/", "https://a.example;script-src *", "x:'self'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		src := formSource(uri)
		if strings.ContainsAny(src, " \t\r\n\f;,'\"") {
			t.Fatalf("formSource(%q) = %q", uri, src)
		}
		csp := pageCSP([]string{uri})
		if strings.Count(csp, ";") != 4 {
			t.Fatalf("pageCSP(%q) = %q", uri, csp)
		}
	})
}
