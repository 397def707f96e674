//! `GET /api/v1/live`: a WebSocket that pokes its client with `{"type":"changed","seq":N}`
//! when the caller's scope gained changes, so office PCs and the console refresh without
//! polling. It carries no report data: the client pulls or re-reads as usual.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::Uri;
use axum::response::Response;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::query::Params;
use super::{ApiError, AppState};
use crate::auth::Caller;

/// At most one poke per client in this long: a burst of pushes becomes one poke (the first at
/// once, the rest together at the end of the window), so a busy district does not make every
/// console re-read ten times a second.
pub const COALESCE: Duration = Duration::from_millis(100);

/// Largest message a client may send.
const MAX_CLIENT_MESSAGE: usize = 4 * 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(live))
}

/// Upgrades to a WebSocket for an authenticated caller. Browsers cannot set headers on a
/// WebSocket, so the access token comes as `?access_token=`; a revoked device or a disabled
/// account is refused before the upgrade and disconnected (close code 1008) when found later.
#[utoipa::path(get, path = "/api/v1/live", tag = "live",
    params(("access_token" = String, Query, min_length = 1, description = "an access token, as from login", example = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIn0.e30.sig")),
    responses(
        (status = 101, description = "switching to the WebSocket protocol; the server sends \
            text messages `{\"type\":\"changed\",\"seq\":N}`"),
        (status = 400, description = "not a WebSocket upgrade, or a bad query string",
            body = super::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no valid access token, a revoked device or a disabled account",
            body = super::Problem, content_type = "application/problem+json"),
    ))]
async fn live(
    State(state): State<AppState>,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let params = Params::parse(&uri, &["access_token"])?;
    let token = params
        .get("access_token")
        .ok_or(ApiError::Unauthenticated)?;
    let caller = Caller::from_token(&state, token).await?;
    let upgrade = upgrade.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    Ok(upgrade
        // The client has nothing to say but pongs and a close; a large frame is an attack.
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| serve(state, caller, socket)))
}

async fn serve(state: AppState, caller: Caller, socket: WebSocket) {
    let metrics = state.metrics.clone();
    metrics.live_connections.inc();
    let reason = run(&state, caller, socket).await;
    metrics.live_connections.dec();
    tracing::debug!(reason, "live connection closed");
}

/// Pokes the client until it leaves, falls silent, or loses its right to be told.
async fn run(state: &AppState, mut caller: Caller, mut socket: WebSocket) -> &'static str {
    let mut changes = state.live.subscribe();
    let every = state.config.live_ping;
    // A client silent (not even a pong) through two pings and a half is gone.
    let silent_for = every * 5 / 2;
    let mut ping = interval(every);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ping.tick().await;
    let mut last_heard = Instant::now();
    // The newest sequence in scope not yet sent, and when the next poke may go.
    let mut pending: Option<i64> = None;
    let mut next_send = Instant::now();
    loop {
        tokio::select! {
            changed = changes.recv() => match changed {
                Ok(changed) => {
                    if let Some(seq) = changed.seq_in(&caller.scope) {
                        pending = Some(pending.map_or(seq, |p| p.max(seq)));
                    }
                }
                // Too far behind to know what was missed; the next poke makes the client pull
                // everything past its cursor anyway.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return "server stopping",
            },
            () = sleep_until(next_send), if pending.is_some() => {
                let Some(seq) = pending.take() else { continue };
                let text = format!(r#"{{"type":"changed","seq":{seq}}}"#);
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return "send failed";
                }
                state.metrics.live_pokes.inc();
                next_send = Instant::now() + COALESCE;
            }
            message = socket.recv() => match message {
                Some(Ok(Message::Close(_))) | None => return "client closed",
                Some(Ok(_)) => last_heard = Instant::now(),
                Some(Err(_)) => return "receive failed",
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > silent_for {
                    return "client silent";
                }
                match caller.recheck(state).await {
                    Ok(now) => caller = now,
                    Err(e) => {
                        let _ = socket
                            .send(Message::Close(Some(CloseFrame {
                                code: close_code::POLICY,
                                reason: e.code().into(),
                            })))
                            .await;
                        return "no longer authorised";
                    }
                }
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return "send failed";
                }
            }
        }
    }
}
