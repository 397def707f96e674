//! minicbor `with` modules for the protocol's doc ids, hashes and lists of raw byte strings, which
//! CBOR must carry as byte strings rather than as arrays of small integers.
//!
//! Why decoding allocates nothing from a length the sender declared (checked against
//! minicbor 2.3.1's source):
//! - `Decoder::bytes` reads the length, then `read_slice` borrows that many bytes from the input
//!   or fails with end-of-input; only the copy into a `Vec<u8>` allocates, and only for bytes
//!   that are really present.
//! - `Vec<T>::decode` starts from `Vec::new()` and pushes one decoded element at a time. It never
//!   calls `with_capacity` with the array's declared length, and it does not `collect()` the
//!   `ArrayIter`, whose `size_hint` *is* the declared length. Every element consumes at least
//!   one input byte or fails, so a huge declared length just runs out of input.
//! - The derived struct and enum decoders loop over the declared field count the same way and
//!   skip unknown elements with `Decoder::skip`, which is iterative and also consumes input.
//!
//! So allocations grow with the body, which the frame decoder has already bounded by
//! `Limits::max_body_bytes`. The worst constant factor is a list of empty byte strings: one input
//! byte becomes a 24-byte `Vec` (48 with the outer `Vec`'s doubling slack).
//!
//! Never decode a list here by collecting a minicbor iterator: that would reserve the declared
//! length up front.

use minicbor::Decode;
use minicbor::bytes::{ByteArray, ByteVec};
use minicbor::decode::{self, Decoder};
use minicbor::encode::{self, Encoder, Write};

use super::{DocId, Hash};

/// Writes `items` as a CBOR array of byte strings.
fn encode_byte_strings<'a, W: Write>(
    items: impl ExactSizeIterator<Item = &'a [u8]>,
    e: &mut Encoder<W>,
) -> Result<(), encode::Error<W::Error>> {
    e.array(items.len() as u64)?;
    for item in items {
        e.bytes(item)?;
    }
    Ok(())
}

/// A [`DocId`] as a 16-byte byte string.
pub(super) mod doc_id {
    use super::*;

    pub(in crate::protocol) fn encode<Ctx, W: Write>(
        doc: &DocId,
        e: &mut Encoder<W>,
        _: &mut Ctx,
    ) -> Result<(), encode::Error<W::Error>> {
        e.bytes(doc.as_bytes())?.ok()
    }

    pub(in crate::protocol) fn decode<Ctx>(
        d: &mut Decoder<'_>,
        ctx: &mut Ctx,
    ) -> Result<DocId, decode::Error> {
        ByteArray::<16>::decode(d, ctx).map(|bytes| DocId::from_bytes(bytes.into()))
    }
}

/// A list of [`DocId`]s as an array of 16-byte byte strings.
pub(super) mod doc_ids {
    use super::*;

    pub(in crate::protocol) fn encode<Ctx, W: Write>(
        docs: &[DocId],
        e: &mut Encoder<W>,
        _: &mut Ctx,
    ) -> Result<(), encode::Error<W::Error>> {
        encode_byte_strings(docs.iter().map(|doc| doc.as_bytes().as_slice()), e)
    }

    pub(in crate::protocol) fn decode<Ctx>(
        d: &mut Decoder<'_>,
        ctx: &mut Ctx,
    ) -> Result<Vec<DocId>, decode::Error> {
        let docs = Vec::<ByteArray<16>>::decode(d, ctx)?;
        Ok(docs
            .into_iter()
            .map(|bytes| DocId::from_bytes(bytes.into()))
            .collect())
    }
}

/// A list of [`Hash`]es as an array of 32-byte byte strings; any other length is an error.
pub(super) mod hashes {
    use super::*;

    pub(in crate::protocol) fn encode<Ctx, W: Write>(
        hashes: &[Hash],
        e: &mut Encoder<W>,
        _: &mut Ctx,
    ) -> Result<(), encode::Error<W::Error>> {
        encode_byte_strings(hashes.iter().map(|hash| hash.as_slice()), e)
    }

    pub(in crate::protocol) fn decode<Ctx>(
        d: &mut Decoder<'_>,
        ctx: &mut Ctx,
    ) -> Result<Vec<Hash>, decode::Error> {
        let hashes = Vec::<ByteArray<32>>::decode(d, ctx)?;
        Ok(hashes.into_iter().map(Hash::from).collect())
    }
}

/// A list of raw automerge changes as an array of byte strings.
pub(super) mod byte_strings {
    use super::*;

    pub(in crate::protocol) fn encode<Ctx, W: Write>(
        items: &[Vec<u8>],
        e: &mut Encoder<W>,
        _: &mut Ctx,
    ) -> Result<(), encode::Error<W::Error>> {
        encode_byte_strings(items.iter().map(Vec::as_slice), e)
    }

    pub(in crate::protocol) fn decode<Ctx>(
        d: &mut Decoder<'_>,
        ctx: &mut Ctx,
    ) -> Result<Vec<Vec<u8>>, decode::Error> {
        let items = Vec::<ByteVec>::decode(d, ctx)?;
        Ok(items.into_iter().map(Vec::from).collect())
    }
}

/// For `skip_if`: a flag that is only written when set, so frames without it stay as they were.
pub fn is_false(flag: &bool) -> bool {
    !*flag
}

/// For `skip_if`: a number that is only written when set, so frames without it stay as they were.
pub fn is_zero(n: &u64) -> bool {
    *n == 0
}
