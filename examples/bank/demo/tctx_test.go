package demo

import (
	"encoding/base64"
	"testing"
)

// TestSignedTctx: the demo prints tctx as the token signs it, in its key order,
// as the audit trace does — not re-encoded with sorted keys.
func TestSignedTctx(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	tests := []struct {
		name, raw, want string
		ok              bool
	}{
		{"ok/signed-order", enc([]byte(`{"alg":"ES256"}`)) + "." + enc([]byte(`{"txn":"t","tctx":{"payment":{"to":"dave","amount":"250.00"}}}`)) + ".sig",
			`{"payment":{"to":"dave","amount":"250.00"}}`, true},
		{"ok/none", "e30." + enc([]byte(`{"txn":"t"}`)) + ".sig", ``, true},
		{"fail/not-compact", "a.b", "", false},
		{"fail/payload-not-base64url", "e30.!!.sig", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := signedTctx(tt.raw)
			if tt.ok != (err == nil) || got != tt.want {
				t.Fatalf("signedTctx = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
