package subject_test

import (
	"context"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/oauth"
)

// TestExternalTextRefused: subjects, actors and claims from trusted issuers and
// SAML IdPs are taken over into deputy's tokens and audit trail. One holding
// control characters, a line separator or a bidi override (which a terminal or a
// page would obey) was accepted; it is now refused at the edge, invalid_request.
func TestExternalTextRefused(t *testing.T) {
	ctx := context.Background()
	ti := newExtIssuer(t)
	v := newTrustedVerifier(t, newOwnTokens(t), ti)
	now := time.Now()
	ec := entraClaims(now)
	for _, tc := range []struct {
		name   string
		claims map[string]any
		desc   string // "" for accepted
	}{
		{"fail/subject-esc", claimsWith(ec, "oid", "alice\x1b[2J"), "has a oid claim with control characters"},
		{"fail/subject-cr-lf", claimsWith(ec, "oid", "alice\r\nforged"), "has a oid claim with control characters"},
		{"fail/subject-nul", claimsWith(ec, "oid", "alice\x00"), "has a oid claim with control characters"},
		{"fail/subject-c1", claimsWith(ec, "oid", "alice\u009b31m"), "has a oid claim with control characters"},
		{"fail/subject-line-separator", claimsWith(ec, "oid", "alice\u2028x"), "has a oid claim with control characters"},
		{"fail/subject-bidi-override", claimsWith(ec, "oid", "alice\u202egnp.exe"), "has a oid claim with control characters"},
		{"fail/subject-too-long", claimsWith(ec, "oid", strings.Repeat("a", 1025)), "longer than 1024 bytes"},
		{"fail/act-sub-esc", claimsWith(ec, "act", map[string]any{"sub": "svc\x1b[31m"}), "malformed act"},
		{"fail/act-iss-bidi", claimsWith(ec, "act", map[string]any{"sub": "svc", "iss": "https://x\u202e.example"}), "malformed act"},
		{"fail/jti-newline", claimsWith(ec, "jti", "j1\nj2"), "malformed jti"},
		{"fail/mapped-claim-bidi", claimsWith(ec, "preferred_username", "alice\u202e@evil"), "has a preferred_username claim with control characters"},
		{"fail/mapped-claim-too-large", claimsWith(ec, "tid", "tenant-1", "preferred_username", strings.Repeat("a", 9000)), "larger than 8192 bytes"},
		{"ok/letters-and-joiners", claimsWith(ec, "oid", "ålice👩\u200d💻"), ""},
		{"ok/unmapped-claim-not-taken-over", claimsWith(ec, "unmapped", "x\x1by"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := signJWT(t, ti.rsa1, jose.RS256, "k1", tc.claims, nil)
			p, err := v.Verify(ctx, "subject", raw, oauth.TokenTypeAccessToken, now)
			if tc.desc == "" {
				if err != nil || p.Subject != tc.claims["oid"] {
					t.Fatalf("%+v, %v", p, err)
				}
				return
			}
			wantJWTRefused(t, err, tc.desc)
			if strings.ContainsAny(p.Subject, "\x1b\r\n\u202e") {
				t.Errorf("the refused principal still carries the subject %q", p.Subject)
			}
		})
	}

	f := newSAMLFixture(t, false)
	for _, tc := range []struct{ name, nameID, attrs, why string }{
		{"fail/nameid-c1", "alice&#x9b;31m@corp.test", "", "NameID"},
		{"fail/nameid-bidi-override", "alice&#x202e;gnp.exe@corp.test", "", "NameID"},
		{"fail/nameid-line-separator", "alice&#x2028;@corp.test", "", "NameID"},
		{"fail/claim-bidi-override", "alice@corp.test", samlAttr("uid", "", "as&#x202e;mith"), "has control characters"},
		{"fail/claim-c1-nel", "alice@corp.test", samlAttr("uid", "", "as&#x85;mith"), "has control characters"},
	} {
		t.Run("saml/"+tc.name, func(t *testing.T) {
			s := defaultSpec(now)
			s.NameID, s.Attributes = tc.nameID, tc.attrs
			p, err := f.v.Verify(ctx, "subject", enc(serialize(t, f.idp.sign(t, s.xml(), "", true))), oauth.TokenTypeSAML2, now)
			e := oauth.AsError(err)
			if err == nil || e.Code != oauth.CodeInvalidRequest || !strings.Contains(e.Reason(), tc.why) {
				t.Fatalf("Verify = %+v, %v; want invalid_request saying %q", p, err, tc.why)
			}
		})
	}
}
