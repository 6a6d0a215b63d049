package sqlstore

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/deputy-auth/deputy/internal/store"
)

func TestRedactDSN(t *testing.T) {
	tests := []struct{ name, dsn, want string }{
		{"ok/url", "postgres://deputy:hunter2@db:5432/deputy?sslmode=verify-full", "postgres://deputy:xxxxx@db:5432/deputy?sslmode=verify-full"},
		{"ok/url-escaped", "postgresql://deputy:p%40ss%2Fw@db/deputy", "postgresql://deputy:xxxxx@db/deputy"},
		{"ok/url-raw-at-in-password", "postgres://deputy:p@ss:w@db/deputy", "postgres://deputy:xxxxx@db/deputy"},
		{"ok/url-query-password", "postgres://deputy@db/deputy?password=hunter2&sslmode=disable", "postgres://deputy@db/deputy?password=xxxxx&sslmode=disable"},
		{"ok/url-no-password", "postgres://deputy@db/deputy", "postgres://deputy@db/deputy"},
		{"ok/keyword", "host=db user=deputy password=hunter2 dbname=deputy", "host=db user=deputy password=xxxxx dbname=deputy"},
		{"ok/keyword-spaces", "host=db password = hunter2 dbname=deputy", "host=db password = xxxxx dbname=deputy"},
		{"ok/keyword-quoted", `host=db password='hun ter\'2' dbname=deputy`, `host=db password='xxxxx' dbname=deputy`},
		{"ok/sqlite", "/var/lib/deputy/deputy.db", "/var/lib/deputy/deputy.db"},
		{"ok/sqlite-uri", "file:deputy.db?_busy_timeout=5000", "file:deputy.db?_busy_timeout=5000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RedactDSN(tt.dsn); got != tt.want {
				t.Errorf("RedactDSN(%q) = %q, want %q", tt.dsn, got, tt.want)
			}
		})
	}
}

// TestOpenErrorHidesPassword: a dsn pgx cannot parse, or a server it cannot reach,
// fails Open with a message that names no password (pgx's own redaction misses
// "password = …" with spaces).
func TestOpenErrorHidesPassword(t *testing.T) {
	tests := []struct{ name, dsn string }{
		{"fail/keyword-unparsable", "host=127.0.0.1 password = hunter2 sslmode=sometimes"},
		{"fail/keyword-quoted-unparsable", "host=127.0.0.1 password='hunter2 x' port=notaport"},
		{"fail/url-unparsable", "postgres://deputy:hunter2@127.0.0.1:notaport/deputy"},
		{"fail/url-unreachable", "postgres://deputy:hunter2@127.0.0.1:1/deputy?connect_timeout=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(t.Context(), "postgres", tt.dsn)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the password: %v", err)
			}
			if strings.HasSuffix(tt.name, "unreachable") && !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("error %v does not wrap store.ErrUnavailable", err)
			}
		})
	}
}

// FuzzRedactDSN: whatever the password, neither it nor its escaped form is left in
// a URL or a keyword/value dsn (quoted as libpq quotes) after RedactDSN.
func FuzzRedactDSN(f *testing.F) {
	f.Add("deputy", "hunter2")
	f.Add("u", "p@ss:w/rd?#&=")
	f.Add("u", `it's a 'quoted' \ pass word`)
	f.Add("", "%41%42%43xyz")
	f.Fuzz(func(t *testing.T, user, pw string) {
		if len(pw) < 6 || !utf8.ValidString(pw) || !utf8.ValidString(user) {
			return
		}
		u := &url.URL{Scheme: "postgres", User: url.UserPassword(user, pw), Host: "db:5432", Path: "/deputy", RawQuery: "sslmode=disable"}
		escaped := strings.TrimPrefix(u.User.String(), url.User(user).String()+":")
		quoted := "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw) + "'"
		for _, dsn := range []string{u.String(), "host=db user=x password=" + quoted + " dbname=deputy"} {
			out := RedactDSN(dsn)
			// What surrounds the password, and the mask, may hold it by chance.
			context := strings.Replace(strings.Replace(dsn, escaped, "", 1), quoted, "", 1) + redacted
			for _, secret := range []string{pw, escaped} {
				if strings.Contains(out, secret) && !strings.Contains(context, secret) {
					t.Fatalf("RedactDSN(%q) = %q still holds %q", dsn, out, secret)
				}
			}
		}
	})
}
