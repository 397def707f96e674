//! A client of a running `gridsync serve`: a logged-in user with a replica of the reports it
//! holds, who pushes and pulls over HTTP.

use gridsync_core::protocol::{self, Message, PullResult, PushResult};
use gridsync_core::replica::Replica;
use serde_json::{Value, json};

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
}
