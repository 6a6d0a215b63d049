package e2e

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

const typeSAML2 = "urn:ietf:params:oauth:token-type:saml2"

// samlExchangeConfig is bankConfig with a corporate SAML IdP whose assertions api1
// may exchange for ledger:read at api2.
const samlExchangeConfig = bankConfig + `    - name: corp-to-api2
      client: api1
      subject_issuers: [corp]
      subject_token_types: [saml2]
      audiences: ["https://api2.example"]
      scopes: [ledger:read]
saml_idps:
  - name: corp
    entity_id: https://idp.corp.test
    certificate_file: %DIR%/corp-idp.pem
    audience: %ISSUER%
`

// corpAssertion is one assertion the test IdP issues.
type corpAssertion struct {
	id, issuer, nameID, audience string
	notOnOrAfter                 time.Time
	advice                       string
}

func (a corpAssertion) xml(issuer string) string {
	now := time.Now().UTC()
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	advice := ""
	if a.advice != "" {
		advice = "<saml:Advice>" + a.advice + "</saml:Advice>"
	}
	return fmt.Sprintf(`<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="%s" Version="2.0" IssueInstant="%s">`+
		`<saml:Issuer>%s</saml:Issuer>`+
		`<saml:Subject><saml:NameID>%s</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">`+
		`<saml:SubjectConfirmationData NotOnOrAfter="%s" Recipient="%s/token"/></saml:SubjectConfirmation></saml:Subject>`+
		`<saml:Conditions NotBefore="%s" NotOnOrAfter="%s"><saml:AudienceRestriction><saml:Audience>%s</saml:Audience></saml:AudienceRestriction></saml:Conditions>`+
		`%s<saml:AttributeStatement><saml:Attribute Name="mail"><saml:AttributeValue>%s</saml:AttributeValue></saml:Attribute></saml:AttributeStatement>`+
		`</saml:Assertion>`,
		a.id, ts(now), a.issuer, a.nameID, ts(a.notOnOrAfter), issuer, ts(now.Add(-time.Minute)), ts(a.notOnOrAfter), a.audience, advice, a.nameID)
}

// signAssertion signs doc with an enveloped RSA-SHA256 signature carrying der in KeyInfo.
func signAssertion(t *testing.T, doc string, key *rsa.PrivateKey, der []byte) []byte {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromString(doc); err != nil {
		t.Fatal(err)
	}
	sc, err := dsig.NewSigningContext(key, [][]byte{der})
	if err != nil {
		t.Fatal(err)
	}
	sc.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	signed, err := sc.SignEnveloped(d.Root())
	if err != nil {
		t.Fatal(err)
	}
	out := etree.NewDocument()
	out.SetRoot(signed)
	b, err := out.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSAMLExchange(t *testing.T) {
	key, der := samlKeyPair(t)
	pemFile := filepath.Join(t.TempDir(), "corp-idp.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	s := start(t, strings.ReplaceAll(samlExchangeConfig, "%DIR%/corp-idp.pem", pemFile))
	attackerKey, attackerDER := samlKeyPair(t)
	n := 0
	assertion := func(mod func(a *corpAssertion)) corpAssertion {
		n++
		a := corpAssertion{id: fmt.Sprintf("_a%d-%d", n, time.Now().UnixNano()), issuer: "https://idp.corp.test",
			nameID: "alice@corp.test", audience: s.issuer, notOnOrAfter: time.Now().Add(5 * time.Minute)}
		if mod != nil {
			mod(&a)
		}
		return a
	}
	signed := func(mod func(a *corpAssertion)) []byte {
		return signAssertion(t, assertion(mod).xml(s.issuer), key, der)
	}
	form := func(doc []byte) map[string][]string {
		f := exchangeForm(base64.RawURLEncoding.EncodeToString(doc), "audience", "https://api2.example")
		f.Set("subject_token_type", typeSAML2)
		return f
	}

	good := signed(nil)
	r := s.token("api1", "api1-secret", form(good))
	c := claims(t, r.str("access_token"))
	if c["sub"] != "alice@corp.test" || actJSON(t, c["act"]) != `{"sub":"api1"}` || c["scope"] != "ledger:read" || c["aud"] != "https://api2.example" {
		t.Errorf("exchanged token claims %v", c)
	}
	if r.str("scope") != "ledger:read" {
		t.Errorf("response %s", r.Raw)
	}
	var record map[string]any
	for _, e := range auditEvents(t, s, "token.exchanged") {
		if strings.Contains(fmt.Sprint(e), "alice@corp.test") {
			record = e
		}
	}
	if record == nil || field(record, "subject_issuer") != "https://idp.corp.test" {
		t.Errorf("exchange record %v, want subject_issuer https://idp.corp.test", record)
	}

	// comment: the IdP signed "alice@corp.test.evil.example"; a comment splits it.
	comment := bytes.Replace(signed(func(a *corpAssertion) { a.nameID = "alice@corp.test.evil.example" }),
		[]byte("alice@corp.test.evil.example</saml:NameID>"), []byte("alice@corp.test<!---->.evil.example</saml:NameID>"), 1)
	wrapped := assertion(func(a *corpAssertion) { a.nameID = "mallory@corp.test"; a.advice = string(signed(nil)) }).xml(s.issuer)
	extra := bytes.Replace(signed(nil), []byte("</saml:Assertion>"),
		[]byte(assertion(func(a *corpAssertion) { a.nameID = "mallory@corp.test" }).xml(s.issuer)+"</saml:Assertion>"), 1)
	dtd := append([]byte(`<!DOCTYPE saml:Assertion [<!ENTITY who "alice@corp.test">]>`), signed(nil)...)

	for _, tt := range []struct {
		name string
		doc  []byte
	}{
		{"fail/unsigned", []byte(assertion(nil).xml(s.issuer))},
		{"fail/other-key", signAssertion(t, assertion(nil).xml(s.issuer), attackerKey, attackerDER)},
		{"fail/wrapped", []byte(wrapped)},
		{"fail/extra-unsigned-assertion", extra},
		{"fail/comment-in-nameid", comment},
		{"fail/expired", signed(func(a *corpAssertion) { a.notOnOrAfter = time.Now().Add(-5 * time.Minute) })},
		{"fail/other-audience", signed(func(a *corpAssertion) { a.audience = "https://other-sp.example" })},
		{"fail/replayed", good},
		{"fail/dtd", dtd},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(auditEvents(t, s, "request.denied"))
			issuedBefore := len(auditEvents(t, s, "token.exchanged"))
			wantError(t, s.post("token_endpoint", "api1", "api1-secret", form(tt.doc)), 400, "invalid_request")
			if got := len(auditEvents(t, s, "request.denied")); got != before+1 {
				t.Errorf("request.denied records: %d, want %d", got, before+1)
			}
			if got := len(auditEvents(t, s, "token.exchanged")); got != issuedBefore {
				t.Errorf("token.exchanged records: %d, want %d: something was issued", got, issuedBefore)
			}
		})
	}
}
