package upstream

// SAML 2.0 sign-in: deputy is a service provider in the Web Browser SSO profile
// (SAML Profiles §4.1). The AuthnRequest goes out with the HTTP-Redirect binding
// (SAML Bindings §3.4), the Response comes back with the HTTP-POST binding
// (§3.5). XML signature checking is github.com/russellhaering/gosaml2 on
// github.com/russellhaering/goxmldsig (≥ 1.6): this file never verifies a
// signature itself, it only decides what a verified response must say.

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	saml2 "github.com/russellhaering/gosaml2"
	"github.com/russellhaering/gosaml2/types"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/samlx"
	"github.com/deputy-auth/deputy/internal/store"
)

// Limits of SAML sign-in.
const (
	// samlMaxResponseBytes bounds a decoded SAMLResponse (and a metadata file).
	samlMaxResponseBytes = 256 << 10
	// samlSkew is the clock difference tolerated with the IdP on every time bound.
	samlSkew = time.Minute
	// samlFlowTTL bounds the time from Begin to Complete.
	samlFlowTTL = 10 * time.Minute

	samlMaxSubjectBytes = 1024
	samlMaxClaimBytes   = 1024
	// samlMaxRemembered bounds the assertion IDs one node remembers; past it,
	// once expired IDs are forgotten, sign-ins are refused rather than an ID
	// forgotten early.
	samlMaxRemembered = 100_000
)

const (
	samlNameIDTransient = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
	samlBearer          = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
)

// samlProvider signs people in at a SAML 2.0 IdP.
//
// The AuthnRequest is not signed: nothing in it is secret or binding on deputy,
// the IdP answers only to the ACS URL it has registered for this SP entity id,
// and every property of the answer deputy relies on is checked on the signed
// response. An IdP that demands signed requests is not supported yet.
//
// Only what a verified signature covers is read (the library re-parses the
// signed bytes). When only the Assertion is signed, the Response envelope
// around it (Status, Issuer, Destination, InResponseTo) is unsigned: it is
// checked, but everything deputy relies on is checked again inside the signed
// Assertion (Issuer, Recipient, InResponseTo). Unsolicited (IdP-initiated)
// responses are refused: there is no request for them to answer. Encrypted
// assertions are refused (deputy publishes no encryption key), and so are
// SHA-1 signatures and digests.
//
// Replay: a response is accepted only in the flow whose AuthnRequest ID it
// answers (InResponseTo, on the Response and inside the signed
// SubjectConfirmationData); and because that flow state travels in a cookie a
// browser can forge, the provider also remembers the ID of every assertion it
// accepted until the assertion expires, so none is accepted twice on this node.
// The memory is per process and bounded (samlMaxRemembered); a cluster-wide
// record belongs with the store (issue 4).
type samlProvider struct {
	name        string
	entityID    string // deputy's SP entity id: <issuer>/saml/<name>
	idpIssuer   string // the IdP's entity id, the only accepted Issuer
	ssoURL      string // the IdP's SSO endpoint (HTTP-Redirect binding)
	subjectAttr string // attribute that becomes the subject; "" for the NameID
	prefix      string
	certs       *dsig.MemoryX509CertificateStore // the only keys a signature may be made with
	now         func() time.Time
	seen        *samlSeen    // accepted assertion IDs, when nonces is nil
	nonces      store.Nonces // accepted assertion IDs, shared by every node
}

// samlState is what deputy keeps (in the browser's cookie) between Begin and Complete.
type samlState struct {
	RequestID  string `json:"id"`
	RelayState string `json:"relay_state"`
	IssuedAt   int64  `json:"iat"`
	ACS        string `json:"acs"`
}

func newSAML(cfg config.UpstreamIdP, issuer string) (Provider, error) {
	where := "upstream_idps[" + cfg.Name + "]"
	p := &samlProvider{
		name:        cfg.Name,
		entityID:    strings.TrimSuffix(issuer, "/") + "/saml/" + cfg.Name,
		idpIssuer:   cfg.Issuer,
		subjectAttr: cfg.SubjectClaim,
		prefix:      cfg.SubjectPrefix,
		now:         time.Now,
		seen:        &samlSeen{max: samlMaxRemembered, ids: map[string]time.Time{}},
	}
	if p.idpIssuer == "" {
		return nil, fmt.Errorf("%s.issuer: must be set to the IdP's entity id", where)
	}
	var certs []*x509.Certificate
	switch {
	case cfg.CertificateFile != "" && cfg.MetadataFile != "":
		return nil, fmt.Errorf("%s: set either certificate_file or metadata_file, not both", where)
	case cfg.CertificateFile != "":
		b, err := os.ReadFile(cfg.CertificateFile)
		if err != nil {
			return nil, fmt.Errorf("%s.certificate_file: %w", where, err)
		}
		if certs, err = samlx.PEMCertificates(b); err != nil {
			return nil, fmt.Errorf("%s.certificate_file %s: %w", where, cfg.CertificateFile, err)
		}
	case cfg.MetadataFile != "":
		b, err := os.ReadFile(cfg.MetadataFile)
		if err != nil {
			return nil, fmt.Errorf("%s.metadata_file: %w", where, err)
		}
		if p.ssoURL, certs, err = samlx.IdPMetadata(b, cfg.Issuer); err != nil {
			return nil, fmt.Errorf("%s.metadata_file %s: %w", where, cfg.MetadataFile, err)
		}
	default:
		return nil, fmt.Errorf("%s: one of certificate_file or metadata_file must be set: the IdP's signing certificate", where)
	}
	if cfg.SSOURL != "" {
		p.ssoURL = cfg.SSOURL
	}
	if u, err := url.Parse(p.ssoURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%s.sso_url: %q is not an absolute http(s) URL", where, p.ssoURL)
	}
	p.certs = &dsig.MemoryX509CertificateStore{Roots: certs}
	return p, nil
}

func (p *samlProvider) Name() string { return p.name }

// Unavailable is always nil: a SAML provider is built from files, and the
// browser, not deputy, talks to the IdP.
func (p *samlProvider) Unavailable() error { return nil }

// serviceProvider is the library's view of deputy for one request. Its clock is
// set back by samlSkew, so the library's own expiry checks allow the skew;
// Complete checks every time bound itself as well.
func (p *samlProvider) serviceProvider(acs string, clock time.Time) *saml2.SAMLServiceProvider {
	return &saml2.SAMLServiceProvider{
		IdentityProviderSSOURL:      p.ssoURL,
		IdentityProviderSSOBinding:  saml2.BindingHttpRedirect,
		IdentityProviderIssuer:      p.idpIssuer,
		AssertionConsumerServiceURL: acs,
		ServiceProviderIssuer:       p.entityID,
		AudienceURI:                 p.entityID,
		IDPCertificateStore:         p.certs,
		Clock:                       dsig.NewFakeClockAt(clock),
		MaximumDecompressedBodySize: samlMaxResponseBytes,
	}
}

// Begin sends the browser to the IdP with an AuthnRequest (SAML Core §3.4.1)
// in the HTTP-Redirect binding (deflated, base64, in the query; unsigned, see
// samlProvider) and a random RelayState.
func (p *samlProvider) Begin(_ context.Context, callbackURL string) (string, []byte, error) {
	id, err := samlRandom()
	if err != nil {
		return "", nil, err
	}
	relay, err := samlRandom()
	if err != nil {
		return "", nil, err
	}
	now := p.now()
	sp := p.serviceProvider(callbackURL, now)
	doc, err := sp.BuildAuthRequestDocumentNoSig()
	if err != nil {
		return "", nil, fmt.Errorf("SAML AuthnRequest: %w", err)
	}
	doc.Root().CreateAttr("ID", "_"+id) // an NCName, and ours rather than the library's
	redirect, err := sp.BuildAuthURLRedirect(relay, doc)
	if err != nil {
		return "", nil, fmt.Errorf("SAML AuthnRequest: %w", err)
	}
	state, err := json.Marshal(samlState{RequestID: "_" + id, RelayState: relay, IssuedAt: now.Unix(), ACS: callbackURL})
	if err != nil {
		return "", nil, err
	}
	return redirect, state, nil
}

func samlRandom() (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// errSAML marks every refusal of a SAML response.
var errSAML = errors.New("SAML response refused")

func samlRefused(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errSAML}, args...)...)
}

// Complete reads the Response the IdP had the browser post to the ACS URL.
func (p *samlProvider) Complete(ctx context.Context, callbackURL string, params url.Values, state []byte) (Identity, error) {
	var st samlState
	if err := json.Unmarshal(state, &st); err != nil || st.RequestID == "" || st.RelayState == "" {
		return Identity{}, samlRefused("no sign-in was started here")
	}
	now := p.now()
	if st.ACS != callbackURL {
		return Identity{}, samlRefused("the sign-in was started for %q, not %q", st.ACS, callbackURL)
	}
	if age := now.Sub(time.Unix(st.IssuedAt, 0)); age > samlFlowTTL || age < -samlSkew {
		return Identity{}, samlRefused("the sign-in started %s ago; it is no longer open", age.Round(time.Second))
	}
	if rs := params["RelayState"]; len(rs) != 1 || subtle.ConstantTimeCompare([]byte(rs[0]), []byte(st.RelayState)) != 1 {
		return Identity{}, samlRefused("RelayState does not match the sign-in started here")
	}
	enc := params["SAMLResponse"]
	if len(enc) != 1 {
		return Identity{}, samlRefused("want exactly one SAMLResponse, got %d", len(enc))
	}
	raw, err := samlDecode(enc[0])
	if err != nil {
		return Identity{}, samlRefused("%v", err)
	}
	// The library verifies the signatures and hands back only what they cover.
	resp, err := p.serviceProvider(callbackURL, now.Add(-samlSkew)).ValidateEncodedResponse(base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		return Identity{}, samlRefused("%v", err)
	}
	a, until, err := p.check(resp, st.RequestID, callbackURL, now)
	if err != nil {
		return Identity{}, err
	}
	ident, err := p.identity(a)
	if err != nil {
		return Identity{}, err
	}
	if err := p.remember(ctx, a.ID, until, now); err != nil {
		return Identity{}, err
	}
	return ident, nil
}

// samlDecode undoes the HTTP-POST binding's base64, within the size limit, and
// refuses a document that is not plain well-formed XML (samlx.CheckXML).
func samlDecode(enc string) ([]byte, error) {
	if len(enc) > 2*base64.StdEncoding.EncodedLen(samlMaxResponseBytes) {
		return nil, fmt.Errorf("SAMLResponse larger than %d bytes", samlMaxResponseBytes)
	}
	enc = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, enc)
	if len(enc) > base64.StdEncoding.EncodedLen(samlMaxResponseBytes) {
		return nil, fmt.Errorf("SAMLResponse larger than %d bytes", samlMaxResponseBytes)
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("SAMLResponse is not base64: %w", err)
	}
	if len(raw) > samlMaxResponseBytes {
		return nil, fmt.Errorf("SAMLResponse larger than %d bytes", samlMaxResponseBytes)
	}
	if _, err := samlx.CheckXML(raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// check applies deputy's rules to a response whose signatures the library has
// verified (only signed content reaches here), and returns its one assertion
// and the time until which that assertion could be accepted.
func (p *samlProvider) check(resp *types.Response, requestID, acs string, now time.Time) (*types.Assertion, time.Time, error) {
	// Already checked by the library: Version, Issuer (response and assertion),
	// Status Success, Destination when present, bearer SubjectConfirmation with
	// Recipient = ACS and a NotOnOrAfter. Checked again or added here:
	if len(resp.Assertions) != 1 || len(resp.EncryptedAssertions) != 0 {
		return nil, time.Time{}, samlRefused("want exactly one signed assertion, got %d (and %d encrypted)", len(resp.Assertions), len(resp.EncryptedAssertions))
	}
	if resp.InResponseTo != requestID {
		return nil, time.Time{}, samlRefused("InResponseTo %q is not the AuthnRequest sent (%q)", resp.InResponseTo, requestID)
	}
	// A signed Response must name its Destination (SAML Bindings §3.5.5.2).
	if resp.Destination != acs && (resp.Destination != "" || resp.SignatureValidated) {
		return nil, time.Time{}, samlRefused("Destination %q is not %q", resp.Destination, acs)
	}
	a := &resp.Assertions[0]
	if a.ID == "" {
		return nil, time.Time{}, samlRefused("the assertion has no ID")
	}
	if a.Issuer == nil || a.Issuer.Value != p.idpIssuer {
		return nil, time.Time{}, samlRefused("assertion Issuer is not %q", p.idpIssuer)
	}
	if a.Subject == nil || a.Subject.SubjectConfirmation == nil || a.Subject.SubjectConfirmation.SubjectConfirmationData == nil {
		return nil, time.Time{}, samlRefused("no SubjectConfirmation")
	}
	sc := a.Subject.SubjectConfirmation
	scd := sc.SubjectConfirmationData
	if sc.Method != samlBearer {
		return nil, time.Time{}, samlRefused("SubjectConfirmation Method %q is not bearer", sc.Method)
	}
	if scd.Recipient != acs {
		return nil, time.Time{}, samlRefused("Recipient %q is not %q", scd.Recipient, acs)
	}
	// The signed binding to our request (SAML Profiles §4.1.4.2).
	if scd.InResponseTo != requestID {
		return nil, time.Time{}, samlRefused("SubjectConfirmationData InResponseTo %q is not the AuthnRequest sent (%q)", scd.InResponseTo, requestID)
	}
	scdUntil, err := samlTime("SubjectConfirmationData NotOnOrAfter", scd.NotOnOrAfter, true)
	if err != nil {
		return nil, time.Time{}, err
	}
	if !now.Add(-samlSkew).Before(scdUntil) {
		return nil, time.Time{}, samlRefused("the subject confirmation expired at %s", scd.NotOnOrAfter)
	}

	c := a.Conditions
	if c == nil {
		return nil, time.Time{}, samlRefused("no Conditions")
	}
	notBefore, err := samlTime("Conditions NotBefore", c.NotBefore, false)
	if err != nil {
		return nil, time.Time{}, err
	}
	if !notBefore.IsZero() && now.Add(samlSkew).Before(notBefore) {
		return nil, time.Time{}, samlRefused("the assertion is not valid before %s", c.NotBefore)
	}
	until, err := samlTime("Conditions NotOnOrAfter", c.NotOnOrAfter, true)
	if err != nil {
		return nil, time.Time{}, err
	}
	if !now.Add(-samlSkew).Before(until) {
		return nil, time.Time{}, samlRefused("the assertion expired at %s", c.NotOnOrAfter)
	}
	// Every AudienceRestriction must name us (SAML Core §2.5.1.4), and there must be one.
	if len(c.AudienceRestrictions) == 0 {
		return nil, time.Time{}, samlRefused("no AudienceRestriction")
	}
	for _, ar := range c.AudienceRestrictions {
		ok := false
		for _, au := range ar.Audiences {
			ok = ok || strings.TrimSpace(au.Value) == p.entityID
		}
		if !ok {
			return nil, time.Time{}, samlRefused("the assertion is not for audience %q", p.entityID)
		}
	}
	if scdUntil.Before(until) {
		until = scdUntil
	}
	return a, until.Add(samlSkew), nil
}

// samlTime parses an xs:dateTime attribute.
func samlTime(what, v string, required bool) (time.Time, error) {
	if v == "" {
		if required {
			return time.Time{}, samlRefused("no %s", what)
		}
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, samlRefused("%s %q is not a dateTime", what, v)
	}
	return t, nil
}

// identity maps a checked assertion to the local identity.
func (p *samlProvider) identity(a *types.Assertion) (Identity, error) {
	var subject string
	if p.subjectAttr == "" {
		id := a.Subject.NameID
		if id == nil {
			return Identity{}, samlRefused("no NameID")
		}
		if id.Format == samlNameIDTransient {
			return Identity{}, samlRefused("a transient NameID names nobody for long; configure subject_claim or a persistent NameID at the IdP")
		}
		subject = id.Value
	} else {
		found := false
		if a.AttributeStatement != nil {
			for _, at := range a.AttributeStatement.Attributes {
				if (at.Name == p.subjectAttr || at.FriendlyName == p.subjectAttr) && len(at.Values) > 0 {
					subject, found = at.Values[0].Value, true
					break
				}
			}
		}
		if !found {
			return Identity{}, samlRefused("no attribute %q for the subject", p.subjectAttr)
		}
	}
	subject = strings.TrimSpace(subject)
	if subject == "" || len(subject) > samlMaxSubjectBytes || strings.ContainsFunc(subject, samlx.Control) {
		return Identity{}, samlRefused("the subject %q is empty, too long or has control characters", subject)
	}
	ident := Identity{Subject: p.prefix + subject, IdP: p.name, Claims: map[string]string{}}
	if s := a.AuthnStatement; s != nil && s.AuthnContext != nil && s.AuthnContext.AuthnContextClassRef != nil {
		ident.ACR = strings.TrimSpace(s.AuthnContext.AuthnContextClassRef.Value)
	}
	ident.AMR = []string{samlAMR(ident.ACR)}
	if a.AttributeStatement != nil {
		for _, at := range a.AttributeStatement.Attributes {
			claim := samlx.Claim(at.Name, at.FriendlyName)
			if claim == "" || len(at.Values) == 0 || ident.Claims[claim] != "" {
				continue
			}
			v := strings.TrimSpace(at.Values[0].Value)
			if v != "" && len(v) <= samlMaxClaimBytes && !strings.ContainsFunc(v, samlx.Control) {
				ident.Claims[claim] = v
			}
		}
	}
	return ident, nil
}

// samlAMR maps an AuthnContextClassRef (SAML Authn Context §3.4) to an RFC 8176
// method; "ext" when it says nothing deputy can name.
func samlAMR(classRef string) string {
	switch classRef {
	case "urn:oasis:names:tc:SAML:2.0:ac:classes:Password",
		"urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport":
		return "pwd"
	case "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken":
		return "otp"
	case "urn:oasis:names:tc:SAML:2.0:ac:classes:Smartcard",
		"urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI":
		return "sc"
	case "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
		"urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorUnregistered",
		"http://schemas.microsoft.com/claims/multipleauthn":
		return "mfa"
	}
	return "ext"
}

// remember accepts assertion id once, until it expires: in the store when there is
// one (every node sees it), else in memory.
func (p *samlProvider) remember(ctx context.Context, id string, until, now time.Time) error {
	if p.nonces == nil {
		return p.seen.remember(id, until, now)
	}
	switch err := p.nonces.UseNonce(ctx, "upstream-saml:"+p.name+":"+id, until); {
	case errors.Is(err, store.ErrConflict):
		return samlRefused("assertion %q was already used", id)
	case err != nil:
		return fmt.Errorf("upstream %s: remembering SAML assertion %q: %w", p.name, id, err)
	}
	return nil
}

// samlSeen remembers accepted assertion IDs until they expire. Safe for
// concurrent use.
type samlSeen struct {
	mu  sync.Mutex
	max int
	ids map[string]time.Time // ID → until when it could still be accepted
}

func (s *samlSeen) remember(id string, until, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.ids[id]; ok && now.Before(exp) {
		return samlRefused("assertion %q was already used", id)
	}
	if len(s.ids) >= s.max {
		for k, exp := range s.ids {
			if !now.Before(exp) {
				delete(s.ids, k)
			}
		}
		if len(s.ids) >= s.max {
			return samlRefused("too many sign-ins in flight; try again later")
		}
	}
	s.ids[id] = until
	return nil
}
