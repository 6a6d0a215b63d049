package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// The YAML is parsed by go-yaml and decoded into the schema here, by reflection over
// the yaml tags, rather than by go-yaml's decoder: that decoder turns `secret: 0123`
// into "83" and max_batch: 1.5 into 1, names Go types ("Config.Audit") where a key
// path is wanted, and reports bad durations without a position.

// maxMergeDepth bounds merge keys that merge mappings that merge mappings…, which
// would otherwise recurse for ever on `a: &a {<<: *a}`.
const maxMergeDepth = 16

var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

// decodeYAML decodes src (read from file) into c, recording each value's position
// in origins. It returns every problem found; c is partly filled when there are some.
func decodeYAML(file string, src []byte, c *Config, origins origins) []Problem {
	f, err := parser.ParseBytes(src, 0, parser.AllowDuplicateMapKey()) // reported below, with the key path
	if err != nil {
		return []Problem{syntaxProblem(file, err)}
	}
	d := &decoder{file: file, src: src, anchors: map[string]ast.Node{}, origins: origins}
	var body ast.Node
	for _, doc := range f.Docs {
		if doc == nil || doc.Body == nil {
			continue
		}
		if body != nil {
			return []Problem{{Where: d.where(doc.Body), Message: "a second YAML document; the configuration is one document"}}
		}
		body = doc.Body
	}
	if body == nil {
		return nil // an empty file is an empty configuration
	}
	ast.Walk(d, body)
	d.decode(body, reflect.ValueOf(c).Elem(), "")
	return d.problems
}

// syntaxProblem turns a go-yaml parse error into a Problem with its position.
func syntaxProblem(file string, err error) Problem {
	var ye yaml.Error
	if errors.As(err, &ye) {
		p := Problem{Where: file, Message: "YAML syntax: " + ye.GetMessage()}
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			p.Where = fmt.Sprintf("%s:%d:%d", file, tk.Position.Line, tk.Position.Column)
		}
		return p
	}
	return Problem{Where: file, Message: "YAML syntax: " + err.Error()}
}

type decoder struct {
	file     string
	src      []byte
	anchors  map[string]ast.Node
	origins  origins
	problems []Problem
}

// Visit records anchors, so that aliases can be resolved wherever they are used.
func (d *decoder) Visit(n ast.Node) ast.Visitor {
	if a, ok := n.(*ast.AnchorNode); ok && a.Name != nil {
		d.anchors[a.Name.GetToken().Value] = a.Value
	}
	return d
}

func (d *decoder) problem(n ast.Node, path, format string, args ...any) {
	d.problems = append(d.problems, Problem{Where: d.where(n), Path: path, Message: fmt.Sprintf(format, args...)})
}

// where is n's position as file:line:column.
func (d *decoder) where(n ast.Node) string {
	tk := n.GetToken()
	switch n := n.(type) {
	case *ast.MappingNode:
		if len(n.Values) > 0 {
			tk = n.Values[0].Key.GetToken()
		}
	case *ast.MappingValueNode:
		tk = n.Key.GetToken()
	}
	if tk == nil || tk.Position == nil {
		return d.file
	}
	return fmt.Sprintf("%s:%d:%d", d.file, tk.Position.Line, tk.Position.Column)
}

// followText records, for a condition (a key path ending in ".condition"), where
// each character of the scalar n's text came from, so that a problem inside the
// text (a CEL condition's line and column) can point at the very character in the
// file: origins[path+TextSuffix], in the form textOrigin.String gives. Other text
// is not followed, to keep origins small.
func (d *decoder) followText(n ast.Node, path string) {
	if !strings.HasSuffix(path, ".condition") {
		return
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return
	}
	line, col := tk.Position.Line, tk.Position.Column
	style := flowText
	text := ""
	switch n := n.(type) {
	case *ast.LiteralNode:
		// The text starts on the line after | or >, at that line's indentation.
		style, text = literalText, n.Value.Value
		if tk.Type == token.FoldedType {
			style = foldedText
		}
		line, col = line+1, 1
	case *ast.StringNode:
		text = n.Value
		switch tk.Type {
		case token.DoubleQuoteType:
			style, col = doubleQuotedText, col+1
		case token.SingleQuoteType:
			style, col = singleQuotedText, col+1
		}
	default: // a number or true, taken as text
		var ok bool
		if text, ok = scalarText(n); !ok {
			return
		}
	}
	off, ok := sourceOffset(d.src, line, col)
	if !ok {
		return
	}
	to := textOrigin{file: d.file, start: position{line, col}}
	if style == literalText || style == foldedText {
		to.start.col += indentOf(d.src[off:])
		if pos, ok := textPositions(d.src[off:], position{line, col}, text, style); ok {
			to.runs = runsOf(pos)
		}
		d.origins[path+TextSuffix] = to.String()
		return
	}
	// go-yaml places plain text that spans lines at odd places (past the spaces
	// that end its first line, or on a later line), so the text is taken to
	// start past the token before it (the key's colon, a dash, an anchor's
	// name), at the first character that is neither white space nor in a
	// comment; failing that, where go-yaml places it.
	starts := []position{{line, col}}
	if p, ok := d.after(tk.Prev); ok {
		if style != flowText {
			p.col++ // past the quote
		}
		starts = append([]position{p}, starts...)
	}
	for _, p := range starts {
		off, ok := sourceOffset(d.src, p.line, p.col)
		if !ok {
			continue
		}
		if pos, ok := textPositions(d.src[off:], p, text, style); ok {
			to.runs = runsOf(pos)
			break
		}
	}
	d.origins[path+TextSuffix] = to.String()
}

// after is the position of the first character past the token tk that is
// neither white space nor in a comment.
func (d *decoder) after(tk *token.Token) (position, bool) {
	if tk == nil || tk.Position == nil {
		return position{}, false
	}
	off, ok := sourceOffset(d.src, tk.Position.Line, tk.Position.Column)
	if !ok {
		return position{}, false
	}
	c := &sourceCursor{src: d.src, off: off, at: position{tk.Position.Line, tk.Position.Column}}
	for range utf8.RuneCountInString(tk.Value) {
		_, n := c.peek()
		if n == 0 {
			return position{}, false
		}
		c.advance(n)
	}
	for c.off < len(d.src) {
		switch d.src[c.off] {
		case ' ', '\t', '\r', '\n':
			c.advance(1)
		case '#':
			end := bytes.IndexByte(d.src[c.off:], '\n')
			if end < 0 {
				return position{}, false
			}
			c.advance(end)
		default:
			return c.at, true
		}
	}
	return position{}, false
}

// sourceOffset is the byte offset in src of line and column (1-based, the column
// counted in characters, as go-yaml counts them).
func sourceOffset(src []byte, line, col int) (int, bool) {
	off := 0
	for range line - 1 {
		i := bytes.IndexByte(src[off:], '\n')
		if i < 0 {
			return 0, false
		}
		off += i + 1
	}
	for range col - 1 {
		r, n := utf8.DecodeRune(src[off:])
		if n == 0 || r == '\n' {
			return 0, false
		}
		off += n
	}
	return off, true
}

// indentOf is the number of spaces that begin src's first line that is not blank.
func indentOf(src []byte) int {
	for line := range bytes.Lines(src) {
		rest := bytes.TrimLeft(line, " ")
		if len(bytes.TrimSpace(rest)) > 0 {
			return len(line) - len(rest)
		}
	}
	return 0
}

// textStyle is how a scalar's text is written, which decides how its source
// characters become the text's characters.
type textStyle int

const (
	flowText         textStyle = iota // plain: line breaks fold, indentation goes
	doubleQuotedText                  // flow, and \ escapes
	singleQuotedText                  // flow, and a doubled quote for one
	literalText                       // | block: lines kept, less their indentation
	foldedText                        // > block: as literal, some line breaks fold
)

// position is a line and column (1-based, the column in characters) in a file.
type position struct{ line, col int }

// textPositions follows a scalar's source src, which starts with the first
// character of its text at start, alongside its decoded text, and returns where
// each of text's characters came from, and where the text ends (one more than
// there are characters). It returns false when it loses track: when src and text
// part ways, as they would for a style it knows less well than go-yaml does.
//
// Each character of text is matched to the next source character that can give
// it: the same character, an escape (double-quoted) or a doubled quote
// (single-quoted) that stands for it, or, for a space that YAML made by folding,
// the source line break. Source white space that gives no character (indentation,
// spaces before a folded line break, line breaks folded away) is skipped.
func textPositions(src []byte, start position, text string, style textStyle) ([]position, bool) {
	c := &sourceCursor{src: src, at: start}
	// A block's indentation: that of its first line that is not blank, less the
	// spaces that begin the text's first line that is not empty.
	indent := -1
	if style == literalText || style == foldedText {
		first := strings.TrimLeft(text, "\n")
		first = first[:len(first)-len(strings.TrimLeft(first, " "))]
		if indent = indentOf(src) - len(first); indent < 0 {
			return nil, false
		}
		c.skipIndent(indent)
	}
	pos := make([]position, 0, utf8.RuneCountInString(text)+1)
	for _, want := range text {
		for {
			r, n := c.peek()
			if n == 0 {
				return nil, false
			}
			switch {
			case style == doubleQuotedText && r == '\\':
				got, size, lineBreak := escape(src[c.off:])
				if lineBreak {
					c.advance(size)
					c.skipBlanks()
					continue
				}
				if size == 0 || got != want {
					return nil, false
				}
				pos = append(pos, c.at)
				c.advance(size)
			case style == singleQuotedText && r == '\'':
				if want != '\'' || !bytes.HasPrefix(src[c.off:], []byte("''")) {
					return nil, false
				}
				pos = append(pos, c.at)
				c.advance(2)
			case r == want || r == '\n' && want == ' ' && style != literalText: // a folded line break
				pos = append(pos, c.at)
				c.advance(n)
				if r == '\n' {
					c.afterBreak(style, indent)
				}
			case r == '\n' || r == ' ' || r == '\t' || r == '\r':
				c.advance(n) // white space that gives no character
				if r == '\n' {
					c.afterBreak(style, indent)
				}
				continue
			default:
				return nil, false
			}
			break
		}
	}
	return append(pos, c.at), true
}

// sourceCursor walks a scalar's source, keeping the file position.
type sourceCursor struct {
	src []byte
	off int
	at  position
}

func (c *sourceCursor) peek() (rune, int) { return utf8.DecodeRune(c.src[c.off:]) }

// advance moves past the next size bytes, which hold at most one line break, last.
func (c *sourceCursor) advance(size int) {
	for _, r := range string(c.src[c.off : c.off+size]) {
		if r == '\n' {
			c.at = position{c.at.line + 1, 1}
		} else {
			c.at.col++
		}
	}
	c.off += size
}

// afterBreak moves past the indentation of the line after a line break: all of
// it in flow text, which drops leading white space, and the block's own in a block.
func (c *sourceCursor) afterBreak(style textStyle, indent int) {
	if style == literalText || style == foldedText {
		c.skipIndent(indent)
	} else {
		c.skipBlanks()
	}
}

func (c *sourceCursor) skipBlanks() {
	for c.off < len(c.src) && (c.src[c.off] == ' ' || c.src[c.off] == '\t') {
		c.advance(1)
	}
}

func (c *sourceCursor) skipIndent(n int) {
	for i := 0; i < n && c.off < len(c.src) && c.src[c.off] == ' '; i++ {
		c.advance(1)
	}
}

// escape decodes the double-quoted escape at the start of src (YAML 1.2 §5.7):
// the character it stands for and its length in bytes, or lineBreak for an
// escaped line break (which gives no character); size 0 for an escape it does not
// know.
func escape(src []byte) (r rune, size int, lineBreak bool) {
	if len(src) < 2 {
		return 0, 0, false
	}
	digits := 0
	switch src[1] {
	case '\n':
		return 0, 2, true
	case '\r':
		if len(src) > 2 && src[2] == '\n' {
			return 0, 3, true
		}
		return 0, 2, true
	case '0':
		return 0, 2, false
	case 'a':
		return '\a', 2, false
	case 'b':
		return '\b', 2, false
	case 't', '\t':
		return '\t', 2, false
	case 'n':
		return '\n', 2, false
	case 'v':
		return '\v', 2, false
	case 'f':
		return '\f', 2, false
	case 'r':
		return '\r', 2, false
	case 'e':
		return 0x1b, 2, false
	case ' ', '"', '/', '\\':
		return rune(src[1]), 2, false
	case 'N':
		return 0x85, 2, false
	case '_':
		return 0xa0, 2, false
	case 'L':
		return 0x2028, 2, false
	case 'P':
		return 0x2029, 2, false
	case 'x':
		digits = 2
	case 'u':
		digits = 4
	case 'U':
		digits = 8
	default:
		return 0, 0, false
	}
	if len(src) < 2+digits {
		return 0, 0, false
	}
	v, err := strconv.ParseUint(string(src[2:2+digits]), 16, 32)
	if err != nil {
		return 0, 0, false
	}
	return rune(v), 2 + digits, false
}

// textOrigin is where each character of a text value came from in file: runs of
// characters that follow one another on a line. Without runs, every character is
// placed at start, where the text begins.
type textOrigin struct {
	file  string
	start position
	runs  []textRun // by offset; the first at offset 0
}

// textRun places the characters of a text from offset off on, up to the next run,
// one after another from line and column at.
type textRun struct {
	off int // in characters
	at  position
}

// runsOf compresses the positions of a text's characters into runs.
func runsOf(pos []position) []textRun {
	var runs []textRun
	for i, p := range pos {
		if i > 0 && p == (position{pos[i-1].line, pos[i-1].col + 1}) {
			continue
		}
		runs = append(runs, textRun{i, p})
	}
	return runs
}

// String is the form kept in origins: "file:line:col" for the start alone, or the
// file followed by "\x00off:line:col" for each run.
func (t textOrigin) String() string {
	if len(t.runs) == 0 {
		return fmt.Sprintf("%s:%d:%d", t.file, t.start.line, t.start.col)
	}
	var b strings.Builder
	b.WriteString(t.file)
	for _, r := range t.runs {
		fmt.Fprintf(&b, "\x00%d:%d:%d", r.off, r.at.line, r.at.col)
	}
	return b.String()
}

// resolve looks through tags, anchors, aliases and explicit keys to the node that
// holds the value. It returns nil, after recording a problem, for an unknown alias.
func (d *decoder) resolve(n ast.Node, path string) ast.Node {
	for range 64 {
		switch m := n.(type) {
		case *ast.TagNode:
			n = m.Value
		case *ast.AnchorNode:
			n = m.Value
		case *ast.MappingKeyNode:
			n = m.Value
		case *ast.AliasNode:
			name := m.Value.GetToken().Value
			target, ok := d.anchors[name]
			if !ok {
				d.problem(n, path, "alias *%s names no anchor", name)
				return nil
			}
			n = target
		default:
			return n
		}
		if n == nil {
			return nil
		}
	}
	d.problem(n, path, "aliases nested too deeply")
	return nil
}

// decode sets v, of a schema type, from node n found at path.
func (d *decoder) decode(n ast.Node, v reflect.Value, path string) {
	if path != "" {
		d.origins[path] = d.where(n)
	}
	orig := n
	if n = d.resolve(n, path); n == nil {
		return
	}
	if _, ok := n.(*ast.NullNode); ok {
		v.SetZero()
		return
	}
	if reflect.PointerTo(v.Type()).Implements(textUnmarshalerType) {
		text, ok := scalarText(n)
		if !ok {
			d.problem(orig, path, "expected %s, got %s", describe(v.Type()), kindOf(n))
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(text)); err != nil {
			d.problem(orig, path, "%q is not %s: %v", text, describe(v.Type()), err)
		}
		return
	}
	switch v.Kind() {
	case reflect.String:
		text, ok := scalarText(n)
		if !ok {
			hint := ""
			if m, isMap := n.(*ast.MappingNode); isMap && len(m.Values) == 1 && m.Values[0].Value != nil &&
				m.Values[0].Key.GetToken().Position.Line == m.Values[0].Value.GetToken().Position.Line {
				hint = "; text with a colon, like a URN, may need quotes"
			}
			d.problem(orig, path, "expected text, got %s%s", kindOf(n), hint)
			return
		}
		v.SetString(text)
		d.followText(n, path)
	case reflect.Bool:
		b, ok := n.(*ast.BoolNode)
		if !ok {
			d.problem(orig, path, "expected true or false, got %s", kindOf(n))
			return
		}
		v.SetBool(b.Value)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, ok := n.(*ast.IntegerNode)
		if !ok {
			if s, plain := n.(*ast.StringNode); plain && s.Token.Type == token.StringType {
				if _, err := strconv.ParseInt(s.Value, 0, 64); errors.Is(err, strconv.ErrRange) {
					d.problem(orig, path, "%s is out of range", s.Value) // too big for go-yaml's scanner
					return
				}
			}
			d.problem(orig, path, "expected an integer, got %s", kindOf(n))
			return
		}
		var x int64
		switch n := i.Value.(type) {
		case int64:
			x = n
		case uint64:
			if n > math.MaxInt64 {
				ok = false
			}
			x = int64(n)
		default:
			ok = false
		}
		if !ok || v.OverflowInt(x) {
			d.problem(orig, path, "%s is out of range", i.GetToken().Value)
			return
		}
		v.SetInt(x)
	case reflect.Slice:
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			d.problem(orig, path, "expected a list, got %s", kindOf(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(seq.Values), len(seq.Values))
		for i, e := range seq.Values {
			d.decode(e, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		m, ok := n.(*ast.MappingNode)
		if !ok {
			d.problem(orig, path, "expected a mapping, got %s", kindOf(n))
			return
		}
		out := reflect.MakeMap(v.Type())
		for _, e := range d.entries(m, path, 0) {
			ev := reflect.New(v.Type().Elem()).Elem()
			d.decode(e.value, ev, join(path, e.key))
			out.SetMapIndex(reflect.ValueOf(e.key), ev)
		}
		v.Set(out)
	case reflect.Struct:
		m, ok := n.(*ast.MappingNode)
		if !ok {
			d.problem(orig, path, "expected a mapping, got %s", kindOf(n))
			return
		}
		fields := fieldsOf(v.Type())
		for _, e := range d.entries(m, path, 0) {
			i, ok := fields[e.key]
			if !ok {
				if path == "" && strings.HasPrefix(e.key, "x-") {
					continue // an extension key, for anchors
				}
				d.problem(e.keyNode, join(path, e.key), "unknown key; %s", suggest(e.key, keysOf(v.Type())))
				continue
			}
			d.decode(e.value, v.Field(i), join(path, e.key))
		}
	default:
		panic("config: no decoding for " + v.Type().String()) // a schema type this file does not know
	}
}

// entry is one key of a mapping, after merge keys are expanded.
type entry struct {
	key     string
	keyNode ast.Node
	value   ast.Node
}

// entries lists m's keys in order, reporting duplicates, with the keys merged in by
// `<<` after them unless m sets them itself (YAML merge key semantics).
func (d *decoder) entries(m *ast.MappingNode, path string, depth int) []entry {
	var own, merged []entry
	seen := map[string]ast.Node{}
	for _, mv := range m.Values {
		if mv.Key.IsMergeKey() {
			if depth >= maxMergeDepth {
				d.problem(mv, path, "merge keys (<<) nested too deeply")
				continue
			}
			merged = append(merged, d.mergeSources(mv.Value, path, depth)...)
			continue
		}
		kn := d.resolve(mv.Key, path)
		if kn == nil {
			continue
		}
		key, ok := scalarText(kn)
		if !ok {
			d.problem(mv, path, "a key must be text, not %s", kindOf(kn))
			continue
		}
		if first, dup := seen[key]; dup {
			d.problem(mv.Key, join(path, key), "duplicate key (first set at %s)", d.where(first))
			continue
		}
		seen[key] = mv.Key
		own = append(own, entry{key: key, keyNode: mv.Key, value: mv.Value})
	}
	for _, e := range merged {
		if _, dup := seen[e.key]; !dup {
			seen[e.key] = e.keyNode
			own = append(own, e)
		}
	}
	return own
}

// mergeSources expands the value of a merge key: one mapping or a list of them.
func (d *decoder) mergeSources(n ast.Node, path string, depth int) []entry {
	r := d.resolve(n, path)
	switch r := r.(type) {
	case nil:
		return nil
	case *ast.MappingNode:
		return d.entries(r, path, depth+1)
	case *ast.SequenceNode:
		var out []entry
		for _, e := range r.Values {
			if m, ok := d.resolve(e, path).(*ast.MappingNode); ok {
				out = append(out, d.entries(m, path, depth+1)...)
			} else {
				d.problem(e, path, "a merge key (<<) takes mappings")
			}
		}
		return out
	}
	d.problem(n, path, "a merge key (<<) takes a mapping or a list of mappings, not %s", kindOf(r))
	return nil
}

// scalarText is the text of a scalar as written: `0123` is "0123", `1.50` is "1.50".
func scalarText(n ast.Node) (string, bool) {
	switch n := n.(type) {
	case *ast.StringNode:
		return n.Value, true
	case *ast.LiteralNode:
		return n.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return n.GetToken().Value, true
	}
	return "", false
}

// kindOf describes a node for "expected …, got …" messages.
func kindOf(n ast.Node) string {
	switch n := n.(type) {
	case *ast.StringNode, *ast.LiteralNode:
		return fmt.Sprintf("text %q", n.(ast.ScalarNode).GetValue())
	case *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "the number " + n.GetToken().Value
	case *ast.BoolNode:
		return n.GetToken().Value
	case *ast.SequenceNode:
		return "a list"
	case *ast.MappingNode:
		return "a mapping"
	}
	return n.Type().YAMLName()
}

// describe names what a schema type expects.
func describe(t reflect.Type) string {
	if t == reflect.TypeFor[Duration]() {
		return "a duration (like 90s, 5m or 24h)"
	}
	return "text"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fieldsOf maps a struct type's yaml keys to field indexes.
func fieldsOf(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := range t.NumField() {
		if k := yamlKey(t.Field(i)); k != "" {
			m[k] = i
		}
	}
	return m
}

// keysOf lists a struct type's yaml keys in declaration order.
func keysOf(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if k := yamlKey(t.Field(i)); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// yamlKey is the key of a struct field: its yaml tag's name; "" for a field that is
// not part of the schema (unexported, or tagged "-" or without a name).
func yamlKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// suggest proposes the known key closest to an unknown one, or lists them all.
func suggest(key string, known []string) string {
	best, bestDist := "", len(key)/3+2
	for _, k := range known {
		if dist := editDistance(strings.ToLower(key), k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best != "" {
		return "did you mean " + strconv.Quote(best) + "?"
	}
	return "expected one of " + strings.Join(known, ", ")
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
