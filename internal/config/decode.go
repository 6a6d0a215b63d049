package config

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

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

// textStart records where the text of the scalar n begins, past a quote or on the
// line after a block indicator, so that a problem inside the text (a CEL
// condition's column) can point at the very character: origins[path+TextSuffix].
func (d *decoder) textStart(n ast.Node, path string) {
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return
	}
	line, col := tk.Position.Line, tk.Position.Column
	switch n.(type) {
	case *ast.LiteralNode:
		// The text starts on the line after | or >, at that line's indentation.
		line++
		col = 1
		lines := strings.SplitN(string(d.src), "\n", line+1)
		if line-1 < len(lines) {
			col += len(lines[line-1]) - len(strings.TrimLeft(lines[line-1], " "))
		}
	default:
		if tk.Type == token.DoubleQuoteType || tk.Type == token.SingleQuoteType {
			col++
		}
	}
	d.origins[path+TextSuffix] = fmt.Sprintf("%s:%d:%d", d.file, line, col)
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
		d.textStart(n, path)
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
