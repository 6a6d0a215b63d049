package account

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/store"
)

// cheap are argon2id parameters that make tests fast; the format is the same.
var cheap = params{memory: 64, time: 1, threads: 1}

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// fakeUsers is an in-memory store.Users.
type fakeUsers struct {
	mu    sync.Mutex
	users map[string]store.User
	err   error // returned by every call when set
}

func newFakeUsers(us ...store.User) *fakeUsers {
	f := &fakeUsers{users: map[string]store.User{}}
	for _, u := range us {
		f.users[u.Username] = u
	}
	return f
}

func (f *fakeUsers) InsertUser(_ context.Context, u store.User, _ *store.AuditEvent, _ store.SealFunc) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	if _, ok := f.users[u.Username]; ok {
		return store.ErrConflict
	}
	f.users[u.Username] = u
	return nil
}

func (f *fakeUsers) UserByName(_ context.Context, name string) (store.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return store.User{}, f.err
	}
	u, ok := f.users[name]
	if !ok {
		return store.User{}, store.ErrNotFound
	}
	u.Claims, u.Roles = maps.Clone(u.Claims), slices.Clone(u.Roles)
	return u, nil
}

func (f *fakeUsers) ListUsers(context.Context) ([]store.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var us []store.User
	for _, k := range slices.Sorted(maps.Keys(f.users)) {
		us = append(us, f.users[k])
	}
	return us, f.err
}

func (f *fakeUsers) DeleteUser(_ context.Context, name string, _ *store.AuditEvent, _ store.SealFunc) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[name]; !ok {
		return store.ErrNotFound
	}
	delete(f.users, name)
	return nil
}

func (f *fakeUsers) SetUserRoles(_ context.Context, name string, roles []string, _ *store.AuditEvent, _ store.SealFunc) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[name]
	if !ok {
		return store.ErrNotFound
	}
	u.Roles = slices.Compact(slices.Sorted(slices.Values(roles)))
	f.users[name] = u
	return f.err
}

func (f *fakeUsers) SetUserDisabled(_ context.Context, name string, disabled bool, _ *store.AuditEvent, _ store.SealFunc) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[name]
	if !ok {
		return store.ErrNotFound
	}
	u.Disabled = disabled
	f.users[name] = u
	return f.err
}

func cheapHash(t testing.TB, password string) string {
	t.Helper()
	h, err := hashWith(password, cheap)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// fixture: config accounts alice (hash) and dev (clear password; auditor); stored
// accounts bob (auditor), carol (disabled; auditor) and alice (auditor, shadowed by
// the configured one, who is not).
func fixture(t testing.TB, opts Options) (*Directory, *fakeUsers) {
	t.Helper()
	cfg := []config.User{
		{Username: "alice", PasswordHash: cheapHash(t, "alice-pw"), Claims: map[string]string{"email": "alice@config"}},
		{Username: "dev", Password: "dev-pw", Roles: []string{RoleAuditor}},
	}
	st := newFakeUsers(
		store.User{Username: "alice", PasswordHash: cheapHash(t, "alice-stored-pw"), Claims: map[string]string{"email": "alice@store"}, Roles: []string{RoleAuditor}},
		store.User{Username: "bob", PasswordHash: cheapHash(t, "bob-pw"), Claims: map[string]string{"email": "bob@store"}, Roles: []string{RoleAuditor}},
		store.User{Username: "carol", PasswordHash: cheapHash(t, "carol-pw"), Disabled: true, Roles: []string{RoleAuditor}},
		store.User{Username: "mallory", PasswordHash: "$argon2id$broken"},
	)
	d, err := newDirectory(cfg, st, opts, cheap)
	if err != nil {
		t.Fatal(err)
	}
	return d, st
}

func TestAuthenticate(t *testing.T) {
	tests := []struct {
		name, user, password string
		want                 error
		email                string
	}{
		{"ok/configured", "alice", "alice-pw", nil, "alice@config"},
		{"ok/configured-clear-password", "dev", "dev-pw", nil, ""},
		{"ok/stored", "bob", "bob-pw", nil, "bob@store"},
		{"fail/configured-wins-over-stored", "alice", "alice-stored-pw", ErrInvalidCredentials, ""},
		{"fail/wrong-password-configured", "alice", "bob-pw", ErrInvalidCredentials, ""},
		{"fail/wrong-password-stored", "bob", "alice-pw", ErrInvalidCredentials, ""},
		{"fail/empty-password", "bob", "", ErrInvalidCredentials, ""},
		{"fail/unknown-user", "zoe", "bob-pw", ErrInvalidCredentials, ""},
		{"fail/username-case", "Bob", "bob-pw", ErrInvalidCredentials, ""},
		{"fail/disabled-right-password", "carol", "carol-pw", ErrDisabled, ""},
		{"fail/disabled-wrong-password", "carol", "nope", ErrInvalidCredentials, ""},
		{"fail/malformed-stored-hash", "mallory", "x", ErrMalformedHash, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := fixture(t, Options{})
			a, err := d.Authenticate(t.Context(), tt.user, tt.password, "192.0.2.1:5000", t0)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Authenticate = %+v, %v; want %v", a, err, tt.want)
			}
			if tt.want != nil {
				if a.Username != "" || a.Claims != nil {
					t.Errorf("account %+v returned with an error", a)
				}
				return
			}
			if a.Username != tt.user || a.Claims["email"] != tt.email {
				t.Errorf("account %+v; want %s with email %q", a, tt.user, tt.email)
			}
		})
	}
}

func TestAuthenticateStoreErrors(t *testing.T) {
	d, st := fixture(t, Options{Throttle: Throttle{AccountFailures: 1}})
	st.err = store.ErrUnavailable
	for range 3 {
		if _, err := d.Authenticate(t.Context(), "bob", "bob-pw", "192.0.2.1", t0); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("err = %v; want ErrUnavailable", err)
		}
	}
	// A store failure judged nothing, so it is no failure: bob is not locked.
	st.err = nil
	if _, err := d.Authenticate(t.Context(), "bob", "bob-pw", "192.0.2.1", t0); err != nil {
		t.Fatalf("after the store recovered: %v", err)
	}
	// Configured accounts do not need the store.
	st.err = store.ErrUnavailable
	if _, err := d.Authenticate(t.Context(), "alice", "alice-pw", "", t0); err != nil {
		t.Fatalf("configured account with the store down: %v", err)
	}
}

func TestAuthenticateWithoutStore(t *testing.T) {
	d, err := newDirectory([]config.User{{Username: "alice", Password: "pw"}}, nil, Options{}, cheap)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Authenticate(t.Context(), "alice", "pw", "", t0); err != nil {
		t.Errorf("alice: %v", err)
	}
	if _, err := d.Authenticate(t.Context(), "bob", "pw", "", t0); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("bob: %v; want ErrInvalidCredentials", err)
	}
	if _, err := d.Lookup(t.Context(), "bob"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup(bob): %v; want ErrNotFound", err)
	}
}

// The real cost: NewDirectory hashes a clear password with HashPassword's
// parameters, and accepts a hash HashPassword made.
func TestNewDirectoryDefaultParams(t *testing.T) {
	h, err := HashPassword("bob-pw")
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDirectory([]config.User{
		{Username: "alice", Password: "alice-pw"},
		{Username: "bob", PasswordHash: h},
	}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.configured["alice"].hash.params; got != defaultParams() {
		t.Errorf("clear password hashed with %+v; want %+v", got, defaultParams())
	}
	if d.dummy.params != defaultParams() {
		t.Errorf("dummy hash costs %+v; want %+v", d.dummy.params, defaultParams())
	}
	if _, err := d.Authenticate(t.Context(), "alice", "alice-pw", "", t0); err != nil {
		t.Errorf("alice: %v", err)
	}
	if _, err := d.Authenticate(t.Context(), "bob", "alice-pw", "", t0); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("bob with alice's password: %v", err)
	}
}

func TestNewDirectoryErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  []config.User
		opts Options
	}{
		{"fail/malformed-hash", []config.User{{Username: "a", PasswordHash: "$argon2id$v=19$nope"}}, Options{}},
		{"fail/no-password", []config.User{{Username: "a"}}, Options{}},
		{"fail/duplicate", []config.User{{Username: "a", Password: "x"}, {Username: "a", Password: "y"}}, Options{}},
		{"fail/negative-hashes", nil, Options{MaxConcurrentHashes: -1}},
		{"fail/negative-failures", nil, Options{Throttle: Throttle{AccountFailures: -1}}},
		{"fail/negative-window", nil, Options{Throttle: Throttle{Window: -time.Second}}},
		{"fail/max-below-base", nil, Options{Throttle: Throttle{BaseDelay: time.Minute, MaxDelay: time.Second}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := newDirectory(tt.cfg, nil, tt.opts, cheap); err == nil {
				t.Error("no error")
			}
		})
	}
}

// An unknown username costs one argon2id verification like a known one: it waits
// for a hashing slot like any other attempt.
func TestUnknownUserCostsAVerification(t *testing.T) {
	d, _ := fixture(t, Options{MaxConcurrentHashes: 1})
	d.slow <- struct{}{} // the only slot is taken
	for _, user := range []string{"zoe", "bob", "alice"} {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		_, err := d.Authenticate(ctx, user, "guess", "", t0)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v; want to wait for a hashing slot", user, err)
		}
	}
	<-d.slow
	// The attempts that gave up while waiting were not judged, so not counted.
	for range DefaultAccountFailures - 1 {
		if _, err := d.Authenticate(t.Context(), "zoe", "guess", "", t0); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("zoe: %v", err)
		}
	}
}

func TestLookup(t *testing.T) {
	tests := []struct {
		name, user string
		want       error
		email      string
	}{
		{"ok/configured", "alice", nil, "alice@config"},
		{"ok/stored", "bob", nil, "bob@store"},
		{"fail/disabled", "carol", ErrNotFound, ""},
		{"fail/unknown", "zoe", ErrNotFound, ""},
	}
	d, _ := fixture(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := d.Lookup(t.Context(), tt.user)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Lookup = %+v, %v; want %v", a, err, tt.want)
			}
			if err == nil && (a.Username != tt.user || a.Claims["email"] != tt.email) {
				t.Errorf("account %+v; want %s with email %q", a, tt.user, tt.email)
			}
		})
	}
}

func TestClaimsAreCopies(t *testing.T) {
	d, _ := fixture(t, Options{})
	a, err := d.Lookup(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	a.Claims["email"] = "mallory@example"
	if b, _ := d.Lookup(t.Context(), "alice"); b.Claims["email"] != "alice@config" {
		t.Errorf("a caller changed the directory's claims: %v", b.Claims)
	}
}

// Many goroutines signing in at once, right and wrong, known and unknown, from a
// few addresses (run with -race).
func TestAuthenticateConcurrent(t *testing.T) {
	d, _ := fixture(t, Options{MaxConcurrentHashes: 2})
	users := []struct{ name, password string }{{"alice", "alice-pw"}, {"bob", "bob-pw"}, {"dev", "dev-pw"}, {"zoe", "x"}, {"carol", "carol-pw"}}
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			u := users[i%len(users)]
			addr := []string{"192.0.2.1:1", "192.0.2.2:2", "[2001:db8::1]:3"}[i%3]
			for j := range 8 {
				pw := u.password
				if j%4 == 3 {
					pw += "!"
				}
				_, err := d.Authenticate(t.Context(), u.name, pw, addr, t0.Add(time.Duration(j)*time.Second))
				if err != nil && !errors.Is(err, ErrInvalidCredentials) && !errors.Is(err, ErrDisabled) && !errors.Is(err, ErrThrottled) {
					t.Errorf("%s: unexpected %v", u.name, err)
				}
				if _, err := d.Lookup(t.Context(), u.name); err != nil && !errors.Is(err, ErrNotFound) {
					t.Errorf("Lookup(%s): %v", u.name, err)
				}
			}
		})
	}
	wg.Wait()
}

// TestReconfigure: a directory of a reloaded configuration has the new configured
// accounts over the same store, and keeps the throttling counts: a reload
// forgives no failure.
func TestReconfigure(t *testing.T) {
	d, _ := fixture(t, Options{Throttle: Throttle{AccountFailures: 1}})
	if _, err := d.Authenticate(t.Context(), "dev", "wrong", "", t0); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal(err)
	}
	n, err := d.Reconfigure([]config.User{{Username: "dev", PasswordHash: cheapHash(t, "dev-pw-2")}, {Username: "erin", Password: "erin-pw"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, user, password string
		want                 error
	}{
		{"fail/still-throttled", "dev", "dev-pw-2", ErrThrottled},
		{"ok/added", "erin", "erin-pw", nil},
		{"ok/removed-configured-uncovers-stored", "alice", "alice-stored-pw", nil},
		{"ok/stored", "bob", "bob-pw", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := n.Authenticate(t.Context(), tt.user, tt.password, "", t0); !errors.Is(err, tt.want) {
				t.Errorf("Authenticate = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := d.Authenticate(t.Context(), "erin", "erin-pw", "", t0); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("the replaced directory changed: %v", err)
	}
	if _, err := d.Reconfigure([]config.User{{Username: "x", PasswordHash: "$argon2id$broken"}}); err == nil {
		t.Error("a malformed password_hash was accepted")
	}
}
