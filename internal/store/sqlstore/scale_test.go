package sqlstore

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/store"
)

// BenchmarkTrailAtScale measures the audit trail when it is large: DEPUTY_BENCH_EVENTS
// events (default one million; the README's figures use ten million) written
// directly in SQL as four-hop chains (a sign-in, then three exchanges, each event
// with its own time-ordered ids), then:
//
//   - bytes/event: the database file's size divided by the events, after a
//     checkpoint;
//
//   - Trace: audit.Trace of the middle token of a random chain (walks up to the
//     sign-in and down to the last hop), what `deputy audit trace` does;
//
//   - Append: a sealed batch of 32 events at the end of the large trail, to see the
//     append rate hold.
//
//     DEPUTY_BENCH_EVENTS=10000000 go test -run - -bench TrailAtScale -benchtime 2000x ./internal/store/sqlstore
func BenchmarkTrailAtScale(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("DEPUTY_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 4 {
			b.Fatalf("DEPUTY_BENCH_EVENTS=%q: want a number of events ≥ 4", v)
		}
	}
	n -= n % 4
	path := tempDSN(b)
	db := openFile(b, path)
	ctx := context.Background()
	start := time.Now()
	// Chain c holds events 4c+1 … 4c+4: the sign-in (session s<c>), then tokens whose
	// parent is the previous hop. Ids are zero-padded so that they sort like the
	// time-ordered ids deputy makes.
	_, err := db.w.ExecContext(ctx, `
		WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i WHERE n < ?)
		INSERT INTO audit_events (seq, id, time, type, client_id, subject, actors, audiences,
			scopes, parent_jti, token_jti, token_expires, decision, reason, rule, request_id,
			remote_addr, detail, prev_hash, hash)
		SELECT n, printf('EV%024d', n), 1700000000000000 + n * 100,
			CASE (n - 1) % 4 WHEN 0 THEN 'signin' ELSE 'token.exchanged' END,
			CASE (n - 1) % 4 WHEN 0 THEN 'web-app' ELSE 'api' || ((n - 1) % 4) END,
			'user' || (n % 100000),
			CASE (n - 1) % 4 WHEN 0 THEN '' WHEN 1 THEN ' api1 ' WHEN 2 THEN ' api2 api1 ' ELSE ' api3 api2 api1 ' END,
			' https://api' || ((n - 1) % 4 + 1) || '.example ', ' ledger:read ',
			CASE (n - 1) % 4 WHEN 0 THEN '' ELSE printf('T%021d', n - 1) END,
			printf('T%021d', n), 1800000000000000, 'allow', '', 'policies[0]',
			printf('%024x', n), '127.0.0.1:40000', '{"grant_type":"urn:ietf:params:oauth:grant-type:token-exchange"}',
			randomblob(32), randomblob(32)
		FROM i`, n)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := db.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d events written in %v; database %d MB, %.0f bytes/event", n, time.Since(start).Round(time.Second),
		st.Size()>>20, float64(st.Size())/float64(n))
	bytesPerEvent := float64(st.Size()) / float64(n)

	b.Run("Trace", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			c := (i * 7919) % (n / 4)
			tree, err := audit.Trace(ctx, db, fmt.Sprintf("T%021d", 4*c+3))
			if err != nil || tree.Root == nil || tree.Root.Type != "signin" {
				b.Fatalf("trace of chain %d: %v %+v", c, err, tree)
			}
		}
		b.ReportMetric(bytesPerEvent, "bytes/event")
	})
	b.Run("Append-32", func(b *testing.B) {
		seq := 0
		events := make([]*store.AuditEvent, 32)
		now := time.Now()
		for b.Loop() {
			for j := range events {
				seq++
				events[j] = &store.AuditEvent{
					ID: fmt.Sprintf("NEW%023d", seq), Time: now, Type: store.EventTokenExchanged,
					ClientID: "api1", Subject: "alice", Actors: []string{"api1"},
					Audiences: []string{"https://api2.example"}, Scopes: []string{"ledger:read"},
					ParentJTI: fmt.Sprintf("N%021d", seq-1), TokenJTI: fmt.Sprintf("N%021d", seq),
					TokenExpires: now.Add(5 * time.Minute), Decision: store.DecisionAllow,
				}
			}
			if err := db.Append(ctx, events, audit.Seal); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "events/s")
	})
}
