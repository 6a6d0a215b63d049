package httpapi

import (
	"strings"
	"testing"
)

// FuzzCertHeader: a client certificate header (outside input, from a trusted
// proxy) never panics, and what it yields is certificates or an error.
func FuzzCertHeader(f *testing.F) {
	f.Add("")
	f.Add("-----BEGIN%20CERTIFICATE-----%0AMIIB%2Bg%3D%3D%0A-----END%20CERTIFICATE-----%0A")
	f.Add("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
	f.Add("%zz")
	f.Add(strings.Repeat("-----BEGIN%20CERTIFICATE-----%0A-----END%20CERTIFICATE-----%0A", 10))
	f.Fuzz(func(t *testing.T, v string) {
		certs, err := parseCertHeader(v)
		if err != nil && certs != nil {
			t.Fatalf("parseCertHeader(%q) = %d certificates and error %v", v, len(certs), err)
		}
		if len(certs) > maxHeaderCerts {
			t.Fatalf("parseCertHeader(%q) = %d certificates, more than %d", v, len(certs), maxHeaderCerts)
		}
	})
}
