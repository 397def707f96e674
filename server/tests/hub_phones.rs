//! A village office hub's API for phones, driven in-process beside a central app on the same
//! test database kind: a phone opens a session with its offline grant and its key's answer to
//! the hub's nonce, then syncs; grants of another unit, expired by the hub's time (which never
//! runs behind central's), of a revoked device, or at a hub out of touch for longer than a grant
//! lasts are refused, each saying why. Each phone gets back central's receipts for its own
//! relayed pushes only, and the signed revocation list that tells a revoked phone to wipe.

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use gridsync_core::attest;
use gridsync_core::protocol::{self, Pull, PullResult, PushResult};
use gridsync_core::signed::{KeySet, REVOCATIONS_TYP, RevokedDevices};
use gridsync_server::auth::hub as hub_token;
use gridsync_server::clock;
use gridsync_server::config::Config;
use gridsync_server::hub::central::Central;
use gridsync_server::hub::identity::{Enrolled, Identity};
use gridsync_server::hub::trust::Trust;
use gridsync_server::hub::{HubState, phones};
use gridsync_server::scope::Role;
use gridsync_server::sync::Ingest;
use jsonwebtoken::jwk::JwkSet;
use serde_json::{Value, json};
use support::http::*;
use support::*;

on_both_test_stores!(
    a_phone_opens_a_session_with_its_grant_and_the_nonce_and_syncs_at_the_hub,
    grants_of_another_unit_expired_by_the_hubs_time_or_at_a_hub_out_of_touch_are_refused,
    a_revoked_device_is_refused_once_the_hub_has_the_new_revocation_list,
    grants_issued_before_a_password_change_are_refused_once_the_hub_has_the_new_list,
    a_nonce_is_good_once_and_only_for_the_grants_key_and_pushes_must_be_the_sessions,
    a_hub_central_revoked_serves_no_phone_once_it_has_the_list,
    a_phone_uploads_a_photo_to_the_hub_which_queues_it_hands_it_out_and_hands_on_centrals_receipt,
);

const PW: &str = "test password";
const HUB_SEED: [u8; 32] = [3; 32];

/// Central (an app over the test store) with a hub enrolled for v1, and the hub itself over a
/// database of its own, trusting what central published at its last contact.
struct World {
    central: Api,
    hub: Api,
    state: HubState,
    _dir: tempfile::TempDir,
    _hub_db: TestStore,
}

async fn world(t: &TestStore) -> World {
    seed_org(t.store.as_ref()).await;
    for (id, role, unit) in [
        ("admin", Role::DistrictAdmin, "d"),
        ("w1", Role::GridWorker, G1),
        ("w3", Role::GridWorker, G3),
    ] {
        add_user(t.store.as_ref(), id, role, unit, PW, false).await;
    }
    let central = api_over(t).await;
    let admin = central.tokens("admin", PW, "admin-pc").await.0;
    let enrolled = central.enrol_hub(&admin, "v1", &HUB_SEED).await;
    let enrolled: Enrolled = serde_json::from_value(enrolled).expect("an enrolment");
    let issuer = Config::default().issuer;
    let identity = Identity::new("http://127.0.0.1:9", &issuer, enrolled, &HUB_SEED);

    let hub_db = sqlite().await;
    seed_org(hub_db.store.as_ref()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let trust = Arc::new(Trust::load(dir.path(), &issuer).expect("trust"));
    let state = HubState {
        central: Central::new(&identity.central).expect("central"),
        identity: Arc::new(identity),
        store: hub_db.store.clone(),
        ingest: Ingest::default(),
        trust,
        sessions: Arc::default(),
        poke: Arc::default(),
    };
    contact(&central, &state).await;
    let hub = Api {
        app: phones::routes().with_state(state.clone()),
        state: central.state.clone(),
        store: hub_db.store.clone(),
    };
    World {
        central,
        hub,
        state,
        _dir: dir,
        _hub_db: hub_db,
    }
}

/// What the hub keeps of a contact with central: its keys and revocation list, now.
async fn contact(central: &Api, hub: &HubState) {
    let token = hub_token::sign(
        &HUB_SEED,
        &hub.identity.hub_id,
        &hub.identity.issuer,
        clock::now(),
    )
    .expect("token");
    let jwks = central
        .send(
            Request::get("/.well-known/jwks.json")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    let jwks: JwkSet = serde_json::from_value(jwks.body).expect("a JWKS");
    let list = central.get("/api/v1/hubs/revocations", &token).await.ok();
    let list = list["revocations"].as_str().expect("a JWS").to_owned();
    hub.trust
        .keep(jwks, list, &hub.identity.hub_id)
        .expect("keep the contact");
}

/// Logs `user` in at central on `device` with the key of seed `[seed; 32]`; its grant.
async fn grant_of(central: &Api, user: &str, device: &str, seed: u8) -> String {
    let login = central.login_with_key(user, PW, device, seed).await;
    login["offline_grant"].as_str().expect("a grant").to_owned()
}

/// Asks the hub for a nonce and answers it with the key of seed `[seed; 32]`.
async fn open(hub: &Api, grant: &str, seed: u8) -> Reply {
    let nonce = hub.post("/hub/v1/nonce", json!({})).await.ok();
    let answer = attest::sign_challenge(
        &SigningKey::from_bytes(&[seed; 32]),
        nonce["hub_id"].as_str().expect("hub id"),
        nonce["nonce"].as_str().expect("nonce").as_bytes(),
    );
    hub.post(
        "/hub/v1/session",
        json!({
            "grant": grant, "nonce": nonce["nonce"],
            "signature": URL_SAFE_NO_PAD.encode(answer),
        }),
    )
    .await
}

/// PUTs `blob[range]` to the hub as a chunk of the photo `hash` of `doc`.
async fn put_chunk(
    hub: &Api,
    session: &str,
    doc: &gridsync_core::report::ReportDoc,
    hash: &str,
    blob: &[u8],
    range: std::ops::Range<usize>,
) -> RawReply {
    let request = Request::put(format!("/hub/v1/reports/{}/attachments/{hash}", doc.id()))
        .header(header::AUTHORIZATION, format!("Bearer {session}"))
        .header(header::CONTENT_TYPE, "image/png")
        .header(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{}", range.start, range.end - 1, blob.len()),
        )
        .body(Body::from(blob[range].to_vec()))
        .expect("request");
    hub.send_raw(request).await
}

fn session_of(reply: Reply) -> String {
    let body: Value = reply.ok();
    body["session"].as_str().expect("a session").to_owned()
}

async fn a_phone_opens_a_session_with_its_grant_and_the_nonce_and_syncs_at_the_hub(t: &TestStore) {
    let w = world(t).await;
    let grant = grant_of(&w.central, "w1", "phone-w1", 1).await;
    let session = session_of(open(&w.hub, &grant, 1).await);

    let mut doc = dispute(1, G1, "w1");
    let signed = attest::sign(
        &SigningKey::from_bytes(&[1; 32]),
        "phone-w1",
        push_all(&mut [&mut doc]),
    );
    let reply = w
        .hub
        .send_raw(frame_request(
            "/hub/v1/sync/push",
            &session,
            protocol::encode(&signed),
        ))
        .await;
    reply.assert_status(StatusCode::OK);
    let result: PushResult = protocol::decode(&reply.bytes).expect("a PushResult");
    assert!(is_acked(&result.docs[0].outcome), "{result:?}");
    // Queued for central exactly as the phone signed it.
    let queued = w.state.store.waiting_pushes(10).await.expect("queue");
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].frame, protocol::encode(&signed));

    let pull = Pull {
        since: 0,
        after: 0,
        byte_budget: 1 << 20,
        resend: vec![],
        takes_heads: false,
    };
    let other = grant_of(&w.central, "w1", "phone-w1-spare", 2).await;
    let spare = session_of(open(&w.hub, &other, 2).await);
    let reply = w
        .hub
        .send_raw(frame_request(
            "/hub/v1/sync/pull",
            &spare,
            protocol::encode(&pull),
        ))
        .await;
    reply.assert_status(StatusCode::OK);
    let page: PullResult = protocol::decode(&reply.bytes).expect("a PullResult");
    assert_eq!(page.docs.len(), 1);
    assert_eq!(page.docs[0].doc, doc.id());

    // Central's receipt for the relayed push goes back to that phone only, once.
    w.state
        .store
        .mark_relayed(queued[0].id, 1, Some("central's receipt"))
        .await
        .expect("relayed");
    let mine = w.hub.get("/hub/v1/receipts?after=0", &session).await.ok();
    assert_eq!(
        mine["receipts"],
        json!([{ "id": queued[0].id, "receipt": "central's receipt" }])
    );
    let after = format!("/hub/v1/receipts?after={}", queued[0].id);
    assert_eq!(
        w.hub.get(&after, &session).await.ok()["receipts"],
        json!([])
    );
    let theirs = w.hub.get("/hub/v1/receipts", &spare).await.ok();
    assert_eq!(theirs["receipts"], json!([]));
    w.hub
        .get("/hub/v1/receipts", "no session")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "token_invalid");

    // The hub's own audit log names each session it opened.
    let log = w.state.store.audit_log(10).await.expect("audit");
    let sessions: Vec<_> = log
        .iter()
        .filter(|e| e.action == "hub_session")
        .filter_map(|e| e.device_id.as_deref())
        .collect();
    assert_eq!(sessions, ["phone-w1-spare", "phone-w1"]);
}

async fn grants_of_another_unit_expired_by_the_hubs_time_or_at_a_hub_out_of_touch_are_refused(
    t: &TestStore,
) {
    let w = world(t).await;
    // w3 works in community c2; this hub serves village v1.
    let elsewhere = grant_of(&w.central, "w3", "phone-w3", 4).await;
    open(&w.hub, &elsewhere, 4)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "grant_refused");

    let grant = grant_of(&w.central, "w1", "phone-w1", 1).await;
    // Out of touch for longer than a grant lasts (14 days): the hub says so.
    let now = clock::now();
    w.state
        .trust
        .update(|c| c.last_contact = now - 15 * 24 * 60 * 60)
        .expect("update");
    open(&w.hub, &grant, 1)
        .await
        .assert_problem(StatusCode::SERVICE_UNAVAILABLE, "hub_out_of_touch");

    // Central once told the hub a time past the grant's end: setting the office PC's clock
    // back does not revive the grant.
    w.state
        .trust
        .update(|c| {
            c.last_contact = now;
            c.central_time = now + 15 * 24 * 60 * 60;
        })
        .expect("update");
    open(&w.hub, &grant, 1)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "grant_refused");

    // A grant for a device key it was not issued to, or no grant at all.
    w.state
        .trust
        .update(|c| c.central_time = now)
        .expect("update");
    open(&w.hub, "not.a.grant", 1)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "grant_refused");
}

async fn a_revoked_device_is_refused_once_the_hub_has_the_new_revocation_list(t: &TestStore) {
    let w = world(t).await;
    let grant = grant_of(&w.central, "w1", "phone-w1", 1).await;
    let admin = w.central.tokens("admin", PW, "admin-pc").await.0;
    w.central
        .call("POST", "/api/v1/devices/phone-w1/revoke", &admin, json!({}))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    // Until its next contact the hub cannot know.
    let session = session_of(open(&w.hub, &grant, 1).await);

    contact(&w.central, &w.state).await;
    open(&w.hub, &grant, 1)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "device_revoked");
    // The session it opened before ends too, at its next request.
    w.hub
        .get("/hub/v1/receipts", &session)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "device_revoked");
    w.hub
        .get("/hub/v1/receipts", &session)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "token_invalid");
    // The phone wipes itself only on central's signed word, which the hub hands on.
    let jwks = w
        .central
        .send(
            Request::get("/.well-known/jwks.json")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    let keys = KeySet::from_jwks(&serde_json::to_vec(&jwks.body).expect("JSON")).expect("keys");
    let list = w
        .hub
        .send(
            Request::get("/hub/v1/revocations")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    let list: RevokedDevices = keys
        .open(
            list.body["revocations"].as_str().expect("a JWS"),
            REVOCATIONS_TYP,
        )
        .expect("central signed it");
    assert!(list.devices.iter().any(|d| d.id == "phone-w1"));
}

/// Someone who learned a worker's password and logged in on a phone of their own keeps no way in
/// through a hub once the worker changes it: central ends that session, and the list ends its
/// grant. The worker's own phone logs in again with the new password and is let in.
async fn grants_issued_before_a_password_change_are_refused_once_the_hub_has_the_new_list(
    t: &TestStore,
) {
    let w = world(t).await;
    let intruder = grant_of(&w.central, "w1", "intruders-phone", 2).await;
    let (console, _) = w.central.tokens("w1", PW, "village-office-pc").await;
    w.central
        .call(
            "POST",
            "/api/v1/auth/password",
            &console,
            json!({ "current_password": PW, "new_password": "a new test password" }),
        )
        .await
        .assert_status(StatusCode::OK);
    // Until its next contact the hub cannot know.
    let session = session_of(open(&w.hub, &intruder, 2).await);
    w.hub
        .get("/hub/v1/receipts", &session)
        .await
        .assert_status(StatusCode::OK);

    contact(&w.central, &w.state).await;
    open(&w.hub, &intruder, 2)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "grant_refused");
    // The session opened before ends at its next request.
    w.hub
        .get("/hub/v1/receipts", &session)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "grant_refused");
    // A grant dated the second of the change counts as before it, so the new login waits.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let login = w
        .central
        .login_with_key("w1", "a new test password", "phone-w1", 1)
        .await;
    let renewed = login["offline_grant"].as_str().expect("a grant");
    open(&w.hub, renewed, 1).await.assert_status(StatusCode::OK);
}

async fn a_nonce_is_good_once_and_only_for_the_grants_key_and_pushes_must_be_the_sessions(
    t: &TestStore,
) {
    let w = world(t).await;
    let grant = grant_of(&w.central, "w1", "phone-w1", 1).await;
    // Someone who copied the grant but lacks the phone's key.
    open(&w.hub, &grant, 9)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "grant_refused");

    let nonce = w.hub.post("/hub/v1/nonce", json!({})).await.ok();
    let answer = attest::sign_challenge(
        &SigningKey::from_bytes(&[1; 32]),
        nonce["hub_id"].as_str().expect("hub id"),
        nonce["nonce"].as_str().expect("nonce").as_bytes(),
    );
    let body = json!({
        "grant": grant, "nonce": nonce["nonce"],
        "signature": URL_SAFE_NO_PAD.encode(answer),
    });
    let first = w.hub.post("/hub/v1/session", body.clone()).await;
    let session = session_of(first);
    w.hub
        .post("/hub/v1/session", body)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "grant_refused");

    // A push signed by another key, or without a session, is not taken.
    let mut doc = dispute(1, G1, "w1");
    let forged = attest::sign(
        &SigningKey::from_bytes(&[9; 32]),
        "phone-w1",
        push_all(&mut [&mut doc]),
    );
    w.hub
        .send_raw(frame_request(
            "/hub/v1/sync/push",
            &session,
            protocol::encode(&forged),
        ))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    w.hub
        .send_raw(frame_request(
            "/hub/v1/sync/push",
            "no-such-session",
            protocol::encode(&forged),
        ))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "token_invalid");
    assert!(
        w.state
            .store
            .waiting_pushes(10)
            .await
            .expect("queue")
            .is_empty()
    );
}

async fn a_hub_central_revoked_serves_no_phone_once_it_has_the_list(t: &TestStore) {
    let w = world(t).await;
    let grant = grant_of(&w.central, "w1", "phone-w1", 1).await;
    let session = session_of(open(&w.hub, &grant, 1).await);
    let admin = w.central.tokens("admin", PW, "admin-pc").await.0;
    w.central
        .call(
            "POST",
            &format!("/api/v1/hubs/{}/revoke", w.state.identity.hub_id),
            &admin,
            json!({}),
        )
        .await
        .assert_status(StatusCode::NO_CONTENT);
    // The hub itself may read nothing more from central; the list an admin reads names it.
    let list = w.central.get("/api/v1/revocations", &admin).await.ok();
    let jwks = w.state.trust.contact().jwks.expect("keys");
    w.state
        .trust
        .keep(
            jwks,
            list["revocations"].as_str().expect("a JWS").to_owned(),
            &w.state.identity.hub_id,
        )
        .expect("keep");

    w.hub
        .post("/hub/v1/nonce", json!({}))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "hub_revoked");
    let pull = Pull {
        since: 0,
        after: 0,
        byte_budget: 1 << 16,
        resend: vec![],
        takes_heads: false,
    };
    w.hub
        .send_raw(frame_request(
            "/hub/v1/sync/pull",
            &session,
            protocol::encode(&pull),
        ))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "hub_revoked");
}

async fn a_phone_uploads_a_photo_to_the_hub_which_queues_it_hands_it_out_and_hands_on_centrals_receipt(
    t: &TestStore,
) {
    let w = world(t).await;
    let grant = grant_of(&w.central, "w1", "phone-w1", 1).await;
    let session = session_of(open(&w.hub, &grant, 1).await);
    let blob: Vec<u8> = (0..5000).map(|i| (i * 7 % 256) as u8).collect();
    let mut doc = dispute(1, G1, "w1");
    let hash = attach(&mut doc, "w1", "site_photos", "image/png", &blob);
    let path = format!("/hub/v1/reports/{}/attachments/{hash}", doc.id());

    // Bytes before their report: the hub knows no such report yet.
    put_chunk(&w.hub, &session, &doc, &hash, &blob, 0..2000)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let signed = attest::sign(
        &SigningKey::from_bytes(&[1; 32]),
        "phone-w1",
        push_all(&mut [&mut doc]),
    );
    w.hub
        .send_raw(frame_request(
            "/hub/v1/sync/push",
            &session,
            protocol::encode(&signed),
        ))
        .await
        .assert_status(StatusCode::OK);

    // The same resumable protocol as central's.
    put_chunk(&w.hub, &session, &doc, &hash, &blob, 0..2000)
        .await
        .assert_status(StatusCode::ACCEPTED);
    let head = w.hub.send_raw(authed("HEAD", &path, &session)).await;
    assert_eq!(head.header("upload-offset"), Some("2000"));
    let done = put_chunk(&w.hub, &session, &doc, &hash, &blob, 2000..5000).await;
    done.assert_status(StatusCode::CREATED);
    assert_eq!(
        done.header("attachment-receipt"),
        None,
        "central holds nothing yet"
    );
    assert_eq!(
        w.state.store.read_blob(&hash, 0, 5000).await.expect("read"),
        Some(blob.clone())
    );

    // Handed out whole or in part, and each download is in the hub's audit log.
    let whole = w.hub.send_raw(authed("GET", &path, &session)).await;
    whole.assert_status(StatusCode::OK);
    assert_eq!(whole.bytes, blob);
    let mut ranged = authed("GET", &path, &session);
    ranged
        .headers_mut()
        .insert(header::RANGE, "bytes=100-199".parse().expect("header"));
    let part = w.hub.send_raw(ranged).await;
    part.assert_status(StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes, blob[100..200]);
    let reads = w.state.store.audit_log(20).await.expect("audit");
    let reads: Vec<_> = reads
        .iter()
        .filter(|e| e.action == "read_attachment")
        .map(|e| (e.device_id.as_deref(), e.detail["range"].clone()))
        .collect();
    assert_eq!(
        reads,
        [
            (Some("phone-w1"), json!("100-199")),
            (Some("phone-w1"), json!(null))
        ]
    );

    // Queued for central once, however often the phone sends it.
    put_chunk(&w.hub, &session, &doc, &hash, &blob, 0..5000)
        .await
        .assert_status(StatusCode::OK);
    let queued = w
        .state
        .store
        .waiting_attachments(0, 10)
        .await
        .expect("queue");
    assert_eq!(queued.len(), 1);
    assert_eq!(
        (queued[0].doc_id, queued[0].hash.as_str()),
        (doc.id(), hash.as_str())
    );

    // Once central holds it, its receipt goes with every answer about those bytes.
    w.state
        .store
        .mark_attachment_relayed(queued[0].id, 1, Some("central's receipt"))
        .await
        .expect("relayed");
    let head = w.hub.send_raw(authed("HEAD", &path, &session)).await;
    head.assert_status(StatusCode::OK);
    assert_eq!(head.header("upload-offset"), Some("5000"));
    assert_eq!(head.header("attachment-receipt"), Some("central's receipt"));
    let again = put_chunk(&w.hub, &session, &doc, &hash, &blob, 0..5000).await;
    assert_eq!(
        again.header("attachment-receipt"),
        Some("central's receipt")
    );

    w.hub
        .send_raw(authed("HEAD", &path, "no session"))
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
}
