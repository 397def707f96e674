-- A village office hub's relay queue for attachments (issue 22): each attachment a phone uploaded
-- to the hub, whole and verified, until central holds it too and answers with its receipt, which
-- the hub hands on to any phone that still owes central those bytes. Only a hub's database fills
-- it. Keep in step with migrations/postgres/0021_hub_attachment_outbox.sql.
CREATE TABLE hub_attachment_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL,
    hash TEXT NOT NULL,
    queued_at BIGINT NOT NULL,
    relayed_at BIGINT,
    -- Central's receipt (a JWS); none when central would never take the bytes.
    receipt TEXT,
    UNIQUE (doc_id, hash)
);
CREATE INDEX hub_attachment_outbox_waiting ON hub_attachment_outbox (id) WHERE relayed_at IS NULL;
