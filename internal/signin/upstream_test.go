package signin_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/internal/signin"
	"github.com/deputy-auth/deputy/internal/store"
)

// storedHash is a well-formed argon2id hash; no password is ever checked against it here.
const storedHash = "$argon2id$v=19$m=65536,t=3,p=4$ZGVwdXR5LXNhbHQtYWxpYw$iDQjdasGWCd0OBY3NBuIknTb1izgN9kkawssEvloEvQ"

// TestSignInUpstream: an upstream identity whose subject is a local account's
// username — configured (alice) or added later to the store (bob, dora) — is
// refused and the refusal recorded, unless the provider links local accounts;
// a linked sign-in to a disabled account is refused too.
func TestSignInUpstream(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, u := range []store.User{{Username: "bob", PasswordHash: storedHash}, {Username: "dora", PasswordHash: storedHash, Disabled: true}} {
		if err := f.st.InsertUser(ctx, u, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name      string
		subject   string
		linkLocal bool
		err       error
	}{
		{name: "ok/not-a-local-account", subject: "carol"},
		{name: "ok/prefixed", subject: "corp:alice"},
		{name: "ok/linked-configured", subject: "alice", linkLocal: true},
		{name: "ok/linked-stored", subject: "bob", linkLocal: true},
		{name: "fail/configured-account", subject: "alice", err: signin.ErrLocalAccount},
		{name: "fail/stored-account", subject: "bob", err: signin.ErrLocalAccount},
		{name: "fail/disabled-account", subject: "dora", err: signin.ErrLocalAccount},
		{name: "fail/linked-disabled", subject: "dora", linkLocal: true, err: signin.ErrLocalDisabled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := f.meta()
			sess, cookie, err := f.svc.SignInUpstream(ctx, signin.Upstream{Subject: tt.subject, IdP: "corp", AMR: []string{"pwd"},
				LinkLocal: tt.linkLocal}, m)
			e := f.one(t, m.RequestID)
			if tt.err == nil {
				if err != nil {
					t.Fatalf("SignInUpstream: %v", err)
				}
				if sess.Subject != tt.subject || sess.IdP != "corp" || cookie == "" {
					t.Errorf("session %+v", sess)
				}
				if e.Type != store.EventSignIn || e.Subject != tt.subject || e.TokenJTI != sess.ID {
					t.Errorf("event %+v", e)
				}
				return
			}
			if !errors.Is(err, tt.err) || cookie != "" || sess.ID != "" {
				t.Fatalf("SignInUpstream = %+v, %q, %v; want %v", sess, cookie, err, tt.err)
			}
			if e.Type != store.EventDenied || e.Decision != store.DecisionDeny || e.Subject != tt.subject ||
				!strings.HasPrefix(e.Reason, "access_denied: sign-in refused") || detail(t, e)["idp"] != "corp" {
				t.Errorf("denial %+v", e)
			}
		})
	}
}
