-- Each statistics fact is read only for the kind that is counted by it (issue 20; keep in step
-- with migrations/sqlite/0024_report_facts_by_kind.sql).
--
-- `report_facts_source` read every fact of every report: a dispute check's follow-up log was
-- walked three times for the drug-control visit and test dates, and its `found_on` checked once
-- for each column that names it, some 27 calls of `gridsync_date` a dispute, about 100 µs of
-- the INSERT that writes a new report. Only the statistics of the kind named read each fact
-- (`server/src/store/facts.rs`): risk, category, the follow-up date and the days to resolution
-- those of dispute checks; the visit and test dates those of drug-control cases; the interview
-- day that of the canvass. A fact of another kind is now NULL, which no query reads.
--
-- The rows already written keep what the old view read for them: no query reads those facts,
-- and clearing them would rewrite most of the table (every dispute with a dated follow-up) at
-- a million reports for nothing. A report's row is written anew at its next edit.
--
-- The facts are read in a LATERAL subquery that `OFFSET 0` keeps from being pulled up into the
-- outer query, so that each is computed once per report: pulled up, an expression is copied to
-- every place that names it (`found_on` into day, day_end and the days to resolution). The
-- dates it keeps are valid, so the days to resolution subtract them by a plain cast.
--
-- CREATE OR REPLACE keeps the view's columns, names and types, which `report_facts_insert()`
-- and `report_facts_refresh()` read with `SELECT *`.

CREATE OR REPLACE VIEW report_facts_source AS
SELECT
    d.id AS doc_id, d.kind, d.org_path, d.restricted, d.assigned_to, d.status,
    CASE d.kind WHEN 'drug_control_case' THEN x.programme_start
        WHEN 'satisfaction_canvass' THEN x.interviewed_on
        WHEN 'dispute_check' THEN x.found_on ELSE x.created_on END AS day,
    CASE d.kind WHEN 'drug_control_case' THEN x.programme_end
        WHEN 'satisfaction_canvass' THEN x.interviewed_on
        WHEN 'dispute_check' THEN x.found_on ELSE x.created_on END AS day_end,
    ix.sat_n, ix.sat_sum, ix.safe_n, ix.safe_sum,
    x.risk, x.category,
    x.resolved_on::date - x.found_on::date AS days_to_resolution,
    x.next_follow_up, x.last_visit_on, x.next_visit_due, x.last_test_on
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
CROSS JOIN LATERAL (
    SELECT
        CASE WHEN d.kind NOT IN ('dispute_check', 'drug_control_case', 'satisfaction_canvass')
            THEN to_char(TIMESTAMP '1970-01-01' + (d.created_at + 28800) * INTERVAL '1 second',
                'YYYY-MM-DD') END AS created_on,
        CASE WHEN d.kind = 'dispute_check'
            THEN d.projection #>> '{fields,risk_level}' END AS risk,
        CASE WHEN d.kind = 'dispute_check'
            THEN d.projection #>> '{fields,category}' END AS category,
        CASE WHEN d.kind = 'satisfaction_canvass'
            AND d.projection #>> '{fields,interviewed_at}' ~ '^\d{4}-\d{2}-\d{2}'
            THEN substr(d.projection #>> '{fields,interviewed_at}', 1, 10) END AS interviewed_on,
        CASE WHEN d.kind = 'dispute_check'
            AND gridsync_date(d.projection #>> '{fields,found_on}') IS NOT NULL
            THEN d.projection #>> '{fields,found_on}' END AS found_on,
        CASE WHEN d.kind = 'dispute_check'
            AND gridsync_date(d.projection #>> '{fields,resolved_on}') IS NOT NULL
            THEN d.projection #>> '{fields,resolved_on}' END AS resolved_on,
        CASE WHEN d.kind = 'dispute_check'
            AND gridsync_date(d.projection #>> '{fields,next_follow_up}') IS NOT NULL
            THEN d.projection #>> '{fields,next_follow_up}' END AS next_follow_up,
        CASE WHEN d.kind = 'drug_control_case'
            AND gridsync_date(d.projection #>> '{fields,programme_start}') IS NOT NULL
            THEN d.projection #>> '{fields,programme_start}' END AS programme_start,
        CASE WHEN d.kind = 'drug_control_case'
            AND gridsync_date(d.projection #>> '{fields,programme_end}') IS NOT NULL
            THEN d.projection #>> '{fields,programme_end}' END AS programme_end,
        CASE WHEN d.kind = 'drug_control_case' THEN (
            SELECT max(v ->> 'date') FROM jsonb_array_elements(
                CASE WHEN jsonb_typeof(d.projection -> 'log') = 'array' THEN d.projection -> 'log'
                ELSE '[]'::jsonb END) v
            WHERE gridsync_date(v ->> 'date') IS NOT NULL) END AS last_visit_on,
        CASE WHEN d.kind = 'drug_control_case' THEN (
            SELECT v ->> 'next_visit_due' FROM jsonb_array_elements(
                CASE WHEN jsonb_typeof(d.projection -> 'log') = 'array' THEN d.projection -> 'log'
                ELSE '[]'::jsonb END) v
            WHERE gridsync_date(v ->> 'date') IS NOT NULL
            AND gridsync_date(v ->> 'next_visit_due') IS NOT NULL
            ORDER BY v ->> 'date' DESC LIMIT 1) END AS next_visit_due,
        CASE WHEN d.kind = 'drug_control_case' THEN (
            SELECT max(v ->> 'date') FROM jsonb_array_elements(
                CASE WHEN jsonb_typeof(d.projection -> 'log') = 'array' THEN d.projection -> 'log'
                ELSE '[]'::jsonb END) v
            WHERE gridsync_date(v ->> 'date') IS NOT NULL
            AND v ->> 'test' IN ('urine', 'hair')) END AS last_test_on
    OFFSET 0
) x;
