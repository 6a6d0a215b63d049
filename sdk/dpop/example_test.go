package dpop_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/sdk/dpop"
)

// A client proves its key with every request; the server checks the proof and
// binds what it issues to the key's thumbprint.
func Example() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	// Client: a proof for POST https://deputy.example/token (the DPoP header).
	proof, err := dpop.NewProof(key, jose.ES256, "POST", "https://deputy.example/token", "", "")
	if err != nil {
		panic(err)
	}

	// Server: check it against this request; remember p.JTI until p.Expires.
	p, err := dpop.Check(proof, dpop.Request{Method: "POST", URL: "https://deputy.example/token"})
	if err != nil {
		panic(err)
	}
	jkt, _ := dpop.Thumbprint(key.Public())
	fmt.Println(p.JKT == jkt)

	// A proof for another request is refused.
	_, err = dpop.Check(proof, dpop.Request{Method: "POST", URL: "https://deputy.example/revoke"})
	fmt.Println(err)
	// Output:
	// true
	// invalid DPoP proof: htu is not https://deputy.example/revoke
}
