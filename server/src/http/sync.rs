//! The sync endpoints: `POST /api/v1/sync/push` and `POST /api/v1/sync/pull`, carrying the binary
//! frames of `gridsync_core::protocol` both ways.
//!
//! A pull also carries the device's own account of itself: the `X-Gridsync-Pending` header
//! (changes it holds undelivered, shown to admins before they revoke a phone). A pull under
//! another scope than the device last pulled under (its user moved to a new grid or role)
//! starts over from zero with `rescoped` set; a retiring device that holds nothing undelivered
//! is told `device_retired` and wipes itself.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gridsync_core::protocol::{self, Limits, Message, Pull, Push};
use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::contract::Binary;
use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::clock;
use crate::scope::Restricted;
use crate::store::{AuditEntry, Via, Writer};
use crate::sync::{budget, pull};

/// Media type of a sync frame.
pub const FRAME_TYPE: &str = "application/x-gridsync";

/// The request header in which a phone says how many changes it holds undelivered.
pub const PENDING_HEADER: &str = "x-gridsync-pending";

/// What a request frame may make the server decode and hold.
pub(super) const LIMITS: Limits = Limits::DEFAULT;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(push))
        .routes(routes!(pull))
        // The frame limit, checked while the body streams in rather than after.
        .layer(DefaultBodyLimit::max(LIMITS.max_frame_bytes))
}

/// Commits the pushed changes and answers one outcome per document; an `Acked` outcome is
/// durable. A document outside the caller's scope is refused on its own.
#[utoipa::path(post, path = "/api/v1/sync/push", tag = "sync", security(("bearer" = [])),
    request_body(content = Binary, content_type = "application/x-gridsync",
        description = "a Push frame"),
    responses(
        (status = 200, content_type = "application/x-gridsync", body = Binary,
            description = "a PushResult frame"),
        (status = 400, description = "not a valid Push frame", body = super::Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "the role may not sync", body = super::Problem,
            content_type = "application/problem+json"),
        (status = 413, description = "over the frame limit", body = super::Problem,
            content_type = "application/problem+json"),
    ))]
async fn push(
    State(state): State<AppState>,
    caller: Caller,
    _turn: PushTurn,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    require_clearance(&caller)?;
    let push: Push = decode(&state, body)?;
    let writer = Writer {
        user_id: caller.user.id.clone(),
        device_id: Some(caller.device.id.clone()),
        scope: caller.scope.clone(),
        now: clock::now(),
        hold_out_of_scope: true,
        via: Via::Direct,
    };
    let result = state
        .ingest
        .push(state.store.as_ref(), &writer, &push)
        .await?;
    state.metrics.sync_pushes.inc();
    Ok(frame(&state, &result))
}

/// One page of the documents in the caller's scope past its cursor.
#[utoipa::path(post, path = "/api/v1/sync/pull", tag = "sync", security(("bearer" = [])),
    request_body(content = Binary, content_type = "application/x-gridsync",
        description = "a Pull frame"),
    responses(
        (status = 200, content_type = "application/x-gridsync", body = Binary,
            description = "a PullResult frame"),
        (status = 400, description = "not a valid Pull frame", body = super::Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "the role may not sync", body = super::Problem,
            content_type = "application/problem+json"),
    ))]
async fn pull(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    require_clearance(&caller)?;
    let mut pull: Pull = decode(&state, body)?;
    let _turn = state.sync_budget.reserve_page(pull.byte_budget).await;
    let now = clock::now();
    let pending = headers
        .get(PENDING_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|n| *n >= 0);
    let device = &caller.device;
    if let Some(n) = pending.filter(|_| pull.after <= pull.since) {
        state.store.note_device_pending(&device.id, n, now).await?;
    }
    if device.retiring_at.is_some() {
        return Err(retire(&state, &caller, pending, now).await?);
    }
    let key = caller.scope.key();
    let rescoped = pull.since > 0 && device.scope_key.as_deref().is_some_and(|k| k != key);
    if rescoped {
        // What it holds was pulled under a scope it no longer has: start over from zero.
        // The key is recorded only once the device asks from zero itself, so an answer lost
        // on the way leaves the next pull rescoped too.
        pull.since = 0;
        pull.after = 0;
    } else if device.scope_key.as_deref() != Some(key.as_str()) {
        state.store.set_device_scope(&device.id, &key).await?;
    }
    let mut result = pull::pull(
        state.store.as_ref(),
        &caller.scope,
        Some(caller.device_id()),
        &pull,
    )
    .await?;
    result.rescoped = rescoped;
    // Read after the page: every report on it is of a version this catalogue holds, so a
    // phone that fetches what the digest announces can draw them all.
    result.catalogue = state.catalogue.fresh(state.store.as_ref()).await?.digest;
    // Drug-control cases are personal data whose every read is audited; a scope that holds any
    // records which documents each page delivered.
    if caller.scope.restricted != Restricted::None && !result.docs.is_empty() {
        let ids: Vec<String> = result.docs.iter().map(|d| d.doc.to_string()).collect();
        state
            .store
            .audit(&AuditEntry {
                at: clock::now(),
                user_id: Some(caller.user.id.clone()),
                device_id: Some(caller.device.id.clone()),
                action: "sync_pull".into(),
                doc_id: None,
                detail: json!({ "docs": ids }),
            })
            .await?;
    }
    state.metrics.sync_pulls.inc();
    Ok(frame(&state, &result))
}

/// A push's share of the sync budget ([`budget::PUSH_EXPANSION`] times its frame's declared
/// length, or the longest frame when it declares none), taken once the caller is known and
/// before the frame is read: a push waiting its turn holds neither its frame nor a database
/// connection.
pub(super) struct PushTurn {
    _permit: OwnedSemaphorePermit,
}

impl FromRequestParts<AppState> for PushTurn {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(LIMITS.max_frame_bytes)
            .min(LIMITS.max_frame_bytes);
        let bytes = declared.saturating_mul(budget::PUSH_EXPANSION);
        Ok(PushTurn {
            _permit: state.sync_budget.reserve(bytes).await,
        })
    }
}

/// The answer to a retiring device: once it holds nothing undelivered it is revoked (its
/// sessions end) and told to wipe itself; until then it is told what still waits.
async fn retire(
    state: &AppState,
    caller: &Caller,
    pending: Option<i64>,
    now: i64,
) -> Result<ApiError, ApiError> {
    match pending {
        Some(0) => {
            state
                .store
                .finish_retirement(&caller.device.id, now)
                .await?;
            state
                .store
                .audit(&AuditEntry {
                    at: now,
                    user_id: Some(caller.user.id.clone()),
                    device_id: Some(caller.device.id.clone()),
                    action: "device_retired".into(),
                    doc_id: None,
                    detail: json!({ "device": caller.device.id }),
                })
                .await?;
            Ok(ApiError::DeviceRetired)
        }
        // A phone that does not say is taken to hold something: nothing is wiped on a guess.
        other => Ok(ApiError::DeviceRetiring(format!(
            "this phone is being handed in, but it still holds {} undelivered changes (refused \
             reports, say): fix or discard them, then sync again",
            other.map_or_else(|| "some".to_owned(), |n| n.to_string())
        ))),
    }
}

/// Sync carries whole automerge documents, whose history holds every value a field ever had,
/// so it cannot redact: roles without clearance for personal data (township and street staff)
/// work in the console, which redacts.
pub(super) fn require_clearance(caller: &Caller) -> Result<(), ApiError> {
    if caller.role().has_clearance() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "the role {} reads reports in the console; sync would carry personal data",
            caller.role()
        )))
    }
}

pub(super) fn decode<M: Message>(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<M, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(LIMITS.max_frame_bytes)
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    })?;
    state.metrics.sync_bytes_in.inc_by(bytes.len() as u64);
    Ok(protocol::decode_with_limits(&bytes, &LIMITS)?)
}

pub(super) fn frame<M: Message>(state: &AppState, message: &M) -> Response {
    let bytes = protocol::encode(message);
    state.metrics.sync_bytes_out.inc_by(bytes.len() as u64);
    ([(CONTENT_TYPE, FRAME_TYPE)], bytes).into_response()
}
