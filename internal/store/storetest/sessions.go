package storetest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// hashOf is the SHA-256 of secret, as deputy stores cookies, codes and tokens.
func hashOf(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// session is an active local session whose cookie value is "cookie-"+id.
func session(id string) store.Session {
	return store.Session{
		ID:        id,
		TokenHash: hashOf("cookie-" + id),
		Subject:   "alice",
		IdP:       "local",
		AMR:       []string{"pwd"},
		AuthTime:  t0,
		ExpiresAt: t0.Add(8 * time.Hour),
	}
}

func insertSessions(t *testing.T, s store.Store, sessions ...store.Session) {
	t.Helper()
	for _, se := range sessions {
		if err := s.InsertSession(t.Context(), se); err != nil {
			t.Fatalf("InsertSession(%s): %v", se.ID, err)
		}
	}
}

func sessionByHash(t *testing.T, s store.Store, h []byte) store.Session {
	t.Helper()
	se, err := s.SessionByTokenHash(t.Context(), h)
	if err != nil {
		t.Fatalf("SessionByTokenHash(%x): %v", h, err)
	}
	return se
}

func endSession(t *testing.T, s store.Store, id string, at time.Time) {
	t.Helper()
	if err := s.EndSession(t.Context(), id, at); err != nil {
		t.Fatalf("EndSession(%s, %s): %v", id, fmtTime(at), err)
	}
}

// sameSession fails t unless got is want as the store gives it back.
func sameSession(t *testing.T, what string, got, want store.Session) {
	t.Helper()
	want.AMR = nilIfEmpty(want.AMR)
	want.AuthTime, want.ExpiresAt, want.EndedAt = utc(want.AuthTime), utc(want.ExpiresAt), utc(want.EndedAt)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, fmtSession(got), fmtSession(want))
	}
}

func fmtSession(s store.Session) string {
	return fmt.Sprintf("{ID:%q TokenHash:%x Subject:%q IdP:%q AMR:%#v ACR:%q AuthTime:%s ExpiresAt:%s EndedAt:%s}",
		s.ID, s.TokenHash, s.Subject, s.IdP, s.AMR, s.ACR, fmtTime(s.AuthTime), fmtTime(s.ExpiresAt), fmtTime(s.EndedAt))
}

var sessionTests = []test{
	{"ok/round-trip-every-field", func(t *testing.T, s store.Store) {
		ny := time.FixedZone("EST", -5*3600)
		full := store.Session{
			ID:        "sid-1",
			TokenHash: hashOf("cookie"),
			Subject:   "alice@corp",
			IdP:       "corp-saml",
			AMR:       []string{"pwd", "otp", "hw k", "100%", ""},
			ACR:       "urn:mace:incommon:iap:silver",
			AuthTime:  t0.Add(-time.Minute).In(ny),
			ExpiresAt: t0.Add(8*time.Hour + time.Microsecond).In(ny),
		}
		ended := session("sid-2") // inserted ended: EndedAt round-trips too
		ended.EndedAt = t0.Add(time.Hour + 7*time.Microsecond).In(ny)
		bare := store.Session{ID: "sid-3", TokenHash: hashOf("bare"), Subject: "bob", AMR: []string{}, AuthTime: t0, ExpiresAt: t0}
		insertSessions(t, s, full, ended, bare)
		for _, want := range []store.Session{full, ended, bare} {
			sameSession(t, "SessionByTokenHash "+want.ID, sessionByHash(t, s, want.TokenHash), want)
		}
	}},
	{"fail/token-hash-not-found", func(t *testing.T, s store.Store) {
		a := session("a")
		insertSessions(t, s, a)
		for _, h := range [][]byte{hashOf("cookie-b"), a.TokenHash[:16], nil, {}, hashOf("a")} {
			if _, err := s.SessionByTokenHash(t.Context(), h); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("SessionByTokenHash(%x) = %v, want ErrNotFound", h, err)
			}
		}
	}},
	{"fail/duplicate-id", func(t *testing.T, s store.Store) {
		a := session("a")
		insertSessions(t, s, a)
		dup := session("a")
		dup.TokenHash, dup.Subject = hashOf("another cookie"), "mallory"
		if err := s.InsertSession(t.Context(), dup); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("InsertSession of an existing ID: %v, want ErrConflict", err)
		}
		if _, err := s.SessionByTokenHash(t.Context(), dup.TokenHash); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the refused session is found by its token hash: %v", err)
		}
		sameSession(t, "the first session", sessionByHash(t, s, a.TokenHash), a)
	}},
	{"fail/duplicate-token-hash", func(t *testing.T, s store.Store) {
		a := session("a")
		insertSessions(t, s, a)
		dup := session("b")
		dup.TokenHash, dup.Subject = a.TokenHash, "mallory"
		if err := s.InsertSession(t.Context(), dup); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("InsertSession of an existing TokenHash: %v, want ErrConflict", err)
		}
		sameSession(t, "the first session", sessionByHash(t, s, a.TokenHash), a)
		if err := s.EndSession(t.Context(), "b", t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("EndSession of the refused session: %v, want ErrNotFound", err)
		}
	}},
	{"ok/ended-and-expired-are-returned", func(t *testing.T, s store.Store) {
		// The caller decides what an ended or expired session means.
		expired := session("expired")
		expired.ExpiresAt = t0.Add(-time.Hour)
		endedExpired := session("ended-expired")
		endedExpired.ExpiresAt = t0.Add(-time.Hour)
		insertSessions(t, s, expired, endedExpired, session("ended"))
		endSession(t, s, "ended", t0.Add(time.Minute))
		endSession(t, s, "ended-expired", t0)
		sameSession(t, "expired", sessionByHash(t, s, expired.TokenHash), expired)
		want := session("ended")
		want.EndedAt = t0.Add(time.Minute)
		sameSession(t, "ended", sessionByHash(t, s, want.TokenHash), want)
		endedExpired.EndedAt = t0
		sameSession(t, "ended and expired", sessionByHash(t, s, endedExpired.TokenHash), endedExpired)
	}},
	{"ok/end", func(t *testing.T, s store.Store) {
		a, b := session("a"), session("b")
		insertSessions(t, s, a, b)
		at := t0.Add(time.Hour + 3*time.Microsecond).In(time.FixedZone("X", 3600))
		endSession(t, s, "a", at)
		a.EndedAt = at
		sameSession(t, "ended session", sessionByHash(t, s, a.TokenHash), a)
		sameSession(t, "other session", sessionByHash(t, s, b.TokenHash), b)
	}},
	{"ok/end-twice-keeps-first", func(t *testing.T, s store.Store) {
		a := session("a")
		insertSessions(t, s, a)
		first := t0.Add(time.Hour)
		endSession(t, s, "a", first)
		endSession(t, s, "a", first.Add(time.Hour))    // later: not an error…
		endSession(t, s, "a", first.Add(-time.Minute)) // …nor earlier
		a.EndedAt = first
		sameSession(t, "after three ends", sessionByHash(t, s, a.TokenHash), a)
	}},
	{"ok/end-inserted-ended", func(t *testing.T, s store.Store) {
		a := session("a")
		a.EndedAt = t0.Add(time.Minute)
		insertSessions(t, s, a)
		endSession(t, s, "a", t0.Add(time.Hour))
		sameSession(t, "session inserted ended", sessionByHash(t, s, a.TokenHash), a)
	}},
	{"fail/end-not-found", func(t *testing.T, s store.Store) {
		if err := s.EndSession(t.Context(), "a", t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("EndSession on an empty store: %v, want ErrNotFound", err)
		}
		a := session("a")
		insertSessions(t, s, a)
		for _, id := range []string{"b", "", "A"} {
			if err := s.EndSession(t.Context(), id, t0); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("EndSession(%q) = %v, want ErrNotFound", id, err)
			}
		}
		sameSession(t, "untouched session", sessionByHash(t, s, a.TokenHash), a)
	}},
	{"ok/concurrent-end-keeps-one", func(t *testing.T, s store.Store) {
		const n = 20
		a := session("a")
		insertSessions(t, s, a)
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { errs[i] = s.EndSession(t.Context(), "a", t0.Add(time.Duration(i+1)*time.Microsecond)) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("EndSession %d: %v", i, err)
			}
		}
		got := sessionByHash(t, s, a.TokenHash)
		if d := got.EndedAt.Sub(t0); d < time.Microsecond || d > n*time.Microsecond || d%time.Microsecond != 0 {
			t.Fatalf("EndedAt = %s, want one of the times given", fmtTime(got.EndedAt))
		}
		endSession(t, s, "a", t0.Add(time.Hour))
		if again := sessionByHash(t, s, a.TokenHash); !again.EndedAt.Equal(got.EndedAt) {
			t.Fatalf("EndedAt changed from %s to %s", fmtTime(got.EndedAt), fmtTime(again.EndedAt))
		}
	}},
}
