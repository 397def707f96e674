//! Blocking HTTP to the Gridsync server: ureq over rustls (ring provider, no OpenSSL), connect
//! and request timeouts, and retries with exponential backoff on network errors and 5xx answers
//! (never sooner than the server's `Retry-After`, and not at all when it asks for longer than
//! the backoff would ever wait).
//!
//! This layer knows nothing of tokens or sync: it posts a body and hands back the status and
//! body, counting the bytes of request and response bodies into a [`Traffic`]. Retrying is safe
//! for every request the client makes: a push is idempotent (the server skips changes it has),
//! a pull only reads. A refresh is not retried here (see `client`): a spent refresh token sent
//! again ends the session unless it comes within the server's grace window, which the client's
//! one retry after a lost answer fits.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{Connector, TcpConnector};

use crate::error::{ClientError, Result};
use crate::hub_tls::{self, HubPin, PinnedTls};

/// Largest response body read, above the server's own frame limit.
const MAX_BODY: u64 = 64 * 1024 * 1024;

/// Timeouts and retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub connect_timeout: Duration,
    /// The whole request, from connecting to the last byte of the answer.
    pub request_timeout: Duration,
    /// Tries per request, the first included; at least 1.
    pub max_attempts: u32,
    /// Delay before the second try; doubled for each further one, capped at `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
        }
    }
}

/// Bytes and requests of one operation (a sync, a login).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Request bodies, counted for every try.
    pub sent: u64,
    /// Response bodies.
    pub received: u64,
    pub requests: u32,
}

/// A response with a status other than a retried 5xx.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// `Upload-Offset`: where an attachment upload stands on the server.
    pub upload_offset: Option<u64>,
    /// `Attachment-Receipt`: central's signed receipt for an attachment, handed on by a hub.
    pub attachment_receipt: Option<String>,
    /// `Retry-After`, in seconds: how long the server asks to be left alone.
    pub retry_after: Option<Duration>,
}

/// The `code` and `detail` of an RFC 9457 problem body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Problem {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub detail: String,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The problem details of an error answer (empty when the body is not one).
    pub fn problem(&self) -> Problem {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// The server's HTTP endpoint.
#[derive(Debug)]
pub struct Transport {
    agent: ureq::Agent,
    base: String,
    settings: Settings,
}

impl Transport {
    /// A transport to `base_url` (`http://…` or `https://…`).
    pub fn new(base_url: &str, settings: Settings) -> Result<Transport> {
        Self::build(base_url, settings, None)
    }

    /// A transport to the village office hub at `base_url` (`https://…`), over TLS that takes
    /// only the key `pin` allows (see `hub_tls`).
    pub fn to_hub(base_url: &str, settings: Settings, pin: Arc<HubPin>) -> Result<Transport> {
        if !base_url.trim().starts_with("https://") {
            return Err(ClientError::Invalid(format!(
                "an office hub is reached over TLS: its address starts with https://, not \
                 `{base_url}`"
            )));
        }
        Self::build(base_url, settings, Some(hub_tls::client_config(pin)))
    }

    fn build(
        base_url: &str,
        settings: Settings,
        hub_tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Transport> {
        let base = base_url.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(ClientError::Invalid(format!(
                "the server URL must start with https:// or http://, not `{base_url}`"
            )));
        }
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(settings.connect_timeout))
            .timeout_global(Some(settings.request_timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("gridsync-mobile/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = match hub_tls {
            None => config.into(),
            Some(tls) => ureq::Agent::with_parts(
                config,
                TcpConnector::default().chain(PinnedTls { config: tls }),
                DefaultResolver::default(),
            ),
        };
        Ok(Transport {
            agent,
            base,
            settings: Settings {
                max_attempts: settings.max_attempts.max(1),
                ..settings
            },
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// POSTs `body` to `path`, retrying network failures and 5xx answers with backoff. Any other
    /// status is handed back for the caller to judge.
    pub fn post(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
        bearer: Option<&str>,
        traffic: &mut Traffic,
    ) -> Result<Answer> {
        self.with_retries(traffic, |t| {
            self.once("POST", path, Some((content_type, body)), bearer, t)
        })
    }

    /// Like [`Transport::post`] for a GET.
    pub fn get(&self, path: &str, bearer: Option<&str>, traffic: &mut Traffic) -> Result<Answer> {
        self.with_retries(traffic, |t| self.once("GET", path, None, bearer, t))
    }

    /// POSTs `body` with its `headers` (a sync frame and what the phone says of itself),
    /// retrying like [`Transport::post`].
    pub fn post_with(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
        bearer: Option<&str>,
        traffic: &mut Traffic,
    ) -> Result<Answer> {
        self.with_retries(traffic, |t| {
            self.send("POST", path, headers, Some(body), bearer, t)
        })
    }

    /// PUTs `body` with extra `headers` (an attachment chunk), retrying like a POST. Safe to
    /// repeat: a chunk the server already holds is answered with where to continue.
    pub fn put(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
        bearer: Option<&str>,
        traffic: &mut Traffic,
    ) -> Result<Answer> {
        self.with_retries(traffic, |t| {
            self.send("PUT", path, headers, Some(body), bearer, t)
        })
    }

    /// A HEAD request (where an attachment upload stands).
    pub fn head(&self, path: &str, bearer: Option<&str>, traffic: &mut Traffic) -> Result<Answer> {
        self.with_retries(traffic, |t| self.send("HEAD", path, &[], None, bearer, t))
    }

    /// One try only: for requests that must not be repeated (a refresh).
    pub fn post_once(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
        bearer: Option<&str>,
        traffic: &mut Traffic,
    ) -> Result<Answer> {
        match self.once("POST", path, Some((content_type, body)), bearer, traffic) {
            Ok(answer) => Ok(answer),
            Err(Failure::Network(e)) => Err(ClientError::Network(e)),
            Err(Failure::Status(answer)) => Ok(answer),
        }
    }

    fn with_retries(
        &self,
        traffic: &mut Traffic,
        mut attempt: impl FnMut(&mut Traffic) -> std::result::Result<Answer, Failure>,
    ) -> Result<Answer> {
        let mut delay = self.settings.base_delay;
        let mut tries = 0;
        loop {
            tries += 1;
            let failure = match attempt(traffic) {
                Ok(answer) => return Ok(answer),
                Err(failure) => failure,
            };
            let asked = match &failure {
                Failure::Status(answer) => answer.retry_after,
                Failure::Network(_) => None,
            };
            // A server that asks for minutes (a full disk) is not helped by a retry in seconds,
            // which would only resend the body over a costly link.
            let hopeless = asked.is_some_and(|wait| wait > self.settings.max_delay);
            if tries >= self.settings.max_attempts || hopeless {
                // Either way nothing was lost: the caller keeps its changes and tries later.
                return Err(ClientError::Network(match failure {
                    Failure::Network(e) => {
                        format!("{} not reachable after {tries} tries: {e}", self.base)
                    }
                    Failure::Status(answer) => {
                        let problem = answer.problem();
                        format!(
                            "the server is failing (HTTP {} {} after {tries} tries): {}",
                            answer.status, problem.code, problem.detail
                        )
                    }
                }));
            }
            std::thread::sleep(jittered(asked.map_or(delay, |wait| wait.max(delay))));
            delay = (delay * 2).min(self.settings.max_delay);
        }
    }

    fn once(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
        bearer: Option<&str>,
        traffic: &mut Traffic,
    ) -> std::result::Result<Answer, Failure> {
        match body {
            Some((content_type, bytes)) => self.send(
                method,
                path,
                &[("content-type", content_type.to_owned())],
                Some(bytes),
                bearer,
                traffic,
            ),
            None => self.send(method, path, &[], None, bearer, traffic),
        }
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
        bearer: Option<&str>,
        traffic: &mut Traffic,
    ) -> std::result::Result<Answer, Failure> {
        let url = format!("{}{path}", self.base);
        traffic.requests += 1;
        let mut request = ureq::http::Request::builder().method(method).uri(&url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let built = |e: ureq::http::Error| Failure::Network(format!("building the request: {e}"));
        let sent = match body {
            Some(bytes) => {
                traffic.sent += bytes.len() as u64;
                self.agent.run(request.body(bytes).map_err(built)?)
            }
            None => self.agent.run(request.body(()).map_err(built)?),
        };
        let mut response = sent.map_err(|e| Failure::Network(e.to_string()))?;
        let status = response.status().as_u16();
        let number = |name: &str| -> Option<u64> {
            let value = response.headers().get(name)?;
            value.to_str().ok()?.trim().parse().ok()
        };
        let upload_offset = number("upload-offset");
        let attachment_receipt = response
            .headers()
            .get("attachment-receipt")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = number("retry-after").map(Duration::from_secs);
        let body = if method == "HEAD" {
            Vec::new()
        } else {
            response
                .body_mut()
                .with_config()
                .limit(MAX_BODY)
                .read_to_vec()
                .map_err(|e| Failure::Network(format!("reading the answer: {e}")))?
        };
        traffic.received += body.len() as u64;
        let answer = Answer {
            status,
            body,
            upload_offset,
            attachment_receipt,
            retry_after,
        };
        if status >= 500 {
            return Err(Failure::Status(answer));
        }
        Ok(answer)
    }
}

/// Why one try failed in a way worth retrying.
enum Failure {
    Network(String),
    Status(Answer),
}

/// `delay` plus up to a quarter more, so phones cut off together do not retry in step.
fn jittered(delay: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let spread = match getrandom::fill(&mut byte) {
        Ok(()) => delay / 4 * u32::from(byte[0]) / 255,
        Err(_) => Duration::ZERO,
    };
    delay + spread
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Instant;

    fn quick() -> Settings {
        Settings {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(5),
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
        }
    }

    /// Answers each connection with the next of `answers` (status, body), then stops.
    fn fake_server(answers: Vec<(u16, &'static str)>) -> (String, std::thread::JoinHandle<usize>) {
        fake_server_with(answers.into_iter().map(|(s, b)| (s, "", b)).collect())
    }

    /// [`fake_server`] with extra header lines (each ending in `\r\n`) per answer.
    fn fake_server_with(
        answers: Vec<(u16, &'static str, &'static str)>,
    ) -> (String, std::thread::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let mut served = 0;
            for (status, headers, body) in answers {
                let (mut stream, _) = listener.accept().unwrap();
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                // Closing with request bytes unread (a body that came after the headers) would
                // reset the connection under the client before it reads the answer: read until
                // the client closes its end.
                let _ = stream.shutdown(std::net::Shutdown::Write);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = std::io::copy(&mut stream, &mut std::io::sink());
                served += 1;
            }
            served
        });
        (format!("http://{addr}"), handle)
    }

    #[test]
    fn server_errors_are_retried_until_an_answer_comes() {
        let (base, server) = fake_server(vec![(503, "busy"), (502, "down"), (200, "fine")]);
        let transport = Transport::new(&base, quick()).unwrap();
        let mut traffic = Traffic::default();
        let answer = transport
            .post("/x", "text/plain", b"hello", None, &mut traffic)
            .unwrap();
        assert_eq!((answer.status, answer.body.as_slice()), (200, &b"fine"[..]));
        assert_eq!(server.join().unwrap(), 3);
        assert_eq!(traffic.requests, 3);
        assert_eq!(traffic.sent, 15);
        assert_eq!(traffic.received, 4 + 4 + 4);
    }

    #[test]
    fn a_server_that_keeps_failing_is_a_network_error_to_sync_again_later() {
        let problem = r#"{"code":"database_unavailable","detail":"try again shortly"}"#;
        let (base, server) = fake_server(vec![(503, problem), (503, problem), (503, problem)]);
        let transport = Transport::new(&base, quick()).unwrap();
        let err = transport
            .post("/x", "text/plain", b"", None, &mut Traffic::default())
            .unwrap_err();
        match err {
            ClientError::Network(message) => {
                assert!(message.contains("503 database_unavailable"), "{message}")
            }
            other => panic!("expected Network, got {other:?}"),
        }
        assert_eq!(server.join().unwrap(), 3);
    }

    /// A full disk asks for a minute: retrying within the backoff would only resend the body.
    #[test]
    fn a_retry_after_beyond_the_backoff_stops_retrying_at_once() {
        let (base, server) = fake_server_with(vec![(
            503,
            "retry-after: 60\r\n",
            r#"{"code":"storage_full","detail":"full"}"#,
        )]);
        let transport = Transport::new(&base, quick()).unwrap();
        let mut traffic = Traffic::default();
        let err = transport
            .post("/x", "text/plain", b"changes", None, &mut traffic)
            .unwrap_err();
        assert!(
            matches!(&err, ClientError::Network(m) if m.contains("storage_full")),
            "{err:?}"
        );
        assert_eq!((server.join().unwrap(), traffic.requests), (1, 1));
    }

    #[test]
    fn a_retry_waits_at_least_the_retry_after_the_server_asks_for() {
        let (base, server) = fake_server_with(vec![
            (503, "retry-after: 1\r\n", "restarting"),
            (200, "", "fine"),
        ]);
        let settings = Settings {
            max_delay: Duration::from_secs(2),
            ..quick()
        };
        let transport = Transport::new(&base, settings).unwrap();
        let started = Instant::now();
        let answer = transport
            .post("/x", "text/plain", b"", None, &mut Traffic::default())
            .unwrap();
        assert_eq!(answer.status, 200);
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert_eq!(server.join().unwrap(), 2);
    }

    #[test]
    fn client_errors_are_handed_back_without_retrying() {
        let (base, server) = fake_server(vec![(
            401,
            r#"{"code":"token_expired","detail":"expired"}"#,
        )]);
        let transport = Transport::new(&base, quick()).unwrap();
        let answer = transport
            .post("/x", "text/plain", b"", None, &mut Traffic::default())
            .unwrap();
        assert_eq!(answer.status, 401);
        assert_eq!(answer.problem().code, "token_expired");
        assert_eq!(server.join().unwrap(), 1);
    }

    #[test]
    fn no_server_is_a_network_error_after_the_tries() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let transport = Transport::new(&format!("http://127.0.0.1:{port}"), quick()).unwrap();
        let mut traffic = Traffic::default();
        let started = Instant::now();
        let err = transport
            .post("/x", "text/plain", b"", None, &mut traffic)
            .unwrap_err();
        assert!(matches!(err, ClientError::Network(_)), "{err:?}");
        assert_eq!(traffic.requests, 3);
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn a_server_url_needs_a_scheme() {
        assert!(matches!(
            Transport::new("gridsync.example", quick()),
            Err(ClientError::Invalid(_))
        ));
    }
}
