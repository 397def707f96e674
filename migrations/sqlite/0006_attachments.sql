-- Attachments: photos, audio and documents on reports (sqlite; keep in step with
-- migrations/postgres/0006_attachments.sql). Bytes live in the database, so that several nodes
-- on one database share them; the report document holds only their metadata.

-- A complete blob, its sha256 verified: content-addressed, so bytes attached to many reports are
-- stored once. Its bytes are the pieces in blob_chunks, by position.
CREATE TABLE blobs (
    hash TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE blob_chunks (
    hash TEXT NOT NULL REFERENCES blobs (hash) ON DELETE CASCADE,
    pos INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (hash, pos)
);

-- An upload in progress of blob `hash` for report `doc_id`, readable by nobody: its bytes become
-- a blob only once complete and verified. Keyed by report, so that an upload for one report
-- tells nothing to, and takes nothing from, an upload of the same bytes for another.
CREATE TABLE uploads (
    doc_id TEXT NOT NULL REFERENCES documents (id),
    hash TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    received INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (doc_id, hash)
);
-- Collecting abandoned uploads.
CREATE INDEX uploads_updated ON uploads (updated_at);
CREATE TABLE upload_chunks (
    doc_id TEXT NOT NULL,
    hash TEXT NOT NULL,
    pos INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (doc_id, hash, pos),
    FOREIGN KEY (doc_id, hash) REFERENCES uploads (doc_id, hash) ON DELETE CASCADE
);

-- A blob attached to a report: downloadable through that report only.
CREATE TABLE attachments (
    doc_id TEXT NOT NULL REFERENCES documents (id),
    hash TEXT NOT NULL REFERENCES blobs (hash),
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (doc_id, hash)
);
-- Whether a blob is linked anywhere (collection; deduplicated links).
CREATE INDEX attachments_hash ON attachments (hash);
