package account

import (
	"context"
	"errors"
)

// Exists reports whether username names a local account — configured or
// stored, enabled or disabled — and whether that account is disabled. Sign-in
// through an upstream provider asks it, at sign-in time, so that an upstream
// identity never takes a local account's name unless the configuration links
// the two (upstream_idps[].link_local_accounts).
func (d *Directory) Exists(ctx context.Context, username string) (exists, disabled bool, err error) {
	_, _, disabled, err = d.find(ctx, username)
	switch {
	case errors.Is(err, ErrNotFound):
		return false, false, nil
	case err != nil:
		return false, false, err
	}
	return true, disabled, nil
}
