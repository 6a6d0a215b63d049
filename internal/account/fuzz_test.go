package account

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzParsePHC feeds arbitrary strings to the hash parser (stored hashes come from
// the configuration file and the database). It never panics, accepts only what it
// can write back to an equivalent hash, and keeps the parameters within bounds.
func FuzzParsePHC(f *testing.F) {
	f.Add(clientVector)
	f.Add("$argon2id$v=19$m=16,t=1,p=2$MDEyMzQ1Njc4OWFiY2RlZg$MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY")
	f.Add("$argon2id$v=19$m=0065536,t=3,p=2$MDEyMzQ1Njc4OWFiY2RlZg$MDEyMzQ1Njc4OWFiY2RlZg")
	f.Add("$argon2id$v=19$m=4294967295,t=4294967295,p=255$$")
	f.Add("$argon2i$v=19$m=65536,t=3,p=2$c2FsdA$a2V5")
	f.Add(strings.Repeat("$", 1000))
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parsePHC(s)
		if err != nil {
			return
		}
		if h.memory > maxMemoryKiB || h.time > maxTime || h.threads == 0 || h.memory < 8*uint32(h.threads) {
			t.Fatalf("%q accepted with parameters %+v", s, h.params)
		}
		again, err := parsePHC(h.String())
		if err != nil {
			t.Fatalf("%q accepted but its canonical form %q is not: %v", s, h.String(), err)
		}
		if again.String() != h.String() {
			t.Fatalf("round trip changed %q into %q", h.String(), again.String())
		}
	})
}

// FuzzAddressKey feeds arbitrary remote addresses (they may come from a proxy
// header) to the throttling key. It never panics, and the port never matters.
func FuzzAddressKey(f *testing.F) {
	for _, s := range []string{"192.0.2.1:1234", "[2001:db8::1]:443", "2001:db8::1", "::ffff:192.0.2.1", "[fe80::1%eth0]:1", "@", ""} {
		f.Add(s, uint16(80))
	}
	f.Fuzz(func(t *testing.T, s string, port uint16) {
		k, ok := addressKey(s)
		if ok != (s != "") {
			t.Fatalf("addressKey(%q) ok = %v", s, ok)
		}
		a, err := netip.ParseAddr(s)
		if ap, err2 := netip.ParseAddrPort(s); err2 == nil {
			a, err = ap.Addr(), nil
		}
		if err == nil && a.Zone() == "" { // a zone may hold anything, "]" too
			other := netip.AddrPortFrom(a, port).String()
			if k2, _ := addressKey(other); k != k2 {
				t.Fatalf("%q and %q have different keys", s, other)
			}
		}
	})
}
