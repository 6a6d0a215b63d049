package store

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
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

// Truncate returns s when it is at most max bytes long. Otherwise it returns a
// prefix of s, cut at a rune boundary, followed by a marker that gives the
// original length and the first 8 hex digits of its SHA-256, the whole at most
// max bytes (and never less than the marker):
//
//	averyveryverylongclientid…[61440 bytes, sha256 1f0c3b2a]
//
// The hash keeps two long values that share a prefix apart, and lets an operator
// match a truncated value with the original.
func Truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	marker := "…[" + strconv.Itoa(len(s)) + " bytes, sha256 " + hex.EncodeToString(sum[:4]) + "]"
	n := max - len(marker)
	if n < 0 {
		n = 0
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + marker
}
