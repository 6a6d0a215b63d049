package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// code is an authorization code whose value is "code-"+id, valid for a minute from
// t0.
func code(id string) store.AuthCode {
	return store.AuthCode{
		Hash:          hashOf("code-" + id),
		ID:            id,
		ClientID:      "web-app",
		SessionID:     "sid-1",
		Subject:       "alice",
		RedirectURI:   "http://127.0.0.1:9000/callback",
		Scopes:        []string{"openid", "payments:read"},
		Nonce:         "n-0S6_WzA2Mj",
		CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		IdP:           "local",
		AMR:           []string{"pwd"},
		AuthTime:      t0.Add(-time.Minute),
		ExpiresAt:     t0.Add(time.Minute),
	}
}

func insertCodes(t *testing.T, s store.Store, codes ...store.AuthCode) {
	t.Helper()
	for _, c := range codes {
		if err := s.InsertCode(t.Context(), c); err != nil {
			t.Fatalf("InsertCode(%s): %v", c.ID, err)
		}
	}
}

func redeem(t *testing.T, s store.Store, hash []byte, at time.Time) store.AuthCode {
	t.Helper()
	c, err := s.RedeemCode(t.Context(), hash, at)
	if err != nil {
		t.Fatalf("RedeemCode(%x, %s): %v", hash, fmtTime(at), err)
	}
	return c
}

// redeemConflict redeems a code redeemed before and returns what RedeemCode gives
// back with its ErrConflict.
func redeemConflict(t *testing.T, s store.Store, hash []byte, at time.Time) store.AuthCode {
	t.Helper()
	c, err := s.RedeemCode(t.Context(), hash, at)
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("RedeemCode(%x, %s) of a redeemed code: %v, want ErrConflict", hash, fmtTime(at), err)
	}
	return c
}

// sameCode fails t unless got is want as the store gives it back.
func sameCode(t *testing.T, what string, got, want store.AuthCode) {
	t.Helper()
	want.Scopes, want.AMR = nilIfEmpty(want.Scopes), nilIfEmpty(want.AMR)
	want.AuthTime, want.ExpiresAt, want.RedeemedAt = utc(want.AuthTime), utc(want.ExpiresAt), utc(want.RedeemedAt)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, fmtCode(got), fmtCode(want))
	}
}

func fmtCode(c store.AuthCode) string {
	return fmt.Sprintf("{Hash:%x ID:%q ClientID:%q SessionID:%q Subject:%q RedirectURI:%q Scopes:%#v "+
		"Nonce:%q CodeChallenge:%q IdP:%q AMR:%#v ACR:%q AuthTime:%s ExpiresAt:%s RedeemedAt:%s DPoPJKT:%q}",
		c.Hash, c.ID, c.ClientID, c.SessionID, c.Subject, c.RedirectURI, c.Scopes, c.Nonce,
		c.CodeChallenge, c.IdP, c.AMR, c.ACR, fmtTime(c.AuthTime), fmtTime(c.ExpiresAt), fmtTime(c.RedeemedAt), c.DPoPJKT)
}

// raceOnce calls use n times at once, call i with the time t0 + i+1 µs, and checks
// that exactly one call succeeds, that every other returns ErrConflict, and that all
// n return the winner's time as usedAt of what they return. It returns what the
// winner got.
func raceOnce[T any](t *testing.T, n int, use func(at time.Time) (T, error), usedAt func(T) time.Time) T {
	t.Helper()
	type result struct {
		at  time.Time
		got T
		err error
	}
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		at := t0.Add(time.Duration(i+1) * time.Microsecond)
		wg.Go(func() {
			<-start
			got, err := use(at)
			results[i] = result{at, got, err}
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	conflicts := 0
	for i, r := range results {
		switch {
		case r.err == nil:
			if winner >= 0 {
				t.Fatalf("calls %d and %d both succeeded", winner, i)
			}
			winner = i
		case errors.Is(r.err, store.ErrConflict):
			conflicts++
		default:
			t.Fatalf("call %d: %v, want success or ErrConflict", i, r.err)
		}
	}
	if winner < 0 || conflicts != n-1 {
		t.Fatalf("%d calls: %d succeeded, %d ErrConflict; want 1 and %d", n, n-conflicts, conflicts, n-1)
	}
	want := results[winner].at
	for i, r := range results {
		if got := usedAt(r.got); !sameTime(got, want) {
			t.Errorf("call %d returned the time of use %s, want the winner's %s", i, fmtTime(got), fmtTime(want))
		}
	}
	return results[winner].got
}

var codeTests = []test{
	{"ok/release-then-redeem-again", func(t *testing.T, s store.Store) {
		// A redemption whose tokens could not be recorded gives the code back.
		c := code("c1")
		insertCodes(t, s, c)
		first := t0.Add(time.Minute)
		redeem(t, s, c.Hash, first)
		if err := s.ReleaseCode(t.Context(), c.Hash, first); err != nil {
			t.Fatalf("ReleaseCode: %v", err)
		}
		c.RedeemedAt = first.Add(time.Second)
		sameCode(t, "redeemed again", redeem(t, s, c.Hash, c.RedeemedAt), c)
	}},
	{"fail/release-of-another-redemption", func(t *testing.T, s store.Store) {
		c := code("c1")
		insertCodes(t, s, c)
		if err := s.ReleaseCode(t.Context(), c.Hash, t0); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("release of an unredeemed code: %v, want ErrConflict", err)
		}
		first := t0.Add(time.Minute)
		redeem(t, s, c.Hash, first)
		if err := s.ReleaseCode(t.Context(), c.Hash, first.Add(time.Microsecond)); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("release at another time: %v, want ErrConflict", err)
		}
		redeemConflict(t, s, c.Hash, first.Add(time.Minute))
		if err := s.ReleaseCode(t.Context(), hashOf("absent"), first); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("release of an absent code: %v, want ErrNotFound", err)
		}
	}},
	{"ok/round-trip-every-field", func(t *testing.T, s store.Store) {
		ny := time.FixedZone("EST", -5*3600)
		c := code("c1")
		c.SessionID, c.Subject = "sid 1", "alice@corp"
		c.RedirectURI = "https://app.example/cb?x=1&y=a%20b#no"
		c.Scopes = []string{"openid", "a b", "100%", "%20", ""}
		c.AMR = []string{"pwd", "otp"}
		c.ACR = "urn:acr:2"
		c.DPoPJKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
		c.AuthTime = t0.Add(-time.Minute + 3*time.Microsecond).In(ny)
		c.ExpiresAt = t0.Add(time.Minute + 5*time.Microsecond).In(ny)
		insertCodes(t, s, c)
		at := t0.Add(7 * time.Microsecond).In(ny)
		got := redeem(t, s, c.Hash, at)
		c.RedeemedAt = at
		sameCode(t, "RedeemCode", got, c)
	}},
	{"ok/empty-lists-and-zero-times", func(t *testing.T, s store.Store) {
		// Every optional field empty: lists read back nil, the zero AuthTime zero.
		a := store.AuthCode{Hash: hashOf("a"), ID: "a", ClientID: "c", Subject: "s", ExpiresAt: t0, Scopes: []string{}}
		b := store.AuthCode{Hash: hashOf("b"), ID: "b", ClientID: "c", Subject: "s", ExpiresAt: t0, AMR: []string{"x"}}
		insertCodes(t, s, a, b)
		a.RedeemedAt, b.RedeemedAt = t0, t0
		sameCode(t, "bare code", redeem(t, s, a.Hash, t0), a)
		sameCode(t, "code with AMR only", redeem(t, s, b.Hash, t0), b)
	}},
	{"ok/by-hash-does-not-redeem", func(t *testing.T, s store.Store) {
		c := code("c1")
		insertCodes(t, s, c)
		got, err := s.CodeByHash(t.Context(), c.Hash)
		if err != nil {
			t.Fatal(err)
		}
		sameCode(t, "CodeByHash", got, c)
		c.RedeemedAt = t0.Add(time.Second)
		sameCode(t, "RedeemCode after CodeByHash", redeem(t, s, c.Hash, c.RedeemedAt), c)
		if got, err = s.CodeByHash(t.Context(), c.Hash); err != nil {
			t.Fatal(err)
		}
		sameCode(t, "CodeByHash of a redeemed code", got, c)
		for _, h := range [][]byte{hashOf("code-none"), hashOf("c1"), c.Hash[:31], nil} {
			if _, err := s.CodeByHash(t.Context(), h); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("CodeByHash(%x): %v, want ErrNotFound", h, err)
			}
		}
	}},
	{"fail/redeem-twice", func(t *testing.T, s store.Store) {
		c := code("c1")
		insertCodes(t, s, c)
		first := t0.Add(time.Second)
		redeem(t, s, c.Hash, first)
		c.RedeemedAt = first
		// A replay returns the code with its first RedeemedAt, so that the caller
		// can revoke what was issued for it; so does every later one.
		sameCode(t, "second RedeemCode", redeemConflict(t, s, c.Hash, first.Add(time.Second)), c)
		sameCode(t, "third RedeemCode", redeemConflict(t, s, c.Hash, first.Add(-time.Second)), c)
		sameCode(t, "same-time RedeemCode", redeemConflict(t, s, c.Hash, first), c)
	}},
	{"fail/inserted-redeemed", func(t *testing.T, s store.Store) {
		c := code("c1")
		c.RedeemedAt = t0.Add(3 * time.Microsecond)
		insertCodes(t, s, c)
		sameCode(t, "RedeemCode of a code stored redeemed", redeemConflict(t, s, c.Hash, t0.Add(time.Hour)), c)
	}},
	{"fail/redeem-not-found", func(t *testing.T, s store.Store) {
		if _, err := s.RedeemCode(t.Context(), hashOf("code-c1"), t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RedeemCode on an empty store: %v, want ErrNotFound", err)
		}
		c := code("c1")
		insertCodes(t, s, c)
		for _, h := range [][]byte{hashOf("code-c2"), hashOf("c1"), c.Hash[:31], nil, {}} {
			if _, err := s.RedeemCode(t.Context(), h, t0); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("RedeemCode(%x) = %v, want ErrNotFound", h, err)
			}
		}
		// None of this touched the code.
		c.RedeemedAt = t0.Add(time.Second)
		sameCode(t, "RedeemCode after misses", redeem(t, s, c.Hash, c.RedeemedAt), c)
	}},
	{"fail/duplicate-hash", func(t *testing.T, s store.Store) {
		c := code("c1")
		insertCodes(t, s, c)
		dup := code("c2")
		dup.Hash, dup.Subject = c.Hash, "mallory"
		if err := s.InsertCode(t.Context(), dup); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("InsertCode of an existing hash: %v, want ErrConflict", err)
		}
		c.RedeemedAt = t0
		sameCode(t, "the first code", redeem(t, s, c.Hash, t0), c)
	}},
	{"fail/duplicate-id", func(t *testing.T, s store.Store) {
		c := code("c1")
		insertCodes(t, s, c)
		dup := code("c1")
		dup.Hash = hashOf("another code")
		if err := s.InsertCode(t.Context(), dup); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("InsertCode of an existing ID: %v, want ErrConflict", err)
		}
		if _, err := s.RedeemCode(t.Context(), dup.Hash, t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RedeemCode of the refused code: %v, want ErrNotFound", err)
		}
		c.RedeemedAt = t0
		sameCode(t, "the first code", redeem(t, s, c.Hash, t0), c)
	}},
	{"ok/expiry-not-checked", func(t *testing.T, s store.Store) {
		// Expiry is the caller's to check: an expired code is redeemed like any.
		c := code("c1")
		insertCodes(t, s, c)
		at := c.ExpiresAt.Add(time.Hour)
		c.RedeemedAt = at
		sameCode(t, "expired code", redeem(t, s, c.Hash, at), c)
		sameCode(t, "expired code again", redeemConflict(t, s, c.Hash, at.Add(time.Hour)), c)
	}},
	{"ok/codes-independent", func(t *testing.T, s store.Store) {
		a, b := code("a"), code("b")
		insertCodes(t, s, a, b)
		redeem(t, s, a.Hash, t0)
		b.RedeemedAt = t0.Add(time.Second)
		sameCode(t, "the other code", redeem(t, s, b.Hash, b.RedeemedAt), b)
	}},
	{"fail/concurrent-redeem", func(t *testing.T, s store.Store) {
		c := code("c1")
		insertCodes(t, s, c)
		got := raceOnce(t, 20,
			func(at time.Time) (store.AuthCode, error) { return s.RedeemCode(t.Context(), c.Hash, at) },
			func(c store.AuthCode) time.Time { return c.RedeemedAt })
		c.RedeemedAt = got.RedeemedAt
		sameCode(t, "the winner's code", got, c)
		sameCode(t, "RedeemCode afterwards", redeemConflict(t, s, c.Hash, t0.Add(time.Hour)), c)
	}},
	{"fail/concurrent-redeem-many-codes", func(t *testing.T, s store.Store) {
		// Codes redeemed at the same time as others: each still exactly once.
		const codes, tries = 10, 4
		var all []store.AuthCode
		for i := range codes {
			all = append(all, code(fmt.Sprintf("c%d", i)))
		}
		insertCodes(t, s, all...)
		var (
			wg  sync.WaitGroup
			mu  sync.Mutex
			won = make(map[string]int)
		)
		for try := range tries {
			for _, c := range all {
				wg.Go(func() {
					_, err := s.RedeemCode(t.Context(), c.Hash, t0.Add(time.Duration(try)*time.Second))
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						won[c.ID]++
					case !errors.Is(err, store.ErrConflict):
						t.Errorf("RedeemCode(%s): %v", c.ID, err)
					}
				})
			}
		}
		wg.Wait()
		for _, c := range all {
			if won[c.ID] != 1 {
				t.Errorf("code %s redeemed %d times, want 1", c.ID, won[c.ID])
			}
		}
	}},
}
