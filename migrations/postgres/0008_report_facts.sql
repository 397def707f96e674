-- Statistics (postgres; keep in step with migrations/sqlite/0008_report_facts.sql, which explains
-- each column).
--
-- `report_facts` holds, per report, the few values the statistics and ledgers filter and count
-- by, taken from the JSON projection, so that a statistic scans a narrow table instead of
-- every projection. A trigger on `documents` keeps it in step with every write; the view
-- `report_facts_source` is the one place that says how a fact is read from a projection.

CREATE TABLE report_facts (
    doc_id TEXT PRIMARY KEY REFERENCES documents (id),
    kind TEXT NOT NULL,
    org_path TEXT NOT NULL,
    restricted BOOLEAN NOT NULL,
    assigned_to TEXT,
    status TEXT,
    day TEXT,
    day_end TEXT,
    sat_n INTEGER NOT NULL,
    sat_sum INTEGER NOT NULL,
    safe_n INTEGER NOT NULL,
    safe_sum INTEGER NOT NULL,
    risk TEXT,
    category TEXT,
    days_to_resolution INTEGER,
    next_follow_up TEXT,
    last_visit_on TEXT,
    next_visit_due TEXT,
    last_test_on TEXT
);
-- Ledgers and drug-control figures of one kind over a period.
CREATE INDEX report_facts_kind_day ON report_facts (kind, day);
-- The canvass and dispute figures read only these columns: covering indexes spare a lookup of
-- the row per report (a year's canvass statistic on 100,000 reports: 120 ms to 15 ms on SQLite).
CREATE INDEX report_facts_canvass ON report_facts
    (day, org_path, restricted, assigned_to, sat_n, sat_sum, safe_n, safe_sum, doc_id)
    WHERE kind = 'satisfaction_canvass';
CREATE INDEX report_facts_disputes ON report_facts
    (day, org_path, restricted, assigned_to, status, risk, category, next_follow_up,
     days_to_resolution)
    WHERE kind = 'dispute_check';

-- The worries (multiple choice) each canvass interview raised, one row per worry.
CREATE TABLE report_worries (
    doc_id TEXT NOT NULL REFERENCES documents (id),
    worry TEXT NOT NULL,
    PRIMARY KEY (doc_id, worry)
);

-- `t` when it is a calendar date written YYYY-MM-DD, else NULL: a field report may hold a bad
-- value (validation records it as a problem), and a bad value must not fail the write.
CREATE FUNCTION gridsync_date(t TEXT) RETURNS DATE LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF t ~ '^\d{4}-\d{2}-\d{2}$' THEN
        RETURN t::date;
    END IF;
    RETURN NULL;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

-- The answer to a 1-5 question as a number; NULL for "dont_know", blanks and anything else.
CREATE FUNCTION gridsync_scale(t TEXT) RETURNS INTEGER LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN t IN ('1', '2', '3', '4', '5') THEN t::integer END
$$;

CREATE VIEW report_facts_source AS
SELECT
    doc_id, kind, org_path, restricted, assigned_to, status,
    CASE kind WHEN 'drug_control_case' THEN programme_start
        WHEN 'satisfaction_canvass' THEN interviewed_on ELSE found_on END AS day,
    CASE kind WHEN 'drug_control_case' THEN programme_end
        WHEN 'satisfaction_canvass' THEN interviewed_on ELSE found_on END AS day_end,
    (CASE WHEN sat1 IS NULL THEN 0 ELSE 1 END) + (CASE WHEN sat2 IS NULL THEN 0 ELSE 1 END)
        + (CASE WHEN sat3 IS NULL THEN 0 ELSE 1 END) + (CASE WHEN sat4 IS NULL THEN 0 ELSE 1 END)
        AS sat_n,
    COALESCE(sat1, 0) + COALESCE(sat2, 0) + COALESCE(sat3, 0) + COALESCE(sat4, 0) AS sat_sum,
    (CASE WHEN safe1 IS NULL THEN 0 ELSE 1 END) + (CASE WHEN safe2 IS NULL THEN 0 ELSE 1 END)
        AS safe_n,
    COALESCE(safe1, 0) + COALESCE(safe2, 0) AS safe_sum,
    risk, category,
    gridsync_date(resolved_on) - gridsync_date(found_on) AS days_to_resolution,
    next_follow_up, last_visit_on, next_visit_due, last_test_on
FROM (
    SELECT
        d.id AS doc_id, d.kind, d.org_path, d.restricted, d.assigned_to, d.status,
        gridsync_scale(d.projection #>> '{fields,satisfaction_police}') AS sat1,
        gridsync_scale(d.projection #>> '{fields,satisfaction_courts}') AS sat2,
        gridsync_scale(d.projection #>> '{fields,satisfaction_mediation}') AS sat3,
        gridsync_scale(d.projection #>> '{fields,satisfaction_services}') AS sat4,
        gridsync_scale(d.projection #>> '{fields,safety_overall}') AS safe1,
        gridsync_scale(d.projection #>> '{fields,safety_night}') AS safe2,
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
) x;

CREATE VIEW report_worries_source AS
SELECT d.id AS doc_id, e #>> '{}' AS worry
FROM documents d, jsonb_array_elements(
    CASE WHEN jsonb_typeof(d.projection #> '{fields,worries}') = 'array'
    THEN d.projection #> '{fields,worries}' ELSE '[]'::jsonb END) e
WHERE d.kind = 'satisfaction_canvass' AND jsonb_typeof(e) = 'string';

CREATE FUNCTION report_facts_refresh() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM report_facts WHERE doc_id = NEW.id;
    DELETE FROM report_worries WHERE doc_id = NEW.id;
    INSERT INTO report_facts SELECT * FROM report_facts_source WHERE doc_id = NEW.id;
    INSERT INTO report_worries SELECT * FROM report_worries_source WHERE doc_id = NEW.id
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER report_facts_refresh
AFTER INSERT OR UPDATE OF projection, status, org_path, restricted, assigned_to ON documents
FOR EACH ROW EXECUTE FUNCTION report_facts_refresh();

INSERT INTO report_facts SELECT * FROM report_facts_source;
INSERT INTO report_worries SELECT * FROM report_worries_source ON CONFLICT DO NOTHING;
