package client

import (
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/oauth"
)

// FuzzAssertion feeds arbitrary client assertions (outside input: a JWT from the
// request body) and client_id parameters to Authenticate. It never panics, every
// refusal is invalid_client or invalid_request, and nothing but an assertion signed
// by the client's own key is accepted, once.
func FuzzAssertion(f *testing.F) {
	fx := newFixture(f)
	now := time.Now()
	valid := fx.assertion(f, now)
	f.Add(valid, "")
	f.Add(valid, "jwt-client-2")
	f.Add(fx.assertion(f, now, "aud", []string{issuer, tokenURL}), "jwt-client")
	f.Add(fx.assertion(f, now, "exp", "soon"), "")
	f.Add(fx.assertion(f, now, "iss", 42), "")
	f.Add(unsigned(f, claimsFor("jwt-client", now)), "")
	f.Add(sign(f, jose.HS256, []byte("0123456789abcdef0123456789abcdef"), "k1", claimsFor("jwt-client", now)), "")
	f.Add("e30.e30.", "")
	f.Add("eyJhbGciOiJFUzI1NiJ9.e30.AAAA", "")
	f.Add(`{"payload":"e30","signatures":[]}`, "")
	f.Add(strings.Repeat("a.", 5000), "")
	accepted := map[string]bool{}
	f.Fuzz(func(t *testing.T, assertion, formID string) {
		cr := assertionCreds(assertion)
		cr.FormID = formID
		c, err := fx.reg.Authenticate(t.Context(), cr, now)
		if err != nil {
			if c != nil {
				t.Fatalf("client %s returned with error %v", c.ID, err)
			}
			switch code := codeOf(err); code {
			case oauth.CodeInvalidClient, oauth.CodeInvalidRequest:
			default:
				t.Fatalf("error %v: code %q", err, code)
			}
			return
		}
		if c.ID != "jwt-client" || (formID != "" && formID != c.ID) {
			t.Fatalf("accepted client %q with client_id %q", c.ID, formID)
		}
		if accepted[assertion] {
			t.Fatalf("assertion accepted twice: %q", assertion)
		}
		accepted[assertion] = true
	})
}
