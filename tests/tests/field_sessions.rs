//! Sessions on bad networks and shared phones, through the phone library (gridsync-mobile's
//! `Client`) against a real `gridsync serve` on SQLite and Postgres: a refresh whose answer is
//! lost is retried within the server's grace window and the phone stays logged in; editing
//! needs no session and the last user's next login syncs the work, also after an admin's
//! password reset ended the session; another user's login is
//! refused while the last user's work is unsent and wipes nothing; one data folder holds
//! one client, even across a killed process; and a phone keeps the offline grant the server
//! signs for its own key.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use gridsync_e2e::Server;
use gridsync_e2e::faulty::{Fault, FaultyProxy};
use gridsync_e2e::field::{self, GRID, PASSWORD, quick, site_photo};
use gridsync_mobile::client::Client;
use gridsync_mobile::{ClientError, FieldValue};
use serde_json::{Value, json};
use sqlx::Connection;

const KEY: [u8; 32] = [0x5a; 32];

fn phone(dir: &Path, base: &str) -> Client {
    Client::open(dir, base, &KEY, quick()).expect("open the phone's store")
}

fn text(value: &str) -> Option<FieldValue> {
    Some(FieldValue::Text {
        value: value.into(),
    })
}

/// A proxy that passes everything until told otherwise with [`FaultyProxy::script`].
fn sound_proxy(base: &str) -> FaultyProxy {
    let proxy = FaultyProxy::start(base, 0);
    proxy.set_faulty(false);
    proxy
}

/// Runs a blocking client scenario off the async runtime the server helper lives on.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("scenario")
}

/// Runs `scenario(db, base, dir)` against a seeded server on SQLite, or on a fresh Postgres
/// database when `postgres`.
async fn on_server(postgres: bool, scenario: fn(&str, &str, &Path)) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = if postgres {
        field::fresh_postgres_database("gridsync_sessions").await
    } else {
        format!("sqlite://{}", dir.path().join("server.db").display())
    };
    field::seed(&db).await;
    let server = Server::start(&db, PASSWORD).await;
    let base = server.base.clone();
    blocking(move || scenario(&db, &base, dir.path())).await;
    assert!(server.stop().await.success());
}

/// Runs `sql` on the server's database, beside the running server.
fn server_sql(db: &str, sql: &'static str) {
    tokio::runtime::Handle::current().block_on(async {
        if db.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(db).await.expect("sqlite");
            sqlx::query(sql).execute(&mut conn).await.expect("execute");
        } else {
            let mut conn = sqlx::PgConnection::connect(db).await.expect("postgres");
            sqlx::query(sql).execute(&mut conn).await.expect("execute");
        }
    });
}

/// The actions of the server's audit log, newest first.
fn audit_actions(db: &str) -> Vec<String> {
    tokio::runtime::Handle::current().block_on(async {
        let store = gridsync_server::store::open(db).await.expect("open");
        let log = store.audit_log(100).await.expect("audit");
        log.into_iter().map(|e| e.action).collect()
    })
}

/// The projection and author of a report as the server stores it.
fn server_report(db: &str, id: &str) -> (Value, String) {
    let id: uuid::Uuid = id.parse().expect("id");
    tokio::runtime::Handle::current().block_on(async {
        let store = gridsync_server::store::open(db).await.expect("open");
        let row = store.document(&id).await.expect("row").expect("stored");
        (row.projection, row.created_by)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_refresh_answer_is_retried_and_the_phone_stays_logged_in_on_sqlite() {
    on_server(false, lost_refresh_scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_refresh_answer_is_retried_and_the_phone_stays_logged_in_on_postgres() {
    on_server(true, lost_refresh_scenario).await;
}

fn lost_refresh_scenario(db: &str, base: &str, dir: &Path) {
    let proxy = sound_proxy(base);
    let data = dir.join("wang");
    let wang = phone(&data, &proxy.base);
    wang.login("wang", PASSWORD, "phone").expect("login");
    let id = wang.create_report("dispute_check", GRID).expect("create");

    // The sync starts with a refresh; the server spends the token, and its answer is lost.
    wang.expire_access_token().expect("expire");
    proxy.script(&[Fault::DropAnswer]);
    let summary = wang.sync(None).expect("sync after a lost refresh answer");
    assert_eq!(summary.pushed_reports, 1);
    assert!(wang.current_user().is_some(), "still logged in");
    assert!(wang.report(&id).is_ok());
    let grace = audit_actions(db)
        .iter()
        .filter(|a| *a == "refresh_grace")
        .count();
    assert_eq!(grace, 1, "the server took the retry as a lost answer");

    // The pair the retry got is the live one: after a restart it refreshes again.
    drop(wang);
    let wang = phone(&data, &proxy.base);
    wang.expire_access_token().expect("expire");
    wang.sync(None).expect("sync after restart");
    assert!(wang.current_user().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_keeps_an_offline_grant_for_its_own_key_across_refreshes_and_restarts_on_sqlite() {
    on_server(false, offline_grant_scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_keeps_an_offline_grant_for_its_own_key_across_refreshes_and_restarts_on_postgres()
{
    on_server(true, offline_grant_scenario).await;
}

fn offline_grant_scenario(db: &str, base: &str, dir: &Path) {
    let data = dir.join("wang");
    let wang = phone(&data, base);
    assert_eq!(wang.offline_grant(), None, "no grant before a login");
    wang.login("wang", PASSWORD, "phone").expect("login");
    let first = verified_grant(base, &wang.offline_grant().expect("a grant"));
    let device = wang.device_id().expect("device id");
    assert_eq!(first["sub"], json!("user-wang"));
    assert_eq!(first["dev"], json!(device));
    assert_eq!(first["units"], json!(["/d/t1/v1/"]));
    assert_eq!(
        Some(first["dkey"].as_str().expect("dkey").to_owned()),
        device_key_on_server(db, &device),
        "the grant names the key the phone registered"
    );

    // A refresh renews the grant for the same key; so does a login after a restart.
    wang.expire_access_token().expect("expire");
    wang.sync(None).expect("sync");
    let refreshed = verified_grant(base, &wang.offline_grant().expect("a grant"));
    assert_eq!(refreshed["dkey"], first["dkey"]);
    drop(wang);
    let wang = phone(&data, base);
    assert!(wang.offline_grant().is_some(), "kept across a restart");
    wang.logout().expect("logout");
    assert_eq!(wang.offline_grant(), None, "gone with the session");
    wang.login("wang", PASSWORD, "phone").expect("login again");
    let again = verified_grant(base, &wang.offline_grant().expect("a grant"));
    assert_eq!(again["dkey"], first["dkey"], "one key for the installation");
}

/// The claims of `grant`, checked as a hub checks them: against the server's published keys.
fn verified_grant(base: &str, grant: &str) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet = tokio::runtime::Handle::current().block_on(async {
        reqwest::get(format!("{base}/.well-known/jwks.json"))
            .await
            .expect("get the key set")
            .json()
            .await
            .expect("a JWKS")
    });
    let kid = jsonwebtoken::decode_header(grant)
        .expect("header")
        .kid
        .expect("kid");
    let key =
        jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).expect("published")).expect("key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&["gridsync-offline"]);
    jsonwebtoken::decode::<Value>(grant, &key, &validation)
        .expect("the grant verifies")
        .claims
}

fn device_key_on_server(db: &str, device: &str) -> Option<String> {
    tokio::runtime::Handle::current().block_on(async {
        let store = gridsync_server::store::open(db).await.expect("open");
        store
            .device(device)
            .await
            .expect("device")
            .and_then(|d| d.public_key)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_made_logged_out_or_after_the_session_ended_sync_at_the_next_login_on_sqlite() {
    on_server(false, offline_editing_scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_made_logged_out_or_after_the_session_ended_sync_at_the_next_login_on_postgres() {
    on_server(true, offline_editing_scenario).await;
}

fn offline_editing_scenario(db: &str, base: &str, dir: &Path) {
    let wang = phone(&dir.join("wang"), base);
    let me = wang.login("wang", PASSWORD, "phone").expect("login");
    let device = wang.device_id().expect("device id");
    let first = wang.create_report("dispute_check", GRID).expect("create");
    wang.set_field(&first, "parties", text("王五"))
        .expect("edit");
    wang.sync(None).expect("sync");

    wang.logout().expect("logout");
    assert!(wang.current_user().is_none());
    assert_eq!(wang.last_user(), Some(me.clone()));
    wang.set_field(&first, "description", text("改过的描述"))
        .expect("edit while logged out");
    let second = wang
        .create_report("dispute_check", GRID)
        .expect("create while logged out");
    wang.set_field(&second, "parties", text("李四"))
        .expect("edit while logged out");
    let err = wang.sync(None).expect_err("sync needs a session");
    assert!(matches!(err, ClientError::Unauthorized(_)), "{err:?}");

    // A session the server ended (its refresh is refused) leaves the edits and the editing.
    wang.login("wang", PASSWORD, "phone").expect("login");
    server_sql(db, "DELETE FROM refresh_tokens");
    wang.expire_access_token().expect("expire");
    let err = wang.sync(None).expect_err("the session ended");
    assert!(matches!(err, ClientError::Unauthorized(_)), "{err:?}");
    assert!(wang.current_user().is_none());
    let third = wang
        .create_report("dispute_check", GRID)
        .expect("create after the session ended");
    assert_eq!(wang.list_reports(None).expect("list").len(), 3);

    // The same user's next login keeps everything and the next sync sends it.
    assert_eq!(wang.login("wang", PASSWORD, "phone").expect("login"), me);
    assert_eq!(wang.device_id().expect("device id"), device, "no wipe");
    assert_eq!(wang.list_reports(None).expect("list").len(), 3);
    let summary = wang.sync(None).expect("sync");
    assert_eq!(summary.pushed_reports, 3);
    assert_eq!(summary.pending_changes, 0);
    let (projection, _) = server_report(db, &first);
    assert_eq!(projection["fields"]["description"], json!("改过的描述"));
    for id in [&second, &third] {
        let (_, author) = server_report(db, id);
        assert_eq!(author, me.id);
    }
    let (projection, _) = server_report(db, &second);
    assert_eq!(projection["fields"]["parties"], json!("李四"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_an_admin_ended_keeps_the_phones_unsent_work_for_the_next_login_on_sqlite() {
    on_server(false, password_reset_scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_an_admin_ended_keeps_the_phones_unsent_work_for_the_next_login_on_postgres() {
    on_server(true, password_reset_scenario).await;
}

/// An admin sets a new password for `user_id` through the API; the answer's `ended_sessions`.
fn reset_password(base: &str, user_id: &str, password: &str) -> u64 {
    tokio::runtime::Handle::current().block_on(async {
        let admin = gridsync_fixtures::phone::Phone::login(base, "admin", PASSWORD, "admin-pc")
            .await
            .expect("login");
        let answer: Value = reqwest::Client::new()
            .patch(format!("{base}/api/v1/users/{user_id}"))
            .bearer_auth(&admin.token)
            .json(&json!({ "password": password }))
            .send()
            .await
            .expect("patch")
            .error_for_status()
            .expect("the reset answers 200")
            .json()
            .await
            .expect("answer");
        answer["ended_sessions"].as_u64().expect("ended_sessions")
    })
}

fn password_reset_scenario(db: &str, base: &str, dir: &Path) {
    const NEW_PASSWORD: &str = "a new password from the office";
    let wang = phone(&dir.join("wang"), base);
    let me = wang.login("wang", PASSWORD, "phone").expect("login");
    let device = wang.device_id().expect("device id");
    let first = wang.create_report("dispute_check", GRID).expect("create");
    wang.set_field(&first, "parties", text("王五"))
        .expect("edit");
    wang.sync(None).expect("sync");
    // Unsent: an edit and a new report, made while the session is alive.
    wang.set_field(&first, "description", text("重置前的修改"))
        .expect("edit");
    let second = wang.create_report("dispute_check", GRID).expect("create");
    wang.set_field(&second, "parties", text("李四"))
        .expect("edit");
    let unsent = wang.pending_changes();
    assert!(unsent > 0);

    // The reset ends the session at once: the access token in hand, minutes from expiry,
    // is refused at the next sync.
    assert_eq!(reset_password(base, &me.id, NEW_PASSWORD), 1);
    let err = wang.sync(None).expect_err("the session ended");
    assert!(matches!(err, ClientError::Unauthorized(_)), "{err:?}");
    assert!(
        wang.current_user().is_none(),
        "the phone knows it must log in"
    );
    assert_eq!(wang.pending_changes(), unsent, "nothing unsent is lost");
    assert_eq!(wang.list_reports(None).expect("list").len(), 2);
    wang.set_field(&second, "description", text("会话结束后的修改"))
        .expect("editing goes on");

    // The old password is refused; the new one logs the same device in, and the work goes up.
    let err = wang
        .login("wang", PASSWORD, "phone")
        .expect_err("the old password");
    assert!(matches!(err, ClientError::Unauthorized(_)), "{err:?}");
    assert_eq!(
        wang.login("wang", NEW_PASSWORD, "phone").expect("login"),
        me
    );
    assert_eq!(wang.device_id().expect("device id"), device, "no wipe");
    let summary = wang.sync(None).expect("sync");
    assert_eq!(summary.pushed_reports, 2);
    assert_eq!(summary.pending_changes, 0);
    let (projection, _) = server_report(db, &first);
    assert_eq!(projection["fields"]["description"], json!("重置前的修改"));
    let (projection, author) = server_report(db, &second);
    assert_eq!(author, me.id);
    assert_eq!(projection["fields"]["parties"], json!("李四"));
    assert_eq!(
        projection["fields"]["description"],
        json!("会话结束后的修改")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_login_is_refused_while_work_is_unsent_and_wipes_nothing_on_sqlite() {
    on_server(false, handover_scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_login_is_refused_while_work_is_unsent_and_wipes_nothing_on_postgres() {
    on_server(true, handover_scenario).await;
}

fn handover_scenario(_db: &str, base: &str, dir: &Path) {
    let proxy = sound_proxy(base);
    let data = dir.join("shared phone");
    let phone = phone(&data, &proxy.base);
    let wang = phone.login("wang", PASSWORD, "phone").expect("login");
    let device = phone.device_id().expect("device id");
    let id = phone.create_report("dispute_check", GRID).expect("create");
    phone.set_field(&id, "parties", text("王五")).expect("edit");
    phone.logout().expect("logout");

    let err = phone
        .login("li", PASSWORD, "phone")
        .expect_err("wang's report is unsent");
    assert!(matches!(err, ClientError::UnsentWork(_)), "{err:?}");
    assert!(phone.current_user().is_none());
    assert_eq!(phone.last_user(), Some(wang.clone()));
    assert_eq!(phone.device_id().expect("device id"), device);
    assert_eq!(phone.list_reports(None).expect("list").len(), 1);
    assert!(phone.pending_changes() > 0);

    // Pushed, but a photo still waiting for upload is unsent work too.
    phone.login("wang", PASSWORD, "phone").expect("login");
    phone
        .attach_bytes(&id, site_photo("现场.jpg"), &[0xd8; 2048])
        .expect("attach");
    // The push and the pull pass; both tries of the upload's first request are lost.
    proxy.script(&[
        Fault::Pass,
        Fault::Pass,
        Fault::DropRequest,
        Fault::DropRequest,
    ]);
    let err = phone.sync(None).expect_err("the upload broke off");
    assert!(matches!(err, ClientError::Network(_)), "{err:?}");
    assert_eq!(phone.pending_changes(), 0);
    phone.logout().expect("logout");
    let err = phone
        .login("li", PASSWORD, "phone")
        .expect_err("wang's photo is unsent");
    assert!(
        matches!(&err, ClientError::UnsentWork(m) if m.contains("1 attachments")),
        "{err:?}"
    );
    assert!(phone.attachments(&id).expect("attachments")[0].pending_upload);

    // Once everything is sent the phone may change hands: it starts over, empty, under a new
    // device id, and li pulls what her scope holds.
    phone.login("wang", PASSWORD, "phone").expect("login");
    assert_eq!(
        phone.sync(None).expect("sync").uploaded_attachments,
        1,
        "the photo went up"
    );
    phone.logout().expect("logout");
    let li = phone.login("li", PASSWORD, "phone").expect("li logs in");
    assert_eq!(phone.last_user(), Some(li));
    assert_ne!(phone.device_id().expect("device id"), device);
    assert!(phone.list_reports(None).expect("list").is_empty());
    phone.sync(None).expect("sync");
    assert_eq!(phone.list_reports(None).expect("list").len(), 1);

    // The wipe kept the folder locked to this client.
    let err = Client::open(&data, &proxy.base, &KEY, quick()).expect_err("in use");
    assert!(matches!(err, ClientError::InUse(_)), "{err:?}");
}

#[test]
fn a_second_client_on_a_data_folder_is_refused_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = "http://127.0.0.1:9";
    let first = phone(dir.path(), base);
    let id = first.create_report("dispute_check", GRID);
    assert!(
        matches!(id, Err(ClientError::Unauthorized(_))),
        "nobody has logged in yet: {id:?}"
    );
    let err = Client::open(dir.path(), base, &KEY, quick()).expect_err("in use");
    assert!(matches!(err, ClientError::InUse(_)), "{err:?}");
    drop(first);
    phone(dir.path(), base);
}

#[test]
fn a_data_folder_held_by_a_killed_process_opens_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hold-folder"))
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start hold-folder");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    assert_eq!(line.trim(), "holding");
    let err = Client::open(dir.path(), "http://127.0.0.1:9", &KEY, quick())
        .expect_err("held by the other process");
    assert!(matches!(err, ClientError::InUse(_)), "{err:?}");

    child.kill().expect("SIGKILL hold-folder");
    child.wait().expect("wait");
    phone(dir.path(), "http://127.0.0.1:9");
}
