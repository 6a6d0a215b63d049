package bank

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
)

// Check asks fraud-check about a debit.
type Check struct {
	Account string `json:"account"`
	Amount  string `json:"amount"`
	Verdict string `json:"verdict,omitempty"` // ok | review
}

// NewFraudCheck is the fraud-check API: POST /checks (scope fraud:check; with a
// trust domain, a Txn-Token too), the end of the chain. Amounts above 10,000 EUR go to review.
func NewFraudCheck(ctx context.Context, cfg Config) (*Service, error) {
	s, err := newService(ctx, "fraud-check", cfg)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /checks", s.protect("fraud:check", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.observe(r)
		var c Check
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed check"})
			return
		}
		c.Verdict = "ok"
		if amount, err := strconv.ParseFloat(c.Amount, 64); err != nil || amount > 10_000 {
			c.Verdict = "review"
		}
		s.reports.ReportRequest(r.Context(), "check", "debit of "+c.Amount+" EUR from "+c.Account, c.Verdict)
		writeJSON(w, http.StatusOK, c)
	})))
	s.Handler = mux
	return s, nil
}
