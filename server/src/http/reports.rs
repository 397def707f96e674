//! Reports under `/api/v1/reports`: filtered lists, one report, its history, edits from the
//! office (made into automerge changes and ingested exactly like a phone's push) and review
//! states. Every read is filtered by the caller's scope in SQL, sensitive values are redacted
//! for roles without clearance, and every read of a restricted kind is audited.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use automerge::ChangeHash;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use gridsync_core::DocId;
use gridsync_core::history::LogTouch;
use gridsync_core::report::{Editor, LOG_ENTRY_KEYS, ReportDoc};
use gridsync_core::schema::{Problem as SchemaProblem, ProblemCode, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::conflicts::{ConflictView, conflict_view};
use super::org::valid_unit_id;
use super::query::{Params, decode_cursor, encode_cursor};
use super::stats::unit_in_scope;
use super::visible::{
    REVIEWERS, audit_reads, check_note, doc_error, ingest_edit, not_found, path_is_sensitive,
    redacted, visible_report,
};
use super::{ApiError, AppState, Json, Path, Problem};
use crate::auth::Caller;
use crate::clock;
use crate::scope::Role;
use crate::store::{AuditEntry, DocumentRow, ReportQuery};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_reports, create_report))
        .routes(routes!(get_report, patch_report))
        .routes(routes!(report_history))
        .routes(routes!(review_report))
}

/// Review states, in the order a report usually goes through them.
pub const REVIEW_STATES: [&str; 3] = ["received", "needs_attention", "approved"];
/// Longest search text, in characters.
const MAX_Q_CHARS: usize = 200;

/// A report as lists show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportSummary {
    pub id: String,
    pub kind: String,
    pub schema_version: u32,
    pub grid_id: String,
    pub org_path: String,
    pub status: Option<String>,
    /// `received`, `needs_attention` or `approved`.
    pub review_state: String,
    pub has_conflicts: bool,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// The report's fields; sensitive values read `***` for roles without clearance.
    #[schema(value_type = Object)]
    pub fields: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReportList {
    pub items: Vec<ReportSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// Items of the whole filtered list. A text search (`q`) counts at most 1,000: when more
    /// match, `total` is 1,000 and `total_capped` is true.
    pub total: i64,
    pub total_capped: bool,
}

/// One report: its fields and log, what is wrong with it, and its open conflicts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportDetail {
    #[serde(flatten)]
    pub report: ReportSummary,
    /// Log entries (mediation steps, visits), each with its `id`.
    #[schema(value_type = Vec<Object>)]
    pub log: Value,
    /// The document's heads, hex.
    pub heads: Vec<String>,
    /// Schema problems of the current state: field reports are saved incomplete and fixed later.
    #[schema(value_type = Vec<Object>)]
    pub problems: Vec<SchemaProblem>,
    pub conflicts: Vec<ConflictView>,
    /// Photos, recordings and documents the report names, whether or not uploaded yet.
    pub attachments: Vec<super::attachments::AttachmentListing>,
}

/// One change of a report's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// The change hash, hex.
    pub hash: String,
    /// Server sequence number; absent for changes whose log row was pruned.
    pub seq: Option<i64>,
    pub author: Option<String>,
    /// The device that pushed it; absent for edits made in the browser.
    pub device_id: Option<String>,
    /// Unix seconds as the writing device recorded them.
    pub time: i64,
    /// Whether this change created the report.
    pub created: bool,
    /// Top-level fields it set or cleared.
    pub fields: Vec<String>,
    /// Log entries it added, edited or removed: `{entry, action, fields}`.
    #[schema(value_type = Vec<Object>)]
    pub log: Vec<LogTouch>,
    /// Attachments it added, changed or removed, by sha256.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReportHistory {
    pub id: String,
    /// Oldest first.
    pub changes: Vec<HistoryEntry>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "kind": "dispute_check",
    "grid_id": "shiqiao-1",
    "fields": {
        "category": "neighbour",
        "description": "两户因宅基地边界发生争执",
        "found_on": "2026-12-01",
        "risk_level": "low",
        "status": "reported",
    },
}))]
pub struct NewReport {
    #[schema(example = "dispute_check")]
    pub kind: String,
    #[schema(pattern = "^[a-z0-9-]{1,64}$", example = "shiqiao-1")]
    pub grid_id: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

/// Edits of one report, applied in this order: fields, appended, edited and removed entries.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "fields": { "status": "mediating", "next_follow_up": "2026-12-10" },
    "log_append": [{
        "date": "2026-12-03",
        "mediator": "5e04538d-99b5-48df-b225-3a477de99441",
        "method": "村委会组织双方当面调解",
    }],
    "log_edit": {
        "b693eb6c-7a71-4412-8d93-015a87442641": { "outcome": "双方同意重新丈量边界" },
    },
    "log_remove": [],
}))]
pub struct ReportPatch {
    /// Fields to set; `null` clears one.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
    /// New log entries.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub log_append: Vec<Map<String, Value>>,
    /// Fields to set on existing entries, by entry id.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, Object>)]
    pub log_edit: BTreeMap<String, Map<String, Value>>,
    /// Ids of entries to remove.
    #[serde(default)]
    pub log_remove: Vec<String>,
}

impl NewReport {
    /// Checks the values against `schema` for a caller of `role`, before anything is written.
    pub fn check(&self, schema: &Schema, role: Role) -> Result<(), ApiError> {
        check_writes(schema, role, &self.fields, &[], &BTreeMap::new())
    }

    /// The new report document `id`, with its fields, written by `editor`.
    pub fn to_doc(
        &self,
        schema: &Schema,
        id: DocId,
        editor: &Editor,
    ) -> Result<ReportDoc, ApiError> {
        let mut doc = ReportDoc::create(id, &schema.kind, schema.version, &self.grid_id, editor)
            .map_err(doc_error)?;
        if !self.fields.is_empty() {
            doc.set_fields(&self.fields, editor).map_err(doc_error)?;
        }
        Ok(doc)
    }
}

impl ReportPatch {
    /// Checks the values against `schema` for a caller of `role`, before anything is written.
    pub fn check(&self, schema: &Schema, role: Role) -> Result<(), ApiError> {
        check_writes(schema, role, &self.fields, &self.log_append, &self.log_edit)
    }

    /// Makes the edits as changes of `doc` by `editor`.
    pub fn apply(&self, doc: &mut ReportDoc, editor: &Editor) -> Result<(), ApiError> {
        if !self.fields.is_empty() {
            doc.set_fields(&self.fields, editor).map_err(doc_error)?;
        }
        for entry in &self.log_append {
            doc.append_log(entry, editor).map_err(doc_error)?;
        }
        for (entry, values) in &self.log_edit {
            doc.edit_log(entry, values, editor).map_err(doc_error)?;
        }
        for entry in &self.log_remove {
            doc.remove_log(entry, editor).map_err(doc_error)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    Received,
    NeedsAttention,
    Approved,
}

impl ReviewState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewState::Received => "received",
            ReviewState::NeedsAttention => "needs_attention",
            ReviewState::Approved => "approved",
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "state": "needs_attention", "note": "请补充调解协议照片" }))]
pub struct ReviewRequest {
    pub state: ReviewState,
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewResult {
    pub id: String,
    pub review_state: ReviewState,
    pub previous: String,
}

/// Reports in the caller's scope, newest first.
#[utoipa::path(get, path = "/api/v1/reports", tag = "reports", security(("bearer" = [])),
    params(
        ("kind" = Option<String>, Query, description = "report kind"),
        ("org" = Option<String>, Query, description = "org unit id: reports of its subtree"),
        ("status" = Option<String>, Query),
        ("review_state" = Option<String>, Query, description = "received, needs_attention or approved"),
        ("updated_since" = Option<String>, Query, description = "unix seconds or RFC 3339; inclusive"),
        ("q" = Option<String>, Query, description = "text to find in the report, ignoring case"),
        ("has_conflicts" = Option<bool>, Query),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
    ),
    responses(
        (status = 200, body = ReportList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "org is not a unit in the caller's scope",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_reports(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<ReportList>, ApiError> {
    let p = Params::parse(
        &uri,
        &[
            "kind",
            "org",
            "status",
            "review_state",
            "updated_since",
            "q",
            "has_conflicts",
            "cursor",
            "limit",
        ],
    )?;
    let org_path = match p.get("org") {
        Some(org) => Some(unit_in_scope(&state, &caller, org).await?.path),
        None => None,
    };
    let after = match p.get("cursor") {
        Some(cursor) => {
            let mut parts = decode_cursor(cursor, 2)?;
            let at = parts[0]
                .parse::<i64>()
                .map_err(|_| ApiError::BadRequest("`cursor` is not valid".into()))?;
            Some((at, parts.remove(1)))
        }
        None => None,
    };
    let q = p.string("q");
    if q.as_ref().is_some_and(|q| q.chars().count() > MAX_Q_CHARS) {
        return Err(ApiError::BadRequest(format!(
            "`q` is longer than {MAX_Q_CHARS} characters"
        )));
    }
    let query = ReportQuery {
        kind: p.string("kind"),
        org_path,
        status: p.string("status"),
        review_state: p.one_of("review_state", &REVIEW_STATES)?,
        updated_since: p.time("updated_since")?,
        q,
        q_redacted: !caller.role().has_clearance(),
        has_conflicts: p.bool("has_conflicts")?,
        after,
        limit: p.limit()?,
    };
    let page = state.store.list_reports(&caller.scope, &query).await?;
    let next_cursor = page
        .items
        .last()
        .filter(|_| page.more)
        .map(|r| encode_cursor(&[&r.updated_at.to_string(), &r.id.to_string()]));
    let restricted: Vec<DocId> = page
        .items
        .iter()
        .filter(|r| r.restricted)
        .map(|r| r.id)
        .collect();
    audit_reads(&state, &caller, &restricted, "list").await?;
    let items = page
        .items
        .iter()
        .map(|r| summary(r, &redacted(&state, &caller, r)))
        .collect();
    Ok(Json(ReportList {
        items,
        next_cursor,
        total: page.total,
        total_capped: page.total_capped,
    }))
}

/// One report. A report outside the caller's scope is answered 404, like a missing one.
#[utoipa::path(get, path = "/api/v1/reports/{id}", tag = "reports", security(("bearer" = [])),
    params(("id" = String, Path, description = "report id", example = "857e5181-eeac-415c-b874-77046e0be110")),
    responses(
        (status = 200, body = ReportDetail),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_report(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ReportDetail>, ApiError> {
    let row = visible_report(&state, &caller, &id).await?;
    if row.restricted {
        audit_reads(&state, &caller, &[row.id], "report").await?;
    }
    Ok(Json(detail(&state, &caller, row).await?))
}

/// Every change of a report, oldest first: who, when, from which device, and what it touched.
#[utoipa::path(get, path = "/api/v1/reports/{id}/history", tag = "reports",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "report id", example = "857e5181-eeac-415c-b874-77046e0be110")),
    responses(
        (status = 200, body = ReportHistory),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn report_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ReportHistory>, ApiError> {
    let row = visible_report(&state, &caller, &id).await?;
    let mut doc = state
        .store
        .load_doc(&row.id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let logged: HashMap<ChangeHash, (i64, Option<String>)> = state
        .store
        .changes_of(&row.id)
        .await?
        .into_iter()
        .map(|c| (c.hash, (c.seq, c.device_id)))
        .collect();
    let history = doc
        .history()
        .map_err(|e| ApiError::Internal(format!("history of {id}: {e}")))?;
    let mut changes: Vec<HistoryEntry> = history
        .into_iter()
        .map(|s| {
            let (seq, device_id) = ChangeHash::from_str(&s.hash)
                .ok()
                .and_then(|h| logged.get(&h).cloned())
                .unzip();
            HistoryEntry {
                hash: s.hash,
                seq,
                author: s.author,
                device_id: device_id.flatten(),
                time: s.time,
                created: s.created,
                fields: s.fields,
                log: s.log,
                attachments: s.attachments,
            }
        })
        .collect();
    // Server order; pruned changes (no sequence) are the oldest and keep their causal order.
    changes.sort_by_key(|c| c.seq.unwrap_or(0));
    if row.restricted {
        audit_reads(&state, &caller, &[row.id], "history").await?;
    }
    Ok(Json(ReportHistory {
        id: row.id.to_string(),
        changes,
    }))
}

/// Creates a report from the browser: the server writes the automerge changes in the caller's
/// name and ingests them like a phone's push. Incomplete reports are saved; their problems are
/// in the answer.
#[utoipa::path(post, path = "/api/v1/reports", tag = "reports", security(("bearer" = [])),
    request_body = NewReport,
    responses(
        (status = 201, body = ReportDetail),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "the grid or the case is outside the caller's scope",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "unknown kind or grid, or invalid values",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_report(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewReport>,
) -> Result<(StatusCode, Json<ReportDetail>), ApiError> {
    let registry = state.registry().await?;
    let schema = registry
        .latest(&body.kind)
        .ok_or_else(|| ApiError::Invalid {
            detail: format!("unknown report kind {:?}", body.kind),
            problems: Vec::new(),
        })?;
    body.check(schema, caller.role())?;
    // A grid outside the caller's scope and a missing one answer alike, so that grid ids cannot
    // be probed. Ingest tells an unknown grid (422) over the whole district, and a malformed
    // id, which names no unit anywhere.
    if valid_unit_id(&body.grid_id) && !caller.scope.prefix.is_empty() {
        unit_in_scope(&state, &caller, &body.grid_id)
            .await
            .map_err(|e| match e {
                ApiError::NotFound(_) => {
                    ApiError::OutOfScope("`grid_id` names no grid you may write in".to_owned())
                }
                other => other,
            })?;
    }
    let now = clock::now();
    let mut doc = body.to_doc(schema, DocId::new_v4(), &Editor::new(caller.user_id(), now))?;
    let id = doc.id();
    ingest_edit(&state, &caller, &mut doc, &[], now).await?;
    let row = state
        .store
        .document(&id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("report {id} missing after ingest")))?;
    if row.restricted {
        audit_reads(&state, &caller, &[row.id], "create").await?;
    }
    Ok((
        StatusCode::CREATED,
        Json(detail(&state, &caller, row).await?),
    ))
}

/// Edits a report from the browser, as changes in the caller's name ingested like a phone's.
#[utoipa::path(patch, path = "/api/v1/reports/{id}", tag = "reports", security(("bearer" = [])),
    params(("id" = String, Path, description = "report id", example = "857e5181-eeac-415c-b874-77046e0be110")),
    request_body = ReportPatch,
    responses(
        (status = 200, body = ReportDetail),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn patch_report(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<ReportPatch>,
) -> Result<Json<ReportDetail>, ApiError> {
    let row = visible_report(&state, &caller, &id).await?;
    let registry = state.registry().await?;
    let schema = registry
        .get(&row.kind, row.schema_version)
        .ok_or_else(|| ApiError::Internal(format!("report {id} of unknown kind {}", row.kind)))?;
    body.check(schema, caller.role())?;
    let mut doc = state
        .store
        .load_doc(&row.id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let before = doc.heads();
    let now = clock::now();
    body.apply(&mut doc, &Editor::new(caller.user_id(), now))?;
    ingest_edit(&state, &caller, &mut doc, &before, now).await?;
    let row = state
        .store
        .document(&row.id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    if row.restricted {
        audit_reads(&state, &caller, &[row.id], "edit").await?;
    }
    Ok(Json(detail(&state, &caller, row).await?))
}

/// Sets a report's review state; audited. Not for grid workers.
#[utoipa::path(post, path = "/api/v1/reports/{id}/review", tag = "reports",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "report id", example = "857e5181-eeac-415c-b874-77046e0be110")),
    request_body = ReviewRequest,
    responses(
        (status = 200, body = ReviewResult),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn review_report(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<ReviewRequest>,
) -> Result<Json<ReviewResult>, ApiError> {
    caller.require_role(&REVIEWERS)?;
    check_note(body.note.as_deref())?;
    let row = visible_report(&state, &caller, &id).await?;
    let audit = AuditEntry {
        at: clock::now(),
        user_id: Some(caller.user_id().to_owned()),
        device_id: Some(caller.device_id().to_owned()),
        action: "review".into(),
        doc_id: Some(row.id),
        detail: json!({
            "from": row.review_state,
            "to": body.state.as_str(),
            "note": body.note,
        }),
    };
    if !state
        .store
        .set_review_state(&row.id, body.state.as_str(), &audit)
        .await?
    {
        return Err(not_found(&id));
    }
    Ok(Json(ReviewResult {
        id: row.id.to_string(),
        review_state: body.state,
        previous: row.review_state,
    }))
}

fn summary(row: &DocumentRow, projection: &Value) -> ReportSummary {
    ReportSummary {
        id: row.id.to_string(),
        kind: row.kind.clone(),
        schema_version: row.schema_version,
        grid_id: row.grid_id.clone(),
        org_path: row.org_path.clone(),
        status: row.status.clone(),
        review_state: row.review_state.clone(),
        has_conflicts: row.has_conflicts,
        created_by: row.created_by.clone(),
        created_at: row.created_at,
        updated_at: row.updated_at,
        fields: projection.get("fields").cloned().unwrap_or(json!({})),
    }
}

async fn detail(
    state: &AppState,
    caller: &Caller,
    row: DocumentRow,
) -> Result<ReportDetail, ApiError> {
    let registry = state.registry().await?;
    let schema = registry.get(&row.kind, row.schema_version);
    let cleared = caller.role().has_clearance();
    let projection = redacted(state, caller, &row);
    let problems: Vec<SchemaProblem> =
        serde_json::from_value(row.problems.clone()).unwrap_or_default();
    let problems = problems
        .into_iter()
        .map(|mut p| {
            // A message may quote the value.
            if !cleared && path_is_sensitive(schema, &p.path) {
                p.message = p.code.as_str().to_owned();
            }
            p
        })
        .collect();
    let conflicts = state
        .store
        .conflicts_of(&row.id)
        .await?
        .into_iter()
        .filter(|c| c.resolved_at.is_none())
        .map(|c| conflict_view(c, &row.kind, &row.grid_id, schema, cleared))
        .collect();
    let attachments = super::attachments::listing(state, caller, &row, &projection).await?;
    Ok(ReportDetail {
        attachments,
        report: summary(&row, &projection),
        log: projection.get("log").cloned().unwrap_or(json!([])),
        heads: row.heads.iter().map(ChangeHash::to_string).collect(),
        problems,
        conflicts,
    })
}

/// Problems of the values an edit writes: a value of the wrong type, an unknown choice or
/// field, text too long. A missing required field is not one: that is a problem of the report,
/// saved and shown for later. A role without clearance may not write sensitive fields, which it
/// cannot read.
fn check_writes(
    schema: &Schema,
    role: Role,
    fields: &Map<String, Value>,
    appended: &[Map<String, Value>],
    edited: &BTreeMap<String, Map<String, Value>>,
) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    let mut sensitive = Vec::new();
    for (name, value) in fields {
        if path_is_sensitive(Some(schema), &format!("fields.{name}")) {
            sensitive.push(name.clone());
        }
        if !value.is_null() {
            problems.extend(schema.validate_field(name, value));
        }
    }
    let entries = appended.iter().chain(edited.values());
    if schema.log.is_none() && (!appended.is_empty() || !edited.is_empty()) {
        problems.push(problem(
            "log",
            ProblemCode::LogNotAllowed,
            format!("{} reports have no log", schema.kind),
        ));
    }
    for entry in entries.filter(|_| schema.log.is_some()) {
        for (name, value) in entry {
            if LOG_ENTRY_KEYS.contains(&name.as_str()) {
                problems.push(problem(
                    &format!("log.{name}"),
                    ProblemCode::UnknownField,
                    format!("`{name}` is kept by the server and cannot be written"),
                ));
                continue;
            }
            if schema.log_field(name).is_none_or(|f| f.sensitive) {
                sensitive.push(format!("log.{name}"));
            }
            if !value.is_null() {
                problems.extend(schema.validate_log_field(name, value));
            }
        }
    }
    problems.retain(|p| p.code != ProblemCode::Required);
    if has_nul(fields.values())
        || appended
            .iter()
            .chain(edited.values())
            .any(|e| has_nul(e.values()))
    {
        problems.push(problem(
            "",
            ProblemCode::WrongType,
            "text may not contain the NUL character".into(),
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::Invalid {
            detail: format!("{} value(s) are not valid", problems.len()),
            problems,
        });
    }
    if !role.has_clearance() && !sensitive.is_empty() {
        return Err(ApiError::Forbidden(format!(
            "the role {role} may not write personal data ({})",
            sensitive.join(", ")
        )));
    }
    Ok(())
}

fn has_nul<'a>(mut values: impl Iterator<Item = &'a Value>) -> bool {
    values.any(|v| match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => has_nul(items.iter()),
        Value::Object(map) => map.keys().any(|k| k.contains('\0')) || has_nul(map.values()),
        _ => false,
    })
}

fn problem(path: &str, code: ProblemCode, message: String) -> SchemaProblem {
    SchemaProblem::new(path, code, message)
}
