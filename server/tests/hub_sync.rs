//! What a village office hub exchanges with central. Central takes a relayed push only as the
//! phone signed it, and then exactly as if the phone had pushed it itself; whatever a hub
//! alters, makes up, or carries for someone it does not serve is refused, and nothing of it is
//! stored. A hub pulls its unit's ordinary reports, never a restricted one. Driven through
//! `app(state)` on SQLite and on Postgres.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use ed25519_dalek::SigningKey;
use gridsync_core::attest;
use gridsync_core::protocol::{
    self, AttestedPush, Pull, PullResult, Push, PushOutcome, Relay, RelayResult,
};
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_fixtures::forms;
use gridsync_server::auth::hub;
use gridsync_server::catalogue::{self, Actor};
use gridsync_server::clock;
use gridsync_server::config::Config;
use gridsync_server::scope::Role;
use gridsync_server::store::{AuditEntry, AuditQuery, AuditRecord};
use serde_json::json;
use support::http::*;
use support::*;

on_both_test_stores!(
    a_relayed_push_is_stored_as_its_phones_own_and_answered_with_a_receipt,
    a_change_the_hub_altered_or_made_up_is_refused_and_nothing_of_the_push_is_stored,
    pushes_of_revoked_devices_unknown_devices_and_people_outside_the_hubs_unit_are_refused,
    a_drug_control_case_never_passes_through_a_hub,
    only_an_enrolled_unrevoked_hub_with_a_fresh_token_of_its_own_key_may_relay,
    a_hub_pulls_its_units_ordinary_reports_and_never_a_drug_control_case,
    a_hub_reads_the_signed_revocation_list_and_the_units_it_serves,
    a_hubs_signed_audit_log_is_kept_once_and_a_log_signed_by_another_key_not_at_all,
    a_hub_is_sent_the_report_kinds_again_only_once_the_catalogue_changed,
    a_hub_relays_a_photo_in_chunks_and_central_answers_with_its_signed_receipt,
    a_hub_can_relay_only_bytes_a_report_of_its_unit_names_and_never_a_drug_control_cases,
);

const PW: &str = "test password";
const HUB_SEED: [u8; 32] = [3; 32];

/// A village hub enrolled for v1, and the phones of w1 (grid g1, under v1) and w3 (grid g3, in
/// community c2), each logged in with a key of its own.
struct World {
    api: Api,
    hub_id: String,
    w1: SigningKey,
    w3: SigningKey,
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
    let api = api_over(t).await;
    let w1 = SigningKey::from_bytes(&[1; 32]);
    let w3 = SigningKey::from_bytes(&[4; 32]);
    for (user, seed) in [("w1", 1), ("w3", 4)] {
        api.login_with_key(user, PW, &format!("phone-{user}"), seed)
            .await;
    }
    let admin = admin_token(&api).await;
    let enrolled = api.enrol_hub(&admin, "v1", &HUB_SEED).await;
    World {
        api,
        hub_id: enrolled["hub_id"].as_str().expect("hub id").to_owned(),
        w1,
        w3,
    }
}

async fn admin_token(api: &Api) -> String {
    api.tokens("admin", PW, "admin-pc").await.0
}

impl World {
    /// The hub's token, signed with its key by a clock `skew` seconds off central's.
    fn hub_token(&self, skew: i64) -> String {
        hub::sign(
            &HUB_SEED,
            &self.hub_id,
            &Config::default().issuer,
            clock::now() + skew,
        )
        .expect("sign")
    }

    async fn relay_with(&self, token: &str, pushes: Vec<AttestedPush>) -> RawReply {
        self.api
            .send_raw(frame_request(
                "/api/v1/hubs/relay",
                token,
                protocol::encode(&Relay { pushes }),
            ))
            .await
    }

    async fn relay(&self, pushes: Vec<AttestedPush>) -> RelayResult {
        let reply = self.relay_with(&self.hub_token(0), pushes).await;
        reply.assert_status(StatusCode::OK);
        protocol::decode(&reply.bytes).expect("a RelayResult frame")
    }

    async fn stored(&self, doc: &ReportDoc) -> bool {
        self.api
            .state
            .store
            .document(&doc.id())
            .await
            .expect("read")
            .is_some()
    }
}

/// The attachment relay, as the hub calls it.
impl World {
    async fn put_relayed(
        &self,
        doc: &ReportDoc,
        hash: &str,
        blob: &[u8],
        range: std::ops::Range<usize>,
    ) -> RawReply {
        let request = Request::put(relayed_path(doc, hash))
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.hub_token(0)),
            )
            .header(header::CONTENT_TYPE, "image/png")
            .header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{}", range.start, range.end - 1, blob.len()),
            )
            .body(Body::from(blob[range].to_vec()))
            .expect("request");
        self.api.send_raw(request).await
    }

    async fn head_relayed(&self, doc: &ReportDoc, hash: &str) -> RawReply {
        self.api
            .send_raw(authed("HEAD", &relayed_path(doc, hash), &self.hub_token(0)))
            .await
    }
}

fn relayed_path(doc: &ReportDoc, hash: &str) -> String {
    format!("/api/v1/hubs/attachments/{}/{hash}", doc.id())
}

/// Bytes that vary, standing in for a photo.
fn photo(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8 ^ seed).collect()
}

/// The push of every change of `doc`, signed by `device` with `key`.
fn signed(key: &SigningKey, device: &str, doc: &mut ReportDoc) -> AttestedPush {
    attest::sign(key, device, push_all(&mut [doc]))
}

/// The one outcome of the one document of the one relayed push.
fn only_outcome(result: &RelayResult) -> &PushOutcome {
    assert_eq!(result.pushes.len(), 1);
    assert_eq!(result.pushes[0].result.docs.len(), 1);
    &result.pushes[0].result.docs[0].outcome
}

fn rejected_code(outcome: &PushOutcome) -> &str {
    match outcome {
        PushOutcome::Rejected { code, .. } => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn a_relayed_push_is_stored_as_its_phones_own_and_answered_with_a_receipt(t: &TestStore) {
    let w = world(t).await;
    let mut doc = dispute(1, G1, "w1");
    let attested = signed(&w.w1, "phone-w1", &mut doc);
    let result = w.relay(vec![attested.clone()]).await;
    assert!(is_acked(only_outcome(&result)), "{result:?}");

    let stored = w
        .api
        .state
        .store
        .document(&doc.id())
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.created_by, "w1");
    assert_eq!(stored.projection["fields"]["place"], json!("村口"));

    // The receipt is central's, checked with the published keys alone, and names the push by
    // its digest and the document at the heads the phone pushed.
    let receipt = result.pushes[0].receipt.as_deref().expect("a receipt");
    let (header, claims) = w.api.verified(receipt, "gridsync-offline").await;
    assert_eq!(header.typ.as_deref(), Some("gridsync-receipt+jwt"));
    assert_eq!(claims["hub"], json!(w.hub_id));
    assert_eq!(claims["dev"], json!("phone-w1"));
    assert_eq!(
        claims["push"],
        json!(hex::encode(attest::digest("phone-w1", &attested.push)))
    );
    let heads: Vec<String> = doc.heads().iter().map(|h| hex::encode(h.0)).collect();
    assert_eq!(
        claims["docs"],
        json!([{ "doc": doc.id().to_string(), "heads": heads, "held": false }])
    );

    // A hub that relays again after a lost answer changes nothing.
    let seq = stored.seq;
    let again = w.relay(vec![attested]).await;
    assert!(is_acked(only_outcome(&again)), "{again:?}");
    let after = w.api.state.store.document(&doc.id()).await.expect("read");
    assert_eq!(after.expect("stored").seq, seq);

    let audit = w
        .api
        .state
        .store
        .audit_page(&AuditQuery {
            action: Some("hub_relay".into()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .expect("audit");
    assert_eq!(audit.items.len(), 2);
    assert_eq!(audit.items[0].entry.detail["hub_id"], json!(w.hub_id));
    assert_eq!(audit.items[0].entry.detail["devices"], json!(["phone-w1"]));
}

async fn a_change_the_hub_altered_or_made_up_is_refused_and_nothing_of_the_push_is_stored(
    t: &TestStore,
) {
    let w = world(t).await;

    // A byte of a signed change altered: the place written, say.
    let mut doc = dispute(1, G1, "w1");
    let mut altered = signed(&w.w1, "phone-w1", &mut doc);
    let change = altered.push.docs[0].changes.last_mut().expect("a change");
    let at = change.len() - 1;
    change[at] ^= 1;
    let result = w.relay(vec![altered]).await;
    assert_eq!(rejected_code(only_outcome(&result)), "unattested");
    assert!(result.pushes[0].receipt.is_none());
    assert!(!w.stored(&doc).await);

    // A report the hub wrote itself in w1's name, signed with the hub's own key.
    let mut forged = dispute(2, G1, "w1");
    let hub_key = SigningKey::from_bytes(&HUB_SEED);
    let result = w
        .relay(vec![signed(&hub_key, "phone-w1", &mut forged)])
        .await;
    assert_eq!(rejected_code(only_outcome(&result)), "unattested");
    assert!(!w.stored(&forged).await);

    // A made-up change slipped in beside the phone's own: the whole push is refused.
    let mut genuine = dispute(3, G1, "w1");
    let mut padded = signed(&w.w1, "phone-w1", &mut genuine);
    let mut extra = genuine.clone();
    extra
        .set_field("place", &json!("别处"), &Editor::new("w1", 2_000))
        .expect("edit");
    let heads = genuine.heads();
    padded.push.docs[0]
        .changes
        .extend(extra.changes_since(&heads));
    let result = w.relay(vec![padded]).await;
    assert_eq!(rejected_code(only_outcome(&result)), "unattested");
    assert!(!w.stored(&genuine).await);

    // The same phone's push attributed to another device of the hub's village.
    let mut moved = dispute(4, G1, "w1");
    let mut renamed = signed(&w.w1, "phone-w1", &mut moved);
    renamed.device = "phone-w3".into();
    let result = w.relay(vec![renamed]).await;
    assert_eq!(rejected_code(only_outcome(&result)), "unattested");
    assert!(!w.stored(&moved).await);
}

async fn pushes_of_revoked_devices_unknown_devices_and_people_outside_the_hubs_unit_are_refused(
    t: &TestStore,
) {
    let w = world(t).await;

    // w3 works in community c2, which this village hub does not serve.
    let mut elsewhere = dispute(1, G3, "w3");
    let result = w
        .relay(vec![signed(&w.w3, "phone-w3", &mut elsewhere)])
        .await;
    assert_eq!(rejected_code(only_outcome(&result)), "outside_hub");
    assert!(!w.stored(&elsewhere).await);

    let mut unknown = dispute(2, G1, "w1");
    let result = w
        .relay(vec![signed(&w.w1, "phone-nobody", &mut unknown)])
        .await;
    assert_eq!(rejected_code(only_outcome(&result)), "unknown_device");

    let admin = admin_token(&w.api).await;
    w.api
        .call("POST", "/api/v1/devices/phone-w1/revoke", &admin, json!({}))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let mut late = dispute(3, G1, "w1");
    let result = w.relay(vec![signed(&w.w1, "phone-w1", &mut late)]).await;
    assert_eq!(rejected_code(only_outcome(&result)), "device_revoked");
    assert!(!w.stored(&late).await);
}

async fn a_drug_control_case_never_passes_through_a_hub(t: &TestStore) {
    let w = world(t).await;

    // A case the worker opened offline.
    let mut opened = drug_case(1, G1, "w1", "w1");
    let result = w.relay(vec![signed(&w.w1, "phone-w1", &mut opened)]).await;
    assert_eq!(rejected_code(only_outcome(&result)), "restricted_via_hub");
    assert!(!w.stored(&opened).await);

    // A follow-up on a case central assigned to the worker.
    let mut case = drug_case(2, G1, "admin", "w1");
    let filed = ingest(t.store.as_ref(), &admin(), &push_all(&mut [&mut case]))
        .await
        .expect("ingest");
    assert!(is_acked(&filed.docs[0].outcome), "{filed:?}");
    let seq = w.api.state.store.document(&case.id()).await.expect("read");
    let heads = case.heads();
    case.set_field(
        "subject_address",
        &json!("上坪村三组"),
        &Editor::new("w1", 3_000),
    )
    .expect("a follow-up");
    let push = Push {
        docs: vec![protocol::PushDoc {
            doc: case.id(),
            changes: case.changes_since(&heads),
        }],
    };
    let result = w.relay(vec![attest::sign(&w.w1, "phone-w1", push)]).await;
    assert_eq!(rejected_code(only_outcome(&result)), "restricted_via_hub");
    let after = w.api.state.store.document(&case.id()).await.expect("read");
    assert_eq!(
        after.map(|d| d.seq),
        seq.map(|d| d.seq),
        "the case is unchanged"
    );
}

async fn only_an_enrolled_unrevoked_hub_with_a_fresh_token_of_its_own_key_may_relay(t: &TestStore) {
    let w = world(t).await;
    let issuer = Config::default().issuer;
    let now = clock::now();

    let no_token = w
        .api
        .send_raw(
            Request::post("/api/v1/hubs/relay")
                .header("content-type", "application/x-gridsync")
                .body(Body::from(protocol::encode(&Relay { pushes: vec![] })))
                .expect("request"),
        )
        .await;
    no_token.assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");

    // A person's access token, however mighty, is not a hub's.
    let admin = admin_token(&w.api).await;
    w.relay_with(&admin, vec![])
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "token_invalid");

    // Signed with another key, for another audience, too long-lived, from the future, stale.
    let stranger = hub::sign(&[9; 32], &w.hub_id, &issuer, now).expect("sign");
    let elsewhere = hub::sign(&HUB_SEED, &w.hub_id, "https://other.example", now).expect("sign");
    for token in [stranger, elsewhere, w.hub_token(3_600)] {
        w.relay_with(&token, vec![])
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "token_invalid");
    }
    w.relay_with(&w.hub_token(-3_600), vec![])
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "token_expired");

    // A hub's clock a little off central's is fine.
    w.relay_with(&w.hub_token(-30), vec![])
        .await
        .assert_status(StatusCode::OK);
    w.relay_with(&w.hub_token(30), vec![])
        .await
        .assert_status(StatusCode::OK);

    let garbage = w
        .api
        .send_raw(frame_request(
            "/api/v1/hubs/relay",
            &w.hub_token(0),
            b"GS not a frame".to_vec(),
        ))
        .await;
    garbage.assert_status(StatusCode::BAD_REQUEST);

    w.api
        .call(
            "POST",
            &format!("/api/v1/hubs/{}/revoke", w.hub_id),
            &admin,
            json!({}),
        )
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let mut doc = dispute(1, G1, "w1");
    w.relay_with(&w.hub_token(0), vec![signed(&w.w1, "phone-w1", &mut doc)])
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "hub_revoked");
    assert!(!w.stored(&doc).await);
}

async fn a_hub_pulls_its_units_ordinary_reports_and_never_a_drug_control_case(t: &TestStore) {
    let w = world(t).await;
    let mut ours = dispute(1, G1, "admin");
    let mut elsewhere = dispute(2, G3, "admin");
    let mut case = drug_case(3, G1, "admin", "w1");
    let filed = ingest(
        t.store.as_ref(),
        &admin(),
        &push_all(&mut [&mut ours, &mut elsewhere, &mut case]),
    )
    .await
    .expect("ingest");
    assert!(filed.docs.iter().all(|d| is_acked(&d.outcome)), "{filed:?}");

    let pull = Pull {
        since: 0,
        after: 0,
        byte_budget: 1 << 20,
        resend: vec![],
        takes_heads: false,
    };
    let reply = w
        .api
        .send_raw(frame_request(
            "/api/v1/hubs/pull",
            &w.hub_token(0),
            protocol::encode(&pull),
        ))
        .await;
    reply.assert_status(StatusCode::OK);
    let page: PullResult = protocol::decode(&reply.bytes).expect("a PullResult");
    let docs: Vec<_> = page.docs.iter().map(|d| d.doc).collect();
    assert_eq!(docs, vec![ours.id()]);
    assert!(!page.more);

    // A person's token does not pull as a hub.
    let admin = admin_token(&w.api).await;
    w.api
        .send_raw(frame_request(
            "/api/v1/hubs/pull",
            &admin,
            protocol::encode(&pull),
        ))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "token_invalid");
}

async fn a_hub_reads_the_signed_revocation_list_and_the_units_it_serves(t: &TestStore) {
    let w = world(t).await;
    let admin = admin_token(&w.api).await;
    w.api
        .call("POST", "/api/v1/devices/phone-w1/revoke", &admin, json!({}))
        .await
        .assert_status(StatusCode::NO_CONTENT);

    let list = w
        .api
        .get("/api/v1/hubs/revocations", &w.hub_token(0))
        .await
        .ok();
    let list = list["revocations"].as_str().expect("a JWS");
    let (header, claims) = w.api.verified(list, "gridsync-offline").await;
    assert_eq!(header.typ.as_deref(), Some("gridsync-revocations+jwt"));
    assert_eq!(claims["devices"][0]["id"], json!("phone-w1"));

    let org = w.api.get("/api/v1/hubs/org", &w.hub_token(0)).await.ok();
    assert_eq!(org["root"], json!("v1"));
    let mut units: Vec<&str> = org["units"]
        .as_array()
        .expect("units")
        .iter()
        .map(|u| u["id"].as_str().expect("id"))
        .collect();
    units.sort();
    assert_eq!(units, ["g1", "g2", "v1"]);

    w.api
        .get("/api/v1/hubs/org", &admin)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "token_invalid");
}

async fn a_hubs_signed_audit_log_is_kept_once_and_a_log_signed_by_another_key_not_at_all(
    t: &TestStore,
) {
    let w = world(t).await;
    let issuer = Config::default().issuer;
    let session = |id: i64, device: &str| AuditRecord {
        id,
        entry: AuditEntry {
            at: 1_000 + id,
            user_id: Some("w1".into()),
            device_id: Some(device.into()),
            action: "hub_session".into(),
            doc_id: None,
            detail: json!({ "expires_at": 5_000 }),
        },
    };
    // A page signed with `seed` in hub `hub_id`'s name, uploaded with this hub's token.
    let api = &w.api;
    let upload = |seed: [u8; 32], hub_id: &str, page: &[AuditRecord]| {
        let log = hub::sign_audit(&seed, hub_id, &issuer, page, clock::now()).expect("sign");
        let token = w.hub_token(0);
        async move {
            api.call("POST", "/api/v1/hubs/audit", &token, json!({ "log": log }))
                .await
        }
    };
    let page = [session(1, "phone-w1"), session(2, "phone-w1-spare")];
    let kept = upload(HUB_SEED, &w.hub_id, &page).await.ok();
    assert_eq!(kept["through"], json!(2));
    // A page sent again after a lost answer, and one that overlaps, keep each entry once.
    let again = [session(2, "phone-w1-spare"), session(3, "phone-w1")];
    for _ in 0..2 {
        let kept = upload(HUB_SEED, &w.hub_id, &again).await.ok();
        assert_eq!(kept["through"], json!(3));
    }
    let sessions: Vec<AuditEntry> = t
        .store
        .audit_log(50)
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.action == "hub_session")
        .collect();
    assert_eq!(sessions.len(), 3);
    assert!(sessions.iter().all(|e| e.detail["hub"] == json!(w.hub_id)));
    assert_eq!(sessions[0].detail["hub_entry"], json!(3));
    assert_eq!(sessions[0].detail["expires_at"], json!(5_000));

    // Signed by another key, or with the hub's own token but for another hub: nothing kept.
    upload([7; 32], &w.hub_id, &[session(4, "x")])
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    upload(HUB_SEED, "hub-other", &[session(4, "x")])
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    let total = t.store.audit_log(50).await.expect("audit");
    assert_eq!(
        total.iter().filter(|e| e.action == "hub_session").count(),
        3
    );
}

async fn a_hub_is_sent_the_report_kinds_again_only_once_the_catalogue_changed(t: &TestStore) {
    let w = world(t).await;
    let kinds = |tag: Option<&str>| {
        let mut request = Request::get("/api/v1/hubs/kinds")
            .header("authorization", format!("Bearer {}", w.hub_token(0)));
        if let Some(tag) = tag {
            request = request.header("if-none-match", tag);
        }
        w.api.send(request.body(Body::empty()).expect("request"))
    };
    let first = kinds(None).await;
    first.assert_status(StatusCode::OK);
    let tag = first.headers["etag"].to_str().expect("a tag").to_owned();
    assert!(first.body.as_array().is_some_and(|k| !k.is_empty()));
    kinds(Some(&tag))
        .await
        .assert_status(StatusCode::NOT_MODIFIED);

    let actor = || Actor {
        user: None,
        device: None,
        via: "test",
    };
    let patrol = forms::twin("dispute_check", "village_patrol", "村巡查");
    catalogue::save_draft(t.store.as_ref(), &patrol, "json", actor())
        .await
        .expect("draft");
    catalogue::publish(t.store.as_ref(), "village_patrol", 1, actor())
        .await
        .expect("publish");
    let changed = kinds(Some(&tag)).await;
    changed.assert_status(StatusCode::OK);
    assert_ne!(changed.headers["etag"].to_str().expect("a tag"), tag);
    let names: Vec<&str> = changed
        .body
        .as_array()
        .expect("kinds")
        .iter()
        .filter_map(|k| k["definition"]["kind"].as_str())
        .collect();
    assert!(names.contains(&"village_patrol"));
}

async fn a_hub_relays_a_photo_in_chunks_and_central_answers_with_its_signed_receipt(t: &TestStore) {
    let w = world(t).await;
    let blob = photo(5000, 1);
    let mut doc = dispute(1, G1, "w1");
    let hash = attach(&mut doc, "w1", "site_photos", "image/png", &blob);
    let result = w.relay(vec![signed(&w.w1, "phone-w1", &mut doc)]).await;
    assert!(is_acked(only_outcome(&result)), "{result:?}");

    // Named by the report and not yet sent: start at 0, with no receipt.
    let head = w.head_relayed(&doc, &hash).await;
    head.assert_status(StatusCode::OK);
    assert_eq!(head.header("upload-offset"), Some("0"));
    assert_eq!(head.header("upload-length"), Some("5000"));
    assert_eq!(head.header("attachment-receipt"), None);

    w.put_relayed(&doc, &hash, &blob, 0..3000)
        .await
        .assert_status(StatusCode::ACCEPTED);
    assert_eq!(
        w.head_relayed(&doc, &hash).await.header("upload-offset"),
        Some("3000")
    );
    let done = w.put_relayed(&doc, &hash, &blob, 3000..5000).await;
    done.assert_status(StatusCode::CREATED);

    // The receipt is central's, checked with the published keys alone.
    let receipt = done.header("attachment-receipt").expect("a receipt");
    let (header, claims) = w.api.verified(receipt, "gridsync-offline").await;
    assert_eq!(
        header.typ.as_deref(),
        Some("gridsync-attachment-receipt+jwt")
    );
    assert_eq!(claims["hub"], json!(w.hub_id));
    assert_eq!(claims["doc"], json!(doc.id().to_string()));
    assert_eq!(claims["sha256"], json!(hash));
    assert_eq!(claims["size"], json!(5000));

    // A hub that lost that answer asks again and gets a receipt.
    let again = w.head_relayed(&doc, &hash).await;
    assert_eq!(again.header("upload-offset"), Some("5000"));
    assert!(again.header("attachment-receipt").is_some());

    let store = &w.api.state.store;
    let stored = store
        .attachment(&doc.id(), &hash)
        .await
        .expect("read")
        .expect("linked");
    assert_eq!(
        stored.created_by, w.hub_id,
        "the link names who delivered it"
    );
    assert_eq!(
        store.read_blob(&hash, 0, 5000).await.expect("read"),
        Some(blob)
    );
}

async fn a_hub_can_relay_only_bytes_a_report_of_its_unit_names_and_never_a_drug_control_cases(
    t: &TestStore,
) {
    let w = world(t).await;
    let blob = photo(4000, 2);
    let mut doc = dispute(1, G1, "w1");
    let hash = attach(&mut doc, "w1", "site_photos", "image/png", &blob);
    w.relay(vec![signed(&w.w1, "phone-w1", &mut doc)]).await;

    // Other bytes under the named hash: a hub cannot pass off a photo of its own.
    let mut forged = blob.clone();
    forged[100] ^= 0xff;
    w.put_relayed(&doc, &hash, &forged, 0..forged.len())
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "hash_mismatch");
    // Bytes the report does not name: refused before a byte is taken.
    let other = photo(4000, 3);
    let unnamed = attach(
        &mut dispute(9, G1, "w1"),
        "w1",
        "site_photos",
        "image/png",
        &other,
    );
    w.head_relayed(&doc, &unnamed)
        .await
        .assert_status(StatusCode::CONFLICT);
    w.put_relayed(&doc, &unnamed, &other, 0..other.len())
        .await
        .assert_problem(StatusCode::CONFLICT, "not_attached");

    // A report of another community, and a drug-control case of the hub's own village, filed
    // at central with photos: the hub is told neither exists.
    let mut outside = dispute(2, G3, "admin");
    let outside_hash = attach(&mut outside, "admin", "site_photos", "image/png", &blob);
    let mut case = drug_case(3, G1, "admin", "w1");
    let mut visit = serde_json::Map::new();
    visit.insert("date".into(), json!("2026-11-03"));
    let entry = case
        .append_log(&visit, &Editor::new("admin", 1_002))
        .expect("a visit");
    let case_hash = hash.clone();
    attach_named(
        &mut case,
        "admin",
        "visit_record",
        Some(&entry),
        "image/png",
        &case_hash,
        blob.len(),
    );
    let filed = ingest(
        t.store.as_ref(),
        &admin(),
        &push_all(&mut [&mut outside, &mut case]),
    )
    .await
    .expect("ingest");
    assert!(filed.docs.iter().all(|d| is_acked(&d.outcome)), "{filed:?}");
    for (report, hash) in [(&outside, &outside_hash), (&case, &case_hash)] {
        w.head_relayed(report, hash)
            .await
            .assert_status(StatusCode::NOT_FOUND);
        w.put_relayed(report, hash, &blob, 0..blob.len())
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not_found");
    }

    let store = &w.api.state.store;
    for (report, hash) in [
        (&doc, &hash),
        (&outside, &outside_hash),
        (&case, &case_hash),
    ] {
        assert!(
            store
                .attachment(&report.id(), hash)
                .await
                .expect("read")
                .is_none(),
            "nothing was linked"
        );
    }
    assert_eq!(store.blob_usage().await.expect("usage").blobs, 0);
}
