//! Serving one page of a pull from stored bytes: which documents, which body for each, the byte
//! budget, resends, evictions and the digest, over the store's reads in one read transaction.
//!
//! A scope's feed is ordered by server sequence and holds two kinds of entries: documents (at
//! their latest change) and exits (a document leaving the scope, at the change that moved it).
//! A page walks both in sequence order, so the position covers evictions as it covers changes.

use std::collections::{HashMap, HashSet};

use gridsync_core::DocId;
use gridsync_core::protocol::{Digest, Hash, Pull, PullBody, PullDoc, PullResult, listed_heads};

use crate::scope::Scope;
use crate::store::statements::{PageDoc, PulledChange};
use crate::store::{Result, Store, Tx};

/// How many documents one page lists before the byte budget is applied.
pub const PAGE_DOCS: i64 = 500;

/// Serves one page of `pull` for a caller with `scope`, pulling from `device`, from stored
/// bytes, without loading any automerge document: the reads run in one read transaction, so a
/// page and its digest describe the same moment.
pub async fn pull(
    store: &dyn Store,
    scope: &Scope,
    device: Option<&str>,
    pull: &Pull,
) -> Result<PullResult> {
    let (mut tx, last_seq) = store.begin_pull().await?;
    let result = pull_page(&mut tx, last_seq, scope, device, pull).await?;
    tx.commit().await?;
    if let Some(device) = device.filter(|_| pull.after <= pull.since) {
        // The first page of a pull shows what the device holds; that bounds pruning.
        store.set_device_cursor(device, to_seq(pull.since)).await?;
    }
    Ok(result)
}

/// What to send for one document.
#[derive(Debug)]
enum Body {
    /// The stored snapshot followed by the changes after it.
    Snapshot,
    /// Changes, with the heads to list beside them (none when they are all among the changes).
    Changes {
        changes: Vec<Vec<u8>>,
        heads: Vec<Hash>,
    },
    /// Everything new is the caller's own; its push ack already told it the heads.
    Skip,
    /// A client that holds nothing from this server yet, but wrote these heads itself: they
    /// alone, and it asks for the document whole if it no longer holds it.
    Heads(Vec<Hash>),
}

/// Answers one page of `pull` for a caller with `scope`, pulling from `device`. `reads` holds
/// every change up to `last_seq`, and maybe some committed after it while changes below it
/// were not yet: the page goes no further than `last_seq`.
async fn pull_page(
    reads: &mut Tx,
    last_seq: i64,
    scope: &Scope,
    device: Option<&str>,
    pull: &Pull,
) -> Result<PullResult> {
    let since = to_seq(pull.since);
    let after = to_seq(pull.after).max(since);
    if since > last_seq {
        // The client has seen sequence numbers this database never gave out: it was restored
        // from a backup. An `after` below `since` tells the client to start again from there.
        return Ok(PullResult {
            docs: Vec::new(),
            evicted: Vec::new(),
            after: 0,
            more: true,
            digest: [0; 16],
            rescoped: false,
            catalogue: 0,
        });
    }
    // A client that holds nothing, or whose changes may have been pruned, gets snapshots.
    let full = since == 0 || since < reads.horizon().await?;
    // The client's budget, within what the server holds for one page (`budget::MAX_PAGE_BYTES`).
    let budget = pull.byte_budget.min(super::budget::MAX_PAGE_BYTES) as usize;
    let mut page = Page::default();

    for id in &pull.resend {
        if page.full(budget) {
            page.more = true;
            break;
        }
        match reads.scoped_doc(scope, id).await? {
            Some((doc, snapshot)) => {
                let changes = reads.changes_after(id, doc.snapshot_seq).await?;
                page.push(&doc, snapshot_body(snapshot, &changes), Vec::new());
            }
            // Out of scope (moved, reassigned) or unknown: the client should not hold it.
            None => page.evicted.push(*id),
        }
    }

    let mut position = after;
    if !page.more {
        let listed = reads.page(scope, after, PAGE_DOCS).await?;
        let exits = reads.exits(scope, after, PAGE_DOCS).await?;
        // Past the last entry of a full list there may be more of its kind, so neither list is
        // followed beyond it. Nor is either followed past `last_seq`: an entry after it was
        // committed while a lower number may still have been in flight, and comes in a later
        // page, after the pull has waited for it.
        let beyond = listed.last().is_some_and(|d| d.seq > last_seq)
            || exits.last().is_some_and(|e| e.1 > last_seq);
        let bound = [
            listed
                .last()
                .map(|d| d.seq)
                .filter(|_| listed.len() as i64 == PAGE_DOCS),
            exits
                .last()
                .map(|e| e.1)
                .filter(|_| exits.len() as i64 == PAGE_DOCS),
            Some(last_seq).filter(|_| beyond),
        ]
        .into_iter()
        .flatten()
        .min();
        page.more = bound.is_some();
        let bound = bound.unwrap_or(i64::MAX);
        let mut exits = exits.into_iter().filter(|e| e.1 <= bound).peekable();
        let mut by_doc: HashMap<DocId, Vec<PulledChange>> = HashMap::new();
        let own = match device {
            Some(device) if full && pull.takes_heads && !listed.is_empty() => {
                let ids: Vec<DocId> = listed.iter().map(|d| d.id).collect();
                let heads: Vec<Hash> = listed.iter().flat_map(|d| split_heads(&d.heads)).collect();
                reads.device_changes(&ids, &heads, device).await?
            }
            _ => HashSet::new(),
        };
        if let Some(last) = listed.last() {
            let rows = reads
                .page_changes(scope, after, last.seq, (!full).then_some(since))
                .await?;
            for (id, change) in rows {
                by_doc.entry(id).or_default().push(change);
            }
        }
        let mut stopped = false;
        for doc in listed.iter().filter(|d| d.seq <= bound) {
            while let Some((id, seq)) = exits.next_if(|e| e.1 < doc.seq) {
                page.evicted.push(id);
                position = seq;
            }
            if page.full(budget) {
                stopped = true;
                break;
            }
            let changes = by_doc.remove(&doc.id).unwrap_or_default();
            position = doc.seq;
            match choose_body(doc, full, &changes, device, &own) {
                Body::Skip => {}
                Body::Heads(heads) => page.push(doc, PullBody::Changes(Vec::new()), heads),
                Body::Changes { changes, heads } => {
                    page.push(doc, PullBody::Changes(changes), heads)
                }
                Body::Snapshot => {
                    let after_snapshot = if full {
                        changes
                    } else {
                        reads.changes_after(&doc.id, doc.snapshot_seq).await?
                    };
                    page.push_pending_snapshot(doc, after_snapshot);
                }
            }
        }
        // The page's snapshots in one read rather than one per document.
        if !page.pending.is_empty() {
            let ids: Vec<DocId> = page.pending.iter().map(|p| p.doc).collect();
            let mut snapshots = reads.snapshots(&ids).await?;
            for pending in std::mem::take(&mut page.pending) {
                let snapshot = snapshots.remove(&pending.doc).unwrap_or_default();
                page.docs[pending.index].body = snapshot_body(snapshot, &pending.changes);
            }
        }
        if stopped {
            page.more = true;
        } else {
            for (id, seq) in exits {
                page.evicted.push(id);
                position = seq;
            }
        }
    }

    let digest = if page.more {
        [0; 16]
    } else {
        // This read saw every commit up to `last_seq` and nothing after it, and the pull has
        // now been through everything in the scope up to there.
        position = position.max(last_seq);
        digest(&reads.scope_heads(scope).await?)
    };
    Ok(PullResult {
        docs: page.docs,
        evicted: page.evicted,
        after: u64::try_from(position).unwrap_or(0),
        more: page.more,
        digest,
        rescoped: false,
        catalogue: 0,
    })
}

/// Sequences are unsigned on the wire and signed in SQL; anything past `i64::MAX` is past
/// every stored sequence.
fn to_seq(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[derive(Default)]
struct Page {
    docs: Vec<PullDoc>,
    evicted: Vec<DocId>,
    bytes: usize,
    more: bool,
    /// Entries of `docs` whose snapshot is still to be read.
    pending: Vec<PendingSnapshot>,
}

struct PendingSnapshot {
    index: usize,
    doc: DocId,
    /// The changes after the snapshot, which follow it in the body.
    changes: Vec<PulledChange>,
}

impl Page {
    /// Whether the budget is spent; a page always takes at least one document, so any
    /// document can be pulled whatever its size.
    fn full(&self, budget: usize) -> bool {
        !self.docs.is_empty() && self.bytes >= budget
    }

    /// Reserves a snapshot body, counting its stored size against the budget.
    fn push_pending_snapshot(&mut self, doc: &PageDoc, changes: Vec<PulledChange>) {
        let changes: Vec<PulledChange> = changes
            .into_iter()
            .filter(|c| c.seq > doc.snapshot_seq)
            .collect();
        self.bytes +=
            doc.snapshot_len as usize + changes.iter().map(|c| c.bytes.len()).sum::<usize>();
        self.pending.push(PendingSnapshot {
            index: self.docs.len(),
            doc: doc.id,
            changes,
        });
        self.push(doc, PullBody::Changes(Vec::new()), Vec::new());
    }

    /// Adds a document; a snapshot lists no heads, since the client reads them off it.
    fn push(&mut self, doc: &PageDoc, body: PullBody, heads: Vec<Hash>) {
        self.bytes += match &body {
            PullBody::Snapshot(s) => s.len(),
            PullBody::Changes(c) => c.iter().map(Vec::len).sum(),
        };
        self.docs.push(PullDoc {
            doc: doc.id,
            heads,
            body,
        });
    }
}

/// Chooses changes past the cursor, or the snapshot when the client has nothing of the
/// document yet (`full`) or the changes would outweigh the snapshot; in a pull from zero, the
/// heads alone when they are all among `own`, those of the listed heads the caller's device
/// pushed.
fn choose_body(
    doc: &PageDoc,
    full: bool,
    changes: &[PulledChange],
    device: Option<&str>,
    own: &HashSet<Hash>,
) -> Body {
    if full {
        let heads = split_heads(&doc.heads);
        if !heads.is_empty() && heads.iter().all(|h| own.contains(h)) {
            return Body::Heads(heads);
        }
        return Body::Snapshot;
    }
    let theirs: Vec<&PulledChange> = changes
        .iter()
        .filter(|c| device.is_none() || c.device_id.as_deref() != device)
        .collect();
    if theirs.is_empty() {
        return Body::Skip;
    }
    let delta: i64 = theirs.iter().map(|c| c.bytes.len() as i64).sum();
    if delta > doc.snapshot_len + doc.incremental_bytes {
        return Body::Snapshot;
    }
    Body::Changes {
        heads: listed_heads(
            split_heads(&doc.heads),
            theirs.iter().map(|c| c.hash.as_slice()),
        ),
        changes: theirs.into_iter().map(|c| c.bytes.clone()).collect(),
    }
}

/// A snapshot body: automerge loads a saved document followed by raw changes as one document.
/// `changes` are those after the snapshot.
fn snapshot_body(snapshot: Vec<u8>, changes: &[PulledChange]) -> PullBody {
    let mut bytes = snapshot;
    for c in changes {
        bytes.extend_from_slice(&c.bytes);
    }
    PullBody::Snapshot(bytes)
}

/// Stored heads are 32-byte hashes back to back.
fn split_heads(bytes: &[u8]) -> Vec<Hash> {
    bytes
        .chunks_exact(32)
        .filter_map(|c| c.try_into().ok())
        .collect()
}

/// The scope digest over stored (document id, heads) rows.
fn digest(rows: &[(DocId, Vec<u8>)]) -> Digest {
    let parsed: Vec<(DocId, Vec<Hash>)> = rows
        .iter()
        .map(|(id, heads)| (*id, split_heads(heads)))
        .collect();
    gridsync_core::protocol::scope_digest(parsed.iter().map(|(id, h)| (*id, h.as_slice())))
}
