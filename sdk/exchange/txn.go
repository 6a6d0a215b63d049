package exchange

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk"
)

// ErrNoTxnHosts is returned by a ForwardTxn RoundTripper made with no hosts; the
// request is not sent.
var ErrNoTxnHosts = errors.New("exchange: ForwardTxn has no hosts to send the transaction token to")

// ForwardTxn returns an http.RoundTripper that sends each request through base
// with the transaction token of the request's context (sdk.TxnTokenFromContext,
// put there by sdk/verify's TxnVerifier middleware) in the Txn-Token header,
// unchanged (draft-ietf-oauth-transaction-tokens: the token travels
// unchanged through the call graph of one trust domain). The token goes only to
// the hosts listed — the services of the trust domain; a request to another host
// is sent without it, and so is a redirect a client follows to one, since every
// request passes through the RoundTripper.
//
// A listed host is compared with the request's URL.Host exactly as written,
// without regard to case and with no port or scheme inferred: "ledger.example"
// matches https://ledger.example/… but not https://ledger.example:443/… (list
// "ledger.example:443" too if URLs carry the port), and an IPv6 address is
// listed as URL.Host writes it, in brackets: "[::1]:8080". A mismatch fails
// closed: the request goes without the token. The scheme is not checked: a
// listed host gets the token over plain http too, so list only hosts reached
// over a protected channel (TLS, or a service mesh's mTLS sidecar); the token is
// a bearer credential for its lifetime.
//
// It never invents a token: a request whose context carries none is sent as it
// is. It never overwrites one: a request that has a Txn-Token header already is
// sent as it is, to any host, listed or not — a header the caller sets itself is
// the caller's to confine, and net/http copies it onto the redirects it follows.
// The caller's request is never changed; the header is set on a clone. With no
// hosts every request fails with ErrNoTxnHosts, without being sent. base nil
// means http.DefaultTransport.
//
// ForwardTxn composes with Transport and Client: a client c := e.Client(audience,
// scopes...) with c.Transport = ForwardTxn(c.Transport, host) sends the exchanged
// access token and the transaction token, and follows no redirect to another host.
func ForwardTxn(base http.RoundTripper, hosts ...string) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	lower := make([]string, len(hosts))
	for i, h := range hosts {
		lower[i] = strings.ToLower(h)
	}
	return &txnForwarder{base: base, hosts: lower}
}

type txnForwarder struct {
	base  http.RoundTripper
	hosts []string // lower case
}

func (f *txnForwarder) RoundTrip(req *http.Request) (*http.Response, error) {
	if len(f.hosts) == 0 {
		// A RoundTripper closes the body, also on errors (http.RoundTripper).
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, ErrNoTxnHosts
	}
	raw, ok := sdk.TxnTokenFromContext(req.Context())
	if !ok || len(req.Header.Values(oauth.TxnTokenHeader)) > 0 || !slices.Contains(f.hosts, strings.ToLower(req.URL.Host)) {
		return f.base.RoundTrip(req)
	}
	out := req.Clone(req.Context())
	out.Header.Set(oauth.TxnTokenHeader, raw)
	return f.base.RoundTrip(out)
}
