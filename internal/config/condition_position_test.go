package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/deputy-auth/deputy/internal/policy/condition"
)

// FuzzConditionPosition: a condition written in any YAML scalar style, folded
// across lines at random spaces and with random escapes, has each of its
// characters placed at a source character that gives it (see checkPositions),
// and so has every problem CEL finds in it. When go-yaml decodes the text as
// written, no character falls back to the text's start.
func FuzzConditionPosition(f *testing.F) {
	for _, text := range []string{
		`subject.sub == "alice" && tennant == "x"`,
		`subject.sub == "it's \"quoted\" \\ é€😀" && tennant == 1`,
		"subject.sub == 'a' &&\n  tennant == 'b'\n",
		"size(subject.act) > 0 &&\n\n    subject.act[0].sub == \"payments\"",
		"\n  leading &&\n\tnext\n\n",
		`subject.claims.?tenant.orValue("") == "bank"`,
		"a\u0085b\u00a0c\u2028d\x01e\x7f",
	} {
		for style := range writtenStyles {
			f.Add(text, uint8(style), uint64(0))
			f.Add(text, uint8(style), uint64(0xa5a5a5a5a5a5a5a5))
		}
	}
	f.Fuzz(func(t *testing.T, text string, style uint8, choices uint64) {
		if len(text) > 1024 {
			return // checkPositions is quadratic in the length
		}
		written, ok := writeScalar(text, textStyle(style%writtenStyles), choices)
		if !ok {
			return
		}
		src := "exchange:\n  policies:\n    - client: a\n      condition: " + written + "\n"
		var c Config
		o := origins{}
		if ps := decodeYAML("f.yaml", []byte(src), &c, o); len(ps) > 0 || len(c.Exchange.Policies) != 1 {
			return
		}
		const path = "exchange.policies[0].condition"
		got := c.Exchange.Policies[0].Condition
		if got == "" {
			return
		}
		checkPositions(t, src, o, path, got, textStyle(style%writtenStyles), got == text)
	})
}

// writtenStyles is how many styles writeScalar writes: every textStyle.
const writtenStyles = 5

// checkPositions checks where o places each character of text, the value at path
// in src written in style: at a source character that gives it (the character
// itself, an escape or a doubled quote that stands for it, white space for white
// space), each after the one before; or, for all of them, where the text starts,
// unless exact.
func checkPositions(t *testing.T, src string, o origins, path, text string, style textStyle, exact bool) {
	t.Helper()
	lines := strings.SplitAfter(src, "\n")
	fallback := !strings.Contains(o[path+TextSuffix], "\x00")
	if fallback && exact {
		t.Fatalf("%q written as\n%s\nis not followed: %q", text, src, o[path+TextSuffix])
	}
	// sourceAt is the source from a "f.yaml:line:col" position on.
	sourceAt := func(w string) (string, int) {
		var line, col int
		if _, err := fmt.Sscanf(strings.TrimPrefix(w, "f.yaml:"), "%d:%d", &line, &col); err != nil || line < 1 || line > len(lines) {
			t.Fatalf("%q: position %q", text, w)
		}
		l := lines[line-1]
		off := 0
		for range col - 1 {
			_, n := utf8.DecodeRuneInString(l[off:])
			if n == 0 {
				t.Fatalf("%q: position %q past the end of its line", text, w)
			}
			off += n
		}
		abs := off
		for _, before := range lines[:line-1] {
			abs += len(before)
		}
		return l[off:], abs
	}
	runes := []rune(text)
	prev := -1
	cline, ccol := 1, 1 // CEL's line and column of runes[i]
	for i, want := range runes {
		w := o.within(path, text, cline, ccol)
		if want == '\n' {
			cline, ccol = cline+1, 1
		} else {
			ccol++
		}
		if fallback {
			if w != o[path+TextSuffix] {
				t.Fatalf("%q: character %d at %s, not at the start %s", text, i, w, o[path+TextSuffix])
			}
			continue
		}
		at, abs := sourceAt(w)
		if abs <= prev {
			t.Fatalf("%q written as\n%s\ncharacter %d (%q) at %s, not after the one before", text, src, i, want, w)
		}
		prev = abs
		if !gives(at, want, style) {
			t.Fatalf("%q written as\n%s\ncharacter %d (%q) at %s, where the source is %.10q", text, src, i, want, w, at)
		}
	}
	// Every problem CEL finds, at a character of the text, is at a source
	// character that gives it.
	_, err := condition.Compile(text)
	var ce *condition.Error
	if !errors.As(err, &ce) || fallback {
		return
	}
	for _, p := range ce.Problems {
		off := runeOffset(text, p.Line, p.Column)
		if off >= len(runes) {
			continue // the end of the text
		}
		if at, _ := sourceAt(o.within(path, text, p.Line, p.Column)); !gives(at, runes[off], style) {
			t.Errorf("%q: problem %v at %.10q", text, p, at)
		}
	}
}

// gives reports whether the source at can give the character want in style.
func gives(at string, want rune, style textStyle) bool {
	r, _ := utf8.DecodeRuneInString(at)
	switch {
	case style == doubleQuotedText && r == '\\':
		got, size, lineBreak := escape([]byte(at))
		return size > 0 && !lineBreak && got == want
	case style == singleQuotedText && r == '\'':
		return want == '\'' && strings.HasPrefix(at, "''")
	case isBlank(want):
		return isBlank(r) // a space may come from a folded line break
	}
	return r == want
}

func isBlank(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

// writeScalar writes text as a YAML scalar in style, to follow "condition: "
// (at indentation 6): its continuation lines indented by 8, some spaces folded
// into line breaks and, double-quoted, some characters escaped, as the bits of
// choices say. It returns false for text the style cannot hold.
func writeScalar(text string, style textStyle, choices uint64) (string, bool) {
	if text == "" || !utf8.ValidString(text) || strings.ContainsAny(text, "\r\ufeff") {
		return "", false
	}
	choose := func() bool {
		b := choices&1 == 1
		choices = choices>>1 | choices<<63
		return b
	}
	const indent = "\n        "
	runes := []rune(text)
	// foldable is whether the space at i, between two characters that are not
	// blank, can be written as a line break.
	foldable := func(i int) bool {
		return runes[i] == ' ' && i > 0 && i+1 < len(runes) && !isBlank(runes[i-1]) && !isBlank(runes[i+1])
	}
	var b strings.Builder
	switch style {
	case flowText:
		if strings.TrimSpace(text) != text || strings.ContainsAny(text, "\n\t") || strings.Contains(text, ": ") ||
			strings.Contains(text, " #") || strings.HasSuffix(text, ":") || strings.ContainsAny(text[:1], "-?:,[]{}#&*!|>'\"%@`") {
			return "", false
		}
		for i, r := range runes {
			if !unicode.IsPrint(r) {
				return "", false
			}
			if foldable(i) && runes[i-1] != ':' && runes[i+1] != '#' && choose() {
				b.WriteString(indent)
				continue
			}
			b.WriteRune(r)
		}
	case doubleQuotedText:
		b.WriteByte('"')
		for i, r := range runes {
			switch {
			case foldable(i) && choose():
				b.WriteString(indent)
			case i > 0 && !isBlank(r) && choose() && choose():
				b.WriteString("\\" + indent) // an escaped line break, which gives nothing
				fallthrough
			default:
				b.WriteString(quoteRune(r, choose()))
			}
		}
		b.WriteByte('"')
	case singleQuotedText:
		b.WriteByte('\'')
		for i, r := range runes {
			switch {
			case !unicode.IsPrint(r) && r != '\n' && r != '\t':
				return "", false
			case r == '\n':
				// A line break is written as an empty line, between characters
				// that are not blank (the others would be dropped).
				if i == 0 || i+1 == len(runes) || isBlank(runes[i-1]) || isBlank(runes[i+1]) {
					return "", false
				}
				b.WriteString("\n" + indent)
			case r == '\'':
				b.WriteString("''")
			case foldable(i) && choose():
				b.WriteString(indent)
			default:
				b.WriteRune(r)
			}
		}
		b.WriteByte('\'')
	case literalText, foldedText:
		for _, r := range runes {
			if !unicode.IsPrint(r) && r != '\n' && r != '\t' {
				return "", false
			}
		}
		header := "|2-" // content at indentation 6+2, whatever the first line starts with
		if style == foldedText {
			header = ">2-"
		}
		body := text
		if strings.HasSuffix(text, "\n") {
			header = header[:2] + "+" // keep the line breaks that end the text
			body = text[:len(text)-1]
		}
		b.WriteString(header)
		lines := strings.Split(body, "\n")
		normal := func(l string) bool { return l != "" && !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "\t") }
		for i, l := range lines {
			if l != "" {
				if strings.TrimLeft(l, " \t") == "" {
					return "", false // a blank line that is not empty: YAML is unclear on those
				}
				b.WriteString(indent)
			} else {
				b.WriteString("\n")
			}
			if style != foldedText || !normal(l) {
				b.WriteString(l)
				continue
			}
			// Folded: a line break between normal lines needs an empty line
			// more, and a space between normal characters may fold.
			lr := []rune(l)
			for j, r := range lr {
				if r == ' ' && j > 0 && j+1 < len(lr) && !isBlank(lr[j-1]) && !isBlank(lr[j+1]) && choose() {
					b.WriteString(indent)
					continue
				}
				b.WriteRune(r)
			}
			if next := nextNonEmpty(lines[i+1:]); next != "" && normal(next) {
				b.WriteString("\n")
			}
		}
	default:
		return "", false
	}
	return b.String(), true
}

// nextNonEmpty is the first line of lines that is not empty, or "".
func nextNonEmpty(lines []string) string {
	for _, l := range lines {
		if l != "" {
			return l
		}
	}
	return ""
}

// quoteRune writes r in double-quoted text: escaped when it must be, or when
// escape says so and it can be.
func quoteRune(r rune, escape bool) string {
	switch {
	case r == '"' || r == '\\':
		return `\` + string(r)
	case r == '\n':
		return `\n`
	case r == '\t' && !escape:
		return `\t`
	case !unicode.IsPrint(r) || escape:
		switch {
		case r < 0x100:
			return fmt.Sprintf(`\x%02x`, r)
		case r < 0x10000:
			return fmt.Sprintf(`\u%04X`, r)
		}
		return fmt.Sprintf(`\U%08x`, r)
	}
	return string(r)
}

// TestTextPositionsLosesTrack: text the source cannot give is not followed.
func TestTextPositionsLosesTrack(t *testing.T) {
	for _, tc := range []struct {
		name, src, text string
		style           textStyle
	}{
		{"fail/other-character", "a && b\n", "a && c", flowText},
		{"fail/source-ends", "a &&", "a && b", flowText},
		{"fail/unknown-escape", `a\qb"`, "aqb", doubleQuotedText},
		{"fail/escape-gives-other", `a\x41"`, "aB", doubleQuotedText},
		{"fail/lone-quote", `it's'`, "it's", singleQuotedText},
		{"fail/block-text-more-indented", "  a\n", "    a\n", literalText},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if pos, ok := textPositions([]byte(tc.src), position{1, 1}, tc.text, tc.style); ok {
				t.Errorf("followed: %v", pos)
			}
		})
	}
}

// TestWithin: a problem's line and column in the text is placed by the runs, at
// the text's start when there are none, and in the variable for an override.
func TestWithin(t *testing.T) {
	const path = "exchange.policies[0].condition"
	text := "ab\ncdé\nf"
	runs := textOrigin{file: "d:/x.yaml", runs: []textRun{{0, position{3, 5}}, {3, position{4, 9}}, {5, position{4, 12}}}}.String()
	for _, tc := range []struct {
		name      string
		o         origins
		line, col int
		want      string
	}{
		{"ok/first", origins{path + TextSuffix: runs}, 1, 1, "d:/x.yaml:3:5"},
		{"ok/first-line-end", origins{path + TextSuffix: runs}, 1, 3, "d:/x.yaml:3:7"},
		{"ok/second-run", origins{path + TextSuffix: runs}, 2, 2, "d:/x.yaml:4:10"},
		{"ok/third-run", origins{path + TextSuffix: runs}, 2, 3, "d:/x.yaml:4:12"},
		{"ok/past-the-line", origins{path + TextSuffix: runs}, 2, 40, "d:/x.yaml:4:13"},
		{"ok/end", origins{path + TextSuffix: runs}, 3, 2, "d:/x.yaml:4:15"},
		{"ok/past-the-end", origins{path + TextSuffix: runs}, 9, 1, "d:/x.yaml:4:15"},
		{"ok/start-only", origins{path + TextSuffix: "d:/x.yaml:3:5"}, 2, 2, "d:/x.yaml:3:5"},
		{"ok/environment", origins{path: "$DEPUTY_X", path + TextSuffix: runs}, 2, 2, "$DEPUTY_X:2:2"},
		{"ok/key-only", origins{path: "x.yaml:3:1"}, 2, 2, "x.yaml:3:1"},
		{"fail/garbled-table", origins{path: "x.yaml:3:1", path + TextSuffix: "x.yaml\x00z"}, 1, 1, "x.yaml:3:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.o.within(path, text, tc.line, tc.col); got != tc.want {
				t.Errorf("within(%d, %d) = %q, want %q", tc.line, tc.col, got, tc.want)
			}
		})
	}
}

// TestRunsOf: positions that follow one another on a line share a run.
func TestRunsOf(t *testing.T) {
	got := runsOf([]position{{1, 1}, {1, 2}, {1, 4}, {2, 1}, {2, 2}})
	want := []textRun{{0, position{1, 1}}, {2, position{1, 4}}, {3, position{2, 1}}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("runsOf = %v, want %v", got, want)
	}
	if s := (textOrigin{file: "f", start: position{2, 3}}).String(); s != "f:2:3" {
		t.Errorf("start only: %q", s)
	}
}

// TestEscape: each double-quoted escape stands for its character, over its length.
func TestEscape(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		r         rune
		size      int
		lineBreak bool
	}{
		{"ok/quote", `\"x`, '"', 2, false},
		{"ok/backslash", `\\`, '\\', 2, false},
		{"ok/newline", `\n`, '\n', 2, false},
		{"ok/tab-character", "\\\t", '\t', 2, false},
		{"ok/next-line", `\N`, 0x85, 2, false},
		{"ok/x", `\x41`, 'A', 4, false},
		{"ok/u", `\u00e9`, 'é', 6, false},
		{"ok/U", `\U0001F600`, '😀', 10, false},
		{"ok/line-break", "\\\n  x", 0, 2, true},
		{"ok/crlf-line-break", "\\\r\nx", 0, 3, true},
		{"fail/unknown", `\q`, 0, 0, false},
		{"fail/short-u", `\u00`, 0, 0, false},
		{"fail/not-hex", `\xzz`, 0, 0, false},
		{"fail/alone", `\`, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, size, lineBreak := escape([]byte(tc.src))
			if r != tc.r || size != tc.size || lineBreak != tc.lineBreak {
				t.Errorf("escape(%q) = %q, %d, %v; want %q, %d, %v", tc.src, r, size, lineBreak, tc.r, tc.size, tc.lineBreak)
			}
		})
	}
}
