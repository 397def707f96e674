//! Ingest of a pushed batch, the one way report changes are written: what to write for each
//! document, judged against a read snapshot and checked against the writer's scope before and
//! after, then written as the store's statements in one short write transaction that first
//! checks nothing it judged has moved.
//!
//! Changes the writer may no longer write (the report left their scope while they edited it
//! offline, or their edit would move it out) are not refused: they are kept as held work, with
//! their author, device and reason, for the people who own the report now to merge or decline.
//! Only changes the server can tell are broken or forged are refused.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::{Arc, LazyLock};

use gridsync_core::DocId;
use gridsync_core::conflict::EDITED_AFTER_REMOVAL;
use gridsync_core::ingest::{self, Ingested, NewChange, Refusal};
use gridsync_core::protocol::{
    Push, PushDoc, PushDocResult, PushOutcome, PushResult, listed_heads,
};
use gridsync_core::report::ReportDoc;
use gridsync_core::schema::{Access, Registry};
use gridsync_core::task;

use super::CONCURRENT_VALUES;
use crate::catalogue::Catalogue;
use crate::live::{Changed, Hub, Touched};
use crate::metrics::Metrics;
use crate::scope::{Restricted, Scope};
use crate::store::statements::{
    DocWrite, HeldWrite, KnownConflict, LoggedChange, NewConflict, Placement, RowWrite, StoredDoc,
};
use crate::store::{Outage, Result, Store, Tx, Via, Writer, heads_to_bytes};

/// How often a batch is judged. The last attempt judges it inside the write transaction with
/// the documents' rows locked, so it cannot be overtaken and every push ends.
const ATTEMPTS: usize = 3;

/// The stored bytes a judge reads in one round trip (or one document, when larger), and the
/// stored and pushed bytes it judges at once. They are held together until judged, so this
/// bounds what a push of many large reports holds at once.
const READ_BYTES: i64 = 1 << 20;

/// The kind whose statistics the database keeps rolled up by grid and month (migration 0014's
/// triggers), so that its writers take the grid's lock first (`Tx::lock_rollups`).
const ROLLED_UP_KIND: &str = "satisfaction_canvass";

/// The one way report changes are written: phone pushes, office edits, conflict resolutions,
/// merged held work and the demo all come here. It runs the core's checks and the scope rules,
/// commits, and only then counts the changes and pokes the live clients of every node, so
/// nothing written can skip either.
#[derive(Clone)]
pub struct Ingest {
    catalogue: Arc<Catalogue>,
    metrics: Arc<Metrics>,
    live: Hub,
}

/// The built-in kinds, a metrics registry of its own and this process's fan-out: for the tools
/// that write outside a server (the benches, the test fixtures).
impl Default for Ingest {
    fn default() -> Self {
        Ingest::new(
            Arc::new(Catalogue::builtin()),
            Arc::new(Metrics::new()),
            Hub::new(),
        )
    }
}

impl Ingest {
    pub fn new(catalogue: Arc<Catalogue>, metrics: Arc<Metrics>, live: Hub) -> Ingest {
        Ingest {
            catalogue,
            metrics,
            live,
        }
    }

    /// Writes `push` for `writer` into `store`: for each document, skips known hashes, checks
    /// dependencies, authorship and scope, applies, validates, and stores the changes with
    /// server sequence numbers, the projection, conflicts and (when due) a new snapshot, in one
    /// transaction for the whole batch. Returns only after the commit, so every `Acked` is
    /// durable.
    ///
    /// The work of judging a batch (decoding, applying, validating, projecting, compacting) is
    /// done against a read snapshot, outside the write transaction, so that pushes use every
    /// core while SQLite takes one writer at a time (Postgres's writers commit side by side).
    /// The write transaction then locks
    /// the batch's documents, checks that none moved since they were read, and writes. A batch
    /// overtaken by another write is judged again.
    pub async fn push(
        &self,
        store: &dyn Store,
        writer: &Writer,
        push: &Push,
    ) -> Result<PushResult> {
        // Kinds published since the last push are in force for this one.
        let catalogue = self.catalogue.fresh(store).await?;
        let registry = &catalogue.registry;
        let mut attempt = 1;
        let committed = loop {
            let last = attempt == ATTEMPTS;
            let result = if last {
                let mut tx = store.begin_ingest().await?;
                match judge(&mut tx, writer, push, registry, true).await {
                    Ok(judged) => write_and_commit(tx, judged, push, writer).await.map(Some),
                    Err(e) => Err(e),
                }
            } else {
                let judged = {
                    let mut read = store.begin_read().await?;
                    judge(&mut read, writer, push, registry, false).await?
                };
                let mut tx = store.begin_ingest().await?;
                match judged.unmoved(&mut tx).await {
                    Ok(true) => write_and_commit(tx, judged, push, writer).await.map(Some),
                    Ok(false) => Ok(None),
                    Err(e) => Err(e),
                }
            };
            match result {
                Ok(Some(committed)) => break committed,
                // Overtaken, a concurrent first insert of the same new document, or a deadlock
                // with another ingest: two inserting the same new reports in opposite orders (a
                // phone pushing directly while its hub relays the same push) or taking the
                // canvass roll-ups' locks.
                Ok(None) => self.metrics.ingest_retries.inc(),
                Err(e)
                    if !last
                        && (e.is_unique_violation() || e.outage() == Some(Outage::Contended)) =>
                {
                    self.metrics.ingest_retries.inc()
                }
                Err(e) => return Err(e),
            };
            attempt += 1;
        };
        self.metrics.changes_ingested.inc_by(committed.changes);
        self.live.publish(committed.changed);
        Ok(committed.result)
    }
}

/// A committed ingest: the answer to the pusher, how many new changes it stored, and where.
#[derive(Debug)]
struct Committed {
    result: PushResult,
    changes: u64,
    changed: Changed,
}

/// A batch judged against one state of the database: an outcome for each document, what to
/// write, and the state it was judged on.
struct Judged {
    outcomes: Vec<Option<PushOutcome>>,
    /// Writes by push position.
    writes: Vec<(usize, DocWrite)>,
    holds: Vec<HeldWrite>,
    /// Each judged document's sequence number when it was read; absent when it was not stored.
    read: Vec<(DocId, Option<i64>)>,
    /// The scope of each user the batch assigns a case to, as it was read.
    assignees: Vec<(String, Option<Scope>)>,
}

impl Judged {
    /// Whether the state the batch was judged on still holds, inside the write transaction:
    /// no judged document was written since it was read (their rows are locked from here on,
    /// where the database has row locks) and no assignee's scope changed. Grids never move,
    /// so their paths need no second look.
    async fn unmoved(&self, tx: &mut Tx) -> Result<bool> {
        let ids: Vec<DocId> = self.read.iter().map(|(id, _)| *id).collect();
        let now = tx.lock_seqs(&ids).await?;
        if self
            .read
            .iter()
            .any(|(id, seq)| now.get(id) != seq.as_ref())
        {
            return Ok(false);
        }
        for (user, scope) in &self.assignees {
            if tx.user_scope(user).await? != *scope {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Judges `push` for `writer` against what `tx` reads: one outcome per document, in push order,
/// and the writes. `lock` locks each document's row as it is read (inside the write
/// transaction).
async fn judge(
    tx: &mut Tx,
    writer: &Writer,
    push: &Push,
    registry: &Registry,
    lock: bool,
) -> Result<Judged> {
    // Rows are locked in id order, so two pushes touching the same documents cannot deadlock.
    let mut order: Vec<usize> = (0..push.docs.len()).collect();
    order.sort_by_key(|&i| push.docs[i].doc);
    let mut judged = Judged {
        outcomes: vec![None; push.docs.len()],
        writes: Vec::new(),
        holds: Vec::new(),
        read: Vec::with_capacity(push.docs.len()),
        assignees: Vec::new(),
    };
    // A push is mostly one grid's reports.
    let mut grids: HashMap<String, Option<String>> = HashMap::new();
    let ids: Vec<DocId> = order.iter().map(|&i| push.docs[i].doc).collect();
    let sizes = tx.stored_sizes(&ids).await?;
    // The stored documents in id order, read a run at a time as the judging reaches them.
    let mut stored_ids: Vec<DocId> = ids
        .into_iter()
        .filter(|id| sizes.contains_key(id))
        .collect();
    stored_ids.dedup();
    let (mut stored, mut next) = (HashMap::new(), 0);
    let mut at = 0;
    while at < order.len() {
        // The next window: the documents up to the end of the stored run read for them, within
        // READ_BYTES of stored and pushed bytes.
        let (mut window, mut bytes) = (Vec::new(), 0);
        while let Some(&i) = order.get(at) {
            let item = &push.docs[i];
            if judged.read.last().is_some_and(|(id, _)| *id == item.doc) {
                // The decoder refuses such a push; a caller building one in code gets this.
                judged.outcomes[i] = Some(rejected(
                    "duplicate_doc",
                    "the document appears twice in the push".into(),
                ));
                at += 1;
                continue;
            }
            let unread = sizes.contains_key(&item.doc) && !stored.contains_key(&item.doc);
            let size = sizes.get(&item.doc).copied().unwrap_or(0)
                + item.changes.iter().map(|c| c.len() as i64).sum::<i64>();
            if !window.is_empty() && (unread || bytes + size > READ_BYTES) {
                break;
            }
            if unread {
                let run = next_run(&stored_ids[next..], &sizes);
                stored = tx.stored_docs(run, lock).await?;
                next += run.len();
            }
            bytes += size;
            let stored = stored.remove(&item.doc);
            judged.read.push((item.doc, stored.as_ref().map(|s| s.seq)));
            window.push(Pending { i, stored });
            at += 1;
        }
        for (i, applied) in apply_side_by_side(window, push, writer, registry)? {
            let outcome = match applied {
                Ok(applied) => {
                    let org_path = match grids.get(applied.grid()) {
                        Some(path) => path.clone(),
                        None => {
                            let path = tx.grid_path(applied.grid()).await?;
                            grids.insert(applied.grid().to_owned(), path.clone());
                            path
                        }
                    };
                    let assignee = match new_assignee(&applied, registry) {
                        Some(user) => {
                            let scope = tx.user_scope(&user).await?;
                            judged.assignees.push((user.clone(), scope.clone()));
                            Some(Assignee { user, scope })
                        }
                        None => None,
                    };
                    match plan(applied, org_path, assignee, writer, registry) {
                        Ok(Plan::Write { outcome, write }) => {
                            judged.writes.extend(write.map(|w| (i, *w)));
                            outcome
                        }
                        Ok(Plan::Hold { outcome, held }) => {
                            judged.holds.push(*held);
                            outcome
                        }
                        Err(outcome) => outcome,
                    }
                }
                Err(outcome) => outcome,
            };
            judged.outcomes[i] = Some(outcome);
        }
    }
    Ok(judged)
}

/// The documents of `ids` to read next: as many as fit in [`READ_BYTES`], and at least one.
fn next_run<'a>(ids: &'a [DocId], sizes: &HashMap<DocId, i64>) -> &'a [DocId] {
    let mut bytes = 0;
    let len = ids
        .iter()
        .take_while(|id| {
            bytes += sizes.get(id).copied().unwrap_or(0);
            bytes <= READ_BYTES
        })
        .count();
    &ids[..len.max(1).min(ids.len())]
}

/// Writes a judged batch and commits.
async fn write_and_commit(
    mut tx: Tx,
    judged: Judged,
    push: &Push,
    writer: &Writer,
) -> Result<Committed> {
    let committed = write_batch(&mut tx, judged, push, writer).await?;
    tx.commit().await?;
    Ok(committed)
}

/// Writes a judged batch: held work, then the documents with sequence numbers in push order.
async fn write_batch(
    tx: &mut Tx,
    judged: Judged,
    push: &Push,
    writer: &Writer,
) -> Result<Committed> {
    let Judged {
        outcomes,
        mut writes,
        holds,
        ..
    } = judged;
    for held in &holds {
        tx.hold(held, writer).await?;
    }
    writes.sort_by_key(|(i, _)| *i);
    let mut writes: Vec<DocWrite> = writes.into_iter().map(|(_, w)| w).collect();
    let total: i64 = writes.iter().map(|w| w.changes.len() as i64).sum();
    let mut changed = Changed::default();
    if total > 0 {
        let seqs = tx.take_seqs(total).await?;
        let last_seqs = write_docs(tx, &mut writes, &seqs, writer).await?;
        for (w, last_seq) in writes.iter().zip(last_seqs) {
            changed.touched.extend(touched(w, last_seq));
        }
    }
    let docs = push
        .docs
        .iter()
        .zip(outcomes)
        .map(|(item, outcome)| PushDocResult {
            doc: item.doc,
            outcome: outcome.unwrap_or_else(|| rejected("internal", "not processed".into())),
        })
        .collect();
    Ok(Committed {
        result: PushResult::central(docs),
        changes: total as u64,
        changed,
    })
}

/// Where a write lands at `last_seq`, and where it left when it moved the report.
fn touched(w: &DocWrite, last_seq: i64) -> impl Iterator<Item = Touched> + use<> {
    let now = Touched {
        seq: last_seq,
        org_path: w.org_path.clone(),
        restricted: w.restricted,
        assigned_to: w.assigned_to.clone(),
    };
    let left = w.left.as_ref().map(|from| Touched {
        seq: last_seq,
        org_path: from.org_path.clone(),
        restricted: from.restricted,
        assigned_to: from.assigned_to.clone(),
    });
    std::iter::once(now).chain(left)
}

/// Writes the documents' rows, their changes numbered by `seqs` in order, and their conflicts;
/// each document's last sequence number. Rows, new and updated, and changes go many to a
/// statement: a push is mostly new reports, or edits of many.
async fn write_docs(
    tx: &mut Tx,
    writes: &mut [DocWrite],
    seqs: &[i64],
    writer: &Writer,
) -> Result<Vec<i64>> {
    let rolled_up: Vec<&str> = writes
        .iter()
        .filter(|w| w.kind == ROLLED_UP_KIND)
        .flat_map(|w| {
            let left = w.left.as_ref().map(|from| from.org_path.as_str());
            std::iter::once(w.org_path.as_str()).chain(left)
        })
        .collect();
    if !rolled_up.is_empty() {
        tx.lock_rollups(&rolled_up).await?;
    }
    let stored: Vec<DocId> = writes.iter().filter(|w| !w.is_new).map(|w| w.id).collect();
    let mut known = tx.known_conflicts(&stored).await?;
    let mut open = Vec::with_capacity(writes.len());
    let mut last_seqs = Vec::with_capacity(writes.len());
    let mut numbers = seqs.iter();
    for w in writes.iter_mut() {
        let last_seq = numbers
            .by_ref()
            .take(w.changes.len())
            .last()
            .copied()
            .expect("a written document has changes, and as many numbers were taken");
        let (resolved, open_now): (Vec<KnownConflict>, Vec<KnownConflict>) = known
            .remove(&w.id)
            .unwrap_or_default()
            .into_iter()
            .partition(|c| c.resolved);
        open.push(open_now);
        if !w.is_new {
            // A rule flag is about history, which never changes, so it would be raised again
            // by every later ingest: once dismissed, it stays so. Values and removals are
            // resolved by a change to the document, after which the document no longer raises
            // them: a later raise is about new edits.
            w.conflicts.retain(|c| {
                c.code == CONCURRENT_VALUES
                    || c.code == EDITED_AFTER_REMOVAL
                    || !resolved
                        .iter()
                        .any(|d| d.path == c.path && d.code == c.code)
            });
            w.has_conflicts = !w.conflicts.is_empty();
        }
        last_seqs.push(last_seq);
    }
    let (new, updated): (Vec<RowWrite<'_>>, Vec<RowWrite<'_>>) = writes
        .iter()
        .zip(&last_seqs)
        .map(|(write, &last_seq)| RowWrite { write, last_seq })
        .partition(|row| row.write.is_new);
    tx.update_documents(&updated).await?;
    tx.insert_documents(&new).await?;
    let logged: Vec<LoggedChange<'_>> = writes
        .iter()
        .flat_map(|w| w.changes.iter().map(move |change| (&w.id, change)))
        .zip(seqs)
        .map(|((doc, change), &seq)| LoggedChange { doc, seq, change })
        .collect();
    tx.insert_changes(&logged, writer).await?;
    for ((w, &last_seq), open) in writes.iter().zip(&last_seqs).zip(&open) {
        let (gone, new) = conflict_diff(open, &w.conflicts);
        for id in gone {
            tx.close_conflict(id, writer).await?;
        }
        for conflict in new {
            tx.insert_conflict(&w.id, conflict, writer.now).await?;
        }
        if let Some(from) = &w.left {
            tx.insert_exit(&w.id, last_seq, from).await?;
        }
    }
    Ok(last_seqs)
}

/// A stored document loaded for ingest: its automerge document, which the push is applied to,
/// and what the checks need to know of the report before the push.
#[derive(Debug)]
struct Loaded {
    doc: ReportDoc,
    before: Before,
}

/// A stored report as it was before the push.
#[derive(Debug)]
struct Before {
    kind: String,
    snapshot_len: i64,
    incremental_bytes: i64,
    /// Where the report was, which scope was decided from.
    placement: Placement,
    /// A task's projection, kept only when a grid worker pushes to the task (`check_task_edit`):
    /// the document itself is applied to in place rather than copied for every push.
    task: Option<serde_json::Value>,
}

impl Loaded {
    /// Loads the automerge document from the snapshot followed by the changes after it.
    fn from_stored(id: DocId, mut stored: StoredDoc) -> Result<Self> {
        let snapshot_len = stored.snapshot.len() as i64;
        let doc = stored.take_doc(id)?;
        Ok(Loaded {
            doc,
            before: Before {
                kind: stored.kind,
                snapshot_len,
                incremental_bytes: stored.incremental_bytes,
                placement: Placement {
                    org_path: stored.org_path,
                    restricted: stored.restricted,
                    assigned_to: stored.assigned_to,
                },
                task: None,
            },
        })
    }
}

/// A pushed document after automerge accepted it, before scope and storage. The automerge
/// document is dropped by now: a window of these is held until planned.
#[derive(Debug)]
struct Applied {
    id: DocId,
    ingested: Ingested,
    before: Option<Before>,
    /// The report saved whole, when the push makes a new snapshot due.
    snapshot: Option<Vec<u8>>,
    /// The change bytes stored after the snapshot once the push is written.
    incremental_bytes: i64,
}

impl Applied {
    /// The grid the report belongs to, whose org path decides the scope.
    fn grid(&self) -> &str {
        &self.ingested.meta.grid
    }
}

/// Whom a push newly assigns a restricted report to, and what that person may see.
struct Assignee {
    user: String,
    scope: Option<Scope>,
}

/// The user a stored restricted report is reassigned to by the push. A case is created by an
/// officer or its worker; it is reassignments that can leave it with nobody.
fn new_assignee(applied: &Applied, registry: &Registry) -> Option<String> {
    let meta = &applied.ingested.meta;
    let schema = registry.get(&meta.kind, meta.schema_version)?;
    let Access::Restricted { assigned_field } = &schema.access else {
        return None;
    };
    let now = applied.ingested.projection["fields"][assigned_field.as_str()].as_str()?;
    let before = applied.before.as_ref()?.placement.assigned_to.as_deref();
    (before != Some(now)).then(|| now.to_owned())
}

/// What to do with one document's push.
#[derive(Debug)]
enum Plan {
    /// Acknowledge, writing what was new (nothing when every change was known).
    Write {
        outcome: PushOutcome,
        write: Option<Box<DocWrite>>,
    },
    /// Keep the new changes as held work.
    Hold {
        outcome: PushOutcome,
        held: Box<HeldWrite>,
    },
}

/// A document of the push, read for judging, with its stored state when it has one.
struct Pending {
    /// Its position in the push.
    i: usize,
    stored: Option<StoredDoc>,
}

/// The cores judging may spread over.
static CORES: LazyLock<usize> =
    LazyLock::new(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get));

/// Loads and applies each document of `window`, in window order with their push positions,
/// spread over the machine's cores. This is most of a push's CPU: without it a push judged
/// alone would leave the other cores idle.
fn apply_side_by_side(
    window: Vec<Pending>,
    push: &Push,
    writer: &Writer,
    registry: &Registry,
) -> Result<Vec<(usize, Result<Applied, PushOutcome>)>> {
    let apply_one = |pending: Pending| -> Result<(usize, Result<Applied, PushOutcome>)> {
        let item = &push.docs[pending.i];
        let loaded = match pending.stored {
            Some(stored) => Some(Loaded::from_stored(item.doc, stored)?),
            None => None,
        };
        Ok((pending.i, apply(loaded, item, writer, registry)))
    };
    let per = window.len().div_ceil(*CORES).max(1);
    // One part, or none at all when the window's documents were all duplicates: no thread.
    if per >= window.len() {
        return window.into_iter().map(apply_one).collect();
    }
    let mut window = window.into_iter();
    let mut parts: Vec<Vec<Pending>> = Vec::new();
    loop {
        let part: Vec<Pending> = window.by_ref().take(per).collect();
        if part.is_empty() {
            break;
        }
        parts.push(part);
    }
    std::thread::scope(|threads| {
        let mut parts = parts.into_iter();
        let first = parts.next().unwrap_or_default();
        let others: Vec<_> = parts
            .map(|part| {
                threads.spawn(move || part.into_iter().map(apply_one).collect::<Result<Vec<_>>>())
            })
            .collect();
        let mut applied = first
            .into_iter()
            .map(apply_one)
            .collect::<Result<Vec<_>>>()?;
        for other in others {
            match other.join() {
                Ok(part) => applied.extend(part?),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok(applied)
    })
}

/// Applies pushed changes to the stored document (or to a new one).
fn apply(
    loaded: Option<Loaded>,
    item: &PushDoc,
    writer: &Writer,
    registry: &Registry,
) -> Result<Applied, PushOutcome> {
    let (mut doc, before) = match loaded {
        Some(Loaded { doc, mut before }) => {
            if grid_worker_task(&before.kind, writer) {
                let was = doc
                    .to_json()
                    .map_err(|e| rejected("not_a_report", e.to_string()))?;
                before.task = Some(was);
            }
            (doc, Some(before))
        }
        None => (ReportDoc::empty(item.doc), None),
    };
    let applied = match writer.via {
        Via::Central => ingest::copy(&mut doc, &item.changes, registry),
        Via::Direct | Via::Hub(_) => {
            ingest::apply(&mut doc, &item.changes, &writer.user_id, registry)
        }
    };
    match applied {
        Ok(ingested) => {
            let (snapshot, incremental_bytes) =
                compact(&mut doc, before.as_ref(), &ingested.new_changes);
            Ok(Applied {
                id: doc.id(),
                ingested,
                before,
                snapshot,
                incremental_bytes,
            })
        }
        Err(Refusal::MissingDeps(missing)) => Err(PushOutcome::MissingDeps {
            missing: missing.iter().map(|h| h.0).collect(),
        }),
        Err(refusal) => Err(rejected(refusal.code(), refusal.to_string())),
    }
}

/// The report's new snapshot, when the push makes one due, and the change bytes stored after
/// the snapshot once it is written. A new report starts with a snapshot; after that, once the
/// changes after the snapshot outweigh it, a new one is smaller to serve and quicker to load
/// than the two together.
fn compact(
    doc: &mut ReportDoc,
    before: Option<&Before>,
    new_changes: &[NewChange],
) -> (Option<Vec<u8>>, i64) {
    let Some(before) = before else {
        return (Some(doc.save_uncompressed()), 0);
    };
    let added: i64 = new_changes.iter().map(|c| c.bytes.len() as i64).sum();
    let incremental = before.incremental_bytes + added;
    if added > 0 && incremental > before.snapshot_len {
        (Some(doc.save_uncompressed()), 0)
    } else {
        (None, incremental)
    }
}

/// Checks the writer's scope against the report before and after the push, and builds the write.
/// Checking both stops a worker from taking over a case by assigning it to themselves.
fn plan(
    applied: Applied,
    org_path: Option<String>,
    assignee: Option<Assignee>,
    writer: &Writer,
    registry: &Registry,
) -> Result<Plan, PushOutcome> {
    let Applied {
        id,
        ingested,
        before,
        snapshot,
        incremental_bytes,
    } = applied;
    let Some(org_path) = org_path else {
        return Err(rejected(
            "unknown_grid",
            format!("grid {} is not in the org tree", ingested.meta.grid),
        ));
    };
    let meta = &ingested.meta;
    let schema = registry
        .get(&meta.kind, meta.schema_version)
        .ok_or_else(|| rejected("unknown_kind", format!("unknown kind {}", meta.kind)))?;
    let (restricted, assigned_to) = match &schema.access {
        Access::Restricted { assigned_field } => (
            true,
            ingested.projection["fields"][assigned_field.as_str()]
                .as_str()
                .map(str::to_owned),
        ),
        Access::Scope => (false, None),
    };
    if writer.via != Via::Direct
        && (restricted || before.as_ref().is_some_and(|b| b.placement.restricted))
    {
        return Err(rejected(
            "restricted_via_hub",
            format!(
                "a {} report goes to the server only, never through a village office hub",
                meta.kind
            ),
        ));
    }
    let was_allowed = before.as_ref().is_none_or(|b| {
        writer.scope.allows(
            &b.placement.org_path,
            b.placement.restricted,
            b.placement.assigned_to.as_deref(),
        )
    });
    let outcome = PushOutcome::Acked {
        heads: listed_heads(
            ingested.heads.iter().map(|h| h.0).collect(),
            ingested.new_changes.iter().map(|c| c.hash.0.as_slice()),
        ),
    };
    if ingested.new_changes.is_empty() {
        // Everything pushed is in the report already (merged from held work, say).
        return Ok(Plan::Write {
            outcome,
            write: None,
        });
    }
    if !was_allowed
        || !writer
            .scope
            .allows(&org_path, restricted, assigned_to.as_deref())
    {
        if !writer.hold_out_of_scope {
            return Err(rejected(
                "out_of_scope",
                "this report is outside what you may edit".to_owned(),
            ));
        }
        let placement = match &before {
            Some(b) => b.placement.clone(),
            None => Placement {
                org_path,
                restricted,
                assigned_to,
            },
        };
        let (code, reason) = (
            "out_of_scope",
            "you may no longer edit this report; the server keeps your changes for the people \
             who own it now to merge or decline",
        );
        return Ok(Plan::Hold {
            outcome: PushOutcome::Held {
                code: code.to_owned(),
                reason: reason.to_owned(),
            },
            held: Box::new(HeldWrite {
                doc: id,
                kind: meta.kind.clone(),
                grid_id: meta.grid.clone(),
                placement,
                projection: json_text(&ingested.projection),
                changes: ingested.new_changes,
                code: code.to_owned(),
                reason: reason.to_owned(),
            }),
        });
    }
    if grid_worker_task(&meta.kind, writer) {
        let was = before.as_ref().and_then(|b| b.task.as_ref());
        check_task_edit(was, &ingested.projection)?;
    }
    // No report may belong to nobody: a case is reassigned only to someone who can see it
    // where it is.
    if let Some(Assignee { user, scope }) = &assignee
        && !scope
            .as_ref()
            .is_some_and(|s| s.allows(&org_path, restricted, Some(user)))
    {
        return Err(rejected(
            "assignee_out_of_reach",
            format!(
                "{user} cannot see a case of grid {}: assign someone who works there",
                meta.grid
            ),
        ));
    }
    let mut conflicts: Vec<NewConflict> = ingested
        .conflicts
        .iter()
        .map(|c| NewConflict {
            path: c.path.to_string(),
            code: CONCURRENT_VALUES.to_owned(),
            detail: serde_json::to_string(&c.values).unwrap_or_default(),
        })
        .collect();
    conflicts.extend(ingested.flags.iter().map(|f| {
        let detail = match &f.removal {
            // Who removed the entry and what it holds, beside the message.
            Some(removal) => serde_json::json!({
                "message": f.message,
                "removed_by": removal.removed_by,
                "removed_at": removal.removed_at,
                "edited_by": removal.edited_by,
                "values": removal.values,
            }),
            None => serde_json::json!(f.message),
        };
        NewConflict {
            path: f.path(),
            code: f.code.clone(),
            detail: json_text(&detail),
        }
    }));
    let left = before
        .as_ref()
        .map(|b| b.placement.clone())
        .filter(|was| was.org_path != org_path || was.assigned_to != assigned_to);
    let mut public = ingested.projection.clone();
    schema.redact(&mut public);
    let status = schema
        .status_field
        .as_ref()
        .and_then(|f| ingested.projection["fields"][f.as_str()].as_str())
        .map(str::to_owned);
    let write = DocWrite {
        id,
        is_new: before.is_none(),
        kind: meta.kind.clone(),
        schema_version: i64::from(meta.schema_version),
        grid_id: meta.grid.clone(),
        org_path,
        restricted,
        assigned_to,
        heads: heads_to_bytes(&ingested.heads),
        projection: json_text(&ingested.projection),
        public_text: json_text(&public),
        status,
        has_conflicts: !conflicts.is_empty(),
        problems: serde_json::to_string(&ingested.problems).unwrap_or_else(|_| "[]".into()),
        created_by: meta.created_by.clone(),
        created_at: writer.now,
        updated_at: writer.now,
        changes: ingested.new_changes,
        snapshot,
        incremental_bytes,
        conflicts,
        left,
    };
    Ok(Plan::Write {
        outcome,
        write: Some(Box::new(write)),
    })
}

/// Whether a push of `kind` by `writer` is a grid worker's to a task, which `check_task_edit`
/// limits. Only a grid worker's scope is confined to the cases assigned to them.
fn grid_worker_task(kind: &str, writer: &Writer) -> bool {
    task::is_task_kind(kind) && writer.scope.restricted == Restricted::Assigned
}

/// What a grid worker may do to a task: link reports to it (its log) and mark a free task done
/// with a note. Creating tasks and changing what they ask is the office's. `was` is the task
/// before the push, which `apply` keeps for every task a grid worker pushes to; `None` for a
/// new one.
fn check_task_edit(
    was: Option<&serde_json::Value>,
    after: &serde_json::Value,
) -> Result<(), PushOutcome> {
    let Some(was) = was else {
        return Err(rejected(
            "task_office_only",
            "tasks are set by the office; a grid worker cannot create one".to_owned(),
        ));
    };
    let (old, new) = (&was["fields"], &after["fields"]);
    let keys: HashSet<&String> = [old, new]
        .iter()
        .filter_map(|f| f.as_object())
        .flat_map(|f| f.keys())
        .collect();
    let not_yours = |what: String| {
        rejected(
            "task_not_yours",
            format!(
                "a grid worker links reports to a task and marks a free task done, but may not \
                 change {what}"
            ),
        )
    };
    for key in keys {
        if key == "done_note" || old[key.as_str()] == new[key.as_str()] {
            continue;
        }
        let free_task_done = key == "status" && new["status"] == "done" && new["goal"] == "free";
        if !free_task_done {
            return Err(not_yours(format!("its `{key}`")));
        }
    }
    Ok(())
}

fn rejected(code: &str, reason: String) -> PushOutcome {
    PushOutcome::Rejected {
        code: code.to_owned(),
        reason,
    }
}

/// Open-conflict bookkeeping: which stored open rows no longer hold, and which current
/// conflicts have no open row yet.
fn conflict_diff<'a>(
    open: &[KnownConflict],
    current: &'a [NewConflict],
) -> (Vec<i64>, Vec<&'a NewConflict>) {
    let current_keys: HashSet<(&str, &str)> = current
        .iter()
        .map(|c| (c.path.as_str(), c.code.as_str()))
        .collect();
    let open_keys: HashSet<(&str, &str)> = open
        .iter()
        .map(|o| (o.path.as_str(), o.code.as_str()))
        .collect();
    let gone = open
        .iter()
        .filter(|o| !current_keys.contains(&(o.path.as_str(), o.code.as_str())))
        .map(|o| o.id)
        .collect();
    let new = current
        .iter()
        .filter(|c| !open_keys.contains(&(c.path.as_str(), c.code.as_str())))
        .collect();
    (gone, new)
}

/// `value` as JSON text, written by serde_json straight into the string, where `to_string`
/// (`Display`) hands each token through a formatter: a projection and its public copy are
/// written at every ingest. It cannot fail, as a `Value`'s keys are strings and a `Vec` takes
/// every write.
fn json_text(value: &serde_json::Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_reports_are_read_in_runs_within_the_byte_bound_and_never_none_at_a_time() {
        let ids: Vec<DocId> = (1..=5).map(DocId::from_u128).collect();
        let sizes: HashMap<DocId, i64> = ids
            .iter()
            .copied()
            .zip([READ_BYTES / 2, READ_BYTES / 2, 1, 3 * READ_BYTES, 10])
            .collect();
        let mut runs = Vec::new();
        let mut next = 0;
        while next < ids.len() {
            let run = next_run(&ids[next..], &sizes);
            runs.push(run.len());
            next += run.len();
        }
        // Two halves fill a run; a report larger than the bound is read alone.
        assert_eq!(runs, [2, 1, 1, 1]);
    }
}
