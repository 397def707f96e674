-- Statistics for every kind (postgres; keep in step with
-- migrations/sqlite/0013_report_facts_by_definition.sql, which explains the change).
--
-- The satisfaction and safety questions are those of `schema_index_fields` for the report's own
-- kind and version; day / day_end of a kind other than the built-in three is the day the server
-- first stored the report, in China Standard Time (UTC+8, 28,800 s, no daylight saving). Rows
-- of the built-in kinds at version 1 stay as 0008 computed them (the same values); every other
-- row is computed again.
--
-- CREATE OR REPLACE keeps the view's columns, names and types as they were, so
-- `report_facts_refresh()` and its `SELECT *` into report_facts read it as before; the counts
-- are cast back to INTEGER for that.

CREATE OR REPLACE VIEW report_facts_source AS
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
    gridsync_date(resolved_on) - gridsync_date(found_on) AS days_to_resolution,
    next_follow_up, last_visit_on, next_visit_due, last_test_on
FROM (
    SELECT
        d.id AS doc_id, d.kind, d.org_path, d.restricted, d.assigned_to, d.status,
        ix.sat_n, ix.sat_sum, ix.safe_n, ix.safe_sum,
        to_char(TIMESTAMP '1970-01-01' + (d.created_at + 28800) * INTERVAL '1 second',
            'YYYY-MM-DD') AS created_on,
        d.projection #>> '{fields,risk_level}' AS risk,
        d.projection #>> '{fields,category}' AS category,
        CASE WHEN d.projection #>> '{fields,interviewed_at}' ~ '^\d{4}-\d{2}-\d{2}'
            THEN substr(d.projection #>> '{fields,interviewed_at}', 1, 10) END AS interviewed_on,
        CASE WHEN gridsync_date(d.projection #>> '{fields,found_on}') IS NOT NULL
            THEN d.projection #>> '{fields,found_on}' END AS found_on,
        CASE WHEN gridsync_date(d.projection #>> '{fields,resolved_on}') IS NOT NULL
            THEN d.projection #>> '{fields,resolved_on}' END AS resolved_on,
        CASE WHEN gridsync_date(d.projection #>> '{fields,next_follow_up}') IS NOT NULL
            THEN d.projection #>> '{fields,next_follow_up}' END AS next_follow_up,
        CASE WHEN gridsync_date(d.projection #>> '{fields,programme_start}') IS NOT NULL
            THEN d.projection #>> '{fields,programme_start}' END AS programme_start,
        CASE WHEN gridsync_date(d.projection #>> '{fields,programme_end}') IS NOT NULL
            THEN d.projection #>> '{fields,programme_end}' END AS programme_end,
        (SELECT max(v ->> 'date') FROM jsonb_array_elements(
            CASE WHEN jsonb_typeof(d.projection -> 'log') = 'array' THEN d.projection -> 'log'
            ELSE '[]'::jsonb END) v
            WHERE gridsync_date(v ->> 'date') IS NOT NULL) AS last_visit_on,
        (SELECT v ->> 'next_visit_due' FROM jsonb_array_elements(
            CASE WHEN jsonb_typeof(d.projection -> 'log') = 'array' THEN d.projection -> 'log'
            ELSE '[]'::jsonb END) v
            WHERE gridsync_date(v ->> 'date') IS NOT NULL
            AND gridsync_date(v ->> 'next_visit_due') IS NOT NULL
            ORDER BY v ->> 'date' DESC LIMIT 1) AS next_visit_due,
        (SELECT max(v ->> 'date') FROM jsonb_array_elements(
            CASE WHEN jsonb_typeof(d.projection -> 'log') = 'array' THEN d.projection -> 'log'
            ELSE '[]'::jsonb END) v
            WHERE gridsync_date(v ->> 'date') IS NOT NULL
            AND v ->> 'test' IN ('urine', 'hair')) AS last_test_on
    FROM documents d
    -- One row per report whatever the kind marks: aggregates without GROUP BY always answer.
    CROSS JOIN LATERAL (
        SELECT
            CAST(COUNT(a.answer) FILTER (WHERE i.idx = 'satisfaction') AS INTEGER) AS sat_n,
            CAST(COALESCE(SUM(a.answer) FILTER (WHERE i.idx = 'satisfaction'), 0) AS INTEGER)
                AS sat_sum,
            CAST(COUNT(a.answer) FILTER (WHERE i.idx = 'safety') AS INTEGER) AS safe_n,
            CAST(COALESCE(SUM(a.answer) FILTER (WHERE i.idx = 'safety'), 0) AS INTEGER)
                AS safe_sum
        FROM schema_index_fields i
        CROSS JOIN LATERAL (
            SELECT gridsync_scale(d.projection -> 'fields' ->> i.field) AS answer
        ) a
        WHERE i.kind = d.kind AND i.version = d.schema_version
    ) ix
) x;

DELETE FROM report_facts WHERE doc_id IN (SELECT id FROM documents
    WHERE kind NOT IN ('dispute_check', 'drug_control_case', 'satisfaction_canvass')
    OR schema_version <> 1);
INSERT INTO report_facts SELECT * FROM report_facts_source WHERE doc_id IN (SELECT id FROM documents
    WHERE kind NOT IN ('dispute_check', 'drug_control_case', 'satisfaction_canvass')
    OR schema_version <> 1);
