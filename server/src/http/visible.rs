//! Reports as an office caller reaches them, shared by the handlers of reports, conflicts,
//! attachments, held work and exports: the report when the caller's scope holds it (404
//! otherwise, so ids cannot be probed), what of it they may read, the audit of restricted
//! reads, and how an office edit of it is checked and ingested like a phone's push.

use std::str::FromStr;

use automerge::ChangeHash;
use gridsync_core::DocId;
use gridsync_core::conflict::FieldPath;
use gridsync_core::protocol::{Push, PushDoc, PushOutcome, PushResult};
use gridsync_core::report::{LOG_ENTRY_KEYS, ReportDoc};
use gridsync_core::schema::Schema;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::clock;
use crate::scope::{Role, Scope};
use crate::store::{AuditEntry, DocumentRow, Store, Writer};

pub(super) fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("report {id} not found"))
}

/// The report `id` when the caller's scope holds it; otherwise 404, as for a report that does
/// not exist, so that ids cannot be probed.
pub(super) async fn visible_report(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<DocumentRow, ApiError> {
    report_in(state.store.as_ref(), &caller.scope, id).await
}

/// The report `id` of `store` when `scope` holds it; otherwise 404, as for a missing report.
pub(crate) async fn report_in(
    store: &dyn Store,
    scope: &Scope,
    id: &str,
) -> Result<DocumentRow, ApiError> {
    let doc_id: DocId = id.parse().map_err(|_| not_found(id))?;
    store
        .document(&doc_id)
        .await?
        .filter(|r| scope.allows(&r.org_path, r.restricted, r.assigned_to.as_deref()))
        .ok_or_else(|| not_found(id))
}

/// Records that the caller read restricted reports: one entry per request.
pub(super) async fn audit_reads(
    state: &AppState,
    caller: &Caller,
    ids: &[DocId],
    via: &str,
) -> Result<(), ApiError> {
    if ids.is_empty() {
        return Ok(());
    }
    state
        .store
        .audit(&AuditEntry {
            at: clock::now(),
            user_id: Some(caller.user_id().to_owned()),
            device_id: Some(caller.device_id().to_owned()),
            action: "read_report".into(),
            doc_id: (ids.len() == 1).then(|| ids[0]),
            detail: json!({
                "via": via,
                "reports": ids.iter().map(DocId::to_string).collect::<Vec<_>>(),
            }),
        })
        .await?;
    Ok(())
}

/// The report's projection as the caller may read it.
pub(super) fn redacted(state: &AppState, caller: &Caller, row: &DocumentRow) -> Value {
    let mut projection = row.projection.clone();
    if !caller.role().has_clearance() {
        match state
            .catalogue
            .current()
            .registry
            .get(&row.kind, row.schema_version)
        {
            Some(schema) => schema.redact(&mut projection),
            // Ingest refuses unknown kinds; should one be stored, show nothing of it.
            None => {
                projection["fields"] = json!({});
                projection["log"] = json!([]);
            }
        }
    }
    projection
}

/// Whether the value at a conflict or problem path (`fields.NAME`, `log[ENTRY].NAME`) is
/// sensitive. Like [`Schema::redact`], a field the schema does not declare counts as sensitive.
pub(super) fn path_is_sensitive(schema: Option<&Schema>, path: &str) -> bool {
    let Ok(path) = FieldPath::from_str(path) else {
        return false;
    };
    let Some(schema) = schema else {
        return true;
    };
    match path {
        FieldPath::Field(name) => schema.field(&name).is_none_or(|f| f.sensitive),
        FieldPath::Log { field, .. } => {
            !LOG_ENTRY_KEYS.contains(&field.as_str())
                && schema.log_field(&field).is_none_or(|f| f.sensitive)
        }
    }
}

/// Longest review or resolution note, in characters.
const MAX_NOTE_CHARS: usize = 2000;

/// The roles that review reports and resolve conflicts: everyone but the grid worker.
pub(super) const REVIEWERS: [Role; 4] = [
    Role::VillageCadre,
    Role::TownshipStaff,
    Role::DrugControlOfficer,
    Role::DistrictAdmin,
];

/// Refuses a review or resolution note that is too long or holds NUL.
pub fn check_note(note: Option<&str>) -> Result<(), ApiError> {
    match note {
        Some(n) if n.chars().count() > MAX_NOTE_CHARS || n.contains('\0') => {
            Err(ApiError::Invalid {
                detail: format!("the note must be at most {MAX_NOTE_CHARS} characters of text"),
                problems: Vec::new(),
            })
        }
        _ => Ok(()),
    }
}

/// An edit of a report document the request itself made impossible.
pub(super) fn doc_error(e: gridsync_core::Error) -> ApiError {
    use gridsync_core::Error as E;
    match e {
        E::NoSuchLogEntry(_) | E::ReservedKey(_) | E::BadPath(_) => ApiError::Invalid {
            detail: e.to_string(),
            problems: Vec::new(),
        },
        E::NotRemoved(_) => ApiError::Conflict(e.to_string()),
        other => ApiError::Internal(other.to_string()),
    }
}

/// Ingests the changes of `doc` since `since` in the caller's name, through the same path as
/// a phone's push: scope, validation, conflicts and sequence numbers.
pub(super) async fn ingest_edit(
    state: &AppState,
    caller: &Caller,
    doc: &mut ReportDoc,
    since: &[ChangeHash],
    now: i64,
) -> Result<(), ApiError> {
    let push = Push {
        docs: vec![PushDoc {
            doc: doc.id(),
            changes: doc.changes_since(since),
        }],
    };
    let writer = Writer::office(caller.user_id(), &caller.scope, now);
    let result = state
        .ingest
        .push(state.store.as_ref(), &writer, &push)
        .await?;
    outcome(result)
}

/// The answer to an office edit, from the outcome of its ingestion: refusals the request caused
/// are client errors, anything else is the server's fault.
pub fn outcome(result: PushResult) -> Result<(), ApiError> {
    match result.docs.into_iter().next().map(|d| d.outcome) {
        Some(PushOutcome::Acked { .. }) => Ok(()),
        Some(PushOutcome::Rejected { code, reason }) => Err(match code.as_str() {
            "out_of_scope" => ApiError::OutOfScope(reason),
            // invalid_text: a NUL in text the field checks do not cover, such as the grid id.
            "unknown_grid"
            | "unknown_kind"
            | "refused"
            | "invalid_text"
            | "assignee_out_of_reach" => ApiError::Invalid {
                detail: format!("{code}: {reason}"),
                problems: Vec::new(),
            },
            _ => ApiError::Internal(format!("own edit rejected: {code}: {reason}")),
        }),
        // Office edits are refused rather than held (`Writer::hold_out_of_scope`).
        Some(PushOutcome::Held { code, reason }) => Err(ApiError::Internal(format!(
            "own edit held: {code}: {reason}"
        ))),
        Some(PushOutcome::MissingDeps { .. }) => Err(ApiError::Internal(
            "own edit missing dependencies".to_owned(),
        )),
        None => Err(ApiError::Internal("no push outcome".to_owned())),
    }
}
