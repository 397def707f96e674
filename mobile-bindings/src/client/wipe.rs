//! Deleting this phone's data: when the server revoked the device, when it took the phone
//! back (retired) and holds everything it sent, and when another user takes the phone over,
//! which the last user's unsent work forbids. The database file goes, and a fresh, empty store
//! with a new device id takes its place.

use gridsync_core::replica::Replica;
use gridsync_core::schema::Registry;

use super::{Client, State};
use crate::error::{ClientError, Result};
use crate::store::{Profile, Store};

impl Client {
    /// Starts over empty under a new device id for the phone's next user, refused while the
    /// last user's work is unsent: never let the two users' work mix.
    pub(super) fn hand_over(&self) -> Result<()> {
        {
            let mut state = self.lock();
            let unsent = state.unsent()?;
            if !unsent.is_empty() {
                return Err(unsent.refuse_handover(state.last_user.as_ref()));
            }
        }
        self.reset_local_data()
    }

    /// The phone was handed in and the server holds everything it sent: delete the local data,
    /// unless something was recorded here since, which the next sync delivers first.
    pub(super) fn wipe_retired(&self) -> Result<ClientError> {
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

    /// The server revoked this device: delete the local data and answer `DeviceRevoked`.
    pub(super) fn wipe_revoked(&self) -> Result<ClientError> {
        self.reset_local_data()?;
        Ok(ClientError::DeviceRevoked(
            "an administrator cut this device off; its local data has been deleted".into(),
        ))
    }

    /// Deletes the database file and starts an empty store with a new device id.
    fn reset_local_data(&self) -> Result<()> {
        let mut state = self.lock();
        // First, so that the replica's reader has closed the files before they are deleted.
        state.replica = Replica::new();
        if let Some(store) = state.store.take() {
            store.wipe()?;
        }
        state.session = None;
        state.last_user = None;
        let store = Store::open(&self.dir, &self.key)?;
        store.device_id()?;
        state.store = Some(store);
        // The kinds fetched from the server went with the database.
        self.set_registry(Registry::builtin());
        Ok(())
    }
}

impl State {
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
