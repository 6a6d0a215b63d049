package e2e

import (
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func (s *server) jwksKids() []string {
	s.t.Helper()
	resp, err := httpClient.Get(s.endpoint("jwks_uri"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		s.t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		if k["d"] != nil || k["p"] != nil {
			s.t.Fatalf("JWKS publishes private key material: %v", k)
		}
		kids = append(kids, k["kid"].(string))
	}
	return kids
}

// TestKeyRotation: `deputy keys rotate` on a running server publishes the new keys
// (one per algorithm deputy signs with: ES256 for access tokens, RS256 for ID
// tokens) before they sign, and tokens signed by the old key keep verifying.
func TestKeyRotation(t *testing.T) {
	s := start(t, bankConfig)
	before := s.jwksKids()
	if len(before) != 2 {
		t.Fatalf("JWKS %v, want two keys (ES256, RS256)", before)
	}
	oldTok := s.token("web-app", "web-secret", clientCredentials("")).str("access_token")
	oldKid := header(t, oldTok)["kid"].(string)
	if !slices.Contains(before, oldKid) {
		t.Fatalf("token kid %v, JWKS %v", oldKid, before)
	}

	const publishFor = 8 * time.Second
	out, code := s.deputy("keys", "rotate", "--publish-for", publishFor.String())
	if code != 0 {
		t.Fatalf("keys rotate: %s", out)
	}
	rotated := time.Now()
	m := regexp.MustCompile(`new key (\S+) \(ES256\)`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "(RS256)") {
		t.Fatalf("keys rotate names no new ES256 and RS256 keys: %s", out)
	}
	newKid := m[1]
	var kids []string
	for deadline := time.Now().Add(7 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if kids = s.jwksKids(); len(kids) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new keys not published within 7s: %v", kids)
		}
	}
	if !slices.Contains(kids, newKid) {
		t.Fatalf("JWKS %v lacks the new key %s", kids, newKid)
	}
	if time.Since(rotated) < publishFor-time.Second {
		tok := s.token("web-app", "web-secret", clientCredentials("")).str("access_token")
		if header(t, tok)["kid"] != oldKid {
			t.Fatalf("the new key signs before its publication period ended")
		}
	}
	time.Sleep(time.Until(rotated.Add(publishFor + time.Second)))
	tok := s.token("web-app", "web-secret", clientCredentials("")).str("access_token")
	if header(t, tok)["kid"] != newKid {
		t.Fatalf("token kid %v after activation, want %s", header(t, tok)["kid"], newKid)
	}
	// The old key's token is still good, and exchangeable.
	if in := s.post("introspection_endpoint", "web-app", "web-secret", url.Values{"token": {oldTok}}); in.Body["active"] != true {
		t.Fatalf("old-key token inactive: %s", in.Raw)
	}
	s.token("api1", "api1-secret", exchangeForm(oldTok, "audience", "https://api2.example"))
	if out, _ := s.deputy("audit", "query", "--type", "key.rotated"); !strings.Contains(out, newKid) {
		t.Errorf("rotation not audited: %s", out)
	}
}
