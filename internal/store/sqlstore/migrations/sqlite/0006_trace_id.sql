-- deputy schema, version 6 (SQLite): the W3C trace-id of the request each audit
-- event records (32 lowercase hex digits; '' = the request carried none, and every
-- event written before this version). Partial index: lookups by trace id stay fast
-- on a large trail, and events without one cost nothing.

ALTER TABLE audit_events ADD COLUMN trace_id TEXT NOT NULL DEFAULT '';

CREATE INDEX audit_events_trace_id ON audit_events (trace_id) WHERE trace_id <> '';
