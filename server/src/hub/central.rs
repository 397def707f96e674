//! The hub's HTTP client to central: blocking ureq (rustls) on tokio's blocking threads, with
//! timeouts, answering bytes or central's problem as a [`HubError`].

use std::time::Duration;

use gridsync_core::protocol::{self, Message};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{HubError, Result};

/// The most a hub reads of one answer: a pull page or a relay answer is far less.
const MAX_ANSWER: u64 = 64 * 1024 * 1024;
const FRAME_TYPE: &str = "application/x-gridsync";

/// Central, as a hub reaches it.
#[derive(Clone)]
pub struct Central {
    base: String,
    agent: ureq::Agent,
}

impl Central {
    /// Central at `base_url` (`https://…`, or `http://…` on a test bench).
    pub fn new(base_url: &str) -> Result<Central> {
        let base = base_url.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(HubError::Invalid(format!(
                "central's URL must start with https:// or http://, not `{base_url}`"
            )));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(120)))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("gridsync-hub/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Central { base, agent })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// GET `path` as JSON.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> Result<T> {
        let bytes = self.call("GET", path, token, None).await?;
        serde_json::from_slice(&bytes).map_err(|e| HubError::BadAnswer(format!("{path}: {e}")))
    }

    /// GET `path` as JSON unless it is still what the entity tag `held` names: `None` then
    /// (central answered 304), else the JSON with its new tag.
    pub async fn get_json_if_changed<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        held: Option<&str>,
    ) -> Result<Option<(T, Option<String>)>> {
        let headers: Vec<_> = held
            .map(|tag| ("if-none-match", tag.to_owned()))
            .into_iter()
            .collect();
        let reply = self.send("GET", path, Some(token), None, &headers).await?;
        if reply.status == 304 {
            return Ok(None);
        }
        let reply = reply.into_body()?;
        let value = serde_json::from_slice(&reply.body)
            .map_err(|e| HubError::BadAnswer(format!("{path}: {e}")))?;
        Ok(Some((value, reply.header("etag").map(str::to_owned))))
    }

    /// HEAD `path`, for central's answer to judge.
    pub async fn head(&self, path: &str, token: &str) -> Result<Reply> {
        self.send("HEAD", path, Some(token), None, &[]).await
    }

    /// PUT `body` (of `content_type`) to `path` with `headers`, for central's answer to judge.
    pub async fn put(
        &self,
        path: &str,
        token: &str,
        headers: &[(&'static str, String)],
        body: (Vec<u8>, &'static str),
    ) -> Result<Reply> {
        self.send("PUT", path, Some(token), Some(body), headers)
            .await
    }

    /// POST `body` as JSON to `path` (with the hub's `token`, when it has one), reading JSON
    /// back.
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        token: Option<&str>,
    ) -> Result<T> {
        let body = serde_json::to_vec(body).map_err(|e| HubError::Invalid(e.to_string()))?;
        let bytes = self
            .call("POST", path, token, Some((body, "application/json")))
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| HubError::BadAnswer(format!("{path}: {e}")))
    }

    /// POST a sync frame to `path`, decoding the frame answered.
    pub async fn exchange<M: Message, A: Message>(
        &self,
        path: &str,
        token: &str,
        message: &M,
    ) -> Result<A> {
        let body = protocol::encode(message);
        let bytes = self
            .call("POST", path, Some(token), Some((body, FRAME_TYPE)))
            .await?;
        protocol::decode(&bytes).map_err(|e| HubError::BadAnswer(format!("{path}: {e}")))
    }

    async fn call(
        &self,
        method: &'static str,
        path: &str,
        token: Option<&str>,
        body: Option<(Vec<u8>, &'static str)>,
    ) -> Result<Vec<u8>> {
        let reply = self.send(method, path, token, body, &[]).await?;
        Ok(reply.into_body()?.body)
    }

    async fn send(
        &self,
        method: &'static str,
        path: &str,
        token: Option<&str>,
        body: Option<(Vec<u8>, &'static str)>,
        headers: &[(&'static str, String)],
    ) -> Result<Reply> {
        let url = format!("{}{path}", self.base);
        let agent = self.agent.clone();
        let token = token.map(|t| format!("Bearer {t}"));
        let unreachable = |reason: String| HubError::Unreachable {
            url: url.clone(),
            reason,
        };
        let request_url = url.clone();
        let headers = headers.to_vec();
        let answer = tokio::task::spawn_blocking(move || {
            let mut request = ureq::http::Request::builder()
                .method(method)
                .uri(&request_url);
            if let Some(token) = &token {
                request = request.header("authorization", token);
            }
            for (name, value) in &headers {
                request = request.header(*name, value);
            }
            let sent = match body {
                Some((bytes, content_type)) => agent.run(
                    request
                        .header("content-type", content_type)
                        .body(bytes)
                        .map_err(|e| e.to_string())?,
                ),
                None => agent.run(request.body(()).map_err(|e| e.to_string())?),
            };
            let mut response = sent.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let bytes = response
                .body_mut()
                .with_config()
                .limit(MAX_ANSWER)
                .read_to_vec()
                .map_err(|e| format!("reading the answer: {e}"))?;
            Ok::<_, String>(Reply {
                status,
                headers,
                body: bytes,
            })
        })
        .await
        .map_err(|e| unreachable(e.to_string()))?;
        answer.map_err(unreachable)
    }
}

/// An answer of central's, before it is judged.
pub struct Reply {
    pub status: u16,
    headers: ureq::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    /// The answer of a 2xx, or central's problem.
    fn into_body(self) -> Result<Reply> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        Err(self.refused())
    }

    /// Central's problem, as this answer states it.
    pub fn refused(&self) -> HubError {
        HubError::Refused {
            status: self.status,
            code: self.problem("code"),
            detail: self.problem("detail"),
        }
    }

    /// A text of the problem this answer is (empty when it is none).
    pub fn problem(&self, key: &str) -> String {
        let problem: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        problem[key].as_str().unwrap_or_default().to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
