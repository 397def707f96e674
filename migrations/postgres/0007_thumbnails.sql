-- Thumbnails of photo attachments (postgres; keep in step with migrations/sqlite/0007_thumbnails.sql):
-- a JPEG at most 320 px on its longer side, made when the upload of the photo completes, so the
-- console shows report pages without loading whole photos. Keyed by the blob, like the blob.
CREATE TABLE thumbnails (
    hash TEXT PRIMARY KEY REFERENCES blobs (hash) ON DELETE CASCADE,
    bytes BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
