//! The statements ingest and pull run inside their transactions, and the rows they read and
//! write. The rules that decide what to write and what to send live above, in `crate::sync`,
//! and call down to these; the store never calls up.

use std::collections::{HashMap, HashSet};

use gridsync_core::DocId;
use gridsync_core::ingest::NewChange;
use gridsync_core::protocol::Hash;
use gridsync_core::report::ReportDoc;

use super::db::{Dialect, Sql, Tx, sql};
use super::filters::{scope_feed, scope_filter, scope_filter_in_feed};
use super::held;
use super::rows::{
    DocValue, KnownConflictRecord, PageRecord, PulledRecord, RoleRecord, StoredRecord,
    heads_to_bytes,
};
use super::{Result, StoreError, Writer};
use crate::scope::Scope;

/// Where a report sits, which decides who may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub org_path: String,
    pub restricted: bool,
    pub assigned_to: Option<String>,
}

/// A stored document's row as ingest reads it: its kind, its snapshot and the facts scope was
/// decided from last time.
#[derive(Debug)]
pub struct StoredDoc {
    pub kind: String,
    /// The sequence number of its last change: it moves with every write to the document.
    pub seq: i64,
    pub snapshot: Vec<u8>,
    pub incremental_bytes: i64,
    pub org_path: String,
    pub restricted: bool,
    pub assigned_to: Option<String>,
    /// Change-log bytes past the snapshot, in sequence order.
    pub changes: Vec<Vec<u8>>,
}

impl StoredDoc {
    /// The automerge document, the snapshot followed by the changes after it. The bytes are
    /// taken out (they may be large); the row's other facts stay.
    pub fn take_doc(&mut self, id: DocId) -> Result<ReportDoc> {
        let mut bytes = std::mem::take(&mut self.snapshot);
        for change in std::mem::take(&mut self.changes) {
            bytes.extend_from_slice(&change);
        }
        ReportDoc::load(id, &bytes).map_err(|e| StoreError::Corrupt(format!("document {id}: {e}")))
    }
}

/// What to write for one document. The store numbers `changes` in order, after every number
/// written before (on Postgres another push's numbers may fall between them).
#[derive(Debug)]
pub struct DocWrite {
    pub id: DocId,
    pub is_new: bool,
    pub kind: String,
    pub schema_version: i64,
    pub grid_id: String,
    pub org_path: String,
    pub restricted: bool,
    pub assigned_to: Option<String>,
    pub heads: Vec<u8>,
    pub projection: String,
    /// The projection with the schema's sensitive values redacted, for searches by readers
    /// without clearance.
    pub public_text: String,
    pub status: Option<String>,
    pub has_conflicts: bool,
    pub problems: String,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub changes: Vec<NewChange>,
    /// A fresh snapshot when the incremental bytes outgrew the old one; it covers every change
    /// up to and including this write, so the store stamps it with this write's last sequence.
    pub snapshot: Option<Vec<u8>>,
    /// Bytes of changes after the snapshot, once this write is stored.
    pub incremental_bytes: i64,
    /// Open conflicts.
    pub conflicts: Vec<NewConflict>,
    /// Where the report was before this write, when this write moves it.
    pub left: Option<Placement>,
}

/// A document's row to write, with the sequence number of its last change.
#[derive(Debug)]
pub struct RowWrite<'a> {
    pub write: &'a DocWrite,
    pub last_seq: i64,
}

/// A change as the log stores it: its document and its sequence number.
#[derive(Debug)]
pub struct LoggedChange<'a> {
    pub doc: &'a DocId,
    pub seq: i64,
    pub change: &'a NewChange,
}

/// A conflict or rule flag a document raises, as ingest finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConflict {
    pub path: String,
    pub code: String,
    /// JSON.
    pub detail: String,
}

/// A conflict or rule flag stored for a document, open or resolved.
#[derive(Debug)]
pub struct KnownConflict {
    pub id: i64,
    pub path: String,
    pub code: String,
    pub resolved: bool,
}

/// Changes kept as held work, and where the report they belong to sits now.
#[derive(Debug)]
pub struct HeldWrite {
    pub doc: DocId,
    pub kind: String,
    pub grid_id: String,
    /// The report's place now (or, for a report new to the server, the place it names): the
    /// people it puts in scope are the ones who decide.
    pub placement: Placement,
    /// The report as the held changes would leave it.
    pub projection: String,
    pub changes: Vec<NewChange>,
    pub code: String,
    pub reason: String,
}

/// One document of a pull page, as listed from the documents table.
#[derive(Debug, Clone)]
pub struct PageDoc {
    pub id: DocId,
    pub seq: i64,
    pub heads: Vec<u8>,
    pub snapshot_len: i64,
    pub snapshot_seq: i64,
    pub incremental_bytes: i64,
}

/// A change-log row fetched for a pull.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PulledChange {
    pub seq: i64,
    pub device_id: Option<String>,
    pub hash: Vec<u8>,
    pub bytes: Vec<u8>,
}

/// `ids` as the JSON array of strings that `Dialect::json_strings` reads.
fn id_list<T: ToString>(ids: impl Iterator<Item = T>) -> String {
    serde_json::Value::from(ids.map(|id| id.to_string()).collect::<Vec<_>>()).to_string()
}

/// Rows one INSERT or UPDATE carries, well inside both databases' limits on bound values
/// (32,766 for SQLite, 65,535 for Postgres): changes have 8 values each, documents 20.
const CHANGE_ROWS: usize = 64;
const DOCUMENT_ROWS: usize = 16;

/// A document's row as ingest writes it, in the order `bind_row` binds it. VALUES names these
/// `column1` to `column20` on both databases.
const ROW_COLUMNS: &str = "id, kind, schema_version, grid_id, org_path, restricted, assigned_to, \
     seq, heads, snapshot, snapshot_seq, incremental_bytes, projection, status, has_conflicts, \
     problems, created_by, created_at, updated_at, public_text";

/// `rows` rows of placeholders for [`ROW_COLUMNS`].
fn row_values(dialect: Dialect, rows: usize) -> String {
    value_rows(dialect, rows, 20, |col, p| match col {
        13 => dialect.json(&p),
        _ => p,
    })
}

/// Binds a document's row in the order of [`ROW_COLUMNS`]. A new document always has a
/// snapshot; a stored one has none unless the write makes one due.
fn bind_row<'q>(statement: Sql<'q>, RowWrite { write: w, last_seq }: &RowWrite<'q>) -> Sql<'q> {
    statement
        .bind(w.id.to_string())
        .bind(&w.kind)
        .bind(w.schema_version)
        .bind(&w.grid_id)
        .bind(&w.org_path)
        .bind(w.restricted)
        .bind(&w.assigned_to)
        .bind(*last_seq)
        .bind(&w.heads)
        .bind(w.snapshot.as_deref())
        .bind(*last_seq)
        .bind(w.incremental_bytes)
        .bind(&w.projection)
        .bind(&w.status)
        .bind(w.has_conflicts)
        .bind(&w.problems)
        .bind(&w.created_by)
        .bind(w.created_at)
        .bind(w.updated_at)
        .bind(&w.public_text)
}

/// `items` in slices of at most `max` whose lengths are powers of two, largest first: a
/// statement of each length is prepared once and cached, so only a few are.
fn batches<T>(mut items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let len = 1 << items.len().min(max).ilog2();
        let (batch, rest) = items.split_at(len);
        items = rest;
        Some(batch)
    })
}

/// `rows` rows of `cols` placeholders each, the statement's only ones, numbered on from the
/// first: `($1, $2), ($3, $4)` (on SQLite `(?, ?), (?, ?)`). `spell` writes the placeholder of
/// a column (1-based), for a column that needs a cast.
fn value_rows(
    dialect: Dialect,
    rows: usize,
    cols: usize,
    spell: impl Fn(usize, String) -> String,
) -> String {
    let rows: Vec<String> = (0..rows)
        .map(|row| {
            let values: Vec<String> = (1..=cols)
                .map(|col| spell(col, dialect.placeholder(row * cols + col)))
                .collect();
            format!("({})", values.join(", "))
        })
        .collect();
    rows.join(", ")
}

/// The statements of an ingest, inside the batch's write transaction.
impl Tx {
    /// The stored bytes of each stored document among `ids` (its snapshot and the changes
    /// after it), read without them, so that a judge can read the documents a bounded amount
    /// at a time.
    pub async fn stored_sizes(&mut self, ids: &[DocId]) -> Result<HashMap<DocId, i64>> {
        let size = format!(
            "{} + incremental_bytes",
            self.dialect().byte_length("snapshot")
        );
        self.doc_numbers(&size, "", ids).await
    }

    /// The number `value` of each stored document among `ids`; `tail` ends the statement.
    async fn doc_numbers(
        &mut self,
        value: &str,
        tail: &str,
        ids: &[DocId],
    ) -> Result<HashMap<DocId, i64>> {
        let rows: Vec<DocValue<i64>> = sql(format!(
            "SELECT id, {value} AS value FROM documents WHERE id IN ({}){tail}",
            self.dialect().json_strings("$1")
        ))
        .bind(id_list(ids.iter()))
        .fetch_all(&mut *self)
        .await?;
        rows.into_iter().map(DocValue::into_pair).collect()
    }

    /// The stored documents among `ids`, their rows locked until the transaction ends where
    /// the database has row locks (`lock`), in id order so that two writers cannot deadlock.
    /// Two statements whatever the number of documents, rather than one or two each.
    pub async fn stored_docs(
        &mut self,
        ids: &[DocId],
        lock: bool,
    ) -> Result<HashMap<DocId, StoredDoc>> {
        let lock = if lock {
            self.dialect().for_update("")
        } else {
            String::new()
        };
        let rows: Vec<StoredRecord> = sql(format!(
            "SELECT id, kind, seq, snapshot, incremental_bytes, org_path, restricted, assigned_to \
             FROM documents WHERE id IN ({}) ORDER BY id{lock}",
            self.dialect().json_strings("$1")
        ))
        .bind(id_list(ids.iter()))
        .fetch_all(&mut *self)
        .await?;
        if rows.is_empty() {
            return Ok(HashMap::new());
        }
        let changes: Vec<DocValue<Vec<u8>>> = sql(format!(
            "SELECT c.doc_id AS id, c.bytes AS value FROM changes c \
             JOIN documents d ON d.id = c.doc_id \
             WHERE d.id IN ({}) AND c.seq > d.snapshot_seq ORDER BY c.seq",
            self.dialect().json_strings("$1")
        ))
        .bind(id_list(rows.iter().map(|r| &r.id)))
        .fetch_all(&mut *self)
        .await?;
        let mut stored = HashMap::with_capacity(rows.len());
        for row in rows {
            let (id, doc) = row.into_stored()?;
            stored.insert(id, doc);
        }
        for change in changes {
            let (id, bytes) = change.into_pair()?;
            if let Some(doc) = stored.get_mut(&id) {
                doc.changes.push(bytes);
            }
        }
        Ok(stored)
    }

    /// The sequence number of each stored document of `ids`, their rows locked until the
    /// transaction ends where the database has row locks, in id order so that two writers
    /// cannot deadlock. Documents not stored are absent.
    pub async fn lock_seqs(&mut self, ids: &[DocId]) -> Result<HashMap<DocId, i64>> {
        let tail = format!(" ORDER BY id{}", self.dialect().for_update(""));
        self.doc_numbers("seq", &tail, ids).await
    }

    /// The org path of a grid; `None` when no grid has this id.
    pub async fn grid_path(&mut self, grid: &str) -> Result<Option<String>> {
        let path: Option<(String,)> =
            sql("SELECT path FROM org_units WHERE id = $1 AND level = 'grid'")
                .bind(grid)
                .fetch_optional(self)
                .await?;
        Ok(path.map(|p| p.0))
    }

    /// The scope of an enabled user; `None` when there is no such user or they are disabled.
    pub async fn user_scope(&mut self, user_id: &str) -> Result<Option<Scope>> {
        let row: Option<RoleRecord> = sql(
            "SELECT u.role, o.path FROM users u JOIN org_units o ON o.id = u.org_unit_id \
             WHERE u.id = $1 AND NOT u.disabled",
        )
        .bind(user_id)
        .fetch_optional(self)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(Scope::for_role(
            user_id,
            row.role(user_id)?,
            &row.path,
        )))
    }

    /// Inserts the rows of documents new to the server, up to 16 a statement.
    pub async fn insert_documents(&mut self, docs: &[RowWrite<'_>]) -> Result<()> {
        self.write_rows(docs, |values| {
            format!("INSERT INTO documents ({ROW_COLUMNS}) VALUES {values}")
        })
        .await
    }

    /// Updates stored documents' rows, up to 16 a statement, and each one's snapshot when its
    /// write carries one (stamped with its last sequence number). The rows are locked already
    /// (`lock_seqs`), so the order the database updates them in takes no lock. The values are
    /// a new row's, of which the update takes what may change.
    pub async fn update_documents(&mut self, docs: &[RowWrite<'_>]) -> Result<()> {
        self.write_rows(docs, |values| {
            format!(
                "UPDATE documents SET org_path = v.column5, restricted = v.column6, \
                 assigned_to = v.column7, seq = v.column8, heads = v.column9, \
                 snapshot = COALESCE(v.column10, documents.snapshot), \
                 snapshot_seq = CASE WHEN v.column10 IS NULL THEN documents.snapshot_seq \
                 ELSE v.column11 END, incremental_bytes = v.column12, projection = v.column13, \
                 status = v.column14, has_conflicts = v.column15, problems = v.column16, \
                 updated_at = v.column19, public_text = v.column20 \
                 FROM (VALUES {values}) AS v WHERE documents.id = v.column1"
            )
        })
        .await
    }

    /// Writes documents' rows up to 16 a statement: `statement` is the statement around a
    /// batch's VALUES rows of [`ROW_COLUMNS`].
    async fn write_rows(
        &mut self,
        docs: &[RowWrite<'_>],
        statement: impl Fn(&str) -> String,
    ) -> Result<()> {
        let dialect = self.dialect();
        for chunk in batches(docs, DOCUMENT_ROWS) {
            let values = row_values(dialect, chunk.len());
            chunk
                .iter()
                .fold(sql(statement(&values)), bind_row)
                .execute(&mut *self)
                .await?;
        }
        Ok(())
    }

    /// Stores changes in the log, up to 64 a statement.
    pub async fn insert_changes(
        &mut self,
        changes: &[LoggedChange<'_>],
        writer: &Writer,
    ) -> Result<()> {
        let dialect = self.dialect();
        for chunk in batches(changes, CHANGE_ROWS) {
            let mut insert = sql(format!(
                "INSERT INTO changes (hash, doc_id, seq, deps, author, device_id, time, bytes) \
                 VALUES {}",
                value_rows(dialect, chunk.len(), 8, |_, p| p)
            ));
            for LoggedChange { doc, seq, change } in chunk {
                insert = insert
                    .bind(change.hash.0.as_slice())
                    .bind(doc.to_string())
                    .bind(*seq)
                    .bind(heads_to_bytes(&change.deps))
                    .bind(&writer.user_id)
                    .bind(&writer.device_id)
                    .bind(change.time)
                    .bind(&change.bytes);
            }
            insert.execute(&mut *self).await?;
        }
        Ok(())
    }

    /// The conflicts and rule flags stored for `ids`, open and resolved, in one statement.
    pub async fn known_conflicts(
        &mut self,
        ids: &[DocId],
    ) -> Result<HashMap<DocId, Vec<KnownConflict>>> {
        let mut known: HashMap<DocId, Vec<KnownConflict>> = HashMap::new();
        if ids.is_empty() {
            return Ok(known);
        }
        let rows: Vec<KnownConflictRecord> = sql(format!(
            "SELECT doc_id, id, path, code, resolved_at IS NOT NULL AS resolved FROM conflicts \
             WHERE doc_id IN ({})",
            self.dialect().json_strings("$1")
        ))
        .bind(id_list(ids.iter()))
        .fetch_all(&mut *self)
        .await?;
        for row in rows {
            let (doc, conflict) = row.into_known()?;
            known.entry(doc).or_default().push(conflict);
        }
        Ok(known)
    }

    pub async fn close_conflict(&mut self, id: i64, writer: &Writer) -> Result<()> {
        sql("UPDATE conflicts SET resolved_at = $2, resolved_by = $3 WHERE id = $1")
            .bind(id)
            .bind(writer.now)
            .bind(&writer.user_id)
            .execute(self)
            .await?;
        Ok(())
    }

    pub async fn insert_conflict(&mut self, doc: &DocId, c: &NewConflict, at: i64) -> Result<()> {
        sql(
            "INSERT INTO conflicts (doc_id, path, code, detail, detected_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(doc.to_string())
        .bind(&c.path)
        .bind(&c.code)
        .bind(&c.detail)
        .bind(at)
        .execute(self)
        .await?;
        Ok(())
    }

    /// Records that a document left `from` with the change numbered `seq`.
    pub async fn insert_exit(&mut self, doc: &DocId, seq: i64, from: &Placement) -> Result<()> {
        sql(
            "INSERT INTO scope_exits (doc_id, seq, org_path, restricted, assigned_to) \
             VALUES ($1, $2, $3, $4, $5)",
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

    /// Keeps changes as held work: added to the open item of the same report and device, or a
    /// new item. Changes it holds already are skipped.
    pub async fn hold(&mut self, h: &HeldWrite, writer: &Writer) -> Result<()> {
        let device = writer.device_id.clone().unwrap_or_default();
        let open: Option<(i64,)> = sql(held::FIND_OPEN)
            .bind(h.doc.to_string())
            .bind(&device)
            .fetch_optional(&mut *self)
            .await?;
        let id = match open {
            Some((id,)) => {
                sql(held::UPDATE)
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
                sql(held::INSERT)
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
                    .fetch_value(&mut *self)
                    .await?
            }
        };
        for change in &h.changes {
            sql(held::INSERT_CHANGE)
                .bind(id)
                .bind(change.hash.0.as_slice())
                .bind(&change.bytes)
                .execute(&mut *self)
                .await?;
        }
        Ok(())
    }
}

/// The reads a pull makes, inside one read transaction, so a page and its digest describe the
/// same moment.
impl Tx {
    /// The sequence below which change-log rows may have been pruned.
    pub async fn horizon(&mut self) -> Result<i64> {
        sql("SELECT value FROM counters WHERE name = 'horizon'")
            .fetch_value(self)
            .await
    }

    /// A document of `scope` with its snapshot bytes; `None` when it is not in the scope.
    pub async fn scoped_doc(
        &mut self,
        scope: &Scope,
        id: &DocId,
    ) -> Result<Option<(PageDoc, Vec<u8>)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            seq: i64,
            heads: Vec<u8>,
            snapshot: Vec<u8>,
            snapshot_seq: i64,
            incremental_bytes: i64,
        }
        let row: Option<Row> = sql(format!(
            "SELECT d.seq, d.heads, d.snapshot, d.snapshot_seq, d.incremental_bytes \
             FROM documents d WHERE d.id = $1 AND {f}",
            f = scope_filter(self.dialect(), "d", 2)
        ))
        .bind(id.to_string())
        .bind_scope(scope)
        .fetch_optional(self)
        .await?;
        Ok(row.map(|r| {
            let doc = PageDoc {
                id: *id,
                seq: r.seq,
                heads: r.heads,
                snapshot_len: r.snapshot.len() as i64,
                snapshot_seq: r.snapshot_seq,
                incremental_bytes: r.incremental_bytes,
            };
            (doc, r.snapshot)
        }))
    }

    /// Up to `limit` documents of `scope` whose sequence is past `after`, oldest first.
    pub async fn page(&mut self, scope: &Scope, after: i64, limit: i64) -> Result<Vec<PageDoc>> {
        let d = self.dialect();
        let rows: Vec<PageRecord> = sql(format!(
            "SELECT d.id, d.seq, d.heads, {len} AS snapshot_len, d.snapshot_seq, \
             d.incremental_bytes FROM documents d WHERE d.seq > $1 AND {f} \
             ORDER BY d.seq LIMIT $6",
            len = d.byte_length("d.snapshot"),
            f = pull_filter(d, scope)
        ))
        .bind(after)
        .bind_scope(scope)
        .bind(limit)
        .fetch_all(self)
        .await?;
        rows.into_iter().map(PageDoc::try_from).collect()
    }

    /// Change-log rows of the documents of `scope` whose sequence is in `(after, last]`: those
    /// past `since`, or, when `since` is `None`, those past each document's snapshot.
    pub async fn page_changes(
        &mut self,
        scope: &Scope,
        after: i64,
        last: i64,
        since: Option<i64>,
    ) -> Result<Vec<(DocId, PulledChange)>> {
        let rows: Vec<PulledRecord> = sql(format!(
            "SELECT c.doc_id, c.seq, c.device_id, c.hash, c.bytes FROM changes c \
             JOIN documents d ON d.id = c.doc_id \
             WHERE d.seq > $1 AND d.seq <= $6 AND {f} \
             AND c.seq > COALESCE($7, d.snapshot_seq) ORDER BY c.seq",
            f = pull_filter(self.dialect(), scope)
        ))
        .bind(after)
        .bind_scope(scope)
        .bind(last)
        .bind(since)
        .fetch_all(self)
        .await?;
        rows.into_iter().map(PulledRecord::into_pair).collect()
    }

    /// Which of `hashes`, heads of the documents `ids`, are changes that `device` pushed. SQLite
    /// reads them through the documents' rows of the change log, which it does not key by hash
    /// (migration 0027); Postgres goes by its key on the hash.
    pub async fn device_changes(
        &mut self,
        ids: &[DocId],
        hashes: &[Hash],
        device: &str,
    ) -> Result<HashSet<Hash>> {
        let d = self.dialect();
        let rows: Vec<(Vec<u8>,)> = sql(format!(
            "SELECT hash FROM changes WHERE doc_id IN ({}) AND device_id = $2 AND hash IN ({})",
            d.json_strings("$1"),
            d.json_hex_blobs("$3")
        ))
        .bind(id_list(ids.iter()))
        .bind(device)
        .bind(id_list(hashes.iter().map(hex::encode)))
        .fetch_all(self)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(hash,)| Hash::try_from(hash.as_slice()).ok())
            .collect())
    }

    /// The stored snapshots of `ids` (all of them in scope, listed by this pull).
    pub async fn snapshots(&mut self, ids: &[DocId]) -> Result<HashMap<DocId, Vec<u8>>> {
        let ids: Vec<String> = ids.iter().map(DocId::to_string).collect();
        let rows: Vec<DocValue<Vec<u8>>> = sql(format!(
            "SELECT id, snapshot AS value FROM documents WHERE id IN ({})",
            self.dialect().json_strings("$1")
        ))
        .bind(serde_json::to_string(&ids).unwrap_or_default())
        .fetch_all(self)
        .await?;
        rows.into_iter().map(DocValue::into_pair).collect()
    }

    /// A document's change-log rows past sequence `seq`, in order.
    pub async fn changes_after(&mut self, id: &DocId, seq: i64) -> Result<Vec<PulledChange>> {
        sql(
            "SELECT seq, device_id, hash, bytes FROM changes WHERE doc_id = $1 AND seq > $2 \
             ORDER BY seq",
        )
        .bind(id.to_string())
        .bind(seq)
        .fetch_all(self)
        .await
    }

    /// (document id, heads) of every document of `scope`.
    pub async fn scope_heads(&mut self, scope: &Scope) -> Result<Vec<(DocId, Vec<u8>)>> {
        let rows: Vec<DocValue<Vec<u8>>> = sql(format!(
            "SELECT d.id, d.heads AS value FROM documents d WHERE $1 = $1 AND {f}",
            f = scope_filter(self.dialect(), "d", 2)
        ))
        .bind(0_i64)
        .bind_scope(scope)
        .fetch_all(self)
        .await?;
        rows.into_iter().map(DocValue::into_pair).collect()
    }

    /// Documents that left `scope` after sequence `after` and are not back in it, with the
    /// sequence of their leaving, oldest first, at most `limit`.
    pub async fn exits(
        &mut self,
        scope: &Scope,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(DocId, i64)>> {
        let d = self.dialect();
        let rows: Vec<DocValue<i64>> = sql(format!(
            "SELECT e.doc_id AS id, e.seq AS value FROM scope_exits e \
             JOIN documents d ON d.id = e.doc_id \
             WHERE e.seq > $1 AND {was} AND NOT ({is}) ORDER BY e.seq LIMIT $6",
            was = scope_filter(d, "e", 2),
            is = scope_filter(d, "d", 2)
        ))
        .bind(after)
        .bind_scope(scope)
        .bind(limit)
        .fetch_all(self)
        .await?;
        rows.into_iter().map(DocValue::into_pair).collect()
    }
}

/// The scope test of a pull's documents `d`, bound from `$2`: through the feed of the scope's
/// unit when it has one, so that a pull pages through the unit's reports, not the district's.
fn pull_filter(d: Dialect, scope: &Scope) -> String {
    match scope_feed(&scope.prefix) {
        Some(feed) => scope_filter_in_feed("d", feed, 2),
        None => scope_filter(d, "d", 2),
    }
}
