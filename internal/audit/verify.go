package audit

import (
	"bytes"
	"context"
	"slices"

	"github.com/deputy-auth/deputy/internal/store"
)

// Reasons a record fails verification (Bad.Reason).
const (
	// BadHash: the record's content does not match its hash — it was altered.
	BadHash = "hash mismatch: record altered"
	// BadPrevHash: the record does not chain to the one stored before it — a record
	// was removed (and the sequence renumbered), reordered, or rewritten with its hash.
	BadPrevHash = "prev-hash mismatch: record removed or reordered"
	// BadSeqGap: the sequence number is not the previous one plus one — a record
	// before this one was deleted (or records were reordered).
	BadSeqGap = "seq gap: record deleted"
	// BadTruncatedHead: the first stored record chains to a predecessor — the head
	// of the chain was removed.
	BadTruncatedHead = "first record has a previous hash: head truncated"
)

// Report is the outcome of Verify.
type Report struct {
	Count    int64 // records scanned: the whole log
	FirstBad *Bad  // nil when the chain is intact
	// LastSeq and LastHash are the Seq and Hash of the last record scanned (the
	// head of the chain), as stored; zero and nil for an empty log.
	LastSeq  int64
	LastHash []byte
}

// Bad locates the first record at which the chain breaks.
type Bad struct {
	Seq      int64  // as stored in the record (itself possibly tampered with)
	ID       string // event id as stored
	Reason   string // one of the Bad… constants
	Position int64  // 1-based place in chain order: Position-1 records before it verified
}

// Verify scans the whole audit log in chain order and checks, for each record, that
// its Seq follows the previous one (the first is 1), that its PrevHash is the previous
// record's Hash (nil for the first), and that its Hash is Digest of its content. It
// reports the total count and the first record that fails, in that order of checks.
// Memory is constant in the length of the chain. The error is only for a failed scan
// (the store could not be read); a broken chain is a Report with FirstBad set.
func Verify(ctx context.Context, log store.AuditLog) (Report, error) {
	var (
		r       Report
		prevSeq int64
		prev    = make([]byte, 0, 64) // hash of the previous record, copied
	)
	err := log.Scan(ctx, 0, func(e store.AuditEvent) error {
		r.Count++
		if r.FirstBad == nil {
			if reason := check(&e, r.Count == 1, prevSeq, prev); reason != "" {
				r.FirstBad = &Bad{Seq: e.Seq, ID: e.ID, Reason: reason, Position: r.Count}
			}
		}
		prevSeq = e.Seq
		prev = append(prev[:0], e.Hash...)
		return nil
	})
	if err != nil {
		return Report{}, err
	}
	if r.Count > 0 {
		r.LastSeq, r.LastHash = prevSeq, slices.Clone(prev)
	}
	return r, nil
}

func check(e *store.AuditEvent, first bool, prevSeq int64, prevHash []byte) string {
	switch {
	case first && len(e.PrevHash) != 0:
		return BadTruncatedHead
	case e.Seq != prevSeq+1:
		return BadSeqGap
	case !first && !bytes.Equal(e.PrevHash, prevHash):
		return BadPrevHash
	}
	if sum := digest(e); !bytes.Equal(sum[:], e.Hash) {
		return BadHash
	}
	return ""
}
