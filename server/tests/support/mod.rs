//! Test support: the shared fixtures (`gridsync-fixtures`) as the server tests name them, tests
//! generated for both backends, and reads of the database beside the store.

// Each test binary uses part of the support, so what one leaves unused is not dead.
#![allow(dead_code, unused_imports)]

pub mod http;

use gridsync_core::DocId;
use gridsync_core::protocol::{Pull, PullResult};
use gridsync_core::protocol::{Push, PushResult};
use gridsync_core::replica::Replica;
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_core::schema::{Registry, Schema};
use gridsync_fixtures::fixture::Fixture;
use gridsync_fixtures::org::OrgTree;
use gridsync_fixtures::reports::filled;
use gridsync_server::scope::{Role, Scope};
use gridsync_server::store::{Store, Writer};
use gridsync_server::sync::{Ingest, pull};
use sqlx::Connection;

pub use gridsync_fixtures::databases::{TestStore, postgres, postgres_url, sqlite};
pub use gridsync_fixtures::forms::{self, home_visit, street_patrol};
pub use gridsync_fixtures::reports::{
    attach, attach_named, dispute, drug_case, ingest, is_acked, object, push_all,
};

/// Generates one test per backend for each named async fn taking `&dyn Store`. A test that
/// passes closes its store before the process exits (`Store::close` says why).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let t = super::support::sqlite().await;
                super::$name(t.store.as_ref()).await;
                t.store.close().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let t = super::support::postgres().await;
                super::$name(t.store.as_ref()).await;
                t.store.close().await;
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
                t.store.close().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let t = super::support::postgres().await;
                super::$name(&t).await;
                t.store.close().await;
            }
        }
    )*};
}

/// Runs one SQL statement on the test database behind `url`, beside the store: for states the
/// `Store` trait has no method to reach yet.
pub async fn execute_sql(url: &str, sql: &str) {
    Beside::connect(url).await.execute(sql).await;
}

/// A connection of its own to the test database behind a store, on either backend.
pub enum Beside {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Beside {
    pub async fn connect(url: &str) -> Beside {
        if url.starts_with("sqlite:") {
            Beside::Sqlite(
                sqlx::SqliteConnection::connect(url)
                    .await
                    .expect("connect sqlite"),
            )
        } else {
            Beside::Postgres(
                sqlx::PgConnection::connect(url)
                    .await
                    .expect("connect postgres"),
            )
        }
    }

    /// Begins a transaction that writes: on SQLite it takes the write lock at once, as the
    /// store's own writes do.
    pub async fn begin_write(&mut self) {
        match self {
            Beside::Sqlite(_) => self.execute("BEGIN IMMEDIATE").await,
            Beside::Postgres(_) => self.execute("BEGIN").await,
        }
    }

    pub async fn execute(&mut self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Beside::Sqlite(conn) => sqlx::query(sql).execute(conn).await.map(drop),
            Beside::Postgres(conn) => sqlx::query(sql).execute(conn).await.map(drop),
        }
        .expect("execute");
    }

    pub async fn close(self) {
        match self {
            Beside::Sqlite(conn) => conn.close().await,
            Beside::Postgres(conn) => conn.close().await,
        }
        .expect("close");
    }
}

/// Row counts of the tables a write would touch, and the last sequence number given out (the
/// counter on SQLite, the sequence on Postgres): equal before and after a refused request when
/// it stored nothing. The last two are held work and its changes.
pub async fn fingerprint(url: &str) -> Vec<i64> {
    let sql = |last_seq: &str| {
        sqlx::AssertSqlSafe(format!(
            "SELECT (SELECT COUNT(*) FROM documents), (SELECT COUNT(*) FROM changes), \
             (SELECT COUNT(*) FROM conflicts), (SELECT COUNT(*) FROM users), \
             (SELECT COUNT(*) FROM devices), (SELECT COUNT(*) FROM org_units), \
             (SELECT COUNT(*) FROM scope_exits), ({last_seq}), \
             (SELECT COUNT(*) FROM held_work), (SELECT COUNT(*) FROM held_changes)"
        ))
    };
    type Row = (i64, i64, i64, i64, i64, i64, i64, i64, i64, i64);
    let row: Row = if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url)
            .await
            .expect("connect sqlite");
        sqlx::query_as(sql("SELECT value FROM counters WHERE name = 'seq'"))
            .fetch_one(&mut conn)
            .await
            .expect("count")
    } else {
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .expect("connect postgres");
        sqlx::query_as(sql(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM change_seq",
        ))
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

/// The standard tree: township t1 (village v1 with grids g1, g2), street s2 (community c2
/// with g3).
pub async fn seed_org(store: &dyn Store) {
    Fixture::new(OrgTree::standard().clone())
        .seed(store)
        .await
        .expect("seed the org tree");
}

pub fn path_of(unit: &str) -> &'static str {
    OrgTree::standard().path_of(unit)
}

pub fn writer(user: &str, role: Role, unit: &str, device: &str) -> Writer {
    OrgTree::standard().writer(user, role, unit, device)
}

pub fn admin() -> Writer {
    writer("admin", Role::DistrictAdmin, "d", "admin-pc")
}

pub fn registry() -> Registry {
    Registry::builtin()
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

/// Report `id` by the admin with these fields and log entries (JSON objects).
pub fn admin_report(
    id: u128,
    kind: &str,
    grid: &str,
    fields: serde_json::Value,
    log: Vec<serde_json::Value>,
) -> ReportDoc {
    filled(
        DocId::from_u128(id),
        kind,
        grid,
        "admin",
        1_000,
        fields,
        log,
    )
}

/// [`admin_report`], ingested and acknowledged.
pub async fn file_report(
    store: &dyn Store,
    id: u128,
    kind: &str,
    grid: &str,
    fields: serde_json::Value,
    log: &[serde_json::Value],
) {
    let mut doc = admin_report(id, kind, grid, fields, log.to_vec());
    let result = ingest(store, &admin(), &push_all(&mut [&mut doc]))
        .await
        .expect("ingest");
    assert!(is_acked(&result.docs[0].outcome), "{:?}", result.docs[0]);
}

/// Keeps `definition` (a schema as JSON) as a draft and publishes it, as an admin would: the
/// version rules and the index questions as in production.
pub async fn publish_schema(store: &dyn Store, definition: serde_json::Value) {
    let schema = Schema::from_json(&definition.to_string()).expect("a valid schema");
    forms::publish(store, &schema).await.expect("publish");
}

/// Retires a published version, as an admin would.
pub async fn retire_schema(store: &dyn Store, kind: &str, version: u32) {
    forms::retire(store, kind, version).await.expect("retire");
}

/// Writes `push` as `writer`, every report acknowledged, under the catalogue `store` holds
/// now. An ingest of its own: the fixtures' shared one knows a catalogue by its revision
/// number alone, which a test publishing other kinds on another store in the same process
/// (`cargo test` runs tests as threads) may have reached too.
pub async fn ingest_published(store: &dyn Store, writer: &Writer, push: &Push) -> PushResult {
    let result = Ingest::default()
        .push(store, writer, push)
        .await
        .expect("ingest");
    for doc in &result.docs {
        assert!(is_acked(&doc.outcome), "{doc:?}");
    }
    result
}

/// Report `id` of `kind` at `version` in `grid`, created by the admin, with these fields.
pub fn versioned_report(
    id: u128,
    kind: &str,
    version: u32,
    grid: &str,
    fields: serde_json::Value,
) -> ReportDoc {
    let by = Editor::new("admin", 1_000);
    let mut doc =
        ReportDoc::create(DocId::from_u128(id), kind, version, grid, &by).expect("create a report");
    doc.set_fields(&object(fields), &by).expect("fill it");
    doc
}
