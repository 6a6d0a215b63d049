package audit

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// ErrNotFound is returned by Trace for an id that is neither a token jti nor an
// event id in the audit trail. It wraps store.ErrNotFound.
var ErrNotFound = fmt.Errorf("audit: no token or event with that id: %w", store.ErrNotFound)

// Bounds of a Trace, so that a damaged or hostile log cannot make it run away.
const (
	MaxTraceDepth = 64     // hops from the root token to the deepest one shown
	MaxTraceNodes = 10_000 // tokens in one tree
)

// Relations of an Event to the token it is attached to.
const (
	RelRevoked = "revoked" // the token was revoked (itself, or with an ancestor: see Via)
	RelDenied  = "denied"  // a request presenting the token was refused
	RelCall    = "call"    // a service reported a call made with the token
	RelOther   = "other"   // any other event naming the token
)

// Tree is a token's delegation chain: from the first token (a sign-in or a client
// credentials issuance) down to every token derived from it by exchange.
type Tree struct {
	Asked string `json:"asked"` // the id Trace was given
	Root  *Node  `json:"root,omitempty"`
	// Event is the asked event when it concerns no token at all (a key rotation, a
	// denied request that presented no token); Root is nil then.
	Event *Event `json:"event,omitempty"`
	// Truncated is set when the tree was cut at MaxTraceDepth or MaxTraceNodes.
	Truncated bool `json:"truncated,omitempty"`
}

// Node is one token and what the audit trail says about it.
type Node struct {
	JTI string `json:"jti"`
	// Unknown is set for a token that events refer to but whose issuance is not in
	// the trail (a foreign subject token, or a damaged trail); the fields below that
	// come from the issuance event are empty then.
	Unknown       bool      `json:"unknown,omitempty"`
	Type          string    `json:"type,omitempty"` // type of the issuance event
	EventID       string    `json:"event_id,omitempty"`
	Seq           int64     `json:"seq,omitempty"`
	Time          time.Time `json:"time,omitzero"`
	ClientID      string    `json:"client_id,omitempty"`
	Subject       string    `json:"subject,omitempty"`
	SubjectIssuer string    `json:"subject_issuer,omitempty"`
	Actors        []string  `json:"actors,omitempty"` // current actor first
	Audiences     []string  `json:"audiences,omitempty"`
	Scopes        []string  `json:"scopes,omitempty"`
	Rule          string    `json:"rule,omitempty"`
	Expires       time.Time `json:"expires,omitzero"`
	ParentJTI     string    `json:"parent_jti,omitempty"`
	TraceID       string    `json:"trace_id,omitempty"` // of the request that issued it
	// Cnf is the key the token is bound to (RFC 7800 cnf: a DPoP key's jkt or a
	// certificate's x5t#S256), nil for a bearer token; SubjectCnf that of the
	// subject token it was exchanged from. Both come from the issuance event's
	// Detail ("cnf", "subject_cnf"), which every grant writes for a bound token.
	// When it names no cnf — a token not issued in this trail, or one issued by a
	// client credentials, code or refresh grant before those recorded it — Cnf is
	// the subject_cnf the exchanges of the token agree on. A trail written before
	// binding existed holds bearer tokens only.
	Cnf        *oauth.Confirmation `json:"cnf,omitempty"`
	SubjectCnf *oauth.Confirmation `json:"subject_cnf,omitempty"`
	// Txn is set for a transaction token (draft-ietf-oauth-transaction-tokens):
	// its transaction and contexts, from the issuance event's Detail. Its purpose
	// is Scopes; its subject token is the parent.
	Txn      *TxnToken `json:"txn_token,omitempty"`
	Asked    bool      `json:"asked,omitempty"` // this is the token (or issuance event) asked for
	Events   []Event   `json:"events,omitempty"`
	Children []*Node   `json:"children,omitempty"`
}

// TxnToken is what the audit trail records of a transaction token's issuance
// (README "Transaction tokens"): the Detail's "txn", "tctx" and "rctx".
type TxnToken struct {
	// Txn identifies the transaction; a replacement keeps its subject token's.
	Txn string `json:"txn"`
	// Context is the transaction context (tctx), compact JSON, nil when none.
	Context json.RawMessage `json:"tctx,omitempty"`
	// RequestContext is the context of the request that asked for it (rctx).
	RequestContext TxnRequestContext `json:"rctx"`
	// Replacement is set when the token was exchanged from a transaction token
	// of the same txn: a replacement, with scope no wider.
	Replacement bool `json:"replacement,omitempty"`
}

// TxnRequestContext is a transaction token's rctx as deputy records it.
type TxnRequestContext struct {
	ReqIP string `json:"req_ip,omitempty"`
	Authn string `json:"authn,omitempty"`
	ReqWL string `json:"req_wl,omitempty"` // the requesting workload: the client
}

// OutsideIssuer is the issuer an unknown token came from when every token
// exchanged from it names the same one (a trusted issuer's JWT, a SAML
// assertion: the audit records keep that issuer, not the token); "" when they
// differ or are deputy's own.
func (n *Node) OutsideIssuer() string {
	iss := ""
	for _, c := range n.Children {
		if c.SubjectIssuer == "" || iss != "" && c.SubjectIssuer != iss {
			return ""
		}
		iss = c.SubjectIssuer
	}
	return iss
}

// Event is an event, other than its issuance, that concerns a token.
type Event struct {
	Relation  string    `json:"relation"` // one of the Rel… constants
	Via       string    `json:"via,omitempty"`
	Seq       int64     `json:"seq"`
	ID        string    `json:"id"`
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	ClientID  string    `json:"client_id,omitempty"`
	Subject   string    `json:"subject,omitempty"`
	Actors    []string  `json:"actors,omitempty"`
	Audiences []string  `json:"audiences,omitempty"`
	Scopes    []string  `json:"scopes,omitempty"`
	Decision  string    `json:"decision,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Rule      string    `json:"rule,omitempty"`
	ParentJTI string    `json:"parent_jti,omitempty"`
	TokenJTI  string    `json:"token_jti,omitempty"`
	TraceID   string    `json:"trace_id,omitempty"` // W3C trace-id of the request
	// Policies is, for a denied exchange, what each policy of the client made of
	// the request (the Detail's "policies", see PolicyResult).
	Policies []PolicyResult `json:"policies,omitempty"`
	Asked    bool           `json:"asked,omitempty"`
}

// Trace reconstructs the delegation chain around id, which is a token jti, an
// audit event id or a transaction token's txn. It finds the token concerned — the
// token id itself, the token an issuance or revocation event names, the parent
// token of a denial or call report, or the first transaction token of the txn
// (found last, by reading the token.exchanged events) — walks up through ParentJTI to the root token, then down from the root to every
// token derived from it, attaching to each token its revocations (direct ones and
// those of an ancestor that cascaded to it, read from the revocation's Detail), the
// denials of requests that presented it and the calls reported with it. The node or
// event asked for is marked Asked, and so is every token of an asked txn. Walks are cycle-safe and bounded by
// MaxTraceDepth and MaxTraceNodes. An unknown id gives ErrNotFound.
func Trace(ctx context.Context, log store.AuditLog, id string) (*Tree, error) {
	t := &tracer{
		ctx: ctx, log: log,
		byToken: map[string][]store.AuditEvent{}, byParent: map[string][]store.AuditEvent{},
		nodes: map[string]*Node{},
	}
	tree := &Tree{Asked: id}
	start, askedEvent, err := t.resolve(id, tree)
	if err != nil || tree.Event != nil {
		return tree, err
	}
	root, truncated, err := t.rootOf(start)
	if err != nil {
		return nil, err
	}
	tree.Truncated = truncated
	if tree.Root, err = t.build(root, 0); err != nil {
		return nil, err
	}
	tree.Truncated = tree.Truncated || t.truncated
	t.cascade()
	for _, n := range t.nodes {
		slices.SortFunc(n.Events, func(a, b Event) int { return cmp.Compare(a.Seq, b.Seq) })
		if askedEvent == "" {
			// The asked token, or every token of the asked transaction (txn).
			n.Asked = n.JTI == id || n.Txn != nil && n.Txn.Txn == id
			continue
		}
		n.Asked = n.EventID == askedEvent
		for i := range n.Events {
			n.Events[i].Asked = n.Events[i].ID == askedEvent && n.Events[i].Via == "" // not its cascaded copies
		}
	}
	return tree, nil
}

type tracer struct {
	ctx       context.Context
	log       store.AuditLog
	byToken   map[string][]store.AuditEvent
	byParent  map[string][]store.AuditEvent
	nodes     map[string]*Node
	truncated bool
}

func (t *tracer) eventsByToken(jti string) ([]store.AuditEvent, error) {
	if evs, ok := t.byToken[jti]; ok {
		return evs, nil
	}
	evs, err := t.log.EventsByToken(t.ctx, jti)
	if err != nil {
		return nil, err
	}
	t.byToken[jti] = evs
	return evs, nil
}

func (t *tracer) eventsByParent(jti string) ([]store.AuditEvent, error) {
	if evs, ok := t.byParent[jti]; ok {
		return evs, nil
	}
	evs, err := t.log.EventsByParent(t.ctx, jti)
	if err != nil {
		return nil, err
	}
	t.byParent[jti] = evs
	return evs, nil
}

// isIssuance tells whether e issued the token e.TokenJTI.
func isIssuance(e *store.AuditEvent) bool {
	if e.TokenJTI == "" || e.Decision == store.DecisionDeny {
		return false
	}
	switch e.Type {
	case store.EventTokenRevoked, store.EventDenied, store.EventCallReported, store.EventKeyRotated:
		return false
	}
	return true
}

// issuance returns the event that issued jti, nil if the trail has none.
func (t *tracer) issuance(jti string) (*store.AuditEvent, error) {
	evs, err := t.eventsByToken(jti)
	if err != nil {
		return nil, err
	}
	for i := range evs {
		if isIssuance(&evs[i]) {
			return &evs[i], nil
		}
	}
	return nil, nil
}

// resolve finds the token jti that id concerns, and the asked event id if id names
// an event. For an event that concerns no token it sets tree.Event.
func (t *tracer) resolve(id string, tree *Tree) (jti, askedEvent string, err error) {
	iss, err := t.issuance(id)
	if err != nil {
		return "", "", err
	}
	if iss != nil {
		return id, "", nil
	}
	e, err := t.log.EventByID(t.ctx, id)
	switch {
	case err == nil:
		switch {
		case isIssuance(&e), e.Type == store.EventTokenRevoked && e.TokenJTI != "":
			return e.TokenJTI, e.ID, nil
		case e.ParentJTI != "":
			return e.ParentJTI, e.ID, nil
		case e.TokenJTI != "":
			return e.TokenJTI, e.ID, nil
		}
		ev := eventOf(&e, relationOf(&e), "")
		ev.Asked = true
		tree.Event = &ev
		return "", e.ID, nil
	case !errors.Is(err, store.ErrNotFound):
		return "", "", err
	}
	// Not issued here and not an event id: perhaps a token only referred to (a
	// foreign subject token that was exchanged, or one whose issuance is missing).
	byTok, err := t.eventsByToken(id)
	if err != nil {
		return "", "", err
	}
	byPar, err := t.eventsByParent(id)
	if err != nil {
		return "", "", err
	}
	if len(byTok) > 0 || len(byPar) > 0 {
		return id, "", nil
	}
	first := ""
	if isTxnID(id) {
		if first, err = t.firstOfTxn(id); err != nil {
			return "", "", err
		}
	}
	if first == "" {
		return "", "", fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return first, "", nil
}

// txnIDLen is the length of a txn value: deputy makes it as it makes a jti
// (token.NewID), 16 bytes in unpadded base64url.
const txnIDLen = 22

// isTxnID reports whether id has the shape of a txn deputy issues, 22
// base64url characters: only such an id is looked for among transaction
// tokens, which reads the token.exchanged events one by one.
func isTxnID(id string) bool {
	if len(id) != txnIDLen {
		return false
	}
	for _, c := range []byte(id) {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// txnPage is how many token.exchanged events firstOfTxn reads at a time.
const txnPage = 1000

// firstOfTxn returns the jti of the first transaction token of the transaction
// txn, "" when the trail issued none. The trail has no index on Detail: it reads
// the token.exchanged events in chain order, txnPage at a time, up to the first
// of txn (all of them for an unknown txn), so Trace tries it last, for an id
// shaped like a txn that is no token jti and no event id. Only a Detail with
// the member "txn":"<txn>" as deputy writes it (compact JSON) is parsed.
func (t *tracer) firstOfTxn(txn string) (string, error) {
	member := `"txn":"` + txn + `"`
	f := store.AuditFilter{Type: store.EventTokenExchanged, Limit: txnPage}
	for {
		evs, err := t.log.Query(t.ctx, f)
		if err != nil {
			return "", err
		}
		for i := range evs {
			e := &evs[i]
			if !isIssuance(e) || !strings.Contains(e.Detail, member) {
				continue
			}
			if tt := txnTokenOf(e.Detail); tt != nil && tt.Txn == txn {
				return e.TokenJTI, nil
			}
		}
		if len(evs) < txnPage {
			return "", nil
		}
		f.AfterSeq = evs[len(evs)-1].Seq
	}
}

// rootOf walks up from jti through the parents of issuance events.
func (t *tracer) rootOf(jti string) (root string, truncated bool, err error) {
	seen := map[string]bool{}
	for depth := 0; ; depth++ {
		seen[jti] = true
		iss, err := t.issuance(jti)
		if err != nil {
			return "", false, err
		}
		if iss == nil || iss.ParentJTI == "" || seen[iss.ParentJTI] {
			return jti, false, nil
		}
		if depth == MaxTraceDepth {
			return jti, true, nil
		}
		jti = iss.ParentJTI
	}
}

// build makes the node of jti and, recursively, of the tokens derived from it.
func (t *tracer) build(jti string, depth int) (*Node, error) {
	n := &Node{JTI: jti, Unknown: true}
	t.nodes[jti] = n
	iss, err := t.issuance(jti)
	if err != nil {
		return nil, err
	}
	if iss != nil {
		*n = Node{
			JTI: jti, Type: iss.Type, EventID: iss.ID, Seq: iss.Seq, Time: iss.Time,
			ClientID: iss.ClientID, Subject: iss.Subject, SubjectIssuer: iss.SubjectIssuer,
			Actors: iss.Actors, Audiences: iss.Audiences, Scopes: iss.Scopes, Rule: iss.Rule,
			Expires: iss.TokenExpires, ParentJTI: iss.ParentJTI, TraceID: iss.TraceID,
		}
		n.Cnf, n.SubjectCnf = bindings(iss.Detail)
		n.Txn = txnTokenOf(iss.Detail)
	}
	byTok, err := t.eventsByToken(jti)
	if err != nil {
		return nil, err
	}
	for i := range byTok {
		if e := &byTok[i]; iss == nil || e.ID != iss.ID {
			n.Events = append(n.Events, eventOf(e, relationOf(e), ""))
		}
	}
	byPar, err := t.eventsByParent(jti)
	if err != nil {
		return nil, err
	}
	for i := range byPar {
		e := &byPar[i]
		if !isIssuance(e) {
			n.Events = append(n.Events, eventOf(e, relationOf(e), ""))
			continue
		}
		if _, seen := t.nodes[e.TokenJTI]; seen {
			continue // a cycle, or a token listed twice
		}
		if depth+1 > MaxTraceDepth || len(t.nodes) >= MaxTraceNodes {
			t.truncated = true
			continue
		}
		c, err := t.build(e.TokenJTI, depth+1)
		if err != nil {
			return nil, err
		}
		if n.Txn != nil && c.Txn != nil && c.Txn.Txn == n.Txn.Txn {
			c.Txn.Replacement = true
		}
		n.Children = append(n.Children, c)
	}
	if n.Cnf == nil {
		// Not issued in this trail, or issued before its grant recorded cnf: the
		// exchanges that presented the token read its binding from the token.
		n.Cnf = presentedCnf(n)
	}
	return n, nil
}

// bindings reads the cnf of the issued token and of its subject token from an
// issuance event's Detail; nil for what it does not hold (or a Detail that is not
// a JSON object) and for a cnf that binds nothing.
func bindings(detail string) (issued, subject *oauth.Confirmation) {
	if !strings.Contains(detail, "cnf") {
		return nil, nil
	}
	var d struct {
		Cnf        *oauth.Confirmation `json:"cnf"`
		SubjectCnf *oauth.Confirmation `json:"subject_cnf"`
	}
	if json.Unmarshal([]byte(detail), &d) != nil {
		return nil, nil
	}
	if !d.Cnf.Bound() {
		d.Cnf = nil
	}
	if !d.SubjectCnf.Bound() {
		d.SubjectCnf = nil
	}
	return d.Cnf, d.SubjectCnf
}

// txnTokenType is the Detail's issued_token_type of a transaction token.
const txnTokenType = "txn_token"

// txnTokenOf reads a transaction token's issuance from an issuance event's
// Detail ("issued_token_type": "txn_token"); nil for any other token or a Detail
// that is not a JSON object. A tctx that is not a JSON object is left out.
func txnTokenOf(detail string) *TxnToken {
	if !strings.Contains(detail, "txn_token") {
		return nil
	}
	var d struct {
		IssuedTokenType string          `json:"issued_token_type"`
		Txn             string          `json:"txn"`
		Tctx            json.RawMessage `json:"tctx"`
		Rctx            json.RawMessage `json:"rctx"`
	}
	if json.Unmarshal([]byte(detail), &d) != nil || d.IssuedTokenType != txnTokenType {
		return nil
	}
	tt := &TxnToken{Txn: d.Txn}
	var ctx bytes.Buffer
	if len(d.Tctx) > 0 && d.Tctx[0] == '{' && json.Compact(&ctx, d.Tctx) == nil {
		tt.Context = ctx.Bytes()
	}
	_ = json.Unmarshal(d.Rctx, &tt.RequestContext) // a malformed rctx shows as none
	return tt
}

// bindingText is how the text trace shows a token's binding: "bearer", or "bound
// dpop:" / "bound x5t:" and the first 8 characters of the thumbprint.
func bindingText(c *oauth.Confirmation) string {
	short := func(s string) string {
		if r := []rune(s); len(r) > 8 {
			return string(r[:8]) + "…"
		}
		return s
	}
	switch {
	case !c.Bound():
		return "bearer"
	case c.JKT != "":
		return "bound dpop:" + TextValue(short(c.JKT))
	default:
		return "bound x5t:" + TextValue(short(c.X5TS256))
	}
}

// cascade attaches each revocation to the descendants its Detail lists.
func (t *tracer) cascade() {
	var revs []Event
	for _, n := range t.nodes {
		for _, e := range n.Events {
			if e.Relation == RelRevoked && e.Via == "" {
				revs = append(revs, e)
			}
		}
	}
	for _, r := range revs {
		e, err := t.eventDetail(r)
		if err != nil {
			continue
		}
		for _, jti := range e {
			if n, ok := t.nodes[jti]; ok && jti != r.TokenJTI {
				c := r
				c.Via = r.TokenJTI
				n.Events = append(n.Events, c)
			}
		}
	}
}

// eventDetail returns the jtis a revocation event's Detail lists.
func (t *tracer) eventDetail(r Event) ([]string, error) {
	evs, err := t.eventsByToken(r.TokenJTI)
	if err != nil {
		return nil, err
	}
	for _, e := range evs {
		if e.ID != r.ID {
			continue
		}
		var d struct {
			Revoked []string `json:"revoked"`
		}
		if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
			return nil, err
		}
		return d.Revoked, nil
	}
	return nil, nil
}

func relationOf(e *store.AuditEvent) string {
	switch {
	case e.Type == store.EventTokenRevoked:
		return RelRevoked
	case e.Type == store.EventDenied, e.Decision == store.DecisionDeny:
		return RelDenied
	case e.Type == store.EventCallReported:
		return RelCall
	}
	return RelOther
}

func eventOf(e *store.AuditEvent, rel, via string) Event {
	ev := Event{
		Relation: rel, Via: via, Seq: e.Seq, ID: e.ID, Time: e.Time, Type: e.Type,
		ClientID: e.ClientID, Subject: e.Subject, Actors: e.Actors, Audiences: e.Audiences,
		Scopes: e.Scopes, Decision: e.Decision, Reason: e.Reason, Rule: e.Rule,
		ParentJTI: e.ParentJTI, TokenJTI: e.TokenJTI, TraceID: e.TraceID,
	}
	if rel == RelDenied {
		ev.Policies = policiesOf(e.Detail)
	}
	return ev
}

// WriteJSON writes the tree as one indented JSON document, with control
// characters, line separators and bidi overrides as \u escapes (see
// WriteEventJSON).
func (tr *Tree) WriteJSON(w io.Writer) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(tr); err != nil {
		return err
	}
	_, err := w.Write(appendJSONEscaped(make([]byte, 0, buf.Len()+16), buf.Bytes()))
	return err
}

// WriteText writes the tree for people: one block per token, indented under the
// token it was exchanged from, the asked one marked. Every value from the trail
// is shown as TextValue shows it: quoted in Go syntax when it holds a character
// that is not printable (ESC as \x1b), a quote or a backslash.
//
//	token T0 (token.issued)  2026-11-25T18:00:00Z  client web-app  rule -
//	  sub web-app  aud https://api1.example  scope payments:read  exp 2026-11-25T19:00:00Z  bound dpop:NzbLsXh8…
//	  event E1  trace 4bf92f3577b34da6a3ce929d0e0e4736
//	  └─ token T1 (token.exchanged)  2026-11-25T18:00:01Z  client api1  rule policies[0]  ◀ asked
//	       sub web-app  act api1  aud https://api2.example  scope ledger:read  exp …  bound dpop:0ZcOCORZ…
//	       event E2  trace 4bf92f3577b34da6a3ce929d0e0e4736
//
// An event line ends with the event's id and the W3C trace-id of its request
// ("trace …"), when it had one. Under a denied exchange comes one line per policy
// of the client, in config order, with the first check it failed and why (the
// denial's Detail "policies"; "policy p: decides" for the one that decided):
//
//	✗ denied  2026-11-25T18:00:05Z  client api3  …  event E5
//	    policy api3-to-api4: targets — does not allow audience "https://api5.example"
//	    policy api3-reports: condition — condition is false
//
// The reason ends its line and is shown as it is unless it begins with a quote
// or holds a backslash or a character that is not printable: then it is quoted in
// Go syntax too.
//
// Each token's binding ends its second line: "bearer", or "bound dpop:" (a DPoP
// key's jkt) or "bound x5t:" (a client certificate's x5t#S256) and the first 8
// characters of the thumbprint; the JSON form carries the whole cnf.
//
// A transaction token has a third line: its txn (with "replaces <parent>" for a
// replacement of its subject token), its purpose (scope), its rctx and its tctx
// as compact JSON, which ends the line and is quoted like a reason:
//
//	└─ token X1 (token.exchanged)  2026-11-25T18:00:01Z  client payments  rule policies[2]
//	     sub alice  aud trust.example  scope payments:write  exp 2026-11-25T18:01:01Z  bearer
//	     txn AaJIyRnlpXpQlyvZEXOLDg  purpose payments:write  rctx req_ip 192.0.2.7 authn pwd req_wl payments  tctx {"payment":"p-42"}
//	     event E8
func (tr *Tree) WriteText(w io.Writer) error {
	var b strings.Builder
	switch {
	case tr.Root != nil:
		writeNode(&b, tr.Root, "", "")
	case tr.Event != nil:
		writeEventLine(&b, "", *tr.Event)
	}
	if tr.Truncated {
		fmt.Fprintf(&b, "… truncated: more than %d hops or %d tokens\n", MaxTraceDepth, MaxTraceNodes)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// presentedCnf is the binding of an unknown token as the exchanges that presented
// it recorded it (their subject_cnf), when all of them agree it was bound.
func presentedCnf(n *Node) *oauth.Confirmation {
	var c *oauth.Confirmation
	for _, ch := range n.Children {
		if ch.SubjectCnf == nil || c != nil && *c != *ch.SubjectCnf {
			return nil
		}
		c = ch.SubjectCnf
	}
	return c
}

// writeNode writes n with lead before its first line and pad (the same width)
// before the others.
func writeNode(b *strings.Builder, n *Node, lead, pad string) {
	b.WriteString(lead)
	b.WriteString("token ")
	b.WriteString(TextValue(n.JTI))
	if n.Unknown {
		if iss := n.OutsideIssuer(); iss != "" {
			fmt.Fprintf(b, " (presented from %s, not issued by deputy)", TextValue(iss))
		} else {
			b.WriteString(" (not issued in this audit trail)")
		}
		if c := cmp.Or(n.Cnf, presentedCnf(n)); c != nil {
			b.WriteString("  ")
			b.WriteString(bindingText(c))
		}
	} else {
		fmt.Fprintf(b, " (%s)  %s  client %s  rule %s", TextValue(n.Type), fmtTime(n.Time), TextValue(orDash(n.ClientID)), TextValue(orDash(n.Rule)))
	}
	if n.Asked {
		b.WriteString("  ◀ asked")
	}
	b.WriteByte('\n')
	body := pad + "  "
	if !n.Unknown {
		b.WriteString(body)
		b.WriteString("sub ")
		b.WriteString(TextValue(orDash(n.Subject)))
		if n.SubjectIssuer != "" {
			b.WriteString(" (iss ")
			b.WriteString(TextValue(n.SubjectIssuer))
			b.WriteString(")")
		}
		writeList(b, "act", n.Actors)
		writeList(b, "aud", n.Audiences)
		writeList(b, "scope", n.Scopes)
		if !n.Expires.IsZero() {
			b.WriteString("  exp ")
			b.WriteString(fmtTime(n.Expires))
		}
		b.WriteString("  ")
		b.WriteString(bindingText(n.Cnf))
		b.WriteByte('\n')
		if n.Txn != nil {
			writeTxnLine(b, body, n)
		}
		b.WriteString(body)
		b.WriteString("event ")
		b.WriteString(TextValue(n.EventID))
		writeTrace(b, n.TraceID)
		if n.ParentJTI != "" && lead == "" {
			b.WriteString("  parent ")
			b.WriteString(TextValue(n.ParentJTI)) // the walk up stopped: a cycle or the depth bound
		}
		b.WriteByte('\n')
	}
	for _, e := range n.Events {
		writeEventLine(b, body, e)
	}
	for i, c := range n.Children {
		if i == len(n.Children)-1 {
			writeNode(b, c, body+"└─ ", body+"   ")
		} else {
			writeNode(b, c, body+"├─ ", body+"│  ")
		}
	}
}

// writeTxnLine writes what a transaction token is for: its txn ("replaces" when
// it replaced its parent's), its purpose (the scopes), the request context and
// the transaction context last, as compact JSON:
//
//	txn 7Hq2…  purpose payments:write  rctx req_ip 192.0.2.7 authn pwd req_wl payments  tctx {"payment":"p-42"}
func writeTxnLine(b *strings.Builder, indent string, n *Node) {
	b.WriteString(indent)
	b.WriteString("txn ")
	b.WriteString(TextValue(orDash(n.Txn.Txn)))
	if n.Txn.Replacement {
		b.WriteString(" (replaces ")
		b.WriteString(TextValue(n.ParentJTI))
		b.WriteString(")")
	}
	writeList(b, "purpose", n.Scopes)
	if r := n.Txn.RequestContext; r != (TxnRequestContext{}) {
		b.WriteString("  rctx")
		for _, kv := range [][2]string{{"req_ip", r.ReqIP}, {"authn", r.Authn}, {"req_wl", r.ReqWL}} {
			if kv[1] != "" {
				b.WriteString(" ")
				b.WriteString(kv[0])
				b.WriteString(" ")
				b.WriteString(TextValue(kv[1]))
			}
		}
	}
	if n.Txn.Context != nil {
		b.WriteString("  tctx ")
		b.WriteString(RestOfLine(string(n.Txn.Context)))
	}
	b.WriteByte('\n')
}

func writeEventLine(b *strings.Builder, indent string, e Event) {
	b.WriteString(indent)
	switch e.Relation {
	case RelRevoked:
		b.WriteString("✗ revoked")
		if e.Via != "" {
			b.WriteString(" with ")
			b.WriteString(TextValue(e.Via))
		}
	case RelDenied:
		b.WriteString("✗ denied")
	case RelCall:
		b.WriteString("→ call")
	default:
		b.WriteString("· ")
		b.WriteString(TextValue(e.Type))
	}
	b.WriteString("  ")
	b.WriteString(fmtTime(e.Time))
	if e.ClientID != "" {
		b.WriteString("  client ")
		b.WriteString(TextValue(e.ClientID))
	}
	if e.Relation != RelRevoked {
		writeList(b, "act", e.Actors)
		writeList(b, "aud", e.Audiences)
		writeList(b, "scope", e.Scopes)
	}
	switch {
	case e.Reason == "":
	case e.Relation == RelCall:
		b.WriteString("  did ") // what the service reported: "read account/42: ok"
		b.Write(appendValue(nil, e.Reason))
	default:
		b.WriteString("  reason ")
		b.Write(appendValue(nil, e.Reason))
	}
	b.WriteString("  event ")
	b.WriteString(TextValue(e.ID))
	writeTrace(b, e.TraceID)
	if e.Asked {
		b.WriteString("  ◀ asked")
	}
	b.WriteByte('\n')
	for _, p := range e.Policies {
		writePolicyLine(b, indent+"    ", p)
	}
}

// writePolicyLine writes what one policy made of a denied request:
//
//	policy ledger-to-fraud-check: condition — condition is false
//
// with no check for the policy that decided ("policy p: decides").
func writePolicyLine(b *strings.Builder, indent string, p PolicyResult) {
	b.WriteString(indent)
	b.WriteString("policy ")
	b.WriteString(TextValue(orDash(p.Policy)))
	b.WriteString(": ")
	if p.Check != "" {
		b.WriteString(TextValue(p.Check))
		b.WriteString(" — ")
	}
	b.WriteString(RestOfLine(orDash(p.Reason)))
	b.WriteByte('\n')
}

// RestOfLine is s as the text renderers show a value that ends its line: as it
// is when every character is printable, none is a backslash and it does not
// begin with a quote — a reason quoting an audience reads as it was written —
// else quoted in Go syntax like TextValue.
func RestOfLine(s string) string {
	if strings.HasPrefix(s, `"`) || !utf8.ValidString(s) ||
		strings.IndexFunc(s, func(r rune) bool { return r == '\\' || !strconv.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// writeTrace writes the trace id of the request an event records, if it had one.
func writeTrace(b *strings.Builder, traceID string) {
	if traceID != "" {
		b.WriteString("  trace ")
		b.WriteString(TextValue(traceID))
	}
}

func writeList(b *strings.Builder, key string, l []string) {
	if len(l) == 0 {
		return
	}
	b.WriteString("  ")
	b.WriteString(key)
	b.WriteByte(' ')
	b.WriteString(textList(l))
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
