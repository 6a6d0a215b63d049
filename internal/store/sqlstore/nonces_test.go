package sqlstore

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkUseNonce is one DPoP proof's jti recorded (RFC 9449 §11.1) on a SQLite
// file, durable (synchronous=FULL): serial, each call its own commit and fsync;
// parallel, 16 callers per core sharing commits (nonceBatcher).
//
//	go test -run - -bench UseNonce ./internal/store/sqlstore
func BenchmarkUseNonce(b *testing.B) {
	db := openFile(b, tempDSN(b))
	exp := time.Now().Add(time.Hour)
	var n atomic.Int64
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if err := db.UseNonce(b.Context(), "dpop:jkt:"+strconv.FormatInt(n.Add(1), 10), exp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := db.UseNonce(b.Context(), "dpop:jkt:"+strconv.FormatInt(n.Add(1), 10), exp); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
