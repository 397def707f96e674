//! The field client: a sync-core [`Replica`] mirrored to the local [`Store`] after every
//! action, the session, and sync with the server over the [`Transport`].
//!
//! Memory holds each report's index, not its document: a body is loaded from the store when
//! an action or a sync needs it and parked again once the action is stored (the report last
//! touched stays loaded, for the next edit of the same form). Lists and searches read the
//! stored listing entries.
//!
//! Every user action is one store transaction, written before the call returns. Sync takes
//! the state lock only to build a request and to apply its answer, never across the network,
//! so the app can keep editing while a sync runs; a second sync waits for the first. The data
//! folder stays locked to this client throughout, wipes included.
//!
//! By concern: `session` (login, logout, the access token and its refresh), `reports`
//! (creating, reading, editing and listing reports), `schemas` (report kinds and validation
//! for forms), `catalogue` (report kinds fetched from the server and the registry of those the
//! phone knows), `conflicts`, `sync` (push, pull and what is released after), `hub` (sync with
//! the village office hub when central is out of reach), `wipe` (deleting the phone's data when
//! the server cuts it off or takes it back), `answers` (what the server's answers become), and
//! `attachments`, `grids`, `refusals` and `stuck`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gridsync_core::DocId;
use gridsync_core::replica::{Loader, LocalDoc, Replica};
use gridsync_core::report::Editor;
use gridsync_core::schema::Registry;

use crate::error::{ClientError, Result};
use crate::folder_lock::FolderLock;
use crate::model::ClientConfig;
use crate::store::{Batch, Profile, Session, Store, StoredIndex};
use crate::transport::{Settings, Transport};

mod answers;
mod attachments;
mod catalogue;
mod conflicts;
mod grids;
mod hub;
mod refusals;
mod reports;
mod schemas;
mod session;
mod stuck;
mod sync;
mod tasks;
mod wipe;

pub use sync::Progress;

/// What the lock guards.
struct State {
    /// `None` only while the store is being wiped.
    store: Option<Store>,
    replica: Replica,
    session: Option<Session>,
    /// Who logged in here last. Local edits are theirs, with or without a session: a worker
    /// whose session ended in a dead zone keeps working, and their next login syncs it.
    last_user: Option<Profile>,
    /// The task documents held, once read (`client/tasks`).
    tasks: Option<BTreeSet<DocId>>,
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

    /// A report with its document, loaded from the store when it was parked.
    fn local(&mut self, id: &DocId) -> Result<&mut LocalDoc> {
        self.replica.load(id)?.ok_or_else(|| not_found(id))
    }

    /// Commits `id` and `also` (tasks a report's edit linked) as they are now in one
    /// transaction, then parks every document but `id`.
    fn store_docs(&mut self, id: &DocId, also: &[DocId]) -> Result<()> {
        let State { store, replica, .. } = self;
        let store = store
            .as_mut()
            .ok_or_else(|| ClientError::Storage("the local store is closed".into()))?;
        let mut batch = Batch::default();
        for each in std::iter::once(id).chain(also) {
            let local = replica.load(each)?.ok_or_else(|| not_found(each))?;
            batch.put_doc(store.write_of(local)?);
        }
        store.commit(batch)?;
        replica.park(Some(id));
        Ok(())
    }

    fn end_session(&mut self) -> Result<()> {
        self.store()?.set_session(None)?;
        self.session = None;
        Ok(())
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
    /// The report kinds this phone knows, swapped whole by a catalogue refresh. Taken after
    /// `state` when both are (never the other way round), and only for as long as a clone.
    registry: RwLock<Arc<Registry>>,
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
        let transport = Transport::new(server_url, transport_settings(&config))?;
        let folder = FolderLock::acquire(dir)?;
        let store = Store::open(dir, key)?;
        store.device_id()?;
        let registry = catalogue::registry_of(&store.schemas()?);
        let state = load_state(store)?;
        Ok(Client {
            _folder: folder,
            dir: dir.to_owned(),
            key: key.to_vec(),
            transport,
            config,
            registry: RwLock::new(Arc::new(registry)),
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
}

fn load_state(mut store: Store) -> Result<State> {
    let replica = replica_of(&mut store)?;
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
        tasks: None,
    })
}

/// Reports indexed in one transaction when a store from before the index is opened.
const INDEX_BATCH: usize = 256;

/// Rebuilds the replica from the store, dropping whatever memory holds beyond it.
fn rebuild(state: &mut State) -> Result<Replica> {
    replica_of(state.store()?)
}

/// A replica of every stored document, parked, with a loader reading the store. Documents
/// stored before the store kept an index are indexed first, each loaded once.
fn replica_of(store: &mut Store) -> Result<Replica> {
    let StoredIndex {
        indexed: mut index,
        unindexed,
    } = store.load_index()?;
    // A few hundred reports a transaction: one commit (and fsync) per report would make the
    // first opening after an upgrade take minutes on an office's store.
    for chunk in unindexed.chunks(INDEX_BATCH) {
        let mut batch = Batch::default();
        for id in chunk {
            let Some(mut local) = store.load_doc(id)? else {
                continue;
            };
            batch.put_doc(store.write_of(&mut local)?);
            index.push((*id, local.index()));
        }
        store.commit(batch)?;
    }
    let reader = store.reader()?;
    let loader: Loader = Arc::new(move |id: &DocId| match reader.load(id) {
        Ok(Some(doc)) => Ok(doc),
        Ok(None) => Err(gridsync_core::Error::Load(*id, "not in the store".into())),
        Err(e) => Err(gridsync_core::Error::Load(*id, e.to_string())),
    });
    Ok(Replica::from_index(
        index,
        (store.cursor()?, store.hub_cursor()?),
        loader,
    ))
}

/// Timeouts and retries of every request, to central or to the office hub.
fn transport_settings(config: &ClientConfig) -> Settings {
    Settings {
        connect_timeout: Duration::from_millis(config.connect_timeout_ms),
        request_timeout: Duration::from_millis(config.request_timeout_ms),
        max_attempts: config.max_attempts,
        base_delay: Duration::from_millis(config.retry_base_delay_ms),
        max_delay: Duration::from_secs(8),
    }
}

fn parse_id(id: &str) -> Result<DocId> {
    id.trim()
        .parse()
        .map_err(|_| ClientError::Invalid(format!("`{id}` is not a report id")))
}

fn not_found(id: &DocId) -> ClientError {
    ClientError::NotFound(format!("no report {id} on this phone"))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
