//! Gridsync's sync engine: report schemas, one automerge document per report, conflicts, the
//! sync protocol and the client replica. It performs no I/O, so the server and the phone library
//! share every rule about what a report is and how it merges.

pub mod attachment;
pub mod attest;
pub mod conflict;
pub mod history;
pub mod ingest;
pub mod protocol;
pub mod replica;
pub mod report;
pub mod schema;
pub mod signed;
pub mod task;
pub mod time;

/// A report's id; also the id of its automerge document.
pub type DocId = uuid::Uuid;

/// Errors of report documents and their changes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("automerge: {0}")]
    Automerge(String),
    #[error("invalid change: {0}")]
    InvalidChange(String),
    #[error("not a report document: {0}")]
    NotAReport(&'static str),
    #[error("no log entry with id {0}")]
    NoSuchLogEntry(String),
    #[error("log entry {0} is not removed")]
    NotRemoved(String),
    #[error("`{0}` is maintained by the document and cannot be written")]
    ReservedKey(String),
    #[error("invalid attachment: {0}")]
    InvalidAttachment(String),
    #[error("no attachment {0} on this report")]
    NoSuchAttachment(String),
    #[error("not a field path: {0} (expected fields.NAME or log[ENTRY].NAME)")]
    BadPath(String),
    /// A replica's loader could not bring a parked document back.
    #[error("cannot load document {0}: {1}")]
    Load(DocId, String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
