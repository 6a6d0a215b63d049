package exchange_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/deputy-auth/deputy/internal/testdeputy"
	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk"
	"github.com/deputy-auth/deputy/sdk/exchange"
)

// txnRecorder stands for a service of the trust domain: it records the
// Txn-Token headers of every request it receives.
type txnRecorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen [][]string // Txn-Token values, one entry per request
	auth []string
}

func newTxnRecorder(t *testing.T, h http.HandlerFunc) *txnRecorder {
	t.Helper()
	rec := &txnRecorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.seen = append(rec.seen, r.Header.Values(oauth.TxnTokenHeader))
		rec.auth = append(rec.auth, r.Header.Get("Authorization"))
		rec.mu.Unlock()
		if h != nil {
			h(w, r)
		}
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (rec *txnRecorder) last() (txn []string, auth string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.seen) == 0 {
		return nil, ""
	}
	return rec.seen[len(rec.seen)-1], rec.auth[len(rec.auth)-1]
}

// TestForwardTxn: the transaction token of the request's context reaches the
// hosts listed unchanged; none is invented, an explicit one is kept, and other
// hosts never see it.
func TestForwardTxn(t *testing.T) {
	const raw = "eyJ0eXAiOiJ0eG50b2tlbitqd3QifQ.e30.c2ln"
	svc := newTxnRecorder(t, nil)
	host := strings.TrimPrefix(svc.URL, "http://")
	withTxn := sdk.ContextWithTxnToken(context.Background(), raw)
	for _, tt := range []struct {
		name     string
		ctx      context.Context
		hosts    []string
		explicit string // a Txn-Token the caller set
		want     []string
	}{
		{name: "ok/forwarded", ctx: withTxn, hosts: []string{host}, want: []string{raw}},
		{name: "ok/host-case-insensitive", ctx: withTxn, hosts: []string{"OTHER.example", strings.ToUpper(host)}, want: []string{raw}},
		{name: "ok/none-in-context-none-invented", ctx: context.Background(), hosts: []string{host}},
		{name: "ok/empty-in-context-none-invented", ctx: sdk.ContextWithTxnToken(context.Background(), ""), hosts: []string{host}},
		{name: "ok/explicit-kept", ctx: withTxn, hosts: []string{host}, explicit: "mine", want: []string{"mine"}},
		{name: "ok/host-not-listed", ctx: withTxn, hosts: []string{"api2.example", "127.0.0.1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client := &http.Client{Transport: exchange.ForwardTxn(nil, tt.hosts...)}
			req, err := http.NewRequestWithContext(tt.ctx, http.MethodGet, svc.URL+"/ledger", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.explicit != "" {
				req.Header.Set(oauth.TxnTokenHeader, tt.explicit)
			}
			before := req.Header.Clone()
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got, _ := svc.last()
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("the service received Txn-Token %q, want %q", got, tt.want)
			}
			if !equalHeaders(req.Header, before) {
				t.Errorf("the caller's headers changed: %v, were %v", req.Header, before)
			}
		})
	}
}

// TestForwardTxnRedirect: a redirect to a host outside the list is followed
// without the transaction token.
func TestForwardTxnRedirect(t *testing.T) {
	const raw = "eyJ0eXAiOiJ0eG50b2tlbitqd3QifQ.e30.c2ln"
	outside := newTxnRecorder(t, nil)
	// Another host name for the same loopback: "localhost" is not on the list.
	outsideURL := strings.Replace(outside.URL, "127.0.0.1", "localhost", 1)
	inside := newTxnRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, outsideURL+"/elsewhere", http.StatusFound)
	})
	client := &http.Client{Transport: exchange.ForwardTxn(nil, strings.TrimPrefix(inside.URL, "http://"))}
	req, err := http.NewRequestWithContext(sdk.ContextWithTxnToken(context.Background(), raw), http.MethodGet, inside.URL+"/ledger", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, _ := inside.last(); len(got) != 1 || got[0] != raw {
		t.Errorf("the listed host received %q, want the token", got)
	}
	if got, _ := outside.last(); len(got) != 0 {
		t.Errorf("the host redirected to received Txn-Token %q", got)
	}
	outside.mu.Lock()
	n := len(outside.seen)
	outside.mu.Unlock()
	if n != 1 {
		t.Errorf("the redirect target received %d requests, want 1", n)
	}
}

// TestForwardTxnNoHosts: a forwarder without hosts sends nothing and closes the
// request's body.
func TestForwardTxnNoHosts(t *testing.T) {
	body := &closeRecorder{Reader: strings.NewReader("{}")}
	req, err := http.NewRequestWithContext(sdk.ContextWithTxnToken(context.Background(), "t"), http.MethodPost, "http://127.0.0.1:1/", body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := exchange.ForwardTxn(roundTripFunc(func(*http.Request) (*http.Response, error) {
		t.Fatal("the request was sent")
		return nil, nil
	})).RoundTrip(req)
	if resp != nil || !errors.Is(err, exchange.ErrNoTxnHosts) || !body.closed {
		t.Errorf("RoundTrip = %v, %v, body closed %v; want ErrNoTxnHosts and a closed body", resp, err, body.closed)
	}
}

// TestForwardTxnWithExchange: composed with the exchanging Transport, the next
// service receives the exchanged access token and the transaction token as it
// came in.
func TestForwardTxnWithExchange(t *testing.T) {
	const raw = "eyJ0eXAiOiJ0eG50b2tlbitqd3QifQ.e30.c2ln"
	d := testdeputy.Start(t, nil)
	t0 := d.ClientCredentials("web-app", "payments:read ledger:read")
	e, _ := newExchanger(t, d, "api1", nil)
	svc := newTxnRecorder(t, nil)
	u, err := url.Parse(svc.URL)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: exchange.ForwardTxn(e.Transport(nil, api2, "ledger:read"), u.Host)}
	ctx := sdk.ContextWithTxnToken(sdk.ContextWithToken(context.Background(), t0), raw)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, svc.URL+"/ledger", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	txn, auth := svc.last()
	exchanged, ok := strings.CutPrefix(auth, "Bearer ")
	if len(txn) != 1 || txn[0] != raw || !ok || exchanged == t0 || claims(t, exchanged)["sub"] != "web-app" {
		t.Errorf("the service received Txn-Token %q and Authorization %.20q…", txn, auth)
	}
}
