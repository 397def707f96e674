-- The schema registry (postgres; keep in step with migrations/sqlite/0012_schema_registry.sql).
--
-- Every version of every report kind, as the JSON definition `Schema::from_json` checks. A
-- version is a draft while an office prepares it (phones and ingest never see it), then
-- published (immutable from then on: reports are written against it), then perhaps retired (no
-- new reports, but every report written against it stays readable and editable). The built-in
-- kinds are written here when the database is migrated, as published.
CREATE TABLE schemas (
    kind TEXT NOT NULL,
    version INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('draft', 'published', 'retired')),
    definition TEXT NOT NULL,
    -- Where it came from: 'builtin', 'json' or 'xlsx'.
    source TEXT NOT NULL,
    -- The user who uploaded it; NULL for the built-in kinds.
    created_by TEXT,
    created_at BIGINT NOT NULL,
    published_by TEXT,
    published_at BIGINT,
    retired_by TEXT,
    retired_at BIGINT,
    PRIMARY KEY (kind, version)
);

-- The questions of a published version that feed an index ("satisfaction", "safety"), as its
-- definition marks them, so that statistics read them with SQL rather than from code.
CREATE TABLE schema_index_fields (
    kind TEXT NOT NULL,
    version INTEGER NOT NULL,
    field TEXT NOT NULL,
    idx TEXT NOT NULL,
    PRIMARY KEY (kind, version, field),
    FOREIGN KEY (kind, version) REFERENCES schemas (kind, version)
);

-- The catalogue's revision: a random number drawn anew at every publication and retirement (and
-- when the built-in kinds are first written), so a server, or another node, tells a changed
-- catalogue with one read of one row.
INSERT INTO counters (name, value) VALUES ('catalogue', 0);
