-- A report's statistics rows are rewritten only when they change (issue 20; keep in step with
-- migrations/sqlite/0026_report_facts_rewritten_when_changed.sql).
--
-- Every edit of a stored report updates its projection, and the row trigger deleted and
-- inserted its `report_facts` row, with the row's indexes and the canvass roll-ups' triggers,
-- even when the edit touched no field a statistic reads (most edits: a description, a note, a
-- follow-up entry). `store_bench`'s one-field edits ran 19-30% faster with the trigger
-- dropped altogether. The facts are now read from the view once and compared with the row
-- held: an unchanged row is left alone, and so are the roll-ups, which follow the rows alone.
-- A canvass interview's worries, which only its projection's `worries` field holds, are
-- rewritten when that field changed.
CREATE OR REPLACE FUNCTION report_facts_refresh() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    fresh report_facts;
    held report_facts;
BEGIN
    SELECT * INTO fresh FROM report_facts_source WHERE doc_id = NEW.id;
    SELECT * INTO held FROM report_facts WHERE doc_id = NEW.id;
    IF fresh IS DISTINCT FROM held THEN
        -- Worries first: their roll-up reads the facts row they are counted under.
        DELETE FROM report_worries WHERE doc_id = NEW.id;
        DELETE FROM report_facts WHERE doc_id = NEW.id;
        IF fresh.doc_id IS NOT NULL THEN
            INSERT INTO report_facts SELECT (fresh).*;
        END IF;
    ELSIF NEW.kind = 'satisfaction_canvass'
        AND OLD.projection #> '{fields,worries}' IS DISTINCT FROM
            NEW.projection #> '{fields,worries}' THEN
        DELETE FROM report_worries WHERE doc_id = NEW.id;
    ELSE
        RETURN NULL;
    END IF;
    INSERT INTO report_worries SELECT * FROM report_worries_source WHERE doc_id = NEW.id
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
