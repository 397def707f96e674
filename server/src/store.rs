//! Durable storage: the [`Store`] trait, and opening SQLite or Postgres from the database URL.
//! One SQL implementation (`sql.rs`, `statements.rs`) serves both; `db.rs` is the seam where
//! they differ, `sqlite.rs` and `postgres.rs` connect. The rules of ingest and pull live above,
//! in `crate::sync`, and call down into the store's transactions.

mod blobs;
pub mod bulletins;
pub(crate) mod db;
mod error;
pub mod facts;
mod filters;
pub mod held;
mod postgres;
mod rows;
mod schemas;
pub(crate) mod sessions;
mod sql;
pub mod sqlite;
pub mod statements;
mod types;

use std::sync::Arc;

use async_trait::async_trait;
use gridsync_core::DocId;
use gridsync_core::report::ReportDoc;

pub(crate) use blobs::{PieceHasher, cut_range, pieces};
pub use bulletins::{NewBulletin, StoredBulletin};
pub use db::Tx;
pub use error::{Outage, Result, StoreError};
use facts::{
    CanvassCounts, DisputeCounts, DrugCounts, DrugDue, KindCounts, LedgerQuery, Period,
    ResolutionDays,
};
pub use held::{HeldDecision, HeldItem, HeldQuery, HeldState};
pub(crate) use rows::heads_to_bytes;
pub use schemas::{NewDraft, Publication, SchemaState, StoredSchema};
pub use sql::SqlStore;
pub use types::*;

use crate::scope::Scope;

/// Everything the server keeps, grouped as a reader looks for it: the database itself, the
/// org tree, users, devices, sessions and signing keys, reports (the transactions of ingest
/// and pull, then reads and reviews), conflicts, held work, attachments, statistics, audit.
#[async_trait]
pub trait Store: Send + Sync {
    // The database itself.
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;
    /// Checks, without changing anything, that every migration of this binary and no other has
    /// been applied: `NotMigrated` or `Newer` otherwise.
    async fn check_migrations(&self) -> Result<()>;
    /// Writes a consistent copy of the whole database, as it is while in use, to the new file
    /// `to`. `Unsupported` on Postgres, which has its own tools for this.
    async fn backup(&self, to: &std::path::Path) -> Result<()>;
    /// Closes the database's connections and waits until each has closed. A SQLite database,
    /// sealed or not, must be closed before the process ends: the SQLite library is SQLCipher,
    /// which frees its state when the process exits, and a connection still closing on its
    /// own thread then crashes the process.
    async fn close(&self);
    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;
    /// Conflicts and rule flags not yet resolved, across every report: for monitoring.
    async fn count_open_conflicts(&self) -> Result<i64>;
    /// How busy each connection pool is: for monitoring.
    fn pool_use(&self) -> Vec<PoolUse>;

    // The org tree.
    async fn upsert_org_unit(&self, unit: &OrgUnit) -> Result<()>;
    /// Adds a unit; `Duplicate` when its id or path is taken.
    async fn insert_org_unit(&self, unit: &OrgUnit) -> Result<()>;
    /// Renames a unit; false when there is no such unit.
    async fn rename_org_unit(&self, id: &str, name: &str) -> Result<bool>;
    async fn org_unit(&self, id: &str) -> Result<Option<OrgUnit>>;
    async fn org_units(&self) -> Result<Vec<OrgUnit>>;

    // People.
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
    /// (the devices stay), and dates the change at the later of `now` and the clock once the
    /// devices are held. All in one transaction, in which a concurrent refresh of the user's
    /// sessions cannot slip a new token past the end. `None` when there is no such user.
    async fn update_user(
        &self,
        id: &str,
        patch: &UserPatch,
        now: i64,
    ) -> Result<Option<UserUpdated>>;

    // Devices.
    /// Registers `device`, or updates it when its user already has it unrevoked: a revoked
    /// device is left as it is, and another user's device is not given to this one.
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
    /// Devices revoked after `since`, the disabled accounts and the revoked hubs.
    async fn revocations(&self, since: i64) -> Result<Revocations>;
    /// Sets the public key of a device that has none; `false` when it already has one (or
    /// there is no such device), which this never replaces.
    async fn set_device_key(&self, id: &str, public_key: &str) -> Result<bool>;

    // Village office hubs.
    /// Registers `hub`, whose enrolment code hashes (SHA-256) to `code_hash`.
    async fn insert_hub(&self, hub: &Hub, code_hash: &[u8]) -> Result<()>;
    /// Every registered hub, oldest first.
    async fn hubs(&self) -> Result<Vec<Hub>>;
    async fn hub(&self, id: &str) -> Result<Option<Hub>>;
    /// Enrols the hub whose unexpired code hashes to `code_hash`, unless it is revoked: its key
    /// is `identity_key` from `now`, and the code is spent. `None` when no hub takes the code.
    async fn enrol_hub(
        &self,
        code_hash: &[u8],
        identity_key: &str,
        now: i64,
    ) -> Result<Option<Hub>>;
    /// Revokes hub `id`; `false` when there is no such hub or it was revoked already.
    async fn revoke_hub(&self, id: &str, at: i64) -> Result<bool>;
    /// Queues, in a hub's own database, a push device `device_id` handed the hub (its encoded
    /// `AttestedPush` frame) for relaying; returns its place in the queue.
    async fn queue_push(&self, device_id: &str, frame: &[u8], at: i64) -> Result<i64>;
    /// The oldest `limit` queued pushes not yet relayed, oldest first.
    async fn waiting_pushes(&self, limit: i64) -> Result<Vec<QueuedPush>>;
    /// Marks queued push `id` relayed at `at`, with central's receipt when it gave one.
    async fn mark_relayed(&self, id: i64, at: i64, receipt: Option<&str>) -> Result<()>;
    /// Central's receipts for `device_id`'s relayed pushes queued after `after`, oldest first,
    /// at most `limit`: what the hub hands back to the phone.
    async fn receipts_for(
        &self,
        device_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<HubReceipt>>;
    /// Queues, in a hub's own database, the attachment `hash` of report `doc_id`, which a phone
    /// uploaded whole, for relaying; once, however often it is uploaded.
    async fn queue_attachment(&self, doc_id: &DocId, hash: &str, at: i64) -> Result<()>;
    /// Queued attachments not yet relayed, placed after `after`, oldest first, at most `limit`.
    /// One whose report no longer links it (detached and collected) is left out.
    async fn waiting_attachments(&self, after: i64, limit: i64) -> Result<Vec<QueuedAttachment>>;
    /// Marks queued attachment `id` relayed at `at`, with central's receipt when it gave one.
    async fn mark_attachment_relayed(&self, id: i64, at: i64, receipt: Option<&str>) -> Result<()>;
    /// Central's receipt for the attachment `hash` of report `doc_id`, once the hub relayed it.
    async fn attachment_receipt(&self, doc_id: &DocId, hash: &str) -> Result<Option<String>>;

    // Sessions (refresh-token families).
    /// Stores `token`, the first of a session of user `user_id` on the token's device, unless
    /// the user is disabled or no longer has `password_hash`, the hash the login checked, or
    /// the device was revoked or is another user's: a login racing a password change or a
    /// revocation must not keep a session the change or revocation ended. One transaction,
    /// holding the user's row and then the device's: `update_user` locks the user and then the
    /// devices, and revocations and refreshes lock only the device.
    async fn start_session(
        &self,
        token: &RefreshToken,
        user_id: &str,
        password_hash: &str,
    ) -> Result<SessionStart>;
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

    // Keys that sign access tokens.
    async fn insert_signing_key(&self, key: &SigningKey) -> Result<()>;
    /// Every stored signing key, newest first.
    async fn signing_keys(&self) -> Result<Vec<SigningKey>>;

    // The transactions `crate::sync` runs ingest and pull in.
    /// A transaction for the statements of an ingest (`statements.rs`); `crate::sync::Ingest`
    /// runs them. Pulls wait for it to end before they pass the sequence numbers it takes.
    async fn begin_ingest(&self) -> Result<Tx>;
    /// A transaction that reads one state of the database, for judging a push.
    async fn begin_read(&self) -> Result<Tx>;
    /// A transaction that reads one state of the database, for the reads of a pull, and the
    /// last sequence number all of whose changes it sees.
    async fn begin_pull(&self) -> Result<(Tx, i64)>;
    /// Notes the sequence a device's pull started from: what it holds bounds pruning.
    async fn set_device_cursor(&self, id: &str, cursor: i64) -> Result<()>;

    // Reports, their reviews and their conflicts.
    async fn document(&self, id: &DocId) -> Result<Option<DocumentRow>>;
    /// Loads a report as an automerge document (snapshot plus later changes).
    async fn load_doc(&self, id: &DocId) -> Result<Option<ReportDoc>>;
    async fn changes_of(&self, id: &DocId) -> Result<Vec<ChangeRow>>;
    async fn conflicts_of(&self, id: &DocId) -> Result<Vec<ConflictRow>>;

    /// A page of the reports in `scope` matching `query`, newest first by (updated_at, id),
    /// with the total of the whole filtered list, which for a text search stops at
    /// [`SEARCH_COUNT_CAP`] (`total_capped`). The filter runs in SQL.
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

    // Held work.
    /// A page of the held work placed in `scope`, newest first.
    async fn held_work(&self, scope: &Scope, query: &HeldQuery) -> Result<Vec<HeldItem>>;
    async fn held_item(&self, id: i64) -> Result<Option<HeldItem>>;
    /// The changes an item holds, in the order they arrived.
    async fn held_changes(&self, id: i64) -> Result<Vec<Vec<u8>>>;
    /// Records a decision on an open item; false when it is not open (decided already, or none).
    async fn decide_held(&self, id: i64, decision: &HeldDecision) -> Result<bool>;

    // Report kinds (the schema registry).
    /// Every version of every kind, by kind and version.
    async fn schemas(&self) -> Result<Vec<StoredSchema>>;
    async fn stored_schema(&self, kind: &str, version: u32) -> Result<Option<StoredSchema>>;
    /// Drawn anew at every publication and retirement: another number means another catalogue.
    async fn catalogue_revision(&self) -> Result<i64>;
    /// Keeps `draft`, replacing a draft of the same version, and records `audit`, in one
    /// transaction. `Duplicate` when that version is published or retired: those never change.
    async fn save_draft(&self, draft: &NewDraft<'_>, audit: &AuditEntry) -> Result<()>;
    /// Publishes a draft with the questions that feed its indexes, draws a new catalogue revision
    /// and records `audit`, in one transaction. False when the version is not a draft;
    /// `Changed` when the catalogue moved past `seen_revision`.
    async fn publish_schema(
        &self,
        publication: &Publication<'_>,
        audit: &AuditEntry,
    ) -> Result<bool>;
    /// Retires a published version, draws a new revision and records `audit`; false when the
    /// version is not published.
    async fn retire_schema(&self, kind: &str, version: u32, audit: &AuditEntry) -> Result<bool>;
    /// Deletes a draft and records `audit`; false when the version is not a draft.
    async fn discard_draft(&self, kind: &str, version: u32, audit: &AuditEntry) -> Result<bool>;

    // The change log.
    /// Deletes change-log rows that every live device has pulled past and that a snapshot
    /// already contains; returns how many. Clients behind the new horizon get snapshots.
    async fn prune(&self) -> Result<u64>;

    // Attachments.
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

    // Statistics and ledgers.
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
    /// Reports of any `kind` in `period` per org path and status, in `scope`.
    async fn kind_counts(
        &self,
        scope: &Scope,
        kind: &str,
        period: &Period,
    ) -> Result<Vec<KindCounts>>;
    /// Drug-control case counts per org path under `due.org_path`, in `scope`.
    async fn drug_counts(&self, scope: &Scope, due: &DrugDue) -> Result<Vec<DrugCounts>>;
    /// A page of a ledger: the reports of `query`, in `scope`, by id.
    async fn ledger_page(&self, scope: &Scope, query: &LedgerQuery) -> Result<Vec<DocumentRow>>;

    // Bulletins.
    /// The latest revision of the bulletin of `org_id` for `period`; `None` when unpublished.
    async fn bulletin(&self, org_id: &str, period: &str) -> Result<Option<StoredBulletin>>;
    /// Every revision of every bulletin of a unit under `prefix` (an org path), newest first,
    /// at most `limit`.
    async fn bulletins(&self, prefix: &str, limit: i64) -> Result<Vec<StoredBulletin>>;
    /// Keeps `bulletin` as the next revision and records `audit`, in one transaction; the
    /// revision it became. A first publication of a bulletin already published is `Duplicate`,
    /// a re-issue of one never published `NotFound`.
    async fn publish_bulletin(&self, bulletin: &NewBulletin<'_>, audit: &AuditEntry)
    -> Result<u32>;
    /// The rank rules an admin set, as JSON; `None` while the defaults hold.
    async fn bulletin_rules(&self) -> Result<Option<String>>;
    /// Replaces the rank rules and records `audit`, in one transaction.
    async fn set_bulletin_rules(&self, rules: &str, audit: &AuditEntry) -> Result<()>;

    // The audit log.
    async fn audit(&self, entry: &AuditEntry) -> Result<()>;
    async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>>;
    /// Entries after id `after`, oldest first, at most `limit`: what a hub uploads next.
    async fn audit_after(&self, after: i64, limit: i64) -> Result<Vec<AuditRecord>>;
    /// Keeps the entries of hub `hub_id`'s own log (numbered by the hub) that are past how far
    /// its log has come, each once, and moves that mark; returns it.
    async fn record_hub_audit(&self, hub_id: &str, entries: &[AuditRecord]) -> Result<i64>;
    /// Audit entries matching every filter of `query`, newest first, with their total.
    async fn audit_page(&self, query: &AuditQuery) -> Result<Page<AuditRecord>>;
}

/// Opens the database named by `url` (`sqlite://…` or `postgres://…`) and migrates it.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    let store = connect(url).await?;
    store.migrate().await?;
    Ok(store)
}

/// Opens the SQLite file at `path` sealed under `key` (a village office hub's database), sealing
/// a plain one in place first, and applies pending migrations.
pub async fn open_sealed(path: &std::path::Path, key: &[u8; 32]) -> Result<Arc<dyn Store>> {
    if sqlite::seal_in_place(path, key).await? {
        tracing::info!(path = %path.display(), "sealed a database that was kept in clear");
    }
    let store = Arc::new(SqlStore::new(sqlite::connect_sealed(path, key).await?));
    if let Err(e) = store.migrate().await {
        store.close().await;
        return Err(e);
    }
    Ok(store)
}

/// Opens the database named by `url` as it is, without migrating it.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    Ok(if url.starts_with("sqlite:") {
        Arc::new(SqlStore::new(sqlite::connect(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Arc::new(SqlStore::new(postgres::connect(url).await?))
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
#[cfg(test)]
mod tests {
    use super::redacted_url;

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
