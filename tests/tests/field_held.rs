//! The phone library (gridsync-mobile's `Client`) against a real `gridsync serve`, on SQLite and
//! Postgres, where the office changes things while a worker is offline: a drug-control case
//! reassigned, a worker moved to another village, a phone handed in, a worker disabled. In each,
//! nothing the worker recorded is lost: it reaches the report, or it waits on the server as held
//! work for the people who own the report now, and the phone drops a report only after that.

use std::collections::HashMap;
use std::path::Path;

use gridsync_e2e::Server;
use gridsync_e2e::field::{self, GRID, PASSWORD, quick};
use gridsync_mobile::client::Client;
use gridsync_mobile::{ClientError, FieldValue};
use gridsync_server::scope::Role;
use gridsync_server::store::Level;
use serde_json::{Value, json};

const KEY: [u8; 32] = [0x6b; 32];

fn text(value: &str) -> FieldValue {
    FieldValue::Text {
        value: value.into(),
    }
}

fn values(pairs: &[(&str, &str)]) -> HashMap<String, FieldValue> {
    pairs.iter().map(|(k, v)| ((*k).into(), text(v))).collect()
}

/// The field fixture's district (g1 in village v1, with wang and li) plus a second worker of
/// g1, a drug-control officer of the township, and a second village v2 with grid g3 and its
/// worker.
async fn start(db: &str) -> Server {
    field::district()
        .unit("v2", "t1", Level::Village, "v2")
        .unit("g3", "v2", Level::Grid, "g3")
        .people([
            field::person("zhao", Role::GridWorker, GRID),
            field::person("zhou", Role::DrugControlOfficer, "t1"),
            field::person("sun", Role::GridWorker, "g3"),
        ])
        .seed_database(db)
        .await
        .expect("seed");
    Server::start(db, PASSWORD).await
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("scenario")
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("server.db").display())
}

/// Runs `scenario` against a server on a fresh database of each backend.
macro_rules! on_both_databases {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let db = super::sqlite_url(dir.path());
                    let server = super::start(&db).await;
                    let base = server.base.clone();
                    super::blocking(move || super::$scenario(&base, dir.path())).await;
                    assert!(server.stop().await.success());
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let db = gridsync_e2e::field::fresh_postgres_database("gridsync_held").await;
                    let server = super::start(&db).await;
                    let base = server.base.clone();
                    super::blocking(move || super::$scenario(&base, dir.path())).await;
                    assert!(server.stop().await.success());
                }
            )*
        }
    };
}

on_both_databases!(
    a_visit_recorded_offline_on_a_reassigned_case_is_held_then_merged_for_the_new_worker,
    a_worker_moved_to_another_village_keeps_their_phone_and_their_offline_work_is_held,
    a_retired_phone_delivers_everything_before_it_wipes_itself,
    a_disabled_workers_phone_delivers_what_it_holds_then_wipes_itself,
);

fn phone(dir: &Path, name: &str, base: &str) -> Client {
    Client::open(&dir.join(name), base, &KEY, quick()).expect("open the phone's store")
}

/// The office, over the HTTP API, as the first admin.
struct Office {
    base: String,
    token: String,
}

impl Office {
    fn login(base: &str) -> Office {
        let client = run(gridsync_fixtures::phone::Phone::login(
            base,
            "admin",
            PASSWORD,
            "office-pc",
        ))
        .expect("login");
        Office {
            base: base.to_owned(),
            token: client.token,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        run(async {
            let http = reqwest::Client::new();
            let url = format!("{}{path}", self.base);
            let request = match method {
                "GET" => http.get(url),
                "POST" => http.post(url),
                "PATCH" => http.patch(url),
                other => panic!("no method {other}"),
            };
            let request = match body {
                Some(body) => request.json(&body),
                None => request,
            };
            let answer = request
                .bearer_auth(&self.token)
                .send()
                .await
                .expect("request");
            let status = answer.status().as_u16();
            let body = answer.json().await.unwrap_or(Value::Null);
            (status, body)
        })
    }

    fn device(&self, id: &str) -> Value {
        let (status, devices) = self.call("GET", "/api/v1/devices", None);
        assert_eq!(status, 200);
        devices
            .as_array()
            .expect("devices")
            .iter()
            .find(|d| d["id"] == json!(id))
            .cloned()
            .expect("the device is listed")
    }

    fn report(&self, id: &str) -> Value {
        let (status, report) = self.call("GET", &format!("/api/v1/reports/{id}"), None);
        assert_eq!(status, 200, "{report}");
        report
    }

    fn held(&self, report: &str) -> Vec<Value> {
        let (status, list) = self.call("GET", &format!("/api/v1/held?report={report}"), None);
        assert_eq!(status, 200, "{list}");
        list["items"].as_array().expect("items").clone()
    }
}

fn run<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Handle::current().block_on(future)
}

fn a_visit_recorded_offline_on_a_reassigned_case_is_held_then_merged_for_the_new_worker(
    base: &str,
    dir: &Path,
) {
    let office = Office::login(base);
    let officer = phone(dir, "zhou", base);
    officer.login("zhou", PASSWORD, "officer").expect("login");
    let case = officer
        .create_report("drug_control_case", GRID)
        .expect("create");
    officer
        .set_fields(
            &case,
            values(&[
                ("subject_name", "赵某"),
                ("subject_id_number", "110105194912310021"),
                ("subject_address", "上坪村3组"),
                ("programme", "community_rehabilitation"),
                ("programme_start", "2026-01-05"),
                ("assigned_worker", "user-wang"),
                ("status", "active"),
            ]),
        )
        .expect("fill");
    officer.sync(None).expect("sync");

    let wang = phone(dir, "wang", base);
    wang.login("wang", PASSWORD, "wang's phone").expect("login");
    wang.sync(None).expect("sync");
    assert!(
        wang.report(&case).is_ok(),
        "the assigned worker holds the case"
    );

    // Offline for days: a visit with a positive urine test, the case set to relapsed, the
    // address corrected.
    wang.append_log(
        &case,
        values(&[
            ("date", "2026-11-20"),
            ("visitor", "user-wang"),
            ("test", "urine"),
            ("test_result", "positive"),
            ("notes", "尿检阳性"),
        ]),
    )
    .expect("visit");
    wang.set_fields(
        &case,
        values(&[("status", "relapsed"), ("subject_address", "上坪村5组")]),
    )
    .expect("edit");

    // Meanwhile the office reassigns the case to zhao, of the same grid. Another grid's worker
    // could not see it there, so that is refused.
    let patch = |who: &str| json!({ "fields": { "assigned_worker": who } });
    let (status, problem) = office.call(
        "PATCH",
        &format!("/api/v1/reports/{case}"),
        Some(patch("user-sun")),
    );
    assert_eq!(
        (status, &problem["code"]),
        (422, &json!("validation")),
        "{problem}"
    );
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("assignee_out_of_reach")),
        "{problem}"
    );
    let (status, _) = office.call(
        "PATCH",
        &format!("/api/v1/reports/{case}"),
        Some(patch("user-zhao")),
    );
    assert_eq!(status, 200);

    let summary = wang.sync(None).expect("sync");
    assert_eq!(summary.held.len(), 1, "{summary:?}");
    assert_eq!(
        (summary.held[0].id.as_str(), summary.held[0].code.as_str()),
        (case.as_str(), "out_of_scope")
    );
    assert_eq!(summary.pending_changes, 0, "the server holds the work");
    assert!(
        matches!(wang.report(&case), Err(ClientError::NotFound(_))),
        "dropped only once the server held its changes"
    );
    assert_eq!(
        office.device(&wang.device_id().expect("device"))["pending_changes"],
        json!(0)
    );

    // The server's case is unchanged until someone decides; the office sees the held visit.
    assert_eq!(office.report(&case)["fields"]["status"], json!("active"));
    let held = office.held(&case);
    assert_eq!(held.len(), 1);
    let item = &held[0];
    assert_eq!(item["author_id"], json!("user-wang"));
    let paths: Vec<&str> = item["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .filter_map(|d| d["path"].as_str())
        .collect();
    assert!(paths.contains(&"fields.status"), "{paths:?}");
    assert!(paths.contains(&"fields.subject_address"), "{paths:?}");
    assert!(paths.iter().any(|p| p.starts_with("log[")), "{paths:?}");

    let (status, merged) = office.call(
        "POST",
        &format!("/api/v1/held/{}/merge", item["id"]),
        Some(json!({ "note": "核实属实" })),
    );
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["state"], json!("merged"));
    let (status, again) = office.call(
        "POST",
        &format!("/api/v1/held/{}/decline", item["id"]),
        Some(json!({ "note": "twice" })),
    );
    assert_eq!((status, &again["code"]), (409, &json!("conflict")));

    let report = office.report(&case);
    assert_eq!(report["fields"]["status"], json!("relapsed"));
    assert_eq!(report["fields"]["subject_address"], json!("上坪村5组"));
    assert_eq!(report["fields"]["assigned_worker"], json!("user-zhao"));
    let (_, history) = office.call("GET", &format!("/api/v1/reports/{case}/history"), None);
    assert!(
        history.to_string().contains("user-wang"),
        "the visit stays attributed to the worker who made it: {history}"
    );

    // The new worker receives the case with the visit.
    let zhao = phone(dir, "zhao", base);
    zhao.login("zhao", PASSWORD, "zhao's phone").expect("login");
    zhao.sync(None).expect("sync");
    let got = zhao.report(&case).expect("the new worker holds the case");
    assert_eq!(got.log.len(), 1);
    let status = got
        .fields
        .iter()
        .find(|f| f.field == "status")
        .map(|f| f.value.clone());
    assert_eq!(status, Some(text("relapsed")));
}

fn a_worker_moved_to_another_village_keeps_their_phone_and_their_offline_work_is_held(
    base: &str,
    dir: &Path,
) {
    let office = Office::login(base);
    let sun = phone(dir, "sun", base);
    sun.login("sun", PASSWORD, "sun's phone").expect("login");
    let there = sun.create_report("dispute_check", "g3").expect("create");
    sun.set_field(&there, "parties", Some(text("孙家")))
        .expect("edit");
    sun.sync(None).expect("sync");

    let wang = phone(dir, "wang", base);
    wang.login("wang", PASSWORD, "wang's phone").expect("login");
    let old = wang.create_report("dispute_check", GRID).expect("create");
    wang.set_field(&old, "parties", Some(text("王家")))
        .expect("edit");
    wang.sync(None).expect("sync");
    let device = wang.device_id().expect("device");

    // Offline: an edit of the old report and a new report, both of grid g1.
    wang.set_field(&old, "description", Some(text("又吵起来了")))
        .expect("edit");
    let new = wang.create_report("dispute_check", GRID).expect("create");
    wang.set_field(&new, "parties", Some(text("李家")))
        .expect("edit");

    // The office moves wang to g3, in another village. The phone is not revoked.
    let (status, moved) = office.call(
        "PATCH",
        "/api/v1/users/user-wang",
        Some(json!({ "org_unit_id": "g3" })),
    );
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["retiring_devices"], json!([]));
    assert_eq!(office.device(&device)["state"], json!("active"));

    let summary = wang.sync(None).expect("sync");
    assert!(summary.rescoped, "{summary:?}");
    let mut held: Vec<&str> = summary.held.iter().map(|h| h.id.as_str()).collect();
    held.sort();
    let mut expected = vec![old.as_str(), new.as_str()];
    expected.sort();
    assert_eq!(held, expected, "both pieces of offline work are held");
    assert_eq!(summary.pending_changes, 0);
    assert_eq!(wang.device_id().expect("device"), device, "not wiped");
    let me = wang.current_user().expect("still logged in");
    assert_eq!(me.org_unit_id, "g3");
    let ids: Vec<String> = wang
        .list_reports(None)
        .expect("list")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        ids,
        vec![there.clone()],
        "g1 dropped once delivered; g3 pulled"
    );

    // The people of g1's village see the held work; the old report is unchanged until they act.
    assert_eq!(office.held(&old).len(), 1);
    assert_eq!(office.held(&new).len(), 1);
    let (status, _) = office.call("GET", &format!("/api/v1/reports/{new}"), None);
    assert_eq!(
        status, 404,
        "a held new report is not a report until merged"
    );
    let li = phone(dir, "li", base);
    li.login("li", PASSWORD, "li's phone").expect("login");
    li.sync(None).expect("sync");
    let (status, declined) = office.call(
        "POST",
        &format!("/api/v1/held/{}/decline", office.held(&old)[0]["id"]),
        Some(json!({})),
    );
    assert_eq!(
        (status, &declined["code"]),
        (422, &json!("validation")),
        "a note is needed"
    );
    let (status, declined) = office.call(
        "POST",
        &format!("/api/v1/held/{}/decline", office.held(&old)[0]["id"]),
        Some(json!({ "note": "已由村里另行处理" })),
    );
    assert_eq!((status, &declined["state"]), (200, &json!("declined")));
    let (status, merged) = office.call(
        "POST",
        &format!("/api/v1/held/{}/merge", office.held(&new)[0]["id"]),
        Some(json!({})),
    );
    assert_eq!(status, 200, "{merged}");
    assert_eq!(office.report(&new)["fields"]["parties"], json!("李家"));
    li.sync(None).expect("sync");
    assert!(
        li.report(&new).is_ok(),
        "the village receives the merged report"
    );
}

fn a_retired_phone_delivers_everything_before_it_wipes_itself(base: &str, dir: &Path) {
    let office = Office::login(base);
    let wang = phone(dir, "wang", base);
    wang.login("wang", PASSWORD, "old phone").expect("login");
    let id = wang.create_report("dispute_check", GRID).expect("create");
    wang.set_field(&id, "parties", Some(text("王家")))
        .expect("edit");
    wang.sync(None).expect("sync");
    let device = wang.device_id().expect("device");
    // Recorded after the last sync: the office does not know of it yet.
    wang.set_field(&id, "description", Some(text("交回手机前的最后一条")))
        .expect("edit");

    let (status, _) = office.call("POST", &format!("/api/v1/devices/{device}/retire"), None);
    assert_eq!(status, 204);
    assert_eq!(office.device(&device)["state"], json!("retiring"));
    let (status, _) = office.call("POST", "/api/v1/devices/no-such-phone/retire", None);
    assert_eq!(status, 404);

    let err = wang.sync(None).expect_err("retired");
    assert!(matches!(err, ClientError::DeviceRetired(_)), "{err:?}");
    assert_eq!(
        office.report(&id)["fields"]["description"],
        json!("交回手机前的最后一条"),
        "delivered before the wipe"
    );
    assert!(wang.list_reports(None).expect("list").is_empty());
    assert_ne!(wang.device_id().expect("device"), device);
    assert_eq!(office.device(&device)["state"], json!("retired"));
}

fn a_disabled_workers_phone_delivers_what_it_holds_then_wipes_itself(base: &str, dir: &Path) {
    let office = Office::login(base);
    let wang = phone(dir, "wang", base);
    wang.login("wang", PASSWORD, "phone").expect("login");
    wang.sync(None).expect("sync");
    let device = wang.device_id().expect("device");
    let id = wang.create_report("dispute_check", GRID).expect("create");
    wang.set_field(&id, "parties", Some(text("离职前录入")))
        .expect("edit");

    let (status, done) = office.call(
        "PATCH",
        "/api/v1/users/user-wang",
        Some(json!({ "disabled": true })),
    );
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["retiring_devices"], json!([device]));

    let err = wang.sync(None).expect_err("retired");
    assert!(matches!(err, ClientError::DeviceRetired(_)), "{err:?}");
    assert_eq!(office.report(&id)["fields"]["parties"], json!("离职前录入"));
    assert_eq!(office.device(&device)["state"], json!("retired"));
}
