package server_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/internal/store"
)

// TestNotReadyWhenRevocationsCannotBeRead: a node whose database answers but
// whose revocations cannot be read (here the table is gone: the revocations
// other nodes and `deputy users disable` record never reach it) says it is not
// ready, rather than go on accepting tokens revoked elsewhere.
func TestNotReadyWhenRevocationsCannotBeRead(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Dev(dir)
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetRevocationsStale(300 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Maintain(ctx)
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("Ready = %v", err)
	}

	db, err := sql.Open("sqlite", cfg.Storage.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if filepath.Dir(cfg.Storage.DSN) != dir {
		t.Fatalf("dev storage %q is not in the test's directory", cfg.Storage.DSN)
	}
	if _, err := db.Exec("DROP TABLE revocations"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := s.Ready(ctx)
		if errors.Is(err, store.ErrUnavailable) {
			t.Logf("not ready: %v", err)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ready = %v 15s after the revocations became unreadable, want ErrUnavailable", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
