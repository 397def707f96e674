//! The rules of ingest and pull that both stores share: what to write for a pushed document and
//! which body to send for a pulled one. The stores fetch rows and run the SQL around these.

use std::collections::HashSet;

use gridsync_core::DocId;
use gridsync_core::ingest::{Ingested, NewChange, Refusal, ingest};
use gridsync_core::protocol::{self, Hash, PullBody, PushDoc, PushOutcome};
use gridsync_core::report::ReportDoc;
use gridsync_core::schema::{Access, Registry};

use crate::store::{Result, StoreError, Writer, heads_to_bytes};

/// Code of a conflict row holding concurrent values of one field.
pub const CONCURRENT_VALUES: &str = "concurrent_values";

/// A stored document as ingest needs it, with what scope was decided from last time.
#[derive(Debug)]
pub struct Loaded {
    pub doc: ReportDoc,
    pub snapshot_len: i64,
    pub incremental_bytes: i64,
    pub org_path: String,
    pub restricted: bool,
    pub assigned_to: Option<String>,
}

/// A pushed document after automerge accepted it, before scope and storage.
#[derive(Debug)]
pub struct Applied {
    doc: ReportDoc,
    ingested: Ingested,
    before: Option<Loaded>,
}

impl Applied {
    /// The grid the report belongs to, whose org path the store looks up.
    pub fn grid(&self) -> &str {
        &self.ingested.meta.grid
    }
}

/// What to write for one document. The store assigns `changes` consecutive sequence numbers.
#[derive(Debug)]
pub struct DocWrite {
    pub id: DocId,
    pub is_new: bool,
    pub kind: String,
    pub schema_version: i64,
    pub grid_id: String,
    pub org_path: String,
    pub restricted: bool,
    pub assigned_to: Option<String>,
    pub heads: Vec<u8>,
    pub projection: String,
    pub status: Option<String>,
    pub has_conflicts: bool,
    pub problems: String,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub changes: Vec<NewChange>,
    /// A fresh snapshot when the incremental bytes outgrew the old one; it covers every change
    /// up to and including this write, so the store stamps it with this write's last sequence.
    pub snapshot: Option<Vec<u8>>,
    /// Bytes of changes after the snapshot, once this write is stored.
    pub incremental_bytes: i64,
    /// Open conflicts as (path, code, detail JSON).
    pub conflicts: Vec<(String, String, String)>,
}

/// The acknowledgement for a document and, when something was new, what to write.
#[derive(Debug)]
pub struct Plan {
    pub outcome: PushOutcome,
    pub write: Option<DocWrite>,
}

/// Applies pushed changes to the stored document (or to a new one).
pub fn apply(
    loaded: Option<Loaded>,
    item: &PushDoc,
    writer: &Writer,
    registry: &Registry,
) -> Result<Applied, PushOutcome> {
    let mut doc = match &loaded {
        Some(l) => l.doc.clone(),
        None => ReportDoc::empty(item.doc),
    };
    match ingest(&mut doc, &item.changes, &writer.user_id, registry) {
        Ok(ingested) => Ok(Applied {
            doc,
            ingested,
            before: loaded,
        }),
        Err(Refusal::MissingDeps(missing)) => Err(PushOutcome::MissingDeps {
            missing: missing.iter().map(|h| h.0).collect(),
        }),
        Err(refusal) => Err(rejected(refusal.code(), refusal.to_string())),
    }
}

/// Checks the writer's scope against the report before and after the push, and builds the write.
/// Checking both stops a worker from taking over a case by assigning it to themselves.
pub fn plan(
    applied: Applied,
    org_path: Option<String>,
    writer: &Writer,
    registry: &Registry,
) -> Result<Plan, PushOutcome> {
    let Applied {
        mut doc,
        ingested,
        before,
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
    let was_allowed = before.as_ref().is_none_or(|b| {
        writer
            .scope
            .allows(&b.org_path, b.restricted, b.assigned_to.as_deref())
    });
    if !was_allowed
        || !writer
            .scope
            .allows(&org_path, restricted, assigned_to.as_deref())
    {
        return Err(rejected(
            "out_of_scope",
            "this report is outside what you may edit".to_owned(),
        ));
    }
    let outcome = PushOutcome::Acked {
        heads: ingested.heads.iter().map(|h| h.0).collect(),
    };
    if ingested.new_changes.is_empty() {
        return Ok(Plan {
            outcome,
            write: None,
        });
    }
    let added: i64 = ingested
        .new_changes
        .iter()
        .map(|c| c.bytes.len() as i64)
        .sum();
    let (snapshot_len, incremental) = before
        .as_ref()
        .map_or((0, 0), |b| (b.snapshot_len, b.incremental_bytes));
    // Compaction: once the changes after the snapshot outweigh it, a new snapshot is smaller
    // to serve and quicker to load than the two together.
    let (snapshot, incremental_bytes) = if before.is_none() || incremental + added > snapshot_len {
        (Some(doc.save()), 0)
    } else {
        (None, incremental + added)
    };
    let mut conflicts: Vec<(String, String, String)> = ingested
        .conflicts
        .iter()
        .map(|c| {
            (
                c.path.to_string(),
                CONCURRENT_VALUES.to_owned(),
                serde_json::to_string(&c.values).unwrap_or_default(),
            )
        })
        .collect();
    conflicts.extend(ingested.flags.iter().map(|f| {
        (
            format!("log[{}]", f.entry),
            f.code.clone(),
            serde_json::to_string(&f.message).unwrap_or_default(),
        )
    }));
    let status = schema
        .status_field
        .as_ref()
        .and_then(|f| ingested.projection["fields"][f.as_str()].as_str())
        .map(str::to_owned);
    let write = DocWrite {
        id: doc.id(),
        is_new: before.is_none(),
        kind: meta.kind.clone(),
        schema_version: i64::from(meta.schema_version),
        grid_id: meta.grid.clone(),
        org_path,
        restricted,
        assigned_to,
        heads: heads_to_bytes(&ingested.heads),
        projection: ingested.projection.to_string(),
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
    };
    Ok(Plan {
        outcome,
        write: Some(write),
    })
}

fn rejected(code: &str, reason: String) -> PushOutcome {
    PushOutcome::Rejected {
        code: code.to_owned(),
        reason,
    }
}

/// One document of a pull page, as listed from the documents table.
#[derive(Debug, Clone)]
pub struct PageDoc {
    pub id: DocId,
    pub seq: i64,
    pub heads: Vec<u8>,
    pub snapshot_len: i64,
    pub snapshot_seq: i64,
    pub incremental_bytes: i64,
}

/// A change-log row fetched for a pull.
#[derive(Debug, Clone)]
pub struct PulledChange {
    pub seq: i64,
    pub device_id: Option<String>,
    pub bytes: Vec<u8>,
}

/// What to send for one document.
#[derive(Debug)]
pub enum Body {
    /// The stored snapshot followed by the changes after it.
    Snapshot,
    Changes(Vec<Vec<u8>>),
    /// Everything new is the caller's own; its push ack already told it the heads.
    Skip,
}

/// Chooses changes past the cursor, or the snapshot when the client has nothing of the
/// document yet (`full`) or the changes would outweigh the snapshot.
pub fn choose_body(
    doc: &PageDoc,
    full: bool,
    changes: &[PulledChange],
    device: Option<&str>,
) -> Body {
    if full {
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
    Body::Changes(theirs.into_iter().map(|c| c.bytes.clone()).collect())
}

/// A snapshot body: automerge loads a saved document followed by raw changes as one document.
pub fn snapshot_body(snapshot: Vec<u8>, doc: &PageDoc, changes: &[PulledChange]) -> PullBody {
    let mut bytes = snapshot;
    for c in changes.iter().filter(|c| c.seq > doc.snapshot_seq) {
        bytes.extend_from_slice(&c.bytes);
    }
    PullBody::Snapshot(bytes)
}

pub fn body_len(body: &PullBody) -> usize {
    match body {
        PullBody::Snapshot(s) => s.len(),
        PullBody::Changes(c) => c.iter().map(Vec::len).sum(),
    }
}

/// Open-conflict bookkeeping: which stored open rows (id, path, code) no longer hold, and which
/// current conflicts have no open row yet.
pub fn conflict_diff<'a>(
    open: &[(i64, String, String)],
    current: &'a [(String, String, String)],
) -> (Vec<i64>, Vec<&'a (String, String, String)>) {
    let current_keys: HashSet<(&str, &str)> = current
        .iter()
        .map(|(p, c, _)| (p.as_str(), c.as_str()))
        .collect();
    let open_keys: HashSet<(&str, &str)> = open
        .iter()
        .map(|(_, p, c)| (p.as_str(), c.as_str()))
        .collect();
    let gone = open
        .iter()
        .filter(|(_, p, c)| !current_keys.contains(&(p.as_str(), c.as_str())))
        .map(|(id, _, _)| *id)
        .collect();
    let new = current
        .iter()
        .filter(|(p, c, _)| !open_keys.contains(&(p.as_str(), c.as_str())))
        .collect();
    (gone, new)
}

/// The scope digest over stored (document id, heads) rows.
pub fn digest<'a>(rows: impl Iterator<Item = (&'a str, &'a [u8])>) -> Result<Hash> {
    let mut parsed: Vec<(DocId, Vec<Hash>)> = Vec::new();
    for (id, heads) in rows {
        let id: DocId = id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("document id {id}")))?;
        let heads = heads
            .chunks_exact(32)
            .filter_map(|c| <Hash>::try_from(c).ok())
            .collect();
        parsed.push((id, heads));
    }
    Ok(protocol::scope_digest(
        parsed.iter().map(|(id, h)| (*id, h.as_slice())),
    ))
}
