package e2e

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
)

// Loopback addresses stand for the machines of a deployment: deputy trusts the
// proxy at 127.0.0.2; clients connect from 127.0.0.7 and 127.0.0.8.
const (
	proxyAddr   = "127.0.0.2"
	attackerIP  = "127.0.0.7"
	neighbourIP = "127.0.0.8"
)

// dialFrom is a transport whose connections leave from the local address ip.
func dialFrom(ip string) *http.Transport {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
}

// needLoopbackAliases skips the test where 127.0.0.2 and its neighbours are not
// this machine's (Linux routes all of 127.0.0.0/8 to the loopback interface;
// macOS only 127.0.0.1).
func needLoopbackAliases(t *testing.T) {
	t.Helper()
	for _, ip := range []string{proxyAddr, attackerIP, neighbourIP} {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Skipf("loopback address %s is not usable here: %v", ip, err)
		}
		ln.Close()
	}
}

// startHTTPProxy is a reverse proxy in front of s (net/http/httputil, which appends
// the client's address to X-Forwarded-For) that connects to deputy from
// proxyAddr.
func startHTTPProxy(t *testing.T, s *server) string {
	t.Helper()
	needLoopbackAliases(t)
	target, err := url.Parse(s.issuer)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = dialFrom(proxyAddr)
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL
}

// browserFrom is a browser whose connections leave from ip.
func browserFrom(t *testing.T, ip string) *browser {
	needLoopbackAliases(t)
	b := newBrowser(t, "https://portal.example/cb")
	b.client.Transport = dialFrom(ip)
	return b
}

// TestTrustedProxyThrottling: behind a reverse proxy in trusted_proxies, one
// client's 20 failed logins lock out that client's address only — another
// client, through the same proxy, still signs in — and the audit trail records
// the client's address, not the proxy's.
func TestTrustedProxyThrottling(t *testing.T) {
	needLoopbackAliases(t)
	s := start(t, strings.Replace(signinConfig, "\nclients:\n", "\nclients:"+signinClients, 1)+
		"\ntrusted_proxies: ["+proxyAddr+"/32]\n")
	front := startHTTPProxy(t, s)

	attacker := browserFrom(t, attackerIP)
	login := attacker.get(front + "/login")
	if login.status != 200 {
		t.Fatalf("login page through the proxy: %d %s", login.status, login.body)
	}
	// 20 failures, each with another username so that no account lock is reached:
	// only the address limit counts them.
	for i := range 20 {
		p := attacker.submit(front, login, url.Values{"username": {"nobody" + string(rune('a'+i))}, "password": {"wrong"}})
		if p.status != 401 {
			t.Fatalf("attempt %d: %d %s", i+1, p.status, p.body)
		}
	}
	if p := attacker.submit(front, login, url.Values{"username": {"alice"}, "password": {"alice-password"}}); p.status != 429 {
		t.Fatalf("21st attempt from the attacker's address: %d, want 429 (locked)", p.status)
	}

	neighbour := browserFrom(t, neighbourIP)
	nl := neighbour.get(front + "/login")
	if p := neighbour.submit(front, nl, url.Values{"username": {"alice"}, "password": {"alice-password"}}); p.status != 200 ||
		!strings.Contains(p.body, "You are signed in") {
		t.Fatalf("another client through the same proxy: %d %s", p.status, p.body)
	}

	// The trail names the client, not the proxy.
	denials := auditEvents(t, s, "request.denied")
	if len(denials) < 21 {
		t.Fatalf("%d denials recorded, want at least 21", len(denials))
	}
	for _, e := range denials {
		if got := field(e, "remote_addr"); got != attackerIP {
			t.Errorf("denial %s recorded remote_addr %q, want the client's %s", field(e, "id"), got, attackerIP)
		}
	}
	signins := auditEvents(t, s, "signin")
	if len(signins) != 1 || field(signins[0], "remote_addr") != neighbourIP {
		t.Errorf("sign-in events: %v, want one from %s", signins, neighbourIP)
	}
}

// TestUntrustedForwardedHeaders: X-Forwarded-For and Forwarded from a peer that
// is not a trusted proxy are ignored: the audit trail records the peer, and a
// client cannot escape its address's lock by naming another address.
func TestUntrustedForwardedHeaders(t *testing.T) {
	needLoopbackAliases(t)
	s := start(t, strings.Replace(signinConfig, "\nclients:\n", "\nclients:"+signinClients, 1)+
		"\ntrusted_proxies: ["+proxyAddr+"/32]\n")
	direct := browserFrom(t, attackerIP)
	login := direct.get(s.issuer + "/login")
	for i := range 21 {
		form := url.Values{"username": {"nobody" + string(rune('a'+i))}, "password": {"wrong"}}
		m := formAction.FindStringSubmatch(login.body)
		for _, h := range hiddenField.FindAllStringSubmatch(login.body, -1) {
			form.Set(h[1], h[2])
		}
		req, _ := http.NewRequest(http.MethodPost, s.issuer+m[1], strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		// A new address every time: believed, it would dodge the address lock.
		req.Header.Set("X-Forwarded-For", "198.51.100."+string(rune('0'+i%10)))
		req.Header.Set("Forwarded", "for=198.51.100.1"+string(rune('0'+i%10)))
		p := direct.do(req)
		want := 401
		if i == 20 {
			want = 429
		}
		if p.status != want {
			t.Fatalf("attempt %d with a spoofed address: %d, want %d", i+1, p.status, want)
		}
	}
	for _, e := range auditEvents(t, s, "request.denied") {
		if got := field(e, "remote_addr"); got != attackerIP {
			t.Errorf("denial recorded remote_addr %q, want the peer %s", got, attackerIP)
		}
	}
}

// addHeader is a transport that adds a header to every request, as a client of
// its own choosing would.
type addHeader struct {
	next        http.RoundTripper
	name, value string
}

func (a addHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(a.name, a.value)
	return a.next.RoundTrip(r)
}

// TestClientCannotPassForItsProxy: behind a proxy that appends to
// X-Forwarded-For (net/http/httputil) and passes Forwarded on untouched, a
// client that sends a Forwarded header of its own is still recorded, and
// throttled, as itself — not as the proxy, which would hide it in the trail and
// give it a second bucket of attempts. (Before trusted_proxy_header, the two
// headers disagreeing made deputy fall back to the proxy's address.)
func TestClientCannotPassForItsProxy(t *testing.T) {
	needLoopbackAliases(t)
	s := start(t, strings.Replace(signinConfig, "\nclients:\n", "\nclients:"+signinClients, 1)+
		"\ntrusted_proxies: ["+proxyAddr+"/32]\n")
	front := startHTTPProxy(t, s)

	attacker := browserFrom(t, attackerIP)
	attacker.client.Transport = addHeader{attacker.client.Transport, "Forwarded", "for=198.51.100.1"}
	login := attacker.get(front + "/login")
	for i := range 3 {
		p := attacker.submit(front, login, url.Values{"username": {"nobody" + string(rune('a'+i))}, "password": {"wrong"}})
		if p.status != 401 {
			t.Fatalf("attempt %d: %d %s", i+1, p.status, p.body)
		}
	}
	denials := auditEvents(t, s, "request.denied")
	if len(denials) < 3 {
		t.Fatalf("%d denials recorded, want at least 3", len(denials))
	}
	for _, e := range denials {
		if got := field(e, "remote_addr"); got != attackerIP {
			t.Errorf("denial %s recorded remote_addr %q, want the client's %s", field(e, "id"), got, attackerIP)
		}
	}
}
