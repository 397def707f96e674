//! The client's sync state machine, without I/O: local documents, what the server has
//! acknowledged, the pull cursor; it builds pushes and pulls and applies their results.
//!
//! The cursor has two parts (see the paging notes in [`crate::protocol`]): `since`, where the
//! last complete pull ended, and `after`, the position within a pull in progress. Both are
//! persisted, so an interrupted pull resumes at its next page rather than starting over.
//!
//! There is no separate outbox list. Each document remembers the heads the server is known to
//! hold (`acked`); the outbox is every change not reachable from them. A list could disagree with
//! the documents after a crash between two writes; heads cannot, and a retried push is harmless
//! because the server skips hashes it has.
//!
//! Nothing leaves the replica while it holds undelivered changes. A document that leaves the
//! scope (evicted, or not sent again after the scope itself changed) is marked `out_of_scope`
//! and stays until every change of it is delivered: acknowledged, or taken by the server as
//! held work for the people who own the report now. [`Replica::releasable`] names what may go.
//!
//! A replica may hold documents without their bodies: a phone keeping a township's reports
//! cannot afford them all in memory. A parked document keeps its [`DocIndex`] (what the server
//! holds of it, its heads, how many changes are pending), which answers the digest, the
//! pending count and whether it has anything to push; its body comes back through the
//! [`Loader`] the replica was built with, when a push, a pull or the caller needs it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use automerge::ChangeHash;

use crate::protocol::{
    self, Digest, Hash, Pull, PullBody, PullResult, Push, PushDoc, PushOutcome, PushResult,
};
use crate::report::ReportDoc;
use crate::{DocId, Result};

/// One local document and what the server is known to hold of it.
#[derive(Debug, Clone)]
pub struct LocalDoc {
    pub doc: ReportDoc,
    /// Heads the server has acknowledged or sent; everything past them is pending.
    pub acked: Vec<ChangeHash>,
    /// Set when the server refused the document at these heads; it is not pushed again until
    /// the document changes.
    pub rejected: Option<Rejection>,
    /// Heads at which the server took the document's changes as held work: they are delivered,
    /// not pending, though the server's document does not hold them.
    pub held: Vec<ChangeHash>,
    /// The document left this client's scope while it still held undelivered changes. It stays
    /// until they are delivered (acknowledged or held), then it is released.
    pub out_of_scope: bool,
}

impl LocalDoc {
    /// A document the server has not seen.
    pub fn new(doc: ReportDoc) -> Self {
        LocalDoc {
            doc,
            acked: Vec::new(),
            rejected: None,
            held: Vec::new(),
            out_of_scope: false,
        }
    }

    /// Changes neither acknowledged nor held by the server.
    pub fn pending(&mut self) -> usize {
        let delivered: Vec<ChangeHash> = self.acked.iter().chain(&self.held).copied().collect();
        self.doc.count_changes_since(&delivered)
    }

    /// Whether the server keeps this document for someone else now: it left the scope, or it
    /// was held without the server's copy ever being this client's.
    fn outside(&self) -> bool {
        self.out_of_scope || (self.acked.is_empty() && !self.held.is_empty())
    }

    /// What is kept of this document when its body is parked.
    pub fn index(&mut self) -> DocIndex {
        DocIndex {
            acked: self.acked.clone(),
            rejected: self.rejected.clone(),
            held: self.held.clone(),
            out_of_scope: self.out_of_scope,
            heads: self.doc.heads(),
            pending: self.pending(),
        }
    }

    /// A parked document with its body back.
    pub fn unparked(doc: ReportDoc, index: DocIndex) -> Self {
        LocalDoc {
            doc,
            acked: index.acked,
            rejected: index.rejected,
            held: index.held,
            out_of_scope: index.out_of_scope,
        }
    }
}

/// What a replica keeps of a document whose body is parked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocIndex {
    pub acked: Vec<ChangeHash>,
    pub rejected: Option<Rejection>,
    pub held: Vec<ChangeHash>,
    pub out_of_scope: bool,
    /// The document's heads.
    pub heads: Vec<ChangeHash>,
    /// Changes neither acknowledged nor held.
    pub pending: usize,
}

impl DocIndex {
    fn outside(&self) -> bool {
        self.out_of_scope || (self.acked.is_empty() && !self.held.is_empty())
    }

    /// Whether [`Replica::build_push`] would send changes of this document. A head the
    /// server lacks is a change past the acknowledged heads, since no change descends from it.
    fn has_push(&self) -> bool {
        let skipped = self
            .rejected
            .as_ref()
            .is_some_and(|r| r.heads == self.heads)
            || self.held == self.heads;
        !skipped && self.heads.iter().any(|h| !self.acked.contains(h))
    }
}

/// Loads the body of a parked document from wherever the caller keeps it.
pub type Loader = Arc<dyn Fn(&DocId) -> Result<ReportDoc> + Send + Sync>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: String,
    pub reason: String,
    pub heads: Vec<ChangeHash>,
}

/// What a push result did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushSummary {
    pub acked: usize,
    pub rejected: Vec<(DocId, String, String)>,
    /// Documents whose changes the server keeps as held work, with its code and reason.
    pub held: Vec<(DocId, String, String)>,
    /// Documents the server lacked history for; they are pushed again in full.
    pub resend: usize,
}

/// What a pull result did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullSummary {
    pub docs: usize,
    /// Documents that left the scope (explicitly, or because the scope itself changed).
    pub evicted: usize,
    pub more: bool,
    /// The scope digest disagreed after the last page: the next pull starts again from zero.
    pub diverged: bool,
}

/// Where the client stands in the server's sequence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Every change up to here has been pulled.
    pub since: u64,
    /// Position within the pull in progress; equals `since` between pulls.
    pub after: u64,
}

/// The client side of sync for one user.
#[derive(Clone, Default)]
pub struct Replica {
    /// Documents with their bodies.
    docs: BTreeMap<DocId, LocalDoc>,
    /// Documents without them; a document is in one map or the other.
    parked: BTreeMap<DocId, DocIndex>,
    /// Brings parked bodies back; without one nothing is ever parked.
    loader: Option<Loader>,
    cursor: Cursor,
    /// Documents to ask for as full snapshots, because changes arrived without their history.
    resend: BTreeSet<DocId>,
    /// Heads of each document at the time its changes went into the push in flight.
    in_flight: BTreeMap<DocId, Vec<ChangeHash>>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("loaded", &self.docs.len())
            .field("parked", &self.parked.len())
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl Replica {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a replica from persisted parts.
    pub fn from_parts(docs: impl IntoIterator<Item = LocalDoc>, cursor: Cursor) -> Self {
        Replica {
            docs: docs.into_iter().map(|d| (d.doc.id(), d)).collect(),
            cursor,
            ..Self::default()
        }
    }

    /// Rebuilds a replica whose documents are all parked; `loader` brings their bodies back.
    pub fn from_index(
        index: impl IntoIterator<Item = (DocId, DocIndex)>,
        cursor: Cursor,
        loader: Loader,
    ) -> Self {
        Replica {
            parked: index.into_iter().collect(),
            loader: Some(loader),
            cursor,
            ..Self::default()
        }
    }

    /// A document with its body, loaded when it was parked; `None` when there is no such
    /// document.
    pub fn load(&mut self, id: &DocId) -> Result<Option<&mut LocalDoc>> {
        if let Some(index) = self.parked.get(id) {
            let loader = self
                .loader
                .as_ref()
                .expect("only a replica with a loader parks");
            let doc = loader(id)?;
            let index = index.clone();
            self.parked.remove(id);
            self.docs.insert(*id, LocalDoc::unparked(doc, index));
        }
        Ok(self.docs.get_mut(id))
    }

    /// Drops the bodies of every loaded document but `keep` and those in the push in flight.
    /// Only for a caller that has stored every change of them: a parked body is loaded again
    /// as stored. Without a loader it does nothing.
    pub fn park(&mut self, keep: Option<&DocId>) {
        if self.loader.is_none() {
            return;
        }
        let ids: Vec<DocId> = self
            .docs
            .keys()
            .filter(|id| Some(*id) != keep && !self.in_flight.contains_key(*id))
            .copied()
            .collect();
        for id in ids {
            if let Some(mut local) = self.docs.remove(&id) {
                self.parked.insert(id, local.index());
            }
        }
    }

    /// Loads up to `limit` parked documents that have changes to push, so that the next
    /// [`Replica::build_push`] sends them; returns how many it loaded.
    pub fn load_for_push(&mut self, limit: usize) -> Result<usize> {
        let ids: Vec<DocId> = self
            .parked
            .iter()
            .filter(|(_, index)| index.has_push())
            .map(|(id, _)| *id)
            .take(limit)
            .collect();
        for id in &ids {
            self.load(id)?;
        }
        Ok(ids.len())
    }

    /// What is kept of every document, loaded or parked: what a store writes after the
    /// server's view of all of them changed.
    pub fn indexes(&mut self) -> Vec<(DocId, DocIndex)> {
        let mut out: Vec<(DocId, DocIndex)> = self
            .docs
            .iter_mut()
            .map(|(id, local)| (*id, local.index()))
            .collect();
        out.extend(self.parked.iter().map(|(id, index)| (*id, index.clone())));
        out
    }

    /// What is kept of one document, loaded or parked.
    pub fn index_of(&mut self, id: &DocId) -> Option<DocIndex> {
        match self.docs.get_mut(id) {
            Some(local) => Some(local.index()),
            None => self.parked.get(id).cloned(),
        }
    }

    /// Documents the server refused, loaded or parked.
    pub fn rejected_ids(&self) -> Vec<DocId> {
        let loaded = self.docs.iter().filter(|(_, d)| d.rejected.is_some());
        let parked = self.parked.iter().filter(|(_, d)| d.rejected.is_some());
        let mut ids: Vec<DocId> = loaded
            .map(|(id, _)| *id)
            .chain(parked.map(|(id, _)| *id))
            .collect();
        ids.sort();
        ids
    }

    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    pub fn insert(&mut self, doc: ReportDoc) {
        self.parked.remove(&doc.id());
        self.docs.insert(doc.id(), LocalDoc::new(doc));
    }

    /// Forgets a document. Callers release only what [`Replica::releasable`] names, or what a
    /// person chose to discard.
    pub fn remove(&mut self, id: &DocId) {
        self.resend.remove(id);
        self.parked.remove(id);
        self.docs.remove(id);
    }

    /// Documents this client no longer keeps for the server and whose every change the server
    /// has (acknowledged or held): they may be dropped without losing anything.
    pub fn releasable(&mut self) -> Vec<DocId> {
        let loaded = self
            .docs
            .iter_mut()
            .filter(|(_, d)| d.outside())
            .filter_map(|(id, d)| (d.pending() == 0).then_some(*id));
        let parked = self
            .parked
            .iter()
            .filter(|(_, d)| d.outside() && d.pending == 0)
            .map(|(id, _)| *id);
        let mut ids: Vec<DocId> = loaded.chain(parked).collect();
        ids.sort();
        ids
    }

    /// A loaded document (see [`Replica::load`]).
    pub fn get(&self, id: &DocId) -> Option<&LocalDoc> {
        self.docs.get(id)
    }

    /// The body of a loaded document (see [`Replica::load`]).
    pub fn doc_mut(&mut self, id: &DocId) -> Option<&mut ReportDoc> {
        self.docs.get_mut(id).map(|d| &mut d.doc)
    }

    /// Every document's id, loaded or parked.
    pub fn ids(&self) -> impl Iterator<Item = &DocId> {
        self.docs.keys().chain(self.parked.keys())
    }

    /// The loaded documents: all of them in a replica that never parks.
    pub fn docs(&self) -> impl Iterator<Item = &LocalDoc> {
        self.docs.values()
    }

    /// Number of local changes the server has neither acknowledged nor held.
    pub fn pending(&mut self) -> usize {
        let loaded: usize = self.docs.values_mut().map(LocalDoc::pending).sum();
        loaded + self.parked.values().map(|d| d.pending).sum::<usize>()
    }

    /// A push of every pending change, whole documents at a time, until `max_bytes` of change
    /// bytes are in it (at least one document always goes, so any document can be pushed).
    /// `None` when nothing is pending.
    pub fn build_push(&mut self, max_bytes: usize) -> Option<Push> {
        let mut docs = Vec::new();
        let mut bytes = 0;
        self.in_flight.clear();
        for (id, local) in &mut self.docs {
            let heads = local.doc.heads();
            if local.rejected.as_ref().is_some_and(|r| r.heads == heads) || local.held == heads {
                continue;
            }
            let changes = local.doc.changes_since(&local.acked);
            if changes.is_empty() {
                continue;
            }
            let size: usize = changes.iter().map(Vec::len).sum();
            if !docs.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            self.in_flight.insert(*id, heads);
            docs.push(PushDoc { doc: *id, changes });
        }
        (!docs.is_empty()).then_some(Push { docs })
    }

    /// Offers a refused document again at the next push, changed or not: the server's reason
    /// may be gone (it has learned the report kind it lacked). `false` when it was not refused.
    pub fn retry_rejected(&mut self, id: &DocId) -> bool {
        if let Some(index) = self.parked.get_mut(id) {
            return index.rejected.take().is_some();
        }
        self.docs
            .get_mut(id)
            .and_then(|local| local.rejected.take())
            .is_some()
    }

    /// Records the server's answer to the last push built.
    pub fn apply_push_result(&mut self, result: &PushResult) -> PushSummary {
        let mut summary = PushSummary::default();
        for item in &result.docs {
            let Some(local) = self.docs.get_mut(&item.doc) else {
                continue;
            };
            let pushed = self.in_flight.remove(&item.doc);
            match &item.outcome {
                PushOutcome::Acked { heads } => {
                    // No heads listed: the server's heads are those of the push.
                    let mut acked = pushed.unwrap_or_default();
                    acked.extend(heads.iter().map(|h| ChangeHash(*h)));
                    local.acked = known_frontier(&mut local.doc, acked);
                    local.rejected = None;
                    summary.acked += 1;
                }
                PushOutcome::Held { code, reason } => {
                    if let Some(pushed) = pushed {
                        local.held = pushed;
                    }
                    local.rejected = None;
                    summary.held.push((item.doc, code.clone(), reason.clone()));
                }
                PushOutcome::MissingDeps { .. } => {
                    // The server lacks history we thought it had (a restored backup, say):
                    // forget what we believed and send everything; it skips what it has.
                    local.acked.clear();
                    summary.resend += 1;
                }
                PushOutcome::Rejected { code, reason } => {
                    local.rejected = Some(Rejection {
                        code: code.clone(),
                        reason: reason.clone(),
                        heads: pushed.unwrap_or_default(),
                    });
                    summary
                        .rejected
                        .push((item.doc, code.clone(), reason.clone()));
                }
            }
        }
        summary
    }

    pub fn build_pull(&self, byte_budget: u32) -> Pull {
        Pull {
            since: self.cursor.since,
            after: self.cursor.after.max(self.cursor.since),
            byte_budget,
            resend: self.resend.iter().copied().collect(),
        }
    }

    /// Applies one page of a pull. Local changes not yet pushed are kept: snapshots are merged,
    /// never substituted. The summary's `more` also holds while documents wait to be resent.
    pub fn apply_pull_result(&mut self, result: PullResult) -> Result<PullSummary> {
        let mut summary = PullSummary::default();
        if result.rescoped {
            // Whatever the new scope holds arrives on this pull, which starts from zero; what
            // does not arrive is released at its end, once delivered.
            self.cursor = Cursor::default();
            self.resend.clear();
            for local in self.docs.values_mut() {
                local.out_of_scope = true;
            }
            for index in self.parked.values_mut() {
                index.out_of_scope = true;
            }
        }
        for item in result.docs {
            self.resend.remove(&item.doc);
            self.load(&item.doc)?;
            let local = self
                .docs
                .entry(item.doc)
                .or_insert_with(|| LocalDoc::new(ReportDoc::empty(item.doc)));
            local.out_of_scope = false;
            let received = match &item.body {
                PullBody::Snapshot(bytes) => local.doc.merge_snapshot(bytes)?,
                PullBody::Changes(changes) => local.doc.apply_changes(changes)?,
            };
            if !local.doc.missing_deps().is_empty() {
                self.resend.insert(item.doc);
                continue;
            }
            // No heads listed: the server's heads are all in the body, so the frontier of what
            // it was known to hold plus what it sent is exactly its heads.
            let mut acked = std::mem::take(&mut local.acked);
            if item.heads.is_empty() {
                acked.extend(received);
            } else {
                acked.extend(item.heads.iter().map(|h| ChangeHash(*h)));
            }
            local.acked = known_frontier(&mut local.doc, acked);
            summary.docs += 1;
        }
        // An evicted document is released once nothing of it is pending; until then it stays,
        // so that changes made offline reach the server (as held work) before it goes.
        for id in result.evicted {
            if let Some(local) = self.docs.get_mut(&id) {
                local.out_of_scope = true;
                summary.evicted += 1;
            }
            if let Some(index) = self.parked.get_mut(&id) {
                index.out_of_scope = true;
                summary.evicted += 1;
            }
            self.resend.remove(&id);
        }
        if result.after < self.cursor.since {
            // The server holds less than we had pulled: it was restored from a backup.
            self.start_over()?;
            summary.more = true;
            return Ok(summary);
        }
        self.cursor.after = result.after;
        if !result.more {
            self.cursor.since = result.after;
        }
        summary.more = result.more || !self.resend.is_empty();
        if !summary.more && result.digest != self.digest() {
            summary.diverged = true;
            self.start_over()?;
        }
        Ok(summary)
    }

    /// Forgets what the server was believed to hold: the next pull starts from zero (merging
    /// what it sends again changes nothing here) and the next push offers every change, so
    /// changes a restored server lost are sent again (it skips those it has).
    fn start_over(&mut self) -> Result<()> {
        self.cursor = Cursor::default();
        for local in self.docs.values_mut() {
            local.acked.clear();
        }
        // What is pending now depends on the history of each document: each parked body is
        // loaded once to count it, then parked again.
        let parked: Vec<DocId> = self.parked.keys().copied().collect();
        for id in parked {
            if let Some(local) = self.load(&id)? {
                local.acked.clear();
                let index = local.index();
                self.docs.remove(&id);
                self.parked.insert(id, index);
            }
        }
        Ok(())
    }

    /// The scope digest over what the server is known to hold of each document. Documents the
    /// server has never acknowledged are not in its scope yet, and those that left it no longer
    /// are.
    pub fn digest(&self) -> Digest {
        let loaded = self
            .docs
            .iter()
            .map(|(id, d)| (id, &d.acked, d.out_of_scope));
        let parked = self
            .parked
            .iter()
            .map(|(id, d)| (id, &d.acked, d.out_of_scope));
        let heads: Vec<(DocId, Vec<Hash>)> = loaded
            .chain(parked)
            .filter(|(_, acked, out)| !acked.is_empty() && !out)
            .map(|(id, acked, _)| (*id, acked.iter().map(|h| h.0).collect()))
            .collect();
        protocol::scope_digest(heads.iter().map(|(id, h)| (*id, h.as_slice())))
    }
}

/// Reduces `heads` to the hashes this document has that are not ancestors of another one, so
/// the result equals the server's heads whenever the client has caught up.
fn known_frontier(doc: &mut ReportDoc, mut heads: Vec<ChangeHash>) -> Vec<ChangeHash> {
    heads.sort();
    heads.dedup();
    heads.retain(|h| doc.has_change(h));
    let frontier: Vec<ChangeHash> = heads
        .iter()
        .copied()
        .filter(|h| {
            !heads
                .iter()
                .any(|other| other != h && doc.is_ancestor(h, other))
        })
        .collect();
    frontier
}
