//! The hub's API for the phones on the office network, under `/hub/v1/`: a phone opens a
//! session with its offline grant and its key's answer to the hub's nonce, then pushes (each
//! push signed, so the hub can relay it) and pulls as it does with central, within its scope and
//! never a restricted report. It takes the phone's attachments with central's resumable upload
//! protocol and queues them for relaying, and hands out those it holds (each download audited).
//! It hands back central's receipts for the phone's relayed pushes and for relayed attachments,
//! and central's signed revocation list, which tells a revoked phone to wipe itself.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Query, State};
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_TYPE, RANGE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gridsync_core::attest;
use gridsync_core::protocol::{self, AttestedPush, Limits, Message, Pull, PushOutcome};
use serde::{Deserialize, Serialize};

use super::HubState;
use super::trust::Refusal;
use crate::auth::caller::bearer;
use crate::auth::grant::{self, GrantClaims};
use crate::auth::{refresh, secret};
use crate::http::attachments::{
    Uploader, accept_chunk, answer, downloadable, progress_answer, send, upload_progress,
};
use crate::http::visible::report_in;
use crate::http::{ApiError, Json, Path};
use crate::scope::Scope;
use crate::store::{AuditEntry, Device, User, Via, Writer};
use crate::sync::pull;

const LIMITS: Limits = Limits::DEFAULT;
const FRAME_TYPE: &str = "application/x-gridsync";
/// How long a nonce may be answered.
const NONCE_LIFE_SECS: i64 = 120;
/// Longest session, shorter still when the grant ends sooner.
const SESSION_LIFE_SECS: i64 = 12 * 60 * 60;

pub fn routes() -> Router<HubState> {
    Router::new()
        .route("/hub/v1/nonce", post(nonce))
        .route("/hub/v1/session", post(open_session))
        .route("/hub/v1/sync/push", post(push))
        .route("/hub/v1/sync/pull", post(pull_page))
        .route("/hub/v1/receipts", get(receipts))
        .route("/hub/v1/revocations", get(revocations))
        .route(
            "/hub/v1/reports/{id}/attachments/{sha256}",
            put(put_attachment)
                .head(head_attachment)
                .get(get_attachment),
        )
        // Frames only: an attachment's chunk is read up to the length its Content-Range gives.
        .layer(DefaultBodyLimit::max(LIMITS.max_frame_bytes))
}

/// The phones' sessions and the nonces handed out, in memory: after a restart a phone opens a
/// new session with the grant it holds.
#[derive(Default)]
pub struct Sessions {
    nonces: Mutex<HashMap<String, i64>>,
    /// By the SHA-256 of the session token.
    open: Mutex<HashMap<Vec<u8>, PhoneSession>>,
}

#[derive(Debug, Clone)]
pub struct PhoneSession {
    pub grant: GrantClaims,
    pub expires_at: i64,
}

impl Sessions {
    fn new_nonce(&self, now: i64) -> Result<String, ApiError> {
        let nonce = secret::random_text::<16>()?;
        let mut nonces = self.nonces.lock().unwrap_or_else(|p| p.into_inner());
        nonces.retain(|_, expires| *expires > now);
        nonces.insert(nonce.clone(), now + NONCE_LIFE_SECS);
        Ok(nonce)
    }

    /// Spends `nonce`: true when it was handed out and is still good.
    fn spend_nonce(&self, nonce: &str, now: i64) -> bool {
        let mut nonces = self.nonces.lock().unwrap_or_else(|p| p.into_inner());
        nonces.remove(nonce).is_some_and(|expires| expires > now)
    }

    fn open(&self, session: PhoneSession) -> Result<String, ApiError> {
        let token = secret::random_text::<32>()?;
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(refresh::hash(&token), session);
        Ok(token)
    }

    fn end(&self, token: &str) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&refresh::hash(token));
    }

    fn get(&self, token: &str, now: i64) -> Option<PhoneSession> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, s| s.expires_at > now);
        open.get(&refresh::hash(token)).cloned()
    }
}

#[derive(Debug, Serialize)]
struct Nonce {
    nonce: String,
    hub_id: String,
    unit_path: String,
    /// Central's certificate of this hub, which the phone checks with central's keys.
    certificate: String,
    expires_at: i64,
}

/// A revoked hub answers every phone so, and phones stop trusting it.
fn serving(hub: &HubState) -> Result<(), ApiError> {
    if hub.trust.revoked() {
        return Err(ApiError::HubRevoked);
    }
    Ok(())
}

async fn nonce(State(hub): State<HubState>) -> Result<Json<Nonce>, ApiError> {
    serving(&hub)?;
    let now = hub.trust.now();
    Ok(Json(Nonce {
        nonce: hub.sessions.new_nonce(now)?,
        hub_id: hub.identity.hub_id.clone(),
        unit_path: hub.identity.unit_path.clone(),
        certificate: hub.identity.certificate.clone(),
        expires_at: now + NONCE_LIFE_SECS,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenSession {
    /// The offline grant central gave the phone.
    grant: String,
    nonce: String,
    /// The device key's Ed25519 signature over the hub's challenge, unpadded base64url.
    signature: String,
}

#[derive(Debug, Serialize)]
struct Opened {
    session: String,
    expires_at: i64,
    user_id: String,
    device_id: String,
}

async fn open_session(
    State(hub): State<HubState>,
    Json(req): Json<OpenSession>,
) -> Result<Json<Opened>, ApiError> {
    serving(&hub)?;
    let now = hub.trust.now();
    let grant = hub
        .trust
        .check_grant(&req.grant, &hub.identity.unit_path)
        .map_err(refused)?;
    if !hub.sessions.spend_nonce(&req.nonce, now) {
        return Err(ApiError::GrantRefused(
            "the nonce is unknown, used or expired: ask for a new one".into(),
        ));
    }
    let key = device_key(&grant.dkey)?;
    let signature = URL_SAFE_NO_PAD
        .decode(&req.signature)
        .ok()
        .and_then(|s| <[u8; 64]>::try_from(s).ok())
        .ok_or_else(|| ApiError::BadRequest("signature must be 64 bytes of base64url".into()))?;
    attest::verify_challenge(&key, &hub.identity.hub_id, req.nonce.as_bytes(), &signature)
        .map_err(|_| {
            ApiError::GrantRefused("the nonce was not signed by the grant's key".into())
        })?;
    remember(&hub, &grant, now).await?;
    let expires_at = grant.exp.min(now + SESSION_LIFE_SECS);
    let session = hub.sessions.open(PhoneSession {
        grant: grant.clone(),
        expires_at,
    })?;
    hub.store
        .audit(&AuditEntry {
            at: now,
            user_id: Some(grant.sub.clone()),
            device_id: Some(grant.dev.clone()),
            action: "hub_session".into(),
            doc_id: None,
            detail: serde_json::json!({ "expires_at": expires_at }),
        })
        .await?;
    Ok(Json(Opened {
        session,
        expires_at,
        user_id: grant.sub,
        device_id: grant.dev,
    }))
}

/// Keeps the user and device of a grant in the hub's database, where ingest and held work
/// name them.
async fn remember(hub: &HubState, grant: &GrantClaims, now: i64) -> Result<(), ApiError> {
    let store = hub.store.as_ref();
    if store.user(&grant.sub).await?.is_none() {
        let unit = grant
            .scope
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        if store.org_unit(&unit).await?.is_none() {
            return Err(ApiError::Unavailable(
                "this hub does not know its units yet: let it reach the server once".into(),
            ));
        }
        store
            .insert_user(&User {
                id: grant.sub.clone(),
                username: grant.sub.clone(),
                display_name: grant.sub.clone(),
                // No one logs in at a hub with a password.
                password_hash: String::new(),
                role: grant.role,
                org_unit_id: unit,
                disabled: false,
                created_at: now,
            })
            .await?;
    }
    if store.device(&grant.dev).await?.is_none() {
        store
            .upsert_device(&Device::new(
                &grant.dev,
                &grant.sub,
                &grant.dev,
                Some(grant.dkey.clone()),
                now,
            ))
            .await?;
    }
    Ok(())
}

/// The answer to a phone whose grant the hub does not take.
fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::OutOfTouch => ApiError::HubOutOfTouch(refusal.to_string()),
        Refusal::Revoked => ApiError::DeviceRevoked,
        Refusal::Grant(why) => ApiError::GrantRefused(why),
    }
}

fn device_key(dkey: &str) -> Result<ed25519_dalek::VerifyingKey, ApiError> {
    grant::public_key("the grant's device key", dkey).map_err(ApiError::GrantRefused)
}

/// The phone behind a request's session token.
struct Phone(PhoneSession);

impl FromRequestParts<HubState> for Phone {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &HubState) -> Result<Self, ApiError> {
        serving(hub)?;
        let token = bearer(parts)?;
        let session = hub
            .sessions
            .get(token, hub.trust.now())
            .ok_or(ApiError::TokenInvalid)?;
        // A session lives up to twelve hours; a list fetched meanwhile ends it.
        if let Err(refusal) = hub.trust.still_counts(&session.grant) {
            hub.sessions.end(token);
            return Err(refused(refusal));
        }
        Ok(Phone(session))
    }
}

impl Phone {
    /// The phone's scope at this hub: its own, without restricted reports.
    fn scope(&self) -> Scope {
        let grant = &self.0.grant;
        Scope::for_role(&grant.sub, grant.role, &grant.scope)
    }
}

/// Takes a push the phone signed: queued for relaying first, so that nothing acknowledged here
/// can miss central, then ingested as the phone's own.
async fn push(
    State(hub): State<HubState>,
    phone: Phone,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let grant = &phone.0.grant;
    let bytes = read(body)?;
    let attested: AttestedPush = protocol::decode_with_limits(&bytes, &LIMITS)?;
    if attested.device != grant.dev || attest::verify(&attested, &device_key(&grant.dkey)?).is_err()
    {
        return Err(ApiError::BadRequest(
            "the push is not signed by this session's device key".into(),
        ));
    }
    let now = hub.trust.now();
    let writer = Writer {
        user_id: grant.sub.clone(),
        device_id: Some(grant.dev.clone()),
        scope: phone.scope(),
        now,
        hold_out_of_scope: true,
        via: Via::Hub(hub.identity.hub_id.clone()),
    };
    let queued = hub.store.queue_push(&grant.dev, &bytes, now).await?;
    let mut result = hub
        .ingest
        .push(hub.store.as_ref(), &writer, &attested.push)
        .await?;
    // Held here, not yet at central: the phone still owes central these changes.
    result.hub = Some(hub.identity.hub_id.clone());
    // A push whose every document the hub refused would be refused by central alike.
    let taken = result.docs.iter().any(|d| {
        matches!(
            d.outcome,
            PushOutcome::Acked { .. } | PushOutcome::Held { .. } | PushOutcome::MissingDeps { .. }
        )
    });
    if taken {
        hub.poke.notify_one();
    } else {
        hub.store.mark_relayed(queued, now, None).await?;
    }
    Ok(frame(&result))
}

/// One page of the phone's scope as this hub holds it.
async fn pull_page(
    State(hub): State<HubState>,
    phone: Phone,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let pull: Pull = protocol::decode_with_limits(&read(body)?, &LIMITS)?;
    let scope = phone.scope();
    let result = pull::pull(hub.store.as_ref(), &scope, Some(&phone.0.grant.dev), &pull).await?;
    Ok(frame(&result))
}

/// Takes one chunk of an attachment of a report the phone sees at this hub, as central takes
/// it (`http::attachments`). Once the hub holds the bytes they are queued for relaying; an
/// answer carries central's receipt when central holds them already.
async fn put_attachment(
    State(hub): State<HubState>,
    phone: Phone,
    Path((id, hash)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let scope = phone.scope();
    let store = hub.store.as_ref();
    let report = report_in(store, &scope, &id).await?;
    let uploader = Uploader {
        scope: &scope,
        id: &phone.0.grant.sub,
    };
    let accepted = accept_chunk(store, &uploader, &report, &hash, &headers, body).await?;
    let mut receipt = None;
    if let Some(a) = accepted.attachment() {
        store
            .queue_attachment(&a.doc_id, &a.hash, hub.trust.now())
            .await?;
        receipt = store.attachment_receipt(&a.doc_id, &a.hash).await?;
        if receipt.is_none() {
            hub.poke.notify_one();
        }
    }
    Ok(answer(accepted, receipt.as_deref()))
}

/// Where the upload of an attachment to this hub stands, with central's receipt once central
/// holds the bytes: a phone holding them owes central nothing more.
async fn head_attachment(
    State(hub): State<HubState>,
    phone: Phone,
    Path((id, hash)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let store = hub.store.as_ref();
    let report = report_in(store, &phone.scope(), &id).await?;
    let progress = upload_progress(store, &report, &hash).await?;
    let receipt = if progress.complete() {
        // Queued again (once only) in case the hub died between storing the bytes and queueing
        // them: a phone asks here before it counts the hub as holding them.
        store
            .queue_attachment(&report.id, &progress.hash, hub.trust.now())
            .await?;
        store.attachment_receipt(&report.id, &progress.hash).await?
    } else {
        None
    };
    Ok(progress_answer(&progress, receipt.as_deref()))
}

/// Downloads an attachment the hub holds, whole or one byte range, as central answers it, to a
/// role with clearance for personal data. Every download is in the hub's audit log, which goes
/// to central: photos and signed documents are read at an office PC central does not watch.
async fn get_attachment(
    State(hub): State<HubState>,
    phone: Phone,
    Path((id, hash)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let store = hub.store.as_ref();
    let grant = &phone.0.grant;
    let report = report_in(store, &phone.scope(), &id).await?;
    let range = headers.get(RANGE).and_then(|v| v.to_str().ok());
    let download = downloadable(store, &report, grant.role, &hash, range).await?;
    store
        .audit(&AuditEntry {
            at: hub.trust.now(),
            user_id: Some(grant.sub.clone()),
            device_id: Some(grant.dev.clone()),
            action: "read_attachment".into(),
            doc_id: Some(report.id),
            detail: serde_json::json!({
                "sha256": download.attachment.hash,
                "range": download.range.map(|(s, e)| format!("{s}-{}", e - 1)),
            }),
        })
        .await?;
    send(store, download).await
}

/// Receipts handed back per request at most; the phone asks again after the last.
const RECEIPTS_PAGE: i64 = 500;

#[derive(Debug, Deserialize)]
struct ReceiptsAfter {
    /// The number of the last receipt the phone took; 0 for all.
    #[serde(default)]
    after: i64,
}

#[derive(Debug, Serialize)]
struct Receipts {
    receipts: Vec<NumberedReceipt>,
}

#[derive(Debug, Serialize)]
struct NumberedReceipt {
    id: i64,
    /// Central's receipt (a JWS), which the phone checks with central's keys.
    receipt: String,
}

/// Central's receipts for this phone's relayed pushes, after the last it took.
async fn receipts(
    State(hub): State<HubState>,
    phone: Phone,
    Query(query): Query<ReceiptsAfter>,
) -> Result<Json<Receipts>, ApiError> {
    let found = hub
        .store
        .receipts_for(&phone.0.grant.dev, query.after, RECEIPTS_PAGE)
        .await?;
    Ok(Json(Receipts {
        receipts: found
            .into_iter()
            .map(|r| NumberedReceipt {
                id: r.id,
                receipt: r.receipt,
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize)]
struct Revocations {
    /// Central's signed revocation list as the hub last received it.
    revocations: String,
}

/// Central's signed revocation list, for a phone this hub refused as revoked: the phone checks
/// it with central's keys before it wipes itself, so no hub can make a phone wipe its work. It
/// names devices and accounts by id only, as every hub holds it.
async fn revocations(State(hub): State<HubState>) -> Result<Json<Revocations>, ApiError> {
    hub.trust
        .contact()
        .revocations
        .map(|revocations| Json(Revocations { revocations }))
        .ok_or_else(|| ApiError::NotFound("this hub has no revocation list yet".into()))
}

fn read(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
}

fn frame<M: Message>(message: &M) -> Response {
    ([(CONTENT_TYPE, FRAME_TYPE)], protocol::encode(message)).into_response()
}
