package samlx

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

// TestCertificatesRefuseSmallRSAKeys: an IdP certificate whose RSA key has fewer
// than 2048 bits is refused, from PEM or from metadata — the bound deputy applies
// to every other issuer's RSA key (sdk/jwk).
func TestCertificatesRefuseSmallRSAKeys(t *testing.T) {
	cert := func(bits int) []byte {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"},
			NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		}, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"}}, &k.PublicKey, k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	metadata := func(der []byte) []byte {
		return []byte(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example"><IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><KeyDescriptor use="signing"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>` +
			base64.StdEncoding.EncodeToString(der) + `</X509Certificate></X509Data></KeyInfo></KeyDescriptor><SingleSignOnService Binding="` + BindingHTTPRedirect + `" Location="https://idp.example/sso"/></IDPSSODescriptor></EntityDescriptor>`)
	}
	small, big2048 := cert(1024), cert(2048)
	tests := []struct {
		name string
		load func(der []byte) error
	}{
		{"pem", func(der []byte) error {
			_, err := PEMCertificates(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
			return err
		}},
		{"metadata", func(der []byte) error {
			_, _, err := IdPMetadata(metadata(der), "https://idp.example")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run("fail/"+tt.name+"-rsa-1024", func(t *testing.T) {
			if err := tt.load(small); err == nil || !strings.Contains(err.Error(), "1024 bits") {
				t.Errorf("a 1024-bit RSA certificate: %v; want it refused", err)
			}
		})
		t.Run("ok/"+tt.name+"-rsa-2048", func(t *testing.T) {
			if err := tt.load(big2048); err != nil {
				t.Errorf("a 2048-bit RSA certificate: %v", err)
			}
		})
	}
}
