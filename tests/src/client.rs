//! A client of a running `gridsync serve`: a logged-in user with a replica of the reports it
//! holds, who edits, pushes and pulls over HTTP and listens on `/api/v1/live`.

use std::time::Duration;

use futures_util::StreamExt;
use gridsync_core::DocId;
use gridsync_core::protocol::{self, Message, PullResult, PushResult};
use gridsync_core::replica::Replica;
use gridsync_core::report::{Editor, ReportDoc};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A user logged in on one node, with the reports it holds.
pub struct Client {
    http: reqwest::Client,
    pub base: String,
    pub token: String,
    pub user_id: String,
    pub replica: Replica,
}

impl Client {
    pub async fn login(base: &str, username: &str, password: &str, device: &str) -> Client {
        let http = reqwest::Client::new();
        let tokens: Value = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({
                "username": username, "password": password,
                "device_id": device, "device_name": device,
            }))
            .send()
            .await
            .expect("login")
            .error_for_status()
            .expect("login answers 200")
            .json()
            .await
            .expect("tokens");
        Client {
            http,
            base: base.to_owned(),
            token: tokens["access_token"].as_str().expect("token").to_owned(),
            user_id: tokens["user_id"].as_str().expect("user id").to_owned(),
            replica: Replica::new(),
        }
    }

    /// Sets `place` of report `id` in `grid` (creating the report first when new), as an edit
    /// at `at` milliseconds.
    pub fn edit(&mut self, id: DocId, grid: &str, place: &str, at: i64) {
        let editor = Editor::new(&self.user_id, at);
        if self.replica.get(&id).is_none() {
            let doc = ReportDoc::create(id, "dispute_check", 1, grid, &editor).expect("create");
            self.replica.insert(doc);
        }
        self.replica
            .doc_mut(&id)
            .expect("held")
            .set_field("place", &json!(place), &editor)
            .expect("edit");
    }

    /// Pushes every pending change; each must be acknowledged.
    pub async fn push(&mut self) {
        while let Some(push) = self.replica.build_push(256 * 1024) {
            let result: PushResult = self.exchange("/api/v1/sync/push", &push).await;
            let summary = self.replica.apply_push_result(&result);
            assert!(summary.rejected.is_empty(), "{:?}", summary.rejected);
        }
    }

    /// Pushes what is pending, then pulls to the end of the scope.
    pub async fn sync(&mut self) {
        self.push().await;
        self.pull().await;
    }

    /// Pulls to the end of the scope.
    pub async fn pull(&mut self) {
        loop {
            let pull = self.replica.build_pull(256 * 1024);
            let result: PullResult = self.exchange("/api/v1/sync/pull", &pull).await;
            let summary = self.replica.apply_pull_result(result).expect("apply");
            assert!(!summary.diverged, "the digest agrees");
            if !summary.more {
                return;
            }
        }
    }

    async fn exchange<Q: Message, A: Message>(&self, path: &str, message: &Q) -> A {
        let bytes = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/x-gridsync")
            .body(protocol::encode(message))
            .send()
            .await
            .expect("request")
            .error_for_status()
            .expect("answer 200")
            .bytes()
            .await
            .expect("body");
        protocol::decode(&bytes).expect("a valid frame")
    }

    /// Opens `/api/v1/live` on this client's node.
    pub async fn listen(&self) -> Listener {
        let ws = self.base.replacen("http://", "ws://", 1);
        let (socket, _) = tokio_tungstenite::connect_async(format!(
            "{ws}/api/v1/live?access_token={}",
            self.token
        ))
        .await
        .expect("connect to /api/v1/live");
        Listener { socket }
    }
}

/// An open `/api/v1/live` connection.
pub struct Listener {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Listener {
    /// The sequence of the next `changed` poke, or `None` when none comes within `wait`.
    pub async fn poke(&mut self, wait: Duration) -> Option<i64> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()?;
            match message.expect("connection open").expect("a message") {
                tungstenite::Message::Text(text) => {
                    let v: Value = serde_json::from_str(&text).expect("JSON");
                    assert_eq!(v["type"], "changed", "{v}");
                    return Some(v["seq"].as_i64().expect("seq"));
                }
                tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}
