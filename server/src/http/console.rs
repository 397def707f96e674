//! The office console: a single page (HTML, CSS, vanilla JS) embedded in the binary and served at
//! `/`, so an intranet PC needs nothing but this server. Its responses carry a strict
//! Content-Security-Policy and framing, sniffing and referrer headers.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;

/// Everything the page loads comes from this server; nothing inline, no frames, no plugins.
/// `blob:` images are attachments the page fetched with its bearer token (an `<img src>` cannot
/// send one); `connect-src 'self'` covers the API and the live WebSocket of the same origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob:; connect-src 'self'; font-src 'none'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// (path, media type, bytes): every file the console consists of.
const ASSETS: [(&str, &str, &str); 4] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../../console/index.html"),
    ),
    (
        "/console/app.css",
        "text/css; charset=utf-8",
        include_str!("../../console/app.css"),
    ),
    (
        "/console/i18n.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/i18n.js"),
    ),
    (
        "/console/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/app.js"),
    ),
];

/// The console's routes. They stay out of the OpenAPI document: they are a client, not the API.
pub fn routes() -> Router<AppState> {
    ASSETS
        .iter()
        .fold(Router::new(), |router, &(path, media_type, body)| {
            router.route(path, get(move || async move { asset(media_type, body) }))
        })
}

fn asset(media_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The files hold no personal data but change with every release of the binary.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
