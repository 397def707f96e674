//! The SQLite store: one file, WAL mode, a single writer connection (SQLite has one writer anyway,
//! and one connection avoids lock-upgrade deadlocks) beside a pool of readers.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use gridsync_core::DocId;
use gridsync_core::protocol::{Pull, PullDoc, PullResult, Push, PushDocResult, PushResult};
use gridsync_core::report::ReportDoc;
use gridsync_core::schema::Registry;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Sqlite, Transaction};

use super::{
    AuditEntry, ChangeRow, ConflictRow, DEVICE_COLUMNS, DOC_COLUMNS, Device, DeviceRow, DocRecord,
    DocumentRow, OrgRow, OrgUnit, RefreshToken, Result, SigningKey, Store, StoreError,
    USER_COLUMNS, User, UserRow, Writer, device_from, heads_from_bytes, heads_to_bytes, org_from,
    parse_doc_id, user_from,
};
use crate::scope::{Restricted, Scope};
use crate::sync::{self, Body, Loaded, PageDoc, PulledChange};

/// How many documents one pull page lists before the byte budget is applied.
const PAGE_DOCS: i64 = 500;

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
            .connect_with(options.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore { write, read })
    }
}

/// The SQL condition selecting documents (aliased `d`) in `scope`, binding ?2 to ?5.
const SCOPE_FILTER: &str = "d.org_path LIKE ?2 ESCAPE '\\' \
     AND ((d.restricted = 0 AND ?3) OR (d.restricted = 1 AND (?4 OR d.assigned_to = ?5)))";

fn scope_binds(scope: &Scope) -> (String, bool, bool, String) {
    (
        scope.like_pattern(),
        scope.open_kinds,
        scope.restricted == Restricted::All,
        if scope.restricted == Restricted::Assigned {
            scope.user_id.clone()
        } else {
            String::new()
        },
    )
}

/// snapshot, snapshot_seq, incremental_bytes, org_path, restricted, assigned_to
type IngestRow = (Vec<u8>, i64, i64, String, bool, Option<String>);
/// seq, heads, snapshot, snapshot_seq, incremental_bytes
type ResendRow = (i64, Vec<u8>, Vec<u8>, i64, i64);

async fn load_for_ingest(tx: &mut Transaction<'_, Sqlite>, id: &DocId) -> Result<Option<Loaded>> {
    let row: Option<IngestRow> = sqlx::query_as(
        "SELECT snapshot, snapshot_seq, incremental_bytes, org_path, restricted, assigned_to \
         FROM documents WHERE id = ?1",
    )
    .bind(id.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    let Some((snapshot, snapshot_seq, incremental_bytes, org_path, restricted, assigned_to)) = row
    else {
        return Ok(None);
    };
    let changes: Vec<(Vec<u8>,)> =
        sqlx::query_as("SELECT bytes FROM changes WHERE doc_id = ?1 AND seq > ?2 ORDER BY seq")
            .bind(id.to_string())
            .bind(snapshot_seq)
            .fetch_all(&mut **tx)
            .await?;
    let snapshot_len = snapshot.len() as i64;
    let mut bytes = snapshot;
    for (c,) in changes {
        bytes.extend_from_slice(&c);
    }
    let doc = ReportDoc::load(*id, &bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Some(Loaded {
        doc,
        snapshot_len,
        incremental_bytes,
        org_path,
        restricted,
        assigned_to,
    }))
}

async fn write_doc(
    tx: &mut Transaction<'_, Sqlite>,
    w: &sync::DocWrite,
    first_seq: i64,
    writer: &Writer,
) -> Result<()> {
    let id = w.id.to_string();
    let last_seq = first_seq + w.changes.len() as i64 - 1;
    if w.is_new {
        sqlx::query(
            "INSERT INTO documents (id, kind, schema_version, grid_id, org_path, restricted, \
             assigned_to, seq, heads, snapshot, snapshot_seq, incremental_bytes, projection, status, \
             has_conflicts, problems, created_by, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?8, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?17)",
        )
        .bind(&id)
        .bind(&w.kind)
        .bind(w.schema_version)
        .bind(&w.grid_id)
        .bind(&w.org_path)
        .bind(w.restricted)
        .bind(&w.assigned_to)
        .bind(last_seq)
        .bind(&w.heads)
        .bind(w.snapshot.as_deref().unwrap_or_default())
        .bind(w.incremental_bytes)
        .bind(&w.projection)
        .bind(&w.status)
        .bind(w.has_conflicts)
        .bind(&w.problems)
        .bind(&w.created_by)
        .bind(w.created_at)
        .execute(&mut **tx)
        .await?;
    } else {
        sqlx::query(
            "UPDATE documents SET org_path = ?2, restricted = ?3, assigned_to = ?4, seq = ?5, \
             heads = ?6, incremental_bytes = ?7, projection = ?8, status = ?9, has_conflicts = ?10, \
             problems = ?11, updated_at = ?12 WHERE id = ?1",
        )
        .bind(&id)
        .bind(&w.org_path)
        .bind(w.restricted)
        .bind(&w.assigned_to)
        .bind(last_seq)
        .bind(&w.heads)
        .bind(w.incremental_bytes)
        .bind(&w.projection)
        .bind(&w.status)
        .bind(w.has_conflicts)
        .bind(&w.problems)
        .bind(w.updated_at)
        .execute(&mut **tx)
        .await?;
        if let Some(snapshot) = &w.snapshot {
            sqlx::query("UPDATE documents SET snapshot = ?2, snapshot_seq = ?3 WHERE id = ?1")
                .bind(&id)
                .bind(snapshot)
                .bind(last_seq)
                .execute(&mut **tx)
                .await?;
        }
    }
    for (i, c) in w.changes.iter().enumerate() {
        sqlx::query(
            "INSERT INTO changes (hash, doc_id, seq, deps, author, device_id, time, bytes) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(c.hash.0.as_slice())
        .bind(&id)
        .bind(first_seq + i as i64)
        .bind(heads_to_bytes(&c.deps))
        .bind(&writer.user_id)
        .bind(&writer.device_id)
        .bind(c.time)
        .bind(&c.bytes)
        .execute(&mut **tx)
        .await?;
    }
    let open: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT id, path, code FROM conflicts WHERE doc_id = ?1 AND resolved_at IS NULL",
    )
    .bind(&id)
    .fetch_all(&mut **tx)
    .await?;
    let (gone, new) = sync::conflict_diff(&open, &w.conflicts);
    for conflict_id in gone {
        sqlx::query("UPDATE conflicts SET resolved_at = ?2, resolved_by = ?3 WHERE id = ?1")
            .bind(conflict_id)
            .bind(writer.now)
            .bind(&writer.user_id)
            .execute(&mut **tx)
            .await?;
    }
    for (path, code, detail) in new {
        sqlx::query(
            "INSERT INTO conflicts (doc_id, path, code, detail, detected_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&id)
        .bind(path)
        .bind(code)
        .bind(detail)
        .bind(writer.now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("../migrations/sqlite")
            .run(&self.write)
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
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
        let row: Option<DeviceRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"
        )))
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(device_from))
    }

    async fn devices(&self) -> Result<Vec<Device>> {
        let rows: Vec<DeviceRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices ORDER BY created_at, id"
        )))
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(device_from).collect())
    }

    async fn revoke_device(&self, id: &str, at: i64) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let done =
            sqlx::query("UPDATE devices SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")
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

    async fn insert_refresh_token(&self, t: &RefreshToken) -> Result<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, device_id, family, expires_at, used_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&t.token_hash)
        .bind(&t.device_id)
        .bind(&t.family)
        .bind(t.expires_at)
        .bind(t.used_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn use_refresh_token(&self, token_hash: &[u8], at: i64) -> Result<Option<RefreshToken>> {
        let mut tx = self.write.begin().await?;
        let row: Option<(Vec<u8>, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT token_hash, device_id, family, expires_at, used_at FROM refresh_tokens \
             WHERE token_hash = ?1",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        if row.as_ref().is_some_and(|r| r.4.is_none()) {
            sqlx::query("UPDATE refresh_tokens SET used_at = ?2 WHERE token_hash = ?1")
                .bind(token_hash)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(row.map(|r| RefreshToken {
            token_hash: r.0,
            device_id: r.1,
            family: r.2,
            expires_at: r.3,
            used_at: r.4,
        }))
    }

    async fn revoke_token_family(&self, family: &str) -> Result<()> {
        sqlx::query("DELETE FROM refresh_tokens WHERE family = ?1")
            .bind(family)
            .execute(&self.write)
            .await?;
        Ok(())
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

    async fn ingest(
        &self,
        writer: &Writer,
        push: &Push,
        registry: &Registry,
    ) -> Result<PushResult> {
        let mut tx = self.write.begin().await?;
        let mut results = Vec::with_capacity(push.docs.len());
        let mut writes = Vec::new();
        for item in &push.docs {
            let loaded = load_for_ingest(&mut tx, &item.doc).await?;
            let outcome = match sync::apply(loaded, item, writer, registry) {
                Ok(applied) => {
                    let org_path: Option<(String,)> = sqlx::query_as(
                        "SELECT path FROM org_units WHERE id = ?1 AND level = 'grid'",
                    )
                    .bind(applied.grid())
                    .fetch_optional(&mut *tx)
                    .await?;
                    match sync::plan(applied, org_path.map(|p| p.0), writer, registry) {
                        Ok(plan) => {
                            writes.extend(plan.write);
                            plan.outcome
                        }
                        Err(outcome) => outcome,
                    }
                }
                Err(outcome) => outcome,
            };
            results.push(PushDocResult {
                doc: item.doc,
                outcome,
            });
        }
        let total: i64 = writes.iter().map(|w| w.changes.len() as i64).sum();
        if total > 0 {
            let (last,): (i64,) = sqlx::query_as(
                "UPDATE counters SET value = value + ?1 WHERE name = 'seq' RETURNING value",
            )
            .bind(total)
            .fetch_one(&mut *tx)
            .await?;
            let mut next = last - total + 1;
            for w in &writes {
                write_doc(&mut tx, w, next, writer).await?;
                next += w.changes.len() as i64;
            }
        }
        tx.commit().await?;
        Ok(PushResult { docs: results })
    }

    async fn pull(
        &self,
        scope: &Scope,
        device_id: Option<&str>,
        pull: &Pull,
    ) -> Result<PullResult> {
        let cursor = i64::try_from(pull.cursor).unwrap_or(i64::MAX);
        let (pattern, open, all, assigned) = scope_binds(scope);
        // One read transaction: the page and the digest describe the same snapshot, so a client
        // at the end of its pull agrees with the digest even while others commit.
        let mut tx = self.read.begin().await?;
        let (horizon,): (i64,) =
            sqlx::query_as("SELECT value FROM counters WHERE name = 'horizon'")
                .fetch_one(&mut *tx)
                .await?;
        let full = cursor == 0 || cursor < horizon;
        let budget = pull.byte_budget as usize;
        let mut out = Vec::new();
        let mut bytes = 0usize;

        for id in &pull.resend {
            let Some((page, snapshot)) = page_doc(&mut tx, scope, id).await? else {
                continue;
            };
            let changes = changes_after(&mut tx, id, page.snapshot_seq).await?;
            let body = sync::snapshot_body(snapshot, &page, &changes);
            bytes += sync::body_len(&body);
            out.push(PullDoc {
                doc: *id,
                heads: page
                    .heads
                    .chunks_exact(32)
                    .filter_map(|c| c.try_into().ok())
                    .collect(),
                body,
            });
        }

        let rows: Vec<(String, i64, Vec<u8>, i64, i64, i64)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT d.id, d.seq, d.heads, length(d.snapshot), d.snapshot_seq, d.incremental_bytes \
             FROM documents d WHERE d.seq > ?1 AND {SCOPE_FILTER} ORDER BY d.seq LIMIT ?6"
        )))
        .bind(cursor)
        .bind(&pattern)
        .bind(open)
        .bind(all)
        .bind(&assigned)
        .bind(PAGE_DOCS)
        .fetch_all(&mut *tx)
        .await?;
        let listed_all = (rows.len() as i64) < PAGE_DOCS;
        let page: Vec<PageDoc> = rows
            .into_iter()
            .map(|r| {
                Ok(PageDoc {
                    id: parse_doc_id(&r.0)?,
                    seq: r.1,
                    heads: r.2,
                    snapshot_len: r.3,
                    snapshot_seq: r.4,
                    incremental_bytes: r.5,
                })
            })
            .collect::<Result<_>>()?;
        let mut next_cursor = cursor;
        let mut stopped = false;
        if let Some(last) = page.last() {
            let changes: Vec<(String, i64, Option<String>, Vec<u8>)> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT c.doc_id, c.seq, c.device_id, c.bytes FROM changes c \
                 JOIN documents d ON d.id = c.doc_id \
                 WHERE d.seq > ?1 AND d.seq <= ?6 AND {SCOPE_FILTER} \
                 AND ((?7 = 0 AND c.seq > ?1) OR (?7 = 1 AND c.seq > d.snapshot_seq)) ORDER BY c.seq"
            )))
            .bind(cursor)
            .bind(&pattern)
            .bind(open)
            .bind(all)
            .bind(&assigned)
            .bind(last.seq)
            .bind(full)
            .fetch_all(&mut *tx)
            .await?;
            let mut by_doc: std::collections::HashMap<String, Vec<PulledChange>> =
                std::collections::HashMap::new();
            for (doc, seq, device, bytes) in changes {
                by_doc.entry(doc).or_default().push(PulledChange {
                    seq,
                    device_id: device,
                    bytes,
                });
            }
            for doc in &page {
                if !out.is_empty() && bytes >= budget {
                    stopped = true;
                    break;
                }
                let changes = by_doc.remove(&doc.id.to_string()).unwrap_or_default();
                let body = match sync::choose_body(doc, full, &changes, device_id) {
                    Body::Skip => {
                        next_cursor = doc.seq;
                        continue;
                    }
                    Body::Changes(c) => gridsync_core::protocol::PullBody::Changes(c),
                    Body::Snapshot => {
                        let snapshot = snapshot_of(&mut tx, &doc.id).await?;
                        let after = if full {
                            changes
                        } else {
                            changes_after(&mut tx, &doc.id, doc.snapshot_seq).await?
                        };
                        sync::snapshot_body(snapshot, doc, &after)
                    }
                };
                bytes += sync::body_len(&body);
                next_cursor = doc.seq;
                out.push(PullDoc {
                    doc: doc.id,
                    heads: doc
                        .heads
                        .chunks_exact(32)
                        .filter_map(|c| c.try_into().ok())
                        .collect(),
                    body,
                });
            }
        }
        let more = stopped || !listed_all;
        let digest = if more {
            [0; 32]
        } else {
            let heads: Vec<(String, Vec<u8>)> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT d.id, d.heads FROM documents d WHERE ?1 = ?1 AND {SCOPE_FILTER}"
            )))
            .bind(0)
            .bind(&pattern)
            .bind(open)
            .bind(all)
            .bind(&assigned)
            .fetch_all(&mut *tx)
            .await?;
            sync::digest(heads.iter().map(|(id, h)| (id.as_str(), h.as_slice())))?
        };
        tx.commit().await?;
        if let Some(device) = device_id {
            sqlx::query("UPDATE devices SET cursor = ?2 WHERE id = ?1")
                .bind(device)
                .bind(cursor)
                .execute(&self.write)
                .await?;
        }
        Ok(PullResult {
            docs: out,
            evicted: Vec::new(),
            next_cursor: u64::try_from(next_cursor).unwrap_or(0),
            more,
            digest,
        })
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
        let loaded = load_for_ingest(&mut tx, id).await?;
        tx.commit().await?;
        Ok(loaded.map(|l| l.doc))
    }

    async fn changes_of(&self, id: &DocId) -> Result<Vec<ChangeRow>> {
        let rows: Vec<(Vec<u8>, i64, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT hash, seq, author, device_id, time FROM changes WHERE doc_id = ?1 ORDER BY seq",
        )
        .bind(id.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(ChangeRow {
                    hash: heads_from_bytes(&r.0)?
                        .pop()
                        .ok_or_else(|| StoreError::Corrupt("change hash".into()))?,
                    seq: r.1,
                    author: r.2,
                    device_id: r.3,
                    time: r.4,
                })
            })
            .collect()
    }

    async fn conflicts_of(&self, id: &DocId) -> Result<Vec<ConflictRow>> {
        let rows: Vec<(
            i64,
            String,
            String,
            String,
            i64,
            Option<i64>,
            Option<String>,
        )> = sqlx::query_as(
            "SELECT id, path, code, detail, detected_at, resolved_at, resolved_by \
                 FROM conflicts WHERE doc_id = ?1 ORDER BY id",
        )
        .bind(id.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(ConflictRow {
                    id: r.0,
                    doc_id: *id,
                    path: r.1,
                    code: r.2,
                    detail: serde_json::from_str(&r.3)
                        .map_err(|e| StoreError::Corrupt(format!("conflict detail: {e}")))?,
                    detected_at: r.4,
                    resolved_at: r.5,
                    resolved_by: r.6,
                })
            })
            .collect()
    }

    async fn prune(&self) -> Result<u64> {
        let mut tx = self.write.begin().await?;
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

    async fn audit(&self, e: &AuditEntry) -> Result<()> {
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
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows: Vec<(
            i64,
            Option<String>,
            Option<String>,
            String,
            Option<String>,
            String,
        )> = sqlx::query_as(
            "SELECT at, user_id, device_id, action, doc_id, detail FROM audit_log \
                 ORDER BY id DESC LIMIT ?1",
        )
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: r.0,
                    user_id: r.1,
                    device_id: r.2,
                    action: r.3,
                    doc_id: r.4.as_deref().map(parse_doc_id).transpose()?,
                    detail: serde_json::from_str(&r.5)
                        .map_err(|e| StoreError::Corrupt(format!("audit detail: {e}")))?,
                })
            })
            .collect()
    }
}

/// A document of `scope` as a pull page entry, with its snapshot bytes.
async fn page_doc(
    tx: &mut Transaction<'_, Sqlite>,
    scope: &Scope,
    id: &DocId,
) -> Result<Option<(PageDoc, Vec<u8>)>> {
    let (pattern, open, all, assigned) = scope_binds(scope);
    let row: Option<ResendRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT d.seq, d.heads, d.snapshot, d.snapshot_seq, d.incremental_bytes \
             FROM documents d WHERE d.id = ?1 AND {SCOPE_FILTER}"
    )))
    .bind(id.to_string())
    .bind(&pattern)
    .bind(open)
    .bind(all)
    .bind(&assigned)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| {
        (
            PageDoc {
                id: *id,
                seq: r.0,
                heads: r.1,
                snapshot_len: r.2.len() as i64,
                snapshot_seq: r.3,
                incremental_bytes: r.4,
            },
            r.2,
        )
    }))
}

async fn snapshot_of(tx: &mut Transaction<'_, Sqlite>, id: &DocId) -> Result<Vec<u8>> {
    let (snapshot,): (Vec<u8>,) = sqlx::query_as("SELECT snapshot FROM documents WHERE id = ?1")
        .bind(id.to_string())
        .fetch_one(&mut **tx)
        .await?;
    Ok(snapshot)
}

async fn changes_after(
    tx: &mut Transaction<'_, Sqlite>,
    id: &DocId,
    seq: i64,
) -> Result<Vec<PulledChange>> {
    let rows: Vec<(i64, Option<String>, Vec<u8>)> = sqlx::query_as(
        "SELECT seq, device_id, bytes FROM changes WHERE doc_id = ?1 AND seq > ?2 ORDER BY seq",
    )
    .bind(id.to_string())
    .bind(seq)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| PulledChange {
            seq: r.0,
            device_id: r.1,
            bytes: r.2,
        })
        .collect())
}
