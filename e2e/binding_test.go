package e2e

import (
	"strings"
	"testing"
)

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
