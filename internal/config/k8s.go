package config

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// Kubernetes puts "service link" variables for every Service of a namespace into
// each of its pods (enableServiceLinks, on by default): for a Service named deputy,
// or deputy-<something>, their names start with DEPUTY_, like ours. These are they,
// with <SVC> the rest of the service name upper-cased, "-" turned into "_" (empty for
// the Service deputy itself), <NAME> a port's name written the same way and <PROTO>
// TCP, UDP or SCTP:
//
//	DEPUTY<SVC>_SERVICE_HOST=10.96.12.34
//	DEPUTY<SVC>_SERVICE_PORT=8080
//	DEPUTY<SVC>_SERVICE_PORT_<NAME>=8080
//	DEPUTY<SVC>_PORT=tcp://10.96.12.34:8080
//	DEPUTY<SVC>_PORT_<port>_<PROTO>=tcp://10.96.12.34:8080
//	DEPUTY<SVC>_PORT_<port>_<PROTO>_PROTO=tcp
//	DEPUTY<SVC>_PORT_<port>_<PROTO>_PORT=8080
//	DEPUTY<SVC>_PORT_<port>_<PROTO>_ADDR=10.96.12.34
//
// A variable is taken for one only when its name has that shape, its value the one
// Kubernetes writes there (an IP address, a port number, a protocol or a
// proto://address:port URL), and it names no configuration key; so a typo such as
// DEPUTY_LISTEN_PORT=8080 is still an error.
var (
	linkServiceHost = regexp.MustCompile(`^DEPUTY(?:_[A-Z0-9_]+)?_SERVICE_HOST$`)
	linkServicePort = regexp.MustCompile(`^DEPUTY(?:_[A-Z0-9_]+)?_SERVICE_PORT(?:_[A-Z0-9_]+)?$`)
	linkPort        = regexp.MustCompile(`^DEPUTY(?:_[A-Z0-9_]+)?_PORT$`)
	linkPortProto   = regexp.MustCompile(`^DEPUTY(?:_[A-Z0-9_]+)?_PORT_([0-9]+)_(TCP|UDP|SCTP)(?:_(PROTO|PORT|ADDR))?$`)
)

// serviceLink reports whether the variable name=value is one Kubernetes sets for a
// Service (see linkServiceHost).
func serviceLink(name, value string) bool {
	if linkServiceHost.MatchString(name) && isIP(value) {
		return true
	}
	if linkServicePort.MatchString(name) && isPort(value) {
		return true
	}
	if linkPort.MatchString(name) && isLinkURL(value, "") {
		return true
	}
	m := linkPortProto.FindStringSubmatch(name)
	if m == nil || !isPort(m[1]) {
		return false
	}
	port, proto := m[1], strings.ToLower(m[2])
	switch m[3] {
	case "":
		return isLinkURL(value, proto) && strings.HasSuffix(value, ":"+port)
	case "PROTO":
		return value == proto
	case "PORT":
		return value == port
	default: // ADDR
		return isIP(value)
	}
}

// isLinkURL accepts proto://ip:port (the IP in brackets when IPv6), with proto one
// of tcp, udp, sctp (or want when given).
func isLinkURL(value, want string) bool {
	proto, hostPort, ok := strings.Cut(value, "://")
	if !ok || (proto != "tcp" && proto != "udp" && proto != "sctp") || (want != "" && proto != want) {
		return false
	}
	ap, err := netip.ParseAddrPort(hostPort)
	return err == nil && ap.Port() != 0
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

func isPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n < 65536 && strconv.Itoa(n) == s
}
