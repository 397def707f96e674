//! Stuck reports, through the phone library against a real `gridsync serve` on SQLite and
//! Postgres: the phone refuses up front what the server refuses at every push, with the same
//! codes; reports the server did refuse (written by an older app, or a drug-control case the
//! worker did not assign to themselves) are listed with code and reason, and each way out
//! works: an edit that fixes it is accepted, a move files it under a grid in scope with its
//! photo, and a discard keeps an exportable copy until the next successful sync.

use std::collections::HashMap;
use std::path::Path;

use gridsync_core::DocId;
use gridsync_core::replica::LocalDoc;
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_e2e::Server;
use gridsync_e2e::field::{self, GRID, PASSWORD, Relay, quick};
use gridsync_mobile::client::Client;
use gridsync_mobile::store::{Batch, Store};
use gridsync_mobile::{ClientError, FieldValue, NewAttachment};
use gridsync_server::store::Level;
use serde_json::{Value, json};

const KEY: [u8; 32] = [0x3c; 32];
const WANG: &str = "user-wang";
/// A grid of another village of the township: it exists, but not in wang's or li's scope.
const OTHER_VILLAGE_GRID: &str = "g2";

fn phone(dir: &Path, base: &str) -> Client {
    Client::open(dir, base, &KEY, quick()).expect("open the phone's store")
}

fn text(value: &str) -> FieldValue {
    FieldValue::Text {
        value: value.into(),
    }
}

fn values(pairs: &[(&str, &str)]) -> HashMap<String, FieldValue> {
    pairs.iter().map(|(k, v)| ((*k).into(), text(v))).collect()
}

fn code(err: ClientError) -> String {
    match err {
        ClientError::Refused(message) => message.split(':').next().unwrap_or_default().into(),
        other => panic!("not refused: {other:?}"),
    }
}

/// Writes a report into the phone's store the way an app without these checks did, by wang,
/// with `fields` set; the phone must be closed. Returns its id.
fn older_app_report(dir: &Path, kind: &str, grid: &str, fields: Value) -> String {
    let mut store = Store::open(dir, &KEY).expect("store");
    let by = Editor::new(WANG, 1_767_225_600);
    let mut doc = ReportDoc::create(DocId::new_v4(), kind, 1, grid, &by).expect("create");
    doc.set_fields(fields.as_object().expect("fields"), &by)
        .expect("fields");
    let id = doc.id().to_string();
    let mut batch = Batch::default();
    batch.put_doc(store.write_of(&mut LocalDoc::new(doc)).expect("write"));
    store.commit(batch).expect("commit");
    id
}

/// Edits a stored report the way an app without these checks did; the phone must be closed.
fn older_app_edit(dir: &Path, id: &str, fields: Value) {
    let mut store = Store::open(dir, &KEY).expect("store");
    let mut local = store
        .load_doc(&id.parse().expect("id"))
        .expect("load")
        .expect("stored");
    local
        .doc
        .set_fields(
            fields.as_object().expect("fields"),
            &Editor::new(WANG, 1_767_312_000),
        )
        .expect("edit");
    let mut batch = Batch::default();
    batch.put_doc(store.write_of(&mut local).expect("write"));
    store.commit(batch).expect("commit");
}

/// The server's projection of a report, `None` when it does not hold it.
fn on_server(db: &str, id: &str) -> Option<Value> {
    let id: uuid::Uuid = id.parse().expect("id");
    tokio::runtime::Handle::current().block_on(async {
        let store = gridsync_server::store::open(db).await.expect("open");
        store
            .document(&id)
            .await
            .expect("read")
            .map(|row| row.projection)
    })
}

/// Runs a blocking client scenario off the async runtime the server helper lives on.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("scenario")
}

/// The field district plus a second village with its own grid.
async fn start(db: &str) -> Server {
    field::district()
        .unit("v2", "t1", Level::Village, "v2 网格")
        .unit(
            OTHER_VILLAGE_GRID,
            "v2",
            Level::Grid,
            &format!("{OTHER_VILLAGE_GRID} 网格"),
        )
        .seed_database(db)
        .await
        .expect("seed");
    Server::start(db, PASSWORD).await
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("server.db").display())
}

async fn on_sqlite(scenario: fn(&str, &str, &Path)) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sqlite_url(dir.path());
    let server = start(&db).await;
    let base = server.base.clone();
    blocking(move || scenario(&db, &base, dir.path())).await;
    assert!(server.stop().await.success());
}

async fn on_postgres(scenario: fn(&str, &str, &Path)) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = field::fresh_postgres_database("gridsync_stuck").await;
    let server = start(&db).await;
    let base = server.base.clone();
    blocking(move || scenario(&db, &base, dir.path())).await;
    assert!(server.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_refuses_what_the_server_refuses_with_the_same_codes_on_sqlite() {
    on_sqlite(refusals_scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_refuses_what_the_server_refuses_with_the_same_codes_on_postgres() {
    on_postgres(refusals_scenario).await;
}

fn refusals_scenario(_db: &str, base: &str, dir: &Path) {
    let wang_dir = dir.join("wang");
    let wang = phone(&wang_dir, base);
    wang.login("wang", PASSWORD, "wang's phone").expect("login");
    let grids: Vec<String> = wang
        .grids()
        .expect("grids")
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(grids, [GRID], "a grid worker's grids are their own grid");
    let li = phone(&dir.join("li"), base);
    li.login("li", PASSWORD, "li's phone").expect("login");
    assert_eq!(
        li.grids().expect("grids").len(),
        1,
        "the grids of village v1"
    );
    let admin = phone(&dir.join("admin"), base);
    admin
        .login("admin", PASSWORD, "admin's phone")
        .expect("login");
    assert_eq!(admin.grids().expect("grids").len(), 2, "the whole district");

    // Up front, on the phone.
    let err = wang
        .create_report("dispute_check", OTHER_VILLAGE_GRID)
        .expect_err("another village");
    assert_eq!(code(err), "out_of_scope");
    let err = admin
        .create_report("dispute_check", "no-such-grid")
        .expect_err("unknown");
    assert_eq!(code(err), "unknown_grid");
    let id = wang.create_report("dispute_check", GRID).expect("create");
    let err = wang
        .set_field(&id, "description", Some(text("bad\0text")))
        .expect_err("nul");
    assert_eq!(code(err), "invalid_text");
    assert_eq!(wang.stuck_reports().expect("stuck").len(), 0);

    // The same reports written by an older app reach the server, which answers the same codes.
    drop(wang);
    let expected = [
        (
            older_app_report(&wang_dir, "dispute_check", OTHER_VILLAGE_GRID, json!({})),
            "out_of_scope",
        ),
        (
            older_app_report(&wang_dir, "dispute_check", "no-such-grid", json!({})),
            "unknown_grid",
        ),
        (
            older_app_report(
                &wang_dir,
                "dispute_check",
                GRID,
                json!({"description": "bad\u{0}text"}),
            ),
            "invalid_text",
        ),
    ];
    let wang = phone(&wang_dir, base);
    let summary = wang.sync(None).expect("sync");
    // Refused for good, or (a report outside the user's scope) held for its owners to decide.
    let mut refused: Vec<(String, String)> = summary
        .rejected
        .into_iter()
        .map(|r| (r.id, r.code))
        .chain(summary.held.into_iter().map(|h| (h.id, h.code)))
        .collect();
    refused.sort();
    let mut expected: Vec<(String, String)> = expected
        .into_iter()
        .map(|(id, code)| (id, code.to_owned()))
        .collect();
    expected.sort();
    assert_eq!(refused, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_reports_are_stuck_until_edited_moved_or_discarded_on_sqlite() {
    on_sqlite(ways_out_scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_reports_are_stuck_until_edited_moved_or_discarded_on_postgres() {
    on_postgres(ways_out_scenario).await;
}

fn ways_out_scenario(db: &str, base: &str, dir: &Path) {
    let relay = Relay::start(base);
    let wang_dir = dir.join("wang");
    let wang = phone(&wang_dir, &relay.base);
    wang.login("wang", PASSWORD, "wang's phone").expect("login");
    // Accepted first, then given a NUL by an older app: refused with history on the server.
    let accepted = wang.create_report("dispute_check", GRID).expect("create");
    wang.set_field(&accepted, "description", Some(text("水渠纠纷")))
        .expect("edit");
    wang.sync(None).expect("first sync");
    drop(wang);
    older_app_edit(&wang_dir, &accepted, json!({"place": "村口\u{0}"}));
    let nul = older_app_report(
        &wang_dir,
        "dispute_check",
        GRID,
        json!({"description": "欠薪\u{0}纠纷", "category": "labour_wages"}),
    );
    let unknown = older_app_report(&wang_dir, "dispute_check", "no-such-grid", json!({}));
    let other_village = older_app_report(
        &wang_dir,
        "dispute_check",
        OTHER_VILLAGE_GRID,
        json!({"description": "邻村的纠纷"}),
    );
    let wang = phone(&wang_dir, &relay.base);
    // The worker opens a drug-control case but assigns it to no one: the server refuses it.
    let case = wang
        .create_report("drug_control_case", GRID)
        .expect("create");
    wang.set_field(&case, "subject_name", Some(text("赵六")))
        .expect("edit");
    // The unknown-grid report gets a description, a step and a photo on the phone.
    wang.set_field(&unknown, "description", Some(text("山林边界")))
        .expect("edit");
    wang.append_log(
        &unknown,
        values(&[
            ("date", "2026-11-03"),
            ("mediator", WANG),
            ("method", "上门调解"),
        ]),
    )
    .expect("step");
    let photo = b"\xff\xd8 boundary stone".to_vec();
    let sha = wang
        .attach_bytes(
            &unknown,
            NewAttachment {
                field: "site_photos".into(),
                entry: None,
                name: Some("IMG_7.jpg".into()),
                media_type: "image/jpeg".into(),
                taken_at: None,
                location: None,
            },
            &photo,
        )
        .expect("attach");

    let summary = wang.sync(None).expect("sync");
    let mut refused: Vec<(String, String)> = summary
        .rejected
        .iter()
        .map(|r| (r.id.clone(), r.code.clone()))
        .collect();
    refused.sort();
    let mut expected = vec![
        (accepted.clone(), "invalid_text".to_owned()),
        (nul.clone(), "invalid_text".to_owned()),
        (unknown.clone(), "unknown_grid".to_owned()),
    ];
    expected.sort();
    assert_eq!(refused, expected);
    // What the user may not write is not stuck: the server holds it for the people who own it
    // (the other village; the officers, for a case assigned to nobody), and the phone lets go.
    let mut held: Vec<String> = summary.held.iter().map(|h| h.id.clone()).collect();
    held.sort();
    let mut owned_elsewhere = vec![other_village.clone(), case.clone()];
    owned_elsewhere.sort();
    assert_eq!(held, owned_elsewhere);
    for id in [&other_village, &case] {
        assert!(matches!(wang.report(id), Err(ClientError::NotFound(_))));
    }
    assert_eq!(
        summary.pending_uploads, 1,
        "the photo waits with its report"
    );
    let mut stuck: Vec<(String, String, bool)> = wang
        .stuck_reports()
        .expect("stuck")
        .into_iter()
        .map(|s| (s.id, s.code, s.accepted_before))
        .collect();
    stuck.sort();
    let mut listed: Vec<(String, String, bool)> = expected
        .iter()
        .map(|(id, code)| (id.clone(), code.clone(), *id == accepted))
        .collect();
    listed.sort();
    assert_eq!(stuck, listed);
    let rejected = wang
        .report(&nul)
        .expect("report")
        .rejected
        .expect("refused");
    assert_eq!(rejected.code, "invalid_text");
    assert!(rejected.reason.contains("NUL"), "{}", rejected.reason);
    for id in [&nul, &unknown, &other_village, &case] {
        assert_eq!(on_server(db, id), None, "the server holds none of {id}");
    }
    let again = wang.sync(None).expect("sync again");
    assert!(
        again.rejected.is_empty(),
        "nothing is offered twice unchanged"
    );

    // (a) An edit that fixes it is accepted.
    wang.set_field(&nul, "description", Some(text("欠薪纠纷")))
        .expect("fix the text");
    // (b) Moved to the worker's own grid, with its step and photo.
    let moved = wang.move_report(&unknown, GRID).expect("move");
    // (c) Discarded: the accepted one with a NUL edit.
    wang.discard_report(&accepted).expect("discard");
    assert!(
        wang.stuck_reports()
            .expect("stuck")
            .iter()
            .all(|s| s.edited_since)
    );
    let kept: Vec<String> = wang
        .discarded_reports()
        .expect("copies")
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(kept, [unknown.clone(), accepted.clone()]);

    // A sync that fails keeps the copies.
    relay.set_online(false);
    assert!(matches!(wang.sync(None), Err(ClientError::Network(_))));
    assert_eq!(wang.discarded_reports().expect("copies").len(), 2);
    relay.set_online(true);

    let summary = wang.sync(None).expect("sync");
    assert!(summary.rejected.is_empty(), "{:?}", summary.rejected);
    assert_eq!(summary.uploaded_attachments, 1);
    assert_eq!(summary.pending_changes, 0);
    assert!(wang.stuck_reports().expect("stuck").is_empty());
    assert!(wang.discarded_reports().expect("copies").is_empty());
    let fixed = on_server(db, &nul).expect("accepted");
    assert_eq!(fixed["fields"]["description"], json!("欠薪纠纷"));
    let filed = on_server(db, &moved).expect("accepted");
    assert_eq!(
        (filed["grid"].clone(), filed["created_by"].clone()),
        (json!(GRID), json!(WANG))
    );
    assert_eq!(filed["fields"]["description"], json!("山林边界"));
    assert_eq!(filed["log"].as_array().map(Vec::len), Some(1));
    assert_eq!(on_server(db, &unknown), None);
    assert_eq!(on_server(db, &other_village), None);
    // The discarded report the server had accepted came back as the server holds it.
    let back = wang.report(&accepted).expect("back from the server");
    assert!(back.rejected.is_none());
    let back: Value = serde_json::from_str(&back.json).expect("json");
    assert_eq!(back["fields"]["description"], json!("水渠纠纷"));
    assert_eq!(back["fields"].get("place"), None);

    // The cadre of the village sees the moved report and its photo.
    let li = phone(&dir.join("li"), &relay.base);
    li.login("li", PASSWORD, "li's phone").expect("login");
    li.sync(None).expect("sync");
    assert_eq!(li.fetch_attachment(&moved, &sha).expect("photo"), photo);
}
