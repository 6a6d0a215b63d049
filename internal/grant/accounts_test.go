package grant_test

import (
	"context"
	"errors"
	"testing"

	"github.com/deputy-auth/deputy/internal/account"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// localAccounts is internal/server's grant.Accounts: local users must still have
// an enabled account.
type localAccounts struct{ d *account.Directory }

func (a localAccounts) Usable(ctx context.Context, subject, idp string) error {
	if idp != "local" {
		return nil
	}
	return a.d.Usable(ctx, subject)
}

// TestDisabledAccountAtUse: a code or refresh token of a user whose account was
// disabled (or deleted) since the sign-in is refused when used, invalid_grant —
// even with nothing revoked yet (the revocation that disabling runs may not have
// reached this node).
func TestDisabledAccountAtUse(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	hash, err := account.HashPassword("alice-password")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.InsertUser(ctx, store.User{Username: "alice", PasswordHash: hash, CreatedAt: f.now}, nil, nil); err != nil {
		t.Fatal(err)
	}
	dir, err := account.NewDirectory(nil, f.st, account.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.users.Accounts = localAccounts{dir}

	first, _ := signedIn(t, f, nil) // enabled: issued
	pending, _ := f.code(t, nil)
	upstream, _ := f.code(t, func(c *store.AuthCode) { c.IdP = "corp"; c.Subject = "alice" })
	if err := f.st.SetUserDisabled(ctx, "alice", true, nil, nil); err != nil {
		t.Fatal(err)
	}
	for name, try := range map[string]func() error{
		"fail/refresh-of-disabled-user": func() error { _, _, err := f.refresh("web", first.RefreshToken); return err },
		"fail/code-of-disabled-user":    func() error { _, _, err := f.redeem(pending); return err },
	} {
		t.Run(name, func(t *testing.T) {
			var oe *oauth.Error
			if err := try(); !errors.As(err, &oe) || oe.Code != oauth.CodeInvalidGrant {
				t.Fatalf("err %v, want invalid_grant", err)
			}
		})
	}
	t.Run("ok/upstream-user-of-the-same-name", func(t *testing.T) {
		// Not deputy's account: its state does not apply.
		if _, _, err := f.redeem(upstream); err != nil {
			t.Fatal(err)
		}
	})
	if revs, err := f.st.ListRevocations(ctx, f.now); err != nil || len(revs) != 0 {
		t.Errorf("revocations %v, %v: the refusals came from the account check alone", revs, err)
	}
}
