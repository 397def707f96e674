//! The HTTP API: the state every handler shares, the router assembled from one router per
//! concern, and the OpenAPI document generated from the same routes.

pub mod attachments;
pub mod audit;
pub mod auth;
pub mod bulletins;
pub mod conflicts;
pub mod console;
pub mod contract;
pub mod devices;
pub mod error;
pub mod export;
pub mod health;
pub mod held;
pub mod hub_attachments;
pub mod hub_sync;
pub mod hubs;
pub mod json;
pub mod live;
pub mod metrics;
pub mod org;
pub mod path;
pub mod query;
pub mod reports;
pub mod schemas;
pub mod stats;
pub mod sync;
pub mod tasks;
pub mod trace;
pub mod users;
pub mod validate;
pub mod visible;

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use gridsync_core::schema::Registry;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, Problem};
pub use json::Json;
pub use path::Path;

use crate::auth::rate_limit::LoginLimiter;
use crate::auth::token::Keys;
use crate::catalogue::Catalogue;
use crate::config::Config;
use crate::live::Hub;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::sync::{Budget, Ingest};
use crate::thumbnail::Decodes;

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// The report kinds in force; [`AppState::registry`] reads them fresh.
    pub catalogue: Arc<Catalogue>,
    pub keys: Arc<Keys>,
    pub config: Arc<Config>,
    pub login_limiter: Arc<LoginLimiter>,
    pub metrics: Arc<Metrics>,
    /// This node's fan-out of committed changes to `/api/v1/live`.
    pub live: Hub,
    /// Turns to decode photos into thumbnails, which bound the memory thumbnails take.
    pub decodes: Decodes,
    /// Where every write of report changes goes.
    pub ingest: Ingest,
    /// The memory pushes and pulls may hold at once.
    pub sync_budget: Budget,
}

impl AppState {
    /// Loads the signing keys (creating the first on a new database) around `store`.
    pub async fn new(store: Arc<dyn Store>, config: Config) -> crate::auth::Result<AppState> {
        let keys = Keys::load(store.clone(), &config).await?;
        let catalogue = Arc::new(Catalogue::builtin());
        catalogue.fresh(store.as_ref()).await?;
        let metrics = Arc::new(Metrics::new());
        let live = Hub::new();
        let sync_budget = Budget::new(config.sync_budget_bytes);
        Ok(AppState {
            ingest: Ingest::new(catalogue.clone(), metrics.clone(), live.clone()),
            store,
            catalogue,
            keys: Arc::new(keys),
            login_limiter: Arc::new(LoginLimiter::new(
                config.login_max_failures,
                config.login_window,
            )),
            config: Arc::new(config),
            metrics,
            live,
            decodes: Decodes::default(),
            sync_budget,
        })
    }

    /// The report kinds in force now, published and retired: one read of the registry's
    /// revision, and a reload only when it moved.
    pub async fn registry(&self) -> Result<Arc<Registry>, ApiError> {
        Ok(self
            .catalogue
            .fresh(self.store.as_ref())
            .await?
            .registry
            .clone())
    }

    /// This state with `live` as its fan-out, which ingest then tells of every commit.
    pub fn with_live(self, live: Hub) -> AppState {
        AppState {
            ingest: Ingest::new(self.catalogue.clone(), self.metrics.clone(), live.clone()),
            live,
            ..self
        }
    }
}

/// Name of the bearer-token security scheme; handlers that need a token declare
/// `security(("bearer" = []))`.
pub const BEARER: &str = "bearer";

/// Name of the security scheme of village office hubs: a bearer JWT the hub signs with its own
/// enrolled key (`auth::hub`).
pub const HUB: &str = "hub";

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
        components.add_security_scheme(
            HUB,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "a JWT the hub signs with its enrolled Ed25519 key: `typ` \
                         gridsync-hub-auth+jwt, `kid` the hub id, at most 5 minutes long",
                    ))
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
        .merge(hubs::routes())
        .merge(hub_sync::routes())
        .merge(hub_attachments::routes())
        .merge(sync::routes())
        .merge(org::routes())
        .merge(users::routes())
        .merge(audit::routes())
        .merge(reports::routes())
        .merge(schemas::routes())
        .merge(conflicts::routes())
        .merge(held::routes())
        .merge(attachments::routes())
        .merge(live::routes())
        .merge(metrics::routes())
        .merge(stats::routes())
        .merge(bulletins::routes())
        .merge(tasks::routes())
        .merge(export::routes())
}

/// The whole API, ready to serve.
pub fn app(state: AppState) -> Router {
    let (router, mut doc) = api().split_for_parts();
    let registry = state.catalogue.current().registry.clone();
    let kinds: Vec<&str> = registry.kinds().map(|s| s.kind.as_str()).collect();
    contract::complete(&mut doc, &kinds);
    let doc = Arc::new(doc);
    router
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .merge(console::routes())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(axum::middleware::from_fn(refuse_content_encoding))
        .layer(axum::middleware::map_response(no_store_by_default))
        .layer(from_fn_with_state(state.clone(), trace::observe))
        .with_state(state)
}

/// Refuses a body sent with any `Content-Encoding` but `identity` before a handler reads it: no
/// handler decodes one, so a gzip body would otherwise surface as a confusing bad frame or bad
/// JSON, and a compression bomb has nothing here to explode in.
async fn refuse_content_encoding(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<axum::response::Response, ApiError> {
    let codings: Vec<String> = req
        .headers()
        .get_all(axum::http::header::CONTENT_ENCODING)
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    if codings.is_empty() {
        Ok(next.run(req).await)
    } else {
        Err(ApiError::UnsupportedEncoding(codings.join(", ")))
    }
}

/// `Cache-Control: no-store` on every answer that did not choose its own: API answers carry
/// personal data, which must not linger in a shared office PC's browser cache.
async fn no_store_by_default(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
