package httpapi

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// Page sizes of the explorer's search: the page reads one more event than it
// shows, to know whether a next page exists.
const (
	defaultUIPage = 50
	maxUIPage     = 200
)

// searchKeys are the criteria of a search, in the order the form shows them;
// with after and limit they are every parameter the search page takes.
var searchKeys = []string{"subject", "actor", "client", "audience", "type", "since", "until", "trace_id"}

// search is a query of the audit trail: the criteria as the store reads them
// and as links repeat them.
type search struct {
	filter store.AuditFilter
	// criteria are searchKeys' values as pages show them (displayText), times
	// in RFC 3339 (UTC): the search's canonical query, without after and
	// limit, which parseSearch reads back to the same search.
	criteria url.Values
	limited  bool // the query named a limit
}

// parseSearch reads a search from a query, through auditFilter: the parser of
// /audit/events, so the explorer, the JSON API and `deputy audit query` read
// the same criteria the same way. since and until may also be given as an HTML
// datetime-local input sends them (2026-12-05T21:30, no zone), read as UTC.
// extra names parameters the caller reads itself (export's format).
func parseSearch(q url.Values, extra ...string) (search, error) {
	q = omitEmpty(cloneValues(q))
	for _, k := range extra {
		q.Del(k)
	}
	for _, k := range textKeys {
		if vs := q[k]; len(vs) == 1 {
			q.Set(k, unquoteCriterion(vs[0]))
		}
	}
	for _, k := range []string{"since", "until"} {
		if vs := q[k]; len(vs) == 1 {
			t, err := parseUITime(vs[0])
			if err != nil {
				return search{}, badRequestPage("The time in "+map[string]string{"since": "From", "until": "To"}[k]+
					" is not a date and time (2026-12-05T21:30 or RFC 3339).", err)
			}
			q.Set(k, t.Format(time.RFC3339Nano))
		}
	}
	f, err := auditFilter(q)
	if err != nil {
		return search{}, badRequestPage(oauth.AsError(err).Description+".", err)
	}
	s := search{filter: f, criteria: url.Values{}}
	if _, s.limited = q["limit"]; !s.limited {
		s.filter.Limit = defaultUIPage
	}
	if s.filter.Limit > maxUIPage {
		return search{}, badRequestPage("A page shows at most "+strconv.Itoa(maxUIPage)+" events.", nil)
	}
	for _, k := range searchKeys {
		if v := q.Get(k); v != "" {
			s.criteria.Set(k, displayText(v))
		}
	}
	return s, nil
}

// textKeys are the criteria that name things (not times or a trace id): they
// may be given quoted as pages show them (unquoteCriterion).
var textKeys = []string{"subject", "actor", "client", "audience", "type"}

// uiTimeLayouts are the forms of since and until: RFC 3339, or what an HTML
// datetime-local input sends (UTC).
var uiTimeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"}

func parseUITime(v string) (time.Time, error) {
	var err error
	for _, l := range uiTimeLayouts {
		var t time.Time
		if t, err = time.Parse(l, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, err
}

// query is the search's URL query with after and limit (0: none).
func (s search) query(after int64, limit int) url.Values {
	q := cloneValues(s.criteria)
	if after > 0 {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q
}

func withQuery(p string, q url.Values) string {
	if len(q) == 0 {
		return p
	}
	return p + "?" + q.Encode()
}

// searchView is the search page.
type searchView struct {
	Form       searchForm
	Types      []string // suggestions for the type field
	Limits     []int
	Criteria   []criterion // what the results are of
	Rows       []eventRow
	From, To   int64  // seq of the first and last row
	Next       string // the next page; "" on the last
	First      string // the first page of the search; "" on it
	CSV, JSONL string // exports of the whole search
	Error      string
}

type searchForm struct {
	Subject, Actor, Client, Audience, Type, Since, Until, TraceID string
	Limit                                                         int
}

type criterion struct{ Name, Value string }

// eventRow is one event in a list.
type eventRow struct {
	Seq                                            int64
	URL, TreeURL                                   string
	Time, TimeISO                                  string
	Type, Decision                                 string
	Deny                                           bool
	Subject, Client, Actors, Audiences, Reason, ID string
}

var uiEventTypes = []string{
	store.EventSignIn, store.EventSignOut, store.EventCodeIssued, store.EventTokenIssued, store.EventTokenExchanged,
	store.EventTokenRevoked, store.EventDenied, store.EventCallReported, store.EventKeyRotated, store.EventUserChanged,
	store.EventRateLimited, store.EventConfigReloaded, store.EventAuditRecovered, store.EventAuditViewed,
}

// search serves the search page: the criteria's form and a page of matching
// events in chain order, after the cursor after (a seq), with a link to the
// next page. The store is asked for at most limit+1 events, however wide the
// criteria.
func (x *explorer) search(w http.ResponseWriter, r *http.Request, v viewer) error {
	q := r.URL.Query()
	p := v.page("Search the audit trail", "search")
	sv := &searchView{Types: uiEventTypes, Limits: []int{25, 50, 100, 200}}
	p.Search = sv
	field := func(k string) string { return displayText(unquoteCriterion(q.Get(k))) }
	sv.Form = searchForm{Subject: field("subject"), Actor: field("actor"), Client: field("client"), Audience: field("audience"),
		Type: field("type"), Since: displayText(q.Get("since")), Until: displayText(q.Get("until")), TraceID: displayText(q.Get("trace_id")),
		Limit: defaultUIPage}
	s, err := parseSearch(q)
	if err != nil {
		var pe *pageError
		if !errors.As(err, &pe) {
			return err
		}
		// The form again, with what was wrong: the search is not run.
		if err := x.viewed(r, v, "search", q); err != nil {
			return err
		}
		sv.Error = pe.message
		accessOf(r).deny(pe.code)
		return x.render(w, http.StatusBadRequest, "audit_search.html", p)
	}
	sv.Form.Limit = s.filter.Limit
	for k, dst := range map[string]*string{"since": &sv.Form.Since, "until": &sv.Form.Until} {
		if t, err := time.Parse(time.RFC3339Nano, s.criteria.Get(k)); err == nil {
			*dst = t.Format("2006-01-02T15:04:05")
		}
	}
	for _, k := range searchKeys {
		if val := s.criteria.Get(k); val != "" {
			sv.Criteria = append(sv.Criteria, criterion{Name: criterionNames[k], Value: val})
		}
	}
	if err := x.viewed(r, v, "search", s.query(s.filter.AfterSeq, s.filter.Limit)); err != nil {
		return err
	}
	page := s.filter.Limit
	f := s.filter
	f.Limit = page + 1
	events, err := x.wb.s.cfg.AuditLog.Query(r.Context(), f)
	if err != nil {
		return unavailablePage(err)
	}
	more := len(events) > page
	if more {
		events = events[:page]
	}
	limit := 0
	if s.limited {
		limit = page
	}
	for _, e := range events {
		sv.Rows = append(sv.Rows, rowOf(e))
	}
	if len(events) > 0 {
		sv.From, sv.To = events[0].Seq, events[len(events)-1].Seq
	}
	if more {
		sv.Next = withQuery(PathAuditUI, s.query(sv.To, limit))
	}
	if s.filter.AfterSeq > 0 {
		sv.First = withQuery(PathAuditUI, s.query(0, limit))
	}
	csv, jsonl := s.query(0, 0), s.query(0, 0)
	csv.Set("format", "csv")
	jsonl.Set("format", "jsonl")
	sv.CSV, sv.JSONL = withQuery(PathAuditUIExport, csv), withQuery(PathAuditUIExport, jsonl)
	return x.render(w, http.StatusOK, "audit_search.html", p)
}

var criterionNames = map[string]string{
	"subject": "Subject", "actor": "Actor", "client": "Client", "audience": "Audience", "type": "Type",
	"since": "From", "until": "To", "trace_id": "Trace id",
}

func rowOf(e store.AuditEvent) eventRow {
	return eventRow{
		Seq: e.Seq, ID: displayText(e.ID), URL: eventURL(e.ID), TreeURL: treeURLOf(e),
		Time: e.Time.UTC().Format("2006-01-02 15:04:05"), TimeISO: e.Time.UTC().Format(time.RFC3339Nano),
		Type: displayText(e.Type), Decision: displayText(e.Decision), Deny: e.Decision == store.DecisionDeny,
		Subject: displayText(e.Subject), Client: displayText(e.ClientID),
		Actors: displayList(e.Actors), Audiences: displayList(e.Audiences), Reason: displayText(store.Truncate(e.Reason, 160)),
	}
}

func eventURL(id string) string { return PathAuditUIEvent + "?" + url.Values{"id": {id}}.Encode() }
func treeURL(id string) string  { return PathAuditUITree + "?" + url.Values{"id": {id}}.Encode() }

// treeURLOf is the tree of the token e concerns; "" when it concerns none.
func treeURLOf(e store.AuditEvent) string {
	if e.TokenJTI == "" && e.ParentJTI == "" {
		return ""
	}
	return treeURL(e.ID)
}

func uiTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

func displayList(l []string) string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = displayText(s)
	}
	return strings.Join(out, ", ")
}

// oneID is the id parameter of an event or tree page.
func oneID(r *http.Request) (string, error) {
	q := r.URL.Query()
	id := q.Get("id")
	if len(q["id"]) != 1 || id == "" || len(q) != 1 {
		return "", badRequestPage("Give exactly one parameter id.", nil)
	}
	if len(id) > 512 {
		return "", notFoundPage("There is no event or token with that id.")
	}
	return id, nil
}

// eventView is the page of one event: every field the trail records.
type eventView struct {
	Seq              int64
	ID, Type         string
	Time, TimeISO    string
	Decision         string
	Deny             bool
	Fields           []field
	Detail           string // indented JSON, or the text as stored
	PrevHash, Hash   string
	TreeURL, TraceOf string
}

// field is one labelled value; URL links it to another page.
type field struct{ Label, Value, URL string }

// event serves one event by id.
func (x *explorer) event(w http.ResponseWriter, r *http.Request, v viewer) error {
	id, err := oneID(r)
	if err != nil {
		return err
	}
	if err := x.viewed(r, v, "event", url.Values{"id": {id}}); err != nil {
		return err
	}
	e, err := x.wb.s.cfg.AuditLog.EventByID(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return notFoundPage("There is no event with the id " + displayText(id) + " in the audit trail.")
	}
	if err != nil {
		return unavailablePage(err)
	}
	p := v.page("Event "+displayText(e.ID), "search")
	ev := &eventView{
		Seq: e.Seq, ID: displayText(e.ID), Type: displayText(e.Type), Time: uiTime(e.Time), TimeISO: e.Time.UTC().Format(time.RFC3339Nano),
		Decision: displayText(e.Decision), Deny: e.Decision == store.DecisionDeny,
		PrevHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash), TreeURL: treeURLOf(e),
	}
	search := func(k, val string) string { return withQuery(PathAuditUI, url.Values{k: {val}}) }
	add := func(label, val, link string) {
		if val != "" {
			ev.Fields = append(ev.Fields, field{Label: label, Value: displayText(val), URL: link})
		}
	}
	add("Subject", e.Subject, search("subject", e.Subject))
	add("Subject issuer", e.SubjectIssuer, "")
	add("Client", e.ClientID, search("client", e.ClientID))
	for i, a := range e.Actors {
		label := "Actor"
		if len(e.Actors) > 1 {
			label = "Actor " + strconv.Itoa(i+1)
			if i == 0 {
				label += " (current)"
			}
		}
		add(label, a, search("actor", a))
	}
	for _, a := range e.Audiences {
		add("Audience", a, search("audience", a))
	}
	add("Scopes", strings.Join(e.Scopes, " "), "")
	add("Rule", e.Rule, "")
	add("Reason", e.Reason, "")
	add("Token", e.TokenJTI, treeIf(e.TokenJTI != "", e.TokenJTI))
	if !e.TokenExpires.IsZero() {
		add("Token expires", uiTime(e.TokenExpires), "")
	}
	add("Parent token", e.ParentJTI, treeIf(e.ParentJTI != "", e.ParentJTI))
	add("Trace id", e.TraceID, search("trace_id", e.TraceID))
	add("Request id", e.RequestID, "")
	add("Remote address", e.RemoteAddr, "")
	ev.Detail = detailText(e.Detail)
	p.Event = ev
	return x.render(w, http.StatusOK, "audit_event.html", p)
}

func treeIf(ok bool, id string) string {
	if !ok {
		return ""
	}
	return treeURL(id)
}

// detailText is an event's Detail for people: a JSON object indented, anything
// else as it is; either way with control characters escaped (html/template
// escapes the markup).
func detailText(d string) string {
	if d == "" {
		return ""
	}
	var b bytes.Buffer
	if json.Indent(&b, []byte(d), "", "  ") == nil {
		d = b.String()
	}
	lines := strings.Split(d, "\n")
	for i, l := range lines {
		lines[i] = displayText(l)
	}
	return strings.Join(lines, "\n")
}

// verifyView is the chain's verification status.
type verifyView struct {
	Intact         bool
	Count, LastSeq int64
	LastHash       string
	BadSeq, BadPos int64
	BadID, BadURL  string
	BadReason      string
	Checked        string
	CheckedISO     string
}

// verify checks the whole hash chain (audit.Verify, as `deputy audit verify`
// does) and shows whether it is intact, and where it first breaks.
func (x *explorer) verify(w http.ResponseWriter, r *http.Request, v viewer) error {
	if len(r.URL.Query()) > 0 {
		return badRequestPage("This page takes no parameters.", nil)
	}
	if err := x.viewed(r, v, "verify", nil); err != nil {
		return err
	}
	rep, err := audit.Verify(r.Context(), x.wb.s.cfg.AuditLog)
	if err != nil {
		return unavailablePage(err)
	}
	now := x.wb.s.cfg.Now()
	vv := &verifyView{Intact: rep.FirstBad == nil, Count: rep.Count, LastSeq: rep.LastSeq, LastHash: hex.EncodeToString(rep.LastHash),
		Checked: uiTime(now), CheckedISO: now.UTC().Format(time.RFC3339)}
	if b := rep.FirstBad; b != nil {
		vv.BadSeq, vv.BadPos, vv.BadID, vv.BadReason, vv.BadURL = b.Seq, b.Position, displayText(b.ID), b.Reason, eventURL(b.ID)
	}
	p := v.page("Chain verification", "verify")
	p.Verify = vv
	return x.render(w, http.StatusOK, "audit_verify.html", p)
}
