package sqlstore

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/store/storetest"
)

// TestAppendSurvivesKill appends in a child process, which prints each event id once
// Append has returned, kills it with SIGKILL mid-stream and checks that every
// printed event is in the database and the chain is intact. (Power loss is covered
// by synchronous=FULL, checked in TestSettings; a test cannot pull the plug.)
func TestAppendSurvivesKill(t *testing.T) {
	if dsn := os.Getenv("SQLSTORE_KILL_CHILD_DSN"); dsn != "" {
		appendForever(t, dsn)
		return
	}
	if testing.Short() {
		t.Skip("spawns a process")
	}
	dsn := tempDSN(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestAppendSurvivesKill$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SQLSTORE_KILL_CHILD_DSN="+dsn)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	lines := bufio.NewScanner(out)
	for len(acked) < 200 && lines.Scan() {
		if id, ok := strings.CutPrefix(lines.Text(), "appended "); ok {
			acked = append(acked, id)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if len(acked) < 200 {
		t.Fatalf("child acknowledged %d appends before it stopped", len(acked))
	}

	db := openFile(t, dsn)
	for _, id := range acked {
		if _, err := db.EventByID(t.Context(), id); err != nil {
			t.Fatalf("acknowledged event %s lost: %v", id, err)
		}
	}
	var prev []byte
	var seq int64
	err = db.Scan(t.Context(), 0, func(e store.AuditEvent) error {
		seq++
		if e.Seq != seq || string(e.PrevHash) != string(prev) {
			return fmt.Errorf("chain broken at Seq %d", e.Seq)
		}
		prev = e.Hash
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func appendForever(t *testing.T, dsn string) {
	db := openFile(t, dsn)
	for i := 0; ; i++ {
		e := &store.AuditEvent{ID: fmt.Sprintf("e%d", i), Time: time.Now(), Type: store.EventTokenIssued}
		if err := db.Append(t.Context(), []*store.AuditEvent{e}, storetest.Seal); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("appended %s\n", e.ID)
	}
}
