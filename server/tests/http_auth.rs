//! The HTTP API's authentication, devices, error format and probes, driven through `app(state)`
//! on SQLite and on Postgres.

mod support;

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gridsync_server::auth::bootstrap;
use gridsync_server::auth::client_addr::TrustedProxies;
use gridsync_server::config::Config;
use gridsync_server::scope::Role;
use gridsync_server::store::{RefreshToken, SessionStart};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use sqlx::Connection;
use support::http::*;
use support::*;

on_both_test_stores!(
    a_login_with_the_right_password_returns_tokens_that_authenticate,
    a_wrong_password_and_an_unknown_user_get_the_same_answer,
    a_disabled_user_cannot_log_in_and_its_tokens_are_refused_with_account_disabled,
    expired_forged_unsigned_and_foreign_tokens_are_refused_each_with_its_code,
    access_tokens_verify_with_the_published_public_key_alone,
    a_login_with_a_device_key_gets_an_offline_grant_the_published_keys_verify,
    grants_go_to_grid_workers_and_village_cadres_and_never_pass_for_access_tokens,
    a_malformed_device_key_is_refused_before_anything_is_stored,
    a_refresh_sets_a_missing_device_key_never_changes_it_and_a_retiring_phone_gets_no_grant,
    the_signed_revocation_list_names_recently_revoked_devices_and_disabled_accounts,
    a_refresh_rotates_the_pair_and_reusing_a_spent_token_revokes_the_session,
    a_refresh_whose_answer_was_lost_is_answered_again_and_the_unseen_token_dies,
    a_retry_after_the_grace_window_revokes_the_session,
    a_retry_after_the_successor_was_used_revokes_the_session,
    a_second_grace_retry_revokes_the_session,
    logout_ends_the_session_and_its_access_token_at_once,
    a_reused_refresh_token_ends_the_sessions_access_token_too,
    a_revoked_device_is_refused_with_device_revoked_on_its_next_request,
    a_worker_lists_and_revokes_only_their_own_devices_and_an_admin_any,
    a_device_registered_to_another_user_is_refused_at_login,
    failed_logins_past_the_limit_are_answered_429_with_retry_after,
    made_up_usernames_from_one_client_behind_the_proxy_do_not_lock_out_another,
    an_admins_wrong_passwords_do_not_stop_their_login_from_a_known_device,
    a_forwarded_for_header_cannot_dodge_the_address_limit,
    a_burst_of_parallel_guesses_gets_no_more_tries_than_the_limit,
    an_admins_password_reset_ends_every_session_of_the_user_and_keeps_the_devices,
    an_admin_changing_their_own_password_keeps_the_session_they_do_it_in,
    changing_ones_own_password_ends_every_other_session_and_keeps_this_one,
    a_session_started_while_a_password_change_commits_waits_for_it_and_is_refused,
    a_session_started_while_its_device_is_revoked_waits_for_it_and_is_refused,
    wrong_current_passwords_count_against_the_login_throttle,
    malformed_json_and_unknown_fields_are_answered_as_problem_details,
    healthz_and_readyz_answer_ok_while_the_database_is_up,
    the_first_start_creates_one_admin_with_the_given_password,
    the_first_start_generates_a_password_and_keeps_an_existing_org_root,
    the_openapi_document_lists_the_auth_and_device_endpoints,
);

/// Starts a session of w1 on `dev-w1`, checked against w1's password hash as it was, while
/// another transaction holds `change` uncommitted: the session must wait for it (Postgres: the
/// row the change locks; SQLite: the one writer), then answer as the change left things.
async fn session_started_during(t: &TestStore, change: &str) -> SessionStart {
    seed_org(t.store.as_ref()).await;
    add_users_with_devices(t.store.as_ref(), &[("w1", Role::GridWorker, G1)]).await;
    let checked = t
        .store
        .user("w1")
        .await
        .expect("read")
        .expect("user")
        .password_hash;
    let mut change_tx = Beside::connect(&t.url).await;
    change_tx.begin_write().await;
    change_tx.execute(change).await;
    let store = t.store.clone();
    let login = tokio::spawn(async move {
        let token = RefreshToken {
            token_hash: vec![7; 32],
            device_id: "dev-w1".into(),
            family: "racing".into(),
            expires_at: i64::MAX,
            used_at: None,
            replaces: None,
        };
        store.start_session(&token, "w1", &checked).await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!login.is_finished(), "the session waits for the change");
    change_tx.execute("COMMIT").await;
    change_tx.close().await;
    let start = login.await.expect("join").expect("session");
    assert_eq!(
        start == SessionStart::Started,
        t.store
            .session_live("racing", "dev-w1")
            .await
            .expect("read"),
        "a session is stored exactly when it started"
    );
    start
}

async fn a_session_started_while_a_password_change_commits_waits_for_it_and_is_refused(
    t: &TestStore,
) {
    let change = "UPDATE users SET password_hash = 'changed' WHERE id = 'w1'";
    assert_eq!(
        session_started_during(t, change).await,
        SessionStart::PasswordChanged
    );
}

async fn a_session_started_while_its_device_is_revoked_waits_for_it_and_is_refused(t: &TestStore) {
    let revoke = "UPDATE devices SET revoked_at = 1 WHERE id = 'dev-w1'";
    assert_eq!(
        session_started_during(t, revoke).await,
        SessionStart::DeviceRevoked
    );
}

const ADMIN_PW: &str = "admin password";
const WORKER_PW: &str = "worker password";

/// The app over a seeded store: admin `admin` (district), workers `w1` (grid g1) and `w2` (g2).
async fn api(t: &TestStore) -> Api {
    seed_org(t.store.as_ref()).await;
    for (id, role, unit, pw) in [
        ("admin", Role::DistrictAdmin, "d", ADMIN_PW),
        ("w1", Role::GridWorker, G1, WORKER_PW),
        ("w2", Role::GridWorker, G2, WORKER_PW),
    ] {
        add_user(t.store.as_ref(), id, role, unit, pw, false).await;
    }
    api_over(t).await
}

async fn a_login_with_the_right_password_returns_tokens_that_authenticate(t: &TestStore) {
    let api = api(t).await;
    let r = api.login("w1", WORKER_PW, "phone-1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["expires_in"], json!(900));
    let access = r.body["access_token"].as_str().expect("access");
    let header = jsonwebtoken::decode_header(access).expect("header");
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert!(header.kid.is_some(), "kid names the signing key");

    let devices = api.devices(access).await;
    assert_eq!(devices.status, StatusCode::OK, "{}", devices.body);
    assert_eq!(devices.body[0]["id"], json!("phone-1"));
    assert_eq!(devices.body[0]["user_id"], json!("w1"));
    let device = api.store.device("phone-1").await.expect("device");
    assert_eq!(device.expect("registered").user_id, "w1");
}

async fn a_wrong_password_and_an_unknown_user_get_the_same_answer(t: &TestStore) {
    let api = api(t).await;
    let wrong = api.login("w1", "not it", "phone-1").await;
    let unknown = api.login("nobody", "not it", "phone-1").await;
    wrong.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(wrong.body, unknown.body);
    assert!(
        api.store.device("phone-1").await.expect("device").is_none(),
        "no device is registered by a failed login"
    );
}

async fn a_disabled_user_cannot_log_in_and_its_tokens_are_refused_with_account_disabled(
    t: &TestStore,
) {
    let api = api(t).await;
    add_user(
        t.store.as_ref(),
        "gone",
        Role::GridWorker,
        G1,
        WORKER_PW,
        true,
    )
    .await;
    api.login("gone", WORKER_PW, "p")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "account_disabled");
    api.login("gone", "wrong", "p")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");

    let (access, refresh) = api.tokens("w1", WORKER_PW, "phone-1").await;
    execute_sql(&t.url, "UPDATE users SET disabled = TRUE WHERE id = 'w1'").await;
    api.devices(&access)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "account_disabled");
    api.refresh(&refresh)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "account_disabled");
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    dev: &'a str,
    sid: &'a str,
    iat: i64,
    exp: i64,
}

fn claims<'a>(iss: &'a str, aud: &'a str, exp: i64) -> Claims<'a> {
    Claims {
        iss,
        aud,
        sub: "w1",
        dev: "phone-1",
        sid: "s",
        iat: exp - 900,
        exp,
    }
}

/// The session (`sid`) an access token was issued in.
fn session_of(access: &str) -> String {
    let body = access.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).expect("base64")).expect("json");
    claims["sid"].as_str().expect("sid").to_owned()
}

fn sign(claims: &Claims<'_>, alg: Algorithm, kid: &str, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

/// An Ed25519 signer from a 32-byte seed, as the server keeps its keys (PKCS#8, RFC 8410).
fn ed25519(seed: &[u8]) -> EncodingKey {
    let prefix = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    EncodingKey::from_ed_der(&[&prefix[..], seed].concat())
}

fn hmac(secret: &[u8]) -> EncodingKey {
    EncodingKey::from_secret(secret).expect("key")
}

/// The server's published key set, read as any client would.
async fn published_keys(api: &Api) -> (JwkSet, Reply) {
    let r = api
        .send(
            Request::get("/.well-known/jwks.json")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    (serde_json::from_value(r.body.clone()).expect("a JWKS"), r)
}

async fn expired_forged_unsigned_and_foreign_tokens_are_refused_each_with_its_code(t: &TestStore) {
    let api = api(t).await;
    let (access, _) = api.tokens("w1", WORKER_PW, "phone-1").await;
    let session = session_of(&access);
    let key = api.store.signing_keys().await.expect("keys").remove(0);
    let (kid, server_key) = (key.kid.as_str(), ed25519(&key.secret));
    let now = gridsync_server::clock::now();
    let config = Config::default();
    let (iss, aud) = (config.issuer.as_str(), config.audience.as_str());
    let eddsa = Algorithm::EdDSA;

    let good = Claims {
        sid: &session,
        ..claims(iss, aud, now + 600)
    };
    let good = sign(&good, eddsa, kid, &server_key);
    assert_eq!(api.devices(&good).await.status, StatusCode::OK);
    // Signed with the server's key, but naming a session the device never had.
    let no_session = sign(&claims(iss, aud, now + 600), eddsa, kid, &server_key);
    api.devices(&no_session)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "session_ended");

    let expired = sign(&claims(iss, aud, now - 3600), eddsa, kid, &server_key);
    let live = Claims {
        sid: &session,
        ..claims(iss, aud, now + 600)
    };
    let bad_signature = sign(&live, eddsa, kid, &ed25519(&[7; 32]));
    let unknown_kid = sign(&live, eddsa, "nope", &server_key);
    // Algorithm confusion: the public key, or the private seed, used as an HMAC secret.
    let (jwks, _) = published_keys(&api).await;
    let public = match &jwks.find(kid).expect("the key is published").algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(pair) => {
            URL_SAFE_NO_PAD.decode(&pair.x).expect("x")
        }
        other => panic!("not an Ed25519 key: {other:?}"),
    };
    let hs256_public = sign(&live, Algorithm::HS256, kid, &hmac(&public));
    let hs256_seed = sign(&live, Algorithm::HS256, kid, &hmac(&key.secret));
    let wrong_audience = sign(
        &claims(iss, "elsewhere", now + 600),
        eddsa,
        kid,
        &server_key,
    );
    let wrong_issuer = sign(
        &claims("elsewhere", aud, now + 600),
        eddsa,
        kid,
        &server_key,
    );
    let unsigned = {
        let header =
            URL_SAFE_NO_PAD.encode(json!({ "alg": "none", "typ": "JWT", "kid": kid }).to_string());
        let body = URL_SAFE_NO_PAD
            .encode(serde_json::to_string(&claims(iss, aud, now + 600)).expect("json"));
        format!("{header}.{body}.")
    };

    api.devices(&expired)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "token_expired");
    for (what, token) in [
        ("bad signature", bad_signature.as_str()),
        ("unknown kid", &unknown_kid),
        ("HS256 with the public key", &hs256_public),
        ("HS256 with the private seed", &hs256_seed),
        ("wrong audience", &wrong_audience),
        ("wrong issuer", &wrong_issuer),
        ("alg none", &unsigned),
        ("malformed", "not.a.jwt"),
        ("garbage", "garbage"),
    ] {
        let r = api.devices(token).await;
        assert_eq!(r.code(), "token_invalid", "{what}: {}", r.body);
        r.assert_problem(StatusCode::UNAUTHORIZED, "token_invalid");
    }
    let none = api
        .send(
            Request::get("/api/v1/devices")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    none.assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert!(none.headers.contains_key(header::WWW_AUTHENTICATE));
}

async fn access_tokens_verify_with_the_published_public_key_alone(t: &TestStore) {
    let api = api(t).await;
    let (access, _) = api.tokens("w1", WORKER_PW, "phone-1").await;
    let (jwks, reply) = published_keys(&api).await;
    assert_eq!(reply.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(jwks.keys.len(), 1);
    let published = &reply.body["keys"][0];
    for (field, value) in [
        ("kty", "OKP"),
        ("crv", "Ed25519"),
        ("alg", "EdDSA"),
        ("use", "sig"),
    ] {
        assert_eq!(published[field], json!(value), "{field}");
    }
    assert!(
        published.get("d").is_none(),
        "the private half is never published"
    );

    let (header, claims) = api.verified(&access, &Config::default().audience).await;
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(claims["sub"], json!("w1"));
    assert_eq!(claims["dev"], json!("phone-1"));
}

/// The public key of the Ed25519 key with seed `[seed; 32]`, as a phone sends it.
fn device_key(seed: u8) -> String {
    let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes())
}

async fn login_with_key(api: &Api, user: &str, pw: &str, device: &str, key: &str) -> Reply {
    api.post(
        "/api/v1/auth/login",
        json!({
            "username": user, "password": pw, "device_id": device,
            "device_name": "phone", "device_key": key,
        }),
    )
    .await
}

/// The claims of the grant in a login or refresh answer, checked as a hub checks them.
async fn grant_claims(api: &Api, answer: &Reply) -> serde_json::Value {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let grant = answer.body["offline_grant"].as_str().expect("a grant");
    let (header, claims) = api.verified(grant, "gridsync-offline").await;
    assert_eq!(header.typ.as_deref(), Some("gridsync-grant+jwt"));
    claims
}

async fn a_login_with_a_device_key_gets_an_offline_grant_the_published_keys_verify(t: &TestStore) {
    let api = api(t).await;
    let key = device_key(1);
    let answer = login_with_key(&api, "w1", WORKER_PW, "phone-1", &key).await;
    let claims = grant_claims(&api, &answer).await;
    assert_eq!(claims["sub"], json!("w1"));
    assert_eq!(claims["dev"], json!("phone-1"));
    assert_eq!(claims["dkey"], json!(key));
    assert_eq!(claims["role"], json!("grid_worker"));
    assert_eq!(claims["scope"], json!(path_of(G1)));
    // The hub of the grid's village takes it.
    assert_eq!(claims["units"], json!([path_of("v1")]));
    let life = claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat");
    assert_eq!(life, 14 * 24 * 60 * 60);
    let stored = api
        .store
        .device("phone-1")
        .await
        .expect("device")
        .expect("registered");
    assert_eq!(stored.public_key.as_deref(), Some(key.as_str()));

    let without = api.login("w1", WORKER_PW, "phone-2").await;
    assert_eq!(without.status, StatusCode::OK, "{}", without.body);
    assert_eq!(
        without.body["offline_grant"],
        json!(null),
        "no key, no grant"
    );
}

async fn grants_go_to_grid_workers_and_village_cadres_and_never_pass_for_access_tokens(
    t: &TestStore,
) {
    let api = api(t).await;
    add_user(
        t.store.as_ref(),
        "cadre",
        Role::VillageCadre,
        "v1",
        WORKER_PW,
        false,
    )
    .await;
    add_user(
        t.store.as_ref(),
        "staff",
        Role::TownshipStaff,
        "t1",
        WORKER_PW,
        false,
    )
    .await;
    let key = device_key(2);
    let cadre = login_with_key(&api, "cadre", WORKER_PW, "office-tablet", &key).await;
    let claims = grant_claims(&api, &cadre).await;
    assert_eq!(claims["role"], json!("village_cadre"));
    assert_eq!(claims["units"], json!([path_of("v1")]));

    // Township staff and admins work from offices the server reaches.
    for (user, pw, device) in [
        ("staff", WORKER_PW, "staff-pc"),
        ("admin", ADMIN_PW, "admin-pc"),
    ] {
        let r = login_with_key(&api, user, pw, device, &key).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["offline_grant"], json!(null), "{user}");
    }

    let grant = cadre.body["offline_grant"].as_str().expect("grant");
    api.devices(grant)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "token_invalid");
}

async fn a_malformed_device_key_is_refused_before_anything_is_stored(t: &TestStore) {
    let api = api(t).await;
    for bad in [
        "",
        "not base64!",
        &URL_SAFE_NO_PAD.encode([1u8; 31]),
        &URL_SAFE_NO_PAD.encode([1u8; 33]),
        &format!("{}=", device_key(1)),
    ] {
        login_with_key(&api, "w1", WORKER_PW, "phone-1", bad)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    }
    assert!(api.store.device("phone-1").await.expect("device").is_none());

    let (_, refresh) = api.tokens("w1", WORKER_PW, "phone-1").await;
    let r = api
        .post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": refresh, "device_key": "short" }),
        )
        .await;
    r.assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    // The refused refresh did not spend the token.
    assert_eq!(api.refresh(&refresh).await.status, StatusCode::OK);
}

async fn a_refresh_sets_a_missing_device_key_never_changes_it_and_a_retiring_phone_gets_no_grant(
    t: &TestStore,
) {
    let api = api(t).await;
    let (_, refresh) = api.tokens("w1", WORKER_PW, "phone-1").await;
    let with_key = |token: &str, key: &str| json!({ "refresh_token": token, "device_key": key });
    let first = api
        .post("/api/v1/auth/refresh", with_key(&refresh, &device_key(1)))
        .await;
    assert_eq!(
        grant_claims(&api, &first).await["dkey"],
        json!(device_key(1))
    );

    // Whoever holds a copy of the refresh token cannot bind a key of theirs.
    let (_, refresh) = pair(&first);
    let second = api
        .post("/api/v1/auth/refresh", with_key(&refresh, &device_key(9)))
        .await;
    assert_eq!(
        grant_claims(&api, &second).await["dkey"],
        json!(device_key(1))
    );

    // A login proves the user, who may give the device a new key.
    let again = login_with_key(&api, "w1", WORKER_PW, "phone-1", &device_key(9)).await;
    assert_eq!(
        grant_claims(&api, &again).await["dkey"],
        json!(device_key(9))
    );

    // A phone being handed in delivers to the server only: no grant.
    let (admin, _) = api.tokens("admin", ADMIN_PW, "admin-pc").await;
    let retired = api
        .call("POST", "/api/v1/devices/phone-1/retire", &admin, json!({}))
        .await;
    assert_eq!(retired.status, StatusCode::NO_CONTENT, "{}", retired.body);
    let (_, refresh) = pair(&again);
    let retiring = api.refresh(&refresh).await;
    assert_eq!(retiring.status, StatusCode::OK, "{}", retiring.body);
    assert_eq!(retiring.body["offline_grant"], json!(null));
}

async fn the_signed_revocation_list_names_recently_revoked_devices_and_disabled_accounts(
    t: &TestStore,
) {
    let api = api(t).await;
    let (admin, _) = api.tokens("admin", ADMIN_PW, "admin-pc").await;
    let (worker, _) = api.tokens("w1", WORKER_PW, "phone-1").await;
    api.tokens("w1", WORKER_PW, "lost-phone").await;
    api.tokens("w1", WORKER_PW, "old-phone").await;
    api.tokens("w2", WORKER_PW, "phone-2").await;
    let revoked = api
        .call(
            "POST",
            "/api/v1/devices/lost-phone/revoke",
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    // Revoked longer ago than a grant lives: no grant of it is left to refuse.
    let long_ago = gridsync_server::clock::now() - 15 * 24 * 60 * 60;
    execute_sql(
        &t.url,
        &format!("UPDATE devices SET revoked_at = {long_ago} WHERE id = 'old-phone'"),
    )
    .await;
    execute_sql(&t.url, "UPDATE users SET disabled = TRUE WHERE id = 'w2'").await;

    api.get("/api/v1/revocations", &worker)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let r = api.get("/api/v1/revocations", &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let list = r.body["revocations"].as_str().expect("a JWS");
    let (header, claims) = api.verified(list, "gridsync-offline").await;
    assert_eq!(header.typ.as_deref(), Some("gridsync-revocations+jwt"));
    let devices: Vec<&str> = claims["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| d["id"].as_str().expect("id"))
        .collect();
    assert_eq!(devices, ["lost-phone"]);
    assert_eq!(claims["disabled_users"], json!(["w2"]));
    api.devices(list)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "token_invalid");
}

#[tokio::test]
async fn upgrading_a_sqlite_database_replaces_its_hs256_secrets_with_an_ed25519_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    let before = migrations_before_ed25519("sqlite").await;
    before.run_to(15, &mut conn).await.expect("migrate to 0015");
    sqlx::query(INSERT_HS256_SECRET)
        .bind(vec![9u8; 64])
        .execute(&mut conn)
        .await
        .expect("an HS256 secret");
    conn.close().await.expect("close");
    assert_signs_with_a_new_ed25519_key(&url).await;
}

#[tokio::test]
async fn upgrading_a_postgres_database_replaces_its_hs256_secrets_with_an_ed25519_key() {
    let url = gridsync_fixtures::databases::fresh_postgres_database("gridsync_keys").await;
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    let before = migrations_before_ed25519("postgres").await;
    before.run_to(15, &mut conn).await.expect("migrate to 0015");
    sqlx::query(INSERT_HS256_SECRET)
        .bind(vec![9u8; 64])
        .execute(&mut conn)
        .await
        .expect("an HS256 secret");
    conn.close().await.expect("close");
    assert_signs_with_a_new_ed25519_key(&url).await;
}

/// A secret as the versions that signed with HS256 stored it.
const INSERT_HS256_SECRET: &str =
    "INSERT INTO signing_keys (kid, secret, created_at) VALUES ('hs256-key', $1, 1)";

/// The migrations of `backend`; run to 0015, they leave a database as the last version that
/// signed with HS256 did.
async fn migrations_before_ed25519(backend: &str) -> sqlx::migrate::Migrator {
    let folder =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../migrations/{backend}"));
    sqlx::migrate::Migrator::new(folder)
        .await
        .expect("migrations")
}

/// Opened by this version, the database behind `url` holds no HS256 secret, and a new Ed25519
/// key signs and verifies.
async fn assert_signs_with_a_new_ed25519_key(url: &str) {
    let store = gridsync_server::store::open(url)
        .await
        .expect("open and upgrade");
    let state = gridsync_server::http::AppState::new(store.clone(), Config::default())
        .await
        .expect("the server starts");
    let keys = store.signing_keys().await.expect("keys");
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_ne!(keys[0].kid, "hs256-key");
    assert_eq!(keys[0].secret.len(), 32, "an Ed25519 seed");
    let token = state.keys.issue("w1", "phone-1", "s").await.expect("issue");
    let header = jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), Some(keys[0].kid.as_str()));
    assert!(state.keys.verify(&token).await.is_ok());
}

/// The (access, refresh) tokens of a successful login or refresh.
fn pair(r: &Reply) -> (String, String) {
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let token = |name: &str| r.body[name].as_str().expect(name).to_owned();
    (token("access_token"), token("refresh_token"))
}

async fn a_refresh_rotates_the_pair_and_reusing_a_spent_token_revokes_the_session(t: &TestStore) {
    let api = api(t).await;
    let (_, first) = api.tokens("w1", WORKER_PW, "phone-1").await;
    let (access, second) = pair(&api.refresh(&first).await);
    assert_ne!(first, second);
    assert_eq!(api.devices(&access).await.status, StatusCode::OK);
    let (_, third) = pair(&api.refresh(&second).await);
    let (_, fourth) = pair(&api.refresh(&third).await);

    // Two generations back: its successor was used long since.
    api.refresh(&second)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "refresh_reused");
    for token in [&fourth, &third, &first] {
        api.refresh(token)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "refresh_invalid");
    }
    api.refresh("never issued")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "refresh_invalid");
}

async fn a_refresh_whose_answer_was_lost_is_answered_again_and_the_unseen_token_dies(
    t: &TestStore,
) {
    let api = api(t).await;
    let (_, first) = api.tokens("w1", WORKER_PW, "phone-1").await;
    // The server spends `first`; its answer never reaches the phone.
    let (_, lost) = pair(&api.refresh(&first).await);
    let (access, retried) = pair(&api.refresh(&first).await);
    assert_ne!(retried, lost);
    assert_eq!(api.devices(&access).await.status, StatusCode::OK);
    let (_, next) = pair(&api.refresh(&retried).await);
    assert_eq!(
        api.refresh(&next).await.status,
        StatusCode::OK,
        "the session goes on"
    );
    let log = api.store.audit_log(10).await.expect("audit");
    let grace: Vec<_> = log.iter().filter(|e| e.action == "refresh_grace").collect();
    assert_eq!(grace.len(), 1, "{log:?}");
    assert_eq!(grace[0].device_id.as_deref(), Some("phone-1"));

    // The lost token turning up after all means someone else has it.
    api.refresh(&lost)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "refresh_reused");
    api.refresh(&next)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "refresh_invalid");
}

async fn a_retry_after_the_grace_window_revokes_the_session(t: &TestStore) {
    let api = api(t).await;
    let (_, first) = api.tokens("w1", WORKER_PW, "phone-1").await;
    let (_, lost) = pair(&api.refresh(&first).await);
    execute_sql(
        &t.url,
        &format!(
            "UPDATE refresh_tokens SET used_at = used_at - {} WHERE used_at IS NOT NULL",
            gridsync_server::auth::refresh::GRACE_SECS + 1
        ),
    )
    .await;
    api.refresh(&first)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "refresh_reused");
    api.refresh(&lost)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "refresh_invalid");
}

async fn a_retry_after_the_successor_was_used_revokes_the_session(t: &TestStore) {
    let api = api(t).await;
    let (_, first) = api.tokens("w1", WORKER_PW, "phone-1").await;
    let (_, second) = pair(&api.refresh(&first).await);
    let (_, third) = pair(&api.refresh(&second).await);
    api.refresh(&first)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "refresh_reused");
    api.refresh(&third)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "refresh_invalid");
}

async fn a_second_grace_retry_revokes_the_session(t: &TestStore) {
    let api = api(t).await;
    let (_, first) = api.tokens("w1", WORKER_PW, "phone-1").await;
    pair(&api.refresh(&first).await);
    let (_, retried) = pair(&api.refresh(&first).await);
    api.refresh(&first)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "refresh_reused");
    api.refresh(&retried)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "refresh_invalid");
}

async fn logout_ends_the_session_and_its_access_token_at_once(t: &TestStore) {
    let api = api(t).await;
    let (access, refresh) = api.tokens("w1", WORKER_PW, "phone-1").await;
    let (other_access, other_session) = api.tokens("w1", WORKER_PW, "phone-2").await;
    let r = api
        .send(authed("POST", "/api/v1/auth/logout", &access))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    api.devices(&access)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "session_ended");
    api.refresh(&refresh)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "refresh_invalid");
    assert_eq!(
        api.devices(&other_access).await.status,
        StatusCode::OK,
        "other sessions go on"
    );
    assert_eq!(api.refresh(&other_session).await.status, StatusCode::OK);
    // The device stays registered: it logs in again as itself.
    let (again, _) = api.tokens("w1", WORKER_PW, "phone-1").await;
    assert_eq!(api.devices(&again).await.status, StatusCode::OK);
}

async fn a_reused_refresh_token_ends_the_sessions_access_token_too(t: &TestStore) {
    let api = api(t).await;
    let (_, first) = api.tokens("w1", WORKER_PW, "phone-1").await;
    let (_, second) = pair(&api.refresh(&first).await);
    let (access, _) = pair(&api.refresh(&second).await);
    api.refresh(&first)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "refresh_reused");
    api.devices(&access)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "session_ended");
}

async fn a_revoked_device_is_refused_with_device_revoked_on_its_next_request(t: &TestStore) {
    let api = api(t).await;
    let (phone, refresh) = api.tokens("w1", WORKER_PW, "lost-phone").await;
    let (admin, _) = api.tokens("admin", ADMIN_PW, "admin-pc").await;
    let r = api
        .send(authed("POST", "/api/v1/devices/lost-phone/revoke", &admin))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);

    api.devices(&phone)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "device_revoked");
    api.refresh(&refresh)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "refresh_invalid");
    api.login("w1", WORKER_PW, "lost-phone")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "device_revoked");
    // After wiping itself the app comes back under a new device id.
    api.tokens("w1", WORKER_PW, "new-install").await;
}

async fn a_worker_lists_and_revokes_only_their_own_devices_and_an_admin_any(t: &TestStore) {
    let api = api(t).await;
    let (w1, _) = api.tokens("w1", WORKER_PW, "w1-phone").await;
    let (w2, _) = api.tokens("w2", WORKER_PW, "w2-phone").await;
    let (admin, _) = api.tokens("admin", ADMIN_PW, "admin-pc").await;

    let ids = |r: &Reply| -> Vec<String> {
        r.body
            .as_array()
            .expect("list")
            .iter()
            .map(|d| d["id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(ids(&api.devices(&w1).await), ["w1-phone"]);
    let mut all = ids(&api.devices(&admin).await);
    all.sort();
    assert_eq!(all, ["admin-pc", "w1-phone", "w2-phone"]);

    api.send(authed("POST", "/api/v1/devices/w2-phone/revoke", &w1))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    api.send(authed("POST", "/api/v1/devices/no-such/revoke", &admin))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        api.devices(&w2).await.status,
        StatusCode::OK,
        "w2 untouched"
    );

    let r = api
        .send(authed("POST", "/api/v1/devices/w1-phone/revoke", &w1))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    api.devices(&w1)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "device_revoked");
    let log = api.store.audit_log(10).await.expect("audit");
    assert!(log.iter().any(|e| e.action == "device_revoke"));
}

async fn a_device_registered_to_another_user_is_refused_at_login(t: &TestStore) {
    let api = api(t).await;
    api.tokens("w1", WORKER_PW, "shared").await;
    api.login("w2", WORKER_PW, "shared")
        .await
        .assert_problem(StatusCode::CONFLICT, "device_taken");
    let device = api
        .store
        .device("shared")
        .await
        .expect("device")
        .expect("kept");
    assert_eq!(device.user_id, "w1");
}

/// A login request from `peer`, forwarded for `forwarded_for` when given.
fn attempt(
    user: &str,
    pw: &str,
    device: &str,
    peer: &str,
    forwarded_for: Option<&str>,
) -> Request<Body> {
    let mut req = with_addr(
        json_request(
            "/api/v1/auth/login",
            &json!({ "username": user, "password": pw, "device_id": device, "device_name": "n" }),
        ),
        peer,
    );
    if let Some(value) = forwarded_for {
        req.headers_mut().insert(
            "x-forwarded-for",
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    req
}

fn retry_after(r: &Reply) -> u64 {
    r.headers[header::RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds")
}

/// The app over the seeded store of [`api`], behind a reverse proxy at 10.0.0.1.
async fn api_behind_proxy(t: &TestStore) -> Api {
    api(t).await;
    let config = Config {
        trusted_proxies: TrustedProxies::new(vec!["10.0.0.1".parse().expect("address")]),
        ..Config::default()
    };
    api_with_config(t, config).await
}

async fn failed_logins_past_the_limit_are_answered_429_with_retry_after(t: &TestStore) {
    let api = api(t).await;
    api.tokens("w1", WORKER_PW, "w1-phone").await;
    // Per account, whatever the address: its logins from new devices then wait, even with the
    // right password, while the phone it already uses logs in.
    for i in 0..5 {
        let r = api
            .send(attempt(
                "w1",
                "wrong",
                "d",
                &format!("198.51.100.{i}:1"),
                None,
            ))
            .await;
        r.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let r = api
        .send(attempt("w1", WORKER_PW, "d", "198.51.100.9:1", None))
        .await;
    r.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let wait = retry_after(&r);
    assert!((1..=900).contains(&wait), "Retry-After {wait}");
    let known = api
        .send(attempt("w1", WORKER_PW, "w1-phone", "198.51.100.9:1", None))
        .await;
    assert_eq!(known.status, StatusCode::OK, "{}", known.body);

    // Per address, whatever the username and device.
    api.tokens("w2", WORKER_PW, "w2-phone").await;
    for i in 0..5 {
        let r = api
            .send(attempt(
                &format!("guess{i}"),
                "x",
                "d",
                "203.0.113.7:5",
                None,
            ))
            .await;
        r.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    for device in ["d", "w2-phone"] {
        api.send(attempt("w2", WORKER_PW, device, "203.0.113.7:6", None))
            .await
            .assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    }
    let ok = api
        .send(attempt("w2", WORKER_PW, "d", "203.0.113.8:6", None))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}

async fn made_up_usernames_from_one_client_behind_the_proxy_do_not_lock_out_another(t: &TestStore) {
    let api = api_behind_proxy(t).await;
    for i in 0..5 {
        api.send(attempt(
            &format!("nobody{i}"),
            "x",
            "d",
            "10.0.0.1:4000",
            Some("198.51.100.1"),
        ))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    api.send(attempt(
        "w1",
        WORKER_PW,
        "phone",
        "10.0.0.1:4001",
        Some("198.51.100.1"),
    ))
    .await
    .assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let other = api
        .send(attempt(
            "w1",
            WORKER_PW,
            "phone",
            "10.0.0.1:4002",
            Some("198.51.100.2"),
        ))
        .await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
}

async fn an_admins_wrong_passwords_do_not_stop_their_login_from_a_known_device(t: &TestStore) {
    let api = api(t).await;
    api.tokens("admin", ADMIN_PW, "admin-pc").await;
    for _ in 0..5 {
        api.send(attempt(
            "admin",
            "guess",
            "attacker",
            "203.0.113.66:1",
            None,
        ))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let known = api
        .send(attempt("admin", ADMIN_PW, "admin-pc", "192.0.2.50:1", None))
        .await;
    assert_eq!(known.status, StatusCode::OK, "{}", known.body);
    // A new device waits out the backoff, right password or not.
    let new = api
        .send(attempt("admin", ADMIN_PW, "new-pc", "192.0.2.50:2", None))
        .await;
    new.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!((1..=900).contains(&retry_after(&new)));
    // A revoked device is no known device.
    let (admin, _) = pair(&known);
    let r = api
        .send(authed("POST", "/api/v1/devices/admin-pc/revoke", &admin))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    api.send(attempt("admin", ADMIN_PW, "admin-pc", "192.0.2.50:3", None))
        .await
        .assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

async fn a_forwarded_for_header_cannot_dodge_the_address_limit(t: &TestStore) {
    let api = api_behind_proxy(t).await;
    // Sent straight to the server, not through the proxy: the header is the client's own.
    for i in 0..5 {
        let xff = format!("198.51.100.{i}");
        api.send(attempt(
            &format!("guess{i}"),
            "x",
            "d",
            "203.0.113.9:1",
            Some(&xff),
        ))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    api.send(attempt(
        "w1",
        WORKER_PW,
        "d",
        "203.0.113.9:1",
        Some("198.51.100.77"),
    ))
    .await
    .assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");

    // Through the proxy: what the client wrote left of the address the proxy appended.
    for i in 0..5 {
        let xff = format!("192.0.2.{i}, 198.51.100.8");
        api.send(attempt(
            &format!("other{i}"),
            "x",
            "d",
            "10.0.0.1:1",
            Some(&xff),
        ))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    api.send(attempt(
        "w2",
        WORKER_PW,
        "d",
        "10.0.0.1:1",
        Some("192.0.2.200, 198.51.100.8"),
    ))
    .await
    .assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let ok = api
        .send(attempt(
            "w2",
            WORKER_PW,
            "d",
            "10.0.0.1:1",
            Some("198.51.100.9"),
        ))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    // A header the proxy mangled is no error: the proxy's own address is counted.
    api.send(attempt(
        "nobody",
        "x",
        "d",
        "10.0.0.1:1",
        Some("unknown, ::zz"),
    ))
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

async fn a_burst_of_parallel_guesses_gets_no_more_tries_than_the_limit(t: &TestStore) {
    let api = api(t).await;
    let replies = futures_util::future::join_all((0..20).map(|i| {
        api.send(attempt(
            "w1",
            "wrong",
            "d",
            &format!("198.51.100.{i}:1"),
            None,
        ))
    }))
    .await;
    let count = |status| replies.iter().filter(|r| r.status == status).count();
    assert_eq!(
        (
            count(StatusCode::UNAUTHORIZED),
            count(StatusCode::TOO_MANY_REQUESTS)
        ),
        (5, 15)
    );
}

const NEW_PW: &str = "a new worker password";

async fn an_admins_password_reset_ends_every_session_of_the_user_and_keeps_the_devices(
    t: &TestStore,
) {
    let api = api(t).await;
    let (admin, _) = api.tokens("admin", ADMIN_PW, "admin-pc").await;
    let (phone, phone_refresh) = api.tokens("w1", WORKER_PW, "phone-1").await;
    let (again, _) = api.tokens("w1", WORKER_PW, "phone-1").await;
    let (tablet, tablet_refresh) = api.tokens("w1", WORKER_PW, "tablet").await;
    let (w2, _) = api.tokens("w2", WORKER_PW, "w2-phone").await;

    let r = api
        .call(
            "PATCH",
            "/api/v1/users/w1",
            &admin,
            json!({ "password": NEW_PW }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["ended_sessions"], json!(3));
    assert_eq!(r.body["retiring_devices"], json!([]));
    for access in [&phone, &again, &tablet] {
        api.devices(access)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "session_ended");
    }
    for refresh in [&phone_refresh, &tablet_refresh] {
        api.refresh(refresh)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "refresh_invalid");
    }
    assert_eq!(
        api.devices(&w2).await.status,
        StatusCode::OK,
        "w2 untouched"
    );
    assert_eq!(api.devices(&admin).await.status, StatusCode::OK);
    // Hubs refuse the grants those sessions came with.
    let list = api.get("/api/v1/revocations", &admin).await.ok();
    let (_, claims) = api
        .verified(
            list["revocations"].as_str().expect("a JWS"),
            "gridsync-offline",
        )
        .await;
    let changed = &claims["changed_passwords"];
    assert_eq!(changed.as_array().map(Vec::len), Some(1), "{changed}");
    assert_eq!(changed[0]["user_id"], "w1");
    assert!(changed[0]["changed_at"].as_i64() >= Some(gridsync_server::clock::now() - 60));

    // The devices stay: the phone logs in again as itself, with the new password only.
    api.login("w1", WORKER_PW, "phone-1")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let (phone, _) = api.tokens("w1", NEW_PW, "phone-1").await;
    let devices = api.devices(&phone).await;
    assert_eq!(devices.body.as_array().expect("list").len(), 2);
    for d in devices.body.as_array().expect("list") {
        assert_eq!(d["state"], json!("active"), "{d}");
    }
    let log = api.store.audit_log(10).await.expect("audit");
    let update = log
        .iter()
        .find(|e| e.action == "user_update")
        .expect("audited");
    assert_eq!(update.detail["ended_sessions"], json!(3));
}

async fn an_admin_changing_their_own_password_keeps_the_session_they_do_it_in(t: &TestStore) {
    let api = api(t).await;
    let (pc, _) = api.tokens("admin", ADMIN_PW, "admin-pc").await;
    let (laptop, _) = api.tokens("admin", ADMIN_PW, "admin-laptop").await;
    let r = api
        .call(
            "PATCH",
            "/api/v1/users/admin",
            &pc,
            json!({ "password": NEW_PW }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["ended_sessions"], json!(1));
    assert_eq!(api.devices(&pc).await.status, StatusCode::OK);
    api.devices(&laptop)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "session_ended");
}

async fn change_own_password(api: &Api, access: &str, current: &str, new: &str) -> Reply {
    api.call(
        "POST",
        "/api/v1/auth/password",
        access,
        json!({ "current_password": current, "new_password": new }),
    )
    .await
}

async fn changing_ones_own_password_ends_every_other_session_and_keeps_this_one(t: &TestStore) {
    let api = api(t).await;
    let (phone, phone_refresh) = api.tokens("w1", WORKER_PW, "phone-1").await;
    let (old, old_refresh) = api.tokens("w1", WORKER_PW, "phone-1").await;
    let (tablet, tablet_refresh) = api.tokens("w1", WORKER_PW, "tablet").await;
    let (w2, _) = api.tokens("w2", WORKER_PW, "w2-phone").await;

    change_own_password(&api, &phone, "not it", NEW_PW)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    change_own_password(&api, &phone, WORKER_PW, "short")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(
        api.devices(&tablet).await.status,
        StatusCode::OK,
        "nothing changed"
    );

    let r = change_own_password(&api, &phone, WORKER_PW, NEW_PW).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({ "ended_sessions": 2 }));
    assert_eq!(
        api.devices(&phone).await.status,
        StatusCode::OK,
        "this session goes on"
    );
    assert_eq!(api.refresh(&phone_refresh).await.status, StatusCode::OK);
    for access in [&old, &tablet] {
        api.devices(access)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "session_ended");
    }
    for refresh in [&old_refresh, &tablet_refresh] {
        api.refresh(refresh)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "refresh_invalid");
    }
    assert_eq!(api.devices(&w2).await.status, StatusCode::OK);
    api.login("w1", WORKER_PW, "tablet")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    api.tokens("w1", NEW_PW, "tablet").await;
    let log = api.store.audit_log(10).await.expect("audit");
    let change = log
        .iter()
        .find(|e| e.action == "password_change")
        .expect("audited");
    assert_eq!(
        (change.user_id.as_deref(), change.device_id.as_deref()),
        (Some("w1"), Some("phone-1"))
    );
    assert_eq!(change.detail["ended_sessions"], json!(2));
    assert!(!change.detail.to_string().contains(NEW_PW));
}

async fn wrong_current_passwords_count_against_the_login_throttle(t: &TestStore) {
    let api = api(t).await;
    let (phone, _) = api.tokens("w1", WORKER_PW, "phone-1").await;
    for _ in 0..5 {
        change_own_password(&api, &phone, "guess", NEW_PW)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let r = change_own_password(&api, &phone, WORKER_PW, NEW_PW).await;
    r.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!((1..=900).contains(&retry_after(&r)));
    assert_eq!(
        api.devices(&phone).await.status,
        StatusCode::OK,
        "still logged in"
    );
}

async fn malformed_json_and_unknown_fields_are_answered_as_problem_details(t: &TestStore) {
    let api = api(t).await;
    let raw = |body: &str| {
        Request::post("/api/v1/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned()))
            .expect("request")
    };
    api.send(raw("{\"username\": "))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_json");
    api.post(
        "/api/v1/auth/login",
        json!({ "username": "w1", "password": WORKER_PW, "device_id": "d", "device_name": "n", "role": "district_admin" }),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "invalid_json");
    api.post("/api/v1/auth/login", json!({ "username": "w1" }))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_json");
    api.post(
        "/api/v1/auth/login",
        json!({ "username": "w1", "password": WORKER_PW, "device_id": " ", "device_name": "n" }),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    // A phone chooses its id and name; operators see them later in the console and terminal.
    for (id, name) in [("d\u{1b}[2J", "n"), ("d", "n\u{7}"), ("d", "n\u{0}")] {
        api.post(
            "/api/v1/auth/login",
            json!({ "username": "w1", "password": WORKER_PW, "device_id": id, "device_name": name }),
        )
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
        assert!(
            t.store.device(id).await.expect("read").is_none(),
            "{id:?} stored"
        );
    }
    api.send(
        Request::post("/api/v1/auth/refresh")
            .body(Body::from("{}"))
            .expect("request"),
    )
    .await
    .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    api.send(
        Request::get("/api/v1/nothing-here")
            .body(Body::empty())
            .expect("request"),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

async fn healthz_and_readyz_answer_ok_while_the_database_is_up(t: &TestStore) {
    let api = api_over(t).await;
    for path in ["/healthz", "/readyz"] {
        let r = api
            .send(Request::get(path).body(Body::empty()).expect("request"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    }
}

async fn the_first_start_creates_one_admin_with_the_given_password(t: &TestStore) {
    let made = bootstrap::first_start(t.store.as_ref(), Some("from env".into()))
        .await
        .expect("first start")
        .expect("an admin is made");
    assert_eq!(made.username, "admin");
    assert!(made.generated_password.is_none());
    let root = t
        .store
        .org_unit("district")
        .await
        .expect("unit")
        .expect("root");
    assert!(root.parent_id.is_none());

    let again = bootstrap::first_start(t.store.as_ref(), Some("other".into()))
        .await
        .expect("second start");
    assert!(again.is_none());
    assert_eq!(t.store.count_users().await.expect("count"), 1);

    let api = api_over(t).await;
    let (token, _) = api.tokens("admin", "from env", "admin-pc").await;
    assert_eq!(api.devices(&token).await.status, StatusCode::OK);
    api.login("admin", "other", "admin-pc")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

async fn the_first_start_generates_a_password_and_keeps_an_existing_org_root(t: &TestStore) {
    seed_org(t.store.as_ref()).await;
    let made = bootstrap::first_start(t.store.as_ref(), None)
        .await
        .expect("first start")
        .expect("an admin is made");
    let password = made.generated_password.expect("generated");
    assert!(password.len() >= 16);
    assert!(t.store.org_unit("district").await.expect("unit").is_none());
    let admin = t
        .store
        .user_by_username("admin")
        .await
        .expect("user")
        .expect("admin");
    assert_eq!(
        (admin.role, admin.org_unit_id.as_str()),
        (Role::DistrictAdmin, "d")
    );

    let api = api_over(t).await;
    api.tokens("admin", &password, "admin-pc").await;
}

async fn the_openapi_document_lists_the_auth_and_device_endpoints(t: &TestStore) {
    let api = api_over(t).await;
    let r = api
        .send(
            Request::get("/openapi.json")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    for path in [
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/password",
        "/api/v1/devices",
        "/api/v1/devices/{id}/revoke",
        "/healthz",
        "/readyz",
    ] {
        assert!(r.body["paths"][path].is_object(), "{path} missing");
    }
    assert!(r.body["components"]["securitySchemes"]["bearer"].is_object());
}

/// Readiness follows the database: with it gone, `/readyz` answers 503 while `/healthz` stays
/// 200. Only Postgres can be taken away from under a running store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_when_the_postgres_database_is_gone() {
    let t = postgres().await;
    let api = api_over(&t).await;
    let name = t.url.rsplit('/').next().expect("database name").to_owned();
    execute_sql(
        &postgres_url(),
        &format!("DROP DATABASE {name} WITH (FORCE)"),
    )
    .await;
    let ready = api
        .send(
            Request::get("/readyz")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    ready.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(
        !ready.body["detail"].as_str().unwrap_or("").contains(&name),
        "5xx answers hide internals"
    );
    let live = api
        .send(
            Request::get("/healthz")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(live.status, StatusCode::OK);
}
