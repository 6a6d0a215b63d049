package audit

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

var t0 = time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)

// sampleEvent has every field set.
func sampleEvent() store.AuditEvent {
	return store.AuditEvent{
		Seq:           7,
		ID:            "EVT7",
		Time:          t0.Add(1234567 * time.Microsecond),
		Type:          store.EventTokenExchanged,
		ClientID:      "api2",
		Subject:       "alice",
		SubjectIssuer: "",
		Actors:        []string{"api2", "api1"},
		Audiences:     []string{"https://api3.example"},
		Scopes:        []string{"ledger:read", "ledger:write"},
		ParentJTI:     "jti-T1",
		TokenJTI:      "jti-T2",
		TokenExpires:  t0.Add(5 * time.Minute),
		Decision:      store.DecisionAllow,
		Reason:        "",
		Rule:          "exchange.policies[1]",
		RequestID:     "req-42",
		RemoteAddr:    "192.0.2.7:51234",
		TraceID:       "4bf92f3577b34da6a3ce929d0e0e4736",
		Detail:        `{"mode":"delegation"}`,
		PrevHash:      bytes.Repeat([]byte{0xab}, 32),
	}
}

// TestSealVector pins the canonical encodings: a change to one changes its hash,
// and must come with a new encoding version. The version 1 vector (an event
// without a trace id) is the one pinned before trace ids existed: events stored
// then keep their hashes, so old trails keep verifying.
func TestSealVector(t *testing.T) {
	for _, tc := range []struct {
		name, golden, traceID string
	}{
		{"v1", "seal-vector.txt", ""},
		{"v2", "seal-vector-v2.txt", "4bf92f3577b34da6a3ce929d0e0e4736"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := sampleEvent()
			e.TraceID = tc.traceID
			prev := e.PrevHash
			e.PrevHash = nil
			Seal(prev, &e)
			if !bytes.Equal(e.PrevHash, prev) {
				t.Fatalf("PrevHash = %x, want %x", e.PrevHash, prev)
			}
			if !bytes.Equal(Digest(e), e.Hash) {
				t.Fatal("Digest does not recompute Seal's hash")
			}
			enc := appendCanonical(nil, &e)
			if want := "deputy.audit." + tc.name; string(enc[1:1+enc[0]]) != want {
				t.Errorf("encoding opens with %q, want %q", enc[1:1+enc[0]], want)
			}
			var b bytes.Buffer
			b.WriteString("encoding " + hex.EncodeToString(enc) + "\n")
			b.WriteString("sha256   " + hex.EncodeToString(e.Hash) + "\n")
			golden(t, tc.golden, b.Bytes())
		})
	}
}

// TestDigestV1Unchanged recomputes the hash of an event sealed before trace ids
// existed (the version 1 vector, written out here so that -update cannot move it).
func TestDigestV1Unchanged(t *testing.T) {
	e := sampleEvent()
	e.TraceID = ""
	e.Hash, _ = hex.DecodeString("72b33fc1bb833351997840f728d7c0ead68637f5b80afebdacfdb0ef11b26153")
	if !bytes.Equal(Digest(e), e.Hash) {
		t.Fatalf("an event sealed as deputy.audit.v1 no longer verifies: Digest = %x", Digest(e))
	}
	e.TraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	if bytes.Equal(Digest(e), e.Hash) {
		t.Fatal("adding a trace id to a sealed event keeps its digest")
	}
}

func TestSealFirstEventHasNilPrevHash(t *testing.T) {
	for _, prev := range [][]byte{nil, {}} {
		e := sampleEvent()
		Seal(prev, &e)
		if e.PrevHash != nil {
			t.Errorf("Seal(%#v) set PrevHash %#v, want nil", prev, e.PrevHash)
		}
	}
}

func TestSealCopiesPrevHash(t *testing.T) {
	prev := []byte{1, 2, 3}
	e := sampleEvent()
	Seal(prev, &e)
	prev[0] = 9
	if e.PrevHash[0] != 1 {
		t.Error("Seal kept a reference to the caller's prevHash")
	}
}

// TestDigestCoversEveryField changes each field in turn and expects a new hash.
// Hash is the only field left out; the reflect walk makes sure a field added to
// store.AuditEvent later does not slip past the encoding unnoticed.
func TestDigestCoversEveryField(t *testing.T) {
	base := sampleEvent()
	want := Digest(base)
	typ := reflect.TypeFor[store.AuditEvent]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Name == "Hash" {
			continue
		}
		t.Run(f.Name, func(t *testing.T) {
			e := sampleEvent()
			v := reflect.ValueOf(&e).Elem().Field(i)
			switch x := v.Addr().Interface().(type) {
			case *int64:
				*x++
			case *string:
				*x += "x"
			case *time.Time:
				*x = x.Add(time.Microsecond)
			case *[]string:
				*x = append(*x, "x")
			case *[]byte:
				*x = append(*x, 0)
			default:
				t.Fatalf("field %s of type %s is not covered by this test", f.Name, f.Type)
			}
			if bytes.Equal(Digest(e), want) {
				t.Errorf("changing %s does not change the digest", f.Name)
			}
		})
	}
	t.Run("Hash", func(t *testing.T) {
		e := sampleEvent()
		e.Hash = []byte("anything")
		if !bytes.Equal(Digest(e), want) {
			t.Error("Hash must not be part of its own digest")
		}
	})
}

// TestDigestUnambiguous lists pairs of different events that a naive encoding
// (concatenation, joined lists, nanosecond-blind or zero-blind times) would confuse.
func TestDigestUnambiguous(t *testing.T) {
	tests := []struct {
		name string
		a, b func(*store.AuditEvent)
	}{
		{"field-boundary", func(e *store.AuditEvent) { e.ClientID, e.Subject = "ab", "" }, func(e *store.AuditEvent) { e.ClientID, e.Subject = "a", "b" }},
		{"list-join", func(e *store.AuditEvent) { e.Actors = []string{"a", "b"} }, func(e *store.AuditEvent) { e.Actors = []string{"ab"} }},
		{"list-empty-member", func(e *store.AuditEvent) { e.Actors = []string{"a"} }, func(e *store.AuditEvent) { e.Actors = []string{"a", ""} }},
		{"list-to-next-list", func(e *store.AuditEvent) { e.Actors, e.Audiences = []string{"a", "b"}, nil }, func(e *store.AuditEvent) { e.Actors, e.Audiences = []string{"a"}, []string{"b"} }},
		{"zero-vs-epoch", func(e *store.AuditEvent) { e.TokenExpires = time.Time{} }, func(e *store.AuditEvent) { e.TokenExpires = time.Unix(0, 0) }},
		{"jti-swap", func(e *store.AuditEvent) { e.ParentJTI, e.TokenJTI = "p", "t" }, func(e *store.AuditEvent) { e.ParentJTI, e.TokenJTI = "t", "p" }},
		{"detail-into-prevhash", func(e *store.AuditEvent) { e.Detail, e.PrevHash = "{}\x01", nil }, func(e *store.AuditEvent) { e.Detail, e.PrevHash = "{}", []byte{1} }},
		{"trace-id-vs-none", func(e *store.AuditEvent) { e.TraceID = "" }, func(e *store.AuditEvent) { e.TraceID = "4bf92f3577b34da6a3ce929d0e0e4736" }},
		{"trace-id-changed", func(e *store.AuditEvent) { e.TraceID = "4bf92f3577b34da6a3ce929d0e0e4736" }, func(e *store.AuditEvent) { e.TraceID = "4bf92f3577b34da6a3ce929d0e0e4737" }},
		{"prevhash-into-trace-id", func(e *store.AuditEvent) { e.PrevHash, e.TraceID = []byte{1, 2}, "ab" }, func(e *store.AuditEvent) { e.PrevHash, e.TraceID = []byte{1}, "\x02ab" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := sampleEvent(), sampleEvent()
			tt.a(&a)
			tt.b(&b)
			if bytes.Equal(Digest(a), Digest(b)) {
				t.Error("two different events have the same digest")
			}
		})
	}
}

// TestDigestIgnoresRepresentation: what a database cannot keep apart (time zone,
// nil vs empty) must not change the digest.
func TestDigestIgnoresRepresentation(t *testing.T) {
	a, b := sampleEvent(), sampleEvent()
	b.Time = b.Time.In(time.FixedZone("CET", 3600))
	b.TokenExpires = b.TokenExpires.Local()
	a.Scopes, b.Scopes = nil, []string{}
	if !bytes.Equal(Digest(a), Digest(b)) {
		t.Error("digest depends on the time zone or on nil vs empty")
	}
}

// decodeCanonical is the inverse of appendCanonical, here to prove that the
// encoding is injective (a decoder exists) and to let the fuzzer check it.
func decodeCanonical(b []byte) (store.AuditEvent, error) {
	var (
		e   store.AuditEvent
		err error
	)
	fail := errors.New("malformed")
	uvarint := func() uint64 {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			err = fail
			return 0
		}
		b = b[k:]
		return n
	}
	bytesField := func() []byte {
		n := uvarint()
		if err != nil || n > uint64(len(b)) {
			err = fail
			return nil
		}
		s := b[:n]
		b = b[n:]
		return s
	}
	str := func() string { return string(bytesField()) }
	i64 := func() int64 {
		if len(b) < 8 {
			err = fail
			return 0
		}
		n := int64(binary.BigEndian.Uint64(b))
		b = b[8:]
		return n
	}
	tm := func() time.Time {
		if len(b) < 1 {
			err = fail
			return time.Time{}
		}
		flag := b[0]
		b = b[1:]
		switch flag {
		case 0:
			return time.Time{}
		case 1:
			return time.UnixMicro(i64()).UTC()
		}
		err = fail
		return time.Time{}
	}
	list := func() []string {
		n := uvarint()
		if n > uint64(len(b)) {
			err = fail
			return nil
		}
		var l []string
		for range n {
			l = append(l, str())
		}
		return l
	}
	version := str()
	if version != encodingV1 && version != encodingV2 {
		return e, fail
	}
	e.Seq = i64()
	e.ID = str()
	e.Time = tm()
	e.Type = str()
	e.ClientID = str()
	e.Subject = str()
	e.SubjectIssuer = str()
	e.Actors = list()
	e.Audiences = list()
	e.Scopes = list()
	e.ParentJTI = str()
	e.TokenJTI = str()
	e.TokenExpires = tm()
	e.Decision = str()
	e.Reason = str()
	e.Rule = str()
	e.RequestID = str()
	e.RemoteAddr = str()
	e.Detail = str()
	if h := bytesField(); len(h) > 0 {
		e.PrevHash = h
	}
	if version == encodingV2 {
		if e.TraceID = str(); e.TraceID == "" {
			err = fail // version 2 always holds a trace id
		}
	}
	if err == nil && len(b) != 0 {
		err = fail
	}
	return e, err
}

func normalised(e store.AuditEvent) store.AuditEvent {
	for _, l := range []*[]string{&e.Actors, &e.Audiences, &e.Scopes} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	if !e.Time.IsZero() {
		e.Time = e.Time.UTC().Truncate(time.Microsecond)
	}
	if !e.TokenExpires.IsZero() {
		e.TokenExpires = e.TokenExpires.UTC().Truncate(time.Microsecond)
	}
	if len(e.PrevHash) == 0 {
		e.PrevHash = nil
	}
	e.Hash = nil
	return e
}

func TestCanonicalRoundTrip(t *testing.T) {
	for _, traceID := range []string{"", "4bf92f3577b34da6a3ce929d0e0e4736"} {
		e := sampleEvent()
		e.TraceID = traceID
		got, err := decodeCanonical(appendCanonical(nil, &e))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, normalised(e)) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, normalised(e))
		}
	}
}

func FuzzCanonical(f *testing.F) {
	f.Add(int64(1), "id", "a", "b", "c", "{}", int64(0), []byte(nil), "")
	f.Add(int64(-1), "", "a\x00b", "", "", "", int64(1), []byte{1, 2}, "4bf92f3577b34da6a3ce929d0e0e4736")
	f.Fuzz(func(t *testing.T, seq int64, id, s1, s2, s3, detail string, micros int64, prev []byte, traceID string) {
		e := store.AuditEvent{
			Seq: seq, ID: id, Time: time.UnixMicro(micros).UTC(), Type: s1, Subject: s2,
			Actors: []string{s1, s2}, Audiences: []string{s3}, Scopes: nil,
			ParentJTI: s3, TokenJTI: s1 + s2, Detail: detail, PrevHash: prev, TraceID: traceID,
		}
		got, err := decodeCanonical(appendCanonical(nil, &e))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, normalised(e)) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, normalised(e))
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	e := sampleEvent()
	prev := e.PrevHash
	b.ReportAllocs()
	for b.Loop() {
		Seal(prev, &e)
	}
}

func BenchmarkDigest(b *testing.B) {
	e := sampleEvent()
	b.ReportAllocs()
	for b.Loop() {
		digest(&e)
	}
}
