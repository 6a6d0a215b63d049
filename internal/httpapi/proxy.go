package httpapi

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// Behind a reverse proxy every connection comes from the proxy; the client's
// address is in the header the proxy adds: X-Forwarded-For (a de-facto standard)
// or Forwarded (RFC 7239). Anyone can send those headers, so they are believed
// only from a peer in trusted_proxies (README "Configuration"), and only as far
// as trusted proxies wrote them: the list is read from the right, each address
// that is a trusted proxy passes the question to the one before it, and the
// first that is not is the client. What a client wrote at the left end is never
// reached unless every hop after it is trusted.
//
// Only the header the proxies write (trusted_proxy_header) is read: a proxy
// passes the other one on from the client untouched, so reading both would let a
// client contradict its proxy, and whatever deputy then chose — the proxy's
// address, the client's word — the client would have chosen.

// The headers trusted_proxy_header names.
const (
	HeaderXForwardedFor = "X-Forwarded-For"
	HeaderForwarded     = "Forwarded"
)

// maxForwardedHops bounds how many addresses of a forwarding header are read,
// from the right: a client's own list to the left of them is never reached.
const maxForwardedHops = 32

// errUnreadableForwarded refuses a request whose Forwarded header, from a
// trusted proxy, is broken: the client's part of it can swallow the element the
// proxy appended (an unterminated quoted-string), so no element can be trusted.
var errUnreadableForwarded = errors.New("the Forwarded header a trusted proxy sent cannot be read (RFC 7239 §4)")

// clientAddr returns the address of the client that sent r through the trusted
// proxies, reading header (X-Forwarded-For when ""), or ok false when r's peer
// is not a trusted proxy or the header names no client (then the peer is the
// client). An error means the request cannot be attributed and must be refused.
func clientAddr(peer netip.Addr, h http.Header, trusted []netip.Prefix, header string) (netip.Addr, bool, error) {
	if !isTrusted(peer, trusted) {
		return netip.Addr{}, false, nil
	}
	if header == "" {
		header = HeaderXForwardedFor
	}
	values := h.Values(header)
	if len(values) == 0 {
		return netip.Addr{}, false, nil
	}
	var hops []netip.Addr
	if strings.EqualFold(header, HeaderForwarded) {
		var ok bool
		if hops, ok = parseForwarded(values); !ok {
			return netip.Addr{}, false, errUnreadableForwarded
		}
	} else {
		hops = parseXForwardedFor(values)
	}
	client := walkHops(peer, hops, trusted)
	return client, client != peer, nil
}

// walkHops reads hops (left to right as in the header, the nearest proxy's peer
// last) from the right, starting at the connection's peer: while the current
// address is a trusted proxy, the hop before it is believed. An element that is
// no address (RFC 7239 "unknown", an obfuscated name, garbage) stops the walk at
// the last address known.
func walkHops(peer netip.Addr, hops []netip.Addr, trusted []netip.Prefix) netip.Addr {
	cur := peer
	for i, n := len(hops)-1, 0; i >= 0 && n < maxForwardedHops; i, n = i-1, n+1 {
		if !isTrusted(cur, trusted) || !hops[i].IsValid() {
			break
		}
		cur = hops[i]
	}
	return cur
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	a = a.Unmap().WithZone("")
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseXForwardedFor splits X-Forwarded-For values (one or more header lines,
// each a comma-separated list) into addresses, the last maxForwardedHops of them
// only, read from the right; an element that is no address is the zero Addr.
func parseXForwardedFor(values []string) []netip.Addr {
	var rev []netip.Addr // right to left
	for i := len(values) - 1; i >= 0 && len(rev) < maxForwardedHops; i-- {
		v := values[i]
		for len(rev) < maxForwardedHops {
			j := strings.LastIndexByte(v, ',')
			rev = append(rev, parseNode(strings.TrimSpace(v[j+1:])))
			if j < 0 {
				break
			}
			v = v[:j]
		}
	}
	slices.Reverse(rev)
	return rev
}

// parseNode reads an address as proxies write it: "192.0.2.1", "192.0.2.1:443",
// "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:443" (RFC 7239 §6). Anything
// else is the zero Addr.
func parseNode(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap()
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap()
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() && a.Zone() == "" {
			return a
		}
	}
	return netip.Addr{}
}

// parseForwarded reads the for= parameter of each element of Forwarded values
// (RFC 7239 §4: forwarded-element *( "," forwarded-element ), each a list of
// token=value pairs separated by ";", value a token or a quoted-string), the
// last maxForwardedHops elements only. An element without for= is the zero
// Addr. ok is false when the syntax is broken
// anywhere — a proxy that appends its element to a client's malformed one makes
// a header in which nothing can be told apart.
func parseForwarded(values []string) ([]netip.Addr, bool) {
	var hops []netip.Addr
	for _, v := range values {
		p := forwardedParser{s: v}
		for {
			p.spaces()
			if p.done() {
				break // an empty list element: RFC 7230 §7 lets recipients skip it
			}
			if p.peek() == ',' {
				p.i++
				continue
			}
			node, ok := p.element()
			if !ok {
				return nil, false
			}
			if len(hops) == maxForwardedHops {
				hops = append(hops[:0], hops[1:]...) // only the last ones are read
			}
			hops = append(hops, node)
			p.spaces()
			if p.done() {
				break
			}
			if p.peek() != ',' {
				return nil, false
			}
			p.i++
		}
	}
	return hops, true
}

type forwardedParser struct {
	s string
	i int
}

func (p *forwardedParser) done() bool { return p.i >= len(p.s) }
func (p *forwardedParser) peek() byte { return p.s[p.i] }

func (p *forwardedParser) spaces() {
	for !p.done() && (p.peek() == ' ' || p.peek() == '\t') {
		p.i++
	}
}

// element reads one forwarded-element up to (not including) the next "," or
// the end, and returns the address of its for= parameter.
func (p *forwardedParser) element() (netip.Addr, bool) {
	var node netip.Addr
	seenFor := false
	for {
		p.spaces()
		name := p.token()
		if name == "" || p.done() || p.peek() != '=' {
			return netip.Addr{}, false
		}
		p.i++
		var value string
		if !p.done() && p.peek() == '"' {
			v, ok := p.quoted()
			if !ok {
				return netip.Addr{}, false
			}
			value = v
		} else if value = p.token(); value == "" {
			return netip.Addr{}, false
		}
		if strings.EqualFold(name, "for") {
			if seenFor {
				return netip.Addr{}, false // RFC 7239 §4: each parameter at most once
			}
			seenFor = true
			node = parseNode(value)
		}
		p.spaces()
		if p.done() || p.peek() == ',' {
			return node, true
		}
		if p.peek() != ';' {
			return netip.Addr{}, false
		}
		p.i++
	}
}

// token reads an RFC 7230 §3.2.6 token.
func (p *forwardedParser) token() string {
	start := p.i
	for !p.done() && isTchar(p.peek()) {
		p.i++
	}
	return p.s[start:p.i]
}

// quoted reads an RFC 7230 §3.2.6 quoted-string, the opening quote next.
func (p *forwardedParser) quoted() (string, bool) {
	p.i++
	var b strings.Builder
	for !p.done() {
		c := p.peek()
		p.i++
		switch {
		case c == '"':
			return b.String(), true
		case c == '\\':
			if p.done() {
				return "", false
			}
			b.WriteByte(p.peek())
			p.i++
		case c < 0x20 && c != '\t', c == 0x7f:
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	return "", false
}

func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// onlyOtherHeader reports whether r comes from a trusted proxy with the
// forwarding header deputy does not read (not header) and without the one it
// reads: most likely trusted_proxy_header does not name what the proxy writes.
func onlyOtherHeader(r *http.Request, trusted []netip.Prefix, header string) bool {
	if header == "" {
		header = HeaderXForwardedFor
	}
	other := HeaderForwarded
	if strings.EqualFold(header, HeaderForwarded) {
		other = HeaderXForwardedFor
	}
	if r.Header.Get(header) != "" || r.Header.Get(other) == "" {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	return err == nil && isTrusted(peer, trusted)
}

// withClientAddr returns r as the handlers should see it: when r comes from a
// trusted proxy that names its client in header, RemoteAddr is that client's
// address (port 0, as the port the client used is not known), so that
// throttling, the audit trail and everything else that asks for the remote
// address (remoteHost) see the client, not the proxy. An error (a broken
// Forwarded header) means r must be refused.
func withClientAddr(r *http.Request, trusted []netip.Prefix, header string) (*http.Request, error) {
	if len(trusted) == 0 {
		return r, nil
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return r, nil
	}
	client, ok, err := clientAddr(peer.Unmap().WithZone(""), r.Header, trusted, header)
	if err != nil || !ok {
		return r, err
	}
	r2 := r.WithContext(r.Context())
	r2.RemoteAddr = netip.AddrPortFrom(client, 0).String()
	return r2, nil
}
