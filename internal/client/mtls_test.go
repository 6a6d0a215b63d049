package client

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/oauth"
)

// testCA is a certificate authority made for a test, with crypto/x509.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serial int64

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	key := newKey(t)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

// issue returns a client certificate for pub signed by ca, shaped by tmpl (Subject
// and SANs); ExtKeyUsage is clientAuth unless tmpl sets one.
func (ca *testCA) issue(t testing.TB, tmpl *x509.Certificate, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	serial++
	tmpl.SerialNumber = big.NewInt(serial)
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	}
	if tmpl.ExtKeyUsage == nil {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// selfSigned returns a self-signed certificate of key.
func selfSigned(t testing.TB, key crypto.Signer) *x509.Certificate {
	t.Helper()
	serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "kiosk"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func pemFile(t testing.TB, certs ...*x509.Certificate) string {
	t.Helper()
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func certCreds(id string, chain ...*x509.Certificate) *Credentials {
	return &Credentials{FormID: id, Certificates: chain}
}

// TestTLSClientAuth covers RFC 8705 §2: tls_client_auth (the chain verified against
// tls.client_ca_file, one configured name in the certificate) and
// self_signed_tls_client_auth (the certificate's key in the client's jwks_file).
func TestTLSClientAuth(t *testing.T) {
	ca, otherCA := newCA(t, "Bank Client CA"), newCA(t, "Another CA")
	key, otherKey := newKey(t), newKey(t)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spiffe, _ := url.Parse("spiffe://bank/risk")
	ledger := ca.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "ledger", Organization: []string{"Example Bank"}}}, &key.PublicKey)
	sans := ca.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "svc"}, DNSNames: []string{"other.internal", "fraud.internal"},
		URIs: []*url.URL{spiffe}, EmailAddresses: []string{"ops@bank.example"}, IPAddresses: []net.IP{net.ParseIP("10.1.2.3")}}, &key.PublicKey)
	foreign := otherCA.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "ledger", Organization: []string{"Example Bank"}}}, &key.PublicKey)
	serverOnly := ca.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "ledger", Organization: []string{"Example Bank"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, &key.PublicKey)
	expired := ca.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "ledger", Organization: []string{"Example Bank"}},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}, &key.PublicKey)
	inter := newCA(t, "Issuing CA")
	interCert := ca.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "Issuing CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}, &inter.key.PublicKey)
	inter.cert = interCert
	viaInter := inter.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "ledger", Organization: []string{"Example Bank"}}}, &key.PublicKey)
	kiosk, kioskOther, kioskEd := selfSigned(t, key), selfSigned(t, otherKey), selfSigned(t, edKey)

	cfgs := []config.Client{
		{ID: "ledger", AuthMethod: oauth.AuthTLSClient, TLSClientAuthSubjectDN: "CN=ledger,O=Example Bank"},
		{ID: "fraud", AuthMethod: oauth.AuthTLSClient, TLSClientAuthSANDNS: "fraud.internal"},
		{ID: "risk", AuthMethod: oauth.AuthTLSClient, TLSClientAuthSANURI: "spiffe://bank/risk"},
		{ID: "ops", AuthMethod: oauth.AuthTLSClient, TLSClientAuthSANEmail: "ops@bank.example"},
		{ID: "probe", AuthMethod: oauth.AuthTLSClient, TLSClientAuthSANIP: "10.1.2.3"},
		{ID: "kiosk", AuthMethod: oauth.AuthSelfSignedTLSClient, JWKSFile: jwksFile(t,
			jose.JSONWebKey{Key: &key.PublicKey, KeyID: "registered-under-another-kid", Use: "sig"},
			jose.JSONWebKey{Key: edKey.Public(), KeyID: "ed"})},
		{ID: "basic-client", Secret: "basic-secret", AuthMethod: oauth.AuthClientSecretBasic},
	}
	reg, err := NewRegistry(cfgs, issuer, tokenURL, nonces(t))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := LoadCAFile(pemFile(t, ca.cert))
	if err != nil {
		t.Fatal(err)
	}
	reg.TrustClientCAs(pool)
	now := time.Now()

	tests := []struct {
		name string
		cr   *Credentials
		want oauth.Code // "" means authenticated as cr.FormID
	}{
		{"ok/subject-dn", certCreds("ledger", ledger), ""},
		{"ok/san-dns", certCreds("fraud", sans), ""},
		{"ok/san-uri", certCreds("risk", sans), ""},
		{"ok/san-email", certCreds("ops", sans), ""},
		{"ok/san-ip", certCreds("probe", sans), ""},
		{"ok/through-intermediate", certCreds("ledger", viaInter, interCert), ""},
		{"ok/self-signed-key-matched-not-kid", certCreds("kiosk", kiosk), ""},
		{"ok/self-signed-ed25519", certCreds("kiosk", kioskEd), ""},
		{"fail/certificate-from-another-ca", certCreds("ledger", foreign), oauth.CodeInvalidClient},
		{"fail/no-certificate", certCreds("ledger"), oauth.CodeInvalidClient},
		{"fail/subject-dn-mismatch", certCreds("ledger", sans), oauth.CodeInvalidClient},
		{"fail/san-dns-mismatch", certCreds("fraud", ledger), oauth.CodeInvalidClient},
		{"fail/san-uri-mismatch", certCreds("risk", ledger), oauth.CodeInvalidClient},
		{"fail/san-email-mismatch", certCreds("ops", ledger), oauth.CodeInvalidClient},
		{"fail/san-ip-mismatch", certCreds("probe", ledger), oauth.CodeInvalidClient},
		{"fail/server-auth-only", certCreds("ledger", serverOnly), oauth.CodeInvalidClient},
		{"fail/expired", certCreds("ledger", expired), oauth.CodeInvalidClient},
		{"fail/intermediate-missing", certCreds("ledger", viaInter), oauth.CodeInvalidClient},
		{"fail/self-signed-for-tls-client-auth", certCreds("ledger", kiosk), oauth.CodeInvalidClient},
		{"fail/self-signed-other-key", certCreds("kiosk", kioskOther), oauth.CodeInvalidClient},
		{"fail/self-signed-ca-issued-other-key", certCreds("kiosk", ca.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "kiosk"}}, &otherKey.PublicKey)), oauth.CodeInvalidClient},
		{"fail/certificate-does-not-authenticate-secret-client", certCreds("basic-client", ledger), oauth.CodeInvalidClient},
		{"fail/secret-for-tls-client", &Credentials{FormID: "ledger", FormSecret: "x", Certificates: []*x509.Certificate{ledger}}, oauth.CodeInvalidClient},
		{"fail/unknown-client", certCreds("nobody", ledger), oauth.CodeInvalidClient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := reg.Authenticate(t.Context(), tt.cr, now)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Authenticate: %v", err)
				}
				if c.ID != tt.cr.FormID {
					t.Fatalf("authenticated %q, want %q", c.ID, tt.cr.FormID)
				}
				return
			}
			if got := codeOf(err); got != tt.want {
				t.Fatalf("Authenticate: error %v (code %q), want %q", err, got, tt.want)
			}
		})
	}

	t.Run("fail/no-client-ca-file", func(t *testing.T) {
		reg, err := NewRegistry(cfgs, issuer, tokenURL, nonces(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Authenticate(t.Context(), certCreds("ledger", ledger), now); codeOf(err) != oauth.CodeInvalidClient {
			t.Fatalf("without client CAs: %v, want invalid_client", err)
		}
	})
}

// TestCertificateBinding covers RFC 8705 §3: a client with certificate-bound
// tokens gets the x5t#S256 of the request's certificate, and a request without one
// is refused; other clients get no binding.
func TestCertificateBinding(t *testing.T) {
	ca := newCA(t, "Bank Client CA")
	key := newKey(t)
	cert := ca.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "payments"}}, &key.PublicKey)
	reg, err := NewRegistry([]config.Client{
		{ID: "bound", Secret: "s", AuthMethod: oauth.AuthClientSecretBasic, TLSClientCertificateBoundAccessTokens: true},
		{ID: "bearer", Secret: "s", AuthMethod: oauth.AuthClientSecretBasic},
	}, issuer, tokenURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.Raw)
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	if got := CertificateThumbprint(cert); got != want {
		t.Fatalf("CertificateThumbprint = %q, want %q", got, want)
	}
	bound, _ := reg.Lookup("bound")
	bearer, _ := reg.Lookup("bearer")

	cnf, err := bound.CertificateBinding(certCreds("bound", cert))
	if err != nil || cnf == nil || cnf.X5TS256 != want || cnf.JKT != "" {
		t.Fatalf("ok/bound: CertificateBinding = %+v, %v; want x5t#S256 %s", cnf, err, want)
	}
	if _, err := bound.CertificateBinding(certCreds("bound")); codeOf(err) != oauth.CodeInvalidRequest {
		t.Fatalf("fail/bound-without-certificate: %v, want invalid_request", err)
	}
	if cnf, err := bearer.CertificateBinding(certCreds("bearer", cert)); err != nil || cnf != nil {
		t.Fatalf("ok/not-bound: CertificateBinding = %+v, %v; want nil", cnf, err)
	}
}

func TestLoadCAFile(t *testing.T) {
	ca := newCA(t, "CA")
	if _, err := LoadCAFile(pemFile(t, ca.cert)); err != nil {
		t.Fatalf("ok/pem: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(empty, []byte("no certificates here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCAFile(empty); err == nil {
		t.Fatal("fail/no-certificate: LoadCAFile succeeded")
	}
	if _, err := LoadCAFile(filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Fatal("fail/missing: LoadCAFile succeeded")
	}
}
