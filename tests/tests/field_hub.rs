//! The phone library with a village office hub, through real binaries: central, a hub enrolled
//! with `gridsync hub enrol`, and two phones (gridsync-mobile's `Client`, what the bindings
//! wrap) that fall back to the hub when central is out of reach. The hub's acknowledgements
//! leave the work owed to central; central's receipts, handed on by the hub, settle it (a photo
//! too, relayed with the resumable upload) without the phones reaching central; a drug-control
//! case never goes through the hub; a phone revoked at central is refused and wiped through the
//! hub, on central's signed word; and the hub's folder holds none of it in clear. A PC that
//! shows the hub's certificate without holding the hub's key gets nothing from a phone.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::post;

use gridsync_core::DocId;
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_e2e::field::{self, GRID, PASSWORD, Relay, quick, site_photo};
use gridsync_e2e::{HubProcess, Server, gridsync};
use gridsync_fixtures::phone::Phone;
use gridsync_mobile::client::Client;
use gridsync_mobile::transport::{Settings, Traffic, Transport};
use gridsync_mobile::{ClientError, FieldValue, SyncSummary};
use gridsync_server::hub::tls::{self, TlsListener};
use gridsync_server::store::AuditQuery;
use serde_json::json;

const KEY: [u8; 32] = [0x2b; 32];

fn text(value: &str) -> FieldValue {
    FieldValue::Text {
        value: value.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_fall_back_to_the_hub_and_receipts_settle_their_work_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("central.db").display());
    at_the_hub(&db, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_fall_back_to_the_hub_and_receipts_settle_their_work_on_postgres() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = field::fresh_postgres_database("gridsync_field_hub").await;
    at_the_hub(&db, dir.path()).await;
}

async fn at_the_hub(db: &str, dir: &Path) {
    field::seed(db).await;
    let central = Server::start(db, PASSWORD).await;
    // The office's uplink, and the phones' own line to central.
    let uplink = Relay::start(&central.base);
    let line = Relay::start(&central.base);
    let mut admin = Phone::login(&central.base, "admin", PASSWORD, "admin-pc")
        .await
        .expect("admin login");
    // A drug-control case assigned to wang, which only central may hold.
    let case = DocId::from_u128(2);
    let by_admin = Editor::new(&admin.user_id, 1_000);
    let mut doc = ReportDoc::create(case, "drug_control_case", 1, GRID, &by_admin).expect("case");
    doc.set_field("assigned_worker", &json!("user-wang"), &by_admin)
        .expect("assign");
    admin.replica.insert(doc);
    admin.sync().await.expect("admin sync");

    let hub_dir = dir.join("hub");
    HubProcess::enrol(&central.base, &admin.token, &uplink.base, &hub_dir).await;
    let hub = HubProcess::start(&hub_dir, 1).await;
    let hub_id = HubProcess::id(&hub_dir);

    let (base, hub_base, dir) = (line.base.clone(), hub.base.clone(), dir.to_owned());
    let (line2, uplink2) = (line.clone(), uplink.clone());
    let db2 = db.to_owned();
    let central_base = central.base.clone();
    let hub_dir2 = hub_dir.clone();
    tokio::task::spawn_blocking(move || {
        let wang = Client::open(&dir.join("wang"), &base, &KEY, quick()).expect("open");
        let li = Client::open(&dir.join("li"), &base, &KEY, quick()).expect("open");
        wang.login("wang", PASSWORD, "wang's phone").expect("login");
        li.login("li", PASSWORD, "li's phone").expect("login");
        for phone in [&wang, &li] {
            phone.set_office_hub(Some(hub_base.clone())).expect("hub");
            phone.sync(None).expect("sync with central");
        }
        assert!(
            wang.report(&case.to_string()).is_ok(),
            "wang holds his case"
        );

        // Central is out of reach of the phones and of the office.
        line2.set_online(false);
        uplink2.set_online(false);
        let by_wang = wang.create_report("dispute_check", GRID).expect("create");
        wang.set_fields(
            &by_wang,
            [("description".into(), text("打谷场纠纷"))].into(),
        )
        .expect("edit");
        let photo: Vec<u8> = (0..150_000u32).map(|i| (i * 13 % 251) as u8).collect();
        let sha256 = wang
            .attach_bytes(&by_wang, site_photo("打谷场.jpg"), &photo)
            .expect("a photo");
        wang.set_fields(
            &case.to_string(),
            [("subject_address".into(), text("上坪村3组"))].into(),
        )
        .expect("visit note");
        let owed = wang.pending_changes();
        let at_hub = until_the_hub_serves(&wang);
        assert_eq!(at_hub.via_hub.as_deref(), Some(hub_id.as_str()));
        assert_eq!(
            at_hub.pending_changes, owed,
            "a hub's ack settles nothing owed to central"
        );
        assert_eq!(
            (at_hub.attachments_at_hub, at_hub.pending_uploads),
            (1, 1),
            "the hub holds the photo, which the phone still owes central"
        );
        assert!(
            at_hub
                .left_for_central
                .iter()
                .any(|r| r.id == case.to_string() && r.code == "restricted_via_hub"),
            "{:?}",
            at_hub.left_for_central
        );

        let by_li = li.create_report("dispute_check", GRID).expect("create");
        li.set_fields(&by_li, [("description".into(), text("祠堂漏雨"))].into())
            .expect("edit");
        let li_at_hub = li.sync(None).expect("li at the hub");
        assert_eq!(li_at_hub.via_hub.as_deref(), Some(hub_id.as_str()));
        assert!(
            li.report(&by_wang).is_ok(),
            "li sees wang's work through the hub"
        );
        assert_eq!(
            li.fetch_attachment(&by_wang, &sha256)
                .expect("wang's photo at the hub"),
            photo,
            "li opens wang's photo from the hub"
        );
        let wang_again = wang.sync(None).expect("wang at the hub again");
        assert!(
            wang.report(&by_li).is_ok(),
            "wang sees li's work through the hub"
        );
        assert_eq!(wang_again.pending_changes, owed);
        assert_eq!(
            li.pending_changes(),
            2,
            "li owes her own two changes, not wang's"
        );

        let store = blocking_store(&db2);
        let held = |id: &str| {
            let id: DocId = id.parse().expect("id");
            tokio::runtime::Handle::current()
                .block_on(store.document(&id))
                .expect("read")
                .is_some()
        };
        let photo_at_central = || {
            let id: DocId = by_wang.parse().expect("id");
            tokio::runtime::Handle::current()
                .block_on(store.attachment(&id, &sha256))
                .expect("read")
                .is_some()
        };
        assert!(!held(&by_wang) && !held(&by_li), "central is cut off");

        // The office's uplink comes back; the phones still cannot reach central.
        uplink2.set_online(true);
        wait(
            || held(&by_wang) && held(&by_li) && photo_at_central(),
            "central got the hub's relay, the photo too",
        );
        let (mut receipts, mut uploaded, mut settled) = (0, 0, None);
        for _ in 0..150 {
            let summary = wang.sync(None).expect("wang at the hub");
            receipts += summary.receipts;
            uploaded += summary.uploaded_attachments;
            if receipts > 0 && uploaded > 0 && summary.pending_changes < owed {
                settled = Some(summary);
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let settled = settled.expect("central's receipts reach wang through the hub");
        assert_eq!(settled.via_hub.as_deref(), Some(hub_id.as_str()));
        assert_eq!(
            settled.pending_changes, 1,
            "only the drug case's note is still owed to central"
        );
        assert_eq!(
            settled.pending_uploads, 0,
            "central's receipt for the photo settles it"
        );
        let listed = wang.attachments(&by_wang).expect("attachments");
        assert!(listed.iter().all(|a| !a.pending_upload), "{listed:?}");
        let at_central = tokio::runtime::Handle::current()
            .block_on(store.read_blob(&sha256, 0, photo.len() as i64))
            .expect("read");
        assert_eq!(
            at_central.as_deref(),
            Some(photo.as_slice()),
            "byte for byte"
        );
        // Li's download at the hub reaches central's audit log, the hub named.
        let li_device = li.device_id().expect("device");
        wait(
            || {
                let reads = tokio::runtime::Handle::current()
                    .block_on(store.audit_page(&AuditQuery {
                        action: Some("read_attachment".into()),
                        limit: 10,
                        ..AuditQuery::default()
                    }))
                    .expect("audit");
                reads.items.iter().any(|r| {
                    r.entry.device_id.as_deref() == Some(li_device.as_str())
                        && r.entry.detail["hub"] == json!(hub_id)
                })
            },
            "the hub's record of li's download at central",
        );
        let li_settled = li.sync(None).expect("li at the hub");
        assert!(li_settled.receipts > 0);
        assert_eq!(li_settled.pending_changes, 0);

        // Central within reach again: the case's note goes to central directly.
        line2.set_online(true);
        let direct = wang.sync(None).expect("wang with central");
        assert_eq!(direct.via_hub, None);
        assert_eq!(direct.pending_changes, 0);
        let case_at_central = tokio::runtime::Handle::current()
            .block_on(store.document(&case))
            .expect("read")
            .expect("the case");
        assert_eq!(
            case_at_central.projection["fields"]["subject_address"],
            json!("上坪村3组")
        );
        let hub_store = tokio::runtime::Handle::current().block_on(HubProcess::store(&hub_dir2));
        assert!(
            tokio::runtime::Handle::current()
                .block_on(hub_store.document(&case))
                .expect("read")
                .is_none(),
            "the hub never held the case"
        );
        tokio::runtime::Handle::current().block_on(hub_store.close());

        // Li's phone is revoked at central; the hub learns it at its next contact and, with
        // central's signed list, li's phone wipes itself though it cannot reach central.
        line2.set_online(false);
        let device = li.device_id().expect("device");
        field::revoke(&central_base, &device);
        let mut wiped = None;
        for _ in 0..150 {
            match li.sync(None) {
                Err(ClientError::DeviceRevoked(why)) => {
                    wiped = Some(why);
                    break;
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(200)),
                Err(other) => panic!("li: {other:?}"),
            }
        }
        assert!(wiped.is_some(), "li is refused and wiped through the hub");
        assert!(li.list_reports(None).expect("list").is_empty());
        assert!(li.current_user().is_none());
    })
    .await
    .expect("scenario");
    assert!(hub.stop().await.success(), "the hub stops cleanly");

    // The office PC's disk holds none of the village's work in clear, and the hub opens with
    // its own sealing key only.
    for file in std::fs::read_dir(&hub_dir).expect("the hub's folder") {
        let bytes = std::fs::read(file.expect("a file").path()).expect("read");
        for text in ["打谷场纠纷", "祠堂漏雨"] {
            let found = bytes.windows(text.len()).any(|w| w == text.as_bytes());
            assert!(!found, "{text} is in the hub's folder in clear");
        }
    }
    let other = hub_dir.with_file_name("other.key");
    std::fs::write(&other, "ab".repeat(32)).expect("another key");
    let path = |p: &Path| p.to_str().expect("a UTF-8 path").to_owned();
    let refused = gridsync(
        &[
            "hub",
            "run",
            "--dir",
            &path(&hub_dir),
            "--key-file",
            &path(&other),
        ],
        &[],
    );
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("does not open with this sealing key"),
        "{said}"
    );
    assert!(central.stop().await.success());
}

/// An impostor on the office network answers the nonce request with the real hub's certificate
/// (it is no secret), but its TLS proves another key: the phone stops there, and never sends its
/// grant or the nonce's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pc_that_shows_the_hubs_certificate_without_its_key_gets_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("central.db").display());
    field::seed(&db).await;
    let central = Server::start(&db, PASSWORD).await;
    let admin = Phone::login(&central.base, "admin", PASSWORD, "admin-pc")
        .await
        .expect("admin login");
    let hub_dir = dir.path().join("hub");
    HubProcess::enrol(&central.base, &admin.token, &central.base, &hub_dir).await;
    let hub = HubProcess::start(&hub_dir, 1).await;

    let real = hub.base.clone();
    let nonce = tokio::task::spawn_blocking(move || {
        let transport =
            Transport::to_hub(&real, Settings::default(), Arc::default()).expect("a transport");
        let answer = transport
            .post(
                "/hub/v1/nonce",
                "application/json",
                b"",
                None,
                &mut Traffic::default(),
            )
            .expect("the hub answers");
        String::from_utf8(answer.body).expect("JSON")
    })
    .await
    .expect("nonce");
    let asked_for_a_session = Arc::new(AtomicBool::new(false));
    let asked = asked_for_a_session.clone();
    let impostor = Router::new()
        .route("/hub/v1/nonce", post(move || async move { nonce }))
        .route(
            "/hub/v1/session",
            post(move || async move {
                asked.store(true, Ordering::SeqCst);
                "no"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let listener =
        TlsListener::new(listener, tls::server_config(&[9; 32]).expect("TLS")).expect("listen");
    let impostor_base = format!(
        "https://{}",
        axum::serve::Listener::local_addr(&listener).expect("address")
    );
    tokio::spawn(async move { axum::serve(listener, impostor).await });

    let line = Relay::start(&central.base);
    let (base, dir_path, line_off) = (line.base.clone(), dir.path().to_owned(), line.clone());
    tokio::task::spawn_blocking(move || {
        let wang = Client::open(&dir_path.join("wang"), &base, &KEY, quick()).expect("open");
        wang.login("wang", PASSWORD, "wang's phone").expect("login");
        wang.set_office_hub(Some(impostor_base)).expect("hub");
        line_off.set_online(false);
        let rid = wang.create_report("dispute_check", GRID).expect("create");
        let err = wang.sync(None).expect_err("the impostor is refused");
        match err {
            ClientError::Network(why) => {
                assert!(why.contains("certificate of another hub"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(wang.pending_changes(), 1, "{rid} is kept for the server");
        assert!(
            wang.set_office_hub(Some("http://192.168.1.20:8090".into()))
                .is_err()
        );
    })
    .await
    .expect("scenario");
    assert!(
        !asked_for_a_session.load(Ordering::SeqCst),
        "the phone sent the impostor its grant"
    );
    assert!(hub.stop().await.success(), "the hub stops cleanly");
    assert!(central.stop().await.success());
}

/// A hub the server revoked, which has not heard so (its uplink is down: a stolen office PC,
/// say), still answers; a phone that refreshed its tokens since knows better and opens no session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_stops_trusting_a_hub_the_server_revoked_though_the_hub_still_answers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("central.db").display());
    field::seed(&db).await;
    let central = Server::start(&db, PASSWORD).await;
    let uplink = Relay::start(&central.base);
    let line = Relay::start(&central.base);
    let admin = Phone::login(&central.base, "admin", PASSWORD, "admin-pc")
        .await
        .expect("admin login");
    let hub_dir = dir.path().join("hub");
    HubProcess::enrol(&central.base, &admin.token, &uplink.base, &hub_dir).await;
    let hub = HubProcess::start(&hub_dir, 1).await;
    let hub_id = HubProcess::id(&hub_dir);

    let (base, hub_base, dir_path) = (line.base.clone(), hub.base.clone(), dir.path().to_owned());
    let (line2, uplink2) = (line.clone(), uplink.clone());
    let (central_base, token) = (central.base.clone(), admin.token.clone());
    let device = tokio::task::spawn_blocking(move || {
        let wang = Client::open(&dir_path.join("wang"), &base, &KEY, quick()).expect("open");
        wang.login("wang", PASSWORD, "wang's phone").expect("login");
        wang.set_office_hub(Some(hub_base)).expect("hub");
        line2.set_online(false);
        wang.create_report("dispute_check", GRID).expect("create");
        assert_eq!(
            until_the_hub_serves(&wang).via_hub.as_deref(),
            Some(hub_id.as_str())
        );

        // The office PC is stolen: the admin revokes its hub, which cannot hear of it.
        uplink2.set_online(false);
        line2.set_online(true);
        let status = tokio::runtime::Handle::current().block_on(async {
            reqwest::Client::new()
                .post(format!("{central_base}/api/v1/hubs/{hub_id}/revoke"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("revoke")
                .status()
        });
        assert_eq!(status.as_u16(), 204);
        wang.expire_access_token().expect("expire");
        wang.sync(None)
            .expect("sync with central, refreshing the tokens");

        line2.set_online(false);
        wang.create_report("dispute_check", GRID).expect("create");
        match wang.sync(None) {
            Err(ClientError::Network(why)) => assert!(why.contains("revoked"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(wang.pending_changes(), 1);
        wang.device_id().expect("device")
    })
    .await
    .expect("scenario");
    let hub_store = HubProcess::store(&hub_dir).await;
    let sessions = hub_store
        .audit_log(50)
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.action == "hub_session" && e.device_id.as_deref() == Some(&device))
        .count();
    hub_store.close().await;
    assert_eq!(sessions, 1, "no session at the revoked hub");
    assert!(hub.stop().await.success(), "the hub stops cleanly");
    assert!(central.stop().await.success());
}

/// Syncs until the hub has made its first contact with central and lets the phone in.
fn until_the_hub_serves(phone: &Client) -> SyncSummary {
    for _ in 0..150 {
        match phone.sync(None) {
            Ok(summary) => return summary,
            Err(ClientError::Network(_) | ClientError::Unauthorized(_)) => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    panic!("the hub did not let the phone in within 30 s");
}

fn wait(mut check: impl FnMut() -> bool, what: &str) {
    for _ in 0..150 {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what}: not within 30 s");
}

fn blocking_store(db: &str) -> Arc<dyn gridsync_server::store::Store> {
    tokio::runtime::Handle::current()
        .block_on(gridsync_server::store::open(db))
        .expect("open the database")
}
