-- Each statistics fact is read only for the kind that is counted by it (issue 20; keep in step
-- with migrations/postgres/0024_report_facts_by_kind.sql).
--
-- `report_facts_source` read every fact of every report: a dispute check's follow-up log was
-- walked three times for the drug-control visit and test dates, about 60 µs of the single
-- writer's time for each new or edited dispute. Only the statistics of the kind named read each
-- fact (`server/src/store/facts.rs`): risk, category, the follow-up date and the days to
-- resolution those of dispute checks; the visit and test dates those of drug-control cases; the
-- interview day that of the canvass. A fact of another kind is now NULL, which no query reads.
-- The triggers (0008, 0014) name the view, not its text, so they read the new one.
--
-- The rows already written keep what the old view read for them: no query reads those facts,
-- and clearing them would rewrite most of the table (every dispute with a dated follow-up) at
-- a million reports for nothing. A report's row is written anew at its next edit.

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
        (SELECT COALESCE(SUM(CAST(json_extract(d.projection, '$.fields.' || i.field)
                AS INTEGER)), 0)
            FROM schema_index_fields i
            WHERE i.kind = d.kind AND i.version = d.schema_version AND i.idx = 'satisfaction'
            AND json_extract(d.projection, '$.fields.' || i.field) IN ('1', '2', '3', '4', '5'))
            AS sat_sum,
        (SELECT COUNT(*) FROM schema_index_fields i
            WHERE i.kind = d.kind AND i.version = d.schema_version AND i.idx = 'safety'
            AND json_extract(d.projection, '$.fields.' || i.field) IN ('1', '2', '3', '4', '5'))
            AS safe_n,
        (SELECT COALESCE(SUM(CAST(json_extract(d.projection, '$.fields.' || i.field)
                AS INTEGER)), 0)
            FROM schema_index_fields i
            WHERE i.kind = d.kind AND i.version = d.schema_version AND i.idx = 'safety'
            AND json_extract(d.projection, '$.fields.' || i.field) IN ('1', '2', '3', '4', '5'))
            AS safe_sum,
        date(d.created_at + 28800, 'unixepoch') AS created_on,
        CASE WHEN d.kind = 'dispute_check'
            THEN json_extract(d.projection, '$.fields.risk_level') END AS risk,
        CASE WHEN d.kind = 'dispute_check'
            THEN json_extract(d.projection, '$.fields.category') END AS category,
        CASE WHEN d.kind = 'satisfaction_canvass'
            AND json_extract(d.projection, '$.fields.interviewed_at')
                GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'
            THEN substr(json_extract(d.projection, '$.fields.interviewed_at'), 1, 10) END
            AS interviewed_on,
        CASE WHEN d.kind = 'dispute_check'
            AND json_extract(d.projection, '$.fields.found_on')
                GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
            THEN json_extract(d.projection, '$.fields.found_on') END AS found_on,
        CASE WHEN d.kind = 'dispute_check'
            AND json_extract(d.projection, '$.fields.resolved_on')
                GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
            THEN json_extract(d.projection, '$.fields.resolved_on') END AS resolved_on,
        CASE WHEN d.kind = 'dispute_check'
            AND json_extract(d.projection, '$.fields.next_follow_up')
                GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
            THEN json_extract(d.projection, '$.fields.next_follow_up') END AS next_follow_up,
        CASE WHEN d.kind = 'drug_control_case'
            AND json_extract(d.projection, '$.fields.programme_start')
                GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
            THEN json_extract(d.projection, '$.fields.programme_start') END AS programme_start,
        CASE WHEN d.kind = 'drug_control_case'
            AND json_extract(d.projection, '$.fields.programme_end')
                GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
            THEN json_extract(d.projection, '$.fields.programme_end') END AS programme_end,
        CASE WHEN d.kind = 'drug_control_case' THEN (
            SELECT max(json_extract(v.value, '$.date')) FROM json_each(d.projection, '$.log') v
            WHERE json_extract(v.value, '$.date') GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]')
            END AS last_visit_on,
        CASE WHEN d.kind = 'drug_control_case' THEN (
            SELECT json_extract(v.value, '$.next_visit_due') FROM json_each(d.projection, '$.log') v
            WHERE json_extract(v.value, '$.date') GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
            AND json_extract(v.value, '$.next_visit_due')
                GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
            ORDER BY json_extract(v.value, '$.date') DESC LIMIT 1) END AS next_visit_due,
        CASE WHEN d.kind = 'drug_control_case' THEN (
            SELECT max(json_extract(v.value, '$.date')) FROM json_each(d.projection, '$.log') v
            WHERE json_extract(v.value, '$.date') GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
            AND json_extract(v.value, '$.test') IN ('urine', 'hair')) END AS last_test_on
    FROM documents d
);
