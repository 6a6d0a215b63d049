package bank

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
)

// Entry is a booking in the ledger.
type Entry struct {
	ID      string `json:"id,omitempty"`
	Debit   string `json:"debit"`
	Credit  string `json:"credit"`
	Amount  string `json:"amount"`
	Status  string `json:"status,omitempty"`  // booked | held
	Verdict string `json:"verdict,omitempty"` // fraud-check's
}

// NewLedger is the ledger API: POST /entries (scope ledger:write; with a trust
// domain, a Txn-Token too). Before booking it asks fraud-check, with a token
// exchanged for fraud-check's audience and the transaction token as it came.
func NewLedger(ctx context.Context, cfg Config, fraudAudience string) (*Service, error) {
	s, err := newService(ctx, "ledger", cfg)
	if err != nil {
		return nil, err
	}
	fraud := s.forwardsTxn(s.exchange.Client(fraudAudience, "fraud:check"))
	var seq atomic.Int64

	mux := http.NewServeMux()
	mux.Handle("POST /entries", s.protect("ledger:write", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := s.observe(r)
		var e Entry
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil || e.Debit != p.Subject {
			// The ledger books only from the account of the user the token is for.
			s.reports.ReportRequest(r.Context(), "book", "entry", "refused: debit is not the token's subject")
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "debit account is not the user's"})
			return
		}
		var check Check
		if err := s.callNext(r, fraud, "/checks", Check{Account: e.Debit, Amount: e.Amount}, &check); err != nil {
			s.reports.ReportRequest(r.Context(), "book", "entry", "failed: "+err.Error())
			writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
			return
		}
		e.ID, e.Verdict, e.Status = fmt.Sprintf("E-%04d", seq.Add(1)), check.Verdict, "booked"
		if check.Verdict != "ok" {
			e.Status = "held"
		}
		s.reports.ReportRequest(r.Context(), "book", fmt.Sprintf("entry %s %s EUR %s→%s", e.ID, e.Amount, e.Debit, e.Credit), e.Status)
		writeJSON(w, http.StatusOK, e)
	})))
	s.Handler = mux
	return s, nil
}
