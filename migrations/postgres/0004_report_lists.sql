-- Report and conflict lists for the office: newest first by (updated_at, id), open conflicts by
-- id, and `public_text`, the projection with sensitive values redacted (as the schema says), so
-- that a reader without clearance searches only what they may read. Rows written before this
-- migration have an empty `public_text` until their next change. Keep in step with
-- migrations/sqlite.
ALTER TABLE documents ADD COLUMN public_text TEXT NOT NULL DEFAULT '';
CREATE INDEX documents_updated ON documents (updated_at, id);
CREATE INDEX conflicts_open_id ON conflicts (id) WHERE resolved_at IS NULL;
