//! How a village office hub proves itself to central: a short JWT it signs with the key it
//! enrolled, naming itself by `kid` (a client assertion, as in RFC 7523), which central checks
//! against that key. Central keeps no secret of the hub's, and the hub holds no key of
//! central's: what one signs never passes for what the other signs.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::Result;
use super::caller::bearer;
use super::token::{ALGORITHM, pkcs8};
use crate::http::{ApiError, AppState};
use crate::store::{AuditEntry, AuditRecord, Hub};

/// The `typ` header of a hub's tokens.
pub const TYP: &str = "gridsync-hub-auth+jwt";
/// Longest life central accepts for a hub's token. Short, so a copied one is soon useless;
/// what it allows, relaying signed pushes, is harmless to repeat.
pub const MAX_LIFE_SECS: i64 = 300;
/// The hub's clock and central's may disagree this much.
const LEEWAY_SECS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubClaims {
    /// The hub id, as in `sub`.
    pub iss: String,
    pub sub: String,
    /// Central's issuer, as the hub's certificate names it.
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// A token for hub `hub_id` to show central `audience`, signed with the hub's key (its 32-byte
/// Ed25519 seed) at `now`, by the hub's own clock.
pub fn sign(seed: &[u8; 32], hub_id: &str, audience: &str, now: i64) -> Result<String> {
    let mut header = Header::new(ALGORITHM);
    header.kid = Some(hub_id.to_owned());
    header.typ = Some(TYP.to_owned());
    let claims = HubClaims {
        iss: hub_id.to_owned(),
        sub: hub_id.to_owned(),
        aud: audience.to_owned(),
        iat: now,
        exp: now + MAX_LIFE_SECS,
    };
    Ok(jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ed_der(&pkcs8(seed)),
    )?)
}

/// The enrolled hub behind a request's bearer token.
#[derive(Debug, Clone)]
pub struct HubCaller {
    pub hub: Hub,
    /// The org path of the village or community it serves.
    pub unit_path: String,
}

impl FromRequestParts<AppState> for HubCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| ApiError::TokenInvalid)?;
        if header.alg != ALGORITHM || header.typ.as_deref() != Some(TYP) {
            return Err(ApiError::TokenInvalid);
        }
        let hub_id = header.kid.ok_or(ApiError::TokenInvalid)?;
        // An unknown or not yet enrolled hub is as good as a forged token.
        let hub = state
            .store
            .hub(&hub_id)
            .await?
            .ok_or(ApiError::TokenInvalid)?;
        let key = hub.identity_key.as_deref().ok_or(ApiError::TokenInvalid)?;
        verify(
            token,
            key,
            &hub.id,
            &state.config.issuer,
            crate::clock::now(),
        )?;
        if hub.revoked_at.is_some() {
            return Err(ApiError::HubRevoked);
        }
        let unit = state.store.org_unit(&hub.unit_id).await?.ok_or_else(|| {
            ApiError::Internal(format!("hub {} names no org unit {}", hub.id, hub.unit_id))
        })?;
        Ok(HubCaller {
            hub,
            unit_path: unit.path,
        })
    }
}

/// Checks `token` against the hub's public key `key` (unpadded base64url): signature, issuer,
/// audience, and a life of at most [`MAX_LIFE_SECS`] that has begun and not ended at `now`.
fn verify(token: &str, key: &str, hub_id: &str, audience: &str, now: i64) -> Result<(), ApiError> {
    // The stored key was checked at enrolment; a bad one fails the signature check.
    let key = DecodingKey::from_ed_components(key).map_err(|_| ApiError::TokenInvalid)?;
    let mut validation = Validation::new(ALGORITHM);
    validation.set_issuer(&[hub_id]);
    validation.sub = Some(hub_id.to_owned());
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    // Checked below against central's clock with the leeway both ways.
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<HubClaims>(token, &key, &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => ApiError::TokenExpired,
            _ => ApiError::TokenInvalid,
        })?
        .claims;
    if claims.exp.saturating_sub(claims.iat) > MAX_LIFE_SECS
        || claims.iat > now.saturating_add(LEEWAY_SECS)
    {
        return Err(ApiError::TokenInvalid);
    }
    if claims.exp < now.saturating_sub(LEEWAY_SECS) {
        return Err(ApiError::TokenExpired);
    }
    Ok(())
}

/// The `typ` header of the audit log a hub uploads.
pub const AUDIT_TYP: &str = "gridsync-hub-audit+jwt";

/// A page of a hub's own audit log, as the hub signs it for central.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditLog {
    /// The hub id.
    pub iss: String,
    /// Central's issuer.
    pub aud: String,
    pub iat: i64,
    pub entries: Vec<LoggedEntry>,
}

/// One entry of a hub's audit log, numbered by the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedEntry {
    pub id: i64,
    pub at: i64,
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    pub action: String,
    pub doc_id: Option<gridsync_core::DocId>,
    pub detail: serde_json::Value,
}

/// Signs `records` of hub `hub_id`'s audit log for central `audience` with the hub's key.
pub fn sign_audit(
    seed: &[u8; 32],
    hub_id: &str,
    audience: &str,
    records: &[AuditRecord],
    now: i64,
) -> Result<String> {
    let mut header = Header::new(ALGORITHM);
    header.kid = Some(hub_id.to_owned());
    header.typ = Some(AUDIT_TYP.to_owned());
    let log = AuditLog {
        iss: hub_id.to_owned(),
        aud: audience.to_owned(),
        iat: now,
        entries: records
            .iter()
            .map(|r| LoggedEntry {
                id: r.id,
                at: r.entry.at,
                user_id: r.entry.user_id.clone(),
                device_id: r.entry.device_id.clone(),
                action: r.entry.action.clone(),
                doc_id: r.entry.doc_id,
                detail: r.entry.detail.clone(),
            })
            .collect(),
    };
    Ok(jsonwebtoken::encode(
        &header,
        &log,
        &EncodingKey::from_ed_der(&pkcs8(seed)),
    )?)
}

/// The entries of an audit log page `hub` signed for central `audience`, each as central keeps
/// it: the hub named in its detail, beside the hub's own number for it.
pub fn open_audit(jws: &str, hub: &Hub, audience: &str) -> Result<Vec<AuditRecord>, ApiError> {
    let refused = || ApiError::BadRequest("not an audit log this hub signed".into());
    let header = jsonwebtoken::decode_header(jws).map_err(|_| refused())?;
    if header.alg != ALGORITHM
        || header.typ.as_deref() != Some(AUDIT_TYP)
        || header.kid.as_deref() != Some(hub.id.as_str())
    {
        return Err(refused());
    }
    let key = hub.identity_key.as_deref().ok_or_else(refused)?;
    let key = DecodingKey::from_ed_components(key).map_err(|_| refused())?;
    let mut validation = Validation::new(ALGORITHM);
    validation.set_issuer(&[&hub.id]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["iss", "aud"]);
    // An audit log is evidence however old: the signature is what counts.
    validation.validate_exp = false;
    let log = jsonwebtoken::decode::<AuditLog>(jws, &key, &validation)
        .map_err(|_| refused())?
        .claims;
    Ok(log
        .entries
        .into_iter()
        .map(|e| {
            let mut detail = serde_json::json!({ "hub": hub.id, "hub_entry": e.id });
            if let (Some(all), Some(own)) = (detail.as_object_mut(), e.detail.as_object()) {
                for (key, value) in own {
                    all.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
            AuditRecord {
                id: e.id,
                entry: AuditEntry {
                    at: e.at,
                    user_id: e.user_id,
                    device_id: e.device_id,
                    action: e.action,
                    doc_id: e.doc_id,
                    detail,
                },
            }
        })
        .collect())
}
