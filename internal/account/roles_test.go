package account

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/store"
)

func TestRoles(t *testing.T) {
	auditor := []string{RoleAuditor}
	tests := []struct {
		name, user string
		want       []string
	}{
		{"ok/configured", "dev", auditor},
		{"ok/configured-none", "alice", nil}, // the stored alice is an auditor, but shadowed
		{"ok/stored", "bob", auditor},
		{"fail/disabled", "carol", nil},
		{"fail/unknown", "zoe", nil},
		{"fail/case-differs", "Bob", nil},
		{"fail/empty", "", nil},
	}
	d, _ := fixture(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.Roles(t.Context(), tt.user)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("Roles(%q) = %q, %v; want %q", tt.user, got, err, tt.want)
			}
			has, err := d.HasRole(t.Context(), tt.user, RoleAuditor)
			if err != nil || has != (tt.want != nil) {
				t.Errorf("HasRole(%q, auditor) = %t, %v", tt.user, has, err)
			}
		})
	}
}

// TestRolesFollowChanges: a stored account's roles are read at each call, so a
// change, a disable and a delete count at once.
func TestRolesFollowChanges(t *testing.T) {
	d, st := fixture(t, Options{})
	ctx := t.Context()
	steps := []struct {
		name   string
		change func() error
		want   []string
	}{
		{"ok/removed", func() error { return st.SetUserRoles(ctx, "bob", nil, nil, nil) }, nil},
		{"ok/added-back", func() error { return st.SetUserRoles(ctx, "bob", []string{RoleAuditor}, nil, nil) }, []string{RoleAuditor}},
		{"fail/disabled", func() error { return st.SetUserDisabled(ctx, "bob", true, nil, nil) }, nil},
		{"ok/enabled", func() error { return st.SetUserDisabled(ctx, "bob", false, nil, nil) }, []string{RoleAuditor}},
		{"fail/deleted", func() error { return st.DeleteUser(ctx, "bob", nil, nil) }, nil},
	}
	for _, s := range steps {
		if err := s.change(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got, err := d.Roles(ctx, "bob"); err != nil || !slices.Equal(got, s.want) {
			t.Errorf("%s: Roles(bob) = %q, %v; want %q", s.name, got, err, s.want)
		}
	}
}

// TestRolesReconfigure: a configured account's roles are those of the file last
// loaded; roles taken out of it are gone, and the old directory keeps its own.
func TestRolesReconfigure(t *testing.T) {
	d, _ := fixture(t, Options{})
	n, err := d.Reconfigure([]config.User{
		{Username: "dev", Password: "dev-pw"},
		{Username: "alice", Password: "alice-pw", Roles: []string{RoleAuditor, RoleAuditor}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		d     *Directory
		which string
		user  string
		want  []string
	}{
		{n, "reloaded", "dev", nil},
		{n, "reloaded", "alice", []string{RoleAuditor}},
		{n, "reloaded", "bob", []string{RoleAuditor}},
		{d, "old", "dev", []string{RoleAuditor}},
		{d, "old", "alice", nil},
	} {
		if got, err := tc.d.Roles(t.Context(), tc.user); err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s directory: Roles(%s) = %q, %v; want %q", tc.which, tc.user, got, err, tc.want)
		}
	}
}

func TestRolesStoreError(t *testing.T) {
	d, st := fixture(t, Options{})
	st.err = errors.New("database unreachable")
	if got, err := d.Roles(t.Context(), "bob"); err == nil || got != nil {
		t.Errorf("Roles with a failing store = %q, %v; want an error", got, err)
	}
	if has, err := d.HasRole(t.Context(), "bob", RoleAuditor); err == nil || has {
		t.Errorf("HasRole with a failing store = %t, %v; want false and an error", has, err)
	}
	// A configured account does not need the store.
	if got, err := d.Roles(t.Context(), "dev"); err != nil || !slices.Equal(got, []string{RoleAuditor}) {
		t.Errorf("Roles(dev) with a failing store = %q, %v", got, err)
	}
}

func TestRolesAreCopies(t *testing.T) {
	d, _ := fixture(t, Options{})
	for _, user := range []string{"dev", "bob"} {
		r, err := d.Roles(t.Context(), user)
		if err != nil || len(r) != 1 {
			t.Fatalf("Roles(%s) = %q, %v", user, r, err)
		}
		r[0] = "root"
		if again, _ := d.Roles(t.Context(), user); !slices.Equal(again, []string{RoleAuditor}) {
			t.Errorf("a caller changed %s's roles: %q", user, again)
		}
	}
}

func TestCheckRoles(t *testing.T) {
	for _, tc := range []struct {
		name  string
		roles []string
		want  string // part of the error; "" for none
	}{
		{"ok/none", nil, ""},
		{"ok/auditor", []string{"auditor"}, ""},
		{"fail/unknown", []string{"auditor", "admin"}, `"admin" is not a role (known: auditor)`},
		{"fail/case", []string{"Auditor"}, `"Auditor" is not a role`},
		{"fail/empty", []string{""}, `"" is not a role`},
		{"fail/twice", []string{"auditor", "auditor"}, `role "auditor" given twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckRoles(tc.roles)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("CheckRoles(%q) = %v; want %q", tc.roles, err, tc.want)
			}
		})
	}
}

var _ store.Users = (*fakeUsers)(nil)
