package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// changed is a user.changed event with that id.
func changed(id string) *store.AuditEvent {
	e := event(id)
	e.Type = store.EventUserChanged
	return e
}

// user is an enabled account with the given name and a claim or two.
func user(name string) store.User {
	return store.User{
		Username:     name,
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		Claims:       map[string]string{"email": name + "@example", "name": name},
		CreatedAt:    t0,
	}
}

func insertUsers(t *testing.T, s store.Store, users ...store.User) {
	t.Helper()
	for _, u := range users {
		if err := s.InsertUser(t.Context(), u, nil, nil); err != nil {
			t.Fatalf("InsertUser(%s): %v", u.Username, err)
		}
	}
}

func userByName(t *testing.T, s store.Store, name string) store.User {
	t.Helper()
	u, err := s.UserByName(t.Context(), name)
	if err != nil {
		t.Fatalf("UserByName(%q): %v", name, err)
	}
	return u
}

func listUsers(t *testing.T, s store.Store) []store.User {
	t.Helper()
	users, err := s.ListUsers(t.Context())
	if err != nil {
		t.Fatalf("ListUsers: %v", err)
	}
	return users
}

func usernames(users []store.User) []string {
	out := make([]string, 0, len(users))
	for _, u := range users {
		out = append(out, u.Username)
	}
	return out
}

// sameUser fails t unless got is want as the store gives it back: CreatedAt in UTC,
// no claims as a nil map, roles sorted without repeats (no roles: nil).
func sameUser(t *testing.T, what string, got, want store.User) {
	t.Helper()
	want.CreatedAt = utc(want.CreatedAt)
	if len(want.Claims) == 0 {
		want.Claims = nil
	}
	want.Roles = nilIfEmpty(slices.Compact(slices.Sorted(slices.Values(want.Roles))))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, fmtUser(got), fmtUser(want))
	}
}

func fmtUsers(users []store.User) string {
	var parts []string
	for _, u := range users {
		parts = append(parts, fmtUser(u))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func fmtUser(u store.User) string {
	return fmt.Sprintf("{Username:%q PasswordHash:%q Claims:%#v Roles:%#v Disabled:%t CreatedAt:%s}",
		u.Username, u.PasswordHash, u.Claims, u.Roles, u.Disabled, fmtTime(u.CreatedAt))
}

// utc is t as the store gives it back: in UTC, the zero time zero. The suite's
// times are whole microseconds already.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Round(0).UTC()
}

// nilIfEmpty is l as the store gives it back: an empty list is nil.
func nilIfEmpty(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	return l
}

var userTests = []test{
	{"ok/empty", func(t *testing.T, s store.Store) {
		if users := listUsers(t, s); len(users) != 0 {
			t.Fatalf("ListUsers on an empty store = %v", usernames(users))
		}
	}},
	{"ok/round-trip-every-field", func(t *testing.T, s store.Store) {
		u := user("alice")
		u.CreatedAt = t0.Add(789 * time.Microsecond).In(time.FixedZone("EST", -5*3600))
		u.Disabled = true
		u.Roles = []string{"auditor", `quo"te <&>`, "Ålice 🙂"}
		u.Claims = map[string]string{
			"email":       "alice@example",
			"name":        `Alice "Al" O'Hara <al&co>`,
			"given name":  "Ålice 🙂",
			"empty":       "",
			"json-ish":    `{"nested":[1,2]}`,
			"line\nbreak": "tab\there\\",
		}
		insertUsers(t, s, u)
		sameUser(t, "UserByName", userByName(t, s, "alice"), u)
		users := listUsers(t, s)
		if len(users) != 1 {
			t.Fatalf("ListUsers = %v, want [alice]", usernames(users))
		}
		sameUser(t, "ListUsers[0]", users[0], u)
	}},
	{"ok/no-claims", func(t *testing.T, s store.Store) {
		a, b := user("a"), user("b")
		a.Claims, b.Claims = nil, map[string]string{}
		insertUsers(t, s, a, b)
		for _, u := range []store.User{a, b} {
			got := userByName(t, s, u.Username)
			sameUser(t, "UserByName "+u.Username, got, u)
		}
	}},
	{"ok/list-ordered-by-username", func(t *testing.T, s store.Store) {
		// Byte-wise, as Go compares strings: not by age, not by insertion, not by a
		// locale's collation (which would put "alice" before "Bob").
		names := []string{"bob", "émile", "Bob", "alice", "a b", "Alice", "zed", "alice2"}
		for i, n := range names {
			u := user(n)
			u.CreatedAt = t0.Add(-time.Duration(i) * time.Hour)
			insertUsers(t, s, u)
		}
		want := slices.Clone(names)
		slices.Sort(want)
		if got := usernames(listUsers(t, s)); !slices.Equal(got, want) {
			t.Fatalf("ListUsers = %q, want %q", got, want)
		}
	}},
	{"fail/duplicate-username", func(t *testing.T, s store.Store) {
		a := user("alice")
		insertUsers(t, s, a)
		dup := user("alice")
		dup.PasswordHash, dup.Claims, dup.Disabled = "other", map[string]string{"x": "y"}, true
		if err := s.InsertUser(t.Context(), dup, nil, nil); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("InsertUser of an existing username: %v, want ErrConflict", err)
		}
		sameUser(t, "the first account", userByName(t, s, "alice"), a)
		if got := usernames(listUsers(t, s)); !slices.Equal(got, []string{"alice"}) {
			t.Fatalf("ListUsers = %v, want [alice]", got)
		}
	}},
	{"fail/user-not-found", func(t *testing.T, s store.Store) {
		insertUsers(t, s, user("alice"))
		// Usernames are compared exactly: a local user's sub is its username.
		for _, name := range []string{"bob", "", "Alice", "alice ", "alic"} {
			if _, err := s.UserByName(t.Context(), name); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("UserByName(%q) = %v, want ErrNotFound", name, err)
			}
		}
	}},
	{"ok/case-distinct-usernames", func(t *testing.T, s store.Store) {
		lower, upper := user("alice"), user("Alice")
		upper.PasswordHash = "upper"
		insertUsers(t, s, lower, upper)
		sameUser(t, "alice", userByName(t, s, "alice"), lower)
		sameUser(t, "Alice", userByName(t, s, "Alice"), upper)
	}},
	{"ok/disable-enable", func(t *testing.T, s store.Store) {
		a, b := user("alice"), user("bob")
		insertUsers(t, s, a, b)
		ctx := t.Context()
		for i, step := range []bool{true, true, false, false, true} { // repeating a state is not an error
			if err := s.SetUserDisabled(ctx, "alice", step, nil, nil); err != nil {
				t.Fatalf("step %d: SetUserDisabled(alice, %t): %v", i, step, err)
			}
			want := a
			want.Disabled = step
			sameUser(t, fmt.Sprintf("step %d: alice", i), userByName(t, s, "alice"), want)
			sameUser(t, fmt.Sprintf("step %d: bob", i), userByName(t, s, "bob"), b)
		}
		if users := listUsers(t, s); len(users) != 2 || !users[0].Disabled || users[1].Disabled {
			t.Fatalf("ListUsers = %+v, want alice disabled and bob not", users)
		}
	}},
	{"fail/set-disabled-not-found", func(t *testing.T, s store.Store) {
		insertUsers(t, s, user("alice"))
		for _, disabled := range []bool{true, false} {
			if err := s.SetUserDisabled(t.Context(), "ALICE", disabled, changed("e-"+fmt.Sprint(disabled)), Seal); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("SetUserDisabled(ALICE, %t) = %v, want ErrNotFound", disabled, err)
			}
		}
		sameUser(t, "alice", userByName(t, s, "alice"), user("alice"))
		if got := scanAll(t, s, 0); len(got) != 0 {
			t.Errorf("%d audit events for changes that did not happen", len(got))
		}
	}},
	{"ok/change-with-its-event", func(t *testing.T, s store.Store) {
		// Each change and its audit event are stored together.
		ctx := t.Context()
		if err := s.InsertUser(ctx, user("alice"), changed("e-add"), Seal); err != nil {
			t.Fatal(err)
		}
		if err := s.SetUserDisabled(ctx, "alice", true, changed("e-disable"), Seal); err != nil {
			t.Fatal(err)
		}
		if err := s.SetUserRoles(ctx, "alice", []string{"auditor"}, changed("e-roles"), Seal); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteUser(ctx, "alice", changed("e-delete"), Seal); err != nil {
			t.Fatal(err)
		}
		all := scanAll(t, s, 0)
		checkChain(t, all)
		var ids []string
		for _, e := range all {
			ids = append(ids, e.ID)
		}
		if want := []string{"e-add", "e-disable", "e-roles", "e-delete"}; !slices.Equal(ids, want) {
			t.Fatalf("events %v, want %v", ids, want)
		}
	}},
	{"fail/change-without-its-event", func(t *testing.T, s store.Store) {
		// When the event cannot be stored (its id is taken), the change is not
		// made either.
		ctx := t.Context()
		appendEvents(t, s, event("taken"))
		if err := s.InsertUser(ctx, user("alice"), changed("taken"), Seal); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("InsertUser with an event that cannot be stored = %v, want ErrConflict", err)
		}
		if _, err := s.UserByName(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the user was added without its event (%v)", err)
		}
		insertUsers(t, s, user("bob"))
		if err := s.SetUserDisabled(ctx, "bob", true, changed("taken"), Seal); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("SetUserDisabled with an event that cannot be stored = %v, want ErrConflict", err)
		}
		if err := s.SetUserRoles(ctx, "bob", []string{"auditor"}, changed("taken"), Seal); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("SetUserRoles with an event that cannot be stored = %v, want ErrConflict", err)
		}
		if err := s.DeleteUser(ctx, "bob", changed("taken"), Seal); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("DeleteUser with an event that cannot be stored = %v, want ErrConflict", err)
		}
		sameUser(t, "bob", userByName(t, s, "bob"), user("bob"))
		if got := scanAll(t, s, 0); len(got) != 1 {
			t.Fatalf("%d events, want only the first", len(got))
		}
	}},
	{"ok/roles-canonical", func(t *testing.T, s store.Store) {
		// One spelling per set: sorted byte-wise, without repeats; none is nil.
		for _, tc := range []struct {
			name        string
			roles, want []string
		}{
			{"none", nil, nil},
			{"empty", []string{}, nil},
			{"one", []string{"auditor"}, []string{"auditor"}},
			{"unsorted", []string{"b", "auditor", "B", "a"}, []string{"B", "a", "auditor", "b"}},
			{"repeated", []string{"auditor", "x", "auditor", "x"}, []string{"auditor", "x"}},
		} {
			u := user(tc.name)
			u.Roles = slices.Clone(tc.roles)
			insertUsers(t, s, u)
			if got := userByName(t, s, tc.name).Roles; !slices.Equal(got, tc.want) || (tc.want == nil) != (got == nil) {
				t.Errorf("%s: roles %#v read back as %#v, want %#v", tc.name, tc.roles, got, tc.want)
			}
			if !slices.Equal(u.Roles, tc.roles) {
				t.Errorf("%s: InsertUser changed the caller's roles to %#v", tc.name, u.Roles)
			}
		}
	}},
	{"ok/set-roles", func(t *testing.T, s store.Store) {
		a, b := user("alice"), user("bob")
		b.Roles = []string{"auditor"}
		insertUsers(t, s, a, b)
		ctx := t.Context()
		for i, step := range [][]string{{"auditor"}, {"auditor"}, {"x", "auditor"}, nil, {}, {"auditor"}} { // repeating a set is not an error
			if err := s.SetUserRoles(ctx, "alice", step, nil, nil); err != nil {
				t.Fatalf("step %d: SetUserRoles(alice, %q): %v", i, step, err)
			}
			want := a
			want.Roles = step
			sameUser(t, fmt.Sprintf("step %d: alice", i), userByName(t, s, "alice"), want)
			sameUser(t, fmt.Sprintf("step %d: bob", i), userByName(t, s, "bob"), b)
		}
		// Roles and the disabled state are independent.
		if err := s.SetUserDisabled(ctx, "alice", true, nil, nil); err != nil {
			t.Fatal(err)
		}
		if users := listUsers(t, s); len(users) != 2 || !slices.Equal(users[0].Roles, []string{"auditor"}) || !users[0].Disabled ||
			!slices.Equal(users[1].Roles, []string{"auditor"}) {
			t.Fatalf("ListUsers = %s, want alice (disabled) and bob, both auditors", fmtUsers(users))
		}
	}},
	{"fail/set-roles-not-found", func(t *testing.T, s store.Store) {
		insertUsers(t, s, user("alice"))
		if err := s.SetUserRoles(t.Context(), "ALICE", []string{"auditor"}, changed("e-roles"), Seal); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SetUserRoles(ALICE) = %v, want ErrNotFound", err)
		}
		sameUser(t, "alice", userByName(t, s, "alice"), user("alice"))
		if got := scanAll(t, s, 0); len(got) != 0 {
			t.Errorf("%d audit events for a change that did not happen", len(got))
		}
	}},
	{"fail/role-not-text", func(t *testing.T, s store.Store) {
		// A role that would not read back as written is refused, not altered.
		insertUsers(t, s, user("alice"))
		for _, r := range []string{"", "a\x00b", "a\xffb"} {
			u := user("bob")
			u.Roles = []string{"auditor", r}
			if err := s.InsertUser(t.Context(), u, nil, nil); err == nil {
				t.Errorf("InsertUser with role %q: no error", r)
			}
			if err := s.SetUserRoles(t.Context(), "alice", []string{r}, nil, nil); err == nil {
				t.Errorf("SetUserRoles(alice, %q): no error", r)
			}
		}
		if got := usernames(listUsers(t, s)); !slices.Equal(got, []string{"alice"}) {
			t.Errorf("ListUsers = %v, want [alice]", got)
		}
		sameUser(t, "alice", userByName(t, s, "alice"), user("alice"))
	}},
	{"ok/delete", func(t *testing.T, s store.Store) {
		insertUsers(t, s, user("alice"), user("bob"))
		if err := s.DeleteUser(t.Context(), "alice", nil, nil); err != nil {
			t.Fatalf("DeleteUser(alice) = %v", err)
		}
		if _, err := s.UserByName(t.Context(), "alice"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UserByName(alice) after delete = %v, want ErrNotFound", err)
		}
		if got := usernames(listUsers(t, s)); !slices.Equal(got, []string{"bob"}) {
			t.Errorf("ListUsers after delete = %v, want [bob]", got)
		}
		// The name is free again.
		insertUsers(t, s, user("alice"))
	}},
	{"fail/delete-not-found", func(t *testing.T, s store.Store) {
		insertUsers(t, s, user("alice"))
		if err := s.DeleteUser(t.Context(), "ALICE", changed("e-delete"), Seal); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("DeleteUser(ALICE) = %v, want ErrNotFound", err)
		}
		sameUser(t, "alice", userByName(t, s, "alice"), user("alice"))
	}},
}
