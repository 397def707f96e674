//! A village office hub between phones and central, through the real binaries: an admin
//! registers the hub, the office PC enrols with `gridsync hub enrol` and runs `gridsync hub
//! run`, and phones that hold offline grants sync with it while the office's uplink is cut.
//! Once the uplink is back, central holds every change with its author, and the hub holds
//! central's reports of its village, never a drug-control case, and knows the kinds central
//! published at runtime.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use gridsync_core::DocId;
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_e2e::field::{self, PASSWORD, Relay};
use gridsync_e2e::{HubProcess, Server, gridsync};
use gridsync_fixtures::forms;
use gridsync_fixtures::phone::Phone;
use gridsync_server::catalogue::{self, Actor};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_sync_through_the_hub_while_central_is_cut_off_and_central_gets_everything_on_sqlite()
 {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("central.db").display());
    through_the_hub(&db, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_sync_through_the_hub_while_central_is_cut_off_and_central_gets_everything_on_postgres()
 {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = field::fresh_postgres_database("gridsync_hub").await;
    through_the_hub(&db, dir.path()).await;
}

async fn through_the_hub(db: &str, dir: &Path) {
    field::seed(db).await;
    let central = Server::start(db, PASSWORD).await;
    // The office's uplink: the hub reaches central only through it.
    let uplink = Relay::start(&central.base);
    let mut admin = Phone::login(&central.base, "admin", PASSWORD, "admin-pc")
        .await
        .expect("admin login");

    // Central holds a dispute check of the village and a drug-control case of its grid.
    let dispute = DocId::from_u128(1);
    let case = DocId::from_u128(2);
    let by_admin = Editor::new(&admin.user_id, 1_000);
    let mut doc = ReportDoc::create(dispute, "dispute_check", 1, "g1", &by_admin).expect("create");
    doc.set_field("place", &json!("村委会"), &by_admin)
        .expect("set");
    admin.replica.insert(doc);
    let mut doc = ReportDoc::create(case, "drug_control_case", 1, "g1", &by_admin).expect("create");
    doc.set_field("assigned_worker", &json!("user-wang"), &by_admin)
        .expect("assign");
    admin.replica.insert(doc);
    admin.sync().await.expect("admin sync");

    // A kind the district published at runtime, which the hub must know to take its reports.
    let store = gridsync_server::store::open(db)
        .await
        .expect("open central");
    let patrol = forms::twin("dispute_check", "village_patrol", "村巡查");
    let actor = || Actor {
        user: None,
        device: None,
        via: "command line",
    };
    catalogue::save_draft(store.as_ref(), &patrol, "json", actor())
        .await
        .expect("draft");
    catalogue::publish(store.as_ref(), "village_patrol", 1, actor())
        .await
        .expect("publish");

    // The admin registers the hub, and the office PC enrols with the code, once.
    let hub_dir = dir.join("hub");
    HubProcess::enrol(&central.base, &admin.token, &uplink.base, &hub_dir).await;
    let again = gridsync(
        &HubProcess::enrol_args(&uplink.base, &hub_dir),
        &[("GRIDSYNC_HUB_CODE", "any code")],
    );
    assert!(!again.status.success(), "a hub enrols once");
    assert!(String::from_utf8_lossy(&again.stderr).contains("enrolled already"));

    let hub = HubProcess::start(&hub_dir, 1).await;
    // The hub's first contact copies the village down.
    let mut wang = Phone::login_with_key(&central.base, "wang", PASSWORD, "phone-wang", 1)
        .await
        .expect("wang login");
    let mut li = Phone::login_with_key(&central.base, "li", PASSWORD, "phone-li", 2)
        .await
        .expect("li login");
    eventually(|| async {
        let mut probe = Phone::login_with_key(&central.base, "li", PASSWORD, "probe", 3)
            .await
            .expect("probe login");
        probe.open_hub_session(&hub.base).await.is_ok() && {
            probe.pull().await.expect("pull at the hub");
            probe.replica.get(&dispute).is_some()
        }
    })
    .await;

    // The uplink goes down: the phones sync with the hub only.
    uplink.set_online(false);
    wang.open_hub_session(&hub.base)
        .await
        .expect("wang at the hub");
    li.open_hub_session(&hub.base).await.expect("li at the hub");
    let by_wang = DocId::from_u128(10);
    let by_li = DocId::from_u128(11);
    wang.edit(by_wang, "g1", "打谷场", 2_000);
    wang.sync().await.expect("wang syncs at the hub");
    li.edit(by_li, "g1", "祠堂", 2_100);
    let by_li_patrol = DocId::from_u128(12);
    let by_li_at = Editor::new(&li.user_id, 2_200);
    let mut doc =
        ReportDoc::create(by_li_patrol, "village_patrol", 1, "g1", &by_li_at).expect("create");
    doc.set_field("place", &json!("水塘"), &by_li_at)
        .expect("set");
    li.replica.insert(doc);
    li.sync().await.expect("li syncs at the hub");
    wang.sync().await.expect("wang syncs again");
    // Their acknowledgements say the hub holds their work, not central.
    let hub_id = HubProcess::id(&hub_dir);
    assert_eq!(wang.last_acked_by.as_deref(), Some(hub_id.as_str()));
    assert_eq!(li.last_acked_by.as_deref(), Some(hub_id.as_str()));
    for phone in [&wang, &li] {
        for id in [dispute, by_wang, by_li, by_li_patrol] {
            assert!(
                phone.replica.get(&id).is_some(),
                "{} lacks {id}",
                phone.username
            );
        }
        // A drug-control case never passes through a hub, even to its assigned worker.
        assert!(phone.replica.get(&case).is_none());
    }
    admin.pull().await.expect("admin pull");
    assert!(admin.replica.get(&by_wang).is_none(), "central is cut off");

    // The uplink comes back: the hub relays, and central stores each change as its author's.
    uplink.set_online(true);
    for attempt in 0.. {
        admin.pull().await.expect("admin pull");
        if [by_wang, by_li, by_li_patrol]
            .iter()
            .all(|id| admin.replica.get(id).is_some())
        {
            break;
        }
        assert!(
            attempt < 150,
            "central did not get the hub's relay within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let store = gridsync_server::store::open(db)
        .await
        .expect("open central");
    for (id, author) in [(by_wang, "user-wang"), (by_li, "user-li")] {
        let row = store.document(&id).await.expect("read").expect("stored");
        assert_eq!(row.created_by, author);
    }
    let hub_store = HubProcess::store(&hub_dir).await;
    assert!(hub_store.document(&case).await.expect("read").is_none());
    eventually(|| async {
        hub_store
            .waiting_pushes(10)
            .await
            .expect("queue")
            .is_empty()
    })
    .await;
    hub_store.close().await;
    // The hub's own log of the sessions it opened reaches central's, signed, naming the hub.
    eventually(|| async {
        let log = store.audit_log(500).await.expect("central's audit log");
        let sessions: Vec<_> = log
            .iter()
            .filter(|e| e.action == "hub_session" && e.detail["hub"] == json!(hub_id))
            .filter_map(|e| e.device_id.as_deref())
            .collect();
        ["phone-wang", "phone-li"]
            .iter()
            .all(|device| sessions.contains(device))
    })
    .await;
    assert!(hub.stop().await.success(), "the hub stops cleanly");
    assert!(central.stop().await.success());
}

/// What a hub acknowledged survives a SIGKILL before it could relay it: the restarted hub
/// relays it once the uplink is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_before_relaying_loses_nothing_it_acknowledged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("central.db").display());
    field::seed(&db).await;
    let central = Server::start(&db, PASSWORD).await;
    let uplink = Relay::start(&central.base);
    let admin = Phone::login(&central.base, "admin", PASSWORD, "admin-pc")
        .await
        .expect("admin login");
    let hub_dir = dir.path().join("hub");
    HubProcess::enrol(&central.base, &admin.token, &uplink.base, &hub_dir).await;
    let mut hub = HubProcess::start(&hub_dir, 1).await;
    let mut wang = Phone::login_with_key(&central.base, "wang", PASSWORD, "phone-wang", 1)
        .await
        .expect("wang login");
    let mut opened = false;
    for _ in 0..150 {
        // The hub lets phones in once its first contact brought its units.
        if wang.open_hub_session(&hub.base).await.is_ok() {
            opened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(opened, "the hub let wang in");

    uplink.set_online(false);
    let ids: Vec<DocId> = (20..30).map(DocId::from_u128).collect();
    for (i, id) in ids.iter().enumerate() {
        wang.edit(*id, "g1", &format!("第{i}户"), 3_000 + i as i64);
    }
    wang.push().await.expect("the hub acknowledges");
    hub.kill().await;

    let _hub = HubProcess::start(&hub_dir, 1).await;
    uplink.set_online(true);
    let store = gridsync_server::store::open(&db)
        .await
        .expect("open central");
    for attempt in 0.. {
        let mut held = 0;
        for id in &ids {
            held += usize::from(store.document(id).await.expect("read").is_some());
        }
        if held == ids.len() {
            break;
        }
        assert!(
            attempt < 150,
            "central holds {held} of {} within 30 s",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(central.stop().await.success());
}

/// Waits up to 30 s for `check` to hold, trying every 200 ms.
async fn eventually<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..150 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("did not happen within 30 s");
}
