-- The change log is keyed by its sequence number, and its hashes are no longer indexed (issue 20).
-- A push's changes take consecutive numbers, so its rows land together at the end of the table;
-- keyed by hash, each change went to a random page of the key, and a push of a hundred new
-- reports rewrote most of that key's pages in the write-ahead log. A change is found by its
-- report (`changes_doc_seq`), and the ingest skips hashes the report already holds, as before.
-- A W1 upload of 10,000 reports went from 2,060-2,184 to 2,777-2,888 reports/s (BENCHMARKS.md).
--
-- An INTEGER PRIMARY KEY column is SQLite's row id, so the table is its own sequence index. The
-- rows are copied in sequence order into the new table, which then takes the old one's name.
CREATE TABLE changes_by_seq (
    seq INTEGER NOT NULL PRIMARY KEY,
    hash BLOB NOT NULL,
    doc_id TEXT NOT NULL REFERENCES documents (id),
    deps BLOB NOT NULL,
    author TEXT NOT NULL,
    device_id TEXT,
    time BIGINT NOT NULL,
    bytes BLOB NOT NULL
);

INSERT INTO changes_by_seq (seq, hash, doc_id, deps, author, device_id, time, bytes)
SELECT seq, hash, doc_id, deps, author, device_id, time, bytes FROM changes ORDER BY seq;

DROP TABLE changes;

ALTER TABLE changes_by_seq RENAME TO changes;

CREATE INDEX changes_doc_seq ON changes (doc_id, seq);
