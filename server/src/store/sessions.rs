//! Sessions (the refresh-token families a login starts): whether one is alive, in SQL written
//! once for both databases (`$N` placeholders, which sqlx binds alike on SQLite and Postgres).

/// Whether session `$1` of device `$2` still holds a refresh token: checked with every access
/// token, so one lookup in the index `refresh_tokens_family`. Logout, a reused refresh token,
/// a password change and revoking the device all delete the tokens, so each ends the session
/// at once.
pub(crate) const LIVE: &str =
    "SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE family = $1 AND device_id = $2)";
