package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

var testProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:1::/48")}

// TestClientAddr: the client's address is read from X-Forwarded-For, or
// Forwarded (RFC 7239) where the proxies write that, only when the peer is a
// trusted proxy, right to left, stopping at the first address that is not a
// trusted proxy.
func TestClientAddr(t *testing.T) {
	const refused = "refused"
	tests := []struct {
		name    string
		peer    string
		xff     []string
		fwd     []string // read instead of xff when set
		want    string   // "" = the headers name no client: the peer is it
		proxies []netip.Prefix
	}{
		{name: "ok/xff-one-proxy", peer: "10.0.0.1", xff: []string{"203.0.113.7"}, want: "203.0.113.7"},
		{name: "ok/xff-client-spoofs-left", peer: "10.0.0.1", xff: []string{"198.51.100.66, 203.0.113.7"}, want: "203.0.113.7"},
		{name: "ok/xff-two-trusted-hops", peer: "10.0.0.1", xff: []string{"198.51.100.66, 203.0.113.7, 10.0.0.2"}, want: "203.0.113.7"},
		{name: "ok/xff-several-lines", peer: "10.0.0.1", xff: []string{"198.51.100.66", "203.0.113.7", "10.0.0.2"}, want: "203.0.113.7"},
		{name: "ok/xff-with-port", peer: "10.0.0.1", xff: []string{"203.0.113.7:50123"}, want: "203.0.113.7"},
		{name: "ok/xff-ipv6", peer: "10.0.0.1", xff: []string{"2001:db8:2::7"}, want: "2001:db8:2::7"},
		{name: "ok/xff-ipv6-bracketed-port", peer: "2001:db8:1::5", xff: []string{"[2001:db8:2::7]:443"}, want: "2001:db8:2::7"},
		{name: "ok/xff-ipv4-mapped", peer: "10.0.0.1", xff: []string{"::ffff:203.0.113.7"}, want: "203.0.113.7"},
		{name: "ok/xff-all-trusted", peer: "10.0.0.1", xff: []string{"10.9.9.9"}, want: "10.9.9.9"},
		{name: "ok/xff-unknown-stops-at-proxy", peer: "10.0.0.1", xff: []string{"198.51.100.66, unknown, 10.0.0.2"}, want: "10.0.0.2"},
		{name: "ok/xff-long-client-list", peer: "10.0.0.1", xff: []string{strings.Repeat("198.51.100.66,", 200) + "203.0.113.7"}, want: "203.0.113.7"},
		{name: "ok/forwarded", peer: "10.0.0.1", fwd: []string{"for=203.0.113.7;proto=https;by=10.0.0.1"}, want: "203.0.113.7"},
		{name: "ok/forwarded-quoted-ipv6", peer: "10.0.0.1", fwd: []string{`for="[2001:db8:cafe::17]:4711"`}, want: "2001:db8:cafe::17"},
		{name: "ok/forwarded-case-and-spaces", peer: "10.0.0.1", fwd: []string{`For=198.51.100.66 , FOR="203.0.113.7"`}, want: "203.0.113.7"},
		{name: "ok/forwarded-chain", peer: "10.0.0.1", fwd: []string{"for=198.51.100.66", "for=203.0.113.7, for=10.0.0.2"}, want: "203.0.113.7"},
		{name: "ok/forwarded-quoted-comma", peer: "10.0.0.1", fwd: []string{`for=203.0.113.7;ext="a,b"`}, want: "203.0.113.7"},
		{name: "ok/forwarded-long-client-list", peer: "10.0.0.1", fwd: []string{strings.Repeat("for=10.0.0.9, ", 200) + "for=203.0.113.7"}, want: "203.0.113.7"},
		{name: "ok/forwarded-xff-not-read", peer: "10.0.0.1", xff: []string{"198.51.100.66"}, fwd: []string{"for=203.0.113.7"}, want: "203.0.113.7"},

		{name: "fail/untrusted-peer-xff", peer: "192.0.2.1", xff: []string{"203.0.113.7"}},
		{name: "fail/untrusted-peer-forwarded", peer: "192.0.2.1", fwd: []string{"for=203.0.113.7"}},
		{name: "fail/untrusted-peer-broken-forwarded", peer: "192.0.2.1", fwd: []string{`for="x`}},
		{name: "fail/no-proxies-configured", peer: "10.0.0.1", xff: []string{"203.0.113.7"}, proxies: []netip.Prefix{}},
		{name: "fail/no-headers", peer: "10.0.0.1"},
		{name: "fail/xff-garbage", peer: "10.0.0.1", xff: []string{"evil"}},
		{name: "fail/xff-empty", peer: "10.0.0.1", xff: []string{""}},
		{name: "fail/xff-zone", peer: "10.0.0.1", xff: []string{"fe80::1%eth0"}},
		{name: "fail/forwarded-obfuscated", peer: "10.0.0.1", fwd: []string{"for=_hidden"}},
		{name: "fail/forwarded-unknown", peer: "10.0.0.1", fwd: []string{"for=unknown"}},
		{name: "fail/forwarded-no-for", peer: "10.0.0.1", fwd: []string{"proto=https"}},
		{name: "fail/forwarded-unterminated-quote", peer: "10.0.0.1", fwd: []string{`for="198.51.100.66, for=203.0.113.7`}, want: refused},
		{name: "fail/forwarded-client-quote-swallows-proxy", peer: "10.0.0.1", fwd: []string{`for="x, for="[2001:db8:2::7]:1"`}, want: refused},
		{name: "fail/forwarded-for-twice", peer: "10.0.0.1", fwd: []string{"for=198.51.100.66;for=203.0.113.7"}, want: refused},
		{name: "fail/forwarded-bad-token", peer: "10.0.0.1", fwd: []string{"for=[2001:db8::1]"}, want: refused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.xff {
				h.Add("X-Forwarded-For", v)
			}
			header := HeaderXForwardedFor
			for _, v := range tt.fwd {
				h.Add("Forwarded", v)
				header = HeaderForwarded
			}
			proxies := testProxies
			if tt.proxies != nil {
				proxies = tt.proxies
			}
			got, ok, err := clientAddr(netip.MustParseAddr(tt.peer), h, proxies, header)
			switch {
			case tt.want == refused:
				if err == nil {
					t.Fatalf("clientAddr = %v, %v; want an error", got, ok)
				}
			case err != nil:
				t.Fatalf("clientAddr: %v", err)
			case tt.want == "":
				if ok {
					t.Fatalf("clientAddr = %v, want the peer", got)
				}
			case !ok || got != netip.MustParseAddr(tt.want):
				t.Fatalf("clientAddr = %v, %v; want %s", got, ok, tt.want)
			}
		})
	}
}

// TestRemoteHostBehindProxy: the address handlers record (remoteHost) is the
// forwarded client's only for a request from a trusted proxy.
func TestRemoteHostBehindProxy(t *testing.T) {
	tests := []struct {
		name, peer, xff, want string
	}{
		{"ok/trusted-proxy", "10.0.0.1:5555", "203.0.113.7", "203.0.113.7"},
		{"ok/trusted-proxy-ipv6-client", "10.0.0.1:5555", "2001:db8:2::7", "2001:db8:2::7"},
		{"fail/spoofed-by-client", "192.0.2.1:5555", "203.0.113.7", "192.0.2.1"},
		{"fail/proxy-without-header", "10.0.0.1:5555", "", "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.peer
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			r2, err := withClientAddr(r, testProxies, "")
			if err != nil {
				t.Fatal(err)
			}
			if got := remoteHost(r2); got != tt.want {
				t.Errorf("remoteHost = %q, want %q", got, tt.want)
			}
			if r.RemoteAddr != tt.peer {
				t.Errorf("the caller's request was changed: RemoteAddr %q", r.RemoteAddr)
			}
		})
	}
}

// FuzzForwardedHeaders: the parsers of X-Forwarded-For and Forwarded never
// panic, and whatever they return is either the peer's own verdict (no client)
// or a valid address that a trusted proxy vouched for; and when the trusted
// proxy appends the client's address to what the client sent, that address is
// the client, whatever the client sent (or, for a Forwarded header the client
// broke, the request is refused): a client never passes for its proxy.
func FuzzForwardedHeaders(f *testing.F) {
	for _, s := range [][2]string{
		{"203.0.113.7", ""}, {"198.51.100.66, 203.0.113.7, 10.0.0.2", ""},
		{"", `for="[2001:db8:cafe::17]:4711";proto=https`}, {"", `for=a;by="\"x\"", for=unknown`},
		{"[2001:db8::1]:80", "for=203.0.113.7"}, {",,", `for="`}, {"", `for="\`},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, xff, fwd string) {
		h := http.Header{}
		if xff != "" {
			h.Set("X-Forwarded-For", xff)
		}
		if fwd != "" {
			h.Set("Forwarded", fwd)
		}
		for _, header := range []string{HeaderXForwardedFor, HeaderForwarded} {
			got, ok, _ := clientAddr(netip.MustParseAddr("10.0.0.1"), h, testProxies, header)
			if ok && (!got.IsValid() || got.Zone() != "" || got.Is4In6()) {
				t.Fatalf("clientAddr(%q, %q) by %s = %v", xff, fwd, header, got)
			}
			// Without a trusted peer the headers are never read.
			if _, ok, err := clientAddr(netip.MustParseAddr("192.0.2.1"), h, testProxies, header); ok || err != nil {
				t.Fatalf("headers read from an untrusted peer: %q %q: %v", xff, fwd, err)
			}
		}
		const client = "203.0.113.7"
		appended := h.Clone()
		appended.Add("X-Forwarded-For", client) // as net/http/httputil does, on its own line
		if got, ok, err := clientAddr(netip.MustParseAddr("10.0.0.1"), appended, testProxies, HeaderXForwardedFor); err != nil || !ok || got.String() != client {
			t.Fatalf("X-Forwarded-For %q then the proxy's %s: %v %v %v", xff, client, got, ok, err)
		}
		appended = h.Clone()
		if fwd != "" {
			appended.Set("Forwarded", fwd+", for="+client) // appended to the client's line
		} else {
			appended.Set("Forwarded", "for="+client)
		}
		if got, ok, err := clientAddr(netip.MustParseAddr("10.0.0.1"), appended, testProxies, HeaderForwarded); err == nil && (!ok || got.String() != client) {
			t.Fatalf("Forwarded %q then the proxy's for=%s: %v %v", fwd, client, got, ok)
		}
	})
}

// TestClientCannotHideBehindTheProxy: behind a trusted proxy, nothing a client
// adds to its own request makes deputy take it for the proxy (whose address
// would hide it in the audit trail and share one throttling bucket): the proxy
// writes one header (trusted_proxy_header) and deputy reads that one only, as
// far as the right-most untrusted address, however long the client made it. A
// Forwarded header the client broke so that the proxy's element cannot be told
// apart from it is refused, not attributed to the proxy.
func TestClientCannotHideBehindTheProxy(t *testing.T) {
	const client = "203.0.113.7"
	tests := []struct {
		name   string
		header string // trusted_proxy_header
		xff    []string
		fwd    []string
		want   string // "" = refused
	}{
		// The proxy appends the client's address to X-Forwarded-For and passes
		// Forwarded on as the client sent it.
		{name: "ok/xff-proxy-client-adds-forwarded", header: HeaderXForwardedFor,
			xff: []string{client}, fwd: []string{"for=198.51.100.66"}, want: client},
		{name: "ok/xff-proxy-client-adds-broken-forwarded", header: HeaderXForwardedFor,
			xff: []string{client}, fwd: []string{`for="x`}, want: client},
		{name: "ok/xff-proxy-client-sends-200-addresses", header: HeaderXForwardedFor,
			xff: []string{strings.Repeat("198.51.100.66,", 200) + client}, want: client},
		{name: "ok/xff-proxy-client-sends-200-trusted-addresses", header: HeaderXForwardedFor,
			xff: []string{strings.Repeat("10.0.0.9,", 200) + client}, want: client},
		// The proxy appends to Forwarded and passes X-Forwarded-For on.
		{name: "ok/forwarded-proxy-client-adds-xff", header: HeaderForwarded,
			xff: []string{"198.51.100.66"}, fwd: []string{"for=" + client}, want: client},
		{name: "ok/forwarded-proxy-client-sends-200-elements", header: HeaderForwarded,
			fwd: []string{strings.Repeat("for=198.51.100.66,", 200) + "for=" + client}, want: client},
		{name: "ok/forwarded-proxy-header-named-in-lower-case", header: "forwarded",
			xff: []string{"198.51.100.66"}, fwd: []string{"for=" + client}, want: client},
		{name: "fail/forwarded-proxy-client-breaks-the-header", header: HeaderForwarded,
			fwd: []string{`for="x, for=` + client}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = "10.0.0.1:5555"
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			for _, v := range tt.fwd {
				r.Header.Add("Forwarded", v)
			}
			r2, err := withClientAddr(r, testProxies, tt.header)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("accepted, as from %q; want it refused", remoteHost(r2))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := remoteHost(r2); got != tt.want {
				t.Fatalf("remoteHost = %q, want the client %s", got, tt.want)
			}
		})
	}
}
