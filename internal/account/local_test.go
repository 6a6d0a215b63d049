package account

import (
	"context"
	"errors"
	"testing"
)

// TestExists: configured and stored accounts, enabled or disabled, exist; a
// store failure is an error, never "no such account" (an upstream sign-in would
// then take the name).
func TestExists(t *testing.T) {
	d, st := fixture(t, Options{})
	tests := []struct {
		name, user       string
		exists, disabled bool
	}{
		{"ok/configured", "alice", true, false},
		{"ok/configured-clear-password", "dev", true, false},
		{"ok/stored", "bob", true, false},
		{"ok/stored-disabled", "carol", true, true},
		{"ok/none", "dave", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exists, disabled, err := d.Exists(context.Background(), tt.user)
			if err != nil || exists != tt.exists || disabled != tt.disabled {
				t.Errorf("Exists(%q) = %v, %v, %v; want %v, %v", tt.user, exists, disabled, err, tt.exists, tt.disabled)
			}
		})
	}
	t.Run("fail/store-error", func(t *testing.T) {
		st.mu.Lock()
		st.err = errors.New("database is gone")
		st.mu.Unlock()
		if exists, _, err := d.Exists(context.Background(), "dave"); err == nil {
			t.Errorf("Exists with the store failing = %v, nil", exists)
		}
	})
}
