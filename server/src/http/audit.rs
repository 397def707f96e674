//! The audit log under `/api/v1/audit`: who did what and when, filtered and paged. District
//! admins only.

use axum::extract::State;
use axum::http::Uri;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::query::Params;
use super::{ApiError, AppState, Json, Problem};
use crate::auth::Caller;
use crate::scope::Role;
use crate::store::{AuditQuery, AuditRecord};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(audit_log))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditItem {
    /// Orders the log; newer entries have higher ids.
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// Who acted; `null` for the server itself.
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    /// What was done: `user_create`, `user_update`, `org_create`, `device_revoke`, …
    pub action: String,
    /// The report acted on, if any.
    pub doc_id: Option<String>,
    /// Particulars of the action; their shape depends on it.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<AuditRecord> for AuditItem {
    fn from(r: AuditRecord) -> Self {
        AuditItem {
            id: r.id,
            at: r.entry.at,
            user_id: r.entry.user_id,
            device_id: r.entry.device_id,
            action: r.entry.action,
            doc_id: r.entry.doc_id.map(|d| d.to_string()),
            detail: r.entry.detail,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    /// Newest first.
    pub items: Vec<AuditItem>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// Entries matching the filters over all pages.
    pub total: i64,
}

/// The audit log, newest first, filtered by every parameter given. District admins only.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])),
    params(
        ("user_id" = Option<String>, Query, description = "only what this user did"),
        ("action" = Option<String>, Query, description = "only this action"),
        ("doc_id" = Option<String>, Query, description = "only entries about this report (a UUID)"),
        ("from" = Option<i64>, Query, description = "only entries at or after this time (unix seconds)"),
        ("to" = Option<i64>, Query, description = "only entries before this time (unix seconds)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("limit" = Option<i64>, Query, description = "page size, 1 to 200; 50 when left out"),
    ),
    responses(
        (status = 200, body = AuditList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<AuditList>, ApiError> {
    caller.require_role(&[Role::DistrictAdmin])?;
    let params = Params::parse(
        &uri,
        &[
            "user_id", "action", "doc_id", "from", "to", "cursor", "limit",
        ],
    )?;
    let limit = params.limit()?;
    let doc_id = params
        .get("doc_id")
        .map(|d| {
            d.parse()
                .map_err(|_| ApiError::BadRequest(format!("doc_id {d:?} is not a UUID")))
        })
        .transpose()?;
    let before_id = params
        .get("cursor")
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::BadRequest(format!("cursor {c:?} is not one we gave")))
        })
        .transpose()?;
    let page = state
        .store
        .audit_page(&AuditQuery {
            user_id: params.string("user_id"),
            action: params.string("action"),
            doc_id,
            from: params.time("from")?,
            to: params.time("to")?,
            before_id,
            limit,
        })
        .await?;
    let next_cursor = page
        .more
        .then(|| page.items.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Json(AuditList {
        items: page.items.into_iter().map(AuditItem::from).collect(),
        next_cursor,
        total: page.total,
    }))
}
