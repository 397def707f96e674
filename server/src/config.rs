//! Settings of the HTTP API that hold for the life of the process: token names and lifetimes,
//! login limits, trusted proxies. Built once at start-up and shared through `AppState`.

use std::time::Duration;

use crate::auth::client_addr::TrustedProxies;

#[derive(Debug, Clone)]
pub struct Config {
    /// `iss` of the access tokens this server issues and accepts.
    pub issuer: String,
    /// `aud` of the access tokens this server issues and accepts.
    pub audience: String,
    /// Access tokens are short-lived, though nothing waits for them to expire: the extractor
    /// refuses a revoked device, a disabled user and an ended session (logout, a password
    /// change) at the next request.
    pub access_ttl: Duration,
    /// A phone may stay offline for weeks; its refresh token must outlive that.
    pub refresh_ttl: Duration,
    /// How long a phone's offline grant lets it in at a village office hub without central.
    pub offline_grant_ttl: Duration,
    /// Failed logins allowed per client address within `login_window`, and per account before
    /// its attempts from new devices wait (from `login_window / 16`, doubling up to
    /// `login_window`; see `auth::rate_limit`).
    pub login_max_failures: u32,
    pub login_window: Duration,
    /// Reverse proxies whose `X-Forwarded-For` names the client; empty: the TCP peer is.
    pub trusted_proxies: TrustedProxies,
    /// SHA-256 of the bearer token `GET /metrics` requires; `None` serves it to anyone who can
    /// reach the server (it holds counts and timings, no personal data).
    pub metrics_token_sha256: Option<[u8; 32]>,
    /// How often `/api/v1/live` pings its clients (keeping proxies from closing an idle
    /// connection) and checks again that the caller's account and device are still good.
    pub live_ping: Duration,
    /// Bytes of sync work in flight across all requests (`sync::Budget`).
    pub sync_budget_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            issuer: "gridsync".into(),
            audience: "gridsync-api".into(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(60 * 24 * 60 * 60),
            offline_grant_ttl: Duration::from_secs(14 * 24 * 60 * 60),
            login_max_failures: 5,
            login_window: Duration::from_secs(15 * 60),
            trusted_proxies: TrustedProxies::default(),
            metrics_token_sha256: None,
            live_ping: Duration::from_secs(30),
            sync_budget_bytes: crate::sync::budget::DEFAULT_BYTES,
        }
    }
}

/// Largest attachment (photo, audio, document) the server stores, in bytes: the largest any
/// schema may allow.
pub const MAX_ATTACHMENT_BYTES: i64 = gridsync_core::attachment::MAX_SIZE as i64;

/// The media types an attachment may have: those any schema may allow.
pub const ATTACHMENT_MEDIA_TYPES: [&str; 6] = gridsync_core::attachment::MEDIA_TYPES;

/// How long an upload may rest untouched, and an unlinked blob stay stored, before
/// [`crate::store::Store::collect_orphans`] deletes them.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// How often `gridsync serve` collects orphaned blobs and abandoned uploads.
pub const ORPHAN_COLLECTION_EVERY: Duration = Duration::from_secs(60 * 60);
