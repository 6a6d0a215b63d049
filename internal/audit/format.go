package audit

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/deputy-auth/deputy/internal/store"
)

// textTime is the time layout of text output: fixed width, microseconds, UTC.
const textTime = "2006-01-02T15:04:05.000000Z07:00"

// WriteEventText writes e as one line for people: time, seq, type and decision,
// then key=value pairs for the fields that are set (values quoted when they hold
// spaces or quotes), the Detail JSON last.
//
//	2026-11-25T18:00:01.234567Z #7 token.exchanged allow client=api2 sub=alice act=api2,api1 …
func WriteEventText(w io.Writer, e store.AuditEvent) error {
	b := make([]byte, 0, 256)
	b = e.Time.UTC().AppendFormat(b, textTime)
	b = append(b, " #"...)
	b = strconv.AppendInt(b, e.Seq, 10)
	b = append(b, ' ')
	b = append(b, orDash(e.Type)...)
	if e.Decision != "" {
		b = append(b, ' ')
		b = append(b, e.Decision...)
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
	b = appendKV(b, "id", e.ID)
	if e.Detail != "" {
		var c bytes.Buffer
		if json.Compact(&c, []byte(e.Detail)) == nil {
			b = append(b, " detail="...)
			b = append(b, c.Bytes()...)
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
	}) < 0 {
		return append(b, s...)
	}
	return strconv.AppendQuote(b, s)
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
	Detail        json.RawMessage `json:"detail"` // the object itself; a string if it is not one
	PrevHash      string          `json:"prev_hash"`
	Hash          string          `json:"hash"`
}

// WriteEventJSON writes e as one JSON object and a newline (JSON Lines), with the
// keys seq, id, time (RFC 3339, nanosecond layout), type, client_id, subject,
// subject_issuer, actors, audiences, scopes, parent_jti, token_jti, token_expires,
// decision, reason, rule, request_id, remote_addr, detail (the JSON object itself
// when Detail is one, else a string; null when empty), prev_hash and hash (hex).
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
		Detail:        detailJSON(e.Detail),
		PrevHash:      hex.EncodeToString(e.PrevHash),
		Hash:          hex.EncodeToString(e.Hash),
	}
	if !e.TokenExpires.IsZero() {
		s := e.TokenExpires.UTC().Format(time.RFC3339Nano)
		j.TokenExpires = &s
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(j)
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
