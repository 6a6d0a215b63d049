package report_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/deputy-auth/deputy/sdk/report"
)

// A service reports each request it handles; the verify middleware (not shown) has
// put the request's access token in its context with sdk.ContextWithToken.
func ExampleReporter_ReportRequest() {
	r, err := report.New(report.Config{
		Issuer:       "https://deputy.example",
		ClientID:     "ledger",
		ClientSecret: "ledger-secret",
		OnError:      func(err error) { log.Printf("audit report: %v", err) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Close(ctx) // sends what is still queued
	}()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /accounts/42", func(w http.ResponseWriter, req *http.Request) {
		// … read the account …
		r.ReportRequest(req.Context(), "read", "account/42", "ok")
		w.Write([]byte(`{"id":42}`))
	})
	// In a real service mux is wrapped in the verify middleware.
	srv := &http.Server{Addr: ":8080", Handler: mux}
	if err := srv.ListenAndServe(); err != nil {
		log.Print(err)
	}
}
