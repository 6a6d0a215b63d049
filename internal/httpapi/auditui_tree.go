package httpapi

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/audit/treesvg"
	"github.com/deputy-auth/deputy/oauth"
)

// treeView is the page of a token's delegation tree: the picture, and the same
// tree as nested lists, readable without it.
type treeView struct {
	Asked     string
	SVG       template.HTML // the picture (treesvg), "" when there is none
	Root      *treeNode
	Event     *treeEvent // the asked event, when it concerns no token
	Truncated bool
	Tokens    int
}

// treeNode is one token of the tree.
type treeNode struct {
	JTI, URL, EventURL string
	Kind               string // the issuance event's type, or why there is none
	Unknown, Asked     bool
	Time, TimeISO      string
	Client, Subject    string
	Issuer             string
	Actors, Audiences  string
	Scopes, Rule       string
	Expires, Binding   string
	Txn, TxnContext    string // a transaction token's txn and tctx
	Replacement        bool   // of its parent, a transaction token of the same txn
	Events             []treeEvent
	Children           []*treeNode
}

// treeEvent is an event attached to a token: a revocation, denial or call.
type treeEvent struct {
	Label, Class  string // what happened, and the badge it gets (deny, call, other)
	URL           string
	Time, TimeISO string
	Client        string
	Reason        string
	Via           string // the ancestor whose revocation cascaded here
	Asked         bool
	Policies      []string
}

// tree serves the delegation tree around a token jti or an event id, read
// through audit.Trace as `deputy audit trace` and /audit/trace read it.
func (x *explorer) tree(w http.ResponseWriter, r *http.Request, v viewer) error {
	id, err := oneID(r)
	if err != nil {
		return err
	}
	if err := x.viewed(r, v, "tree", url.Values{"id": {id}}); err != nil {
		return err
	}
	t, err := audit.Trace(r.Context(), x.wb.s.cfg.AuditLog, id)
	if errors.Is(err, audit.ErrNotFound) {
		return notFoundPage("There is no token or event with the id " + displayText(id) + " in the audit trail.")
	}
	if err != nil {
		return unavailablePage(err)
	}
	tv := &treeView{Asked: displayText(id), Truncated: t.Truncated}
	if t.Event != nil {
		ev := eventItem(*t.Event)
		tv.Event = &ev
	}
	if t.Root != nil {
		tv.Root = nodeItem(t.Root, &tv.Tokens)
		if tv.SVG, err = treeSVG(t); err != nil {
			return err
		}
	}
	p := v.page("Delegation tree", "search")
	p.Tree = tv
	return x.render(w, http.StatusOK, "audit_tree.html", p)
}

func nodeItem(n *audit.Node, count *int) *treeNode {
	*count++
	it := &treeNode{
		JTI: displayText(n.JTI), URL: treeURL(n.JTI), Unknown: n.Unknown, Asked: n.Asked,
		Kind: displayText(n.Type), Client: displayText(n.ClientID), Subject: displayText(n.Subject),
		Issuer: displayText(n.SubjectIssuer), Actors: displayList(n.Actors), Audiences: displayList(n.Audiences),
		Scopes: displayText(strings.Join(n.Scopes, " ")), Rule: displayText(n.Rule), Expires: uiTime(n.Expires),
		Time: uiTime(n.Time), Binding: bindingOf(n.Cnf),
	}
	if n.Txn != nil {
		it.Txn, it.TxnContext, it.Replacement = displayText(n.Txn.Txn), displayText(string(n.Txn.Context)), n.Txn.Replacement
	}
	if !n.Time.IsZero() {
		it.TimeISO = n.Time.UTC().Format("2006-01-02T15:04:05.999999Z")
	}
	if n.EventID != "" {
		it.EventURL = eventURL(n.EventID)
	}
	if n.Unknown {
		it.Kind = "not issued in this audit trail"
		if iss := n.OutsideIssuer(); iss != "" {
			it.Kind = "presented from " + displayText(iss) + ", not issued by deputy"
		}
	}
	for _, e := range n.Events {
		it.Events = append(it.Events, eventItem(e))
	}
	for _, c := range n.Children {
		it.Children = append(it.Children, nodeItem(c, count))
	}
	return it
}

func eventItem(e audit.Event) treeEvent {
	it := treeEvent{URL: eventURL(e.ID), Time: uiTime(e.Time), TimeISO: e.Time.UTC().Format("2006-01-02T15:04:05.999999Z"),
		Client: displayText(e.ClientID), Reason: displayText(e.Reason), Via: displayText(e.Via), Asked: e.Asked}
	switch e.Relation {
	case audit.RelRevoked:
		it.Label, it.Class = "Revoked", "deny"
	case audit.RelDenied:
		it.Label, it.Class = "Denied", "deny"
	case audit.RelCall:
		it.Label, it.Class = "Call", "call"
	default:
		it.Label, it.Class = displayText(e.Type), "other"
	}
	for _, p := range e.Policies {
		s := "policy " + p.Policy + ": "
		if p.Check != "" {
			s += p.Check + " — "
		}
		it.Policies = append(it.Policies, displayText(s+p.Reason))
	}
	return it
}

// bindingOf says what a token is bound to (RFC 7800 cnf).
func bindingOf(c *oauth.Confirmation) string {
	switch {
	case !c.Bound():
		return "bearer"
	case c.JKT != "":
		return "DPoP key " + displayText(c.JKT)
	default:
		return "TLS client certificate " + displayText(c.X5TS256)
	}
}

// treeSVG draws the tree (treesvg), its rows linked to the explorer's pages.
// treesvg escapes every value it writes, so the drawing goes into the page as
// markup; its width becomes its natural width (the viewBox's), which the style
// sheet lets shrink to the page (max-width: 100%) but not grow.
func treeSVG(t *audit.Tree) (template.HTML, error) {
	var b strings.Builder
	if err := treesvg.Render(&b, t, treesvg.Options{EventURL: eventURL, TokenURL: treeURL}); err != nil {
		return "", err
	}
	svg := b.String()
	if m := viewBoxRe.FindStringSubmatch(svg); m != nil {
		svg = strings.Replace(svg, `width="100%"`, `width="`+m[1]+`"`, 1)
	}
	return template.HTML(svg), nil
}

var viewBoxRe = regexp.MustCompile(`^<svg [^>]*viewBox="0 0 (\d+) \d+"`)
