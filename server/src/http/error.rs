//! `ApiError`: every failure the API answers with, as RFC 9457 problem details
//! (`application/problem+json`) carrying a stable `code` that clients switch on.

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use gridsync_core::protocol::DecodeError;

use crate::auth::AuthError;
use crate::auth::token::TokenError;
use crate::store::{Outage, StoreError};

/// The media type of every error answer (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    InvalidJson(String),
    #[error("expected a JSON body with content type application/json")]
    UnsupportedMediaType,
    /// A body sent with a `Content-Encoding`: the server reads bodies only as they are (sync
    /// frames compress themselves), so it neither guesses nor decompresses.
    #[error("request bodies must not be content-encoded (got {0:?}); send them as they are")]
    UnsupportedEncoding(String),
    #[error("no bearer token in the Authorization header")]
    Unauthenticated,
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("the access token has expired")]
    TokenExpired,
    #[error("the access token is not valid")]
    TokenInvalid,
    #[error("the refresh token is unknown, revoked or expired")]
    RefreshInvalid,
    #[error("the refresh token was already used; the session is revoked")]
    RefreshReused,
    #[error("this device has been revoked")]
    DeviceRevoked,
    /// The access token's session was ended: logged out, or by a password change.
    #[error("this session has ended (logged out, or the password changed); log in again")]
    SessionEnded,
    #[error("this phone was handed in and has delivered everything it held; it deletes its data")]
    DeviceRetired,
    #[error("{0}")]
    DeviceRetiring(String),
    #[error("this account is disabled")]
    AccountDisabled,
    /// One answer for a code never issued, already used, expired or of a revoked hub.
    #[error("the enrolment code is unknown, used, expired or of a revoked hub")]
    EnrolmentInvalid,
    /// A hub an admin revoked: it relays nothing more, and phones stop trusting it.
    #[error("this hub has been revoked")]
    HubRevoked,
    /// At a village office hub: the offline grant does not let the phone in, and why.
    #[error("{0}")]
    GrantRefused(String),
    /// At a village office hub that has not reached central for longer than a grant's life.
    #[error("{0}")]
    HubOutOfTouch(String),
    #[error("{0}")]
    Forbidden(String),
    /// The report, or the place a new report would go, is outside the caller's scope.
    #[error("{0}")]
    OutOfScope(String),
    /// Figures asked for a unit finer than the caller may see them for (drug-control counts
    /// below a township for township staff).
    #[error("{0}")]
    UnitTooFine(String),
    /// A form (a schema JSON or a workbook) that cannot be kept or published, with each of its
    /// problems.
    #[error("{0}")]
    Form(#[from] crate::forms::FormError),
    /// The request is well-formed but its values are not: each problem says where and why.
    #[error("{detail}")]
    Invalid {
        detail: String,
        problems: Vec<gridsync_core::schema::Problem>,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("this device is registered to another user")]
    DeviceTaken,
    #[error("too many failed logins; try again later")]
    RateLimited { retry_after: Duration },
    #[error("{0}")]
    Unavailable(String),
    /// The database cannot do the work now; `cause` goes to the log, never to the client.
    #[error("{cause}")]
    Database { outage: Outage, cause: String },
    /// A sync body that is not a valid frame of the expected message.
    #[error("bad sync frame: {0}")]
    BadFrame(#[from] DecodeError),
    #[error("the request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    /// An attachment of a media type the server does not store.
    #[error("attachments of media type {0:?} are not accepted")]
    MediaTypeNotAllowed(String),
    /// A complete upload whose bytes do not hash to the hash it was declared under.
    #[error("the uploaded bytes do not have the sha256 named in the path; the upload is discarded")]
    HashMismatch,
    /// An upload of bytes the report's document does not name: push the report's changes first.
    #[error("the report names no attachment with this sha256; push the report's changes first")]
    NotAttached,
    /// An upload whose media type or size differs from what the report's document says.
    #[error("{0}")]
    AttachmentMismatch(String),
    /// A chunk that does not start where the server's copy of the upload ends.
    #[error("the upload continues at byte {offset}")]
    WrongOffset { offset: i64 },
    #[error("the range is outside the {size} bytes of the attachment")]
    RangeNotSatisfiable { size: i64 },
    /// A photo whose header declares more pixels than a thumbnail's decode may take.
    #[error("{0}")]
    ImageTooLarge(String),
    /// Details go to the log, never to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            BadRequest(_) | InvalidJson(_) => StatusCode::BAD_REQUEST,
            UnsupportedMediaType | UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Unauthenticated | InvalidCredentials | TokenExpired | TokenInvalid | RefreshInvalid
            | RefreshReused | DeviceRevoked | SessionEnded | AccountDisabled | EnrolmentInvalid
            | HubRevoked | GrantRefused(_) => StatusCode::UNAUTHORIZED,
            Forbidden(_) | OutOfScope(_) | UnitTooFine(_) => StatusCode::FORBIDDEN,
            Invalid { .. } | Form(_) => StatusCode::UNPROCESSABLE_ENTITY,
            NotFound(_) => StatusCode::NOT_FOUND,
            Conflict(_) | DeviceTaken | DeviceRetiring(_) => StatusCode::CONFLICT,
            DeviceRetired => StatusCode::GONE,
            RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Unavailable(_) | Database { .. } | HubOutOfTouch(_) => StatusCode::SERVICE_UNAVAILABLE,
            BadFrame(_) => StatusCode::BAD_REQUEST,
            PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            MediaTypeNotAllowed(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            HashMismatch | AttachmentMismatch(_) => StatusCode::UNPROCESSABLE_ENTITY,
            NotAttached => StatusCode::CONFLICT,
            WrongOffset { .. } => StatusCode::CONFLICT,
            RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ImageTooLarge(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code clients act on; never changes once released.
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            BadRequest(_) => "bad_request",
            InvalidJson(_) => "invalid_json",
            UnsupportedMediaType => "unsupported_media_type",
            UnsupportedEncoding(_) => "unsupported_content_encoding",
            Unauthenticated => "unauthenticated",
            InvalidCredentials => "invalid_credentials",
            TokenExpired => "token_expired",
            TokenInvalid => "token_invalid",
            RefreshInvalid => "refresh_invalid",
            RefreshReused => "refresh_reused",
            DeviceRevoked => "device_revoked",
            SessionEnded => "session_ended",
            DeviceRetired => "device_retired",
            DeviceRetiring(_) => "device_retiring",
            AccountDisabled => "account_disabled",
            EnrolmentInvalid => "enrolment_invalid",
            HubRevoked => "hub_revoked",
            GrantRefused(_) => "grant_refused",
            HubOutOfTouch(_) => "hub_out_of_touch",
            Forbidden(_) => "forbidden",
            OutOfScope(_) => "out_of_scope",
            UnitTooFine(_) => "unit_too_fine",
            Invalid { .. } => "validation",
            Form(_) => "invalid_form",
            NotFound(_) => "not_found",
            Conflict(_) => "conflict",
            DeviceTaken => "device_taken",
            RateLimited { .. } => "rate_limited",
            Unavailable(_) => "unavailable",
            Database { outage, .. } => match outage {
                Outage::Full => "storage_full",
                Outage::ReadOnly => "storage_read_only",
                Outage::Failing => "storage_failing",
                Outage::Unavailable => "database_unavailable",
                Outage::Contended => "write_conflict",
            },
            // A phone or hub of another protocol version: the app needs updating, not fixing.
            BadFrame(DecodeError::UnsupportedVersion(_)) => "unsupported_version",
            BadFrame(_) => "bad_frame",
            PayloadTooLarge(_) => "payload_too_large",
            MediaTypeNotAllowed(_) => "unsupported_media_type",
            HashMismatch => "hash_mismatch",
            NotAttached => "not_attached",
            AttachmentMismatch(_) => "attachment_mismatch",
            WrongOffset { .. } => "wrong_offset",
            RangeNotSatisfiable { .. } => "range_not_satisfiable",
            ImageTooLarge(_) => "image_too_large",
            Internal(_) => "internal",
        }
    }
}

/// Where an upload stands (or continues): the byte offset, as the tus protocol names it.
pub const UPLOAD_OFFSET: &str = "upload-offset";

/// RFC 9457 problem details, plus our `code`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:gridsync:problem:<code>`.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
    /// With `validation`: each value that is wrong, where and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub problems: Option<Vec<gridsync_core::schema::Problem>>,
    /// With `invalid_form`: each problem of the form, with its place in a workbook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form_problems: Option<Vec<crate::forms::FormProblem>>,
    /// With `wrong_offset`: the byte the upload continues at (also in `Upload-Offset`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let detail = if let ApiError::Database { outage, cause } = &self {
            // Not a bug, so no internal error: a database restart is routine, while a full or
            // failing disk needs the operator.
            if matches!(outage, Outage::Unavailable | Outage::Contended) {
                tracing::warn!(
                    code,
                    cause,
                    "request failed: the database is unavailable or busy"
                );
            } else {
                tracing::error!(code, cause, "request failed: the database's storage");
            }
            outage_detail(*outage).to_owned()
        } else if status.is_server_error() {
            tracing::error!(code, error = %self, "request failed");
            status
                .canonical_reason()
                .unwrap_or("server error")
                .to_owned()
        } else {
            self.to_string()
        };
        let problem = Problem {
            type_: format!("urn:gridsync:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            problems: match &self {
                ApiError::Invalid { problems, .. } => Some(problems.clone()),
                _ => None,
            },
            form_problems: match &self {
                ApiError::Form(e) => Some(e.problems()),
                _ => None,
            },
            offset: match &self {
                ApiError::WrongOffset { offset } => Some(*offset),
                _ => None,
            },
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let ApiError::RateLimited { retry_after } = self {
            // Round up: a client that waits exactly this long must be let in.
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if let ApiError::UnsupportedEncoding(_) = self {
            // RFC 9110 §15.5.16: say which codings would have been accepted.
            headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
        }
        if let ApiError::Database { outage, .. } = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after(outage)));
        }
        if let ApiError::WrongOffset { offset } = self {
            headers.insert(UPLOAD_OFFSET, HeaderValue::from(offset));
        }
        if let ApiError::RangeNotSatisfiable { size } = self
            && let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}"))
        {
            headers.insert(header::CONTENT_RANGE, v);
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"gridsync\""),
            );
        }
        response
    }
}

/// What a client is told of an outage: that it is the server's, and to try again later.
fn outage_detail(outage: Outage) -> &'static str {
    match outage {
        Outage::Full => "the server's storage is full; try again later",
        Outage::ReadOnly => "the server's database is read-only; try again later",
        Outage::Failing => "the server's storage is failing; try again later",
        Outage::Unavailable => "the server's database is unavailable; try again shortly",
        Outage::Contended => "the write collided with another; try again",
    }
}

/// Seconds a client should wait: a database restart takes seconds, while a full or broken disk
/// waits for the operator.
fn retry_after(outage: Outage) -> u64 {
    match outage {
        Outage::Contended => 1,
        Outage::Unavailable => 5,
        Outage::Full | Outage::ReadOnly | Outage::Failing => 60,
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if let Some(outage) = e.outage() {
            return ApiError::Database {
                outage,
                cause: e.to_string(),
            };
        }
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            StoreError::Duplicate(what) => ApiError::Conflict(format!("{what} already exists")),
            e @ StoreError::Changed(_) => ApiError::Conflict(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Store(e) => e.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Expired => ApiError::TokenExpired,
            TokenError::Invalid => ApiError::TokenInvalid,
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => ApiError::InvalidJson(e.body_text()),
            JsonRejection::JsonSyntaxError(e) => ApiError::InvalidJson(e.body_text()),
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_that_met_another_is_answered_503_write_conflict_soon_to_retry() {
        let response = ApiError::Database {
            outage: Outage::Contended,
            cause: "deadlock detected".into(),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from(1))
        );
        let code = ApiError::Database {
            outage: Outage::Contended,
            cause: String::new(),
        }
        .code();
        assert_eq!(code, "write_conflict");
    }
}
