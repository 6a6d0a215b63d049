package token_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/keys"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/store/sqlstore"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

const issuer = "https://deputy.test"

func newService(t testing.TB, alg string) (*token.Service, *keys.Set, *token.Revoked) {
	t.Helper()
	ks := openKeys(t, newStore(t), alg)
	rev := token.NewRevoked()
	return token.NewService(issuer, ks, rev, 16384), ks, rev
}

// newStore is a migrated SQLite store in a temporary directory.
func newStore(t testing.TB) *sqlstore.DB {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, "sqlite", filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// openKeys is a key set on st, as a node opens it.
func openKeys(t testing.TB, st *sqlstore.DB, alg string) *keys.Set {
	t.Helper()
	ks, err := keys.Open(context.Background(), st, keys.Options{Algorithm: alg, RetireAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func sample(now time.Time) *token.Claims {
	return &token.Claims{
		Subject: "alice", Audience: token.Audience{"https://api1.example"}, ClientID: "web-app",
		Scope: "a b", IssuedAt: now.Unix(), NotBef: now.Unix(), Expiry: now.Add(5 * time.Minute).Unix(),
		ID: token.NewID(), Act: &oauth.Actor{Subject: "api2", Actor: &oauth.Actor{Subject: "api1"}},
		Extra: map[string]any{"email": "alice@example.com", "sub": "evil"},
	}
}

func TestMintVerifyRoundTrip(t *testing.T) {
	for _, alg := range keys.Algorithms {
		t.Run(alg, func(t *testing.T) {
			svc, _, _ := newService(t, alg)
			now := time.Now()
			c := sample(now)
			raw, err := svc.Mint(oauth.JWTTypeAccessToken, c)
			if err != nil {
				t.Fatal(err)
			}
			v, err := svc.Verify(raw, token.TypesFor(oauth.TokenTypeAccessToken), now)
			if err != nil {
				t.Fatal(err)
			}
			got := v.Claims
			if got.Subject != "alice" || got.Issuer != issuer || got.Act.Chain()[1] != "api1" || got.Extra["email"] != "alice@example.com" {
				t.Errorf("claims %+v", got)
			}
			if v.Type != "at+jwt" {
				t.Errorf("typ %q", v.Type)
			}
			// Extra cannot override a registered claim.
			if got.Subject == "evil" {
				t.Error("extra overrode sub")
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	svc, ks, rev := newService(t, "ES256")
	other, _, _ := newService(t, "ES256")
	now := time.Now()
	good, _ := svc.Mint(oauth.JWTTypeAccessToken, sample(now))
	plain, _ := svc.Mint(oauth.JWTTypeJWT, sample(now))
	expiredC := sample(now.Add(-time.Hour))
	expired, _ := svc.Mint(oauth.JWTTypeAccessToken, expiredC)
	futureC := sample(now.Add(time.Hour))
	future, _ := svc.Mint(oauth.JWTTypeAccessToken, futureC)
	foreign, _ := other.Mint(oauth.JWTTypeAccessToken, sample(now))
	revokedC := sample(now)
	revoked, _ := svc.Mint(oauth.JWTTypeAccessToken, revokedC)
	rev.Add([]store.Revocation{{JTI: revokedC.ID}})

	parts := strings.Split(good, ".")
	hdr := func(h map[string]any) string {
		b, _ := json.Marshal(h)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	kid := ks.Active().ID
	// HMAC "signed" with the public key (the classic key-confusion attack).
	pub, _ := json.Marshal(ks.Active().Public())
	hs, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pub}, (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", kid))
	hsJWS, _ := hs.Sign([]byte(`{"iss":"` + issuer + `","sub":"alice","exp":9999999999,"jti":"x"}`))
	hsRaw, _ := hsJWS.CompactSerialize()

	cases := []struct {
		name  string
		raw   string
		types []string
		want  error
	}{
		{"fail/expired", expired, token.TypesFor(oauth.TokenTypeAccessToken), token.ErrExpired},
		{"fail/not-yet-valid", future, token.TypesFor(oauth.TokenTypeAccessToken), token.ErrNotYetValid},
		{"fail/revoked", revoked, token.TypesFor(oauth.TokenTypeAccessToken), token.ErrRevoked},
		{"fail/foreign-key", foreign, token.TypesFor(oauth.TokenTypeAccessToken), token.ErrUnknownKey},
		{"fail/jwt-as-access-token", plain, token.TypesFor(oauth.TokenTypeAccessToken), token.ErrType},
		{"fail/tampered-payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory"}`)) + "." + parts[2], token.TypesFor(oauth.TokenTypeJWT), token.ErrSignature},
		{"fail/alg-none", hdr(map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}) + "." + parts[1] + ".", token.TypesFor(oauth.TokenTypeJWT), token.ErrAlgorithm},
		{"fail/hmac-with-public-key", hsRaw, token.TypesFor(oauth.TokenTypeJWT), token.ErrAlgorithm},
		{"fail/alg-mismatch-with-key", hdr(map[string]any{"alg": "ES384", "typ": "at+jwt", "kid": kid}) + "." + parts[1] + "." + parts[2], token.TypesFor(oauth.TokenTypeJWT), token.ErrAlgorithm},
		{"fail/unknown-kid", hdr(map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": "nope"}) + "." + parts[1] + "." + parts[2], token.TypesFor(oauth.TokenTypeJWT), token.ErrUnknownKey},
		{"fail/two-dots-missing", "abc", token.TypesFor(oauth.TokenTypeJWT), token.ErrMalformed},
		{"fail/oversized", strings.Repeat("a", 20000), token.TypesFor(oauth.TokenTypeJWT), token.ErrTooLarge},
		{"fail/json-serialization", `{"payload":"x","signatures":[]}`, token.TypesFor(oauth.TokenTypeJWT), token.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.Verify(tc.raw, tc.types, now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("ok/jwt-accepts-both-types", func(t *testing.T) {
		for _, raw := range []string{good, plain} {
			if _, err := svc.Verify(raw, token.TypesFor(oauth.TokenTypeJWT), now); err != nil {
				t.Error(err)
			}
		}
	})
}

func TestRotationPublishesBeforeSigning(t *testing.T) {
	svc, ks, _ := newService(t, "ES256")
	ctx := context.Background()
	old := ks.Active()
	before, _ := svc.Mint(oauth.JWTTypeAccessToken, sample(time.Now()))
	made, err := ks.Rotate(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	k := made[0]
	if !strings.Contains(string(ks.JWKS()), k.ID) || !strings.Contains(string(ks.JWKS()), old.ID) {
		t.Fatalf("JWKS lacks a key: %s", ks.JWKS())
	}
	if ks.Active().ID != old.ID {
		t.Fatal("new key signs before its publication period ended")
	}
	if _, err := svc.Verify(before, token.TypesFor(oauth.TokenTypeJWT), time.Now()); err != nil {
		t.Fatalf("token of the old key no longer verifies: %v", err)
	}
	// Publication over: the new key signs, the old one still verifies.
	if _, err := ks.Rotate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if ks.Active().ID == old.ID {
		t.Fatal("old key still signs after rotation")
	}
	if _, err := svc.Verify(before, token.TypesFor(oauth.TokenTypeJWT), time.Now()); err != nil {
		t.Fatalf("old key withdrawn before retire_after: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	svc, _, _ := newService(f, "ES256")
	now := time.Now()
	good, _ := svc.Mint(oauth.JWTTypeAccessToken, sample(now))
	f.Add(good)
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add(strings.Replace(good, ".", "..", 1))
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := svc.Verify(raw, token.TypesFor(oauth.TokenTypeJWT), now)
		if err == nil {
			// Only what deputy signed verifies: the fuzzer cannot forge a signature,
			// so an accepted token must carry the claims deputy wrote.
			if v.Claims.Issuer != issuer || v.Claims.Subject != "alice" {
				t.Fatalf("accepted a token deputy did not issue: %+v", v.Claims)
			}
		}
	})
}

func BenchmarkMint(b *testing.B) {
	svc, _, _ := newService(b, "ES256")
	now := time.Now()
	for b.Loop() {
		if _, err := svc.Mint(oauth.JWTTypeAccessToken, sample(now)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	svc, _, _ := newService(b, "ES256")
	now := time.Now()
	raw, _ := svc.Mint(oauth.JWTTypeAccessToken, sample(now))
	for b.Loop() {
		if _, err := svc.Verify(raw, token.TypesFor(oauth.TokenTypeAccessToken), now); err != nil {
			b.Fatal(err)
		}
	}
}

// TestVerifyCache: a token verified once is not trusted blindly the second time:
// what can change between presentations is checked again on every hit.
func TestVerifyCache(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	ks := openKeys(t, st, "ES256")
	rev := token.NewRevoked()
	svc := token.NewService(issuer, ks, rev, 16384)
	now := time.Now()
	at := token.TypesFor(oauth.TokenTypeAccessToken)
	mint := func(c *token.Claims) string {
		raw, err := svc.Mint(oauth.JWTTypeAccessToken, c)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	raw := mint(sample(now))
	if svc.Seen(raw) {
		t.Fatal("Seen before the first Verify")
	}
	for i := range 2 { // the second time from the cache
		v, err := svc.Verify(raw, at, now)
		if err != nil || v.Claims.Subject != "alice" || v.Claims.Act.Actor.Subject != "api1" {
			t.Fatalf("Verify #%d: %v, %+v", i+1, err, v)
		}
		v.Claims.Subject = "mallory" // a caller changing its copy changes nothing cached
	}
	if !svc.Seen(raw) || svc.Seen(raw+"x") {
		t.Fatal("Seen does not tell a verified token from another")
	}
	if token.CacheLen(svc) != 1 {
		t.Fatalf("cache holds %d tokens, want 1", token.CacheLen(svc))
	}
	if v, _ := svc.Verify(raw, at, now); v.Claims.Subject != "alice" {
		t.Fatalf("cached claims changed by a caller: sub %q", v.Claims.Subject)
	}
	t.Run("expired-on-a-later-hit", func(t *testing.T) {
		if v, err := svc.Verify(raw, at, now.Add(time.Hour)); !errors.Is(err, token.ErrExpired) || v == nil {
			t.Fatalf("Verify an hour later: %v, want ErrExpired with the token", err)
		}
	})
	t.Run("not-yet-valid-on-a-hit", func(t *testing.T) {
		if _, err := svc.Verify(raw, at, now.Add(-time.Hour)); !errors.Is(err, token.ErrNotYetValid) {
			t.Fatalf("Verify an hour before: %v, want ErrNotYetValid", err)
		}
	})
	t.Run("other-types-on-a-hit", func(t *testing.T) {
		if _, err := svc.Verify(raw, []string{oauth.JWTTypeJWT}, now); !errors.Is(err, token.ErrType) {
			t.Fatalf("Verify as a plain JWT only: %v, want ErrType", err)
		}
	})
	t.Run("revoked-after-it-was-cached", func(t *testing.T) {
		c := sample(now)
		r := mint(c)
		if _, err := svc.Verify(r, at, now); err != nil {
			t.Fatal(err)
		}
		rev.Add([]store.Revocation{{JTI: c.ID, ExpiresAt: now.Add(time.Hour)}})
		if _, err := svc.Verify(r, at, now); !errors.Is(err, token.ErrRevoked) {
			t.Fatalf("Verify after revocation: %v, want ErrRevoked", err)
		}
	})
	t.Run("tampered-copy-is-not-a-hit", func(t *testing.T) {
		parts := strings.Split(raw, ".")
		sig := []byte(parts[2])
		sig[3] ^= 1
		if _, err := svc.Verify(parts[0]+"."+parts[1]+"."+string(sig), at, now); err == nil {
			t.Fatal("a token with a changed signature verified")
		}
	})
	t.Run("key-withdrawn-after-it-was-cached", func(t *testing.T) {
		old := ks.Active()
		r := mint(sample(now))
		if _, err := svc.Verify(r, at, now); err != nil {
			t.Fatal(err)
		}
		if _, err := ks.Rotate(ctx, 0); err != nil {
			t.Fatal(err)
		}
		if err := st.RetireKey(ctx, old.ID, time.Now().Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := ks.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Verify(r, at, now); !errors.Is(err, token.ErrUnknownKey) {
			t.Fatalf("Verify after its key was withdrawn: %v, want ErrUnknownKey", err)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		token.SetCacheEntries(svc, 8)
		for range 20 {
			if _, err := svc.Verify(mint(sample(now)), at, now); err != nil {
				t.Fatal(err)
			}
		}
		if n := token.CacheLen(svc); n > 8 {
			t.Fatalf("cache holds %d tokens, bound 8", n)
		}
	})
}

func BenchmarkVerifyUncached(b *testing.B) {
	svc, _, _ := newService(b, "ES256")
	token.DisableCache(svc)
	now := time.Now()
	raw, _ := svc.Mint(oauth.JWTTypeAccessToken, sample(now))
	for b.Loop() {
		if _, err := svc.Verify(raw, token.TypesFor(oauth.TokenTypeAccessToken), now); err != nil {
			b.Fatal(err)
		}
	}
}

// TestVerifyKeyOfAnotherNode: a token signed by a key another node created an
// instant ago (not yet reloaded here) verifies: the unknown kid makes this node
// read the keys again, at most once a second.
func TestVerifyKeyOfAnotherNode(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	open := func() (*token.Service, *keys.Set) {
		ks := openKeys(t, st, "ES256")
		return token.NewService(issuer, ks, token.NewRevoked(), 16384), ks
	}
	here, _ := open()
	there, theirKeys := open()
	if _, err := theirKeys.Rotate(ctx, 0); err != nil { // a key this node has not loaded
		t.Fatal(err)
	}
	raw, err := there.Mint(oauth.JWTTypeAccessToken, sample(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := here.Verify(raw, token.TypesFor(oauth.TokenTypeAccessToken), time.Now()); err != nil {
		t.Fatalf("token of the other node's new key: %v", err)
	}
	// A kid nobody has: refused, and a second one within the interval reads nothing.
	forged := strings.Replace(raw, strings.Split(raw, ".")[0], base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","kid":"nope","typ":"at+jwt"}`)), 1)
	for range 2 {
		if _, err := here.Verify(forged, token.TypesFor(oauth.TokenTypeAccessToken), time.Now()); !errors.Is(err, token.ErrUnknownKey) {
			t.Fatalf("unknown kid: %v, want ErrUnknownKey", err)
		}
	}
}

// TestVerifyContextOfARequestThatLeft: the read of a key another node has just
// created runs within the request's context: a request that has left (its
// context cancelled) is refused without it, and the next request still reads
// the key and verifies the token.
func TestVerifyContextOfARequestThatLeft(t *testing.T) {
	st := newStore(t)
	here := token.NewService(issuer, openKeys(t, st, "ES256"), token.NewRevoked(), 16384)
	ks := openKeys(t, st, "ES256")
	if _, err := ks.Rotate(context.Background(), 0); err != nil { // a key here has not loaded
		t.Fatal(err)
	}
	there := token.NewService(issuer, ks, token.NewRevoked(), 16384)
	raw, err := there.Mint(oauth.JWTTypeAccessToken, sample(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	left, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := here.VerifyContext(left, raw, token.TypesFor(oauth.TokenTypeAccessToken), time.Now()); !errors.Is(err, token.ErrUnknownKey) {
		t.Fatalf("VerifyContext for a request that left: %v, want ErrUnknownKey (no read)", err)
	}
	if _, err := here.VerifyContext(context.Background(), raw, token.TypesFor(oauth.TokenTypeAccessToken), time.Now()); err != nil {
		t.Fatalf("the next request: %v", err)
	}
}
