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
	"github.com/deputy-auth/deputy/internal/store"
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

// TestCertificateBoundUserTokens: the code and refresh grants bind a certificate-bound
// client's access tokens to the certificate of each request (RFC 8705 §3), and a
// refresh without a certificate is refused.
func TestCertificateBoundUserTokens(t *testing.T) {
	f := newFixture(t, nil)
	web := clientConfigs[0]
	web.TLSClientCertificateBoundAccessTokens = true
	reg, err := client.NewRegistry([]config.Client{web}, issuer, issuer+"/token", f.st)
	if err != nil {
		t.Fatal(err)
	}
	disp := grant.NewDispatcher(reg, f.audit, map[string]grant.Grant{
		oauth.GrantAuthorizationCode: &grant.AuthorizationCode{Codes: f.st, Revoker: f.audit, Users: f.users},
		oauth.GrantRefreshToken:      &grant.RefreshToken{Store: f.st, Revoker: f.audit, Users: f.users},
	}, discard)
	cert, other := selfSignedCert(t), selfSignedCert(t)
	code, _ := f.code(t, nil)
	req := f.request("web", "grant_type", oauth.GrantAuthorizationCode, "code", code, "redirect_uri", webRedirect, "code_verifier", verifier)
	req.Credentials.Certificates = []*x509.Certificate{cert}
	resp, err := disp.Token(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if at := f.access(t, resp.AccessToken); at.Cnf == nil || at.Cnf.X5TS256 != client.CertificateThumbprint(cert) {
		t.Fatalf("ok/code: cnf = %+v, want x5t#S256 of the certificate", at.Cnf)
	}
	if resp.RefreshToken == "" {
		t.Fatal("no refresh token")
	}

	t.Run("fail/refresh-without-certificate", func(t *testing.T) {
		r := f.request("web", "grant_type", oauth.GrantRefreshToken, "refresh_token", resp.RefreshToken)
		_, err := disp.Token(context.Background(), r)
		wantCode(t, err, oauth.CodeInvalidRequest)
		wantDenied(t, f, r, oauth.CodeInvalidRequest)
	})
	t.Run("ok/refresh-binds-to-the-request's-certificate", func(t *testing.T) {
		r := f.request("web", "grant_type", oauth.GrantRefreshToken, "refresh_token", resp.RefreshToken)
		r.Credentials.Certificates = []*x509.Certificate{other}
		got, err := disp.Token(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		if at := f.access(t, got.AccessToken); at.Cnf == nil || at.Cnf.X5TS256 != client.CertificateThumbprint(other) {
			t.Fatalf("cnf = %+v, want x5t#S256 of the request's certificate", at.Cnf)
		}
	})
}

// TestPublicCertificateBoundRefresh: a public client's refresh token must be bound
// to the key its access tokens are bound to (RFC 8705 §4, RFC 9449 §5), or whoever
// copies it refreshes with a certificate of their own. deputy binds refresh tokens
// to DPoP keys only, so a public client whose request is bound by its certificate
// gets no refresh token (it signs in again); with a DPoP proof it gets one bound to
// that key. A confidential client's refresh token is bound by its authentication
// (RFC 8705 §7.1): it may refresh over another certificate (TestCertificateBoundUserTokens).
func TestPublicCertificateBoundRefresh(t *testing.T) {
	f := newFixture(t, nil)
	spa := clientConfigs[3]
	spa.TLSClientCertificateBoundAccessTokens = true
	reg, err := client.NewRegistry([]config.Client{spa}, issuer, issuer+"/token", f.st)
	if err != nil {
		t.Fatal(err)
	}
	disp := grant.NewDispatcher(reg, f.audit, map[string]grant.Grant{
		oauth.GrantAuthorizationCode: &grant.AuthorizationCode{Codes: f.st, Revoker: f.audit, Users: f.users},
		oauth.GrantRefreshToken:      &grant.RefreshToken{Store: f.st, Revoker: f.audit, Users: f.users},
	}, discard)
	cert := selfSignedCert(t)
	redeem := func(t *testing.T, binding *oauth.Confirmation) *oauth.TokenResponse {
		t.Helper()
		code, _ := f.code(t, func(ac *store.AuthCode) { ac.ClientID = "spa" })
		req := f.request("spa", "grant_type", oauth.GrantAuthorizationCode, "code", code, "redirect_uri", webRedirect, "code_verifier", verifier)
		req.Credentials.Certificates = []*x509.Certificate{cert}
		req.Binding = binding
		resp, err := disp.Token(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	t.Run("ok/certificate-bound-no-refresh-token", func(t *testing.T) {
		resp := redeem(t, nil)
		if at := f.access(t, resp.AccessToken); at.Cnf == nil || at.Cnf.X5TS256 != client.CertificateThumbprint(cert) {
			t.Fatalf("cnf = %+v, want x5t#S256 of the certificate", at.Cnf)
		}
		if resp.RefreshToken != "" {
			t.Fatalf("refresh token %+v issued unbound beside a certificate-bound token", f.refreshRecord(t, resp.RefreshToken))
		}
	})
	t.Run("ok/dpop-bound-refresh-token", func(t *testing.T) {
		resp := redeem(t, &oauth.Confirmation{JKT: apiJKT})
		if resp.RefreshToken == "" {
			t.Fatal("no refresh token beside a DPoP-bound token")
		}
		if rt := f.refreshRecord(t, resp.RefreshToken); rt.JKT != apiJKT {
			t.Fatalf("refresh token bound to %q, want %s", rt.JKT, apiJKT)
		}
	})
}
