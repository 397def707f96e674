//! The phone library (gridsync-mobile's `Client`, what the bindings wrap) against a real
//! `gridsync serve`: offline edits on two phones merge, a conflict is resolved by an admin and
//! reaches both phones; interrupted syncs resume; a revoked phone wipes itself; tokens refresh;
//! a photo attached offline is uploaded after its report and fetched by another phone only on
//! demand, and a cut upload resumes; and the bytes of a typical day, with and without photos,
//! are measured.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use gridsync_e2e::Server;
use gridsync_e2e::field::{self, GRID, PASSWORD, Relay, quick, site_photo};
use gridsync_fixtures::phone::Phone;
use gridsync_mobile::client::{Client, Progress};
use gridsync_mobile::{ClientConfig, ClientError, FieldValue, SyncPhase, SyncProgress};
use serde_json::{Value, json};

const KEY: [u8; 32] = [0x5a; 32];

fn phone(dir: &Path, base: &str, config: ClientConfig) -> Client {
    Client::open(dir, base, &KEY, config).expect("open the phone's store")
}

fn text(value: &str) -> FieldValue {
    FieldValue::Text {
        value: value.into(),
    }
}

fn values(pairs: &[(&str, &str)]) -> HashMap<String, FieldValue> {
    pairs.iter().map(|(k, v)| ((*k).into(), text(v))).collect()
}

fn projection(client: &Client, id: &str) -> Value {
    serde_json::from_str(&client.report(id).expect("report").json).expect("json")
}

/// What the server holds of a report, read from its database.
struct ServerView {
    projection: Value,
    heads: Vec<String>,
    open_conflicts: Vec<String>,
    resolved_conflicts: Vec<(String, Option<String>)>,
    changes: usize,
}

fn server_view(db: &str, id: &str) -> ServerView {
    let id: uuid::Uuid = id.parse().expect("id");
    tokio::runtime::Handle::current().block_on(async {
        let store = gridsync_server::store::open(db).await.expect("open");
        let row = store.document(&id).await.expect("row").expect("stored");
        let conflicts = store.conflicts_of(&id).await.expect("conflicts");
        let mut heads: Vec<String> = row.heads.iter().map(|h| h.to_string()).collect();
        heads.sort();
        ServerView {
            projection: row.projection,
            heads,
            open_conflicts: conflicts
                .iter()
                .filter(|c| c.resolved_at.is_none())
                .map(|c| c.path.clone())
                .collect(),
            resolved_conflicts: conflicts
                .iter()
                .filter(|c| c.resolved_at.is_some())
                .map(|c| (c.path.clone(), c.resolved_by.clone()))
                .collect(),
            changes: store.changes_of(&id).await.expect("changes").len(),
        }
    })
}

/// Runs a blocking client scenario off the async runtime the server helper lives on.
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
async fn two_phones_merge_offline_edits_and_converge_after_an_admin_resolves_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sqlite_url(dir.path());
    let server = start(&db).await;
    let base = server.base.clone();
    blocking(move || two_phones_scenario(&db, &base, dir.path())).await;
    assert!(server.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phones_merge_offline_edits_and_converge_after_an_admin_resolves_on_postgres() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = field::fresh_postgres_database("gridsync_field").await;
    let server = start(&db).await;
    let base = server.base.clone();
    blocking(move || two_phones_scenario(&db, &base, dir.path())).await;
    assert!(server.stop().await.success());
}

fn two_phones_scenario(db: &str, base: &str, dir: &Path) {
    let relay = Relay::start(base);
    let wang = phone(&dir.join("wang"), &relay.base, quick());
    let li = phone(&dir.join("li"), &relay.base, quick());
    let me = wang.login("wang", PASSWORD, "wang's phone").expect("login");
    assert_eq!(
        (me.role.as_str(), me.scope_path.as_str()),
        ("grid_worker", "/d/t1/v1/g1/")
    );
    li.login("li", PASSWORD, "li's phone").expect("login");

    let id = wang
        .create_report("dispute_check", GRID)
        .expect("create report");
    wang.set_fields(
        &id,
        values(&[
            ("category", "land_property"),
            ("parties", "张三, 李四"),
            ("description", "宅基地边界争议"),
            ("found_on", "2026-11-02"),
            ("risk_level", "medium"),
            ("status", "reported"),
        ]),
    )
    .expect("fill the form");
    assert!(wang.validate_report(&id).expect("validate").is_empty());
    let first = wang.sync(None).expect("first sync");
    assert_eq!((first.pushed_reports, first.pending_changes), (1, 0));
    li.sync(None).expect("li pulls");
    assert_eq!(projection(&li, &id), projection(&wang, &id));

    // Both go offline and edit the same report: different fields, the same field, a step each.
    relay.set_online(false);
    wang.set_field(&id, "risk_level", Some(text("high")))
        .expect("edit");
    wang.set_field(&id, "status", Some(text("mediating")))
        .expect("edit");
    wang.append_log(
        &id,
        values(&[
            ("date", "2026-11-03"),
            ("mediator", "user-wang"),
            ("method", "上门调解"),
        ]),
    )
    .expect("step");
    li.set_field(&id, "place", Some(text("村委会")))
        .expect("edit");
    li.set_field(&id, "status", Some(text("escalated")))
        .expect("edit");
    li.append_log(
        &id,
        values(&[
            ("date", "2026-11-03"),
            ("mediator", "user-li"),
            ("method", "电话沟通"),
        ]),
    )
    .expect("step");
    for client in [&wang, &li] {
        let pending = client.pending_changes();
        assert_eq!(pending, 3);
        let err = client.sync(None).expect_err("offline");
        assert!(matches!(err, ClientError::Network(_)), "{err:?}");
        assert_eq!(client.pending_changes(), pending, "nothing lost offline");
    }

    relay.set_online(true);
    wang.sync(None).expect("sync");
    let li_sync = li.sync(None).expect("sync");
    assert_eq!(li_sync.open_conflicts, 1);
    wang.sync(None).expect("sync");

    let seen = server_view(db, &id);
    assert_eq!(seen.open_conflicts, vec!["fields.status".to_owned()]);
    assert_eq!(seen.projection["log"].as_array().map(Vec::len), Some(2));
    assert_eq!(seen.projection["fields"]["risk_level"], json!("high"));
    assert_eq!(seen.projection["fields"]["place"], json!("村委会"));
    for client in [&wang, &li] {
        let report = client.report(&id).expect("report");
        assert_eq!(report.heads, seen.heads);
        assert_eq!(report.open_conflicts, 1);
        let conflicts = client.conflicts(&id).expect("conflicts");
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].path, "fields.status");
        let mut offered: Vec<&str> = conflicts[0]
            .values
            .iter()
            .map(|v| v.value_json.as_str())
            .collect();
        offered.sort();
        assert_eq!(offered, vec![r#""escalated""#, r#""mediating""#]);
    }

    // The admin resolves it at the office, through the HTTP API.
    resolve_over_http(&relay.base, &id, "fields.status", json!("mediating"));

    for client in [&wang, &li] {
        let summary = client.sync(None).expect("sync");
        assert_eq!((summary.open_conflicts, summary.pending_changes), (0, 0));
    }
    let seen = server_view(db, &id);
    assert!(seen.open_conflicts.is_empty());
    assert_eq!(
        seen.resolved_conflicts,
        vec![("fields.status".to_owned(), Some("user-admin".to_owned()))]
    );
    let resolved = projection(&wang, &id);
    assert_eq!(resolved, projection(&li, &id));
    assert_eq!(resolved, seen.projection);
    assert_eq!(resolved["fields"]["status"], json!("mediating"));
    assert_eq!(wang.report(&id).expect("report").heads, seen.heads);
    assert_eq!(li.report(&id).expect("report").heads, seen.heads);
}

/// Counts progress calls and runs `at` once when the given phase reaches `round`.
struct CutAt<F: Fn() + Send + Sync> {
    phase: SyncPhase,
    round: u32,
    at: F,
    seen: Mutex<Vec<SyncProgress>>,
}

impl<F: Fn() + Send + Sync> Progress for CutAt<F> {
    fn progress(&self, progress: SyncProgress) {
        if progress.phase == self.phase && progress.round == self.round {
            (self.at)();
        }
        self.seen.lock().expect("lock").push(progress);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_cut_off_midway_resumes_after_a_restart_and_loses_or_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sqlite_url(dir.path());
    let server = start(&db).await;
    let base = server.base.clone();
    blocking(move || {
        let relay = Relay::start(&base);
        // Small pushes and pages, so one sync takes many requests.
        let small = ClientConfig {
            push_max_bytes: 1,
            pull_byte_budget: 1,
            ..quick()
        };
        let wang_dir = dir.path().join("wang");
        let wang = phone(&wang_dir, &relay.base, small.clone());
        wang.login("wang", PASSWORD, "wang's phone").expect("login");
        let mut ids = Vec::new();
        for i in 0..12 {
            let id = wang.create_report("dispute_check", GRID).expect("create");
            wang.set_field(&id, "description", Some(text(&format!("纠纷 {i}"))))
                .expect("edit");
            wang.append_log(
                &id,
                values(&[
                    ("date", "2026-11-03"),
                    ("mediator", "user-wang"),
                    ("method", "走访"),
                ]),
            )
            .expect("step");
            ids.push(id);
        }
        let pending = wang.pending_changes();
        assert_eq!(pending, 36);

        // The line drops after the third push request.
        let cut = CutAt {
            phase: SyncPhase::Push,
            round: 3,
            at: || relay.set_online(false),
            seen: Mutex::default(),
        };
        let err = wang.sync(Some(&cut)).expect_err("cut off");
        assert!(matches!(err, ClientError::Network(_)), "{err:?}");
        let pushed_before_cut = wang.pending_changes();
        assert!(pushed_before_cut < pending && pushed_before_cut > 0);
        // The app is killed and restarted: everything comes back from the store.
        drop(wang);
        relay.set_online(true);
        let wang = phone(&wang_dir, &relay.base, small.clone());
        assert_eq!(wang.pending_changes(), pushed_before_cut);
        let done = wang.sync(None).expect("sync completes");
        assert_eq!(done.pending_changes, 0);
        for id in &ids {
            let seen = server_view(&db, id);
            assert_eq!(seen.changes, 3, "each change stored once");
            assert_eq!(seen.projection, projection(&wang, id));
        }

        // Li's first pull is cut after the fourth page, then resumes where it stopped.
        let li_dir = dir.path().join("li");
        let li = phone(&li_dir, &relay.base, small.clone());
        li.login("li", PASSWORD, "li's phone").expect("login");
        let cut = CutAt {
            phase: SyncPhase::Pull,
            round: 4,
            at: || relay.set_online(false),
            seen: Mutex::default(),
        };
        assert!(matches!(li.sync(Some(&cut)), Err(ClientError::Network(_))));
        let held = li.list_reports(None).expect("list").len();
        assert!(held > 0 && held < ids.len(), "held {held} of {}", ids.len());
        drop(li);
        relay.set_online(true);
        let li = phone(&li_dir, &relay.base, small);
        let rest = li.sync(None).expect("sync completes");
        assert!(!rest.diverged);
        assert_eq!(
            rest.pulled_reports as usize,
            ids.len() - held,
            "the resumed pull starts after the pages already stored"
        );
        for id in &ids {
            assert_eq!(projection(&li, id), projection(&wang, id));
        }
    })
    .await;
    assert!(server.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_phone_is_refused_and_wipes_its_local_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sqlite_url(dir.path());
    let server = start(&db).await;
    let base = server.base.clone();
    blocking(move || {
        let data = dir.path().join("wang");
        let wang = phone(&data, &base, quick());
        wang.login("wang", PASSWORD, "lost phone").expect("login");
        let device = wang.device_id().expect("device id");
        let id = wang.create_report("dispute_check", GRID).expect("create");
        wang.set_field(&id, "parties", Some(text("王五")))
            .expect("edit");
        wang.sync(None).expect("sync");

        field::revoke(&base, &device);
        let err = wang.sync(None).expect_err("refused");
        assert!(matches!(err, ClientError::DeviceRevoked(_)), "{err:?}");
        assert!(wang.current_user().is_none());
        assert!(wang.list_reports(None).expect("list").is_empty());
        assert_ne!(wang.device_id().expect("device id"), device);
        drop(wang);
        // Nothing of the report is left on disk, and a fresh store opens there.
        let mut leftover = Vec::new();
        for entry in std::fs::read_dir(&data).expect("dir") {
            leftover.extend(std::fs::read(entry.expect("entry").path()).expect("read"));
        }
        assert!(!leftover.windows(6).any(|w| w == "王五".as_bytes()));
        let reopened = phone(&data, &base, quick());
        assert!(reopened.list_reports(None).expect("list").is_empty());
        // The person can log in again from a new installation id; the report comes back.
        reopened
            .login("wang", PASSWORD, "phone, again")
            .expect("login");
        reopened.sync(None).expect("sync");
        assert_eq!(reopened.list_reports(None).expect("list").len(), 1);
    })
    .await;
    assert!(server.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_refreshed_and_the_rotated_refresh_token_is_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sqlite_url(dir.path());
    let server = start(&db).await;
    let base = server.base.clone();
    blocking(move || {
        let data = dir.path().join("wang");
        let wang = phone(&data, &base, quick());
        wang.login("wang", PASSWORD, "phone").expect("login");
        for round in 0..3 {
            wang.expire_access_token().expect("expire");
            let id = wang.create_report("dispute_check", GRID).expect("create");
            let summary = wang.sync(None).expect("sync with a refreshed token");
            assert_eq!(summary.pushed_reports, 1, "round {round}");
            assert!(summary.requests >= 3, "a refresh, a push and a pull");
            assert!(wang.report(&id).is_ok());
        }
        // After a restart the stored (rotated) refresh token still works: a stale one would be
        // refused as reused and end the session.
        drop(wang);
        let wang = phone(&data, &base, quick());
        wang.expire_access_token().expect("expire");
        wang.sync(None).expect("sync after restart");
        assert!(wang.current_user().is_some());
    })
    .await;
    assert!(server.stop().await.success());
}

#[test]
fn with_no_server_login_is_a_network_error_and_sync_asks_for_a_login() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let client = phone(dir.path(), &base, quick());
    let err = client.sync(None).expect_err("not logged in");
    assert!(matches!(err, ClientError::Unauthorized(_)), "{err:?}");
    let err = client
        .login("wang", PASSWORD, "phone")
        .expect_err("offline login");
    assert!(matches!(err, ClientError::Network(_)), "{err:?}");
}

/// A day in the field: ten reports the worker follows, thirty edits (fields and mediation steps)
/// spread over them, synced once in the evening and, in a second run, after every edit. Prints
/// the bytes both ways: HTTP bodies as the client counts them, and everything on the wire
/// (headers included, TLS not) as a relay in between counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typical_day_of_thirty_edits_over_ten_reports_costs_few_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sqlite_url(dir.path());
    let server = start(&db).await;
    let base = server.base.clone();
    blocking(move || {
        let relay = Relay::start(&base);
        let wang = phone(&dir.path().join("wang"), &relay.base, quick());
        wang.login("wang", PASSWORD, "phone").expect("login");
        let ids: Vec<String> = (0..10)
            .map(|i| {
                let id = wang.create_report("dispute_check", GRID).expect("create");
                wang.set_fields(
                    &id,
                    values(&[
                        ("category", "neighbour"),
                        ("parties", "张三, 李四"),
                        ("description", &format!("第{i}户与邻居因排水沟发生争执")),
                        ("found_on", "2026-11-01"),
                        ("risk_level", "low"),
                        ("status", "mediating"),
                        ("next_follow_up", "2026-11-08"),
                    ]),
                )
                .expect("fill");
                id
            })
            .collect();
        wang.sync(None).expect("sync the reports in");

        let mut lines = Vec::new();
        // Every edit changes something (an edit that writes the value a field already has is
        // no change at all), so each run is thirty real changes.
        for (run, (name, sync_each_edit)) in [
            ("one evening sync", false),
            ("a sync after each edit", true),
        ]
        .into_iter()
        .enumerate()
        {
            let (wire_up, wire_down) = (relay.sent(), relay.received());
            let (mut body_up, mut body_down, mut requests, mut pushed) = (0, 0, 0, 0);
            let mut record = |s: gridsync_mobile::SyncSummary| {
                pushed += s.pushed_changes;
                body_up += s.bytes_sent;
                body_down += s.bytes_received;
                requests += s.requests;
            };
            for edit in 0..30 {
                let id = &ids[edit % 10];
                match edit / 10 {
                    0 => wang
                        .set_field(id, "risk_level", Some(text(["medium", "high"][run])))
                        .expect("edit"),
                    1 => {
                        wang.append_log(
                            id,
                            values(&[
                                ("date", "2026-11-03"),
                                ("mediator", "user-wang"),
                                ("method", "入户调解，双方同意各退一步"),
                                ("outcome", "初步达成口头协议"),
                            ]),
                        )
                        .expect("step");
                    }
                    _ => wang
                        .set_fields(
                            id,
                            values(&[
                                ("next_follow_up", &format!("2026-11-1{run}")),
                                ("place", &format!("三组路口 {run}")),
                            ]),
                        )
                        .expect("edit"),
                }
                if sync_each_edit {
                    record(wang.sync(None).expect("sync"));
                }
            }
            if !sync_each_edit {
                record(wang.sync(None).expect("sync"));
            }
            assert_eq!((pushed, wang.pending_changes()), (30, 0), "{name}");
            if !sync_each_edit {
                assert!(body_up + body_down < 16 * 1024, "a day fits in 16 KiB");
            }
            lines.push(format!(
                "typical day ({name}): {requests} requests; HTTP bodies {body_up} B sent, \
                 {body_down} B received; on the wire {} B sent, {} B received",
                relay.sent() - wire_up,
                relay.received() - wire_down
            ));
        }
        for line in lines {
            eprintln!("{line}");
        }
    })
    .await;
    assert!(server.stop().await.success());
}

/// Logs in as the admin and resolves the report's open conflict at `path` over HTTP, as the
/// console does. The scenario is blocking code (the phone library is), so this runs its own
/// runtime on its own thread.
fn resolve_over_http(base: &str, id: &str, path: &str, value: Value) {
    let (base, id, path) = (base.to_owned(), id.to_owned(), path.to_owned());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(resolve(&base, &id, &path, value))
    })
    .join()
    .expect("resolving thread");
}

async fn resolve(base: &str, id: &str, path: &str, value: Value) {
    let http = reqwest::Client::new();
    let office = Phone::login(base, "admin", PASSWORD, "console")
        .await
        .expect("login");
    let token = office.token.as_str();
    let conflicts: Value = http
        .get(format!("{base}/api/v1/conflicts?limit=200"))
        .bearer_auth(token)
        .send()
        .await
        .expect("conflicts")
        .error_for_status()
        .expect("conflicts answer 200")
        .json()
        .await
        .expect("list");
    let items = conflicts["items"].as_array().expect("items");
    let conflict = items
        .iter()
        .find(|c| c["report_id"] == json!(id) && c["path"] == json!(path))
        .expect("the conflict is open on the server");
    http.post(format!(
        "{base}/api/v1/conflicts/{}/resolve",
        conflict["id"].as_i64().expect("id")
    ))
    .bearer_auth(token)
    .json(&json!({ "value": value }))
    .send()
    .await
    .expect("resolve")
    .error_for_status()
    .expect("resolve answers 200");
}

// ---- attachments ----

const PHOTO_BYTES: usize = 300_000;

/// A dispute check with its required fields, on the phone only.
fn photo_report(client: &Client, i: usize) -> String {
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
    let id = photo_report(&wang, 1);
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
async fn an_upload_of_a_photo_cut_in_the_middle_resumes_where_the_server_stopped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sqlite_url(dir.path());
    let server = start(&db).await;
    let base = server.base.clone();
    blocking(move || {
        let relay = Relay::start(&base);
        let wang = phone(&dir.path().join("wang"), &relay.base, quick());
        wang.login("wang", PASSWORD, "wang's phone").expect("login");

        // An uncut upload, for comparison.
        let plain = photo_report(&wang, 1);
        wang.sync(None).expect("report in");
        wang.attach_bytes(&plain, site_photo("a.jpg"), &photo(2))
            .expect("attach");
        let start = relay.sent();
        let uncut = wang.sync(None).expect("sync");
        let uncut_wire = relay.sent() - start;

        let cut = photo_report(&wang, 2);
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
        let ids: Vec<String> = (0..5).map(|i| photo_report(&wang, i)).collect();
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
