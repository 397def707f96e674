-- Gridsync schema, version 1 (SQLite). Keep in step with migrations/postgres/0001_init.sql.

-- The organisation tree. `path` is the ids from the district down, '/'-separated with a trailing
-- '/', so a scope is a path prefix.
CREATE TABLE org_units (
    id TEXT PRIMARY KEY,
    parent_id TEXT REFERENCES org_units (id),
    level TEXT NOT NULL CHECK (level IN ('district', 'township', 'street', 'village', 'community', 'grid')),
    name TEXT NOT NULL,
    path TEXT NOT NULL UNIQUE
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('grid_worker', 'village_cadre', 'township_staff', 'drug_control_officer', 'district_admin')),
    org_unit_id TEXT NOT NULL REFERENCES org_units (id),
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);

-- `cursor` is the last cursor the device pulled from; the oldest live one bounds pruning.
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    revoked_at BIGINT,
    cursor BIGINT NOT NULL DEFAULT 0
);

-- Refresh tokens are stored hashed. A family is one login's chain of rotations.
CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices (id),
    family TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);

-- One row per report. `snapshot` is a saved document as of `snapshot_seq`; the changes after it
-- complete it. `seq` is the server sequence of the latest change.
CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    grid_id TEXT NOT NULL REFERENCES org_units (id),
    org_path TEXT NOT NULL,
    restricted BOOLEAN NOT NULL,
    assigned_to TEXT,
    seq BIGINT NOT NULL,
    heads BLOB NOT NULL,
    snapshot BLOB NOT NULL,
    snapshot_seq BIGINT NOT NULL,
    incremental_bytes BIGINT NOT NULL,
    projection TEXT NOT NULL,
    status TEXT,
    review_state TEXT NOT NULL DEFAULT 'received' CHECK (review_state IN ('received', 'needs_attention', 'approved')),
    has_conflicts BOOLEAN NOT NULL DEFAULT FALSE,
    problems TEXT NOT NULL DEFAULT '[]',
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX documents_seq ON documents (seq);
CREATE INDEX documents_scope ON documents (org_path, seq);

-- The change log. `seq` is assigned in commit order, so a cursor never skips a committed change.
CREATE TABLE changes (
    hash BLOB PRIMARY KEY,
    doc_id TEXT NOT NULL REFERENCES documents (id),
    seq BIGINT NOT NULL UNIQUE,
    deps BLOB NOT NULL,
    author TEXT NOT NULL,
    device_id TEXT,
    time BIGINT NOT NULL,
    bytes BLOB NOT NULL
);
CREATE INDEX changes_doc_seq ON changes (doc_id, seq);

-- Open and resolved conflicts: concurrent values of a field, or a semantic flag.
CREATE TABLE conflicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents (id),
    path TEXT NOT NULL,
    code TEXT NOT NULL,
    detail TEXT NOT NULL,
    detected_at BIGINT NOT NULL,
    resolved_at BIGINT,
    resolved_by TEXT
);
CREATE INDEX conflicts_doc ON conflicts (doc_id);
CREATE UNIQUE INDEX conflicts_open ON conflicts (doc_id, path, code) WHERE resolved_at IS NULL;

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    user_id TEXT,
    device_id TEXT,
    action TEXT NOT NULL,
    doc_id TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);

-- `seq`: the last server sequence number handed out; its row lock orders writers.
-- `horizon`: change-log rows at or below it may be gone; a cursor behind it gets snapshots.
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('seq', 0), ('horizon', 0);
