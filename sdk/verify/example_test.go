package verify_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"

	"github.com/deputy-auth/deputy/sdk/verify"
)

// A ledger service (audience https://api2.example) serves GET /ledger to callers
// whose token carries ledger:read. For a token api1 obtained by exchanging the
// user's token, the handler sees the user as the subject and api1 as the actor.
func ExampleVerifier_Require() {
	v, err := verify.New(context.Background(), verify.Config{
		Issuer:   "https://deputy.example",
		Audience: "https://api2.example",
	})
	if err != nil {
		log.Fatal(err)
	}
	ledger := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := verify.FromContext(r.Context())
		fmt.Fprintf(w, "subject=%s actors=%v\n", p.Subject, p.Actors) // subject=web-app actors=[api1]
	})
	mux := http.NewServeMux()
	mux.Handle("GET /ledger", v.Require("ledger:read")(ledger))
	log.Fatal(http.ListenAndServe(":8082", mux))
}

// Verify checks a token outside HTTP middleware, e.g. one taken from a message
// queue; errors.Is tells a bad token from deputy being unreachable.
func ExampleVerifier_Verify() {
	ctx := context.Background()
	v, err := verify.New(ctx, verify.Config{Issuer: "https://deputy.example", Audience: "https://api2.example"})
	if err != nil {
		log.Fatal(err)
	}
	var raw string // the token that came with the message
	p, err := v.Verify(ctx, raw)
	switch {
	case errors.Is(err, verify.ErrUnavailable):
		log.Print("cannot check tokens now; retry the message later")
	case err != nil:
		log.Printf("refusing the message: %v", err)
	case !p.HasScope("ledger:write"):
		log.Print("refusing the message: ledger:write is required")
	default:
		fmt.Println(p.Subject, p.Actors)
	}
}

// The ledger requires sender-constrained tokens: a DPoP-bound token with a proof of
// its key for this request, or a certificate-bound one over mutual TLS. A token
// stolen from a log is refused with 401 and WWW-Authenticate: DPoP
// error="invalid_token". Behind a TLS-terminating proxy, BaseURL is the URL clients
// call, against which each proof's htu is checked.
func ExampleConfig_requireBinding() {
	v, err := verify.New(context.Background(), verify.Config{
		Issuer:         "https://deputy.example",
		Audience:       "https://api2.example",
		RequireBinding: true,
		BaseURL:        "https://api2.example",
	})
	if err != nil {
		log.Fatal(err)
	}
	ledger := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := verify.FromContext(r.Context())
		fmt.Fprintf(w, "subject=%s bound to %s\n", p.Subject, p.Cnf.JKT)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /ledger", v.Require("ledger:read")(ledger))
	log.Fatal(http.ListenAndServe(":8082", mux))
}

// The ledger (audience https://api2.example) is one service of the trust domain
// trust.deputy.example: besides its access token, every request carries the
// transaction's token in the Txn-Token header. The handler reads who the
// transaction is for, its purpose and its context, whichever service called.
func ExampleTxnVerifier_Middleware() {
	v, err := verify.New(context.Background(), verify.Config{
		Issuer:   "https://deputy.example",
		Audience: "https://api2.example",
	})
	if err != nil {
		log.Fatal(err)
	}
	txn, err := v.Txn(verify.TxnConfig{TrustDomain: "trust.deputy.example"})
	if err != nil {
		log.Fatal(err)
	}
	ledger := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, _ := verify.TxnFromContext(r.Context())
		if !t.HasScope("payments:write") {
			http.Error(w, "this transaction is not a payment", http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "txn=%s subject=%s payment=%v via %s\n",
			t.Txn, t.Subject, t.Context["payment"], t.RequestContext.RequestingWorkload)
	})
	mux := http.NewServeMux()
	mux.Handle("POST /ledger", v.Require("ledger:write")(txn.Middleware(ledger)))
	log.Fatal(http.ListenAndServe(":8082", mux))
}
