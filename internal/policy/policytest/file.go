package policytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/deputy-auth/deputy/oauth"
)

// Case is one case of a policy test file: an exchange request and the outcome it
// must have.
type Case struct {
	Name  string
	Where string // "file:line" of the case, for messages
	// ClientWhere is where client is written, to name an unknown client.
	ClientWhere string
	Input
	// Now is the time the case is decided at (conditions see it as now; the
	// subject's expiry is checked against it); zero: the current time.
	Now    time.Time
	Expect Expect
}

// Expect is the outcome a case wants: Allow with, when set, the deciding Rule and
// the granted Scopes; or the OAuth Error code the client would get.
type Expect struct {
	Allow bool
	Rule  string
	// Scopes are the scopes granted, in any order; nil: not checked (an empty
	// list wants none).
	Scopes []string
	Error  string
}

// Problem is what is wrong with a test file, at a position.
type Problem struct {
	Where   string // "file:line:column"
	Message string
}

func (p Problem) String() string { return p.Where + ": " + p.Message }

// Error lists every problem found in a test file.
type Error struct{ Problems []Problem }

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// maxFileBytes bounds a test file: it is read whole.
const maxFileBytes = 4 << 20

// Parse reads a policy test file (README "Token exchange rules"): a YAML list of
// cases, each a mapping of name, client, subject {claims, issuer, type}, actor,
// audience and resource (lists), scope (space-separated), requested_token_type
// (a short name), binding ({jkt: thumbprint} or {x5t#S256: thumbprint}), now (an
// RFC 3339 time) and expect {allow: true, rule, scopes} or {error: code}. Any other
// key, a missing name, client or expect, or a value of the wrong kind is an
// *Error naming file, line and column. Whether the client exists is for the
// caller, which has the configuration (Case.ClientWhere).
func Parse(file string, src []byte) ([]Case, error) {
	if len(src) > maxFileBytes {
		return nil, &Error{[]Problem{{file, fmt.Sprintf("larger than %d bytes", maxFileBytes)}}}
	}
	f, err := parser.ParseBytes(src, 0)
	if err != nil {
		var ye yaml.Error
		p := Problem{Where: file, Message: "YAML syntax: " + err.Error()}
		if errors.As(err, &ye) {
			p.Message = "YAML syntax: " + ye.GetMessage()
			if tk := ye.GetToken(); tk != nil && tk.Position != nil {
				p.Where = fmt.Sprintf("%s:%d:%d", file, tk.Position.Line, tk.Position.Column)
			}
		}
		return nil, &Error{[]Problem{p}}
	}
	r := &reader{file: file}
	var body ast.Node
	for _, doc := range f.Docs {
		if doc == nil || doc.Body == nil {
			continue
		}
		if body != nil {
			r.problem(doc.Body, "a second YAML document; a test file is one list of cases")
			return nil, r.err()
		}
		body = doc.Body
	}
	if body == nil {
		return nil, &Error{[]Problem{{file, "no test cases: the file is a YAML list of cases"}}}
	}
	seq, ok := body.(*ast.SequenceNode)
	if !ok {
		r.problem(body, "the file must be a YAML list of cases (- name: …)")
		return nil, r.err()
	}
	if len(seq.Values) == 0 {
		r.problem(body, "no test cases")
		return nil, r.err()
	}
	cases := make([]Case, 0, len(seq.Values))
	names := map[string]string{}
	for _, n := range seq.Values {
		c, ok := r.testCase(n)
		if !ok {
			continue
		}
		if first, dup := names[c.Name]; dup {
			r.problem(n, fmt.Sprintf("name %q is already the name of the case at %s", c.Name, first))
			continue
		}
		names[c.Name] = c.Where
		cases = append(cases, c)
	}
	if len(r.problems) > 0 {
		return nil, r.err()
	}
	return cases, nil
}

type reader struct {
	file     string
	problems []Problem
}

func (r *reader) err() error { return &Error{r.problems} }

func (r *reader) where(n ast.Node) string {
	tk := n.GetToken()
	switch m := n.(type) {
	case *ast.MappingNode:
		if len(m.Values) > 0 {
			tk = m.Values[0].Key.GetToken()
		}
	case *ast.MappingValueNode:
		tk = m.Key.GetToken()
	}
	if tk == nil || tk.Position == nil {
		return r.file
	}
	return fmt.Sprintf("%s:%d:%d", r.file, tk.Position.Line, tk.Position.Column)
}

func (r *reader) line(n ast.Node) string {
	w := r.where(n)
	if i := strings.LastIndexByte(w, ':'); i > len(r.file) {
		return w[:i]
	}
	return w
}

func (r *reader) problem(n ast.Node, msg string) {
	r.problems = append(r.problems, Problem{Where: r.where(n), Message: msg})
}

// pairs returns the key-value pairs of a mapping node, or reports what n is
// instead.
func (r *reader) pairs(n ast.Node, what string) ([]*ast.MappingValueNode, bool) {
	switch m := n.(type) {
	case *ast.MappingNode:
		return m.Values, true
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{m}, true
	}
	r.problem(n, what+" must be a mapping, not "+kind(n))
	return nil, false
}

// kind names a node's kind for messages.
func kind(n ast.Node) string {
	switch n.(type) {
	case *ast.SequenceNode:
		return "a list"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.NullNode, nil:
		return "empty"
	case *ast.AnchorNode, *ast.AliasNode, *ast.TagNode:
		return "an anchor, alias or tag (not supported in test files)"
	}
	return "a scalar"
}

func keyOf(kv *ast.MappingValueNode) string {
	if k, ok := kv.Key.(ast.ScalarNode); ok {
		return fmt.Sprint(k.GetValue())
	}
	return kv.Key.String()
}

// text reads a scalar as text.
func (r *reader) text(kv *ast.MappingValueNode, path string) (string, bool) {
	switch v := kv.Value.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		return v.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		return v.GetToken().Value, true
	}
	msg := path + " must be text, not " + kind(kv.Value)
	if kind(kv.Value) == "a mapping" {
		msg += ` (quote a value with a colon in a flow list: ["fraud:check"])`
	}
	r.problem(kv.Value, msg)
	return "", false
}

// list reads a list of text (a single text is a list of one).
func (r *reader) list(kv *ast.MappingValueNode, path string) ([]string, bool) {
	seq, ok := kv.Value.(*ast.SequenceNode)
	if !ok {
		s, ok := r.text(kv, path)
		if !ok {
			return nil, false
		}
		return []string{s}, true
	}
	out := make([]string, 0, len(seq.Values))
	for i, v := range seq.Values {
		item := &ast.MappingValueNode{Key: kv.Key, Value: v}
		s, ok := r.text(item, fmt.Sprintf("%s[%d]", path, i))
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

func (r *reader) testCase(n ast.Node) (Case, bool) {
	kvs, ok := r.pairs(n, "a case")
	if !ok {
		return Case{}, false
	}
	c := Case{Where: r.line(n)}
	before := len(r.problems)
	seen := map[string]bool{}
	for _, kv := range kvs {
		k := keyOf(kv) // the parser refuses a key given twice
		seen[k] = true
		switch k {
		case "name":
			c.Name, _ = r.text(kv, k)
		case "client":
			c.Client, _ = r.text(kv, k)
			c.ClientWhere = r.line(kv)
		case "subject":
			r.subject(kv, &c.Subject)
		case "actor":
			c.Actor, _ = r.text(kv, k)
		case "audience":
			c.Audiences, _ = r.list(kv, k)
		case "resource":
			c.Resources, _ = r.list(kv, k)
		case "scope":
			c.Scope, _ = r.text(kv, k)
		case "requested_token_type":
			c.RequestedTokenType, _ = r.text(kv, k)
		case "binding":
			c.Binding = r.binding(kv)
		case "now":
			if s, ok := r.text(kv, k); ok {
				t, err := time.Parse(time.RFC3339, s)
				if err != nil {
					r.problem(kv.Value, fmt.Sprintf("now %q is not an RFC 3339 time (2026-12-07T10:00:00Z)", s))
				}
				c.Now = t
			}
		case "expect":
			r.expect(kv, &c.Expect)
		default:
			r.problem(kv, fmt.Sprintf("unknown key %q (a case has name, client, subject, actor, audience, resource, scope, requested_token_type, binding, now, expect)", k))
		}
	}
	for _, k := range []string{"name", "client", "expect"} {
		if !seen[k] {
			r.problem(n, "the case has no "+k)
		}
	}
	if seen["name"] && c.Name == "" && len(r.problems) == before {
		r.problem(n, "name must not be empty")
	}
	return c, len(r.problems) == before
}

func (r *reader) subject(kv *ast.MappingValueNode, s *Subject) {
	kvs, ok := r.pairs(kv.Value, "subject")
	if !ok {
		return
	}
	for _, kv := range kvs {
		switch k := keyOf(kv); k {
		case "claims":
			if _, ok := r.pairs(kv.Value, "subject.claims"); !ok {
				continue
			}
			var v map[string]any
			if err := yaml.NodeToValue(kv.Value, &v); err != nil {
				r.problem(kv.Value, "subject.claims: "+err.Error())
				continue
			}
			b, err := json.Marshal(v)
			if err != nil {
				r.problem(kv.Value, "subject.claims cannot be JSON claims: "+err.Error())
				continue
			}
			s.Claims = b
		case "issuer":
			s.Issuer, _ = r.text(kv, "subject.issuer")
		case "type":
			s.Type, _ = r.text(kv, "subject.type")
		default:
			r.problem(kv, fmt.Sprintf("unknown key %q in subject (claims, issuer, type)", k))
		}
	}
}

// binding reads {jkt: thumbprint} or {x5t#S256: thumbprint}: the key the request
// proves, by a DPoP proof or a client certificate.
func (r *reader) binding(kv *ast.MappingValueNode) *oauth.Confirmation {
	kvs, ok := r.pairs(kv.Value, "binding")
	if !ok {
		return nil
	}
	if len(kvs) != 1 {
		r.problem(kv.Value, "binding must be one of {jkt: THUMBPRINT} (a DPoP proof's key) or {x5t#S256: THUMBPRINT} (a client certificate's)")
		return nil
	}
	k := keyOf(kvs[0])
	v, ok := r.text(kvs[0], "binding."+k)
	if !ok {
		return nil
	}
	b, err := NewBinding(k, v)
	if err != nil {
		r.problem(kvs[0], err.Error())
		return nil
	}
	return b
}

// NewBinding is the binding a request proves, by its kind — "jkt" (a DPoP
// proof's key, RFC 9449) or "x5t#S256" (a client certificate's, RFC 8705) — and
// the key's base64url SHA-256 thumbprint.
func NewBinding(kind, key string) (*oauth.Confirmation, error) {
	if !thumbprint(key) {
		return nil, fmt.Errorf("binding %s %q is not a base64url thumbprint", kind, key)
	}
	switch kind {
	case "jkt":
		return &oauth.Confirmation{JKT: key}, nil
	case "x5t#S256":
		return &oauth.Confirmation{X5TS256: key}, nil
	}
	return nil, fmt.Errorf("unknown binding %q: a binding is jkt (a DPoP proof's key) or x5t#S256 (a client certificate's)", kind)
}

func (r *reader) expect(kv *ast.MappingValueNode, e *Expect) {
	kvs, ok := r.pairs(kv.Value, "expect")
	if !ok {
		return
	}
	var allowSet, errSet bool
	for _, kv := range kvs {
		switch k := keyOf(kv); k {
		case "allow":
			b, ok := kv.Value.(*ast.BoolNode)
			if !ok || !b.Value {
				r.problem(kv.Value, "expect.allow must be true (a case that expects a refusal says error: CODE)")
				continue
			}
			e.Allow, allowSet = true, true
		case "rule":
			e.Rule, _ = r.text(kv, "expect.rule")
		case "scopes":
			if l, ok := r.list(kv, "expect.scopes"); ok {
				e.Scopes = []string{}
				for _, s := range l {
					e.Scopes = append(e.Scopes, strings.Fields(s)...)
				}
			}
		case "error":
			e.Error, _ = r.text(kv, "expect.error")
			errSet = e.Error != ""
		default:
			r.problem(kv, fmt.Sprintf("unknown key %q in expect (allow, rule, scopes or error)", k))
		}
	}
	switch {
	case allowSet == errSet:
		r.problem(kv.Value, "expect needs either allow: true or error: CODE")
	case errSet && (e.Rule != "" || e.Scopes != nil):
		r.problem(kv.Value, "expect.rule and expect.scopes go with allow: true")
	}
}
