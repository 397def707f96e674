//! Attachments from the phone library against a real `gridsync serve`: a photo attached
//! offline is uploaded after its report, a second phone downloads it only when asked, an upload
//! cut in the middle resumes, and the bytes of a day with five photos.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use gridsync_e2e::Server;
use gridsync_e2e::field::{self, GRID, PASSWORD, Relay};
use gridsync_mobile::client::Client;
use gridsync_mobile::{ClientConfig, ClientError, FieldValue, GeoPoint, NewAttachment};

const KEY: [u8; 32] = [0x5a; 32];
const PHOTO_BYTES: usize = 300_000;

fn quick() -> ClientConfig {
    ClientConfig {
        connect_timeout_ms: 2_000,
        request_timeout_ms: 20_000,
        max_attempts: 1,
        retry_base_delay_ms: 20,
        push_max_bytes: 256 * 1024,
        pull_byte_budget: 64 * 1024,
        upload_chunk_bytes: 64 * 1024,
        attachment_cache_bytes: 1024 * 1024,
    }
}

fn phone(dir: &Path, base: &str, config: ClientConfig) -> Client {
    Client::open(dir, base, &KEY, config).expect("open the phone's store")
}

fn text(value: &str) -> FieldValue {
    FieldValue::Text {
        value: value.into(),
    }
}

/// A dispute check with its required fields, on the phone only.
fn dispute(client: &Client, i: usize) -> String {
    let id = client.create_report("dispute_check", GRID).expect("create");
    let values: HashMap<String, FieldValue> = [
        ("category", "land_property"),
        ("parties", "张三, 李四"),
        ("description", &format!("第{i}户宅基地边界争议")),
        ("found_on", "2026-11-01"),
        ("risk_level", "medium"),
        ("status", "reported"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), text(v)))
    .collect();
    client.set_fields(&id, values).expect("fill");
    id
}

/// Incompressible bytes, as a JPEG's are (xorshift).
fn photo(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..PHOTO_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect()
}

fn site_photo(name: &str) -> NewAttachment {
    NewAttachment {
        field: "site_photos".into(),
        entry: None,
        name: Some(name.into()),
        media_type: "image/jpeg".into(),
        taken_at: Some("2026-11-03T10:00:00+08:00".into()),
        location: Some(GeoPoint {
            lat: 30.27,
            lon: 120.15,
            accuracy_m: Some(8.0),
        }),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("scenario")
}

async fn start(db: &str) -> Server {
    field::seed(db).await;
    Server::start(db, PASSWORD).await
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("server.db").display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_attached_offline_uploads_after_its_report_and_is_fetched_only_on_demand_on_sqlite()
{
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sqlite_url(dir.path());
    let server = start(&db).await;
    let base = server.base.clone();
    blocking(move || photo_scenario(&base, dir.path())).await;
    assert!(server.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_attached_offline_uploads_after_its_report_and_is_fetched_only_on_demand_on_postgres()
 {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = field::fresh_postgres_database("gridsync_attach").await;
    let server = start(&db).await;
    let base = server.base.clone();
    blocking(move || photo_scenario(&base, dir.path())).await;
    assert!(server.stop().await.success());
}

fn photo_scenario(base: &str, dir: &Path) {
    let relay = Relay::start(base);
    let wang = phone(&dir.join("wang"), &relay.base, quick());
    wang.login("wang", PASSWORD, "wang's phone").expect("login");
    let li = phone(&dir.join("li"), &relay.base, quick());
    li.login("li", PASSWORD, "li's phone").expect("login");

    relay.set_online(false);
    let id = dispute(&wang, 1);
    let bytes = photo(1);
    let sha = wang
        .attach_bytes(&id, site_photo("IMG_0001.jpg"), &bytes)
        .expect("attach offline");
    let mut pdf = site_photo("x.pdf");
    pdf.media_type = "application/pdf".into();
    assert!(matches!(
        wang.attach_bytes(&id, pdf, &bytes),
        Err(ClientError::Validation(_))
    ));
    let mut agreement = site_photo("协议.jpg");
    agreement.field = "signed_agreement".into();
    assert!(matches!(
        wang.attach_bytes(&id, agreement, &vec![1; 10 * 1024 * 1024 + 1]),
        Err(ClientError::Validation(_))
    ));
    let mine = wang.attachments(&id).expect("attachments");
    assert_eq!(mine.len(), 1);
    assert!(mine[0].local && mine[0].pending_upload);
    assert!(matches!(wang.sync(None), Err(ClientError::Network(_))));

    relay.set_online(true);
    let summary = wang.sync(None).expect("sync");
    assert_eq!(
        (summary.uploaded_attachments, summary.pending_uploads),
        (1, 0)
    );
    let mine = wang.attachments(&id).expect("attachments");
    assert!(mine[0].local && !mine[0].pending_upload);
    // Nothing is left to upload: the next sync sends no attachment bytes.
    let again = wang.sync(None).expect("sync");
    assert_eq!(again.uploaded_attachments, 0);
    assert!(again.bytes_sent < 10_000, "{again:?}");

    let down = relay.received();
    li.sync(None).expect("li syncs");
    assert!(
        relay.received() - down < PHOTO_BYTES as u64 / 10,
        "the second phone downloaded the photo without asking"
    );
    let theirs = li.attachments(&id).expect("attachments");
    assert_eq!(theirs.len(), 1);
    assert_eq!(
        (theirs[0].sha256.as_str(), theirs[0].name.as_str()),
        (sha.as_str(), "IMG_0001.jpg")
    );
    assert!(!theirs[0].local);
    let fetched = li.fetch_attachment(&id, &sha).expect("fetch");
    assert!(fetched == bytes, "the fetched photo differs");
    // Kept: readable offline now.
    relay.set_online(false);
    assert!(li.fetch_attachment(&id, &sha).expect("from the cache") == bytes);
    assert!(li.attachments(&id).expect("attachments")[0].local);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_in_the_middle_resumes_where_the_server_stopped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sqlite_url(dir.path());
    let server = start(&db).await;
    let base = server.base.clone();
    blocking(move || {
        let relay = Relay::start(&base);
        let wang = phone(&dir.path().join("wang"), &relay.base, quick());
        wang.login("wang", PASSWORD, "wang's phone").expect("login");

        // An uncut upload, for comparison.
        let plain = dispute(&wang, 1);
        wang.sync(None).expect("report in");
        wang.attach_bytes(&plain, site_photo("a.jpg"), &photo(2))
            .expect("attach");
        let start = relay.sent();
        let uncut = wang.sync(None).expect("sync");
        let uncut_wire = relay.sent() - start;

        let cut = dispute(&wang, 2);
        wang.sync(None).expect("report in");
        wang.attach_bytes(&cut, site_photo("b.jpg"), &photo(3))
            .expect("attach");
        let start = relay.sent();
        let watcher = {
            let relay = relay.clone();
            std::thread::spawn(move || {
                while relay.sent() < start + PHOTO_BYTES as u64 / 2 {
                    std::thread::sleep(Duration::from_micros(200));
                }
                relay.set_online(false);
            })
        };
        assert!(matches!(wang.sync(None), Err(ClientError::Network(_))));
        watcher.join().expect("watcher");
        let pending = wang.attachments(&cut).expect("attachments");
        assert!(pending[0].pending_upload, "the cut upload is still pending");
        relay.set_online(true);
        let resumed = wang.sync(None).expect("resume");
        assert_eq!(resumed.uploaded_attachments, 1);
        let cut_wire = relay.sent() - start;
        eprintln!(
            "upload of {PHOTO_BYTES} B in 64 KiB chunks: uncut {} requests, {} B body sent, {uncut_wire} B on the wire; \
             cut in the middle and resumed: {} requests in the resuming sync, {} B body sent by it, \
             {cut_wire} B on the wire over both syncs, so {} B more than uncut",
            uncut.requests,
            uncut.bytes_sent,
            resumed.requests,
            resumed.bytes_sent,
            cut_wire.saturating_sub(uncut_wire),
        );
        // At most one chunk in flight is lost, plus request headers.
        assert!(cut_wire < uncut_wire + 64 * 1024 + 8 * 1024, "{cut_wire} vs {uncut_wire}");
        let mut fresh = quick();
        fresh.attachment_cache_bytes = 0;
        let check = phone(&dir.path().join("check"), &relay.base, fresh);
        check.login("li", PASSWORD, "check").expect("login");
        check.sync(None).expect("sync");
        let sha = &pending[0].sha256;
        assert!(check.fetch_attachment(&cut, sha).expect("fetch") == photo(3));
    })
    .await;
    assert!(server.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_with_five_photos_of_300_kb_costs_little_more_than_the_photos() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sqlite_url(dir.path());
    let server = start(&db).await;
    let base = server.base.clone();
    blocking(move || {
        let relay = Relay::start(&base);
        let wang = phone(&dir.path().join("wang"), &relay.base, quick());
        wang.login("wang", PASSWORD, "wang's phone").expect("login");
        let ids: Vec<String> = (0..5).map(|i| dispute(&wang, i)).collect();
        wang.sync(None).expect("reports in");
        let (up, down) = (relay.sent(), relay.received());
        for (i, id) in ids.iter().enumerate() {
            wang.set_field(id, "status", Some(text("mediating")))
                .expect("edit");
            wang.set_field(id, "next_follow_up", Some(text("2026-11-10")))
                .expect("edit");
            wang.attach_bytes(
                id,
                site_photo(&format!("IMG_{i}.jpg")),
                &photo(10 + i as u64),
            )
            .expect("attach");
        }
        let day = wang.sync(None).expect("evening sync");
        assert_eq!(day.uploaded_attachments, 5);
        let (wire_up, wire_down) = (relay.sent() - up, relay.received() - down);
        let photos = 5 * PHOTO_BYTES as u64;
        eprintln!(
            "a day with 10 edits and 5 photos of {PHOTO_BYTES} B, one evening sync: {} requests; \
             HTTP bodies {} B sent, {} B received; on the wire {wire_up} B sent ({} B beyond the \
             photos), {wire_down} B received",
            day.requests,
            day.bytes_sent,
            day.bytes_received,
            wire_up - photos,
        );
        assert!(
            wire_up < photos + 64 * 1024,
            "overhead {} B",
            wire_up - photos
        );
    })
    .await;
    assert!(server.stop().await.success());
}
