-- The Ed25519 public key a phone generated for itself, unpadded base64url, named by the
-- offline grants central signs for it; NULL until the phone sends one. Keep in step with
-- migrations/postgres/0017_device_keys.sql.
ALTER TABLE devices ADD COLUMN public_key TEXT;
