package exchange_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"

	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk"
	"github.com/deputy-auth/deputy/sdk/exchange"
)

// A handler of api1 calls api2 on behalf of the request it serves: the ledger
// client exchanges the incoming token for one addressed to api2 with ledger:read,
// which names the caller as subject and api1 as actor. It needs a running deputy,
// so it is only compiled.
func ExampleExchanger_Client() {
	e, err := exchange.New(exchange.Config{
		Issuer:       "https://deputy.example",
		ClientID:     "api1",
		ClientSecret: os.Getenv("API1_CLIENT_SECRET"),
	})
	if err != nil {
		log.Fatal(err)
	}
	ledger := e.Client("https://api2.example", "ledger:read")

	http.HandleFunc("GET /payments/{id}", func(w http.ResponseWriter, r *http.Request) {
		// In a real service sdk/verify's middleware verifies the incoming token and
		// puts it in the context; this is what it does.
		incoming := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		ctx := sdk.ContextWithToken(r.Context(), incoming)

		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://api2.example/ledger/"+r.PathValue("id"), nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp, err := ledger.Do(req) // sent with "Authorization: Bearer <exchanged token>"
		if err != nil {
			http.Error(w, "ledger unavailable", http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:8081", nil))
}

// Exchange gives the token itself, for a call that is not made with net/http. It
// needs a running deputy, so it is only compiled.
func ExampleExchanger_Exchange() {
	e, err := exchange.New(exchange.Config{
		TokenURL:     "https://deputy.example/token",
		ClientID:     "api1",
		ClientSecret: os.Getenv("API1_CLIENT_SECRET"),
	})
	if err != nil {
		log.Fatal(err)
	}
	handler := func(w http.ResponseWriter, r *http.Request) {
		incoming, ok := sdk.TokenFromContext(r.Context()) // put there by sdk/verify
		if !ok {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		tok, err := e.Exchange(r.Context(), incoming, "https://api2.example", "ledger:read")
		var refused *oauth.Error
		if errors.As(err, &refused) {
			log.Printf("deputy refused: %s", refused.Code) // e.g. invalid_scope
		}
		if err != nil {
			http.Error(w, "cannot reach the ledger", http.StatusBadGateway)
			return
		}
		fmt.Fprintln(w, tok.TokenType, tok.Scope, tok.ExpiresAt)
	}
	http.HandleFunc("GET /token-info", handler)
}

// With a DPoP key, every token api1 obtains for api2 is bound to that key (cnf.jkt)
// and every call carries a fresh DPoP proof, so a token copied from a log or a proxy
// between api1 and api2 is useless without the key (RFC 9449). The incoming token
// comes from sdk/verify's middleware, which also accepts api1's own DPoP-bound
// tokens. It needs a running deputy, so it is only compiled.
func ExampleConfig_dPoPKey() {
	// In production the key lives as long as the process (or in a KMS behind a
	// crypto.Signer); it never leaves the service.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	e, err := exchange.New(exchange.Config{
		Issuer:       "https://deputy.example",
		ClientID:     "api1",
		ClientSecret: os.Getenv("API1_CLIENT_SECRET"),
		DPoPKey:      key,
	})
	if err != nil {
		log.Fatal(err)
	}
	ledger := e.Client("https://api2.example", "ledger:read")
	http.HandleFunc("GET /payments/{id}", func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "https://api2.example/ledger/"+r.PathValue("id"), nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp, err := ledger.Do(req) // "Authorization: DPoP <token>" and "DPoP: <proof>"
		if err != nil {
			http.Error(w, "ledger unavailable", http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
}

// Payments (api1) serves a request that came with a transaction token, verified
// by sdk/verify's TxnVerifier middleware, and calls the ledger for it: the
// ledger client exchanges the access token as Client does and forwards the
// Txn-Token header unchanged — to api2.example only, whatever redirects say. It
// needs a running deputy, so it is only compiled.
func ExampleForwardTxn() {
	e, err := exchange.New(exchange.Config{
		Issuer:       "https://deputy.example",
		ClientID:     "api1",
		ClientSecret: os.Getenv("API1_CLIENT_SECRET"),
	})
	if err != nil {
		log.Fatal(err)
	}
	ledger := e.Client("https://api2.example", "ledger:write") // no redirects to other hosts
	ledger.Transport = exchange.ForwardTxn(ledger.Transport, "api2.example")

	http.HandleFunc("POST /payments", func(w http.ResponseWriter, r *http.Request) {
		// r's context carries the incoming access token (sdk/verify's Middleware)
		// and transaction token (its TxnVerifier's Middleware).
		req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, "https://api2.example/ledger", nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp, err := ledger.Do(req) // Authorization: Bearer <exchanged>, Txn-Token: <as received>
		if err != nil {
			http.Error(w, "ledger unavailable", http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:8081", nil))
}
