//! `ClientError`: the one flat error enum every exported call returns, each variant carrying a
//! message for people (the app shows it or maps the variant to its own text).

/// Why a call of the field client failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum ClientError {
    /// No connection, a timeout, or the server failing or unavailable (HTTP 5xx, say its disk is
    /// full); nothing was lost, sync again later.
    #[error("network: {0}")]
    Network(String),
    /// The server answered something this client does not understand.
    #[error("server: {0}")]
    Server(String),
    /// Not logged in, wrong password, the session ended or the account is disabled: log in again.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The server cut this device off; the local data has been wiped.
    #[error("device revoked: {0}")]
    DeviceRevoked(String),
    /// The phone was handed in: it delivered everything it held, then wiped its data.
    #[error("device retired: {0}")]
    DeviceRetired(String),
    /// The phone is being handed in, but holds work the server refused: fix or discard those
    /// reports (the stuck-report calls), then sync again. Nothing was wiped.
    #[error("device retiring: {0}")]
    DeviceRetiring(String),
    /// A value does not fit its field.
    #[error("validation: {0}")]
    Validation(String),
    /// The server would refuse this at every push, so the phone does not write it. The message
    /// starts with the server's stable code and a colon: `invalid_text` (a NUL character),
    /// `unknown_grid` or `out_of_scope` (a grid this user may not report in).
    #[error("refused: {0}")]
    Refused(String),
    /// The local database failed.
    #[error("storage: {0}")]
    Storage(String),
    /// The key passed in does not open this database.
    #[error("wrong key: {0}")]
    WrongKey(String),
    /// No such report, log entry, kind or field.
    #[error("not found: {0}")]
    NotFound(String),
    /// A call that cannot be carried out as asked (a bad argument, a malformed value).
    #[error("invalid: {0}")]
    Invalid(String),
    /// Another user tried to log in while the phone holds the last user's unsent work: nothing
    /// was wiped or mixed; the last user must log in and sync first.
    #[error("unsent work: {0}")]
    UnsentWork(String),
    /// Another `FieldClient`, in this process or another, has this data folder open.
    #[error("in use: {0}")]
    InUse(String),
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

impl From<rusqlite::Error> for ClientError {
    fn from(e: rusqlite::Error) -> Self {
        ClientError::Storage(e.to_string())
    }
}

impl From<gridsync_core::Error> for ClientError {
    fn from(e: gridsync_core::Error) -> Self {
        match e {
            gridsync_core::Error::NoSuchLogEntry(_) | gridsync_core::Error::NoSuchAttachment(_) => {
                ClientError::NotFound(e.to_string())
            }
            gridsync_core::Error::ReservedKey(_)
            | gridsync_core::Error::NotRemoved(_)
            | gridsync_core::Error::BadPath(_)
            | gridsync_core::Error::InvalidAttachment(_) => ClientError::Invalid(e.to_string()),
            other => ClientError::Storage(other.to_string()),
        }
    }
}
