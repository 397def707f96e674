//! Gridsync's field client for the Android and iOS apps, exported through UniFFI.
//!
//! [`FieldClient`] is the one object the app holds: each method is one line over
//! [`client::Client`], which holds the logic (tested in Rust) over the local [`store`] (SQLite,
//! sealed with [`seal`]) and the [`transport`] (HTTP over rustls). [`model`] has the records
//! the app sees; [`error::ClientError`] is the one error every call returns; [`folder_lock`]
//! keeps a data directory to one client.

pub mod client;
pub mod error;
pub mod folder_lock;
pub mod hub_tls;
pub mod model;
pub mod seal;
pub mod store;
pub mod summary;
pub mod transport;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

pub use error::{ClientError, Result};
pub use model::*;

uniffi::setup_scaffolding!();

/// The offline field client of one phone: its reports, its session and sync. One per data
/// directory (a second one there fails with `InUse`); every method may be called from any
/// thread, and `sync` may run on a background thread while the UI keeps editing.
#[derive(Debug, uniffi::Object)]
pub struct FieldClient {
    inner: client::Client,
}

#[uniffi::export]
impl FieldClient {
    /// Opens (or creates) the phone's encrypted store in `data_dir`. `db_key` is 32 bytes kept in
    /// the platform keystore; another key fails with `WrongKey`.
    #[uniffi::constructor]
    pub fn new(data_dir: String, server_url: String, db_key: Vec<u8>) -> Result<Arc<Self>> {
        Self::with_config(data_dir, server_url, db_key, default_client_config())
    }

    /// Like `new`, with timeouts, retries and page sizes of your choosing.
    #[uniffi::constructor]
    pub fn with_config(
        data_dir: String,
        server_url: String,
        db_key: Vec<u8>,
        config: ClientConfig,
    ) -> Result<Arc<Self>> {
        let inner = client::Client::open(Path::new(&data_dir), &server_url, &db_key, config)?;
        Ok(Arc::new(FieldClient { inner }))
    }

    /// The id this installation registers with the server; made once and kept.
    pub fn device_id(&self) -> Result<String> {
        self.inner.device_id()
    }

    /// Logs in and registers this device; the session is kept across restarts. Another user than
    /// the last one is refused with `UnsentWork` while the last user's work is unsent.
    pub fn login(
        &self,
        username: String,
        password: String,
        device_name: String,
    ) -> Result<UserInfo> {
        self.inner.login(&username, &password, &device_name)
    }

    /// Ends the session (on the server too when reachable); local reports stay.
    pub fn logout(&self) -> Result<()> {
        self.inner.logout()
    }

    /// The logged-in user and their scope, `None` when logged out or the session ended.
    pub fn current_user(&self) -> Option<UserInfo> {
        self.inner.current_user()
    }

    /// The grant the server gave this device at its last login or refresh, which lets it log in
    /// at a village office hub while the server is out of reach (a JWS naming the user, the
    /// device's key, the hub units and an expiry); `None` when logged out or for roles no hub
    /// serves.
    pub fn offline_grant(&self) -> Option<String> {
        self.inner.offline_grant()
    }

    /// The user who logged in here last, kept after logout: new edits are theirs.
    pub fn last_user(&self) -> Option<UserInfo> {
        self.inner.last_user()
    }

    /// The grids a new report may use (for the grid picker); empty until fetched at login.
    pub fn grids(&self) -> Result<Vec<GridInfo>> {
        self.inner.grids()
    }

    /// Fetches the user's grids again, after the office moved the user or changed the tree.
    pub fn refresh_grids(&self) -> Result<Vec<GridInfo>> {
        self.inner.refresh_grids()
    }

    /// Creates a report of `kind` for `grid`; returns its id. A grid not among `grids()` or a
    /// NUL in it fails with `Refused` and the server's code. Edits need no session: they are
    /// the last user's.
    pub fn create_report(&self, kind: String, grid: String) -> Result<String> {
        self.inner.create_report(&kind, &grid)
    }

    /// A report: typed field values, its log and its JSON projection.
    pub fn report(&self, id: String) -> Result<Report> {
        self.inner.report(&id)
    }

    /// Sets one field; `None` clears it. Values that do not fit the field are refused.
    pub fn set_field(&self, id: String, field: String, value: Option<FieldValue>) -> Result<()> {
        self.inner.set_field(&id, &field, value)
    }

    /// Sets several fields as one change (a form saved at once).
    pub fn set_fields(&self, id: String, values: HashMap<String, FieldValue>) -> Result<()> {
        self.inner.set_fields(&id, values)
    }

    /// Appends a log entry (mediation step, visit); returns the entry's id.
    pub fn append_log(&self, id: String, values: HashMap<String, FieldValue>) -> Result<String> {
        self.inner.append_log(&id, values)
    }

    /// Changes fields of a log entry.
    pub fn edit_log(
        &self,
        id: String,
        entry_id: String,
        values: HashMap<String, FieldValue>,
    ) -> Result<()> {
        self.inner.edit_log(&id, &entry_id, values)
    }

    pub fn remove_log(&self, id: String, entry_id: String) -> Result<()> {
        self.inner.remove_log(&id, &entry_id)
    }

    /// The tasks the office set for this phone's grid or user, open ones first, with progress.
    pub fn tasks(&self) -> Result<Vec<TaskItem>> {
        self.inner.tasks()
    }

    /// Marks a free task done, with a note.
    pub fn complete_task(&self, id: String, note: Option<String>) -> Result<()> {
        self.inner.complete_task(&id, note)
    }

    /// Local reports, newest first; of one kind when `kind` is given.
    pub fn list_reports(&self, kind: Option<String>) -> Result<Vec<ReportSummary>> {
        self.inner.list_reports(kind)
    }

    /// Local reports containing every word of `query`.
    pub fn search_reports(&self, query: String) -> Result<Vec<ReportSummary>> {
        self.inner.search_reports(&query)
    }

    /// Every report kind new reports may use (its latest version not retired), for drawing forms.
    pub fn schemas(&self) -> Vec<KindSchema> {
        self.inner.schemas()
    }

    /// Fetches the server's report kinds the phone lacks without a whole sync; returns `schemas()`.
    pub fn refresh_schemas(&self) -> Result<Vec<KindSchema>> {
        self.inner.refresh_schemas()
    }

    pub fn schema(&self, kind: String) -> Result<KindSchema> {
        self.inner.schema(&kind)
    }

    /// Problems of a report against its schema, per field path.
    pub fn validate_report(&self, id: String) -> Result<Vec<ValidationProblem>> {
        self.inner.validate_report(&id)
    }

    /// Problems of one value for a field (a log field when `log`), while the user types.
    pub fn validate_value(
        &self,
        kind: String,
        field: String,
        log: bool,
        value: Option<FieldValue>,
    ) -> Result<Vec<ValidationProblem>> {
        self.inner.validate_value(&kind, &field, log, value)
    }

    /// Fields of a report holding concurrent values, and log entries edited after their removal.
    pub fn conflicts(&self, id: String) -> Result<Vec<FieldConflict>> {
        self.inner.conflicts(&id)
    }

    /// Resolves a conflict with a value (JSON, e.g. one of the `value_json` offered; for an
    /// entry edited after its removal `"restore"` or `null`); synced like any edit.
    pub fn resolve_conflict(&self, id: String, path: String, value_json: String) -> Result<()> {
        self.inner.resolve_conflict(&id, &path, &value_json)
    }

    /// Local changes the server has not acknowledged yet.
    pub fn attach_file(
        &self,
        id: String,
        attachment: NewAttachment,
        path: String,
    ) -> Result<String> {
        self.inner.attach_file(&id, attachment, &path)
    }

    pub fn attach_bytes(
        &self,
        id: String,
        attachment: NewAttachment,
        bytes: Vec<u8>,
    ) -> Result<String> {
        self.inner.attach_bytes(&id, attachment, &bytes)
    }

    pub fn detach(&self, id: String, sha256: String) -> Result<()> {
        self.inner.detach(&id, &sha256)
    }

    pub fn attachments(&self, id: String) -> Result<Vec<AttachmentInfo>> {
        self.inner.attachments(&id)
    }

    pub fn fetch_attachment(&self, id: String, sha256: String) -> Result<Vec<u8>> {
        self.inner.fetch_attachment(&id, &sha256)
    }

    pub fn pending_changes(&self) -> u64 {
        self.inner.pending_changes()
    }

    /// Reports the server refused, with code and reason: edit, move or discard them.
    pub fn stuck_reports(&self) -> Result<Vec<StuckReport>> {
        self.inner.stuck_reports()
    }

    /// Files a report the server never accepted under another grid; returns the new id.
    pub fn move_report(&self, id: String, grid: String) -> Result<String> {
        self.inner.move_report(&id, &grid)
    }

    /// Removes a refused or never-sent report; its copy stays until the next successful sync.
    pub fn discard_report(&self, id: String) -> Result<()> {
        self.inner.discard_report(&id)
    }

    /// Copies of reports discarded since the last successful sync, each with a JSON export.
    pub fn discarded_reports(&self) -> Result<Vec<DiscardedReport>> {
        self.inner.discarded_reports()
    }

    /// Sets the village office hub (`http://…` on the office network) that `sync` falls back
    /// to when the server is out of reach, or none.
    pub fn set_office_hub(&self, url: Option<String>) -> Result<()> {
        self.inner.set_office_hub(url)
    }

    /// The office hub's address, when one is set.
    pub fn office_hub(&self) -> Result<Option<String>> {
        self.inner.office_hub()
    }

    /// Pushes and pulls with the server, or, when it is out of reach, with the office hub (see
    /// `SyncSummary.via_hub`). Offline it fails with `Network` and loses nothing.
    pub fn sync(&self) -> Result<SyncSummary> {
        self.inner.sync(None)
    }

    /// Like `sync`, telling `listener` after each request.
    pub fn sync_with_progress(&self, listener: Box<dyn SyncListener>) -> Result<SyncSummary> {
        self.inner.sync(Some(&listener))
    }
}
