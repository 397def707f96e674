-- The refresh grace window (postgres; keep in step with migrations/sqlite/0011_refresh_grace.sql):
-- each refresh token names the token it replaced, so that a spent token presented again can be
-- told apart as the retry of a refresh whose answer was lost (its one successor never used)
-- rather than a copy. Tokens issued before this migration name none and get no grace.
ALTER TABLE refresh_tokens ADD COLUMN replaces BYTEA;
CREATE INDEX refresh_tokens_replaces ON refresh_tokens (replaces);
