//! The office console in a real browser: a real `gridsync serve` (SQLite, then Postgres) seeded
//! with an org tree, reports and a conflict that two offline replicas made, driven by headless
//! Chromium through playwright-core (`tests/browser/console.cjs`), which also publishes the
//! example form (`examples/forms/anti_fraud_visit.xlsx`) from the forms page. Screenshots land in
//! `target/console-screenshots/<database>/`.
//!
//! Needs Debian's `chromium` and the npm package `playwright-core` in
//! `$GRIDSYNC_TOOLS_DIR/playwright` (default `~/.cache/gridsync-tools`); `./scripts/test`
//! installs both. Without them the test fails and says so: it never skips.
//!
//! A second, smaller test runs `tests/browser/demo_console.cjs` against `gridsync serve --demo`
//! (SQLite only): the dashboard over the demo district and one of its conflicts resolved.

use std::path::{Path, PathBuf};

use gridsync_core::DocId;
use gridsync_core::attachment::Attachment;
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_e2e::field::fresh_postgres_database;
use gridsync_e2e::{Server, server_binary};
use gridsync_fixtures::fixture::Fixture;
use gridsync_fixtures::org::OrgTree;
use gridsync_fixtures::phone::Phone;
use gridsync_server::store::Level;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest;

const PASSWORD: &str = "console admin password";
/// The file name of the site photo attached to the conflicted report.
const PHOTO_NAME: &str = "界桩现场.jpg";
/// Township staff of t1: no clearance for personal data.
const STAFF: &str = "zhao";
const STAFF_PASSWORD: &str = "township staff password";
/// The two values of the conflicting field; the test keeps the one that automerge did not show.
const VALUES: [&str; 2] = ["村委会门口", "河边晒谷场"];

/// Township t1 (village v1, grid g1) and street s1 (community c1, grid g2), named as an office
/// reads them.
fn district() -> Fixture {
    Fixture::new(
        OrgTree::district("城东区")
            .unit("t1", "d", Level::Township, "青山镇")
            .unit("s1", "d", Level::Street, "解放街道")
            .unit("v1", "t1", Level::Village, "河口村")
            .unit("c1", "s1", Level::Community, "和平社区")
            .unit("g1", "v1", Level::Grid, "河口村第一网格")
            .unit("g2", "c1", Level::Grid, "和平社区第二网格"),
    )
}

/// A JSON request as `client`; panics unless it answers 2xx.
async fn call(client: &Phone, method: Method, path: &str, body: Option<Value>) -> Value {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", client.base))
        .bearer_auth(&client.token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    assert!(status.is_success(), "{path} answered {status}: {text}");
    serde_json::from_str(&text).expect("JSON answer")
}

/// Reports for the list, and one whose `place` two offline replicas set at the same time.
/// Returns that report's id and the value the console must keep.
async fn seed_reports(server: &Server) -> (DocId, String) {
    let office = Phone::login(&server.base, "admin", PASSWORD, "seed-office")
        .await
        .expect("login");
    for (username, name, password, role, unit) in [
        (
            "wang",
            "王小明",
            "a grid worker's password",
            "grid_worker",
            "g1",
        ),
        (STAFF, "赵主任", STAFF_PASSWORD, "township_staff", "t1"),
    ] {
        let user = json!({
            "username": username, "display_name": name, "password": password,
            "role": role, "org_unit_id": unit,
        });
        call(&office, Method::POST, "/api/v1/users", Some(user)).await;
    }
    let reports = [
        (
            "g1",
            json!({
                "category": "neighbour", "description": "宅基地边界争议，双方多次争吵",
                "parties": "张某、李某", "risk_level": "medium", "status": "mediating",
                "found_on": "2026-11-02",
            }),
        ),
        (
            "g1",
            json!({
                "category": "labour_wages", "description": "工地拖欠三名村民工资",
                "risk_level": "high", "status": "reported", "found_on": "2026-11-20",
            }),
        ),
        (
            "g2",
            json!({
                "category": "environment_nuisance", "description": "夜市噪音扰民",
                "risk_level": "low", "status": "resolved", "found_on": "2026-10-15",
            }),
        ),
    ];
    for (grid, fields) in reports {
        call(
            &office,
            Method::POST,
            "/api/v1/reports",
            Some(json!({"kind": "dispute_check", "grid_id": grid, "fields": fields})),
        )
        .await;
    }

    // A kind published at runtime, and a report of it: the dashboard gives it a card by status.
    let patrol = gridsync_fixtures::forms::street_patrol();
    call(&office, Method::POST, "/api/v1/schemas", Some(patrol)).await;
    call(
        &office,
        Method::POST,
        "/api/v1/schemas/street_patrol/1/publish",
        None,
    )
    .await;
    call(
        &office,
        Method::POST,
        "/api/v1/reports",
        Some(json!({"kind": "street_patrol", "grid_id": "g1",
                    "fields": {"place": "河口桥头", "outcome": "handled"}})),
    )
    .await;

    let (mut a, mut b) = (
        Phone::login(&server.base, "admin", PASSWORD, "phone-a")
            .await
            .expect("login"),
        Phone::login(&server.base, "admin", PASSWORD, "phone-b")
            .await
            .expect("login"),
    );
    let id = DocId::new_v4();
    let editor = Editor::new(&a.user_id, 1_795_165_200);
    let mut doc = ReportDoc::create(id, "dispute_check", 1, "g1", &editor).expect("create");
    for (field, value) in [
        ("category", json!("land_property")),
        ("description", json!("承包地界桩被移动")),
        ("risk_level", json!("medium")),
        ("status", json!("mediating")),
        ("found_on", json!("2026-11-10")),
    ] {
        doc.set_field(field, &value, &editor).expect("set");
    }
    // A site photo, recorded in the document offline and uploaded after the push, as a phone does.
    let photo = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../mobile-bindings/tests/bindings/site_photo.jpg"),
    )
    .expect("the test photo");
    let sha256 = hex::encode(sha2::Sha256::digest(&photo));
    doc.attach(
        Attachment {
            sha256: sha256.clone(),
            media_type: "image/jpeg".into(),
            size: photo.len() as u64,
            name: PHOTO_NAME.into(),
            field: "site_photos".into(),
            entry: None,
            taken_at: "2026-11-10T09:30:00+08:00".into(),
            location: None,
            attached_by: String::new(),
        },
        &editor,
    )
    .expect("attach");
    a.replica.insert(doc);
    a.sync().await.expect("sync");
    let uploaded = reqwest::Client::new()
        .put(format!(
            "{}/api/v1/reports/{id}/attachments/{sha256}",
            server.base
        ))
        .bearer_auth(&a.token)
        .header("content-type", "image/jpeg")
        .header(
            "content-range",
            format!("bytes 0-{}/{}", photo.len() - 1, photo.len()),
        )
        .body(photo)
        .send()
        .await
        .expect("upload");
    assert!(
        uploaded.status().is_success(),
        "upload: {}",
        uploaded.status()
    );
    b.sync().await.expect("sync");
    // Both phones are offline when they set the place.
    let author = a.user_id.clone();
    for (phone, value, at) in [
        (&mut a, VALUES[0], 1_795_744_800),
        (&mut b, VALUES[1], 1_795_745_460),
    ] {
        phone
            .replica
            .doc_mut(&id)
            .expect("held")
            .set_field("place", &json!(value), &Editor::new(&author, at))
            .expect("edit");
    }
    a.sync().await.expect("sync");
    b.sync().await.expect("sync");

    // Wang, of g1, recorded a report for g2 while he still covered it: the server holds it for
    // g2's people (the console's held-work page).
    let mut wang = Phone::login(
        &server.base,
        "wang",
        "a grid worker's password",
        "wang-phone",
    )
    .await
    .expect("login");
    wang.edit(DocId::new_v4(), "g2", "夜市占道", 1_795_740_000);
    wang.push().await.expect("push");

    let report = call(&office, Method::GET, &format!("/api/v1/reports/{id}"), None).await;
    let conflicts = report["conflicts"].as_array().expect("conflicts");
    assert_eq!(conflicts.len(), 1, "the seeded conflict is open: {report}");
    let shown = report["fields"]["place"].as_str().expect("a place");
    let chosen = VALUES
        .iter()
        .find(|v| **v != shown)
        .expect("the other value");
    (id, (*chosen).to_owned())
}

fn tools_dir() -> PathBuf {
    std::env::var_os("GRIDSYNC_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/gridsync-tools")
        })
}

/// `target/console-screenshots/<name>`, beside the profile directory the binary was built in.
fn screenshot_dir(name: &str) -> PathBuf {
    let bin = server_binary();
    let target = bin
        .parent()
        .and_then(Path::parent)
        .expect("the binary sits in target/<profile>/");
    target.join("console-screenshots").join(name)
}

/// Debian's chromium (or `GRIDSYNC_CHROMIUM`) and the `node_modules` holding playwright-core;
/// panics, saying how to install them, when either is missing.
fn browser_tools() -> (String, PathBuf) {
    let chromium =
        std::env::var("GRIDSYNC_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let node_modules = tools_dir().join("playwright/node_modules");
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: install Debian's chromium (./scripts/test does) or set GRIDSYNC_CHROMIUM"
    );
    assert!(
        node_modules.join("playwright-core").exists(),
        "playwright-core is missing from {}: ./scripts/test installs it (npm install --prefix {} playwright-core@1)",
        node_modules.display(),
        tools_dir().join("playwright").display()
    );
    (chromium, node_modules)
}

/// The example form the admin publishes from the forms page.
fn example_form() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/forms/anti_fraud_visit.xlsx")
}

/// A workbook an office got wrong: its one question has no Chinese label, at `survey!C2`.
fn unlabelled_form(dir: &Path) -> PathBuf {
    let mut book = rust_xlsxwriter::Workbook::new();
    let survey = book.add_worksheet().set_name("survey").expect("sheet");
    survey
        .write_row(0, 0, ["type", "name", "label::zh", "label::en"])
        .expect("header");
    survey
        .write_row(1, 0, ["text", "address", "", "Address"])
        .expect("row");
    let settings = book.add_worksheet().set_name("settings").expect("sheet");
    settings
        .write_row(
            0,
            0,
            ["form_id", "version", "form_title::zh", "form_title::en"],
        )
        .expect("header");
    settings
        .write_row(1, 0, ["unlabelled_form", "1", "缺标签", "Unlabelled"])
        .expect("row");
    let path = dir.join("unlabelled_form.xlsx");
    book.save(&path).expect("save the workbook");
    path
}

/// The screenshots in `shots` include one ending in each of `steps`.
fn assert_screenshots(shots: &Path, steps: &[&str]) {
    let saved: Vec<String> = std::fs::read_dir(shots)
        .expect("the screenshot folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    for step in steps {
        assert!(
            saved.iter().any(|name| name.ends_with(step)),
            "no *{step} in {}: {saved:?}",
            shots.display()
        );
    }
}

async fn an_admin_works_the_console_in_headless_chromium(db: &str, name: &str) {
    let (chromium, node_modules) = browser_tools();
    district()
        .seed_database(db)
        .await
        .expect("seed the org tree");
    let server = Server::start(db, PASSWORD).await;
    let (id, chosen) = seed_reports(&server).await;
    let other = VALUES.iter().find(|v| **v != chosen).expect("two values");

    let page = reqwest::get(format!("{}/", server.base))
        .await
        .expect("GET /");
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );

    let shots = screenshot_dir(name);
    let _ = std::fs::remove_dir_all(&shots);
    let forms = tempfile::tempdir().expect("temp dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/console.cjs");
    let run = tokio::process::Command::new("node")
        .arg(&script)
        .env("NODE_PATH", &node_modules)
        .env("CONSOLE_BASE", &server.base)
        .env("CONSOLE_USERNAME", "admin")
        .env("CONSOLE_PASSWORD", PASSWORD)
        .env("CONSOLE_STAFF_USERNAME", STAFF)
        .env("CONSOLE_STAFF_PASSWORD", STAFF_PASSWORD)
        .env("CONSOLE_CHOSEN_VALUE", &chosen)
        .env("CONSOLE_OTHER_VALUE", other)
        .env("CONSOLE_PHOTO_NAME", PHOTO_NAME)
        .env("CONSOLE_FORM", example_form())
        .env("CONSOLE_BAD_FORM", unlabelled_form(forms.path()))
        .env("CONSOLE_SHOTS", &shots)
        .env("CONSOLE_CHROMIUM", &chromium)
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(std::time::Duration::from_secs(180), run)
        .await
        .expect("the browser test ends within 3 minutes")
        .expect("run node (Debian's nodejs)");
    assert!(status.success(), "the browser test failed: {status}");
    assert_screenshots(
        &shots,
        &[
            "-dashboard.png",
            "-dashboard-kind.png",
            "-photo.png",
            "-resolved.png",
            "-report-english.png",
            "-form-preview.png",
            "-form-published.png",
            "-password-changed.png",
        ],
    );

    // What the browser did is what the server holds.
    let office = Phone::login(&server.base, "admin", PASSWORD, "check")
        .await
        .expect("login");
    let report = call(&office, Method::GET, &format!("/api/v1/reports/{id}"), None).await;
    assert_eq!(report["conflicts"], json!([]));
    assert_eq!(report["fields"]["place"], json!(chosen));
    assert_eq!(report["review_state"], json!("approved"));
    let devices = call(&office, Method::GET, "/api/v1/devices", None).await;
    let devices = devices.as_array().expect("devices");
    assert!(
        devices
            .iter()
            .any(|d| d["id"].as_str().is_some_and(|i| i.starts_with("console-"))),
        "the browser logged in as a device of its own: {devices:?}"
    );
    let revoked = devices
        .iter()
        .find(|d| d["id"] == "seed-office")
        .expect("the seeding device");
    assert!(revoked["revoked_at"].is_i64(), "{revoked}");
    let versions = call(&office, Method::GET, "/api/v1/schemas/versions", None).await;
    let states: Vec<(&str, &str)> = versions
        .as_array()
        .expect("versions")
        .iter()
        .filter(|v| v["source"] != "builtin")
        .map(|v| {
            (
                v["kind"].as_str().expect("kind"),
                v["state"].as_str().expect("state"),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("anti_fraud_visit", "published"),
            ("street_patrol", "published")
        ],
        "the example form published in the browser beside the seeded one, and the refused ones \
         kept nowhere"
    );
    assert_eq!(revoked["state"], json!("revoked"));
    let held = call(&office, Method::GET, "/api/v1/held?state=merged", None).await;
    assert_eq!(
        held["items"].as_array().map(Vec::len),
        Some(1),
        "merged in the browser"
    );
    let users = call(&office, Method::GET, "/api/v1/users", None).await;
    let wang = users["items"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["username"] == "wang")
        .expect("wang");
    assert_eq!(wang["disabled"], json!(true));
    let audit = call(
        &office,
        Method::GET,
        "/api/v1/audit?action=password_change",
        None,
    )
    .await;
    assert_eq!(
        audit["items"].as_array().map(Vec::len),
        Some(1),
        "the staff member changed their password in the browser: {audit}"
    );
    assert!(server.stop().await.success());
}

#[tokio::test]
async fn an_admin_works_the_console_in_headless_chromium_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("gridsync.db").display());
    an_admin_works_the_console_in_headless_chromium(&db, "sqlite").await;
}

#[tokio::test]
async fn an_admin_works_the_console_in_headless_chromium_on_postgres() {
    let db = fresh_postgres_database("gridsync_console").await;
    an_admin_works_the_console_in_headless_chromium(&db, "postgres").await;
}

/// The demo district's admin; its password is the demo's, whatever `GRIDSYNC_ADMIN_PASSWORD` says.
const DEMO_ADMIN: &str = "admin";
const DEMO_PASSWORD: &str = "gridsync-demo";

/// Every open conflict the demo admin sees, and their total.
async fn open_conflicts(client: &Phone) -> (Vec<Value>, i64) {
    let mut items = Vec::new();
    let mut path = "/api/v1/conflicts?limit=200".to_owned();
    loop {
        let page = call(client, Method::GET, &path, None).await;
        items.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/conflicts?limit=200&cursor={cursor}"),
            None => return (items, page["total"].as_i64().expect("total")),
        }
    }
}

#[tokio::test]
async fn an_admin_resolves_a_demo_conflict_in_headless_chromium() {
    let (chromium, node_modules) = browser_tools();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("demo.db").display());
    let server = Server::start_with(&db, "unused: the demo makes admin", &["--demo"]).await;

    // A conflict of two values of a top-level field, which the report page shows among its fields.
    let office = Phone::login(&server.base, DEMO_ADMIN, DEMO_PASSWORD, "check")
        .await
        .expect("login");
    let (conflicts, total) = open_conflicts(&office).await;
    assert_eq!(conflicts.len() as i64, total);
    let conflict = conflicts
        .iter()
        .find(|c| {
            c["code"] == "concurrent_values"
                && c["path"].as_str().is_some_and(|p| p.starts_with("fields."))
                && c["detail"].as_array().is_some_and(|d| {
                    d.len() == 2 && d[0]["value"] != d[1]["value"] && d[1]["value"] != "***"
                })
        })
        .unwrap_or_else(|| panic!("the demo holds a conflict of two field values: {conflicts:?}"));
    let id = conflict["id"].as_i64().expect("conflict id");
    let report_id = conflict["report_id"].as_str().expect("report id");
    let field = &conflict["path"].as_str().expect("path")["fields.".len()..];
    let chosen = conflict["detail"][1]["value"].clone();

    let shots = screenshot_dir("demo");
    let _ = std::fs::remove_dir_all(&shots);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/demo_console.cjs");
    let run = tokio::process::Command::new("node")
        .arg(&script)
        .env("NODE_PATH", &node_modules)
        .env("CONSOLE_BASE", &server.base)
        .env("CONSOLE_USERNAME", DEMO_ADMIN)
        .env("CONSOLE_PASSWORD", DEMO_PASSWORD)
        .env("CONSOLE_REPORT_ID", report_id)
        .env("CONSOLE_CONFLICT_ID", id.to_string())
        .env("CONSOLE_FIELD", field)
        .env("CONSOLE_SHOTS", &shots)
        .env("CONSOLE_CHROMIUM", &chromium)
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(std::time::Duration::from_secs(180), run)
        .await
        .expect("the browser test ends within 3 minutes")
        .expect("run node (Debian's nodejs)");
    assert!(status.success(), "the browser test failed: {status}");
    assert_screenshots(
        &shots,
        &[
            "-dashboard.png",
            "-conflicts.png",
            "-resolved.png",
            "-report-english.png",
        ],
    );

    // What the browser did is what the server holds: one conflict fewer, the chosen value kept.
    let (after, left) = open_conflicts(&office).await;
    assert_eq!(
        left,
        total - 1,
        "the count of open conflicts dropped by one"
    );
    assert!(
        after.iter().all(|c| c["id"] != id),
        "conflict {id} is closed"
    );
    let report = call(
        &office,
        Method::GET,
        &format!("/api/v1/reports/{report_id}"),
        None,
    )
    .await;
    assert_eq!(report["fields"][field], chosen, "{report}");
    assert!(server.stop().await.success());
}
