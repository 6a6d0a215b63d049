package httpapi

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/oauth"
)

// The TLS client certificate of a request (RFC 8705) comes from the connection
// (the listener asks for one and verifies nothing; internal/client verifies the
// chain where a client authenticates with it) or, with TLS terminated in front of
// deputy, from the header tls.client_cert_header — believed only from a peer in
// tls.trusted_proxies. ServeHTTP settles which, before anything else looks at the
// request (see certSource); clientCertificates then reads it.

// maxHeaderCerts bounds how many certificates a proxy's header may carry.
const maxHeaderCerts = 8

// certSource prepares r for clientCertificates while r's peer is still the
// connection's (withClientAddr may replace RemoteAddr with the client a proxy
// names): with tls.client_cert_header set, a request from a trusted proxy takes
// its certificate from that header only — an absent header is present but empty,
// so the proxy's own certificate, if it has one, is never taken for the client's
// — and from any other peer the header is removed, ignored.
func (s *Server) certSource(r *http.Request) {
	h := s.cfg.ClientCertHeader
	if h == "" {
		return
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !isTrusted(peer, s.cfg.CertProxies) {
		r.Header.Del(h)
		return
	}
	if len(r.Header.Values(h)) == 0 {
		r.Header.Set(h, "")
	}
}

// clientCertificates returns r's TLS client certificate chain, leaf first, or
// none; an error is a header from a trusted proxy that cannot be read.
func (s *Server) clientCertificates(r *http.Request) ([]*x509.Certificate, error) {
	if h := s.cfg.ClientCertHeader; h != "" {
		if vs := r.Header.Values(h); len(vs) > 0 {
			// Only a trusted proxy's header is still here (certSource).
			if len(vs) > 1 {
				return nil, oauth.InvalidRequest("the client certificate header is repeated", nil)
			}
			certs, err := parseCertHeader(vs[0])
			if err != nil {
				return nil, oauth.InvalidRequest("the client certificate header cannot be read", err)
			}
			return certs, nil
		}
	}
	if r.TLS == nil {
		return nil, nil
	}
	return r.TLS.PeerCertificates, nil
}

// parseCertHeader reads a client certificate header value: URL-encoded PEM, one or
// more CERTIFICATE blocks, the leaf first (nginx's $ssl_client_escaped_cert; "" when
// the client sent none). '+' stays '+' (path unescaping), as base64 has it.
func parseCertHeader(v string) ([]*x509.Certificate, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	raw, err := url.PathUnescape(v)
	if err != nil {
		return nil, err
	}
	rest := []byte(raw)
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("a PEM block of type %q, not CERTIFICATE", b.Type)
		}
		if len(certs) == maxHeaderCerts {
			return nil, fmt.Errorf("more than %d certificates", maxHeaderCerts)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 || strings.TrimSpace(string(rest)) != "" {
		return nil, errors.New("not URL-encoded PEM certificates")
	}
	return certs, nil
}

// certificateMatches reports whether r presents the certificate whose x5t#S256 is
// thumbprint (RFC 8705 §3: a certificate-bound token is used over a connection with
// that certificate).
func (s *Server) certificateMatches(r *http.Request, thumbprint string) bool {
	certs, err := s.clientCertificates(r)
	return err == nil && len(certs) > 0 && client.CertificateThumbprint(certs[0]) == thumbprint
}
