//! Held work and device retirement over HTTP, driven through `app(state)`, on SQLite and
//! Postgres: bad input to the new endpoints gets a problem document and changes nothing stored.

mod support;

use axum::http::StatusCode;
use gridsync_core::protocol::{self, PushOutcome, PushResult};
use gridsync_server::scope::Role;
use serde_json::json;
use support::http::{Api, add_user, api_over, frame_request};
use support::*;

on_both_test_stores!(
    bad_decisions_on_held_work_are_problems_and_change_nothing,
    retiring_someone_elses_or_a_revoked_device_is_refused_and_changes_nothing,
);

const PW: &str = "held work password";

/// w1 works g1, c1 village v1 (g1, g2), c3 community c2 (g3); wg3 pushed a new report for g1,
/// which is held for g1's people.
async fn api_with_held_work(t: &TestStore) -> (Api, i64) {
    let store = t.store.as_ref();
    seed_org(store).await;
    for (id, role, unit) in [
        ("w1", Role::GridWorker, G1),
        ("wg3", Role::GridWorker, G3),
        ("c1", Role::VillageCadre, "v1"),
        ("c3", Role::VillageCadre, "c2"),
        ("admin", Role::DistrictAdmin, "d"),
    ] {
        add_user(store, id, role, unit, PW, false).await;
    }
    let api = api_over(t).await;
    let (wg3, _) = api.tokens("wg3", PW, "wg3-phone").await;
    let mut report = dispute(1, G1, "wg3");
    let (status, _, body) = api
        .raw(frame_request(
            "/api/v1/sync/push",
            &wg3,
            protocol::encode(&push_all(&mut [&mut report])),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let result: PushResult = protocol::decode(&body).expect("frame");
    assert!(matches!(result.docs[0].outcome, PushOutcome::Held { .. }));
    let (c1, _) = api.tokens("c1", PW, "c1-pc").await;
    let listed = api.get("/api/v1/held", &c1).await;
    assert_eq!(listed.status, StatusCode::OK);
    let id = listed.body["items"][0]["id"].as_i64().expect("an item");
    (api, id)
}

async fn bad_decisions_on_held_work_are_problems_and_change_nothing(t: &TestStore) {
    let (api, id) = api_with_held_work(t).await;
    let (c1, _) = api.tokens("c1", PW, "c1-pc").await;
    let (c3, _) = api.tokens("c3", PW, "c3-pc").await;
    let (w1, _) = api.tokens("w1", PW, "w1-phone").await;
    let before = fingerprint(&t.url).await;
    let merge = format!("/api/v1/held/{id}/merge");
    let decline = format!("/api/v1/held/{id}/decline");
    for (token, method, path, body, status, code) in [
        // Held work that does not exist, or outside the caller's scope, is not found alike.
        (
            &c1,
            "POST",
            "/api/v1/held/999999/merge".to_owned(),
            json!({}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &c1,
            "POST",
            "/api/v1/held/x/decline".to_owned(),
            json!({"note": "n"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &c3,
            "POST",
            merge.clone(),
            json!({}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &c3,
            "GET",
            format!("/api/v1/held/{id}"),
            json!(null),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        // A grid worker does not decide, even in their own grid.
        (
            &w1,
            "POST",
            merge.clone(),
            json!({}),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        // Declining needs a reason; notes are bounded text; bodies have one shape.
        (
            &c1,
            "POST",
            decline.clone(),
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
        ),
        (
            &c1,
            "POST",
            decline.clone(),
            json!({"note": "  "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
        ),
        (
            &c1,
            "POST",
            decline.clone(),
            json!({"note": "a\u{0}b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
        ),
        (
            &c1,
            "POST",
            decline.clone(),
            json!({"note": "x".repeat(2001)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
        ),
        (
            &c1,
            "POST",
            merge.clone(),
            json!({"note": 5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_json",
        ),
        (
            &c1,
            "POST",
            merge.clone(),
            json!({"values": {}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_json",
        ),
        // List parameters.
        (
            &c1,
            "GET",
            "/api/v1/held?state=lost".to_owned(),
            json!(null),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            &c1,
            "GET",
            "/api/v1/held?report=nope".to_owned(),
            json!(null),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            &c1,
            "GET",
            "/api/v1/held?before=one".to_owned(),
            json!(null),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            &c1,
            "GET",
            "/api/v1/held?limit=0".to_owned(),
            json!(null),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ] {
        let reply = if method == "GET" {
            api.get(&path, token).await
        } else {
            api.call(method, &path, token, body).await
        };
        let got = (reply.status, reply.code().to_owned());
        let bad_json = code == "invalid_json" && reply.status.is_client_error();
        assert!(
            got == (status, code.to_owned()) || bad_json,
            "{method} {path}: {got:?} {}",
            reply.body
        );
    }
    assert_eq!(fingerprint(&t.url).await, before, "nothing stored");
    let item = api.get(&format!("/api/v1/held/{id}"), &c1).await;
    assert_eq!(item.body["state"], json!("held"), "still waiting");

    // Decided once: the second decision is a conflict and changes nothing.
    let declined = api
        .call("POST", &decline, &c1, json!({"note": "not ours"}))
        .await;
    assert_eq!(declined.status, StatusCode::OK, "{}", declined.body);
    let before = fingerprint(&t.url).await;
    api.call("POST", &merge, &c1, json!({}))
        .await
        .assert_problem(StatusCode::CONFLICT, "conflict");
    assert_eq!(fingerprint(&t.url).await, before);
    assert!(
        t.store
            .document(&gridsync_core::DocId::from_u128(1))
            .await
            .expect("read")
            .is_none(),
        "a declined new report never becomes one"
    );
}

async fn retiring_someone_elses_or_a_revoked_device_is_refused_and_changes_nothing(t: &TestStore) {
    let (api, _) = api_with_held_work(t).await;
    let (w1, _) = api.tokens("w1", PW, "w1-phone").await;
    let (admin, _) = api.tokens("admin", PW, "admin-pc").await;
    api.call("POST", "/api/v1/devices/c1-pc/revoke", &admin, json!({}))
        .await;
    api.tokens("c1", PW, "c1-pc-2").await;
    let before = fingerprint(&t.url).await;
    for (token, path) in [
        (&w1, "/api/v1/devices/wg3-phone/retire"),
        (&w1, "/api/v1/devices/no-such-phone/retire"),
        (&admin, "/api/v1/devices/c1-pc/retire"),
        (&admin, "/api/v1/devices/%00/retire"),
    ] {
        let reply = api.call("POST", path, token, json!({})).await;
        assert!(
            matches!(
                reply.status,
                StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST
            ),
            "{path}: {} {}",
            reply.status,
            reply.body
        );
        assert!(
            !reply.code().is_empty(),
            "a problem document: {}",
            reply.body
        );
    }
    assert_eq!(fingerprint(&t.url).await, before, "nothing stored");
    for id in ["wg3-phone", "c1-pc"] {
        let device = t.store.device(id).await.expect("read").expect("device");
        assert_eq!(device.retiring_at, None, "{id}");
    }
}
