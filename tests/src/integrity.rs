//! The integrity check of a server database after crashes: the engine's own checks (SQLite),
//! and on both backends that every stored report is whole and the tables agree with each other.

use std::collections::{BTreeMap, BTreeSet};

use automerge::ChangeHash;
use gridsync_core::DocId;
use gridsync_core::report::ReportDoc;
use gridsync_server::store::{self, DocumentRow};

/// A stored report as the check found it.
pub struct Stored {
    pub row: DocumentRow,
    pub doc: ReportDoc,
}

/// What [`check`] found: every report, and the last sequence number given out (the `seq`
/// counter on SQLite, the `change_seq` sequence on Postgres) with the change log's size.
pub struct Checked {
    pub reports: BTreeMap<DocId, Stored>,
    pub counter: i64,
    pub changes: i64,
}

/// Checks the database at `url` and panics, saying what is wrong, unless: SQLite's
/// `integrity_check` and `foreign_key_check` pass; no change row lacks its document and no
/// document its snapshot or changes; every document's seq is its latest change's; no two changes
/// share a seq and the last number given out is at or past every one; and every document loads (snapshot plus
/// changes), with the heads its row states, exactly its logged changes as history, and no
/// mediation-log entry twice.
pub async fn check(url: &str) -> Checked {
    let db = Db::connect(url).await;
    if let Db::Sqlite(pool) = &db {
        let rows: Vec<(String,)> = sqlx::query_as("PRAGMA integrity_check")
            .fetch_all(pool)
            .await
            .expect("PRAGMA integrity_check");
        let said: Vec<String> = rows.into_iter().map(|r| r.0).collect();
        assert_eq!(said, ["ok"], "PRAGMA integrity_check");
        let broken: Vec<(String, Option<i64>, String, i64)> =
            sqlx::query_as("PRAGMA foreign_key_check")
                .fetch_all(pool)
                .await
                .expect("PRAGMA foreign_key_check");
        assert!(broken.is_empty(), "PRAGMA foreign_key_check: {broken:?}");
    }

    let orphans = db
        .int("SELECT COUNT(*) FROM changes c WHERE NOT EXISTS (SELECT 1 FROM documents d WHERE d.id = c.doc_id)")
        .await;
    assert_eq!(orphans, 0, "change rows without their document");
    let bare = db
        .int(
            "SELECT COUNT(*) FROM documents d WHERE length(d.snapshot) = 0 \
              OR NOT EXISTS (SELECT 1 FROM changes c WHERE c.doc_id = d.id)",
        )
        .await;
    assert_eq!(bare, 0, "documents without a snapshot or without changes");
    let stale = db
        .int(
            "SELECT COUNT(*) FROM documents d WHERE d.snapshot_seq > d.seq \
              OR d.seq <> (SELECT MAX(c.seq) FROM changes c WHERE c.doc_id = d.id)",
        )
        .await;
    assert_eq!(stale, 0, "documents whose seq is not their latest change's");
    let counter = match db {
        Db::Sqlite(_) => {
            db.int("SELECT value FROM counters WHERE name = 'seq'")
                .await
        }
        Db::Postgres(_) => {
            db.int("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM change_seq")
                .await
        }
    };
    let changes = db.int("SELECT COUNT(*) FROM changes").await;
    let distinct = db.int("SELECT COUNT(DISTINCT seq) FROM changes").await;
    let max = db.int("SELECT COALESCE(MAX(seq), 0) FROM changes").await;
    assert_eq!(distinct, changes, "two changes share a sequence number");
    assert!(
        counter >= max,
        "the seq counter ({counter}) is behind a stored change ({max}): it would be given out again"
    );

    let store = store::open(url).await.expect("open the store");
    let mut reports = BTreeMap::new();
    for id in db.strings("SELECT id FROM documents ORDER BY id").await {
        let id: DocId = id.parse().expect("document id");
        let row = store
            .document(&id)
            .await
            .expect("read document row")
            .expect("listed document has a row");
        let mut doc = store
            .load_doc(&id)
            .await
            .unwrap_or_else(|e| panic!("document {id} does not load: {e}"))
            .expect("listed document loads");
        let heads: BTreeSet<ChangeHash> = doc.heads().into_iter().collect();
        let row_heads: BTreeSet<ChangeHash> = row.heads.iter().copied().collect();
        assert_eq!(
            heads, row_heads,
            "stored heads of {id} are not its document's"
        );
        let log = store.changes_of(&id).await.expect("changes of document");
        assert_eq!(
            log.len(),
            doc.count_changes_since(&[]),
            "the change log of {id} is not the document's history"
        );
        for change in &log {
            assert!(
                doc.has_change(&change.hash),
                "change {} of {id} is logged but not in the document",
                change.hash
            );
        }
        let entries = log_entry_ids(&row.projection);
        let unique: BTreeSet<&String> = entries.iter().collect();
        assert_eq!(
            unique.len(),
            entries.len(),
            "a mediation-log entry of {id} is there twice: {entries:?}"
        );
        reports.insert(id, Stored { row, doc });
    }
    // Closed before the test process exits (`Store::close` says why).
    store.close().await;
    db.close().await;
    Checked {
        reports,
        counter,
        changes,
    }
}

/// The ids of a report projection's log entries, in order.
pub fn log_entry_ids(projection: &serde_json::Value) -> Vec<String> {
    projection["log"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|entry| entry["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Direct SQL for what the `Store` trait does not expose: listing every document and checking
/// the tables against each other. The queries are plain SQL that both backends accept.
enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Db {
    async fn connect(url: &str) -> Db {
        if url.starts_with("sqlite:") {
            Db::Sqlite(
                sqlx::SqlitePool::connect(url)
                    .await
                    .expect("connect SQLite"),
            )
        } else {
            Db::Postgres(sqlx::PgPool::connect(url).await.expect("connect Postgres"))
        }
    }

    async fn close(&self) {
        match self {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }

    /// The one integer that `sql` selects.
    async fn int(&self, sql: &'static str) -> i64 {
        let (n,): (i64,) = match self {
            Db::Sqlite(pool) => sqlx::query_as(sql).fetch_one(pool).await,
            Db::Postgres(pool) => sqlx::query_as(sql).fetch_one(pool).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
        n
    }

    async fn strings(&self, sql: &'static str) -> Vec<String> {
        let rows: Vec<(String,)> = match self {
            Db::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await,
            Db::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.into_iter().map(|r| r.0).collect()
    }
}
