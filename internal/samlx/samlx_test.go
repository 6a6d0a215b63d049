package samlx

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"encoding/xml"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestCheckXML(t *testing.T) {
	const a = `<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="_1">`
	tests := []struct {
		name, doc, err string
		want           Shape
	}{
		{"ok/assertion", a + `<ds:Signature><ds:SignedInfo><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/></ds:Reference></ds:SignedInfo></ds:Signature><!--c--></saml:Assertion><!-- after -->`, "",
			Shape{Root: xmlName(NamespaceAssertion, "Assertion"), Assertions: 1, Signatures: 1, Comments: 1}},
		{"ok/nested-assertion-counted", a + `<saml:Advice><saml:Assertion/></saml:Advice></saml:Assertion>`, "",
			Shape{Root: xmlName(NamespaceAssertion, "Assertion"), Assertions: 2}},
		{"fail/doctype", `<!DOCTYPE x [<!ENTITY e "x">]>` + a + `</saml:Assertion>`, "DOCTYPE", Shape{}},
		{"fail/two-roots", a + `</saml:Assertion>` + a + `</saml:Assertion>`, "one root", Shape{}},
		{"fail/no-root", ``, "one root", Shape{}},
		{"fail/malformed", a, "malformed", Shape{}},
		{"fail/sha1-signature", a + `<ds:SignatureMethod Algorithm="http://www.w3.org/2000/09/xmldsig#rsa-sha1"/></saml:Assertion>`, "not allowed", Shape{}},
		{"fail/sha1-digest", a + `<ds:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/></saml:Assertion>`, "not allowed", Shape{}},
		{"fail/no-algorithm", a + `<ds:DigestMethod/></saml:Assertion>`, "not allowed", Shape{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CheckXML([]byte(tt.doc))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("CheckXML = %v, want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("CheckXML = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPEMCertificates(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
	}, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"}}, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if certs, err := PEMCertificates(certPEM); err != nil || len(certs) != 1 {
		t.Errorf("PEMCertificates(cert) = %d, %v", len(certs), err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	withKey := append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})...)
	if _, err := PEMCertificates(withKey); err == nil {
		t.Error("PEMCertificates(cert+key) accepted a private key")
	}
	if _, err := PEMCertificates([]byte("nothing")); err == nil {
		t.Error("PEMCertificates(nothing) = nil error")
	}
}

func TestClaim(t *testing.T) {
	for _, tt := range []struct{ name, friendly, want string }{
		{"mail", "", "email"},
		{"urn:oid:0.9.2342.19200300.100.1.3", "", "email"},
		{"urn:x", "displayName", "name"},
		{"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname", "", "family_name"},
		{"urn:x", "urn:y", ""},
	} {
		if got := Claim(tt.name, tt.friendly); got != tt.want {
			t.Errorf("Claim(%q, %q) = %q, want %q", tt.name, tt.friendly, got, tt.want)
		}
	}
}

func xmlName(space, local string) xml.Name { return xml.Name{Space: space, Local: local} }
