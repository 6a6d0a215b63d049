package tracing

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// TestNewTraceIDGrowsWithTime: the ids deputy makes sort by the millisecond they
// were made in (what keeps the audit trail's trace-id index append-only), carry
// that time, and are unique and valid within one millisecond.
func TestNewTraceIDGrowsWithTime(t *testing.T) {
	t0 := time.UnixMilli(1_764_896_400_000)
	seen := map[[16]byte]bool{}
	prev := NewTraceID(t0)
	for i := 1; i <= 2000; i++ {
		now := t0.Add(time.Duration(i/10) * time.Millisecond) // ten ids a millisecond
		id := NewTraceID(now)
		if !id.IsValid() {
			t.Fatalf("invalid trace id %s", id)
		}
		if seen[id] {
			t.Fatalf("trace id %s made twice", id)
		}
		seen[id] = true
		if ms := binary.BigEndian.Uint64(id[:8]) >> 16; ms != uint64(now.UnixMilli()) {
			t.Fatalf("trace id %s carries %d, want the time %d", id, ms, now.UnixMilli())
		}
		if i%10 == 0 && bytes.Compare(prev[:], id[:]) >= 0 {
			t.Fatalf("trace id %s of a later millisecond sorts before %s", id, prev)
		}
		prev = id
	}
	if id := NewSpanID(); !id.IsValid() {
		t.Errorf("invalid span id %s", id)
	}
	// The SDK's spans get the same kind of ids.
	var _ sdktrace.IDGenerator = idGenerator{}
	before := time.Now().UnixMilli()
	tid, sid := idGenerator{}.NewIDs(context.Background())
	if ms := int64(binary.BigEndian.Uint64(tid[:8]) >> 16); ms < before || ms > time.Now().UnixMilli() || !sid.IsValid() {
		t.Errorf("NewIDs = %s %s, want the time now and a valid span id", tid, sid)
	}
}
