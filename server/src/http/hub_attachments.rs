//! Attachments a village office hub relays, under `/api/v1/hubs/attachments/{id}/{sha256}`:
//! the bytes phones uploaded to the hub, sent on with the same resumable protocol as a phone's
//! own upload (see [`super::attachments`]), for reports of the hub's unit that are not
//! restricted. The hub can forge no photo: only bytes whose sha256 a report's document names (in
//! a change the phone signed) are taken, with that media type and size. Once central holds them
//! it answers with a signed receipt (`Attachment-Receipt`), which the hub hands on to phones, so
//! that they stop owing central those bytes without reaching it.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::attachments::{
    AttachmentView, Progress, UploadProgress, Uploader, answer, named_in, parse_hash,
    progress_answer, take_chunk, upload_progress,
};
use super::contract::Binary;
use super::visible::report_in;
use super::{ApiError, AppState, Path, Problem};
use crate::auth::grant::{self, AttachmentReceipt};
use crate::auth::hub::HubCaller;
use crate::clock;
use crate::scope::Scope;
use crate::store::DocumentRow;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(put_relayed, head_relayed))
}

/// Takes one chunk of an attachment the hub relays; the answer that completes it carries
/// central's receipt.
#[utoipa::path(put, path = "/api/v1/hubs/attachments/{id}/{sha256}", tag = "hubs",
    security(("hub" = [])),
    params(
        ("id" = String, Path, description = "report id", example = "857e5181-eeac-415c-b874-77046e0be110"),
        ("sha256" = String, Path, description = "sha256 of the whole attachment, hex"),
        ("Content-Range" = Option<String>, Header, description = "bytes START-END/TOTAL"),
    ),
    request_body(description = "the chunk; Content-Type is the attachment's media type",
        content(
            (Binary = "image/jpeg"), (Binary = "image/png"), (Binary = "image/webp"),
            (Binary = "audio/mp4"), (Binary = "audio/mpeg"), (Binary = "application/pdf"),
        )),
    responses(
        (status = 200, body = AttachmentView,
            description = "already stored; `Attachment-Receipt`: central's receipt"),
        (status = 201, body = AttachmentView,
            description = "complete and verified; `Attachment-Receipt`: central's receipt"),
        (status = 202, body = UploadProgress, description = "chunk stored; continue at `offset`"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "not a token signed by an enrolled hub, or hub_revoked",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json",
            description = "no such report of the hub's unit, or a restricted one"),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`wrong_offset`: continue at `offset`; `not_attached`: the report \
                does not name these bytes (yet)"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json",
            description = "`hash_mismatch`: the upload is discarded"),
    ))]
async fn put_relayed(
    State(state): State<AppState>,
    hub: HubCaller,
    Path((id, hash)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let scope = Scope::for_hub(&hub.hub.id, &hub.unit_path);
    let report = report_in(state.store.as_ref(), &scope, &id).await?;
    let uploader = Uploader {
        scope: &scope,
        id: &hub.hub.id,
    };
    let accepted = take_chunk(&state, &uploader, &report, &hash, &headers, body).await?;
    let receipt = match accepted.attachment() {
        Some(a) => Some(receipt(&state, &hub, &report, &a.hash, a.size).await?),
        None => None,
    };
    Ok(answer(accepted, receipt.as_deref()))
}

/// Where the relay of an attachment stands: unlike a phone's `HEAD`, bytes the report names but
/// central holds nothing of answer offset 0, and bytes it does not name (yet) 409. Once central
/// holds them, the answer carries central's receipt (for a hub that lost the answer to its last
/// chunk).
#[utoipa::path(head, path = "/api/v1/hubs/attachments/{id}/{sha256}", tag = "hubs",
    security(("hub" = [])),
    params(
        ("id" = String, Path, description = "report id", example = "857e5181-eeac-415c-b874-77046e0be110"),
        ("sha256" = String, Path, description = "sha256 of the attachment, hex"),
    ),
    responses(
        (status = 200, description = "`Upload-Offset`: bytes held; `Upload-Length`: the size; \
            `Attachment-Receipt` once complete"),
        (status = 401, description = "not a token signed by an enrolled hub, or hub_revoked"),
        (status = 404, description = "no such report of the hub's unit, or a restricted one"),
        (status = 409, description = "the report does not name these bytes (yet)"),
    ))]
async fn head_relayed(
    State(state): State<AppState>,
    hub: HubCaller,
    Path((id, hash)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let scope = Scope::for_hub(&hub.hub.id, &hub.unit_path);
    let report = report_in(state.store.as_ref(), &scope, &id).await?;
    let progress = match upload_progress(state.store.as_ref(), &report, &hash).await {
        Err(ApiError::NotFound(_)) => {
            // Said apart, so that a hub sends no byte before central can take them.
            let hash = parse_hash(&hash).ok_or(ApiError::NotAttached)?;
            let named = named_in(&report, &hash).ok_or(ApiError::NotAttached)?;
            Progress {
                hash,
                offset: 0,
                size: i64::try_from(named.size).unwrap_or(i64::MAX),
            }
        }
        other => other?,
    };
    let receipt = if progress.complete() {
        Some(receipt(&state, &hub, &report, &progress.hash, progress.size).await?)
    } else {
        None
    };
    Ok(progress_answer(&progress, receipt.as_deref()))
}

/// Central's signed word that it holds the attachment `hash` of `report`.
async fn receipt(
    state: &AppState,
    hub: &HubCaller,
    report: &DocumentRow,
    hash: &str,
    size: i64,
) -> Result<String, ApiError> {
    let receipt = AttachmentReceipt {
        iss: state.config.issuer.clone(),
        aud: grant::AUDIENCE.to_owned(),
        hub: hub.hub.id.clone(),
        doc: report.id.to_string(),
        sha256: hash.to_owned(),
        size: u64::try_from(size).unwrap_or_default(),
        iat: clock::now(),
    };
    Ok(state
        .keys
        .sign_typed(grant::ATTACHMENT_RECEIPT_TYP, &receipt)
        .await?)
}
