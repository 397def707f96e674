-- Access tokens are signed with Ed25519 (EdDSA) from now on, and `secret` holds a key's 32-byte
-- private seed. The HS256 secrets stored before are deleted: the server creates an Ed25519 key
-- when it finds none, tokens the old keys signed are refused as invalid, and clients refresh
-- them as they do an expired one. Keep in step with migrations/sqlite/0016_ed25519_signing_keys.sql.
DELETE FROM signing_keys;
