//! What the targets share: the built-in schemas, a real report to push onto, the framing of a
//! list of byte strings in one input, and the repair of automerge chunk checksums.

use std::sync::OnceLock;

use gridsync_core::DocId;
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_core::schema::Registry;
use sha2::{Digest, Sha256};

/// The id of the fixture report, and of every document the targets make.
pub const REPORT_ID: DocId = DocId::from_u128(0x6772_6964_7379_6e63_0000_0000_0000_0001);

/// The user who wrote the fixture report, and who pushes unless an input says otherwise.
pub const AUTHOR: &str = "worker-1";

/// Another user of the same grid.
pub const OTHER_USER: &str = "worker-2";

/// The kind of the fixture report.
pub const KIND: &str = "dispute_check";

/// Every edit the targets make is made at this time, so that runs repeat.
pub fn editor() -> Editor {
    Editor::new(AUTHOR, 1_700_000_000)
}

pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::builtin)
}

/// The saved fixture report: a dispute check by [`AUTHOR`] in two changes, the second of them
/// setting fields and appending a log entry. `seeds.rs` writes it along with the corpus, whose
/// changes build on it.
pub const REPORT_BYTES: &[u8] = include_bytes!("../fixtures/report.automerge");

/// The fixture report, loaded.
pub fn report() -> ReportDoc {
    static REPORT: OnceLock<ReportDoc> = OnceLock::new();
    REPORT
        .get_or_init(|| {
            ReportDoc::load(REPORT_ID, REPORT_BYTES).expect("fixtures/report.automerge loads")
        })
        .clone()
}

/// Splits `data` into byte strings, each preceded by its length in two little-endian bytes; a
/// last one that claims more than is left gets what is left.
pub fn split(mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut parts = Vec::new();
    while let Some((len, rest)) = data.split_first_chunk::<2>() {
        let len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
        let (part, rest) = rest.split_at(len);
        parts.push(part.to_vec());
        data = rest;
    }
    parts
}

/// The input [`split`] reads back as `parts`.
pub fn join(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut data = Vec::new();
    for part in parts {
        let len = u16::try_from(part.len()).expect("a seed part is under 64 KiB");
        data.extend_from_slice(&len.to_le_bytes());
        data.extend_from_slice(part);
    }
    data
}

const CHUNK_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const CHUNK_DOCUMENT: u8 = 0;
const CHUNK_CHANGE: u8 = 1;

/// `chunk` with its length and checksum rewritten to fit its content when it is an
/// uncompressed automerge document or change, as a hostile peer could write them; anything
/// else unchanged. A mutated change then reaches the code behind automerge's checksum check
/// instead of stopping at it.
///
/// The chunk header is the magic bytes, four bytes of checksum (the start of the SHA-256 of the
/// type, the length and the content, which is also the change hash), the type, and the content
/// length in LEB128.
pub fn fix_checksum(chunk: &[u8]) -> Vec<u8> {
    let Some((header, rest)) = chunk.split_first_chunk::<9>() else {
        return chunk.to_vec();
    };
    let chunk_type = header[8];
    if header[..4] != CHUNK_MAGIC || ![CHUNK_DOCUMENT, CHUNK_CHANGE].contains(&chunk_type) {
        return chunk.to_vec();
    }
    let old_len = rest
        .iter()
        .position(|b| b & 0x80 == 0)
        .map_or(rest.len(), |last| last + 1);
    let content = &rest[old_len..];
    let len = leb128(content.len());
    let hash = Sha256::new()
        .chain_update([chunk_type])
        .chain_update(&len)
        .chain_update(content)
        .finalize();
    let mut fixed = Vec::with_capacity(chunk.len() + 8);
    fixed.extend_from_slice(&CHUNK_MAGIC);
    fixed.extend_from_slice(&hash[..4]);
    fixed.push(chunk_type);
    fixed.extend_from_slice(&len);
    fixed.extend_from_slice(content);
    fixed
}

fn leb128(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}
