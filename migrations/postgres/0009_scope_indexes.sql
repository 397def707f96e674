-- Scope conditions are org-path ranges compared as bytes (`path_under` in
-- server/src/store.rs), which these indexes serve, so that a township's reports are found
-- among a district's million without reading the others.
-- A no-op sync digests the heads of every report in the caller's scope: read from the index.
DROP INDEX documents_scope;
CREATE INDEX documents_scope ON documents (org_path COLLATE "C")
    INCLUDE (restricted, assigned_to, id, heads);
-- A pull walks the reports in sequence order; the scope is tested on the index entry, and only
-- the reports in scope are read from the table.
DROP INDEX documents_seq;
CREATE INDEX documents_seq ON documents (seq) INCLUDE (org_path, restricted, assigned_to);
