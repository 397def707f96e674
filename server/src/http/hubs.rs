//! Village office hubs under `/api/v1/hubs`: an admin registers one for a village or community
//! and gets its one-time enrolment code; the office PC enrols with the code and its own Ed25519
//! key and gets a certificate the server signed; an admin may revoke it.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::validate::has_control;
use super::{ApiError, AppState, Json, Path, Problem};
use crate::auth::grant::{self, HubCertificate};
use crate::auth::{Caller, refresh, secret};
use crate::clock;
use crate::scope::Role;
use crate::store::{AuditEntry, Hub, Level};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_hub, list_hubs))
        .routes(routes!(revoke_hub))
        .routes(routes!(enrol_hub))
}

/// How long an enrolment code works: long enough to carry it to a village office.
const CODE_LIFE_SECS: i64 = 7 * 24 * 60 * 60;
/// Longest hub name, in characters.
const MAX_NAME_LEN: usize = 256;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "unit_id": "shiqiao", "name": "石桥村委会办公室" }))]
pub struct NewHub {
    /// The village or community the hub serves.
    #[schema(min_length = 1, max_length = 256)]
    pub unit_id: String,
    #[schema(min_length = 1, max_length = 256)]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0b4f3c1e9a7d4e2f8c6b5a4d3e2f1a0b",
    "unit_id": "shiqiao",
    "name": "石桥村委会办公室",
    "identity_key": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
    "code_expires_at": null,
    "enrolled_at": 1796200000,
    "revoked_at": null,
    "created_by": "admin",
    "created_at": 1796100000,
}))]
pub struct HubInfo {
    pub id: String,
    pub unit_id: String,
    pub name: String,
    /// The hub's Ed25519 public key, once it enrolled.
    pub identity_key: Option<String>,
    /// Until when the enrolment code works; `null` once the hub enrolled or was revoked.
    pub code_expires_at: Option<i64>,
    pub enrolled_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
}

impl From<Hub> for HubInfo {
    fn from(h: Hub) -> Self {
        HubInfo {
            id: h.id,
            unit_id: h.unit_id,
            name: h.name,
            identity_key: h.identity_key,
            code_expires_at: h.code_expires_at,
            enrolled_at: h.enrolled_at,
            revoked_at: h.revoked_at,
            created_by: h.created_by,
            created_at: h.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "hub": {
        "id": "0b4f3c1e9a7d4e2f8c6b5a4d3e2f1a0b", "unit_id": "shiqiao", "name": "石桥村委会办公室",
        "identity_key": null, "code_expires_at": 1796704800, "enrolled_at": null,
        "revoked_at": null, "created_by": "admin", "created_at": 1796100000,
    },
    "enrolment_code": "q7Hc2xN0sVbLr5ZkT1wYpA",
}))]
pub struct RegisteredHub {
    pub hub: HubInfo,
    /// Shown once: the office PC enrols with it (`gridsync hub`), within a week.
    pub enrolment_code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "enrolment_code": "q7Hc2xN0sVbLr5ZkT1wYpA",
    "identity_key": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
}))]
pub struct Enrolment {
    #[schema(max_length = 256)]
    pub enrolment_code: String,
    /// The hub's Ed25519 public key, 32 bytes as unpadded base64url.
    #[schema(min_length = 43, max_length = 43)]
    pub identity_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "hub_id": "0b4f3c1e9a7d4e2f8c6b5a4d3e2f1a0b",
    "unit_id": "shiqiao",
    "unit_path": "/pingan/qingshan/shiqiao/",
    "certificate": "eyJ0eXAiOiJncmlkc3luYy1odWIrand0IiwiYWxnIjoiRWREU0EifQ.e30.c2lnbmF0dXJl",
}))]
pub struct Enrolled {
    pub hub_id: String,
    pub unit_id: String,
    pub unit_path: String,
    /// A JWS signed like an access token (EdDSA, `typ` `gridsync-hub+jwt`, `aud`
    /// `gridsync-offline`; verify it against `/.well-known/jwks.json`) naming the hub (`sub`),
    /// its unit's path (`unit`) and its key (`hkey`): what phones on the office network trust.
    pub certificate: String,
}

/// Registers a hub for a village or community and answers its one-time enrolment code. District
/// admins only.
#[utoipa::path(post, path = "/api/v1/hubs", tag = "hubs", security(("bearer" = [])),
    request_body = NewHub,
    responses(
        (status = 201, body = RegisteredHub),
        (status = 400, description = "a bad name, or a unit that is not a village or community",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not a district admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such unit", body = Problem, content_type = "application/problem+json"),
    ))]
async fn register_hub(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<NewHub>,
) -> Result<(StatusCode, Json<RegisteredHub>), ApiError> {
    caller.require_role(&[Role::DistrictAdmin])?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN || has_control(name) {
        return Err(ApiError::BadRequest(format!(
            "name must be 1 to {MAX_NAME_LEN} characters without control characters"
        )));
    }
    let unit = state
        .store
        .org_unit(&req.unit_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no org unit {}", req.unit_id)))?;
    if !matches!(unit.level, Level::Village | Level::Community) {
        return Err(ApiError::BadRequest(format!(
            "hubs serve a village or a community; {} is a {}",
            unit.id,
            unit.level.as_str()
        )));
    }
    let now = clock::now();
    let code = secret::random_text::<16>()?;
    let hub = Hub {
        id: uuid::Uuid::new_v4().simple().to_string(),
        unit_id: unit.id,
        name: name.to_owned(),
        code_expires_at: Some(now + CODE_LIFE_SECS),
        identity_key: None,
        enrolled_at: None,
        revoked_at: None,
        created_by: caller.user_id().to_owned(),
        created_at: now,
    };
    state.store.insert_hub(&hub, &refresh::hash(&code)).await?;
    state
        .store
        .audit(&AuditEntry {
            at: now,
            user_id: Some(caller.user_id().to_owned()),
            device_id: Some(caller.device_id().to_owned()),
            action: "hub_register".into(),
            doc_id: None,
            detail: json!({ "hub_id": hub.id, "unit_id": hub.unit_id, "name": hub.name }),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(RegisteredHub {
            hub: hub.into(),
            enrolment_code: code,
        }),
    ))
}

/// Every registered hub, oldest first. District admins only.
#[utoipa::path(get, path = "/api/v1/hubs", tag = "hubs", security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<HubInfo>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not a district admin", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_hubs(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<HubInfo>>, ApiError> {
    caller.require_role(&[Role::DistrictAdmin])?;
    let hubs = state.store.hubs().await?;
    Ok(Json(hubs.into_iter().map(HubInfo::from).collect()))
}

/// Revokes a hub: its enrolment code stops working. District admins only.
#[utoipa::path(post, path = "/api/v1/hubs/{id}/revoke", tag = "hubs", security(("bearer" = [])),
    params(("id" = String, Path, description = "the hub id", example = "0b4f3c1e9a7d4e2f8c6b5a4d3e2f1a0b")),
    responses(
        (status = 204, description = "revoked"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not a district admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such hub, or revoked already", body = Problem, content_type = "application/problem+json"),
    ))]
async fn revoke_hub(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_role(&[Role::DistrictAdmin])?;
    if !state.store.revoke_hub(&id, clock::now()).await? {
        return Err(ApiError::NotFound(format!("no hub {id} to revoke")));
    }
    state
        .store
        .audit(&AuditEntry {
            at: clock::now(),
            user_id: Some(caller.user_id().to_owned()),
            device_id: Some(caller.device_id().to_owned()),
            action: "hub_revoke".into(),
            doc_id: None,
            detail: json!({ "hub_id": id }),
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The office PC enrols as the hub its code was issued for, with its own Ed25519 key, once;
/// the answer carries its certificate. No bearer token: the code is the credential.
#[utoipa::path(post, path = "/api/v1/hubs/enrol", tag = "hubs", request_body = Enrolment,
    responses(
        (status = 200, body = Enrolled),
        (status = 400, description = "a malformed identity key", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "enrolment_invalid: the code is unknown, used, expired or of a revoked hub",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn enrol_hub(
    State(state): State<AppState>,
    Json(req): Json<Enrolment>,
) -> Result<Json<Enrolled>, ApiError> {
    grant::check_public_key("identity_key", &req.identity_key).map_err(ApiError::BadRequest)?;
    let now = clock::now();
    let hub = state
        .store
        .enrol_hub(&refresh::hash(&req.enrolment_code), &req.identity_key, now)
        .await?
        .ok_or(ApiError::EnrolmentInvalid)?;
    let unit = state
        .store
        .org_unit(&hub.unit_id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("hub {} names no unit", hub.id)))?;
    let certificate = HubCertificate {
        iss: state.config.issuer.clone(),
        aud: grant::AUDIENCE.to_owned(),
        sub: hub.id.clone(),
        unit: unit.path.clone(),
        hkey: req.identity_key,
        iat: now,
    };
    let certificate = state.keys.sign_typed(grant::HUB_TYP, &certificate).await?;
    state
        .store
        .audit(&AuditEntry {
            at: now,
            user_id: None,
            device_id: None,
            action: "hub_enrol".into(),
            doc_id: None,
            detail: json!({ "hub_id": hub.id, "unit_id": hub.unit_id }),
        })
        .await?;
    Ok(Json(Enrolled {
        hub_id: hub.id,
        unit_id: hub.unit_id,
        unit_path: unit.path,
        certificate,
    }))
}
