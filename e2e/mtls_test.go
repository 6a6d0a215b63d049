package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// mtlsConfig serves HTTPS and asks for client certificates (tls.client_ca_file):
// ledger authenticates with a certificate of the client CA (tls_client_auth) and
// its tokens are bound to it; kiosk with a self-signed certificate whose key is in
// its jwks_file; the proxy header is believed only from 192.0.2.10.
const mtlsConfig = `
issuer: %ISSUER%
listen: %LISTEN%
` + sqliteStorage + `
tls:
  cert_file: %DIR%/server.pem
  key_file: %DIR%/server.key
  client_ca_file: %DIR%/client-ca.pem
  client_cert_header: X-Client-Cert
  trusted_proxies: [192.0.2.10]
audiences:
  - id: https://api1.example
    scopes: [payments:read]
clients:
  - id: ledger
    auth_method: tls_client_auth
    tls_client_auth_subject_dn: CN=ledger,O=Example Bank
    tls_client_certificate_bound_access_tokens: true
    grant_types: [client_credentials]
    scopes: [openid, payments:read]
    audiences: ["https://api1.example"]
  - id: kiosk
    auth_method: self_signed_tls_client_auth
    jwks_file: %DIR%/kiosk.jwks
    grant_types: [client_credentials]
    audiences: ["https://api1.example"]
`

type pki struct {
	t    *testing.T
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	next int64
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	p := &pki{t: t, key: ecKey(t), next: 1}
	p.cert = p.sign(&x509.Certificate{Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, &p.key.PublicKey, nil)
	return p
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sign issues tmpl for pub, signed by p (self-signed by p's key when p.cert is nil;
// by self, its own key, when self is not nil).
func (p *pki) sign(tmpl *x509.Certificate, pub any, self *ecdsa.PrivateKey) *x509.Certificate {
	p.t.Helper()
	p.next++
	tmpl.SerialNumber = big.NewInt(p.next)
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	parent, signer := p.cert, p.key
	if parent == nil {
		parent = tmpl
	}
	if self != nil {
		parent, signer = tmpl, self
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		p.t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// clientCert is a TLS client certificate (crypto/tls) for subject, issued by p.
func (p *pki) clientCert(subject pkix.Name) tls.Certificate {
	k := ecKey(p.t)
	c := p.sign(&x509.Certificate{Subject: subject, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, &k.PublicKey, nil)
	return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k, Leaf: c}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// mtlsServer starts deputy on mtlsConfig over HTTPS (server certificate for
// 127.0.0.1 by its own CA) and returns it with the CA pool a client trusts.
func mtlsServer(t *testing.T, clientCA *pki, kioskKey *ecdsa.PrivateKey) (*server, *x509.CertPool) {
	t.Helper()
	addr := freePort(t)
	s := &server{t: t, dir: t.TempDir(), issuer: "https://" + addr, logs: &syncBuffer{}, exited: make(chan struct{})}
	serverCA := newPKI(t, "Server CA")
	serverKey := ecKey(t)
	serverCert := serverCA.sign(&x509.Certificate{Subject: pkix.Name{CommonName: "deputy"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, &serverKey.PublicKey, nil)
	writePEM(t, filepath.Join(s.dir, "server.pem"), "CERTIFICATE", serverCert.Raw)
	keyDER, err := x509.MarshalPKCS8PrivateKey(serverKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(s.dir, "server.key"), "PRIVATE KEY", keyDER)
	writePEM(t, filepath.Join(s.dir, "client-ca.pem"), "CERTIFICATE", clientCA.cert.Raw)
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &kioskKey.PublicKey, KeyID: "kiosk-1", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "kiosk.jwks"), jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	s.writeConfig(storageForMode(t, mtlsConfig), addr)
	s.launch()
	roots := x509.NewCertPool()
	roots.AddCert(serverCA.cert)
	c := tlsClient(roots)
	s.waitReadyTLS(c)
	return s, roots
}

// waitReadyTLS waits until deputy, started with TLS, answers /readyz through c.
func (s *server) waitReadyTLS(c *http.Client) {
	t := s.t
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.Get(s.issuer + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("deputy not ready over HTTPS after 20s (%v):\n%s", err, s.logs.String())
		}
		select {
		case <-s.exited:
			t.Fatalf("deputy exited during start-up:\n%s", s.logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tlsClient is an HTTPS client trusting roots and presenting certs (crypto/tls).
func tlsClient(roots *x509.CertPool, certs ...tls.Certificate) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12},
	}}
}

func doJSON(t *testing.T, c *http.Client, req *http.Request) reply {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// certToken asks for client id's own token, authenticated by the connection's
// certificate (client_id only in the form, RFC 8705 §2).
func certToken(t *testing.T, s *server, c *http.Client, id string, header map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.issuer+"/token", strings.NewReader(url.Values{
		"grant_type": {"client_credentials"}, "client_id": {id},
	}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return doJSON(t, c, req)
}

func thumbprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestMutualTLS runs the built binary over HTTPS with tls.client_ca_file and Go's
// crypto/tls client certificates (RFC 8705): tls_client_auth and
// self_signed_tls_client_auth, certificate-bound tokens at userinfo, a certificate
// of another CA, and the proxy header from an address that is no trusted proxy.
func TestMutualTLS(t *testing.T) {
	clientCA, otherCA := newPKI(t, "Bank Client CA"), newPKI(t, "Another CA")
	kioskKey := ecKey(t)
	s, roots := mtlsServer(t, clientCA, kioskKey)
	ledgerName := pkix.Name{CommonName: "ledger", Organization: []string{"Example Bank"}}
	ledger := clientCA.clientCert(ledgerName)
	foreign := otherCA.clientCert(ledgerName)
	otherLedger := clientCA.clientCert(ledgerName)
	kioskCert := (&pki{t: t}).sign(&x509.Certificate{Subject: pkix.Name{CommonName: "kiosk"}}, &kioskKey.PublicKey, kioskKey)
	kiosk := tls.Certificate{Certificate: [][]byte{kioskCert.Raw}, PrivateKey: kioskKey, Leaf: kioskCert}

	var bound string
	t.Run("ok/tls-client-auth-bound-token", func(t *testing.T) {
		r := certToken(t, s, tlsClient(roots, ledger), "ledger", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("token: %d %s", r.Status, r.Raw)
		}
		cnf, _ := claims(t, r.str("access_token"))["cnf"].(map[string]any)
		if got := cnf["x5t#S256"]; got != thumbprint(ledger.Leaf) {
			t.Fatalf("cnf = %v, want x5t#S256 %s", cnf, thumbprint(ledger.Leaf))
		}
		if r.str("token_type") != "Bearer" {
			t.Errorf("token_type %q, want Bearer", r.str("token_type"))
		}
		bound = r.str("access_token")
	})
	t.Run("ok/self-signed-tls-client-auth", func(t *testing.T) {
		if r := certToken(t, s, tlsClient(roots, kiosk), "kiosk", nil); r.Status != http.StatusOK {
			t.Fatalf("token: %d %s", r.Status, r.Raw)
		}
	})
	t.Run("fail/certificate-from-another-ca", func(t *testing.T) {
		// The handshake succeeds (an answer comes back); the authentication fails.
		wantError(t, certToken(t, s, tlsClient(roots, foreign), "ledger", nil), http.StatusUnauthorized, "invalid_client")
	})
	t.Run("fail/no-certificate", func(t *testing.T) {
		wantError(t, certToken(t, s, tlsClient(roots), "ledger", nil), http.StatusUnauthorized, "invalid_client")
	})
	t.Run("fail/proxy-header-from-untrusted-address", func(t *testing.T) {
		h := map[string]string{"X-Client-Cert": url.PathEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ledger.Leaf.Raw})))}
		wantError(t, certToken(t, s, tlsClient(roots), "ledger", h), http.StatusUnauthorized, "invalid_client")
	})

	t.Run("discovery", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, s.issuer+"/.well-known/oauth-authorization-server", nil)
		meta := doJSON(t, tlsClient(roots), req).Body
		methods, _ := meta["token_endpoint_auth_methods_supported"].([]any)
		if meta["tls_client_certificate_bound_access_tokens"] != true || !slices.Contains(methods, any("tls_client_auth")) ||
			!slices.Contains(methods, any("self_signed_tls_client_auth")) {
			t.Fatalf("discovery: %v", meta)
		}
	})

	for _, tt := range []struct {
		name   string
		client *http.Client
		status int
	}{
		{"ok/bound-token-with-its-certificate", tlsClient(roots, ledger), http.StatusOK},
		{"fail/bound-token-without-certificate", tlsClient(roots), http.StatusUnauthorized},
		{"fail/bound-token-with-another-certificate", tlsClient(roots, otherLedger), http.StatusUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if bound == "" {
				t.Skip("no bound token")
			}
			req, _ := http.NewRequest(http.MethodGet, s.issuer+"/userinfo", nil)
			req.Header.Set("Authorization", "Bearer "+bound)
			r := doJSON(t, tt.client, req)
			if r.Status != tt.status {
				t.Fatalf("userinfo: %d %s, want %d", r.Status, r.Raw, tt.status)
			}
			if tt.status == http.StatusUnauthorized && !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Fatalf("WWW-Authenticate %q, want invalid_token", r.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

// proxyMTLSConfig is deputy behind a TLS-terminating proxy on this machine: plain
// HTTP, the client certificate in X-Client-Cert, believed from 127.0.0.1 only.
const proxyMTLSConfig = `
issuer: %ISSUER%
listen: %LISTEN%
` + sqliteStorage + `
tls:
  client_ca_file: CA_FILE
  client_cert_header: X-Client-Cert
  trusted_proxies: [127.0.0.1]
clients:
  - id: ledger
    auth_method: tls_client_auth
    tls_client_auth_san_dns: ledger.internal
    tls_client_certificate_bound_access_tokens: true
    grant_types: [client_credentials]
    scopes: [openid]
`

// TestMutualTLSBehindProxy: with TLS terminated in front of deputy, the certificate
// a trusted proxy forwards (URL-encoded PEM, as nginx's $ssl_client_escaped_cert)
// authenticates the client and binds its token, and the bound token is accepted only
// with the same forwarded certificate.
func TestMutualTLSBehindProxy(t *testing.T) {
	ca := newPKI(t, "Bank Client CA")
	caFile := filepath.Join(t.TempDir(), "client-ca.pem")
	writePEM(t, caFile, "CERTIFICATE", ca.cert.Raw)
	s := start(t, strings.Replace(proxyMTLSConfig, "CA_FILE", caFile, 1))
	k := ecKey(t)
	ledger := ca.sign(&x509.Certificate{Subject: pkix.Name{CommonName: "svc"}, DNSNames: []string{"ledger.internal"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, &k.PublicKey, nil)
	other := newPKI(t, "Another CA").sign(&x509.Certificate{Subject: pkix.Name{CommonName: "svc"}, DNSNames: []string{"ledger.internal"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, &k.PublicKey, nil)
	forwarded := func(c *x509.Certificate) map[string]string {
		return map[string]string{"X-Client-Cert": url.PathEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))}
	}

	r := certToken(t, s, httpClient, "ledger", forwarded(ledger))
	if r.Status != http.StatusOK {
		t.Fatalf("ok/forwarded-certificate: %d %s", r.Status, r.Raw)
	}
	cnf, _ := claims(t, r.str("access_token"))["cnf"].(map[string]any)
	if cnf["x5t#S256"] != thumbprint(ledger) {
		t.Fatalf("ok/forwarded-certificate: cnf = %v, want x5t#S256 %s", cnf, thumbprint(ledger))
	}
	wantError(t, certToken(t, s, httpClient, "ledger", forwarded(other)), http.StatusUnauthorized, "invalid_client")
	wantError(t, certToken(t, s, httpClient, "ledger", nil), http.StatusUnauthorized, "invalid_client")

	for _, tt := range []struct {
		name   string
		header map[string]string
		status int
	}{
		{"ok/userinfo-same-certificate", forwarded(ledger), http.StatusOK},
		{"fail/userinfo-without-certificate", nil, http.StatusUnauthorized},
		{"fail/userinfo-another-certificate", forwarded(other), http.StatusUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, s.url()+"/userinfo", nil)
			req.Header.Set("Authorization", "Bearer "+r.str("access_token"))
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			if got := doJSON(t, httpClient, req); got.Status != tt.status {
				t.Fatalf("userinfo: %d %s, want %d", got.Status, got.Raw, tt.status)
			}
		})
	}
}
