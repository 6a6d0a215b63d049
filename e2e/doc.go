// Package e2e holds deputy's end-to-end tests: they build the deputy binary, start it
// on a loopback port with a configuration of their own, and drive it over HTTP the
// way a client would, finding every endpoint through discovery.
//
// With DEPUTY_TEST_POSTGRES_DSN set (a PostgreSQL database the tests may create
// schemas in, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable), the
// PostgreSQL tests run too: a cluster of two nodes behind a load balancer, a server
// that is unreachable at start and one that goes away while deputy runs; each test
// in a schema of its own, dropped at its end. DEPUTY_E2E_STORAGE=postgres runs every
// single-node test on PostgreSQL instead of SQLite.
package e2e
