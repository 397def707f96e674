//! Sessions (the refresh-token families a login starts): whether one is alive, and ending a
//! user's sessions, in SQL written once for both databases (`$N` placeholders, which sqlx binds
//! alike on SQLite and Postgres).

/// Whether session `$1` of device `$2` still holds a refresh token: checked with every access
/// token, so one lookup in the index `refresh_tokens_family`. Logout, a reused refresh token,
/// a password change and revoking the device all delete the tokens, so each ends the session
/// at once.
pub(crate) const LIVE: &str =
    "SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE family = $1 AND device_id = $2)";

/// Ends every session of user `$1` but session `$2` (none when null), on all their devices;
/// the devices stay, so each may log in again. A retiring phone keeps its session: it may only
/// deliver what it holds, and a disabled user could not log it in again to do so.
pub(crate) const END_OF_USER: &str = "DELETE FROM refresh_tokens \
     WHERE device_id IN (SELECT id FROM devices WHERE user_id = $1 AND retiring_at IS NULL) \
     AND ($2 IS NULL OR family <> $2) RETURNING family, expires_at";

/// A refresh token [`END_OF_USER`] deleted.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Dropped {
    family: String,
    expires_at: i64,
}

/// How many sessions the `dropped` tokens kept alive at `now`: those with a token not yet
/// expired (a session whose tokens all expired had ended already).
pub(crate) fn ended(dropped: &[Dropped], now: i64) -> u64 {
    let mut live: Vec<&str> = dropped
        .iter()
        .filter(|t| t.expires_at > now)
        .map(|t| t.family.as_str())
        .collect();
    live.sort_unstable();
    live.dedup();
    live.len() as u64
}
