package bank

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/deputy-auth/deputy/sdk"
	"github.com/deputy-auth/deputy/sdk/exchange"
)

// Payment is what the web app asks payments to do.
type Payment struct {
	To     string `json:"to"`
	Amount string `json:"amount"` // decimal, in EUR
}

// Receipt is payments' answer: the booking and the fraud verdict behind it.
type Receipt struct {
	Status  string `json:"status"`
	Entry   Entry  `json:"entry"`
	Service string `json:"service"`
}

// NewPayments is the payments API: POST /payments (scope payments:write). It books
// the payment at the ledger with a token exchanged for the ledger's audience.
// With a trust domain, the payment is a transaction: payments first obtains a
// transaction token for it (purpose ledger:write and fraud:check, the payment as
// its context) and sends it to the ledger in the Txn-Token header.
func NewPayments(ctx context.Context, cfg Config, ledgerAudience string) (*Service, error) {
	s, err := newService(ctx, "payments", cfg)
	if err != nil {
		return nil, err
	}
	// Outgoing calls to the ledger carry a token exchanged from the incoming one.
	ledger := s.forwardsTxn(s.exchange.Client(ledgerAudience, "ledger:write", "fraud:check"))

	mux := http.NewServeMux()
	mux.Handle("POST /payments", s.verifier.Require("payments:write")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := s.observe(r)
		var pay Payment
		if err := json.NewDecoder(r.Body).Decode(&pay); err != nil || pay.To == "" || pay.Amount == "" {
			s.reports.ReportRequest(r.Context(), "pay", "payment", "refused: malformed")
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed payment"})
			return
		}
		if s.txn != nil {
			raw, _ := sdk.TokenFromContext(r.Context())
			txn, err := s.exchange.TxnToken(r.Context(), raw, exchange.TxnRequest{
				Scopes:  []string{"ledger:write", "fraud:check"},
				Context: map[string]any{"payment": pay},
			})
			if err != nil {
				s.reports.ReportRequest(r.Context(), "pay", "payment to "+pay.To, "failed: no transaction: "+err.Error())
				writeJSON(w, http.StatusBadGateway, map[string]string{"error": "no transaction token: " + err.Error()})
				return
			}
			r = r.WithContext(sdk.ContextWithTxnToken(r.Context(), txn.AccessToken))
		}
		var entry Entry
		if err := s.callNext(r, ledger, "/entries", Entry{Debit: p.Subject, Credit: pay.To, Amount: pay.Amount}, &entry); err != nil {
			s.reports.ReportRequest(r.Context(), "pay", "payment to "+pay.To, "failed: "+err.Error())
			writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
			return
		}
		s.reports.ReportRequest(r.Context(), "pay", fmt.Sprintf("%s EUR to %s", pay.Amount, pay.To), entry.Status)
		writeJSON(w, http.StatusOK, Receipt{Status: entry.Status, Entry: entry, Service: "payments"})
	})))
	s.Handler = mux
	return s, nil
}
