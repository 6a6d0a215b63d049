package grant_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/oauth"
)

// selfSignedCert is a throw-away client certificate: binding needs no chain (RFC
// 8705 §3; §4 for public clients).
func selfSignedCert(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "payments"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestCertificateBoundTokens: a client with tls_client_certificate_bound_access_tokens
// gets tokens with cnf x5t#S256 of the request's certificate (RFC 8705 §3.1); without
// a certificate its request is refused and the denial audited; other clients'
// tokens stay bearer tokens even over a connection with a certificate.
func TestCertificateBoundTokens(t *testing.T) {
	f := newFixture(t, nil)
	reg, err := client.NewRegistry([]config.Client{
		{ID: "bound", Secret: "bound-secret", AuthMethod: oauth.AuthClientSecretBasic, GrantTypes: []string{oauth.GrantClientCredentials},
			TLSClientCertificateBoundAccessTokens: true},
		{ID: "bearer", Secret: "bearer-secret", AuthMethod: oauth.AuthClientSecretBasic, GrantTypes: []string{oauth.GrantClientCredentials}},
	}, issuer, issuer+"/token", f.st)
	if err != nil {
		t.Fatal(err)
	}
	disp := grant.NewDispatcher(reg, f.audit, map[string]grant.Grant{
		oauth.GrantClientCredentials: &grant.ClientCredentials{Tokens: f.tokens, TTL: accessTTL},
	}, discard)
	cert := selfSignedCert(t)
	req := func(id string, certs ...*x509.Certificate) *grant.Request {
		r := f.request(id, "grant_type", oauth.GrantClientCredentials)
		r.Credentials = client.Credentials{Basic: true, BasicID: id, BasicSecret: id + "-secret", Certificates: certs}
		return r
	}

	t.Run("ok/bound", func(t *testing.T) {
		resp, err := disp.Token(context.Background(), req("bound", cert))
		if err != nil {
			t.Fatal(err)
		}
		at := f.access(t, resp.AccessToken)
		if at.Cnf == nil || at.Cnf.X5TS256 != client.CertificateThumbprint(cert) || at.Cnf.JKT != "" {
			t.Fatalf("cnf = %+v, want x5t#S256 %s", at.Cnf, client.CertificateThumbprint(cert))
		}
		if resp.TokenType != oauth.TokenTypeBearer {
			t.Errorf("token_type %q, want Bearer (RFC 8705 keeps the type)", resp.TokenType)
		}
	})
	t.Run("fail/bound-without-certificate", func(t *testing.T) {
		r := req("bound")
		_, err := disp.Token(context.Background(), r)
		wantCode(t, err, oauth.CodeInvalidRequest)
		wantDenied(t, f, r, oauth.CodeInvalidRequest)
	})
	t.Run("ok/not-bound-client-with-certificate", func(t *testing.T) {
		resp, err := disp.Token(context.Background(), req("bearer", cert))
		if err != nil {
			t.Fatal(err)
		}
		if at := f.access(t, resp.AccessToken); at.Cnf != nil {
			t.Fatalf("cnf = %+v, want none", at.Cnf)
		}
	})
}
