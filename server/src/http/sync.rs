//! The sync endpoints: `POST /api/v1/sync/push` and `POST /api/v1/sync/pull`, carrying the binary
//! frames of `gridsync_core::protocol` both ways.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use gridsync_core::protocol::{self, Limits, Message, Pull, Push};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::clock;
use crate::scope::Restricted;
use crate::store::{AuditEntry, Writer};

/// Media type of a sync frame.
pub const FRAME_TYPE: &str = "application/x-gridsync";

/// What a request frame may make the server decode and hold.
const LIMITS: Limits = Limits::DEFAULT;

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
    request_body(content = Vec<u8>, content_type = "application/x-gridsync",
        description = "a Push frame"),
    responses(
        (status = 200, content_type = "application/x-gridsync", body = Vec<u8>,
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
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    require_clearance(&caller)?;
    let push: Push = decode(&state, body)?;
    let writer = Writer {
        user_id: caller.user.id.clone(),
        device_id: Some(caller.device.id.clone()),
        scope: caller.scope.clone(),
        now: clock::now(),
    };
    let result = state.ingest(&writer, &push).await?;
    state.metrics.sync_pushes.inc();
    Ok(frame(&state, &result))
}

/// One page of the documents in the caller's scope past its cursor.
#[utoipa::path(post, path = "/api/v1/sync/pull", tag = "sync", security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "application/x-gridsync",
        description = "a Pull frame"),
    responses(
        (status = 200, content_type = "application/x-gridsync", body = Vec<u8>,
            description = "a PullResult frame"),
        (status = 400, description = "not a valid Pull frame", body = super::Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "the role may not sync", body = super::Problem,
            content_type = "application/problem+json"),
    ))]
async fn pull(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    require_clearance(&caller)?;
    let pull: Pull = decode(&state, body)?;
    let result = state
        .store
        .pull(&caller.scope, Some(caller.device_id()), &pull)
        .await?;
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

/// Sync carries whole automerge documents, whose history holds every value a field ever had,
/// so it cannot redact: roles without clearance for personal data (township and street staff)
/// work in the console, which redacts.
fn require_clearance(caller: &Caller) -> Result<(), ApiError> {
    if caller.role().has_clearance() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "the role {} reads reports in the console; sync would carry personal data",
            caller.role()
        )))
    }
}

fn decode<M: Message>(
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

fn frame<M: Message>(state: &AppState, message: &M) -> Response {
    let bytes = protocol::encode(message);
    state.metrics.sync_bytes_out.inc_by(bytes.len() as u64);
    ([(CONTENT_TYPE, FRAME_TYPE)], bytes).into_response()
}
