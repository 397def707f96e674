-- Scope conditions are org-path ranges (`path_under` in server/src/store.rs). A no-op sync
-- digests the heads of every report in the caller's scope: this index finds a township's
-- reports among a district's million and serves their heads without reading the table.
DROP INDEX documents_scope;
CREATE INDEX documents_scope ON documents (org_path, restricted, assigned_to, id, heads);
