//! Devices under `/api/v1/devices`: listing them and revoking one (a lost phone).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AppState, Json, Path, Problem};
use crate::auth::Caller;
use crate::clock;
use crate::scope::Role;
use crate::store::{AuditEntry, Device};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_devices))
        .routes(routes!(revoke_device))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceInfo {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub revoked_at: Option<i64>,
}

impl From<Device> for DeviceInfo {
    fn from(d: Device) -> Self {
        DeviceInfo {
            id: d.id,
            user_id: d.user_id,
            name: d.name,
            created_at: d.created_at,
            last_seen_at: d.last_seen_at,
            revoked_at: d.revoked_at,
        }
    }
}

/// A district admin sees every device; anyone else their own.
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<DeviceInfo>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_devices(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<DeviceInfo>>, ApiError> {
    let devices = state.store.devices().await?;
    let admin = caller.role() == Role::DistrictAdmin;
    Ok(Json(
        devices
            .into_iter()
            .filter(|d| admin || d.user_id == caller.user_id())
            .map(DeviceInfo::from)
            .collect(),
    ))
}

/// Cuts a device off: its next request is refused with `device_revoked` and its sessions end.
/// A district admin may revoke any device; anyone else only their own.
#[utoipa::path(post, path = "/api/v1/devices/{id}/revoke", tag = "devices",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "device id")),
    responses(
        (status = 204, description = "revoked (or already was)"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such device among those the caller may see",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn revoke_device(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let visible = state
        .store
        .device(&id)
        .await?
        .is_some_and(|d| caller.role() == Role::DistrictAdmin || d.user_id == caller.user_id());
    // Someone else's device answers like a missing one: ids are not for probing.
    if !visible {
        return Err(ApiError::NotFound(format!("device {id} not found")));
    }
    let now = clock::now();
    state.store.revoke_device(&id, now).await?;
    state
        .store
        .audit(&AuditEntry {
            at: now,
            user_id: Some(caller.user_id().to_owned()),
            device_id: Some(caller.device_id().to_owned()),
            action: "device_revoke".into(),
            doc_id: None,
            detail: json!({ "device": id }),
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
