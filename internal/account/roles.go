package account

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/deputy-auth/deputy/internal/config"
)

// RoleAuditor opens the audit explorer (/audit/ui); it is [config.RoleAuditor],
// where the list of known roles is kept.
const RoleAuditor = config.RoleAuditor

// Roles returns the roles of the enabled local account named username (sorted,
// without repeats): those of users[].roles for a configured account, those
// stored otherwise. A disabled, deleted or unknown account has none (nil, nil);
// an error is the store's. The answer is the directory's of now: a configured
// account's roles follow the configuration file on reload, a stored account's
// `deputy users roles` at once.
func (d *Directory) Roles(ctx context.Context, username string) ([]string, error) {
	acct, err := d.Lookup(ctx, username)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return acct.Roles, nil
}

// HasRole reports whether the enabled local account named username holds role;
// false, with the store's error, when it cannot be told.
func (d *Directory) HasRole(ctx context.Context, username, role string) (bool, error) {
	roles, err := d.Roles(ctx, username)
	return slices.Contains(roles, role), err
}

// CheckRoles refuses a role that is not one of [config.KnownRoles], and a role
// given twice.
func CheckRoles(roles []string) error {
	known := config.KnownRoles()
	for i, r := range roles {
		if !slices.Contains(known, r) {
			return fmt.Errorf("account: %q is not a role (known: %s)", r, strings.Join(known, ", "))
		}
		if slices.Contains(roles[:i], r) {
			return fmt.Errorf("account: role %q given twice", r)
		}
	}
	return nil
}

// roleSet is roles sorted, without repeats, in a new slice; nil when none.
func roleSet(roles []string) []string {
	if len(roles) == 0 {
		return nil
	}
	return slices.Compact(slices.Sorted(slices.Values(roles)))
}
