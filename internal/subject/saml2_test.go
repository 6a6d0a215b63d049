package subject_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
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
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/keys"
	"github.com/deputy-auth/deputy/internal/store/sqlstore"
	"github.com/deputy-auth/deputy/internal/subject"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

const (
	testIdP      = "https://idp.corp.test"
	testIssuer   = "https://deputy.test"
	testAudience = "https://deputy.test"
)

// testSAMLKey is a signing key with its self-signed certificate.
type testSAMLKey struct {
	key  crypto.Signer
	cert []byte // DER
}

// newTestSAMLKey makes an RSA key, or with ec an ECDSA P-256 one (quick to make
// under the fuzzer's coverage instrumentation, where RSA key generation takes many
// seconds).
func newTestSAMLKey(t testing.TB, ec bool) testSAMLKey {
	t.Helper()
	var key crypto.Signer
	var err error
	if ec {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test IdP"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return testSAMLKey{key: key, cert: der}
}

// assertionSpec describes a test assertion.
type assertionSpec struct {
	ID, Issuer, NameID, Audience, Recipient, Method string
	NotBefore, NotOnOrAfter, SCDNotOnOrAfter        time.Time
	Advice                                          string // inner XML of an Advice element
	// Attributes are more saml:Attribute elements, after those of every test
	// assertion in its AttributeStatement; ExtraStatement, when set, is the inner
	// XML of a second AttributeStatement.
	Attributes, ExtraStatement string
}

func defaultSpec(now time.Time) assertionSpec {
	return assertionSpec{
		ID: "_" + token.NewID(), Issuer: testIdP, NameID: "alice@corp.test", Audience: testAudience,
		Recipient: testIssuer + "/token", Method: "urn:oasis:names:tc:SAML:2.0:cm:bearer",
		NotBefore: now.Add(-time.Minute), NotOnOrAfter: now.Add(5 * time.Minute), SCDNotOnOrAfter: now.Add(3 * time.Minute),
	}
}

func (s assertionSpec) xml() string {
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	advice := ""
	if s.Advice != "" {
		advice = "<saml:Advice>" + s.Advice + "</saml:Advice>"
	}
	extra := ""
	if s.ExtraStatement != "" {
		extra = "<saml:AttributeStatement>" + s.ExtraStatement + "</saml:AttributeStatement>"
	}
	return fmt.Sprintf(`<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="%s" Version="2.0" IssueInstant="%s">`+
		`<saml:Issuer>%s</saml:Issuer>`+
		`<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">%s</saml:NameID>`+
		`<saml:SubjectConfirmation Method="%s"><saml:SubjectConfirmationData NotOnOrAfter="%s" Recipient="%s"/></saml:SubjectConfirmation></saml:Subject>`+
		`<saml:Conditions NotBefore="%s" NotOnOrAfter="%s"><saml:AudienceRestriction><saml:Audience>%s</saml:Audience></saml:AudienceRestriction></saml:Conditions>`+
		`%s`+
		`<saml:AttributeStatement><saml:Attribute Name="urn:oid:0.9.2342.19200300.100.1.3"><saml:AttributeValue>alice@corp.test</saml:AttributeValue></saml:Attribute>`+
		`<saml:Attribute Name="displayName"><saml:AttributeValue>Alice</saml:AttributeValue></saml:Attribute>`+
		`<saml:Attribute Name="urn:x-unmapped"><saml:AttributeValue>x</saml:AttributeValue></saml:Attribute>%s</saml:AttributeStatement>`+
		`%s</saml:Assertion>`,
		s.ID, ts(s.NotBefore), s.Issuer, s.NameID, s.Method, ts(s.SCDNotOnOrAfter), s.Recipient,
		ts(s.NotBefore), ts(s.NotOnOrAfter), s.Audience, advice, s.Attributes, extra)
}

// sign returns the assertion signed by k with an enveloped signature (SHA-256
// unless method says otherwise); keyInfo false drops the KeyInfo.
func (k testSAMLKey) sign(t testing.TB, doc string, method string, keyInfo bool) *etree.Element {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromString(doc); err != nil {
		t.Fatal(err)
	}
	sc, err := dsig.NewSigningContext(k.key, [][]byte{k.cert})
	if err != nil {
		t.Fatal(err)
	}
	sc.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if method != "" {
		if err := sc.SetSignatureMethod(method); err != nil {
			t.Fatal(err)
		}
	}
	signed, err := sc.SignEnveloped(d.Root())
	if err != nil {
		t.Fatal(err)
	}
	if !keyInfo {
		sig := signed.FindElement("./Signature")
		sig.RemoveChild(sig.FindElement("./KeyInfo"))
	}
	return signed
}

func serialize(t testing.TB, el *etree.Element) []byte {
	t.Helper()
	d := etree.NewDocument()
	d.SetRoot(el)
	b, err := d.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

type samlFixture struct {
	v   *subject.Verifier
	idp testSAMLKey
}

// newSAMLFixture makes a verifier trusting one SAML IdP, "corp"; mods change its
// configuration.
func newSAMLFixture(t testing.TB, ec bool, mods ...func(*config.SAMLIdP)) *samlFixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlstore.Open(ctx, "sqlite", filepath.Join(dir, "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ks, err := keys.Open(ctx, st, keys.Options{Algorithm: "ES256", RetireAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	idp := newTestSAMLKey(t, ec)
	pemFile := filepath.Join(dir, "idp.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: idp.cert}), 0o600); err != nil {
		t.Fatal(err)
	}
	svc := token.NewService(testIssuer, ks, token.NewRevoked(), 16384)
	idpCfg := config.SAMLIdP{Name: "corp", EntityID: testIdP, CertificateFile: pemFile, Audience: testAudience}
	for _, mod := range mods {
		mod(&idpCfg)
	}
	v, err := subject.New(ctx, svc, subject.Options{
		SAMLIdPs: []config.SAMLIdP{idpCfg},
		Nonces:   st,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &samlFixture{v: v, idp: idp}
}

func TestVerifySAML(t *testing.T) {
	ctx := context.Background()
	f := newSAMLFixture(t, false)
	now := time.Now()
	signed := func(mod func(s *assertionSpec)) []byte {
		s := defaultSpec(now)
		if mod != nil {
			mod(&s)
		}
		return serialize(t, f.idp.sign(t, s.xml(), "", true))
	}
	attacker := newTestSAMLKey(t, false)

	t.Run("ok/signed-assertion", func(t *testing.T) {
		s := defaultSpec(now)
		p, err := f.v.Verify(ctx, "subject", enc(serialize(t, f.idp.sign(t, s.xml(), "", true))), oauth.TokenTypeSAML2, now)
		if err != nil {
			t.Fatal(err)
		}
		if p.Issuer != "corp" || p.IssuerURL != testIdP || p.TokenType != oauth.TokenTypeSAML2 ||
			p.Subject != "alice@corp.test" || p.JTI != s.ID || p.Scopes != nil {
			t.Errorf("principal = %+v", p)
		}
		if want := s.SCDNotOnOrAfter.Truncate(time.Second); !p.ExpiresAt.Equal(want) {
			t.Errorf("ExpiresAt = %v, want the earliest NotOnOrAfter %v", p.ExpiresAt, want)
		}
		if p.Claims["email"] != "alice@corp.test" || p.Claims["name"] != "Alice" || len(p.Claims) != 2 {
			t.Errorf("claims = %v", p.Claims)
		}
	})
	t.Run("ok/unpadded-and-padded-base64url", func(t *testing.T) {
		for _, e := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding} {
			b := signed(nil)
			for len(b)%3 == 0 { // make the padded form differ
				b = append(b, '\n')
			}
			raw := e.EncodeToString(b)
			if _, err := f.v.Verify(ctx, "subject", raw, oauth.TokenTypeSAML2, now); err != nil {
				t.Errorf("%q…: %v", raw[len(raw)-4:], err)
			}
		}
	})
	t.Run("ok/recipient-audience", func(t *testing.T) {
		if _, err := f.v.Verify(ctx, "subject", enc(signed(func(s *assertionSpec) { s.Recipient = testAudience })), oauth.TokenTypeSAML2, now); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ok/within-skew", func(t *testing.T) {
		b := signed(func(s *assertionSpec) { s.NotBefore = now.Add(30 * time.Second) })
		if _, err := f.v.Verify(ctx, "subject", enc(b), oauth.TokenTypeSAML2, now); err != nil {
			t.Fatal(err)
		}
	})

	replayed := enc(signed(nil))
	if _, err := f.v.Verify(ctx, "subject", replayed, oauth.TokenTypeSAML2, now); err != nil {
		t.Fatal(err)
	}
	// comment: the IdP signed "alice@corp.test.evil.example"; a comment splits it.
	comment := bytes.Replace(signed(func(s *assertionSpec) { s.NameID = "alice@corp.test.evil.example" }),
		[]byte("alice@corp.test.evil.example</saml:NameID>"), []byte("alice@corp.test<!---->.evil.example</saml:NameID>"), 1)
	legit := f.idp.sign(t, defaultSpec(now).xml(), "", true)
	evil := defaultSpec(now)
	evil.NameID = "mallory@corp.test"
	evil.Advice = string(serialize(t, legit))
	extra := f.idp.sign(t, defaultSpec(now).xml(), "", true)
	unsignedExtra := etree.NewDocument()
	if err := unsignedExtra.ReadFromString(func() string { s := defaultSpec(now); s.NameID = "mallory@corp.test"; return s.xml() }()); err != nil {
		t.Fatal(err)
	}
	extra.AddChild(unsignedExtra.Root())

	for _, tt := range []struct {
		name, raw, why string
	}{
		{"fail/unsigned", enc([]byte(defaultSpec(now).xml())), "want one Signature"},
		{"fail/signed-by-other-key", enc(serialize(t, attacker.sign(t, defaultSpec(now).xml(), "", false))), "signature"},
		{"fail/key-in-document-not-trusted", enc(serialize(t, attacker.sign(t, defaultSpec(now).xml(), "", true))), "Could not verify certificate against trusted certs"},
		{"fail/wrapped", enc([]byte(evil.xml())), "want one Assertion, got 2"},
		{"fail/extra-unsigned-assertion", enc(serialize(t, extra)), "want one Assertion, got 2"},
		{"fail/comment-in-nameid", enc(comment), "comments are not allowed"},
		{"fail/expired", enc(signed(func(s *assertionSpec) {
			s.NotBefore, s.NotOnOrAfter, s.SCDNotOnOrAfter = now.Add(-time.Hour), now.Add(-2*time.Minute), now.Add(-2*time.Minute)
		})), "expired"},
		{"fail/subject-confirmation-expired", enc(signed(func(s *assertionSpec) { s.SCDNotOnOrAfter = now.Add(-2 * time.Minute) })), "subject confirmation expired"},
		{"fail/not-yet-valid", enc(signed(func(s *assertionSpec) { s.NotBefore = now.Add(2 * time.Minute) })), "not valid before"},
		{"fail/other-audience", enc(signed(func(s *assertionSpec) { s.Audience = "https://other.example" })), "not for audience"},
		{"fail/other-recipient", enc(signed(func(s *assertionSpec) { s.Recipient = "https://other.example/acs" })), "Recipient"},
		{"fail/not-bearer", enc(signed(func(s *assertionSpec) { s.Method = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key" })), "not bearer"},
		{"fail/nameid-with-spaces", enc(signed(func(s *assertionSpec) { s.NameID = " alice@corp.test" })), "NameID"},
		{"fail/replayed", replayed, "replayed"},
		{"fail/dtd", enc(append([]byte(`<!DOCTYPE saml:Assertion [<!ENTITY x "alice">]>`), signed(nil)...)), "DOCTYPE"},
		{"fail/oversized", strings.Repeat("A", 64<<10+1), "larger than"},
		{"fail/not-base64url", "PHNhbWw+/+", "base64url"},
		{"fail/unknown-issuer", enc(signed(func(s *assertionSpec) { s.Issuer = "https://idp.other.test" })), "not a trusted SAML IdP"},
		{"fail/sha1", enc(serialize(t, f.idp.sign(t, defaultSpec(now).xml(), dsig.RSASHA1SignatureMethod, true))), "not allowed"},
		{"fail/not-an-assertion", enc([]byte(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>`)), "not a saml:Assertion"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := f.v.Verify(ctx, "subject", tt.raw, oauth.TokenTypeSAML2, now)
			e := oauth.AsError(err)
			if err == nil || e.Code != oauth.CodeInvalidRequest {
				t.Fatalf("Verify = %+v, %v; want invalid_request", p, err)
			}
			if !strings.Contains(e.Reason(), tt.why) {
				t.Errorf("reason %q does not say %q", e.Reason(), tt.why)
			}
		})
	}
}

// samlAttr is a saml:Attribute element: name, friendly name (none when empty) and
// one AttributeValue per value.
func samlAttr(name, friendly string, values ...string) string {
	var b strings.Builder
	b.WriteString(`<saml:Attribute Name="` + name + `"`)
	if friendly != "" {
		b.WriteString(` FriendlyName="` + friendly + `"`)
	}
	b.WriteString(`>`)
	for _, v := range values {
		b.WriteString(`<saml:AttributeValue>` + v + `</saml:AttributeValue>`)
	}
	b.WriteString(`</saml:Attribute>`)
	return b.String()
}

// With subject_attribute set, the subject is the one value of that attribute,
// found by Name or FriendlyName; anything but exactly one attribute with exactly
// one acceptable value is refused.
func TestVerifySAMLSubjectAttribute(t *testing.T) {
	ctx := context.Background()
	const uidOID = "urn:oid:0.9.2342.19200300.100.1.1"
	f := newSAMLFixture(t, false, func(c *config.SAMLIdP) { c.SubjectAttribute = "uid" })
	now := time.Now()
	signed := func(f *samlFixture, mod func(s *assertionSpec)) string {
		s := defaultSpec(now)
		mod(&s)
		return enc(serialize(t, f.idp.sign(t, s.xml(), "", true)))
	}

	for _, tt := range []struct {
		name  string
		mod   func(s *assertionSpec)
		claim string // preferred_username, which uid also releases
	}{
		{"ok/by-name", func(s *assertionSpec) { s.Attributes = samlAttr("uid", "", "asmith") }, "asmith"},
		{"ok/in-second-statement", func(s *assertionSpec) { s.ExtraStatement = samlAttr("uid", "", "asmith") }, "asmith"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := f.v.Verify(ctx, "subject", signed(f, tt.mod), oauth.TokenTypeSAML2, now)
			if err != nil {
				t.Fatal(err)
			}
			if p.Subject != "asmith" || p.Issuer != "corp" {
				t.Errorf("principal = %+v, want subject asmith from the uid attribute, not the NameID", p)
			}
			if p.Claims["preferred_username"] != tt.claim || p.Claims["email"] != "alice@corp.test" || p.Claims["name"] != "Alice" || len(p.Claims) != 3 {
				t.Errorf("claims = %v; the subject attribute must still map to its claim", p.Claims)
			}
		})
	}

	t.Run("ok/unset-takes-nameid", func(t *testing.T) {
		def := newSAMLFixture(t, true)
		p, err := def.v.Verify(ctx, "subject", signed(def, func(s *assertionSpec) { s.Attributes = samlAttr("uid", "", "asmith") }), oauth.TokenTypeSAML2, now)
		if err != nil {
			t.Fatal(err)
		}
		if p.Subject != "alice@corp.test" || p.Claims["preferred_username"] != "asmith" {
			t.Errorf("principal = %+v, want the NameID as subject", p)
		}
	})

	for _, tt := range []struct {
		name string
		mod  func(s *assertionSpec)
		why  string
	}{
		{"fail/attribute-missing", func(s *assertionSpec) { s.Attributes = samlAttr("uidNumber", "", "1000") },
			`no attribute "uid" for the subject`},
		{"fail/two-values", func(s *assertionSpec) { s.Attributes = samlAttr("uid", "", "asmith", "bjones") },
			`attribute "uid" for the subject (subject_attribute) has 2 values, want one`},
		{"fail/no-value", func(s *assertionSpec) { s.Attributes = samlAttr("uid", "") },
			`attribute "uid" for the subject (subject_attribute) has 0 values, want one`},
		{"fail/empty-value", func(s *assertionSpec) { s.Attributes = samlAttr("uid", "", "") },
			`attribute "uid" for the subject (subject_attribute) has an empty value`},
		{"fail/element-value", func(s *assertionSpec) { s.Attributes = samlAttr("uid", "", "<saml:NameID>asmith</saml:NameID>") },
			`has an empty value`},
		{"fail/value-with-spaces", func(s *assertionSpec) { s.Attributes = samlAttr("uid", "", " asmith") },
			`value " asmith" is too long, or has spaces around it or control characters`},
		{"fail/value-with-control", func(s *assertionSpec) { s.Attributes = samlAttr("uid", "", "as&#x9;mith") },
			`value "as\tmith" is too long`},
		{"fail/value-too-long", func(s *assertionSpec) { s.Attributes = samlAttr("uid", "", strings.Repeat("a", 1025)) },
			`is too long`},
		{"fail/listed-twice", func(s *assertionSpec) { s.Attributes = samlAttr("uid", "", "asmith") + samlAttr("uid", "", "asmith") },
			`attribute "uid" for the subject (subject_attribute) is given 2 times, want once`},
		{"fail/friendly-name-is-not-the-name", func(s *assertionSpec) {
			s.Attributes = samlAttr(uidOID, "uid", "asmith")
		}, `no attribute "uid"`},
		{"fail/listed-in-two-statements", func(s *assertionSpec) {
			s.Attributes, s.ExtraStatement = samlAttr("uid", "", "asmith"), samlAttr("uid", "", "bjones")
		}, `is given 2 times`},
		{"fail/nameid-still-checked", func(s *assertionSpec) {
			s.NameID, s.Attributes = " alice@corp.test", samlAttr("uid", "", "asmith")
		}, `NameID " alice@corp.test" is empty, too long`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := f.v.Verify(ctx, "subject", signed(f, tt.mod), oauth.TokenTypeSAML2, now)
			e := oauth.AsError(err)
			if err == nil || e.Code != oauth.CodeInvalidRequest {
				t.Fatalf("Verify = %+v, %v; want invalid_request", p, err)
			}
			if e.Description != "subject_token is not a valid SAML assertion" || !strings.Contains(e.Reason(), tt.why) {
				t.Errorf("reason %q does not say %q", e.Reason(), tt.why)
			}
		})
	}
}

// nopNonces is a nonce store for verifiers that never see an assertion.
type nopNonces struct{}

func (nopNonces) UseNonce(context.Context, string, time.Time) error { return nil }
func (nopNonces) PurgeNonces(context.Context, time.Time) error      { return nil }

// A subject_attribute with white space around it could never match; the
// configuration is refused before any certificate is read.
func TestNewSAMLSubjectAttributeSpaces(t *testing.T) {
	_, err := subject.New(context.Background(), nil, subject.Options{
		SAMLIdPs: []config.SAMLIdP{{Name: "corp", EntityID: testIdP, CertificateFile: "missing.pem", Audience: testAudience, SubjectAttribute: "uid "}},
		Nonces:   nopNonces{},
	})
	if err == nil || !strings.Contains(err.Error(), `saml_idps[0] (corp): subject_attribute "uid " has white space around it`) {
		t.Fatalf("New = %v, want the subject_attribute refused", err)
	}
}

// FuzzSAMLAssertion feeds arbitrary documents, and mutations of a signed one, to
// the SAML verifier: it must never panic, and never accept anything but the
// signed assertion unchanged.
func FuzzSAMLAssertion(f *testing.F) {
	fx := newSAMLFixture(f, true)
	now := time.Now()
	good := serialize(f, fx.idp.sign(f, defaultSpec(now).xml(), "", true))
	f.Add(good)
	f.Add([]byte(defaultSpec(now).xml()))
	f.Add([]byte(`<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>`))
	f.Add([]byte(`<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"><saml:Issuer>` + testIdP + `</saml:Issuer></saml:Assertion>`))
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := fx.v.Verify(ctx, "subject", base64.RawURLEncoding.EncodeToString(doc), oauth.TokenTypeSAML2, now)
		if err == nil && (p.Subject != "alice@corp.test" || p.Issuer != "corp") {
			t.Fatalf("accepted %q as %+v", doc, p)
		}
		if err != nil && oauth.AsError(err).Code != oauth.CodeInvalidRequest {
			t.Fatalf("error %v is not invalid_request", err)
		}
	})
}
