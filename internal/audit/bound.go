package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"

	"github.com/deputy-auth/deputy/internal/store"
)

// Bounds of the text of one audit event, in bytes (the README's "Audit trail"
// lists them). Much of an event comes from outside — a client id anyone may claim,
// a reason quoting a parameter, a request id, a subject another issuer chose — so
// every field is cut to its bound before the event is sealed and stored (see
// Bound): no request can make the trail store more than about 70 KiB, whatever it
// sends. Values from deputy's own configuration stay far below these bounds.
const (
	MaxEventIDBytes   = 128 // ID
	MaxTypeBytes      = 64  // Type, Decision
	MaxClientIDBytes  = 256 // ClientID
	MaxSubjectBytes   = 1024
	MaxIssuerBytes    = 1024 // SubjectIssuer
	MaxJTIBytes       = 1024 // ParentJTI, TokenJTI (a foreign token's jti too)
	MaxListItemBytes  = 1024 // each of Actors, Audiences, Scopes
	MaxListBytes      = 16 << 10
	MaxListItems      = 256
	MaxReasonBytes    = 2048
	MaxRuleBytes      = 256
	MaxRequestIDBytes = 128
	MaxRemoteBytes    = 256 // RemoteAddr
	MaxDetailBytes    = 16 << 10
	// detailPrefixBytes is how much of an oversized Detail its replacement keeps.
	detailPrefixBytes = 1024
)

// Bound cuts the text fields of e to the bounds above. A string field over its
// bound keeps a prefix and a marker with its length and hash (store.Truncate). A
// list keeps its items (each cut like a string) while it holds at most
// MaxListItems and MaxListBytes, then one last item "…[N more]". A Detail over
// MaxDetailBytes cannot be cut and stay JSON: it becomes
// {"truncated":true,"bytes":N,"sha256":"…","prefix":"…"} with its first
// detailPrefixBytes as a string. A TraceID that is not a W3C trace-id (32
// lowercase hex digits, not all zero: Trace Context §3.2.2.3) is dropped, so the
// store holds valid ids or none. Events within every bound are left unchanged, so
// nothing deputy writes itself is altered.
//
// Bound changes only what is stored, never the encoding it is sealed with (Seal).
func Bound(e *store.AuditEvent) {
	for _, f := range []struct {
		s   *string
		max int
	}{
		{&e.ID, MaxEventIDBytes}, {&e.Type, MaxTypeBytes}, {&e.ClientID, MaxClientIDBytes},
		{&e.Subject, MaxSubjectBytes}, {&e.SubjectIssuer, MaxIssuerBytes},
		{&e.ParentJTI, MaxJTIBytes}, {&e.TokenJTI, MaxJTIBytes}, {&e.Decision, MaxTypeBytes},
		{&e.Reason, MaxReasonBytes}, {&e.Rule, MaxRuleBytes}, {&e.RequestID, MaxRequestIDBytes},
		{&e.RemoteAddr, MaxRemoteBytes},
	} {
		*f.s = store.Truncate(*f.s, f.max)
	}
	e.Actors = boundList(e.Actors)
	e.Audiences = boundList(e.Audiences)
	e.Scopes = boundList(e.Scopes)
	e.Detail = boundDetail(e.Detail)
	if !ValidTraceID(e.TraceID) {
		e.TraceID = ""
	}
}

// ValidTraceID reports whether s is a W3C trace-id as a traceparent header
// writes it and the audit trail stores it: 32 lowercase hex digits, not all zero
// (Trace Context §3.2.2.3).
func ValidTraceID(s string) bool {
	if len(s) != 32 {
		return false
	}
	zero := true
	for i := range len(s) {
		switch c := s[i]; {
		case c == '0':
		case '1' <= c && c <= '9', 'a' <= c && c <= 'f':
			zero = false
		default:
			return false
		}
	}
	return !zero
}

// boundList returns l within bounds; l itself, which may be shared with other
// events (a client's configured scopes), is never written.
func boundList(l []string) []string {
	total := 0
	for i, s := range l {
		s = store.Truncate(s, MaxListItemBytes)
		if i == MaxListItems-1 && len(l) > MaxListItems || total+len(s) > MaxListBytes {
			return append(slices.Clone(l[:i]), "…["+strconv.Itoa(len(l)-i)+" more]")
		}
		if s != l[i] {
			l = slices.Clone(l)
			l[i] = s
		}
		total += len(s)
	}
	return l
}

func boundDetail(d string) string {
	if len(d) <= MaxDetailBytes {
		return d
	}
	sum := sha256.Sum256([]byte(d))
	b, _ := json.Marshal(struct {
		Truncated bool   `json:"truncated"`
		Bytes     int    `json:"bytes"`
		SHA256    string `json:"sha256"`
		Prefix    string `json:"prefix"`
	}{true, len(d), hex.EncodeToString(sum[:]), store.Truncate(d, detailPrefixBytes)})
	return string(b)
}
