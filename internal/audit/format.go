package audit

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// textTime is the time layout of text output: fixed width, microseconds, UTC.
const textTime = "2006-01-02T15:04:05.000000Z07:00"

// WriteEventText writes e as one line for people: time, seq, type and decision,
// then key=value pairs for the fields that are set (trace= is the W3C trace-id of
// the request), the Detail JSON last. Much of
// an event is text from outside, so nothing reaches the terminal as it is that
// could move the cursor, break the line or reorder what is shown: a value is
// quoted in Go syntax (strconv.Quote: ESC as \x1b, CR as \r, U+202E as \u202e)
// when it holds a space, a quote, a backslash, '=' or any character that is not
// printable, and in the Detail JSON such characters are written as \u escapes.
//
//	2026-11-25T18:00:01.234567Z #7 token.exchanged allow client=api2 sub=alice act=api2,api1 …
func WriteEventText(w io.Writer, e store.AuditEvent) error {
	b := make([]byte, 0, 256)
	b = e.Time.UTC().AppendFormat(b, textTime)
	b = append(b, " #"...)
	b = strconv.AppendInt(b, e.Seq, 10)
	b = append(b, ' ')
	b = appendValue(b, orDash(e.Type))
	if e.Decision != "" {
		b = append(b, ' ')
		b = appendValue(b, e.Decision)
	}
	b = appendKV(b, "client", e.ClientID)
	b = appendKV(b, "sub", e.Subject)
	b = appendKV(b, "iss", e.SubjectIssuer)
	b = appendKV(b, "act", strings.Join(e.Actors, ","))
	b = appendKV(b, "aud", strings.Join(e.Audiences, ","))
	b = appendKV(b, "scope", strings.Join(e.Scopes, ","))
	b = appendKV(b, "parent", e.ParentJTI)
	b = appendKV(b, "token", e.TokenJTI)
	if !e.TokenExpires.IsZero() {
		b = appendKV(b, "exp", e.TokenExpires.UTC().Format(time.RFC3339))
	}
	b = appendKV(b, "rule", e.Rule)
	b = appendKV(b, "reason", e.Reason)
	b = appendKV(b, "req", e.RequestID)
	b = appendKV(b, "remote", e.RemoteAddr)
	b = appendKV(b, "trace", e.TraceID)
	b = appendKV(b, "id", e.ID)
	if e.Detail != "" {
		var c bytes.Buffer
		if json.Compact(&c, []byte(e.Detail)) == nil {
			b = append(b, " detail="...)
			b = appendJSONEscaped(b, c.Bytes())
		} else {
			b = appendKV(b, "detail", e.Detail)
		}
	}
	b = append(b, '\n')
	_, err := w.Write(b)
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// appendKV appends " key=value" unless value is empty.
func appendKV(b []byte, key, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ' ')
	b = append(b, key...)
	b = append(b, '=')
	return appendValue(b, value)
}

// appendValue appends s as is when it reads unambiguously in a line of key=value
// pairs, quoted (Go syntax) otherwise.
func appendValue(b []byte, s string) []byte {
	if strings.IndexFunc(s, func(r rune) bool {
		return r == '"' || r == '\\' || r == '=' || unicode.IsSpace(r) || !unicode.IsPrint(r)
	}) < 0 && utf8.ValidString(s) {
		return append(b, s...)
	}
	return strconv.AppendQuote(b, s)
}

// TextValue is s as the audit trail's text renderers show it: as it is when
// every character is printable and none is a quote or backslash, else quoted in
// Go syntax (\x1b, \u202e), so text from outside never reaches a terminal raw.
// deputy audit verify and keys rotate print stored ids with it too.
func TextValue(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r == '"' || r == '\\' || !strconv.IsPrint(r) }) < 0 && utf8.ValidString(s) {
		return s
	}
	return strconv.Quote(s)
}

// textList is l as the text renderers show it: each item as TextValue, joined
// by commas.
func textList(l []string) string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = TextValue(s)
	}
	return strings.Join(out, ",")
}

// appendJSONEscaped appends the JSON text j with every character that is not
// printable and not ASCII — and DEL — written as a \u escape (a surrogate pair
// above U+FFFF). JSON allows such characters raw inside strings (C1 controls,
// U+2028, bidi overrides), and a terminal would obey them; escaped, the JSON
// means exactly the same. Outside strings JSON text holds ASCII only, so the
// escapes can only land inside strings.
func appendJSONEscaped(b, j []byte) []byte {
	for i := 0; i < len(j); {
		c := j[i]
		if c < utf8.RuneSelf && c != 0x7f {
			b = append(b, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(j[i:])
		if r != 0x7f && strconv.IsPrint(r) && !oauth.UnsafeRune(r) && !(r == utf8.RuneError && size == 1) {
			b = append(b, j[i:i+size]...)
			i += size
			continue
		}
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			b = fmt.Appendf(b, `\u%04x\u%04x`, r1, r2)
		} else {
			b = fmt.Appendf(b, `\u%04x`, r)
		}
		i += size
	}
	return b
}

// eventJSON is the wire form of one event in `deputy audit query --json`. Its keys
// are stable: every key is always present, empty strings as "", empty lists as [],
// a missing token_expires or detail as null.
type eventJSON struct {
	Seq           int64           `json:"seq"`
	ID            string          `json:"id"`
	Time          string          `json:"time"` // RFC 3339 with fraction
	Type          string          `json:"type"`
	ClientID      string          `json:"client_id"`
	Subject       string          `json:"subject"`
	SubjectIssuer string          `json:"subject_issuer"`
	Actors        []string        `json:"actors"`
	Audiences     []string        `json:"audiences"`
	Scopes        []string        `json:"scopes"`
	ParentJTI     string          `json:"parent_jti"`
	TokenJTI      string          `json:"token_jti"`
	TokenExpires  *string         `json:"token_expires"`
	Decision      string          `json:"decision"`
	Reason        string          `json:"reason"`
	Rule          string          `json:"rule"`
	RequestID     string          `json:"request_id"`
	RemoteAddr    string          `json:"remote_addr"`
	TraceID       string          `json:"trace_id"`
	Detail        json.RawMessage `json:"detail"` // the object itself; a string if it is not one
	PrevHash      string          `json:"prev_hash"`
	Hash          string          `json:"hash"`
}

// WriteEventJSON writes e as one JSON object and a newline (JSON Lines), with the
// keys seq, id, time (RFC 3339, nanosecond layout), type, client_id, subject,
// subject_issuer, actors, audiences, scopes, parent_jti, token_jti, token_expires,
// decision, reason, rule, request_id, remote_addr, trace_id (the W3C trace-id of
// the request, "" if none), detail (the JSON object itself
// when Detail is one, else a string; null when empty), prev_hash and hash (hex).
// Control characters, line separators and bidi overrides are \u escapes, also
// those JSON would allow raw (appendJSONEscaped).
func WriteEventJSON(w io.Writer, e store.AuditEvent) error {
	j := eventJSON{
		Seq:           e.Seq,
		ID:            e.ID,
		Time:          e.Time.UTC().Format(time.RFC3339Nano),
		Type:          e.Type,
		ClientID:      e.ClientID,
		Subject:       e.Subject,
		SubjectIssuer: e.SubjectIssuer,
		Actors:        nonNil(e.Actors),
		Audiences:     nonNil(e.Audiences),
		Scopes:        nonNil(e.Scopes),
		ParentJTI:     e.ParentJTI,
		TokenJTI:      e.TokenJTI,
		Decision:      e.Decision,
		Reason:        e.Reason,
		Rule:          e.Rule,
		RequestID:     e.RequestID,
		RemoteAddr:    e.RemoteAddr,
		TraceID:       e.TraceID,
		Detail:        detailJSON(e.Detail),
		PrevHash:      hex.EncodeToString(e.PrevHash),
		Hash:          hex.EncodeToString(e.Hash),
	}
	if !e.TokenExpires.IsZero() {
		s := e.TokenExpires.UTC().Format(time.RFC3339Nano)
		j.TokenExpires = &s
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(j); err != nil {
		return err
	}
	_, err := w.Write(appendJSONEscaped(make([]byte, 0, buf.Len()+16), buf.Bytes()))
	return err
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// detailJSON returns detail as raw JSON when it is a JSON object, as a JSON string
// when it is something else, and null when empty.
func detailJSON(detail string) json.RawMessage {
	if detail == "" {
		return json.RawMessage("null")
	}
	if t := strings.TrimSpace(detail); strings.HasPrefix(t, "{") && json.Valid([]byte(t)) {
		return json.RawMessage(t)
	}
	s, _ := json.Marshal(detail)
	return s
}
