//! Held work: the rows, and its SQL.

use gridsync_core::DocId;

use super::db::Dialect;
use super::filters::scope_filter;
use super::{Result, StoreError};

/// What became of held work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HeldState {
    /// Waiting for someone who owns the report to decide.
    Held,
    /// Applied to the report as ordinary history, attributed to its author.
    Merged,
    /// Not applied; the changes stay stored with the note.
    Declined,
}

impl HeldState {
    pub const NAMES: [&str; 3] = ["held", "merged", "declined"];

    pub fn as_str(self) -> &'static str {
        match self {
            HeldState::Held => "held",
            HeldState::Merged => "merged",
            HeldState::Declined => "declined",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "held" => HeldState::Held,
            "merged" => HeldState::Merged,
            "declined" => HeldState::Declined,
            other => return Err(StoreError::Corrupt(format!("held work in state {other:?}"))),
        })
    }
}

/// One report's changes from one device, held.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldItem {
    pub id: i64,
    pub doc_id: DocId,
    pub author_id: String,
    pub device_id: String,
    /// Why it was held (`out_of_scope`).
    pub code: String,
    pub kind: String,
    pub grid_id: String,
    pub org_path: String,
    pub restricted: bool,
    pub assigned_to: Option<String>,
    /// The report as the held changes would leave it.
    pub projection: serde_json::Value,
    pub changes: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub state: HeldState,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub note: Option<String>,
}

/// A page of held work in a scope.
#[derive(Debug, Clone, Default)]
pub struct HeldQuery {
    pub state: Option<HeldState>,
    pub doc_id: Option<DocId>,
    /// Items older than this id (the page before ended there).
    pub before: Option<i64>,
    pub limit: i64,
}

/// A person's decision on held work.
#[derive(Debug, Clone)]
pub struct HeldDecision {
    pub state: HeldState,
    pub by: String,
    pub at: i64,
    pub note: Option<String>,
}

/// A `held_work` row as [`COLUMNS`] selects it.
#[derive(sqlx::FromRow)]
pub(crate) struct HeldRow {
    id: i64,
    doc_id: String,
    author_id: String,
    device_id: String,
    reason: String,
    kind: String,
    grid_id: String,
    org_path: String,
    restricted: bool,
    assigned_to: Option<String>,
    projection: String,
    changes: i64,
    created_at: i64,
    updated_at: i64,
    state: String,
    decided_by: Option<String>,
    decided_at: Option<i64>,
    note: Option<String>,
}

impl TryFrom<HeldRow> for HeldItem {
    type Error = StoreError;

    fn try_from(r: HeldRow) -> Result<Self> {
        Ok(HeldItem {
            id: r.id,
            doc_id: r
                .doc_id
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("held work for {:?}", r.doc_id)))?,
            author_id: r.author_id,
            device_id: r.device_id,
            code: r.reason,
            kind: r.kind,
            grid_id: r.grid_id,
            org_path: r.org_path,
            restricted: r.restricted,
            assigned_to: r.assigned_to,
            projection: serde_json::from_str(&r.projection)
                .map_err(|e| StoreError::Corrupt(format!("held work {}: {e}", r.id)))?,
            changes: r.changes,
            created_at: r.created_at,
            updated_at: r.updated_at,
            state: HeldState::parse(&r.state)?,
            decided_by: r.decided_by,
            decided_at: r.decided_at,
            note: r.note,
        })
    }
}

const COLUMNS: &str = "h.id, h.doc_id, h.author_id, h.device_id, h.reason, h.kind, h.grid_id, \
     h.org_path, h.restricted, h.assigned_to, h.projection, \
     (SELECT COUNT(*) FROM held_changes c WHERE c.held_id = h.id) AS changes, \
     h.created_at, h.updated_at, h.state, h.decided_by, h.decided_at, h.note";

/// The open item of a report and device: `$1` doc, `$2` device.
pub(crate) const FIND_OPEN: &str =
    "SELECT id FROM held_work WHERE doc_id = $1 AND device_id = $2 AND state = 'held'";

/// A new item; returns its id.
pub(crate) const INSERT: &str = "INSERT INTO held_work (doc_id, author_id, device_id, reason, \
     kind, grid_id, org_path, restricted, assigned_to, projection, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING id";

/// An open item taking more changes: where the report is now and what it would look like.
pub(crate) const UPDATE: &str = "UPDATE held_work SET reason = $2, org_path = $3, \
     restricted = $4, assigned_to = $5, projection = $6, updated_at = $7 WHERE id = $1";

/// One held change, after those the item holds; known ones are skipped.
pub(crate) const INSERT_CHANGE: &str = "INSERT INTO held_changes (held_id, hash, ord, bytes) \
     VALUES ($1, $2, (SELECT COALESCE(MAX(ord), 0) + 1 FROM held_changes WHERE held_id = $1), $3) \
     ON CONFLICT (held_id, hash) DO NOTHING";

/// One item by id, `$1`.
pub(crate) fn one() -> String {
    format!("SELECT {COLUMNS} FROM held_work h WHERE h.id = $1")
}

pub(crate) const CHANGES: &str = "SELECT bytes FROM held_changes WHERE held_id = $1 ORDER BY ord";

/// Decides an open item: `$1` id, `$2` state, `$3` by, `$4` at, `$5` note.
pub(crate) const DECIDE: &str = "UPDATE held_work SET state = $2, decided_by = $3, \
     decided_at = $4, note = $5 WHERE id = $1 AND state = 'held'";

/// A page of the items in a scope, newest first: the scope on `$1`–`$4`, then `$5` state,
/// `$6` doc, `$7` before this id, `$8` limit.
pub(crate) fn list(d: Dialect) -> String {
    format!(
        "SELECT {COLUMNS} FROM held_work h WHERE {} \
         AND (CAST($5 AS TEXT) IS NULL OR h.state = $5) \
         AND (CAST($6 AS TEXT) IS NULL OR h.doc_id = $6) \
         AND (CAST($7 AS BIGINT) IS NULL OR h.id < $7) \
         ORDER BY h.id DESC LIMIT $8",
        scope_filter(d, "h", 1)
    )
}
