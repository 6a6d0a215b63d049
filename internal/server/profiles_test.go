package server

import (
	"context"
	"maps"
	"testing"

	"github.com/deputy-auth/deputy/internal/account"
	"github.com/deputy-auth/deputy/internal/config"
)

// TestProfileOf: the claims of ID tokens and userinfo are those of the sign-in
// the token comes from. A local account's go to a local sign-in, or to one
// through a provider linked to local accounts; never to a subject of another
// provider, or of unknown origin, that has the same name.
func TestProfileOf(t *testing.T) {
	accounts, err := account.NewDirectory([]config.User{{Username: "alice",
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$ZGVwdXR5LXNhbHQtYWxpYw$iDQjdasGWCd0OBY3NBuIknTb1izgN9kkawssEvloEvQ",
		Claims:       map[string]string{"email": "alice@bank.example"}}}, nil, account.Options{})
	if err != nil {
		t.Fatal(err)
	}
	remembered := newClaimCache(10)
	remembered.put("corp", "alice", map[string]string{"email": "alice@corp.example"})
	remembered.put("partner", "alice", map[string]string{"email": "alice@partner.example"})
	remembered.put("partner", "zoe", map[string]string{"email": "zoe@partner.example"})
	linked := map[string]bool{"corp": false, "partner": true}
	tests := []struct {
		name, subject, idp, email string
	}{
		{"ok/local", "alice", "local", "alice@bank.example"},
		{"ok/upstream-own-claims", "alice", "corp", "alice@corp.example"},
		{"ok/linked-local-account", "alice", "partner", "alice@bank.example"},
		{"ok/linked-no-local-account", "zoe", "partner", "zoe@partner.example"},
		{"fail/local-unknown", "zoe", "local", ""},
		{"fail/unknown-origin", "alice", "", ""},
		{"fail/unknown-provider", "alice", "elsewhere", ""},
		{"fail/upstream-never-remembered", "bob", "corp", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := profileOf(context.Background(), accounts, remembered, linked, tt.subject, tt.idp)
			want := map[string]string(nil)
			if tt.email != "" {
				want = map[string]string{"email": tt.email}
			}
			if !maps.Equal(got, want) {
				t.Errorf("profileOf(%q, %q) = %v, want %v", tt.subject, tt.idp, got, want)
			}
		})
	}
}
