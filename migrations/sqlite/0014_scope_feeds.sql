-- Costs that follow the caller's scope in a large district (sqlite; keep in step with
-- migrations/postgres/0014_scope_feeds.sql).
--
-- Feeds. A pull pages through its scope in sequence order. Walking the district's sequence and
-- testing each report's org path visits the whole district for one township (22 reports for
-- each of the township's in a district of a million), so each report also names its township
-- and village, and an index per level keeps a township's, a village's and a grid's reports in
-- sequence order (`scope_feed` in server/src/store/filters.rs picks one). Org paths are
-- `/district/township/village/grid/`, each part non-empty: a report's township path is the
-- path's first two parts (NULL when it has fewer), so it equals a township's path exactly when
-- the report lies under that township, and a pull tests it instead of the path range.
ALTER TABLE documents ADD COLUMN township_path TEXT GENERATED ALWAYS AS (
    CASE WHEN instr(substr(org_path, 2), '/') > 0
        AND instr(substr(org_path, instr(substr(org_path, 2), '/') + 2), '/') > 0
    THEN substr(org_path, 1, instr(substr(org_path, 2), '/') + 1
        + instr(substr(org_path, instr(substr(org_path, 2), '/') + 2), '/')) END) VIRTUAL;
ALTER TABLE documents ADD COLUMN village_path TEXT GENERATED ALWAYS AS (
    CASE WHEN township_path IS NOT NULL
        AND instr(substr(org_path, length(township_path) + 1), '/') > 0
    THEN substr(org_path, 1, length(township_path)
        + instr(substr(org_path, length(township_path) + 1), '/')) END) VIRTUAL;
CREATE INDEX documents_township_feed ON documents (township_path, seq);
CREATE INDEX documents_village_feed ON documents (village_path, seq);
CREATE INDEX documents_grid_feed ON documents (org_path, seq);

-- Canvass roll-ups. A district's canvass figures for a year read every interview of the year
-- (600,000 at a million reports). `canvass_months` keeps the same counts per grid and month,
-- and `canvass_worry_months` how often each worry was raised, so that the whole months of a
-- period are read from at most one row per grid and month; the days before the first whole
-- month and after the last are still counted from `report_facts` (`facts::canvass`). Triggers
-- on `report_facts` and `report_worries` keep them in step: the facts of a report are deleted
-- and inserted again on every write that can change them, and each side adds or takes away
-- its counts. An interview is satisfied (safe) when its mean answer is at least 4, as
-- `SATISFIED_MEAN` in server/src/store/facts.rs says. Only ordinary canvass interviews are
-- rolled up: the canvass kind cannot become restricted (a version that changes who may see a
-- kind is refused), and a restricted one would be left out of whole months, never shown to a
-- scope that may not see it.
CREATE TABLE canvass_months (
    org_path TEXT NOT NULL,
    month TEXT NOT NULL,
    interviews INTEGER NOT NULL,
    satisfaction_answered INTEGER NOT NULL,
    satisfied INTEGER NOT NULL,
    safety_answered INTEGER NOT NULL,
    safe INTEGER NOT NULL,
    PRIMARY KEY (org_path, month)
);
CREATE TABLE canvass_worry_months (
    org_path TEXT NOT NULL,
    month TEXT NOT NULL,
    worry TEXT NOT NULL,
    raised INTEGER NOT NULL,
    PRIMARY KEY (org_path, month, worry)
);

CREATE TRIGGER canvass_months_add AFTER INSERT ON report_facts
WHEN NEW.kind = 'satisfaction_canvass' AND NOT NEW.restricted AND NEW.day IS NOT NULL BEGIN
    INSERT INTO canvass_months
        (org_path, month, interviews, satisfaction_answered, satisfied, safety_answered, safe)
    VALUES (NEW.org_path, substr(NEW.day, 1, 7), 1, NEW.sat_n > 0,
        NEW.sat_n > 0 AND NEW.sat_sum >= 4 * NEW.sat_n, NEW.safe_n > 0,
        NEW.safe_n > 0 AND NEW.safe_sum >= 4 * NEW.safe_n)
    ON CONFLICT (org_path, month) DO UPDATE SET
        interviews = interviews + excluded.interviews,
        satisfaction_answered = satisfaction_answered + excluded.satisfaction_answered,
        satisfied = satisfied + excluded.satisfied,
        safety_answered = safety_answered + excluded.safety_answered,
        safe = safe + excluded.safe;
END;

CREATE TRIGGER canvass_months_remove AFTER DELETE ON report_facts
WHEN OLD.kind = 'satisfaction_canvass' AND NOT OLD.restricted AND OLD.day IS NOT NULL BEGIN
    UPDATE canvass_months SET
        interviews = interviews - 1,
        satisfaction_answered = satisfaction_answered - (OLD.sat_n > 0),
        satisfied = satisfied - (OLD.sat_n > 0 AND OLD.sat_sum >= 4 * OLD.sat_n),
        safety_answered = safety_answered - (OLD.safe_n > 0),
        safe = safe - (OLD.safe_n > 0 AND OLD.safe_sum >= 4 * OLD.safe_n)
    WHERE org_path = OLD.org_path AND month = substr(OLD.day, 1, 7);
END;

-- A worry is counted under its interview's facts, which are inserted before the worries and,
-- since the trigger below is redefined, deleted after them.
CREATE TRIGGER canvass_worry_months_add AFTER INSERT ON report_worries BEGIN
    INSERT INTO canvass_worry_months (org_path, month, worry, raised)
    SELECT f.org_path, substr(f.day, 1, 7), NEW.worry, 1 FROM report_facts f
    WHERE f.doc_id = NEW.doc_id AND f.kind = 'satisfaction_canvass' AND NOT f.restricted
        AND f.day IS NOT NULL
    ON CONFLICT (org_path, month, worry) DO UPDATE SET raised = raised + 1;
END;

CREATE TRIGGER canvass_worry_months_remove AFTER DELETE ON report_worries BEGIN
    UPDATE canvass_worry_months SET raised = raised - 1
    WHERE worry = OLD.worry AND (org_path, month) = (
        SELECT f.org_path, substr(f.day, 1, 7) FROM report_facts f
        WHERE f.doc_id = OLD.doc_id AND f.kind = 'satisfaction_canvass' AND NOT f.restricted
            AND f.day IS NOT NULL);
END;

DROP TRIGGER report_facts_update;
CREATE TRIGGER report_facts_update
AFTER UPDATE OF projection, status, org_path, restricted, assigned_to ON documents BEGIN
    DELETE FROM report_worries WHERE doc_id = NEW.id;
    DELETE FROM report_facts WHERE doc_id = NEW.id;
    INSERT INTO report_facts SELECT * FROM report_facts_source WHERE doc_id = NEW.id;
    INSERT OR IGNORE INTO report_worries SELECT * FROM report_worries_source WHERE doc_id = NEW.id;
END;

INSERT INTO canvass_months
    (org_path, month, interviews, satisfaction_answered, satisfied, safety_answered, safe)
SELECT org_path, substr(day, 1, 7), COUNT(*), SUM(sat_n > 0),
    SUM(sat_n > 0 AND sat_sum >= 4 * sat_n), SUM(safe_n > 0),
    SUM(safe_n > 0 AND safe_sum >= 4 * safe_n)
FROM report_facts
WHERE kind = 'satisfaction_canvass' AND NOT restricted AND day IS NOT NULL
GROUP BY org_path, substr(day, 1, 7);

INSERT INTO canvass_worry_months (org_path, month, worry, raised)
SELECT f.org_path, substr(f.day, 1, 7), w.worry, COUNT(*)
FROM report_worries w JOIN report_facts f ON f.doc_id = w.doc_id
WHERE f.kind = 'satisfaction_canvass' AND NOT f.restricted AND f.day IS NOT NULL
GROUP BY f.org_path, substr(f.day, 1, 7), w.worry;
