-- Statistics for every kind (sqlite; keep in step with
-- migrations/postgres/0013_report_facts_by_definition.sql).
--
-- `report_facts_source` (0008) named the canvass questions that feed the satisfaction and safety
-- indexes. Kinds are data now, so the view reads them from `schema_index_fields`: the questions
-- the report's own kind and version mark `"index": "satisfaction"` (or "safety"). An answer
-- '1'..'5' counts, 'dont_know' and blanks do not, as before; each interview is still satisfied
-- when the mean of its answered questions is at least 4, so a version that adds a question
-- changes which questions count, not the rule.
--
-- day / day_end of a kind other than the three built-in ones is the day the server first
-- stored the report (documents.created_at), in China Standard Time: the district keeps its
-- dates there, the server has no setting for it, and the zone has no daylight saving, so UTC+8
-- (28,800 s) is exact. The server's clock rather than the phone's (meta.created_at): a phone's
-- clock may be wrong, the server's is the one every other timestamp uses.
--
-- The rows already in report_facts of the built-in kinds at version 1 stay: 0008 computed them
-- from the very questions their definitions mark (the six canvass questions; none for disputes
-- and drug-control cases), so recomputing them would give the same values. They must not be
-- recomputed here anyway: on a database upgraded from before 0012, the built-in kinds'
-- index questions are written by `SqlStore::seed_builtin_schemas` after the migrations, before
-- any report is written. Every other row (kinds published at runtime, and runtime versions of a
-- built-in kind, whose index questions 0012's registry already holds) is computed again.

DROP VIEW report_facts_source;

CREATE VIEW report_facts_source AS
SELECT
    doc_id, kind, org_path, restricted, assigned_to, status,
    CASE kind WHEN 'drug_control_case' THEN programme_start
        WHEN 'satisfaction_canvass' THEN interviewed_on
        WHEN 'dispute_check' THEN found_on ELSE created_on END AS day,
    CASE kind WHEN 'drug_control_case' THEN programme_end
        WHEN 'satisfaction_canvass' THEN interviewed_on
        WHEN 'dispute_check' THEN found_on ELSE created_on END AS day_end,
    sat_n, sat_sum, safe_n, safe_sum,
    risk, category,
    CAST(julianday(resolved_on) - julianday(found_on) AS INTEGER) AS days_to_resolution,
    next_follow_up, last_visit_on, next_visit_due, last_test_on
FROM (
    SELECT
        d.id AS doc_id, d.kind, d.org_path, d.restricted, d.assigned_to, d.status,
        (SELECT COUNT(*) FROM schema_index_fields i
            WHERE i.kind = d.kind AND i.version = d.schema_version AND i.idx = 'satisfaction'
            AND json_extract(d.projection, '$.fields.' || i.field) IN ('1', '2', '3', '4', '5'))
            AS sat_n,
        (SELECT COALESCE(SUM(CAST(json_extract(d.projection, '$.fields.' || i.field) AS INTEGER)), 0)
            FROM schema_index_fields i
            WHERE i.kind = d.kind AND i.version = d.schema_version AND i.idx = 'satisfaction'
            AND json_extract(d.projection, '$.fields.' || i.field) IN ('1', '2', '3', '4', '5'))
            AS sat_sum,
        (SELECT COUNT(*) FROM schema_index_fields i
            WHERE i.kind = d.kind AND i.version = d.schema_version AND i.idx = 'safety'
            AND json_extract(d.projection, '$.fields.' || i.field) IN ('1', '2', '3', '4', '5'))
            AS safe_n,
        (SELECT COALESCE(SUM(CAST(json_extract(d.projection, '$.fields.' || i.field) AS INTEGER)), 0)
            FROM schema_index_fields i
            WHERE i.kind = d.kind AND i.version = d.schema_version AND i.idx = 'safety'
            AND json_extract(d.projection, '$.fields.' || i.field) IN ('1', '2', '3', '4', '5'))
            AS safe_sum,
        date(d.created_at + 28800, 'unixepoch') AS created_on,
        json_extract(d.projection, '$.fields.risk_level') AS risk,
        json_extract(d.projection, '$.fields.category') AS category,
        CASE WHEN json_extract(d.projection, '$.fields.interviewed_at')
            GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'
            THEN substr(json_extract(d.projection, '$.fields.interviewed_at'), 1, 10) END
            AS interviewed_on,
        CASE WHEN json_extract(d.projection, '$.fields.found_on')
            GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
            THEN json_extract(d.projection, '$.fields.found_on') END AS found_on,
        CASE WHEN json_extract(d.projection, '$.fields.resolved_on')
            GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
            THEN json_extract(d.projection, '$.fields.resolved_on') END AS resolved_on,
        CASE WHEN json_extract(d.projection, '$.fields.next_follow_up')
            GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
            THEN json_extract(d.projection, '$.fields.next_follow_up') END AS next_follow_up,
        CASE WHEN json_extract(d.projection, '$.fields.programme_start')
            GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
            THEN json_extract(d.projection, '$.fields.programme_start') END AS programme_start,
        CASE WHEN json_extract(d.projection, '$.fields.programme_end')
            GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
            THEN json_extract(d.projection, '$.fields.programme_end') END AS programme_end,
        (SELECT max(json_extract(v.value, '$.date')) FROM json_each(d.projection, '$.log') v
            WHERE json_extract(v.value, '$.date') GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]')
            AS last_visit_on,
        (SELECT json_extract(v.value, '$.next_visit_due') FROM json_each(d.projection, '$.log') v
            WHERE json_extract(v.value, '$.date') GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
            AND json_extract(v.value, '$.next_visit_due') GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
            ORDER BY json_extract(v.value, '$.date') DESC LIMIT 1) AS next_visit_due,
        (SELECT max(json_extract(v.value, '$.date')) FROM json_each(d.projection, '$.log') v
            WHERE json_extract(v.value, '$.date') GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
            AND json_extract(v.value, '$.test') IN ('urine', 'hair')) AS last_test_on
    FROM documents d
);

DELETE FROM report_facts WHERE doc_id IN (SELECT id FROM documents
    WHERE kind NOT IN ('dispute_check', 'drug_control_case', 'satisfaction_canvass')
    OR schema_version <> 1);
INSERT INTO report_facts SELECT * FROM report_facts_source WHERE doc_id IN (SELECT id FROM documents
    WHERE kind NOT IN ('dispute_check', 'drug_control_case', 'satisfaction_canvass')
    OR schema_version <> 1);
