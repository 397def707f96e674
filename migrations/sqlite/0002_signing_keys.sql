-- Keys that sign access tokens (HS256). They live in the database so that every server node signs
-- and verifies with the same set; the newest signs, any of them verifies (by `kid`), so a new key
-- can be added without logging everyone out. Keep in step with migrations/postgres.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    secret BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
