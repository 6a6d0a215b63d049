// Package audit owns deputy's audit trail above the storage interface (design §7):
// the canonical encoding and hash chain of store.AuditEvent (Seal, Digest), the
// group-commit Writer that makes every event durable before the token it records
// leaves the server and that serialises revocations with issuance, the bounds of
// every text field of an event (Bound), chain verification (Verify),
// delegation-chain reconstruction (Trace) and the text and JSON renderings used by
// `deputy audit verify|trace|query`, which never write text from outside raw.
//
// It builds only on the interfaces of internal/store (store.AuditLog,
// store.Revocations); it never sees a database. It must not import net/http,
// database/sql or any storage driver; a test enforces that.
//
// The chain is keyless: Verify proves that the stored records are consistent with
// each other (nothing altered, removed, reordered or cut off the head), not who wrote
// them. Anchoring the head hash outside the database (a published checkpoint) is what
// turns that into protection against someone who can rewrite the whole table.
package audit
