package subject

// SAML 2.0 assertions as subject tokens (RFC 8693 §3, token type
// urn:ietf:params:oauth:token-type:saml2): a bare <saml:Assertion>, base64url.
// XML signature checking is github.com/russellhaering/goxmldsig: this file never
// verifies a signature itself, it only decides what a verified assertion must say.

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/samlx"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// Limits of SAML subject tokens.
const (
	// samlMaxEncoded bounds the base64url subject token, checked before decoding.
	samlMaxEncoded = 64 << 10
	// samlSkew is the clock difference tolerated with the IdP on every time bound.
	samlSkew            = time.Minute
	samlMaxSubjectBytes = 1024
	samlMaxClaimBytes   = 1024
	samlBearer          = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
	// samlNoncePrefix keys the assertion IDs remembered in the store.
	samlNoncePrefix = "saml-assertion:"
	// samlTokenPath is deputy's token endpoint under its issuer (httpapi.PathToken,
	// which this package may not import): an accepted SubjectConfirmationData
	// Recipient besides the configured audience.
	samlTokenPath = "/token"
)

// samlIdP verifies the SAML 2.0 assertions of one configured IdP.
//
// An assertion is accepted when, in this order:
//   - the encoded token is at most samlMaxEncoded bytes of base64url (padded or
//     not) and decodes to well-formed XML without DTD or entity declarations,
//     without comments, whose one root is a saml:Assertion with no other
//     Assertion and exactly one ds:Signature in it, and no SHA-1 anywhere;
//   - its Issuer names a configured IdP (only to choose whose certificate
//     verifies it);
//   - goxmldsig verifies its enveloped signature with that IdP's configured
//     certificate: a certificate the document carries in KeyInfo is trusted only
//     when it is that very certificate. From here on only the element the
//     signature validation returns is read, so nothing outside the signed
//     bytes can be (signature wrapping);
//   - the signed Issuer is the IdP's entity_id; Conditions NotBefore and
//     NotOnOrAfter (required) hold within samlSkew; there is an
//     AudienceRestriction and every one names the configured audience (SAML
//     Core §2.5.1.4);
//   - a bearer SubjectConfirmation has a SubjectConfirmationData with a
//     NotOnOrAfter still ahead and a Recipient that is the configured audience
//     or deputy's token endpoint (<issuer>/token);
//   - the NameID is present, non-empty, without surrounding spaces or control
//     characters (it is taken unchanged, never trimmed);
//   - when subject_attribute is set, exactly one Attribute, across all
//     AttributeStatements, has it as Name (never FriendlyName, which SAML Core
//     §2.7.3.1 does not let identify an attribute), with exactly one AttributeValue that passes the
//     NameID's checks; that value, not the NameID, is the subject;
//   - the assertion ID was never accepted before: it is remembered in the store
//     (Nonces) under "saml-assertion:<idp name>:<ID>" until the assertion's
//     earliest NotOnOrAfter plus samlSkew, so on no node is it accepted twice.
//     It is spent once the assertion is verified, even if a policy then
//     refuses the exchange.
//
// Comments are refused, not stripped: a comment inside a NameID is the known
// way to make a signed value read as a shorter one.
type samlIdP struct {
	cfg    config.SAMLIdP
	certs  *dsig.MemoryX509CertificateStore // the only keys a signature may be made with
	nonces store.Nonces
}

func newSAMLIdP(cfg config.SAMLIdP, nonces store.Nonces) (*samlIdP, error) {
	if nonces == nil {
		return nil, errors.New("a nonce store is needed to refuse replayed assertions")
	}
	if cfg.EntityID == "" || cfg.Audience == "" {
		return nil, errors.New("entity_id and audience must be set")
	}
	if strings.TrimSpace(cfg.SubjectAttribute) != cfg.SubjectAttribute {
		return nil, fmt.Errorf("subject_attribute %q has white space around it", cfg.SubjectAttribute)
	}
	var certs []*x509.Certificate
	switch {
	case cfg.CertificateFile != "" && cfg.MetadataFile != "":
		return nil, errors.New("set either certificate_file or metadata_file, not both")
	case cfg.CertificateFile != "":
		b, err := os.ReadFile(cfg.CertificateFile)
		if err != nil {
			return nil, fmt.Errorf("certificate_file: %w", err)
		}
		if certs, err = samlx.PEMCertificates(b); err != nil {
			return nil, fmt.Errorf("certificate_file %s: %w", cfg.CertificateFile, err)
		}
	case cfg.MetadataFile != "":
		b, err := os.ReadFile(cfg.MetadataFile)
		if err != nil {
			return nil, fmt.Errorf("metadata_file: %w", err)
		}
		if _, certs, err = samlx.IdPMetadata(b, cfg.EntityID); err != nil {
			return nil, fmt.Errorf("metadata_file %s: %w", cfg.MetadataFile, err)
		}
	default:
		return nil, errors.New("one of certificate_file or metadata_file must be set: the IdP's signing certificate")
	}
	return &samlIdP{cfg: cfg, certs: &dsig.MemoryX509CertificateStore{Roots: certs}, nonces: nonces}, nil
}

// samlAssertion is what deputy reads of a signed assertion (SAML Core §2.3.3).
// Elements that may occur once are slices, so a repeated one is seen and refused
// rather than silently merged.
type samlAssertion struct {
	XMLName xml.Name
	ID      string `xml:"ID,attr"`
	Version string `xml:"Version,attr"`
	Issuer  []struct {
		Value string `xml:",chardata"`
	} `xml:"urn:oasis:names:tc:SAML:2.0:assertion Issuer"`
	Subject []struct {
		NameID []struct {
			Format string `xml:"Format,attr"`
			Value  string `xml:",chardata"`
		} `xml:"urn:oasis:names:tc:SAML:2.0:assertion NameID"`
		Confirmations []struct {
			Method string `xml:"Method,attr"`
			Data   []struct {
				NotOnOrAfter string `xml:"NotOnOrAfter,attr"`
				Recipient    string `xml:"Recipient,attr"`
			} `xml:"urn:oasis:names:tc:SAML:2.0:assertion SubjectConfirmationData"`
		} `xml:"urn:oasis:names:tc:SAML:2.0:assertion SubjectConfirmation"`
	} `xml:"urn:oasis:names:tc:SAML:2.0:assertion Subject"`
	Conditions []struct {
		NotBefore    string `xml:"NotBefore,attr"`
		NotOnOrAfter string `xml:"NotOnOrAfter,attr"`
		Audiences    []struct {
			Audience []string `xml:"urn:oasis:names:tc:SAML:2.0:assertion Audience"`
		} `xml:"urn:oasis:names:tc:SAML:2.0:assertion AudienceRestriction"`
	} `xml:"urn:oasis:names:tc:SAML:2.0:assertion Conditions"`
	Attributes []struct {
		Attribute []struct {
			Name         string   `xml:"Name,attr"`
			FriendlyName string   `xml:"FriendlyName,attr"`
			Values       []string `xml:"urn:oasis:names:tc:SAML:2.0:assertion AttributeValue"`
		} `xml:"urn:oasis:names:tc:SAML:2.0:assertion Attribute"`
	} `xml:"urn:oasis:names:tc:SAML:2.0:assertion AttributeStatement"`
}

// verifySAML checks a base64url SAML 2.0 assertion (RFC 8693 §3).
func (v *Verifier) verifySAML(ctx context.Context, role, raw string, now time.Time) (exchange.Principal, error) {
	if len(v.saml) == 0 {
		return exchange.Principal{}, oauth.InvalidRequest(role+"_token of type saml2 is not accepted: no SAML IdP is configured",
			fmt.Errorf("saml_idps is empty"))
	}
	invalid := func(cause error) error {
		return oauth.InvalidRequest(role+"_token is not a valid SAML assertion", fmt.Errorf("%s SAML assertion: %w", role, cause))
	}
	root, err := parseSAML(raw)
	if err != nil {
		return exchange.Principal{}, invalid(err)
	}
	// The unsigned Issuer only chooses whose certificate must verify the signature.
	var idp *samlIdP
	unverified := samlIssuer(root)
	for _, p := range v.saml {
		if p.cfg.EntityID == unverified {
			idp = p
		}
	}
	if idp == nil {
		return exchange.Principal{}, oauth.InvalidRequest(role+"_token is not from a trusted SAML IdP",
			fmt.Errorf("%s SAML assertion: Issuer %q is not a trusted SAML IdP", role, unverified))
	}
	p, nonce, until, err := idp.verify(root, v.tokens.Issuer(), now)
	if err != nil {
		return p, invalid(err)
	}
	switch err := idp.nonces.UseNonce(ctx, nonce, until); {
	case errors.Is(err, store.ErrConflict):
		return p, oauth.InvalidRequest(role+"_token was already used",
			fmt.Errorf("%s SAML assertion %q of %s replayed", role, p.JTI, idp.cfg.Name))
	case err != nil:
		return p, oauth.ServerError(fmt.Errorf("remembering SAML assertion %q: %w", p.JTI, err))
	}
	return p, nil
}

// parseSAML decodes the token and returns its root Assertion, refusing anything
// but one plain signed assertion (see samlIdP).
func parseSAML(raw string) (*etree.Element, error) {
	if len(raw) > samlMaxEncoded {
		return nil, fmt.Errorf("larger than %d bytes", samlMaxEncoded)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(raw, "="))
	if err != nil {
		return nil, fmt.Errorf("not base64url: %w", err)
	}
	shape, err := samlx.CheckXML(b)
	switch {
	case err != nil:
		return nil, err
	case shape.Root != xml.Name{Space: samlx.NamespaceAssertion, Local: "Assertion"}:
		return nil, fmt.Errorf("the root element is {%s}%s, not a saml:Assertion", shape.Root.Space, shape.Root.Local)
	case shape.Assertions != 1:
		return nil, fmt.Errorf("want one Assertion, got %d", shape.Assertions)
	case shape.Signatures != 1:
		return nil, fmt.Errorf("want one Signature, got %d", shape.Signatures)
	case shape.Comments != 0:
		return nil, errors.New("comments are not allowed in an assertion")
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(b); err != nil {
		return nil, fmt.Errorf("malformed XML: %w", err)
	}
	return doc.Root(), nil
}

// samlIssuer is the Issuer of an assertion not yet verified; "" if none or several.
func samlIssuer(root *etree.Element) string {
	var iss []string
	for _, el := range root.ChildElements() {
		if el.Tag == "Issuer" && el.NamespaceURI() == samlx.NamespaceAssertion {
			iss = append(iss, el.Text())
		}
	}
	if len(iss) != 1 {
		return ""
	}
	return strings.TrimSpace(iss[0])
}

// verify checks the signature and what the signed assertion says, and returns
// the principal, the nonce key of the assertion and until when to remember it.
func (idp *samlIdP) verify(root *etree.Element, issuer string, now time.Time) (exchange.Principal, string, time.Time, error) {
	fail := func(format string, args ...any) (exchange.Principal, string, time.Time, error) {
		return exchange.Principal{}, "", time.Time{}, fmt.Errorf(format, args...)
	}
	vc := dsig.NewDefaultValidationContext(idp.certs)
	vc.Clock = dsig.NewFakeClockAt(now)
	signed, err := vc.Validate(root)
	if err != nil {
		return fail("signature: %w", err)
	}
	// Only the signed bytes are read from here on.
	doc := etree.NewDocument()
	doc.SetRoot(signed)
	b, err := doc.WriteToBytes()
	if err != nil {
		return fail("signed assertion: %w", err)
	}
	var a samlAssertion
	if err := xml.Unmarshal(b, &a); err != nil {
		return fail("signed assertion: %w", err)
	}
	if a.XMLName != (xml.Name{Space: samlx.NamespaceAssertion, Local: "Assertion"}) {
		return fail("the signed element is not an Assertion")
	}
	if a.Version != "2.0" {
		return fail("Version %q is not 2.0", a.Version)
	}
	if a.ID == "" {
		return fail("no ID")
	}
	if len(a.Issuer) != 1 || strings.TrimSpace(a.Issuer[0].Value) != idp.cfg.EntityID {
		return fail("the signed Issuer is not %q", idp.cfg.EntityID)
	}

	if len(a.Conditions) != 1 {
		return fail("want one Conditions, got %d", len(a.Conditions))
	}
	c := a.Conditions[0]
	notBefore, err := samlTime("Conditions NotBefore", c.NotBefore, false)
	if err != nil {
		return fail("%w", err)
	}
	if !notBefore.IsZero() && now.Add(samlSkew).Before(notBefore) {
		return fail("not valid before %s", c.NotBefore)
	}
	until, err := samlTime("Conditions NotOnOrAfter", c.NotOnOrAfter, true)
	if err != nil {
		return fail("%w", err)
	}
	if !now.Add(-samlSkew).Before(until) {
		return fail("expired at %s", c.NotOnOrAfter)
	}
	if len(c.Audiences) == 0 {
		return fail("no AudienceRestriction")
	}
	for _, ar := range c.Audiences {
		ok := false
		for _, au := range ar.Audience {
			ok = ok || strings.TrimSpace(au) == idp.cfg.Audience
		}
		if !ok {
			return fail("not for audience %q (AudienceRestriction %q)", idp.cfg.Audience, ar.Audience)
		}
	}

	if len(a.Subject) != 1 {
		return fail("want one Subject, got %d", len(a.Subject))
	}
	s := a.Subject[0]
	tokenEndpoint := strings.TrimSuffix(issuer, "/") + samlTokenPath
	var confirmed time.Time
	var why []string
	for _, sc := range s.Confirmations {
		if sc.Method != samlBearer {
			why = append(why, fmt.Sprintf("Method %q is not bearer", sc.Method))
			continue
		}
		for _, d := range sc.Data {
			t, err := samlTime("SubjectConfirmationData NotOnOrAfter", d.NotOnOrAfter, true)
			switch {
			case err != nil:
				why = append(why, err.Error())
			case !now.Add(-samlSkew).Before(t):
				why = append(why, "subject confirmation expired at "+d.NotOnOrAfter)
			case d.Recipient != idp.cfg.Audience && d.Recipient != tokenEndpoint:
				why = append(why, fmt.Sprintf("Recipient %q is neither %q nor %q", d.Recipient, idp.cfg.Audience, tokenEndpoint))
			case confirmed.IsZero() || t.Before(confirmed):
				confirmed = t
			}
		}
	}
	if confirmed.IsZero() {
		return fail("no acceptable bearer SubjectConfirmation: %s", strings.Join(why, "; "))
	}
	if confirmed.Before(until) {
		until = confirmed
	}

	if len(s.NameID) != 1 {
		return fail("want one NameID, got %d", len(s.NameID))
	}
	subject := s.NameID[0].Value
	if !samlSubjectValid(subject) {
		return fail("NameID %.64q is empty, too long, or has spaces around it or control characters", subject)
	}
	if name := idp.cfg.SubjectAttribute; name != "" {
		if subject, err = samlSubjectAttribute(&a, name); err != nil {
			return fail("%w", err)
		}
	}

	var claims map[string]any
	for _, st := range a.Attributes {
		for _, at := range st.Attribute {
			claim := samlx.Claim(at.Name, at.FriendlyName)
			if claim == "" || len(at.Values) == 0 || claims[claim] != nil {
				continue
			}
			v := strings.TrimSpace(at.Values[0])
			if !oauth.SafeText(v) {
				return fail("attribute %.64q: value %.64q has control characters", at.Name, v)
			}
			if v == "" || len(v) > samlMaxClaimBytes {
				continue
			}
			if claims == nil {
				claims = map[string]any{}
			}
			claims[claim] = v
		}
	}
	p := exchange.Principal{
		TokenType: oauth.TokenTypeSAML2,
		Issuer:    idp.cfg.Name,
		IssuerURL: idp.cfg.EntityID,
		Subject:   subject,
		JTI:       a.ID,
		ExpiresAt: until,
		Claims:    claims,
	}
	return p, samlNoncePrefix + idp.cfg.Name + ":" + a.ID, until.Add(samlSkew), nil
}

// samlSubjectValid reports whether a NameID or subject attribute value can be a
// subject as it is: non-empty, at most samlMaxSubjectBytes, without spaces around
// it, and without control characters, line separators or bidi overrides
// (oauth.SafeText). It is never trimmed.
func samlSubjectValid(v string) bool {
	return v != "" && len(v) <= samlMaxSubjectBytes && oauth.SafeText(v) && strings.TrimSpace(v) == v
}

// samlSubjectAttribute returns the one value of the one attribute whose Name is
// name (the subject_attribute), in whichever AttributeStatement.
func samlSubjectAttribute(a *samlAssertion, name string) (string, error) {
	var values [][]string
	for _, st := range a.Attributes {
		for _, at := range st.Attribute {
			// By Name only: SAML Core §2.7.3.1 says FriendlyName must not be used
			// to identify an attribute, and this one names who the token is for.
			if at.Name == name {
				values = append(values, at.Values)
			}
		}
	}
	switch {
	case len(values) == 0:
		return "", fmt.Errorf("no attribute %q for the subject (subject_attribute)", name)
	case len(values) > 1:
		return "", fmt.Errorf("attribute %q for the subject (subject_attribute) is given %d times, want once", name, len(values))
	case len(values[0]) != 1:
		return "", fmt.Errorf("attribute %q for the subject (subject_attribute) has %d values, want one", name, len(values[0]))
	}
	switch v := values[0][0]; {
	case v == "":
		return "", fmt.Errorf("attribute %q for the subject (subject_attribute) has an empty value", name)
	case !samlSubjectValid(v):
		return "", fmt.Errorf("attribute %q for the subject (subject_attribute): value %.64q is too long, or has spaces around it or control characters", name, v)
	default:
		return v, nil
	}
}

// samlTime parses an xs:dateTime attribute.
func samlTime(what, v string, required bool) (time.Time, error) {
	if v == "" {
		if required {
			return time.Time{}, fmt.Errorf("no %s", what)
		}
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q is not a dateTime", what, v)
	}
	return t, nil
}
