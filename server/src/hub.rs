//! The village office hub: the same binary on the office PC (`gridsync hub`), which serves the
//! phones of one village or community on the office network while central is out of reach, and
//! relays upward whenever central answers. It holds no key that can mint tokens: phones come in
//! with the offline grants central signed, and what it relays stands on the phones' own
//! signatures (`gridsync_core::attest`), which central checks.

pub mod central;
pub mod identity;
pub mod phones;
pub mod sealing;
pub mod tls;
pub mod trust;
pub mod upward;

use std::path::PathBuf;

use crate::store::StoreError;

/// What can go wrong in a hub, in enrolling or in its contact with central.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// No answer from central: the network, DNS or TLS.
    #[error("central at {url} cannot be reached: {reason}")]
    Unreachable { url: String, reason: String },
    /// Central answered with a problem.
    #[error("central refused ({status} {code}): {detail}")]
    Refused {
        status: u16,
        code: String,
        detail: String,
    },
    /// Central answered, but not with what this hub expects of it.
    #[error("central's answer makes no sense: {0}")]
    BadAnswer(String),
    #[error("{0} holds no hub: enrol it first (gridsync hub enrol)")]
    NotEnrolled(PathBuf),
    #[error("{0} is enrolled already; a hub enrols once (use a new folder for a new hub)")]
    AlreadyEnrolled(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    /// The hub's TLS configuration could not be made from its key.
    #[error("the hub's TLS: {0}")]
    Tls(String),
    /// An admin revoked this hub: it serves no phone and relays nothing more.
    #[error("the server has revoked this hub; enrol the office PC again if it should serve")]
    Revoked,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
}

pub type Result<T, E = HubError> = std::result::Result<T, E>;

/// What a running hub shares between its phone-facing API and its contact with central.
#[derive(Clone)]
pub struct HubState {
    pub identity: std::sync::Arc<identity::Identity>,
    pub store: std::sync::Arc<dyn crate::store::Store>,
    pub ingest: crate::sync::Ingest,
    pub trust: std::sync::Arc<trust::Trust>,
    pub central: central::Central,
    pub sessions: std::sync::Arc<phones::Sessions>,
    /// Prompts a contact with central (after a phone pushed).
    pub poke: std::sync::Arc<tokio::sync::Notify>,
}
