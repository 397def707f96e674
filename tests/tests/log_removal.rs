//! Observation 5 of issue 16, through the phone library against a real `gridsync serve`: a
//! mediation step one phone removes while another edits it offline is not lost. The server and
//! both phones list it as `edited_after_removal`; a phone restores it with the edit, and the
//! office confirms a later removal over HTTP. On SQLite and on Postgres.

use std::path::Path;

use gridsync_e2e::Server;
use gridsync_e2e::field::{self, GRID, PASSWORD, Relay, quick};
use gridsync_fixtures::phone::Phone as Office;
use gridsync_mobile::client::Client;
use gridsync_mobile::{ClientError, FieldConflict, FieldValue};
use serde_json::{Value, json};

const KEY: [u8; 32] = [0x6b; 32];

fn text(value: &str) -> FieldValue {
    FieldValue::Text {
        value: value.into(),
    }
}

fn projection(client: &Client, id: &str) -> Value {
    serde_json::from_str(&client.report(id).expect("report").json).expect("json")
}

/// (path, resolved by) of the report's conflicts on the server, open ones with `None`.
fn server_conflicts(db: &str, id: &str) -> (Value, Vec<(String, Option<String>)>) {
    let id: uuid::Uuid = id.parse().expect("id");
    tokio::runtime::Handle::current().block_on(async {
        let store = gridsync_server::store::open(db).await.expect("open");
        let row = store.document(&id).await.expect("row").expect("stored");
        let conflicts = store.conflicts_of(&id).await.expect("conflicts");
        (
            row.projection,
            conflicts
                .into_iter()
                .map(|c| (c.path, c.resolved_by))
                .collect(),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_edited_while_another_phone_removed_it_is_flagged_and_restored_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("server.db").display());
    field::seed(&db).await;
    let server = Server::start(&db, PASSWORD).await;
    let base = server.base.clone();
    tokio::task::spawn_blocking(move || scenario(&db, &base, dir.path()))
        .await
        .expect("scenario");
    assert!(server.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_edited_while_another_phone_removed_it_is_flagged_and_restored_on_postgres() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = field::fresh_postgres_database("gridsync_removal").await;
    field::seed(&db).await;
    let server = Server::start(&db, PASSWORD).await;
    let base = server.base.clone();
    tokio::task::spawn_blocking(move || scenario(&db, &base, dir.path()))
        .await
        .expect("scenario");
    assert!(server.stop().await.success());
}

/// Wang removes the step offline while Li edits it offline; then both sync.
fn remove_while_editing(
    relay: &Relay,
    wang: &Client,
    li: &Client,
    id: &str,
    step: &str,
    outcome: &str,
) {
    relay.set_online(false);
    wang.remove_log(id, step).expect("remove");
    li.edit_log(id, step, [("outcome".to_owned(), text(outcome))].into())
        .expect("edit");
    relay.set_online(true);
    wang.sync(None).expect("sync");
    li.sync(None).expect("sync");
    wang.sync(None).expect("sync");
}

fn flagged(client: &Client, id: &str) -> Vec<FieldConflict> {
    client
        .conflicts(id)
        .expect("conflicts")
        .into_iter()
        .filter(|c| c.code == "edited_after_removal")
        .collect()
}

fn scenario(db: &str, base: &str, dir: &Path) {
    let relay = Relay::start(base);
    let wang = Client::open(&dir.join("wang"), &relay.base, &KEY, quick()).expect("open");
    let li = Client::open(&dir.join("li"), &relay.base, &KEY, quick()).expect("open");
    wang.login("wang", PASSWORD, "wang's phone").expect("login");
    li.login("li", PASSWORD, "li's phone").expect("login");
    let id = wang.create_report("dispute_check", GRID).expect("create");
    let step = wang
        .append_log(
            &id,
            [
                ("date".to_owned(), text("2026-11-03")),
                ("mediator".to_owned(), text("user-wang")),
                ("method".to_owned(), text("上门调解")),
            ]
            .into(),
        )
        .expect("step");
    wang.sync(None).expect("sync");
    li.sync(None).expect("sync");

    remove_while_editing(&relay, &wang, &li, &id, &step, "双方和解");
    let path = format!("log[{step}]");
    let (seen, conflicts) = server_conflicts(db, &id);
    assert_eq!(seen["log"], json!([]));
    assert_eq!(conflicts, vec![(path.clone(), None)]);
    for client in [&wang, &li] {
        assert!(client.report(&id).expect("report").log.is_empty());
        let flags = flagged(client, &id);
        assert_eq!(flags.len(), 1, "{flags:?}");
        assert_eq!(
            client.report(&id).expect("report").open_conflicts,
            1,
            "counted too"
        );
        assert_eq!(flags[0].path, path);
        assert_eq!(flags[0].entry_id.as_deref(), Some(step.as_str()));
        assert!(!flags[0].message.as_ref().expect("message").zh.is_empty());
        let removal = flags[0].removal.as_ref().expect("removal");
        assert_eq!(removal.removed_by, "user-wang");
        assert_eq!(removal.edited_by, ["user-li"]);
        assert!(
            removal
                .fields
                .iter()
                .any(|f| f.field == "outcome" && f.value == text("双方和解")),
            "{removal:?}"
        );
    }

    // Li restores it on the phone; the edit is back everywhere and the server closes the flag.
    let refused = li.resolve_conflict(&id, &path, r#""keep""#);
    assert!(
        matches!(refused, Err(ClientError::Invalid(_))),
        "{refused:?}"
    );
    li.resolve_conflict(&id, &path, r#""restore""#)
        .expect("restore");
    li.sync(None).expect("sync");
    wang.sync(None).expect("sync");
    let (seen, conflicts) = server_conflicts(db, &id);
    assert_eq!(seen["log"][0]["outcome"], json!("双方和解"));
    assert_eq!(conflicts, vec![(path.clone(), Some("user-li".to_owned()))]);
    for client in [&wang, &li] {
        assert_eq!(projection(client, &id), seen);
        assert!(flagged(client, &id).is_empty());
    }

    // Removed while edited once more: the office confirms the removal this time.
    remove_while_editing(&relay, &wang, &li, &id, &step, "未和解");
    assert!(server_conflicts(db, &id).1.contains(&(path.clone(), None)));
    resolve_over_http(&relay.base, &id, &path);
    wang.sync(None).expect("sync");
    li.sync(None).expect("sync");
    let (seen, conflicts) = server_conflicts(db, &id);
    assert_eq!(seen["log"], json!([]));
    assert!(
        conflicts.iter().all(|(_, by)| by.is_some()),
        "{conflicts:?}"
    );
    for client in [&wang, &li] {
        assert_eq!(projection(client, &id), seen);
        assert!(flagged(client, &id).is_empty());
    }
}

/// Logs in as the admin and confirms the removal flagged at `path` over HTTP, as the console
/// does, on a runtime of its own (the scenario is blocking code, as the phone library is).
fn resolve_over_http(base: &str, id: &str, path: &str) {
    let (base, id, path) = (base.to_owned(), id.to_owned(), path.to_owned());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async {
                let http = reqwest::Client::new();
                let office = Office::login(&base, "admin", PASSWORD, "console")
                    .await
                    .expect("login");
                let token = office.token.as_str();
                let list: Value = http
                    .get(format!("{base}/api/v1/conflicts?limit=200"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .expect("conflicts")
                    .json()
                    .await
                    .expect("list");
                let conflict = list["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .find(|c| c["report_id"] == json!(id) && c["path"] == json!(path))
                    .expect("the flag is open on the server")
                    .clone();
                assert_eq!(conflict["code"], json!("edited_after_removal"));
                assert_eq!(conflict["detail"]["values"]["outcome"], json!("未和解"));
                http.post(format!(
                    "{base}/api/v1/conflicts/{}/resolve",
                    conflict["id"]
                ))
                .bearer_auth(token)
                .json(&json!({"value": null, "note": "重复记录"}))
                .send()
                .await
                .expect("resolve")
                .error_for_status()
                .expect("resolve answers 200");
            })
    })
    .join()
    .expect("resolving thread");
}
