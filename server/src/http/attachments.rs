//! Attachments of reports under `/api/v1/reports/{id}/attachments/{sha256}`: resumable chunked
//! upload, upload status, ranged download and thumbnails. The bytes are content-addressed blobs
//! in the database (deduplicated by sha256); a blob is downloadable through a report only once
//! linked to it, and only by callers who see that report.
//!
//! # Upload protocol
//!
//! The report's document must name the attachment first (the phone pushes the report's
//! changes, then uploads): bytes no document names are 409 `not_attached`, and a media type or
//! size other than the document's is 422 `attachment_mismatch`. The attachments of a removed
//! log entry count as named, since restoring the entry brings them back, though no listing
//! shows them.
//!
//! `PUT /api/v1/reports/{id}/attachments/{sha256}` sends one chunk:
//! - `Content-Type`: the attachment's media type (one of [`ATTACHMENT_MEDIA_TYPES`]; else 415
//!   `unsupported_media_type`).
//! - `Content-Range: bytes START-END/TOTAL` (END inclusive; the body holds exactly those bytes).
//!   Without it the body is the whole attachment and `Content-Length` gives its size. TOTAL
//!   above [`MAX_ATTACHMENT_BYTES`] is 413 `payload_too_large`, before any byte is read.
//! - START must be where the server's copy ends: else 409 `wrong_offset`, with the offset to
//!   continue at in `Upload-Offset` and in the problem's `offset`. A chunk at 0 declaring
//!   another TOTAL or media type starts the upload over.
//!
//! Answers: 202 with `Upload-Offset` while incomplete; 201 with the attachment when the chunk
//! completes the upload and its sha256 matches; 422 `hash_mismatch` when it does not (the
//! upload is discarded: nothing of it was ever readable). 200 at once, reading no body, when the
//! blob is already linked to this report or to another report the caller sees (deduplication
//! that tells nothing to anyone who could not read the blob anyway; anyone else uploads the
//! bytes, which are then verified and dropped in favour of the stored blob).
//!
//! `HEAD` on the same path tells where an upload stands: 200 with `Upload-Offset` and
//! `Upload-Length` (equal once complete), or 404 when the server holds nothing of it for this
//! report (start at 0). A client that was cut off asks `HEAD`, then continues at the offset.
//!
//! # Download
//!
//! `GET` on the same path answers the bytes, 206 for a single `Range: bytes=…` (416 when it lies
//! outside), with `ETag` the sha256. Roles without clearance get 403 (photos and signed
//! documents are personal data); downloads of restricted reports (drug-control cases) are
//! audited as `read_attachment`. A report the caller cannot see, and a hash not linked to the
//! report, answer the same 404 whether or not the blob is stored elsewhere.
//!
//! `GET …/{sha256}/thumbnail` answers a JPEG at most 320 px on its longer side, made when the
//! upload of a photo completed, under the same rules. The upload's answer waits for it; at most
//! [`thumbnail::DECODES_AT_ONCE`] photos are decoded at a time, so many photos arriving together
//! wait their turn rather than take the server's memory. A photo whose header declares more
//! than one decode may take ([`thumbnail::DECODE_BUDGET`]; a 9000 × 9000 PNG does) gets no
//! thumbnail: the listing shows none, its thumbnail answers 422 `image_too_large`, and the photo
//! itself is stored and downloadable like any other.

use std::collections::HashSet;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gridsync_core::DocId;
use gridsync_core::attachment::Attachment as CoreAttachment;
use gridsync_core::report::{ATTACHMENTS, HIDDEN_ATTACHMENTS};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::contract::Binary;
use super::error::UPLOAD_OFFSET;
use super::visible::visible_report;
use super::{ApiError, AppState, Json, Path, Problem};
use crate::auth::Caller;
use crate::clock;
use crate::config::{ATTACHMENT_MEDIA_TYPES, MAX_ATTACHMENT_BYTES};
use crate::scope::{Role, Scope};
use crate::store::{Attachment, AuditEntry, DocumentRow, Store, UploadChunk, UploadOutcome};
use crate::thumbnail::{self, ThumbnailError};

/// The total size of an upload (tus names it so).
pub const UPLOAD_LENGTH: &str = "upload-length";
/// Central's signed receipt for an attachment a hub relayed (`AttachmentReceipt`),
/// on the answers of hubs.
pub const ATTACHMENT_RECEIPT: &str = "attachment-receipt";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_attachment, head_attachment, get_attachment))
        .routes(routes!(get_thumbnail))
}

/// An attachment as a report lists it: the document's metadata, whether the server holds the
/// bytes, and where its thumbnail is.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentListing {
    /// sha256 of the bytes, lowercase hex.
    pub sha256: String,
    pub media_type: String,
    pub size: u64,
    /// `***` for sensitive attachment fields and roles without clearance.
    pub name: String,
    /// The attachment field it belongs to.
    pub field: String,
    /// The log entry it belongs to, for attachments of log fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    pub taken_at: String,
    pub attached_by: String,
    /// Whether the server holds the bytes (the phone may not have uploaded them yet).
    pub uploaded: bool,
    /// The thumbnail's path, for uploaded photos that the caller may see.
    pub thumbnail: Option<String>,
}

/// The attachments a report's (redacted) projection names, for the report's JSON.
pub(super) async fn listing(
    state: &AppState,
    caller: &Caller,
    row: &DocumentRow,
    projection: &serde_json::Value,
) -> Result<Vec<AttachmentListing>, ApiError> {
    let named: Vec<CoreAttachment> = projection
        .get(ATTACHMENTS)
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| serde_json::from_value(a.clone()).ok())
        .collect();
    if named.is_empty() {
        return Ok(Vec::new());
    }
    let uploaded: HashSet<String> = state
        .store
        .attachments_of(&row.id)
        .await?
        .into_iter()
        .map(|a| a.hash)
        .collect();
    let thumbnails: HashSet<String> = if caller.role().has_clearance() {
        state
            .store
            .thumbnails_of(&row.id)
            .await?
            .into_iter()
            .collect()
    } else {
        HashSet::new()
    };
    Ok(named
        .into_iter()
        .map(|a| AttachmentListing {
            uploaded: uploaded.contains(&a.sha256),
            thumbnail: thumbnails.contains(&a.sha256).then(|| {
                format!(
                    "/api/v1/reports/{}/attachments/{}/thumbnail",
                    row.id, a.sha256
                )
            }),
            sha256: a.sha256,
            media_type: a.media_type,
            size: a.size,
            name: a.name,
            field: a.field,
            entry: a.entry,
            taken_at: a.taken_at,
            attached_by: a.attached_by,
        })
        .collect())
}

/// What the report's document says of the bytes of one attachment.
#[derive(Deserialize)]
pub(super) struct Named {
    media_type: String,
    pub size: u64,
}

/// The attachment `hash` as the report's document names it: shown, or hidden with a removed
/// log entry.
pub(super) fn named_in(report: &DocumentRow, hash: &str) -> Option<Named> {
    [ATTACHMENTS, HIDDEN_ATTACHMENTS]
        .into_iter()
        .filter_map(|key| report.projection.get(key)?.as_array())
        .flatten()
        .find(|a| a.get("sha256").and_then(serde_json::Value::as_str) == Some(hash))
        .and_then(|a| serde_json::from_value(a.clone()).ok())
}

/// An attachment of a report.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentView {
    /// sha256 of the bytes, lowercase hex.
    pub sha256: String,
    pub media_type: String,
    pub size: i64,
    pub created_by: String,
    pub created_at: i64,
}

/// Where an unfinished upload stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadProgress {
    /// Bytes the server holds: the next chunk starts here.
    pub offset: i64,
    pub size: i64,
}

fn view(a: Attachment) -> AttachmentView {
    AttachmentView {
        sha256: a.hash,
        media_type: a.media_type,
        size: a.size,
        created_by: a.created_by,
        created_at: a.created_at,
    }
}

/// Uploads one chunk of an attachment (see the module documentation for the protocol).
#[utoipa::path(put, path = "/api/v1/reports/{id}/attachments/{sha256}", tag = "attachments",
    security(("bearer" = [])),
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
        (status = 200, body = AttachmentView, description = "already stored and linked"),
        (status = 201, body = AttachmentView, description = "complete and verified"),
        (status = 202, body = UploadProgress, description = "chunk stored; continue at `offset`"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "`wrong_offset`: continue at `offset`"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json",
            description = "`hash_mismatch`: the upload is discarded"),
    ))]
async fn put_attachment(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, hash)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Reading and writing take the same scope; a report outside it is 404 like a missing one.
    let report = visible_report(&state, &caller, &id).await?;
    let uploader = Uploader {
        scope: &caller.scope,
        id: caller.user_id(),
    };
    let accepted = take_chunk(&state, &uploader, &report, &hash, &headers, body).await?;
    Ok(answer(accepted, None))
}

/// [`accept_chunk`] into central's store, with the thumbnail of a photo the chunk completes.
pub(super) async fn take_chunk(
    state: &AppState,
    uploader: &Uploader<'_>,
    report: &DocumentRow,
    hash: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Accepted, ApiError> {
    let accepted =
        accept_chunk(state.store.as_ref(), uploader, report, hash, headers, body).await?;
    if let Accepted::Complete {
        attachment,
        new_blob: true,
    } = &accepted
    {
        store_thumbnail(state, attachment).await?;
    }
    Ok(accepted)
}

/// Who uploads, as [`accept_chunk`] takes it.
pub(crate) struct Uploader<'a> {
    /// Where a blob stored already may be linked without its bytes (see
    /// [`Store::link_visible_blob`]).
    pub scope: &'a Scope,
    /// Whom the link names: a user, or the hub that relayed the bytes.
    pub id: &'a str,
}

/// What one chunk did.
pub(crate) enum Accepted {
    /// The bytes were stored already and are now linked to the report (200).
    Linked(Attachment),
    /// The chunk completed the upload, its hash verified (201); `new_blob` when the bytes were
    /// not stored before.
    Complete {
        attachment: Attachment,
        new_blob: bool,
    },
    /// The chunk is stored; the next starts at `received` (202).
    Partial { received: i64, total: i64 },
}

impl Accepted {
    /// The link, once the report has the bytes.
    pub(crate) fn attachment(&self) -> Option<&Attachment> {
        match self {
            Accepted::Linked(attachment) | Accepted::Complete { attachment, .. } => {
                Some(attachment)
            }
            Accepted::Partial { .. } => None,
        }
    }
}

/// The answer to a chunk, with central's receipt for the bytes when there is one to hand on.
pub(crate) fn answer(accepted: Accepted, receipt: Option<&str>) -> Response {
    let mut response = match accepted {
        Accepted::Linked(a) => (StatusCode::OK, Json(view(a))).into_response(),
        Accepted::Complete { attachment, .. } => {
            (StatusCode::CREATED, Json(view(attachment))).into_response()
        }
        Accepted::Partial { received, total } => (
            StatusCode::ACCEPTED,
            [(UPLOAD_OFFSET, received)],
            Json(UploadProgress {
                offset: received,
                size: total,
            }),
        )
            .into_response(),
    };
    with_receipt(&mut response, receipt);
    response
}

/// Adds `receipt` as the [`ATTACHMENT_RECEIPT`] header.
fn with_receipt(response: &mut Response, receipt: Option<&str>) {
    if let Some(value) = receipt.and_then(|r| HeaderValue::from_str(r).ok()) {
        response.headers_mut().insert(ATTACHMENT_RECEIPT, value);
    }
}

/// Takes one chunk of the attachment `hash` (as the path gave it) of `report`, held in `store`
/// (see the module documentation for the protocol).
pub(crate) async fn accept_chunk(
    store: &dyn Store,
    uploader: &Uploader<'_>,
    report: &DocumentRow,
    hash: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Accepted, ApiError> {
    let hash = parse_hash(hash).ok_or_else(|| {
        ApiError::BadRequest("the path must end in the sha256 of the attachment, hex".into())
    })?;
    let media_type = media_type(headers)?;
    let (start, end, total) = content_range(headers)?;
    if total > MAX_ATTACHMENT_BYTES {
        return Err(ApiError::PayloadTooLarge(MAX_ATTACHMENT_BYTES as usize));
    }
    let named = named_in(report, &hash).ok_or(ApiError::NotAttached)?;
    if named.media_type != media_type || i64::try_from(named.size) != Ok(total) {
        return Err(ApiError::AttachmentMismatch(format!(
            "the report names this attachment as {} bytes of {}; the upload says {total} bytes \
             of {media_type}",
            named.size, named.media_type
        )));
    }
    let now = clock::now();
    let link = Attachment {
        doc_id: report.id,
        hash: hash.clone(),
        media_type: media_type.clone(),
        size: total,
        created_by: uploader.id.to_owned(),
        created_at: now,
    };
    if let Some(a) = store.link_visible_blob(uploader.scope, &link).await? {
        return Ok(Accepted::Linked(a));
    }
    let expected = usize::try_from(end - start + 1).unwrap_or(0);
    let bytes = axum::body::to_bytes(body, expected).await.map_err(|_| {
        ApiError::BadRequest("the body is longer than Content-Range says, or broke off".into())
    })?;
    if bytes.len() != expected {
        return Err(ApiError::BadRequest(format!(
            "the body holds {} bytes; Content-Range says {expected}",
            bytes.len()
        )));
    }
    let outcome = store
        .upload_chunk(&UploadChunk {
            doc_id: report.id,
            hash: &hash,
            media_type: &media_type,
            total,
            offset: start,
            bytes: &bytes,
            user_id: uploader.id,
            now,
        })
        .await?;
    // Stored: an upload waiting for its thumbnail's turn to decode holds none of its bytes.
    drop(bytes);
    match outcome {
        UploadOutcome::Partial { received } => Ok(Accepted::Partial { received, total }),
        UploadOutcome::WrongOffset { received } => Err(ApiError::WrongOffset { offset: received }),
        UploadOutcome::HashMismatch => Err(ApiError::HashMismatch),
        UploadOutcome::Complete {
            attachment,
            new_blob,
        } => Ok(Accepted::Complete {
            attachment,
            new_blob,
        }),
    }
}

/// Where the upload of an attachment stands, for resuming it.
#[utoipa::path(head, path = "/api/v1/reports/{id}/attachments/{sha256}", tag = "attachments",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "report id", example = "857e5181-eeac-415c-b874-77046e0be110"),
        ("sha256" = String, Path, description = "sha256 of the attachment, hex"),
    ),
    responses(
        (status = 200, description = "`Upload-Offset`: bytes held; `Upload-Length`: the size"),
        (status = 404, description = "nothing of it for this report: start at 0"),
    ))]
async fn head_attachment(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, hash)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let report = visible_report(&state, &caller, &id).await?;
    let progress = upload_progress(state.store.as_ref(), &report, &hash).await?;
    Ok(progress_answer(&progress, None))
}

/// Where the upload of an attachment stands in a store.
pub(crate) struct Progress {
    /// sha256 of the bytes, lowercase hex.
    pub hash: String,
    /// Bytes held: the next chunk starts here.
    pub offset: i64,
    pub size: i64,
}

impl Progress {
    pub(crate) fn complete(&self) -> bool {
        self.offset == self.size
    }
}

/// Where the upload of the attachment `hash` (as the path gave it) of `report` stands in
/// `store`; 404 when the store holds nothing of it for this report.
pub(crate) async fn upload_progress(
    store: &dyn Store,
    report: &DocumentRow,
    hash: &str,
) -> Result<Progress, ApiError> {
    let hash = parse_hash(hash).ok_or_else(not_found)?;
    let (offset, size) = if let Some(a) = store.attachment(&report.id, &hash).await? {
        (a.size, a.size)
    } else if let Some(u) = store.upload_state(&report.id, &hash).await? {
        (u.received, u.size)
    } else {
        return Err(not_found());
    };
    Ok(Progress { hash, offset, size })
}

/// The answer to `HEAD`, with central's receipt for the bytes when there is one to hand on.
pub(crate) fn progress_answer(progress: &Progress, receipt: Option<&str>) -> Response {
    let mut response = (
        StatusCode::OK,
        [
            (UPLOAD_OFFSET, progress.offset),
            (UPLOAD_LENGTH, progress.size),
        ],
    )
        .into_response();
    with_receipt(&mut response, receipt);
    response
}

/// Downloads an attachment, whole or one byte range.
#[utoipa::path(get, path = "/api/v1/reports/{id}/attachments/{sha256}", tag = "attachments",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "report id", example = "857e5181-eeac-415c-b874-77046e0be110"),
        ("sha256" = String, Path, description = "sha256 of the attachment, hex"),
        ("Range" = Option<String>, Header, description = "bytes=START-END, START- or -SUFFIX"),
    ),
    responses(
        (status = 200, description = "the bytes, of the attachment's media type",
            content((Binary = "image/jpeg"), (Binary = "image/png"), (Binary = "image/webp"),
                (Binary = "audio/mp4"), (Binary = "audio/mpeg"), (Binary = "application/pdf"))),
        (status = 206, description = "the range asked for", content(
            (Binary = "image/jpeg"), (Binary = "image/png"), (Binary = "image/webp"),
            (Binary = "audio/mp4"), (Binary = "audio/mpeg"), (Binary = "application/pdf"))),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json",
            description = "the role has no clearance for personal data"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 416, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_attachment(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, hash)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let report = visible_report(&state, &caller, &id).await?;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let download = downloadable(state.store.as_ref(), &report, caller.role(), &hash, range).await?;
    if report.restricted {
        audit_download(
            &state,
            &caller,
            report.id,
            &download.attachment.hash,
            download.range,
        )
        .await?;
    }
    send(state.store.as_ref(), download).await
}

/// An attachment a reader may download, and the part of it asked for.
pub(crate) struct Download {
    pub attachment: Attachment,
    /// `start..end` of a `Range` request; `None` for the whole.
    pub range: Option<(i64, i64)>,
}

/// The attachment `hash` (as the path gave it) of `report` for a reader of `role`, with the
/// range a `Range` header asks for: 403 for a role without clearance, 404 for a hash the report
/// does not link.
pub(crate) async fn downloadable(
    store: &dyn Store,
    report: &DocumentRow,
    role: Role,
    hash: &str,
    range: Option<&str>,
) -> Result<Download, ApiError> {
    if !role.has_clearance() {
        return Err(ApiError::Forbidden(format!(
            "the role {role} may not download attachments: they hold personal data"
        )));
    }
    let hash = parse_hash(hash).ok_or_else(not_found)?;
    let attachment = store
        .attachment(&report.id, &hash)
        .await?
        .ok_or_else(not_found)?;
    let range = match range {
        Some(r) => parse_range(r, attachment.size)?,
        None => None,
    };
    Ok(Download { attachment, range })
}

/// The bytes of `download`, whole (200) or the range asked for (206).
pub(crate) async fn send(store: &dyn Store, download: Download) -> Result<Response, ApiError> {
    let Download { attachment, range } = download;
    let (hash, size) = (&attachment.hash, attachment.size);
    let (start, end) = range.unwrap_or((0, size));
    let bytes = store
        .read_blob(hash, start, end)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("attachment {hash} has no blob")))?;
    let mut response = Response::new(Body::from(bytes));
    let h = response.headers_mut();
    let content_type = HeaderValue::from_str(&attachment.media_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // Photos and signed documents are personal data: a shared office PC keeps no copy.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("\"{hash}\"")) {
        h.insert(header::ETAG, v);
    }
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1)) {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

/// Makes and stores the thumbnail of a photo whose upload just completed, in a task of its own:
/// the upload's answer waits for it, but a phone that stops waiting while the decodes are busy
/// does not cancel it. A photo that does not decode, or is too large to, keeps its place on the
/// report without one: the upload itself is fine.
async fn store_thumbnail(state: &AppState, attachment: &Attachment) -> Result<(), ApiError> {
    let Some(format) = thumbnail::photo_format(&attachment.media_type) else {
        return Ok(());
    };
    let (state, hash, size) = (state.clone(), attachment.hash.clone(), attachment.size);
    tokio::spawn(async move {
        // The turn first: a decode waiting for one holds neither the photo's bytes nor a
        // database connection. It ends once the decode has dropped the bytes and the picture.
        let turn = state.decodes.turn().await;
        let bytes = state
            .store
            .read_blob(&hash, 0, size)
            .await?
            .ok_or_else(|| ApiError::Internal(format!("attachment {hash} has no blob")))?;
        let made = tokio::task::spawn_blocking(move || thumbnail::make(&bytes, format))
            .await
            .map_err(|e| ApiError::Internal(format!("thumbnail task: {e}")))?;
        drop(turn);
        match made {
            Ok(jpeg) => {
                state
                    .store
                    .put_thumbnail(&hash, &jpeg, clock::now())
                    .await?
            }
            Err(e) => tracing::warn!(hash = %hash, error = %e, "no thumbnail"),
        }
        Ok(())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("thumbnail task: {e}")))?
}

/// How much of a photo's start is read to tell why it has no thumbnail: its header, with the
/// metadata a camera writes before a JPEG's frame.
const HEADER_BYTES: i64 = 256 * 1024;

/// The answer for a photo of this report without a thumbnail: 422 `image_too_large` when its
/// header declares more than a decode may take; else 404 (not uploaded, no photo, undecodable,
/// or its thumbnail is still being made).
async fn no_thumbnail(state: &AppState, doc_id: &DocId, hash: &str) -> Result<ApiError, ApiError> {
    let Some(attachment) = state.store.attachment(doc_id, hash).await? else {
        return Ok(not_found());
    };
    let Some(format) = thumbnail::photo_format(&attachment.media_type) else {
        return Ok(ApiError::NotFound("only photos have thumbnails".into()));
    };
    // Reading a header may inflate a little metadata (at most a megabyte): off the runtime, but
    // without waiting for a turn behind the decodes.
    let head = state
        .store
        .read_blob(hash, 0, attachment.size.min(HEADER_BYTES))
        .await?
        .unwrap_or_default();
    let size = u64::try_from(attachment.size).unwrap_or(0);
    let checked = tokio::task::spawn_blocking(move || thumbnail::check(&head, size, format))
        .await
        .map_err(|e| ApiError::Internal(format!("thumbnail task: {e}")))?;
    Ok(match checked {
        Err(e @ ThumbnailError::TooLarge { .. }) => ApiError::ImageTooLarge(format!(
            "{e}; the photo itself is stored and can be downloaded"
        )),
        _ => ApiError::NotFound("this photo has no thumbnail".into()),
    })
}

/// The thumbnail of a photo attachment: a JPEG at most 320 px on its longer side.
#[utoipa::path(get, path = "/api/v1/reports/{id}/attachments/{sha256}/thumbnail",
    tag = "attachments", security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "report id", example = "857e5181-eeac-415c-b874-77046e0be110"),
        ("sha256" = String, Path, description = "sha256 of the attachment, hex"),
    ),
    responses(
        (status = 200, description = "the thumbnail", body = Binary, content_type = "image/jpeg"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json",
            description = "the role has no clearance for personal data"),
        (status = 404, body = Problem, content_type = "application/problem+json",
            description = "no such uploaded photo on this report, or it has no thumbnail"),
        (status = 422, body = Problem, content_type = "application/problem+json",
            description = "`image_too_large`: the photo is too large to decode for a thumbnail; \
                download the photo itself"),
    ))]
async fn get_thumbnail(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, hash)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let report = visible_report(&state, &caller, &id).await?;
    if !caller.role().has_clearance() {
        return Err(ApiError::Forbidden(format!(
            "the role {} may not see attachments: they hold personal data",
            caller.role()
        )));
    }
    let hash = parse_hash(&hash).ok_or_else(not_found)?;
    let Some(jpeg) = state.store.thumbnail(&report.id, &hash).await? else {
        return Err(no_thumbnail(&state, &report.id, &hash).await?);
    };
    if report.restricted {
        audit_read(
            &state,
            &caller,
            report.id,
            json!({"sha256": hash, "thumbnail": true}),
        )
        .await?;
    }
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        jpeg,
    )
        .into_response())
}

async fn audit_download(
    state: &AppState,
    caller: &Caller,
    doc_id: DocId,
    hash: &str,
    range: Option<(i64, i64)>,
) -> Result<(), ApiError> {
    let detail = json!({
        "sha256": hash,
        "range": range.map(|(s, e)| format!("{s}-{}", e - 1)),
    });
    audit_read(state, caller, doc_id, detail).await
}

async fn audit_read(
    state: &AppState,
    caller: &Caller,
    doc_id: DocId,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    state
        .store
        .audit(&AuditEntry {
            at: clock::now(),
            user_id: Some(caller.user_id().to_owned()),
            device_id: Some(caller.device_id().to_owned()),
            action: "read_attachment".into(),
            doc_id: Some(doc_id),
            detail,
        })
        .await?;
    Ok(())
}

/// The one answer for a hash this report does not have, whatever other reports hold.
fn not_found() -> ApiError {
    ApiError::NotFound("no such attachment on this report".into())
}

/// A sha256 in hex (either case), lowercase.
pub(super) fn parse_hash(s: &str) -> Option<String> {
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

/// The media type of `Content-Type` without parameters, if the server stores it.
fn media_type(headers: &HeaderMap) -> Result<String, ApiError> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if ATTACHMENT_MEDIA_TYPES.contains(&essence.as_str()) {
        Ok(essence)
    } else {
        Err(ApiError::MediaTypeNotAllowed(value.to_owned()))
    }
}

/// (START, END inclusive, TOTAL) of `Content-Range: bytes START-END/TOTAL`, or of the whole
/// body by `Content-Length` when there is no Content-Range.
fn content_range(headers: &HeaderMap) -> Result<(i64, i64, i64), ApiError> {
    let bad = || ApiError::BadRequest("Content-Range must read `bytes START-END/TOTAL`".into());
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        let len: i64 = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                ApiError::BadRequest("a chunk needs Content-Range, or Content-Length".into())
            })?;
        if len == 0 {
            return Err(ApiError::BadRequest("an attachment holds no bytes".into()));
        }
        return Ok((0, len - 1, len));
    };
    let value = value.to_str().map_err(|_| bad())?;
    let rest = value.strip_prefix("bytes ").ok_or_else(bad)?;
    let (range, total) = rest.split_once('/').ok_or_else(bad)?;
    let (start, end) = range.split_once('-').ok_or_else(bad)?;
    let num = |s: &str| -> Result<i64, ApiError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (start, end, total) = (num(start)?, num(end)?, num(total)?);
    if total > MAX_ATTACHMENT_BYTES {
        // Checked before the consistency of the range: the size alone refuses it.
        return Ok((start, end, total));
    }
    if start > end || end >= total {
        return Err(ApiError::BadRequest(format!(
            "Content-Range {value} lies outside the attachment"
        )));
    }
    Ok((start, end, total))
}

/// The range `start..end` (end exclusive) of a single-range `Range` header on a blob of `size`
/// bytes; `None` for forms we serve whole (several ranges, other units, malformed), as RFC 9110
/// allows.
fn parse_range(value: &str, size: i64) -> Result<Option<(i64, i64)>, ApiError> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let num = |s: &str| s.parse::<i64>().ok().filter(|n| *n >= 0);
    let unsatisfiable = ApiError::RangeNotSatisfiable { size };
    match (a.is_empty(), b.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match num(b) {
            Some(0) => Err(unsatisfiable),
            Some(n) => Ok(Some(((size - n).max(0), size))),
            None => Ok(None),
        },
        (false, _) => {
            let Some(start) = num(a) else { return Ok(None) };
            let end = if b.is_empty() {
                size
            } else {
                match num(b) {
                    // `e` may be i64::MAX: clip before adding one.
                    Some(e) if e >= start => e.min(size - 1) + 1,
                    _ => return Ok(None),
                }
            };
            if start >= size {
                Err(unsatisfiable)
            } else {
                Ok(Some((start, end)))
            }
        }
        (true, true) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_as_rfc_9110_says() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), Some((90, 100)));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), Some((90, 100)));
        assert_eq!(parse_range("bytes=-500", 100).unwrap(), Some((0, 100)));
        assert_eq!(parse_range("bytes=50-500", 100).unwrap(), Some((50, 100)));
        assert_eq!(parse_range("bytes=0-1,5-6", 100).unwrap(), None);
        assert_eq!(parse_range("items=0-1", 100).unwrap(), None);
        assert_eq!(parse_range("bytes=9-3", 100).unwrap(), None);
        assert!(parse_range("bytes=100-", 100).is_err());
        assert!(parse_range("bytes=-0", 100).is_err());
    }

    #[test]
    fn hashes_are_64_hex_digits_lowercased() {
        assert_eq!(parse_hash(&"AB".repeat(32)), Some("ab".repeat(32)));
        assert_eq!(parse_hash(&"ab".repeat(31)), None);
        assert_eq!(parse_hash(&"zz".repeat(32)), None);
    }
}
