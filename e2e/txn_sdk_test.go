package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/exchange"
	"github.com/deputy-auth/deputy/sdk/verify"
)

// TestTxnSDK: payments obtains a transaction token from deputy by token
// exchange; the ledger, a Go service built with the SDK, verifies its Txn-Token
// header and calls fraud-check through the SDK's forwarding transport; fraud-check
// verifies it too and sees the same transaction, the very same token. A
// transaction token sent as a Bearer access token to an SDK-verified service is
// refused, and `deputy audit trace <txn>` shows the transaction.
func TestTxnSDK(t *testing.T) {
	s := start(t, txnConfig)
	ctx := context.Background()
	user := s.token("web-app", "web-secret", clientCredentials("payments:read payments:write")).str("access_token")
	const tctx = `{"action":"payment","payment_id":"pay_7"}`
	txnTok := s.token("api1", "api1-secret", txnForm(user, typeAccessToken, "request_context", tctx, "scope", "payments:write")).str("access_token")
	txn, _ := claims(t, txnTok)["txn"].(string)
	if txn == "" {
		t.Fatalf("no txn in the transaction token: %v", claims(t, txnTok))
	}

	// txnVerifier is what a service of the trust domain builds.
	txnVerifier := func(audience string) *verify.TxnVerifier {
		v, err := verify.New(ctx, verify.Config{Issuer: s.issuer, Audience: audience})
		if err != nil {
			t.Fatal(err)
		}
		tv, err := v.Txn(verify.TxnConfig{TrustDomain: txnTrustDomain})
		if err != nil {
			t.Fatal(err)
		}
		return tv
	}

	// fraud-check answers with what it verified and the header it received.
	type seen struct {
		Txn, Subject, Header, Payment, Workload string
		Scopes                                  []string
	}
	fraud := httptest.NewServer(txnVerifier("https://api3.example").Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := verify.TxnFromContext(r.Context())
		payment, _ := p.Context["payment_id"].(string)
		_ = json.NewEncoder(w).Encode(seen{Txn: p.Txn, Subject: p.Subject, Header: r.Header.Get(oauth.TxnTokenHeader),
			Payment: payment, Workload: p.RequestContext.RequestingWorkload, Scopes: p.Scopes})
	})))
	defer fraud.Close()
	fraudURL, err := url.Parse(fraud.URL)
	if err != nil {
		t.Fatal(err)
	}

	// The ledger verifies the token and calls fraud-check for the same request.
	toFraud := &http.Client{Transport: exchange.ForwardTxn(nil, fraudURL.Host)}
	var ledgerTxn string
	ledger := httptest.NewServer(txnVerifier("https://api2.example").Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := verify.TxnFromContext(r.Context())
		ledgerTxn = p.Txn
		req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, fraud.URL+"/checks", nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp, err := toFraud.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})))
	defer ledger.Close()

	call := func(t *testing.T, u, header, value string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		if value != "" {
			req.Header.Set(header, value)
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}

	t.Run("ok/forwarded-unchanged", func(t *testing.T) {
		resp, body := call(t, ledger.URL+"/entries", oauth.TxnTokenHeader, txnTok)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("ledger answered %d %s", resp.StatusCode, body)
		}
		var got seen
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		if got.Txn != txn || ledgerTxn != txn || got.Header != txnTok {
			t.Errorf("fraud-check saw txn %q (ledger %q), the same token: %v; want %q", got.Txn, ledgerTxn, got.Header == txnTok, txn)
		}
		if got.Subject != "web-app" || got.Payment != "pay_7" || got.Workload != "api1" || strings.Join(got.Scopes, " ") != "payments:write" {
			t.Errorf("fraud-check saw %+v", got)
		}
	})

	t.Run("fail/no-txn-token", func(t *testing.T) {
		resp, body := call(t, ledger.URL+"/entries", "", "")
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Txn-Token ") {
			t.Errorf("ledger answered %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	})

	t.Run("fail/access-token-as-txn-token", func(t *testing.T) {
		resp, body := call(t, ledger.URL+"/entries", oauth.TxnTokenHeader, user)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "typ must be txntoken+jwt") {
			t.Errorf("ledger answered %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	})

	t.Run("fail/txn-token-as-bearer", func(t *testing.T) {
		// payments' own API takes access tokens; one that takes the trust domain
		// for its audience is no different: typ decides.
		for _, audience := range []string{"https://api1.example", txnTrustDomain} {
			v, err := verify.New(ctx, verify.Config{Issuer: s.issuer, Audience: audience})
			if err != nil {
				t.Fatal(err)
			}
			api := httptest.NewServer(v.Require("payments:write")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				t.Errorf("audience %s: the handler ran for a transaction token", audience)
			})))
			resp, body := call(t, api.URL+"/payments", "Authorization", "Bearer "+txnTok)
			api.Close()
			challenge := resp.Header.Get("WWW-Authenticate")
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) ||
				!strings.Contains(challenge, "typ must be at+jwt") {
				t.Errorf("audience %s: %d %q %s", audience, resp.StatusCode, challenge, body)
			}
		}
	})

	t.Run("ok/audit-trace-of-txn", func(t *testing.T) {
		out, code := s.deputy("audit", "trace", txn)
		if code != 0 || !strings.Contains(out, "txn "+txn+"  purpose payments:write") ||
			!strings.Contains(out, `tctx {"action":"payment","payment_id":"pay_7"}`) || !strings.Contains(out, "◀ asked") {
			t.Errorf("audit trace %s (exit %d):\n%s", txn, code, out)
		}
	})
}
