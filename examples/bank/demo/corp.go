package demo

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// corpIdP is the corporate SAML 2.0 identity provider of the second scenario: it
// signs assertions with its own key, whose certificate deputy trusts
// (saml_idps[corp].certificate_file).
type corpIdP struct {
	key *rsa.PrivateKey
	der []byte
}

const corpEntityID = "https://idp.corp.example"

func newCorpIdP(dir string) (*corpIdP, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp.corp.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "corp-idp.pem"), pemBytes, 0o600); err != nil {
		return nil, err
	}
	return &corpIdP{key: key, der: der}, nil
}

// assertion returns a signed bearer assertion for nameID, addressed to deputy
// (issuer), base64url-encoded as RFC 8693 subject tokens of type saml2 are.
func (c *corpIdP) assertion(nameID, issuer string) (string, error) {
	now := time.Now().UTC()
	ts := func(t time.Time) string { return t.Format(time.RFC3339) }
	id := "_" + randomHex()
	doc := fmt.Sprintf(`<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="%s" Version="2.0" IssueInstant="%s">`+
		`<saml:Issuer>%s</saml:Issuer>`+
		`<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">%s</saml:NameID>`+
		`<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">`+
		`<saml:SubjectConfirmationData NotOnOrAfter="%s" Recipient="%s/token"/></saml:SubjectConfirmation></saml:Subject>`+
		`<saml:Conditions NotBefore="%s" NotOnOrAfter="%s"><saml:AudienceRestriction><saml:Audience>%s</saml:Audience></saml:AudienceRestriction></saml:Conditions>`+
		`<saml:AttributeStatement><saml:Attribute Name="mail"><saml:AttributeValue>%s</saml:AttributeValue></saml:Attribute></saml:AttributeStatement>`+
		`</saml:Assertion>`,
		id, ts(now), corpEntityID, nameID, ts(now.Add(5*time.Minute)), issuer,
		ts(now.Add(-time.Minute)), ts(now.Add(5*time.Minute)), issuer, nameID)
	d := etree.NewDocument()
	if err := d.ReadFromString(doc); err != nil {
		return "", err
	}
	sc, err := dsig.NewSigningContext(c.key, [][]byte{c.der})
	if err != nil {
		return "", err
	}
	sc.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	signed, err := sc.SignEnveloped(d.Root())
	if err != nil {
		return "", err
	}
	out := etree.NewDocument()
	out.SetRoot(signed)
	b, err := out.WriteToBytes()
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func randomHex() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}
