package e2e

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestKillUnderLoad: deputy killed with SIGKILL while it serves exchanges loses
// nothing it answered. Every token a client received — client credentials and
// exchanged — has its issuance record in the audit trail after a restart, and the
// hash chain verifies. Requests cut off by the kill may or may not be recorded;
// none answered 200 without its record.
func TestKillUnderLoad(t *testing.T) {
	s := start(t, bankConfig)
	t0 := s.token("web-app", "web-secret", clientCredentials("")).str("access_token")

	var (
		mu       sync.Mutex
		received []string // jtis of tokens answered 200
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range 16 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				form := exchangeForm(t0, "audience", "https://api2.example", "scope", "ledger:read")
				id, secret := "api1", "api1-secret"
				if w%4 == 0 {
					form, id, secret = clientCredentials(""), "web-app", "web-secret"
				}
				req, _ := http.NewRequest(http.MethodPost, s.endpoint("token_endpoint"), strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(id, secret)
				resp, err := client.Do(req)
				if err != nil {
					continue // the server is gone; keep trying until told to stop
				}
				var body struct {
					AccessToken string `json:"access_token"`
				}
				err = json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || err != nil || body.AccessToken == "" {
					continue
				}
				jti, _ := claims(t, body.AccessToken)["jti"].(string)
				mu.Lock()
				received = append(received, jti)
				mu.Unlock()
			}
		})
	}
	// Let load build up, then kill mid-stream.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(received)
		mu.Unlock()
		if n >= 300 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s.exited
	close(stop)
	wg.Wait()
	mu.Lock()
	got := append([]string(nil), received...)
	mu.Unlock()
	if len(got) < 50 {
		t.Fatalf("only %d tokens received before the kill", len(got))
	}

	// The chain verifies, and every token handed out has its record.
	out, code := s.deputy("audit", "verify")
	if code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("audit verify after kill -9: exit %d\n%s", code, out)
	}
	out, code = s.deputy("audit", "query", "--json")
	if code != 0 {
		t.Fatalf("audit query: exit %d\n%s", code, out)
	}
	recorded := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			Type     string `json:"type"`
			Decision string `json:"decision"`
			TokenJTI string `json:"token_jti"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if e.Decision == "allow" && (e.Type == "token.issued" || e.Type == "token.exchanged") {
			recorded[e.TokenJTI] = true
		}
	}
	missing := 0
	for _, jti := range got {
		if !recorded[jti] {
			missing++
			if missing <= 5 {
				t.Errorf("token %s was answered but has no issuance record", jti)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d tokens answered without their audit record", missing, len(got))
	}
	t.Logf("%d tokens answered before kill -9, all recorded; %d issuance records", len(got), len(recorded))

	// And the node starts again on the same database and keeps appending.
	s.run()
	s.token("web-app", "web-secret", clientCredentials(""))
	if out, code := s.deputy("audit", "verify"); code != 0 {
		t.Fatalf("audit verify after restart: exit %d\n%s", code, out)
	}
}
