//! Driving the HTTP API in tests: the app over a test store, requests with and without a bearer
//! token, and answers read as JSON or as bytes.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gridsync_fixtures::people::{Person, seed_people};
use gridsync_server::config::Config;
use gridsync_server::http::{AppState, app};
use gridsync_server::scope::Role;
use gridsync_server::store::Store;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::TestStore;

/// The app over a test store, and what it runs on.
pub struct Api {
    pub app: Router,
    pub state: AppState,
    pub store: Arc<dyn Store>,
}

/// An answer whose body is JSON (or empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    pub fn content_type(&self) -> &str {
        self.header(header::CONTENT_TYPE.as_str()).unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }

    /// The body of a successful answer.
    #[track_caller]
    pub fn ok(self) -> Value {
        assert!(self.status.is_success(), "{}: {}", self.status, self.body);
        self.body
    }

    #[track_caller]
    pub fn assert_status(&self, status: StatusCode) {
        assert_eq!(self.status, status, "body: {}", self.body);
    }

    /// Asserts a problem-details answer with this status and code.
    #[track_caller]
    pub fn assert_problem(&self, status: StatusCode, code: &str) {
        assert_eq!(
            (self.status, self.code()),
            (status, code),
            "body: {}",
            self.body
        );
        assert_eq!(self.content_type(), "application/problem+json");
        assert_eq!(self.body["status"], json!(status.as_u16()));
        assert!(self.body["type"].is_string() && self.body["title"].is_string());
        assert!(self.body["detail"].is_string());
    }
}

/// An answer read as bytes, for bodies that are not JSON (attachments, metrics, frames) or
/// whose JSON a test reads only sometimes.
pub struct RawReply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
}

impl RawReply {
    /// The body as JSON, or `Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    pub fn content_type(&self) -> &str {
        self.header(header::CONTENT_TYPE.as_str()).unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }

    #[track_caller]
    pub fn assert_status(&self, status: StatusCode) {
        assert_eq!(self.status, status, "body: {}", self.text());
    }

    /// Asserts a problem-details answer with this status and code, as [`Reply::assert_problem`].
    #[track_caller]
    pub fn assert_problem(&self, status: StatusCode, code: &str) {
        Reply {
            status: self.status,
            headers: self.headers.clone(),
            body: self.json(),
        }
        .assert_problem(status, code);
    }
}

fn header_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub async fn api_over(t: &TestStore) -> Api {
    api_with_config(t, Config::default()).await
}

/// The app over a test store, run with `config`.
pub async fn api_with_config(t: &TestStore, config: Config) -> Api {
    let state = AppState::new(t.store.clone(), config).await.expect("state");
    Api {
        app: app(state.clone()),
        state,
        store: t.store.clone(),
    }
}

/// The app over the standard org tree and `users`, each with a device `dev-ID` (see
/// [`add_users_with_devices`]), run with `config`; [`Api::token`] signs them in.
pub async fn api_with_devices(t: &TestStore, users: &[(&str, Role, &str)], config: Config) -> Api {
    super::seed_org(t.store.as_ref()).await;
    add_users_with_devices(t.store.as_ref(), users).await;
    api_with_config(t, config).await
}

pub async fn add_user(
    store: &dyn Store,
    id: &str,
    role: Role,
    unit: &str,
    pw: &str,
    disabled: bool,
) {
    let person = Person::new(id, role, unit).password(pw).disabled(disabled);
    seed_people(store, &[person]).await.expect("user");
}

/// Users (id, role, org unit) each with a device `dev-ID` logged in to session `session`, for
/// tests that issue tokens directly (`state.keys.issue(id, "dev-ID", "session")`) rather than
/// log in.
pub async fn add_users_with_devices(store: &dyn Store, users: &[(&str, Role, &str)]) {
    let people: Vec<Person> = users
        .iter()
        .map(|&(id, role, unit)| Person::new(id, role, unit).with_device())
        .collect();
    seed_people(store, &people).await.expect("users");
}

pub const CLIENT: &str = "192.0.2.1:40000";

impl Api {
    /// (status, headers, body bytes) of any request, whatever the body holds.
    pub async fn raw(&self, req: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let r = self.send_raw(with_addr(req, CLIENT)).await;
        (r.status, r.headers, r.bytes)
    }

    /// Any request, from [`CLIENT`] unless it names its own address, answered as bytes.
    pub async fn send_raw(&self, mut req: Request<Body>) -> RawReply {
        if req.extensions().get::<ConnectInfo<SocketAddr>>().is_none() {
            req.extensions_mut()
                .insert(ConnectInfo(CLIENT.parse::<SocketAddr>().expect("addr")));
        }
        let res = self.app.clone().oneshot(req).await.expect("infallible");
        let (status, headers) = (res.status(), res.headers().clone());
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        RawReply {
            status,
            headers,
            bytes: bytes.to_vec(),
        }
    }

    /// A request whose answer must be JSON or empty.
    pub async fn send(&self, req: Request<Body>) -> Reply {
        let RawReply {
            status,
            headers,
            bytes,
        } = self.send_raw(req).await;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!("not JSON ({status}): {}", String::from_utf8_lossy(&bytes))
            })
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// An access token of a user seeded with [`add_users_with_devices`], for their device
    /// `dev-USER`, issued directly so that tests of other endpoints do not log in.
    pub async fn device_token(&self, user: &str) -> String {
        self.state
            .keys
            .issue(user, &format!("dev-{user}"), "session")
            .await
            .expect("token")
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(json_request(path, &body)).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(authed("GET", path, token)).await
    }

    /// A request with a bearer token and a JSON body.
    pub async fn call(&self, method: &str, path: &str, token: &str, body: Value) -> Reply {
        self.send(authed_json(method, path, token, &body.to_string()))
            .await
    }

    pub async fn login(&self, user: &str, pw: &str, device: &str) -> Reply {
        self.post(
            "/api/v1/auth/login",
            json!({ "username": user, "password": pw, "device_id": device, "device_name": "phone" }),
        )
        .await
    }

    /// The header and claims of `jws` for `audience`, checked as whoever holds only the
    /// published keys checks them: by its `kid`, with EdDSA, from this issuer.
    pub async fn verified(&self, jws: &str, audience: &str) -> (jsonwebtoken::Header, Value) {
        let header = jsonwebtoken::decode_header(jws).expect("header");
        let keys = self
            .send(
                Request::get("/.well-known/jwks.json")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await;
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(keys.body).expect("a JWKS");
        let kid = header.kid.as_deref().expect("kid");
        let key = jsonwebtoken::DecodingKey::from_jwk(
            jwks.find(kid).expect("the signing key is published"),
        )
        .expect("a verifying key");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.set_issuer(&[&Config::default().issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["iss", "aud"]);
        let claims = jsonwebtoken::decode::<Value>(jws, &key, &validation)
            .expect("verifies with the published key")
            .claims;
        (header, claims)
    }

    /// Logs `user` in on `device` with the Ed25519 key of seed `[seed; 32]`, as the phone
    /// library does: the answer carries the offline grant.
    pub async fn login_with_key(&self, user: &str, pw: &str, device: &str, seed: u8) -> Value {
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        self.post(
            "/api/v1/auth/login",
            json!({
                "username": user, "password": pw, "device_id": device, "device_name": "phone",
                "device_key": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
            }),
        )
        .await
        .ok()
    }

    /// Registers a hub for `unit` as `admin` (an access token) and enrols it with the key of
    /// seed `seed`: the enrolment's answer (`hub_id`, `unit_path`, `certificate`, ...).
    pub async fn enrol_hub(&self, admin: &str, unit: &str, seed: &[u8; 32]) -> Value {
        let registered = self
            .call(
                "POST",
                "/api/v1/hubs",
                admin,
                json!({ "unit_id": unit, "name": "上坪村委会" }),
            )
            .await
            .ok();
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        self.post(
            "/api/v1/hubs/enrol",
            json!({
                "enrolment_code": registered["enrolment_code"],
                "identity_key": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
            }),
        )
        .await
        .ok()
    }

    /// Logs in and returns (access token, refresh token).
    pub async fn tokens(&self, user: &str, pw: &str, device: &str) -> (String, String) {
        let r = self.login(user, pw, device).await;
        assert_eq!(r.status, StatusCode::OK, "login: {}", r.body);
        (
            r.body["access_token"].as_str().expect("access").to_owned(),
            r.body["refresh_token"]
                .as_str()
                .expect("refresh")
                .to_owned(),
        )
    }

    pub async fn refresh(&self, refresh_token: &str) -> Reply {
        self.post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": refresh_token }),
        )
        .await
    }

    pub async fn devices(&self, token: &str) -> Reply {
        self.get("/api/v1/devices", token).await
    }
}

/// A sync request (push or pull) carrying `frame`.
pub fn frame_request(path: &str, token: &str, frame: Vec<u8>) -> Request<Body> {
    Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/x-gridsync")
        .body(Body::from(frame))
        .expect("request")
}

pub fn json_request(path: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

pub fn authed(method: &str, path: &str, token: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request")
}

pub fn with_addr(mut req: Request<Body>, addr: &str) -> Request<Body> {
    req.extensions_mut()
        .insert(ConnectInfo(addr.parse::<SocketAddr>().expect("addr")));
    req
}

/// A request with a bearer token and `body` sent as JSON, whatever it holds.
pub fn authed_json(method: &str, path: &str, token: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .expect("request")
}
