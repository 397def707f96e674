//! Devices under `/api/v1/devices`: listing them with what each holds unsent, revoking one (a
//! lost or stolen phone: wiped at its next contact) and retiring one (a phone handed in: it
//! delivers everything, then wipes itself); and the signed revocation list at
//! `/api/v1/revocations`, which tells village office hubs whose offline grants to refuse.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AppState, Json, Path, Problem};
use crate::auth::{Caller, grant};
use crate::clock;
use crate::scope::Role;
use crate::store::{AuditEntry, Device, DeviceState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_devices))
        .routes(routes!(revoke_device))
        .routes(routes!(retire_device))
        .routes(routes!(revocation_list))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "4f1c2a9e-phone",
    "user_id": "5e04538d-99b5-48df-b225-3a477de99441",
    "name": "红米 12C",
    "created_at": 1796000000,
    "last_seen_at": 1796200000,
    "revoked_at": null,
    "retiring_at": null,
    "state": "active",
    "pending_changes": 0,
    "pending_at": 1796200000,
}))]
pub struct DeviceInfo {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub revoked_at: Option<i64>,
    pub retiring_at: Option<i64>,
    pub state: DeviceState,
    /// Changes the phone said at its last sync it had not delivered: what a revocation would
    /// destroy. Absent until it has said.
    pub pending_changes: Option<i64>,
    /// When it said so.
    pub pending_at: Option<i64>,
}

impl From<Device> for DeviceInfo {
    fn from(d: Device) -> Self {
        DeviceInfo {
            state: DeviceState::of(&d),
            id: d.id,
            user_id: d.user_id,
            name: d.name,
            created_at: d.created_at,
            last_seen_at: d.last_seen_at,
            revoked_at: d.revoked_at,
            retiring_at: d.retiring_at,
            pending_changes: d.pending_changes,
            pending_at: d.pending_at,
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

/// Cuts a device off (lost or stolen): its next request is refused with `device_revoked`, its
/// sessions end and the phone deletes its data, including changes it never delivered (the
/// device list shows how many it reported). For a phone handed in, retire it instead.
/// A district admin may revoke any device; anyone else only their own.
#[utoipa::path(post, path = "/api/v1/devices/{id}/revoke", tag = "devices",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "device id", example = "4f1c2a9e-phone")),
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
    visible_device(&state, &caller, &id).await?;
    let now = clock::now();
    state.store.revoke_device(&id, now).await?;
    audit(&state, &caller, "device_revoke", &id, now).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Retires a device (a phone handed in, a worker leaving): it keeps working until its next
/// sync, which delivers everything it holds; then it is told `device_retired` and deletes its
/// data. A phone holding work the server refused is told `device_retiring` until someone fixes
/// or discards that work. A district admin may retire any device; anyone else only their own.
#[utoipa::path(post, path = "/api/v1/devices/{id}/retire", tag = "devices",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "device id", example = "4f1c2a9e-phone")),
    responses(
        (status = 204, description = "retiring (or already was)"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such live device among those the caller may see",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn retire_device(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    visible_device(&state, &caller, &id).await?;
    let now = clock::now();
    if !state.store.retire_device(&id, now).await? {
        return Err(ApiError::NotFound(format!(
            "device {id} is revoked already"
        )));
    }
    audit(&state, &caller, "device_retire", &id, now).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Someone else's device answers like a missing one: ids are not for probing.
async fn visible_device(state: &AppState, caller: &Caller, id: &str) -> Result<(), ApiError> {
    let visible = state
        .store
        .device(id)
        .await?
        .is_some_and(|d| caller.role() == Role::DistrictAdmin || d.user_id == caller.user_id());
    if visible {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("device {id} not found")))
    }
}

async fn audit(
    state: &AppState,
    caller: &Caller,
    action: &str,
    device: &str,
    now: i64,
) -> Result<(), ApiError> {
    state
        .store
        .audit(&AuditEntry {
            at: now,
            user_id: Some(caller.user_id().to_owned()),
            device_id: Some(caller.device_id().to_owned()),
            action: action.into(),
            doc_id: None,
            detail: json!({ "device": device }),
        })
        .await?;
    Ok(())
}

/// The signed revocation list, as `/api/v1/revocations` answers it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "revocations": "eyJ0eXAiOiJncmlkc3luYy1yZXZvY2F0aW9ucytqd3QiLCJhbGciOiJFZERTQSIsImtpZCI6IjNmOWMyYTcxZDA0ZThiNjUifQ.eyJpc3MiOiJncmlkc3luYyIsImF1ZCI6ImdyaWRzeW5jLW9mZmxpbmUiLCJpYXQiOjE3OTYyMDAwMDAsImRldmljZXMiOlt7ImlkIjoiNGYxYzJhOWUtcGhvbmUiLCJyZXZva2VkX2F0IjoxNzk2MTAwMDAwfV0sImRpc2FibGVkX3VzZXJzIjpbXX0.c2lnbmF0dXJl",
}))]
pub struct SignedRevocations {
    /// A compact JWS, signed like an access token (EdDSA, `typ` `gridsync-revocations+jwt`,
    /// `aud` `gridsync-offline`; verify it against `/.well-known/jwks.json`). Its claims: `iat`,
    /// `devices` revoked within an offline grant's life (`id`, `revoked_at`: refuse the device
    /// and wipe it), `disabled_users` (refuse their grants), `revoked_hubs` (trust their
    /// certificates no more) and `changed_passwords` (`user_id`, `changed_at`: refuse the
    /// user's grants issued at or before then).
    pub revocations: String,
}

/// The revocation list: whose offline grants a village office hub must refuse. Hubs fetch it at
/// every contact with the server; district admins may read it.
#[utoipa::path(get, path = "/api/v1/revocations", tag = "devices", security(("bearer" = [])),
    responses(
        (status = 200, body = SignedRevocations),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not a district admin", body = Problem, content_type = "application/problem+json"),
    ))]
async fn revocation_list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<SignedRevocations>, ApiError> {
    caller.require_role(&[Role::DistrictAdmin])?;
    Ok(Json(SignedRevocations::now(&state).await?))
}

impl SignedRevocations {
    /// The list as of now, signed.
    pub(super) async fn now(state: &AppState) -> Result<SignedRevocations, ApiError> {
        let ttl = i64::try_from(state.config.offline_grant_ttl.as_secs()).unwrap_or(i64::MAX);
        let list = grant::revocations(
            state.store.as_ref(),
            &state.config.issuer,
            clock::now(),
            ttl,
        )
        .await?;
        Ok(SignedRevocations {
            revocations: state.keys.sign_typed(grant::REVOCATIONS_TYP, &list).await?,
        })
    }
}
