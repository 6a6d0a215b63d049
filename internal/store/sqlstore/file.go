package sqlstore

import "strings"

// SQLiteFile returns the file a SQLite dsn names (a path, or a "file:" URI, either
// with "?" parameters), or "" for an in-memory database.
func SQLiteFile(dsn string) string {
	name, query, _ := strings.Cut(dsn, "?")
	name = strings.TrimPrefix(name, "file:")
	if name == "" || strings.HasPrefix(name, ":memory:") || strings.Contains("&"+query+"&", "&mode=memory&") {
		return ""
	}
	if rest, ok := strings.CutPrefix(name, "//"); ok { // file://host/path; host empty or localhost
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			name = rest[i:]
		}
	}
	return name
}
