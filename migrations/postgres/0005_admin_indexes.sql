-- Indexes for the admin endpoints (postgres; keep in step with migrations/sqlite/0005_admin_indexes.sql).

-- Revoking every device of a user whose role or org unit changed.
CREATE INDEX devices_user ON devices (user_id);
-- Listing the users under an org unit.
CREATE INDEX users_org_unit ON users (org_unit_id);
-- The audit log filtered by user, action or report, paged newest first by id.
CREATE INDEX audit_log_user ON audit_log (user_id, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_doc ON audit_log (doc_id, id);
