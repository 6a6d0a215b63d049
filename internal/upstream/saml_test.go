package upstream

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"io"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/store/sqlstore"
)

const (
	samlIdPEntity       = "https://idp.test"
	samlTestIssuer      = "https://deputy.test"
	samlSPEntity        = samlTestIssuer + "/saml/corp"
	samlACS             = samlTestIssuer + "/callback/corp"
	samlSSO             = "https://idp.test/sso"
	samlNSProtocol      = "urn:oasis:names:tc:SAML:2.0:protocol"
	samlNSAssertion     = "urn:oasis:names:tc:SAML:2.0:assertion"
	samlStatusSuccess   = "urn:oasis:names:tc:SAML:2.0:status:Success"
	samlClassPasswordPT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
)

// samlKey is an IdP signing key with its self-signed certificate.
type samlKey struct {
	key  *rsa.PrivateKey
	der  []byte
	cert *x509.Certificate
}

func newSAMLKey(t testing.TB, now time.Time) *samlKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp.test"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &samlKey{key: key, der: der, cert: cert}
}

func (k *samlKey) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.der})
}

// sign puts an enveloped signature (exclusive c14n, RSA-SHA256 unless hash says
// otherwise) into el, after its Issuer. carry is the certificate put in KeyInfo.
func (k *samlKey) sign(t testing.TB, el *etree.Element, hash crypto.Hash, carry []byte) {
	t.Helper()
	ctx, err := dsig.NewSigningContext(k.key, [][]byte{carry})
	if err != nil {
		t.Fatal(err)
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if hash != 0 {
		ctx.Hash = hash
	}
	sig, err := ctx.ConstructSignature(el, true)
	if err != nil {
		t.Fatal(err)
	}
	el.InsertChildAt(el.SelectElement("Issuer").Index()+1, sig)
}

// response describes one SAML Response the test IdP builds.
type samlResponse struct {
	ID, Destination, InResponseTo, Issuer, Status string
	Assertion                                     samlAssertion
}

type samlAssertion struct {
	ID, Issuer, NameID, NameIDFormat, Recipient, InResponseTo, Audience, ClassRef string
	NotBefore, NotOnOrAfter, SCDNotOnOrAfter                                      time.Time
	Attributes                                                                    [][2]string
}

func samlXSTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// goodSAMLResponse is what a well-behaved IdP answers to request id at now.
func goodSAMLResponse(now time.Time, requestID string) samlResponse {
	return samlResponse{
		ID: "_resp-" + requestID, Destination: samlACS, InResponseTo: requestID, Issuer: samlIdPEntity, Status: samlStatusSuccess,
		Assertion: samlAssertion{
			ID: "_assert-" + requestID, Issuer: samlIdPEntity, NameID: "alice@idp.test", Recipient: samlACS,
			NameIDFormat: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
			InResponseTo: requestID, Audience: samlSPEntity, ClassRef: samlClassPasswordPT,
			NotBefore: now.Add(-time.Minute), NotOnOrAfter: now.Add(5 * time.Minute), SCDNotOnOrAfter: now.Add(5 * time.Minute),
			Attributes: [][2]string{
				{"urn:oid:0.9.2342.19200300.100.1.3", "alice@example.com"},
				{"displayName", "Alice Liddell"},
				{"department", "looking-glass"},
			},
		},
	}
}

func (r samlResponse) document() *etree.Document {
	doc := etree.NewDocument()
	el := doc.CreateElement("samlp:Response")
	el.CreateAttr("xmlns:samlp", samlNSProtocol)
	el.CreateAttr("xmlns:saml", samlNSAssertion)
	el.CreateAttr("ID", r.ID)
	el.CreateAttr("Version", "2.0")
	el.CreateAttr("IssueInstant", samlXSTime(r.Assertion.NotBefore.Add(time.Minute)))
	if r.Destination != "" {
		el.CreateAttr("Destination", r.Destination)
	}
	if r.InResponseTo != "" {
		el.CreateAttr("InResponseTo", r.InResponseTo)
	}
	el.CreateElement("saml:Issuer").SetText(r.Issuer)
	el.CreateElement("samlp:Status").CreateElement("samlp:StatusCode").CreateAttr("Value", r.Status)
	el.AddChild(r.Assertion.element())
	return doc
}

func (a samlAssertion) element() *etree.Element {
	el := etree.NewElement("saml:Assertion")
	el.CreateAttr("xmlns:saml", samlNSAssertion)
	el.CreateAttr("ID", a.ID)
	el.CreateAttr("Version", "2.0")
	el.CreateAttr("IssueInstant", samlXSTime(a.NotBefore.Add(time.Minute)))
	el.CreateElement("saml:Issuer").SetText(a.Issuer)
	subj := el.CreateElement("saml:Subject")
	nid := subj.CreateElement("saml:NameID")
	if a.NameIDFormat != "" {
		nid.CreateAttr("Format", a.NameIDFormat)
	}
	nid.SetText(a.NameID)
	sc := subj.CreateElement("saml:SubjectConfirmation")
	sc.CreateAttr("Method", "urn:oasis:names:tc:SAML:2.0:cm:bearer")
	scd := sc.CreateElement("saml:SubjectConfirmationData")
	if a.InResponseTo != "" {
		scd.CreateAttr("InResponseTo", a.InResponseTo)
	}
	scd.CreateAttr("NotOnOrAfter", samlXSTime(a.SCDNotOnOrAfter))
	scd.CreateAttr("Recipient", a.Recipient)
	cond := el.CreateElement("saml:Conditions")
	cond.CreateAttr("NotBefore", samlXSTime(a.NotBefore))
	cond.CreateAttr("NotOnOrAfter", samlXSTime(a.NotOnOrAfter))
	if a.Audience != "" {
		cond.CreateElement("saml:AudienceRestriction").CreateElement("saml:Audience").SetText(a.Audience)
	}
	authn := el.CreateElement("saml:AuthnStatement")
	authn.CreateAttr("AuthnInstant", samlXSTime(a.NotBefore))
	authn.CreateAttr("SessionIndex", "_session")
	authn.CreateElement("saml:AuthnContext").CreateElement("saml:AuthnContextClassRef").SetText(a.ClassRef)
	if len(a.Attributes) > 0 {
		as := el.CreateElement("saml:AttributeStatement")
		for _, kv := range a.Attributes {
			at := as.CreateElement("saml:Attribute")
			at.CreateAttr("Name", kv[0])
			at.CreateElement("saml:AttributeValue").SetText(kv[1])
		}
	}
	return el
}

// testSAML is a provider for the IdP key's certificate at a fixed time, with
// one sign-in begun.
type testSAML struct {
	p     *samlProvider
	now   time.Time
	idp   *samlKey
	state samlState
	raw   []byte
}

func newTestSAML(t testing.TB, mod func(*config.UpstreamIdP)) *testSAML {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	idp := newSAMLKey(t, now)
	certFile := filepath.Join(t.TempDir(), "idp.pem")
	if err := os.WriteFile(certFile, idp.pem(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.UpstreamIdP{Name: "corp", Type: config.UpstreamSAML, Issuer: samlIdPEntity, SSOURL: samlSSO,
		CertificateFile: certFile, SubjectPrefix: "corp:"}
	if mod != nil {
		mod(&cfg)
	}
	prov, err := newSAML(cfg, samlTestIssuer)
	if err != nil {
		t.Fatal(err)
	}
	p := prov.(*samlProvider)
	p.now = func() time.Time { return now }
	_, raw, err := p.Begin(context.Background(), samlACS)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testSAML{p: p, now: now, idp: idp, raw: raw}
	if err := json.Unmarshal(raw, &ts.state); err != nil {
		t.Fatal(err)
	}
	return ts
}

func (ts *testSAML) complete(body []byte, relayState string) (Identity, error) {
	return ts.p.Complete(context.Background(), samlACS, url.Values{
		"SAMLResponse": {base64.StdEncoding.EncodeToString(body)},
		"RelayState":   {relayState},
	}, ts.raw)
}

func samlWrite(t testing.TB, doc *etree.Document) []byte {
	t.Helper()
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signedAssertion is the usual shape: the Assertion signed, the Response not.
func (ts *testSAML) signedAssertion(t testing.TB, r samlResponse) *etree.Document {
	doc := r.document()
	ts.idp.sign(t, doc.Root().SelectElement("Assertion"), 0, ts.idp.der)
	return doc
}

func TestSAMLBegin(t *testing.T) {
	ts := newTestSAML(t, nil)
	redirect, raw, err := ts.p.Begin(context.Background(), samlACS)
	if err != nil {
		t.Fatal(err)
	}
	var st samlState
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(redirect)
	if err != nil || !strings.HasPrefix(redirect, samlSSO+"?") {
		t.Fatalf("redirect %q", redirect)
	}
	q := u.Query()
	if q.Get("RelayState") != st.RelayState || len(st.RelayState) < 32 || st.ACS != samlACS || st.IssuedAt != ts.now.Unix() {
		t.Errorf("RelayState %q, state %+v", q.Get("RelayState"), st)
	}
	if st.RelayState == ts.state.RelayState || st.RequestID == ts.state.RequestID {
		t.Error("two sign-ins share a request id or RelayState")
	}
	deflated, err := base64.StdEncoding.DecodeString(q.Get("SAMLRequest"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(flate.NewReader(bytes.NewReader(deflated)))
	if err != nil {
		t.Fatal(err)
	}
	var req struct {
		XMLName                     xml.Name
		ID                          string `xml:"ID,attr"`
		Version                     string `xml:"Version,attr"`
		IssueInstant                string `xml:"IssueInstant,attr"`
		Destination                 string `xml:"Destination,attr"`
		AssertionConsumerServiceURL string `xml:"AssertionConsumerServiceURL,attr"`
		ProtocolBinding             string `xml:"ProtocolBinding,attr"`
		Issuer                      string `xml:"urn:oasis:names:tc:SAML:2.0:assertion Issuer"`
	}
	if err := xml.Unmarshal(b, &req); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	want := struct{ space, local, id, version, instant, dest, acs, binding, issuer string }{
		samlNSProtocol, "AuthnRequest", st.RequestID, "2.0", samlXSTime(ts.now), samlSSO, samlACS,
		"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST", samlSPEntity}
	got := struct{ space, local, id, version, instant, dest, acs, binding, issuer string }{
		req.XMLName.Space, req.XMLName.Local, req.ID, req.Version, req.IssueInstant, req.Destination,
		req.AssertionConsumerServiceURL, req.ProtocolBinding, req.Issuer}
	if got != want {
		t.Errorf("AuthnRequest\n got %+v\nwant %+v\n%s", got, want, b)
	}
}

func TestSAMLComplete(t *testing.T) {
	other := newSAMLKey(t, time.Now())
	// Each case builds the posted XML from a sign-in begun by ts.
	tests := []struct {
		name    string
		xml     func(t *testing.T, ts *testSAML) []byte
		relay   func(ts *testSAML) string // default: the right one
		want    string                    // the subject, for ok/…
		wantErr string                    // a fragment of the refusal, for fail/…
	}{
		{name: "ok/signed-assertion", want: "corp:alice@idp.test", xml: func(t *testing.T, ts *testSAML) []byte {
			return samlWrite(t, ts.signedAssertion(t, goodSAMLResponse(ts.now, ts.state.RequestID)))
		}},
		{name: "ok/signed-response", want: "corp:alice@idp.test", xml: func(t *testing.T, ts *testSAML) []byte {
			doc := goodSAMLResponse(ts.now, ts.state.RequestID).document()
			ts.idp.sign(t, doc.Root(), 0, ts.idp.der)
			return samlWrite(t, doc)
		}},
		{name: "ok/signed-response-and-assertion", want: "corp:alice@idp.test", xml: func(t *testing.T, ts *testSAML) []byte {
			doc := ts.signedAssertion(t, goodSAMLResponse(ts.now, ts.state.RequestID))
			ts.idp.sign(t, doc.Root(), 0, ts.idp.der)
			return samlWrite(t, doc)
		}},
		{name: "ok/within-skew", want: "corp:alice@idp.test", xml: func(t *testing.T, ts *testSAML) []byte {
			r := goodSAMLResponse(ts.now, ts.state.RequestID)
			r.Assertion.NotBefore = ts.now.Add(30 * time.Second)
			r.Assertion.NotOnOrAfter = ts.now.Add(-30 * time.Second)
			r.Assertion.SCDNotOnOrAfter = ts.now.Add(-30 * time.Second)
			return samlWrite(t, ts.signedAssertion(t, r))
		}},
		// The signed NameID is "alice@idp.test.evil.example"; a comment inserted
		// after signing leaves the signature valid (c14n drops comments), and a
		// reader that stops at the first text node would see "alice@idp.test".
		// The library reads the canonical, signed value: the whole NameID.
		{name: "ok/comment-in-nameid-not-truncated", want: "corp:alice@idp.test.evil.example", xml: func(t *testing.T, ts *testSAML) []byte {
			r := goodSAMLResponse(ts.now, ts.state.RequestID)
			r.Assertion.NameID = "alice@idp.test.evil.example"
			b := samlWrite(t, ts.signedAssertion(t, r))
			out := bytes.Replace(b, []byte(">alice@idp.test.evil.example<"), []byte(">alice@idp.test<!---->.evil.example<"), 1)
			if bytes.Equal(out, b) {
				t.Fatal("no NameID to put a comment in")
			}
			return out
		}},
		{name: "fail/unsigned", wantErr: "Missing signature", xml: func(t *testing.T, ts *testSAML) []byte {
			return samlWrite(t, goodSAMLResponse(ts.now, ts.state.RequestID).document())
		}},
		{name: "fail/signed-by-other-key", wantErr: "Could not verify certificate against trusted certs", xml: func(t *testing.T, ts *testSAML) []byte {
			doc := goodSAMLResponse(ts.now, ts.state.RequestID).document()
			other.sign(t, doc.Root().SelectElement("Assertion"), 0, other.der)
			return samlWrite(t, doc)
		}},
		{name: "fail/signed-response-by-other-key", wantErr: "Could not verify certificate against trusted certs", xml: func(t *testing.T, ts *testSAML) []byte {
			doc := ts.signedAssertion(t, goodSAMLResponse(ts.now, ts.state.RequestID))
			other.sign(t, doc.Root(), 0, other.der)
			return samlWrite(t, doc)
		}},
		// The document names the trusted certificate but was signed by another key.
		{name: "fail/signed-by-other-key-naming-trusted-cert", wantErr: "verification error", xml: func(t *testing.T, ts *testSAML) []byte {
			doc := goodSAMLResponse(ts.now, ts.state.RequestID).document()
			other.sign(t, doc.Root().SelectElement("Assertion"), 0, ts.idp.der)
			return samlWrite(t, doc)
		}},
		{name: "fail/tampered", wantErr: "Signature could not be verified", xml: func(t *testing.T, ts *testSAML) []byte {
			b := samlWrite(t, ts.signedAssertion(t, goodSAMLResponse(ts.now, ts.state.RequestID)))
			return bytes.Replace(b, []byte(">alice@idp.test<"), []byte(">admin@idp.test<"), 1)
		}},
		// Signature wrapping: the signed assertion moved under Extensions and an
		// attacker's assertion (same ID) in its place.
		{name: "fail/wrapped", wantErr: "unexpected parent element", xml: func(t *testing.T, ts *testSAML) []byte {
			r := goodSAMLResponse(ts.now, ts.state.RequestID)
			doc := ts.signedAssertion(t, r)
			root := doc.Root()
			signed := root.SelectElement("Assertion")
			root.RemoveChild(signed)
			ext := etree.NewElement("samlp:Extensions")
			ext.AddChild(signed)
			root.InsertChildAt(root.SelectElement("Issuer").Index()+1, ext)
			evil := r.Assertion
			evil.NameID = "admin@idp.test"
			root.AddChild(evil.element())
			return samlWrite(t, doc)
		}},
		// Wrapping a signed Response: a new root with the same ID carries the
		// attacker's assertion and the original signed Response.
		{name: "fail/wrapped-response", wantErr: "Signature could not be verified", xml: func(t *testing.T, ts *testSAML) []byte {
			r := goodSAMLResponse(ts.now, ts.state.RequestID)
			signed := r.document()
			ts.idp.sign(t, signed.Root(), 0, ts.idp.der)
			evil := r
			evil.Assertion.NameID = "admin@idp.test"
			doc := evil.document()
			ext := etree.NewElement("samlp:Extensions")
			ext.AddChild(signed.Root())
			doc.Root().InsertChildAt(doc.Root().SelectElement("Issuer").Index()+1, ext)
			return samlWrite(t, doc)
		}},
		{name: "fail/extra-unsigned-assertion", wantErr: "Missing signature", xml: func(t *testing.T, ts *testSAML) []byte {
			r := goodSAMLResponse(ts.now, ts.state.RequestID)
			doc := ts.signedAssertion(t, r)
			evil := r.Assertion
			evil.ID, evil.NameID = "_evil", "admin@idp.test"
			doc.Root().AddChild(evil.element())
			return samlWrite(t, doc)
		}},
		{name: "fail/two-assertions-in-signed-response", wantErr: "want exactly one signed assertion, got 2", xml: func(t *testing.T, ts *testSAML) []byte {
			r := goodSAMLResponse(ts.now, ts.state.RequestID)
			doc := r.document()
			second := r.Assertion
			second.ID, second.NameID = "_second", "bob@idp.test"
			doc.Root().AddChild(second.element())
			ts.idp.sign(t, doc.Root(), 0, ts.idp.der)
			return samlWrite(t, doc)
		}},
		{name: "fail/sha1", wantErr: "SignatureMethod \"http://www.w3.org/2000/09/xmldsig#rsa-sha1\" is not allowed", xml: func(t *testing.T, ts *testSAML) []byte {
			doc := goodSAMLResponse(ts.now, ts.state.RequestID).document()
			ts.idp.sign(t, doc.Root().SelectElement("Assertion"), crypto.SHA1, ts.idp.der)
			return samlWrite(t, doc)
		}},
		{name: "fail/expired", wantErr: "the assertion expired", xml: func(t *testing.T, ts *testSAML) []byte {
			r := goodSAMLResponse(ts.now, ts.state.RequestID)
			r.Assertion.NotBefore = ts.now.Add(-10 * time.Minute)
			r.Assertion.NotOnOrAfter = ts.now.Add(-2 * time.Minute)
			return samlWrite(t, ts.signedAssertion(t, r))
		}},
		{name: "fail/subject-confirmation-expired", wantErr: "Expired NotOnOrAfter", xml: func(t *testing.T, ts *testSAML) []byte {
			r := goodSAMLResponse(ts.now, ts.state.RequestID)
			r.Assertion.SCDNotOnOrAfter = ts.now.Add(-2 * time.Minute)
			return samlWrite(t, ts.signedAssertion(t, r))
		}},
		{name: "fail/not-yet-valid", wantErr: "not valid before", xml: func(t *testing.T, ts *testSAML) []byte {
			r := goodSAMLResponse(ts.now, ts.state.RequestID)
			r.Assertion.NotBefore = ts.now.Add(2 * time.Minute)
			return samlWrite(t, ts.signedAssertion(t, r))
		}},
		{name: "fail/wrong-audience", wantErr: "not for audience", xml: func(t *testing.T, ts *testSAML) []byte {
			r := goodSAMLResponse(ts.now, ts.state.RequestID)
			r.Assertion.Audience = "https://other-sp.test"
			return samlWrite(t, ts.signedAssertion(t, r))
		}},
		{name: "fail/no-audience-restriction", wantErr: "no AudienceRestriction", xml: func(t *testing.T, ts *testSAML) []byte {
			r := goodSAMLResponse(ts.now, ts.state.RequestID)
			r.Assertion.Audience = ""
			return samlWrite(t, ts.signedAssertion(t, r))
		}},
		{name: "fail/wrong-recipient", wantErr: "Recipient", xml: func(t *testing.T, ts *testSAML) []byte {
			r := goodSAMLResponse(ts.now, ts.state.RequestID)
			r.Assertion.Recipient = "https://other-sp.test/acs"
			return samlWrite(t, ts.signedAssertion(t, r))
		}},
		{name: "fail/wrong-destination", wantErr: "Destination", xml: func(t *testing.T, ts *testSAML) []byte {
			r := goodSAMLResponse(ts.now, ts.state.RequestID)
			r.Destination = "https://other-sp.test/acs"
			return samlWrite(t, ts.signedAssertion(t, r))
		}},
		{name: "fail/signed-response-without-destination", wantErr: "Destination", xml: func(t *testing.T, ts *testSAML) []byte {
			r := goodSAMLResponse(ts.now, ts.state.RequestID)
			r.Destination = ""
			doc := r.document()
			ts.idp.sign(t, doc.Root(), 0, ts.idp.der)
			return samlWrite(t, doc)
		}},
		{name: "fail/wrong-in-response-to", wantErr: "InResponseTo", xml: func(t *testing.T, ts *testSAML) []byte {
			return samlWrite(t, ts.signedAssertion(t, goodSAMLResponse(ts.now, "_another-request")))
		}},
		// The unsigned envelope names our request, the signed assertion another.
		{name: "fail/wrong-in-response-to-in-assertion", wantErr: "SubjectConfirmationData InResponseTo", xml: func(t *testing.T, ts *testSAML) []byte {
			r := goodSAMLResponse(ts.now, ts.state.RequestID)
			r.Assertion.InResponseTo = "_another-request"
			return samlWrite(t, ts.signedAssertion(t, r))
		}},
		{name: "fail/no-in-response-to", wantErr: "InResponseTo", xml: func(t *testing.T, ts *testSAML) []byte {
			r := goodSAMLResponse(ts.now, ts.state.RequestID)
			r.InResponseTo, r.Assertion.InResponseTo = "", ""
			return samlWrite(t, ts.signedAssertion(t, r))
		}},
		{name: "fail/wrong-issuer", wantErr: "Issuer", xml: func(t *testing.T, ts *testSAML) []byte {
			r := goodSAMLResponse(ts.now, ts.state.RequestID)
			r.Issuer, r.Assertion.Issuer = "https://evil-idp.test", "https://evil-idp.test"
			return samlWrite(t, ts.signedAssertion(t, r))
		}},
		{name: "fail/wrong-assertion-issuer", wantErr: "Issuer", xml: func(t *testing.T, ts *testSAML) []byte {
			r := goodSAMLResponse(ts.now, ts.state.RequestID)
			r.Assertion.Issuer = "https://evil-idp.test"
			return samlWrite(t, ts.signedAssertion(t, r))
		}},
		{name: "fail/status-not-success", wantErr: "StatusCode", xml: func(t *testing.T, ts *testSAML) []byte {
			r := goodSAMLResponse(ts.now, ts.state.RequestID)
			r.Status = "urn:oasis:names:tc:SAML:2.0:status:Requester"
			doc := ts.signedAssertion(t, r)
			ts.idp.sign(t, doc.Root(), 0, ts.idp.der)
			return samlWrite(t, doc)
		}},
		{name: "fail/transient-nameid", wantErr: "transient NameID", xml: func(t *testing.T, ts *testSAML) []byte {
			r := goodSAMLResponse(ts.now, ts.state.RequestID)
			r.Assertion.NameIDFormat = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
			return samlWrite(t, ts.signedAssertion(t, r))
		}},
		{name: "fail/doctype", wantErr: "DOCTYPE", xml: func(t *testing.T, ts *testSAML) []byte {
			b := samlWrite(t, ts.signedAssertion(t, goodSAMLResponse(ts.now, ts.state.RequestID)))
			return append([]byte(`<?xml version="1.0"?><!DOCTYPE samlp:Response [<!ENTITY who "admin@idp.test">]>`), b...)
		}},
		{name: "fail/oversized", wantErr: "larger than 262144 bytes", xml: func(t *testing.T, ts *testSAML) []byte {
			r := goodSAMLResponse(ts.now, ts.state.RequestID)
			r.Assertion.Attributes = append(r.Assertion.Attributes, [2]string{"padding", strings.Repeat("x", 300<<10)})
			return samlWrite(t, ts.signedAssertion(t, r))
		}},
		{name: "fail/not-xml", wantErr: "malformed XML", xml: func(t *testing.T, ts *testSAML) []byte {
			var buf bytes.Buffer
			w, _ := flate.NewWriter(&buf, flate.BestCompression)
			_, _ = w.Write(samlWrite(t, ts.signedAssertion(t, goodSAMLResponse(ts.now, ts.state.RequestID))))
			_ = w.Close()
			return buf.Bytes() // deflated: the POST binding never deflates
		}},
		{name: "fail/relay-state-mismatch", wantErr: "RelayState", relay: func(*testSAML) string { return "forged" },
			xml: func(t *testing.T, ts *testSAML) []byte {
				return samlWrite(t, ts.signedAssertion(t, goodSAMLResponse(ts.now, ts.state.RequestID)))
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestSAML(t, nil)
			relay := ts.state.RelayState
			if tt.relay != nil {
				relay = tt.relay(ts)
			}
			ident, err := ts.complete(tt.xml(t, ts), relay)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, errSAML) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %+v, %v; want a refusal saying %q", ident, err, tt.wantErr)
				}
				if ident.Subject != "" {
					t.Errorf("a refusal carries an identity: %+v", ident)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ident.Subject != tt.want || ident.IdP != "corp" || ident.ACR != samlClassPasswordPT || len(ident.AMR) != 1 || ident.AMR[0] != "pwd" {
				t.Errorf("identity %+v, want subject %q", ident, tt.want)
			}
			if ident.Claims["email"] != "alice@example.com" || ident.Claims["name"] != "Alice Liddell" || len(ident.Claims) != 2 {
				t.Errorf("claims %v", ident.Claims)
			}
		})
	}
}

func TestSAMLSubjectAttribute(t *testing.T) {
	ts := newTestSAML(t, func(c *config.UpstreamIdP) { c.SubjectClaim = "department"; c.SubjectPrefix = "" })
	ident, err := ts.complete(samlWrite(t, ts.signedAssertion(t, goodSAMLResponse(ts.now, ts.state.RequestID))), ts.state.RelayState)
	if err != nil || ident.Subject != "looking-glass" {
		t.Fatalf("%+v %v", ident, err)
	}
	ts = newTestSAML(t, func(c *config.UpstreamIdP) { c.SubjectClaim = "employeeNumber" })
	if _, err := ts.complete(samlWrite(t, ts.signedAssertion(t, goodSAMLResponse(ts.now, ts.state.RequestID))), ts.state.RelayState); err == nil || !strings.Contains(err.Error(), `no attribute "employeeNumber"`) {
		t.Fatalf("missing subject attribute: %v", err)
	}
}

// The flow state, not the response, is wrong.
func TestSAMLCompleteState(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(ts *testSAML) (acs string, state []byte)
		wantErr string
	}{
		{"fail/no-state", func(ts *testSAML) (string, []byte) { return samlACS, nil }, "no sign-in was started"},
		{"fail/other-acs", func(ts *testSAML) (string, []byte) { return samlTestIssuer + "/callback/other", ts.raw }, "was started for"},
		{"fail/flow-expired", func(ts *testSAML) (string, []byte) {
			ts.p.now = func() time.Time { return ts.now.Add(samlFlowTTL + time.Second) }
			return samlACS, ts.raw
		}, "no longer open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestSAML(t, nil)
			body := samlWrite(t, ts.signedAssertion(t, goodSAMLResponse(ts.now, ts.state.RequestID)))
			acs, state := tt.mod(ts)
			_, err := ts.p.Complete(context.Background(), acs, url.Values{
				"SAMLResponse": {base64.StdEncoding.EncodeToString(body)}, "RelayState": {ts.state.RelayState}}, state)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// A response is accepted once: the same one again, even with forged flow state
// naming its request, is refused by the assertion ID this node remembers.
func TestSAMLReplay(t *testing.T) {
	ts := newTestSAML(t, nil)
	body := samlWrite(t, ts.signedAssertion(t, goodSAMLResponse(ts.now, ts.state.RequestID)))
	if _, err := ts.complete(body, ts.state.RelayState); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.complete(body, ts.state.RelayState); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("replayed response: %v", err)
	}
	// An expired ID is forgotten (the assertion would be refused as expired
	// anyway) when room is needed; unexpired ones never are: a full memory refuses.
	later := ts.now.Add(time.Hour)
	ts.p.seen.max = 2
	if err := ts.p.seen.remember("_fresh", later.Add(time.Hour), later); err != nil {
		t.Fatal(err)
	}
	if err := ts.p.seen.remember("_another", later.Add(time.Hour), later); err != nil {
		t.Fatalf("expired ID not forgotten to make room: %v", err)
	}
	if _, ok := ts.p.seen.ids["_assert-"+ts.state.RequestID]; ok {
		t.Error("the expired assertion ID is still remembered")
	}
	if err := ts.p.seen.remember("_third", later.Add(time.Hour), later); err == nil || !strings.Contains(err.Error(), "too many") {
		t.Errorf("a full memory of unexpired assertion IDs accepted another: %v", err)
	}
}

func TestSAMLConfig(t *testing.T) {
	now := time.Now()
	idp := newSAMLKey(t, now)
	dir := t.TempDir()
	file := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certB64 := base64.StdEncoding.EncodeToString(idp.der)
	metadata := `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.test">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>bm90IGEgY2VydA==</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>
` + certB64 + `
    </ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.test/sso/post"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.test/sso/redirect"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>`
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(idp.key)})
	base := config.UpstreamIdP{Name: "corp", Type: config.UpstreamSAML, Issuer: samlIdPEntity, SSOURL: samlSSO}
	tests := []struct {
		name    string
		mod     func(c *config.UpstreamIdP)
		wantErr string
		wantSSO string
	}{
		{"ok/certificate", func(c *config.UpstreamIdP) { c.CertificateFile = file("idp.pem", idp.pem()) }, "", samlSSO},
		{"ok/metadata", func(c *config.UpstreamIdP) { c.SSOURL = ""; c.MetadataFile = file("md.xml", []byte(metadata)) }, "", "https://idp.test/sso/redirect"},
		{"ok/metadata-sso-url-overridden", func(c *config.UpstreamIdP) { c.MetadataFile = file("md.xml", []byte(metadata)) }, "", samlSSO},
		{"fail/no-certificate", func(c *config.UpstreamIdP) {}, "upstream_idps[corp]: one of certificate_file or metadata_file must be set", ""},
		{"fail/certificate-missing", func(c *config.UpstreamIdP) { c.CertificateFile = filepath.Join(dir, "nope.pem") }, "upstream_idps[corp].certificate_file", ""},
		{"fail/certificate-not-pem", func(c *config.UpstreamIdP) { c.CertificateFile = file("bad.pem", []byte("hello")) }, "upstream_idps[corp].certificate_file", ""},
		{"fail/certificate-with-private-key", func(c *config.UpstreamIdP) {
			c.CertificateFile = file("both.pem", append(idp.pem(), keyPEM...))
		}, "a RSA PRIVATE KEY block", ""},
		{"fail/metadata-other-entity", func(c *config.UpstreamIdP) {
			c.Issuer = "https://other-idp.test"
			c.MetadataFile = file("md.xml", []byte(metadata))
		}, `upstream_idps[corp].metadata_file`, ""},
		{"fail/metadata-doctype", func(c *config.UpstreamIdP) {
			c.MetadataFile = file("md.xml", []byte(`<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>`+metadata))
		}, "DOCTYPE", ""},
		{"fail/metadata-without-sso", func(c *config.UpstreamIdP) {
			c.SSOURL = ""
			c.MetadataFile = file("md.xml", []byte(strings.Replace(metadata, "HTTP-Redirect", "SOAP", 1)))
		}, "upstream_idps[corp].sso_url", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mod(&c)
			p, err := newSAML(c, samlTestIssuer)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sp := p.(*samlProvider)
			if sp.ssoURL != tt.wantSSO || sp.entityID != samlSPEntity || len(sp.certs.Roots) != 1 || !sp.certs.Roots[0].Equal(idp.cert) {
				t.Errorf("provider %+v", sp)
			}
		})
	}
}

// FuzzSAMLComplete feeds arbitrary XML as the posted SAMLResponse: nothing
// panics, and nothing but the test IdP's own signed assertion signs anyone in.
func FuzzSAMLComplete(f *testing.F) {
	ts := newTestSAML(f, nil)
	good := samlWrite(f, ts.signedAssertion(f, goodSAMLResponse(ts.now, ts.state.RequestID)))
	f.Add(good)
	f.Add(bytes.Replace(good, []byte(">alice@idp.test<"), []byte(">alice<!---->@idp.test<"), 1))
	f.Add([]byte(`<!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>`))
	f.Add([]byte(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ts.p.seen = &samlSeen{max: samlMaxRemembered, ids: map[string]time.Time{}}
		ident, err := ts.complete(body, ts.state.RelayState)
		if err == nil && ident.Subject != "corp:alice@idp.test" {
			t.Fatalf("signed in %+v from %q", ident, body)
		}
	})
}

// With the store's nonces, a response accepted by one node is refused by another
// (which has never seen it in memory).
func TestSAMLReplayAcrossNodes(t *testing.T) {
	db, err := sqlstore.Open(t.Context(), "sqlite", filepath.Join(t.TempDir(), "deputy.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	ts := newTestSAML(t, nil)
	ts.p.nonces = db
	other := *ts.p // a second node: same configuration, its own memory
	other.seen = &samlSeen{max: samlMaxRemembered, ids: map[string]time.Time{}}
	body := samlWrite(t, ts.signedAssertion(t, goodSAMLResponse(ts.now, ts.state.RequestID)))
	if _, err := ts.complete(body, ts.state.RelayState); err != nil {
		t.Fatal(err)
	}
	_, err = other.Complete(context.Background(), samlACS, url.Values{
		"SAMLResponse": {base64.StdEncoding.EncodeToString(body)},
		"RelayState":   {ts.state.RelayState},
	}, ts.raw)
	if err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("replayed on another node: %v", err)
	}
	if len(ts.p.seen.ids)+len(other.seen.ids) != 0 {
		t.Error("assertion IDs kept in memory although the store has them")
	}
}
