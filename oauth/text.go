package oauth

import (
	"strings"
	"unicode/utf8"
)

// UnsafeRune reports whether r must not appear in a name taken from outside (a
// client id, a subject, an actor, a claim value): shown as it is, it would change
// how a terminal or a page displays the text around it. These are
//
//   - the control characters, Unicode category Cc: C0 (NUL, TAB, LF, CR, ESC …),
//     DEL and C1 (U+0080–U+009F, among them CSI U+009B, which some terminals obey
//     like ESC [);
//   - the line and paragraph separators U+2028 and U+2029 (line breaks to
//     JavaScript and to some viewers);
//   - the bidirectional formatting characters U+061C, U+200E, U+200F,
//     U+202A–U+202E and U+2066–U+2069, which make text display in another order
//     than it is stored (CVE-2021-42574, "Trojan Source").
//
// Other invisible format characters (zero-width joiners in emoji, the soft
// hyphen) reorder nothing and break no line; they are allowed, and every text
// renderer of the audit trail escapes them anyway.
func UnsafeRune(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x2028, r == 0x2029:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// SafeText reports whether s is valid UTF-8 without any rune UnsafeRune refuses:
// what a name from outside must be to be accepted.
func SafeText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, UnsafeRune)
}
