//! `GET /metrics`: the Prometheus text exposition of [`crate::metrics::Metrics`], behind an
//! optional bearer token.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AppState};
use crate::auth::caller::bearer;

/// The content type Prometheus expects of the text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Counters, gauges and latency histograms of this node. With `GRIDSYNC_METRICS_TOKEN` set
/// it takes `Authorization: Bearer <that token>`; without, it is open.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses(
        (status = 200, content_type = "text/plain", body = String,
            description = "Prometheus text format",
            example = "# TYPE gridsync_changes_ingested_total counter\ngridsync_changes_ingested_total 1532\n"),
        (status = 401, description = "GRIDSYNC_METRICS_TOKEN is set and was not given",
            body = super::Problem, content_type = "application/problem+json"),
    ))]
async fn metrics(
    State(state): State<AppState>,
    parts: Parts,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(expected) = &state.config.metrics_token_sha256 {
        // Comparing digests keeps the comparison's time independent of the token's bytes.
        if &token_digest(bearer(&parts)?) != expected {
            return Err(ApiError::TokenInvalid);
        }
    }
    let text = state.metrics.scrape(state.store.as_ref()).await?;
    Ok(([(CONTENT_TYPE, TEXT_FORMAT)], text))
}

/// The digest [`crate::config::Config::metrics_token_sha256`] holds for `token`.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}
