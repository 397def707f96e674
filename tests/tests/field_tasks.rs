//! Tasks end to end against a real `gridsync serve` on SQLite and on Postgres, with a phone
//! (the real library): the office sets a canvass quota, a free task and the follow-up of a
//! dispute the worker found; the phone takes them at its next sync and, offline, fills the
//! quota with two interviews, follows the dispute up and marks the free task done with a note,
//! while the office moves the quota's due date. Back online, the server counts every task done
//! with the phone's links and the office's date, and the phone shows the same.

use std::collections::HashMap;
use std::path::Path;

use gridsync_e2e::Server;
use gridsync_e2e::field::{self, GRID, PASSWORD, Relay, quick};
use gridsync_mobile::FieldValue;
use gridsync_mobile::client::Client;
use serde_json::{Value, json};

const KEY: [u8; 32] = [0x5d; 32];

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("scenario")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_fills_a_quota_follows_up_a_dispute_and_finishes_a_task_offline_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("server.db").display());
    field::seed(&db).await;
    let server = Server::start(&db, PASSWORD).await;
    let base = server.base.clone();
    blocking(move || scenario(&base, dir.path())).await;
    assert!(server.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_fills_a_quota_follows_up_a_dispute_and_finishes_a_task_offline_on_postgres() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = field::fresh_postgres_database("gridsync_tasks").await;
    field::seed(&db).await;
    let server = Server::start(&db, PASSWORD).await;
    let base = server.base.clone();
    blocking(move || scenario(&base, dir.path())).await;
    assert!(server.stop().await.success());
}

/// The office over HTTP (the console's calls), from the blocking scenario.
struct Office {
    http: reqwest::Client,
    base: String,
    token: String,
}

fn wait<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Handle::current().block_on(f)
}

impl Office {
    fn login(base: &str, user: &str) -> Office {
        let http = reqwest::Client::new();
        let login: Value = wait(async {
            http.post(format!("{base}/api/v1/auth/login"))
                .json(&json!({
                    "username": user, "password": PASSWORD,
                    "device_id": format!("{user}-console"), "device_name": "console"
                }))
                .send()
                .await
                .expect("login")
                .json()
                .await
                .expect("tokens")
        });
        Office {
            http,
            base: base.to_owned(),
            token: login["access_token"].as_str().expect("token").to_owned(),
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        wait(async {
            let mut request = self
                .http
                .request(method, format!("{}{path}", self.base))
                .bearer_auth(&self.token);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let answer = request.send().await.expect("request");
            let status = answer.status().as_u16();
            (status, answer.json().await.unwrap_or(Value::Null))
        })
    }

    /// Sets a task; its id.
    fn set_task(&self, body: Value) -> String {
        let (status, answer) = self.call(reqwest::Method::POST, "/api/v1/tasks", Some(body));
        assert_eq!(status, 201, "{answer}");
        answer["items"][0]["id"].as_str().expect("id").to_owned()
    }
}

fn in_days(n: i64) -> String {
    gridsync_server::stats::Day::of_unix(gridsync_server::clock::now())
        .plus(n)
        .to_string()
}

fn scenario(base: &str, dir: &Path) {
    let relay = Relay::start(base);
    let wang = Client::open(&dir.join("wang"), &relay.base, &KEY, quick()).expect("open");
    wang.login("wang", PASSWORD, "wang's phone").expect("login");
    // A dispute wang found earlier, synced.
    let dispute = wang.create_report("dispute_check", GRID).expect("dispute");
    wang.sync(None).expect("sync the dispute");
    assert!(
        wang.schemas().iter().all(|k| !k.kind.contains("task")),
        "a phone files no tasks"
    );

    // The cadre of the village sets three tasks for the grid.
    let li = Office::login(base, "li");
    let quota = li.set_task(json!({
        "title": "本月完成2户民调", "due": in_days(10), "goal": "canvass_quota", "quota": 2, "grid": GRID,
    }));
    let free = li.set_task(json!({
        "title": "张贴反诈海报", "due": in_days(3), "goal": "free", "grid": GRID,
    }));
    let follow_up = li.set_task(json!({
        "title": "回访邻里纠纷", "due": in_days(7), "goal": "dispute_follow_up", "report": dispute,
    }));

    wang.sync(None).expect("sync the tasks");
    relay.set_online(false);
    let tasks = wang.tasks().expect("tasks");
    assert_eq!(tasks.len(), 3, "{tasks:?}");
    assert!(tasks.iter().all(|t| !t.done && t.status == "open"));
    let of = |id: &str| -> gridsync_mobile::TaskItem {
        wang.tasks()
            .expect("tasks")
            .into_iter()
            .find(|t| t.id == id)
            .expect("the task")
    };
    assert_eq!((of(&quota).progress, of(&quota).needed), (0, 2));
    assert!(
        wang.list_reports(None)
            .expect("list")
            .iter()
            .all(|r| !r.kind.contains("task")),
        "the report list holds reports only"
    );

    // Offline: two interviews, the dispute followed up, the posters put up.
    for _ in 0..2 {
        wang.create_report("satisfaction_canvass", GRID)
            .expect("an interview");
    }
    assert_eq!((of(&quota).progress, of(&quota).done), (2, true));
    let mut values = HashMap::new();
    values.insert(
        "place".to_owned(),
        FieldValue::Text {
            value: "村东头晒谷场".into(),
        },
    );
    wang.set_fields(&dispute, values)
        .expect("follow the dispute up");
    assert!(of(&follow_up).done);
    assert!(
        wang.complete_task(&quota, Some("done".into())).is_err(),
        "a quota is done by its interviews, not by hand"
    );
    wang.complete_task(&free, Some("已张贴5处".into()))
        .expect("mark the free task done");
    assert_eq!(of(&free).done_note.as_deref(), Some("已张贴5处"));

    // Meanwhile the office moves the quota's due date.
    let (status, patched) = li.call(
        reqwest::Method::PATCH,
        &format!("/api/v1/reports/{quota}"),
        Some(json!({ "fields": { "due": in_days(12) } })),
    );
    assert_eq!(status, 200, "{patched}");

    relay.set_online(true);
    wang.sync(None).expect("sync the work");
    assert_eq!(wang.pending_changes(), 0);
    let (status, done) = li.call(reqwest::Method::GET, "/api/v1/tasks?state=done", None);
    assert_eq!(status, 200, "{done}");
    let done: HashMap<String, Value> = done["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| (t["id"].as_str().unwrap().to_owned(), t.clone()))
        .collect();
    assert_eq!(done.len(), 3, "{done:?}");
    assert_eq!(done[&quota]["linked"].as_array().map(Vec::len), Some(2));
    assert_eq!(done[&quota]["due"], json!(in_days(12)), "the office's date");
    assert_eq!(done[&follow_up]["linked"], json!([dispute]));
    assert_eq!(done[&free]["done_note"], "已张贴5处");
    assert_eq!(
        of(&quota).due,
        in_days(12),
        "the phone merged the office's date"
    );
    // The board counts them done.
    let (_, board) = li.call(reqwest::Method::GET, "/api/v1/dispatch", None);
    assert_eq!(board["total"]["open"], 0, "{board}");
}
