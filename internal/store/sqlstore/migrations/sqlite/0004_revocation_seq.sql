-- deputy schema, version 4 (SQLite): revocations are numbered in the order they are
-- recorded (seq, one above the largest, assigned by the one writer), so that a node
-- can read the revocations recorded since the last one it saw. Rows recorded before
-- this version keep seq 0: a node reads them all when it starts.

ALTER TABLE revocations ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;

CREATE INDEX revocations_seq ON revocations (seq);
