package signin

import (
	"context"
	"errors"
	"fmt"

	"github.com/deputy-auth/deputy/internal/store"
)

// LocalAccounts tells which usernames local accounts hold (account.Directory).
type LocalAccounts interface {
	// Exists reports whether username names a local account, enabled or not,
	// and whether it is disabled.
	Exists(ctx context.Context, username string) (exists, disabled bool, err error)
}

// Upstream is a person an upstream identity provider authenticated.
type Upstream struct {
	Subject string   // the local subject (the upstream's, with the provider's subject_prefix)
	IdP     string   // the provider's configured name
	AMR     []string // how the upstream authenticated them
	ACR     string
	// LinkLocal is the provider's upstream_idps[].link_local_accounts: its
	// identities may sign in as the local account their subject names.
	LinkLocal bool
}

// Refusals of SignInUpstream; both are recorded as denied sign-ins.
var (
	// ErrLocalAccount: the upstream subject is a local account's username and the
	// provider is not linked to local accounts.
	ErrLocalAccount = errors.New("signin: the upstream identity has the name of a local account, and the provider is not linked to local accounts")
	// ErrLocalDisabled: the provider is linked, and the local account is disabled.
	ErrLocalDisabled = errors.New("signin: the local account is disabled")
)

// SignInUpstream opens a session for a person an upstream provider
// authenticated. Whether the subject names a local account is read now, at
// sign-in: if it does, the sign-in is refused — recorded as a denial and
// returned as ErrLocalAccount — unless the provider is linked to local accounts
// (then a disabled account refuses it with ErrLocalDisabled). Whoever controls
// an upstream account "alice" must not become the local alice by default.
func (s *Service) SignInUpstream(ctx context.Context, u Upstream, m Meta) (store.Session, string, error) {
	if s.Accounts == nil {
		return store.Session{}, "", errors.New("signin: no local account directory to check upstream subjects against")
	}
	exists, disabled, err := s.Accounts.Exists(ctx, u.Subject)
	if err != nil {
		return store.Session{}, "", fmt.Errorf("signin: look up local account %q: %w", u.Subject, err)
	}
	var refusal error
	switch {
	case exists && !u.LinkLocal:
		refusal = ErrLocalAccount
	case exists && disabled:
		refusal = ErrLocalDisabled
	}
	if refusal != nil {
		ev := &store.AuditEvent{
			Type: store.EventDenied, Decision: store.DecisionDeny, ClientID: m.ClientID, Subject: u.Subject,
			Reason:    "access_denied: sign-in refused: " + refusal.Error(),
			RequestID: m.RequestID, RemoteAddr: m.RemoteAddr,
			Detail: detail("idp", u.IdP, "endpoint", "callback"),
		}
		if err := s.Audit.Record(ctx, ev); err != nil {
			return store.Session{}, "", fmt.Errorf("signin: recording a refused sign-in: %w", err)
		}
		return store.Session{}, "", refusal
	}
	return s.Open(ctx, u.Subject, u.IdP, u.AMR, u.ACR, m)
}
