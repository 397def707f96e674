//! The phone's local store: one SQLite file holding the documents (saved automerge bytes), what
//! the server has acknowledged of each (the outbox, as heads), the pull cursor, the session, the
//! last user to log in, the device id, the grids the user may report in, copies of discarded
//! reports, and the report kinds fetched from the server's catalogue with the catalogue's digest.
//! For the village office hub: its address and id, what it holds of each document, its own
//! pull cursor, the last receipt taken from it, and central's public keys that check receipts.
//!
//! A document is stored as a snapshot followed by incremental saves (the changes each write
//! added), so an edit writes its own change, not the whole report; every
//! [`MAX_INCREMENTS`] writes the document is saved whole again. Beside each document the row
//! keeps its index (heads, pending changes, open conflicts) and its sealed listing entry, so
//! that opening the store, listing and searching never load the documents.
//!
//! Durability: WAL journal with `synchronous = FULL`, and every user action or sync step is one
//! transaction, so a write that returned survives a killed app or a power cut, and a step cut
//! halfway leaves the previous state. A pull page commits its documents together with the cursor
//! that points past them; a push result commits the acknowledged heads of its documents; a
//! catalogue refresh commits its definitions, their states, the digest and the refusals it
//! lifts.
//!
//! Encryption: document bytes, rejection notes, the session (tokens, user profile), the last
//! user's profile, the grid list, discarded copies and report kind definitions are sealed with
//! [`Sealer`] under the app's key, with the row's identity as associated data. Table
//! structure, document ids, heads (hashes), each report's numbers of pending changes and open
//! conflicts, the cursors, the device id, the office hub's address and id, central's public
//! keys, and the kind ids, versions and states of the catalogue and its digest are not
//! encrypted: the app carries its built-in kinds in the clear anyway. A `key_check` blob written on creation tells
//! a wrong key apart from corrupt data.

use std::path::{Path, PathBuf};

use automerge::ChangeHash;
use gridsync_core::DocId;
use std::sync::Mutex;

use gridsync_core::replica::{Cursor, DocIndex, LocalDoc, Rejection};
use gridsync_core::report::ReportDoc;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::error::{ClientError, Result};
use crate::seal::Sealer;
use crate::summary::{DocSummary, open_conflicts};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "gridsync-field.db";
const SCHEMA_VERSION: i64 = 7;
/// Incremental saves a document gathers before it is saved whole again: loading replays at
/// most this many, and an edit rewrites the whole document once in this many writes.
pub const MAX_INCREMENTS: i64 = 32;
const KEY_CHECK: &[u8] = b"gridsync field store";

/// Who is logged in on this phone and the tokens of the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub access_token: String,
    pub refresh_token: String,
    /// Unix seconds after which the access token is refused.
    pub access_expires_at: i64,
    pub user: Profile,
    /// The grant the server last gave this device for village office hubs (a JWS), if any.
    #[serde(default)]
    pub offline_grant: Option<String>,
    /// The hubs the server had revoked then, by id: the phone trusts none of them.
    #[serde(default)]
    pub revoked_hubs: Vec<String>,
}

/// The logged-in user as `/api/v1/me` describes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub org_unit_id: String,
    pub scope_path: String,
    pub clearance: bool,
    pub device_id: String,
}

/// A document to store: its new bytes, its index and its listing entry.
#[derive(Debug)]
pub struct DocWrite {
    pub id: DocId,
    pub save: Save,
    pub index: DocIndex,
    pub summary: Option<DocSummary>,
    pub conflicts: u32,
}

/// The bytes a document write adds.
#[derive(Debug)]
pub enum Save {
    /// The whole document, replacing the snapshot and its incremental saves.
    Whole(Vec<u8>),
    /// The changes since the stored heads, appended as the next incremental save (none when
    /// nothing changed).
    After(Vec<u8>),
}

/// The grids one user may file reports in, as `GET /api/v1/org` gave them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GridList {
    /// The user the list was fetched for; another user's list says nothing about this one.
    pub user_id: String,
    /// The list holds every grid of the district (the user sees the whole tree), so a grid not
    /// in it does not exist.
    pub whole_district: bool,
    pub grids: Vec<Grid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grid {
    pub id: String,
    pub name: String,
    /// Org path, from the district down.
    pub path: String,
}

/// The village office hub a phone syncs with when central is out of reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficeHub {
    /// `https://…` on the office network.
    pub url: String,
    /// The hub's id once its certificate was checked; `None` until the first session.
    pub id: Option<String>,
    /// The key central certified for the hub, which its TLS must prove (unpadded base64url);
    /// `None` until the first session.
    #[serde(default)]
    pub key: Option<String>,
}

/// One version of a report kind as the server's catalogue listed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSchema {
    pub kind: String,
    pub version: u32,
    pub state: SchemaState,
    /// The definition JSON as the server sent it (`Schema::from_json` reads it); `None` for a
    /// version this app has built in, which is kept only for its state.
    pub definition: Option<String>,
}

/// Where a version stands in the server's catalogue; drafts never reach a phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaState {
    /// New reports may use it.
    Published,
    /// Reports written against it stay readable; new ones use another version.
    Retired,
}

impl SchemaState {
    /// The name the server's catalogue and this store use.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaState::Published => "published",
            SchemaState::Retired => "retired",
        }
    }

    pub fn parse(state: &str) -> Option<SchemaState> {
        match state {
            "published" => Some(SchemaState::Published),
            "retired" => Some(SchemaState::Retired),
            _ => None,
        }
    }
}

/// Written into every discarded copy, so an exported file says what it is.
pub const DISCARDED_FORMAT: &str = "gridsync-discarded-report/1";

/// A report its user discarded, kept whole until the next successful sync so that it can still
/// be exported. Its JSON serialisation is the export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscardedCopy {
    /// [`DISCARDED_FORMAT`].
    pub format: String,
    pub report_id: String,
    pub discarded_by: String,
    /// RFC 3339.
    pub discarded_at: String,
    /// Why the server refused the report, when it had.
    pub rejected: Option<RejectionNote>,
    /// The JSON projection as it was when discarded.
    pub report: serde_json::Value,
    /// The saved automerge document (base64): every change, with its author and time.
    #[serde(with = "base64_bytes")]
    pub document: Vec<u8>,
    /// Attachments whose bytes had not reached the server.
    pub attachments: Vec<DiscardedAttachment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionNote {
    pub code: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscardedAttachment {
    pub sha256: String,
    pub media_type: String,
    /// base64.
    #[serde(with = "base64_bytes")]
    pub bytes: Vec<u8>,
}

/// Bytes as base64 text in JSON, a third larger rather than the four times of a number array.
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Writes of one step, committed together by [`Store::commit`].
#[derive(Debug, Default)]
pub struct Batch {
    docs: Vec<DocWrite>,
    states: Vec<(DocId, DocIndex)>,
    deleted: Vec<DocId>,
    discarded: Vec<(DocId, DiscardedCopy)>,
    cursor: Option<Cursor>,
    hub_cursor: Option<Cursor>,
    /// The last receipt taken from the office hub, by the hub's number.
    receipts_after: Option<u64>,
    schemas: Vec<StoredSchema>,
    catalogue: Option<u64>,
}

impl Batch {
    /// Stores a document (see [`Store::write_of`]).
    pub fn put_doc(&mut self, write: DocWrite) {
        self.docs.push(write);
    }

    /// Stores what the server holds of a document and how much is pending; its bytes and heads
    /// did not change.
    pub fn put_index(&mut self, id: DocId, index: DocIndex) {
        self.states.push((id, index));
    }

    pub fn delete_doc(&mut self, id: DocId) {
        self.deleted.push(id);
    }

    pub fn set_cursor(&mut self, cursor: Cursor) {
        self.cursor = Some(cursor);
    }

    pub fn set_hub_cursor(&mut self, cursor: Cursor) {
        self.hub_cursor = Some(cursor);
    }

    pub fn set_receipts_after(&mut self, after: u64) {
        self.receipts_after = Some(after);
    }

    /// Replaces a document and its attachment bytes with `copy`, which holds them.
    pub fn discard(&mut self, id: DocId, copy: DiscardedCopy) {
        self.discarded.push((id, copy));
    }

    /// Stores one version of a report kind with its state. A `None` definition keeps the one
    /// stored before, so a state can change without the definition being sent again.
    pub fn put_schema(&mut self, schema: StoredSchema) {
        self.schemas.push(schema);
    }

    /// The digest of the server's catalogue that the stored kinds were brought up to.
    pub fn set_catalogue(&mut self, digest: u64) {
        self.catalogue = Some(digest);
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
            && self.states.is_empty()
            && self.deleted.is_empty()
            && self.discarded.is_empty()
            && self.cursor.is_none()
            && self.hub_cursor.is_none()
            && self.receipts_after.is_none()
            && self.schemas.is_empty()
            && self.catalogue.is_none()
    }
}

/// An attachment's bytes as this phone keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalBlob {
    pub doc_id: DocId,
    pub sha256: String,
    pub media_type: String,
    pub size: u64,
    /// Attached here and not yet uploaded.
    pub pending: bool,
}

/// The open database and the key that seals its blobs.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    sealer: Sealer,
    path: PathBuf,
}

impl Store {
    /// Opens (creating when missing) the store in `dir` under `key`. A store written under
    /// another key answers `WrongKey`.
    pub fn open(dir: &Path, key: &[u8]) -> Result<Store> {
        let sealer = Sealer::new(key)?;
        std::fs::create_dir_all(dir).map_err(|e| {
            ClientError::Storage(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(ClientError::Storage(format!(
                "SQLite refused WAL mode (got {mode})"
            )));
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
        let mut store = Store { conn, sealer, path };
        store.migrate()?;
        store.check_key()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<()> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(ClientError::Storage(format!(
                "the local database is of a newer app (schema {version}); update the app"
            )));
        }
        if version < 1 {
            let tx = self.conn.transaction()?;
            tx.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
                 CREATE TABLE docs (
                     id TEXT PRIMARY KEY,
                     bytes BLOB NOT NULL,
                     acked BLOB NOT NULL,
                     rejected BLOB
                 );
                 PRAGMA user_version = 1;",
            )?;
            tx.commit()?;
        }
        if version < 2 {
            // Attachment bytes, sealed like documents. `pending` ones wait for upload and are
            // never evicted; the others are a cache of fetched attachments, evicted oldest
            // used first.
            let tx = self.conn.transaction()?;
            tx.execute_batch(
                "CREATE TABLE attachments (
                     doc_id TEXT NOT NULL,
                     sha256 TEXT NOT NULL,
                     media_type TEXT NOT NULL,
                     size INTEGER NOT NULL,
                     bytes BLOB NOT NULL,
                     pending INTEGER NOT NULL,
                     used_at INTEGER NOT NULL,
                     PRIMARY KEY (doc_id, sha256)
                 );
                 PRAGMA user_version = 2;",
            )?;
            tx.commit()?;
        }
        if version < 3 {
            // Copies of discarded reports, sealed whole, kept until the next successful sync;
            // listed in the order they were discarded (rowid).
            let tx = self.conn.transaction()?;
            tx.execute_batch(
                "CREATE TABLE discarded (id TEXT PRIMARY KEY, copy BLOB NOT NULL);
                 PRAGMA user_version = 3;",
            )?;
            tx.commit()?;
        }
        if version < 4 {
            // What the server took as held work (heads), and whether the document left the
            // scope while it still held undelivered changes.
            let tx = self.conn.transaction()?;
            tx.execute_batch(
                "ALTER TABLE docs ADD COLUMN held BLOB NOT NULL DEFAULT x'';
                 ALTER TABLE docs ADD COLUMN out_of_scope INTEGER NOT NULL DEFAULT 0;
                 PRAGMA user_version = 4;",
            )?;
            tx.commit()?;
        }
        if version < 5 {
            // Report kinds from the server's catalogue: every version it listed with its state,
            // and the sealed definition of those this app does not have built in (NULL for the
            // others). The catalogue's digest goes into `meta`.
            let tx = self.conn.transaction()?;
            tx.execute_batch(
                "CREATE TABLE schemas (
                     kind TEXT NOT NULL,
                     version INTEGER NOT NULL,
                     state TEXT NOT NULL,
                     definition BLOB,
                     PRIMARY KEY (kind, version)
                 );
                 PRAGMA user_version = 5;",
            )?;
            tx.commit()?;
        }
        if version < 6 {
            // The index and listing entry of each document (NULL heads: not indexed yet, done
            // by the client when it opens the store). A document's bytes move to `doc_saves`:
            // its snapshot (n = 0) and the incremental saves after it, apart from the row that
            // every write updates, since SQLite rewrites a whole row, long bytes and all, when
            // any column of it changes. Without a rowid, an incremental save writes one b-tree,
            // not a table and its key's index.
            let tx = self.conn.transaction()?;
            tx.execute_batch(
                "CREATE TABLE doc_saves (
                     doc_id TEXT NOT NULL,
                     n INTEGER NOT NULL,
                     bytes BLOB NOT NULL,
                     PRIMARY KEY (doc_id, n)
                 ) WITHOUT ROWID;
                 INSERT INTO doc_saves (doc_id, n, bytes) SELECT id, 0, bytes FROM docs;
                 ALTER TABLE docs DROP COLUMN bytes;
                 ALTER TABLE docs ADD COLUMN heads BLOB;
                 ALTER TABLE docs ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
                 ALTER TABLE docs ADD COLUMN conflicts INTEGER NOT NULL DEFAULT 0;
                 ALTER TABLE docs ADD COLUMN summary BLOB;
                 ALTER TABLE docs ADD COLUMN increments INTEGER NOT NULL DEFAULT 0;
                 PRAGMA user_version = 6;",
            )?;
            tx.commit()?;
        }
        if version < 7 {
            // What the village office hub holds of each document (heads), and the changes
            // first learned from a hub that central is not known to hold (hashes).
            let tx = self.conn.transaction()?;
            tx.execute_batch(
                "ALTER TABLE docs ADD COLUMN hub BLOB NOT NULL DEFAULT x'';
                 ALTER TABLE docs ADD COLUMN from_hub BLOB NOT NULL DEFAULT x'';
                 PRAGMA user_version = 7;",
            )?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Keeps the bytes of an attachment: `pending` until the server has them, else as cache.
    pub fn put_attachment(&self, blob: &LocalBlob, bytes: &[u8], now: i64) -> Result<()> {
        let sealed = self
            .sealer
            .seal(&blob_aad(&blob.doc_id, &blob.sha256), bytes)?;
        self.conn.execute(
            "INSERT INTO attachments (doc_id, sha256, media_type, size, bytes, pending, used_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (doc_id, sha256) DO UPDATE SET bytes = excluded.bytes, \
             pending = max(pending, excluded.pending), used_at = excluded.used_at",
            rusqlite::params![
                blob.doc_id.to_string(),
                blob.sha256,
                blob.media_type,
                blob.size as i64,
                sealed,
                blob.pending,
                now
            ],
        )?;
        Ok(())
    }

    /// The bytes of an attachment kept here, marked used at `now`.
    pub fn attachment_bytes(
        &self,
        doc_id: &DocId,
        sha256: &str,
        now: i64,
    ) -> Result<Option<Vec<u8>>> {
        let sealed: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT bytes FROM attachments WHERE doc_id = ?1 AND sha256 = ?2",
                rusqlite::params![doc_id.to_string(), sha256],
                |r| r.get(0),
            )
            .optional()?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        self.conn.execute(
            "UPDATE attachments SET used_at = ?3 WHERE doc_id = ?1 AND sha256 = ?2",
            rusqlite::params![doc_id.to_string(), sha256, now],
        )?;
        self.sealer
            .open(&blob_aad(doc_id, sha256), &sealed)
            .map(Some)
    }

    /// Every attachment kept here (without bytes).
    pub fn attachments(&self) -> Result<Vec<LocalBlob>> {
        let mut stmt = self.conn.prepare(
            "SELECT doc_id, sha256, media_type, size, pending FROM attachments \
             ORDER BY used_at, doc_id, sha256",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, bool>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (doc_id, sha256, media_type, size, pending) = row?;
            out.push(LocalBlob {
                doc_id: doc_id
                    .parse()
                    .map_err(|_| ClientError::Storage(format!("bad attachment row {doc_id}")))?,
                sha256,
                media_type,
                size: u64::try_from(size).unwrap_or_default(),
                pending,
            });
        }
        Ok(out)
    }

    /// The server has the bytes: they stay as cache.
    pub fn mark_uploaded(&self, doc_id: &DocId, sha256: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE attachments SET pending = 0 WHERE doc_id = ?1 AND sha256 = ?2",
            rusqlite::params![doc_id.to_string(), sha256],
        )?;
        Ok(())
    }

    pub fn delete_attachment(&self, doc_id: &DocId, sha256: &str) -> Result<()> {
        self.conn.execute(
            "DELETE FROM attachments WHERE doc_id = ?1 AND sha256 = ?2",
            rusqlite::params![doc_id.to_string(), sha256],
        )?;
        Ok(())
    }

    /// Evicts cached (not pending) attachments, least recently used first, until they hold at
    /// most `max_bytes`; returns how many were evicted.
    pub fn evict_cache(&self, max_bytes: u64) -> Result<usize> {
        let mut held: u64 = self
            .attachments()?
            .iter()
            .filter(|b| !b.pending)
            .map(|b| b.size)
            .sum();
        let mut evicted = 0;
        for blob in self.attachments()?.into_iter().filter(|b| !b.pending) {
            if held <= max_bytes {
                break;
            }
            self.delete_attachment(&blob.doc_id, &blob.sha256)?;
            held -= blob.size;
            evicted += 1;
        }
        Ok(evicted)
    }

    /// Writes the key check on a new store; on an existing one, proves the key opens it.
    fn check_key(&mut self) -> Result<()> {
        match self.meta_blob("key_check")? {
            Some(blob) => {
                let plain = self.sealer.open("key_check", &blob).map_err(|_| {
                    ClientError::WrongKey(
                        "the database key does not open this phone's data; it was written \
                         with another key"
                            .into(),
                    )
                })?;
                if plain != KEY_CHECK {
                    return Err(ClientError::Storage(
                        "the key check holds other data".into(),
                    ));
                }
            }
            None => {
                let blob = self.sealer.seal("key_check", KEY_CHECK)?;
                self.set_meta_blob("key_check", &blob)?;
            }
        }
        Ok(())
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn meta_blob(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    fn set_meta_blob(&self, key: &str, value: &[u8]) -> Result<()> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// The id this installation registers with the server; made once and kept.
    pub fn device_id(&self) -> Result<String> {
        if let Some(id) = self.meta_blob("device_id")? {
            return String::from_utf8(id)
                .map_err(|_| ClientError::Storage("device id is not text".into()));
        }
        let id = uuid::Uuid::new_v4().to_string();
        self.set_meta_blob("device_id", id.as_bytes())?;
        Ok(id)
    }

    /// Replaces the device id, for a phone that must register anew; a new device gets a new
    /// key too.
    pub fn new_device_id(&self) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        self.set_meta_blob("device_id", id.as_bytes())?;
        self.conn
            .execute("DELETE FROM meta WHERE key = 'device_key'", [])?;
        Ok(id)
    }

    /// The seed of this installation's Ed25519 key, which the server's offline grants name;
    /// made once with the device id's lifetime, and kept sealed.
    pub fn device_key(&self) -> Result<[u8; 32]> {
        if let Some(blob) = self.meta_blob("device_key")? {
            return self
                .sealer
                .open("device_key", &blob)?
                .try_into()
                .map_err(|_| ClientError::Storage("the device key is not 32 bytes".into()));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| ClientError::Storage(format!("no random source for a device key: {e}")))?;
        let blob = self.sealer.seal("device_key", &seed)?;
        self.set_meta_blob("device_key", &blob)?;
        Ok(seed)
    }

    pub fn session(&self) -> Result<Option<Session>> {
        self.sealed_json("session")
    }

    /// The user who logged in here last, kept when their session ends: the author of local
    /// edits until another user logs in.
    pub fn last_user(&self) -> Result<Option<Profile>> {
        self.sealed_json("last_user")
    }

    /// Stores a new login's session and its user as the last user, together.
    pub fn start_session(&mut self, session: &Session) -> Result<()> {
        let sealed = [
            ("session", self.seal_json("session", session)?),
            ("last_user", self.seal_json("last_user", &session.user)?),
        ];
        let tx = self.conn.transaction()?;
        for (key, value) in sealed {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A meta value sealed under its key, as JSON.
    fn seal_json(&self, key: &str, value: &impl Serialize) -> Result<Vec<u8>> {
        let json =
            serde_json::to_vec(value).map_err(|e| ClientError::Storage(format!("{key}: {e}")))?;
        self.sealer.seal(key, &json)
    }

    fn sealed_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let Some(blob) = self.meta_blob(key)? else {
            return Ok(None);
        };
        let plain = self.sealer.open(key, &blob)?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|e| ClientError::Storage(format!("stored {key}: {e}")))
    }

    /// Stores the session (sealed), or removes it.
    pub fn set_session(&self, session: Option<&Session>) -> Result<()> {
        match session {
            Some(s) => {
                let blob = self.seal_json("session", s)?;
                self.set_meta_blob("session", &blob)
            }
            None => {
                self.conn
                    .execute("DELETE FROM meta WHERE key = 'session'", [])?;
                Ok(())
            }
        }
    }

    /// The grid list last fetched, whoever it was fetched for.
    pub fn grids(&self) -> Result<Option<GridList>> {
        let Some(blob) = self.meta_blob("grids")? else {
            return Ok(None);
        };
        let plain = self.sealer.open("grids", &blob)?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|e| ClientError::Storage(format!("stored grid list: {e}")))
    }

    pub fn set_grids(&self, grids: &GridList) -> Result<()> {
        let json = serde_json::to_vec(grids)
            .map_err(|e| ClientError::Storage(format!("grid list: {e}")))?;
        let blob = self.sealer.seal("grids", &json)?;
        self.set_meta_blob("grids", &blob)
    }

    /// The copies of discarded reports, oldest first.
    pub fn discarded(&self) -> Result<Vec<DiscardedCopy>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, copy FROM discarded ORDER BY rowid")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, sealed) = row?;
            let plain = self.sealer.open(&discarded_aad(&id), &sealed)?;
            out.push(
                serde_json::from_slice(&plain)
                    .map_err(|e| ClientError::Storage(format!("discarded copy {id}: {e}")))?,
            );
        }
        Ok(out)
    }

    /// Drops every discarded copy: a sync went through since they were made.
    pub fn drop_discarded(&self) -> Result<()> {
        self.conn.execute("DELETE FROM discarded", [])?;
        Ok(())
    }

    pub fn cursor(&self) -> Result<Cursor> {
        Ok(Cursor {
            since: self.meta_number("cursor_since")?,
            after: self.meta_number("cursor_after")?,
        })
    }

    /// Where the phone stands in its office hub's sequence.
    pub fn hub_cursor(&self) -> Result<Cursor> {
        Ok(Cursor {
            since: self.meta_number("hub_since")?,
            after: self.meta_number("hub_after")?,
        })
    }

    /// The number of the last receipt taken from the office hub; 0 before the first.
    pub fn receipts_after(&self) -> Result<u64> {
        self.meta_number("receipts_after")
    }

    /// The office hub this phone falls back to, if one was set.
    pub fn office_hub(&self) -> Result<Option<OfficeHub>> {
        self.plain_json("office_hub")
    }

    /// Sets the office hub (or none). Another hub than the stored one starts from nothing: its
    /// cursor, receipts and what it holds are forgotten in the same transaction.
    pub fn set_office_hub(&mut self, hub: Option<&OfficeHub>) -> Result<()> {
        let tx = self.conn.transaction()?;
        match hub {
            Some(hub) => {
                let json = serde_json::to_vec(hub)
                    .map_err(|e| ClientError::Storage(format!("office hub: {e}")))?;
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('office_hub', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [json],
                )?;
            }
            None => {
                tx.execute("DELETE FROM meta WHERE key = 'office_hub'", [])?;
            }
        }
        tx.execute(
            "DELETE FROM meta WHERE key IN ('hub_since', 'hub_after', 'receipts_after')",
            [],
        )?;
        tx.execute("UPDATE docs SET hub = x''", [])?;
        tx.commit()?;
        Ok(())
    }

    /// Central's public keys as last fetched (a JWKS document), which check what central signed
    /// when a hub hands it on.
    pub fn central_keys(&self) -> Result<Option<Vec<u8>>> {
        self.meta_blob("central_keys")
    }

    pub fn set_central_keys(&self, jwks: &[u8]) -> Result<()> {
        self.set_meta_blob("central_keys", jwks)
    }

    fn plain_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let Some(blob) = self.meta_blob(key)? else {
            return Ok(None);
        };
        serde_json::from_slice(&blob)
            .map(Some)
            .map_err(|e| ClientError::Storage(format!("stored {key}: {e}")))
    }

    /// The digest of the server's catalogue of report kinds last stored; 0 before the first.
    pub fn catalogue(&self) -> Result<u64> {
        self.meta_number("catalogue")
    }

    /// A number kept in `meta` as decimal text; 0 when missing.
    fn meta_number(&self, key: &str) -> Result<u64> {
        match self.meta_blob(key)? {
            None => Ok(0),
            Some(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| ClientError::Storage(format!("stored {key} is not a number"))),
        }
    }

    /// Every stored version of a report kind, by kind and version, definitions opened.
    pub fn schemas(&self) -> Result<Vec<StoredSchema>> {
        let mut stmt = self.conn.prepare(
            "SELECT kind, version, state, definition FROM schemas ORDER BY kind, version",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<Vec<u8>>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, version, state, sealed) = row?;
            let state = SchemaState::parse(&state).ok_or_else(|| {
                ClientError::Storage(format!("stored state {state} of {kind} version {version}"))
            })?;
            let definition = sealed
                .map(|sealed| {
                    let plain = self.sealer.open(&schema_aad(&kind, version), &sealed)?;
                    String::from_utf8(plain).map_err(|_| {
                        ClientError::Storage(format!("stored {kind} version {version} is not text"))
                    })
                })
                .transpose()?;
            out.push(StoredSchema {
                kind,
                version,
                state,
                definition,
            });
        }
        Ok(out)
    }

    /// The index of every stored document, and the ids of those stored before documents had
    /// one (see [`Store::write_of`] to index them).
    pub fn load_index(&self) -> Result<StoredIndex> {
        let mut stmt = self.conn.prepare(
            "SELECT id, acked, rejected, held, out_of_scope, heads, pending, hub, from_hub
             FROM docs ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(IndexRow {
                id: r.get(0)?,
                acked: r.get(1)?,
                rejected: r.get(2)?,
                held: r.get(3)?,
                out_of_scope: r.get(4)?,
                heads: r.get(5)?,
                pending: r.get(6)?,
                hub: r.get(7)?,
                from_hub: r.get(8)?,
            })
        })?;
        let mut indexed = Vec::new();
        let mut unindexed = Vec::new();
        for row in rows {
            let row = row?;
            let id: DocId = row
                .id
                .parse()
                .map_err(|_| ClientError::Storage(format!("stored document id {}", row.id)))?;
            let Some(heads) = row.heads else {
                unindexed.push(id);
                continue;
            };
            let rejected = self.open_rejection(&id, row.rejected)?;
            indexed.push((
                id,
                DocIndex {
                    acked: heads_from_bytes(&row.acked)?,
                    rejected,
                    held: heads_from_bytes(&row.held)?,
                    out_of_scope: row.out_of_scope,
                    heads: heads_from_bytes(&heads)?,
                    pending: usize::try_from(row.pending).unwrap_or_default(),
                    hub: heads_from_bytes(&row.hub)?,
                    from_hub: heads_from_bytes(&row.from_hub)?,
                },
            ));
        }
        Ok(StoredIndex { indexed, unindexed })
    }

    /// One stored document, opened, with what the server holds of it.
    pub fn load_doc(&self, id: &DocId) -> Result<Option<LocalDoc>> {
        let Some(doc) = read_doc(&self.conn, &self.sealer, id)? else {
            return Ok(None);
        };
        let row = self.conn.query_row(
            "SELECT acked, rejected, held, out_of_scope, hub, from_hub FROM docs WHERE id = ?1",
            [id.to_string()],
            |r| {
                Ok(DocState {
                    acked: r.get(0)?,
                    rejected: r.get(1)?,
                    held: r.get(2)?,
                    out_of_scope: r.get(3)?,
                    hub: r.get(4)?,
                    from_hub: r.get(5)?,
                })
            },
        )?;
        let rejected = self.open_rejection(id, row.rejected)?;
        Ok(Some(LocalDoc {
            acked: heads_from_bytes(&row.acked)?,
            rejected,
            held: heads_from_bytes(&row.held)?,
            out_of_scope: row.out_of_scope,
            hub: heads_from_bytes(&row.hub)?,
            from_hub: heads_from_bytes(&row.from_hub)?,
            ..LocalDoc::new(doc)
        }))
    }

    /// A stored refusal, opened.
    fn open_rejection(&self, id: &DocId, sealed: Option<Vec<u8>>) -> Result<Option<Rejection>> {
        let Some(blob) = sealed else {
            return Ok(None);
        };
        let plain = self.sealer.open(&rejected_aad(id), &blob)?;
        let stored: StoredRejection = serde_json::from_slice(&plain)
            .map_err(|e| ClientError::Storage(format!("stored rejection of {id}: {e}")))?;
        stored.into_rejection().map(Some)
    }

    /// A reader of document bodies on a connection of its own, for a replica's loader: it
    /// sees what was committed.
    pub fn reader(&self) -> Result<DocReader> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(DocReader {
            conn: Mutex::new(conn),
            sealer: self.sealer.clone(),
        })
    }

    /// What storing `local` as it is now writes: the changes since the stored heads (the
    /// whole document when it is new, when the stored heads are not all in it, or when it has
    /// gathered [`MAX_INCREMENTS`] incremental saves), its index and its listing entry.
    pub fn write_of(&self, local: &mut LocalDoc) -> Result<DocWrite> {
        let id = local.doc.id();
        let stored: Option<(Option<Vec<u8>>, i64)> = self
            .conn
            .query_row(
                "SELECT heads, increments FROM docs WHERE id = ?1",
                [id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let save = match stored {
            Some((Some(heads), increments)) if increments < MAX_INCREMENTS => {
                let heads = heads_from_bytes(&heads)?;
                if heads.iter().all(|h| local.doc.has_change(h)) {
                    Save::After(local.doc.save_after(&heads))
                } else {
                    Save::Whole(local.doc.save())
                }
            }
            _ => Save::Whole(local.doc.save()),
        };
        Ok(DocWrite {
            id,
            save,
            summary: DocSummary::of(&local.doc)?,
            conflicts: open_conflicts(&mut local.doc)?,
            index: local.index(),
        })
    }

    /// What `take` makes of the listing entry of every report that has one (with its pending
    /// changes and open conflicts), where it makes something. Entries are opened one at a
    /// time, so a list of 45,000 reports holds what `take` keeps, not every entry's fields.
    pub fn summaries<T>(&self, mut take: impl FnMut(StoredSummary) -> Option<T>) -> Result<Vec<T>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, pending, conflicts, summary FROM docs WHERE summary IS NOT NULL",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, pending, conflicts, sealed) = row?;
            let doc: DocId = id
                .parse()
                .map_err(|_| ClientError::Storage(format!("stored document id {id}")))?;
            let plain = self.sealer.open(&summary_aad(&doc), &sealed)?;
            let summary = serde_json::from_slice(&plain)
                .map_err(|e| ClientError::Storage(format!("stored summary of {id}: {e}")))?;
            out.extend(take(StoredSummary {
                id: doc,
                pending: u64::try_from(pending).unwrap_or_default(),
                conflicts: u32::try_from(conflicts).unwrap_or_default(),
                summary,
            }));
        }
        Ok(out)
    }

    /// Open conflicts over every stored report.
    pub fn open_conflicts(&self) -> Result<u32> {
        let total: i64 =
            self.conn
                .query_row("SELECT coalesce(sum(conflicts), 0) FROM docs", [], |r| {
                    r.get(0)
                })?;
        Ok(u32::try_from(total).unwrap_or(u32::MAX))
    }

    /// Commits a batch in one transaction.
    pub fn commit(&mut self, batch: Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let sealed_docs = batch
            .docs
            .into_iter()
            .map(|row| self.seal_write(row))
            .collect::<Result<Vec<_>>>()?;
        let sealed_states = batch
            .states
            .into_iter()
            .map(|(id, state)| Ok((id, self.seal_state(&id, &state)?)))
            .collect::<Result<Vec<_>>>()?;
        let sealed_discarded = batch
            .discarded
            .into_iter()
            .map(|(doc, copy)| {
                let id = uuid::Uuid::new_v4().to_string();
                let json = serde_json::to_vec(&copy)
                    .map_err(|e| ClientError::Storage(format!("discarded copy: {e}")))?;
                let sealed = self.sealer.seal(&discarded_aad(&id), &json)?;
                Ok((doc, id, sealed))
            })
            .collect::<Result<Vec<_>>>()?;
        let sealed_schemas = batch
            .schemas
            .into_iter()
            .map(|schema| {
                let sealed = schema
                    .definition
                    .map(|json| {
                        let aad = schema_aad(&schema.kind, schema.version);
                        self.sealer.seal(&aad, json.as_bytes())
                    })
                    .transpose()?;
                Ok((schema.kind, schema.version, schema.state, sealed))
            })
            .collect::<Result<Vec<_>>>()?;
        let tx = self.conn.transaction()?;
        for row in sealed_docs {
            write_doc(&tx, &self.sealer, row)?;
        }
        for (id, state) in sealed_states {
            tx.execute(
                "UPDATE docs SET acked = ?2, rejected = ?3, held = ?4, out_of_scope = ?5,
                     pending = ?6, hub = ?7, from_hub = ?8
                 WHERE id = ?1",
                params![
                    id.to_string(),
                    state.acked,
                    state.rejected,
                    state.held,
                    state.out_of_scope,
                    state.pending,
                    state.hub,
                    state.from_hub
                ],
            )?;
        }
        for id in batch.deleted {
            delete_doc(&tx, &id)?;
        }
        for (doc, id, sealed) in sealed_discarded {
            tx.execute(
                "INSERT INTO discarded (id, copy) VALUES (?1, ?2)",
                params![id, sealed],
            )?;
            delete_doc(&tx, &doc)?;
            tx.execute(
                "DELETE FROM attachments WHERE doc_id = ?1",
                [doc.to_string()],
            )?;
        }
        for (kind, version, state, sealed) in sealed_schemas {
            tx.execute(
                "INSERT INTO schemas (kind, version, state, definition) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kind, version) DO UPDATE SET state = excluded.state,
                     definition = coalesce(excluded.definition, schemas.definition)",
                params![kind, version, state.as_str(), sealed],
            )?;
        }
        let mut numbers = Vec::new();
        if let Some(cursor) = batch.cursor {
            numbers.extend([
                ("cursor_since", cursor.since),
                ("cursor_after", cursor.after),
            ]);
        }
        if let Some(cursor) = batch.hub_cursor {
            numbers.extend([("hub_since", cursor.since), ("hub_after", cursor.after)]);
        }
        numbers.extend(batch.receipts_after.map(|after| ("receipts_after", after)));
        numbers.extend(batch.catalogue.map(|digest| ("catalogue", digest)));
        for (key, value) in numbers {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value.to_string().into_bytes()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A document write with its bytes, rejection and summary sealed.
    fn seal_write(&self, row: DocWrite) -> Result<SealedWrite> {
        let (whole, bytes) = match &row.save {
            Save::Whole(bytes) => (true, bytes),
            Save::After(bytes) => (false, bytes),
        };
        let summary = row
            .summary
            .as_ref()
            .map(|summary| {
                let json = serde_json::to_vec(summary)
                    .map_err(|e| ClientError::Storage(format!("summary: {e}")))?;
                self.sealer.seal(&summary_aad(&row.id), &json)
            })
            .transpose()?;
        Ok(SealedWrite {
            id: row.id,
            whole,
            bytes: (whole || !bytes.is_empty()).then(|| bytes.clone()),
            state: self.seal_state(&row.id, &row.index)?,
            heads: heads_to_bytes(&row.index.heads),
            summary,
            conflicts: row.conflicts,
        })
    }

    /// A sync state as its columns hold it: the rejection sealed, heads as bytes.
    fn seal_state(&self, id: &DocId, state: &DocIndex) -> Result<StateColumns> {
        let rejected = state
            .rejected
            .as_ref()
            .map(|r| {
                let json = serde_json::to_vec(&StoredRejection::from(r))
                    .map_err(|e| ClientError::Storage(format!("rejection: {e}")))?;
                self.sealer.seal(&rejected_aad(id), &json)
            })
            .transpose()?;
        Ok(StateColumns {
            acked: heads_to_bytes(&state.acked),
            rejected,
            held: heads_to_bytes(&state.held),
            out_of_scope: state.out_of_scope,
            pending: i64::try_from(state.pending).unwrap_or(i64::MAX),
            hub: heads_to_bytes(&state.hub),
            from_hub: heads_to_bytes(&state.from_hub),
        })
    }

    /// Closes the database and deletes its files (with the WAL and shared-memory files).
    pub fn wipe(self) -> Result<()> {
        let path = self.path.clone();
        drop(self.conn);
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(ClientError::Storage(format!(
                        "cannot delete {}: {e}",
                        PathBuf::from(file).display()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Reads document bodies for a replica's loader (see [`Store::reader`]).
pub struct DocReader {
    conn: Mutex<Connection>,
    sealer: Sealer,
}

impl DocReader {
    pub fn load(&self, id: &DocId) -> Result<Option<ReportDoc>> {
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        read_doc(&conn, &self.sealer, id)
    }
}

/// What [`Store::load_index`] finds.
#[derive(Debug, PartialEq, Eq)]
pub struct StoredIndex {
    pub indexed: Vec<(DocId, DocIndex)>,
    /// Documents stored before the store kept an index.
    pub unindexed: Vec<DocId>,
}

/// A report's listing entry as stored, with the counts kept beside it.
#[derive(Debug, Clone)]
pub struct StoredSummary {
    pub id: DocId,
    pub pending: u64,
    pub conflicts: u32,
    pub summary: DocSummary,
}

/// The `docs` columns [`Store::load_index`] reads.
struct IndexRow {
    id: String,
    acked: Vec<u8>,
    rejected: Option<Vec<u8>>,
    held: Vec<u8>,
    out_of_scope: bool,
    heads: Option<Vec<u8>>,
    pending: i64,
    hub: Vec<u8>,
    from_hub: Vec<u8>,
}

/// The sync-state columns of a `docs` row as read.
struct DocState {
    acked: Vec<u8>,
    rejected: Option<Vec<u8>>,
    held: Vec<u8>,
    out_of_scope: bool,
    hub: Vec<u8>,
    from_hub: Vec<u8>,
}

/// The sync-state columns of a `docs` row, ready to write.
struct StateColumns {
    acked: Vec<u8>,
    rejected: Option<Vec<u8>>,
    held: Vec<u8>,
    out_of_scope: bool,
    pending: i64,
    hub: Vec<u8>,
    from_hub: Vec<u8>,
}

/// A document write, sealed and ready for [`write_doc`].
struct SealedWrite {
    id: DocId,
    whole: bool,
    /// The bytes to store, sealed as they are written; `None` for an incremental save that
    /// adds nothing.
    bytes: Option<Vec<u8>>,
    state: StateColumns,
    heads: Vec<u8>,
    summary: Option<Vec<u8>>,
    conflicts: u32,
}

/// A document's snapshot followed by its incremental saves, opened.
fn read_doc(conn: &Connection, sealer: &Sealer, id: &DocId) -> Result<Option<ReportDoc>> {
    let mut stmt =
        conn.prepare_cached("SELECT n, bytes FROM doc_saves WHERE doc_id = ?1 ORDER BY n")?;
    let saves = stmt.query_map([id.to_string()], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut bytes = Vec::new();
    for save in saves {
        let (n, sealed) = save?;
        bytes.extend(sealer.open(&save_aad(id, n), &sealed)?);
    }
    if bytes.is_empty() {
        return Ok(None);
    }
    ReportDoc::load(*id, &bytes)
        .map(Some)
        .map_err(|e| ClientError::Storage(format!("stored report {id}: {e}")))
}

/// Writes a document: a whole save replaces its snapshot and drops its incremental saves; an
/// incremental one is appended. The index and listing entry are replaced either way.
fn write_doc(tx: &rusqlite::Transaction<'_>, sealer: &Sealer, row: SealedWrite) -> Result<()> {
    let key = row.id.to_string();
    let state = &row.state;
    let exists = tx
        .query_row("SELECT increments FROM docs WHERE id = ?1", [&key], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?;
    match (exists, row.whole) {
        (Some(increments), false) => {
            let mut increments = increments;
            if let Some(bytes) = &row.bytes {
                increments += 1;
                let sealed = sealer.seal(&save_aad(&row.id, increments), bytes)?;
                tx.execute(
                    "INSERT INTO doc_saves (doc_id, n, bytes) VALUES (?1, ?2, ?3)",
                    params![key, increments, sealed],
                )?;
            }
            tx.execute(
                "UPDATE docs SET acked = ?2, rejected = ?3, held = ?4, out_of_scope = ?5,
                     pending = ?6, heads = ?7, conflicts = ?8, summary = ?9, increments = ?10,
                     hub = ?11, from_hub = ?12
                 WHERE id = ?1",
                params![
                    key,
                    state.acked,
                    state.rejected,
                    state.held,
                    state.out_of_scope,
                    state.pending,
                    row.heads,
                    row.conflicts,
                    row.summary,
                    increments,
                    state.hub,
                    state.from_hub
                ],
            )?;
        }
        _ => {
            let Some(bytes) = row.bytes else {
                return Err(ClientError::Storage(format!(
                    "report {key} has no stored snapshot to add to"
                )));
            };
            let sealed = sealer.seal(&save_aad(&row.id, 0), &bytes)?;
            tx.execute("DELETE FROM doc_saves WHERE doc_id = ?1", [&key])?;
            tx.execute(
                "INSERT INTO doc_saves (doc_id, n, bytes) VALUES (?1, 0, ?2)",
                params![key, sealed],
            )?;
            tx.execute(
                "INSERT INTO docs (id, acked, rejected, held, out_of_scope, pending, heads,
                     conflicts, summary, increments, hub, from_hub)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, ?11)
                 ON CONFLICT (id) DO UPDATE SET acked = excluded.acked,
                     rejected = excluded.rejected, held = excluded.held,
                     out_of_scope = excluded.out_of_scope, pending = excluded.pending,
                     heads = excluded.heads, conflicts = excluded.conflicts,
                     summary = excluded.summary, increments = 0, hub = excluded.hub,
                     from_hub = excluded.from_hub",
                params![
                    key,
                    state.acked,
                    state.rejected,
                    state.held,
                    state.out_of_scope,
                    state.pending,
                    row.heads,
                    row.conflicts,
                    row.summary,
                    state.hub,
                    state.from_hub
                ],
            )?;
        }
    }
    Ok(())
}

fn delete_doc(tx: &rusqlite::Transaction<'_>, id: &DocId) -> Result<()> {
    tx.execute("DELETE FROM doc_saves WHERE doc_id = ?1", [id.to_string()])?;
    tx.execute("DELETE FROM docs WHERE id = ?1", [id.to_string()])?;
    Ok(())
}

fn blob_aad(id: &DocId, sha256: &str) -> String {
    format!("attachment:{id}:{sha256}")
}

/// The snapshot keeps the associated data documents had when they were one column.
fn save_aad(id: &DocId, n: i64) -> String {
    if n == 0 {
        format!("doc:{id}")
    } else {
        format!("doc:{id}:{n}")
    }
}

fn summary_aad(id: &DocId) -> String {
    format!("summary:{id}")
}

fn rejected_aad(id: &DocId) -> String {
    format!("rejected:{id}")
}

fn discarded_aad(id: &str) -> String {
    format!("discarded:{id}")
}

fn schema_aad(kind: &str, version: u32) -> String {
    format!("schema:{kind}:{version}")
}

#[derive(Serialize, Deserialize)]
struct StoredRejection {
    code: String,
    reason: String,
    heads: Vec<String>,
}

impl From<&Rejection> for StoredRejection {
    fn from(r: &Rejection) -> Self {
        StoredRejection {
            code: r.code.clone(),
            reason: r.reason.clone(),
            heads: r.heads.iter().map(|h| h.to_string()).collect(),
        }
    }
}

impl StoredRejection {
    fn into_rejection(self) -> Result<Rejection> {
        Ok(Rejection {
            code: self.code,
            reason: self.reason,
            heads: self
                .heads
                .iter()
                .map(|h| {
                    h.parse()
                        .map_err(|_| ClientError::Storage(format!("stored head {h}")))
                })
                .collect::<Result<_>>()?,
        })
    }
}

fn heads_to_bytes(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

fn heads_from_bytes(bytes: &[u8]) -> Result<Vec<ChangeHash>> {
    if !bytes.len().is_multiple_of(32) {
        return Err(ClientError::Storage(format!(
            "stored heads of {} bytes",
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

#[cfg(test)]
mod tests {
    use super::*;
    use gridsync_core::report::Editor;
    use serde_json::json;

    const KEY: [u8; 32] = [3; 32];

    fn report(id: u128) -> LocalDoc {
        let by = Editor::new("u1", 1_000);
        let mut doc =
            ReportDoc::create(DocId::from_u128(id), "dispute_check", 1, "g1", &by).expect("create");
        doc.set_field("parties", &json!("张三 and 李四"), &by)
            .expect("set");
        LocalDoc::new(doc)
    }

    #[test]
    fn documents_cursor_and_session_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), &KEY).unwrap();
        let device = store.device_id().unwrap();
        let mut local = report(1);
        let heads = local.doc.heads();
        local.acked = heads.clone();
        local.rejected = Some(Rejection {
            code: "refused".into(),
            reason: "no".into(),
            heads: heads.clone(),
        });
        let mut batch = Batch::default();
        batch.put_doc(store.write_of(&mut local).unwrap());
        batch.set_cursor(Cursor { since: 7, after: 9 });
        store.commit(batch).unwrap();
        let session = Session {
            access_token: "a".into(),
            refresh_token: "r".into(),
            access_expires_at: 5,
            offline_grant: None,
            revoked_hubs: Vec::new(),
            user: Profile {
                id: "u1".into(),
                username: "wang".into(),
                display_name: "Wang".into(),
                role: "grid_worker".into(),
                org_unit_id: "g1".into(),
                scope_path: "/d/g1/".into(),
                clearance: true,
                device_id: device.clone(),
            },
        };
        store.set_session(Some(&session)).unwrap();
        drop(store);

        let store = Store::open(dir.path(), &KEY).unwrap();
        assert_eq!(store.device_id().unwrap(), device);
        assert_eq!(store.cursor().unwrap(), Cursor { since: 7, after: 9 });
        assert_eq!(store.session().unwrap(), Some(session));
        let StoredIndex {
            indexed: index,
            unindexed,
        } = store.load_index().unwrap();
        assert_eq!((index.len(), unindexed.len()), (1, 0));
        assert_eq!(index[0].1.acked, heads);
        assert_eq!(index[0].1.heads, heads);
        assert_eq!(index[0].1.pending, 0);
        let local = store.load_doc(&index[0].0).unwrap().unwrap();
        assert_eq!(local.acked, heads);
        assert_eq!(local.rejected.as_ref().unwrap().heads, heads);
        assert_eq!(
            local.doc.field("parties").unwrap(),
            Some(json!("张三 and 李四"))
        );
    }

    #[test]
    fn what_the_office_hub_holds_survives_reopening_and_another_hub_starts_from_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), &KEY).unwrap();
        let hub = OfficeHub {
            url: "https://192.168.1.20:8090".into(),
            id: Some("hub-1".into()),
            key: Some("a-key".into()),
        };
        store.set_office_hub(Some(&hub)).unwrap();
        let mut local = report(1);
        let heads = local.doc.heads();
        local.hub = heads.clone();
        local.from_hub = heads.clone();
        let mut batch = Batch::default();
        batch.put_doc(store.write_of(&mut local).unwrap());
        batch.set_hub_cursor(Cursor { since: 4, after: 5 });
        batch.set_receipts_after(12);
        store.commit(batch).unwrap();
        drop(store);

        let mut store = Store::open(dir.path(), &KEY).unwrap();
        assert_eq!(store.office_hub().unwrap(), Some(hub));
        assert_eq!(store.hub_cursor().unwrap(), Cursor { since: 4, after: 5 });
        assert_eq!(store.receipts_after().unwrap(), 12);
        assert_eq!(
            store.cursor().unwrap(),
            Cursor::default(),
            "central's is apart"
        );
        let index = store.load_index().unwrap().indexed;
        assert_eq!((&index[0].1.hub, &index[0].1.from_hub), (&heads, &heads));
        let loaded = store.load_doc(&index[0].0).unwrap().unwrap();
        assert_eq!(
            (loaded.hub, loaded.from_hub),
            (heads.clone(), heads.clone())
        );

        let other = OfficeHub {
            url: "https://192.168.1.30:8090".into(),
            id: None,
            key: None,
        };
        store.set_office_hub(Some(&other)).unwrap();
        assert_eq!(store.hub_cursor().unwrap(), Cursor::default());
        assert_eq!(store.receipts_after().unwrap(), 0);
        let index = store.load_index().unwrap().indexed;
        assert!(index[0].1.hub.is_empty());
        assert_eq!(
            index[0].1.from_hub, heads,
            "someone else's work stays theirs"
        );
    }

    #[test]
    fn an_edit_appends_its_change_and_the_document_is_saved_whole_every_32_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), &KEY).unwrap();
        let by = Editor::new("u1", 2_000);
        let mut local = report(1);
        // A long description: a whole save costs it, an incremental one does not.
        let long: String = (0..4_000u32)
            .filter_map(|i| char::from_u32(0x4e00 + i * 7_919 % 20_000))
            .collect();
        local
            .doc
            .set_field("description", &json!(long), &by)
            .unwrap();
        let first = store.write_of(&mut local).unwrap();
        assert!(matches!(&first.save, Save::Whole(bytes) if bytes.len() > 1_000));
        let mut batch = Batch::default();
        batch.put_doc(first);
        store.commit(batch).unwrap();
        for i in 1..=MAX_INCREMENTS + 1 {
            local
                .doc
                .set_field("parties", &json!(format!("第 {i} 次")), &by)
                .unwrap();
            let write = store.write_of(&mut local).unwrap();
            match &write.save {
                Save::After(bytes) if i <= MAX_INCREMENTS => assert!(bytes.len() < 300),
                Save::Whole(_) if i > MAX_INCREMENTS => {}
                other => panic!("write {i}: {other:?}"),
            }
            let mut batch = Batch::default();
            batch.put_doc(write);
            store.commit(batch).unwrap();
            let saves: i64 = store
                .conn
                .query_row("SELECT count(*) FROM doc_saves", [], |r| r.get(0))
                .unwrap();
            // The snapshot and the incremental saves after it.
            assert_eq!(saves, 1 + i % (MAX_INCREMENTS + 1));
            let mut stored = store.load_doc(&local.doc.id()).unwrap().unwrap();
            assert_eq!(stored.doc.heads(), local.doc.heads());
            assert_eq!(
                stored.doc.field("parties").unwrap(),
                Some(json!(format!("第 {i} 次")))
            );
        }
        let index = store.load_index().unwrap().indexed;
        assert_eq!(index[0].1.heads, local.doc.heads());
        assert_eq!(index[0].1.pending, local.pending());
    }

    #[test]
    fn a_version_2_store_is_upgraded_and_keeps_its_reports() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), &KEY).unwrap();
        let mut batch = Batch::default();
        batch.put_doc(store.write_of(&mut report(1)).unwrap());
        store.commit(batch).unwrap();
        store
            .conn
            .execute_batch(
                "ALTER TABLE docs ADD COLUMN bytes BLOB NOT NULL DEFAULT x'';
                 UPDATE docs SET bytes =
                     (SELECT bytes FROM doc_saves WHERE doc_id = docs.id AND n = 0);
                 DROP TABLE doc_saves; ALTER TABLE docs DROP COLUMN heads;
                 ALTER TABLE docs DROP COLUMN pending; ALTER TABLE docs DROP COLUMN conflicts;
                 ALTER TABLE docs DROP COLUMN summary; ALTER TABLE docs DROP COLUMN increments;
                 DROP TABLE discarded; DROP TABLE schemas; ALTER TABLE docs DROP COLUMN held;
                 ALTER TABLE docs DROP COLUMN out_of_scope; ALTER TABLE docs DROP COLUMN hub;
                 ALTER TABLE docs DROP COLUMN from_hub; PRAGMA user_version = 2;",
            )
            .unwrap();
        drop(store);

        let mut store = Store::open(dir.path(), &KEY).unwrap();
        // Stored before documents had an index: the client indexes it when it opens.
        let StoredIndex {
            indexed: index,
            unindexed,
        } = store.load_index().unwrap();
        assert_eq!((index.len(), unindexed.len()), (0, 1));
        assert!(store.load_doc(&unindexed[0]).unwrap().is_some());
        assert_eq!(store.grids().unwrap(), None);
        let mut local = report(1);
        let copy = DiscardedCopy {
            format: DISCARDED_FORMAT.into(),
            report_id: local.doc.id().to_string(),
            discarded_by: "u1".into(),
            discarded_at: "2025-01-01T00:00:00Z".into(),
            rejected: None,
            report: local.doc.to_json().unwrap(),
            document: local.doc.save(),
            attachments: vec![DiscardedAttachment {
                sha256: "a".repeat(64),
                media_type: "image/jpeg".into(),
                bytes: vec![0, 255, 7],
            }],
        };
        let mut batch = Batch::default();
        batch.discard(local.doc.id(), copy.clone());
        store.commit(batch).unwrap();
        assert_eq!(
            store.load_index().unwrap(),
            StoredIndex {
                indexed: vec![],
                unindexed: vec![]
            }
        );
        drop(store);
        let store = Store::open(dir.path(), &KEY).unwrap();
        assert_eq!(store.discarded().unwrap(), vec![copy]);
        store.drop_discarded().unwrap();
        assert!(store.discarded().unwrap().is_empty());
    }

    #[test]
    fn the_file_holds_no_plaintext_of_reports_or_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), &KEY).unwrap();
        let mut batch = Batch::default();
        batch.put_doc(store.write_of(&mut report(1)).unwrap());
        store.commit(batch).unwrap();
        let mut session_token = String::from("refresh-");
        session_token.push_str("SECRETTOKEN");
        store
            .set_session(Some(&Session {
                access_token: "x".into(),
                refresh_token: session_token,
                access_expires_at: 0,
                offline_grant: None,
                revoked_hubs: Vec::new(),
                user: Profile {
                    id: "u".into(),
                    username: "u".into(),
                    display_name: "u".into(),
                    role: "grid_worker".into(),
                    org_unit_id: "g".into(),
                    scope_path: "/".into(),
                    clearance: true,
                    device_id: "d".into(),
                },
            }))
            .unwrap();
        drop(store);
        let mut bytes = std::fs::read(dir.path().join(DB_FILE)).unwrap();
        if let Ok(wal) = std::fs::read(dir.path().join(format!("{DB_FILE}-wal"))) {
            bytes.extend(wal);
        }
        for needle in ["张三".as_bytes(), b"SECRETTOKEN", b"dispute_check"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} is stored in the clear",
                String::from_utf8_lossy(needle)
            );
        }
    }

    #[test]
    fn fetched_kinds_and_the_catalogue_digest_survive_reopening_with_definitions_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), &KEY).unwrap();
        assert_eq!(store.catalogue().unwrap(), 0);
        assert!(store.schemas().unwrap().is_empty());
        let lamp = StoredSchema {
            kind: "street_lamp".into(),
            version: 1,
            state: SchemaState::Published,
            definition: Some(r#"{"label": "路灯 SECRETLABEL"}"#.into()),
        };
        let builtin = StoredSchema {
            kind: "dispute_check".into(),
            version: 1,
            state: SchemaState::Published,
            definition: None,
        };
        let mut batch = Batch::default();
        batch.put_schema(lamp.clone());
        batch.put_schema(builtin.clone());
        batch.set_catalogue(u64::MAX);
        store.commit(batch).unwrap();
        // A retirement comes without the definition, which stays.
        let mut batch = Batch::default();
        batch.put_schema(StoredSchema {
            state: SchemaState::Retired,
            definition: None,
            ..lamp.clone()
        });
        store.commit(batch).unwrap();
        drop(store);

        let store = Store::open(dir.path(), &KEY).unwrap();
        assert_eq!(store.catalogue().unwrap(), u64::MAX);
        let retired = StoredSchema {
            state: SchemaState::Retired,
            ..lamp
        };
        assert_eq!(store.schemas().unwrap(), [builtin, retired]);
        drop(store);
        let mut bytes = std::fs::read(dir.path().join(DB_FILE)).unwrap();
        if let Ok(wal) = std::fs::read(dir.path().join(format!("{DB_FILE}-wal"))) {
            bytes.extend(wal);
        }
        assert!(!bytes.windows(11).any(|w| w == b"SECRETLABEL"));
    }

    #[test]
    fn the_last_user_outlives_the_session_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), &KEY).unwrap();
        assert_eq!(store.last_user().unwrap(), None);
        let session = Session {
            access_token: "a".into(),
            refresh_token: "r".into(),
            access_expires_at: 5,
            offline_grant: None,
            revoked_hubs: Vec::new(),
            user: Profile {
                id: "u1".into(),
                username: "wang".into(),
                display_name: "SECRETNAME".into(),
                role: "grid_worker".into(),
                org_unit_id: "g1".into(),
                scope_path: "/d/g1/".into(),
                clearance: true,
                device_id: "d".into(),
            },
        };
        store.start_session(&session).unwrap();
        store.set_session(None).unwrap();
        drop(store);

        let store = Store::open(dir.path(), &KEY).unwrap();
        assert_eq!(store.session().unwrap(), None);
        assert_eq!(store.last_user().unwrap(), Some(session.user));
        drop(store);
        let mut bytes = std::fs::read(dir.path().join(DB_FILE)).unwrap();
        if let Ok(wal) = std::fs::read(dir.path().join(format!("{DB_FILE}-wal"))) {
            bytes.extend(wal);
        }
        assert!(!bytes.windows(10).any(|w| w == b"SECRETNAME"));
    }

    #[test]
    fn a_wrong_key_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path(), &KEY).unwrap());
        let err = Store::open(dir.path(), &[4; 32]).unwrap_err();
        assert!(matches!(err, ClientError::WrongKey(_)), "{err:?}");
    }

    #[test]
    fn wiping_deletes_the_database_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), &KEY).unwrap();
        let mut batch = Batch::default();
        batch.put_doc(store.write_of(&mut report(1)).unwrap());
        store.commit(batch).unwrap();
        store.wipe().unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let store = Store::open(dir.path(), &KEY).unwrap();
        assert_eq!(
            store.load_index().unwrap(),
            StoredIndex {
                indexed: vec![],
                unindexed: vec![]
            }
        );
    }

    fn blob(id: u128, sha: char, size: u64, pending: bool) -> LocalBlob {
        LocalBlob {
            doc_id: DocId::from_u128(id),
            sha256: sha.to_string().repeat(64),
            media_type: "image/jpeg".into(),
            size,
            pending,
        }
    }

    #[test]
    fn the_cache_evicts_least_recently_used_fetched_attachments_and_never_pending_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &KEY).unwrap();
        let pending = blob(1, 'a', 400, true);
        store.put_attachment(&pending, &[1; 400], 10).unwrap();
        for (i, sha) in ['b', 'c', 'd'].into_iter().enumerate() {
            store
                .put_attachment(&blob(1, sha, 300, false), &[2; 300], 20 + i as i64)
                .unwrap();
        }
        // Reading `b` makes it the most recently used.
        let b = blob(1, 'b', 300, false);
        assert_eq!(
            store.attachment_bytes(&b.doc_id, &b.sha256, 30).unwrap(),
            Some(vec![2; 300])
        );
        assert_eq!(store.evict_cache(600).unwrap(), 1);
        let left: Vec<char> = store
            .attachments()
            .unwrap()
            .iter()
            .map(|b| b.sha256.chars().next().unwrap())
            .collect();
        assert_eq!(left, ['a', 'd', 'b']);
        assert_eq!(store.evict_cache(0).unwrap(), 2);
        assert_eq!(store.attachments().unwrap(), std::slice::from_ref(&pending));
        store
            .mark_uploaded(&pending.doc_id, &pending.sha256)
            .unwrap();
        assert_eq!(store.evict_cache(0).unwrap(), 1);
    }

    #[test]
    fn attachment_bytes_are_sealed_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &KEY).unwrap();
        let secret = "签字的调解协议书 signed agreement".repeat(20);
        store
            .put_attachment(
                &blob(1, 'e', secret.len() as u64, true),
                secret.as_bytes(),
                1,
            )
            .unwrap();
        drop(store);
        let mut raw = Vec::new();
        for suffix in ["", "-wal"] {
            let mut file = dir.path().join(DB_FILE).into_os_string();
            file.push(suffix);
            raw.extend(std::fs::read(file).unwrap_or_default());
        }
        let needle = "signed agreement".as_bytes();
        assert!(!raw.windows(needle.len()).any(|w| w == needle));
        let store = Store::open(dir.path(), &KEY).unwrap();
        let b = blob(1, 'e', 0, true);
        assert_eq!(
            store.attachment_bytes(&b.doc_id, &b.sha256, 2).unwrap(),
            Some(secret.into_bytes())
        );
    }
}
