-- New reports' statistics rows are written once per INSERT of documents rather than once per row
-- (issue 20): a push inserts its new reports many to a statement, and the row trigger ran its
-- four statements for each of them, about 250 µs a report, inside the write transaction that
-- every other push waits for. Run once over the statement's new rows (a transition table), the
-- same work takes about 175 µs a report, most of it reading each projection in
-- `report_facts_source`. Updates keep the row trigger: a stored report is updated one statement
-- at a time.
-- Keep in step with migrations/sqlite/0022_report_facts_per_statement.sql.
DROP TRIGGER report_facts_refresh ON documents;
CREATE TRIGGER report_facts_refresh
AFTER UPDATE OF projection, status, org_path, restricted, assigned_to ON documents
FOR EACH ROW EXECUTE FUNCTION report_facts_refresh();

-- A new report has no statistics rows yet (they reference it), so nothing is deleted first.
CREATE FUNCTION report_facts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_facts SELECT * FROM report_facts_source
        WHERE doc_id IN (SELECT id FROM inserted);
    INSERT INTO report_worries SELECT * FROM report_worries_source
        WHERE doc_id IN (SELECT id FROM inserted) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER report_facts_insert AFTER INSERT ON documents
REFERENCING NEW TABLE AS inserted
FOR EACH STATEMENT EXECUTE FUNCTION report_facts_insert();
