//! Liveness and readiness probes for load balancers and orchestrators.

use std::time::Duration;

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AppState, Json};

/// A probe wants an answer before its own timeout, not the pool's (which waits for a connection).
const READY_WITHIN: Duration = Duration::from_secs(3);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({ "status": "ok" }))]
pub struct Health {
    pub status: &'static str,
}

/// The process is up; says nothing about the database.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The database answers: route traffic here.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, body = Health),
        (status = 503, body = super::Problem, content_type = "application/problem+json"),
    ))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    match tokio::time::timeout(READY_WITHIN, state.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check: the database fails");
            return Err(ApiError::Unavailable("the database does not answer".into()));
        }
        Err(_) => {
            tracing::warn!("readiness check: the database does not answer in time");
            return Err(ApiError::Unavailable("the database does not answer".into()));
        }
    }
    Ok(Json(Health { status: "ready" }))
}
