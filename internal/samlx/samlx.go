package samlx

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/russellhaering/gosaml2/types"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/jwk"
)

// Namespaces of SAML 2.0 (SAML Core §1.2).
const (
	NamespaceAssertion = "urn:oasis:names:tc:SAML:2.0:assertion"
	NamespaceProtocol  = "urn:oasis:names:tc:SAML:2.0:protocol"
)

// BindingHTTPRedirect is the HTTP-Redirect binding (SAML Bindings §3.4).
const BindingHTTPRedirect = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"

// MaxMetadataBytes bounds an IdP metadata file.
const MaxMetadataBytes = 256 << 10

// PEMCertificates reads an IdP's signing certificates from PEM; anything but
// CERTIFICATE blocks is refused (a private key has no business here).
func PEMCertificates(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("a %s block: give only the IdP's certificate", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		if err := signingKeyOK(c); err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE found")
	}
	return certs, nil
}

// IdPMetadata reads an IdP's EntityDescriptor (SAML Metadata §2.3.2): the
// HTTP-Redirect SSO endpoint ("" if none) and the signing certificates. The file
// is trusted as the operator's configuration; its own signature, if any, is not
// checked.
func IdPMetadata(b []byte, entityID string) (string, []*x509.Certificate, error) {
	if len(b) > MaxMetadataBytes {
		return "", nil, fmt.Errorf("larger than %d bytes", MaxMetadataBytes)
	}
	if _, err := CheckXML(b); err != nil {
		return "", nil, err
	}
	var md types.EntityDescriptor
	if err := xml.Unmarshal(b, &md); err != nil {
		return "", nil, fmt.Errorf("not a SAML EntityDescriptor: %w", err)
	}
	if md.EntityID != entityID {
		return "", nil, fmt.Errorf("entityID %q is not the configured issuer %q", md.EntityID, entityID)
	}
	idp := md.IDPSSODescriptor
	if idp == nil {
		return "", nil, errors.New("no IDPSSODescriptor")
	}
	var sso string
	for _, s := range idp.SingleSignOnServices {
		if s.Binding == BindingHTTPRedirect {
			sso = s.Location
			break
		}
	}
	var certs []*x509.Certificate
	for _, kd := range idp.KeyDescriptors {
		if kd.Use != "" && kd.Use != "signing" {
			continue
		}
		for _, xc := range kd.KeyInfo.X509Data.X509Certificates {
			der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(xc.Data), ""))
			if err != nil {
				return "", nil, fmt.Errorf("X509Certificate: %w", err)
			}
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return "", nil, fmt.Errorf("X509Certificate: %w", err)
			}
			if err := signingKeyOK(c); err != nil {
				return "", nil, fmt.Errorf("X509Certificate: %w", err)
			}
			certs = append(certs, c)
		}
	}
	if len(certs) == 0 {
		return "", nil, errors.New("no signing certificate in the IDPSSODescriptor")
	}
	return sso, certs, nil
}

// signingKeyOK refuses a certificate whose RSA key is shorter than jwk.MinRSABits,
// the bound deputy applies to every other issuer's RSA keys.
func signingKeyOK(c *x509.Certificate) error {
	if k, ok := c.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() < jwk.MinRSABits {
		return fmt.Errorf("the certificate's RSA key has %d bits; at least %d are required", k.N.BitLen(), jwk.MinRSABits)
	}
	return nil
}

// AlgorithmAllowed says whether an XML-DSig SignatureMethod or DigestMethod
// algorithm is accepted: SHA-1 is refused.
func AlgorithmAllowed(element, alg string) bool {
	switch element {
	case "SignatureMethod":
		switch alg {
		case dsig.RSASHA256SignatureMethod, dsig.RSASHA384SignatureMethod, dsig.RSASHA512SignatureMethod,
			dsig.ECDSASHA256SignatureMethod, dsig.ECDSASHA384SignatureMethod, dsig.ECDSASHA512SignatureMethod:
			return true
		}
	case "DigestMethod":
		switch alg {
		case "http://www.w3.org/2001/04/xmlenc#sha256", "http://www.w3.org/2001/04/xmldsig-more#sha384",
			"http://www.w3.org/2001/04/xmlenc#sha512":
			return true
		}
	}
	return false
}

// Shape is what CheckXML saw of a document, for callers with stricter rules.
type Shape struct {
	Root       xml.Name // the root element
	Assertions int      // saml:Assertion elements anywhere
	Signatures int      // ds:Signature elements anywhere
	Comments   int      // comments inside the root element
}

// CheckXML reads the whole document once before the signature library does: it
// must be well-formed UTF-8 XML with one root element, without a DOCTYPE or any
// other <!…> declaration (no DTD, no entities), and every XML-DSig
// SignatureMethod and DigestMethod in it must be on the allow-list
// (AlgorithmAllowed).
func CheckXML(b []byte) (Shape, error) {
	var s Shape
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Shape{}, fmt.Errorf("malformed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return Shape{}, errors.New("a DOCTYPE or other <!…> declaration is not allowed")
		case xml.Comment:
			if depth > 0 {
				s.Comments++
			}
		case xml.StartElement:
			if depth == 0 {
				roots++
				s.Root = t.Name
			}
			depth++
			switch {
			case t.Name.Space == NamespaceAssertion && t.Name.Local == "Assertion":
				s.Assertions++
			case t.Name.Space == dsig.Namespace && t.Name.Local == "Signature":
				s.Signatures++
			case t.Name.Space == dsig.Namespace && (t.Name.Local == "SignatureMethod" || t.Name.Local == "DigestMethod"):
				alg := ""
				for _, at := range t.Attr {
					if at.Name.Space == "" && at.Name.Local == "Algorithm" {
						alg = at.Value
					}
				}
				if !AlgorithmAllowed(t.Name.Local, alg) {
					return Shape{}, fmt.Errorf("%s %q is not allowed", t.Name.Local, alg)
				}
			}
		case xml.EndElement:
			depth--
		}
	}
	if roots != 1 {
		return Shape{}, fmt.Errorf("want one root element, got %d", roots)
	}
	return s, nil
}

// Control reports the characters refused in subjects and claim values: those of
// oauth.UnsafeRune (control characters, line separators, bidi overrides), the one
// rule for names from outside.
func Control(r rune) bool { return oauth.UnsafeRune(r) }

// Claim is the identity claim an attribute releases, by its Name or FriendlyName
// in the common vocabularies (plain names, LDAP/eduPerson OIDs, the
// WS-Federation claim URIs Entra and AD FS use); "" for any other.
func Claim(name, friendlyName string) string {
	for _, n := range []string{name, friendlyName} {
		switch n {
		case "email", "mail", "emailAddress", "urn:oid:0.9.2342.19200300.100.1.3",
			"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress":
			return "email"
		case "name", "displayName", "urn:oid:2.16.840.1.113730.3.1.241",
			"http://schemas.microsoft.com/identity/claims/displayname":
			return "name"
		case "given_name", "givenName", "urn:oid:2.5.4.42",
			"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname":
			return "given_name"
		case "family_name", "sn", "surname", "urn:oid:2.5.4.4",
			"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname":
			return "family_name"
		case "preferred_username", "uid", "urn:oid:0.9.2342.19200300.100.1.1",
			"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name":
			return "preferred_username"
		}
	}
	return ""
}
