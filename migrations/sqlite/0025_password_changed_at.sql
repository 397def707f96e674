-- When the user's password was last changed or reset. Offline grants issued before then are
-- refused at the hubs (the revocation list carries it), as central ends the user's other
-- sessions at the change: someone who knew the old password keeps no way in through a hub.
ALTER TABLE users ADD COLUMN password_changed_at BIGINT;
