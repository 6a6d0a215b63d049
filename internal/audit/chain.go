package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// The version strings that open the canonical encodings. Changing the encoding
// means a new version string; events sealed under an old one keep verifying because
// appendCanonical still writes it for them (see there).
const (
	encodingV1 = "deputy.audit.v1" // events without a TraceID
	encodingV2 = "deputy.audit.v2" // events with one
)

// bufPool holds encoding buffers so that sealing does not allocate per event.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Seal sets e.PrevHash to prevHash (nil when empty) and e.Hash to the SHA-256 of the
// canonical encoding of e (see appendCanonical). It has the signature of
// store.SealFunc, so it is what the Writer hands to store.AuditLog.Append, which calls
// it with e.Seq already set. Seal is safe for concurrent use.
func Seal(prevHash []byte, e *store.AuditEvent) {
	if len(prevHash) == 0 {
		e.PrevHash = nil
	} else {
		e.PrevHash = append([]byte(nil), prevHash...)
	}
	sum := digest(e)
	e.Hash = sum[:]
}

// Digest recomputes the hash that Seal gives e, from every field but e.Hash. An
// event is intact when Digest(e) equals e.Hash.
func Digest(e store.AuditEvent) []byte {
	sum := digest(&e)
	return sum[:]
}

func digest(e *store.AuditEvent) [sha256.Size]byte {
	bp := bufPool.Get().(*[]byte)
	buf := appendCanonical((*bp)[:0], e)
	sum := sha256.Sum256(buf)
	if cap(buf) <= 64<<10 { // do not keep pathological buffers alive
		*bp = buf[:0]
		bufPool.Put(bp)
	}
	return sum
}

// appendCanonical appends the canonical encoding of e to b. An event without a
// TraceID is encoded as version 1, exactly as before trace ids were recorded, so
// every event already stored keeps its hash:
//
//	str("deputy.audit.v1")
//	int(Seq)  str(ID)  time(Time)  str(Type)  str(ClientID)  str(Subject)
//	str(SubjectIssuer)  list(Actors)  list(Audiences)  list(Scopes)
//	str(ParentJTI)  str(TokenJTI)  time(TokenExpires)  str(Decision)  str(Reason)
//	str(Rule)  str(RequestID)  str(RemoteAddr)  str(Detail)  str(PrevHash)
//
// An event with a TraceID is encoded as version 2: the fields of version 1, then
// the trace id.
//
//	str("deputy.audit.v2")
//	int(Seq) … str(PrevHash)  (as in version 1)
//	str(TraceID)
//
// where
//
//	uvarint(n) = n as an unsigned LEB128 varint, minimal length (binary.AppendUvarint)
//	int(n)     = n as 8 bytes, big-endian two's complement
//	str(s)     = uvarint(len(s)) followed by the bytes of s
//	list(l)    = uvarint(len(l)) followed by str(x) for each x in order
//	time(t)    = the byte 0x00 if t.IsZero(), else 0x01 followed by int(t.UnixMicro())
//
// Every field is either fixed-width or length-prefixed, the fields of a version
// come in a fixed order and the version string says which fields follow (version
// 2 always holds a non-empty TraceID, version 1 stands for an empty one), so the
// encoding is injective: two events that differ in any hashed field (at
// microsecond precision for times, which is what the store keeps) encode
// differently. A nil and an empty list or hash encode the same, as a database does
// not tell them apart either. The store keeps the trace id in audit_events.trace_id;
// Bound keeps only a valid W3C trace-id there.
func appendCanonical(b []byte, e *store.AuditEvent) []byte {
	version := encodingV1
	if e.TraceID != "" {
		version = encodingV2
	}
	b = appendStr(b, version)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Seq))
	b = appendStr(b, e.ID)
	b = appendTime(b, e.Time)
	b = appendStr(b, e.Type)
	b = appendStr(b, e.ClientID)
	b = appendStr(b, e.Subject)
	b = appendStr(b, e.SubjectIssuer)
	b = appendList(b, e.Actors)
	b = appendList(b, e.Audiences)
	b = appendList(b, e.Scopes)
	b = appendStr(b, e.ParentJTI)
	b = appendStr(b, e.TokenJTI)
	b = appendTime(b, e.TokenExpires)
	b = appendStr(b, e.Decision)
	b = appendStr(b, e.Reason)
	b = appendStr(b, e.Rule)
	b = appendStr(b, e.RequestID)
	b = appendStr(b, e.RemoteAddr)
	b = appendStr(b, e.Detail)
	b = binary.AppendUvarint(b, uint64(len(e.PrevHash)))
	b = append(b, e.PrevHash...)
	if version == encodingV2 {
		b = appendStr(b, e.TraceID)
	}
	return b
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendList(b []byte, l []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(l)))
	for _, s := range l {
		b = appendStr(b, s)
	}
	return b
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixMicro()))
}
