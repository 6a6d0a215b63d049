package store

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// SortableID returns 128 bits for an identifier that is stored and indexed (a jti,
// an event id): the first 48 are t in unix milliseconds, big-endian, the other 80
// random. Identifiers made close in time are then close in an index, so a commit
// of many new rows touches a few index pages at the end instead of one random page
// per row — the difference between a few and dozens of pages written per audit
// commit. 80 random bits keep them unique and unguessable within a millisecond.
func SortableID(t time.Time) [16]byte {
	var b [16]byte
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(t.UnixMilli()))
	copy(b[:6], ms[2:])
	_, _ = rand.Read(b[6:])
	return b
}
