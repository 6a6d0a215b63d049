package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/sdk/dpop"
)

// dpopKey is a service's DPoP key and its RFC 7638 thumbprint.
type dpopKey struct {
	key *ecdsa.PrivateKey
	jkt string
}

func newDPoPKey(t *testing.T) dpopKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := dpop.Thumbprint(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return dpopKey{k, jkt}
}

// tokenWithProof is a token request of client id with a DPoP proof of k (RFC 9449
// §5) made by the SDK's proof maker.
func (s *server) tokenWithProof(t *testing.T, id, secret string, k dpopKey, form url.Values) reply {
	t.Helper()
	u := s.endpoint("token_endpoint")
	proof, err := dpop.NewProof(k.key, jose.ES256, http.MethodPost, u, "", "")
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", basic(id, secret))
	req.Header.Set(dpop.Header, proof)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// cnfJKT is the cnf.jkt of a JWT, "" when it has none.
func cnfJKT(t *testing.T, jwt string) string {
	t.Helper()
	cnf, _ := claims(t, jwt)["cnf"].(map[string]any)
	s, _ := cnf["jkt"].(string)
	return s
}

// TestBoundChain runs the bank chain with every hop DPoP-bound through the built
// binary: web-app's own token is bound to its key; api1, exchanging it without a
// proof, is refused; with a proof of its own key it gets a token bound to that key,
// not web-app's; api2 does the same for api3. `deputy audit trace` shows each hop's
// key, and its JSON carries the whole thumbprints (README "Token exchange rules",
// "Audit trail").
func TestBoundChain(t *testing.T) {
	s := start(t, bankConfig)
	web, api1, api2 := newDPoPKey(t), newDPoPKey(t), newDPoPKey(t)

	r0 := s.tokenWithProof(t, "web-app", "web-secret", web, url.Values{"grant_type": {"client_credentials"}, "scope": {"ledger:read fraud:check"}})
	if r0.Status != 200 || r0.str("token_type") != "DPoP" || cnfJKT(t, r0.str("access_token")) != web.jkt {
		t.Fatalf("web-app's token: %d %s", r0.Status, r0.Raw)
	}
	t0 := r0.str("access_token")

	refused := s.post("token_endpoint", "api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example"))
	wantError(t, refused, 400, "invalid_request")
	if d := refused.str("error_description"); d != "the subject token is sender-constrained; the exchange must be too" {
		t.Errorf("error_description %q", d)
	}

	r1 := s.tokenWithProof(t, "api1", "api1-secret", api1, exchangeForm(t0, "audience", "https://api2.example"))
	if r1.Status != 200 || r1.str("token_type") != "DPoP" {
		t.Fatalf("api1's exchange: %d %s", r1.Status, r1.Raw)
	}
	t1 := r1.str("access_token")
	if got := cnfJKT(t, t1); got != api1.jkt {
		t.Fatalf("T1 bound to %q, want api1's key %s (web-app's is %s)", got, api1.jkt, web.jkt)
	}
	r2 := s.tokenWithProof(t, "api2", "api2-secret", api2, exchangeForm(t1, "audience", "https://api3.example"))
	if r2.Status != 200 || r2.str("token_type") != "DPoP" || cnfJKT(t, r2.str("access_token")) != api2.jkt {
		t.Fatalf("api2's exchange: %d %s", r2.Status, r2.Raw)
	}
	t2 := claims(t, r2.str("access_token"))["jti"].(string)

	out, code := s.deputy("audit", "trace", t2)
	if code != 0 {
		t.Fatalf("audit trace: exit %d\n%s", code, out)
	}
	for _, k := range []dpopKey{web, api1, api2} {
		if want := "bound dpop:" + k.jkt[:8] + "…"; !strings.Contains(out, want) {
			t.Errorf("trace lacks %q:\n%s", want, out)
		}
	}
	js, code := s.deputy("audit", "trace", "--json", t2)
	if code != 0 {
		t.Fatalf("audit trace --json: exit %d\n%s", code, js)
	}
	for _, k := range []dpopKey{web, api1, api2} {
		if !strings.Contains(js, `"jkt": "`+k.jkt+`"`) {
			t.Errorf("trace JSON lacks jkt %s:\n%s", k.jkt, js)
		}
	}
	denied := auditEvents(t, s, "request.denied")
	if len(denied) != 1 || !strings.Contains(field(denied[0], "reason"), "subject token is bound to jkt "+web.jkt) ||
		!strings.Contains(field(denied[0], "detail"), web.jkt) {
		t.Errorf("denials %v", denied)
	}
}

// TestBoundSubjectNeedsBoundExchange: a sender-constrained subject token (here a
// trusted issuer's, bound to a DPoP key by cnf.jkt) exchanged by a bearer request is
// refused — invalid_request, nothing issued, the denial audited with its reason and
// the subject token's binding — rather than turned into a bearer token (README
// "Token exchange rules": binding survives every hop).
func TestBoundSubjectNeedsBoundExchange(t *testing.T) {
	const jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	entra := startEntraIssuer(t)
	s := start(t, strings.ReplaceAll(entraConfig, "%JWKS%", entra.jwks.URL+"/keys"))
	bound := entra.sign(t, entra.key, entra.claims("cnf", map[string]any{"jkt": jkt}, "jti", "entra-bound-1"), nil)

	r := s.post("token_endpoint", "api1", "api1-secret", exchangeForm(bound, "audience", "https://api2.example"))
	wantError(t, r, 400, "invalid_request")
	if d := r.str("error_description"); d != "the subject token is sender-constrained; the exchange must be too" {
		t.Errorf("error_description %q", d)
	}
	if r.str("access_token") != "" {
		t.Fatalf("issued %s", r.Raw)
	}
	denied := auditEvents(t, s, "request.denied")
	if len(denied) != 1 {
		t.Fatalf("%d request.denied events, want 1", len(denied))
	}
	e := denied[0]
	if field(e, "client_id") != "api1" || field(e, "parent_jti") != "entra-bound-1" ||
		!strings.Contains(field(e, "reason"), "subject token is bound to jkt "+jkt+", the request proves no key") {
		t.Errorf("denial %v", e)
	}
	if d := field(e, "detail"); !strings.Contains(d, `"subject_cnf":{"jkt":"`+jkt+`"}`) {
		t.Errorf("denial detail %s lacks the subject token's cnf", d)
	}
	if n := len(auditEvents(t, s, "token.exchanged")); n != 0 {
		t.Errorf("%d token.exchanged events, want none", n)
	}

	// The same token unbound is exchanged, as before.
	plain := entra.sign(t, entra.key, entra.claims("jti", "entra-plain-1"), nil)
	if r := s.token("api1", "api1-secret", exchangeForm(plain, "audience", "https://api2.example")); r.str("token_type") != "Bearer" {
		t.Errorf("unbound subject: %s", r.Raw)
	}
}
