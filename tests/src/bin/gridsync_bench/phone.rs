//! A simulated phone: sync-core's replica speaking the sync protocol over HTTP, exactly as the
//! phone library does, counting requests and body bytes each way.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use automerge::ChangeHash;
use gridsync_core::DocId;
use gridsync_core::protocol::{self, Message, PullResult, PushResult};
use gridsync_core::replica::Replica;
use serde_json::{Value, json};

/// Bytes of changes per push request, and the byte budget of a pull page: the phone library's.
pub const PUSH_BYTES: usize = 256 * 1024;
pub const PULL_BUDGET: u32 = 512 * 1024;

/// Requests made and body bytes sent and received, headers excluded (a relay counts those),
/// and the time spent waiting for answers: the server's share of a sync, without the client's.
#[derive(Debug, Default, Clone, Copy)]
pub struct Traffic {
    pub requests: u64,
    pub body_up: u64,
    pub body_down: u64,
    pub wait: Duration,
}

impl Traffic {
    pub fn plus(self, other: Traffic) -> Traffic {
        Traffic {
            requests: self.requests + other.requests,
            body_up: self.body_up + other.body_up,
            body_down: self.body_down + other.body_down,
            wait: self.wait + other.wait,
        }
    }

    pub fn since(self, before: Traffic) -> Traffic {
        Traffic {
            requests: self.requests - before.requests,
            body_up: self.body_up - before.body_up,
            body_down: self.body_down - before.body_down,
            wait: self.wait - before.wait,
        }
    }
}

pub struct Phone {
    pub user: String,
    pub replica: Replica,
    pub traffic: Traffic,
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Phone {
    /// Logs `user` in as device `device` through `base` (the server, or a relay in front of it).
    pub async fn login(
        base: &str,
        user: &str,
        password: &str,
        device: &str,
    ) -> anyhow::Result<Phone> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        let answer = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({
                "username": user, "password": password,
                "device_id": device, "device_name": "gridsync-bench",
            }))
            .send()
            .await?;
        if !answer.status().is_success() {
            bail!("login {user}: {} {}", answer.status(), answer.text().await?);
        }
        let tokens: Value = answer.json().await?;
        let token = tokens["access_token"]
            .as_str()
            .context("no access token")?
            .to_owned();
        Ok(Phone {
            user: user.to_owned(),
            replica: Replica::new(),
            traffic: Traffic::default(),
            http,
            base: base.to_owned(),
            token,
        })
    }

    /// A document's heads, sorted so that two replicas' can be compared.
    pub fn heads(&mut self, id: &DocId) -> Option<Vec<ChangeHash>> {
        let mut heads = self.replica.doc_mut(id)?.heads();
        heads.sort();
        Some(heads)
    }

    /// Pushes every pending change, batch after batch. Rejections are errors: the benchmark's
    /// edits are all valid, so one means the server and the client disagree.
    pub async fn push_all(&mut self) -> anyhow::Result<()> {
        while let Some(push) = self.replica.build_push(PUSH_BYTES) {
            let result: PushResult = self.exchange("push", &push).await?;
            let summary = self.replica.apply_push_result(&result);
            if let Some((doc, code, reason)) = summary.rejected.first() {
                bail!("{doc} was rejected: {code}: {reason}");
            }
        }
        Ok(())
    }

    /// Pulls page after page until the server has nothing more.
    pub async fn pull_all(&mut self) -> anyhow::Result<usize> {
        let mut docs = 0;
        loop {
            let (n, more) = self.pull_page().await?;
            docs += n;
            if !more {
                return Ok(docs);
            }
        }
    }

    /// Pulls one page: the documents it carried and whether more follow. Fails on a digest
    /// mismatch, which would mean the replica and the server hold different documents.
    pub async fn pull_page(&mut self) -> anyhow::Result<(usize, bool)> {
        let pull = self.replica.build_pull(PULL_BUDGET);
        let result: PullResult = self.exchange("pull", &pull).await?;
        let summary = self.replica.apply_pull_result(result)?;
        if summary.diverged {
            bail!("the scope digest differs from the server's after a complete pull");
        }
        Ok((summary.docs, summary.more))
    }

    /// One sync as the phone library does it: push, then pull.
    pub async fn sync(&mut self) -> anyhow::Result<()> {
        self.push_all().await?;
        self.pull_all().await?;
        Ok(())
    }

    /// A GET of the JSON API as this user: how long the answer took and its size in bytes.
    pub async fn get(&self, path: &str) -> anyhow::Result<(Duration, usize)> {
        let started = Instant::now();
        let answer = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = answer.status();
        let bytes = answer.bytes().await?;
        if !status.is_success() {
            bail!("GET {path}: {status} {}", String::from_utf8_lossy(&bytes));
        }
        Ok((started.elapsed(), bytes.len()))
    }

    async fn exchange<Q: Message, A: Message>(
        &mut self,
        what: &str,
        message: &Q,
    ) -> anyhow::Result<A> {
        let body = protocol::encode(message);
        self.traffic.requests += 1;
        self.traffic.body_up += body.len() as u64;
        let started = Instant::now();
        let answer = self
            .http
            .post(format!("{}/api/v1/sync/{what}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/x-gridsync")
            .body(body)
            .send()
            .await?;
        let status = answer.status();
        let bytes = answer.bytes().await?;
        self.traffic.wait += started.elapsed();
        self.traffic.body_down += bytes.len() as u64;
        if !status.is_success() {
            bail!("{what}: {status} {}", String::from_utf8_lossy(&bytes));
        }
        Ok(protocol::decode(&bytes)?)
    }
}
