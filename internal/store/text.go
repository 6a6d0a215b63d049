package store

import (
	"strings"
	"unicode/utf8"
)

// CleanText is s as every database can hold and compare it: NUL and invalid UTF-8
// (PostgreSQL refuses both in text; SQLite would keep them) become U+FFFD. Text
// from outside passes through it before it is stored, sealed or looked up, so that
// both engines see the same bytes.
func CleanText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
