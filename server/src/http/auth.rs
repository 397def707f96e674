//! Login, refresh-token rotation, logout and changing one's own password under `/api/v1/auth`,
//! and the public keys that verify access tokens at `/.well-known/jwks.json`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::users::check_password;
use super::validate::has_control;
use super::{ApiError, AppState, Json, Problem};
use crate::auth::token::PublicKey;
use crate::auth::{Caller, grant, password, refresh};
use crate::clock;
use crate::store::{AuditEntry, Device, RefreshToken, Rotation, SessionStart, User, UserPatch};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh_tokens))
        .routes(routes!(logout))
        .routes(routes!(change_password))
        .routes(routes!(me))
        .routes(routes!(jwks))
}

/// Longest accepted username, device id or device name, in characters.
const MAX_NAME_LEN: usize = 256;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "username": "worker-shiqiao-1",
    "password": "gridsync-demo",
    "device_id": "4f1c2a9e-phone",
    "device_name": "红米 12C",
    "device_key": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
}))]
pub struct LoginRequest {
    #[schema(min_length = 1, max_length = 256)]
    pub username: String,
    #[schema(max_length = 256)]
    pub password: String,
    /// Chosen by the app once per installation; a new one after the app wipes itself.
    #[schema(min_length = 1, max_length = 256)]
    pub device_id: String,
    #[schema(min_length = 1, max_length = 256)]
    pub device_name: String,
    /// The Ed25519 public key the phone generated for itself, 32 bytes as unpadded base64url.
    /// With it, the answer carries an offline grant naming it.
    #[serde(default)]
    #[schema(min_length = 43, max_length = 43)]
    pub device_key: Option<String>,
}

impl LoginRequest {
    /// The checks that need nothing but the request itself, made before any lookup.
    pub fn check(&self) -> Result<(), ApiError> {
        for (field, value) in [
            ("username", &self.username),
            ("device_id", &self.device_id),
            ("device_name", &self.device_name),
        ] {
            // The phone chooses its id and name, and both are shown to operators later.
            if value.trim().is_empty() || value.chars().count() > MAX_NAME_LEN || has_control(value)
            {
                return Err(ApiError::BadRequest(format!(
                    "{field} must be 1 to {MAX_NAME_LEN} characters without control characters"
                )));
            }
        }
        if self.password.len() > password::MAX_LEN {
            return Err(ApiError::BadRequest(format!(
                "password must be at most {} bytes",
                password::MAX_LEN
            )));
        }
        check_device_key(self.device_key.as_deref())
    }
}

fn check_device_key(key: Option<&str>) -> Result<(), ApiError> {
    key.map_or(Ok(()), |key| grant::check_public_key("device_key", key))
        .map_err(ApiError::BadRequest)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "refresh_token": "Qm9va3MgYW5kIGZpZWxkIHdvcmsgYXJlIG5ldmVyIGxvc3Q",
    "device_key": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
}))]
pub struct RefreshRequest {
    pub refresh_token: String,
    /// The device's public key, as at login. A device that has none yet takes this one; a
    /// refresh never changes a device's key (a login does), and its grant names the key held.
    #[serde(default)]
    #[schema(min_length = 43, max_length = 43)]
    pub device_key: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "current_password": "gridsync-demo",
    "new_password": "a much longer passphrase",
}))]
pub struct PasswordChange {
    #[schema(max_length = 256)]
    pub current_password: String,
    /// At least 10 characters.
    #[schema(min_length = 10, max_length = 256)]
    pub new_password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PasswordChanged {
    /// The caller's other sessions that ended, on this device and others. Each device logs in
    /// again with the new password and keeps what it holds unsent.
    pub ended_sessions: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Tokens {
    /// Bearer token for the other endpoints.
    pub access_token: String,
    /// Single use: exchange it at `/api/v1/auth/refresh` for a new pair.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The user the tokens belong to: the author id their changes must carry.
    pub user_id: String,
    /// A JWS (EdDSA, `typ` `gridsync-grant+jwt`, `aud` `gridsync-offline`) a village office hub
    /// checks against `/.well-known/jwks.json` to let this device in while the server is out of
    /// reach: user, device, the device's key, role, scope, the hubs' units and an expiry. `null`
    /// when the device sent no key, or for roles no hub serves.
    pub offline_grant: Option<String>,
    /// Ids of the village office hubs the server revoked, which a phone holding a grant no
    /// longer trusts even where a revoked hub still answers (a stolen office PC, say).
    #[serde(default)]
    pub revoked_hubs: Vec<String>,
}

/// Who the caller is and what they may see.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "5e04538d-99b5-48df-b225-3a477de99441",
    "username": "worker-shiqiao-1",
    "display_name": "王芳",
    "role": "grid_worker",
    "org_unit_id": "shiqiao-1",
    "scope_path": "/pingan/qingshan/shiqiao/shiqiao-1/",
    "clearance": true,
    "device_id": "4f1c2a9e-phone",
}))]
pub struct Me {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub org_unit_id: String,
    /// The org path prefix of the caller's scope; empty for the whole district.
    pub scope_path: String,
    /// Whether fields marked sensitive are shown to the caller or redacted.
    pub clearance: bool,
    pub device_id: String,
}

/// The client's address, when the server knows it (served with connect info, or set by a
/// test): the TCP peer, or the address a trusted proxy forwarded the request for.
struct ClientAddr(Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| {
                    state
                        .config
                        .trusted_proxies
                        .client_addr(peer.ip(), &parts.headers)
                }),
        ))
    }
}

/// Logs in on a device and starts a session. Failed attempts are limited per client address;
/// an account's failures make its logins from new devices wait, doubling with each, while a
/// device already registered to the user is slowed only by its own failures.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = Tokens),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "invalid_credentials, account_disabled, device_revoked",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "device_taken", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "rate_limited; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Json(req): Json<LoginRequest>,
) -> Result<Json<Tokens>, ApiError> {
    req.check()?;
    let read_at = clock::now();
    let user = state.store.user_by_username(&req.username).await?;
    let existing = state.store.device(&req.device_id).await?;
    let known_device = existing.as_ref().is_some_and(|d| {
        d.revoked_at.is_none() && user.as_ref().is_some_and(|u| u.id == d.user_id)
    });
    let attempt = state
        .login_limiter
        .admit(&req.username, known_device.then_some(&*req.device_id), addr)
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;

    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let user = match (password::verify(req.password, stored).await?, user) {
        (true, Some(user)) => user,
        _ => {
            attempt.failed();
            // No username: it is often a person's name, and a mistyped password sometimes
            // lands in it. The address is what tells a guessing attack.
            tracing::info!(?addr, "failed login");
            return Err(ApiError::InvalidCredentials);
        }
    };
    attempt.succeeded();
    if user.disabled {
        return Err(ApiError::AccountDisabled);
    }

    let now = clock::now();
    let device = match existing {
        Some(d) if d.user_id != user.id => return Err(ApiError::DeviceTaken),
        // A lost phone stays cut off: the app wipes itself and logs in under a new device id.
        Some(d) if d.revoked_at.is_some() => return Err(ApiError::DeviceRevoked),
        Some(d) => Device {
            name: req.device_name,
            last_seen_at: now,
            // The password proves the user, who may give their device a new key.
            public_key: req.device_key.or(d.public_key),
            ..d
        },
        None => Device::new(
            &req.device_id,
            &user.id,
            &req.device_name,
            req.device_key,
            now,
        ),
    };
    state.store.upsert_device(&device).await?;
    let family = uuid::Uuid::new_v4().simple().to_string();
    let first = refresh::mint(refresh_expiry(&state, now))?;
    // The user and the device are checked again as the session is stored: a change of
    // password, a disabling or a revocation since they were read ended every session.
    let start = state
        .store
        .start_session(
            &RefreshToken {
                token_hash: first.stored.token_hash,
                device_id: device.id.clone(),
                family: family.clone(),
                expires_at: first.stored.expires_at,
                used_at: None,
                replaces: None,
            },
            &user.id,
            &user.password_hash,
        )
        .await?;
    match start {
        SessionStart::Started => {}
        SessionStart::PasswordChanged => return Err(ApiError::InvalidCredentials),
        SessionStart::AccountDisabled => return Err(ApiError::AccountDisabled),
        SessionStart::DeviceRevoked => return Err(ApiError::DeviceRevoked),
        SessionStart::DeviceTaken => return Err(ApiError::DeviceTaken),
    }
    let tokens = issue(&state, &user, &device, &family, first.text, read_at).await?;
    state
        .store
        .audit(&AuditEntry {
            at: now,
            user_id: Some(user.id.clone()),
            device_id: Some(device.id.clone()),
            action: "login".into(),
            doc_id: None,
            detail: json!({ "device_name": device.name }),
        })
        .await?;
    Ok(Json(tokens))
}

/// Exchanges a refresh token for a new pair. The old one is spent: presenting it again revokes
/// the whole session (`refresh_reused`), since it must have been copied. Except once, within
/// two minutes, while its successor is unused: a refresh whose answer was lost on the way is
/// answered again with a new pair, and the successor the phone never received stops working.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, body = Tokens),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "refresh_invalid, refresh_reused, device_revoked, account_disabled",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn refresh_tokens(
    State(state): State<AppState>,
    Json(req): Json<RefreshRequest>,
) -> Result<Json<Tokens>, ApiError> {
    check_device_key(req.device_key.as_deref())?;
    let now = clock::now();
    let next = refresh::mint(refresh_expiry(&state, now))?;
    let rotation = state
        .store
        .rotate_refresh_token(&refresh::hash(&req.refresh_token), &next.stored, now)
        .await?;
    let (spent, grace) = match rotation {
        Rotation::Refused => return Err(ApiError::RefreshInvalid),
        Rotation::Reused { spent } => {
            tracing::warn!(device = %spent.device_id, "a used refresh token came back; session revoked");
            return Err(ApiError::RefreshReused);
        }
        Rotation::Rotated { spent, grace } => (spent, grace),
    };
    let mut device = state
        .store
        .device(&spent.device_id)
        .await?
        .ok_or(ApiError::RefreshInvalid)?;
    if device.revoked_at.is_some() {
        return Err(ApiError::DeviceRevoked);
    }
    let user = state
        .store
        .user(&device.user_id)
        .await?
        .ok_or(ApiError::RefreshInvalid)?;
    // A disabled user's retiring phone keeps its session until it has delivered what it holds.
    if user.disabled && device.retiring_at.is_none() {
        return Err(ApiError::AccountDisabled);
    }
    if let Some(key) = req.device_key {
        if device.public_key.is_none() && state.store.set_device_key(&device.id, &key).await? {
            device.public_key = Some(key);
        } else if device.public_key.as_deref() != Some(key.as_str()) {
            // Whoever holds a copied refresh token must not get a grant for a key of theirs.
            tracing::warn!(device = %device.id, "a refresh offered another device key; kept the one held");
        }
    }
    if grace {
        // A lost answer is ordinary on a rural network, but a copied token presented in the
        // same two minutes looks the same: the audit lets an admin tell them apart.
        tracing::info!(device = %device.id, "a refresh was answered again after its answer was lost");
        state
            .store
            .audit(&AuditEntry {
                at: now,
                user_id: Some(user.id.clone()),
                device_id: Some(device.id.clone()),
                action: "refresh_grace".into(),
                doc_id: None,
                detail: json!({ "spent_at": spent.used_at }),
            })
            .await?;
    }
    Ok(Json(
        issue(&state, &user, &device, &spent.family, next.text, now).await?,
    ))
}

/// Ends the caller's session at once: its refresh tokens and the access token in hand stop
/// working (`session_ended`). The device stays registered and logs in again as itself.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "the session is revoked"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn logout(State(state): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    state.store.revoke_token_family(&caller.session).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the caller's own password and ends every other session of theirs, on this device
/// and others (each logs in again with the new password, keeping what it holds unsent); this
/// session goes on. A wrong current password counts against the login throttle of this device
/// and address.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 200, body = PasswordChanged),
        (status = 400, description = "the new password is too short or too long",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "invalid_credentials: the current password is wrong; or the \
            token is refused (unauthenticated, token_expired, token_invalid, session_ended, \
            device_revoked, account_disabled)",
            body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "rate_limited; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
async fn change_password(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    caller: Caller,
    Json(req): Json<PasswordChange>,
) -> Result<Json<PasswordChanged>, ApiError> {
    if req.current_password.len() > password::MAX_LEN {
        return Err(ApiError::BadRequest(format!(
            "current_password must be at most {} bytes",
            password::MAX_LEN
        )));
    }
    check_password(&req.new_password)?;
    let attempt = state
        .login_limiter
        .admit(&caller.user.username, Some(caller.device_id()), addr)
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    let stored = Some(caller.user.password_hash.clone());
    if !password::verify(req.current_password, stored).await? {
        attempt.failed();
        tracing::info!(?addr, device = %caller.device_id(), "wrong current password at a password change");
        return Err(ApiError::InvalidCredentials);
    }
    attempt.succeeded();
    let patch = UserPatch {
        password_hash: Some(password::hash(req.new_password).await?),
        keep_session: Some(caller.session.clone()),
        ..UserPatch::default()
    };
    let now = clock::now();
    let updated = state
        .store
        .update_user(caller.user_id(), &patch, now)
        .await?
        .ok_or(ApiError::TokenInvalid)?;
    state
        .store
        .audit(&AuditEntry {
            at: now,
            user_id: Some(caller.user_id().to_owned()),
            device_id: Some(caller.device_id().to_owned()),
            action: "password_change".into(),
            doc_id: None,
            detail: json!({ "ended_sessions": updated.ended_sessions }),
        })
        .await?;
    Ok(Json(PasswordChanged {
        ended_sessions: updated.ended_sessions,
    }))
}

/// When a refresh token minted at `now` expires.
fn refresh_expiry(state: &AppState, now: i64) -> i64 {
    let refresh_ttl = i64::try_from(state.config.refresh_ttl.as_secs()).unwrap_or(i64::MAX);
    now.saturating_add(refresh_ttl)
}

/// The answer of a login or refresh: a new access token for `user` on `device_id` in session
/// `family`, with the refresh token minted and stored for it. `read_at` is when the caller read
/// the user or the session it renews, and the offline grant's `iat`, so that a password change
/// committed while the call ran is, to the second, not older than the grant: the change is
/// dated once it holds the user's devices (`Store::update_user`), by the same clock.
async fn issue(
    state: &AppState,
    user: &User,
    device: &Device,
    family: &str,
    refresh_token: String,
    read_at: i64,
) -> Result<Tokens, ApiError> {
    let access_token = state.keys.issue(&user.id, &device.id, family).await?;
    let ttl = i64::try_from(state.config.offline_grant_ttl.as_secs()).unwrap_or(i64::MAX);
    let claims = grant::claims(
        state.store.as_ref(),
        &state.config.issuer,
        user,
        device,
        read_at,
        ttl,
    )
    .await?;
    let (offline_grant, revoked_hubs) = match claims {
        Some(claims) => {
            let revoked = state.store.hubs().await?.into_iter();
            (
                Some(state.keys.sign_typed(grant::TYP, &claims).await?),
                revoked
                    .filter(|hub| hub.revoked_at.is_some())
                    .map(|hub| hub.id)
                    .collect(),
            )
        }
        None => (None, Vec::new()),
    };
    Ok(Tokens {
        access_token,
        refresh_token,
        expires_in: state.keys.ttl().as_secs(),
        user_id: user.id.clone(),
        offline_grant,
        revoked_hubs,
    })
}

/// The caller: user, role, scope and device.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, body = Me),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn me(caller: Caller) -> Json<Me> {
    Json(Me {
        id: caller.user.id.clone(),
        username: caller.user.username.clone(),
        display_name: caller.user.display_name.clone(),
        role: caller.role().to_string(),
        org_unit_id: caller.user.org_unit_id.clone(),
        scope_path: caller.scope.prefix.clone(),
        clearance: caller.role().has_clearance(),
        device_id: caller.device.id.clone(),
    })
}

/// The public keys that verify access tokens (RFC 7517), newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"keys": [{
    "kty": "OKP",
    "crv": "Ed25519",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
    "kid": "3f9c2a71d04e8b65",
    "alg": "EdDSA",
    "use": "sig",
}]}))]
pub struct KeySet {
    pub keys: Vec<PublicKey>,
}

/// How long a client may keep the key set before asking again; one that meets a token with an
/// unknown `kid` should ask at once, as the server's own nodes do.
const KEY_SET_MAX_AGE: &str = "public, max-age=300";

/// The public keys that verify access tokens, as a JWKS: Ed25519 (`alg` EdDSA), chosen by each
/// token's `kid` header. None of them can sign a token.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses(
        (status = 200, body = KeySet, headers(("Cache-Control" = String))),
    ))]
async fn jwks(
    State(state): State<AppState>,
) -> Result<([(axum::http::HeaderName, &'static str); 1], Json<KeySet>), ApiError> {
    let keys = state.keys.public_keys().await?;
    Ok((
        [(axum::http::header::CACHE_CONTROL, KEY_SET_MAX_AGE)],
        Json(KeySet { keys }),
    ))
}
