package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// UseNonce records key as used until expiresAt. A nonce is expired from its
// expiresAt on; a key recorded before and not expired now is store.ErrConflict, an
// expired one is replaced.
func (db *DB) UseNonce(ctx context.Context, key string, expiresAt time.Time) error {
	s, err := db.ws.get(ctx, db.d.q.useNonce)
	if err != nil {
		return db.fail("use nonce", err)
	}
	res, err := s.ExecContext(ctx, store.CleanText(key), micros(expiresAt), micros(time.Now()))
	if err != nil {
		return db.fail("use nonce", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return db.fail("use nonce", err)
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: nonce %q already used: %w", key, store.ErrConflict)
	}
	return nil
}

// PurgeNonces deletes the nonces expired at t (expiresAt not after t).
func (db *DB) PurgeNonces(ctx context.Context, t time.Time) error {
	s, err := db.ws.get(ctx, db.d.q.purgeNonces)
	if err != nil {
		return db.fail("purge nonces", err)
	}
	if _, err := s.ExecContext(ctx, micros(t)); err != nil {
		return db.fail("purge nonces", err)
	}
	return nil
}
