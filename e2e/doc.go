// Package e2e holds deputy's end-to-end tests: they build the deputy binary, start it
// on a loopback port with a configuration of their own, and drive it over HTTP the
// way a client would, finding every endpoint through discovery.
package e2e
