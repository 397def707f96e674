//! Test support: fresh stores on both backends, a small org tree with users of every role, and
//! helpers that build pushes from real report documents.

#![allow(dead_code)]

pub mod http;

use std::sync::Arc;
use std::time::Duration;

use gridsync_core::DocId;
use gridsync_core::attachment::Attachment;
use gridsync_core::protocol::{Pull, PullResult, Push, PushDoc, PushOutcome};
use gridsync_core::replica::Replica;
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_core::schema::Registry;
use gridsync_server::scope::{Role, Scope};
use gridsync_server::store::{self, Level, OrgUnit, Store, Writer};
use gridsync_server::sync::{Ingest, pull};
use sqlx::Connection;

/// A store and what keeps its database alive.
pub struct TestStore {
    pub store: Arc<dyn Store>,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

pub async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("gridsync.db").display());
    let store = store::open(&url).await.expect("open sqlite");
    TestStore {
        store,
        url,
        _dir: Some(dir),
    }
}

/// The Postgres server named by GRIDSYNC_TEST_DATABASE_URL. Tests never skip Postgres: without
/// the variable they fail and say how to get one.
pub fn postgres_url() -> String {
    std::env::var("GRIDSYNC_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "GRIDSYNC_TEST_DATABASE_URL is not set: run ./scripts/test, which starts a throwaway \
             Postgres, or point it at a server where the user may CREATE DATABASE"
        )
    })
}

/// A fresh, migrated database of its own on the test Postgres server.
pub async fn postgres() -> TestStore {
    let base = postgres_url();
    let name = format!("gridsync_t_{}", uuid::Uuid::new_v4().simple());
    let mut admin =
        tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(&base))
            .await
            .expect("Postgres answers within 10 s")
            .expect("connect to GRIDSYNC_TEST_DATABASE_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let url = match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("GRIDSYNC_TEST_DATABASE_URL has no database name: {base}"),
    };
    let store = store::open(&url).await.expect("open postgres");
    TestStore {
        store,
        url,
        _dir: None,
    }
}

/// Generates one test per backend for each named async fn taking `&dyn Store`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let t = super::support::sqlite().await;
                super::$name(t.store.as_ref()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let t = super::support::postgres().await;
                super::$name(t.store.as_ref()).await;
            }
        }
    )*};
}

/// Like `on_both_backends!`, for async fns taking `&TestStore`: tests that need the store shared
/// (`Arc<dyn Store>`, as `AppState` holds it) or its URL.
#[macro_export]
macro_rules! on_both_test_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let t = super::support::sqlite().await;
                super::$name(&t).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let t = super::support::postgres().await;
                super::$name(&t).await;
            }
        }
    )*};
}

/// Runs one SQL statement on the test database behind `url`, beside the store: for states the
/// `Store` trait has no method to reach yet.
pub async fn execute_sql(url: &str, sql: &str) {
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url)
            .await
            .expect("connect sqlite");
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .expect("execute");
    } else {
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .expect("connect postgres");
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .expect("execute");
    }
}

/// Row counts of the tables a write would touch, and the sequence counter: equal before and
/// after a refused request when it stored nothing. The last two are held work and its changes.
pub async fn fingerprint(url: &str) -> Vec<i64> {
    const SQL: &str = "SELECT (SELECT COUNT(*) FROM documents), (SELECT COUNT(*) FROM changes), \
         (SELECT COUNT(*) FROM conflicts), (SELECT COUNT(*) FROM users), \
         (SELECT COUNT(*) FROM devices), (SELECT COUNT(*) FROM org_units), \
         (SELECT COUNT(*) FROM scope_exits), (SELECT value FROM counters WHERE name = 'seq'), \
         (SELECT COUNT(*) FROM held_work), (SELECT COUNT(*) FROM held_changes)";
    type Row = (i64, i64, i64, i64, i64, i64, i64, i64, i64, i64);
    let row: Row = if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url)
            .await
            .expect("connect sqlite");
        sqlx::query_as(SQL)
            .fetch_one(&mut conn)
            .await
            .expect("count")
    } else {
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .expect("connect postgres");
        sqlx::query_as(SQL)
            .fetch_one(&mut conn)
            .await
            .expect("count")
    };
    vec![
        row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9,
    ]
}

pub const G1: &str = "g1";
pub const G2: &str = "g2";
pub const G3: &str = "g3";

/// district d: township t1 (villages v1 with grids g1, g2), street s2 (community c2 with g3).
pub async fn seed_org(store: &dyn Store) {
    let units = [
        ("d", None, Level::District, "示范区", "/d/"),
        ("t1", Some("d"), Level::Township, "东岭镇", "/d/t1/"),
        ("v1", Some("t1"), Level::Village, "上坪村", "/d/t1/v1/"),
        ("g1", Some("v1"), Level::Grid, "一网格", "/d/t1/v1/g1/"),
        ("g2", Some("v1"), Level::Grid, "二网格", "/d/t1/v1/g2/"),
        ("s2", Some("d"), Level::Street, "城关街道", "/d/s2/"),
        ("c2", Some("s2"), Level::Community, "北门社区", "/d/s2/c2/"),
        ("g3", Some("c2"), Level::Grid, "三网格", "/d/s2/c2/g3/"),
    ];
    for (id, parent, level, name, path) in units {
        store
            .upsert_org_unit(&OrgUnit {
                id: id.into(),
                parent_id: parent.map(Into::into),
                level,
                name: name.into(),
                path: path.into(),
            })
            .await
            .expect("org unit");
    }
}

pub fn path_of(unit: &str) -> &'static str {
    match unit {
        "d" => "/d/",
        "t1" => "/d/t1/",
        "v1" => "/d/t1/v1/",
        "g1" => "/d/t1/v1/g1/",
        "g2" => "/d/t1/v1/g2/",
        "s2" => "/d/s2/",
        "c2" => "/d/s2/c2/",
        "g3" => "/d/s2/c2/g3/",
        other => panic!("no org unit {other}"),
    }
}

pub fn writer(user: &str, role: Role, unit: &str, device: &str) -> Writer {
    Writer {
        user_id: user.into(),
        device_id: Some(device.into()),
        scope: Scope::for_role(user, role, path_of(unit)),
        now: 1_800_000_000,
        hold_out_of_scope: false,
    }
}

pub fn admin() -> Writer {
    writer("admin", Role::DistrictAdmin, "d", "admin-pc")
}

pub fn dispute(id: u128, grid: &str, user: &str) -> ReportDoc {
    let mut doc = ReportDoc::create(
        DocId::from_u128(id),
        "dispute_check",
        1,
        grid,
        &Editor::new(user, 1_000),
    )
    .expect("create");
    doc.set_field(
        "place",
        &serde_json::json!("村口"),
        &Editor::new(user, 1_001),
    )
    .expect("set");
    doc
}

pub fn drug_case(id: u128, grid: &str, user: &str, assigned: &str) -> ReportDoc {
    let mut doc = ReportDoc::create(
        DocId::from_u128(id),
        "drug_control_case",
        1,
        grid,
        &Editor::new(user, 1_000),
    )
    .expect("create");
    doc.set_field(
        "assigned_worker",
        &serde_json::json!(assigned),
        &Editor::new(user, 1_001),
    )
    .expect("set");
    doc
}

/// A push of every change of `docs` (as a phone that never synced would send).
/// Records on `doc` an attachment of `bytes` to the top-level `field` by `user`, as a phone does
/// before uploading them; returns their sha256.
pub fn attach(
    doc: &mut ReportDoc,
    user: &str,
    field: &str,
    media_type: &str,
    bytes: &[u8],
) -> String {
    use sha2::Digest;
    let sha256 = hex::encode(sha2::Sha256::digest(bytes));
    attach_named(doc, user, field, None, media_type, &sha256, bytes.len());
    sha256
}

/// Records on `doc` an attachment named by `sha256` and `size`, whatever bytes may come.
pub fn attach_named(
    doc: &mut ReportDoc,
    user: &str,
    field: &str,
    entry: Option<&str>,
    media_type: &str,
    sha256: &str,
    size: usize,
) {
    doc.attach(
        Attachment {
            sha256: sha256.into(),
            media_type: media_type.into(),
            size: size as u64,
            name: format!("{}.bin", &sha256[..8]),
            field: field.into(),
            entry: entry.map(str::to_owned),
            taken_at: "2026-11-03T10:00:00Z".into(),
            location: None,
            attached_by: String::new(),
        },
        &Editor::new(user, 1_002),
    )
    .expect("attach");
}

pub fn push_all(docs: &mut [&mut ReportDoc]) -> Push {
    Push {
        docs: docs
            .iter_mut()
            .map(|d| PushDoc {
                doc: d.id(),
                changes: d.changes_since(&[]),
            })
            .collect(),
    }
}

pub fn is_acked(outcome: &PushOutcome) -> bool {
    matches!(outcome, PushOutcome::Acked { .. })
}

pub fn registry() -> Registry {
    Registry::builtin()
}

/// The server's one ingest, with the built-in kinds.
pub fn ingest() -> Ingest {
    Ingest::default()
}

/// Pulls everything in `scope` into `replica`, page by page, checking that no page needed a
/// resend (each document arrives with its whole history since the last pull).
pub async fn pull_all(
    store: &dyn Store,
    scope: &Scope,
    device: Option<&str>,
    replica: &mut Replica,
    budget: u32,
) -> Vec<PullResult> {
    let mut pages = Vec::new();
    for _ in 0..10_000 {
        let pull: Pull = replica.build_pull(budget);
        assert!(pull.resend.is_empty(), "a page arrived without history");
        let result = pull::pull(store, scope, device, &pull).await.expect("pull");
        pages.push(result.clone());
        let summary = replica.apply_pull_result(result).expect("apply pull");
        assert!(
            !summary.diverged,
            "the digest disagreed at the end of a pull"
        );
        if !summary.more {
            return pages;
        }
    }
    panic!("pull did not finish in 10,000 pages");
}

/// `v` as a JSON object; panics on anything else.
pub fn object(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// A report by the admin with these fields and log entries, ingested and acknowledged.
pub async fn file_report(
    store: &dyn Store,
    id: u128,
    kind: &str,
    grid: &str,
    fields: serde_json::Value,
    log: &[serde_json::Value],
) {
    let by = Editor::new("admin", 1_000);
    let mut doc = ReportDoc::create(DocId::from_u128(id), kind, 1, grid, &by).expect("create");
    doc.set_fields(&object(fields), &by).expect("fields");
    for entry in log {
        doc.append_log(&object(entry.clone()), &by).expect("log");
    }
    let push = push_all(&mut [&mut doc]);
    let result = ingest().push(store, &admin(), &push).await.expect("ingest");
    assert!(is_acked(&result.docs[0].outcome), "{:?}", result.docs[0]);
}
