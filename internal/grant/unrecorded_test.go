package grant_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// failIssuance makes every commit of an allowed token.issued event fail in the
// fixture's SQLite database — as a full disk or a lost connection fails the
// audit trail's commit while the rest of the database still answered — until
// the returned function is called.
func failIssuance(t *testing.T, f *fixture) (restore func()) {
	t.Helper()
	db, err := sql.Open("sqlite", f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TRIGGER fail_issuance BEFORE INSERT ON audit_events
		WHEN NEW.type = 'token.issued' AND NEW.decision = 'allow'
		BEGIN SELECT RAISE(ABORT, 'the audit trail cannot be written'); END`); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if _, err := db.Exec(`DROP TRIGGER fail_issuance`); err != nil {
			t.Fatal(err)
		}
	}
}

// withTrail is the fixture's dispatcher with the code and refresh grants
// reading the trail, as internal/server assembles them.
func withTrail(f *fixture) *grant.Dispatcher {
	return grant.NewDispatcher(f.clients, f.audit, map[string]grant.Grant{
		oauth.GrantAuthorizationCode: &grant.AuthorizationCode{Codes: f.st, Revoker: f.audit, Users: f.users, Trail: f.st},
		oauth.GrantRefreshToken:      &grant.RefreshToken{Store: f.st, Revoker: f.audit, Users: f.users, Trail: f.st},
	}, discard)
}

// TestRefreshAfterUnrecordedRotation: a refresh whose tokens could not be
// recorded (the audit commit failed) handed nothing out, so it spends nothing:
// the client's retry is a refresh like the first, not a reuse that revokes the
// family and signs the user out. A token spent by a rotation that recorded
// nothing at all (its node died between the two commits) is refused, and no
// reuse either.
func TestRefreshAfterUnrecordedRotation(t *testing.T) {
	f := newFixture(t, nil)
	d := withTrail(f)
	refresh := func(rt string) (*oauth.TokenResponse, error) {
		return d.Token(context.Background(), f.request("web", "grant_type", oauth.GrantRefreshToken, "refresh_token", rt))
	}

	t.Run("ok/retry-after-a-failed-record", func(t *testing.T) {
		first, ac := signedIn(t, f, nil)
		restore := failIssuance(t, f)
		resp, err := refresh(first.RefreshToken)
		if resp != nil {
			t.Fatalf("tokens handed out without their record: %+v", resp)
		}
		wantCode(t, err, oauth.CodeTemporarilyUnavail)
		restore()
		second, err := refresh(first.RefreshToken)
		if err != nil {
			t.Fatalf("the client's retry once the trail can be written: %v", err)
		}
		if f.tokens.IsRevoked(ac.ID) {
			t.Fatal("the retry was taken for a reuse: family revoked")
		}
		if _, err := refresh(second.RefreshToken); err != nil {
			t.Fatalf("the next refresh: %v", err)
		}
	})

	t.Run("fail/spent-with-nothing-recorded-is-no-reuse", func(t *testing.T) {
		first, ac := signedIn(t, f, nil)
		if _, err := f.st.UseRefreshToken(context.Background(), sha(first.RefreshToken), f.now); err != nil {
			t.Fatal(err)
		}
		resp, err := refresh(first.RefreshToken)
		if resp != nil {
			t.Fatalf("response %+v", resp)
		}
		wantCode(t, err, oauth.CodeInvalidGrant)
		if f.tokens.IsRevoked(ac.ID) {
			t.Fatal("a token spent with nothing recorded was taken for a reuse: family revoked")
		}
	})

	t.Run("fail/reuse-after-a-recorded-rotation-revokes", func(t *testing.T) {
		first, ac := signedIn(t, f, nil)
		if _, err := refresh(first.RefreshToken); err != nil {
			t.Fatal(err)
		}
		_, err := refresh(first.RefreshToken)
		wantCode(t, err, oauth.CodeInvalidGrant)
		if !f.tokens.IsRevoked(ac.ID) {
			t.Fatal("reuse did not revoke the family")
		}
	})
}

// TestCodeAfterUnrecordedRedemption: likewise for an authorization code: a
// redemption whose tokens could not be recorded leaves the code redeemable, and
// the retry revokes nothing.
func TestCodeAfterUnrecordedRedemption(t *testing.T) {
	f := newFixture(t, nil)
	d := withTrail(f)
	redeem := func(code string) (*oauth.TokenResponse, error) {
		return d.Token(context.Background(), f.request("web", "grant_type", oauth.GrantAuthorizationCode, "code", code,
			"redirect_uri", webRedirect, "code_verifier", verifier))
	}

	t.Run("ok/retry-after-a-failed-record", func(t *testing.T) {
		code, ac := f.code(t, nil)
		restore := failIssuance(t, f)
		resp, err := redeem(code)
		if resp != nil {
			t.Fatalf("tokens handed out without their record: %+v", resp)
		}
		wantCode(t, err, oauth.CodeTemporarilyUnavail)
		restore()
		got, err := redeem(code)
		if err != nil {
			t.Fatalf("the client's retry once the trail can be written: %v", err)
		}
		if f.tokens.IsRevoked(ac.ID) {
			t.Fatal("the retry was taken for a replay: the code's tokens revoked")
		}
		if _, err := f.tokens.Verify(got.AccessToken, []string{oauth.JWTTypeAccessToken}, f.now); err != nil {
			t.Fatalf("access token of the retry: %v", err)
		}
	})

	t.Run("fail/redeemed-with-nothing-recorded-is-no-replay", func(t *testing.T) {
		code, ac := f.code(t, nil)
		if _, err := f.st.RedeemCode(context.Background(), sha(code), f.now); err != nil {
			t.Fatal(err)
		}
		_, err := redeem(code)
		wantCode(t, err, oauth.CodeInvalidGrant)
		if f.tokens.IsRevoked(ac.ID) {
			t.Fatal("a code redeemed with nothing recorded was taken for a replay")
		}
		evs, err := f.st.Query(context.Background(), store.AuditFilter{Type: store.EventTokenRevoked})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.TokenJTI == ac.ID {
				t.Fatalf("revocation recorded: %+v", e)
			}
		}
	})
}
