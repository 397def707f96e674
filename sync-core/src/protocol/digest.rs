//! Digests of (doc id, heads) that let a client and the server see whether they hold the same
//! documents at the same heads without exchanging them.

use sha2::{Digest as _, Sha256};

use super::{Digest, DocId, Hash};

/// sha256 of the doc id's 16 bytes followed by its heads sorted ascending, so the order in which
/// automerge happens to list heads does not matter.
pub fn doc_digest(doc: DocId, heads: &[Hash]) -> Hash {
    let mut sorted = heads.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha256::new();
    hasher.update(doc.as_bytes());
    for head in &sorted {
        hasher.update(head);
    }
    hasher.finalize().into()
}

/// XOR of the first 16 bytes of [`doc_digest`] over `docs`; all zeros for an empty scope.
///
/// XOR makes the result independent of order and incremental: the server updates a scope's
/// digest when one document's heads move by XOR-ing out the old doc digest and in the new one,
/// and the client computes the same value over its local documents. A document listed twice
/// cancels itself out, so callers list each document once.
pub fn scope_digest<'a>(docs: impl IntoIterator<Item = (DocId, &'a [Hash])>) -> Digest {
    docs.into_iter().fold([0; 16], |mut acc, (doc, heads)| {
        for (a, d) in acc.iter_mut().zip(doc_digest(doc, heads)) {
            *a ^= d;
        }
        acc
    })
}
