//! Conflicts under `/api/v1/conflicts`: the open ones in the caller's scope, and resolving one.
//! Concurrent values of a field, and a log entry edited after its removal (restored, or its
//! removal confirmed), are resolved by a change in the resolver's name, ingested like any edit,
//! after which ingest closes the conflict; a rule flag is marked resolved.

use std::str::FromStr;

use axum::extract::State;
use axum::http::Uri;
use gridsync_core::DocId;
use gridsync_core::conflict::{EDITED_AFTER_REMOVAL, FieldPath, flagged_entry};
use gridsync_core::report::Editor;
use gridsync_core::schema::{ProblemCode, REDACTED, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::query::{Params, decode_cursor, encode_cursor};
use super::stats::unit_in_scope;
use super::visible::{
    REVIEWERS, audit_reads, check_note, doc_error, ingest_edit, path_is_sensitive,
};
use super::{ApiError, AppState, Json, Path, Problem};
use crate::auth::Caller;
use crate::clock;
use crate::store::{AuditEntry, ConflictQuery, ConflictRow};
use crate::sync::CONCURRENT_VALUES;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_conflicts))
        .routes(routes!(resolve_conflict))
}

/// A conflict of one report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictView {
    pub id: i64,
    pub report_id: String,
    pub kind: String,
    pub grid_id: String,
    /// `fields.NAME`, `log[ENTRY].NAME`, or `log[ENTRY]` for a rule flag.
    pub path: String,
    /// `concurrent_values`, `edited_after_removal` (a log entry someone edited while someone
    /// else removed it), or the code of the rule that flagged it.
    pub code: String,
    /// For `concurrent_values`, the values (`value`, `author`, `time`, `change`), the shown one
    /// first; sensitive values read `***` for roles without clearance. For
    /// `edited_after_removal`: `message` (`zh`, `en`), `removed_by`, `removed_at`,
    /// `edited_by` and the entry's `values` as they were when the flag was raised, sensitive ones
    /// `***` for roles without clearance. For a rule flag, its message.
    #[schema(schema_with = detail_schema)]
    pub detail: Value,
    pub detected_at: i64,
    pub resolved_at: Option<i64>,
    pub resolved_by: Option<String>,
}

/// The three shapes of [`ConflictView::detail`], as ingest writes them (`sync::ingest`).
fn detail_schema() -> utoipa::openapi::Schema {
    let message = json!({
        "type": "object",
        "required": ["zh", "en"],
        "properties": { "zh": { "type": "string" }, "en": { "type": "string" } },
    });
    let shape = json!({ "oneOf": [
        {
            "title": "concurrent_values",
            "type": "array",
            "minItems": 2,
            "items": {
                "type": "object",
                "required": ["value", "actor", "time", "change"],
                "properties": {
                    "value": { "description": "any JSON value of the field; `***` when redacted" },
                    "author": { "type": ["string", "null"] },
                    "actor": { "type": "string" },
                    "time": { "type": "integer", "description": "Unix seconds on the writing device" },
                    "change": { "type": "string", "description": "hash of the change, hex" },
                },
            },
        },
        {
            "title": "edited_after_removal",
            "type": "object",
            "required": ["message", "removed_by", "removed_at", "edited_by", "values"],
            "properties": {
                "message": message,
                "removed_by": { "type": "string" },
                "removed_at": { "type": "string", "description": "RFC 3339" },
                "edited_by": { "type": "array", "items": { "type": "string" } },
                "values": { "type": "object" },
            },
        },
        { "title": "rule flag", "allOf": [message], "not": { "required": ["message"] } },
    ]});
    serde_json::from_value(shape).expect("the conflict detail schema is valid OpenAPI")
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictList {
    pub items: Vec<ConflictView>,
    pub next_cursor: Option<String>,
    pub total: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "value": "high", "note": "与网格员电话核实，风险等级为高" }))]
pub struct ResolveRequest {
    /// The value to keep (one of the concurrent values, or a new one; `null` clears the
    /// field). A rule flag is resolved with `null` and a note. `edited_after_removal`:
    /// `"restore"` brings the entry back with the edits it holds, `null` confirms the removal.
    #[schema(value_type = Value)]
    pub value: Value,
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

impl ResolveRequest {
    /// Checks the chosen value against the definition of the field at `path`; `null` (clearing
    /// the field) is always allowed.
    pub fn check_value(&self, schema: &Schema, path: &FieldPath) -> Result<(), ApiError> {
        if self.value.is_null() {
            return Ok(());
        }
        let mut problems = match path {
            FieldPath::Field(name) => schema.validate_field(name, &self.value),
            FieldPath::Log { field, .. } => schema.validate_log_field(field, &self.value),
        };
        problems.retain(|p| p.code != ProblemCode::Required);
        if problems.is_empty() {
            return Ok(());
        }
        Err(ApiError::Invalid {
            detail: format!("the value for {path} is not valid"),
            problems,
        })
    }
}

pub(super) fn conflict_view(
    c: ConflictRow,
    kind: &str,
    grid_id: &str,
    schema: Option<&Schema>,
    cleared: bool,
) -> ConflictView {
    let mut detail = c.detail;
    if !cleared
        && c.code == CONCURRENT_VALUES
        && path_is_sensitive(schema, &c.path)
        && let Some(values) = detail.as_array_mut()
    {
        for value in values.iter_mut().filter_map(Value::as_object_mut) {
            if value.get("value").is_some_and(|v| !v.is_null()) {
                value.insert("value".into(), json!(REDACTED));
            }
        }
    }
    if !cleared
        && c.code == EDITED_AFTER_REMOVAL
        && let Some(values) = detail.get_mut("values").and_then(Value::as_object_mut)
    {
        for (field, value) in values.iter_mut() {
            if !value.is_null() && path_is_sensitive(schema, &format!("{}.{field}", c.path)) {
                *value = json!(REDACTED);
            }
        }
    }
    ConflictView {
        id: c.id,
        report_id: c.doc_id.to_string(),
        kind: kind.to_owned(),
        grid_id: grid_id.to_owned(),
        path: c.path,
        code: c.code,
        detail,
        detected_at: c.detected_at,
        resolved_at: c.resolved_at,
        resolved_by: c.resolved_by,
    }
}

/// Open conflicts of the reports in the caller's scope, oldest first.
#[utoipa::path(get, path = "/api/v1/conflicts", tag = "conflicts", security(("bearer" = [])),
    params(
        ("kind" = Option<String>, Query, description = "report kind"),
        ("org" = Option<String>, Query, description = "org unit id: reports of its subtree"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
    ),
    responses(
        (status = 200, body = ConflictList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "org is not a unit in the caller's scope",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_conflicts(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<ConflictList>, ApiError> {
    let p = Params::parse(&uri, &["kind", "org", "cursor", "limit"])?;
    let org_path = match p.get("org") {
        Some(org) => Some(unit_in_scope(&state, &caller, org).await?.path),
        None => None,
    };
    let after = match p.get("cursor") {
        Some(cursor) => Some(
            decode_cursor(cursor, 1)?[0]
                .parse::<i64>()
                .map_err(|_| ApiError::BadRequest("`cursor` is not valid".into()))?,
        ),
        None => None,
    };
    let query = ConflictQuery {
        kind: p.string("kind"),
        org_path,
        after,
        limit: p.limit()?,
    };
    let page = state.store.list_conflicts(&caller.scope, &query).await?;
    let next_cursor = page
        .items
        .last()
        .filter(|_| page.more)
        .map(|c| encode_cursor(&[&c.conflict.id.to_string()]));
    let mut restricted: Vec<DocId> = page
        .items
        .iter()
        .filter(|c| c.restricted)
        .map(|c| c.conflict.doc_id)
        .collect();
    restricted.dedup();
    audit_reads(&state, &caller, &restricted, "conflicts").await?;
    let cleared = caller.role().has_clearance();
    let registry = state.registry().await?;
    let items = page
        .items
        .into_iter()
        .map(|c| {
            let schema = registry.get(&c.kind, c.schema_version);
            conflict_view(c.conflict, &c.kind, &c.grid_id, schema, cleared)
        })
        .collect();
    Ok(Json(ConflictList {
        items,
        next_cursor,
        total: page.total,
    }))
}

/// Resolves a conflict. Concurrent values: writes `value` over them as a change by the caller,
/// which syncs to every phone like any edit, and the conflict closes. `edited_after_removal`:
/// `"restore"` brings the removed entry back with the edits made meanwhile, `null` confirms its
/// removal; either is a change by the caller that syncs to every phone, and the conflict
/// closes. Another rule flag: `value` must be `null`; the flag is marked resolved. Not for grid
/// workers. Audited as `resolve_conflict`.
#[utoipa::path(post, path = "/api/v1/conflicts/{id}/resolve", tag = "conflicts",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "conflict id", example = "1")),
    request_body = ResolveRequest,
    responses(
        (status = 200, description = "the conflict as it now stands", body = ConflictView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "already resolved, or the entry is no longer removed",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn resolve_conflict(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<ResolveRequest>,
) -> Result<Json<ConflictView>, ApiError> {
    caller.require_role(&REVIEWERS)?;
    check_note(body.note.as_deref())?;
    let not_found = || ApiError::NotFound(format!("conflict {id} not found"));
    let conflict_id: i64 = id.parse().map_err(|_| not_found())?;
    let item = state
        .store
        .conflict(conflict_id)
        .await?
        .ok_or_else(not_found)?;
    let row = state
        .store
        .document(&item.conflict.doc_id)
        .await?
        .filter(|r| {
            caller
                .scope
                .allows(&r.org_path, r.restricted, r.assigned_to.as_deref())
        })
        .ok_or_else(not_found)?;
    if item.conflict.resolved_at.is_some() {
        return Err(ApiError::Conflict(format!(
            "conflict {id} is already resolved"
        )));
    }
    let registry = state.registry().await?;
    let schema = registry.get(&row.kind, row.schema_version);
    let cleared = caller.role().has_clearance();
    let now = clock::now();
    let mut audit = AuditEntry {
        at: now,
        user_id: Some(caller.user_id().to_owned()),
        device_id: Some(caller.device_id().to_owned()),
        action: "resolve_conflict".into(),
        doc_id: Some(row.id),
        detail: json!({
            "conflict": conflict_id,
            "path": item.conflict.path,
            "code": item.conflict.code,
            "note": body.note,
        }),
    };
    if item.conflict.code == CONCURRENT_VALUES {
        let path = FieldPath::from_str(&item.conflict.path)
            .map_err(|e| ApiError::Internal(format!("conflict {id}: {e}")))?;
        if !cleared && path_is_sensitive(schema, &item.conflict.path) {
            return Err(ApiError::Forbidden(format!(
                "the role {} cannot read the values of {}, so it cannot choose among them",
                caller.role(),
                item.conflict.path
            )));
        }
        if let Some(schema) = schema {
            body.check_value(schema, &path)?;
        }
        let mut doc = state.store.load_doc(&row.id).await?.ok_or_else(not_found)?;
        let before = doc.heads();
        doc.resolve(&path, &body.value, &Editor::new(caller.user_id(), now))
            .map_err(doc_error)?;
        ingest_edit(&state, &caller, &mut doc, &before, now).await?;
        state.store.audit(&audit).await?;
    } else if item.conflict.code == EDITED_AFTER_REMOVAL {
        let entry = flagged_entry(&item.conflict.path)
            .ok_or_else(|| ApiError::Internal(format!("conflict {id}: not a log entry path")))?;
        let restore = match &body.value {
            Value::Null => false,
            Value::String(s) if s == "restore" => true,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "{} was edited after its removal: resolve it with value \"restore\" to \
                     bring the entry back, or null to confirm the removal",
                    item.conflict.path
                )));
            }
        };
        let mut doc = state.store.load_doc(&row.id).await?.ok_or_else(not_found)?;
        let before = doc.heads();
        let editor = Editor::new(caller.user_id(), now);
        if restore {
            doc.restore_log(entry, &editor)
        } else {
            doc.confirm_removal(entry, &editor)
        }
        .map_err(doc_error)?;
        ingest_edit(&state, &caller, &mut doc, &before, now).await?;
        audit.detail["choice"] = json!(if restore { "restore" } else { "remove" });
        state.store.audit(&audit).await?;
    } else {
        if !body.value.is_null() {
            return Err(ApiError::BadRequest(format!(
                "{} is flagged by a rule, not a choice of values: resolve it with value null \
                 and a note, after fixing the report if need be",
                item.conflict.path
            )));
        }
        if !state.store.dismiss_flag(conflict_id, &audit).await? {
            return Err(ApiError::Conflict(format!(
                "conflict {id} is already resolved"
            )));
        }
    }
    let item = state
        .store
        .conflict(conflict_id)
        .await?
        .ok_or_else(not_found)?;
    if row.restricted {
        audit_reads(&state, &caller, &[row.id], "resolve").await?;
    }
    Ok(Json(conflict_view(
        item.conflict,
        &item.kind,
        &item.grid_id,
        schema,
        cleared,
    )))
}

#[cfg(test)]
mod tests {
    use gridsync_core::schema::Registry;

    use super::*;

    #[test]
    fn a_removed_entrys_sensitive_values_are_redacted_for_roles_without_clearance() {
        let registry = Registry::builtin();
        let schema = registry.latest("drug_control_case");
        let row = || ConflictRow {
            id: 1,
            doc_id: DocId::from_u128(1),
            path: "log[e1]".into(),
            code: EDITED_AFTER_REMOVAL.into(),
            detail: json!({
                "message": {"zh": "…", "en": "…"},
                "removed_by": "w1",
                "removed_at": "2026-11-04T08:00:00Z",
                "edited_by": ["o1"],
                "values": {"date": "2026-11-04", "notes": "尿检阴性", "place": null},
            }),
            detected_at: 0,
            resolved_at: None,
            resolved_by: None,
        };
        let hidden = conflict_view(row(), "drug_control_case", "g1", schema, false);
        assert_eq!(
            hidden.detail["values"],
            json!({"date": "2026-11-04", "notes": REDACTED, "place": null})
        );
        assert_eq!(hidden.detail["removed_by"], json!("w1"));
        let shown = conflict_view(row(), "drug_control_case", "g1", schema, true);
        assert_eq!(shown.detail, row().detail);
    }
}
