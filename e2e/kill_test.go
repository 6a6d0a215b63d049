package e2e

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
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

// TestKillDuringRevocations: deputy killed with SIGKILL while it revokes tokens
// (each revocation cascading to a token exchanged from the revoked one) leaves no
// token revoked without its token.revoked record: after the kill, every row of
// the revocations table is listed by a revocation event of the trail, every
// revocation answered 200 is among them, and the chain verifies.
func TestKillDuringRevocations(t *testing.T) {
	skipOnPostgres(t, "reads the SQLite file")
	s := start(t, bankConfig)
	client := &http.Client{Timeout: 5 * time.Second}
	post := func(endpoint, id, secret string, form url.Values) (reply, error) {
		return tryPost(client, s.endpoint(endpoint), basic(id, secret), "application/x-www-form-urlencoded", form.Encode())
	}
	// First the tokens, each with one exchanged from it; then nothing but
	// revocations, so that the kill lands while the writer revokes.
	const workers, perWorker = 12, 40
	tokens := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range perWorker {
				r, err := post("token_endpoint", "web-app", "web-secret", clientCredentials(""))
				if err != nil || r.Status != 200 {
					t.Errorf("client credentials: %v %d %s", err, r.Status, r.Raw)
					return
				}
				t0 := r.str("access_token")
				if r, err := post("token_endpoint", "api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example", "scope", "ledger:read")); err != nil || r.Status != 200 {
					t.Errorf("exchange: %v %d %s", err, r.Status, r.Raw)
					return
				}
				tokens[w] = append(tokens[w], t0)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var (
		mu       sync.Mutex
		answered []string // jtis whose revocation was answered 200
	)
	stop := make(chan struct{})
	for w := range workers {
		wg.Go(func() {
			for _, t0 := range tokens[w] {
				select {
				case <-stop:
					return
				default:
				}
				r, err := post("revocation_endpoint", "web-app", "web-secret", url.Values{"token": {t0}})
				if err != nil || r.Status != 200 {
					continue
				}
				jti, _ := claims(t, t0)["jti"].(string)
				mu.Lock()
				answered = append(answered, jti)
				mu.Unlock()
			}
		})
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(answered)
		mu.Unlock()
		if n >= workers*perWorker/2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s.exited
	close(stop)
	wg.Wait()
	mu.Lock()
	got := append([]string(nil), answered...)
	mu.Unlock()
	if len(got) < 20 {
		t.Fatalf("only %d revocations answered before the kill", len(got))
	}

	if out, code := s.deputy("audit", "verify"); code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("audit verify after kill -9: exit %d\n%s", code, out)
	}
	out, code := s.deputy("audit", "query", "--type", "token.revoked", "--json")
	if code != 0 {
		t.Fatalf("audit query: exit %d\n%s", code, out)
	}
	recorded := map[string]bool{} // jtis a revocation event lists
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			Detail struct {
				Revoked []string `json:"revoked"`
			} `json:"detail"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		for _, j := range e.Detail.Revoked {
			recorded[j] = true
		}
	}
	db, err := sql.Open("sqlite", filepath.Join(s.dir, "deputy.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT jti FROM revocations")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var stored, missing int
	for rows.Next() {
		var jti string
		if err := rows.Scan(&jti); err != nil {
			t.Fatal(err)
		}
		stored++
		if !recorded[jti] {
			missing++
			if missing <= 5 {
				t.Errorf("token %s is revoked in the store but no token.revoked record lists it", jti)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if missing > 0 {
		t.Fatalf("%d of %d revocations without their record", missing, stored)
	}
	for _, jti := range got {
		if !recorded[jti] {
			t.Errorf("revocation of %s was answered 200 but is not on record", jti)
		}
	}
	t.Logf("%d revocations answered before kill -9; %d revoked tokens in the store, each on record", len(got), stored)
}
