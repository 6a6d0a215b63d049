package httpapi

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/store"
)

// csvHeader names the columns of a CSV export: the keys of `deputy audit query
// --json` (audit.WriteEventJSON), in its order.
var csvHeader = []string{
	"seq", "id", "time", "type", "client_id", "subject", "subject_issuer", "actors", "audiences", "scopes",
	"parent_jti", "token_jti", "token_expires", "decision", "reason", "rule", "request_id", "remote_addr",
	"trace_id", "detail", "prev_hash", "hash",
}

// export serves every event of a search, in chain order, as CSV (a header row
// and one row per event) or as JSON Lines (`deputy audit query --json`), for
// download. It takes the search's criteria and format (csv or jsonl), not its
// page: an export is the whole search.
//
// It streams: the store is read maxAuditPage events at a time, through the
// same query as the search page, each page after the last seq written, and
// each written before the next is read. So memory stays one page whatever the
// time range, and the file is complete: an export cut short to a bound would
// look like a whole one to whoever reads it later. Each page has its own
// deadline (exportPageTime) to be read and written, so a large export is not
// cut by the request's; a read or write that fails after the first page aborts
// the response, so the download fails rather than ending short and looking whole.
func (x *explorer) export(w http.ResponseWriter, r *http.Request, v viewer) error {
	q := r.URL.Query()
	format := q.Get("format")
	if len(q["format"]) != 1 || format != "csv" && format != "jsonl" {
		return badRequestPage("Give format=csv or format=jsonl.", nil)
	}
	if q.Has("after") || q.Has("limit") {
		return badRequestPage("An export holds the whole search: give its criteria without after or limit.", nil)
	}
	s, err := parseSearch(q, "format")
	if err != nil {
		return err
	}
	detail := s.query(0, 0)
	detail.Set("format", format)
	if err := x.viewed(r, v, "export", detail); err != nil {
		return err
	}
	f := s.filter
	f.Limit = maxAuditPage
	events, err := x.wb.s.cfg.AuditLog.Query(r.Context(), f)
	if err != nil {
		return unavailablePage(err)
	}
	h := w.Header()
	name := "deputy-audit-" + x.wb.s.cfg.Now().UTC().Format("20060102T150405Z")
	if format == "csv" {
		h.Set("Content-Type", "text/csv; charset=utf-8")
		name += ".csv"
	} else {
		h.Set("Content-Type", "application/jsonl")
		name += ".jsonl"
	}
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; sandbox")
	bw := bufio.NewWriterSize(w, 64<<10)
	var write func([]store.AuditEvent) error
	if format == "csv" {
		cw := csv.NewWriter(bw)
		if err := cw.Write(csvHeader); err != nil {
			return err
		}
		write = func(evs []store.AuditEvent) error {
			for _, e := range evs {
				if err := cw.Write(csvRow(e)); err != nil {
					return err
				}
			}
			cw.Flush()
			return cw.Error()
		}
	} else {
		write = func(evs []store.AuditEvent) error {
			for _, e := range evs {
				if err := audit.WriteEventJSON(bw, e); err != nil {
					return err
				}
			}
			return nil
		}
	}
	// Each page gets its own time to be read and written: a whole export may
	// take longer than any one request is given (http.write_timeout, the audit
	// endpoints' deadline), as long as it keeps moving. A client that stops
	// reading fails a write, which ends it.
	rc := http.NewResponseController(w)
	for {
		_ = rc.SetWriteDeadline(time.Now().Add(exportPageTime))
		if err := write(events); err != nil {
			return abortExport()
		}
		if err := bw.Flush(); err != nil {
			return abortExport()
		}
		if len(events) < f.Limit {
			return nil
		}
		f.AfterSeq = events[len(events)-1].Seq
		qctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), exportPageTime)
		events, err = x.wb.s.cfg.AuditLog.Query(qctx, f)
		cancel()
		if err != nil {
			x.wb.s.cfg.Log.Warn("audit explorer: export cut short", "request_id", requestID(r), "err", err)
			return abortExport()
		}
	}
}

// exportPageTime is how long one page of an export may take to be read from the
// store and written to the client.
const exportPageTime = 60 * time.Second

// abortExport ends an export that has begun and cannot go on: the connection
// is dropped, so the client sees a failed download, not a short file.
func abortExport() error {
	panic(http.ErrAbortHandler)
}

// csvRow is e as one CSV row of csvHeader's columns: lists space-separated,
// times RFC 3339 (UTC), hashes hex, and every text cell made safe to open in a
// spreadsheet (csvCell).
func csvRow(e store.AuditEvent) []string {
	exp := ""
	if !e.TokenExpires.IsZero() {
		exp = e.TokenExpires.UTC().Format(time.RFC3339Nano)
	}
	row := []string{
		strconv.FormatInt(e.Seq, 10), e.ID, e.Time.UTC().Format(time.RFC3339Nano), e.Type, e.ClientID, e.Subject, e.SubjectIssuer,
		strings.Join(e.Actors, " "), strings.Join(e.Audiences, " "), strings.Join(e.Scopes, " "),
		e.ParentJTI, e.TokenJTI, exp, e.Decision, e.Reason, e.Rule, e.RequestID, e.RemoteAddr,
		e.TraceID, e.Detail, hex.EncodeToString(e.PrevHash), hex.EncodeToString(e.Hash),
	}
	for i := range row {
		row[i] = csvCell(row[i])
	}
	return row
}

// csvCell is s made inert for spreadsheets (OWASP "CSV Injection"): a cell
// beginning with = + - @, a tab or a carriage return would be read as a
// formula, so it gets a leading single quote, which spreadsheets show as text.
func csvCell(s string) string {
	if formulaAt(s, 0) {
		return "'" + s
	}
	// A spreadsheet may split a field at a ; or , (the list separator of its
	// locale) or a line break that CSV itself does not: a formula after one of
	// those would start a cell of its own. Such a value is kept whole, as text.
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(";,\t\r\n", s[i]) >= 0 && formulaAt(s, i+1) {
			return "'" + s
		}
	}
	return s
}

// formulaAt reports whether s has a character that starts a spreadsheet formula
// at i.
func formulaAt(s string, i int) bool {
	return i < len(s) && strings.IndexByte("=+-@\t\r", s[i]) >= 0
}
