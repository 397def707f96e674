//! The report schemas under `/api/v1/schemas`: every kind and version with its field labels,
//! choices and sensitivity, so office clients show what the phones show.

use axum::extract::State;
use gridsync_core::schema::Schema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppState, Json, Problem};
use crate::auth::Caller;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_schemas))
}

/// Every schema the server validates against, by kind, oldest version first.
#[utoipa::path(get, path = "/api/v1/schemas", tag = "schemas", security(("bearer" = [])),
    responses(
        (status = 200, description = "the schema files as JSON", body = Vec<Object>,
            example = json!([{
                "kind": "dispute_check",
                "version": 1,
                "label": { "zh": "矛盾纠纷排查", "en": "Dispute check" },
                "access": { "mode": "scope" },
                "fields": [{
                    "id": "risk_level",
                    "label": { "zh": "风险等级", "en": "Risk level" },
                    "type": "single_choice",
                    "choices": [
                        { "id": "low", "label": { "zh": "低", "en": "Low" } },
                        { "id": "high", "label": { "zh": "高", "en": "High" } },
                    ],
                }],
            }])),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_schemas(State(state): State<AppState>, _caller: Caller) -> Json<Vec<Schema>> {
    Json(state.registry.all().cloned().collect())
}
