//! The field client: a sync-core [`Replica`] kept in memory and mirrored to the local [`Store`]
//! after every action, the session, and sync with the server over the [`Transport`].
//!
//! Every user action is one store transaction, written before the call returns. Sync takes
//! the state lock only to build a request and to apply its answer, never across the network,
//! so the app can keep editing while a sync runs; a second sync waits for the first.
//!
//! Sync pushes every pending change (acknowledged heads committed after each push result), then
//! pulls pages until the server has nothing more (each page's documents committed together with
//! the cursor past them). Cut anywhere, the next sync resumes from what was committed: a push
//! sent again is a no-op at the server, a page pulled again merges to the same documents.
//!
//! Sessions: an access token past its expiry (or refused as expired, or its session as ended)
//! is exchanged once for a new pair, which is stored before it is used; a refresh that got no answer is sent once more
//! with the same token (the server's grace window takes it); a refused refresh ends the
//! session and touches no local data. Editing needs no session: edits are the last logged-in
//! user's, and their next login syncs them. Another user may log in only when the last one
//! has nothing unsent; the phone then starts over empty. A server that says `device_revoked`
//! gets this phone's data deleted: the database file goes, and a fresh, empty store with a new
//! device id takes its place. The data folder stays locked to this client throughout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gridsync_core::DocId;
use gridsync_core::conflict::FieldPath;
use gridsync_core::protocol::{self, Message, PullResult, PushOutcome, PushResult};
use gridsync_core::replica::{LocalDoc, Replica};
use gridsync_core::report::{Editor, LOG_ENTRY_KEYS, ReportDoc};
use gridsync_core::schema::{ProblemCode, Registry, Schema};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use crate::error::{ClientError, Result};
use crate::folder_lock::FolderLock;
use crate::model::{
    self, ClientConfig, ConflictValue, FieldConflict, FieldValue, HeldReport, KindSchema, LogEntry,
    RejectedReport, Report, ReportSummary, ServerRefusal, SyncPhase, SyncProgress, SyncSummary,
    UserInfo, ValidationProblem,
};
use crate::store::{Batch, Profile, Session, Store, SyncState};
use crate::transport::{Answer, Settings, Traffic, Transport};

mod attachments;
mod grids;
mod refusals;
mod stuck;

const FRAME: &str = "application/x-gridsync";
/// The header in which a sync says how many changes this phone holds undelivered.
const PENDING_HEADER: &str = "x-gridsync-pending";
const JSON: &str = "application/json";
/// Refresh this long before the access token's stated expiry, for clock skew and slow links.
const EXPIRY_MARGIN_SECS: i64 = 30;
/// Upper bounds on the rounds of one sync, so a server that never says "done" cannot spin it.
const MAX_PUSH_ROUNDS: u32 = 10_000;
const MAX_PULL_PAGES: u32 = 100_000;

/// Receives sync progress; the FFI callback interface implements it.
pub trait Progress {
    fn progress(&self, progress: SyncProgress);
}

impl Progress for Box<dyn model::SyncListener> {
    fn progress(&self, progress: SyncProgress) {
        self.on_progress(progress);
    }
}

/// What the lock guards.
struct State {
    /// `None` only while the store is being wiped.
    store: Option<Store>,
    replica: Replica,
    session: Option<Session>,
    /// Who logged in here last. Local edits are theirs, with or without a session: a worker
    /// whose session ended in a dead zone keeps working, and their next login syncs it.
    last_user: Option<Profile>,
}

impl State {
    fn store(&mut self) -> Result<&mut Store> {
        self.store
            .as_mut()
            .ok_or_else(|| ClientError::Storage("the local store is closed".into()))
    }

    /// The user of the live session: talking to the server needs one.
    fn user(&self) -> Result<&Profile> {
        self.session
            .as_ref()
            .map(|s| &s.user)
            .ok_or_else(|| ClientError::Unauthorized("log in first".into()))
    }

    fn editor(&self) -> Result<Editor> {
        let author = self.last_user.as_ref().ok_or_else(|| {
            ClientError::Unauthorized("nobody has logged in on this phone yet; log in first".into())
        })?;
        Ok(Editor::new(author.id.clone(), now()))
    }

    /// Changes and attachments not yet on the server: work that a wipe would destroy.
    fn unsent(&mut self) -> Result<Unsent> {
        let uploads = match &self.store {
            Some(store) => store.attachments()?.iter().filter(|b| b.pending).count(),
            None => 0,
        };
        Ok(Unsent {
            changes: self.replica.pending(),
            uploads,
        })
    }

    fn end_session(&mut self) -> Result<()> {
        self.store()?.set_session(None)?;
        self.session = None;
        Ok(())
    }
}

/// What this phone holds that the server has not received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unsent {
    changes: usize,
    /// Attachments whose bytes wait for upload.
    uploads: usize,
}

impl Unsent {
    fn is_empty(self) -> bool {
        self.changes == 0 && self.uploads == 0
    }

    /// The refusal of another user's login over this work of `owner`.
    fn refuse_handover(self, owner: Option<&Profile>) -> ClientError {
        let owner = owner.map_or_else(|| "the last user".to_owned(), |p| p.display_name.clone());
        ClientError::UnsentWork(format!(
            "this phone holds {} unsent changes and {} attachments waiting for upload of {owner}; \
             they must log in and sync before anyone else logs in here",
            self.changes, self.uploads
        ))
    }
}

/// The offline field client of one phone (one data directory).
pub struct Client {
    /// Held as long as the client lives, through wipes.
    _folder: FolderLock,
    dir: PathBuf,
    key: Vec<u8>,
    transport: Transport,
    config: ClientConfig,
    registry: Registry,
    state: Mutex<State>,
    sync_lock: Mutex<()>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("dir", &self.dir)
            .field("server", &self.transport.base())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Opens the phone's store in `dir` under `key` (32 bytes from the platform keystore).
    /// `InUse` while another client has `dir` open.
    pub fn open(dir: &Path, server_url: &str, key: &[u8], config: ClientConfig) -> Result<Client> {
        let transport = Transport::new(
            server_url,
            Settings {
                connect_timeout: Duration::from_millis(config.connect_timeout_ms),
                request_timeout: Duration::from_millis(config.request_timeout_ms),
                max_attempts: config.max_attempts,
                base_delay: Duration::from_millis(config.retry_base_delay_ms),
                max_delay: Duration::from_secs(8),
            },
        )?;
        let folder = FolderLock::acquire(dir)?;
        let store = Store::open(dir, key)?;
        store.device_id()?;
        let state = load_state(store)?;
        Ok(Client {
            _folder: folder,
            dir: dir.to_owned(),
            key: key.to_vec(),
            transport,
            config,
            registry: Registry::builtin(),
            state: Mutex::new(state),
            sync_lock: Mutex::new(()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the in-memory state as the last committed
        // store write left it or ahead of it; carrying on is safe.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    // ---- session ----

    pub fn device_id(&self) -> Result<String> {
        self.lock().store()?.device_id()
    }

    /// Logs in on this device (registering it at the first login) and keeps the session.
    pub fn login(&self, username: &str, password: &str, device_name: &str) -> Result<UserInfo> {
        let _sync = self.sync_guard();
        let mut traffic = Traffic::default();
        match self.try_login(username, password, device_name, &mut traffic) {
            Err(ClientError::Invalid(msg)) if msg == DEVICE_TAKEN => {
                // This phone changed hands. Start over under a new device id, unless that would
                // lose the last user's unsent work; never let the two users' work mix.
                {
                    let mut state = self.lock();
                    let unsent = state.unsent()?;
                    if !unsent.is_empty() {
                        return Err(unsent.refuse_handover(state.last_user.as_ref()));
                    }
                }
                self.reset_local_data()?;
                self.try_login(username, password, device_name, &mut traffic)
            }
            other => other,
        }
        .and_then(|info| self.grids_after_login(info))
    }

    fn try_login(
        &self,
        username: &str,
        password: &str,
        device_name: &str,
        traffic: &mut Traffic,
    ) -> Result<UserInfo> {
        let device_id = self.device_id()?;
        let body = json!({
            "username": username, "password": password,
            "device_id": device_id, "device_name": device_name,
        });
        let answer = self.transport.post(
            "/api/v1/auth/login",
            JSON,
            body.to_string().as_bytes(),
            None,
            traffic,
        )?;
        if !answer.ok() {
            let problem = answer.problem();
            return Err(match problem.code.as_str() {
                "device_revoked" => self.wipe_revoked()?,
                "device_taken" => ClientError::Invalid(DEVICE_TAKEN.into()),
                "invalid_credentials" | "account_disabled" | "rate_limited" => {
                    ClientError::Unauthorized(problem.detail)
                }
                _ => unexpected(&answer),
            });
        }
        let tokens: Tokens = parse_json(&answer)?;
        let access_expires_at = now() + i64::try_from(tokens.expires_in).unwrap_or(i64::MAX / 2);
        let me = self
            .transport
            .get("/api/v1/me", Some(&tokens.access_token), traffic)?;
        if !me.ok() {
            return Err(unexpected(&me));
        }
        let user: Profile = parse_json(&me)?;
        let handed_over = self
            .lock()
            .last_user
            .as_ref()
            .is_some_and(|last| last.id != user.id);
        if handed_over {
            // The server knew this device under no one or under this user (its database was
            // replaced, say), yet the phone's data is another user's: a handover all the same.
            let _ = self.transport.post_once(
                "/api/v1/auth/logout",
                JSON,
                b"",
                Some(&tokens.access_token),
                traffic,
            );
            return Err(ClientError::Invalid(DEVICE_TAKEN.into()));
        }
        let session = Session {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            access_expires_at,
            user,
        };
        let mut state = self.lock();
        state.store()?.start_session(&session)?;
        let info = user_info(&session.user);
        state.last_user = Some(session.user.clone());
        state.session = Some(session);
        Ok(info)
    }

    /// Ends the session here and, when the server is reachable, there. Local reports stay, and
    /// the user stays the author of local edits until someone else logs in.
    pub fn logout(&self) -> Result<()> {
        let _sync = self.sync_guard();
        let session = self.lock().session.clone();
        if let Some(session) = session {
            // Best effort, one try: being offline must not keep anyone logged in.
            let _ = self.transport.post_once(
                "/api/v1/auth/logout",
                JSON,
                b"",
                Some(&session.access_token),
                &mut Traffic::default(),
            );
        }
        self.lock().end_session()
    }

    /// The user of the live session; `None` when logged out or the session ended.
    pub fn current_user(&self) -> Option<UserInfo> {
        self.lock().session.as_ref().map(|s| user_info(&s.user))
    }

    /// The user who logged in here last, session or not: the author of local edits.
    pub fn last_user(&self) -> Option<UserInfo> {
        self.lock().last_user.as_ref().map(user_info)
    }

    // ---- reports ----

    /// Creates a report of `kind` for `grid`, authored by the logged-in user.
    pub fn create_report(&self, kind: &str, grid: &str) -> Result<String> {
        let schema = self.schema_of(kind)?;
        if grid.trim().is_empty() {
            return Err(ClientError::Invalid("a report needs a grid".into()));
        }
        let mut state = self.lock();
        let by = state.editor()?;
        refusals::check_grid(&mut state, &by.user, grid)?;
        let id = DocId::new_v4();
        let doc = ReportDoc::create(id, kind, schema.version, grid, &by)?;
        state.replica.insert(doc);
        if let Err(e) = persist_doc(&mut state, &id) {
            // Not stored, so it must not exist in memory either.
            let replica = rebuild(&mut state)?;
            state.replica = replica;
            return Err(e);
        }
        Ok(id.to_string())
    }

    pub fn report(&self, id: &str) -> Result<Report> {
        let id = parse_id(id)?;
        let local = self
            .lock()
            .replica
            .get(&id)
            .ok_or_else(|| not_found(&id))?
            .clone();
        self.report_of(local)
    }

    fn report_of(&self, mut local: LocalDoc) -> Result<Report> {
        let meta = local.doc.meta()?;
        let projection = local.doc.to_json()?;
        let schema = self.registry.get(&meta.kind, meta.schema_version);
        let empty = Map::new();
        let fields_map = projection["fields"].as_object().unwrap_or(&empty);
        let defs = schema.map(|s| s.fields.as_slice()).unwrap_or_default();
        let log_defs = schema
            .and_then(|s| s.log.as_ref())
            .map(|l| l.fields.as_slice())
            .unwrap_or_default();
        let log = projection["log"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(Json::as_object)
            .map(|entry| LogEntry {
                id: text(entry.get("id")),
                created_by: text(entry.get("created_by")),
                created_at: text(entry.get("created_at")),
                fields: model::entries(log_defs, entry, &LOG_ENTRY_KEYS),
            })
            .collect();
        let pending = local.pending() as u64;
        let mut heads: Vec<String> = local.doc.heads().iter().map(|h| h.to_string()).collect();
        heads.sort();
        let open_conflicts = open_conflicts(&mut local.doc)?;
        Ok(Report {
            id: meta.id.to_string(),
            kind: meta.kind,
            schema_version: meta.schema_version,
            grid: meta.grid,
            created_by: meta.created_by,
            created_at: meta.created_at,
            fields: model::entries(defs, fields_map, &[]),
            log,
            json: projection.to_string(),
            heads,
            pending_changes: pending,
            open_conflicts,
            rejected: local.rejected.as_ref().map(|r| ServerRefusal {
                code: r.code.clone(),
                reason: r.reason.clone(),
            }),
            held: !local.held.is_empty(),
            out_of_scope: local.out_of_scope,
        })
    }

    /// Sets one field (`None` clears it). A value that does not fit the field is refused.
    pub fn set_field(&self, id: &str, field: &str, value: Option<FieldValue>) -> Result<()> {
        let mut values = HashMap::new();
        values.insert(field.to_owned(), value);
        self.set_fields_opt(id, values)
    }

    /// Sets several fields in one change: a form saved at once.
    pub fn set_fields(&self, id: &str, values: HashMap<String, FieldValue>) -> Result<()> {
        self.set_fields_opt(id, values.into_iter().map(|(k, v)| (k, Some(v))).collect())
    }

    fn set_fields_opt(&self, id: &str, values: HashMap<String, Option<FieldValue>>) -> Result<()> {
        let id = parse_id(id)?;
        let schema = self.schema_of_doc(&id)?;
        let mut map = Map::new();
        let mut keys: Vec<&String> = values.keys().collect();
        keys.sort();
        for key in keys {
            let json = match &values[key] {
                Some(v) => model::value_to_json(v)?,
                None => Json::Null,
            };
            check_value(schema.validate_field(key, &json))?;
            map.insert(key.clone(), json);
        }
        refusals::refuse_nul_values(&map)?;
        self.edit(&id, |doc, by| doc.set_fields(&map, by).map_err(Into::into))
    }

    /// Appends a log entry (a mediation step, a visit); returns its id.
    pub fn append_log(&self, id: &str, values: HashMap<String, FieldValue>) -> Result<String> {
        let id = parse_id(id)?;
        let schema = self.schema_of_doc(&id)?;
        let map = self.log_values(&schema, &values)?;
        let mut entry = String::new();
        self.edit(&id, |doc, by| {
            entry = doc.append_log(&map, by)?;
            Ok(())
        })?;
        Ok(entry)
    }

    /// Changes fields of a log entry; fields not named keep their values.
    pub fn edit_log(
        &self,
        id: &str,
        entry_id: &str,
        values: HashMap<String, FieldValue>,
    ) -> Result<()> {
        let id = parse_id(id)?;
        let schema = self.schema_of_doc(&id)?;
        let map = self.log_values(&schema, &values)?;
        self.edit(&id, |doc, by| {
            doc.edit_log(entry_id, &map, by).map_err(Into::into)
        })
    }

    pub fn remove_log(&self, id: &str, entry_id: &str) -> Result<()> {
        let id = parse_id(id)?;
        self.edit(&id, |doc, by| {
            doc.remove_log(entry_id, by).map_err(Into::into)
        })
    }

    fn log_values(
        &self,
        schema: &Schema,
        values: &HashMap<String, FieldValue>,
    ) -> Result<Map<String, Json>> {
        if schema.log.is_none() {
            return Err(ClientError::Invalid(format!(
                "{} reports have no log",
                schema.kind
            )));
        }
        let map = model::values_to_json(values)?;
        for (key, value) in &map {
            check_value(schema.validate_log_field(key, value))?;
        }
        refusals::refuse_nul_values(&map)?;
        Ok(map)
    }

    /// Applies `f` to a report as the logged-in user and stores the result in one transaction;
    /// if storing fails, the report is as it was.
    fn edit(
        &self,
        id: &DocId,
        f: impl FnOnce(&mut ReportDoc, &Editor) -> Result<()>,
    ) -> Result<()> {
        let mut state = self.lock();
        let by = state.editor()?;
        let doc = state.replica.doc_mut(id).ok_or_else(|| not_found(id))?;
        let before = doc.clone();
        let outcome = f(doc, &by).and_then(|()| persist_doc(&mut state, id));
        if outcome.is_err()
            && let Some(doc) = state.replica.doc_mut(id)
        {
            *doc = before;
        }
        outcome
    }

    /// Local reports, newest first; only those of `kind` when given.
    pub fn list_reports(&self, kind: Option<String>) -> Result<Vec<ReportSummary>> {
        self.summaries(|summary, _| kind.as_ref().is_none_or(|k| &summary.kind == k))
    }

    /// Local reports whose text contains every word of `query` (case-insensitive): names,
    /// descriptions, places, log notes.
    pub fn search_reports(&self, query: &str) -> Result<Vec<ReportSummary>> {
        let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        self.summaries(|_, projection| {
            let mut haystack = String::new();
            collect_text(&projection["fields"], &mut haystack);
            collect_text(&projection["log"], &mut haystack);
            for key in ["id", "grid", "kind"] {
                collect_text(&projection[key], &mut haystack);
            }
            let haystack = haystack.to_lowercase();
            words.iter().all(|w| haystack.contains(w.as_str()))
        })
    }

    fn summaries(
        &self,
        mut keep: impl FnMut(&ReportSummary, &Json) -> bool,
    ) -> Result<Vec<ReportSummary>> {
        let docs: Vec<LocalDoc> = self.lock().replica.docs().cloned().collect();
        let mut out = Vec::new();
        for mut local in docs {
            // A document whose creating change has not arrived has no meta yet: skip it.
            let Ok(meta) = local.doc.meta() else { continue };
            let projection = local.doc.to_json()?;
            let schema = self.registry.get(&meta.kind, meta.schema_version);
            let summary = ReportSummary {
                id: meta.id.to_string(),
                title: title(schema, &projection["fields"]),
                status: schema
                    .and_then(|s| s.status_field.as_ref())
                    .and_then(|f| projection["fields"][f].as_str())
                    .map(str::to_owned),
                log_entries: projection["log"].as_array().map_or(0, Vec::len) as u32,
                pending_changes: local.pending() as u64,
                open_conflicts: open_conflicts(&mut local.doc)?,
                kind: meta.kind,
                grid: meta.grid,
                created_at: meta.created_at,
            };
            if keep(&summary, &projection) {
                out.push(summary);
            }
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    // ---- schemas and validation ----

    pub fn schemas(&self) -> Vec<KindSchema> {
        self.registry.kinds().map(model::kind_schema).collect()
    }

    pub fn schema(&self, kind: &str) -> Result<KindSchema> {
        Ok(model::kind_schema(self.schema_of(kind)?))
    }

    fn schema_of(&self, kind: &str) -> Result<&Schema> {
        self.registry
            .latest(kind)
            .ok_or_else(|| ClientError::NotFound(format!("no report kind `{kind}`")))
    }

    fn schema_of_doc(&self, id: &DocId) -> Result<Schema> {
        let meta = {
            let state = self.lock();
            let local = state.replica.get(id).ok_or_else(|| not_found(id))?;
            local.doc.meta()?
        };
        self.registry
            .get(&meta.kind, meta.schema_version)
            .cloned()
            .ok_or_else(|| {
                ClientError::NotFound(format!(
                    "this app does not know {} version {}; update it",
                    meta.kind, meta.schema_version
                ))
            })
    }

    /// Every problem of a report against its schema (empty when it is complete and valid).
    pub fn validate_report(&self, id: &str) -> Result<Vec<ValidationProblem>> {
        let id = parse_id(id)?;
        let projection = {
            let state = self.lock();
            let local = state.replica.get(&id).ok_or_else(|| not_found(&id))?;
            local.doc.to_json()?
        };
        Ok(self
            .registry
            .validate(&projection)
            .iter()
            .map(model::problem)
            .collect())
    }

    /// The problems of one value for a field of `kind` (a log field when `log` is true), for a
    /// form to show while the user types.
    pub fn validate_value(
        &self,
        kind: &str,
        field: &str,
        log: bool,
        value: Option<FieldValue>,
    ) -> Result<Vec<ValidationProblem>> {
        let schema = self.schema_of(kind)?;
        let json = value
            .as_ref()
            .map(model::value_to_json)
            .transpose()?
            .unwrap_or(Json::Null);
        let problems = if log {
            schema.validate_log_field(field, &json)
        } else {
            schema.validate_field(field, &json)
        };
        Ok(problems.iter().map(model::problem).collect())
    }

    // ---- conflicts ----

    pub fn conflicts(&self, id: &str) -> Result<Vec<FieldConflict>> {
        let id = parse_id(id)?;
        let mut doc = {
            let state = self.lock();
            state
                .replica
                .get(&id)
                .ok_or_else(|| not_found(&id))?
                .doc
                .clone()
        };
        let meta = doc.meta()?;
        let schema = self.registry.get(&meta.kind, meta.schema_version);
        let mut conflicts: Vec<FieldConflict> = doc
            .conflicts()?
            .into_iter()
            .map(|c| {
                let (field, entry_id, def) = match &c.path {
                    FieldPath::Field(f) => (f.clone(), None, schema.and_then(|s| s.field(f))),
                    FieldPath::Log { entry, field } => (
                        field.clone(),
                        Some(entry.clone()),
                        schema.and_then(|s| s.log_field(field)),
                    ),
                };
                FieldConflict {
                    path: c.path.to_string(),
                    field,
                    entry_id,
                    values: c
                        .values
                        .iter()
                        .map(|v| ConflictValue {
                            value: model::value_from_json(def, &v.value),
                            value_json: v.value.to_string(),
                            author: v.author.clone(),
                            time: v.time,
                        })
                        .collect(),
                    code: "concurrent_values".to_owned(),
                    message: None,
                    removal: None,
                }
            })
            .collect();
        let log_defs = schema
            .and_then(|s| s.log.as_ref())
            .map(|l| l.fields.as_slice())
            .unwrap_or_default();
        // Only the flag the phone can resolve itself: a kind's rule flags are dismissed at the
        // office, which the document does not record.
        for flag in doc.edited_after_removal()? {
            let removal = flag.removal.as_ref().map(|r| model::RemovedEntry {
                removed_by: r.removed_by.clone(),
                removed_at: r.removed_at.clone(),
                edited_by: r.edited_by.clone(),
                fields: model::entries(log_defs, &r.values, &LOG_ENTRY_KEYS),
            });
            conflicts.push(FieldConflict {
                path: flag.path(),
                field: String::new(),
                entry_id: Some(flag.entry.clone()),
                values: Vec::new(),
                code: flag.code.clone(),
                message: Some(model::label(&flag.message)),
                removal,
            });
        }
        Ok(conflicts)
    }

    /// Resolves the conflict at `path` with `value_json` (one of the values offered, or a new
    /// one): a change by the logged-in user, synced like any edit. A log entry edited after its
    /// removal (`log[ENTRY_ID]`) takes `"restore"` to bring it back, or `null` to confirm the
    /// removal.
    pub fn resolve_conflict(&self, id: &str, path: &str, value_json: &str) -> Result<()> {
        let id = parse_id(id)?;
        let value: Json = serde_json::from_str(value_json)
            .map_err(|e| ClientError::Invalid(format!("the value is not JSON: {e}")))?;
        if let Some(entry) = gridsync_core::conflict::flagged_entry(path) {
            let restore = match &value {
                Json::Null => false,
                Json::String(s) if s == "restore" => true,
                _ => {
                    return Err(ClientError::Invalid(format!(
                        "{path} was edited after its removal: resolve it with \"restore\" or null"
                    )));
                }
            };
            return self.edit(&id, |doc, by| {
                if restore {
                    doc.restore_log(entry, by)
                } else {
                    doc.confirm_removal(entry, by)
                }
                .map_err(Into::into)
            });
        }
        let path: FieldPath = path.parse()?;
        let schema = self.schema_of_doc(&id)?;
        match &path {
            FieldPath::Field(f) => check_value(schema.validate_field(f, &value))?,
            FieldPath::Log { field, .. } => check_value(schema.validate_log_field(field, &value))?,
        }
        refusals::refuse_nul(&format!("the value for {path}"), &value)?;
        self.edit(&id, |doc, by| {
            doc.resolve(&path, &value, by).map_err(Into::into)
        })
    }

    /// Local changes the server has not acknowledged.
    pub fn pending_changes(&self) -> u64 {
        self.lock().replica.pending() as u64
    }

    // ---- sync ----

    fn sync_guard(&self) -> MutexGuard<'_, ()> {
        self.sync_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Pushes pending changes and pulls everything new. Safe at any time: offline it fails with
    /// `Network` and has lost nothing; whatever it finished stays committed.
    pub fn sync(&self, progress: Option<&dyn Progress>) -> Result<SyncSummary> {
        let _sync = self.sync_guard();
        self.lock().user()?;
        let mut traffic = Traffic::default();
        let mut summary = SyncSummary {
            pushed_changes: 0,
            pushed_reports: 0,
            pulled_reports: 0,
            evicted_reports: 0,
            rejected: Vec::new(),
            held: Vec::new(),
            rescoped: false,
            open_conflicts: 0,
            pending_changes: 0,
            bytes_sent: 0,
            bytes_received: 0,
            requests: 0,
            diverged: false,
            uploaded_attachments: 0,
            pending_uploads: 0,
        };
        let outcome = self
            .push_all(&mut summary, &mut traffic, progress)
            .and_then(|()| self.pull_all(&mut summary, &mut traffic, progress))
            .and_then(|()| self.upload_pending(&mut summary, &mut traffic))
            .and_then(|()| self.release_delivered(&mut summary));
        outcome?;
        if summary.rescoped {
            // A new grid or role: who the user is now, and where they may file reports.
            self.refresh_profile(&mut traffic)?;
            self.fetch_grids(&mut traffic)?;
        }
        self.fetch_grids_if_missing(&mut traffic)?;
        // Copies of discarded reports are kept until a sync has gone through after the discard.
        self.lock().store()?.drop_discarded()?;
        summary.bytes_sent = traffic.sent;
        summary.bytes_received = traffic.received;
        summary.requests = traffic.requests;
        let mut state = self.lock();
        summary.pending_changes = state.replica.pending() as u64;
        let mut conflicts = 0;
        for local in state.replica.docs() {
            conflicts += open_conflicts(&mut local.doc.clone()).unwrap_or(0);
        }
        summary.open_conflicts = conflicts;
        Ok(summary)
    }

    fn push_all(
        &self,
        summary: &mut SyncSummary,
        traffic: &mut Traffic,
        progress: Option<&dyn Progress>,
    ) -> Result<()> {
        let max_bytes = usize::try_from(self.config.push_max_bytes).unwrap_or(usize::MAX);
        for round in 1..=MAX_PUSH_ROUNDS {
            let Some(push) = self.lock().replica.build_push(max_bytes) else {
                return Ok(());
            };
            let result: PushResult =
                self.exchange("/api/v1/sync/push", protocol::encode(&push), traffic)?;
            let mut state = self.lock();
            let applied = state.replica.apply_push_result(&result);
            let mut batch = Batch::default();
            for item in &result.docs {
                if let Some(local) = state.replica.get(&item.doc) {
                    batch.put_acked(local);
                }
                if matches!(item.outcome, PushOutcome::Acked { .. }) {
                    summary.pushed_reports += 1;
                    summary.pushed_changes += push
                        .docs
                        .iter()
                        .find(|d| d.doc == item.doc)
                        .map_or(0, |d| d.changes.len() as u64);
                }
            }
            state.store()?.commit(batch)?;
            drop(state);
            summary.held.extend(
                applied
                    .held
                    .into_iter()
                    .map(|(id, code, reason)| HeldReport {
                        id: id.to_string(),
                        code,
                        reason,
                    }),
            );
            summary
                .rejected
                .extend(
                    applied
                        .rejected
                        .into_iter()
                        .map(|(id, code, reason)| RejectedReport {
                            id: id.to_string(),
                            code,
                            reason,
                        }),
                );
            if let Some(p) = progress {
                p.progress(SyncProgress {
                    phase: SyncPhase::Push,
                    round,
                    reports: summary.pushed_reports,
                    bytes_sent: traffic.sent,
                    bytes_received: traffic.received,
                });
            }
        }
        Err(ClientError::Server(format!(
            "pushing did not finish in {MAX_PUSH_ROUNDS} requests"
        )))
    }

    fn pull_all(
        &self,
        summary: &mut SyncSummary,
        traffic: &mut Traffic,
        progress: Option<&dyn Progress>,
    ) -> Result<()> {
        // A digest that disagrees at the end restarts the pull from zero once.
        for pass in 0..2 {
            let mut page = 0;
            loop {
                page += 1;
                if page > MAX_PULL_PAGES {
                    return Err(ClientError::Server(format!(
                        "pulling did not finish in {MAX_PULL_PAGES} pages"
                    )));
                }
                let pull = self.lock().replica.build_pull(self.config.pull_byte_budget);
                let result: PullResult =
                    self.exchange("/api/v1/sync/pull", protocol::encode(&pull), traffic)?;
                summary.rescoped |= result.rescoped;
                let pulled = self.apply_page(result)?;
                summary.pulled_reports += pulled.docs as u32;
                if let Some(p) = progress {
                    p.progress(SyncProgress {
                        phase: SyncPhase::Pull,
                        round: page,
                        reports: summary.pulled_reports,
                        bytes_sent: traffic.sent,
                        bytes_received: traffic.received,
                    });
                }
                if pulled.diverged {
                    summary.diverged = pass == 1;
                    break;
                }
                if !pulled.more {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Applies one pull page and commits its documents with the cursor past them.
    fn apply_page(&self, result: PullResult) -> Result<gridsync_core::replica::PullSummary> {
        let ids: Vec<DocId> = result.docs.iter().map(|d| d.doc).collect();
        let evicted = result.evicted.clone();
        let rescoped = result.rescoped;
        let mut state = self.lock();
        let since_before = state.replica.cursor().since;
        let pulled = state.replica.apply_pull_result(result)?;
        let started_over =
            rescoped || pulled.diverged || state.replica.cursor().since < since_before;
        let mut batch = Batch::default();
        for id in &ids {
            if let Some(doc) = state.replica.doc_mut(id) {
                let bytes = doc.save();
                let local = state.replica.get(id).expect("just saved");
                batch.put_doc_parts(*id, bytes, SyncState::of(local));
            }
        }
        if started_over {
            for local in state.replica.docs() {
                batch.put_acked(local);
            }
        }
        // Evicted reports stay until delivered (`release_delivered` drops them after the sync).
        for id in evicted {
            if let Some(local) = state.replica.get(&id) {
                batch.put_acked(local);
            }
        }
        batch.set_cursor(state.replica.cursor());
        state.store()?.commit(batch)?;
        Ok(pulled)
    }

    /// Posts a sync frame with the session's access token, refreshing it when it expired, and
    /// decodes the answer.
    fn exchange<A: Message>(&self, path: &str, frame: Vec<u8>, traffic: &mut Traffic) -> Result<A> {
        let mut refreshed = false;
        // What would be lost were this phone wiped now, for the admin's device list.
        let pending = self.lock().replica.pending().to_string();
        let headers = [
            ("content-type", FRAME.to_owned()),
            (PENDING_HEADER, pending),
        ];
        loop {
            let token = self.access_token(traffic)?;
            let answer = self
                .transport
                .post_with(path, &headers, &frame, Some(&token), traffic)?;
            if answer.ok() {
                return protocol::decode(&answer.body).map_err(|e| {
                    ClientError::Server(format!("the server's answer is not a sync frame: {e}"))
                });
            }
            let problem = answer.problem();
            match (answer.status, problem.code.as_str()) {
                // An ended session (logout elsewhere, a password change) is confirmed by its
                // refresh being refused, which ends the session here and keeps the data.
                (401, "token_expired" | "token_invalid" | "unauthenticated" | "session_ended")
                    if !refreshed =>
                {
                    refreshed = true;
                    self.refresh(traffic)?;
                }
                (401, "device_revoked") => return Err(self.wipe_revoked()?),
                (410, "device_retired") => return Err(self.wipe_retired()?),
                (409, "device_retiring") => {
                    return Err(ClientError::DeviceRetiring(problem.detail));
                }
                (401, _) => {
                    return Err(ClientError::Unauthorized(problem.detail));
                }
                (413, _) => {
                    return Err(ClientError::Invalid(format!(
                        "a report is too large to send: {}",
                        problem.detail
                    )));
                }
                _ => return Err(unexpected(&answer)),
            }
        }
    }

    /// The access token, refreshed first when it is (about to be) expired.
    fn access_token(&self, traffic: &mut Traffic) -> Result<String> {
        let (token, expires_at) = {
            let state = self.lock();
            let session = state
                .session
                .as_ref()
                .ok_or_else(|| ClientError::Unauthorized("log in first".into()))?;
            (session.access_token.clone(), session.access_expires_at)
        };
        if expires_at - EXPIRY_MARGIN_SECS > now() {
            return Ok(token);
        }
        self.refresh(traffic)
    }

    /// Exchanges the refresh token for a new pair and stores it before anything uses it. A
    /// spent refresh token sent again ends the session, except once within the server's grace
    /// window: so it is retried once, with the same token, only when no answer came (the server
    /// may have spent it), and never after an answer. A refused refresh ends the session and
    /// leaves the local data alone.
    fn refresh(&self, traffic: &mut Traffic) -> Result<String> {
        let refresh_token = {
            let state = self.lock();
            state
                .session
                .as_ref()
                .map(|s| s.refresh_token.clone())
                .ok_or_else(|| ClientError::Unauthorized("log in first".into()))?
        };
        let body = json!({ "refresh_token": refresh_token }).to_string();
        let send = |traffic: &mut Traffic| {
            self.transport
                .post_once("/api/v1/auth/refresh", JSON, body.as_bytes(), None, traffic)
        };
        let answer = match send(traffic) {
            Err(ClientError::Network(_)) => send(traffic)?,
            other => other?,
        };
        if !answer.ok() {
            let problem = answer.problem();
            return Err(match problem.code.as_str() {
                "device_revoked" => self.wipe_revoked()?,
                "refresh_invalid" | "refresh_reused" | "account_disabled" => {
                    self.lock().end_session()?;
                    ClientError::Unauthorized(format!(
                        "the session ended ({}); log in again",
                        problem.detail
                    ))
                }
                _ => unexpected(&answer),
            });
        }
        let tokens: Tokens = parse_json(&answer)?;
        let mut state = self.lock();
        let Some(mut session) = state.session.clone() else {
            return Err(ClientError::Unauthorized("logged out during sync".into()));
        };
        session.access_token = tokens.access_token.clone();
        session.refresh_token = tokens.refresh_token;
        session.access_expires_at = now() + i64::try_from(tokens.expires_in).unwrap_or(0);
        state.store()?.set_session(Some(&session))?;
        state.session = Some(session);
        Ok(tokens.access_token)
    }

    /// The phone was handed in and the server holds everything it sent: delete the local data,
    /// unless something was recorded here since, which the next sync delivers first.
    fn wipe_retired(&self) -> Result<ClientError> {
        let unsent = self.lock().unsent()?;
        if !unsent.is_empty() {
            return Ok(ClientError::DeviceRetiring(format!(
                "this phone is being handed in; {} changes and {} photos recorded during the \
                 sync are still to be delivered: sync again",
                unsent.changes, unsent.uploads
            )));
        }
        self.reset_local_data()?;
        Ok(ClientError::DeviceRetired(
            "this phone was handed in: everything it held was delivered, and its local data \
             has been deleted"
                .into(),
        ))
    }

    /// Drops the reports that left this user's scope once everything of them is delivered:
    /// every change acknowledged or held by the server, and no photo waiting for upload.
    fn release_delivered(&self, summary: &mut SyncSummary) -> Result<()> {
        let mut state = self.lock();
        let waiting: Vec<DocId> = state
            .store()?
            .attachments()?
            .into_iter()
            .filter(|b| b.pending)
            .map(|b| b.doc_id)
            .collect();
        let mut batch = Batch::default();
        for id in state.replica.releasable() {
            if waiting.contains(&id) {
                continue;
            }
            state.replica.remove(&id);
            batch.delete_doc(id);
            summary.evicted_reports += 1;
        }
        state.store()?.commit(batch)
    }

    /// Reads who this user is now (a new grid or role) and keeps it with the session.
    fn refresh_profile(&self, traffic: &mut Traffic) -> Result<()> {
        let token = self.access_token(traffic)?;
        let me = self.transport.get("/api/v1/me", Some(&token), traffic)?;
        if !me.ok() {
            return Err(unexpected(&me));
        }
        let user: Profile = parse_json(&me)?;
        let mut state = self.lock();
        let Some(mut session) = state.session.clone() else {
            return Ok(());
        };
        session.user = user;
        state.store()?.set_session(Some(&session))?;
        state.session = Some(session);
        Ok(())
    }

    /// The server revoked this device: delete the local data and answer `DeviceRevoked`.
    fn wipe_revoked(&self) -> Result<ClientError> {
        self.reset_local_data()?;
        Ok(ClientError::DeviceRevoked(
            "an administrator cut this device off; its local data has been deleted".into(),
        ))
    }

    /// Deletes the database file and starts an empty store with a new device id.
    fn reset_local_data(&self) -> Result<()> {
        let mut state = self.lock();
        if let Some(store) = state.store.take() {
            store.wipe()?;
        }
        state.replica = Replica::new();
        state.session = None;
        state.last_user = None;
        let store = Store::open(&self.dir, &self.key)?;
        store.device_id()?;
        state.store = Some(store);
        Ok(())
    }

    /// Test hook: pretends the access token expired, so the next request refreshes it.
    #[doc(hidden)]
    pub fn expire_access_token(&self) -> Result<()> {
        let mut state = self.lock();
        let Some(mut session) = state.session.clone() else {
            return Err(ClientError::Unauthorized("log in first".into()));
        };
        session.access_expires_at = 0;
        state.store()?.set_session(Some(&session))?;
        state.session = Some(session);
        Ok(())
    }
}

const DEVICE_TAKEN: &str = "device_taken";

#[derive(Deserialize)]
struct Tokens {
    access_token: String,
    refresh_token: String,
    expires_in: u64,
}

fn load_state(store: Store) -> Result<State> {
    let replica = Replica::from_parts(store.load_docs()?, store.cursor()?);
    let session = store.session()?;
    // A store from before the last user was kept has at most the session's user.
    let last_user = match store.last_user()? {
        Some(user) => Some(user),
        None => session.as_ref().map(|s| s.user.clone()),
    };
    Ok(State {
        store: Some(store),
        replica,
        session,
        last_user,
    })
}

/// Rebuilds the replica from the store, dropping whatever memory holds beyond it.
fn rebuild(state: &mut State) -> Result<Replica> {
    let store = state.store()?;
    Ok(Replica::from_parts(store.load_docs()?, store.cursor()?))
}

/// Commits one document as it is now.
fn persist_doc(state: &mut State, id: &DocId) -> Result<()> {
    let bytes = state
        .replica
        .doc_mut(id)
        .ok_or_else(|| not_found(id))?
        .save();
    let local = state.replica.get(id).ok_or_else(|| not_found(id))?;
    let mut batch = Batch::default();
    batch.put_doc_parts(*id, bytes, SyncState::of(local));
    state.store()?.commit(batch)
}

/// What `conflicts()` lists for a report: fields holding concurrent values, and log entries
/// edited while someone removed them.
fn open_conflicts(doc: &mut ReportDoc) -> Result<u32> {
    let count = doc.conflicts()?.len() + doc.edited_after_removal()?.len();
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}

/// Refuses a value with problems, except a missing required value: drafts may be incomplete.
fn check_value(problems: Vec<gridsync_core::schema::Problem>) -> Result<()> {
    let serious: Vec<String> = problems
        .iter()
        .filter(|p| p.code != ProblemCode::Required)
        .map(ToString::to_string)
        .collect();
    if serious.is_empty() {
        return Ok(());
    }
    if problems.iter().any(|p| p.code == ProblemCode::UnknownField) {
        return Err(ClientError::NotFound(serious.join("; ")));
    }
    Err(ClientError::Validation(serious.join("; ")))
}

fn parse_id(id: &str) -> Result<DocId> {
    id.trim()
        .parse()
        .map_err(|_| ClientError::Invalid(format!("`{id}` is not a report id")))
}

fn not_found(id: &DocId) -> ClientError {
    ClientError::NotFound(format!("no report {id} on this phone"))
}

fn parse_json<T: serde::de::DeserializeOwned>(answer: &Answer) -> Result<T> {
    serde_json::from_slice(&answer.body)
        .map_err(|e| ClientError::Server(format!("unexpected answer from the server: {e}")))
}

fn unexpected(answer: &Answer) -> ClientError {
    let problem = answer.problem();
    let message = format!(
        "HTTP {} {}: {}",
        answer.status, problem.code, problem.detail
    );
    // A failing server (a refresh is tried once, so its 5xx lands here) is one to try again later.
    if answer.status >= 500 {
        ClientError::Network(message)
    } else {
        ClientError::Server(message)
    }
}

fn user_info(p: &Profile) -> UserInfo {
    UserInfo {
        id: p.id.clone(),
        username: p.username.clone(),
        display_name: p.display_name.clone(),
        role: p.role.clone(),
        org_unit_id: p.org_unit_id.clone(),
        scope_path: p.scope_path.clone(),
        clearance: p.clearance,
        device_id: p.device_id.clone(),
    }
}

fn text(v: Option<&Json>) -> String {
    v.and_then(Json::as_str).unwrap_or_default().to_owned()
}

/// The first text field with a value, in schema order, cut to 80 characters.
fn title(schema: Option<&Schema>, fields: &Json) -> String {
    let candidates: Vec<&str> = match schema {
        Some(s) => s
            .fields
            .iter()
            .filter(|f| f.ty == gridsync_core::schema::FieldType::Text)
            .map(|f| f.id.as_str())
            .collect(),
        None => Vec::new(),
    };
    let found = candidates
        .iter()
        .filter_map(|f| fields[*f].as_str())
        .find(|s| !s.trim().is_empty())
        .unwrap_or_default();
    found.chars().take(80).collect()
}

fn collect_text(value: &Json, out: &mut String) {
    match value {
        Json::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Json::Array(items) => items.iter().for_each(|v| collect_text(v, out)),
        Json::Object(map) => map.values().for_each(|v| collect_text(v, out)),
        _ => {}
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
