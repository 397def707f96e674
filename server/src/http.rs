//! The HTTP API: the state every handler shares, the router assembled from one router per
//! concern, and the OpenAPI document generated from the same routes.

pub mod attachments;
pub mod audit;
pub mod auth;
pub mod conflicts;
pub mod devices;
pub mod error;
pub mod export;
pub mod health;
pub mod json;
pub mod org;
pub mod query;
pub mod reports;
pub mod stats;
pub mod sync;
pub mod users;
pub mod validate;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use gridsync_core::schema::Registry;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, Problem};
pub use json::Json;

use crate::auth::rate_limit::LoginLimiter;
use crate::auth::token::Keys;
use crate::config::Config;
use crate::store::Store;

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub keys: Arc<Keys>,
    pub config: Arc<Config>,
    pub login_limiter: Arc<LoginLimiter>,
}

impl AppState {
    /// Loads the signing keys (creating the first on a new database) around `store`.
    pub async fn new(store: Arc<dyn Store>, config: Config) -> crate::auth::Result<AppState> {
        let keys = Keys::load(store.clone(), &config).await?;
        Ok(AppState {
            store,
            registry: Arc::new(Registry::builtin()),
            keys: Arc::new(keys),
            login_limiter: Arc::new(LoginLimiter::new(
                config.login_max_failures,
                config.login_window,
            )),
            config: Arc::new(config),
        })
    }
}

/// Name of the bearer-token security scheme; handlers that need a token declare
/// `security(("bearer" = []))`.
pub const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(title = "Gridsync API", description = "Offline-first field reporting server."),
    components(schemas(Problem)),
    modifiers(&BearerScheme),
)]
struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every route and its OpenAPI document. A new concern adds its `routes()` here.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::routes())
        .merge(auth::routes())
        .merge(devices::routes())
        .merge(sync::routes())
        .merge(org::routes())
        .merge(users::routes())
        .merge(audit::routes())
        .merge(reports::routes())
        .merge(conflicts::routes())
        .merge(attachments::routes())
        .merge(stats::routes())
        .merge(export::routes())
}

/// The whole API, ready to serve.
pub fn app(state: AppState) -> Router {
    let (router, doc) = api().split_for_parts();
    let doc = Arc::new(doc);
    router
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
