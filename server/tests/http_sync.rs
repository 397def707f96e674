//! The sync endpoints driven through `app(state)` on SQLite and Postgres: replicas converge
//! over HTTP, scope holds per document, and bad frames are refused with problem details while
//! the server keeps serving.

mod support;

use automerge::ChangeHash;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use gridsync_core::DocId;
use gridsync_core::protocol::{self, Message, Pull, PullBody, PullResult, PushOutcome, PushResult};
use gridsync_core::replica::Replica;
use gridsync_core::report::Editor;
use gridsync_fixtures::fixture::Fixture;
use gridsync_fixtures::org::OrgTree;
use gridsync_fixtures::people::Person;
use gridsync_server::scope::Role;
use serde_json::json;
use support::http::{Api, RawReply, api_over, frame_request};
use support::*;

on_both_test_stores!(
    two_phones_and_an_office_converge_through_the_sync_endpoints,
    a_pushed_report_outside_the_scope_is_held_alone,
    a_push_waits_for_its_share_of_the_sync_budget_before_anything_is_stored,
    bad_frames_are_refused_as_problems_and_nothing_is_stored,
    pulling_drug_cases_is_audited,
    a_first_pull_after_a_push_lists_the_phones_own_reports_by_their_heads_alone,
);

const PW: &str = "a long password";

/// The sync endpoints answer in frames.
impl RawReply {
    fn message<M: Message>(&self) -> M {
        self.assert_status(StatusCode::OK);
        assert_eq!(self.content_type(), "application/x-gridsync");
        protocol::decode(&self.bytes).expect("a valid frame")
    }
}

async fn api(t: &TestStore) -> Api {
    let people = [
        ("w1", Role::GridWorker, G1),
        ("w2", Role::GridWorker, G2),
        ("c1", Role::VillageCadre, "v1"),
        ("o1", Role::DrugControlOfficer, "t1"),
    ]
    .map(|(id, role, unit)| Person::new(id, role, unit).password(PW));
    Fixture::new(OrgTree::standard().clone())
        .people(people)
        .seed(t.store.as_ref())
        .await
        .expect("seed");
    api_over(t).await
}

impl Api {
    async fn token(&self, user: &str, device: &str) -> String {
        self.tokens(user, PW, device).await.0
    }

    async fn post_frame(&self, path: &str, token: &str, frame: Vec<u8>) -> RawReply {
        self.send_raw(frame_request(path, token, frame)).await
    }

    /// Pushes everything pending, then pulls to the end, as the phone library does.
    async fn sync(&self, token: &str, replica: &mut Replica) {
        while let Some(push) = replica.build_push(64 * 1024) {
            let answer = self
                .post_frame("/api/v1/sync/push", token, protocol::encode(&push))
                .await;
            let result: PushResult = answer.message();
            let summary = replica.apply_push_result(&result);
            assert!(summary.rejected.is_empty(), "{:?}", summary.rejected);
        }
        loop {
            let pull = replica.build_pull(4_096);
            let answer = self
                .post_frame("/api/v1/sync/pull", token, protocol::encode(&pull))
                .await;
            let summary = replica.apply_pull_result(answer.message()).expect("apply");
            assert!(!summary.diverged);
            if !summary.more {
                break;
            }
        }
    }
}

async fn two_phones_and_an_office_converge_through_the_sync_endpoints(t: &TestStore) {
    let api = api(t).await;
    let (w1, w2, c1) = (
        api.token("w1", "p1").await,
        api.token("w2", "p2").await,
        api.token("c1", "pc").await,
    );
    let (mut phone1, mut phone2, mut office) = (Replica::new(), Replica::new(), Replica::new());
    for i in 0..20 {
        phone1.insert(dispute(100 + i, G1, "w1"));
        phone2.insert(dispute(200 + i, G2, "w2"));
    }
    api.sync(&w1, &mut phone1).await;
    api.sync(&w2, &mut phone2).await;
    api.sync(&c1, &mut office).await;
    assert_eq!(
        office.ids().count(),
        40,
        "the cadre holds the whole village"
    );

    // The worker and the cadre edit different fields of one report offline; both edits merge.
    let id = DocId::from_u128(100);
    phone1
        .doc_mut(&id)
        .expect("doc")
        .set_field("risk_level", &json!("high"), &Editor::new("w1", 5_000))
        .expect("edit");
    office
        .doc_mut(&id)
        .expect("doc")
        .set_field("description", &json!("邻里纠纷"), &Editor::new("c1", 5_001))
        .expect("edit");
    api.sync(&w1, &mut phone1).await;
    api.sync(&c1, &mut office).await;
    api.sync(&w1, &mut phone1).await;
    for replica in [&phone1, &office] {
        let fields = replica.get(&id).expect("doc").doc.to_json().expect("json")["fields"].clone();
        assert_eq!(fields["risk_level"], json!("high"));
        assert_eq!(fields["description"], json!("邻里纠纷"));
    }
    assert_eq!(
        phone2.ids().count(),
        20,
        "the other grid's worker sees only their grid"
    );
}

async fn a_first_pull_after_a_push_lists_the_phones_own_reports_by_their_heads_alone(
    t: &TestStore,
) {
    let api = api(t).await;
    let (w1, c1) = (api.token("w1", "p1").await, api.token("c1", "pc").await);
    let mut phone = Replica::new();
    for i in 0..3 {
        phone.insert(dispute(300 + i, G1, "w1"));
    }
    let push = phone.build_push(64 * 1024).expect("pending");
    let answer = api
        .post_frame("/api/v1/sync/push", &w1, protocol::encode(&push))
        .await;
    phone.apply_push_result(&answer.message());
    // The cadre edits the first report, so its heads are no longer the phone's.
    let mut office = Replica::new();
    api.sync(&c1, &mut office).await;
    let edited = DocId::from_u128(300);
    office
        .doc_mut(&edited)
        .expect("doc")
        .set_field("description", &json!("调解中"), &Editor::new("c1", 6_000))
        .expect("edit");
    api.sync(&c1, &mut office).await;

    let pull = phone.build_pull(1 << 20);
    assert!(pull.since == 0 && pull.takes_heads);
    let pulled = |takes_heads| {
        let pull = Pull {
            takes_heads,
            ..pull.clone()
        };
        let api = &api;
        let w1 = &w1;
        async move {
            let answer = api
                .post_frame("/api/v1/sync/pull", w1, protocol::encode(&pull))
                .await;
            let result: PullResult = answer.message();
            result
        }
    };
    // A client from before the flag gets every report whole, as before.
    let old = pulled(false).await;
    assert_eq!(old.docs.len(), 3);
    assert!(
        old.docs
            .iter()
            .all(|d| matches!(d.body, PullBody::Snapshot(_)))
    );
    let result = pulled(true).await;
    for doc in &result.docs {
        let own = doc.doc != edited;
        assert_eq!(doc.heads_only(), own, "{}", doc.doc);
        if own {
            let held = phone.doc_mut(&doc.doc).expect("held").heads();
            let listed: Vec<_> = doc.heads.iter().map(|h| ChangeHash(*h)).collect();
            assert_eq!(listed, held);
        }
    }
    assert!(protocol::encode(&result).len() < protocol::encode(&old).len());
    let summary = phone.apply_pull_result(result).expect("apply");
    assert!(!summary.more && !summary.diverged);
    assert_eq!(
        phone
            .get(&edited)
            .expect("held")
            .doc
            .to_json()
            .expect("json")["fields"]["description"],
        json!("调解中")
    );

    // The same device with nothing stored (its store was lost) is listed the same heads, asks
    // for the reports whole, and ends holding all three.
    let mut lost = Replica::new();
    api.sync(&w1, &mut lost).await;
    assert_eq!(lost.ids().count(), 3);
    assert_eq!(lost.digest(), phone.digest());
}

async fn a_pushed_report_outside_the_scope_is_held_alone(t: &TestStore) {
    let api = api(t).await;
    let w1 = api.token("w1", "p1").await;
    let mut mine = dispute(1, G1, "w1");
    let mut theirs = dispute(2, G2, "w1");
    let push = push_all(&mut [&mut mine, &mut theirs]);
    let result: PushResult = api
        .post_frame("/api/v1/sync/push", &w1, protocol::encode(&push))
        .await
        .message();
    assert!(is_acked(&result.docs[0].outcome));
    assert!(matches!(
        &result.docs[1].outcome,
        PushOutcome::Held { code, .. } if code == "out_of_scope"
    ));
    assert!(t.store.document(&mine.id()).await.expect("read").is_some());
    assert!(
        t.store
            .document(&theirs.id())
            .await
            .expect("read")
            .is_none()
    );
}

async fn a_push_waits_for_its_share_of_the_sync_budget_before_anything_is_stored(t: &TestStore) {
    let api = api(t).await;
    let w1 = api.token("w1", "p1").await;
    let mut doc = dispute(1, G1, "w1");
    let frame = protocol::encode(&push_all(&mut [&mut doc]));
    // Other work holds the whole budget: the push waits for it, and stores nothing meanwhile.
    let others = api.state.sync_budget.reserve(usize::MAX).await;
    let waiting = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        api.post_frame("/api/v1/sync/push", &w1, frame.clone()),
    )
    .await;
    assert!(waiting.is_err(), "the push went ahead of the budget");
    assert!(t.store.document(&doc.id()).await.expect("read").is_none());
    drop(others);
    let result: PushResult = api
        .post_frame("/api/v1/sync/push", &w1, frame)
        .await
        .message();
    assert!(is_acked(&result.docs[0].outcome));
    assert!(t.store.document(&doc.id()).await.expect("read").is_some());
}

async fn bad_frames_are_refused_as_problems_and_nothing_is_stored(t: &TestStore) {
    let api = api(t).await;
    let w1 = api.token("w1", "p1").await;
    let mut doc = dispute(1, G1, "w1");
    let good = protocol::encode(&push_all(&mut [&mut doc]));
    let pull = protocol::encode(&Pull {
        since: 0,
        after: 0,
        byte_budget: 1,
        resend: vec![],
        takes_heads: false,
    });
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 3);
    let mut bad_version = good.clone();
    bad_version[2] = 99;
    for (what, frame, code) in [
        ("empty", Vec::new(), "bad_frame"),
        ("JSON", br#"{"docs": []}"#.to_vec(), "bad_frame"),
        ("truncated", truncated, "bad_frame"),
        ("future version", bad_version, "unsupported_version"),
        ("a pull sent to push", pull, "bad_frame"),
    ] {
        let answer = api.post_frame("/api/v1/sync/push", &w1, frame).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{what}");
        answer.assert_problem(StatusCode::BAD_REQUEST, code);
    }
    let huge = vec![0u8; 17 * 1024 * 1024];
    api.post_frame("/api/v1/sync/push", &w1, huge)
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let unauthenticated = Request::post("/api/v1/sync/push")
        .body(Body::from(good.clone()))
        .expect("request");
    api.send_raw(unauthenticated)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert!(t.store.document(&doc.id()).await.expect("read").is_none());

    // Still serving: the good frame goes through.
    let result: PushResult = api
        .post_frame("/api/v1/sync/push", &w1, good)
        .await
        .message();
    assert!(is_acked(&result.docs[0].outcome));
}

async fn pulling_drug_cases_is_audited(t: &TestStore) {
    let api = api(t).await;
    let o1 = api.token("o1", "po").await;
    let mut officer = Replica::new();
    officer.insert(drug_case(7, G1, "o1", "w1"));
    api.sync(&o1, &mut officer).await;
    let w1 = api.token("w1", "p1").await;
    let mut phone = Replica::new();
    api.sync(&w1, &mut phone).await;
    assert!(phone.get(&DocId::from_u128(7)).is_some());
    let log = t.store.audit_log(50).await.expect("audit");
    assert!(
        log.iter().any(|e| e.action == "sync_pull"
            && e.user_id.as_deref() == Some("w1")
            && e.detail["docs"]
                .to_string()
                .contains(&DocId::from_u128(7).to_string())),
        "{log:?}"
    );
}
