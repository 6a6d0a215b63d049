package account

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/internal/config"
)

func TestNewStoredUser(t *testing.T) {
	cfg := config.Dev(t.TempDir()) // users alice and bob; clients web-app, api1, …
	tests := []struct {
		name, user, password string
		claims               map[string]string
		roles                []string
		want                 string // part of the error; "" for none
	}{
		{"ok/plain", "carol", "s3cret", nil, nil, ""},
		{"ok/auditor", "carol", "s3cret", nil, []string{"auditor"}, ""},
		{"fail/role-unknown", "erin", "s3cret", nil, []string{"auditor", "admin"}, `roles[1]: "admin" is not one of auditor`},
		{"fail/role-twice", "erin", "s3cret", nil, []string{"auditor", "auditor"}, `roles[1]: "auditor" is already roles[0]`},
		{"ok/claims", "dave@example", "s3cret", map[string]string{"email": "dave@example", "name": "Dave"}, nil, ""},
		{"ok/unicode", "zoë", "s3cret", nil, nil, ""},
		{"fail/empty-password", "erin", "", nil, nil, "password is empty"},
		{"fail/empty-username", "", "s3cret", nil, nil, "username is empty"},
		{"fail/white-space", "erin smith", "s3cret", nil, nil, "white space"},
		{"fail/non-breaking-space", "erin\u00a0smith", "s3cret", nil, nil, "white space"},
		{"fail/control", "erin\x00", "s3cret", nil, nil, "control"},
		{"fail/bidi-override", "erin\u202eevil", "s3cret", nil, nil, "control"},
		{"fail/not-utf8", "erin\xff", "s3cret", nil, nil, "not UTF-8"},
		{"fail/too-long", strings.Repeat("e", MaxUsernameBytes+1), "s3cret", nil, nil, "longer than"},
		{"fail/client-id", "api1", "s3cret", nil, nil, "client id"},
		{"fail/configured-user", "alice", "s3cret", nil, nil, "configuration file"},
		{"fail/reserved-claim", "erin", "s3cret", map[string]string{"email": "e@x", "sub": "admin"}, nil, "claims.sub: is a claim deputy sets itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := NewStoredUser(cfg, tt.user, tt.password, tt.claims, tt.roles, t0)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v; want one saying %q", err, tt.want)
				}
				if tt.password == "" && !errors.Is(err, ErrEmptyPassword) {
					t.Errorf("err = %v; want ErrEmptyPassword", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Username != tt.user || u.Disabled || !u.CreatedAt.Equal(t0) || len(u.Claims) != len(tt.claims) ||
				!slices.Equal(u.Roles, tt.roles) {
				t.Errorf("user %+v", u)
			}
			if ok, err := VerifyPassword(u.PasswordHash, tt.password); !ok || err != nil {
				t.Errorf("stored hash does not verify the password: %v, %v", ok, err)
			}
		})
	}
}
