package client

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/oauth"
)

// Mutual-TLS client authentication and certificate-bound tokens (RFC 8705).
//
// The listener asks for a client certificate but never verifies it (a certificate
// from an unknown CA must not fail the handshake): this file is the one place a
// chain is verified, and only where a client authenticates with it.

// maxChain bounds how many certificates of a presented chain are looked at.
const maxChain = 8

// tlsName is the name a tls_client_auth client's certificate must carry (RFC
// 8705 §2.1.2): exactly one of its fields is set.
type tlsName struct {
	subjectDN, dns, uri, email string
	ip                         net.IP
}

func newTLSName(cc config.Client) tlsName {
	return tlsName{subjectDN: cc.TLSClientAuthSubjectDN, dns: cc.TLSClientAuthSANDNS, uri: cc.TLSClientAuthSANURI,
		email: cc.TLSClientAuthSANEmail, ip: net.ParseIP(cc.TLSClientAuthSANIP)}
}

// matches reports whether cert carries n: the subject DN as RFC 4514 writes it
// (pkix.Name.String), or one subjectAltName entry of the configured type.
func (n tlsName) matches(cert *x509.Certificate) bool {
	switch {
	case n.subjectDN != "":
		return cert.Subject.String() == n.subjectDN
	case n.dns != "":
		for _, d := range cert.DNSNames {
			if strings.EqualFold(d, n.dns) {
				return true
			}
		}
	case n.uri != "":
		for _, u := range cert.URIs {
			if u.String() == n.uri {
				return true
			}
		}
	case n.email != "":
		for _, e := range cert.EmailAddresses {
			if e == n.email {
				return true
			}
		}
	case n.ip != nil:
		for _, ip := range cert.IPAddresses {
			if ip.Equal(n.ip) {
				return true
			}
		}
	}
	return false
}

// LoadCAFile reads tls.client_ca_file: PEM certificates of the CAs (and, behind a
// proxy that forwards only the leaf, the intermediates) client certificates chain to.
func LoadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tls.client_ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("tls.client_ca_file: %s holds no PEM certificate", path)
	}
	return pool, nil
}

// TrustClientCAs sets the CAs tls_client_auth certificates must chain to
// (tls.client_ca_file). Call it before serving; without it no tls_client_auth
// client authenticates.
func (r *Registry) TrustClientCAs(pool *x509.CertPool) { r.clientCAs = pool }

// CertificateThumbprint is the x5t#S256 of cert (RFC 8705 §3.1): the base64url
// SHA-256 of its DER encoding.
func CertificateThumbprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// certificate authenticates c, whose auth_method is tls_client_auth or
// self_signed_tls_client_auth, by the request's client certificate (RFC 8705 §2).
// Every failure is invalid_client: a certificate from an unknown CA, of another
// name or key, or none at all.
func (r *Registry) certificate(c *Client, cr *Credentials, now time.Time) (*Client, error) {
	fail := func(cause error) error {
		return oauth.InvalidClient("client authentication failed", fmt.Errorf("client %q (%s): %w", c.ID, c.AuthMethod, cause))
	}
	if len(cr.Certificates) == 0 {
		return nil, fail(errors.New("the request has no client certificate"))
	}
	leaf := cr.Certificates[0]
	switch c.AuthMethod {
	case oauth.AuthTLSClient:
		if err := r.verifyChain(cr.Certificates, now); err != nil {
			return nil, fail(err)
		}
		if !c.tlsName.matches(leaf) {
			return nil, fail(fmt.Errorf("certificate %q does not carry the configured name", leaf.Subject.String()))
		}
	case oauth.AuthSelfSignedTLSClient:
		// RFC 8705 §2.2: no chain; the key is what the client registered. Keys are
		// compared, not kids (a certificate has none).
		if !c.hasKey(leaf.PublicKey) {
			return nil, fail(errors.New("the certificate's public key is not in the client's jwks_file"))
		}
	}
	return c, nil
}

// verifyChain verifies a presented chain (leaf first) against the client CAs, for
// client authentication (extended key usage clientAuth) at now.
func (r *Registry) verifyChain(chain []*x509.Certificate, now time.Time) error {
	if r.clientCAs == nil {
		return errors.New("no tls.client_ca_file to verify the certificate against")
	}
	if len(chain) > maxChain {
		return fmt.Errorf("the certificate chain has %d certificates, more than %d", len(chain), maxChain)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots: r.clientCAs, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return err
}

// hasKey reports whether pub is one of the keys of the client's jwks_file.
func (c *Client) hasKey(pub crypto.PublicKey) bool {
	if c.jwks == nil {
		return false
	}
	for _, k := range c.jwks.Keys {
		if e, ok := k.Key.(interface{ Equal(crypto.PublicKey) bool }); ok && e.Equal(pub) {
			return true
		}
	}
	return false
}

// CertificateBinding returns what a token issued to c for a request with
// credentials cr is bound to (RFC 8705 §3): for a client with
// tls_client_certificate_bound_access_tokens, the x5t#S256 of the request's
// client certificate — a request without one is refused (invalid_request; for a
// client that authenticates with its certificate, authentication has already
// failed) — and nil for every other client.
func (c *Client) CertificateBinding(cr *Credentials) (*oauth.Confirmation, error) {
	if !c.CertificateBound {
		return nil, nil
	}
	if len(cr.Certificates) == 0 {
		return nil, oauth.InvalidRequest("a TLS client certificate is required: this client's tokens are certificate-bound",
			fmt.Errorf("client %q has tls_client_certificate_bound_access_tokens and the request has no client certificate", c.ID))
	}
	return &oauth.Confirmation{X5TS256: CertificateThumbprint(cr.Certificates[0])}, nil
}
