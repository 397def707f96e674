//! What an enrolled village office hub exchanges with central, under `/api/v1/hubs/`, proving
//! itself with a token of its own key ([`HubCaller`]).
//!
//! `relay`: the hub hands up the pushes phones made to it. Each is taken only as the phone signed
//! it, by a device of the hub's village or community, and is then ingested exactly as if the
//! phone had pushed it itself: the same author, scope and schema checks, conflicts and rule
//! flags. Central answers each with a receipt the hub hands back. `pull`: the hub's unit comes
//! down as a phone's scope does, restricted reports never. `revocations`, `org` and `kinds`: what
//! the hub must refuse, the units it serves, and the report kinds in force. `audit`: the hub's
//! own audit log, signed with its key, kept once in central's.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gridsync_core::attest;
use gridsync_core::protocol::{
    AttestedPush, Pull, PushDocResult, PushOutcome, PushResult, Relay, RelayResult, RelayedPush,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::contract::Binary;
use super::devices::SignedRevocations;
use super::org::{OrgTree, tree_of};
use super::sync::{LIMITS, PushTurn, decode, frame};
use super::{ApiError, AppState, Json, Problem};
use crate::auth::grant::{self, Receipt, ReceiptDoc};
use crate::auth::hub::HubCaller;
use crate::clock;
use crate::scope::Scope;
use crate::store::{AuditEntry, SchemaState, Via, Writer};
use crate::sync::pull;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(relay))
        .routes(routes!(hub_pull))
        .routes(routes!(hub_revocations))
        .routes(routes!(hub_org))
        .routes(routes!(hub_kinds))
        .routes(routes!(hub_audit))
        .layer(DefaultBodyLimit::max(LIMITS.max_frame_bytes))
}

/// Ingests each relayed push as its phone's own, once its signature holds, and answers one
/// result and receipt per push in order. A push that cannot be taken as the phone's is refused
/// whole, each of its documents with the reason's code.
#[utoipa::path(post, path = "/api/v1/hubs/relay", tag = "hubs", security(("hub" = [])),
    request_body(content = Binary, content_type = "application/x-gridsync",
        description = "a Relay frame"),
    responses(
        (status = 200, content_type = "application/x-gridsync", body = Binary,
            description = "a RelayResult frame"),
        (status = 400, description = "not a valid Relay frame", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, description = "not a token signed by an enrolled hub, or hub_revoked",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "over the frame limit", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn relay(
    State(state): State<AppState>,
    hub: HubCaller,
    _turn: PushTurn,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let relay: Relay = decode(&state, body)?;
    let now = clock::now();
    let mut pushes = Vec::with_capacity(relay.pushes.len());
    let mut devices = Vec::new();
    for attested in &relay.pushes {
        let result = match writer(&state, &hub, attested, now).await? {
            Ok(writer) => {
                state
                    .ingest
                    .push(state.store.as_ref(), &writer, &attested.push)
                    .await?
            }
            Err((code, reason)) => refused(attested, code, &reason),
        };
        let receipt = receipt(&state, &hub, attested, &result, now).await?;
        devices.push(attested.device.clone());
        pushes.push(RelayedPush { result, receipt });
    }
    devices.sort();
    devices.dedup();
    state
        .store
        .audit(&AuditEntry {
            at: now,
            user_id: None,
            device_id: None,
            action: "hub_relay".into(),
            doc_id: None,
            detail: json!({ "hub_id": hub.hub.id, "pushes": pushes.len(), "devices": devices }),
        })
        .await?;
    state.metrics.sync_pushes.inc();
    Ok(frame(&state, &RelayResult { pushes }))
}

/// One page of the hub's unit past its cursor, as a phone's pull pages through its scope:
/// ordinary reports only, every change (the hub serves them all to its phones).
#[utoipa::path(post, path = "/api/v1/hubs/pull", tag = "hubs", security(("hub" = [])),
    request_body(content = Binary, content_type = "application/x-gridsync",
        description = "a Pull frame"),
    responses(
        (status = 200, content_type = "application/x-gridsync", body = Binary,
            description = "a PullResult frame"),
        (status = 400, description = "not a valid Pull frame", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, description = "not a token signed by an enrolled hub, or hub_revoked",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn hub_pull(
    State(state): State<AppState>,
    hub: HubCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let pull: Pull = decode(&state, body)?;
    let _turn = state.sync_budget.reserve_page(pull.byte_budget).await;
    let scope = Scope::for_hub(&hub.hub.id, &hub.unit_path);
    let mut result = pull::pull(state.store.as_ref(), &scope, None, &pull).await?;
    result.catalogue = state.catalogue.fresh(state.store.as_ref()).await?.digest;
    state.metrics.sync_pulls.inc();
    Ok(frame(&state, &result))
}

/// The signed revocation list, which the hub fetches at every contact: whom it must refuse and
/// wipe, and the newest time central has told it.
#[utoipa::path(get, path = "/api/v1/hubs/revocations", tag = "hubs", security(("hub" = [])),
    responses(
        (status = 200, body = SignedRevocations),
        (status = 401, description = "not a token signed by an enrolled hub, or hub_revoked",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn hub_revocations(
    State(state): State<AppState>,
    _hub: HubCaller,
) -> Result<Json<SignedRevocations>, ApiError> {
    Ok(Json(SignedRevocations::now(&state).await?))
}

/// The hub's village or community and its grids, with the units above for breadcrumbs: where
/// the reports it holds are placed.
#[utoipa::path(get, path = "/api/v1/hubs/org", tag = "hubs", security(("hub" = [])),
    responses(
        (status = 200, body = OrgTree),
        (status = 401, description = "not a token signed by an enrolled hub, or hub_revoked",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn hub_org(State(state): State<AppState>, hub: HubCaller) -> Result<Json<OrgTree>, ApiError> {
    Ok(Json(tree_of(&state, &hub.hub.unit_id, false).await?))
}

/// A page of the hub's own audit log.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "log": "eyJhbGciOiJFZERTQSIsInR5cCI6ImdyaWRzeW5jLWh1Yi1hdWRpdCtqd3QifQ.e30.c2ln" }))]
pub struct UploadAudit {
    /// The entries as a JWS the hub signed with its enrolled key (`typ`
    /// `gridsync-hub-audit+jwt`, `kid` the hub id).
    pub log: String,
}

/// How far central holds the hub's audit log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditThrough {
    /// The hub's number of the last entry central holds; the hub sends what comes after.
    pub through: i64,
}

/// Keeps the entries of the hub's own audit log (the sessions it opened for phones) in central's
/// audit log, each once, with the hub named in its detail. A repeated page changes nothing.
#[utoipa::path(post, path = "/api/v1/hubs/audit", tag = "hubs", security(("hub" = [])),
    request_body = UploadAudit,
    responses(
        (status = 200, body = AuditThrough, example = json!({ "through": 42 })),
        (status = 400, description = "not an audit log this hub signed", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, description = "not a token signed by an enrolled hub, or hub_revoked",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn hub_audit(
    State(state): State<AppState>,
    hub: HubCaller,
    Json(upload): Json<UploadAudit>,
) -> Result<Json<AuditThrough>, ApiError> {
    let entries = crate::auth::hub::open_audit(&upload.log, &hub.hub, &state.config.issuer)?;
    let through = state.store.record_hub_audit(&hub.hub.id, &entries).await?;
    Ok(Json(AuditThrough { through }))
}

/// A report kind in force, with its definition: what a hub copies into its own registry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KindInForce {
    pub state: SchemaState,
    /// The schema JSON.
    #[schema(value_type = Object)]
    pub definition: serde_json::Value,
}

/// Every version in force (published or retired), with its definition, so that a hub judges
/// reports of kinds published at runtime as central does. Tagged with the catalogue's digest: a
/// hub that sends the tag it holds (`If-None-Match`) is answered 304 while nothing changed, so
/// each contact does not carry every definition over the village's uplink.
#[utoipa::path(get, path = "/api/v1/hubs/kinds", tag = "hubs", security(("hub" = [])),
    params(("If-None-Match" = Option<String>, Header,
        description = "the ETag of the kinds the hub holds")),
    responses(
        (status = 200, body = Vec<KindInForce>, headers(("ETag" = String)), example = json!([{
            "state": "published",
            "definition": { "kind": "village_patrol", "version": 1,
                "label": { "zh": "村巡查", "en": "Village patrol" }, "fields": [] },
        }])),
        (status = 304, description = "nothing changed since the tag sent"),
        (status = 401, description = "not a token signed by an enrolled hub, or hub_revoked",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn hub_kinds(
    State(state): State<AppState>,
    _hub: HubCaller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let loaded = state.catalogue.fresh(state.store.as_ref()).await?;
    let tag = format!("\"{:016x}\"", loaded.digest);
    let etag = [(header::ETAG, tag.clone())];
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|held| held.as_bytes() == tag.as_bytes())
    {
        return Ok((StatusCode::NOT_MODIFIED, etag).into_response());
    }
    let mut kinds = Vec::with_capacity(loaded.entries.len());
    for entry in &loaded.entries {
        let Some(row) = state
            .store
            .stored_schema(&entry.kind, entry.version)
            .await?
        else {
            continue;
        };
        let definition = serde_json::from_str(&row.definition).map_err(|e| {
            ApiError::Internal(format!("schema {} v{}: {e}", row.kind, row.version))
        })?;
        kinds.push(KindInForce {
            state: row.state,
            definition,
        });
    }
    Ok((etag, Json(kinds)).into_response())
}

/// Whom a relayed push is written as: the user of the device that signed it, in that user's
/// scope, or the code and reason why it cannot be taken as theirs.
async fn writer(
    state: &AppState,
    hub: &HubCaller,
    attested: &AttestedPush,
    now: i64,
) -> Result<Result<Writer, (&'static str, String)>, ApiError> {
    let device = state.store.device(&attested.device).await?;
    let Some((device, key)) = device.and_then(|d| {
        let key = d.public_key.clone()?;
        Some((d, key))
    }) else {
        return Ok(Err((
            "unknown_device",
            format!("no device {} with a key of its own", attested.device),
        )));
    };
    // Checked when the device sent it, so a bad one means the database was altered.
    let key = grant::public_key("the device key", &key)
        .map_err(|e| ApiError::Internal(format!("device {}: {e}", device.id)))?;
    if attest::verify(attested, &key).is_err() {
        return Ok(Err((
            "unattested",
            "the push's signature does not match its changes under the device's key".into(),
        )));
    }
    if device.revoked_at.is_some() {
        return Ok(Err((
            "device_revoked",
            "this device has been revoked".into(),
        )));
    }
    let user = state
        .store
        .user(&device.user_id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("device {} names no user", device.id)))?;
    // A disabled user's phone being handed in still delivers, as it would to central.
    if user.disabled && device.retiring_at.is_none() {
        return Ok(Err(("account_disabled", "this account is disabled".into())));
    }
    let unit = state
        .store
        .org_unit(&user.org_unit_id)
        .await?
        .ok_or_else(|| {
            ApiError::Internal(format!("user {} is placed at a missing unit", user.id))
        })?;
    if !unit.path.starts_with(&hub.unit_path) || !user.role.has_clearance() {
        return Ok(Err((
            "outside_hub",
            format!("{} does not work under this hub's unit", user.id),
        )));
    }
    Ok(Ok(Writer {
        scope: Scope::for_role(&user.id, user.role, &unit.path),
        user_id: user.id,
        device_id: Some(device.id),
        now,
        hold_out_of_scope: true,
        via: Via::Hub(hub.hub.id.clone()),
    }))
}

/// Every document of `attested` refused with `code`.
fn refused(attested: &AttestedPush, code: &str, reason: &str) -> PushResult {
    PushResult::central(
        attested
            .push
            .docs
            .iter()
            .map(|d| PushDocResult {
                doc: d.doc,
                outcome: PushOutcome::Rejected {
                    code: code.to_owned(),
                    reason: reason.to_owned(),
                },
            })
            .collect(),
    )
}

/// Central's signed receipt for the documents of `attested` it acknowledged or held; `None`
/// when there are none.
async fn receipt(
    state: &AppState,
    hub: &HubCaller,
    attested: &AttestedPush,
    result: &PushResult,
    now: i64,
) -> Result<Option<String>, ApiError> {
    let pushed: std::collections::HashMap<_, _> =
        attested.push.docs.iter().map(|d| (d.doc, d)).collect();
    let mut docs = Vec::new();
    for outcome in &result.docs {
        let Some(pushed) = pushed.get(&outcome.doc) else {
            continue;
        };
        let held = match outcome.outcome {
            PushOutcome::Acked { .. } => false,
            PushOutcome::Held { .. } => true,
            PushOutcome::MissingDeps { .. } | PushOutcome::Rejected { .. } => continue,
        };
        // Ingest parsed and checked these changes before it acknowledged them.
        let heads = attest::heads(&pushed.changes)
            .map_err(|e| ApiError::Internal(format!("an acknowledged change: {e}")))?;
        docs.push(ReceiptDoc {
            doc: pushed.doc.to_string(),
            heads: heads.iter().map(hex::encode).collect(),
            held,
        });
    }
    if docs.is_empty() {
        return Ok(None);
    }
    let receipt = Receipt {
        iss: state.config.issuer.clone(),
        aud: grant::AUDIENCE.to_owned(),
        hub: hub.hub.id.clone(),
        dev: attested.device.clone(),
        push: hex::encode(attest::digest(&attested.device, &attested.push)),
        docs,
        iat: now,
    };
    Ok(Some(
        state.keys.sign_typed(grant::RECEIPT_TYP, &receipt).await?,
    ))
}
