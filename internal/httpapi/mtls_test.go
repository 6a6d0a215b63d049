package httpapi_test

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
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// certAuthority issues test certificates with crypto/x509.
type certAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	next int64
}

func newCertAuthority(t *testing.T, name string) *certAuthority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &certAuthority{cert: cert, key: key, next: 2}
}

// clientCert issues a clientAuth certificate with subject CN=cn.
func (ca *certAuthority) clientCert(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca.next++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.next), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func certPEM(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

// escapedPEM is cert as nginx's $ssl_client_escaped_cert writes it.
func escapedPEM(cert *x509.Certificate) string { return url.PathEscape(string(certPEM(cert))) }

const (
	proxyAddr    = "192.0.2.10"
	certHeader   = "X-Client-Cert"
	untrustedTLS = "192.0.2.1:1234" // httptest's default peer
)

// mtlsNode is a development deputy with mutual TLS: client "ledger" authenticates
// with a certificate of ca (tls_client_auth, subject CN=ledger) and its tokens are
// certificate-bound; proxyAddr is a TLS-terminating proxy that forwards the client
// certificate in certHeader.
func mtlsNode(t *testing.T, ca *certAuthority) *node {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Dev(dir)
	caFile := filepath.Join(dir, "client-ca.pem")
	if err := os.WriteFile(caFile, certPEM(ca.cert), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.TLS = config.TLS{ClientCAFile: caFile, ClientCertHeader: certHeader, TrustedProxies: []string{proxyAddr}}
	cfg.Clients = append(cfg.Clients, config.Client{
		ID: "ledger", AuthMethod: oauth.AuthTLSClient, TLSClientAuthSubjectDN: "CN=ledger",
		TLSClientCertificateBoundAccessTokens: true,
		GrantTypes:                            []string{oauth.GrantClientCredentials}, Scopes: []string{"openid"},
	})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := server.New(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &node{t: t, s: s, token: "/token", introspection: "/introspect", revocation: "/revoke", jwks: "/jwks"}
}

// ledgerTokenRequest is a client-credentials request of ledger (client_id only:
// its certificate authenticates it), with mod applied (a connection, a header).
func ledgerTokenRequest(mod func(r *http.Request)) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(url.Values{
		"grant_type": {oauth.GrantClientCredentials}, "client_id": {"ledger"}, "scope": {"openid"},
	}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	mod(r)
	return r
}

func overTLS(certs ...*x509.Certificate) func(r *http.Request) {
	return func(r *http.Request) { r.TLS = &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: certs} }
}

func fromPeer(addr, header string) func(r *http.Request) {
	return func(r *http.Request) {
		r.RemoteAddr = addr
		if header != "" {
			r.Header.Set(certHeader, header)
		}
	}
}

func x5t(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// cnfOf is the x5t#S256 of an access token's cnf, read without verification (the
// tests that use it verify the token at userinfo).
func cnfOf(t *testing.T, raw string) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Cnf struct {
			X5T string `json:"x5t#S256"`
		} `json:"cnf"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c.Cnf.X5T
}

// TestMutualTLSTokenEndpoint: tls_client_auth at the token endpoint (RFC 8705 §2.1)
// with the certificate from the connection or from a trusted proxy's header, and
// certificate-bound tokens (§3).
func TestMutualTLSTokenEndpoint(t *testing.T) {
	ca, other := newCertAuthority(t, "Bank Client CA"), newCertAuthority(t, "Another CA")
	n := mtlsNode(t, ca)
	ledger, foreign := ca.clientCert(t, "ledger"), other.clientCert(t, "ledger")
	for i, tt := range []struct {
		name string
		mod  func(r *http.Request)
		want oauth.Code // "" = issued, bound to ledger's certificate
		// reason is in the audited denial's reason ("" = not checked)
		reason string
	}{
		{"ok/connection-certificate", overTLS(ledger), "", ""},
		{"ok/header-from-trusted-proxy", fromPeer(proxyAddr+":4711", escapedPEM(ledger)), "", ""},
		{"fail/certificate-from-another-ca", overTLS(foreign), oauth.CodeInvalidClient, "certificate signed by unknown authority"},
		{"fail/no-certificate", overTLS(), oauth.CodeInvalidClient, ""},
		{"fail/proxy-header-from-untrusted-address-ignored", fromPeer(untrustedTLS, escapedPEM(ledger)), oauth.CodeInvalidClient, "no client certificate"},
		{"fail/proxy-header-over-untrusted-tls-ignored", func(r *http.Request) { overTLS(foreign)(r); fromPeer(untrustedTLS, escapedPEM(ledger))(r) }, oauth.CodeInvalidClient, ""},
		{"fail/trusted-proxy-without-header-is-no-certificate", func(r *http.Request) { overTLS(ledger)(r); fromPeer(proxyAddr+":4711", "")(r) }, oauth.CodeInvalidClient, ""},
		{"fail/malformed-header-from-trusted-proxy", fromPeer(proxyAddr+":4711", "-----BEGIN%20CERTIFICATE-----%0Agarbage"), oauth.CodeInvalidRequest, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := ledgerTokenRequest(tt.mod)
			if r.RemoteAddr == untrustedTLS {
				// An address of its own: unauthenticated denials from one address
				// are recorded once a minute, then summed up.
				r.RemoteAddr = fmt.Sprintf("192.0.2.%d:1234", 100+i)
			}
			r.Header.Set("X-Request-Id", fmt.Sprintf("mtls-%d", i))
			w := n.do(r)
			if tt.want != "" {
				status := http.StatusBadRequest
				if tt.want == oauth.CodeInvalidClient {
					status = http.StatusUnauthorized
				}
				if got := oauthError(t, w, status); got != tt.want {
					t.Fatalf("error %q, want %q", got, tt.want)
				}
				if tt.reason != "" {
					wantDenial(t, n, fmt.Sprintf("mtls-%d", i), tt.want, tt.reason)
				}
				return
			}
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			var resp oauth.TokenResponse
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
				t.Fatal(err)
			}
			if got := cnfOf(t, resp.AccessToken); got != x5t(ledger) {
				t.Fatalf("cnf x5t#S256 = %q, want %q", got, x5t(ledger))
			}
		})
	}
}

// wantDenial fails unless request id was audited as a denial with code whose
// reason holds reason.
func wantDenial(t *testing.T, n *node, id string, code oauth.Code, reason string) {
	t.Helper()
	events, err := n.s.Store.Query(t.Context(), store.AuditFilter{Type: store.EventDenied})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.RequestID == id {
			if e.Decision != store.DecisionDeny || !strings.HasPrefix(e.Reason, string(code)+":") || !strings.Contains(e.Reason, reason) {
				t.Fatalf("audited as %s %q; want a denial for %s with %q", e.Decision, e.Reason, code, reason)
			}
			return
		}
	}
	t.Fatalf("no denial recorded for request %s", id)
}

// TestCertificateBoundTokenAtUserinfo: a certificate-bound token is accepted only
// over a connection with the same certificate (RFC 8705 §3); else 401 invalid_token.
func TestCertificateBoundTokenAtUserinfo(t *testing.T) {
	ca := newCertAuthority(t, "Bank Client CA")
	n := mtlsNode(t, ca)
	ledger, stranger := ca.clientCert(t, "ledger"), ca.clientCert(t, "ledger")
	w := n.do(ledgerTokenRequest(overTLS(ledger)))
	if w.Code != http.StatusOK {
		t.Fatalf("token: %d %s", w.Code, w.Body)
	}
	var resp oauth.TokenResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		mod  func(r *http.Request)
		ok   bool
	}{
		{"ok/same-certificate", overTLS(ledger), true},
		{"ok/same-certificate-through-trusted-proxy", fromPeer(proxyAddr+":4711", escapedPEM(ledger)), true},
		{"fail/without-certificate", func(*http.Request) {}, false},
		{"fail/another-certificate", overTLS(stranger), false},
		{"fail/header-from-untrusted-address", fromPeer(untrustedTLS, escapedPEM(ledger)), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/userinfo", nil)
			r.Header.Set("Authorization", "Bearer "+resp.AccessToken)
			tt.mod(r)
			w := n.do(r)
			if tt.ok {
				if w.Code != http.StatusOK {
					t.Fatalf("status %d, want 200: %s %v", w.Code, w.Body, w.Header())
				}
				return
			}
			if w.Code != http.StatusUnauthorized || !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Fatalf("status %d, WWW-Authenticate %q; want 401 invalid_token", w.Code, w.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

// TestMutualTLSDiscovery: with client certificates, discovery lists the RFC 8705
// methods and certificate-bound tokens (RFC 8705 §2.3, §3.3).
func TestMutualTLSDiscovery(t *testing.T) {
	n := mtlsNode(t, newCertAuthority(t, "CA"))
	w := n.get("/.well-known/oauth-authorization-server")
	var doc struct {
		Methods []string `json:"token_endpoint_auth_methods_supported"`
		Bound   bool     `json:"tls_client_certificate_bound_access_tokens"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if !doc.Bound || !slices.Contains(doc.Methods, oauth.AuthTLSClient) || !slices.Contains(doc.Methods, oauth.AuthSelfSignedTLSClient) {
		t.Fatalf("discovery: %s", w.Body)
	}
}

// TestMutualTLSIntrospection: a tls_client_auth client authenticates at
// introspection with its certificate too, and sees its bound token's cnf (RFC 8705
// §3.2); without the certificate it is invalid_client.
func TestMutualTLSIntrospection(t *testing.T) {
	ca := newCertAuthority(t, "Bank Client CA")
	n := mtlsNode(t, ca)
	ledger := ca.clientCert(t, "ledger")
	w := n.do(ledgerTokenRequest(overTLS(ledger)))
	var resp oauth.TokenResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.AccessToken == "" {
		t.Fatalf("token: %d %s", w.Code, w.Body)
	}
	introspect := func(mod func(r *http.Request)) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/introspect", strings.NewReader(url.Values{
			"token": {resp.AccessToken}, "client_id": {"ledger"},
		}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		mod(r)
		return n.do(r)
	}
	w = introspect(overTLS(ledger))
	var got oauth.IntrospectionResponse
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != http.StatusOK {
		t.Fatalf("ok/introspect: %d %s", w.Code, w.Body)
	}
	if !got.Active || got.Cnf == nil || got.Cnf.X5TS256 != x5t(ledger) {
		t.Fatalf("ok/introspect: %s, want active with cnf x5t#S256 %s", w.Body, x5t(ledger))
	}
	if code := oauthError(t, introspect(overTLS()), http.StatusUnauthorized); code != oauth.CodeInvalidClient {
		t.Fatalf("fail/introspect-without-certificate: %s", code)
	}
}
