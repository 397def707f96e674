//! Rows as the statements select them, each a named struct decoded by column name, and how each
//! becomes the type the rest of the server uses. Ids and JSON are checked on the way out, so
//! a corrupt row is an error, never a panic.

use automerge::ChangeHash;
use gridsync_core::DocId;

use super::statements::{KnownConflict, PageDoc, PulledChange, StoredDoc};
use super::{
    Attachment, AuditEntry, AuditRecord, ChangeRow, ConflictItem, ConflictRow, DocumentRow, Level,
    OrgUnit, Page, QueuedAttachment, Result, StoreError, User,
};
use crate::scope::Role;

pub(crate) const USER_COLUMNS: &str =
    "id, username, display_name, password_hash, role, org_unit_id, disabled, created_at";
pub(crate) const DEVICE_COLUMNS: &str = "id, user_id, name, created_at, last_seen_at, revoked_at, \
     cursor, pending_changes, pending_at, retiring_at, scope_key, public_key";
pub(crate) const HUB_COLUMNS: &str = "id, unit_id, name, code_expires_at, identity_key, \
     enrolled_at, revoked_at, created_by, created_at";
pub(crate) const QUEUED_PUSH_COLUMNS: &str =
    "id, device_id, frame, received_at, relayed_at, receipt";
pub(crate) const REFRESH_COLUMNS: &str =
    "token_hash, device_id, family, expires_at, used_at, replaces";
pub(crate) const ORG_COLUMNS: &str = "id, parent_id, level, name, path";
pub(crate) const DOC_COLUMNS: &str = "id, kind, CAST(schema_version AS BIGINT) AS schema_version, \
     grid_id, org_path, restricted, assigned_to, seq, heads, \
     CAST(projection AS TEXT) AS projection, status, review_state, has_conflicts, problems, \
     created_by, created_at, updated_at";
pub(crate) const CONFLICT_COLUMNS: &str =
    "id, doc_id, path, code, detail, detected_at, resolved_at, resolved_by";
pub(crate) const CONFLICT_ITEM_COLUMNS: &str = "c.id, c.doc_id, c.path, c.code, c.detail, \
     c.detected_at, c.resolved_at, c.resolved_by, d.kind, \
     CAST(d.schema_version AS BIGINT) AS schema_version, d.grid_id, d.org_path, d.restricted";
pub(crate) const CHANGE_LOG_COLUMNS: &str = "hash, seq, author, device_id, time";
pub(crate) const AUDIT_COLUMNS: &str = "id, at, user_id, device_id, action, doc_id, detail";
pub(crate) const ATTACHMENT_COLUMNS: &str =
    "doc_id, hash, media_type, size, created_by, created_at";
pub(crate) const QUEUED_ATTACHMENT_COLUMNS: &str = "o.id, o.doc_id, o.hash, a.media_type, a.size";

/// Heads as stored: 32-byte hashes back to back.
pub(crate) fn heads_to_bytes(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

pub(crate) fn heads_from_bytes(bytes: &[u8]) -> Result<Vec<ChangeHash>> {
    if !bytes.len().is_multiple_of(32) {
        return Err(StoreError::Corrupt(format!(
            "heads of {} bytes",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            ChangeHash(h)
        })
        .collect())
}

pub(crate) fn parse_doc_id(s: &str) -> Result<DocId> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("document id {s}")))
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A `users` row as [`USER_COLUMNS`] selects it.
#[derive(sqlx::FromRow)]
pub(crate) struct UserRecord {
    id: String,
    username: String,
    display_name: String,
    password_hash: String,
    role: String,
    org_unit_id: String,
    disabled: bool,
    created_at: i64,
}

/// What starting a session checks of its user.
#[derive(sqlx::FromRow)]
pub(crate) struct SessionUser {
    pub password_hash: String,
    pub disabled: bool,
}

/// What starting a session checks of its device.
#[derive(sqlx::FromRow)]
pub(crate) struct SessionDevice {
    pub user_id: String,
    pub revoked_at: Option<i64>,
}

impl TryFrom<UserRecord> for User {
    type Error = StoreError;

    fn try_from(r: UserRecord) -> Result<Self> {
        Ok(User {
            role: r
                .role
                .parse()
                .map_err(|e: crate::scope::UnknownRole| StoreError::Corrupt(e.to_string()))?,
            id: r.id,
            username: r.username,
            display_name: r.display_name,
            password_hash: r.password_hash,
            org_unit_id: r.org_unit_id,
            disabled: r.disabled,
            created_at: r.created_at,
        })
    }
}

/// A user's role and the path of their org unit: what their scope is made of.
#[derive(sqlx::FromRow)]
pub(crate) struct RoleRecord {
    pub role: String,
    pub path: String,
}

impl RoleRecord {
    pub fn role(&self, user_id: &str) -> Result<Role> {
        self.role
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("user {user_id}: {e}")))
    }
}

/// An `org_units` row as [`ORG_COLUMNS`] selects it.
#[derive(sqlx::FromRow)]
pub(crate) struct OrgRecord {
    id: String,
    parent_id: Option<String>,
    level: String,
    name: String,
    path: String,
}

impl TryFrom<OrgRecord> for OrgUnit {
    type Error = StoreError;

    fn try_from(r: OrgRecord) -> Result<Self> {
        Ok(OrgUnit {
            level: Level::parse(&r.level)?,
            id: r.id,
            parent_id: r.parent_id,
            name: r.name,
            path: r.path,
        })
    }
}

/// A `documents` row as [`DOC_COLUMNS`] selects it (`projection` as text).
#[derive(sqlx::FromRow)]
pub(crate) struct DocRecord {
    id: String,
    kind: String,
    schema_version: i64,
    grid_id: String,
    org_path: String,
    restricted: bool,
    assigned_to: Option<String>,
    seq: i64,
    heads: Vec<u8>,
    projection: String,
    status: Option<String>,
    review_state: String,
    has_conflicts: bool,
    problems: String,
    created_by: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<DocRecord> for DocumentRow {
    type Error = StoreError;

    fn try_from(r: DocRecord) -> Result<Self> {
        Ok(DocumentRow {
            id: parse_doc_id(&r.id)?,
            kind: r.kind,
            schema_version: schema_version(r.schema_version)?,
            grid_id: r.grid_id,
            org_path: r.org_path,
            restricted: r.restricted,
            assigned_to: r.assigned_to,
            seq: r.seq,
            heads: heads_from_bytes(&r.heads)?,
            projection: parse_json("projection", &r.projection)?,
            status: r.status,
            review_state: r.review_state,
            has_conflicts: r.has_conflicts,
            problems: parse_json("problems", &r.problems)?,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

fn schema_version(v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt("schema_version".into()))
}

/// A stored conflict as ingest reads it, with its document.
#[derive(sqlx::FromRow)]
pub(crate) struct KnownConflictRecord {
    doc_id: String,
    id: i64,
    path: String,
    code: String,
    resolved: bool,
}

impl KnownConflictRecord {
    pub fn into_known(self) -> Result<(DocId, KnownConflict)> {
        Ok((
            parse_doc_id(&self.doc_id)?,
            KnownConflict {
                id: self.id,
                path: self.path,
                code: self.code,
                resolved: self.resolved,
            },
        ))
    }
}

/// A document's row as ingest and loading read it, before its changes are added.
#[derive(sqlx::FromRow)]
pub(crate) struct StoredRecord {
    pub id: String,
    pub kind: String,
    pub seq: i64,
    pub snapshot: Vec<u8>,
    pub incremental_bytes: i64,
    pub org_path: String,
    pub restricted: bool,
    pub assigned_to: Option<String>,
}

impl StoredRecord {
    /// The document, its changes past the snapshot still to be added.
    pub fn into_stored(self) -> Result<(DocId, StoredDoc)> {
        let id = parse_doc_id(&self.id)?;
        Ok((
            id,
            StoredDoc {
                kind: self.kind,
                seq: self.seq,
                snapshot: self.snapshot,
                incremental_bytes: self.incremental_bytes,
                org_path: self.org_path,
                restricted: self.restricted,
                assigned_to: self.assigned_to,
                changes: Vec::new(),
            },
        ))
    }
}

/// A document listed on a pull page; `snapshot_len` is the snapshot's length in bytes.
#[derive(sqlx::FromRow)]
pub(crate) struct PageRecord {
    id: String,
    seq: i64,
    heads: Vec<u8>,
    snapshot_len: i64,
    snapshot_seq: i64,
    incremental_bytes: i64,
}

impl TryFrom<PageRecord> for PageDoc {
    type Error = StoreError;

    fn try_from(r: PageRecord) -> Result<Self> {
        Ok(PageDoc {
            id: parse_doc_id(&r.id)?,
            seq: r.seq,
            heads: r.heads,
            snapshot_len: r.snapshot_len,
            snapshot_seq: r.snapshot_seq,
            incremental_bytes: r.incremental_bytes,
        })
    }
}

/// A change-log row fetched for a pull page, with its document.
#[derive(sqlx::FromRow)]
pub(crate) struct PulledRecord {
    doc_id: String,
    #[sqlx(flatten)]
    change: PulledChange,
}

impl PulledRecord {
    pub fn into_pair(self) -> Result<(DocId, PulledChange)> {
        Ok((parse_doc_id(&self.doc_id)?, self.change))
    }
}

/// A document id and one value of it (its heads, its snapshot, the sequence it left a scope).
#[derive(sqlx::FromRow)]
pub(crate) struct DocValue<T> {
    id: String,
    value: T,
}

impl<T> DocValue<T> {
    pub fn into_pair(self) -> Result<(DocId, T)> {
        Ok((parse_doc_id(&self.id)?, self.value))
    }
}

/// A `changes` row as [`CHANGE_LOG_COLUMNS`] selects it.
#[derive(sqlx::FromRow)]
pub(crate) struct ChangeLogRecord {
    hash: Vec<u8>,
    seq: i64,
    author: String,
    device_id: Option<String>,
    time: i64,
}

impl TryFrom<ChangeLogRecord> for ChangeRow {
    type Error = StoreError;

    fn try_from(r: ChangeLogRecord) -> Result<Self> {
        Ok(ChangeRow {
            hash: heads_from_bytes(&r.hash)?
                .pop()
                .ok_or_else(|| StoreError::Corrupt("change hash".into()))?,
            seq: r.seq,
            author: r.author,
            device_id: r.device_id,
            time: r.time,
        })
    }
}

/// A `conflicts` row as [`CONFLICT_COLUMNS`] selects it.
#[derive(sqlx::FromRow)]
pub(crate) struct ConflictRecord {
    id: i64,
    doc_id: String,
    path: String,
    code: String,
    detail: String,
    detected_at: i64,
    resolved_at: Option<i64>,
    resolved_by: Option<String>,
}

impl TryFrom<ConflictRecord> for ConflictRow {
    type Error = StoreError;

    fn try_from(r: ConflictRecord) -> Result<Self> {
        Ok(ConflictRow {
            doc_id: parse_doc_id(&r.doc_id)?,
            detail: parse_json("conflict detail", &r.detail)?,
            id: r.id,
            path: r.path,
            code: r.code,
            detected_at: r.detected_at,
            resolved_at: r.resolved_at,
            resolved_by: r.resolved_by,
        })
    }
}

/// An open conflict with its report's facts, as [`CONFLICT_ITEM_COLUMNS`] selects it.
#[derive(sqlx::FromRow)]
pub(crate) struct ConflictItemRecord {
    #[sqlx(flatten)]
    conflict: ConflictRecord,
    kind: String,
    schema_version: i64,
    grid_id: String,
    org_path: String,
    restricted: bool,
}

impl TryFrom<ConflictItemRecord> for ConflictItem {
    type Error = StoreError;

    fn try_from(r: ConflictItemRecord) -> Result<Self> {
        Ok(ConflictItem {
            conflict: r.conflict.try_into()?,
            kind: r.kind,
            schema_version: schema_version(r.schema_version)?,
            grid_id: r.grid_id,
            org_path: r.org_path,
            restricted: r.restricted,
        })
    }
}

/// An `audit_log` row as [`AUDIT_COLUMNS`] selects it.
#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: i64,
    at: i64,
    user_id: Option<String>,
    device_id: Option<String>,
    action: String,
    doc_id: Option<String>,
    detail: String,
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = StoreError;

    fn try_from(r: AuditRow) -> Result<Self> {
        Ok(AuditRecord {
            id: r.id,
            entry: AuditEntry {
                at: r.at,
                user_id: r.user_id,
                device_id: r.device_id,
                action: r.action,
                doc_id: r.doc_id.as_deref().map(parse_doc_id).transpose()?,
                detail: parse_json("audit detail", &r.detail)?,
            },
        })
    }
}

/// A `hub_attachment_outbox` row with its link, as [`QUEUED_ATTACHMENT_COLUMNS`] selects it.
#[derive(sqlx::FromRow)]
pub(crate) struct QueuedAttachmentRecord {
    id: i64,
    doc_id: String,
    hash: String,
    media_type: String,
    size: i64,
}

impl TryFrom<QueuedAttachmentRecord> for QueuedAttachment {
    type Error = StoreError;

    fn try_from(r: QueuedAttachmentRecord) -> Result<Self> {
        Ok(QueuedAttachment {
            id: r.id,
            doc_id: parse_doc_id(&r.doc_id)?,
            hash: r.hash,
            media_type: r.media_type,
            size: r.size,
        })
    }
}

/// An `attachments` row as [`ATTACHMENT_COLUMNS`] selects it.
#[derive(sqlx::FromRow)]
pub(crate) struct AttachmentRecord {
    doc_id: String,
    hash: String,
    media_type: String,
    size: i64,
    created_by: String,
    created_at: i64,
}

impl TryFrom<AttachmentRecord> for Attachment {
    type Error = StoreError;

    fn try_from(r: AttachmentRecord) -> Result<Self> {
        Ok(Attachment {
            doc_id: parse_doc_id(&r.doc_id)?,
            hash: r.hash,
            media_type: r.media_type,
            size: r.size,
            created_by: r.created_by,
            created_at: r.created_at,
        })
    }
}

/// Rows turned into domain values; the first that does not convert is the error.
pub(crate) fn convert<R, T: TryFrom<R, Error = StoreError>>(rows: Vec<R>) -> Result<Vec<T>> {
    rows.into_iter().map(T::try_from).collect()
}

/// A page of `limit` items from `rows`, which holds one more when the list goes on.
pub(crate) fn page<R, T: TryFrom<R, Error = StoreError>>(
    rows: Vec<R>,
    limit: i64,
    total: i64,
) -> Result<Page<T>> {
    let more = rows.len() as i64 > limit;
    let items = rows
        .into_iter()
        .take(usize::try_from(limit).unwrap_or(0))
        .map(T::try_from)
        .collect::<Result<_>>()?;
    Ok(Page {
        items,
        more,
        total,
        total_capped: false,
    })
}
