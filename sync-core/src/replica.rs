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
//!
//! A phone may also sync with a village office hub (see [`Server`]). What a hub holds is kept
//! apart from what central holds: each document has a second frontier (`hub`) and the replica
//! a second cursor, and a hub's acknowledgement never makes a change less pending, since the
//! phone still owes it to central. Central's signed receipts, handed on by the hub, advance
//! the central frontier ([`Replica::apply_receipt`]). Changes first learned from a hub are
//! other people's work (`from_hub`): they are not this phone's to deliver and are never pushed,
//! so central never sees them in this phone's name.

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
    /// Heads the office hub is known to hold: it acknowledged or sent them.
    pub hub: Vec<ChangeHash>,
    /// Changes first learned from a hub that central is not known to hold: someone else's to
    /// deliver, so neither pending nor pushed here.
    pub from_hub: Vec<ChangeHash>,
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
            hub: Vec::new(),
            from_hub: Vec::new(),
        }
    }

    /// Changes this client owes central: neither acknowledged nor held by it, nor someone
    /// else's learned from a hub.
    pub fn pending(&mut self) -> usize {
        let delivered: Vec<ChangeHash> = self.acked.iter().chain(&self.held).copied().collect();
        if self.from_hub.is_empty() {
            return self.doc.count_changes_since(&delivered);
        }
        let from_hub = &self.from_hub;
        self.doc
            .hashes_since(&delivered)
            .iter()
            .filter(|h| !from_hub.contains(h))
            .count()
    }

    /// What `server` is known to hold: the heads a push to it starts from.
    fn frontier(&self, server: Server) -> Vec<ChangeHash> {
        match server {
            Server::Central => self.acked.clone(),
            // A hub is sent nothing central holds or keeps as held work: it gets that from
            // central itself.
            Server::Hub => self
                .acked
                .iter()
                .chain(&self.held)
                .chain(&self.hub)
                .copied()
                .collect(),
        }
    }

    /// Drops from `from_hub` what central now holds (changes still queued for their history
    /// stay).
    fn settle(&mut self) {
        if self.from_hub.is_empty() {
            return;
        }
        let beyond = self.doc.hashes_since(&self.acked);
        let doc = &mut self.doc;
        self.from_hub
            .retain(|h| beyond.contains(h) || !doc.has_change(h));
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
            hub: self.hub.clone(),
            from_hub: self.from_hub.clone(),
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
            hub: index.hub,
            from_hub: index.from_hub,
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
    /// Changes owed to central (see [`LocalDoc::pending`]).
    pub pending: usize,
    pub hub: Vec<ChangeHash>,
    pub from_hub: Vec<ChangeHash>,
}

impl DocIndex {
    fn outside(&self) -> bool {
        self.out_of_scope || (self.acked.is_empty() && !self.held.is_empty())
    }

    /// Whether a push to `server` may have changes of this document. Only changes owed to
    /// central go anywhere, and a hub that holds the document's heads has every one of them.
    fn has_push(&self, server: Server) -> bool {
        let skipped = self
            .rejected
            .as_ref()
            .is_some_and(|r| r.heads == self.heads)
            || self.held == self.heads;
        let at_hub = server == Server::Hub && self.heads.iter().all(|h| self.hub.contains(h));
        !skipped && self.pending > 0 && !at_hub
    }
}

/// Which server a push or a pull goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Server {
    Central,
    /// The village office hub the phone is at. What it holds counts as delivered to it only:
    /// the phone keeps owing it to central until central acknowledges it or signs a receipt.
    Hub,
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
    /// Documents the server lacked history for although everything this client owes of them
    /// was in the push: what they miss is someone else's work, which must reach that server
    /// first (another phone's change learned from a hub, say). They wait for another sync.
    pub stalled: Vec<DocId>,
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
    /// Where the client stands in the office hub's sequence.
    hub_cursor: Cursor,
    /// Documents to ask for as full snapshots, because changes arrived without their history
    /// or a push stalled, by the server concerned.
    resend: BTreeSet<(Server, DocId)>,
    /// The heads of what the push in flight carries of each document, with the frontier the
    /// push started from.
    in_flight: BTreeMap<DocId, InFlight>,
}

#[derive(Debug, Clone)]
struct InFlight {
    heads: Vec<ChangeHash>,
    from: Vec<ChangeHash>,
    /// Someone else's changes learned from a hub were left out of the push.
    left_out: bool,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("loaded", &self.docs.len())
            .field("parked", &self.parked.len())
            .field("cursor", &self.cursor)
            .field("hub_cursor", &self.hub_cursor)
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
    /// `cursors` are central's and the hub's.
    pub fn from_index(
        index: impl IntoIterator<Item = (DocId, DocIndex)>,
        cursors: (Cursor, Cursor),
        loader: Loader,
    ) -> Self {
        Replica {
            parked: index.into_iter().collect(),
            loader: Some(loader),
            cursor: cursors.0,
            hub_cursor: cursors.1,
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
        self.load_for_push_to(Server::Central, limit, &BTreeSet::new())
    }

    /// [`Replica::load_for_push`] for a push to `server`, passing over the documents in `skip`.
    pub fn load_for_push_to(
        &mut self,
        server: Server,
        limit: usize,
        skip: &BTreeSet<DocId>,
    ) -> Result<usize> {
        let ids: Vec<DocId> = self
            .parked
            .iter()
            .filter(|(id, index)| index.has_push(server) && !skip.contains(*id))
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

    /// Where the client stands in the office hub's sequence.
    pub fn hub_cursor(&self) -> Cursor {
        self.hub_cursor
    }

    pub fn insert(&mut self, doc: ReportDoc) {
        self.parked.remove(&doc.id());
        self.docs.insert(doc.id(), LocalDoc::new(doc));
    }

    /// Forgets a document. Callers release only what [`Replica::releasable`] names, or what a
    /// person chose to discard.
    pub fn remove(&mut self, id: &DocId) {
        self.resend.retain(|(_, doc)| doc != id);
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
        self.build_push_to(Server::Central, max_bytes, &mut BTreeSet::new())
    }

    /// [`Replica::build_push`] for `server`, passing over the documents in `skip`. A loaded
    /// document found to have nothing for `server` joins `skip`, so that a caller loading
    /// parked documents for a push moves on past it.
    pub fn build_push_to(
        &mut self,
        server: Server,
        max_bytes: usize,
        skip: &mut BTreeSet<DocId>,
    ) -> Option<Push> {
        let mut docs = Vec::new();
        let mut bytes = 0;
        self.in_flight.clear();
        for (id, local) in &mut self.docs {
            if skip.contains(id) {
                continue;
            }
            let heads = local.doc.heads();
            if local.rejected.as_ref().is_some_and(|r| r.heads == heads) || local.held == heads {
                skip.insert(*id);
                continue;
            }
            let from = local.frontier(server);
            let (hashes, changes): (Vec<ChangeHash>, Vec<Vec<u8>>) = if local.from_hub.is_empty() {
                (Vec::new(), local.doc.changes_since(&from))
            } else {
                local
                    .doc
                    .changes_since_except(&from, &local.from_hub)
                    .into_iter()
                    .unzip()
            };
            if changes.is_empty() {
                skip.insert(*id);
                continue;
            }
            let size: usize = changes.iter().map(Vec::len).sum();
            if !docs.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            // Without someone else's changes left out, the push carries the document's heads.
            let left_out =
                !local.from_hub.is_empty() && local.doc.count_changes_since(&from) > changes.len();
            let pushed = if left_out {
                known_frontier(&mut local.doc, from.iter().copied().chain(hashes).collect())
            } else {
                heads
            };
            self.in_flight.insert(
                *id,
                InFlight {
                    heads: pushed,
                    from,
                    left_out,
                },
            );
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

    /// Records central's answer to the last push built.
    pub fn apply_push_result(&mut self, result: &PushResult) -> PushSummary {
        self.apply_push_result_from(Server::Central, result)
    }

    /// Records `server`'s answer to the last push built. A hub's answer moves only the hub's
    /// frontier, and a hub's refusal is not central's: the document stays owed to central,
    /// unmarked, and the caller leaves it for this sync.
    pub fn apply_push_result_from(&mut self, server: Server, result: &PushResult) -> PushSummary {
        let mut summary = PushSummary::default();
        for item in &result.docs {
            let Some(local) = self.docs.get_mut(&item.doc) else {
                continue;
            };
            let pushed = self.in_flight.remove(&item.doc);
            match (&item.outcome, server) {
                (PushOutcome::Acked { heads }, _) => {
                    // No heads listed: the server's heads are those of the push.
                    let mut acked = pushed.map(|p| p.heads).unwrap_or_default();
                    acked.extend(heads.iter().map(|h| ChangeHash(*h)));
                    if server == Server::Hub {
                        acked.extend(local.hub.iter().copied());
                        local.hub = known_frontier(&mut local.doc, acked);
                    } else {
                        acked.extend(local.acked.iter().copied());
                        local.acked = known_frontier(&mut local.doc, acked);
                        local.rejected = None;
                        local.settle();
                    }
                    summary.acked += 1;
                }
                (PushOutcome::Held { code, reason }, Server::Central) => {
                    if let Some(pushed) = pushed {
                        local.held = pushed.heads;
                    }
                    local.rejected = None;
                    summary.held.push((item.doc, code.clone(), reason.clone()));
                }
                (PushOutcome::MissingDeps { .. }, _)
                    if pushed.as_ref().is_some_and(|p| p.left_out) =>
                {
                    // What it lacks is someone else's work learned from a hub, which must reach
                    // the server first. The server may hold more of ours than it acknowledged:
                    // a hub may have relayed it, and a pull leaves out a device's own changes
                    // (its push ack told it of them, but this push got none). The next pull
                    // asks for the document whole, which names the server's heads.
                    self.resend.insert((server, item.doc));
                    summary.stalled.push(item.doc);
                }
                (PushOutcome::MissingDeps { .. }, _) => {
                    // The server lacks history we thought it had (a restored backup, say):
                    // forget what we believed and send everything; it skips what it has. When
                    // that cannot send more than this push did, what it lacks is someone
                    // else's work, or, at a hub, what central holds and the hub has not copied.
                    let from = pushed.map(|p| p.from).unwrap_or_default();
                    match server {
                        Server::Central => local.acked.clear(),
                        Server::Hub => local.hub.clear(),
                    }
                    let now = local.frontier(server);
                    if from.iter().all(|h| now.contains(h)) {
                        summary.stalled.push(item.doc);
                    } else {
                        summary.resend += 1;
                    }
                }
                (PushOutcome::Rejected { code, reason }, Server::Central) => {
                    local.rejected = Some(Rejection {
                        code: code.clone(),
                        reason: reason.clone(),
                        heads: pushed.map(|p| p.heads).unwrap_or_default(),
                    });
                    summary
                        .rejected
                        .push((item.doc, code.clone(), reason.clone()));
                }
                (
                    PushOutcome::Held { code, reason } | PushOutcome::Rejected { code, reason },
                    _,
                ) => {
                    summary
                        .rejected
                        .push((item.doc, code.clone(), reason.clone()));
                }
            }
        }
        summary
    }

    /// Counts what central's receipt names as central's: `heads` of document `id`, applied or
    /// (`held`) kept as held work. `false` when this client does not hold the document.
    pub fn apply_receipt(&mut self, id: &DocId, heads: &[ChangeHash], held: bool) -> Result<bool> {
        let Some(local) = self.load(id)? else {
            return Ok(false);
        };
        if held {
            let mut frontier = std::mem::take(&mut local.held);
            frontier.extend_from_slice(heads);
            local.held = known_frontier(&mut local.doc, frontier);
        } else {
            let mut frontier = std::mem::take(&mut local.acked);
            frontier.extend_from_slice(heads);
            local.acked = known_frontier(&mut local.doc, frontier);
            local.settle();
        }
        Ok(true)
    }

    /// Whether this client holds document `id` up to `heads`.
    fn holds(&mut self, id: &DocId, heads: &[Hash]) -> Result<bool> {
        Ok(match self.load(id)? {
            Some(local) => heads.iter().all(|h| local.doc.has_change(&ChangeHash(*h))),
            None => false,
        })
    }

    pub fn build_pull(&self, byte_budget: u32) -> Pull {
        self.build_pull_from(Server::Central, byte_budget)
    }

    /// The next page to ask `server` for.
    pub fn build_pull_from(&self, server: Server, byte_budget: u32) -> Pull {
        let cursor = self.cursor_of(server);
        Pull {
            since: cursor.since,
            after: cursor.after.max(cursor.since),
            byte_budget,
            resend: self
                .resend
                .iter()
                .filter(|(from, _)| *from == server)
                .map(|(_, id)| *id)
                .collect(),
            takes_heads: true,
        }
    }

    fn cursor_of(&self, server: Server) -> Cursor {
        match server {
            Server::Central => self.cursor,
            Server::Hub => self.hub_cursor,
        }
    }

    /// Applies one page of a pull from central. Local changes not yet pushed are kept:
    /// snapshots are merged, never substituted. The summary's `more` also holds while documents
    /// wait to be resent.
    pub fn apply_pull_result(&mut self, result: PullResult) -> Result<PullSummary> {
        self.apply_pull_result_from(Server::Central, result)
    }

    /// [`Replica::apply_pull_result`] for a page from `server`. A hub's page moves the hub's
    /// frontiers and cursor only, and what it brings that this client did not hold is marked
    /// as someone else's to deliver. Scope is central's to say: a hub's evictions and rescoping
    /// only make this client forget what the hub holds.
    pub fn apply_pull_result_from(
        &mut self,
        server: Server,
        result: PullResult,
    ) -> Result<PullSummary> {
        let mut summary = PullSummary::default();
        if result.rescoped {
            // Whatever the new scope holds arrives on this pull, which starts from zero; what
            // does not arrive is released at its end, once delivered.
            self.forget(server);
            if server == Server::Central {
                for local in self.docs.values_mut() {
                    local.out_of_scope = true;
                }
                for index in self.parked.values_mut() {
                    index.out_of_scope = true;
                }
            }
        }
        for item in result.docs {
            self.resend.remove(&(server, item.doc));
            if item.heads_only() && !self.holds(&item.doc, &item.heads)? {
                // Listed as this device's own work, which this client no longer holds (it
                // started over, or lost it): ask for the whole document.
                self.resend.insert((server, item.doc));
                continue;
            }
            self.load(&item.doc)?;
            let local = self
                .docs
                .entry(item.doc)
                .or_insert_with(|| LocalDoc::new(ReportDoc::empty(item.doc)));
            let before = match server {
                Server::Central => {
                    local.out_of_scope = false;
                    Vec::new()
                }
                Server::Hub => local.doc.heads(),
            };
            let received = match &item.body {
                PullBody::Snapshot(bytes) => local.doc.merge_snapshot(bytes)?,
                PullBody::Changes(changes) => local.doc.apply_changes(changes)?,
            };
            if server == Server::Hub {
                let new = local.doc.hashes_since(&before);
                local.from_hub.extend(new);
                // Changes automerge queues until their history arrives, maybe from central
                // later, are someone else's all the same.
                let queued: Vec<ChangeHash> = received
                    .iter()
                    .filter(|h| !local.doc.has_change(h) && !local.from_hub.contains(h))
                    .copied()
                    .collect();
                local.from_hub.extend(queued);
            }
            if !local.doc.missing_deps().is_empty() {
                self.resend.insert((server, item.doc));
                continue;
            }
            // No heads listed: the server's heads are all in the body, so the frontier of what
            // it was known to hold plus what it sent is exactly its heads.
            let frontier = match server {
                Server::Central => &mut local.acked,
                Server::Hub => &mut local.hub,
            };
            let mut known = std::mem::take(frontier);
            if item.heads.is_empty() {
                known.extend(received);
            } else {
                known.extend(item.heads.iter().map(|h| ChangeHash(*h)));
            }
            let known = known_frontier(&mut local.doc, known);
            match server {
                Server::Central => {
                    local.acked = known;
                    local.settle();
                }
                Server::Hub => local.hub = known,
            }
            summary.docs += 1;
        }
        // An evicted document is released once nothing of it is pending; until then it stays,
        // so that changes made offline reach the server (as held work) before it goes.
        for id in result.evicted {
            self.resend.remove(&(server, id));
            if let Some(local) = self.docs.get_mut(&id) {
                match server {
                    Server::Central => local.out_of_scope = true,
                    Server::Hub => local.hub.clear(),
                }
                summary.evicted += 1;
            }
            if let Some(index) = self.parked.get_mut(&id) {
                match server {
                    Server::Central => index.out_of_scope = true,
                    Server::Hub => index.hub.clear(),
                }
                summary.evicted += 1;
            }
        }
        let cursor = match server {
            Server::Central => &mut self.cursor,
            Server::Hub => &mut self.hub_cursor,
        };
        if result.after < cursor.since {
            // The server holds less than we had pulled: it was restored from a backup.
            self.start_over(server)?;
            summary.more = true;
            return Ok(summary);
        }
        cursor.after = result.after;
        if !result.more {
            cursor.since = result.after;
        }
        summary.more = result.more || self.resend.iter().any(|(from, _)| *from == server);
        if !summary.more && result.digest != self.digest_of(server) {
            summary.diverged = true;
            self.start_over(server)?;
        }
        Ok(summary)
    }

    /// Forgets the cursor and pending resends of `server`; of a hub, also what it holds.
    fn forget(&mut self, server: Server) {
        self.resend.retain(|(from, _)| *from != server);
        match server {
            Server::Central => self.cursor = Cursor::default(),
            Server::Hub => {
                self.hub_cursor = Cursor::default();
                for local in self.docs.values_mut() {
                    local.hub.clear();
                }
                for index in self.parked.values_mut() {
                    index.hub.clear();
                }
            }
        }
    }

    /// Forgets everything of the office hub this client synced with: for another hub, or after
    /// the hub was rebuilt.
    pub fn leave_hub(&mut self) {
        self.forget(Server::Hub);
    }

    /// Forgets what `server` was believed to hold: the next pull starts from zero (merging
    /// what it sends again changes nothing here) and the next push offers every change, so
    /// changes a restored server lost are sent again (it skips those it has).
    fn start_over(&mut self, server: Server) -> Result<()> {
        self.forget(server);
        if server == Server::Hub {
            return Ok(());
        }
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

    /// The scope digest over what central is known to hold of each document. Documents the
    /// server has never acknowledged are not in its scope yet, and those that left it no longer
    /// are.
    pub fn digest(&self) -> Digest {
        self.digest_of(Server::Central)
    }

    /// The digest `server` states for this client's scope as this client knows it: a hub
    /// states its own, over what it holds.
    pub fn digest_of(&self, server: Server) -> Digest {
        let known = |acked: &Vec<ChangeHash>, hub: &Vec<ChangeHash>, out: bool| match server {
            Server::Central => (!out).then_some(acked.clone()),
            Server::Hub => Some(hub.clone()),
        };
        let loaded = self
            .docs
            .iter()
            .filter_map(|(id, d)| Some((*id, known(&d.acked, &d.hub, d.out_of_scope)?)));
        let parked = self
            .parked
            .iter()
            .filter_map(|(id, d)| Some((*id, known(&d.acked, &d.hub, d.out_of_scope)?)));
        let heads: Vec<(DocId, Vec<Hash>)> = loaded
            .chain(parked)
            .filter(|(_, heads)| !heads.is_empty())
            .map(|(id, heads)| (id, heads.iter().map(|h| h.0).collect()))
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
