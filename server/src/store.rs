//! Durable storage: the `Store` trait, its row types, and choosing SQLite or Postgres from the
//! database URL. Each implementation owns its SQL; the rules they share live in `crate::sync`.

pub mod facts;
pub mod held;

pub use held::{HeldDecision, HeldItem, HeldQuery, HeldState};
pub mod postgres;
pub(crate) mod sessions;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use automerge::ChangeHash;
use gridsync_core::DocId;
use gridsync_core::protocol::{Pull, PullResult, Push, PushResult};
use gridsync_core::report::ReportDoc;
use gridsync_core::schema::Registry;

use crate::live::Changed;
use crate::scope::{Role, Scope};
use crate::store::facts::{
    CanvassCounts, DisputeCounts, DrugCounts, DrugDue, LedgerQuery, Period, ResolutionDays,
};
use crate::sync::pull::{PageDoc, PulledChange};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0} already exists")]
    Duplicate(String),
    #[error("{0} not found")]
    NotFound(String),
    /// The database lacks migrations this binary has: commands other than `migrate` and
    /// `serve` do not upgrade a database behind the operator's back.
    #[error("the database is at migration {have} but this gridsync needs {need}")]
    NotMigrated { have: i64, need: i64 },
    /// The database holds a migration this binary does not know: a newer gridsync upgraded it.
    #[error("the database has migration {0}, which this gridsync does not know")]
    Newer(i64),
    /// An operation this kind of database does its own way; the message says which.
    #[error("{0}")]
    Unsupported(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A failure that is the database's condition, not the request's fault nor a bug here: the
/// operator has something to fix (or wait for), the client may try again later, and the failed
/// transaction committed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// The disk holding the database is full.
    Full,
    /// The database refuses writes (Postgres in read-only mode or a standby, a SQLite file
    /// opened read-only).
    ReadOnly,
    /// The disk failed a read or write: SQLite's I/O errors, as from a failing disk, a file
    /// system turned read-only under a running server, or a file made immutable.
    Failing,
    /// The database cannot be reached now: down, restarting, out of connections, or locked by
    /// another process for longer than the busy timeout.
    Unavailable,
}

impl StoreError {
    /// The outage this error reports, if it is one.
    pub fn outage(&self) -> Option<Outage> {
        match self {
            StoreError::Database(e) => outage_of(e),
            _ => None,
        }
    }
}

fn outage_of(e: &sqlx::Error) -> Option<Outage> {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            Some(Outage::Unavailable)
        }
        sqlx::Error::Database(db) => {
            let code = db.code()?;
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                sqlite_outage(code.parse().ok()?)
            } else {
                postgres_outage(&code)
            }
        }
        _ => None,
    }
}

/// By SQLite's primary result code (the low byte of the extended one).
fn sqlite_outage(extended: i32) -> Option<Outage> {
    match extended & 0xff {
        13 => Some(Outage::Full),         // SQLITE_FULL
        8 => Some(Outage::ReadOnly),      // SQLITE_READONLY_*
        10 | 14 => Some(Outage::Failing), // SQLITE_IOERR_*, SQLITE_CANTOPEN
        5 => Some(Outage::Unavailable),   // SQLITE_BUSY
        _ => None,
    }
}

/// By Postgres SQLSTATE.
fn postgres_outage(sqlstate: &str) -> Option<Outage> {
    match sqlstate {
        "53100" => Some(Outage::Full),     // disk_full
        "25006" => Some(Outage::ReadOnly), // read_only_sql_transaction
        "58030" => Some(Outage::Failing),  // io_error
        // admin_shutdown, crash_shutdown, cannot_connect_now; too_many_connections.
        "57P01" | "57P02" | "57P03" | "53300" => Some(Outage::Unavailable),
        // Class 08: connection exceptions.
        s if s.starts_with("08") => Some(Outage::Unavailable),
        _ => None,
    }
}

/// Level of an org unit in the tree district → township/street → village/community → grid.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    District,
    Township,
    Street,
    Village,
    Community,
    Grid,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::District => "district",
            Level::Township => "township",
            Level::Street => "street",
            Level::Village => "village",
            Level::Community => "community",
            Level::Grid => "grid",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "district" => Level::District,
            "township" => Level::Township,
            "street" => Level::Street,
            "village" => Level::Village,
            "community" => Level::Community,
            "grid" => Level::Grid,
            other => return Err(StoreError::Corrupt(format!("org level {other}"))),
        })
    }

    /// Depth in the tree: district 0, township and street 1, village and community 2, grid 3.
    /// A unit's parent is exactly one tier above it.
    pub fn tier(self) -> u8 {
        match self {
            Level::District => 0,
            Level::Township | Level::Street => 1,
            Level::Village | Level::Community => 2,
            Level::Grid => 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OrgUnit {
    pub id: String,
    pub parent_id: Option<String>,
    pub level: Level,
    pub name: String,
    /// Ids from the district down, `/`-separated with a trailing `/`.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub role: Role,
    pub org_unit_id: String,
    pub disabled: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Device {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub revoked_at: Option<i64>,
    /// The last cursor this device pulled from.
    pub cursor: i64,
    /// Changes the phone said at its last sync it had not delivered, and when it said so.
    pub pending_changes: Option<i64>,
    pub pending_at: Option<i64>,
    /// Set while the phone is being handed in: it delivers everything, then wipes itself.
    pub retiring_at: Option<i64>,
    /// The scope this device last pulled under ([`crate::scope::Scope::key`]).
    pub scope_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RefreshToken {
    pub token_hash: Vec<u8>,
    pub device_id: String,
    pub family: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// The hash of the token this one replaced; `None` for the first of a login.
    pub replaces: Option<Vec<u8>>,
}

/// The columns of [`RefreshToken`], as both stores select them.
pub(crate) const REFRESH_COLUMNS: &str =
    "token_hash, device_id, family, expires_at, used_at, replaces";

/// A minted successor of a refresh token: it takes the device and family of the token it
/// replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextRefreshToken {
    pub token_hash: Vec<u8>,
    pub expires_at: i64,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// No such token, or it expired unused: nothing changed.
    Refused,
    /// The token is spent and its successor stored. `grace`: it had been spent before, within
    /// the grace window, by a refresh whose answer never arrived; that answer's token is now
    /// spent unseen.
    Rotated { spent: RefreshToken, grace: bool },
    /// A spent token came back outside the grace rule: its whole family is revoked.
    Reused { spent: RefreshToken },
}

/// A key that signs access tokens; `kid` names it in each token's header.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub kid: String,
    pub secret: Vec<u8>,
    pub created_at: i64,
}

// By hand, so that a logged `SigningKey` never shows its secret.
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A stored report's row, without its automerge bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentRow {
    pub id: DocId,
    pub kind: String,
    pub schema_version: u32,
    pub grid_id: String,
    pub org_path: String,
    pub restricted: bool,
    pub assigned_to: Option<String>,
    pub seq: i64,
    pub heads: Vec<ChangeHash>,
    pub projection: serde_json::Value,
    pub status: Option<String>,
    pub review_state: String,
    pub has_conflicts: bool,
    pub problems: serde_json::Value,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConflictRow {
    pub id: i64,
    pub doc_id: DocId,
    pub path: String,
    /// `concurrent_values`, or the code of the rule that flagged it.
    pub code: String,
    pub detail: serde_json::Value,
    pub detected_at: i64,
    pub resolved_at: Option<i64>,
    pub resolved_by: Option<String>,
}

/// One row of the change log, without its bytes: who changed a report, when, from which device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRow {
    pub hash: ChangeHash,
    pub seq: i64,
    pub author: String,
    pub device_id: Option<String>,
    pub time: i64,
}

/// What an admin may change about a user; `None` leaves a field as it is. The password arrives
/// here already hashed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub org_unit_id: Option<String>,
    pub disabled: Option<bool>,
    /// A new password ends every session of the user, but `keep_session`.
    pub password_hash: Option<String>,
    /// The session a password change leaves alive: the one the user changed their own
    /// password in. `None` (an admin's reset) ends them all.
    pub keep_session: Option<String>,
}

impl UserPatch {
    /// `user` with the patch applied, and whether the change retires the user's devices: a
    /// disabled user keeps no phone, but what the phones hold unsent is delivered first (each
    /// phone pushes, then wipes itself). A new role or org unit retires nothing: the phones
    /// deliver what they hold, drop what the new scope excludes and pull what it includes.
    pub fn apply(&self, user: &User) -> (User, bool) {
        let mut new = user.clone();
        if let Some(v) = &self.display_name {
            new.display_name.clone_from(v);
        }
        if let Some(v) = self.role {
            new.role = v;
        }
        if let Some(v) = &self.org_unit_id {
            new.org_unit_id.clone_from(v);
        }
        if let Some(v) = self.disabled {
            new.disabled = v;
        }
        if let Some(v) = &self.password_hash {
            new.password_hash.clone_from(v);
        }
        let retire = new.disabled && !user.disabled;
        (new, retire)
    }
}

/// Where a device stands: what an admin chose for it, and whether it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    Active,
    /// Handed in: it delivers what it holds at its next sync, then wipes itself.
    Retiring,
    /// Handed in, everything delivered, wiped.
    Retired,
    /// Cut off (lost or stolen): it wipes itself at its next contact, whatever it holds.
    Revoked,
}

impl DeviceState {
    pub fn of(d: &Device) -> Self {
        match (d.revoked_at, d.retiring_at) {
            (Some(_), Some(_)) => DeviceState::Retired,
            (Some(_), None) => DeviceState::Revoked,
            (None, Some(_)) => DeviceState::Retiring,
            (None, None) => DeviceState::Active,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            DeviceState::Active => "active",
            DeviceState::Retiring => "retiring (delivers, then wipes)",
            DeviceState::Retired => "retired",
            DeviceState::Revoked => "revoked (wiped at next contact)",
        }
    }
}

/// A restricted report assigned to someone, and where it is.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AssignedReport {
    pub id: String,
    pub org_path: String,
}

/// The result of [`Store::update_user`]: the user as stored now, the devices it retired, and
/// how many sessions a new password ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserUpdated {
    pub user: User,
    pub retiring_devices: Vec<String>,
    pub ended_sessions: u64,
}

/// A page of users, ordered by username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery {
    /// Org path prefix the user's unit must be under; empty for everyone.
    pub org_prefix: String,
    /// Only usernames after this one (the last of the previous page).
    pub after: Option<String>,
    pub limit: i64,
}

/// A page of audit entries, newest (highest id) first, and filters that must all hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub user_id: Option<String>,
    pub action: Option<String>,
    pub doc_id: Option<DocId>,
    /// `at >= from`.
    pub from: Option<i64>,
    /// `at < to`.
    pub to: Option<i64>,
    /// Only entries with an id below this one (the last of the previous page).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// A stored audit entry with its id, which orders entries and pages through them.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub entry: AuditEntry,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub at: i64,
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    pub action: String,
    pub doc_id: Option<DocId>,
    pub detail: serde_json::Value,
}

/// A page of a report list: filters (each `None` is no filter), the position and the size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportQuery {
    pub kind: Option<String>,
    /// Org path of a unit: reports of its subtree.
    pub org_path: Option<String>,
    pub status: Option<String>,
    pub review_state: Option<String>,
    /// Reports updated at or after this time (unix seconds).
    pub updated_since: Option<i64>,
    /// Text to find in the projection (its JSON text), ignoring ASCII case.
    pub q: Option<String>,
    /// Search the projection with sensitive values redacted: for readers without clearance,
    /// whom a search must not tell what a redacted value contains.
    pub q_redacted: bool,
    pub has_conflicts: Option<bool>,
    /// The list is newest first by (updated_at, id); a page starts after this item.
    pub after: Option<(i64, String)>,
    pub limit: i64,
}

/// One page of a list, and how many items the whole list holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Whether items follow this page.
    pub more: bool,
    pub total: i64,
}

/// A page of open conflicts, oldest first by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConflictQuery {
    pub kind: Option<String>,
    /// Org path of a unit: conflicts of reports in its subtree.
    pub org_path: Option<String>,
    /// A page starts after the conflict with this id.
    pub after: Option<i64>,
    pub limit: i64,
}

/// An open conflict with the facts of its report that decide who sees it and how.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictItem {
    pub conflict: ConflictRow,
    pub kind: String,
    pub schema_version: u32,
    pub grid_id: String,
    pub org_path: String,
    pub restricted: bool,
}

/// One connection pool's connections at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUse {
    /// `main` on Postgres; `write` and `read` on SQLite.
    pub pool: &'static str,
    pub max: u32,
    pub open: u32,
    pub idle: u32,
}

pub(crate) fn pool_use<DB: sqlx::Database>(pool: &'static str, p: &sqlx::Pool<DB>) -> PoolUse {
    PoolUse {
        pool,
        max: p.options().get_max_connections(),
        open: p.size(),
        idle: u32::try_from(p.num_idle()).unwrap_or(u32::MAX),
    }
}

/// A committed ingest: the answer to the pusher, how many new changes it stored, and where.
#[derive(Debug)]
pub struct Committed {
    pub result: PushResult,
    pub changes: u64,
    pub changed: Changed,
}

/// Who is pushing: the user (whose id every new change must carry as author), the device, the
/// scope they may write in, and the time the server records.
#[derive(Debug, Clone)]
pub struct Writer {
    pub user_id: String,
    pub device_id: Option<String>,
    pub scope: Scope,
    pub now: i64,
    /// Changes a phone made offline: what the writer may no longer write is kept as held work
    /// rather than refused, since its author is not there to act on a refusal. Office edits and
    /// merges of held work are refused instead.
    pub hold_out_of_scope: bool,
}

/// Largest piece of a blob stored in one row: a chunk received whole is stored in pieces of at
/// most this, so that a ranged read loads little more than it returns.
pub const BLOB_PIECE_BYTES: usize = 256 * 1024;

/// The link between a report and a stored blob: the blob is downloadable through this report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub doc_id: DocId,
    /// sha256 of the bytes, lowercase hex.
    pub hash: String,
    pub media_type: String,
    pub size: i64,
    pub created_by: String,
    pub created_at: i64,
}

/// One chunk of an upload, as [`Store::upload_chunk`] takes it.
#[derive(Debug, Clone)]
pub struct UploadChunk<'a> {
    pub doc_id: DocId,
    /// The sha256 the whole upload must have, lowercase hex.
    pub hash: &'a str,
    pub media_type: &'a str,
    /// Size of the whole blob.
    pub total: i64,
    /// Where `bytes` start in the blob.
    pub offset: i64,
    pub bytes: &'a [u8],
    pub user_id: &'a str,
    pub now: i64,
}

/// Where an upload in progress stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadState {
    pub media_type: String,
    pub size: i64,
    /// Bytes received, from the start: where the next chunk must begin.
    pub received: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadOutcome {
    /// Stored; the upload holds `received` bytes.
    Partial { received: i64 },
    /// The chunk does not start at `received`, where the upload stands; nothing was stored.
    WrongOffset { received: i64 },
    /// The upload is complete, its hash verified and the blob linked to the report.
    /// `new_blob` is false when the blob was already stored (the upload's bytes are dropped).
    Complete {
        attachment: Attachment,
        new_blob: bool,
    },
    /// The upload is complete but its bytes do not hash to the declared hash; it is discarded.
    HashMismatch,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrphansCollected {
    pub uploads: u64,
    /// Links to reports whose document no longer names the blob (it was detached).
    pub links: u64,
    pub blobs: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobUsage {
    pub blobs: i64,
    /// Stored pieces of complete blobs.
    pub pieces: i64,
    /// Bytes of complete blobs.
    pub bytes: i64,
    /// Uploads in progress.
    pub uploads: i64,
    /// Bytes held by uploads in progress.
    pub upload_bytes: i64,
}

/// doc_id, hash, media_type, size, created_by, created_at.
pub(crate) type AttachmentRow = (String, String, String, i64, String, i64);

pub(crate) const ATTACHMENT_COLUMNS: &str =
    "doc_id, hash, media_type, size, created_by, created_at";

pub(crate) fn attachment_from(r: AttachmentRow) -> Result<Attachment> {
    Ok(Attachment {
        doc_id: parse_doc_id(&r.0)?,
        hash: r.1,
        media_type: r.2,
        size: r.3,
        created_by: r.4,
        created_at: r.5,
    })
}

/// `bytes` cut at `offset` into the pieces stored as rows: (position in the blob, piece).
pub(crate) fn pieces(offset: i64, bytes: &[u8]) -> impl Iterator<Item = (i64, &[u8])> {
    bytes
        .chunks(BLOB_PIECE_BYTES)
        .enumerate()
        .map(move |(i, piece)| (offset + (i * BLOB_PIECE_BYTES) as i64, piece))
}

/// Bytes `start..end` of a blob from its pieces that overlap that range, in order.
pub(crate) fn cut_range(pieces: Vec<(i64, Vec<u8>)>, start: i64, end: i64) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0));
    let mut at = start;
    for (pos, bytes) in pieces {
        let piece_end = pos + bytes.len() as i64;
        if pos > at || piece_end <= at {
            return Err(StoreError::Corrupt(format!(
                "blob piece at {pos}, wanted {at}"
            )));
        }
        let from = usize::try_from(at - pos).unwrap_or(0);
        let to = usize::try_from(end.min(piece_end) - pos).unwrap_or(0);
        out.extend_from_slice(&bytes[from..to]);
        at = end.min(piece_end);
        if at == end {
            break;
        }
    }
    if at != end {
        return Err(StoreError::Corrupt(format!(
            "blob ends at {at}, wanted {end}"
        )));
    }
    Ok(out)
}

/// The sha256 of an upload's pieces fed in order, checking that they follow each other.
pub(crate) struct PieceHasher {
    hasher: sha2::Sha256,
    pub(crate) next: i64,
}

impl PieceHasher {
    pub(crate) fn new() -> Self {
        use sha2::Digest;
        PieceHasher {
            hasher: sha2::Sha256::new(),
            next: 0,
        }
    }

    pub(crate) fn feed(&mut self, pos: i64, bytes: &[u8]) -> Result<()> {
        use sha2::Digest;
        if pos != self.next {
            return Err(StoreError::Corrupt(format!(
                "upload piece at {pos}, wanted {}",
                self.next
            )));
        }
        self.hasher.update(bytes);
        self.next += bytes.len() as i64;
        Ok(())
    }

    pub(crate) fn finish(self) -> String {
        use sha2::Digest;
        hex::encode(self.hasher.finalize())
    }
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;
    /// Checks, without changing anything, that every migration of this binary and no other has
    /// been applied: `NotMigrated` or `Newer` otherwise.
    async fn check_migrations(&self) -> Result<()>;
    /// Writes a consistent copy of the whole database, as it is while in use, to the new file
    /// `to`. `Unsupported` on Postgres, which has its own tools for this.
    async fn backup(&self, to: &std::path::Path) -> Result<()>;
    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;
    /// Conflicts and rule flags not yet resolved, across every report: for monitoring.
    async fn count_open_conflicts(&self) -> Result<i64>;
    /// How busy each connection pool is: for monitoring.
    fn pool_use(&self) -> Vec<PoolUse>;

    async fn upsert_org_unit(&self, unit: &OrgUnit) -> Result<()>;
    /// Adds a unit; `Duplicate` when its id or path is taken.
    async fn insert_org_unit(&self, unit: &OrgUnit) -> Result<()>;
    /// Renames a unit; false when there is no such unit.
    async fn rename_org_unit(&self, id: &str, name: &str) -> Result<bool>;
    async fn org_unit(&self, id: &str) -> Result<Option<OrgUnit>>;
    async fn org_units(&self) -> Result<Vec<OrgUnit>>;

    async fn insert_user(&self, user: &User) -> Result<()>;
    async fn user(&self, id: &str) -> Result<Option<User>>;
    async fn user_by_username(&self, username: &str) -> Result<Option<User>>;
    async fn users(&self) -> Result<Vec<User>>;
    async fn count_users(&self) -> Result<i64>;
    /// Users whose org unit is under `query.org_prefix`, by username, with their total.
    async fn users_page(&self, query: &UserQuery) -> Result<Page<User>>;
    /// Applies `patch` to user `id` and, when [`UserPatch::apply`] says so, marks every live
    /// device of the user as retiring at `now`; with a new password, ends every session of the
    /// user but `patch.keep_session` and those of retiring devices, which must still deliver
    /// (the devices stay). All in one transaction, in which a
    /// concurrent refresh of the user's sessions cannot slip a new token past the end.
    /// `None` when there is no such user.
    async fn update_user(
        &self,
        id: &str,
        patch: &UserPatch,
        now: i64,
    ) -> Result<Option<UserUpdated>>;

    async fn upsert_device(&self, device: &Device) -> Result<()>;
    async fn device(&self, id: &str) -> Result<Option<Device>>;
    async fn devices(&self) -> Result<Vec<Device>>;
    /// Restricted reports (drug-control cases) assigned to a user, with where they are.
    async fn assigned_reports(&self, user_id: &str) -> Result<Vec<AssignedReport>>;
    /// The devices of one user, revoked ones included, oldest first.
    async fn devices_of_user(&self, user_id: &str) -> Result<Vec<Device>>;
    /// Marks a device revoked (a lost phone: no longer retiring) and drops its refresh tokens;
    /// false when there is no such device.
    async fn revoke_device(&self, id: &str, at: i64) -> Result<bool>;
    /// Ends a retiring device that delivered everything: revoked like a lost one, but kept
    /// marked as retired.
    async fn finish_retirement(&self, id: &str, at: i64) -> Result<()>;
    /// Marks a device as being handed in (kept when it already is); false when there is no such
    /// live device.
    async fn retire_device(&self, id: &str, at: i64) -> Result<bool>;
    /// Records how many changes a device said at a sync it had not delivered yet.
    async fn note_device_pending(&self, id: &str, pending: i64, at: i64) -> Result<()>;
    /// Records the scope a device pulls under from now on.
    async fn set_device_scope(&self, id: &str, scope_key: &str) -> Result<()>;

    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<()>;
    /// Presents the refresh token hashed `presented` at `now`: as [`refresh::judge`] rules, spends
    /// it and stores `next` as its successor, or revokes its family. One transaction, in which
    /// refreshes of one device take turns, so of two concurrent uses of a token one loses.
    ///
    /// [`refresh::judge`]: crate::auth::refresh::judge
    async fn rotate_refresh_token(
        &self,
        presented: &[u8],
        next: &NextRefreshToken,
        now: i64,
    ) -> Result<Rotation>;
    async fn revoke_token_family(&self, family: &str) -> Result<()>;
    /// Whether session `family` of `device_id` is alive (not logged out, reused or ended by a
    /// password change); asked on every authenticated request.
    async fn session_live(&self, family: &str, device_id: &str) -> Result<bool>;

    async fn insert_signing_key(&self, key: &SigningKey) -> Result<()>;
    /// Every stored signing key, newest first.
    async fn signing_keys(&self) -> Result<Vec<SigningKey>>;

    /// Applies a push: for each document, in one transaction for the whole batch, skips known
    /// hashes, checks dependencies, authorship and scope, applies, validates, stores the changes
    /// with server sequence numbers, the projection, conflicts and (when due) a new snapshot.
    /// Returns only after the commit, so every `Acked` is durable; with the answer comes what
    /// the commit changed, for live updates and metrics.
    async fn ingest_committed(
        &self,
        writer: &Writer,
        push: &Push,
        registry: &Registry,
    ) -> Result<Committed>;

    /// [`Store::ingest_committed`] for callers that need only the answer.
    async fn ingest(
        &self,
        writer: &Writer,
        push: &Push,
        registry: &Registry,
    ) -> Result<PushResult> {
        Ok(self.ingest_committed(writer, push, registry).await?.result)
    }

    /// Serves a pull from stored bytes, without loading any automerge document.
    async fn pull(&self, scope: &Scope, device_id: Option<&str>, pull: &Pull)
    -> Result<PullResult>;

    async fn document(&self, id: &DocId) -> Result<Option<DocumentRow>>;
    /// Loads a report as an automerge document (snapshot plus later changes).
    async fn load_doc(&self, id: &DocId) -> Result<Option<ReportDoc>>;
    async fn changes_of(&self, id: &DocId) -> Result<Vec<ChangeRow>>;
    async fn conflicts_of(&self, id: &DocId) -> Result<Vec<ConflictRow>>;

    /// A page of the reports in `scope` matching `query`, newest first by (updated_at, id),
    /// with the total of the whole filtered list. The filter runs in SQL.
    async fn list_reports(&self, scope: &Scope, query: &ReportQuery) -> Result<Page<DocumentRow>>;
    /// Sets a report's review state (server bookkeeping, not part of its document) and records
    /// `audit` in the same transaction; false when there is no such report.
    async fn set_review_state(&self, id: &DocId, state: &str, audit: &AuditEntry) -> Result<bool>;
    async fn conflict(&self, id: i64) -> Result<Option<ConflictItem>>;
    /// A page of the open conflicts of reports in `scope`, oldest first by id, with the total.
    async fn list_conflicts(
        &self,
        scope: &Scope,
        query: &ConflictQuery,
    ) -> Result<Page<ConflictItem>>;
    /// Marks an open rule flag (a conflict whose code is not `concurrent_values`, which only a
    /// change resolves) resolved by `audit.user_id` at `audit.at`, updates the report's
    /// `has_conflicts` and records `audit`, in one transaction. False when no such flag is open.
    async fn dismiss_flag(&self, id: i64, audit: &AuditEntry) -> Result<bool>;

    /// A page of the held work placed in `scope`, newest first.
    async fn held_work(&self, scope: &Scope, query: &HeldQuery) -> Result<Vec<HeldItem>>;
    async fn held_item(&self, id: i64) -> Result<Option<HeldItem>>;
    /// The changes an item holds, in the order they arrived.
    async fn held_changes(&self, id: i64) -> Result<Vec<Vec<u8>>>;
    /// Records a decision on an open item; false when it is not open (decided already, or none).
    async fn decide_held(&self, id: i64, decision: &HeldDecision) -> Result<bool>;

    /// Deletes change-log rows that every live device has pulled past and that a snapshot
    /// already contains; returns how many. Clients behind the new horizon get snapshots.
    async fn prune(&self) -> Result<u64>;

    /// Appends one chunk to the upload of blob `chunk.hash` for report `chunk.doc_id`, in one
    /// transaction. A chunk must start where the upload stands (`WrongOffset` otherwise, storing
    /// nothing); a chunk at offset 0 declaring another size or media type starts the upload
    /// over. The chunk that completes the upload has the whole upload hashed: on a match the
    /// blob is stored (unless it already is) and linked to the report and the upload dropped,
    /// on a mismatch the upload is discarded. Nothing of an upload is readable before then.
    async fn upload_chunk(&self, chunk: &UploadChunk<'_>) -> Result<UploadOutcome>;
    /// Where the upload of `hash` for report `doc_id` stands; `None` when none is in progress.
    async fn upload_state(&self, doc_id: &DocId, hash: &str) -> Result<Option<UploadState>>;
    /// Links the stored blob `hash` to report `doc_id` without any upload, when the blob is
    /// already linked to this report or to another report in `scope` (whose bytes the caller
    /// could read anyway). `None` otherwise, even when the blob is stored: whoever has no
    /// report showing it must prove they hold the bytes by uploading them.
    async fn link_visible_blob(
        &self,
        scope: &Scope,
        link: &Attachment,
    ) -> Result<Option<Attachment>>;
    /// The link of blob `hash` to report `doc_id`.
    async fn attachment(&self, doc_id: &DocId, hash: &str) -> Result<Option<Attachment>>;
    /// The blobs linked to report `doc_id`, oldest link first.
    async fn attachments_of(&self, doc_id: &DocId) -> Result<Vec<Attachment>>;
    /// Bytes `start..end` of the stored blob `hash`; `None` when no such blob is stored.
    async fn read_blob(&self, hash: &str, start: i64, end: i64) -> Result<Option<Vec<u8>>>;
    /// Deletes uploads not written to since before `before`; links made before `before` of
    /// reports whose document no longer names the blob; then blobs stored before `before` (with
    /// their thumbnails) that no report links to.
    async fn collect_orphans(&self, before: i64) -> Result<OrphansCollected>;
    /// Stores the thumbnail of blob `hash` (replacing one made before).
    async fn put_thumbnail(&self, hash: &str, bytes: &[u8], now: i64) -> Result<()>;
    /// The thumbnail of blob `hash` as linked to report `doc_id`: `None` when the report has no
    /// such attachment or it has no thumbnail.
    async fn thumbnail(&self, doc_id: &DocId, hash: &str) -> Result<Option<Vec<u8>>>;
    /// The hashes of the attachments of report `doc_id` that have a thumbnail.
    async fn thumbnails_of(&self, doc_id: &DocId) -> Result<Vec<String>>;
    /// How much blob storage holds: for monitoring, and for tests that count rows.
    async fn blob_usage(&self) -> Result<BlobUsage>;

    /// Satisfaction canvass counts per org path for `period`, in `scope` (`store::facts`).
    async fn canvass_counts(&self, scope: &Scope, period: &Period) -> Result<Vec<CanvassCounts>>;
    /// How many canvass interviews in `period` and `scope` raised each worry.
    async fn worry_counts(&self, scope: &Scope, period: &Period) -> Result<Vec<(String, i64)>>;
    /// Dispute counts per org path, status, risk and category for `period`, in `scope`; a
    /// follow-up before `today` is overdue.
    async fn dispute_counts(
        &self,
        scope: &Scope,
        period: &Period,
        today: &str,
    ) -> Result<Vec<DisputeCounts>>;
    /// Resolved disputes of `period` per org path and days to resolution, in `scope`.
    async fn resolution_days(&self, scope: &Scope, period: &Period) -> Result<Vec<ResolutionDays>>;
    /// Drug-control case counts per org path under `due.org_path`, in `scope`.
    async fn drug_counts(&self, scope: &Scope, due: &DrugDue) -> Result<Vec<DrugCounts>>;
    /// A page of a ledger: the reports of `query`, in `scope`, by id.
    async fn ledger_page(&self, scope: &Scope, query: &LedgerQuery) -> Result<Vec<DocumentRow>>;

    async fn audit(&self, entry: &AuditEntry) -> Result<()>;
    async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>>;
    /// Audit entries matching every filter of `query`, newest first, with their total.
    async fn audit_page(&self, query: &AuditQuery) -> Result<Page<AuditRecord>>;
}

/// Opens the database named by `url` (`sqlite://…` or `postgres://…`) and migrates it.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    let store = connect(url).await?;
    store.migrate().await?;
    Ok(store)
}

/// Opens the database named by `url` as it is, without migrating it.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    Ok(if url.starts_with("sqlite:") {
        Arc::new(sqlite::SqliteStore::connect(url).await?)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Arc::new(postgres::PgStore::connect(url).await?)
    } else {
        return Err(StoreError::UnsupportedUrl(url.to_owned()));
    })
}

/// Compares the migrations applied to a database with those `known` to this binary.
pub(crate) fn migration_gap(known: &sqlx::migrate::Migrator, applied: &[i64]) -> Result<()> {
    let versions: Vec<i64> = known.iter().map(|m| m.version).collect();
    if let Some(v) = applied.iter().find(|v| !versions.contains(v)) {
        return Err(StoreError::Newer(*v));
    }
    if versions.iter().any(|v| !applied.contains(v)) {
        return Err(StoreError::NotMigrated {
            have: applied.iter().copied().max().unwrap_or(0),
            need: versions.iter().copied().max().unwrap_or(0),
        });
    }
    Ok(())
}

/// `url` with any password replaced by `***`, for logs and messages.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

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

pub(crate) fn parse_role(s: &str) -> Result<Role> {
    s.parse()
        .map_err(|e: crate::scope::UnknownRole| StoreError::Corrupt(e.to_string()))
}

pub(crate) type UserRow = (String, String, String, String, String, String, bool, i64);

pub(crate) const USER_COLUMNS: &str =
    "id, username, display_name, password_hash, role, org_unit_id, disabled, created_at";
pub(crate) const DEVICE_COLUMNS: &str = "id, user_id, name, created_at, last_seen_at, revoked_at, \
     cursor, pending_changes, pending_at, retiring_at, scope_key";
pub(crate) const DOC_COLUMNS: &str = "id, kind, CAST(schema_version AS BIGINT) AS schema_version, grid_id, org_path, restricted, assigned_to, seq, heads, \
     CAST(projection AS TEXT) AS projection, status, review_state, has_conflicts, problems, \
     created_by, created_at, updated_at";

pub(crate) fn user_from(r: UserRow) -> Result<User> {
    Ok(User {
        id: r.0,
        username: r.1,
        display_name: r.2,
        password_hash: r.3,
        role: parse_role(&r.4)?,
        org_unit_id: r.5,
        disabled: r.6,
        created_at: r.7,
    })
}

pub(crate) type OrgRow = (String, Option<String>, String, String, String);

/// A documents row as both stores select it (`projection` as text).
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
            schema_version: u32::try_from(r.schema_version)
                .map_err(|_| StoreError::Corrupt("schema_version".into()))?,
            grid_id: r.grid_id,
            org_path: r.org_path,
            restricted: r.restricted,
            assigned_to: r.assigned_to,
            seq: r.seq,
            heads: heads_from_bytes(&r.heads)?,
            projection: serde_json::from_str(&r.projection)
                .map_err(|e| StoreError::Corrupt(format!("projection: {e}")))?,
            status: r.status,
            review_state: r.review_state,
            has_conflicts: r.has_conflicts,
            problems: serde_json::from_str(&r.problems)
                .map_err(|e| StoreError::Corrupt(format!("problems: {e}")))?,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

pub(crate) fn org_from(r: OrgRow) -> Result<OrgUnit> {
    Ok(OrgUnit {
        id: r.0,
        parent_id: r.1,
        level: Level::parse(&r.2)?,
        name: r.3,
        path: r.4,
    })
}

/// snapshot, snapshot_seq, incremental_bytes, org_path, restricted, assigned_to.
pub(crate) type StoredRow = (Vec<u8>, i64, i64, String, bool, Option<String>);

/// id, seq, heads, snapshot length, snapshot_seq, incremental_bytes.
pub(crate) type PageRow = (String, i64, Vec<u8>, i64, i64, i64);

pub(crate) fn page_doc_from(r: PageRow) -> Result<PageDoc> {
    Ok(PageDoc {
        id: parse_doc_id(&r.0)?,
        seq: r.1,
        heads: r.2,
        snapshot_len: r.3,
        snapshot_seq: r.4,
        incremental_bytes: r.5,
    })
}

/// doc_id, seq, device_id, hash, bytes.
pub(crate) type PulledRow = (String, i64, Option<String>, Vec<u8>, Vec<u8>);

pub(crate) fn pulled_change_from(r: PulledRow) -> Result<(DocId, PulledChange)> {
    Ok((
        parse_doc_id(&r.0)?,
        PulledChange {
            seq: r.1,
            device_id: r.2,
            hash: r.3,
            bytes: r.4,
        },
    ))
}

/// seq, device_id, hash, bytes: a change of one known document.
pub(crate) type DocChangeRow = (i64, Option<String>, Vec<u8>, Vec<u8>);

pub(crate) fn doc_change_from((seq, device_id, hash, bytes): DocChangeRow) -> PulledChange {
    PulledChange {
        seq,
        device_id,
        hash,
        bytes,
    }
}

/// hash, seq, author, device_id, time.
pub(crate) type ChangeLogRow = (Vec<u8>, i64, String, Option<String>, i64);

pub(crate) fn change_row_from(r: ChangeLogRow) -> Result<ChangeRow> {
    Ok(ChangeRow {
        hash: heads_from_bytes(&r.0)?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("change hash".into()))?,
        seq: r.1,
        author: r.2,
        device_id: r.3,
        time: r.4,
    })
}

/// id, path, code, detail, detected_at, resolved_at, resolved_by.
pub(crate) type ConflictRecord = (
    i64,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
);

pub(crate) fn conflict_from(doc_id: DocId, r: ConflictRecord) -> Result<ConflictRow> {
    Ok(ConflictRow {
        id: r.0,
        doc_id,
        path: r.1,
        code: r.2,
        detail: serde_json::from_str(&r.3)
            .map_err(|e| StoreError::Corrupt(format!("conflict detail: {e}")))?,
        detected_at: r.4,
        resolved_at: r.5,
        resolved_by: r.6,
    })
}

/// at, user_id, device_id, action, doc_id, detail.
pub(crate) type AuditRow = (
    i64,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    String,
);

pub(crate) fn audit_from(r: AuditRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        at: r.0,
        user_id: r.1,
        device_id: r.2,
        action: r.3,
        doc_id: r.4.as_deref().map(parse_doc_id).transpose()?,
        detail: serde_json::from_str(&r.5)
            .map_err(|e| StoreError::Corrupt(format!("audit detail: {e}")))?,
    })
}

/// id, at, user_id, device_id, action, doc_id, detail.
pub(crate) type AuditRecordRow = (
    i64,
    i64,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    String,
);

pub(crate) fn audit_record_from(r: AuditRecordRow) -> Result<AuditRecord> {
    Ok(AuditRecord {
        id: r.0,
        entry: audit_from((r.1, r.2, r.3, r.4, r.5, r.6))?,
    })
}

pub(crate) const AUDIT_RECORD_COLUMNS: &str = "id, at, user_id, device_id, action, doc_id, detail";

/// The condition that the org path in `column` lies under the path bound to placeholder `n`
/// (written with `mark`: `?` SQLite, `$` Postgres): a byte range, which an index on the column
/// serves, so that a township's reports are found without reading the district's. Org paths end
/// with '/', so those under `/d/t1/` are exactly the paths from `/d/t1/` up to, not including,
/// `/d/t10` ('0' follows '/'); the empty path (a district admin's) takes every path, and any
/// other text none. Postgres compares bytes (`COLLATE "C"`): a linguistic collation may ignore
/// the slashes.
pub(crate) fn path_under(column: &str, mark: char, n: usize) -> String {
    let p = format!("{mark}{n}");
    let (col, last, all_but_last) = if mark == '$' {
        (
            format!("{column} COLLATE \"C\""),
            format!("right({p}, 1)"),
            format!("left({p}, -1)"),
        )
    } else {
        (
            column.to_owned(),
            format!("substr({p}, -1)"),
            format!("substr({p}, 1, length({p}) - 1)"),
        )
    };
    format!(
        "({col} >= {p} AND {col} < (CASE WHEN {p} = '' THEN '0' \
         WHEN {last} = '/' THEN {all_but_last} || '0' ELSE {p} END))"
    )
}

/// The condition that a user's org unit lies under the path bound to placeholder 1.
pub(crate) fn users_under(mark: char) -> String {
    format!(
        "org_unit_id IN (SELECT id FROM org_units WHERE {})",
        path_under("path", mark, 1)
    )
}

/// An org unit insert's outcome: a taken id or path is `Duplicate`, a missing parent `NotFound`.
pub(crate) fn org_insert_result(result: Result<(), sqlx::Error>, unit: &OrgUnit) -> Result<()> {
    match result {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::Duplicate(format!("org unit {}", unit.id)))
        }
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
            Err(StoreError::NotFound(format!(
                "parent org unit {}",
                unit.parent_id.as_deref().unwrap_or("")
            )))
        }
        other => other.map_err(Into::into),
    }
}

/// A user update's outcome: a missing org unit is `NotFound`.
pub(crate) fn user_update_result(result: Result<(), sqlx::Error>, user: &User) -> Result<()> {
    match result {
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => Err(StoreError::NotFound(
            format!("org unit {}", user.org_unit_id),
        )),
        other => other.map_err(Into::into),
    }
}

/// A value bound to a placeholder of a query built at run time.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    MaybeText(Option<String>),
    Int(i64),
}

/// The `WHERE` condition (`TRUE` when unfiltered) for the filters `query` sets and the values
/// for its placeholders, numbered from 1 and written with `mark` (`?` or `$`), in order. With
/// `page` it also includes the cursor. Only the filters given reach the SQL, so each can use an
/// index; values are always bound, never spliced.
pub(crate) fn audit_filter(query: &AuditQuery, mark: char, page: bool) -> (String, Vec<Bind>) {
    let mut conditions = Vec::new();
    let mut binds = Vec::new();
    let mut add = |condition: &str, bind: Bind| {
        binds.push(bind);
        conditions.push(format!("{condition} {mark}{}", binds.len()));
    };
    if let Some(v) = &query.user_id {
        add("user_id =", Bind::Text(v.clone()));
    }
    if let Some(v) = &query.action {
        add("action =", Bind::Text(v.clone()));
    }
    if let Some(v) = &query.doc_id {
        add("doc_id =", Bind::Text(v.to_string()));
    }
    if let Some(v) = query.from {
        add("at >=", Bind::Int(v));
    }
    if let Some(v) = query.to {
        add("at <", Bind::Int(v));
    }
    if page && let Some(v) = query.before_id {
        add("id <", Bind::Int(v));
    }
    if conditions.is_empty() {
        ("TRUE".into(), binds)
    } else {
        (conditions.join(" AND "), binds)
    }
}

/// `s` as a SQL LIKE pattern matching itself, with LIKE's wildcards escaped by `\`.
pub(crate) fn like_escape(s: &str) -> String {
    let mut pattern = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern
}

/// The LIKE pattern that finds `text` inside a JSON document's text: `text` as JSON writes it
/// inside a string (so a quote or a backslash matches the escaped form stored), escaped for
/// LIKE, between two `%`.
pub(crate) fn json_contains_pattern(text: &str) -> String {
    let json = serde_json::Value::String(text.to_owned()).to_string();
    let inner = &json[1..json.len() - 1];
    format!("%{}%", like_escape(inner))
}

/// The WHERE condition of a report list on `documents d`, with placeholders written with
/// `mark`: 1–4 the scope, 5 kind, 6 org path pattern, 7 status, 8 review state, 9 updated
/// since, 10 text pattern, 11 whether to search the redacted text, 12 has_conflicts, 13–14 the
/// (updated_at, id) to start after. `like` is the case-insensitive LIKE of the database.
pub(crate) fn report_list_where(mark: char, like: &str) -> String {
    let p = |i: usize| format!("{mark}{i}");
    format!(
        "{scope} AND ({k} IS NULL OR d.kind = {k}) \
         AND ({o} IS NULL OR {o_under}) \
         AND ({s} IS NULL OR d.status = {s}) AND ({r} IS NULL OR d.review_state = {r}) \
         AND ({u} IS NULL OR d.updated_at >= {u}) \
         AND ({q} IS NULL OR (CASE WHEN {red} THEN d.public_text \
              ELSE CAST(d.projection AS TEXT) END) {like} {q} ESCAPE '\\') \
         AND ({c} IS NULL OR d.has_conflicts = {c}) \
         AND ({at} IS NULL OR d.updated_at < {at} OR (d.updated_at = {at} AND d.id < {id}))",
        scope = scope_filter("d", mark, 1),
        k = p(5),
        o = p(6),
        o_under = path_under("d.org_path", mark, 6),
        s = p(7),
        r = p(8),
        u = p(9),
        q = p(10),
        red = p(11),
        c = p(12),
        at = p(13),
        id = p(14),
    )
}

/// The WHERE condition of a list of open conflicts on `conflicts c JOIN documents d`:
/// 1–4 the scope, 5 kind, 6 org path pattern, 7 the conflict id to start after.
pub(crate) fn conflict_list_where(mark: char) -> String {
    format!(
        "c.resolved_at IS NULL AND {scope} AND ({mark}5 IS NULL OR d.kind = {mark}5) \
         AND ({mark}6 IS NULL OR {o_under}) \
         AND ({mark}7 IS NULL OR c.id > {mark}7)",
        scope = scope_filter("d", mark, 1),
        o_under = path_under("d.org_path", mark, 6),
    )
}

pub(crate) const CONFLICT_ITEM_COLUMNS: &str = "c.id, c.path, c.code, c.detail, c.detected_at, \
     c.resolved_at, c.resolved_by, c.doc_id, d.kind, CAST(d.schema_version AS BIGINT), d.grid_id, \
     d.org_path, d.restricted";

/// A conflict row as [`CONFLICT_ITEM_COLUMNS`] selects it.
pub(crate) type ConflictItemRecord = (
    i64,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    String,
    String,
    i64,
    String,
    String,
    bool,
);

pub(crate) fn conflict_item_from(r: ConflictItemRecord) -> Result<ConflictItem> {
    let doc_id = parse_doc_id(&r.7)?;
    Ok(ConflictItem {
        conflict: conflict_from(doc_id, (r.0, r.1, r.2, r.3, r.4, r.5, r.6))?,
        kind: r.8,
        schema_version: u32::try_from(r.9)
            .map_err(|_| StoreError::Corrupt("schema_version".into()))?,
        grid_id: r.10,
        org_path: r.11,
        restricted: r.12,
    })
}

/// The SQL condition that rows of `table` (with `org_path`, `restricted` and `assigned_to`
/// columns) are in a scope: the path prefix, whether ordinary kinds are open, whether
/// every restricted case is, and the user a restricted case must be assigned to, bound to four
/// placeholders from `first`, written with `mark` (`?` or `$`). The same rule as
/// [`Scope::allows`].
pub(crate) fn scope_filter(table: &str, mark: char, first: usize) -> String {
    let [open, all, user] = [1, 2, 3].map(|i| format!("{mark}{}", first + i));
    let under = path_under(&format!("{table}.org_path"), mark, first);
    format!(
        "{under} AND ((NOT {table}.restricted AND {open}) \
         OR ({table}.restricted AND ({all} OR {table}.assigned_to = {user})))"
    )
}

#[cfg(test)]
mod tests {
    use super::{Outage, StoreError, postgres_outage, redacted_url, sqlite_outage};
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    #[test]
    fn postgres_conditions_are_outages_and_other_errors_are_not() {
        for (sqlstate, outage) in [
            ("53100", Some(Outage::Full)),
            ("25006", Some(Outage::ReadOnly)),
            ("58030", Some(Outage::Failing)),
            ("57P01", Some(Outage::Unavailable)),
            ("57P03", Some(Outage::Unavailable)),
            ("53300", Some(Outage::Unavailable)),
            ("08006", Some(Outage::Unavailable)),
            ("23505", None),
            ("40001", None),
            ("42P01", None),
        ] {
            assert_eq!(postgres_outage(sqlstate), outage, "{sqlstate}");
        }
    }

    #[test]
    fn sqlite_conditions_are_outages_by_their_primary_code() {
        for (code, outage) in [
            (13, Some(Outage::Full)),
            (8, Some(Outage::ReadOnly)),
            (8 | (5 << 8), Some(Outage::ReadOnly)), // SQLITE_READONLY_DIRECTORY
            (10 | (3 << 8), Some(Outage::Failing)), // SQLITE_IOERR_WRITE
            (5, Some(Outage::Unavailable)),
            (11, None),            // SQLITE_CORRUPT: not for a retry to fix
            (19 | (8 << 8), None), // SQLITE_CONSTRAINT_UNIQUE
        ] {
            assert_eq!(sqlite_outage(code), outage, "{code}");
        }
        assert_eq!(
            StoreError::Database(sqlx::Error::PoolTimedOut).outage(),
            Some(Outage::Unavailable)
        );
        assert_eq!(StoreError::Corrupt("x".into()).outage(), None);
    }

    /// The real driver's errors, not only the codes: a database at its page limit is full, and
    /// a file opened read-only refuses writes.
    #[tokio::test]
    async fn the_sqlite_driver_reports_a_full_and_a_read_only_database_as_outages() {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("t.db"))
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .expect("open");
        sqlx::query("CREATE TABLE t (b BLOB)")
            .execute(&pool)
            .await
            .expect("create");
        sqlx::query("PRAGMA max_page_count = 3")
            .execute(&pool)
            .await
            .expect("limit");
        let full = sqlx::query("INSERT INTO t VALUES (zeroblob(100000))")
            .execute(&pool)
            .await
            .expect_err("over the page limit");
        assert_eq!(StoreError::from(full).outage(), Some(Outage::Full));

        let read_only = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.read_only(true))
            .await
            .expect("open read-only");
        let refused = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&read_only)
            .await
            .expect_err("read-only");
        assert_eq!(StoreError::from(refused).outage(), Some(Outage::ReadOnly));
    }

    #[test]
    fn a_database_password_never_reaches_a_log_line() {
        assert_eq!(
            redacted_url("postgres://gs:s3cr@t:x@db.local:5432/gridsync?sslmode=disable"),
            "postgres://gs:***@db.local:5432/gridsync?sslmode=disable"
        );
        assert_eq!(
            redacted_url("postgres://postgres@127.0.0.1/poke"),
            "postgres://postgres@127.0.0.1/poke"
        );
        assert_eq!(
            redacted_url("sqlite:///var/lib/a@b/g.db"),
            "sqlite:///var/lib/a@b/g.db"
        );
        assert_eq!(redacted_url("not a url"), "not a url");
    }
}
