//! The store's vocabulary: the org tree, people and devices, sessions, reports and their
//! conflicts, attachments, audit entries, and the queries that page through them.

use automerge::ChangeHash;
use gridsync_core::DocId;

use super::{Result, StoreError};
use crate::scope::{Role, Scope};

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
    /// The Ed25519 public key the phone generated for itself (unpadded base64url), which its
    /// offline grants name; set at a login, or at a refresh while none is set.
    pub public_key: Option<String>,
}

impl Device {
    /// A device first seen at `now`, live, that has pulled nothing yet.
    pub fn new(
        id: &str,
        user_id: &str,
        name: &str,
        public_key: Option<String>,
        now: i64,
    ) -> Device {
        Device {
            id: id.to_owned(),
            user_id: user_id.to_owned(),
            name: name.to_owned(),
            created_at: now,
            last_seen_at: now,
            revoked_at: None,
            cursor: 0,
            pending_changes: None,
            pending_at: None,
            retiring_at: None,
            scope_key: None,
            public_key,
        }
    }
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

/// Whether a login's session was stored, or what changed since the login read its user and
/// device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStart {
    Started,
    /// The user no longer has the password hash the login checked.
    PasswordChanged,
    AccountDisabled,
    DeviceRevoked,
    /// The device is another user's.
    DeviceTaken,
}

/// A key that signs access tokens; `kid` names it in each token's header.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SigningKey {
    pub kid: String,
    /// The Ed25519 private key's 32-byte seed.
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

/// What offline grants must no longer let in (`Store::revocations`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocations {
    /// Devices revoked since the time asked for, oldest first.
    pub devices: Vec<RevokedDevice>,
    /// Every disabled account, by user id.
    pub disabled_users: Vec<String>,
    /// Every revoked hub, by hub id.
    pub revoked_hubs: Vec<String>,
    /// Users whose password was changed or reset since the time asked for, by user id.
    pub changed_passwords: Vec<ChangedPassword>,
}

/// A user's password change: the grants issued to them before it no longer count.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct ChangedPassword {
    pub user_id: String,
    pub changed_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct RevokedDevice {
    pub id: String,
    pub revoked_at: i64,
}

/// A village office hub registered for a village or community.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Hub {
    pub id: String,
    pub unit_id: String,
    pub name: String,
    /// Until when its enrolment code works; `None` once it enrolled.
    pub code_expires_at: Option<i64>,
    /// The hub's Ed25519 public key (unpadded base64url), from its enrolment.
    pub identity_key: Option<String>,
    pub enrolled_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
}

/// A push a phone handed a village office hub, queued for relaying to central.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct QueuedPush {
    pub id: i64,
    pub device_id: String,
    /// The encoded `AttestedPush` frame, as the phone signed it.
    pub frame: Vec<u8>,
    pub received_at: i64,
    pub relayed_at: Option<i64>,
    /// Central's receipt, once it took the push.
    pub receipt: Option<String>,
}

/// Central's receipt for a push a hub relayed, by the push's place in the hub's queue.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HubReceipt {
    pub id: i64,
    /// The receipt as central signed it (a JWS).
    pub receipt: String,
}

/// An attachment a phone uploaded to a village office hub, queued for relaying to central.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedAttachment {
    /// Its place in the queue.
    pub id: i64,
    pub doc_id: DocId,
    /// sha256 of the bytes, lowercase hex.
    pub hash: String,
    pub media_type: String,
    pub size: i64,
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

/// A report list searching text counts its matches only up to this many and one more:
/// counting them all reads every report in scope whose text might match (329 ms for a township
/// of 45,000 in a district of a million, W5).
pub const SEARCH_COUNT_CAP: i64 = 1_000;

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
    /// Whether counting stopped at `total` ([`SEARCH_COUNT_CAP`]) and more items match.
    pub total_capped: bool,
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
    pub via: Via,
}

/// How the changes of a [`Writer`] came to be written here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// From the writer's own phone or office.
    Direct,
    /// Relayed by the village office hub of this id: no restricted report (a drug-control case)
    /// passes through a hub, so any change to one is refused.
    Hub(String),
    /// Copied by a village office hub from what central holds, which central already judged:
    /// they may be anyone's, and restricted reports never come.
    Central,
}

impl Writer {
    /// An edit made at the office by `user_id` in `scope`: refused, never held, when outside it.
    pub fn office(user_id: &str, scope: &Scope, now: i64) -> Writer {
        Writer {
            user_id: user_id.to_owned(),
            device_id: None,
            scope: scope.clone(),
            now,
            hold_out_of_scope: false,
            via: Via::Direct,
        }
    }
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
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
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
