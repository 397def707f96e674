//! A client of a running server for end-to-end tests: logs in over HTTP and syncs a sync-core
//! `Replica` through the binary protocol, as a phone does.

use gridsync_core::protocol::{self, Message, PullResult, PushResult};
use gridsync_core::replica::Replica;
use serde_json::{Value, json};

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
    pub user_id: String,
}

impl Client {
    /// Logs `username` in on the device `device`.
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

    /// Pushes everything `replica` holds for the server, then pulls to the end of its scope.
    pub async fn sync(&self, replica: &mut Replica) {
        while let Some(push) = replica.build_push(256 * 1024) {
            let result: PushResult = self.exchange("/api/v1/sync/push", &push).await;
            let summary = replica.apply_push_result(&result);
            assert!(summary.rejected.is_empty(), "{:?}", summary.rejected);
        }
        loop {
            let pull = replica.build_pull(8 * 1024);
            let result: PullResult = self.exchange("/api/v1/sync/pull", &pull).await;
            let summary = replica.apply_pull_result(result).expect("apply");
            assert!(!summary.diverged, "the digest agrees");
            if !summary.more {
                break;
            }
        }
    }

    /// A JSON request with the bearer token; panics unless it answers 2xx.
    pub async fn json(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert!(status.is_success(), "{path} answered {status}: {text}");
        serde_json::from_str(&text).expect("JSON answer")
    }
}
