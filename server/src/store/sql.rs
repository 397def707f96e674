//! The one SQL implementation of [`Store`], for SQLite and Postgres alike: every statement is
//! written once with `$N` placeholders, and what the dialects spell apart comes from
//! [`Dialect`]. The statements of ingest and pull are in `statements.rs`.

use async_trait::async_trait;
use gridsync_core::DocId;
use gridsync_core::report::ReportDoc;

use super::blobs::Piece;
use super::bulletins::{self, BulletinRow, NewBulletin, StoredBulletin};
use super::db::{Db, Dialect, On, Tx, sql, sql_with};
use super::facts::{
    self, CanvassCounts, DisputeCounts, DrugCounts, DrugDue, KindCounts, LedgerQuery, Period,
    ResolutionDays,
};
use super::filters::{
    Conditions, conflict_list_where, path_under, report_list_where, scope_filter, users_under,
};
use super::held::{self, HeldDecision, HeldItem, HeldQuery, HeldState};
use super::rows::{
    ATTACHMENT_COLUMNS, AUDIT_COLUMNS, AttachmentRecord, AuditRow, CHANGE_LOG_COLUMNS,
    CONFLICT_COLUMNS, CONFLICT_ITEM_COLUMNS, ChangeLogRecord, ConflictItemRecord, ConflictRecord,
    DEVICE_COLUMNS, DOC_COLUMNS, DocRecord, HUB_COLUMNS, ORG_COLUMNS, OrgRecord,
    QUEUED_ATTACHMENT_COLUMNS, QUEUED_PUSH_COLUMNS, QueuedAttachmentRecord, REFRESH_COLUMNS,
    SessionDevice, SessionUser, USER_COLUMNS, UserRecord, convert, page,
};
use super::schemas::{self, NewDraft, Publication, SchemaRow, StoredSchema};
use super::{
    AssignedReport, Attachment, AuditEntry, AuditQuery, AuditRecord, BlobUsage, ChangeRow,
    ConflictItem, ConflictQuery, ConflictRow, Device, DocumentRow, Hub, HubReceipt,
    NextRefreshToken, OrgUnit, OrphansCollected, Page, PieceHasher, PoolUse, QueuedAttachment,
    QueuedPush, RefreshToken, ReportQuery, Result, Revocations, Rotation, SEARCH_COUNT_CAP,
    SessionStart, SigningKey, Store, StoreError, UploadChunk, UploadOutcome, UploadState, User,
    UserPatch, UserQuery, UserUpdated, cut_range, pieces, postgres, sessions, sqlite,
};
use crate::auth::refresh::{self, Verdict};
use crate::scope::Scope;

/// A database, SQLite or Postgres, behind the [`Store`] trait.
pub struct SqlStore {
    db: Db,
}

impl SqlStore {
    pub(crate) fn new(db: Db) -> Self {
        SqlStore { db }
    }

    /// Writes the built-in kinds into the registry as published, once: they are its first
    /// entries, and a database upgraded from before the registry gets them too.
    async fn seed_builtin_schemas(&self) -> Result<()> {
        let mut tx = self.db.begin_write().await?;
        let mut added = 0;
        for schema in gridsync_core::schema::Registry::builtin().all() {
            let definition = serde_json::to_string(schema)
                .map_err(|e| StoreError::Corrupt(format!("built-in schema: {e}")))?;
            added += sql(schemas::SEED)
                .bind(&schema.kind)
                .bind(i64::from(schema.version))
                .bind(definition)
                .bind(crate::clock::now())
                .execute(&mut tx)
                .await?;
            insert_index_fields(&mut tx, schema).await?;
        }
        if added > 0 {
            sql(schemas::BUMP)
                .bind(schemas::new_revision())
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await
    }

    /// Marks device `$1` revoked at `$2` with `update` and deletes its refresh tokens, in one
    /// transaction; how many devices `update` changed.
    async fn end_device(&self, update: &'static str, id: &str, at: i64) -> Result<u64> {
        let mut tx = self.db.begin_write().await?;
        let changed = sql(update).bind(id).bind(at).execute(&mut tx).await?;
        sql("DELETE FROM refresh_tokens WHERE device_id = $1")
            .bind(id)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(changed)
    }

    pub(super) fn db(&self) -> &Db {
        &self.db
    }

    fn dialect(&self) -> Dialect {
        self.db.dialect()
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn migrate(&self) -> Result<()> {
        self.db.migrate().await?;
        self.seed_builtin_schemas().await
    }

    async fn check_migrations(&self) -> Result<()> {
        let d = self.dialect();
        let tracked: bool = sql(d.migrations_tracked())
            .fetch_value(self.db.read())
            .await?;
        let applied: Vec<(i64,)> = if tracked {
            sql("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(self.db.read())
                .await?
        } else {
            Vec::new()
        };
        let applied: Vec<i64> = applied.into_iter().map(|(v,)| v).collect();
        super::migration_gap(d.migrator(), &applied)
    }

    async fn backup(&self, to: &std::path::Path) -> Result<()> {
        match self.dialect() {
            Dialect::Sqlite => sqlite::backup(&self.db, to).await,
            Dialect::Postgres => Err(postgres::backup_advice()),
        }
    }

    async fn close(&self) {
        self.db.close().await;
    }

    async fn ping(&self) -> Result<()> {
        sql("SELECT 1").execute(self.db.read()).await?;
        Ok(())
    }

    async fn count_open_conflicts(&self) -> Result<i64> {
        let n: i64 = sql("SELECT COUNT(*) FROM conflicts WHERE resolved_at IS NULL")
            .fetch_value(self.db.read())
            .await?;
        Ok(n)
    }

    fn pool_use(&self) -> Vec<PoolUse> {
        self.db.pool_use()
    }

    async fn upsert_org_unit(&self, unit: &OrgUnit) -> Result<()> {
        sql(
            "INSERT INTO org_units (id, parent_id, level, name, path) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET parent_id = $2, level = $3, name = $4, path = $5",
        )
        .bind(&unit.id)
        .bind(&unit.parent_id)
        .bind(unit.level.as_str())
        .bind(&unit.name)
        .bind(&unit.path)
        .execute(self.db.write())
        .await?;
        Ok(())
    }

    async fn insert_org_unit(&self, unit: &OrgUnit) -> Result<()> {
        let result = sql(
            "INSERT INTO org_units (id, parent_id, level, name, path) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&unit.id)
        .bind(&unit.parent_id)
        .bind(unit.level.as_str())
        .bind(&unit.name)
        .bind(&unit.path)
        .execute(self.db.write())
        .await;
        org_insert_result(result, unit)
    }

    async fn rename_org_unit(&self, id: &str, name: &str) -> Result<bool> {
        let done = sql("UPDATE org_units SET name = $2 WHERE id = $1")
            .bind(id)
            .bind(name)
            .execute(self.db.write())
            .await?;
        Ok(done > 0)
    }

    async fn org_unit(&self, id: &str) -> Result<Option<OrgUnit>> {
        let row: Option<OrgRecord> =
            sql(format!("SELECT {ORG_COLUMNS} FROM org_units WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.db.read())
                .await?;
        row.map(OrgUnit::try_from).transpose()
    }

    async fn org_units(&self) -> Result<Vec<OrgUnit>> {
        let rows: Vec<OrgRecord> =
            sql(format!("SELECT {ORG_COLUMNS} FROM org_units ORDER BY path"))
                .fetch_all(self.db.read())
                .await?;
        convert(rows)
    }

    async fn insert_user(&self, user: &User) -> Result<()> {
        let result = sql(
            "INSERT INTO users (id, username, display_name, password_hash, role, org_unit_id, \
             disabled, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(&user.display_name)
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(&user.org_unit_id)
        .bind(user.disabled)
        .bind(user.created_at)
        .execute(self.db.write())
        .await;
        match result {
            Err(StoreError::Database(sqlx::Error::Database(e))) if e.is_unique_violation() => {
                Err(StoreError::Duplicate(format!("user {}", user.username)))
            }
            other => other.map(|_| ()),
        }
    }

    async fn user(&self, id: &str) -> Result<Option<User>> {
        let row: Option<UserRecord> =
            sql(format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.db.read())
                .await?;
        row.map(User::try_from).transpose()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        let row: Option<UserRecord> = sql(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(self.db.read())
        .await?;
        row.map(User::try_from).transpose()
    }

    async fn users(&self) -> Result<Vec<User>> {
        let rows: Vec<UserRecord> = sql(format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY username"
        ))
        .fetch_all(self.db.read())
        .await?;
        convert(rows)
    }

    async fn count_users(&self) -> Result<i64> {
        let n: i64 = sql("SELECT COUNT(*) FROM users")
            .fetch_value(self.db.read())
            .await?;
        Ok(n)
    }

    async fn users_page(&self, q: &UserQuery) -> Result<Page<User>> {
        let d = self.dialect();
        let under = users_under(d);
        let username = d.bytewise("username");
        let mut tx = self.db.begin_read().await?;
        let rows: Vec<UserRecord> = sql(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {under} AND {username} > $2 \
             ORDER BY {username} LIMIT $3"
        ))
        .bind(&q.org_prefix)
        .bind(q.after.as_deref().unwrap_or(""))
        .bind(q.limit + 1)
        .fetch_all(&mut tx)
        .await?;
        let total = sql(format!("SELECT COUNT(*) FROM users WHERE {under}"))
            .bind(&q.org_prefix)
            .fetch_value(&mut tx)
            .await?;
        tx.commit().await?;
        page(rows, q.limit, total)
    }

    async fn update_user(
        &self,
        id: &str,
        patch: &UserPatch,
        now: i64,
    ) -> Result<Option<UserUpdated>> {
        let mut tx = self.db.begin_write().await?;
        let row: Option<UserRecord> = sql(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1{}",
            tx.dialect().for_update("")
        ))
        .bind(id)
        .fetch_optional(&mut tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (user, retire) = patch.apply(&User::try_from(row)?);
        let result = sql(
            "UPDATE users SET display_name = $2, password_hash = $3, role = $4, \
             org_unit_id = $5, disabled = $6 WHERE id = $1",
        )
        .bind(id)
        .bind(&user.display_name)
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(&user.org_unit_id)
        .bind(user.disabled)
        .execute(&mut tx)
        .await;
        match result {
            Err(StoreError::Database(sqlx::Error::Database(e))) if e.is_foreign_key_violation() => {
                return Err(StoreError::NotFound(format!(
                    "org unit {}",
                    user.org_unit_id
                )));
            }
            other => other?,
        };
        let mut retiring_devices = Vec::new();
        if retire {
            let ids: Vec<(String,)> = sql(
                "UPDATE devices SET retiring_at = $2 WHERE user_id = $1 AND revoked_at IS NULL \
                 AND retiring_at IS NULL RETURNING id",
            )
            .bind(id)
            .bind(now)
            .fetch_all(&mut tx)
            .await?;
            retiring_devices = ids.into_iter().map(|(d,)| d).collect();
            retiring_devices.sort();
        }
        let mut ended_sessions = 0;
        if patch.password_hash.is_some() {
            // Refreshes lock their device's row (see `rotate_refresh_token`): holding every
            // device of the user keeps a concurrent refresh from adding a token once these
            // are gone.
            sql(format!(
                "SELECT id FROM devices WHERE user_id = $1 ORDER BY id{}",
                tx.dialect().for_update("")
            ))
            .bind(id)
            .execute(&mut tx)
            .await?;
            // Read once the devices are held, not at `now`: a refresh that rotated before
            // the lock dated its offline grant before this, so hubs refuse the grant of the
            // session ended here.
            sql("UPDATE users SET password_changed_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now.max(crate::clock::now()))
                .execute(&mut tx)
                .await?;
            let dropped: Vec<sessions::Dropped> = sql(sessions::END_OF_USER)
                .bind(id)
                .bind(&patch.keep_session)
                .fetch_all(&mut tx)
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

    async fn upsert_device(&self, d: &Device) -> Result<()> {
        // What the caller read may be stale: a device revoked since stays as it was, and
        // another user's device stays theirs (`start_session` then refuses the login).
        sql("INSERT INTO devices \
             (id, user_id, name, created_at, last_seen_at, revoked_at, cursor, public_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET \
             name = $3, last_seen_at = $5, revoked_at = $6, cursor = $7, public_key = $8 \
             WHERE devices.user_id = $2 AND devices.revoked_at IS NULL")
        .bind(&d.id)
        .bind(&d.user_id)
        .bind(&d.name)
        .bind(d.created_at)
        .bind(d.last_seen_at)
        .bind(d.revoked_at)
        .bind(d.cursor)
        .bind(&d.public_key)
        .execute(self.db.write())
        .await?;
        Ok(())
    }

    async fn device(&self, id: &str) -> Result<Option<Device>> {
        let row: Option<Device> = sql(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.db.read())
        .await?;
        Ok(row)
    }

    async fn devices(&self) -> Result<Vec<Device>> {
        sql(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices ORDER BY created_at, id"
        ))
        .fetch_all(self.db.read())
        .await
    }

    async fn assigned_reports(&self, user_id: &str) -> Result<Vec<AssignedReport>> {
        sql("SELECT id, org_path FROM documents WHERE restricted AND assigned_to = $1 ORDER BY id")
            .bind(user_id)
            .fetch_all(self.db.read())
            .await
    }

    async fn devices_of_user(&self, user_id: &str) -> Result<Vec<Device>> {
        sql(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE user_id = $1 ORDER BY created_at, id"
        ))
        .bind(user_id)
        .fetch_all(self.db.read())
        .await
    }

    async fn revoke_device(&self, id: &str, at: i64) -> Result<bool> {
        let revoked = self
            .end_device(
                "UPDATE devices SET revoked_at = $2, retiring_at = NULL WHERE id = $1 \
                 AND revoked_at IS NULL",
                id,
                at,
            )
            .await?;
        Ok(revoked > 0)
    }

    async fn finish_retirement(&self, id: &str, at: i64) -> Result<()> {
        self.end_device(
            "UPDATE devices SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            id,
            at,
        )
        .await?;
        Ok(())
    }

    async fn retire_device(&self, id: &str, at: i64) -> Result<bool> {
        let done = sql(
            "UPDATE devices SET retiring_at = COALESCE(retiring_at, $2) \
             WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(at)
        .execute(self.db.write())
        .await?;
        Ok(done > 0)
    }

    async fn note_device_pending(&self, id: &str, pending: i64, at: i64) -> Result<()> {
        sql(
            "UPDATE devices SET pending_changes = $2, pending_at = $3, last_seen_at = $3 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(pending)
        .bind(at)
        .execute(self.db.write())
        .await?;
        Ok(())
    }

    async fn set_device_scope(&self, id: &str, scope_key: &str) -> Result<()> {
        sql("UPDATE devices SET scope_key = $2 WHERE id = $1")
            .bind(id)
            .bind(scope_key)
            .execute(self.db.write())
            .await?;
        Ok(())
    }

    async fn revocations(&self, since: i64) -> Result<Revocations> {
        let devices =
            sql("SELECT id, revoked_at FROM devices WHERE revoked_at > $1 ORDER BY revoked_at, id")
                .bind(since)
                .fetch_all(self.db.read())
                .await?;
        let disabled: Vec<(String,)> =
            sql("SELECT id FROM users WHERE disabled = TRUE ORDER BY id")
                .fetch_all(self.db.read())
                .await?;
        let hubs: Vec<(String,)> =
            sql("SELECT id FROM hubs WHERE revoked_at IS NOT NULL ORDER BY id")
                .fetch_all(self.db.read())
                .await?;
        let changed_passwords = sql(
            "SELECT id AS user_id, password_changed_at AS changed_at FROM users \
             WHERE password_changed_at > $1 ORDER BY id",
        )
        .bind(since)
        .fetch_all(self.db.read())
        .await?;
        Ok(Revocations {
            devices,
            disabled_users: disabled.into_iter().map(|(id,)| id).collect(),
            revoked_hubs: hubs.into_iter().map(|(id,)| id).collect(),
            changed_passwords,
        })
    }

    async fn set_device_key(&self, id: &str, public_key: &str) -> Result<bool> {
        let done = sql("UPDATE devices SET public_key = $2 WHERE id = $1 AND public_key IS NULL")
            .bind(id)
            .bind(public_key)
            .execute(self.db.write())
            .await?;
        Ok(done == 1)
    }

    async fn insert_hub(&self, hub: &Hub, code_hash: &[u8]) -> Result<()> {
        sql(
            "INSERT INTO hubs (id, unit_id, name, code_hash, code_expires_at, created_by, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&hub.id)
        .bind(&hub.unit_id)
        .bind(&hub.name)
        .bind(code_hash)
        .bind(hub.code_expires_at)
        .bind(&hub.created_by)
        .bind(hub.created_at)
        .execute(self.db.write())
        .await?;
        Ok(())
    }

    async fn hubs(&self) -> Result<Vec<Hub>> {
        sql(format!(
            "SELECT {HUB_COLUMNS} FROM hubs ORDER BY created_at, id"
        ))
        .fetch_all(self.db.read())
        .await
    }

    async fn hub(&self, id: &str) -> Result<Option<Hub>> {
        sql(format!("SELECT {HUB_COLUMNS} FROM hubs WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.db.read())
            .await
    }

    async fn enrol_hub(
        &self,
        code_hash: &[u8],
        identity_key: &str,
        now: i64,
    ) -> Result<Option<Hub>> {
        sql(format!(
            "UPDATE hubs SET identity_key = $2, enrolled_at = $3, code_hash = NULL, \
             code_expires_at = NULL \
             WHERE code_hash = $1 AND code_expires_at > $3 AND revoked_at IS NULL \
             RETURNING {HUB_COLUMNS}"
        ))
        .bind(code_hash)
        .bind(identity_key)
        .bind(now)
        .fetch_optional(self.db.write())
        .await
    }

    async fn revoke_hub(&self, id: &str, at: i64) -> Result<bool> {
        let done = sql(
            "UPDATE hubs SET revoked_at = $2, code_hash = NULL, code_expires_at = NULL \
             WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(at)
        .execute(self.db.write())
        .await?;
        Ok(done == 1)
    }

    async fn queue_push(&self, device_id: &str, frame: &[u8], at: i64) -> Result<i64> {
        sql(
            "INSERT INTO hub_outbox (device_id, frame, received_at) VALUES ($1, $2, $3) \
             RETURNING id",
        )
        .bind(device_id)
        .bind(frame)
        .bind(at)
        .fetch_value(self.db.write())
        .await
    }

    async fn waiting_pushes(&self, limit: i64) -> Result<Vec<QueuedPush>> {
        sql(format!(
            "SELECT {QUEUED_PUSH_COLUMNS} FROM hub_outbox WHERE relayed_at IS NULL \
             ORDER BY id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(self.db.read())
        .await
    }

    async fn mark_relayed(&self, id: i64, at: i64, receipt: Option<&str>) -> Result<()> {
        sql("UPDATE hub_outbox SET relayed_at = $2, receipt = $3 WHERE id = $1")
            .bind(id)
            .bind(at)
            .bind(receipt)
            .execute(self.db.write())
            .await?;
        Ok(())
    }

    async fn receipts_for(
        &self,
        device_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<HubReceipt>> {
        sql("SELECT id, receipt FROM hub_outbox \
             WHERE device_id = $1 AND id > $2 AND receipt IS NOT NULL ORDER BY id LIMIT $3")
        .bind(device_id)
        .bind(after)
        .bind(limit)
        .fetch_all(self.db.read())
        .await
    }

    async fn queue_attachment(&self, doc_id: &DocId, hash: &str, at: i64) -> Result<()> {
        sql(
            "INSERT INTO hub_attachment_outbox (doc_id, hash, queued_at) VALUES ($1, $2, $3) \
             ON CONFLICT (doc_id, hash) DO NOTHING",
        )
        .bind(doc_id.to_string())
        .bind(hash)
        .bind(at)
        .execute(self.db.write())
        .await?;
        Ok(())
    }

    async fn waiting_attachments(&self, after: i64, limit: i64) -> Result<Vec<QueuedAttachment>> {
        let rows: Vec<QueuedAttachmentRecord> = sql(format!(
            "SELECT {QUEUED_ATTACHMENT_COLUMNS} FROM hub_attachment_outbox o \
             JOIN attachments a ON a.doc_id = o.doc_id AND a.hash = o.hash \
             WHERE o.relayed_at IS NULL AND o.id > $1 ORDER BY o.id LIMIT $2"
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(self.db.read())
        .await?;
        convert(rows)
    }

    async fn mark_attachment_relayed(&self, id: i64, at: i64, receipt: Option<&str>) -> Result<()> {
        sql("UPDATE hub_attachment_outbox SET relayed_at = $2, receipt = $3 WHERE id = $1")
            .bind(id)
            .bind(at)
            .bind(receipt)
            .execute(self.db.write())
            .await?;
        Ok(())
    }

    async fn attachment_receipt(&self, doc_id: &DocId, hash: &str) -> Result<Option<String>> {
        let receipt: Option<(Option<String>,)> =
            sql("SELECT receipt FROM hub_attachment_outbox WHERE doc_id = $1 AND hash = $2")
                .bind(doc_id.to_string())
                .bind(hash)
                .fetch_optional(self.db.read())
                .await?;
        Ok(receipt.and_then(|(r,)| r))
    }

    async fn start_session(
        &self,
        t: &RefreshToken,
        user_id: &str,
        password_hash: &str,
    ) -> Result<SessionStart> {
        let mut tx = self.db.begin_write().await?;
        let user: Option<SessionUser> = sql(format!(
            "SELECT password_hash, disabled FROM users WHERE id = $1{}",
            tx.dialect().for_share("users")
        ))
        .bind(user_id)
        .fetch_optional(&mut tx)
        .await?;
        let device: Option<SessionDevice> = sql(format!(
            "SELECT user_id, revoked_at FROM devices WHERE id = $1{}",
            tx.dialect().for_share("devices")
        ))
        .bind(&t.device_id)
        .fetch_optional(&mut tx)
        .await?;
        let (Some(user), Some(device)) = (user, device) else {
            return Err(StoreError::NotFound(format!(
                "user {user_id} or device {}",
                t.device_id
            )));
        };
        let start = if device.user_id != user_id {
            SessionStart::DeviceTaken
        } else if device.revoked_at.is_some() {
            SessionStart::DeviceRevoked
        } else if user.disabled {
            SessionStart::AccountDisabled
        } else if user.password_hash != password_hash {
            SessionStart::PasswordChanged
        } else {
            SessionStart::Started
        };
        if start != SessionStart::Started {
            return Ok(start);
        }
        sql("INSERT INTO refresh_tokens \
             (token_hash, device_id, family, expires_at, used_at, replaces) \
             VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&t.token_hash)
        .bind(&t.device_id)
        .bind(&t.family)
        .bind(t.expires_at)
        .bind(t.used_at)
        .bind(&t.replaces)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(start)
    }

    async fn rotate_refresh_token(
        &self,
        presented: &[u8],
        next: &NextRefreshToken,
        now: i64,
    ) -> Result<Rotation> {
        let mut tx = self.db.begin_write().await?;
        // Refreshes of one device take turns on its row (on SQLite, the single writer makes
        // every refresh take turns): locking the presented token alone would let a revocation
        // of the family miss the successor a concurrent refresh of a newer token inserts. Each
        // statement after the lock sees what the previous turn committed.
        let device: Option<(String,)> = sql(format!(
            "SELECT d.id FROM devices d JOIN refresh_tokens t ON t.device_id = d.id \
             WHERE t.token_hash = $1{}",
            tx.dialect().for_update("d")
        ))
        .bind(presented)
        .fetch_optional(&mut tx)
        .await?;
        if device.is_none() {
            return Ok(Rotation::Refused);
        }
        let spent: Option<RefreshToken> = sql(format!(
            "SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE token_hash = $1"
        ))
        .bind(presented)
        .fetch_optional(&mut tx)
        .await?;
        let Some(spent) = spent else {
            return Ok(Rotation::Refused);
        };
        let successors: Vec<RefreshToken> = sql(format!(
            "SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE replaces = $1"
        ))
        .bind(presented)
        .fetch_all(&mut tx)
        .await?;
        let spend = match refresh::judge(&spent, &successors, now) {
            Verdict::Expired => return Ok(Rotation::Refused),
            Verdict::Reused => {
                sql("DELETE FROM refresh_tokens WHERE family = $1")
                    .bind(&spent.family)
                    .execute(&mut tx)
                    .await?;
                tx.commit().await?;
                return Ok(Rotation::Reused { spent });
            }
            Verdict::Fresh => presented.to_vec(),
            Verdict::Grace { lost } => lost,
        };
        sql("UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1")
            .bind(&spend)
            .bind(now)
            .execute(&mut tx)
            .await?;
        sql("INSERT INTO refresh_tokens \
             (token_hash, device_id, family, expires_at, used_at, replaces) \
             VALUES ($1, $2, $3, $4, NULL, $5)")
        .bind(&next.token_hash)
        .bind(&spent.device_id)
        .bind(&spent.family)
        .bind(next.expires_at)
        .bind(presented)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        let grace = spend != presented;
        Ok(Rotation::Rotated { spent, grace })
    }

    async fn revoke_token_family(&self, family: &str) -> Result<()> {
        sql("DELETE FROM refresh_tokens WHERE family = $1")
            .bind(family)
            .execute(self.db.write())
            .await?;
        Ok(())
    }

    async fn session_live(&self, family: &str, device_id: &str) -> Result<bool> {
        sql(sessions::LIVE)
            .bind(family)
            .bind(device_id)
            .fetch_value(self.db.read())
            .await
    }

    async fn insert_signing_key(&self, key: &SigningKey) -> Result<()> {
        sql("INSERT INTO signing_keys (kid, secret, created_at) VALUES ($1, $2, $3)")
            .bind(&key.kid)
            .bind(&key.secret)
            .bind(key.created_at)
            .execute(self.db.write())
            .await?;
        Ok(())
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKey>> {
        sql("SELECT kid, secret, created_at FROM signing_keys ORDER BY created_at DESC, kid DESC")
            .fetch_all(self.db.read())
            .await
    }

    async fn begin_ingest(&self) -> Result<Tx> {
        self.db.begin_ingest().await
    }

    async fn begin_read(&self) -> Result<Tx> {
        self.db.begin_read().await
    }

    async fn begin_pull(&self) -> Result<(Tx, i64)> {
        self.db.begin_pull().await
    }

    async fn set_device_cursor(&self, id: &str, cursor: i64) -> Result<()> {
        sql("UPDATE devices SET cursor = $2 WHERE id = $1")
            .bind(id)
            .bind(cursor)
            .execute(self.db.write())
            .await?;
        Ok(())
    }

    async fn document(&self, id: &DocId) -> Result<Option<DocumentRow>> {
        let row: Option<DocRecord> =
            sql(format!("SELECT {DOC_COLUMNS} FROM documents WHERE id = $1"))
                .bind(id.to_string())
                .fetch_optional(self.db.read())
                .await?;
        row.map(DocumentRow::try_from).transpose()
    }

    async fn load_doc(&self, id: &DocId) -> Result<Option<ReportDoc>> {
        let mut tx = self.db.begin_read().await?;
        let stored = tx.stored_docs(&[*id], false).await?.remove(id);
        tx.commit().await?;
        stored.map(|mut s| s.take_doc(*id)).transpose()
    }

    async fn changes_of(&self, id: &DocId) -> Result<Vec<ChangeRow>> {
        let rows: Vec<ChangeLogRecord> = sql(format!(
            "SELECT {CHANGE_LOG_COLUMNS} FROM changes WHERE doc_id = $1 ORDER BY seq"
        ))
        .bind(id.to_string())
        .fetch_all(self.db.read())
        .await?;
        convert(rows)
    }

    async fn conflicts_of(&self, id: &DocId) -> Result<Vec<ConflictRow>> {
        let rows: Vec<ConflictRecord> = sql(format!(
            "SELECT {CONFLICT_COLUMNS} FROM conflicts WHERE doc_id = $1 ORDER BY id"
        ))
        .bind(id.to_string())
        .fetch_all(self.db.read())
        .await?;
        convert(rows)
    }

    async fn list_reports(&self, scope: &Scope, q: &ReportQuery) -> Result<Page<DocumentRow>> {
        let filter = report_list_where(self.dialect(), q.q.as_deref());
        let (after_at, after_id) = q.after.clone().unzip();
        let mut tx = self.db.begin_read().await?;
        let rows: Vec<DocRecord> = sql(format!(
            "SELECT {DOC_COLUMNS} FROM documents d WHERE {filter} \
             ORDER BY d.updated_at DESC, d.id DESC LIMIT $15"
        ))
        .bind_report_filters(scope, q)
        .bind(after_at)
        .bind(after_id)
        .bind(q.limit + 1)
        .fetch_all(&mut tx)
        .await?;
        // A first page that holds the whole list counts it; a text search that matches little
        // would otherwise read every report in scope a second time.
        let whole = q.after.is_none() && rows.len() as i64 <= q.limit;
        let total = if whole {
            rows.len() as i64
        } else {
            let count = if q.q.is_some() {
                format!(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM documents d WHERE {filter} LIMIT {}) x",
                    SEARCH_COUNT_CAP + 1
                )
            } else {
                format!("SELECT COUNT(*) FROM documents d WHERE {filter}")
            };
            sql(count)
                .bind_report_filters(scope, q)
                .bind(None::<i64>)
                .bind(None::<String>)
                .fetch_value(&mut tx)
                .await?
        };
        tx.commit().await?;
        let mut page = page(rows, q.limit, total)?;
        if q.q.is_some() && total > SEARCH_COUNT_CAP {
            page.total = SEARCH_COUNT_CAP;
            page.total_capped = true;
        }
        Ok(page)
    }

    async fn set_review_state(&self, id: &DocId, state: &str, audit: &AuditEntry) -> Result<bool> {
        let mut tx = self.db.begin_write().await?;
        let done = sql("UPDATE documents SET review_state = $2 WHERE id = $1")
            .bind(id.to_string())
            .bind(state)
            .execute(&mut tx)
            .await?;
        if done == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn conflict(&self, id: i64) -> Result<Option<ConflictItem>> {
        let row: Option<ConflictItemRecord> = sql(format!(
            "SELECT {CONFLICT_ITEM_COLUMNS} FROM conflicts c JOIN documents d ON d.id = c.doc_id \
             WHERE c.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.db.read())
        .await?;
        row.map(ConflictItem::try_from).transpose()
    }

    async fn list_conflicts(&self, scope: &Scope, q: &ConflictQuery) -> Result<Page<ConflictItem>> {
        let filter = conflict_list_where(self.dialect());
        let mut tx = self.db.begin_read().await?;
        let rows: Vec<ConflictItemRecord> = sql(format!(
            "SELECT {CONFLICT_ITEM_COLUMNS} FROM conflicts c JOIN documents d ON d.id = c.doc_id \
             WHERE {filter} ORDER BY c.id LIMIT $8"
        ))
        .bind_scope(scope)
        .bind(&q.kind)
        .bind(&q.org_path)
        .bind(q.after)
        .bind(q.limit + 1)
        .fetch_all(&mut tx)
        .await?;
        let total = sql(format!(
            "SELECT COUNT(*) FROM conflicts c JOIN documents d ON d.id = c.doc_id WHERE {filter}"
        ))
        .bind_scope(scope)
        .bind(&q.kind)
        .bind(&q.org_path)
        .bind(None::<i64>)
        .fetch_value(&mut tx)
        .await?;
        tx.commit().await?;
        page(rows, q.limit, total)
    }

    async fn dismiss_flag(&self, id: i64, audit: &AuditEntry) -> Result<bool> {
        let mut tx = self.db.begin_write().await?;
        // Lock the report's row as ingest does, so has_conflicts is computed from the rows as
        // the last of the two writers leaves them.
        let doc: Option<(String,)> = sql(format!(
            "SELECT d.id FROM documents d JOIN conflicts c ON c.doc_id = d.id WHERE c.id = $1{}",
            tx.dialect().for_update("d")
        ))
        .bind(id)
        .fetch_optional(&mut tx)
        .await?;
        let Some((doc,)) = doc else {
            return Ok(false);
        };
        let done = sql(
            "UPDATE conflicts SET resolved_at = $2, resolved_by = $3 WHERE id = $1 \
             AND resolved_at IS NULL AND code <> 'concurrent_values'",
        )
        .bind(id)
        .bind(audit.at)
        .bind(&audit.user_id)
        .execute(&mut tx)
        .await?;
        if done == 0 {
            return Ok(false);
        }
        sql(
            "UPDATE documents SET has_conflicts = EXISTS (SELECT 1 FROM conflicts \
             WHERE doc_id = $1 AND resolved_at IS NULL) WHERE id = $1",
        )
        .bind(&doc)
        .execute(&mut tx)
        .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn held_work(&self, scope: &Scope, q: &HeldQuery) -> Result<Vec<HeldItem>> {
        let rows: Vec<held::HeldRow> = sql(held::list(self.dialect()))
            .bind_scope(scope)
            .bind(q.state.map(HeldState::as_str))
            .bind(q.doc_id.map(|d| d.to_string()))
            .bind(q.before)
            .bind(q.limit)
            .fetch_all(self.db.read())
            .await?;
        rows.into_iter().map(HeldItem::try_from).collect()
    }

    async fn held_item(&self, id: i64) -> Result<Option<HeldItem>> {
        let row: Option<held::HeldRow> = sql(held::one())
            .bind(id)
            .fetch_optional(self.db.read())
            .await?;
        row.map(HeldItem::try_from).transpose()
    }

    async fn held_changes(&self, id: i64) -> Result<Vec<Vec<u8>>> {
        let rows: Vec<(Vec<u8>,)> = sql(held::CHANGES)
            .bind(id)
            .fetch_all(self.db.read())
            .await?;
        Ok(rows.into_iter().map(|(bytes,)| bytes).collect())
    }

    async fn decide_held(&self, id: i64, d: &HeldDecision) -> Result<bool> {
        let done = sql(held::DECIDE)
            .bind(id)
            .bind(d.state.as_str())
            .bind(&d.by)
            .bind(d.at)
            .bind(&d.note)
            .execute(self.db.write())
            .await?;
        Ok(done > 0)
    }

    async fn schemas(&self) -> Result<Vec<StoredSchema>> {
        let rows: Vec<SchemaRow> = sql(format!(
            "SELECT {} FROM schemas ORDER BY kind, version",
            schemas::COLUMNS
        ))
        .fetch_all(self.db.read())
        .await?;
        convert(rows)
    }

    async fn stored_schema(&self, kind: &str, version: u32) -> Result<Option<StoredSchema>> {
        let row: Option<SchemaRow> = sql(format!(
            "SELECT {} FROM schemas WHERE kind = $1 AND version = $2",
            schemas::COLUMNS
        ))
        .bind(kind)
        .bind(i64::from(version))
        .fetch_optional(self.db.read())
        .await?;
        row.map(StoredSchema::try_from).transpose()
    }

    async fn catalogue_revision(&self) -> Result<i64> {
        sql(schemas::REVISION).fetch_value(self.db.read()).await
    }

    async fn save_draft(&self, draft: &NewDraft<'_>, audit: &AuditEntry) -> Result<()> {
        let schema = draft.schema;
        let definition = serde_json::to_string(schema)
            .map_err(|e| StoreError::Corrupt(format!("a schema that does not serialise: {e}")))?;
        let mut tx = self.db.begin_write().await?;
        let saved = sql(schemas::SAVE_DRAFT)
            .bind(&schema.kind)
            .bind(i64::from(schema.version))
            .bind(definition)
            .bind(draft.source)
            .bind(draft.by)
            .bind(draft.at)
            .execute(&mut tx)
            .await?;
        if saved == 0 {
            return Err(StoreError::Duplicate(format!(
                "{} version {} (published or retired, so it cannot change)",
                schema.kind, schema.version
            )));
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await
    }

    async fn publish_schema(&self, p: &Publication<'_>, audit: &AuditEntry) -> Result<bool> {
        let mut tx = self.db.begin_write().await?;
        // The counter's row lock makes publications take turns, each judged against the last.
        let revision: i64 = sql(format!(
            "{}{}",
            schemas::REVISION,
            self.dialect().for_update("")
        ))
        .fetch_value(&mut tx)
        .await?;
        if revision != p.seen_revision {
            return Err(StoreError::Changed("the schema catalogue".into()));
        }
        let row: Option<SchemaRow> = sql(format!(
            "SELECT {} FROM schemas WHERE kind = $1 AND version = $2 AND state = 'draft'",
            schemas::COLUMNS
        ))
        .bind(p.kind)
        .bind(i64::from(p.version))
        .fetch_optional(&mut tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let schema = StoredSchema::try_from(row)?.schema()?;
        sql(schemas::PUBLISH)
            .bind(p.kind)
            .bind(i64::from(p.version))
            .bind(p.by)
            .bind(p.at)
            .execute(&mut tx)
            .await?;
        insert_index_fields(&mut tx, &schema).await?;
        sql(schemas::BUMP)
            .bind(schemas::new_revision())
            .execute(&mut tx)
            .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn retire_schema(&self, kind: &str, version: u32, audit: &AuditEntry) -> Result<bool> {
        let mut tx = self.db.begin_write().await?;
        let done = sql(schemas::RETIRE)
            .bind(kind)
            .bind(i64::from(version))
            .bind(&audit.user_id)
            .bind(audit.at)
            .execute(&mut tx)
            .await?;
        if done == 0 {
            return Ok(false);
        }
        sql(schemas::BUMP)
            .bind(schemas::new_revision())
            .execute(&mut tx)
            .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn discard_draft(&self, kind: &str, version: u32, audit: &AuditEntry) -> Result<bool> {
        let mut tx = self.db.begin_write().await?;
        let done = sql(schemas::DISCARD)
            .bind(kind)
            .bind(i64::from(version))
            .execute(&mut tx)
            .await?;
        if done == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn prune(&self) -> Result<u64> {
        let mut tx = self.db.begin_write().await?;
        let horizon: i64 = sql(format!(
            "SELECT COALESCE((SELECT MIN(cursor) FROM devices WHERE revoked_at IS NULL), {})",
            tx.dialect().last_seq()
        ))
        .fetch_value(&mut tx)
        .await?;
        let deleted = sql("DELETE FROM changes WHERE seq <= $1 \
             AND seq <= (SELECT snapshot_seq FROM documents d WHERE d.id = changes.doc_id)")
        .bind(horizon)
        .execute(&mut tx)
        .await?;
        sql(format!(
            "UPDATE counters SET value = {} WHERE name = 'horizon'",
            tx.dialect().greatest("value", "$1")
        ))
        .bind(horizon)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn upload_chunk(&self, c: &UploadChunk<'_>) -> Result<UploadOutcome> {
        let doc = c.doc_id.to_string();
        let mut tx = self.db.begin_write().await?;
        if c.offset == 0 {
            sql(
                "INSERT INTO uploads (doc_id, hash, media_type, size, received, created_by, \
                 started_at, updated_at) VALUES ($1, $2, $3, $4, 0, $5, $6, $6) \
                 ON CONFLICT (doc_id, hash) DO NOTHING",
            )
            .bind(&doc)
            .bind(c.hash)
            .bind(c.media_type)
            .bind(c.total)
            .bind(c.user_id)
            .bind(c.now)
            .execute(&mut tx)
            .await?;
        }
        let held: Option<UploadState> = sql(format!(
            "SELECT media_type, size, received FROM uploads WHERE doc_id = $1 AND hash = $2{}",
            tx.dialect().for_update("")
        ))
        .bind(&doc)
        .bind(c.hash)
        .fetch_optional(&mut tx)
        .await?;
        let Some(UploadState {
            media_type,
            size,
            mut received,
        }) = held
        else {
            return Ok(UploadOutcome::WrongOffset { received: 0 });
        };
        if media_type != c.media_type || size != c.total {
            // Another declaration: the upload starts over, from a chunk at offset 0.
            if c.offset != 0 {
                return Ok(UploadOutcome::WrongOffset { received: 0 });
            }
            sql("DELETE FROM upload_chunks WHERE doc_id = $1 AND hash = $2")
                .bind(&doc)
                .bind(c.hash)
                .execute(&mut tx)
                .await?;
            sql(
                "UPDATE uploads SET media_type = $3, size = $4, received = 0, created_by = $5, \
                 started_at = $6 WHERE doc_id = $1 AND hash = $2",
            )
            .bind(&doc)
            .bind(c.hash)
            .bind(c.media_type)
            .bind(c.total)
            .bind(c.user_id)
            .bind(c.now)
            .execute(&mut tx)
            .await?;
            received = 0;
        }
        if c.offset != received || c.offset + c.bytes.len() as i64 > c.total {
            return Ok(UploadOutcome::WrongOffset { received });
        }
        for (pos, piece) in pieces(c.offset, c.bytes) {
            sql("INSERT INTO upload_chunks (doc_id, hash, pos, bytes) VALUES ($1, $2, $3, $4)")
                .bind(&doc)
                .bind(c.hash)
                .bind(pos)
                .bind(piece)
                .execute(&mut tx)
                .await?;
        }
        received += c.bytes.len() as i64;
        sql("UPDATE uploads SET received = $3, updated_at = $4 WHERE doc_id = $1 AND hash = $2")
            .bind(&doc)
            .bind(c.hash)
            .bind(received)
            .bind(c.now)
            .execute(&mut tx)
            .await?;
        if received < c.total {
            tx.commit().await?;
            return Ok(UploadOutcome::Partial { received });
        }
        // Complete: hash the pieces one at a time, so memory stays at one piece.
        let mut hasher = PieceHasher::new();
        loop {
            let piece: Option<Piece> = sql(
                "SELECT pos, bytes FROM upload_chunks WHERE doc_id = $1 AND hash = $2 \
                 AND pos >= $3 ORDER BY pos LIMIT 1",
            )
            .bind(&doc)
            .bind(c.hash)
            .bind(hasher.next)
            .fetch_optional(&mut tx)
            .await?;
            match piece {
                Some(piece) => hasher.feed(piece.pos, &piece.bytes)?,
                None => break,
            }
        }
        let whole = hasher.next == c.total;
        let matches = whole && hasher.finish() == c.hash;
        let mut new_blob = false;
        if matches {
            new_blob = sql(
                "INSERT INTO blobs (hash, size, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (hash) DO NOTHING",
            )
            .bind(c.hash)
            .bind(c.total)
            .bind(c.now)
            .execute(&mut tx)
            .await?
                == 1;
            if new_blob {
                sql(
                    "INSERT INTO blob_chunks (hash, pos, bytes) SELECT hash, pos, bytes \
                     FROM upload_chunks WHERE doc_id = $1 AND hash = $2",
                )
                .bind(&doc)
                .bind(c.hash)
                .execute(&mut tx)
                .await?;
            }
            sql(
                "INSERT INTO attachments (doc_id, hash, media_type, size, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (doc_id, hash) DO NOTHING",
            )
            .bind(&doc)
            .bind(c.hash)
            .bind(c.media_type)
            .bind(c.total)
            .bind(c.user_id)
            .bind(c.now)
            .execute(&mut tx)
            .await?;
        }
        drop_upload(&mut tx, &doc, c.hash).await?;
        let link: Option<AttachmentRecord> = sql(format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE doc_id = $1 AND hash = $2"
        ))
        .bind(&doc)
        .bind(c.hash)
        .fetch_optional(&mut tx)
        .await?;
        tx.commit().await?;
        match (matches, link) {
            (true, Some(row)) => Ok(UploadOutcome::Complete {
                attachment: row.try_into()?,
                new_blob,
            }),
            (true, None) => Err(StoreError::Corrupt("attachment link vanished".into())),
            (false, _) => Ok(UploadOutcome::HashMismatch),
        }
    }

    async fn upload_state(&self, doc_id: &DocId, hash: &str) -> Result<Option<UploadState>> {
        sql("SELECT media_type, size, received FROM uploads WHERE doc_id = $1 AND hash = $2")
            .bind(doc_id.to_string())
            .bind(hash)
            .fetch_optional(self.db.read())
            .await
    }

    async fn link_visible_blob(
        &self,
        scope: &Scope,
        link: &Attachment,
    ) -> Result<Option<Attachment>> {
        let doc = link.doc_id.to_string();
        let mut tx = self.db.begin_write().await?;
        let here: Option<AttachmentRecord> = sql(format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE doc_id = $1 AND hash = $2"
        ))
        .bind(&doc)
        .bind(&link.hash)
        .fetch_optional(&mut tx)
        .await?;
        if let Some(row) = here {
            tx.commit().await?;
            return Attachment::try_from(row).map(Some);
        }
        let size: Option<(i64,)> = sql(format!(
            "SELECT a.size FROM attachments a JOIN documents d ON d.id = a.doc_id \
             WHERE a.hash = $1 AND {} LIMIT 1",
            scope_filter(tx.dialect(), "d", 2)
        ))
        .bind(&link.hash)
        .bind_scope(scope)
        .fetch_optional(&mut tx)
        .await?;
        let Some((size,)) = size else {
            tx.commit().await?;
            return Ok(None);
        };
        sql(
            "INSERT INTO attachments (doc_id, hash, media_type, size, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (doc_id, hash) DO NOTHING",
        )
        .bind(&doc)
        .bind(&link.hash)
        .bind(&link.media_type)
        .bind(size)
        .bind(&link.created_by)
        .bind(link.created_at)
        .execute(&mut tx)
        .await?;
        // An upload of the same bytes for this report is no longer needed.
        drop_upload(&mut tx, &doc, &link.hash).await?;
        tx.commit().await?;
        Ok(Some(Attachment {
            size,
            ..link.clone()
        }))
    }

    async fn attachment(&self, doc_id: &DocId, hash: &str) -> Result<Option<Attachment>> {
        let row: Option<AttachmentRecord> = sql(format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE doc_id = $1 AND hash = $2"
        ))
        .bind(doc_id.to_string())
        .bind(hash)
        .fetch_optional(self.db.read())
        .await?;
        row.map(Attachment::try_from).transpose()
    }

    async fn attachments_of(&self, doc_id: &DocId) -> Result<Vec<Attachment>> {
        let rows: Vec<AttachmentRecord> = sql(format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE doc_id = $1 \
             ORDER BY created_at, hash"
        ))
        .bind(doc_id.to_string())
        .fetch_all(self.db.read())
        .await?;
        convert(rows)
    }

    async fn read_blob(&self, hash: &str, start: i64, end: i64) -> Result<Option<Vec<u8>>> {
        let mut tx = self.db.begin_read().await?;
        let size: Option<(i64,)> = sql("SELECT size FROM blobs WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&mut tx)
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
        let pieces: Vec<Piece> = sql(format!(
            "SELECT pos, bytes FROM blob_chunks WHERE hash = $1 AND pos < $3 \
             AND pos + {} > $2 ORDER BY pos",
            tx.dialect().byte_length("bytes")
        ))
        .bind(hash)
        .bind(start)
        .bind(end)
        .fetch_all(&mut tx)
        .await?;
        cut_range(pieces, start, end).map(Some)
    }

    async fn collect_orphans(&self, before: i64) -> Result<OrphansCollected> {
        let mut tx = self.db.begin_write().await?;
        sql("DELETE FROM upload_chunks WHERE (doc_id, hash) IN \
             (SELECT doc_id, hash FROM uploads WHERE updated_at < $1)")
        .bind(before)
        .execute(&mut tx)
        .await?;
        let uploads = sql("DELETE FROM uploads WHERE updated_at < $1")
            .bind(before)
            .execute(&mut tx)
            .await?;
        // A link outlives its attachment when the report detaches it; the document decides.
        // The attachments of a removed log entry stay: restoring the entry brings them back.
        let d = tx.dialect();
        let links = sql(format!(
            "DELETE FROM attachments WHERE created_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM documents d WHERE d.id = attachments.doc_id AND \
             ({} OR {}))",
            d.lists_sha256("d.projection", "attachments", "attachments.hash"),
            d.lists_sha256("d.projection", "hidden_attachments", "attachments.hash"),
        ))
        .bind(before)
        .execute(&mut tx)
        .await?;
        let orphan = "SELECT hash FROM blobs b WHERE b.created_at < $1 \
                      AND NOT EXISTS (SELECT 1 FROM attachments a WHERE a.hash = b.hash)";
        for table in ["blob_chunks", "thumbnails"] {
            sql(format!("DELETE FROM {table} WHERE hash IN ({orphan})"))
                .bind(before)
                .execute(&mut tx)
                .await?;
        }
        let blobs = sql(format!("DELETE FROM blobs WHERE hash IN ({orphan})"))
            .bind(before)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(OrphansCollected {
            uploads,
            links,
            blobs,
        })
    }

    async fn put_thumbnail(&self, hash: &str, bytes: &[u8], now: i64) -> Result<()> {
        sql(
            "INSERT INTO thumbnails (hash, bytes, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (hash) DO UPDATE SET bytes = excluded.bytes, created_at = excluded.created_at",
        )
        .bind(hash)
        .bind(bytes)
        .bind(now)
        .execute(self.db.write())
        .await?;
        Ok(())
    }

    async fn thumbnail(&self, doc_id: &DocId, hash: &str) -> Result<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> = sql(
            "SELECT t.bytes FROM thumbnails t JOIN attachments a ON a.hash = t.hash \
             WHERE a.doc_id = $1 AND a.hash = $2",
        )
        .bind(doc_id.to_string())
        .bind(hash)
        .fetch_optional(self.db.read())
        .await?;
        Ok(row.map(|r| r.0))
    }

    async fn thumbnails_of(&self, doc_id: &DocId) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sql(
            "SELECT t.hash FROM thumbnails t JOIN attachments a ON a.hash = t.hash \
             WHERE a.doc_id = $1 ORDER BY t.hash",
        )
        .bind(doc_id.to_string())
        .fetch_all(self.db.read())
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    async fn blob_usage(&self) -> Result<BlobUsage> {
        sql(format!(
            "SELECT (SELECT COUNT(*) FROM blobs) AS blobs, \
             (SELECT COUNT(*) FROM blob_chunks) AS pieces, \
             (SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM blobs) AS bytes, \
             (SELECT COUNT(*) FROM uploads) AS uploads, \
             (SELECT CAST(COALESCE(SUM({}), 0) AS BIGINT) FROM upload_chunks) AS upload_bytes",
            self.dialect().byte_length("bytes")
        ))
        .fetch_one(self.db.read())
        .await
    }

    async fn canvass_counts(&self, scope: &Scope, period: &Period) -> Result<Vec<CanvassCounts>> {
        facts::canvass(self.dialect(), scope, period)
            .fetch_all(self.db.read())
            .await
    }

    async fn worry_counts(&self, scope: &Scope, period: &Period) -> Result<Vec<(String, i64)>> {
        facts::worries(self.dialect(), scope, period)
            .fetch_all(self.db.read())
            .await
    }

    async fn dispute_counts(
        &self,
        scope: &Scope,
        period: &Period,
        today: &str,
    ) -> Result<Vec<DisputeCounts>> {
        facts::disputes(self.dialect(), scope, period, today)
            .fetch_all(self.db.read())
            .await
    }

    async fn resolution_days(&self, scope: &Scope, period: &Period) -> Result<Vec<ResolutionDays>> {
        facts::resolution_days(self.dialect(), scope, period)
            .fetch_all(self.db.read())
            .await
    }

    async fn kind_counts(
        &self,
        scope: &Scope,
        kind: &str,
        period: &Period,
    ) -> Result<Vec<KindCounts>> {
        facts::kind(self.dialect(), scope, kind, period)
            .fetch_all(self.db.read())
            .await
    }

    async fn drug_counts(&self, scope: &Scope, due: &DrugDue) -> Result<Vec<DrugCounts>> {
        facts::drug(self.dialect(), scope, due)
            .fetch_all(self.db.read())
            .await
    }

    async fn ledger_page(&self, scope: &Scope, query: &LedgerQuery) -> Result<Vec<DocumentRow>> {
        let rows: Vec<DocRecord> = facts::ledger(self.dialect(), scope, query)
            .fetch_all(self.db.read())
            .await?;
        convert(rows)
    }

    async fn bulletin(&self, org_id: &str, period: &str) -> Result<Option<StoredBulletin>> {
        let row: Option<BulletinRow> = sql(format!(
            "SELECT {} FROM bulletins b WHERE b.org_id = $1 AND b.period = $2 \
             ORDER BY b.revision DESC LIMIT 1",
            bulletins::COLUMNS
        ))
        .bind(org_id)
        .bind(period)
        .fetch_optional(self.db.read())
        .await?;
        row.map(StoredBulletin::try_from).transpose()
    }

    async fn bulletins(&self, prefix: &str, limit: i64) -> Result<Vec<StoredBulletin>> {
        let rows: Vec<BulletinRow> = sql(format!(
            "SELECT {} FROM bulletins b JOIN org_units o ON o.id = b.org_id WHERE {} \
             ORDER BY b.published_at DESC, b.org_id, b.period, b.revision DESC LIMIT $2",
            bulletins::COLUMNS,
            path_under(self.dialect(), "o.path", 1)
        ))
        .bind(prefix)
        .bind(limit)
        .fetch_all(self.db.read())
        .await?;
        convert(rows)
    }

    async fn publish_bulletin(&self, b: &NewBulletin<'_>, audit: &AuditEntry) -> Result<u32> {
        let mut tx = self.db.begin_write().await?;
        let last: i64 = sql(bulletins::LAST_REVISION)
            .bind(b.org_id)
            .bind(b.period)
            .fetch_value(&mut tx)
            .await?;
        match (last, b.reason) {
            (0, Some(_)) => {
                return Err(StoreError::NotFound(format!(
                    "a published bulletin of {} for {}",
                    b.org_id, b.period
                )));
            }
            (1.., None) => {
                return Err(StoreError::Duplicate(format!(
                    "the bulletin of {} for {}",
                    b.org_id, b.period
                )));
            }
            _ => {}
        }
        let revision = last + 1;
        let inserted = sql(bulletins::INSERT)
            .bind(b.org_id)
            .bind(b.period)
            .bind(revision)
            .bind(b.figures)
            .bind(b.reason)
            .bind(b.by)
            .bind(b.at)
            .execute(&mut tx)
            .await;
        match inserted {
            // Another publication of the same revision committed first (Postgres).
            Err(e) if e.is_unique_violation() => {
                return Err(StoreError::Changed(format!(
                    "the bulletin of {} for {}",
                    b.org_id, b.period
                )));
            }
            other => other?,
        };
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        u32::try_from(revision)
            .map_err(|_| StoreError::Corrupt(format!("bulletin revision {revision}")))
    }

    async fn bulletin_rules(&self) -> Result<Option<String>> {
        let row: Option<(String,)> = sql(bulletins::RULES).fetch_optional(self.db.read()).await?;
        Ok(row.map(|(rules,)| rules))
    }

    async fn set_bulletin_rules(&self, rules: &str, audit: &AuditEntry) -> Result<()> {
        let mut tx = self.db.begin_write().await?;
        sql(bulletins::SET_RULES)
            .bind(rules)
            .bind(&audit.user_id)
            .bind(audit.at)
            .execute(&mut tx)
            .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await
    }

    async fn audit(&self, e: &AuditEntry) -> Result<()> {
        insert_audit(self.db.write(), e).await
    }

    async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows: Vec<AuditRow> = sql(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(self.db.read())
        .await?;
        rows.into_iter()
            .map(|r| AuditRecord::try_from(r).map(|r| r.entry))
            .collect()
    }

    async fn audit_after(&self, after: i64, limit: i64) -> Result<Vec<AuditRecord>> {
        let rows: Vec<AuditRow> = sql(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(self.db.read())
        .await?;
        rows.into_iter().map(AuditRecord::try_from).collect()
    }

    async fn record_hub_audit(&self, hub_id: &str, entries: &[AuditRecord]) -> Result<i64> {
        let mut tx = self.db.begin_write().await?;
        // The row lock orders two uploads of one hub on Postgres; SQLite has one writer.
        let through: Option<(i64,)> = sql(
            "UPDATE hubs SET audit_through = audit_through WHERE id = $1 RETURNING audit_through",
        )
        .bind(hub_id)
        .fetch_optional(&mut tx)
        .await?;
        let Some((kept,)) = through else {
            return Err(StoreError::NotFound(format!("hub {hub_id}")));
        };
        let mut through = kept;
        for record in entries.iter().filter(|r| r.id > kept) {
            insert_audit(&mut tx, &record.entry).await?;
            through = through.max(record.id);
        }
        sql("UPDATE hubs SET audit_through = $2 WHERE id = $1")
            .bind(hub_id)
            .bind(through)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(through)
    }

    async fn audit_page(&self, q: &AuditQuery) -> Result<Page<AuditRecord>> {
        let mut tx = self.db.begin_read().await?;
        let (filter, values) = audit_conditions(q, true).finish();
        let limit = values.len() + 1;
        let rows: Vec<AuditRow> = sql_with(
            format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE {filter} \
                 ORDER BY id DESC LIMIT ${limit}"
            ),
            values,
        )
        .bind(q.limit + 1)
        .fetch_all(&mut tx)
        .await?;
        let (filter, values) = audit_conditions(q, false).finish();
        let total: i64 = sql_with(
            format!("SELECT COUNT(*) FROM audit_log WHERE {filter}"),
            values,
        )
        .fetch_value(&mut tx)
        .await?;
        tx.commit().await?;
        page(rows, q.limit, total)
    }
}

/// Records the questions of `schema` that feed an index.
async fn insert_index_fields(tx: &mut Tx, schema: &gridsync_core::schema::Schema) -> Result<()> {
    for (field, index) in schemas::index_fields(schema) {
        sql(schemas::INDEX_FIELD)
            .bind(&schema.kind)
            .bind(i64::from(schema.version))
            .bind(field)
            .bind(index)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

async fn insert_audit(on: impl Into<On<'_>>, e: &AuditEntry) -> Result<()> {
    sql(
        "INSERT INTO audit_log (at, user_id, device_id, action, doc_id, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(e.at)
    .bind(&e.user_id)
    .bind(&e.device_id)
    .bind(&e.action)
    .bind(e.doc_id.map(|d| d.to_string()))
    .bind(e.detail.to_string())
    .execute(on)
    .await?;
    Ok(())
}

/// Deletes an upload of `hash` to report `doc` and the chunks it received.
async fn drop_upload(tx: &mut Tx, doc: &str, hash: &str) -> Result<()> {
    sql("DELETE FROM upload_chunks WHERE doc_id = $1 AND hash = $2")
        .bind(doc)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
    sql("DELETE FROM uploads WHERE doc_id = $1 AND hash = $2")
        .bind(doc)
        .bind(hash)
        .execute(tx)
        .await?;
    Ok(())
}

/// The conditions of an audit page: only the filters `q` sets reach the SQL, so each can use an
/// index. With `page` they include the position.
fn audit_conditions(q: &AuditQuery, page: bool) -> Conditions<'static> {
    let mut c = Conditions::default();
    if let Some(v) = &q.user_id {
        c.add("user_id =", v.clone());
    }
    if let Some(v) = &q.action {
        c.add("action =", v.clone());
    }
    if let Some(v) = &q.doc_id {
        c.add("doc_id =", v.to_string());
    }
    if let Some(v) = q.from {
        c.add("at >=", v);
    }
    if let Some(v) = q.to {
        c.add("at <", v);
    }
    if page && let Some(v) = q.before_id {
        c.add("id <", v);
    }
    c
}

/// An org unit insert's outcome: a taken id or path is `Duplicate`, a missing parent `NotFound`.
fn org_insert_result(result: Result<u64>, unit: &OrgUnit) -> Result<()> {
    match result {
        Err(StoreError::Database(sqlx::Error::Database(e))) if e.is_unique_violation() => {
            Err(StoreError::Duplicate(format!("org unit {}", unit.id)))
        }
        Err(StoreError::Database(sqlx::Error::Database(e))) if e.is_foreign_key_violation() => {
            Err(StoreError::NotFound(format!(
                "parent org unit {}",
                unit.parent_id.as_deref().unwrap_or("")
            )))
        }
        other => other.map(|_| ()),
    }
}
