//! Authentication: argon2id passwords, EdDSA access tokens signed with keys kept in the database,
//! offline grants for village office hubs and the tokens hubs sign themselves, rotating refresh tokens, login rate limiting behind
//! trusted proxies, the first-start admin,
//! and the `Caller` extractor that turns a bearer token into a user, a device and a scope.

pub mod bootstrap;
pub mod caller;
pub mod client_addr;
pub mod grant;
pub mod hub;
pub mod password;
pub mod rate_limit;
pub mod refresh;
pub mod secret;
pub mod token;

pub use caller::Caller;

use crate::store::StoreError;

/// Failures of the authentication machinery itself (not of a caller's credentials, which are
/// `ApiError`s): all of them are the server's fault.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("password hashing failed: {0}")]
    Password(String),
    #[error("token signing failed: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    /// A stored key that is not a 32-byte Ed25519 seed: the database was altered by hand.
    #[error("signing key {0} is not an Ed25519 key")]
    BadSigningKey(String),
    #[error("the system's random source failed: {0}")]
    Random(#[from] getrandom::Error),
}

pub type Result<T, E = AuthError> = std::result::Result<T, E>;
