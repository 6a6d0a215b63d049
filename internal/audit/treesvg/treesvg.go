package treesvg

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/deputy-auth/deputy/internal/audit"
)

// Options are the links of the drawing. A nil func draws no links of its kind.
type Options struct {
	// EventURL is the page of an audit event (a call, a denial, a revocation).
	EventURL func(eventID string) string
	// TokenURL is the page of a token, by jti (also a session id or a code id:
	// the sign-in and the authorization code are nodes of the tree too).
	TokenURL func(jti string) string
}

// Geometry of the drawing, in SVG user units (CSS px at scale 1).
const (
	margin  = 12  // around the drawing
	indent  = 28  // of a child under its parent
	boxW    = 300 // of a token box and of an event row
	lineH   = 15  // between lines of text
	padTop  = 18  // from a box's top to its first baseline
	padBot  = 9   // from the last baseline to the box's bottom
	gap     = 8   // between rows
	textX   = 10  // from a box's left edge to its text
	trunkX  = 14  // from a parent's left edge to the vertical line to its children
	badgeW  = 58  // of the "revoked" badge
	charW   = 7   // a generous average advance at font-size 12, for cutting text
	maxText = (boxW - 2*textX) / charW
)

// line is a line of text in a row: a key drawn muted ("aud"), then the value.
type line struct{ key, value string }

func (l line) String() string {
	if l.key == "" {
		return l.value
	}
	return l.key + " " + l.value
}

// item is one row of the drawing: a token or an event.
type item struct {
	depth   int
	y, h    int
	node    *audit.Node  // a token
	ev      *audit.Event // an event under parent
	parent  string       // jti of the token the row hangs under, "" for the root
	lines   []line       // the first is the heading
	title   string       // the whole story, for <title>
	classes string
	href    string
}

// Render writes the tree t as one <svg> element to w, or an error for a tree
// with neither a root nor an event.
//
// The svg element has class "audit-tree", width="100%" and a viewBox sized to the
// content (no height: the browser keeps the aspect ratio), font attributes, a
// <title> naming the tree and a <desc> counting what it holds, and role "img" —
// "group" when it holds links, which an img would hide from assistive
// technology. The rows go down the page in document order, each token followed
// by its events and then by the tokens exchanged from it, a child indented by
// one step; inside:
//
//   - a token: <g class="node KIND [root] [asked] [revoked] [unknown]"
//     data-jti="…"> where KIND is signin, code, issued, exchanged, outside (the
//     token of an outside issuer, a root) or unknown (not issued in this trail)
//     or other; "asked" marks the token or event the trace was asked for;
//   - an event: <g class="leaf KIND [asked]" data-event="…" data-from="jti">,
//     KIND call, denied, revoked (also a sign-out) or other, with a
//     <circle class="mark"> before its heading (red for denied and revoked);
//   - in each row: <rect class="box">, then <svg class="clip"> holding
//     <text class="head"> and <text class="field"> lines, a field's key in
//     <tspan class="key">;
//   - on a revoked token: <g class="badge revoked" data-event="…"> (the first
//     revocation; each revocation is also a leaf of the token);
//   - an exchange: <path class="edge" data-from="parent jti" data-to="child jti">;
//     the line to an event: <path class="edge event" data-from="jti"
//     data-event="…">;
//   - a truncated tree ends with <text class="note truncated">.
//
// With Options' funcs, each row's content is wrapped in <a href="…"> (focusable
// by keyboard) whose <title> holds the row's whole text, every value uncut; an
// href that is neither a same-site path nor an http(s) URL is dropped. Without
// them the <title> is the row's first child. The output depends only on t and
// the URLs: the same input gives the same bytes.
func Render(w io.Writer, t *audit.Tree, opt Options) error {
	if t == nil || t.Root == nil && t.Event == nil {
		return errors.New("treesvg: an empty tree")
	}
	var rows []*item
	if t.Root != nil {
		rows = layout(t.Root, opt)
	} else {
		rows = []*item{eventItem(t.Event, "", 0, opt)}
	}
	y, width := margin, 0
	for _, r := range rows {
		r.h = padTop + padBot + lineH*(len(r.lines)-1)
		r.y = y
		y += r.h + gap
		width = max(width, margin+r.depth*indent+boxW+margin)
	}
	height := y - gap + margin
	if t.Truncated {
		height += lineH + gap
	}

	b := bufio.NewWriter(w)
	links := false
	for _, r := range rows {
		links = links || r.href != ""
	}
	role := "img"
	if links {
		role = "group"
	}
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" class="audit-tree" role="%s" width="100%%" viewBox="0 0 %d %d"`+
		` preserveAspectRatio="xMinYMin meet" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif" font-size="12">`+"\n",
		role, width, height)
	b.WriteString("<title>")
	escape(b, heading(t))
	b.WriteString("</title>\n<desc>")
	escape(b, summary(t))
	b.WriteString("</desc>\n")

	pos := map[string]*item{}
	for _, r := range rows {
		if r.node != nil {
			pos[r.node.JTI] = r
		}
	}
	// Edges first, so that boxes are drawn over them.
	for _, r := range rows {
		p := pos[r.parent]
		if p == nil {
			continue
		}
		x1 := margin + p.depth*indent + trunkX
		y1 := p.y + p.h
		x2 := margin + r.depth*indent
		y2 := r.y + r.h/2
		if r.node != nil {
			b.WriteString(`<path class="edge" data-from="`)
			escape(b, p.node.JTI)
			b.WriteString(`" data-to="`)
			escape(b, r.node.JTI)
			fmt.Fprintf(b, `" d="M%d %dV%dH%d" fill="none" stroke="#64748b" stroke-width="1.5"/>`+"\n", x1, y1, y2, x2)
			continue
		}
		b.WriteString(`<path class="edge event" data-from="`)
		escape(b, p.node.JTI)
		b.WriteString(`" data-event="`)
		escape(b, r.ev.ID)
		fmt.Fprintf(b, `" d="M%d %dV%dH%d" fill="none" stroke="#94a3b8" stroke-dasharray="3 3"/>`+"\n", x1, y1, y2, x2)
	}
	for _, r := range rows {
		drawRow(b, r)
	}
	if t.Truncated {
		fmt.Fprintf(b, `<text class="note truncated" x="%d" y="%d" fill="#92400e">`, margin, height-margin-4)
		escape(b, fmt.Sprintf("… truncated: more than %d hops or %d tokens", audit.MaxTraceDepth, audit.MaxTraceNodes))
		b.WriteString("</text>\n")
	}
	b.WriteString("</svg>\n")
	return b.Flush()
}

// layout lists the rows of the tree under root in document order: each token,
// then the events that concern it, then the tokens exchanged from it.
func layout(root *audit.Node, opt Options) []*item {
	var rows []*item
	var walk func(n *audit.Node, parent string, depth int)
	walk = func(n *audit.Node, parent string, depth int) {
		rows = append(rows, nodeItem(n, parent, depth, opt))
		for i := range n.Events {
			rows = append(rows, eventItem(&n.Events[i], n.JTI, depth+1, opt))
		}
		for _, c := range n.Children {
			walk(c, n.JTI, depth+1)
		}
	}
	walk(root, "", 0)
	return rows
}

func nodeItem(n *audit.Node, parent string, depth int, opt Options) *item {
	it := &item{depth: depth, node: n, parent: parent}
	kind, label := nodeKind(n)
	classes := []string{"node", kind}
	if parent == "" {
		classes = append(classes, "root")
	}
	if n.Asked {
		classes = append(classes, "asked")
	}
	if revocation(n) != nil {
		classes = append(classes, "revoked")
	}
	if n.Unknown {
		classes = append(classes, "unknown")
	}
	it.classes = strings.Join(classes, " ")
	if opt.TokenURL != nil {
		it.href = safeHref(opt.TokenURL(n.JTI))
	}

	head := label
	if n.ClientID != "" {
		head += " · " + display(n.ClientID)
	}
	it.lines = []line{{value: head}}
	add := func(key, value string) {
		if value != "" {
			it.lines = append(it.lines, line{key, value})
		}
	}
	if n.Unknown {
		if iss := n.OutsideIssuer(); iss != "" {
			add("issuer", display(iss))
		} else {
			add("", "not issued in this audit trail")
		}
		add("jti", display(n.JTI))
		if n.Cnf.Bound() {
			add(bindingText(n))
		}
	} else {
		add("sub", display(n.Subject))
		add("iss", display(n.SubjectIssuer))
		add("act", list(n.Actors))
		add("aud", list(n.Audiences))
		add("scope", list(n.Scopes))
		if n.Txn != nil { // a transaction token: its txn and context
			txn := display(n.Txn.Txn)
			if n.Txn.Replacement {
				txn += " (replacement)"
			}
			add("txn", txn)
			add("tctx", display(string(n.Txn.Context)))
		}
		add("rule", display(n.Rule))
		if !n.Expires.IsZero() {
			add("exp", fmtTime(n.Expires))
		}
		if n.Type != "signin" && n.Type != "code.issued" || n.Cnf.Bound() {
			add(bindingText(n))
		}
	}

	var t strings.Builder
	t.WriteString(label + " " + display(n.JTI))
	if n.Asked {
		t.WriteString(" (asked)")
	}
	for _, l := range it.lines[1:] {
		t.WriteString("\n" + l.String())
	}
	if n.ClientID != "" {
		t.WriteString("\nclient " + display(n.ClientID))
	}
	if !n.Time.IsZero() {
		t.WriteString("\nissued " + fmtTime(n.Time))
	}
	if n.EventID != "" {
		t.WriteString("\nevent " + display(n.EventID))
	}
	if n.TraceID != "" {
		t.WriteString("\ntrace " + display(n.TraceID))
	}
	if n.Cnf.Bound() {
		t.WriteString("\n" + bindingFull(n))
	}
	if r := revocation(n); r != nil {
		t.WriteString("\n" + eventHeading(r))
	}
	it.title = t.String()
	return it
}

func eventItem(e *audit.Event, parent string, depth int, opt Options) *item {
	it := &item{depth: depth, ev: e, parent: parent}
	kind := eventKind(e)
	it.classes = "leaf " + kind
	if e.Asked {
		it.classes += " asked"
	}
	if opt.EventURL != nil {
		it.href = safeHref(opt.EventURL(e.ID))
	}
	head := eventWord(e)
	if e.ClientID != "" {
		head += " · " + display(e.ClientID)
	}
	it.lines = []line{{value: head}, {"at", fmtTime(e.Time)}}
	switch {
	case e.Reason != "" && kind == "call":
		it.lines = append(it.lines, line{"did", display(e.Reason)})
	case e.Reason != "":
		it.lines = append(it.lines, line{"reason", display(e.Reason)})
	case len(e.Audiences) > 0:
		it.lines = append(it.lines, line{"aud", list(e.Audiences)})
	}
	var t strings.Builder
	t.WriteString(eventHeading(e))
	if e.Asked {
		t.WriteString(" (asked)")
	}
	if e.Subject != "" {
		t.WriteString("\nsub " + display(e.Subject))
	}
	for _, kv := range [][2]string{{"act", list(e.Actors)}, {"aud", list(e.Audiences)}, {"scope", list(e.Scopes)}} {
		if kv[1] != "" {
			t.WriteString("\n" + kv[0] + " " + kv[1])
		}
	}
	if e.Reason != "" {
		t.WriteString("\nreason " + display(e.Reason))
	}
	for _, p := range e.Policies {
		t.WriteString("\npolicy " + display(p.Policy) + ": ")
		if p.Check != "" {
			t.WriteString(display(p.Check) + " — ")
		}
		t.WriteString(display(p.Reason))
	}
	t.WriteString("\nevent " + display(e.ID))
	if e.TraceID != "" {
		t.WriteString("\ntrace " + display(e.TraceID))
	}
	it.title = t.String()
	return it
}

// eventWord says what happened: "call", "denied", "revoked with T1"…
func eventWord(e *audit.Event) string {
	var h string
	switch eventKind(e) {
	case "call":
		h = "call"
	case "denied":
		h = "denied"
	case "revoked":
		h = "revoked"
		if e.Type == "signout" {
			h = "signed out"
		}
		if e.Via != "" {
			h += " with " + display(e.Via)
		}
	default:
		h = display(e.Type)
	}
	return h
}

// eventHeading is an event in one line: what happened, by which client, when.
func eventHeading(e *audit.Event) string {
	h := eventWord(e)
	if e.ClientID != "" {
		h += " · " + display(e.ClientID)
	}
	return h + " · " + fmtTime(e.Time)
}

// eventKind is the class of an event's row. A sign-out revokes what the session
// issued (internal/signin), so it is drawn as a revocation.
func eventKind(e *audit.Event) string {
	switch {
	case e.Relation == audit.RelCall:
		return "call"
	case e.Relation == audit.RelDenied:
		return "denied"
	case e.Relation == audit.RelRevoked, e.Type == "signout":
		return "revoked"
	}
	return "other"
}

// revocation is the first event that revoked n (itself or with an ancestor).
func revocation(n *audit.Node) *audit.Event {
	for i := range n.Events {
		if eventKind(&n.Events[i]) == "revoked" {
			return &n.Events[i]
		}
	}
	return nil
}

// nodeKind is a token's class and the word its box begins with.
func nodeKind(n *audit.Node) (class, label string) {
	switch {
	case n.Unknown && n.OutsideIssuer() != "":
		return "outside", "outside issuer"
	case n.Unknown:
		return "unknown", "token"
	case n.Type == "signin":
		return "signin", "sign-in"
	case n.Type == "code.issued":
		return "code", "authorization code"
	case n.Type == "token.issued":
		return "issued", "token"
	case n.Type == "token.exchanged":
		return "exchanged", "exchange"
	}
	return "other", display(n.Type)
}

func drawRow(b *bufio.Writer, r *item) {
	x := margin + r.depth*indent
	b.WriteString(`<g class="`)
	b.WriteString(r.classes)
	if r.node != nil {
		b.WriteString(`" data-jti="`)
		escape(b, r.node.JTI)
	} else {
		b.WriteString(`" data-event="`)
		escape(b, r.ev.ID)
		if r.parent != "" {
			b.WriteString(`" data-from="`)
			escape(b, r.parent)
		}
	}
	fmt.Fprintf(b, `" transform="translate(%d %d)">`+"\n", x, r.y)
	if r.href != "" {
		b.WriteString(`<a href="`)
		escape(b, r.href)
		b.WriteString(`">`)
	}
	b.WriteString("<title>")
	escape(b, r.title)
	b.WriteString("</title>\n")

	fill, stroke, width := "#ffffff", "#94a3b8", "1"
	switch {
	case r.ev != nil && strings.Contains(r.classes, "denied"), r.ev != nil && strings.Contains(r.classes, "revoked"):
		fill, stroke = "#fef2f2", "#b91c1c"
	case r.ev != nil:
		fill, stroke = "#f8fafc", "#cbd5e1"
	case r.node.Unknown:
		fill = "#f8fafc"
	}
	if r.node != nil && revocation(r.node) != nil {
		stroke = "#b91c1c"
	}
	if (r.node != nil && r.node.Asked) || (r.ev != nil && r.ev.Asked) {
		stroke, width = "#1d4ed8", "2.5"
	}
	fmt.Fprintf(b, `<rect class="box" width="%d" height="%d" rx="6" fill="%s" stroke="%s" stroke-width="%s"`, boxW, r.h, fill, stroke, width)
	if r.node != nil && revocation(r.node) != nil {
		b.WriteString(` stroke-dasharray="6 3"`)
	}
	b.WriteString("/>\n")

	// The text goes in a nested viewport, which clips it to the box: the width
	// of a character is only estimated (charW), and a value of wide glyphs that
	// cut lets through must not spill over the drawing.
	fmt.Fprintf(b, `<svg class="clip" width="%d" height="%d">`+"\n", boxW-3, r.h)
	tx, room := textX, maxText
	if r.ev != nil {
		// A round mark before the heading: red for a denial or revocation.
		mark := "#64748b"
		if strings.Contains(r.classes, "denied") || strings.Contains(r.classes, "revoked") {
			mark = "#b91c1c"
		} else if strings.Contains(r.classes, "call") {
			mark = "#047857"
		}
		fmt.Fprintf(b, `<circle class="mark" cx="%d" cy="%d" r="4" fill="%s"/>`+"\n", textX+3, padTop-4, mark)
		tx += 12
		room -= 2
	}
	for i, l := range r.lines {
		cls, weight, color, n := "field", "", "#334155", room
		if i == 0 {
			cls, weight, color = "head", ` font-weight="600"`, "#0f172a"
			if r.node != nil && revocation(r.node) != nil {
				n -= (badgeW+4)/charW + 2 // glyphs wider than charW, and the badge keeps clear
			}
		}
		if i > 0 && r.ev == nil {
			tx = textX
		}
		fmt.Fprintf(b, `<text class="%s" x="%d" y="%d" fill="%s"%s>`, cls, tx, padTop+i*lineH, color, weight)
		if l.key != "" {
			b.WriteString(`<tspan class="key" fill="#64748b">`)
			escape(b, l.key)
			b.WriteString("</tspan> ")
			n -= columns(l.key) + 1
		}
		escape(b, cut(l.value, n))
		b.WriteString("</text>\n")
	}
	b.WriteString("</svg>")
	if r.href != "" {
		b.WriteString("</a>")
	}
	if r.node != nil {
		if rev := revocation(r.node); rev != nil {
			b.WriteString(`<g class="badge revoked" data-event="`)
			escape(b, rev.ID)
			fmt.Fprintf(b, `" transform="translate(%d 5)"><title>`, boxW-badgeW-6)
			escape(b, eventHeading(rev))
			fmt.Fprintf(b, `</title><rect width="%d" height="18" rx="9" fill="#b91c1c"/>`+
				`<text x="%d" y="13" fill="#ffffff" font-size="11" font-weight="600" text-anchor="middle">revoked</text></g>`+"\n",
				badgeW, badgeW/2)
		}
	}
	b.WriteString("</g>\n")
}

// heading names the tree: whose chain it is and where it starts.
func heading(t *audit.Tree) string {
	if t.Root == nil {
		return "Audit event " + display(t.Event.ID) + " (no token)"
	}
	r := t.Root
	_, label := nodeKind(r)
	s := "Delegation tree from the " + label + " " + display(r.JTI)
	if r.Subject != "" {
		s += " of " + display(r.Subject)
	}
	return s
}

// summary counts what the tree holds.
func summary(t *audit.Tree) string {
	if t.Root == nil {
		return eventHeading(t.Event)
	}
	var tokens, calls, denied, revoked, exchanges int
	var walk func(n *audit.Node)
	walk = func(n *audit.Node) {
		tokens++
		if n.Type == "token.exchanged" {
			exchanges++
		}
		if revocation(n) != nil {
			revoked++
		}
		for i := range n.Events {
			switch eventKind(&n.Events[i]) {
			case "call":
				calls++
			case "denied":
				denied++
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(t.Root)
	s := fmt.Sprintf("%s (%d by exchange), %s reported, %s denied, %s revoked.",
		count(tokens, "token"), exchanges, count(calls, "call"), count(denied, "request"), count(revoked, "token"))
	if t.Truncated {
		s += " The tree is truncated."
	}
	return s
}

// count is "1 token", "2 tokens".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// bindingText is a token's binding: "bearer", or "bound" and "DPoP key" (a DPoP
// key's jkt) or "mTLS cert" (a certificate's x5t#S256) and the first 8
// characters of the thumbprint.
func bindingText(n *audit.Node) (key, value string) {
	c := n.Cnf
	switch {
	case !c.Bound():
		return "", "bearer (not bound)"
	case c.JKT != "":
		return "bound", "DPoP key " + cut(display(c.JKT), 9)
	default:
		return "bound", "mTLS cert " + cut(display(c.X5TS256), 9)
	}
}

// bindingFull is the binding with the whole thumbprint, for the <title>.
func bindingFull(n *audit.Node) string {
	c := n.Cnf
	switch {
	case !c.Bound():
		return "bearer"
	case c.JKT != "":
		return "DPoP key jkt " + display(c.JKT)
	default:
		return "mTLS certificate x5t#S256 " + display(c.X5TS256)
	}
}

// list is l as the text renderers show it, each item displayed, joined by commas.
func list(l []string) string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = display(s)
	}
	return strings.Join(out, ", ")
}

// display is s as the audit trail's text renderers show it: as it is when it is
// valid UTF-8 and every character is printable, else quoted in Go syntax, so that
// no control, line-breaking, invisible or bidi character from outside reaches the
// page raw (audit.TextValue, which also quotes quotes and backslashes: here XML
// escaping deals with those).
func display(s string) string {
	if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r == '\\' || !strconv.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return s
}

// cut shortens s to at most n columns, ending it with an ellipsis when it was
// longer; a wide character (CJK, emoji) counts for two columns.
func cut(s string, n int) string {
	if columns(s) <= n {
		return s
	}
	cols := 0
	for i, r := range s {
		cols += columns(string(r))
		if cols > n-1 {
			return s[:i] + "…"
		}
	}
	return s
}

// columns is the width of s in columns.
func columns(s string) int {
	c := 0
	for _, r := range s {
		c++
		if wide(r) {
			c++
		}
	}
	return c
}

// wide is a rough test for characters drawn two columns wide.
func wide(r rune) bool {
	return r >= 0x1100 && (r <= 0x115f || r >= 0x2e80 && r <= 0xa4cf || r >= 0xac00 && r <= 0xd7a3 ||
		r >= 0xf900 && r <= 0xfaff || r >= 0xfe30 && r <= 0xfe4f || r >= 0xff00 && r <= 0xff60 ||
		r >= 0xffe0 && r <= 0xffe6 || r >= 0x1f300 && r <= 0x1faff || r >= 0x20000 && r <= 0x3fffd)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// safeHref keeps the URLs a page may link to from the drawing: a path on the
// same site or an http(s) URL; anything else (javascript:, data:) draws no link.
func safeHref(u string) string {
	switch {
	case strings.HasPrefix(u, "/") && !strings.HasPrefix(u, "//") && !strings.HasPrefix(u, `/\`),
		strings.HasPrefix(u, "https://"), strings.HasPrefix(u, "http://"):
		if strings.ContainsFunc(u, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
			return ""
		}
		return u
	}
	return ""
}

// escape writes s XML-escaped, as text or inside a double-quoted attribute:
// markup characters and quotes as entities, and every character that is not
// printable — controls, line ends, bidi and other format characters — as a
// character reference, so that none reaches the page raw and an id in a data-
// attribute reads back exactly. What XML cannot carry at all (C0 controls other
// than tab and line ends, invalid UTF-8) becomes U+FFFD.
func escape(b *bufio.Writer, s string) {
	last := 0
	for i, r := range s {
		var rep string
		switch {
		case r == '&':
			rep = "&amp;"
		case r == '<':
			rep = "&lt;"
		case r == '>':
			rep = "&gt;"
		case r == '"':
			rep = "&#34;"
		case r == '\'':
			rep = "&#39;"
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"),
			r < 0x20 && r != '\t' && r != '\n' && r != '\r', r == 0xFFFE, r == 0xFFFF:
			rep = "\uFFFD"
		case r == ' ' || r < utf8.RuneSelf && r > 0x20 && r < 0x7f || strconv.IsPrint(r):
			continue
		default:
			rep = "&#x" + strconv.FormatInt(int64(r), 16) + ";"
		}
		b.WriteString(s[last:i])
		b.WriteString(rep)
		_, size := utf8.DecodeRuneInString(s[i:])
		last = i + size
	}
	b.WriteString(s[last:])
}
