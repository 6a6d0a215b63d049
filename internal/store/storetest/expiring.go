package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// expiringKind is one of the aggregates PurgeExpired purges, seen through its own
// methods.
type expiringKind struct {
	name string
	// insert stores a row named id that expires at exp.
	insert func(t *testing.T, s store.Store, id string, exp time.Time)
	// present reports whether the row named id is stored. It may use the row up
	// (redeem, rotate): call it last.
	present func(t *testing.T, s store.Store, id string) bool
}

var expiringKinds = []expiringKind{
	{
		name: "code",
		insert: func(t *testing.T, s store.Store, id string, exp time.Time) {
			c := code(id)
			c.ExpiresAt = exp
			insertCodes(t, s, c)
		},
		present: func(t *testing.T, s store.Store, id string) bool {
			_, err := s.RedeemCode(t.Context(), code(id).Hash, t0)
			return presence(t, "RedeemCode("+id+")", err)
		},
	},
	{
		name: "refresh-token",
		insert: func(t *testing.T, s store.Store, id string, exp time.Time) {
			rt := refreshToken(id)
			rt.ExpiresAt = exp
			insertRefreshTokens(t, s, rt)
		},
		present: func(t *testing.T, s store.Store, id string) bool {
			_, err := s.UseRefreshToken(t.Context(), refreshToken(id).Hash, t0)
			return presence(t, "UseRefreshToken("+id+")", err)
		},
	},
	{
		name: "session",
		insert: func(t *testing.T, s store.Store, id string, exp time.Time) {
			se := session(id)
			se.ExpiresAt = exp
			insertSessions(t, s, se)
		},
		present: func(t *testing.T, s store.Store, id string) bool {
			_, err := s.SessionByTokenHash(t.Context(), session(id).TokenHash)
			return presence(t, "SessionByTokenHash("+id+")", err)
		},
	},
}

// presence is true for nil and ErrConflict (the row is there, used), false for
// ErrNotFound; any other error fails t.
func presence(t *testing.T, what string, err error) bool {
	t.Helper()
	switch {
	case err == nil, errors.Is(err, store.ErrConflict):
		return true
	case errors.Is(err, store.ErrNotFound):
		return false
	}
	t.Fatalf("%s: %v", what, err)
	return false
}

func purge(t *testing.T, s store.Store, at time.Time) {
	t.Helper()
	if err := s.PurgeExpired(t.Context(), at); err != nil {
		t.Fatalf("PurgeExpired(%s): %v", fmtTime(at), err)
	}
}

// remaining returns which of ids are still stored, using them up.
func remaining(t *testing.T, s store.Store, k expiringKind, ids ...string) []string {
	t.Helper()
	var out []string
	for _, id := range ids {
		if k.present(t, s, id) {
			out = append(out, id)
		}
	}
	return out
}

// expiringTests check each kind of row PurgeExpired deletes, all in one store.
var expiringTests = []test{
	{"ok/purge-boundaries", func(t *testing.T, s store.Store) {
		at := t0.Add(time.Hour)
		for _, k := range expiringKinds {
			k.insert(t, s, k.name+"-expired-long-ago", t0.AddDate(-1, 0, 0))
			k.insert(t, s, k.name+"-expired-just-before", at.Add(-time.Microsecond))
			k.insert(t, s, k.name+"-expires-at-t", at) // not expired *before* t
			k.insert(t, s, k.name+"-live", at.Add(time.Microsecond))
		}
		purge(t, s, at.In(time.FixedZone("X", -7200)))
		for _, k := range expiringKinds {
			got := remaining(t, s, k, k.name+"-expired-long-ago", k.name+"-expired-just-before",
				k.name+"-expires-at-t", k.name+"-live")
			if want := []string{k.name + "-expires-at-t", k.name + "-live"}; !slices.Equal(got, want) {
				t.Errorf("after PurgeExpired: %v remain, want %v", got, want)
			}
		}
	}},
	{"ok/purge-sub-microsecond", func(t *testing.T, s store.Store) {
		// t half a microsecond after a row's expiry: that row expired before t.
		at := t0.Add(time.Hour)
		for _, k := range expiringKinds {
			k.insert(t, s, k.name+"-at", at)
			k.insert(t, s, k.name+"-after", at.Add(time.Microsecond))
		}
		purge(t, s, at.Add(500*time.Nanosecond))
		for _, k := range expiringKinds {
			if got, want := remaining(t, s, k, k.name+"-at", k.name+"-after"), []string{k.name + "-after"}; !slices.Equal(got, want) {
				t.Errorf("after PurgeExpired(t + 500ns): %v remain, want %v", got, want)
			}
		}
	}},
	{"ok/purge-keeps-used-until-expiry", func(t *testing.T, s store.Store) {
		// A redeemed code, a rotated refresh token and an ended session still matter
		// until they expire: their replay is what reuse detection sees.
		c, rt, se := code("c1"), refreshToken("r1"), session("s1")
		insertCodes(t, s, c)
		insertRefreshTokens(t, s, rt)
		insertSessions(t, s, se)
		redeem(t, s, c.Hash, t0)
		useRefresh(t, s, rt.Hash, t0)
		endSession(t, s, se.ID, t0)
		purge(t, s, t0.Add(time.Second)) // all used, none expired
		c.RedeemedAt, rt.UsedAt, se.EndedAt = t0, t0, t0
		sameCode(t, "redeemed code after purge", redeemConflict(t, s, c.Hash, t0.Add(time.Hour)), c)
		sameRefreshToken(t, "used token after purge", reuseRefresh(t, s, rt.Hash, t0.Add(time.Hour)), rt)
		sameSession(t, "ended session after purge", sessionByHash(t, s, se.TokenHash), se)
	}},
	{"ok/purge-deletes-used-expired", func(t *testing.T, s store.Store) {
		c, rt, se := code("c1"), refreshToken("r1"), session("s1")
		insertCodes(t, s, c)
		insertRefreshTokens(t, s, rt)
		insertSessions(t, s, se)
		redeem(t, s, c.Hash, t0)
		useRefresh(t, s, rt.Hash, t0)
		endSession(t, s, se.ID, t0)
		purge(t, s, t0.AddDate(1, 0, 0))
		for _, k := range expiringKinds {
			if got := remaining(t, s, k, "c1", "r1", "s1"); len(got) != 0 {
				t.Errorf("%s: %v remain after purging everything expired", k.name, got)
			}
		}
	}},
	{"ok/purge-nothing-else", func(t *testing.T, s store.Store) {
		// Users, keys, revocations, nonces and the audit trail are not PurgeExpired's,
		// however old they are.
		long := t0.AddDate(-10, 0, 0)
		u := user("alice")
		u.CreatedAt, u.Disabled = long, true
		insertUsers(t, s, u)
		insertKeys(t, s, key("k", long))
		revoke(t, s, store.Revocation{JTI: "j", ExpiresAt: long, RevokedAt: long})
		live := time.Now().Add(time.Hour) // nonces expire by the wall clock
		useNonce(t, s, "n", live)
		old := event("e1")
		old.Time, old.TokenJTI, old.TokenExpires = long, "j", long
		appendEvents(t, s, old)

		purge(t, s, live.AddDate(1, 0, 0))

		sameUser(t, "user after purge", userByName(t, s, "alice"), u)
		if keys := listKeys(t, s); len(keys) != 1 {
			t.Errorf("%d keys after purge, want 1", len(keys))
		}
		if got := listRevoked(t, s, long.Add(-time.Hour)); !slices.Equal(got, []string{"j"}) {
			t.Errorf("revocations after purge: %v, want [j]", got)
		}
		useNonceConflict(t, s, "n", live)
		if got := scanAll(t, s, 0); len(got) != 2 {
			t.Errorf("%d audit events after purge, want 2 (the revocation's and e1)", len(got))
		}
	}},
	{"ok/purge-empty", func(t *testing.T, s store.Store) {
		purge(t, s, t0)
		purge(t, s, time.Time{})
	}},
}
