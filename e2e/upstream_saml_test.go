package e2e

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"html"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/coreos/go-oidc/v3/oidc"
	dsig "github.com/russellhaering/goxmldsig"
	"golang.org/x/oauth2"
)

// samlIdP is a SAML 2.0 identity provider in the test process: GET /sso takes
// an AuthnRequest (HTTP-Redirect binding) and answers with a page whose form
// posts a signed Response back to the service provider (HTTP-POST binding).
type samlIdP struct {
	t      *testing.T
	srv    *httptest.Server
	entity string
	key    *rsa.PrivateKey
	der    []byte

	mu      sync.Mutex
	nameID  string
	signer  *rsa.PrivateKey // the key responses are signed with; key unless a test forges
	signDER []byte
	wantACS string
	got     []samlAuthnRequest
}

type samlAuthnRequest struct {
	ID                          string `xml:"ID,attr"`
	Destination                 string `xml:"Destination,attr"`
	AssertionConsumerServiceURL string `xml:"AssertionConsumerServiceURL,attr"`
	ProtocolBinding             string `xml:"ProtocolBinding,attr"`
	Issuer                      string `xml:"urn:oasis:names:tc:SAML:2.0:assertion Issuer"`
	RelayState                  string `xml:"-"`
}

func samlKeyPair(t *testing.T) (*rsa.PrivateKey, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}

func startSAMLIdP(t *testing.T) *samlIdP {
	key, der := samlKeyPair(t)
	idp := &samlIdP{t: t, entity: "https://idp.test", key: key, der: der, signer: key, signDER: der, nameID: "alice@idp.test"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sso", idp.sso)
	idp.srv = httptest.NewServer(mux)
	t.Cleanup(idp.srv.Close)
	return idp
}

// certificateFile writes the IdP's signing certificate where deputy can read it.
func (idp *samlIdP) certificateFile() string {
	p := filepath.Join(idp.t.TempDir(), "idp.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: idp.der}), 0o600); err != nil {
		idp.t.Fatal(err)
	}
	return p
}

func (idp *samlIdP) sso(w http.ResponseWriter, r *http.Request) {
	req, err := decodeAuthnRequest(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	idp.mu.Lock()
	idp.got = append(idp.got, req)
	nameID, signer, signDER, wantACS := idp.nameID, idp.signer, idp.signDER, idp.wantACS
	idp.mu.Unlock()
	// A real IdP answers only at the ACS URL registered for the SP.
	if req.AssertionConsumerServiceURL != wantACS || req.Destination != idp.srv.URL+"/sso" {
		http.Error(w, "unknown ACS or Destination", http.StatusBadRequest)
		return
	}
	body, err := idp.response(req, nameID, signer, signDER)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!doctype html><body onload="document.forms[0].submit()">
<form method="post" action="%s">
<input type="hidden" name="SAMLResponse" value="%s">
<input type="hidden" name="RelayState" value="%s">
<noscript><button type="submit">Continue</button></noscript>
</form></body>`, html.EscapeString(req.AssertionConsumerServiceURL),
		base64.StdEncoding.EncodeToString(body), html.EscapeString(req.RelayState))
}

func decodeAuthnRequest(q url.Values) (samlAuthnRequest, error) {
	var req samlAuthnRequest
	deflated, err := base64.StdEncoding.DecodeString(q.Get("SAMLRequest"))
	if err != nil {
		return req, err
	}
	b, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(deflated)), 1<<20))
	if err != nil {
		return req, err
	}
	if err := xml.Unmarshal(b, &req); err != nil {
		return req, err
	}
	req.RelayState = q.Get("RelayState")
	return req, nil
}

// response is a Response whose Assertion is signed (exclusive c14n, RSA-SHA256).
func (idp *samlIdP) response(req samlAuthnRequest, nameID string, signer *rsa.PrivateKey, signDER []byte) ([]byte, error) {
	now := time.Now().UTC()
	ts := func(t time.Time) string { return t.Format("2006-01-02T15:04:05Z") }
	doc := etree.NewDocument()
	resp := doc.CreateElement("samlp:Response")
	resp.CreateAttr("xmlns:samlp", "urn:oasis:names:tc:SAML:2.0:protocol")
	resp.CreateAttr("xmlns:saml", "urn:oasis:names:tc:SAML:2.0:assertion")
	resp.CreateAttr("ID", "_r"+randomString())
	resp.CreateAttr("Version", "2.0")
	resp.CreateAttr("IssueInstant", ts(now))
	resp.CreateAttr("Destination", req.AssertionConsumerServiceURL)
	resp.CreateAttr("InResponseTo", req.ID)
	resp.CreateElement("saml:Issuer").SetText(idp.entity)
	resp.CreateElement("samlp:Status").CreateElement("samlp:StatusCode").CreateAttr("Value", "urn:oasis:names:tc:SAML:2.0:status:Success")

	a := resp.CreateElement("saml:Assertion")
	a.CreateAttr("xmlns:saml", "urn:oasis:names:tc:SAML:2.0:assertion")
	a.CreateAttr("ID", "_a"+randomString())
	a.CreateAttr("Version", "2.0")
	a.CreateAttr("IssueInstant", ts(now))
	a.CreateElement("saml:Issuer").SetText(idp.entity)
	subj := a.CreateElement("saml:Subject")
	nid := subj.CreateElement("saml:NameID")
	nid.CreateAttr("Format", "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress")
	nid.SetText(nameID)
	sc := subj.CreateElement("saml:SubjectConfirmation")
	sc.CreateAttr("Method", "urn:oasis:names:tc:SAML:2.0:cm:bearer")
	scd := sc.CreateElement("saml:SubjectConfirmationData")
	scd.CreateAttr("InResponseTo", req.ID)
	scd.CreateAttr("NotOnOrAfter", ts(now.Add(5*time.Minute)))
	scd.CreateAttr("Recipient", req.AssertionConsumerServiceURL)
	cond := a.CreateElement("saml:Conditions")
	cond.CreateAttr("NotBefore", ts(now.Add(-time.Minute)))
	cond.CreateAttr("NotOnOrAfter", ts(now.Add(5*time.Minute)))
	cond.CreateElement("saml:AudienceRestriction").CreateElement("saml:Audience").SetText(req.Issuer)
	authn := a.CreateElement("saml:AuthnStatement")
	authn.CreateAttr("AuthnInstant", ts(now))
	authn.CreateElement("saml:AuthnContext").CreateElement("saml:AuthnContextClassRef").
		SetText("urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport")
	attrs := a.CreateElement("saml:AttributeStatement")
	for _, kv := range [][2]string{{"email", "alice@corp.example"}, {"displayName", "Alice at Corp"}} {
		at := attrs.CreateElement("saml:Attribute")
		at.CreateAttr("Name", kv[0])
		at.CreateElement("saml:AttributeValue").SetText(kv[1])
	}

	ctx, err := dsig.NewSigningContext(signer, [][]byte{signDER})
	if err != nil {
		return nil, err
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	sig, err := ctx.ConstructSignature(a, true)
	if err != nil {
		return nil, err
	}
	a.InsertChildAt(a.SelectElement("Issuer").Index()+1, sig)
	return doc.WriteToBytes()
}

const samlUpstreamConfig = `
upstream_idps:
  - name: corp
    type: saml
    issuer: https://idp.test
    sso_url: %s/sso
    certificate_file: %s
    subject_prefix: "corp:"
`

func startSAMLSignin(t *testing.T, idp *samlIdP) *server {
	cfg := strings.Replace(signinConfig, "\nclients:\n", "\nclients:"+signinClients, 1) +
		fmt.Sprintf(samlUpstreamConfig, idp.srv.URL, idp.certificateFile())
	s := start(t, cfg)
	idp.mu.Lock()
	idp.wantACS = s.issuer + "/callback/corp"
	idp.mu.Unlock()
	return s
}

var formRE = regexp.MustCompile(`(?s)<form method="post" action="([^"]+)">(.*?)</form>`)

// postFormWith posts the form on p that contains marker (its hidden fields as
// they are), resolving its action against base.
func (b *browser) postFormWith(p page, marker, base string) page {
	b.t.Helper()
	for _, m := range formRE.FindAllStringSubmatch(p.body, -1) {
		if !strings.Contains(m[2], marker) {
			continue
		}
		form := url.Values{}
		for _, h := range hiddenField.FindAllStringSubmatch(m[2], -1) {
			form.Add(html.UnescapeString(h[1]), html.UnescapeString(h[2]))
		}
		action := html.UnescapeString(m[1])
		if strings.HasPrefix(action, "/") {
			action = base + action
		}
		return b.post(action, form)
	}
	b.t.Fatalf("no form with %s on %s (%d):\n%s", marker, p.url, p.status, p.body)
	return page{}
}

// TestUpstreamSAMLSignIn: the user picks "Sign in with corp" on deputy's login
// page, the test IdP signs an assertion for them, deputy (as the SP) accepts it
// and the code flow goes on; the token's subject is the mapped NameID and the
// chain of exchanges starts at a sign-in naming corp.
func TestUpstreamSAMLSignIn(t *testing.T) {
	idp := startSAMLIdP(t)
	s := startSAMLSignin(t, idp)
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, s.issuer)
	if err != nil {
		t.Fatal(err)
	}
	conf := &oauth2.Config{ClientID: "portal", ClientSecret: "portal-secret", Endpoint: provider.Endpoint(),
		RedirectURL: "https://portal.example/cb", Scopes: []string{"openid", "email", "payments:read", "ledger:read"}}
	state, verifier := randomString(), oauth2.GenerateVerifier()
	b := newBrowser(t, "https://portal.example/cb")

	login := b.get(conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
	if !strings.Contains(login.body, "Sign in with corp") {
		t.Fatalf("no corp button on the login page: %d %s", login.status, login.body)
	}
	// deputy redirects to the IdP; the IdP answers with its auto-posting form.
	atIdP := b.postFormWith(login, `name="idp" value="corp"`, s.issuer)
	if !strings.HasPrefix(atIdP.url, idp.srv.URL+"/sso?") || !strings.Contains(atIdP.body, `name="SAMLResponse"`) {
		t.Fatalf("not at the IdP: %s %d %s", atIdP.url, atIdP.status, atIdP.body)
	}
	idp.mu.Lock()
	req := idp.got[len(idp.got)-1]
	idp.mu.Unlock()
	if req.Destination != idp.srv.URL+"/sso" || req.AssertionConsumerServiceURL != s.issuer+"/callback/corp" ||
		req.Issuer != s.issuer+"/saml/corp" || req.ProtocolBinding != "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" ||
		req.ID == "" || req.RelayState == "" {
		t.Errorf("AuthnRequest %+v", req)
	}
	// The browser posts the Response to deputy's ACS; signed in, it goes on to consent.
	consent := b.postFormWith(atIdP, `name="SAMLResponse"`, "")
	if !strings.Contains(consent.body, "Allow") {
		t.Fatalf("expected the consent page, got %s %d %s", consent.url, consent.status, consent.body)
	}
	back := b.submit(s.issuer, consent, url.Values{"decision": {"allow"}})
	u, err := url.Parse(back.url)
	if err != nil || u.Query().Get("state") != state || u.Query().Get("code") == "" {
		t.Fatalf("redirect back %s (%d %s)", back.url, back.status, back.body)
	}
	tok, err := conf.Exchange(ctx, u.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	at := claims(t, tok.AccessToken)
	if at["sub"] != "corp:alice@idp.test" || at["idp"] != "corp" || at["aud"] != "https://api1.example" {
		t.Errorf("access token %v", at)
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: "portal"}).Verify(ctx, rawID)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	var idc struct {
		Email string   `json:"email"`
		AMR   []string `json:"amr"`
		ACR   string   `json:"acr"`
	}
	if err := idt.Claims(&idc); err != nil || idt.Subject != "corp:alice@idp.test" || idc.Email != "alice@corp.example" ||
		strings.Join(idc.AMR, " ") != "pwd" || idc.ACR != "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport" {
		t.Errorf("ID token sub %q claims %+v (%v)", idt.Subject, idc, err)
	}

	// api1 exchanges the user's token; the chain starts at the corp sign-in.
	t1 := s.token("api1", "api1-secret", exchangeForm(tok.AccessToken, "audience", "https://api2.example")).str("access_token")
	c1 := claims(t, t1)
	if c1["sub"] != "corp:alice@idp.test" || actJSON(t, c1["act"]) != `{"sub":"api1"}` || c1["idp"] != "corp" {
		t.Errorf("T1 %v", c1)
	}
	out, code := s.deputy("audit", "trace", c1["jti"].(string))
	root := regexp.MustCompile(`^token (sid-\S+) \(signin\)`).FindStringSubmatch(out)
	if code != 0 || root == nil || !strings.Contains(out, "sub corp:alice@idp.test") || !strings.Contains(out, "api1-to-api2") {
		t.Fatalf("trace does not start at a sign-in:\n%s", out)
	}
	// That sign-in is the one through corp.
	signins, _ := s.deputy("audit", "query", "--type", "signin", "--json")
	if !strings.Contains(signins, root[1]) || !strings.Contains(signins, "signed in with corp") {
		t.Errorf("sign-in %s not recorded as through corp:\n%s", root[1], signins)
	}

	// The same Response posted again signs nobody in: the flow it answered is
	// over (its cookie is gone), and deputy remembers the assertion's ID.
	replay := b.postFormWith(atIdP, `name="SAMLResponse"`, "")
	if replay.status < 400 || strings.Contains(replay.url, "portal.example") {
		t.Errorf("replayed SAML response: %d %s", replay.status, replay.url)
	}
}

// TestUpstreamSAMLForged: a Response signed by a key other than the configured
// certificate's is refused at the ACS — an error page, no session, nothing
// issued — and the refusal is audited.
func TestUpstreamSAMLForged(t *testing.T) {
	idp := startSAMLIdP(t)
	s := startSAMLSignin(t, idp)
	evil, evilDER := samlKeyPair(t)
	idp.mu.Lock()
	idp.signer, idp.signDER, idp.nameID = evil, evilDER, "admin@idp.test"
	idp.mu.Unlock()

	conf := &oauth2.Config{ClientID: "portal", ClientSecret: "portal-secret",
		Endpoint:    oauth2.Endpoint{AuthURL: s.endpoint("authorization_endpoint"), TokenURL: s.endpoint("token_endpoint")},
		RedirectURL: "https://portal.example/cb", Scopes: []string{"openid", "payments:read"}}
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL(randomString(), oauth2.S256ChallengeOption(verifier))
	b := newBrowser(t, "https://portal.example/cb")
	login := b.get(authURL)
	atIdP := b.postFormWith(login, `name="idp" value="corp"`, s.issuer)
	refused := b.postFormWith(atIdP, `name="SAMLResponse"`, "")
	if refused.status < 400 || !strings.Contains(refused.body, "sign-in with corp failed") || strings.Contains(refused.url, "portal.example") {
		t.Fatalf("forged response: %d %s\n%s", refused.status, refused.url, refused.body)
	}
	// No session: the authorization request still asks to sign in.
	if again := b.get(authURL); !strings.Contains(again.body, `name="password"`) {
		t.Errorf("signed in after a forged response: %s %d", again.url, again.status)
	}
	out, _ := s.deputy("audit", "query", "--type", "request.denied", "--json")
	if !strings.Contains(out, "sign-in with corp failed") || !strings.Contains(out, "SAML response refused") {
		t.Errorf("forged SAML response not audited as a denial:\n%s", out)
	}
	for _, typ := range []string{"signin", "code.issued", "token.issued"} {
		if out, _ := s.deputy("audit", "query", "--type", typ, "--json"); strings.Contains(out, "admin@idp.test") {
			t.Errorf("%s recorded for the forged subject:\n%s", typ, out)
		}
	}
}
