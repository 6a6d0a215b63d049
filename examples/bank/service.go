// Package bank is a small banking scenario built only on deputy's service SDK:
// a payment from the web app goes to payments, which books it at the ledger, which
// asks fraud-check first. Each service verifies the token it receives
// (sdk/verify), exchanges it for a token addressed to the next service
// (sdk/exchange) and reports what it did to deputy's audit trail (sdk/report).
// The web app starts a trace for each payment (OpenTelemetry) and the SDK carries
// its W3C traceparent to every service and to deputy: one trace id from the web
// app to fraud-check.
// Every hop is sender-constrained (RFC 9449 DPoP): each service has its own key,
// the tokens it obtains are bound to it, and each service accepts only bound tokens
// with a proof of their key — a token copied from one of them is useless.
// With a trust domain (Config.TrustDomain), each payment is one transaction:
// payments obtains a transaction token for it (draft-ietf-oauth-transaction-tokens),
// which ledger and fraud-check require in the Txn-Token header and the ledger
// forwards unchanged, so every service of the payment sees the same txn.
// `deputy demo` runs it (examples/bank/demo).
package bank

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/deputy-auth/deputy/sdk"
	"github.com/deputy-auth/deputy/sdk/exchange"
	"github.com/deputy-auth/deputy/sdk/report"
	"github.com/deputy-auth/deputy/sdk/verify"
)

// Config is what one service needs to know: deputy, its own client credentials
// and audience, and the next service it calls.
type Config struct {
	Issuer                 string // deputy
	ClientID, ClientSecret string // this service's client at deputy
	Audience               string // this service's audience id: tokens for it carry it in aud
	Next                   string // base URL of the next service ("" for the last one)
	// TrustDomain is deputy's txn_tokens.trust_domain; when set, each payment is
	// one transaction (see the package comment). "" leaves transaction tokens out.
	TrustDomain string
	// Observe, if set, is told about every request the service accepted, with the
	// request's context (the demo prints what each hop received, and its trace).
	Observe func(ctx context.Context, service string, raw string, p *verify.Principal)
}

// Service is one of the bank's APIs: an http.Handler and the reporter whose queue
// Close drains.
type Service struct {
	http.Handler
	name     string
	cfg      Config
	verifier *verify.Verifier
	txn      *verify.TxnVerifier // nil without a trust domain
	exchange *exchange.Exchanger
	reports  *report.Reporter
}

// newService wires the SDK for one service.
func newService(ctx context.Context, name string, cfg Config) (*Service, error) {
	v, err := verify.New(ctx, verify.Config{Issuer: cfg.Issuer, Audience: cfg.Audience, RequireBinding: true})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// The service's own DPoP key: the tokens it obtains for the next service are
	// bound to it, and it never leaves the process.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	x, err := exchange.New(exchange.Config{Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, DPoPKey: key})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	r, err := report.New(report.Config{
		Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, FlushInterval: 100 * time.Millisecond,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s := &Service{name: name, cfg: cfg, verifier: v, exchange: x, reports: r}
	if cfg.TrustDomain != "" {
		if s.txn, err = v.Txn(verify.TxnConfig{TrustDomain: cfg.TrustDomain}); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return s, nil
}

// protect guards h: the access token, bound, with scope (sdk/verify); then, in a
// bank with transaction tokens, the request's Txn-Token, which must be a
// transaction of the user the access token is for.
func (s *Service) protect(scope string, h http.Handler) http.Handler {
	if s.txn != nil {
		h = s.txn.Middleware(sameUser(h))
	}
	return s.verifier.Require(scope)(h)
}

// sameUser refuses a request whose transaction token is another user's than its
// access token: a transaction is one user's, at every hop.
func sameUser(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := verify.FromContext(r.Context())
		t, _ := verify.TxnFromContext(r.Context())
		if p == nil || t == nil || p.Subject != t.Subject {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "the transaction is not the user's"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// forwardsTxn makes c send the transaction token of each request's context to
// the next service, unchanged (a bank without a trust domain has none).
func (s *Service) forwardsTxn(c *http.Client) *http.Client {
	if s.txn == nil || s.cfg.Next == "" {
		return c
	}
	if u, err := url.Parse(s.cfg.Next); err == nil {
		c.Transport = exchange.ForwardTxn(c.Transport, u.Host)
	}
	return c
}

// observe tells cfg.Observe what the request carried.
func (s *Service) observe(r *http.Request) *verify.Principal {
	p, _ := verify.FromContext(r.Context())
	if s.cfg.Observe != nil {
		raw, _ := sdk.TokenFromContext(r.Context())
		s.cfg.Observe(r.Context(), s.name, raw, p)
	}
	return p
}

// Close sends the reports still queued.
func (s *Service) Close(ctx context.Context) error { return s.reports.Close(ctx) }

// Flush sends the reports queued so far and waits for deputy to take them.
func (s *Service) Flush(ctx context.Context) error { return s.reports.Flush(ctx) }

// callNext posts body to the next service at path, as the user the incoming
// request is for: the exchanging client swaps the incoming token for one
// addressed to the next service.
func (s *Service) callNext(r *http.Request, client *http.Client, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, s.cfg.Next+path, bytesReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s%s answered %s", s.cfg.Next, path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
