//! Held work under `/api/v1/held`: changes phones pushed for reports their users may no longer
//! write (a case reassigned, a worker moved while offline). The people who own the report now
//! see them, and merge them into the report (ordinary history, attributed to their author) or
//! decline them with a note. Nothing held is ever deleted.

use axum::extract::State;
use axum::http::Uri;
use gridsync_core::DocId;
use gridsync_core::protocol::{Push, PushDoc, PushOutcome};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::query::Params;
use super::visible::{REVIEWERS, audit_reads, check_note};
use super::{ApiError, AppState, Json, Path, Problem};
use crate::auth::Caller;
use crate::clock;
use crate::store::{AuditEntry, HeldDecision, HeldItem, HeldQuery, HeldState, Via, Writer};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_held))
        .routes(routes!(get_held))
        .routes(routes!(merge_held))
        .routes(routes!(decline_held))
}

/// One value where the held work and the report differ.
#[derive(Debug, Serialize, ToSchema)]
pub struct Difference {
    /// `fields.<id>`, or `log[<entry id>]` for a whole log entry.
    pub path: String,
    /// The report's value now (absent: not there).
    #[schema(value_type = Option<Object>)]
    pub current: Option<Value>,
    /// The value the held changes would leave.
    #[schema(value_type = Option<Object>)]
    pub held: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HeldView {
    pub id: i64,
    pub report_id: String,
    pub kind: String,
    pub grid_id: String,
    /// Who recorded the changes, and on which phone.
    pub author_id: String,
    pub device_id: String,
    /// Why they were held: `out_of_scope`.
    pub code: String,
    /// Changes held.
    pub changes: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub state: HeldState,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub note: Option<String>,
    /// The report as the held changes would leave it (sensitive values redacted for roles
    /// without clearance).
    #[schema(value_type = Object)]
    pub report: Value,
    /// Where that differs from the report as the server holds it now.
    pub differences: Vec<Difference>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HeldList {
    pub items: Vec<HeldView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "note": "该案件已转交本网格新网格员，修改已并入" }))]
pub struct Decision {
    /// Why: optional for a merge, required for a decline.
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

/// Held work placed in the caller's scope, newest first. By default only what waits for a
/// decision (`state=held`).
#[utoipa::path(get, path = "/api/v1/held", tag = "held", security(("bearer" = [])),
    params(
        ("state" = Option<String>, Query, description = "held (default), merged or declined"),
        ("report" = Option<String>, Query, description = "only the held work of this report"),
        ("before" = Option<i64>, Query, description = "next_before of the previous page"),
        ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
    ),
    responses(
        (status = 200, body = HeldList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_held(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<HeldList>, ApiError> {
    let p = Params::parse(&uri, &["state", "report", "before", "limit"])?;
    let held_state = match p.one_of("state", &HeldState::NAMES)?.as_deref() {
        None | Some("held") => HeldState::Held,
        Some("merged") => HeldState::Merged,
        Some(_) => HeldState::Declined,
    };
    let doc_id = p
        .get("report")
        .map(|r| {
            r.parse::<DocId>()
                .map_err(|_| ApiError::BadRequest(format!("`report` is not a report id: {r:?}")))
        })
        .transpose()?;
    let before = p
        .get("before")
        .map(|b| {
            b.parse::<i64>()
                .map_err(|_| ApiError::BadRequest(format!("`before` is not an id: {b:?}")))
        })
        .transpose()?;
    let limit = p.limit()?;
    let mut items = state
        .store
        .held_work(
            &caller.scope,
            &HeldQuery {
                state: Some(held_state),
                doc_id,
                before,
                limit: limit + 1,
            },
        )
        .await?;
    let more = items.len() as i64 > limit;
    items.truncate(usize::try_from(limit).unwrap_or(0));
    let next_before = items.last().filter(|_| more).map(|i| i.id);
    let restricted: Vec<DocId> = items
        .iter()
        .filter(|i| i.restricted)
        .map(|i| i.doc_id)
        .collect();
    audit_reads(&state, &caller, &restricted, "held").await?;
    let mut views = Vec::with_capacity(items.len());
    for item in items {
        views.push(view(&state, &caller, item).await?);
    }
    Ok(Json(HeldList {
        items: views,
        next_before,
    }))
}

#[utoipa::path(get, path = "/api/v1/held/{id}", tag = "held", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "held work id", example = 1)),
    responses(
        (status = 200, body = HeldView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_held(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<HeldView>, ApiError> {
    let item = visible(&state, &caller, &id).await?;
    if item.restricted {
        audit_reads(&state, &caller, &[item.doc_id], "held").await?;
    }
    Ok(Json(view(&state, &caller, item).await?))
}

/// Applies the held changes to the report as ordinary history, attributed to their author and
/// device, through the same checks as any push, in the caller's scope.
#[utoipa::path(post, path = "/api/v1/held/{id}/merge", tag = "held", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "held work id", example = 1)),
    request_body = Decision,
    responses(
        (status = 200, body = HeldView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "decided already", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "the changes cannot apply as the caller (they would move \
            the report out of the caller's scope, say)", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn merge_held(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<Decision>,
) -> Result<Json<HeldView>, ApiError> {
    caller.require_role(&REVIEWERS)?;
    check_note(body.note.as_deref())?;
    let item = open(&state, &caller, &id).await?;
    let now = clock::now();
    let push = Push {
        docs: vec![PushDoc {
            doc: item.doc_id,
            changes: state.store.held_changes(item.id).await?,
        }],
    };
    // The author's changes, checked as the author's (ingest refuses any other author), in the
    // scope of the person merging, who owns the report now.
    let writer = Writer {
        user_id: item.author_id.clone(),
        device_id: Some(item.device_id.clone()),
        scope: caller.scope.clone(),
        now,
        hold_out_of_scope: false,
        via: Via::Direct,
    };
    let result = state
        .ingest
        .push(state.store.as_ref(), &writer, &push)
        .await?;
    match result.docs.into_iter().next().map(|d| d.outcome) {
        Some(PushOutcome::Acked { .. }) => {}
        Some(PushOutcome::Rejected { code, reason } | PushOutcome::Held { code, reason }) => {
            return Err(ApiError::Invalid {
                detail: format!("the held changes cannot be merged: {code}: {reason}"),
                problems: Vec::new(),
            });
        }
        Some(PushOutcome::MissingDeps { .. }) | None => {
            return Err(ApiError::Internal(format!(
                "held work {} lacks history the report needs",
                item.id
            )));
        }
    }
    decide(&state, &caller, item, HeldState::Merged, body.note, now).await
}

/// Declines held work: the report stays as it is, and the changes stay stored with the note.
#[utoipa::path(post, path = "/api/v1/held/{id}/decline", tag = "held", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "held work id", example = 1)),
    request_body = Decision,
    responses(
        (status = 200, body = HeldView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "decided already", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "no note", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn decline_held(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<Decision>,
) -> Result<Json<HeldView>, ApiError> {
    caller.require_role(&REVIEWERS)?;
    check_note(body.note.as_deref())?;
    if body.note.as_deref().is_none_or(|n| n.trim().is_empty()) {
        return Err(ApiError::Invalid {
            detail: "declining a worker's recorded work needs a note saying why".into(),
            problems: Vec::new(),
        });
    }
    let item = open(&state, &caller, &id).await?;
    decide(
        &state,
        &caller,
        item,
        HeldState::Declined,
        body.note,
        clock::now(),
    )
    .await
}

/// The item, when it is placed in the caller's scope; otherwise 404, like a missing one.
async fn visible(state: &AppState, caller: &Caller, id: &str) -> Result<HeldItem, ApiError> {
    let not_found = || ApiError::NotFound(format!("held work {id} not found"));
    let id: i64 = id.parse().map_err(|_| not_found())?;
    state
        .store
        .held_item(id)
        .await?
        .filter(|i| {
            caller
                .scope
                .allows(&i.org_path, i.restricted, i.assigned_to.as_deref())
        })
        .ok_or_else(not_found)
}

/// [`visible`], and still waiting for a decision.
async fn open(state: &AppState, caller: &Caller, id: &str) -> Result<HeldItem, ApiError> {
    let item = visible(state, caller, id).await?;
    if item.state != HeldState::Held {
        return Err(ApiError::Conflict(format!(
            "held work {id} was {} already",
            item.state.as_str()
        )));
    }
    Ok(item)
}

async fn decide(
    state: &AppState,
    caller: &Caller,
    item: HeldItem,
    to: HeldState,
    note: Option<String>,
    now: i64,
) -> Result<Json<HeldView>, ApiError> {
    let decision = HeldDecision {
        state: to,
        by: caller.user_id().to_owned(),
        at: now,
        note: note.clone(),
    };
    // Two people deciding at once: the merge itself is idempotent, the decision is taken once.
    if !state.store.decide_held(item.id, &decision).await? {
        return Err(ApiError::Conflict(format!(
            "held work {} was decided already",
            item.id
        )));
    }
    state
        .store
        .audit(&AuditEntry {
            at: now,
            user_id: Some(caller.user_id().to_owned()),
            device_id: Some(caller.device_id().to_owned()),
            action: format!("held_{}", to.as_str()),
            doc_id: Some(item.doc_id),
            detail: json!({
                "held": item.id,
                "author": item.author_id,
                "device": item.device_id,
                "changes": item.changes,
                "note": note,
            }),
        })
        .await?;
    let item = state
        .store
        .held_item(item.id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("held work {} vanished", item.id)))?;
    Ok(Json(view(state, caller, item).await?))
}

async fn view(state: &AppState, caller: &Caller, item: HeldItem) -> Result<HeldView, ApiError> {
    let registry = state.registry().await?;
    let schema = registry.get(&item.kind, schema_version(&item.projection));
    let mut held = item.projection;
    let mut current = state
        .store
        .document(&item.doc_id)
        .await?
        .map(|d| d.projection);
    if !caller.role().has_clearance()
        && let Some(schema) = schema
    {
        schema.redact(&mut held);
        if let Some(current) = &mut current {
            schema.redact(current);
        }
    }
    Ok(HeldView {
        id: item.id,
        report_id: item.doc_id.to_string(),
        kind: item.kind,
        grid_id: item.grid_id,
        author_id: item.author_id,
        device_id: item.device_id,
        code: item.code,
        changes: item.changes,
        created_at: item.created_at,
        updated_at: item.updated_at,
        state: item.state,
        decided_by: item.decided_by,
        decided_at: item.decided_at,
        note: item.note,
        differences: differences(current.as_ref(), &held),
        report: held,
    })
}

/// The schema version the projection names (its meta keys sit at the top level).
fn schema_version(projection: &Value) -> u32 {
    projection["schema_version"]
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(1)
}

/// Fields whose values differ, and log entries that are new or changed.
fn differences(current: Option<&Value>, held: &Value) -> Vec<Difference> {
    let empty = Map::new();
    let now = current
        .and_then(|v| v["fields"].as_object())
        .unwrap_or(&empty);
    let then = held["fields"].as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = now.keys().chain(then.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out: Vec<Difference> = keys
        .into_iter()
        .filter(|k| now.get(*k) != then.get(*k))
        .map(|k| Difference {
            path: format!("fields.{k}"),
            current: now.get(k).cloned(),
            held: then.get(k).cloned(),
        })
        .collect();
    let entries = |v: Option<&Value>| -> Vec<Value> {
        v.and_then(|v| v["log"].as_array())
            .cloned()
            .unwrap_or_default()
    };
    let now_log = entries(current);
    for entry in entries(Some(held)) {
        let id = entry["id"].as_str().unwrap_or_default();
        let there = now_log.iter().find(|e| e["id"].as_str() == Some(id));
        if there != Some(&entry) {
            out.push(Difference {
                path: format!("log[{id}]"),
                current: there.cloned(),
                held: Some(entry),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_version_is_read_from_the_projections_meta_keys() {
        let projection = json!({"kind": "dispute_check", "schema_version": 2, "fields": {}});
        assert_eq!(schema_version(&projection), 2);
    }

    #[test]
    fn differences_name_changed_fields_and_new_or_changed_log_entries() {
        let current = json!({"fields": {"a": 1, "b": 2}, "log": [{"id": "e1", "x": 1}]});
        let held = json!({"fields": {"a": 1, "b": 3, "c": 4},
                          "log": [{"id": "e1", "x": 2}, {"id": "e2"}]});
        let paths: Vec<String> = differences(Some(&current), &held)
            .into_iter()
            .map(|d| d.path)
            .collect();
        assert_eq!(paths, ["fields.b", "fields.c", "log[e1]", "log[e2]"]);
    }
}
