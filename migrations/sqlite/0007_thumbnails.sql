-- Thumbnails of photo attachments (sqlite; keep in step with migrations/postgres/0007_thumbnails.sql):
-- a JPEG at most 320 px on its longer side, made when the upload of the photo completes, so the
-- console shows report pages without loading whole photos. Keyed by the blob, like the blob.
CREATE TABLE thumbnails (
    hash TEXT PRIMARY KEY REFERENCES blobs (hash) ON DELETE CASCADE,
    bytes BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
