//! Observability and live updates on SQLite and Postgres: request ids, `/metrics` counters that
//! move with sync, and `/api/v1/live` pokes that reach clients in scope and nobody else.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures_util::{SinkExt, StreamExt};
use gridsync_core::protocol::{self, Pull, PushResult};
use gridsync_server::config::Config;
use gridsync_server::http::metrics::token_digest;
use gridsync_server::scope::Role;
use serde_json::Value;
use support::http::{Api, RawReply, api_with_devices, frame_request};
use support::*;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

on_both_test_stores!(
    pushes_and_pulls_move_the_sync_counters_and_latency_is_kept_by_route_template,
    metrics_take_the_configured_token_and_nothing_else,
    a_sane_request_id_is_echoed_and_anything_else_is_replaced_by_a_fresh_one,
    a_push_pokes_live_clients_whose_scope_gained_it_and_no_one_else,
    office_edits_poke_live_clients_too,
    live_connections_without_a_valid_token_or_from_a_revoked_device_or_disabled_user_are_refused,
    a_live_connection_is_closed_once_its_device_is_revoked,
    a_live_connection_is_closed_once_its_session_ends,
    a_live_client_sending_a_large_message_is_disconnected,
);

const USERS: [(&str, Role, &str); 4] = [
    ("w1", Role::GridWorker, G1),
    ("w2", Role::GridWorker, G2),
    ("c1", Role::VillageCadre, "v1"),
    ("s1", Role::TownshipStaff, "s2"),
];

async fn api_with(t: &TestStore, config: Config) -> Api {
    api_with_devices(t, &USERS, config).await
}

async fn api(t: &TestStore) -> Api {
    api_with(t, Config::default()).await
}

impl Api {
    async fn frame(&self, user: &str, path: &str, body: Vec<u8>) -> RawReply {
        let token = self.device_token(user).await;
        self.send_raw(frame_request(path, &token, body)).await
    }

    /// Pushes every change of a new dispute in `grid` as `user`; the push must be acked.
    async fn push_dispute(&self, user: &str, id: u128, grid: &str) {
        let push = push_all(&mut [&mut dispute(id, grid, user)]);
        let reply = self
            .frame(user, "/api/v1/sync/push", protocol::encode(&push))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let result: PushResult = protocol::decode(&reply.bytes).expect("frame");
        assert!(
            result.docs.iter().all(|d| is_acked(&d.outcome)),
            "{result:?}"
        );
    }

    async fn metrics(&self, bearer: Option<&str>) -> RawReply {
        let mut req = Request::get("/metrics");
        if let Some(token) = bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send_raw(req.body(Body::empty()).expect("request"))
            .await
    }

    /// Serves the app on a loopback port, as `gridsync serve` does, for WebSocket clients.
    async fn serve(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = self.app.clone();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        addr
    }

    async fn connect(&self, addr: SocketAddr, user: &str) -> Live {
        let token = self.device_token(user).await;
        let (socket, _) = tokio_tungstenite::connect_async(format!(
            "ws://{addr}/api/v1/live?access_token={token}"
        ))
        .await
        .expect("connect to /api/v1/live");
        socket
    }
}

type Live = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The value of the sample `name` (with its labels, as the text format writes them).
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The next `changed` poke's sequence, or `None` when none comes within `wait`.
async fn poke(live: &mut Live, wait: Duration) -> Option<i64> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let message = tokio::time::timeout_at(deadline, live.next()).await.ok()?;
        match message.expect("open").expect("a message") {
            Message::Text(text) => {
                let v: Value = serde_json::from_str(&text).expect("JSON");
                assert_eq!(v["type"], "changed", "{v}");
                return Some(v["seq"].as_i64().expect("seq"));
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn pushes_and_pulls_move_the_sync_counters_and_latency_is_kept_by_route_template(
    t: &TestStore,
) {
    let api = api(t).await;
    let before = api.metrics(None).await;
    assert_eq!(before.status, StatusCode::OK);
    assert!(
        before
            .header("content-type")
            .unwrap_or("")
            .starts_with("text/plain"),
        "{:?}",
        before.headers
    );
    let before = before.text();
    assert_eq!(sample(&before, "gridsync_sync_pushes_total"), Some(0.0));
    assert_eq!(sample(&before, "gridsync_conflicts_open"), Some(0.0));

    api.push_dispute("w1", 1, G1).await;
    let pull = Pull {
        since: 0,
        after: 0,
        byte_budget: 1 << 20,
        resend: Vec::new(),
        takes_heads: false,
    };
    let reply = api
        .frame("w1", "/api/v1/sync/pull", protocol::encode(&pull))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

    let after = api.metrics(None).await.text();
    assert_eq!(
        sample(&after, "gridsync_sync_pushes_total"),
        Some(1.0),
        "{after}"
    );
    assert_eq!(sample(&after, "gridsync_sync_pulls_total"), Some(1.0));
    // A new dispute is two changes: its creation and the place set on it.
    assert_eq!(sample(&after, "gridsync_changes_ingested_total"), Some(2.0));
    assert!(sample(&after, "gridsync_sync_received_bytes_total").expect("in") > 100.0);
    assert!(sample(&after, "gridsync_sync_sent_bytes_total").expect("out") > 100.0);
    assert_eq!(
        sample(
            &after,
            r#"gridsync_http_request_duration_seconds_count{method="POST",route="/api/v1/sync/push",status="2xx"}"#
        ),
        Some(1.0),
        "{after}"
    );
    // The template, never a raw path with an id in it.
    assert!(!after.contains("route=\"/api/v1/reports/0"), "{after}");
    let pools: Vec<&str> = after
        .lines()
        .filter(|l| l.starts_with("gridsync_db_pool_max_connections{"))
        .collect();
    assert!(!pools.is_empty(), "{after}");
    for pool in pools {
        assert!(
            pool.rsplit(' ')
                .next()
                .expect("value")
                .parse::<f64>()
                .expect("number")
                >= 1.0
        );
    }
}

async fn metrics_take_the_configured_token_and_nothing_else(t: &TestStore) {
    let api = api_with(
        t,
        Config {
            metrics_token_sha256: Some(token_digest("scrape-me")),
            ..Config::default()
        },
    )
    .await;
    assert_eq!(api.metrics(None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        api.metrics(Some("scrape-you")).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A user's access token is no metrics token.
    let user = api.device_token("c1").await;
    assert_eq!(
        api.metrics(Some(&user)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let ok = api.metrics(Some("scrape-me")).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(ok.text().contains("gridsync_sync_pushes_total"));
}

async fn a_sane_request_id_is_echoed_and_anything_else_is_replaced_by_a_fresh_one(t: &TestStore) {
    let api = api(t).await;
    let with_id = |id: &str| {
        Request::get("/healthz")
            .header("x-request-id", id)
            .body(Body::empty())
            .expect("request")
    };
    let reply = api
        .send_raw(with_id("4bf92f3577b34da6a3ce929d0e0e4736"))
        .await;
    assert_eq!(
        reply.header("x-request-id"),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );

    let fresh = |reply: &RawReply| {
        let id = reply.header("x-request-id").expect("an id").to_owned();
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        id
    };
    let odd = api.send_raw(with_id("evil\" level=ERROR msg=forged")).await;
    let long = api.send_raw(with_id(&"a".repeat(65))).await;
    let none = api
        .send_raw(
            Request::get("/no/such/path")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    let ids = [fresh(&odd), fresh(&long), fresh(&none)];
    assert!(ids[0] != ids[1] && ids[1] != ids[2]);
}

async fn a_push_pokes_live_clients_whose_scope_gained_it_and_no_one_else(t: &TestStore) {
    let api = api(t).await;
    let addr = api.serve().await;
    let mut cadre = api.connect(addr, "c1").await;
    let mut neighbour = api.connect(addr, "w2").await;
    let mut street = api.connect(addr, "s1").await;

    api.push_dispute("w1", 1, G1).await;
    let seq = t
        .store
        .document(&gridsync_core::DocId::from_u128(1))
        .await
        .expect("read")
        .expect("stored")
        .seq;
    assert_eq!(poke(&mut cadre, Duration::from_secs(5)).await, Some(seq));
    assert_eq!(poke(&mut neighbour, Duration::from_millis(300)).await, None);
    assert_eq!(poke(&mut street, Duration::from_millis(50)).await, None);

    // The worker next door is poked for their own grid: the silence above was scope.
    api.push_dispute("w2", 2, G2).await;
    let seq2 = poke(&mut neighbour, Duration::from_secs(5))
        .await
        .expect("poked");
    assert!(seq2 > seq);
    assert_eq!(poke(&mut cadre, Duration::from_secs(5)).await, Some(seq2));
    assert_eq!(poke(&mut street, Duration::from_millis(300)).await, None);
}

async fn office_edits_poke_live_clients_too(t: &TestStore) {
    let api = api(t).await;
    api.push_dispute("w1", 1, G1).await;
    let addr = api.serve().await;
    let mut worker = api.connect(addr, "w1").await;
    let token = api.device_token("c1").await;
    let id = gridsync_core::DocId::from_u128(1);
    let reply = api
        .send_raw(
            Request::patch(format!("/api/v1/reports/{id}"))
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"fields":{"place":"村委会"}}"#))
                .expect("request"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let seq = t
        .store
        .document(&id)
        .await
        .expect("read")
        .expect("stored")
        .seq;
    assert_eq!(poke(&mut worker, Duration::from_secs(5)).await, Some(seq));
}

async fn live_connections_without_a_valid_token_or_from_a_revoked_device_or_disabled_user_are_refused(
    t: &TestStore,
) {
    let api = api(t).await;
    let addr = api.serve().await;
    let refused = |query: String| async move {
        match tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/live{query}")).await {
            Err(tungstenite::Error::Http(res)) => {
                let body: Value = serde_json::from_slice(res.body().as_deref().unwrap_or_default())
                    .expect("problem JSON");
                (
                    res.status().as_u16(),
                    body["code"].as_str().unwrap_or("").to_owned(),
                )
            }
            other => panic!("not refused: {other:?}"),
        }
    };
    assert_eq!(
        refused(String::new()).await,
        (401, "unauthenticated".into())
    );
    assert_eq!(
        refused("?access_token=not.a.token".into()).await,
        (401, "token_invalid".into())
    );
    assert_eq!(
        refused("?access_token=x&access_token=y".into()).await.0,
        400
    );

    let worker = api.device_token("w2").await;
    t.store.revoke_device("dev-w2", 2).await.expect("revoke");
    assert_eq!(
        refused(format!("?access_token={worker}")).await,
        (401, "device_revoked".into())
    );
    let cadre = api.device_token("c1").await;
    execute_sql(&t.url, "UPDATE users SET disabled = TRUE WHERE id = 'c1'").await;
    assert_eq!(
        refused(format!("?access_token={cadre}")).await,
        (401, "account_disabled".into())
    );

    // A plain GET with a good token is no upgrade.
    let token = api.device_token("w1").await;
    let reply = api
        .send_raw(
            Request::get(format!("/api/v1/live?access_token={token}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
}

async fn a_live_connection_is_closed_once_its_device_is_revoked(t: &TestStore) {
    let api = api_with(
        t,
        Config {
            live_ping: Duration::from_millis(100),
            ..Config::default()
        },
    )
    .await;
    let addr = api.serve().await;
    let mut worker = api.connect(addr, "w1").await;
    let mut cadre = api.connect(addr, "c1").await;
    t.store.revoke_device("dev-w1", 2).await.expect("revoke");
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match worker.next().await {
                Some(Ok(Message::Close(Some(frame)))) => return frame,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("closed within 5 s");
    assert_eq!(u16::from(closed.code), 1008);
    assert_eq!(closed.reason.as_str(), "device_revoked");
    // Others stay connected and poked.
    api.push_dispute("c1", 1, G1).await;
    assert!(poke(&mut cadre, Duration::from_secs(5)).await.is_some());
}

async fn a_live_connection_is_closed_once_its_session_ends(t: &TestStore) {
    let api = api_with(
        t,
        Config {
            live_ping: Duration::from_millis(100),
            ..Config::default()
        },
    )
    .await;
    let addr = api.serve().await;
    let mut worker = api.connect(addr, "w1").await;
    let mut cadre = api.connect(addr, "c1").await;
    // As a logout or a password change does: the session's refresh tokens are gone.
    execute_sql(
        &t.url,
        "DELETE FROM refresh_tokens WHERE device_id = 'dev-w1'",
    )
    .await;
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match worker.next().await {
                Some(Ok(Message::Close(Some(frame)))) => return frame,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("closed within 5 s");
    assert_eq!(u16::from(closed.code), 1008);
    assert_eq!(closed.reason.as_str(), "session_ended");
    api.push_dispute("c1", 1, G1).await;
    assert!(poke(&mut cadre, Duration::from_secs(5)).await.is_some());
}

async fn a_live_client_sending_a_large_message_is_disconnected(t: &TestStore) {
    let api = api(t).await;
    let addr = api.serve().await;
    let mut flooder = api.connect(addr, "w1").await;
    let mut cadre = api.connect(addr, "c1").await;
    // The server may cut the line while this is still being written.
    let _ = flooder
        .send(Message::Binary(vec![0u8; 64 * 1024].into()))
        .await;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match flooder.next().await {
                None | Some(Err(_) | Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection stayed open");
    api.push_dispute("w1", 1, G1).await;
    assert!(poke(&mut cadre, Duration::from_secs(5)).await.is_some());
}
