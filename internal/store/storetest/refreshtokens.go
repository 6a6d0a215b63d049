package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// refreshToken is a refresh token whose value is "rt-"+id, of the family of the
// code c1, valid for a day from t0.
func refreshToken(id string) store.RefreshToken {
	return store.RefreshToken{
		Hash:      hashOf("rt-" + id),
		ID:        id,
		FamilyID:  "c1",
		ClientID:  "web-app",
		SessionID: "sid-1",
		Subject:   "alice",
		Scopes:    []string{"openid", "offline_access", "payments:read"},
		Audiences: []string{"https://api1.example"},
		IdP:       "local",
		AMR:       []string{"pwd"},
		AuthTime:  t0.Add(-time.Minute),
		IssuedAt:  t0,
		ExpiresAt: t0.Add(24 * time.Hour),
	}
}

func insertRefreshTokens(t *testing.T, s store.Store, tokens ...store.RefreshToken) {
	t.Helper()
	for _, rt := range tokens {
		if err := s.InsertRefreshToken(t.Context(), rt); err != nil {
			t.Fatalf("InsertRefreshToken(%s): %v", rt.ID, err)
		}
	}
}

func useRefresh(t *testing.T, s store.Store, hash []byte, at time.Time) store.RefreshToken {
	t.Helper()
	rt, err := s.UseRefreshToken(t.Context(), hash, at)
	if err != nil {
		t.Fatalf("UseRefreshToken(%x, %s): %v", hash, fmtTime(at), err)
	}
	return rt
}

// reuseRefresh uses a token used before and returns what UseRefreshToken gives
// back with its ErrConflict.
func reuseRefresh(t *testing.T, s store.Store, hash []byte, at time.Time) store.RefreshToken {
	t.Helper()
	rt, err := s.UseRefreshToken(t.Context(), hash, at)
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("UseRefreshToken(%x, %s) of a used token: %v, want ErrConflict", hash, fmtTime(at), err)
	}
	return rt
}

// sameRefreshToken fails t unless got is want as the store gives it back.
func sameRefreshToken(t *testing.T, what string, got, want store.RefreshToken) {
	t.Helper()
	want.Scopes, want.Audiences, want.AMR = nilIfEmpty(want.Scopes), nilIfEmpty(want.Audiences), nilIfEmpty(want.AMR)
	want.AuthTime, want.IssuedAt = utc(want.AuthTime), utc(want.IssuedAt)
	want.ExpiresAt, want.UsedAt = utc(want.ExpiresAt), utc(want.UsedAt)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, fmtRefreshToken(got), fmtRefreshToken(want))
	}
}

func fmtRefreshToken(rt store.RefreshToken) string {
	return fmt.Sprintf("{Hash:%x ID:%q FamilyID:%q ClientID:%q SessionID:%q Subject:%q Scopes:%#v "+
		"Audiences:%#v IdP:%q AMR:%#v ACR:%q AuthTime:%s IssuedAt:%s ExpiresAt:%s UsedAt:%s Rule:%q Act:%q Claims:%q JKT:%q}",
		rt.Hash, rt.ID, rt.FamilyID, rt.ClientID, rt.SessionID, rt.Subject, rt.Scopes, rt.Audiences,
		rt.IdP, rt.AMR, rt.ACR, fmtTime(rt.AuthTime), fmtTime(rt.IssuedAt), fmtTime(rt.ExpiresAt), fmtTime(rt.UsedAt),
		rt.Rule, rt.Act, rt.Claims, rt.JKT)
}

var refreshTokenTests = []test{
	{"ok/release-then-use-again", func(t *testing.T, s store.Store) {
		// A rotation whose tokens could not be recorded gives the token back: it
		// is unused again, and the next use is no reuse.
		rt := refreshToken("r1")
		insertRefreshTokens(t, s, rt)
		first := t0.Add(time.Hour)
		useRefresh(t, s, rt.Hash, first)
		if err := s.ReleaseRefreshToken(t.Context(), rt.Hash, first); err != nil {
			t.Fatalf("ReleaseRefreshToken: %v", err)
		}
		if got, err := s.RefreshTokenByHash(t.Context(), rt.Hash); err != nil || !got.UsedAt.IsZero() {
			t.Fatalf("after release: UsedAt %v, %v; want unused", got.UsedAt, err)
		}
		rt.UsedAt = first.Add(time.Second)
		sameRefreshToken(t, "used again", useRefresh(t, s, rt.Hash, rt.UsedAt), rt)
	}},
	{"fail/release-of-another-use", func(t *testing.T, s store.Store) {
		// Only the use that marked it can give it back: not a reuse's time, not a
		// token never used, not one that does not exist.
		rt := refreshToken("r1")
		insertRefreshTokens(t, s, rt)
		if err := s.ReleaseRefreshToken(t.Context(), rt.Hash, t0); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("release of an unused token: %v, want ErrConflict", err)
		}
		first := t0.Add(time.Hour)
		useRefresh(t, s, rt.Hash, first)
		if err := s.ReleaseRefreshToken(t.Context(), rt.Hash, first.Add(time.Microsecond)); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("release at another time: %v, want ErrConflict", err)
		}
		rt.UsedAt = first
		reuseRefresh(t, s, rt.Hash, first.Add(time.Minute))
		if err := s.ReleaseRefreshToken(t.Context(), hashOf("absent"), first); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("release of an absent token: %v, want ErrNotFound", err)
		}
	}},
	{"ok/round-trip-every-field", func(t *testing.T, s store.Store) {
		ny := time.FixedZone("EST", -5*3600)
		rt := refreshToken("r1")
		rt.Scopes = []string{"openid", "a b", "100%", "%20", ""}
		rt.Audiences = []string{"https://api1.example", "https://api2.example/x y"}
		rt.IdP, rt.AMR, rt.ACR = "corp-oidc", []string{"pwd", "mfa"}, "urn:acr:2"
		rt.AuthTime = t0.Add(-time.Minute + 3*time.Microsecond).In(ny)
		rt.IssuedAt = t0.Add(4 * time.Microsecond).In(ny)
		rt.ExpiresAt = t0.Add(24*time.Hour + 5*time.Microsecond).In(ny)
		rt.Rule, rt.Act, rt.Claims = "api1-to-api2", `{"sub":"api1","act":{"sub":"web-app"}}`, `{"acr":"urn:acr:2","ü":"\u00fc"}`
		rt.JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
		insertRefreshTokens(t, s, rt)
		at := t0.Add(time.Hour + 6*time.Microsecond).In(ny)
		got := useRefresh(t, s, rt.Hash, at)
		rt.UsedAt = at
		sameRefreshToken(t, "UseRefreshToken", got, rt)
	}},
	{"ok/empty-lists-and-zero-times", func(t *testing.T, s store.Store) {
		// Every optional field empty: lists read back nil, the zero AuthTime zero (a
		// token from an exchange has no sign-in behind it).
		a := store.RefreshToken{Hash: hashOf("a"), ID: "a", FamilyID: "f", ClientID: "c", Subject: "s",
			IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), Scopes: []string{}, Audiences: []string{}}
		b := store.RefreshToken{Hash: hashOf("b"), ID: "b", FamilyID: "f", ClientID: "c", Subject: "s",
			IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), Audiences: []string{"x"}}
		insertRefreshTokens(t, s, a, b)
		a.UsedAt, b.UsedAt = t0, t0
		sameRefreshToken(t, "bare token", useRefresh(t, s, a.Hash, t0), a)
		sameRefreshToken(t, "token with audiences only", useRefresh(t, s, b.Hash, t0), b)
	}},
	{"fail/reuse", func(t *testing.T, s store.Store) {
		// Rotation: r1 is used and r2 issued in its family; r1 presented again is
		// reuse, and what it returns names the family to revoke.
		r1, r2 := refreshToken("r1"), refreshToken("r2")
		insertRefreshTokens(t, s, r1)
		first := t0.Add(time.Hour)
		useRefresh(t, s, r1.Hash, first)
		r2.IssuedAt = first
		insertRefreshTokens(t, s, r2)
		r1.UsedAt = first
		sameRefreshToken(t, "reused token", reuseRefresh(t, s, r1.Hash, first.Add(time.Minute)), r1)
		sameRefreshToken(t, "reused again", reuseRefresh(t, s, r1.Hash, first.Add(-time.Minute)), r1)
		sameRefreshToken(t, "reused at the same time", reuseRefresh(t, s, r1.Hash, first), r1)
		// The store does not revoke: the rotated token is still usable, once.
		r2.UsedAt = first.Add(time.Hour)
		sameRefreshToken(t, "rotated token", useRefresh(t, s, r2.Hash, r2.UsedAt), r2)
	}},
	{"fail/inserted-used", func(t *testing.T, s store.Store) {
		rt := refreshToken("r1")
		rt.UsedAt = t0.Add(3 * time.Microsecond)
		insertRefreshTokens(t, s, rt)
		sameRefreshToken(t, "UseRefreshToken of a token stored used", reuseRefresh(t, s, rt.Hash, t0.Add(time.Hour)), rt)
	}},
	{"ok/by-hash-does-not-use", func(t *testing.T, s store.Store) {
		rt := refreshToken("r1")
		insertRefreshTokens(t, s, rt)
		got, err := s.RefreshTokenByHash(t.Context(), rt.Hash)
		if err != nil {
			t.Fatal(err)
		}
		sameRefreshToken(t, "RefreshTokenByHash", got, rt)
		rt.UsedAt = t0.Add(time.Second)
		sameRefreshToken(t, "UseRefreshToken after RefreshTokenByHash", useRefresh(t, s, rt.Hash, rt.UsedAt), rt)
		got, err = s.RefreshTokenByHash(t.Context(), rt.Hash)
		if err != nil {
			t.Fatal(err)
		}
		sameRefreshToken(t, "RefreshTokenByHash of a used token", got, rt)
		if _, err := s.RefreshTokenByHash(t.Context(), hashOf("rt-none")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RefreshTokenByHash of an unknown hash: %v, want ErrNotFound", err)
		}
	}},
	{"fail/use-not-found", func(t *testing.T, s store.Store) {
		if _, err := s.UseRefreshToken(t.Context(), hashOf("rt-r1"), t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("UseRefreshToken on an empty store: %v, want ErrNotFound", err)
		}
		rt := refreshToken("r1")
		insertRefreshTokens(t, s, rt)
		insertCodes(t, s, code("c1"))
		// Not a code's hash either: each aggregate is looked up on its own.
		for _, h := range [][]byte{hashOf("rt-r2"), hashOf("r1"), hashOf("code-c1"), rt.Hash[:31], nil, {}} {
			if _, err := s.UseRefreshToken(t.Context(), h, t0); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("UseRefreshToken(%x) = %v, want ErrNotFound", h, err)
			}
		}
		rt.UsedAt = t0.Add(time.Second)
		sameRefreshToken(t, "UseRefreshToken after misses", useRefresh(t, s, rt.Hash, rt.UsedAt), rt)
	}},
	{"fail/duplicate-hash", func(t *testing.T, s store.Store) {
		rt := refreshToken("r1")
		insertRefreshTokens(t, s, rt)
		dup := refreshToken("r2")
		dup.Hash, dup.Subject = rt.Hash, "mallory"
		if err := s.InsertRefreshToken(t.Context(), dup); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("InsertRefreshToken of an existing hash: %v, want ErrConflict", err)
		}
		rt.UsedAt = t0
		sameRefreshToken(t, "the first token", useRefresh(t, s, rt.Hash, t0), rt)
	}},
	{"fail/duplicate-id", func(t *testing.T, s store.Store) {
		rt := refreshToken("r1")
		insertRefreshTokens(t, s, rt)
		dup := refreshToken("r1")
		dup.Hash = hashOf("another token")
		if err := s.InsertRefreshToken(t.Context(), dup); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("InsertRefreshToken of an existing ID: %v, want ErrConflict", err)
		}
		if _, err := s.UseRefreshToken(t.Context(), dup.Hash, t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("UseRefreshToken of the refused token: %v, want ErrNotFound", err)
		}
		rt.UsedAt = t0
		sameRefreshToken(t, "the first token", useRefresh(t, s, rt.Hash, t0), rt)
	}},
	{"ok/family-shared", func(t *testing.T, s store.Store) {
		// FamilyID is not unique: every token of a rotation family carries it.
		a, b, c := refreshToken("a"), refreshToken("b"), refreshToken("c")
		c.FamilyID = "other"
		insertRefreshTokens(t, s, a, b, c)
		for _, rt := range []store.RefreshToken{a, b, c} {
			rt.UsedAt = t0
			sameRefreshToken(t, rt.ID, useRefresh(t, s, rt.Hash, t0), rt)
		}
	}},
	{"ok/expiry-not-checked", func(t *testing.T, s store.Store) {
		rt := refreshToken("r1")
		insertRefreshTokens(t, s, rt)
		at := rt.ExpiresAt.Add(time.Hour)
		rt.UsedAt = at
		sameRefreshToken(t, "expired token", useRefresh(t, s, rt.Hash, at), rt)
		sameRefreshToken(t, "expired token again", reuseRefresh(t, s, rt.Hash, at.Add(time.Hour)), rt)
	}},
	{"fail/concurrent-use", func(t *testing.T, s store.Store) {
		rt := refreshToken("r1")
		insertRefreshTokens(t, s, rt)
		got := raceOnce(t, 20,
			func(at time.Time) (store.RefreshToken, error) { return s.UseRefreshToken(t.Context(), rt.Hash, at) },
			func(rt store.RefreshToken) time.Time { return rt.UsedAt })
		rt.UsedAt = got.UsedAt
		sameRefreshToken(t, "the winner's token", got, rt)
		sameRefreshToken(t, "UseRefreshToken afterwards", reuseRefresh(t, s, rt.Hash, t0.Add(time.Hour)), rt)
	}},
}
