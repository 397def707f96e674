//! Bounds on what a frame may make a decoder hold, and the typed errors of decoding.

/// Upper bounds checked by [`decode_with_limits`](super::decode_with_limits) and by each
/// message's [`check_limits`](super::Message::check_limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The whole frame as received, header included.
    pub max_frame_bytes: usize,
    /// The CBOR body after decompression.
    pub max_body_bytes: usize,
    /// Documents in one message, and doc ids in `Pull::resend` and `PullResult::evicted`.
    pub max_docs: usize,
    /// Changes of one document, and hashes in one `PushOutcome::MissingDeps`.
    pub max_changes_per_doc: usize,
    /// Bytes of one change.
    pub max_change_bytes: usize,
    /// Heads of one document.
    pub max_heads: usize,
    /// Bytes of one snapshot.
    pub max_snapshot_bytes: usize,
}

const MIB: usize = 1024 * 1024;

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_frame_bytes: 16 * MIB,
        max_body_bytes: 64 * MIB,
        max_docs: 10_000,
        max_changes_per_doc: 100_000,
        max_change_bytes: 4 * MIB,
        max_heads: 256,
        max_snapshot_bytes: 32 * MIB,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a frame did not decode into the expected message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame shorter than its 5-byte header")]
    TooShort,
    #[error("not a Gridsync frame (bad magic)")]
    BadMagic,
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    #[error("expected message kind {expected}, found {found}")]
    WrongKind { expected: u8, found: u8 },
    #[error("unknown flags in {0:#010b}")]
    UnknownFlags(u8),
    #[error("frame of {len} bytes exceeds the limit of {limit}")]
    FrameTooLarge { len: usize, limit: usize },
    #[error("zstd: {0}")]
    Decompress(String),
    #[error("body exceeds the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("malformed body: {0}")]
    Malformed(String),
    #[error("bytes after the end of the message")]
    TrailingBytes,
    #[error("{what} exceed the limit of {limit}")]
    LimitExceeded { what: &'static str, limit: usize },
    /// A push names one document twice; its changes belong in one entry.
    #[error("document {0} appears twice")]
    DuplicateDoc(uuid::Uuid),
}

/// Fails with [`DecodeError::LimitExceeded`] when `len` is over `limit`.
pub(super) fn at_most(what: &'static str, len: usize, limit: usize) -> Result<(), DecodeError> {
    if len > limit {
        return Err(DecodeError::LimitExceeded { what, limit });
    }
    Ok(())
}

/// Checks one document's list of raw changes, in a push or a pull.
pub(super) fn check_changes(changes: &[Vec<u8>], limits: &Limits) -> Result<(), DecodeError> {
    at_most("changes per doc", changes.len(), limits.max_changes_per_doc)?;
    changes
        .iter()
        .try_for_each(|change| at_most("change bytes", change.len(), limits.max_change_bytes))
}
