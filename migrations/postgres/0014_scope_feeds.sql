-- Costs that follow the caller's scope in a large district (postgres; keep in step with
-- migrations/sqlite/0014_scope_feeds.sql, which explains each part).
--
-- Adding the stored columns rewrites `documents` once: 21 s for a million reports (W5).

ALTER TABLE documents
    ADD COLUMN township_path TEXT
        GENERATED ALWAYS AS (substring(org_path from '^/[^/]+/[^/]+/')) STORED,
    ADD COLUMN village_path TEXT
        GENERATED ALWAYS AS (substring(org_path from '^/[^/]+/[^/]+/[^/]+/')) STORED;
CREATE INDEX documents_township_feed ON documents (township_path, seq);
CREATE INDEX documents_village_feed ON documents (village_path, seq);
CREATE INDEX documents_grid_feed ON documents (org_path, seq);

CREATE TABLE canvass_months (
    org_path TEXT NOT NULL,
    month TEXT NOT NULL,
    interviews BIGINT NOT NULL,
    satisfaction_answered BIGINT NOT NULL,
    satisfied BIGINT NOT NULL,
    safety_answered BIGINT NOT NULL,
    safe BIGINT NOT NULL,
    PRIMARY KEY (org_path, month)
);
CREATE TABLE canvass_worry_months (
    org_path TEXT NOT NULL,
    month TEXT NOT NULL,
    worry TEXT NOT NULL,
    raised BIGINT NOT NULL,
    PRIMARY KEY (org_path, month, worry)
);

-- Every write of a report's facts takes sequence numbers first (one counter row), so two
-- transactions never update these rows in opposite orders.
CREATE FUNCTION canvass_months_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    f report_facts;
    sign BIGINT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        f := NEW;
        sign := 1;
    ELSE
        f := OLD;
        sign := -1;
    END IF;
    INSERT INTO canvass_months AS m
        (org_path, month, interviews, satisfaction_answered, satisfied, safety_answered, safe)
    VALUES (f.org_path, substr(f.day, 1, 7), sign,
        CASE WHEN f.sat_n > 0 THEN sign ELSE 0 END,
        CASE WHEN f.sat_n > 0 AND f.sat_sum >= 4 * f.sat_n THEN sign ELSE 0 END,
        CASE WHEN f.safe_n > 0 THEN sign ELSE 0 END,
        CASE WHEN f.safe_n > 0 AND f.safe_sum >= 4 * f.safe_n THEN sign ELSE 0 END)
    ON CONFLICT (org_path, month) DO UPDATE SET
        interviews = m.interviews + excluded.interviews,
        satisfaction_answered = m.satisfaction_answered + excluded.satisfaction_answered,
        satisfied = m.satisfied + excluded.satisfied,
        safety_answered = m.safety_answered + excluded.safety_answered,
        safe = m.safe + excluded.safe;
    RETURN NULL;
END
$$;

CREATE TRIGGER canvass_months_add AFTER INSERT ON report_facts FOR EACH ROW
WHEN (NEW.kind = 'satisfaction_canvass' AND NOT NEW.restricted AND NEW.day IS NOT NULL)
EXECUTE FUNCTION canvass_months_count();
CREATE TRIGGER canvass_months_remove AFTER DELETE ON report_facts FOR EACH ROW
WHEN (OLD.kind = 'satisfaction_canvass' AND NOT OLD.restricted AND OLD.day IS NOT NULL)
EXECUTE FUNCTION canvass_months_count();

CREATE FUNCTION canvass_worry_months_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    w report_worries;
    sign BIGINT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        w := NEW;
        sign := 1;
    ELSE
        w := OLD;
        sign := -1;
    END IF;
    INSERT INTO canvass_worry_months AS m (org_path, month, worry, raised)
    SELECT f.org_path, substr(f.day, 1, 7), w.worry, sign FROM report_facts f
    WHERE f.doc_id = w.doc_id AND f.kind = 'satisfaction_canvass' AND NOT f.restricted
        AND f.day IS NOT NULL
    ON CONFLICT (org_path, month, worry) DO UPDATE SET raised = m.raised + excluded.raised;
    RETURN NULL;
END
$$;

CREATE TRIGGER canvass_worry_months_count AFTER INSERT OR DELETE ON report_worries
FOR EACH ROW EXECUTE FUNCTION canvass_worry_months_count();

CREATE OR REPLACE FUNCTION report_facts_refresh() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM report_worries WHERE doc_id = NEW.id;
    DELETE FROM report_facts WHERE doc_id = NEW.id;
    INSERT INTO report_facts SELECT * FROM report_facts_source WHERE doc_id = NEW.id;
    INSERT INTO report_worries SELECT * FROM report_worries_source WHERE doc_id = NEW.id
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

INSERT INTO canvass_months
    (org_path, month, interviews, satisfaction_answered, satisfied, safety_answered, safe)
SELECT org_path, substr(day, 1, 7), COUNT(*),
    COUNT(*) FILTER (WHERE sat_n > 0),
    COUNT(*) FILTER (WHERE sat_n > 0 AND sat_sum >= 4 * sat_n),
    COUNT(*) FILTER (WHERE safe_n > 0),
    COUNT(*) FILTER (WHERE safe_n > 0 AND safe_sum >= 4 * safe_n)
FROM report_facts
WHERE kind = 'satisfaction_canvass' AND NOT restricted AND day IS NOT NULL
GROUP BY org_path, substr(day, 1, 7);

INSERT INTO canvass_worry_months (org_path, month, worry, raised)
SELECT f.org_path, substr(f.day, 1, 7), w.worry, COUNT(*)
FROM report_worries w JOIN report_facts f ON f.doc_id = w.doc_id
WHERE f.kind = 'satisfaction_canvass' AND NOT f.restricted AND f.day IS NOT NULL
GROUP BY f.org_path, substr(f.day, 1, 7), w.worry;
