package httpapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/deputy-auth/deputy/internal/account"
	"github.com/deputy-auth/deputy/internal/store"
)

// TestAuditReturnTo: the sign-in page returns only to pages of the explorer,
// in clean form; anything that could leave deputy or reach another of its
// pages is refused.
func TestAuditReturnTo(t *testing.T) {
	for _, tt := range []struct {
		name, v string
		ok      bool
	}{
		{"ok/search", "/audit/ui", true},
		{"ok/search-query", "/audit/ui?subject=alice&since=2026-12-05T21%3A30", true},
		{"ok/event", "/audit/ui/event?id=06H4G7QGERK931RLPK91HFHDFO", true},
		{"fail/empty", "", false},
		{"fail/other-page", "/audit/events?subject=alice", false},
		{"fail/prefix-only", "/audit/uix", false},
		{"fail/absolute", "https://evil.example/audit/ui", false},
		{"fail/protocol-relative", "//evil.example/audit/ui", false},
		{"fail/backslash", "/audit/ui\\..\\..\\evil", false},
		{"fail/dot-segments", "/audit/ui/../../token", false},
		{"fail/encoded-dots", "/audit/ui/%2e%2e/%2e%2e/token", false},
		{"fail/encoded-slash", "/audit/ui%2f..%2f..%2ftoken", false},
		{"fail/double-slash", "/audit/ui//evil.example", false},
		{"fail/fragment", "/audit/ui#x", false},
		{"fail/control", "/audit/ui\r\nLocation: https://evil.example", false},
		{"fail/space", "/audit/ui /x", false},
		{"fail/too-long", "/audit/ui?subject=" + strings.Repeat("a", maxReturnTo), false},
		{"fail/userinfo-like", "/audit/ui@evil.example", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := auditReturnTo(tt.v); got != tt.ok {
				t.Errorf("auditReturnTo(%q) = %v, want %v", tt.v, got, tt.ok)
			}
			if got := safeReturnTo(tt.v); (got == tt.v) != (tt.ok || tt.v == PathLogin) {
				t.Errorf("safeReturnTo(%q) = %q", tt.v, got)
			}
		})
	}
}

// FuzzAuditReturnTo: whatever is accepted, resolved against deputy's URL, stays
// on deputy and under /audit/ui.
func FuzzAuditReturnTo(f *testing.F) {
	for _, s := range []string{"/audit/ui", "/audit/ui/event?id=x", "//evil", "/audit/ui/../x", "/audit/ui/%2e%2e", "/audit/ui\\x", "/audit/ui;x"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://deputy.example/")
	f.Fuzz(func(t *testing.T, v string) {
		if !auditReturnTo(v) {
			return
		}
		ref, err := url.Parse(v)
		if err != nil {
			t.Fatalf("accepted %q that does not parse", v)
		}
		u := base.ResolveReference(ref)
		if u.Host != "deputy.example" || u.Scheme != "https" || (u.Path != PathAuditUI && !strings.HasPrefix(u.Path, PathAuditUI+"/")) {
			t.Fatalf("accepted %q, which resolves to %s", v, u)
		}
	})
}

// TestCSVCell: cells a spreadsheet would read as a formula are made text.
func TestCSVCell(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"ok/plain", "alice", "alice"},
		{"ok/empty", "", ""},
		{"ok/inner-equals", "a=b", "a=b"},
		{"fail/equals", "=1+1", "'=1+1"},
		{"fail/plus", "+1", "'+1"},
		{"fail/minus", "-1", "'-1"},
		{"fail/at", "@SUM(A1)", "'@SUM(A1)"},
		{"fail/tab", "\t=1", "'\t=1"},
		{"fail/cr", "\r=1", "'\r=1"},
		// A spreadsheet whose list separator is ; splits this field: the formula
		// would start a cell (review finding: a failed sign-in's username).
		{"fail/formula-after-semicolon", "x;=1+2;y", "'x;=1+2;y"},
		{"fail/formula-after-comma", "x,@SUM(A1)", "'x,@SUM(A1)"},
		{"fail/formula-after-newline", "a\n=cmd|' /C calc'!A0", "'a\n=cmd|' /C calc'!A0"},
		{"ok/separator-without-formula", "a;b, c", "a;b, c"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := csvCell(tt.in); got != tt.want {
				t.Errorf("csvCell(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzDisplayText: what a page shows of a value holds no character that does
// not print, and a search reads it back to the value.
func FuzzDisplayText(f *testing.F) {
	for _, s := range []string{"alice", "\x1b[31m", "\u202egnp.exe", `"quoted"`, "a\"b", "\xff", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := displayText(s)
		if !utf8.ValidString(d) || strings.ContainsFunc(d, func(r rune) bool { return !strconv.IsPrint(r) }) {
			t.Fatalf("displayText(%q) = %q", s, d)
		}
		if got := unquoteCriterion(d); got != s {
			t.Fatalf("unquoteCriterion(displayText(%q)) = %q", s, got)
		}
	})
}

// FuzzParseSearch: whatever the query, a search is bounded to a page and its
// canonical query reads back to the same search.
func FuzzParseSearch(f *testing.F) {
	for _, s := range []string{"subject=alice", "since=2026-12-05T21:30&until=9999-12-31", "limit=200&after=5", "limit=100000",
		"trace_id=4bf92f3577b34da6a3ce929d0e0e4736", "subject=%22%5Cx1b%22", "color=red", "subject=a&subject=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		s, err := parseSearch(q)
		if err != nil {
			var pe *pageError
			if !errors.As(err, &pe) || pe.status != 400 {
				t.Fatalf("parseSearch(%q): %v", raw, err)
			}
			return
		}
		if s.filter.Limit < 1 || s.filter.Limit > maxUIPage {
			t.Fatalf("parseSearch(%q): limit %d", raw, s.filter.Limit)
		}
		again, err := parseSearch(s.query(s.filter.AfterSeq, s.filter.Limit))
		if err != nil {
			t.Fatalf("parseSearch(%q): its own query %v is refused: %v", raw, s.query(s.filter.AfterSeq, s.filter.Limit), err)
		}
		a, b := s.filter, again.filter
		if !a.Since.Equal(b.Since) || !a.Until.Equal(b.Until) {
			t.Fatalf("parseSearch(%q): times %v %v, read back %v %v", raw, a.Since, a.Until, b.Since, b.Until)
		}
		a.Since, a.Until = b.Since, b.Until
		if a != b {
			t.Fatalf("parseSearch(%q) = %+v, read back %+v", raw, a, b)
		}
	})
}

type rolesFunc func(ctx context.Context, username string) ([]string, error)

func (f rolesFunc) Roles(ctx context.Context, username string) ([]string, error) {
	return f(ctx, username)
}

// TestExplorerRoles: a session has the roles of its local account — signed in
// locally, or through a provider linked to local accounts; a user of another
// provider has none, whatever the name.
func TestExplorerRoles(t *testing.T) {
	down := errors.New("database down")
	roles := rolesFunc(func(_ context.Context, u string) ([]string, error) {
		switch u {
		case "alice":
			return []string{RoleAuditor}, nil
		case "gone":
			return nil, account.ErrNotFound
		case "off":
			return nil, account.ErrDisabled
		case "err":
			return nil, down
		}
		return nil, nil
	})
	x := &explorer{wb: &web{s: &Server{cfg: Config{Roles: roles, LinkedIdPs: map[string]bool{"corp": true}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}}}
	for _, tt := range []struct {
		name, idp, subject string
		auditor            bool
		err                error
	}{
		{"ok/local", "local", "alice", true, nil},
		{"ok/linked-upstream", "corp", "alice", true, nil},
		{"fail/unlinked-upstream", "github", "alice", false, nil},
		{"fail/unknown-account", "local", "gone", false, nil},
		{"fail/disabled-account", "local", "off", false, nil},
		{"fail/no-role", "local", "bob", false, nil},
		{"fail/store-down", "local", "err", false, down},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := x.roles(t.Context(), store.Session{IdP: tt.idp, Subject: tt.subject})
			if !errors.Is(err, tt.err) || slices.Contains(got, RoleAuditor) != tt.auditor {
				t.Errorf("roles = %v, %v", got, err)
			}
		})
	}
}
