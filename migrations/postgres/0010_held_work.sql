-- Held work: changes a phone pushed that its user may no longer write (a case reassigned, a
-- worker moved while offline). They are kept, never applied silently and never dropped, until
-- someone who owns the report now merges them into it or declines them. `org_path`,
-- `restricted` and `assigned_to` place the item like the report it belongs to, so the same
-- scope filter decides who sees it.
CREATE TABLE held_work (
    id BIGSERIAL PRIMARY KEY,
    doc_id TEXT NOT NULL,
    author_id TEXT NOT NULL REFERENCES users (id),
    device_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    kind TEXT NOT NULL,
    grid_id TEXT NOT NULL,
    org_path TEXT NOT NULL,
    restricted BOOLEAN NOT NULL,
    assigned_to TEXT,
    -- The report as the held changes would leave it, for the reviewer.
    projection TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'held',
    decided_by TEXT,
    decided_at BIGINT,
    note TEXT
);
-- One open item per report and device: a later push of the same phone adds to it.
CREATE UNIQUE INDEX held_work_open ON held_work (doc_id, device_id) WHERE state = 'held';
CREATE INDEX held_work_scope ON held_work (org_path COLLATE "C", restricted, assigned_to);

CREATE TABLE held_changes (
    held_id BIGINT NOT NULL REFERENCES held_work (id),
    hash BYTEA NOT NULL,
    ord INTEGER NOT NULL,
    bytes BYTEA NOT NULL,
    PRIMARY KEY (held_id, hash)
);

-- What a phone reported at its last sync: how many changes it still holds unsent, so an
-- admin knows what a revocation would destroy. `retiring_at`: the phone is being handed in;
-- it delivers everything, then wipes itself. `scope_key`: the scope this device last pulled
-- under; a pull under another scope starts the device over.
ALTER TABLE devices ADD COLUMN pending_changes BIGINT;
ALTER TABLE devices ADD COLUMN pending_at BIGINT;
ALTER TABLE devices ADD COLUMN retiring_at BIGINT;
ALTER TABLE devices ADD COLUMN scope_key TEXT;
