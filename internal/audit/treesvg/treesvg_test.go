package treesvg

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"go/build"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/oauth"
)

// elem is an element of the rendered SVG as encoding/xml reads it.
type elem struct {
	name     string
	attr     map[string]string
	children []*elem
	text     string // character data directly inside
}

// parse reads out as one XML document whose root is an <svg> element; it fails t
// when it is not well-formed or holds anything after the root.
func parse(t testing.TB, out []byte) *elem {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(out))
	var stack []*elem
	var root *elem
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, out)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			e := &elem{name: tok.Name.Local, attr: map[string]string{}}
			for _, a := range tok.Attr {
				e.attr[a.Name.Local] = a.Value
			}
			if len(stack) == 0 {
				if root != nil {
					t.Fatalf("a second root element <%s>", e.name)
				}
				root = e
			} else {
				p := stack[len(stack)-1]
				p.children = append(p.children, e)
			}
			stack = append(stack, e)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(tok)
			} else if len(bytes.TrimSpace(tok)) > 0 {
				t.Fatalf("text outside the root: %q", tok)
			}
		case xml.ProcInst, xml.Directive:
			t.Fatalf("unexpected %T", tok)
		}
	}
	if root == nil || root.name != "svg" {
		t.Fatalf("root is not <svg>: %+v", root)
	}
	return root
}

func (e *elem) walk(fn func(*elem)) {
	fn(e)
	for _, c := range e.children {
		c.walk(fn)
	}
}

// allText is the text inside e, its children's included.
func (e *elem) allText() string {
	s := e.text
	for _, c := range e.children {
		s += c.allText()
	}
	return s
}

func (e *elem) hasClass(c string) bool { return slices.Contains(strings.Fields(e.attr["class"]), c) }

// all returns the elements under e (e included) for which keep holds.
func (e *elem) all(keep func(*elem) bool) []*elem {
	var out []*elem
	e.walk(func(x *elem) {
		if keep(x) {
			out = append(out, x)
		}
	})
	return out
}

// box is where a row's rectangle lies.
type box struct{ x, y, w, h int }

func rowBox(t testing.TB, g *elem) box {
	t.Helper()
	var b box
	if _, err := fmt.Sscanf(g.attr["transform"], "translate(%d %d)", &b.x, &b.y); err != nil {
		t.Fatalf("transform %q: %v", g.attr["transform"], err)
	}
	rects := g.all(func(x *elem) bool { return x.name == "rect" && x.hasClass("box") })
	if len(rects) != 1 {
		t.Fatalf("%d box rects in %v", len(rects), g.attr)
	}
	b.w, _ = strconv.Atoi(rects[0].attr["width"])
	b.h, _ = strconv.Atoi(rects[0].attr["height"])
	return b
}

// checkStructure checks the drawing of tree against the tree: every token once,
// every exchange once, every event of every token present, no two rows overlapping
// and all inside the viewBox.
func checkStructure(t *testing.T, tree *audit.Tree, out []byte) {
	t.Helper()
	root := parse(t, out)
	nodes := map[string]int{}
	for _, g := range root.all(func(x *elem) bool { return x.name == "g" && x.hasClass("node") }) {
		nodes[g.attr["data-jti"]]++
	}
	edges := map[string]int{}
	for _, p := range root.all(func(x *elem) bool { return x.name == "path" && x.hasClass("edge") && !x.hasClass("event") }) {
		edges[p.attr["data-from"]+"→"+p.attr["data-to"]]++
	}
	leaves := map[string]int{}
	for _, g := range root.all(func(x *elem) bool { return x.name == "g" && x.hasClass("leaf") }) {
		leaves[g.attr["data-from"]+"/"+g.attr["data-event"]+"/"+strings.Fields(g.attr["class"])[1]]++
	}
	badges := map[string]string{}
	for _, g := range root.all(func(x *elem) bool { return x.name == "g" && x.hasClass("node") }) {
		for _, b := range g.all(func(x *elem) bool { return x.hasClass("badge") && x.hasClass("revoked") }) {
			badges[g.attr["data-jti"]] = b.attr["data-event"]
		}
	}

	wantNodes, wantEdges, wantLeaves := 0, 0, 0
	var walk func(n *audit.Node)
	walk = func(n *audit.Node) {
		wantNodes++
		if nodes[carried(n.JTI)] != 1 {
			t.Errorf("token %q drawn %d times", n.JTI, nodes[n.JTI])
		}
		var revoked string
		for _, e := range n.Events {
			wantLeaves++
			kind := map[string]string{audit.RelCall: "call", audit.RelDenied: "denied", audit.RelRevoked: "revoked"}[e.Relation]
			if kind == "" {
				kind = eventKind(&e)
			}
			if k := carried(n.JTI + "/" + e.ID + "/" + kind); leaves[k] != 1 {
				t.Errorf("event %s drawn %d times (want a %q leaf under %s): %v", e.ID, leaves[k], kind, n.JTI, leaves)
			}
			if kind == "revoked" && revoked == "" {
				revoked = carried(e.ID)
			}
		}
		if badges[carried(n.JTI)] != revoked {
			t.Errorf("token %s badged revoked by %q, want %q", n.JTI, badges[n.JTI], revoked)
		}
		for _, c := range n.Children {
			wantEdges++
			if k := carried(n.JTI + "→" + c.JTI); edges[k] != 1 {
				t.Errorf("exchange %s drawn %d times", k, edges[k])
			}
			walk(c)
		}
	}
	walk(tree.Root)
	if len(nodes) != wantNodes || len(edges) != wantEdges || len(leaves) != wantLeaves {
		t.Errorf("drawn %d tokens, %d exchanges, %d events; the tree has %d, %d, %d",
			len(nodes), len(edges), len(leaves), wantNodes, wantEdges, wantLeaves)
	}

	var vb box
	if _, err := fmt.Sscanf(root.attr["viewBox"], "0 0 %d %d", &vb.w, &vb.h); err != nil {
		t.Fatalf("viewBox %q: %v", root.attr["viewBox"], err)
	}
	rows := root.all(func(x *elem) bool { return x.name == "g" && (x.hasClass("node") || x.hasClass("leaf")) })
	boxes := make([]box, len(rows))
	for i, g := range rows {
		b := rowBox(t, g)
		if b.x < 0 || b.y < 0 || b.x+b.w > vb.w || b.y+b.h > vb.h {
			t.Errorf("row %v at %+v outside the viewBox %+v", g.attr, b, vb)
		}
		// Rows are laid out top to bottom in document order: a row only needs
		// checking against the one before it, and then the order itself.
		if i > 0 {
			a := boxes[i-1]
			if b.y < a.y+a.h {
				t.Errorf("rows %v and %v overlap: %+v, %+v", rows[i-1].attr, g.attr, a, b)
			}
		}
		boxes[i] = b
	}
}

func render(t testing.TB, tree *audit.Tree, opt Options) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := Render(&out, tree, opt); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestRenderDemo(t *testing.T) {
	tree := trace(t, demoTrail(), "T1")
	out := render(t, tree, links)
	checkStructure(t, tree, out)
	golden(t, "demo-T1.svg", out)
	if again := render(t, tree, links); !bytes.Equal(out, again) {
		t.Error("two renderings of the same tree differ")
	}

	root := parse(t, out)
	if root.attr["role"] != "group" || root.attr["width"] != "100%" || root.children[0].name != "title" || root.children[1].name != "desc" {
		t.Errorf("svg root: %v, first children %s %s", root.attr, root.children[0].name, root.children[1].name)
	}
	if got := root.children[1].text; got != "6 tokens (2 by exchange), 2 calls reported, 1 request denied, 2 tokens revoked." {
		t.Errorf("desc %q", got)
	}
	// Each row links to its page, and its <title> holds what the row cut short.
	for _, g := range root.all(func(x *elem) bool { return x.name == "g" && (x.hasClass("node") || x.hasClass("leaf")) }) {
		as := g.all(func(x *elem) bool { return x.name == "a" })
		want := "/audit/ui/tokens/" + g.attr["data-jti"]
		if g.hasClass("leaf") {
			want = "/audit/ui/events/" + g.attr["data-event"]
		}
		if len(as) != 1 || as[0].attr["href"] != want || as[0].children[0].name != "title" {
			t.Errorf("row %v: links %v, want one to %s with a title", g.attr, as, want)
		}
	}
	for _, want := range []string{"sign-in · web-app", "authorization code · web-app", "exchange · api1", "bound DPoP key 0ZcOCORZ…", "bound mTLS cert A4DtL2Jm…", "bearer (not bound)",
		"rule exchange.policies[1]", "denied · api3", "revoked with T1 · api1", "<tspan class=\"key\" fill=\"#64748b\">did</tspan> read ledger/42: ok", "mTLS certificate x5t#S256 " + x5tAPI2,
		"policy api3-to-api4: targets — does not allow audience &#34;https://api5.example&#34;"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("drawing lacks %q", want)
		}
	}
	asked := root.all(func(x *elem) bool { return x.hasClass("asked") })
	if len(asked) != 1 || asked[0].attr["data-jti"] != "T1" {
		t.Errorf("asked rows %v, want T1's", asked)
	}
}

func TestRenderAskedEvent(t *testing.T) {
	tree := trace(t, demoTrail(), "D1")
	out := render(t, tree, Options{})
	checkStructure(t, tree, out)
	root := parse(t, out)
	asked := root.all(func(x *elem) bool { return x.hasClass("asked") })
	if len(asked) != 1 || asked[0].attr["data-event"] != "D1" || !asked[0].hasClass("denied") {
		t.Errorf("asked rows %v, want the denial D1", asked)
	}
	if root.attr["role"] != "img" || len(root.all(func(x *elem) bool { return x.name == "a" })) != 0 {
		t.Errorf("without URLs: role %q and links drawn", root.attr["role"])
	}
}

func TestRenderOutsideIssuer(t *testing.T) {
	tree := trace(t, outsideTrail(), "F2")
	out := render(t, tree, links)
	checkStructure(t, tree, out)
	golden(t, "outside-F2.svg", out)
	root := parse(t, out)
	r := root.all(func(x *elem) bool { return x.hasClass("root") })
	if len(r) != 1 || !r[0].hasClass("outside") || !bytes.Contains(out, []byte("issuer https://idp.corp.example/saml")) {
		t.Errorf("root %v does not show the outside issuer", r)
	}
}

// TestRenderEventWithoutToken: a trace asked for an event that concerns no token
// is that event alone.
func TestRenderEventWithoutToken(t *testing.T) {
	tree := &audit.Tree{Asked: "K9", Event: &audit.Event{Relation: audit.RelOther, ID: "K9", Time: t0, Type: "key.rotated", Asked: true}}
	root := parse(t, render(t, tree, links))
	leaves := root.all(func(x *elem) bool { return x.hasClass("leaf") })
	if len(leaves) != 1 || leaves[0].attr["data-event"] != "K9" || !leaves[0].hasClass("other") || !leaves[0].hasClass("asked") {
		t.Errorf("leaves %v", leaves)
	}
}

// TestRenderSignOut: a sign-out revokes what the session issued; it is drawn as a
// revocation of the sign-in.
func TestRenderSignOut(t *testing.T) {
	tree := &audit.Tree{Root: &audit.Node{JTI: "sid-1", Type: "signin", Subject: "alice", Events: []audit.Event{
		{Relation: audit.RelOther, ID: "SO", Time: t0, Type: "signout", TokenJTI: "sid-1", Reason: "signed out"}}}}
	out := render(t, tree, Options{})
	checkStructure(t, tree, out)
	if !bytes.Contains(out, []byte(">signed out<")) {
		t.Errorf("no sign-out:\n%s", out)
	}
}

func TestRenderTruncated(t *testing.T) {
	tree := &audit.Tree{Root: &audit.Node{JTI: "T0", Type: "token.issued"}, Truncated: true}
	root := parse(t, render(t, tree, Options{}))
	if n := root.all(func(x *elem) bool { return x.hasClass("truncated") }); len(n) != 1 || !strings.Contains(n[0].text, "truncated") {
		t.Errorf("no truncation note: %v", n)
	}
}

func TestRenderErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		tree *audit.Tree
	}{
		{"fail/nil-tree", nil},
		{"fail/no-root-no-event", &audit.Tree{Asked: "x"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := Render(&out, tt.tree, links); err == nil || out.Len() != 0 {
				t.Errorf("Render = %v, wrote %q; want an error and nothing written", err, out.String())
			}
		})
	}
}

func TestSafeHref(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"ok/path", "/audit/ui/events/E1", "/audit/ui/events/E1"},
		{"ok/https", "https://deputy.example/audit/ui/tokens/T1", "https://deputy.example/audit/ui/tokens/T1"},
		{"fail/javascript", "javascript:alert(1)", ""},
		{"fail/javascript-upper", "JAVASCRIPT:alert(1)", ""},
		{"fail/data", "data:text/html,<script>", ""},
		{"fail/protocol-relative", "//evil.example/x", ""},
		{"fail/backslash", `/\evil.example`, ""},
		{"fail/space", "/a b", ""},
		{"fail/newline", "/a\nb", ""},
		{"fail/empty", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := safeHref(tt.in); got != tt.want {
				t.Errorf("safeHref(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	// A link the page's func should never make is dropped, not drawn.
	tree := trace(t, demoTrail(), "T1")
	out := render(t, tree, Options{TokenURL: func(string) string { return "javascript:alert(1)" }})
	if bytes.Contains(out, []byte("<a")) || bytes.Contains(out, []byte("javascript")) {
		t.Errorf("an unsafe URL was drawn:\n%s", out)
	}
}

// hostile are texts from outside that must reach the page neither as markup nor
// raw: each would close the SVG, add a script or an attribute, break a line or
// reorder what is shown.
var hostile = map[string]string{
	"close-svg":  `</svg><script>alert(1)</script>`,
	"attr-quote": `" onmouseover="alert(1)" x="`,
	"apos":       `' onfocus='alert(1)`,
	"cdata":      `<![CDATA[x]]>`,
	"entity":     `&amp;&lt;&#0;&#x1b;`,
	"esc":        "alice\x1b[2J\x1b]0;owned\x07",
	"cr-lf":      "alice\r\nforged line",
	"nul":        "alice\x00",
	"del":        "alice\x7f",
	"c1":         "alice\u009b31m",
	"line-sep":   "alice\u2028forged",
	"bidi-rlo":   "alice\u202egnp.exe",
	"bidi-fsi":   "alice\u2068x\u2069",
	"zero-width": "ali\u200bce",
	"bad-utf8":   "alice\xff\xfe",
	"backslash":  `alice\u202e`,
	"long":       strings.Repeat("W", 5000),
	"wide":       strings.Repeat("漢", 300),
}

// hostileTree puts h in every text field of a tree: ids, clients, subjects,
// audiences, scopes, rules, reasons, policies.
func hostileTree(h string) *audit.Tree {
	ev := func(rel, typ string) audit.Event {
		return audit.Event{Relation: rel, ID: "E-" + h, Time: t0, Type: typ, ClientID: h, Subject: h, Actors: []string{h},
			Audiences: []string{h}, Scopes: []string{h}, Reason: h, Rule: h, TraceID: h, Via: h,
			Policies: []audit.PolicyResult{{Policy: h, Check: h, Reason: h}}}
	}
	node := func(jti string) *audit.Node {
		return &audit.Node{JTI: jti, Type: "token.exchanged", EventID: h, Time: t0, ClientID: h, Subject: h, SubjectIssuer: h,
			Actors: []string{h, h}, Audiences: []string{h}, Scopes: []string{h}, Rule: h, Expires: t0, TraceID: h,
			Cnf: &oauth.Confirmation{JKT: h}, Asked: true}
	}
	child := node("child-" + h)
	child.Cnf = &oauth.Confirmation{X5TS256: h}
	child.Events = []audit.Event{ev(audit.RelCall, "call.reported"), ev(audit.RelDenied, "request.denied"), ev(audit.RelRevoked, "token.revoked"), ev(audit.RelOther, h)}
	root := node(h)
	root.Type = h
	root.Children = []*audit.Node{child, {JTI: "unknown-" + h, Unknown: true, Children: []*audit.Node{{JTI: "x", SubjectIssuer: h}}}}
	return &audit.Tree{Asked: h, Root: root}
}

// checkNoRaw fails t when out holds a character from outside raw: a control
// character other than the line ends the renderer writes itself, a bidi or
// invisible format character, invalid UTF-8, or markup that the renderer did not
// write.
func checkNoRaw(t *testing.T, out []byte) {
	t.Helper()
	if !utf8.Valid(out) {
		t.Errorf("output is not valid UTF-8")
	}
	for i, r := range string(out) {
		if r == '\n' {
			continue
		}
		if oauth.UnsafeRune(r) || !strconv.IsPrint(r) && r != ' ' {
			t.Errorf("output holds %U raw at %d: %q", r, i, out[max(0, i-40):min(len(out), i+40)])
			return
		}
	}
	for _, bad := range []string{"<script", "<![cdata[", "javascript:", "style="} {
		if bytes.Contains(bytes.ToLower(out), []byte(bad)) {
			t.Errorf("output holds %q", bad)
		}
	}
	// Only the elements and attributes the renderer writes: text from outside
	// made none.
	parse(t, out).walk(func(x *elem) {
		if !slices.Contains(elements, x.name) {
			t.Errorf("element <%s>", x.name)
		}
		for a := range x.attr {
			if !slices.Contains(attributes, a) {
				t.Errorf("attribute %s on <%s>", a, x.name)
			}
		}
	})
}

var (
	elements   = []string{"svg", "title", "desc", "g", "a", "rect", "circle", "path", "text", "tspan"}
	attributes = []string{"xmlns", "class", "role", "width", "height", "viewBox", "preserveAspectRatio", "font-family", "font-size",
		"font-weight", "transform", "data-jti", "data-event", "data-from", "data-to", "href", "x", "y", "rx", "cx", "cy", "r", "d",
		"fill", "stroke", "stroke-width", "stroke-dasharray", "text-anchor"}
)

// carried is s as XML can carry it: invalid UTF-8 and the C0 controls other
// than tab and line ends as U+FFFD, one per byte.
func carried(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' {
			r = utf8.RuneError
		}
		b.WriteRune(r)
	}
	return b.String()
}

func TestRenderEscapesOutsideText(t *testing.T) {
	for name, h := range hostile {
		t.Run("fail/"+name, func(t *testing.T) {
			tree := hostileTree(h)
			out := render(t, tree, links)
			checkNoRaw(t, out)
			checkStructure(t, tree, out)
			root := parse(t, out)
			// The text reads back as display shows it, so that a reader sees the
			// quoted value and never the raw one.
			var titles []string
			root.walk(func(x *elem) {
				if x.name == "title" {
					titles = append(titles, x.text)
				}
			})
			if want := "sub " + display(h); !strings.Contains(strings.Join(titles, "\n"), want) {
				t.Errorf("no title holds %q", want)
			}
			// Ids come back exactly in the data attributes, but for what XML
			// cannot carry (deputy's own ids never hold it).
			if got := root.all(func(x *elem) bool { return x.hasClass("root") })[0].attr["data-jti"]; got != carried(h) {
				t.Errorf("data-jti reads back %q, want %q", got, carried(h))
			}
			// Long values are cut: no line of text is wider than a box.
			root.walk(func(x *elem) {
				if s := x.allText(); x.name == "text" && columns(s) > maxText {
					t.Errorf("text of %d columns: %q", columns(s), s)
				}
			})
		})
	}
}

// FuzzRenderText: whatever text the trail holds, the drawing is one well-formed
// <svg> with nothing raw in it.
func FuzzRenderText(f *testing.F) {
	for _, h := range hostile {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if len(h) > 1024 { // audit.Bound keeps jtis to 1024 bytes, most fields to less
			return
		}
		out := render(t, hostileTree(h), links)
		checkNoRaw(t, out)
		parse(t, out)
	})
}

// chain is a tree of depth hops, each token with one call.
func chain(hops int) *audit.Tree {
	root := &audit.Node{JTI: "J0", Type: "token.issued", ClientID: "web-app", Subject: "alice"}
	n := root
	for i := 1; i <= hops; i++ {
		c := &audit.Node{JTI: fmt.Sprintf("J%d", i), Type: "token.exchanged", ClientID: fmt.Sprintf("api%d", i),
			Subject: "alice", Audiences: []string{fmt.Sprintf("https://api%d.example", i+1)}, ParentJTI: n.JTI,
			Events: []audit.Event{{Relation: audit.RelCall, ID: fmt.Sprintf("K%d", i), Time: t0, Type: "call.reported"}}}
		n.Children = []*audit.Node{c}
		n = c
	}
	return &audit.Tree{Root: root}
}

// fan is a token exchanged width times.
func fan(width int) *audit.Tree {
	root := &audit.Node{JTI: "W", Type: "token.issued", ClientID: "web-app", Subject: "alice"}
	for i := range width {
		root.Children = append(root.Children, &audit.Node{JTI: fmt.Sprintf("W%d", i), Type: "token.exchanged",
			ClientID: "api1", Subject: "alice", ParentJTI: "W"})
	}
	return &audit.Tree{Root: root}
}

// TestRenderBounded: a deep chain grows the drawing right by one indent per hop,
// a wide tree down by one row per token, and the output by a bounded number of
// bytes per row.
func TestRenderBounded(t *testing.T) {
	for _, tt := range []struct {
		name  string
		tree  *audit.Tree
		rows  int
		depth int
	}{
		{"ok/deep-chain-32", chain(32), 1 + 32*2, 33},
		{"ok/wide-tree-100", fan(100), 101, 1},
		{"ok/max-depth-chain", chain(audit.MaxTraceDepth), 1 + audit.MaxTraceDepth*2, audit.MaxTraceDepth + 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := render(t, tt.tree, links)
			checkStructure(t, tt.tree, out)
			root := parse(t, out)
			var w, h int
			fmt.Sscanf(root.attr["viewBox"], "0 0 %d %d", &w, &h)
			if maxW := 2*margin + tt.depth*indent + boxW; w > maxW {
				t.Errorf("width %d, want at most %d", w, maxW)
			}
			if maxH := tt.rows * (padTop + padBot + 8*lineH + gap); h > maxH {
				t.Errorf("height %d, want at most %d", h, maxH)
			}
			if maxB := 2000 + tt.rows*1500; len(out) > maxB {
				t.Errorf("%d bytes for %d rows, want at most %d", len(out), tt.rows, maxB)
			}
		})
	}
}

// TestImports enforces doc.go: internal/audit and the standard library only, and
// never net/http or database/sql directly. (deptest.PureImports does not fit: it
// follows every chain, and internal/audit reaches net/http through the
// OpenTelemetry API's propagation package, which it is allowed to import.)
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkg.Imports) < 3 {
		t.Fatalf("suspiciously few imports: %v", pkg.Imports)
	}
	for _, imp := range pkg.Imports {
		switch {
		case imp == "github.com/deputy-auth/deputy/internal/audit":
		case imp == "net/http", imp == "database/sql", strings.HasPrefix(imp, "net/http/"), strings.HasPrefix(imp, "database/sql/"):
			t.Errorf("treesvg imports %s", imp)
		case strings.Contains(strings.SplitN(imp, "/", 2)[0], "."):
			t.Errorf("treesvg imports %s: only internal/audit and the standard library are allowed", imp)
		}
	}
}

func BenchmarkRenderDemo(b *testing.B) {
	tree := trace(b, demoTrail(), "T1")
	var out bytes.Buffer
	for b.Loop() {
		out.Reset()
		if err := Render(&out, tree, links); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(out.Len()))
}

// TestRenderTxnToken: a transaction token's box shows its txn, whether it is a
// replacement, and its context as the text renderers show it; a hostile context
// is escaped.
func TestRenderTxnToken(t *testing.T) {
	tx1 := &audit.Node{JTI: "TX1", Type: "token.exchanged", Subject: "alice", Scopes: []string{"payments:write"}, ParentJTI: "T0",
		Txn: &audit.TxnToken{Txn: "tx-9", Context: []byte(`{"payment":"<p-42>"}`)}}
	tx2 := &audit.Node{JTI: "TX2", Type: "token.exchanged", Subject: "alice", Scopes: []string{"ledger:write"}, ParentJTI: "TX1",
		Txn: &audit.TxnToken{Txn: "tx-9", Context: []byte("{\"a\":\"\u202e\"}"), Replacement: true}}
	tx1.Children = []*audit.Node{tx2}
	tree := &audit.Tree{Asked: "TX2", Root: &audit.Node{JTI: "T0", Type: "token.issued", Subject: "alice", Children: []*audit.Node{tx1}}}
	out := render(t, tree, links)
	checkNoRaw(t, out)
	checkStructure(t, tree, out)
	for _, want := range []string{"txn tx-9", "txn tx-9 (replacement)", `tctx {&#34;payment&#34;:&#34;&lt;p-42&gt;&#34;}`, `\u202e`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("the drawing lacks %q:\n%s", want, out)
		}
	}
}
