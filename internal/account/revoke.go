package account

import (
	"context"
	"fmt"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// Revoker revokes a token and everything derived from it, recording the revocation
// in the audit trail in the same commit (audit.Writer).
type Revoker interface {
	Revoke(ctx context.Context, r store.Revocation, e *store.AuditEvent) ([]store.Revocation, error)
}

// RevokeSignIns revokes every sign-in session of username that the audit trail
// records, and so everything issued in them down the lineage however deep: codes,
// access, refresh and ID tokens, and every token exchanged from them. Each session
// is one revocation with its token.revoked event giving reason. It is what
// disabling or deleting an account does; running it again revokes what was issued
// since. It returns how many tokens (sessions included) are revoked.
func RevokeSignIns(ctx context.Context, trail store.AuditLog, rev Revoker, username, reason string, now time.Time) (int, error) {
	signIns, err := trail.Query(ctx, store.AuditFilter{Subject: username, Type: store.EventSignIn})
	if err != nil {
		return 0, fmt.Errorf("account: the sign-ins of %q: %w", username, err)
	}
	seen := map[string]bool{}
	n := 0
	for _, e := range signIns {
		// Sessions of users of upstream providers have subjects of their own
		// (subject_prefix) unless configured to be the local account's.
		if e.Decision != store.DecisionAllow || e.TokenJTI == "" || e.SubjectIssuer != "" || seen[e.TokenJTI] {
			continue
		}
		seen[e.TokenJTI] = true
		revs, err := rev.Revoke(ctx, store.Revocation{JTI: e.TokenJTI, ExpiresAt: e.TokenExpires, RevokedAt: now, Reason: reason},
			&store.AuditEvent{Subject: username, Reason: reason})
		if err != nil {
			return n, fmt.Errorf("account: revoke session %s of %q: %w", e.TokenJTI, username, err)
		}
		n += len(revs)
	}
	return n, nil
}
