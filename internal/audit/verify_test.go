package audit

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// appendChain appends n events, in batches of three, straight through the log.
// Even-numbered events carry a trace id (encoding version 2), the others none
// (version 1, as every event stored before trace ids existed).
func appendChain(t *testing.T, log store.AuditLog, n int) {
	t.Helper()
	var batch []*store.AuditEvent
	for i := 1; i <= n; i++ {
		e := &store.AuditEvent{
			ID: fmt.Sprintf("E%d", i), Time: t0.Add(timeStep(i)), Type: store.EventTokenIssued,
			ClientID: "web-app", Subject: "alice", TokenJTI: fmt.Sprintf("J%d", i),
			Decision: store.DecisionAllow, Audiences: []string{"https://api1.example"},
		}
		if i%2 == 0 {
			e.TraceID = fmt.Sprintf("4bf92f3577b34da6a3ce929d0e0e%04x", i)
		}
		batch = append(batch, e)
		if len(batch) == 3 || i == n {
			if err := log.Append(context.Background(), batch, Seal); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		tamper func(t *testing.T, x tamperer)
		want   *Bad
	}{
		{name: "ok/empty-log", n: 0},
		{name: "ok/one-record", n: 1},
		{name: "ok/chain", n: 10},
		{
			name: "fail/altered-reason",
			n:    10,
			tamper: func(t *testing.T, x tamperer) {
				x.alter(t, 4, func(e *store.AuditEvent) { e.Reason = "nothing to see" })
			},
			want: &Bad{Seq: 4, ID: "E4", Reason: BadHash, Position: 4},
		},
		{
			name: "fail/altered-actors",
			n:    10,
			tamper: func(t *testing.T, x tamperer) {
				x.alter(t, 9, func(e *store.AuditEvent) { e.Actors = []string{"mallory"} })
			},
			want: &Bad{Seq: 9, ID: "E9", Reason: BadHash, Position: 9},
		},
		{
			name: "fail/altered-trace-id",
			n:    10,
			tamper: func(t *testing.T, x tamperer) {
				x.alter(t, 4, func(e *store.AuditEvent) { e.TraceID = "0af7651916cd43dd8448eb211c80319c" })
			},
			want: &Bad{Seq: 4, ID: "E4", Reason: BadHash, Position: 4},
		},
		{
			name: "fail/trace-id-removed",
			n:    10,
			tamper: func(t *testing.T, x tamperer) {
				x.alter(t, 6, func(e *store.AuditEvent) { e.TraceID = "" })
			},
			want: &Bad{Seq: 6, ID: "E6", Reason: BadHash, Position: 6},
		},
		{
			name: "fail/trace-id-added",
			n:    10,
			tamper: func(t *testing.T, x tamperer) {
				x.alter(t, 3, func(e *store.AuditEvent) { e.TraceID = "0af7651916cd43dd8448eb211c80319c" })
			},
			want: &Bad{Seq: 3, ID: "E3", Reason: BadHash, Position: 3},
		},
		{
			name: "fail/altered-last-record",
			n:    10,
			tamper: func(t *testing.T, x tamperer) {
				x.alter(t, 10, func(e *store.AuditEvent) { e.Subject = "bob" })
			},
			want: &Bad{Seq: 10, ID: "E10", Reason: BadHash, Position: 10},
		},
		{
			name: "fail/altered-and-rehashed",
			n:    10,
			tamper: func(t *testing.T, x tamperer) {
				x.alter(t, 5, func(e *store.AuditEvent) { e.Decision = store.DecisionDeny; Seal(e.PrevHash, e) })
			},
			want: &Bad{Seq: 6, ID: "E6", Reason: BadPrevHash, Position: 6},
		},
		{
			name:   "fail/deleted-record",
			n:      10,
			tamper: func(t *testing.T, x tamperer) { x.remove(t, 5) },
			want:   &Bad{Seq: 6, ID: "E6", Reason: BadSeqGap, Position: 5},
		},
		{
			name: "fail/deleted-and-renumbered",
			n:    10,
			tamper: func(t *testing.T, x tamperer) {
				x.remove(t, 5)
				for seq := int64(6); seq <= 10; seq++ {
					x.alter(t, seq, func(e *store.AuditEvent) { e.Seq--; Seal(e.PrevHash, e) })
				}
			},
			want: &Bad{Seq: 5, ID: "E6", Reason: BadPrevHash, Position: 5},
		},
		{
			name: "fail/reordered",
			n:    10,
			tamper: func(t *testing.T, x tamperer) {
				// Swap the contents of records 3 and 4, each keeping its position.
				var e3, e4 store.AuditEvent
				x.alter(t, 3, func(e *store.AuditEvent) { e3 = cloneEvent(*e) })
				x.alter(t, 4, func(e *store.AuditEvent) { e4 = cloneEvent(*e) })
				x.alter(t, 3, func(e *store.AuditEvent) { *e = e4; e.Seq = 3 })
				x.alter(t, 4, func(e *store.AuditEvent) { *e = e3; e.Seq = 4 })
			},
			want: &Bad{Seq: 3, ID: "E4", Reason: BadPrevHash, Position: 3},
		},
		{
			name:   "fail/truncated-head",
			n:      10,
			tamper: func(t *testing.T, x tamperer) { x.remove(t, 1); x.remove(t, 2) },
			want:   &Bad{Seq: 3, ID: "E3", Reason: BadTruncatedHead, Position: 1},
		},
		{
			name: "fail/hash-removed",
			n:    3,
			tamper: func(t *testing.T, x tamperer) {
				x.alter(t, 2, func(e *store.AuditEvent) { e.Hash = nil })
			},
			want: &Bad{Seq: 2, ID: "E2", Reason: BadHash, Position: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, b backend) {
				appendChain(t, b, tt.n)
				count := int64(tt.n)
				if tt.tamper != nil {
					x, ok := b.(tamperer)
					if !ok {
						t.Skip("backend cannot be tampered with")
					}
					tt.tamper(t, x)
					if err := b.Scan(context.Background(), 0, func(store.AuditEvent) error { count--; return nil }); err != nil {
						t.Fatal(err)
					}
					count = int64(tt.n) - count // records left after tampering
				}
				r, err := Verify(context.Background(), b)
				if err != nil {
					t.Fatal(err)
				}
				if r.Count != count {
					t.Errorf("Count = %d, want %d", r.Count, count)
				}
				if tt.tamper == nil {
					var last store.AuditEvent
					_ = b.Scan(context.Background(), 0, func(e store.AuditEvent) error { last = e; return nil })
					if r.LastSeq != last.Seq || !bytes.Equal(r.LastHash, last.Hash) || (tt.n > 0) != (len(r.LastHash) > 0) {
						t.Errorf("LastSeq, LastHash = %d, %x; want %d, %x", r.LastSeq, r.LastHash, last.Seq, last.Hash)
					}
				}
				switch {
				case tt.want == nil && r.FirstBad != nil:
					t.Errorf("FirstBad = %+v, want an intact chain", *r.FirstBad)
				case tt.want != nil && r.FirstBad == nil:
					t.Errorf("FirstBad = nil, want %+v", *tt.want)
				case tt.want != nil && *r.FirstBad != *tt.want:
					t.Errorf("FirstBad = %+v, want %+v", *r.FirstBad, *tt.want)
				}
			})
		})
	}
}

func TestVerifyScanError(t *testing.T) {
	b := newMemStore()
	appendChain(t, b, 3)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Verify(ctx, b); err == nil {
		t.Error("Verify with a cancelled context: no error")
	}
}

func BenchmarkVerify(b *testing.B) {
	m := newMemStore()
	t := &testing.T{}
	appendChain(t, m, 10000)
	b.ReportAllocs()
	for b.Loop() {
		if r, err := Verify(context.Background(), m); err != nil || r.FirstBad != nil {
			b.Fatal(err, r.FirstBad)
		}
	}
}

func timeStep(i int) time.Duration { return time.Duration(i) * time.Second }
