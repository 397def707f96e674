-- A village office hub uploads its own audit log (the sessions it opened for phones), signed with
-- its key; central keeps each entry once, in its audit log, and here how far each hub's log has
-- come. Keep in step with migrations/sqlite/0020_hub_audit.sql.
ALTER TABLE hubs ADD COLUMN audit_through BIGINT NOT NULL DEFAULT 0;
