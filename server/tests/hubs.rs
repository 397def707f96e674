//! Village office hubs, registered by an admin and enrolled once by the office PC with the code,
//! driven through `app(state)` on SQLite and on Postgres.

mod support;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gridsync_server::scope::Role;
use serde_json::{Value, json};
use support::http::*;
use support::*;

on_both_test_stores!(
    an_admin_registers_a_hub_for_a_village_and_its_pc_enrols_once_with_the_code,
    only_admins_register_hubs_and_only_for_villages_and_communities,
    an_expired_or_revoked_hubs_code_enrols_nothing_and_the_revocation_list_names_the_hub,
);

const PW: &str = "test password";

async fn api(t: &TestStore) -> Api {
    seed_org(t.store.as_ref()).await;
    for (id, role, unit) in [
        ("admin", Role::DistrictAdmin, "d"),
        ("c1", Role::VillageCadre, "v1"),
        ("w1", Role::GridWorker, G1),
    ] {
        add_user(t.store.as_ref(), id, role, unit, PW, false).await;
    }
    api_over(t).await
}

async fn token(api: &Api, user: &str) -> String {
    api.tokens(user, PW, &format!("{user}-device")).await.0
}

/// The public key of the Ed25519 key with seed `[seed; 32]`, as a hub sends it.
fn identity_key(seed: u8) -> String {
    let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes())
}

async fn register(api: &Api, admin: &str, unit: &str) -> Reply {
    api.call(
        "POST",
        "/api/v1/hubs",
        admin,
        json!({ "unit_id": unit, "name": "上坪村委会" }),
    )
    .await
}

async fn enrol(api: &Api, code: &str, key: &str) -> Reply {
    api.post(
        "/api/v1/hubs/enrol",
        json!({ "enrolment_code": code, "identity_key": key }),
    )
    .await
}

/// The claims of a hub certificate, checked as a phone checks it: with the published keys.
async fn certificate_claims(api: &Api, certificate: &str) -> Value {
    let (header, claims) = api.verified(certificate, "gridsync-offline").await;
    assert_eq!(header.typ.as_deref(), Some("gridsync-hub+jwt"));
    claims
}

async fn an_admin_registers_a_hub_for_a_village_and_its_pc_enrols_once_with_the_code(
    t: &TestStore,
) {
    let api = api(t).await;
    let admin = token(&api, "admin").await;
    let registered = register(&api, &admin, "v1").await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    let hub_id = registered.body["hub"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let code = registered.body["enrolment_code"]
        .as_str()
        .expect("code")
        .to_owned();
    assert_eq!(registered.body["hub"]["identity_key"], json!(null));

    let key = identity_key(3);
    let enrolled = enrol(&api, &code, &key).await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    assert_eq!(enrolled.body["hub_id"], json!(hub_id));
    assert_eq!(enrolled.body["unit_path"], json!(path_of("v1")));
    let claims =
        certificate_claims(&api, enrolled.body["certificate"].as_str().expect("cert")).await;
    assert_eq!(claims["sub"], json!(hub_id));
    assert_eq!(claims["unit"], json!(path_of("v1")));
    assert_eq!(claims["hkey"], json!(key));
    // A certificate is no access token.
    api.devices(enrolled.body["certificate"].as_str().expect("cert"))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "token_invalid");

    // The code is spent: nobody enrols with it again, with this key or another.
    for again in [key.as_str(), &identity_key(4)] {
        enrol(&api, &code, again)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "enrolment_invalid");
    }
    let hubs = api.get("/api/v1/hubs", &admin).await.ok();
    assert_eq!(hubs[0]["identity_key"], json!(key));
    assert_eq!(hubs[0]["code_expires_at"], json!(null));
    assert!(hubs[0]["enrolled_at"].is_i64());
    let actions: Vec<String> = api
        .store
        .audit_log(10)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(actions.contains(&"hub_register".to_owned()), "{actions:?}");
    assert!(actions.contains(&"hub_enrol".to_owned()), "{actions:?}");
}

async fn only_admins_register_hubs_and_only_for_villages_and_communities(t: &TestStore) {
    let api = api(t).await;
    let admin = token(&api, "admin").await;
    for user in ["c1", "w1"] {
        let caller = token(&api, user).await;
        register(&api, &caller, "v1")
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
        api.get("/api/v1/hubs", &caller)
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
    for unit in [G1, "t1", "d"] {
        register(&api, &admin, unit)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    }
    register(&api, &admin, "nowhere")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let community = register(&api, &admin, "c2").await;
    assert_eq!(community.status, StatusCode::CREATED, "{}", community.body);
    let code = community.body["enrolment_code"].as_str().expect("code");
    for bad in ["", "short", &URL_SAFE_NO_PAD.encode([1u8; 31])] {
        enrol(&api, code, bad)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    }
    let hubs = api.get("/api/v1/hubs", &admin).await.ok();
    assert_eq!(hubs.as_array().expect("hubs").len(), 1);
    assert_eq!(
        hubs[0]["identity_key"],
        json!(null),
        "a refused enrolment stores nothing"
    );
}

async fn an_expired_or_revoked_hubs_code_enrols_nothing_and_the_revocation_list_names_the_hub(
    t: &TestStore,
) {
    let api = api(t).await;
    let admin = token(&api, "admin").await;
    let expired = register(&api, &admin, "v1").await;
    execute_sql(&t.url, "UPDATE hubs SET code_expires_at = 1").await;
    enrol(
        &api,
        expired.body["enrolment_code"].as_str().expect("code"),
        &identity_key(5),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "enrolment_invalid");

    let revoked = register(&api, &admin, "v1").await;
    let id = revoked.body["hub"]["id"].as_str().expect("id");
    let path = format!("/api/v1/hubs/{id}/revoke");
    let r = api.call("POST", &path, &admin, json!({})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    api.call("POST", &path, &admin, json!({}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    enrol(
        &api,
        revoked.body["enrolment_code"].as_str().expect("code"),
        &identity_key(6),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "enrolment_invalid");
    enrol(&api, "never issued", &identity_key(7))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "enrolment_invalid");

    // Phones learn it from the revocation list.
    let list = api.get("/api/v1/revocations", &admin).await.ok();
    let list = list["revocations"].as_str().expect("a JWS");
    let claims = list.split('.').nth(1).expect("claims");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).expect("base64")).expect("json");
    assert_eq!(claims["revoked_hubs"], json!([id]));
}
