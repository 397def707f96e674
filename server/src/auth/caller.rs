//! `Caller`: the extractor every authenticated handler takes. It checks the bearer access token,
//! then that the user is still enabled (or delivering from a retiring phone), the device not
//! revoked and the session not ended, and derives the scope.

use axum::extract::FromRequestParts;
use axum::http::Method;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::http::{ApiError, AppState};
use crate::scope::{Role, Scope};
use crate::store::{Device, User};

/// The authenticated user behind a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub device: Device,
    /// The session (refresh-token family) the access token was issued in.
    pub session: String,
    /// The reports this caller may read and write.
    pub scope: Scope,
}

impl Caller {
    pub fn user_id(&self) -> &str {
        &self.user.id
    }

    pub fn role(&self) -> Role {
        self.user.role
    }

    pub fn device_id(&self) -> &str {
        &self.device.id
    }

    /// `Forbidden` unless the caller has one of `roles`.
    pub fn require_role(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.user.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "the role {} may not do this",
                self.user.role
            )))
        }
    }
}

/// Whether a request is one a retiring phone delivers with: a sync, or an attachment upload.
fn is_delivery(parts: &Parts) -> bool {
    let path = parts.uri.path();
    let upload = (parts.method == Method::PUT || parts.method == Method::HEAD)
        && path.starts_with("/api/v1/reports/")
        && path.contains("/attachments/");
    upload || path == "/api/v1/sync/push" || path == "/api/v1/sync/pull"
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_token(state, bearer(parts)?).await?;
        // A disabled user's retiring phone only delivers: it pushes, uploads and hears at its
        // pull that it is retired. Nothing else is served to a disabled account.
        if caller.user.disabled && !is_delivery(parts) {
            return Err(ApiError::AccountDisabled);
        }
        Ok(caller)
    }
}

impl Caller {
    /// The caller an access token names, checked as every request is.
    pub async fn from_token(state: &AppState, token: &str) -> Result<Caller, ApiError> {
        let claims = state.keys.verify(token).await?;
        Caller::load(state, &claims.sub, &claims.dev, claims.sid).await
    }

    /// This caller as the store has them now: still enabled, device not revoked, session not
    /// ended, scope from where they are placed now. For connections that outlive their request.
    pub async fn recheck(&self, state: &AppState) -> Result<Caller, ApiError> {
        Caller::load(state, &self.user.id, &self.device.id, self.session.clone()).await
    }

    async fn load(
        state: &AppState,
        user_id: &str,
        device_id: &str,
        session: String,
    ) -> Result<Caller, ApiError> {
        // A token naming a user or device that no longer exists is as good as forged.
        let user = state
            .store
            .user(user_id)
            .await?
            .ok_or(ApiError::TokenInvalid)?;
        let device = state
            .store
            .device(device_id)
            .await?
            .filter(|d| d.user_id == user.id)
            .ok_or(ApiError::TokenInvalid)?;
        if device.revoked_at.is_some() {
            return Err(ApiError::DeviceRevoked);
        }
        // A disabled user's retiring phone may still deliver what it holds (see `retiring`).
        if user.disabled && device.retiring_at.is_none() {
            return Err(ApiError::AccountDisabled);
        }
        // Logging out or a password change deletes the session's refresh tokens; its access
        // tokens die with them rather than live out their minutes.
        if !state.store.session_live(&session, &device.id).await? {
            return Err(ApiError::SessionEnded);
        }
        let unit = state
            .store
            .org_unit(&user.org_unit_id)
            .await?
            .ok_or_else(|| {
                ApiError::Internal(format!(
                    "user {} is placed at missing org unit {}",
                    user.id, user.org_unit_id
                ))
            })?;
        let scope = Scope::for_role(&user.id, user.role, &unit.path);
        Ok(Caller {
            user,
            device,
            session,
            scope,
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme matched case-insensitively).
pub(crate) fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::Unauthenticated)?;
    let value = value.to_str().map_err(|_| ApiError::TokenInvalid)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let token = token.trim();
            if token.is_empty() {
                Err(ApiError::Unauthenticated)
            } else {
                Ok(token)
            }
        }
        _ => Err(ApiError::Unauthenticated),
    }
}
