-- Village office hubs (issue 22). An admin registers a hub for a village or community and gets
-- a one-time enrolment code for it; the office PC enrols once with that code and its own Ed25519
-- identity key, and gets a certificate the server signed. Keep in step with
-- migrations/postgres/0018_hubs.sql.
CREATE TABLE hubs (
    id TEXT PRIMARY KEY,
    unit_id TEXT NOT NULL REFERENCES org_units (id),
    name TEXT NOT NULL,
    -- SHA-256 of the enrolment code, until the hub enrols with it or the code expires.
    code_hash BLOB UNIQUE,
    code_expires_at BIGINT,
    -- The hub's Ed25519 public key, unpadded base64url, from its enrolment.
    identity_key TEXT,
    enrolled_at BIGINT,
    revoked_at BIGINT,
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL
);
