-- Bulletins (sqlite; keep in step with migrations/postgres/0015_bulletins.sql).
--
-- A published bulletin keeps its figures as they were read out: later syncs of old reports
-- change the statistics, never a bulletin. A re-issue is a new revision with its reason; the
-- earlier revisions stay.
CREATE TABLE bulletins (
    org_id TEXT NOT NULL REFERENCES org_units (id),
    -- '2026-11', '2026-Q4' or '2026'.
    period TEXT NOT NULL,
    revision INTEGER NOT NULL CHECK (revision >= 1),
    -- The whole bulletin as JSON, as published.
    figures TEXT NOT NULL,
    -- Why it was re-issued; NULL for the first revision.
    reason TEXT,
    published_by TEXT NOT NULL REFERENCES users (id),
    published_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, period, revision)
);

-- The rank rules (yellow cards, the bar to a rating of advanced) as JSON; one row once an
-- admin has set them, none while the default rules hold.
CREATE TABLE bulletin_rules (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    rules TEXT NOT NULL,
    updated_by TEXT NOT NULL REFERENCES users (id),
    updated_at BIGINT NOT NULL
);
