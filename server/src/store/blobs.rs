//! Blob bytes stored as pieces: cutting a chunk into pieces, reading a range back, and hashing
//! an upload piece by piece.

use super::{BLOB_PIECE_BYTES, Result, StoreError};

/// `bytes` cut at `offset` into the pieces stored as rows: (position in the blob, piece).
pub(crate) fn pieces(offset: i64, bytes: &[u8]) -> impl Iterator<Item = (i64, &[u8])> {
    bytes
        .chunks(BLOB_PIECE_BYTES)
        .enumerate()
        .map(move |(i, piece)| (offset + (i * BLOB_PIECE_BYTES) as i64, piece))
}

/// A stored piece of a blob or an upload, at its position in the whole.
#[derive(sqlx::FromRow)]
pub(crate) struct Piece {
    pub pos: i64,
    pub bytes: Vec<u8>,
}

/// Bytes `start..end` of a blob from its pieces that overlap that range, in order.
pub(crate) fn cut_range(pieces: Vec<Piece>, start: i64, end: i64) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0));
    let mut at = start;
    for Piece { pos, bytes } in pieces {
        let piece_end = pos + bytes.len() as i64;
        if pos > at || piece_end <= at {
            return Err(StoreError::Corrupt(format!(
                "blob piece at {pos}, wanted {at}"
            )));
        }
        let from = usize::try_from(at - pos).unwrap_or(0);
        let to = usize::try_from(end.min(piece_end) - pos).unwrap_or(0);
        out.extend_from_slice(&bytes[from..to]);
        at = end.min(piece_end);
        if at == end {
            break;
        }
    }
    if at != end {
        return Err(StoreError::Corrupt(format!(
            "blob ends at {at}, wanted {end}"
        )));
    }
    Ok(out)
}

/// The sha256 of an upload's pieces fed in order, checking that they follow each other.
pub(crate) struct PieceHasher {
    hasher: sha2::Sha256,
    pub(crate) next: i64,
}

impl PieceHasher {
    pub(crate) fn new() -> Self {
        use sha2::Digest;
        PieceHasher {
            hasher: sha2::Sha256::new(),
            next: 0,
        }
    }

    pub(crate) fn feed(&mut self, pos: i64, bytes: &[u8]) -> Result<()> {
        use sha2::Digest;
        if pos != self.next {
            return Err(StoreError::Corrupt(format!(
                "upload piece at {pos}, wanted {}",
                self.next
            )));
        }
        self.hasher.update(bytes);
        self.next += bytes.len() as i64;
        Ok(())
    }

    pub(crate) fn finish(self) -> String {
        use sha2::Digest;
        hex::encode(self.hasher.finalize())
    }
}
