//! The frame around every message: header, optional zstd compression of the body, and decoding
//! that is bounded before it allocates.

use minicbor::{Decode, Encode};

use super::PROTOCOL_VERSION;
use super::limits::{DecodeError, Limits};

const MAGIC: [u8; 2] = *b"GS";
const HEADER_LEN: usize = 5;
const FLAG_ZSTD: u8 = 0b0000_0001;
/// Below this a zstd frame's own header (about a dozen bytes) eats most of any saving.
const COMPRESS_ABOVE: usize = 256;
const ZSTD_LEVEL: i32 = 3;

pub(super) mod sealed {
    /// Keeps the set of message kinds owned by this module.
    pub trait Sealed {}
}

/// One of the sync messages, with its kind byte in the frame header.
pub trait Message: sealed::Sealed + Encode<()> + for<'b> Decode<'b, ()> + Sized {
    /// Frame header byte 3.
    const KIND: u8;

    /// Checks every count and size against `limits`; the decoder calls this, and a sender may
    /// call it before sending to avoid a round trip that the other side would refuse.
    fn check_limits(&self, limits: &Limits) -> Result<(), DecodeError>;
}

/// Encodes `msg` as a frame, compressing the body when that pays.
pub fn encode<M: Message>(msg: &M) -> Vec<u8> {
    let mut body = Vec::new();
    // Writing to a Vec cannot fail and no Encode impl of ours returns an error of its own, so
    // the only error minicbor could report here does not exist.
    minicbor::encode(msg, &mut body).expect("CBOR encoding into a Vec is infallible");
    let (flags, body) = match compress(&body) {
        Some(compressed) => (FLAG_ZSTD, compressed),
        None => (0, body),
    };
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    frame.extend_from_slice(&[MAGIC[0], MAGIC[1], PROTOCOL_VERSION, M::KIND, flags]);
    frame.extend_from_slice(&body);
    frame
}

/// The zstd form of `body` when it is worth sending instead.
fn compress(body: &[u8]) -> Option<Vec<u8>> {
    if body.len() <= COMPRESS_ABOVE {
        return None;
    }
    // A failure here (out of memory in zstd) just means sending the body as it is.
    zstd::bulk::compress(body, ZSTD_LEVEL)
        .ok()
        .filter(|compressed| compressed.len() < body.len())
}

/// Decodes a frame holding an `M`, within [`Limits::DEFAULT`].
pub fn decode<M: Message>(bytes: &[u8]) -> Result<M, DecodeError> {
    decode_with_limits(bytes, &Limits::DEFAULT)
}

/// Decodes a frame holding an `M`, failing with a typed error on anything else, anything
/// malformed and anything over `limits`.
pub fn decode_with_limits<M: Message>(bytes: &[u8], limits: &Limits) -> Result<M, DecodeError> {
    if bytes.len() > limits.max_frame_bytes {
        return Err(DecodeError::FrameTooLarge {
            len: bytes.len(),
            limit: limits.max_frame_bytes,
        });
    }
    let Some(([m0, m1, version, kind, flags], body)) = bytes.split_first_chunk::<HEADER_LEN>()
    else {
        return Err(DecodeError::TooShort);
    };
    if [*m0, *m1] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if *version != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion(*version));
    }
    if *kind != M::KIND {
        return Err(DecodeError::WrongKind {
            expected: M::KIND,
            found: *kind,
        });
    }
    if flags & !FLAG_ZSTD != 0 {
        return Err(DecodeError::UnknownFlags(*flags));
    }

    let decompressed;
    let body = if flags & FLAG_ZSTD != 0 {
        decompressed = decompress(body, limits.max_body_bytes)?;
        decompressed.as_slice()
    } else if body.len() > limits.max_body_bytes {
        return Err(DecodeError::BodyTooLarge {
            limit: limits.max_body_bytes,
        });
    } else {
        body
    };

    let mut decoder = minicbor::Decoder::new(body);
    let msg =
        M::decode(&mut decoder, &mut ()).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if decoder.position() != body.len() {
        return Err(DecodeError::TrailingBytes);
    }
    msg.check_limits(limits)?;
    Ok(msg)
}

/// Decompresses a body that must be one zstd frame recording a content size of at most `limit`.
///
/// Trusting the declared size for the allocation is safe: it is checked against `limit` first,
/// and zstd fails (rather than writing past it or reallocating) when the content is longer, and
/// verifies that it is not shorter. One-shot decompression also needs no window buffer, so a
/// frame cannot make zstd allocate one of its choosing.
fn decompress(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let malformed = |what: &str| DecodeError::Decompress(what.to_owned());
    let declared = zstd::zstd_safe::get_frame_content_size(body)
        .map_err(|_| malformed("not a zstd frame"))?
        .ok_or_else(|| malformed("the zstd frame does not record its content size"))?;
    let declared = usize::try_from(declared)
        .ok()
        .filter(|&declared| declared <= limit)
        .ok_or(DecodeError::BodyTooLarge { limit })?;
    // A second frame could add content the first frame's size does not account for.
    let frame_len = zstd::zstd_safe::find_frame_compressed_size(body)
        .map_err(|_| malformed("truncated or corrupt zstd frame"))?;
    if frame_len != body.len() {
        return Err(malformed("data after the zstd frame"));
    }
    zstd::bulk::decompress(body, declared).map_err(|e| DecodeError::Decompress(e.to_string()))
}
