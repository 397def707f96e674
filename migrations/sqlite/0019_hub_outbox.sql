-- A village office hub's relay queue (issue 22): each push a phone handed the hub, exactly as the
-- phone signed it (an encoded AttestedPush frame), kept before the hub ingests it, until central
-- takes it and answers with its receipt. Only a hub's database fills it. Keep in step with
-- migrations/postgres/0019_hub_outbox.sql.
CREATE TABLE hub_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    frame BLOB NOT NULL,
    received_at BIGINT NOT NULL,
    relayed_at BIGINT,
    -- Central's receipt (a JWS), for the hub to hand back to the phone.
    receipt TEXT
);
CREATE INDEX hub_outbox_waiting ON hub_outbox (id) WHERE relayed_at IS NULL;
CREATE INDEX hub_outbox_device ON hub_outbox (device_id, id);
