//! Server-side checks of pushed changes, shared by the real server and the test reference server:
//! decode, skip what is known, refuse forged authorship, report missing dependencies, apply, and
//! check that the result is still a report of a known kind whose meta nobody rewrote.

use std::collections::{HashMap, HashSet};

use automerge::{ActorId, Change, ChangeHash};

use crate::conflict::{Conflict, Flag};
use crate::report::{Meta, Projected, ReportDoc, decode_change};
use crate::schema::{Problem, ProblemCode, Registry};
use crate::{DocId, Error};

/// A change new to the server, ready to be stored in the change log.
#[derive(Debug, Clone)]
pub struct NewChange {
    pub hash: ChangeHash,
    pub deps: Vec<ChangeHash>,
    pub bytes: Vec<u8>,
    /// Unix seconds recorded by the writing device.
    pub time: i64,
}

/// The result of applying a push to one document.
#[derive(Debug)]
pub struct Ingested {
    /// Changes the server did not have, in the order they were applied.
    pub new_changes: Vec<NewChange>,
    pub meta: Meta,
    pub heads: Vec<ChangeHash>,
    pub projection: serde_json::Value,
    /// Schema problems of the current state. Drafts are incomplete, so these are recorded for
    /// reviewers rather than refused; refusing would strand a phone's edits.
    pub problems: Vec<Problem>,
    pub conflicts: Vec<Conflict>,
    pub flags: Vec<Flag>,
}

/// Why a push to one document was not applied. Nothing of it was applied.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("dependencies missing: {} changes", .0.len())]
    MissingDeps(Vec<ChangeHash>),
    #[error("invalid change: {0}")]
    InvalidChange(String),
    #[error("change {change} is attributed to {claimed:?}, not to the pushing user {user}")]
    ForeignAuthor {
        change: ChangeHash,
        claimed: Option<String>,
        user: String,
    },
    /// A new report whose meta names someone else as its creator; ledgers list the creator.
    #[error("the report claims to be created by {claimed:?}, not by the pushing user {user}")]
    ForeignCreator { claimed: String, user: String },
    #[error("not a valid report: {0}")]
    NotAReport(String),
    #[error("report kind {kind} version {version} is not published on this server")]
    UnknownKind { kind: String, version: u32 },
    #[error("the report's meta may not change ({0})")]
    MetaChanged(&'static str),
    #[error("{0}")]
    Refused(String),
    /// Postgres text and JSONB cannot hold U+0000, and no field has a use for it.
    #[error("a text value contains the NUL character")]
    NulText,
}

impl Refusal {
    /// A stable code for the push result and for logs.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::MissingDeps(_) => "missing_deps",
            Refusal::InvalidChange(_) => "invalid_change",
            Refusal::ForeignAuthor { .. } | Refusal::ForeignCreator { .. } => "foreign_author",
            Refusal::NotAReport(_) => "not_a_report",
            Refusal::UnknownKind { .. } => "unknown_kind",
            Refusal::MetaChanged(_) => "meta_changed",
            Refusal::Refused(_) => "refused",
            Refusal::NulText => "invalid_text",
        }
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidChange(m) => Refusal::InvalidChange(m),
            other => Refusal::NotAReport(other.to_string()),
        }
    }
}

/// Applies `raw` changes pushed by `user` to `doc` (empty for a report new to the server).
///
/// On `Err`, `doc` may hold part of the batch: the caller must discard it, which the server does
/// by never saving it. Changes already in `doc` are skipped, so a retried push is a no-op.
pub fn apply(
    doc: &mut ReportDoc,
    raw: &[Vec<u8>],
    user: &str,
    registry: &Registry,
) -> Result<Ingested, Refusal> {
    apply_by(doc, raw, Some(user), registry)
}

/// Applies `raw` changes that the central server already took, as a village office hub copies
/// them into its own store: like [`apply`], except that they may be anyone's.
pub fn copy(
    doc: &mut ReportDoc,
    raw: &[Vec<u8>],
    registry: &Registry,
) -> Result<Ingested, Refusal> {
    apply_by(doc, raw, None, registry)
}

/// [`apply`] for changes all authored by `user`, or by anyone when `None`.
fn apply_by(
    doc: &mut ReportDoc,
    raw: &[Vec<u8>],
    user: Option<&str>,
    registry: &Registry,
) -> Result<Ingested, Refusal> {
    let before = doc.meta().ok();
    let mut batch: Vec<Change> = Vec::new();
    let mut in_batch = HashSet::new();
    for bytes in raw {
        let change = decode_change(bytes)?;
        let hash = change.hash();
        if !doc.has_change(&hash) && in_batch.insert(hash) {
            batch.push(change);
        }
    }
    let mut missing: Vec<ChangeHash> = batch
        .iter()
        .flat_map(|c| c.deps().iter().copied())
        .filter(|dep| !in_batch.contains(dep) && !doc.has_change(dep))
        .collect();
    if !missing.is_empty() {
        missing.sort();
        missing.dedup();
        return Err(Refusal::MissingDeps(missing));
    }
    if let Some(user) = user {
        check_authors(doc, &batch, user)?;
    }
    let new_changes: Vec<NewChange> = batch
        .iter()
        .map(|c| NewChange {
            hash: c.hash(),
            deps: c.deps().to_vec(),
            bytes: c.raw_bytes().to_vec(),
            time: c.timestamp(),
        })
        .collect();
    doc.apply_decoded(batch)?;
    // Every dependency was present, so nothing may be left waiting in automerge's queue.
    if !doc.missing_deps().is_empty() {
        return Err(Refusal::InvalidChange("changes out of causal order".into()));
    }
    check_result(doc, before.as_ref(), user, registry, new_changes)
}

/// Refuses any new change not written by `user`. automerge records the author only in an actor's
/// first change; later changes of that actor inherit it, from the document or from earlier in
/// the batch. With no dependency missing, that first change is always one or the other.
fn check_authors(doc: &ReportDoc, batch: &[Change], user: &str) -> Result<(), Refusal> {
    let mut batch_authors: HashMap<&ActorId, Option<String>> = HashMap::new();
    for change in batch {
        if change.seq() == 1 {
            let author = change
                .author()
                .map(|a| String::from_utf8_lossy(a.as_bytes()).into_owned());
            batch_authors.insert(change.actor_id(), author);
        }
    }
    for change in batch {
        let claimed = match batch_authors.get(change.actor_id()) {
            Some(author) => author.clone(),
            None => doc.author_of(change.actor_id()),
        };
        if claimed.as_deref() != Some(user) {
            return Err(Refusal::ForeignAuthor {
                change: change.hash(),
                claimed,
                user: user.to_owned(),
            });
        }
    }
    Ok(())
}

fn check_result(
    doc: &mut ReportDoc,
    before: Option<&Meta>,
    user: Option<&str>,
    registry: &Registry,
    new_changes: Vec<NewChange>,
) -> Result<Ingested, Refusal> {
    let meta = doc.meta().map_err(|e| Refusal::NotAReport(e.to_string()))?;
    check_meta(doc.id(), &meta, before, user)?;
    let schema = registry
        .get(&meta.kind, meta.schema_version)
        .ok_or_else(|| Refusal::UnknownKind {
            kind: meta.kind.clone(),
            version: meta.schema_version,
        })?;
    // Read once: the projection, the conflict scan and the rule flags all walk the log, and
    // the conflict scan takes the conflicted keys the projection noted on its way.
    let log = doc.log_maps()?;
    let Projected {
        json: projection,
        conflicted_fields,
    } = doc.project_with_log(&meta, &log)?;
    if holds_nul(&projection) {
        return Err(Refusal::NulText);
    }
    let problems = schema.validate(&projection);
    // An anonymous kind refuses outright anything that could identify the respondent.
    if schema.anonymous
        && let Some(p) = problems.iter().find(|p| {
            matches!(
                p.code,
                ProblemCode::UnknownField | ProblemCode::IdentifyingData
            )
        })
    {
        return Err(Refusal::Refused(format!("{}: {}", p.path, p.message)));
    }
    let conflicts = doc.conflicts_with_log(&conflicted_fields, &log)?;
    let flags = doc.flags_with_log(&schema.rules, &log)?;
    Ok(Ingested {
        new_changes,
        heads: doc.heads(),
        meta,
        projection,
        problems,
        conflicts,
        flags,
    })
}

/// The meta is written once: by its creator, who must be the user pushing it, and never again.
fn check_meta(
    id: DocId,
    meta: &Meta,
    before: Option<&Meta>,
    user: Option<&str>,
) -> Result<(), Refusal> {
    if meta.id != id {
        return Err(Refusal::MetaChanged("id"));
    }
    let Some(before) = before else {
        if let Some(user) = user
            && meta.created_by != user
        {
            return Err(Refusal::ForeignCreator {
                claimed: meta.created_by.clone(),
                user: user.to_owned(),
            });
        }
        return Ok(());
    };
    if meta.kind != before.kind {
        return Err(Refusal::MetaChanged("kind"));
    }
    if meta.schema_version != before.schema_version {
        return Err(Refusal::MetaChanged("schema_version"));
    }
    if meta.grid != before.grid {
        return Err(Refusal::MetaChanged("grid"));
    }
    if meta.created_by != before.created_by || meta.created_at != before.created_at {
        return Err(Refusal::MetaChanged("created"));
    }
    Ok(())
}

/// Whether any string in `value`, key or value, contains U+0000. Phones apply the same rule
/// before writing, so they never keep a report the server would refuse for it.
pub fn holds_nul(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}
