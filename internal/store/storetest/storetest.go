// Package storetest is the conformance suite of store.Store: every backend runs Run
// and passes all of it. It holds each contract sentence of package store as a test,
// and the few behaviours the contract leaves open that deputy relies on (noted where
// they are tested).
//
// It imports store and the standard library only, and no backend.
package storetest

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// Run runs the suite. open must return a fresh, empty, migrated store for the test
// it is given, and arrange (t.Cleanup) for it to be closed.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Store", func(t *testing.T) { runTests(t, open, storeTests) })
	t.Run("Keys", func(t *testing.T) { runTests(t, open, keyTests) })
	t.Run("Nonces", func(t *testing.T) { runTests(t, open, nonceTests) })
	t.Run("AuditLog", func(t *testing.T) {
		runTests(t, open, appendTests)
		runTests(t, open, readTests)
		runTests(t, open, queryTests)
	})
	t.Run("AuditNonces", func(t *testing.T) { runTests(t, open, auditNonceTests) })
	t.Run("Revocations", func(t *testing.T) { runTests(t, open, revocationTests) })
	t.Run("Users", func(t *testing.T) { runTests(t, open, userTests) })
	t.Run("Sessions", func(t *testing.T) { runTests(t, open, sessionTests) })
	t.Run("Codes", func(t *testing.T) { runTests(t, open, codeTests) })
	t.Run("RefreshTokens", func(t *testing.T) { runTests(t, open, refreshTokenTests) })
	t.Run("Expiring", func(t *testing.T) { runTests(t, open, expiringTests) })
}

// test is one case of the suite, run on its own fresh store.
type test struct {
	name string // "ok/…" or "fail/…"
	run  func(t *testing.T, s store.Store)
}

func runTests(t *testing.T, open func(t *testing.T) store.Store, tests []test) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open(t)) })
	}
}

var storeTests = []test{
	{"ok/text-from-outside-with-nul-or-bad-utf8", func(t *testing.T, s store.Store) {
		// Lookups by values anyone can send find nothing, or work, rather than fail.
		ctx := t.Context()
		for _, v := range []string{"a\x00b", "\xff\xfe"} {
			if _, err := s.UserByName(ctx, v); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("UserByName(%q) = %v, want ErrNotFound", v, err)
			}
			if _, err := s.EventByID(ctx, v); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("EventByID(%q) = %v, want ErrNotFound", v, err)
			}
			if evs, err := s.EventsByToken(ctx, v); err != nil || len(evs) != 0 {
				t.Errorf("EventsByToken(%q) = %v, %v", v, evs, err)
			}
			if evs, err := s.Query(ctx, store.AuditFilter{Subject: v, Actor: v}); err != nil || len(evs) != 0 {
				t.Errorf("Query(%q) = %v, %v", v, evs, err)
			}
			exp := time.Now().Add(time.Hour)
			if err := s.UseNonce(ctx, v, exp); err != nil {
				t.Errorf("UseNonce(%q) = %v", v, err)
			}
			if err := s.UseNonce(ctx, v, exp); !errors.Is(err, store.ErrConflict) {
				t.Errorf("UseNonce(%q) again = %v, want ErrConflict", v, err)
			}
			if err := s.InsertUser(ctx, store.User{Username: v, PasswordHash: "x", CreatedAt: t0}, nil, nil); err == nil {
				t.Errorf("InsertUser(%q) succeeded", v)
			}
		}
	}},
	{"ok/migrate-again", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate on a migrated store: %v", err)
		}
		appendEvents(t, s, event("e1"))
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate on a store with data: %v", err)
		}
		if got := scanAll(t, s, 0); len(got) != 1 {
			t.Fatalf("after Migrate: %d events, want 1", len(got))
		}
	}},
	{"ok/ping", func(t *testing.T, s store.Store) {
		if err := s.Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}},
}

// t0 is the suite's reference time: UTC, microsecond precision.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)

// Seal is the suite's SealFunc: PrevHash = prevHash (nil when empty), Hash =
// SHA-256(prevHash || Seq as 8 bytes big-endian || ID).
func Seal(prevHash []byte, e *store.AuditEvent) {
	e.PrevHash = nil
	if len(prevHash) > 0 {
		e.PrevHash = append([]byte(nil), prevHash...)
	}
	e.Hash = digest(e)
}

func digest(e *store.AuditEvent) []byte {
	h := sha256.New()
	h.Write(e.PrevHash)
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(e.Seq)))
	h.Write([]byte(e.ID))
	return h.Sum(nil)
}

// event is a minimal valid event with the given id.
func event(id string) *store.AuditEvent {
	return &store.AuditEvent{
		ID:       id,
		Time:     t0,
		Type:     store.EventTokenIssued,
		Decision: store.DecisionAllow,
	}
}

// exchanged is an allowed exchange event: parent → token, expiring at exp.
func exchanged(id, parent, token string, exp time.Time) *store.AuditEvent {
	e := event(id)
	e.Type = store.EventTokenExchanged
	e.ParentJTI, e.TokenJTI, e.TokenExpires = parent, token, exp
	return e
}

func appendEvents(t *testing.T, s store.Store, events ...*store.AuditEvent) {
	t.Helper()
	if err := s.Append(t.Context(), events, Seal); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

func scanAll(t *testing.T, s store.Store, after int64) []store.AuditEvent {
	t.Helper()
	var got []store.AuditEvent
	err := s.Scan(t.Context(), after, func(e store.AuditEvent) error {
		got = append(got, e)
		return nil
	})
	if err != nil {
		t.Fatalf("Scan(%d): %v", after, err)
	}
	return got
}

// checkChain fails t unless events are the whole chain: Seq 1…n without gaps, the
// first PrevHash nil, every other the Hash before it, every Hash what Seal gives.
func checkChain(t *testing.T, events []store.AuditEvent) {
	t.Helper()
	var prev []byte
	for i, e := range events {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d (%s): Seq = %d, want %d", i, e.ID, e.Seq, i+1)
		}
		if !reflect.DeepEqual(e.PrevHash, prev) {
			t.Fatalf("event Seq %d: PrevHash = %x, want %x", e.Seq, e.PrevHash, prev)
		}
		if want := digest(&e); !reflect.DeepEqual(e.Hash, want) {
			t.Fatalf("event Seq %d: Hash = %x, want %x", e.Seq, e.Hash, want)
		}
		prev = e.Hash
	}
}

func ids(events []store.AuditEvent) []string {
	out := make([]string, 0, len(events))
	for _, e := range events {
		out = append(out, e.ID)
	}
	return out
}

// sameEvent fails t unless got equals want field by field, times exactly and in UTC.
func sameEvent(t *testing.T, what string, got, want store.AuditEvent) {
	t.Helper()
	for _, tm := range []time.Time{got.Time, got.TokenExpires} {
		if !tm.IsZero() && tm.Location() != time.UTC {
			t.Errorf("%s: time %v is not in UTC", what, tm)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, fmtEvent(got), fmtEvent(want))
	}
}

func fmtEvent(e store.AuditEvent) string {
	return fmt.Sprintf("{Seq:%d ID:%q Time:%s Type:%q ClientID:%q Subject:%q SubjectIssuer:%q "+
		"Actors:%#v Audiences:%#v Scopes:%#v ParentJTI:%q TokenJTI:%q TokenExpires:%s "+
		"Decision:%q Reason:%q Rule:%q RequestID:%q RemoteAddr:%q TraceID:%q Detail:%q PrevHash:%x(nil=%t) Hash:%x}",
		e.Seq, e.ID, fmtTime(e.Time), e.Type, e.ClientID, e.Subject, e.SubjectIssuer,
		e.Actors, e.Audiences, e.Scopes, e.ParentJTI, e.TokenJTI, fmtTime(e.TokenExpires),
		e.Decision, e.Reason, e.Rule, e.RequestID, e.RemoteAddr, e.TraceID, e.Detail,
		e.PrevHash, e.PrevHash == nil, e.Hash)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "zero"
	}
	return t.Format(time.RFC3339Nano) + "(" + t.Location().String() + ")"
}

// sameTime reports whether got is want, in UTC (the zero time stays zero).
func sameTime(got, want time.Time) bool {
	if want.IsZero() {
		return got.IsZero()
	}
	return got.Equal(want) && got.Location() == time.UTC
}
