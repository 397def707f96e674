//! The SQLite store: one file, WAL mode, a single writer connection (SQLite has one writer anyway,
//! and one connection avoids lock-upgrade deadlocks) beside a pool of readers.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use gridsync_core::DocId;
use gridsync_core::ingest::NewChange;
use gridsync_core::protocol::{Pull, PullResult, Push};
use gridsync_core::report::ReportDoc;
use gridsync_core::schema::Registry;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Connection, SqliteConnection};

use super::facts::{
    self, CanvassCounts, DisputeCounts, DrugCounts, DrugDue, LedgerQuery, Period, ResolutionDays,
};
use super::held::{self, HeldDecision, HeldItem, HeldQuery, HeldState};
use super::sessions;
use super::{
    ATTACHMENT_COLUMNS, AUDIT_RECORD_COLUMNS, AssignedReport, Attachment, AttachmentRow,
    AuditEntry, AuditQuery, AuditRecord, AuditRecordRow, AuditRow, Bind, BlobUsage,
    CONFLICT_ITEM_COLUMNS, ChangeLogRow, ChangeRow, Committed, ConflictItem, ConflictItemRecord,
    ConflictQuery, ConflictRecord, ConflictRow, DEVICE_COLUMNS, DOC_COLUMNS, Device, DocChangeRow,
    DocRecord, DocumentRow, NextRefreshToken, OrgRow, OrgUnit, OrphansCollected, Page, PageRow,
    PieceHasher, PoolUse, PulledRow, REFRESH_COLUMNS, RefreshToken, ReportQuery, Result, Rotation,
    SigningKey, Store, StoreError, StoredRow, USER_COLUMNS, UploadChunk, UploadOutcome,
    UploadState, User, UserPatch, UserQuery, UserRow, UserUpdated, Writer, attachment_from,
    audit_filter, audit_from, audit_record_from, change_row_from, conflict_from,
    conflict_item_from, conflict_list_where, cut_range, doc_change_from, heads_to_bytes,
    json_contains_pattern, org_from, org_insert_result, page_doc_from, parse_doc_id, pieces,
    pool_use, pulled_change_from, report_list_where, scope_filter, user_from, user_update_result,
    users_under,
};
use crate::auth::refresh::{self, Verdict};
use crate::scope::{Restricted, Role, Scope};
use crate::sync::ingest::{
    DocWrite, HeldWrite, IngestTx, Loaded, Placement, StoredDoc, ingest_batch,
};
use crate::sync::pull::{PageDoc, PullReads, PulledChange, pull_page};

/// Write transactions take the write lock up front: a deferred one that reads first and then
/// upgrades fails with SQLITE_BUSY at once, without waiting, when another process (say
/// `gridsync migrate`, or a second command on the same file) holds the lock.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged change must survive power loss, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .before_acquire(|conn, _| Box::pin(std::future::ready(Ok(reusable(conn)))))
            .connect_with(options.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore { write, read })
    }

    /// Checks that the file at `path` is a sound SQLite database with no migration unknown to
    /// this binary (fewer is fine: serving it migrates it), without writing to it.
    pub async fn check_copy(path: &Path) -> Result<()> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .create_if_missing(false);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&pool)
            .await?;
        if verdict != "ok" {
            return Err(StoreError::Corrupt(format!(
                "{}: {verdict}",
                path.display()
            )));
        }
        let copy = SqliteStore {
            write: pool.clone(),
            read: pool,
        };
        match copy.check_migrations().await {
            Ok(()) | Err(StoreError::NotMigrated { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Whether a connection taken from the pool (after the pool's ping, so any rollback queued on
/// its release has run) may be used: not when sqlx still counts it inside a transaction. When
/// a COMMIT fails for a full disk, SQLite rolls the transaction back by itself, sqlx's own
/// ROLLBACK then fails and its count stays at one, so every later BEGIN on the connection
/// would fail and the writer stay stuck, even once space returns. Dropped, it is opened anew.
fn reusable(conn: &SqliteConnection) -> bool {
    if conn.is_in_transaction() {
        tracing::warn!("closing a database connection left inside a failed transaction");
        return false;
    }
    true
}

/// The scope condition on `table`'s rows, with the four binds of [`scope_binds`] from
/// placeholder `first`.
fn filter(table: &str, first: usize) -> String {
    scope_filter(table, '?', first)
}

fn scope_binds(scope: &Scope) -> (String, bool, bool, String) {
    (
        scope.prefix.clone(),
        scope.open_kinds,
        scope.restricted == Restricted::All,
        if scope.restricted == Restricted::Assigned {
            scope.user_id.clone()
        } else {
            String::new()
        },
    )
}

impl SqliteStore {
    /// Runs one of the `store::facts` queries: the scope on placeholders 1–4, then its own
    /// values.
    async fn facts<T>(&self, scope: &Scope, (sql, binds): (String, Vec<Bind>)) -> Result<Vec<T>>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
    {
        let (prefix, open, all, assigned) = scope_binds(scope);
        let mut query = sqlx::query_as::<_, T>(AssertSqlSafe(sql))
            .bind(prefix)
            .bind(open)
            .bind(all)
            .bind(assigned);
        for b in binds {
            query = match b {
                Bind::Text(v) => query.bind(v),
                Bind::MaybeText(v) => query.bind(v),
                Bind::Int(v) => query.bind(v),
            };
        }
        Ok(query.fetch_all(&self.read).await?)
    }
}

#[async_trait]
impl IngestTx for SqliteConnection {
    async fn stored(&mut self, id: &DocId) -> Result<Option<StoredDoc>> {
        let row: Option<StoredRow> = sqlx::query_as(
            "SELECT snapshot, snapshot_seq, incremental_bytes, org_path, restricted, assigned_to \
             FROM documents WHERE id = ?1",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *self)
        .await?;
        let Some((snapshot, snapshot_seq, incremental_bytes, org_path, restricted, assigned_to)) =
            row
        else {
            return Ok(None);
        };
        let changes = changes_after(self, id, snapshot_seq).await?;
        Ok(Some(StoredDoc {
            snapshot,
            incremental_bytes,
            org_path,
            restricted,
            assigned_to,
            changes: changes.into_iter().map(|c| c.bytes).collect(),
        }))
    }

    async fn grid_path(&mut self, grid: &str) -> Result<Option<String>> {
        let path: Option<(String,)> =
            sqlx::query_as("SELECT path FROM org_units WHERE id = ?1 AND level = 'grid'")
                .bind(grid)
                .fetch_optional(self)
                .await?;
        Ok(path.map(|p| p.0))
    }

    async fn take_seqs(&mut self, count: i64) -> Result<i64> {
        let (last,): (i64,) = sqlx::query_as(
            "UPDATE counters SET value = value + ?1 WHERE name = 'seq' RETURNING value",
        )
        .bind(count)
        .fetch_one(self)
        .await?;
        Ok(last - count + 1)
    }

    async fn insert_document(&mut self, w: &DocWrite, seq: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO documents (id, kind, schema_version, grid_id, org_path, restricted, \
             assigned_to, seq, heads, snapshot, snapshot_seq, incremental_bytes, projection, status, \
             has_conflicts, problems, created_by, created_at, updated_at, public_text) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?8, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?17, ?18)",
        )
        .bind(w.id.to_string())
        .bind(&w.kind)
        .bind(w.schema_version)
        .bind(&w.grid_id)
        .bind(&w.org_path)
        .bind(w.restricted)
        .bind(&w.assigned_to)
        .bind(seq)
        .bind(&w.heads)
        .bind(w.snapshot.as_deref().unwrap_or_default())
        .bind(w.incremental_bytes)
        .bind(&w.projection)
        .bind(&w.status)
        .bind(w.has_conflicts)
        .bind(&w.problems)
        .bind(&w.created_by)
        .bind(w.created_at)
        .bind(&w.public_text)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn update_document(&mut self, w: &DocWrite, seq: i64) -> Result<()> {
        sqlx::query(
            "UPDATE documents SET org_path = ?2, restricted = ?3, assigned_to = ?4, seq = ?5, \
             heads = ?6, incremental_bytes = ?7, projection = ?8, status = ?9, has_conflicts = ?10, \
             problems = ?11, updated_at = ?12, public_text = ?14, snapshot = COALESCE(?13, snapshot), \
             snapshot_seq = CASE WHEN ?13 IS NULL THEN snapshot_seq ELSE ?5 END WHERE id = ?1",
        )
        .bind(w.id.to_string())
        .bind(&w.org_path)
        .bind(w.restricted)
        .bind(&w.assigned_to)
        .bind(seq)
        .bind(&w.heads)
        .bind(w.incremental_bytes)
        .bind(&w.projection)
        .bind(&w.status)
        .bind(w.has_conflicts)
        .bind(&w.problems)
        .bind(w.updated_at)
        .bind(w.snapshot.as_deref())
        .bind(&w.public_text)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn insert_change(
        &mut self,
        doc: &DocId,
        seq: i64,
        change: &NewChange,
        writer: &Writer,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO changes (hash, doc_id, seq, deps, author, device_id, time, bytes) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(change.hash.0.as_slice())
        .bind(doc.to_string())
        .bind(seq)
        .bind(heads_to_bytes(&change.deps))
        .bind(&writer.user_id)
        .bind(&writer.device_id)
        .bind(change.time)
        .bind(&change.bytes)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn open_conflicts(&mut self, doc: &DocId) -> Result<Vec<(i64, String, String)>> {
        Ok(sqlx::query_as(
            "SELECT id, path, code FROM conflicts WHERE doc_id = ?1 AND resolved_at IS NULL",
        )
        .bind(doc.to_string())
        .fetch_all(self)
        .await?)
    }

    async fn dismissed_flags(&mut self, doc: &DocId) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT DISTINCT path, code FROM conflicts WHERE doc_id = ?1 \
             AND resolved_at IS NOT NULL AND code <> 'concurrent_values'",
        )
        .bind(doc.to_string())
        .fetch_all(self)
        .await?)
    }

    async fn close_conflict(&mut self, id: i64, writer: &Writer) -> Result<()> {
        sqlx::query("UPDATE conflicts SET resolved_at = ?2, resolved_by = ?3 WHERE id = ?1")
            .bind(id)
            .bind(writer.now)
            .bind(&writer.user_id)
            .execute(self)
            .await?;
        Ok(())
    }

    async fn insert_conflict(
        &mut self,
        doc: &DocId,
        (path, code, detail): &(String, String, String),
        at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO conflicts (doc_id, path, code, detail, detected_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(doc.to_string())
        .bind(path)
        .bind(code)
        .bind(detail)
        .bind(at)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn insert_exit(&mut self, doc: &DocId, seq: i64, from: &Placement) -> Result<()> {
        sqlx::query(
            "INSERT INTO scope_exits (doc_id, seq, org_path, restricted, assigned_to) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(doc.to_string())
        .bind(seq)
        .bind(&from.org_path)
        .bind(from.restricted)
        .bind(&from.assigned_to)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn user_scope(&mut self, user_id: &str) -> Result<Option<Scope>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT u.role, o.path FROM users u JOIN org_units o ON o.id = u.org_unit_id \
             WHERE u.id = $1 AND NOT u.disabled",
        )
        .bind(user_id)
        .fetch_optional(&mut *self)
        .await?;
        let Some((role, path)) = row else {
            return Ok(None);
        };
        let role: Role = role
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("user {user_id}: {e}")))?;
        Ok(Some(Scope::for_role(user_id, role, &path)))
    }

    async fn hold(&mut self, h: &HeldWrite, writer: &Writer) -> Result<()> {
        let device = writer.device_id.clone().unwrap_or_default();
        let open: Option<(i64,)> = sqlx::query_as(held::FIND_OPEN)
            .bind(h.doc.to_string())
            .bind(&device)
            .fetch_optional(&mut *self)
            .await?;
        let id = match open {
            Some((id,)) => {
                sqlx::query(held::UPDATE)
                    .bind(id)
                    .bind(&h.code)
                    .bind(&h.placement.org_path)
                    .bind(h.placement.restricted)
                    .bind(&h.placement.assigned_to)
                    .bind(&h.projection)
                    .bind(writer.now)
                    .execute(&mut *self)
                    .await?;
                id
            }
            None => {
                let (id,): (i64,) = sqlx::query_as(held::INSERT)
                    .bind(h.doc.to_string())
                    .bind(&writer.user_id)
                    .bind(&device)
                    .bind(&h.code)
                    .bind(&h.kind)
                    .bind(&h.grid_id)
                    .bind(&h.placement.org_path)
                    .bind(h.placement.restricted)
                    .bind(&h.placement.assigned_to)
                    .bind(&h.projection)
                    .bind(writer.now)
                    .fetch_one(&mut *self)
                    .await?;
                id
            }
        };
        for change in &h.changes {
            sqlx::query(held::INSERT_CHANGE)
                .bind(id)
                .bind(change.hash.0.as_slice())
                .bind(&change.bytes)
                .execute(&mut *self)
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl PullReads for SqliteConnection {
    async fn horizon(&mut self) -> Result<i64> {
        let (horizon,): (i64,) =
            sqlx::query_as("SELECT value FROM counters WHERE name = 'horizon'")
                .fetch_one(self)
                .await?;
        Ok(horizon)
    }

    async fn scoped_doc(
        &mut self,
        scope: &Scope,
        id: &DocId,
    ) -> Result<Option<(PageDoc, Vec<u8>)>> {
        let (prefix, open, all, assigned) = scope_binds(scope);
        let row: Option<(i64, Vec<u8>, Vec<u8>, i64, i64)> =
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT d.seq, d.heads, d.snapshot, d.snapshot_seq, d.incremental_bytes \
             FROM documents d WHERE d.id = ?1 AND {f}",
                f = filter("d", 2)
            )))
            .bind(id.to_string())
            .bind(&prefix)
            .bind(open)
            .bind(all)
            .bind(&assigned)
            .fetch_optional(self)
            .await?;
        Ok(
            row.map(|(seq, heads, snapshot, snapshot_seq, incremental_bytes)| {
                let doc = PageDoc {
                    id: *id,
                    seq,
                    heads,
                    snapshot_len: snapshot.len() as i64,
                    snapshot_seq,
                    incremental_bytes,
                };
                (doc, snapshot)
            }),
        )
    }

    async fn page(&mut self, scope: &Scope, after: i64, limit: i64) -> Result<Vec<PageDoc>> {
        let (prefix, open, all, assigned) = scope_binds(scope);
        let rows: Vec<PageRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT d.id, d.seq, d.heads, length(d.snapshot), d.snapshot_seq, d.incremental_bytes \
             FROM documents d WHERE d.seq > ?1 AND {f} ORDER BY d.seq LIMIT ?6",
            f = filter("d", 2)
        )))
        .bind(after)
        .bind(&prefix)
        .bind(open)
        .bind(all)
        .bind(&assigned)
        .bind(limit)
        .fetch_all(self)
        .await?;
        rows.into_iter().map(page_doc_from).collect()
    }

    async fn page_changes(
        &mut self,
        scope: &Scope,
        after: i64,
        last: i64,
        since: Option<i64>,
    ) -> Result<Vec<(DocId, PulledChange)>> {
        let (prefix, open, all, assigned) = scope_binds(scope);
        let rows: Vec<PulledRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT c.doc_id, c.seq, c.device_id, c.hash, c.bytes FROM changes c \
             JOIN documents d ON d.id = c.doc_id \
             WHERE d.seq > ?1 AND d.seq <= ?6 AND {f} \
             AND c.seq > COALESCE(?7, d.snapshot_seq) ORDER BY c.seq",
            f = filter("d", 2)
        )))
        .bind(after)
        .bind(&prefix)
        .bind(open)
        .bind(all)
        .bind(&assigned)
        .bind(last)
        .bind(since)
        .fetch_all(self)
        .await?;
        rows.into_iter().map(pulled_change_from).collect()
    }

    async fn snapshots(&mut self, ids: &[DocId]) -> Result<HashMap<DocId, Vec<u8>>> {
        let ids: Vec<String> = ids.iter().map(DocId::to_string).collect();
        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT id, snapshot FROM documents WHERE id IN (SELECT value FROM json_each(?1))",
        )
        .bind(serde_json::to_string(&ids).unwrap_or_default())
        .fetch_all(self)
        .await?;
        rows.into_iter()
            .map(|(id, snapshot)| Ok((parse_doc_id(&id)?, snapshot)))
            .collect()
    }

    async fn changes_after(&mut self, id: &DocId, seq: i64) -> Result<Vec<PulledChange>> {
        changes_after(self, id, seq).await
    }

    async fn scope_heads(&mut self, scope: &Scope) -> Result<Vec<(DocId, Vec<u8>)>> {
        let (prefix, open, all, assigned) = scope_binds(scope);
        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT d.id, d.heads FROM documents d WHERE ?1 = ?1 AND {f}",
            f = filter("d", 2)
        )))
        .bind(0)
        .bind(&prefix)
        .bind(open)
        .bind(all)
        .bind(&assigned)
        .fetch_all(self)
        .await?;
        rows.into_iter()
            .map(|(id, heads)| Ok((parse_doc_id(&id)?, heads)))
            .collect()
    }

    async fn exits(&mut self, scope: &Scope, after: i64, limit: i64) -> Result<Vec<(DocId, i64)>> {
        let (prefix, open, all, assigned) = scope_binds(scope);
        let rows: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT e.doc_id, e.seq FROM scope_exits e JOIN documents d ON d.id = e.doc_id \
             WHERE e.seq > ?1 AND {was} AND NOT ({is}) ORDER BY e.seq LIMIT ?6",
            was = filter("e", 2),
            is = filter("d", 2)
        )))
        .bind(after)
        .bind(&prefix)
        .bind(open)
        .bind(all)
        .bind(&assigned)
        .bind(limit)
        .fetch_all(self)
        .await?;
        rows.into_iter()
            .map(|(id, seq)| Ok((parse_doc_id(&id)?, seq)))
            .collect()
    }

    async fn last_seq(&mut self) -> Result<i64> {
        let (seq,): (i64,) = sqlx::query_as("SELECT value FROM counters WHERE name = 'seq'")
            .fetch_one(self)
            .await?;
        Ok(seq)
    }
}

async fn changes_after(
    conn: &mut SqliteConnection,
    id: &DocId,
    seq: i64,
) -> Result<Vec<PulledChange>> {
    let rows: Vec<DocChangeRow> = sqlx::query_as(
        "SELECT seq, device_id, hash, bytes FROM changes WHERE doc_id = ?1 AND seq > ?2 ORDER BY seq",
    )
    .bind(id.to_string())
    .bind(seq)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(doc_change_from).collect())
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("../migrations/sqlite")
            .run(&self.write)
            .await?;
        Ok(())
    }

    async fn check_migrations(&self) -> Result<()> {
        let tracked: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = '_sqlx_migrations')",
        )
        .fetch_one(&self.read)
        .await?;
        let applied: Vec<i64> = if tracked {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.read)
                .await?
        } else {
            Vec::new()
        };
        super::migration_gap(&sqlx::migrate!("../migrations/sqlite"), &applied)
    }

    async fn backup(&self, to: &Path) -> Result<()> {
        let to = to
            .to_str()
            .ok_or_else(|| StoreError::Unsupported(format!("{} is not UTF-8", to.display())))?;
        // VACUUM INTO reads one snapshot, so the copy is consistent while the server writes.
        sqlx::query("VACUUM INTO ?1")
            .bind(to)
            .execute(&self.read)
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn count_open_conflicts(&self) -> Result<i64> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM conflicts WHERE resolved_at IS NULL")
                .fetch_one(&self.read)
                .await?;
        Ok(n)
    }

    fn pool_use(&self) -> Vec<PoolUse> {
        vec![pool_use("write", &self.write), pool_use("read", &self.read)]
    }

    async fn upsert_org_unit(&self, unit: &OrgUnit) -> Result<()> {
        sqlx::query(
            "INSERT INTO org_units (id, parent_id, level, name, path) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (id) DO UPDATE SET parent_id = ?2, level = ?3, name = ?4, path = ?5",
        )
        .bind(&unit.id)
        .bind(&unit.parent_id)
        .bind(unit.level.as_str())
        .bind(&unit.name)
        .bind(&unit.path)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn org_unit(&self, id: &str) -> Result<Option<OrgUnit>> {
        let row: Option<OrgRow> =
            sqlx::query_as("SELECT id, parent_id, level, name, path FROM org_units WHERE id = ?1")
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
        row.map(org_from).transpose()
    }

    async fn org_units(&self) -> Result<Vec<OrgUnit>> {
        let rows: Vec<OrgRow> =
            sqlx::query_as("SELECT id, parent_id, level, name, path FROM org_units ORDER BY path")
                .fetch_all(&self.read)
                .await?;
        rows.into_iter().map(org_from).collect()
    }

    async fn insert_user(&self, user: &User) -> Result<()> {
        let result = sqlx::query(
            "INSERT INTO users (id, username, display_name, password_hash, role, org_unit_id, \
             disabled, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(&user.display_name)
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(&user.org_unit_id)
        .bind(user.disabled)
        .bind(user.created_at)
        .execute(&self.write)
        .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Duplicate(format!("user {}", user.username)))
            }
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    async fn user(&self, id: &str) -> Result<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = ?1"
        )))
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.map(user_from).transpose()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = ?1"
        )))
        .bind(username)
        .fetch_optional(&self.read)
        .await?;
        row.map(user_from).transpose()
    }

    async fn users(&self) -> Result<Vec<User>> {
        let rows: Vec<UserRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY username"
        )))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(user_from).collect()
    }

    async fn count_users(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
            .fetch_one(&self.read)
            .await?;
        Ok(n)
    }

    async fn upsert_device(&self, d: &Device) -> Result<()> {
        sqlx::query(
            "INSERT INTO devices (id, user_id, name, created_at, last_seen_at, revoked_at, cursor) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO UPDATE SET \
             user_id = ?2, name = ?3, last_seen_at = ?5, revoked_at = ?6, cursor = ?7",
        )
        .bind(&d.id)
        .bind(&d.user_id)
        .bind(&d.name)
        .bind(d.created_at)
        .bind(d.last_seen_at)
        .bind(d.revoked_at)
        .bind(d.cursor)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn device(&self, id: &str) -> Result<Option<Device>> {
        let row: Option<Device> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"
        )))
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        Ok(row)
    }

    async fn devices(&self) -> Result<Vec<Device>> {
        let rows: Vec<Device> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices ORDER BY created_at, id"
        )))
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().collect())
    }

    async fn revoke_device(&self, id: &str, at: i64) -> Result<bool> {
        let mut tx = self.write.begin_with(BEGIN_WRITE).await?;
        let done = sqlx::query(
            "UPDATE devices SET revoked_at = ?2, retiring_at = NULL WHERE id = ?1 \
                 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM refresh_tokens WHERE device_id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done > 0)
    }

    async fn finish_retirement(&self, id: &str, at: i64) -> Result<()> {
        let mut tx = self.write.begin_with(BEGIN_WRITE).await?;
        sqlx::query("UPDATE devices SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM refresh_tokens WHERE device_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn retire_device(&self, id: &str, at: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE devices SET retiring_at = COALESCE(retiring_at, $2) \
             WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(at)
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(done > 0)
    }

    async fn note_device_pending(&self, id: &str, pending: i64, at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE devices SET pending_changes = $2, pending_at = $3, last_seen_at = $3 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(pending)
        .bind(at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn set_device_scope(&self, id: &str, scope_key: &str) -> Result<()> {
        sqlx::query("UPDATE devices SET scope_key = $2 WHERE id = $1")
            .bind(id)
            .bind(scope_key)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn insert_refresh_token(&self, t: &RefreshToken) -> Result<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens \
             (token_hash, device_id, family, expires_at, used_at, replaces) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(&t.token_hash)
        .bind(&t.device_id)
        .bind(&t.family)
        .bind(t.expires_at)
        .bind(t.used_at)
        .bind(&t.replaces)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn rotate_refresh_token(
        &self,
        presented: &[u8],
        next: &NextRefreshToken,
        now: i64,
    ) -> Result<Rotation> {
        // The single writer connection makes refreshes take turns.
        let mut tx = self.write.begin_with(BEGIN_WRITE).await?;
        let spent: Option<RefreshToken> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE token_hash = ?1"
        )))
        .bind(presented)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(spent) = spent else {
            return Ok(Rotation::Refused);
        };
        let successors: Vec<RefreshToken> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE replaces = ?1"
        )))
        .bind(presented)
        .fetch_all(&mut *tx)
        .await?;
        let spend = match refresh::judge(&spent, &successors, now) {
            Verdict::Expired => return Ok(Rotation::Refused),
            Verdict::Reused => {
                sqlx::query("DELETE FROM refresh_tokens WHERE family = ?1")
                    .bind(&spent.family)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                return Ok(Rotation::Reused { spent });
            }
            Verdict::Fresh => presented.to_vec(),
            Verdict::Grace { lost } => lost,
        };
        sqlx::query("UPDATE refresh_tokens SET used_at = ?2 WHERE token_hash = ?1")
            .bind(&spend)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO refresh_tokens \
             (token_hash, device_id, family, expires_at, used_at, replaces) \
             VALUES (?1, ?2, ?3, ?4, NULL, ?5)",
        )
        .bind(&next.token_hash)
        .bind(&spent.device_id)
        .bind(&spent.family)
        .bind(next.expires_at)
        .bind(presented)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let grace = spend != presented;
        Ok(Rotation::Rotated { spent, grace })
    }

    async fn revoke_token_family(&self, family: &str) -> Result<()> {
        sqlx::query("DELETE FROM refresh_tokens WHERE family = ?1")
            .bind(family)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn session_live(&self, family: &str, device_id: &str) -> Result<bool> {
        Ok(sqlx::query_scalar(sessions::LIVE)
            .bind(family)
            .bind(device_id)
            .fetch_one(&self.read)
            .await?)
    }

    async fn insert_signing_key(&self, key: &SigningKey) -> Result<()> {
        sqlx::query("INSERT INTO signing_keys (kid, secret, created_at) VALUES (?1, ?2, ?3)")
            .bind(&key.kid)
            .bind(&key.secret)
            .bind(key.created_at)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKey>> {
        let rows: Vec<(String, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT kid, secret, created_at FROM signing_keys ORDER BY created_at DESC, kid DESC",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(kid, secret, created_at)| SigningKey {
                kid,
                secret,
                created_at,
            })
            .collect())
    }

    async fn ingest_committed(
        &self,
        writer: &Writer,
        push: &Push,
        registry: &Registry,
    ) -> Result<Committed> {
        let mut tx = self.write.begin_with(BEGIN_WRITE).await?;
        let result = ingest_batch(&mut *tx, writer, push, registry).await?;
        tx.commit().await?;
        Ok(result)
    }

    async fn pull(
        &self,
        scope: &Scope,
        device_id: Option<&str>,
        pull: &Pull,
    ) -> Result<PullResult> {
        let mut tx = self.read.begin().await?;
        let result = pull_page(&mut *tx, scope, device_id, pull).await?;
        tx.commit().await?;
        if let Some(device) = device_id.filter(|_| pull.after <= pull.since) {
            // The first page of a pull shows what the device holds; that bounds pruning.
            sqlx::query("UPDATE devices SET cursor = ?2 WHERE id = ?1")
                .bind(device)
                .bind(i64::try_from(pull.since).unwrap_or(i64::MAX))
                .execute(&self.write)
                .await?;
        }
        Ok(result)
    }

    async fn document(&self, id: &DocId) -> Result<Option<DocumentRow>> {
        let row: Option<DocRecord> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {DOC_COLUMNS} FROM documents WHERE id = ?1"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.read)
        .await?;
        row.map(DocumentRow::try_from).transpose()
    }

    async fn load_doc(&self, id: &DocId) -> Result<Option<ReportDoc>> {
        let mut tx = self.read.begin().await?;
        let stored = tx.stored(id).await?;
        tx.commit().await?;
        stored
            .map(|s| Loaded::from_stored(*id, s).map(|l| l.doc))
            .transpose()
    }

    async fn changes_of(&self, id: &DocId) -> Result<Vec<ChangeRow>> {
        let rows: Vec<ChangeLogRow> = sqlx::query_as(
            "SELECT hash, seq, author, device_id, time FROM changes WHERE doc_id = ?1 ORDER BY seq",
        )
        .bind(id.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(change_row_from).collect()
    }

    async fn conflicts_of(&self, id: &DocId) -> Result<Vec<ConflictRow>> {
        let rows: Vec<ConflictRecord> = sqlx::query_as(
            "SELECT id, path, code, detail, detected_at, resolved_at, resolved_by \
             FROM conflicts WHERE doc_id = ?1 ORDER BY id",
        )
        .bind(id.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(|r| conflict_from(*id, r)).collect()
    }

    async fn list_reports(&self, scope: &Scope, q: &ReportQuery) -> Result<Page<DocumentRow>> {
        let (prefix, open, all, assigned) = scope_binds(scope);
        let filter = report_list_where('?', "LIKE");
        let org = q.org_path.clone();
        let text = q.q.as_deref().map(json_contains_pattern);
        let (after_at, after_id) = q.after.clone().unzip();
        let mut tx = self.read.begin().await?;
        let rows: Vec<DocRecord> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {DOC_COLUMNS} FROM documents d WHERE {filter} \
             ORDER BY d.updated_at DESC, d.id DESC LIMIT ?15"
        )))
        .bind(&prefix)
        .bind(open)
        .bind(all)
        .bind(&assigned)
        .bind(&q.kind)
        .bind(&org)
        .bind(&q.status)
        .bind(&q.review_state)
        .bind(q.updated_since)
        .bind(&text)
        .bind(q.q_redacted)
        .bind(q.has_conflicts)
        .bind(after_at)
        .bind(&after_id)
        .bind(q.limit + 1)
        .fetch_all(&mut *tx)
        .await?;
        let (total,): (i64,) = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM documents d WHERE {filter}"
        )))
        .bind(&prefix)
        .bind(open)
        .bind(all)
        .bind(&assigned)
        .bind(&q.kind)
        .bind(&org)
        .bind(&q.status)
        .bind(&q.review_state)
        .bind(q.updated_since)
        .bind(&text)
        .bind(q.q_redacted)
        .bind(q.has_conflicts)
        .bind(None::<i64>)
        .bind(None::<String>)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let more = rows.len() as i64 > q.limit;
        let items = rows
            .into_iter()
            .take(usize::try_from(q.limit).unwrap_or(0))
            .map(DocumentRow::try_from)
            .collect::<Result<_>>()?;
        Ok(Page { items, more, total })
    }

    async fn set_review_state(&self, id: &DocId, state: &str, audit: &AuditEntry) -> Result<bool> {
        let mut tx = self.write.begin_with(BEGIN_WRITE).await?;
        let done = sqlx::query("UPDATE documents SET review_state = ?2 WHERE id = ?1")
            .bind(id.to_string())
            .bind(state)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn conflict(&self, id: i64) -> Result<Option<ConflictItem>> {
        let row: Option<ConflictItemRecord> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {CONFLICT_ITEM_COLUMNS} FROM conflicts c JOIN documents d ON d.id = c.doc_id \
             WHERE c.id = ?1"
        )))
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.map(conflict_item_from).transpose()
    }

    async fn list_conflicts(&self, scope: &Scope, q: &ConflictQuery) -> Result<Page<ConflictItem>> {
        let (prefix, open, all, assigned) = scope_binds(scope);
        let filter = conflict_list_where('?');
        let org = q.org_path.clone();
        let mut tx = self.read.begin().await?;
        let rows: Vec<ConflictItemRecord> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {CONFLICT_ITEM_COLUMNS} FROM conflicts c JOIN documents d ON d.id = c.doc_id \
             WHERE {filter} ORDER BY c.id LIMIT ?8"
        )))
        .bind(&prefix)
        .bind(open)
        .bind(all)
        .bind(&assigned)
        .bind(&q.kind)
        .bind(&org)
        .bind(q.after)
        .bind(q.limit + 1)
        .fetch_all(&mut *tx)
        .await?;
        let (total,): (i64,) = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM conflicts c JOIN documents d ON d.id = c.doc_id WHERE {filter}"
        )))
        .bind(&prefix)
        .bind(open)
        .bind(all)
        .bind(&assigned)
        .bind(&q.kind)
        .bind(&org)
        .bind(None::<i64>)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let more = rows.len() as i64 > q.limit;
        let items = rows
            .into_iter()
            .take(usize::try_from(q.limit).unwrap_or(0))
            .map(conflict_item_from)
            .collect::<Result<_>>()?;
        Ok(Page { items, more, total })
    }

    async fn dismiss_flag(&self, id: i64, audit: &AuditEntry) -> Result<bool> {
        let mut tx = self.write.begin_with(BEGIN_WRITE).await?;
        let doc: Option<(String,)> = sqlx::query_as(
            "UPDATE conflicts SET resolved_at = ?2, resolved_by = ?3 WHERE id = ?1 \
             AND resolved_at IS NULL AND code <> 'concurrent_values' RETURNING doc_id",
        )
        .bind(id)
        .bind(audit.at)
        .bind(&audit.user_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((doc,)) = doc else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE documents SET has_conflicts = EXISTS (SELECT 1 FROM conflicts \
             WHERE doc_id = ?1 AND resolved_at IS NULL) WHERE id = ?1",
        )
        .bind(&doc)
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn held_work(&self, scope: &Scope, q: &HeldQuery) -> Result<Vec<HeldItem>> {
        let (prefix, open, all, assigned) = scope_binds(scope);
        let rows: Vec<held::HeldRow> = sqlx::query_as(AssertSqlSafe(held::list('?')))
            .bind(&prefix)
            .bind(open)
            .bind(all)
            .bind(&assigned)
            .bind(q.state.map(HeldState::as_str))
            .bind(q.doc_id.map(|d| d.to_string()))
            .bind(q.before)
            .bind(q.limit)
            .fetch_all(&self.read)
            .await?;
        rows.into_iter().map(HeldItem::try_from).collect()
    }

    async fn held_item(&self, id: i64) -> Result<Option<HeldItem>> {
        let row: Option<held::HeldRow> = sqlx::query_as(AssertSqlSafe(held::one()))
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.map(HeldItem::try_from).transpose()
    }

    async fn held_changes(&self, id: i64) -> Result<Vec<Vec<u8>>> {
        let rows: Vec<(Vec<u8>,)> = sqlx::query_as(held::CHANGES)
            .bind(id)
            .fetch_all(&self.read)
            .await?;
        Ok(rows.into_iter().map(|(bytes,)| bytes).collect())
    }

    async fn decide_held(&self, id: i64, d: &HeldDecision) -> Result<bool> {
        let done = sqlx::query(held::DECIDE)
            .bind(id)
            .bind(d.state.as_str())
            .bind(&d.by)
            .bind(d.at)
            .bind(&d.note)
            .execute(&self.write)
            .await?
            .rows_affected();
        Ok(done > 0)
    }

    async fn prune(&self) -> Result<u64> {
        let mut tx = self.write.begin_with(BEGIN_WRITE).await?;
        let (horizon,): (i64,) = sqlx::query_as(
            "SELECT COALESCE((SELECT MIN(cursor) FROM devices WHERE revoked_at IS NULL), \
             (SELECT value FROM counters WHERE name = 'seq'))",
        )
        .fetch_one(&mut *tx)
        .await?;
        let deleted = sqlx::query(
            "DELETE FROM changes WHERE seq <= ?1 \
             AND seq <= (SELECT snapshot_seq FROM documents d WHERE d.id = changes.doc_id)",
        )
        .bind(horizon)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("UPDATE counters SET value = MAX(value, ?1) WHERE name = 'horizon'")
            .bind(horizon)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn insert_org_unit(&self, unit: &OrgUnit) -> Result<()> {
        let result = sqlx::query(
            "INSERT INTO org_units (id, parent_id, level, name, path) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&unit.id)
        .bind(&unit.parent_id)
        .bind(unit.level.as_str())
        .bind(&unit.name)
        .bind(&unit.path)
        .execute(&self.write)
        .await;
        org_insert_result(result.map(|_| ()), unit)
    }

    async fn rename_org_unit(&self, id: &str, name: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE org_units SET name = ?2 WHERE id = ?1")
            .bind(id)
            .bind(name)
            .execute(&self.write)
            .await?
            .rows_affected();
        Ok(done > 0)
    }

    async fn users_page(&self, q: &UserQuery) -> Result<Page<User>> {
        let under = users_under('?');
        let mut tx = self.read.begin().await?;
        let rows: Vec<UserRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {under} AND username > ?2 \
             ORDER BY username LIMIT ?3"
        )))
        .bind(&q.org_prefix)
        .bind(q.after.as_deref().unwrap_or(""))
        .bind(q.limit + 1)
        .fetch_all(&mut *tx)
        .await?;
        let (total,): (i64,) = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM users WHERE {under}"
        )))
        .bind(&q.org_prefix)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let more = rows.len() as i64 > q.limit;
        Ok(Page {
            items: rows
                .into_iter()
                .take(q.limit as usize)
                .map(user_from)
                .collect::<Result<_>>()?,
            more,
            total,
        })
    }

    async fn update_user(
        &self,
        id: &str,
        patch: &UserPatch,
        now: i64,
    ) -> Result<Option<UserUpdated>> {
        let mut tx = self.write.begin_with(BEGIN_WRITE).await?;
        let row: Option<UserRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = ?1"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (user, retire) = patch.apply(&user_from(row)?);
        let result = sqlx::query(
            "UPDATE users SET display_name = ?2, password_hash = ?3, role = ?4, \
             org_unit_id = ?5, disabled = ?6 WHERE id = ?1",
        )
        .bind(id)
        .bind(&user.display_name)
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(&user.org_unit_id)
        .bind(user.disabled)
        .execute(&mut *tx)
        .await;
        user_update_result(result.map(|_| ()), &user)?;
        let mut retiring_devices = Vec::new();
        if retire {
            let ids: Vec<(String,)> = sqlx::query_as(
                "UPDATE devices SET retiring_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL \
                 AND retiring_at IS NULL RETURNING id",
            )
            .bind(id)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            retiring_devices = ids.into_iter().map(|(d,)| d).collect();
            retiring_devices.sort();
        }
        let mut ended_sessions = 0;
        if patch.password_hash.is_some() {
            let dropped: Vec<sessions::Dropped> = sqlx::query_as(sessions::END_OF_USER)
                .bind(id)
                .bind(&patch.keep_session)
                .fetch_all(&mut *tx)
                .await?;
            ended_sessions = sessions::ended(&dropped, now);
        }
        tx.commit().await?;
        Ok(Some(UserUpdated {
            user,
            retiring_devices,
            ended_sessions,
        }))
    }

    async fn assigned_reports(&self, user_id: &str) -> Result<Vec<AssignedReport>> {
        Ok(sqlx::query_as(
            "SELECT id, org_path FROM documents WHERE restricted AND assigned_to = $1 ORDER BY id",
        )
        .bind(user_id)
        .fetch_all(&self.read)
        .await?)
    }

    async fn devices_of_user(&self, user_id: &str) -> Result<Vec<Device>> {
        let rows: Vec<Device> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE user_id = ?1 ORDER BY created_at, id"
        )))
        .bind(user_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().collect())
    }

    async fn audit_page(&self, q: &AuditQuery) -> Result<Page<AuditRecord>> {
        let (page_filter, page_binds) = audit_filter(q, '?', true);
        let (count_filter, count_binds) = audit_filter(q, '?', false);
        let mut tx = self.read.begin().await?;
        let mut select = sqlx::query_as::<_, AuditRecordRow>(AssertSqlSafe(format!(
            "SELECT {AUDIT_RECORD_COLUMNS} FROM audit_log WHERE {page_filter} \
             ORDER BY id DESC LIMIT ?{}",
            page_binds.len() + 1
        )));
        for b in page_binds {
            select = match b {
                Bind::Text(v) => select.bind(v),
                Bind::MaybeText(v) => select.bind(v),
                Bind::Int(v) => select.bind(v),
            };
        }
        let rows = select.bind(q.limit + 1).fetch_all(&mut *tx).await?;
        let mut count = sqlx::query_as::<_, (i64,)>(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM audit_log WHERE {count_filter}"
        )));
        for b in count_binds {
            count = match b {
                Bind::Text(v) => count.bind(v),
                Bind::MaybeText(v) => count.bind(v),
                Bind::Int(v) => count.bind(v),
            };
        }
        let (total,) = count.fetch_one(&mut *tx).await?;
        tx.commit().await?;
        let more = rows.len() as i64 > q.limit;
        Ok(Page {
            more,
            items: rows
                .into_iter()
                .take(q.limit as usize)
                .map(audit_record_from)
                .collect::<Result<_>>()?,
            total,
        })
    }

    async fn upload_chunk(&self, c: &UploadChunk<'_>) -> Result<UploadOutcome> {
        let doc = c.doc_id.to_string();
        let mut tx = self.write.begin_with(BEGIN_WRITE).await?;
        if c.offset == 0 {
            sqlx::query(
                "INSERT INTO uploads (doc_id, hash, media_type, size, received, created_by, \
                 started_at, updated_at) VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, ?6) \
                 ON CONFLICT (doc_id, hash) DO NOTHING",
            )
            .bind(&doc)
            .bind(c.hash)
            .bind(c.media_type)
            .bind(c.total)
            .bind(c.user_id)
            .bind(c.now)
            .execute(&mut *tx)
            .await?;
        }
        let held: Option<(String, i64, i64)> = sqlx::query_as(
            "SELECT media_type, size, received FROM uploads WHERE doc_id = ?1 AND hash = ?2",
        )
        .bind(&doc)
        .bind(c.hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((media_type, size, mut received)) = held else {
            return Ok(UploadOutcome::WrongOffset { received: 0 });
        };
        if media_type != c.media_type || size != c.total {
            // Another declaration: the upload starts over, from a chunk at offset 0.
            if c.offset != 0 {
                return Ok(UploadOutcome::WrongOffset { received: 0 });
            }
            sqlx::query("DELETE FROM upload_chunks WHERE doc_id = ?1 AND hash = ?2")
                .bind(&doc)
                .bind(c.hash)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE uploads SET media_type = ?3, size = ?4, received = 0, created_by = ?5, \
                 started_at = ?6 WHERE doc_id = ?1 AND hash = ?2",
            )
            .bind(&doc)
            .bind(c.hash)
            .bind(c.media_type)
            .bind(c.total)
            .bind(c.user_id)
            .bind(c.now)
            .execute(&mut *tx)
            .await?;
            received = 0;
        }
        if c.offset != received || c.offset + c.bytes.len() as i64 > c.total {
            return Ok(UploadOutcome::WrongOffset { received });
        }
        for (pos, piece) in pieces(c.offset, c.bytes) {
            sqlx::query(
                "INSERT INTO upload_chunks (doc_id, hash, pos, bytes) VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(&doc)
            .bind(c.hash)
            .bind(pos)
            .bind(piece)
            .execute(&mut *tx)
            .await?;
        }
        received += c.bytes.len() as i64;
        sqlx::query(
            "UPDATE uploads SET received = ?3, updated_at = ?4 WHERE doc_id = ?1 AND hash = ?2",
        )
        .bind(&doc)
        .bind(c.hash)
        .bind(received)
        .bind(c.now)
        .execute(&mut *tx)
        .await?;
        if received < c.total {
            tx.commit().await?;
            return Ok(UploadOutcome::Partial { received });
        }
        // Complete: hash the pieces one at a time, so memory stays at one piece.
        let mut hasher = PieceHasher::new();
        loop {
            let piece: Option<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT pos, bytes FROM upload_chunks WHERE doc_id = ?1 AND hash = ?2 \
                 AND pos >= ?3 ORDER BY pos LIMIT 1",
            )
            .bind(&doc)
            .bind(c.hash)
            .bind(hasher.next)
            .fetch_optional(&mut *tx)
            .await?;
            match piece {
                Some((pos, bytes)) => hasher.feed(pos, &bytes)?,
                None => break,
            }
        }
        let whole = hasher.next == c.total;
        let matches = whole && hasher.finish() == c.hash;
        let mut new_blob = false;
        if matches {
            new_blob = sqlx::query(
                "INSERT INTO blobs (hash, size, created_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (hash) DO NOTHING",
            )
            .bind(c.hash)
            .bind(c.total)
            .bind(c.now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if new_blob {
                sqlx::query(
                    "INSERT INTO blob_chunks (hash, pos, bytes) SELECT hash, pos, bytes \
                     FROM upload_chunks WHERE doc_id = ?1 AND hash = ?2",
                )
                .bind(&doc)
                .bind(c.hash)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO attachments (doc_id, hash, media_type, size, created_by, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (doc_id, hash) DO NOTHING",
            )
            .bind(&doc)
            .bind(c.hash)
            .bind(c.media_type)
            .bind(c.total)
            .bind(c.user_id)
            .bind(c.now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM upload_chunks WHERE doc_id = ?1 AND hash = ?2")
            .bind(&doc)
            .bind(c.hash)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM uploads WHERE doc_id = ?1 AND hash = ?2")
            .bind(&doc)
            .bind(c.hash)
            .execute(&mut *tx)
            .await?;
        let link: Option<AttachmentRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE doc_id = ?1 AND hash = ?2"
        )))
        .bind(&doc)
        .bind(c.hash)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        match (matches, link) {
            (true, Some(row)) => Ok(UploadOutcome::Complete {
                attachment: attachment_from(row)?,
                new_blob,
            }),
            (true, None) => Err(StoreError::Corrupt("attachment link vanished".into())),
            (false, _) => Ok(UploadOutcome::HashMismatch),
        }
    }

    async fn upload_state(&self, doc_id: &DocId, hash: &str) -> Result<Option<UploadState>> {
        let row: Option<(String, i64, i64)> = sqlx::query_as(
            "SELECT media_type, size, received FROM uploads WHERE doc_id = ?1 AND hash = ?2",
        )
        .bind(doc_id.to_string())
        .bind(hash)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|(media_type, size, received)| UploadState {
            media_type,
            size,
            received,
        }))
    }

    async fn link_visible_blob(
        &self,
        scope: &Scope,
        link: &Attachment,
    ) -> Result<Option<Attachment>> {
        let doc = link.doc_id.to_string();
        let mut tx = self.write.begin_with(BEGIN_WRITE).await?;
        let here: Option<AttachmentRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE doc_id = ?1 AND hash = ?2"
        )))
        .bind(&doc)
        .bind(&link.hash)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = here {
            tx.commit().await?;
            return attachment_from(row).map(Some);
        }
        let (prefix, open, all, user) = scope_binds(scope);
        let size: Option<(i64,)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT a.size FROM attachments a JOIN documents d ON d.id = a.doc_id \
             WHERE a.hash = ?1 AND {} LIMIT 1",
            filter("d", 2)
        )))
        .bind(&link.hash)
        .bind(prefix)
        .bind(open)
        .bind(all)
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((size,)) = size else {
            tx.commit().await?;
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO attachments (doc_id, hash, media_type, size, created_by, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (doc_id, hash) DO NOTHING",
        )
        .bind(&doc)
        .bind(&link.hash)
        .bind(&link.media_type)
        .bind(size)
        .bind(&link.created_by)
        .bind(link.created_at)
        .execute(&mut *tx)
        .await?;
        // An upload of the same bytes for this report is no longer needed.
        sqlx::query("DELETE FROM upload_chunks WHERE doc_id = ?1 AND hash = ?2")
            .bind(&doc)
            .bind(&link.hash)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM uploads WHERE doc_id = ?1 AND hash = ?2")
            .bind(&doc)
            .bind(&link.hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Attachment {
            size,
            ..link.clone()
        }))
    }

    async fn attachment(&self, doc_id: &DocId, hash: &str) -> Result<Option<Attachment>> {
        let row: Option<AttachmentRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE doc_id = ?1 AND hash = ?2"
        )))
        .bind(doc_id.to_string())
        .bind(hash)
        .fetch_optional(&self.read)
        .await?;
        row.map(attachment_from).transpose()
    }

    async fn attachments_of(&self, doc_id: &DocId) -> Result<Vec<Attachment>> {
        let rows: Vec<AttachmentRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE doc_id = ?1 \
             ORDER BY created_at, hash"
        )))
        .bind(doc_id.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(attachment_from).collect()
    }

    async fn read_blob(&self, hash: &str, start: i64, end: i64) -> Result<Option<Vec<u8>>> {
        let mut tx = self.read.begin().await?;
        let size: Option<(i64,)> = sqlx::query_as("SELECT size FROM blobs WHERE hash = ?1")
            .bind(hash)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((size,)) = size else {
            return Ok(None);
        };
        if start < 0 || end > size || start > end {
            return Err(StoreError::NotFound(format!(
                "bytes {start}..{end} of blob"
            )));
        }
        if start == end {
            return Ok(Some(Vec::new()));
        }
        let pieces: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT pos, bytes FROM blob_chunks WHERE hash = ?1 AND pos < ?3 \
             AND pos + length(bytes) > ?2 ORDER BY pos",
        )
        .bind(hash)
        .bind(start)
        .bind(end)
        .fetch_all(&mut *tx)
        .await?;
        cut_range(pieces, start, end).map(Some)
    }

    async fn collect_orphans(&self, before: i64) -> Result<OrphansCollected> {
        let mut tx = self.write.begin_with(BEGIN_WRITE).await?;
        sqlx::query(
            "DELETE FROM upload_chunks WHERE (doc_id, hash) IN \
             (SELECT doc_id, hash FROM uploads WHERE updated_at < ?1)",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?;
        let uploads = sqlx::query("DELETE FROM uploads WHERE updated_at < ?1")
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // A link outlives its attachment when the report detaches it; the document decides.
        // The attachments of a removed log entry stay: restoring the entry brings them back.
        let links = sqlx::query(
            "DELETE FROM attachments WHERE created_at < ?1 AND NOT EXISTS \
             (SELECT 1 FROM documents d WHERE d.id = attachments.doc_id AND \
             EXISTS (SELECT 1 FROM json_each(d.projection, '$.attachments') j \
             WHERE CASE WHEN j.type = 'object' THEN json_extract(j.value, '$.sha256') END = attachments.hash \
             UNION ALL SELECT 1 FROM json_each(d.projection, '$.hidden_attachments') j \
             WHERE CASE WHEN j.type = 'object' THEN json_extract(j.value, '$.sha256') END = attachments.hash))",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let orphan = "SELECT hash FROM blobs b WHERE b.created_at < ?1 \
                      AND NOT EXISTS (SELECT 1 FROM attachments a WHERE a.hash = b.hash)";
        for table in ["blob_chunks", "thumbnails"] {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE hash IN ({orphan})"
            )))
            .bind(before)
            .execute(&mut *tx)
            .await?;
        }
        let blobs = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM blobs WHERE hash IN ({orphan})"
        )))
        .bind(before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(OrphansCollected {
            uploads,
            links,
            blobs,
        })
    }

    async fn put_thumbnail(&self, hash: &str, bytes: &[u8], now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO thumbnails (hash, bytes, created_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (hash) DO UPDATE SET bytes = excluded.bytes, created_at = excluded.created_at",
        )
        .bind(hash)
        .bind(bytes)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn thumbnail(&self, doc_id: &DocId, hash: &str) -> Result<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> = sqlx::query_as(
            "SELECT t.bytes FROM thumbnails t JOIN attachments a ON a.hash = t.hash \
             WHERE a.doc_id = ?1 AND a.hash = ?2",
        )
        .bind(doc_id.to_string())
        .bind(hash)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|r| r.0))
    }

    async fn thumbnails_of(&self, doc_id: &DocId) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT t.hash FROM thumbnails t JOIN attachments a ON a.hash = t.hash \
             WHERE a.doc_id = ?1 ORDER BY t.hash",
        )
        .bind(doc_id.to_string())
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    async fn blob_usage(&self) -> Result<BlobUsage> {
        let (blobs, pieces, bytes, uploads, upload_bytes): (i64, i64, i64, i64, i64) =
            sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM blobs), (SELECT COUNT(*) FROM blob_chunks), \
                 (SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM blobs), (SELECT COUNT(*) FROM uploads), \
                 (SELECT CAST(COALESCE(SUM(length(bytes)), 0) AS BIGINT) FROM upload_chunks)",
            )
            .fetch_one(&self.read)
            .await?;
        Ok(BlobUsage {
            blobs,
            pieces,
            bytes,
            uploads,
            upload_bytes,
        })
    }

    async fn canvass_counts(&self, scope: &Scope, period: &Period) -> Result<Vec<CanvassCounts>> {
        self.facts(scope, facts::canvass('?', period)).await
    }

    async fn worry_counts(&self, scope: &Scope, period: &Period) -> Result<Vec<(String, i64)>> {
        self.facts(scope, facts::worries('?', period)).await
    }

    async fn dispute_counts(
        &self,
        scope: &Scope,
        period: &Period,
        today: &str,
    ) -> Result<Vec<DisputeCounts>> {
        self.facts(scope, facts::disputes('?', period, today)).await
    }

    async fn resolution_days(&self, scope: &Scope, period: &Period) -> Result<Vec<ResolutionDays>> {
        self.facts(scope, facts::resolution_days('?', period)).await
    }

    async fn drug_counts(&self, scope: &Scope, due: &DrugDue) -> Result<Vec<DrugCounts>> {
        self.facts(scope, facts::drug('?', due)).await
    }

    async fn ledger_page(&self, scope: &Scope, query: &LedgerQuery) -> Result<Vec<DocumentRow>> {
        let rows: Vec<DocRecord> = self.facts(scope, facts::ledger('?', query)).await?;
        rows.into_iter().map(DocumentRow::try_from).collect()
    }

    async fn audit(&self, e: &AuditEntry) -> Result<()> {
        let mut conn = self.write.acquire().await?;
        insert_audit(&mut conn, e).await
    }

    async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT at, user_id, device_id, action, doc_id, detail FROM audit_log \
             ORDER BY id DESC LIMIT ?1",
        )
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(audit_from).collect()
    }
}

async fn insert_audit(conn: &mut SqliteConnection, e: &AuditEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, user_id, device_id, action, doc_id, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(e.at)
    .bind(&e.user_id)
    .bind(&e.device_id)
    .bind(&e.action)
    .bind(e.doc_id.map(|d| d.to_string()))
    .bind(e.detail.to_string())
    .execute(conn)
    .await?;
    Ok(())
}
