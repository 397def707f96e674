//! Every request's telemetry: its id (taken from a sane `x-request-id` or made here, and echoed
//! in the answer), the log span that puts the id on every line the request logs, one access
//! line, and its latency in the metrics by route template.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::AppState;
use crate::metrics::RouteLabels;

pub const REQUEST_ID: &str = "x-request-id";

/// Longest incoming request id kept; a longer or odd one is replaced, so that a client cannot
/// write what it likes into the logs.
const MAX_ID_LEN: usize = 64;

pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane(v))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned);
    // The template, not the path: paths carry ids, and query strings carry search words and,
    // on /api/v1/live, the access token; neither belongs in a log or a metric label.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = req.method().to_string();
    let span = tracing::info_span!("request", id = %id, %method, %route);
    let mut response = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status();
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            ms = elapsed.as_secs_f64() * 1000.0,
            "answered"
        );
    });
    state
        .metrics
        .request_seconds
        .get_or_create(&RouteLabels {
            method,
            route,
            status: format!("{}xx", status.as_u16() / 100),
        })
        .observe(elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// 1 to 64 characters of letters, digits, `-`, `_`, `.` and `:` — what proxies and tracing
/// systems send (UUIDs, hex trace ids), and nothing that could forge a log line.
fn is_sane(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::is_sane;

    #[test]
    fn ids_from_proxies_are_kept_and_anything_that_could_forge_a_log_line_is_not() {
        assert!(is_sane("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(is_sane("req-2026.11.28:01"));
        assert!(!is_sane(""));
        assert!(!is_sane(&"a".repeat(65)));
        assert!(!is_sane("abc\nlevel=ERROR"));
        assert!(!is_sane("a b"));
        assert!(!is_sane("名字"));
    }
}
