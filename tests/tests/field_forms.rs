//! Forms published at runtime, end to end against a real `gridsync serve` on SQLite and on
//! Postgres: an admin publishes a kind from the example workbook with the command line while
//! the server runs, and another through the API; a phone (the real library) gets both at its
//! next sync with no rebuild, fills one in offline, syncs it, and the server validates, lists,
//! counts and exports it. The canvass questionnaire's version 2 reaches the phone and new
//! interviews use it. A breaking version is refused with its changes listed, and the phone
//! keeps its forms through a restart.

use std::collections::HashMap;
use std::path::Path;

use gridsync_e2e::field::{self, GRID, PASSWORD, Relay, quick};
use gridsync_e2e::{Server, gridsync};
use gridsync_mobile::FieldValue;
use gridsync_mobile::client::Client;
use serde_json::{Value, json};

const KEY: [u8; 32] = [0x3c; 32];
const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/forms/anti_fraud_visit.xlsx"
);

/// A flood check a township launches in the rainy season, written as schema JSON.
fn flood_check() -> Value {
    json!({
        "kind": "flood_check",
        "version": 1,
        "label": { "zh": "汛期隐患排查", "en": "Flood-season check" },
        "status_field": "status",
        "fields": [
            { "id": "checked_on", "label": { "zh": "排查日期", "en": "Checked on" },
              "type": "date", "required": true },
            { "id": "hazard", "label": { "zh": "隐患类型", "en": "Hazard" },
              "type": "single_choice", "required": true, "choices": [
                { "id": "dyke", "label": { "zh": "堤坝", "en": "Dyke" } },
                { "id": "landslide", "label": { "zh": "山体滑坡", "en": "Landslide" } },
                { "id": "house", "label": { "zh": "危房", "en": "Unsafe house" } }
              ] },
            { "id": "status", "label": { "zh": "状态", "en": "Status" },
              "type": "single_choice", "required": true, "choices": [
                { "id": "open", "label": { "zh": "待整改", "en": "Open" } },
                { "id": "fixed", "label": { "zh": "已整改", "en": "Fixed" } }
              ] }
        ]
    })
}

fn text(value: &str) -> FieldValue {
    FieldValue::Text {
        value: value.into(),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("scenario")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_gets_forms_published_at_runtime_and_files_one_offline_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("server.db").display());
    field::seed(&db).await;
    let server = Server::start(&db, PASSWORD).await;
    let base = server.base.clone();
    blocking(move || scenario(&db, &base, dir.path())).await;
    assert!(server.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_gets_forms_published_at_runtime_and_files_one_offline_on_postgres() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = field::fresh_postgres_database("gridsync_forms").await;
    field::seed(&db).await;
    let server = Server::start(&db, PASSWORD).await;
    let base = server.base.clone();
    blocking(move || scenario(&db, &base, dir.path())).await;
    assert!(server.stop().await.success());
}

/// An admin's session over HTTP, as the console or a script has it, called from the blocking
/// scenario on the test's runtime.
struct Admin {
    http: reqwest::Client,
    base: String,
    token: String,
}

fn wait<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Handle::current().block_on(f)
}

impl Admin {
    fn login(base: &str) -> Admin {
        let http = reqwest::Client::new();
        let login: Value = wait(async {
            http.post(format!("{base}/api/v1/auth/login"))
                .json(&json!({
                    "username": "admin", "password": PASSWORD,
                    "device_id": "console", "device_name": "console"
                }))
                .send()
                .await
                .expect("login")
                .json()
                .await
                .expect("tokens")
        });
        Admin {
            http,
            base: base.to_owned(),
            token: login["access_token"].as_str().expect("token").to_owned(),
        }
    }

    fn post(&self, path: &str, media_type: &str, body: Vec<u8>) -> (u16, Value) {
        wait(async {
            let answer = self
                .http
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .header("content-type", media_type)
                .body(body)
                .send()
                .await
                .expect("request");
            let status = answer.status().as_u16();
            (status, answer.json().await.unwrap_or(Value::Null))
        })
    }

    fn get(&self, path: &str) -> String {
        wait(async {
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .send()
                .await
                .expect("request")
                .text()
                .await
                .expect("body")
        })
    }

    fn get_json(&self, path: &str) -> Value {
        serde_json::from_str(&self.get(path)).expect("JSON")
    }
}

fn scenario(db: &str, base: &str, dir: &Path) {
    let relay = Relay::start(base);
    let open = || Client::open(&dir.join("wang"), &relay.base, &KEY, quick()).expect("open");
    let wang = open();
    wang.login("wang", PASSWORD, "wang's phone").expect("login");
    wang.sync(None).expect("first sync");
    let kinds = |c: &Client| -> Vec<String> { c.schemas().into_iter().map(|k| k.kind).collect() };
    assert_eq!(
        kinds(&wang),
        ["dispute_check", "drug_control_case", "satisfaction_canvass"]
    );

    // The township's anti-fraud campaign, from Excel, with the command line beside the server.
    let published = gridsync(&["schema", "publish", EXAMPLE], &[("GRIDSYNC_DB", db)]);
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    // The flood check, through the API.
    let admin = Admin::login(base);
    let (status, kept) = admin.post(
        "/api/v1/schemas",
        "application/json",
        flood_check().to_string().into_bytes(),
    );
    assert_eq!(status, 201, "{kept}");
    let (status, answer) = admin.post(
        "/api/v1/schemas/flood_check/1/publish",
        "application/json",
        Vec::new(),
    );
    assert_eq!(status, 200, "{answer}");

    let synced = wang.sync(None).expect("sync after publishing");
    assert_eq!(synced.new_schemas, 2);
    assert_eq!(
        kinds(&wang),
        [
            "anti_fraud_visit",
            "dispute_check",
            "drug_control_case",
            "flood_check",
            "satisfaction_canvass"
        ]
    );
    let form = wang.schema("anti_fraud_visit").expect("the new form");
    assert!(
        form.fields
            .iter()
            .any(|f| f.id == "household_head" && f.sensitive)
    );

    // Offline in the village: a visit filled in, checked as the form is filled.
    relay.set_online(false);
    let id = wang
        .create_report("anti_fraud_visit", GRID)
        .expect("create a visit");
    let too_few = wang
        .validate_value(
            "anti_fraud_visit",
            "people_home",
            false,
            Some(FieldValue::Integer { value: -1 }),
        )
        .expect("validate");
    assert!(!too_few.is_empty(), "a negative head count is refused");
    wang.set_fields(
        &id,
        HashMap::from([
            ("visited_on".to_owned(), text("2026-12-04")),
            ("household_head".to_owned(), text("赵六")),
            ("app_installed".to_owned(), text("no")),
            ("suspicious_contact".to_owned(), text("yes")),
            ("status".to_owned(), text("follow_up")),
        ]),
    )
    .expect("fill the visit");
    let problems = wang.validate_report(&id).expect("validate");
    assert!(
        problems.iter().any(|p| p.path == "fields.scam_types"),
        "scam kinds are required once a suspicious contact is reported: {problems:?}"
    );
    wang.set_fields(
        &id,
        HashMap::from([(
            "scam_types".to_owned(),
            FieldValue::Choices {
                values: vec!["order_brushing".into()],
            },
        )]),
    )
    .expect("add the scam");
    assert!(wang.validate_report(&id).expect("validate").is_empty());
    assert!(wang.sync(None).is_err(), "offline");
    relay.set_online(true);
    let delivered = wang.sync(None).expect("sync the visit");
    assert_eq!(
        (delivered.pushed_reports, delivered.pending_changes),
        (1, 0)
    );

    // The office sees it, validated, and exports it in the kind's ledger.
    let seen = admin.get_json(&format!("/api/v1/reports/{id}"));
    assert_eq!(seen["kind"], "anti_fraud_visit");
    assert_eq!(seen["status"], "follow_up");
    assert_eq!(seen["problems"], json!([]));
    let ledger = admin.get("/api/v1/export?kind=anti_fraud_visit&format=csv");
    assert!(ledger.contains("户主姓名"), "{ledger}");
    assert!(ledger.contains("赵六"), "{ledger}");
    let counted =
        admin.get_json("/api/v1/stats/kinds/anti_fraud_visit?from=2020-01-01&to=2099-12-31");
    assert_eq!(counted["total"]["total"], 1, "{counted}");
    assert_eq!(counted["total"]["by_status"]["follow_up"], 1, "{counted}");
    assert_eq!(counted["total"]["by_status"]["visited"], 0, "{counted}");
    let out = dir.join("visits.csv");
    let exported = gridsync(
        &[
            "export",
            "--kind",
            "anti_fraud_visit",
            out.to_str().expect("path"),
        ],
        &[("GRIDSYNC_DB", db)],
    );
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    assert!(
        std::fs::read_to_string(&out)
            .expect("ledger file")
            .contains("赵六")
    );

    // Next year's questionnaire: one question more. New interviews use it at once.
    let canvass_v2 = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/forms/satisfaction_canvass.v2.json"
    );
    let published = gridsync(&["schema", "publish", canvass_v2], &[("GRIDSYNC_DB", db)]);
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    wang.sync(None).expect("sync the new questionnaire");
    let canvass = wang.schema("satisfaction_canvass").expect("the canvass");
    assert_eq!(canvass.version, 2);
    assert!(
        canvass
            .fields
            .iter()
            .any(|f| f.id == "satisfaction_grid_service")
    );
    let interview = wang
        .create_report("satisfaction_canvass", GRID)
        .expect("an interview");
    assert_eq!(
        wang.report(&interview).expect("interview").schema_version,
        2
    );

    // A version 2 that drops the status question would change what the visit above means.
    let mut breaking = admin.get_json("/api/v1/schemas/anti_fraud_visit/1");
    breaking["version"] = json!(2);
    breaking["status_field"] = Value::Null;
    let fields = breaking["fields"].as_array_mut().expect("fields");
    fields.retain(|f| f["id"] != "status");
    let file = dir.join("anti_fraud_visit.v2.json");
    std::fs::write(&file, breaking.to_string()).expect("write v2");
    let refused = gridsync(
        &["schema", "publish", file.to_str().expect("path")],
        &[("GRIDSYNC_DB", db)],
    );
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("`status`"), "{said}");

    // Forms are kept on the phone: after a restart, offline, they are all still there.
    drop(wang);
    relay.set_online(false);
    let reopened = open();
    assert!(kinds(&reopened).contains(&"flood_check".to_owned()));
    assert_eq!(
        reopened.report(&id).expect("the visit").kind,
        "anti_fraud_visit"
    );
}
