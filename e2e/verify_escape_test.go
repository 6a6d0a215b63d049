package e2e

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditVerifyEscapesTheStoredID: `deputy audit verify` names the first
// record that breaks the chain by its id as stored — which whoever altered the
// database wrote — and shows it escaped like every other text renderer, so
// that it cannot move the cursor or rewrite the terminal's lines ("intact").
func TestAuditVerifyEscapesTheStoredID(t *testing.T) {
	if onPostgres() {
		t.Skip("alters the SQLite file")
	}
	s := start(t, bankConfig)
	s.token("web-app", "web-secret", clientCredentials(""))
	s.stop()

	db, err := sql.Open("sqlite", filepath.Join(s.dir, "deputy.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	forged := "x\x1b[2K\r\x1b[32maudit chain intact\x1b[0m"
	if _, err := db.Exec(`UPDATE audit_events SET id = ? WHERE seq = 1`, forged); err != nil {
		t.Fatal(err)
	}
	db.Close()

	out, code := s.deputy("audit", "verify")
	if code != 1 || !strings.Contains(out, "BROKEN") {
		t.Fatalf("audit verify of an altered chain: exit %d\n%s", code, out)
	}
	if strings.ContainsAny(out, "\x1b\r") {
		t.Errorf("audit verify wrote the stored id raw: %q", out)
	}
	if !strings.Contains(out, `\x1b[2K\r`) {
		t.Errorf("audit verify does not show the stored id escaped: %q", out)
	}
}
