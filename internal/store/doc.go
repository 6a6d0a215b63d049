// Package store declares deputy's storage: one small interface per aggregate, the
// record types they hold, and the sentinel errors every implementation returns.
//
// Implementations live in sqlstore (SQLite and PostgreSQL dialects); storetest is the
// conformance suite every implementation passes. This package imports neither
// database/sql nor any driver.
package store
