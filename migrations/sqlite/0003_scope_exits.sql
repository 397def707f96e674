-- A report left the place it was in: moved to another grid, or a restricted case reassigned.
-- `org_path`, `restricted` and `assigned_to` are where it was; `seq` is the change that moved
-- it. A pull past `seq` tells the devices whose scope held it, and no longer does, to drop it.
-- Kept for good (a few bytes per move), so a device of any age is told.
CREATE TABLE scope_exits (
    doc_id TEXT NOT NULL REFERENCES documents (id),
    seq BIGINT NOT NULL,
    org_path TEXT NOT NULL,
    restricted BOOLEAN NOT NULL,
    assigned_to TEXT,
    PRIMARY KEY (doc_id, seq)
);
CREATE INDEX scope_exits_seq ON scope_exits (seq);
