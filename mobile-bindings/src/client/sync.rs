//! Sync: pushes every pending change (acknowledged heads committed after each push result),
//! then pulls pages until the server has nothing more (each page's documents committed together
//! with the cursor past them; a page naming another catalogue of report kinds than the stored
//! one has the catalogue refreshed first), fetches the forms of pulled reports the phone still
//! lacks, pushes again the reports a refresh offered again, then uploads attachments and
//! releases the reports that left the scope. Cut anywhere, the next sync resumes from what was
//! committed: a push sent again is a no-op at the server, a page pulled again merges to the
//! same documents.

use std::collections::BTreeSet;
use std::sync::MutexGuard;

use gridsync_core::DocId;
use gridsync_core::protocol::{self, Message, PullResult, PushOutcome, PushResult};
use gridsync_core::replica::{Replica, Server};
use gridsync_core::schema::{Access, Registry};

use super::answers::unexpected;
use super::catalogue::KindVersion;
use super::hub::HubLink;
use super::{Client, State};
use crate::error::{ClientError, Result};
use crate::model::{self, HeldReport, RejectedReport, SyncPhase, SyncProgress, SyncSummary};
use crate::store::Batch;
use crate::transport::Traffic;

const FRAME: &str = "application/x-gridsync";
/// The header in which a sync says how many changes this phone holds undelivered.
const PENDING_HEADER: &str = "x-gridsync-pending";
/// Upper bounds on the rounds of one sync, so a server that never says "done" cannot spin it.
const MAX_PUSH_ROUNDS: u32 = 10_000;
const MAX_PULL_PAGES: u32 = 100_000;
/// Parked reports loaded for one push round at most; the push takes what fits its byte limit.
const PUSH_LOAD: usize = 256;

/// Receives sync progress; the FFI callback interface implements it.
pub trait Progress {
    fn progress(&self, progress: SyncProgress);
}

/// Tells `progress`, when there is a listener, where a sync stands after a request.
pub(super) fn report(
    progress: Option<&dyn Progress>,
    phase: SyncPhase,
    round: u32,
    reports: u32,
    traffic: &Traffic,
) {
    if let Some(p) = progress {
        p.progress(SyncProgress {
            phase,
            round,
            reports,
            bytes_sent: traffic.sent,
            bytes_received: traffic.received,
        });
    }
}

impl Progress for Box<dyn model::SyncListener> {
    fn progress(&self, progress: SyncProgress) {
        self.on_progress(progress);
    }
}

impl Client {
    /// Local changes the server has not acknowledged.
    pub fn pending_changes(&self) -> u64 {
        self.lock().replica.pending() as u64
    }

    pub(super) fn sync_guard(&self) -> MutexGuard<'_, ()> {
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
            attachments_at_hub: 0,
            new_schemas: 0,
            via_hub: None,
            receipts: 0,
            left_for_central: Vec::new(),
        };
        let at_central = self.sync_central(&mut summary, &mut traffic, progress);
        self.or_at_hub(at_central, || {
            self.sync_via_hub(&mut summary, &mut traffic, progress)
        })?;
        summary.bytes_sent = traffic.sent;
        summary.bytes_received = traffic.received;
        summary.requests = traffic.requests;
        let mut state = self.lock();
        summary.pending_changes = state.replica.pending() as u64;
        summary.open_conflicts = state.store()?.open_conflicts()?;
        Ok(summary)
    }

    /// Sync with central: push, pull, forms, attachments, releases.
    fn sync_central(
        &self,
        summary: &mut SyncSummary,
        traffic: &mut Traffic,
        progress: Option<&dyn Progress>,
    ) -> Result<()> {
        let outcome = self
            .push_all(&Peer::Central, summary, traffic, progress)
            .and_then(|()| self.pull_all(summary, traffic, progress))
            .and_then(|pulled| {
                summary.new_schemas += self.fetch_missing_kinds(&pulled.lacking, traffic)?;
                if pulled.retried > 0 {
                    // Reports refused for a kind the server has learned since go now.
                    self.push_all(&Peer::Central, summary, traffic, progress)?;
                }
                Ok(())
            })
            .and_then(|()| self.upload_pending(&Peer::Central, summary, traffic))
            .and_then(|()| self.release_delivered(summary));
        outcome?;
        if summary.rescoped {
            // A new grid or role: who the user is now, and where they may file reports.
            self.refresh_profile(traffic)?;
            self.fetch_grids(traffic)?;
        }
        self.fetch_grids_if_missing(traffic)?;
        // Copies of discarded reports are kept until a sync has gone through after the discard.
        self.lock().store()?.drop_discarded()?;
        Ok(())
    }

    /// Pushes what this phone owes central to `peer`, round after round until nothing is left
    /// for it. A document the peer cannot take in this sync (refused, held, missing history
    /// that is not this phone's to send, or, at a hub, of a restricted kind) is passed over
    /// for the rest of it.
    pub(super) fn push_all(
        &self,
        peer: &Peer<'_>,
        summary: &mut SyncSummary,
        traffic: &mut Traffic,
        progress: Option<&dyn Progress>,
    ) -> Result<()> {
        let max_bytes = usize::try_from(self.config.push_max_bytes).unwrap_or(usize::MAX);
        let server = peer.server();
        let mut skip = BTreeSet::new();
        for round in 1..=MAX_PUSH_ROUNDS {
            let push = {
                let mut state = self.lock();
                let loaded = state.replica.load_for_push_to(server, PUSH_LOAD, &skip)?;
                if server == Server::Hub {
                    let registry = self.registry();
                    summary.left_for_central.extend(central_only(
                        &state.replica,
                        &registry,
                        &mut skip,
                    ));
                }
                match state.replica.build_push_to(server, max_bytes, &mut skip) {
                    Some(push) => push,
                    None if loaded > 0 => continue,
                    None => return Ok(()),
                }
            };
            let result: PushResult = match peer {
                Peer::Central => {
                    self.exchange("/api/v1/sync/push", protocol::encode(&push), traffic)?
                }
                Peer::Hub(link) => self.push_to_hub(link, &push, traffic)?,
            };
            let mut state = self.lock();
            let applied = state.replica.apply_push_result_from(server, &result);
            // A document the answer leaves out is not offered again in this sync, so a server
            // that answers nothing cannot keep the phone sending.
            skip.extend(
                push.docs
                    .iter()
                    .filter(|d| !result.docs.iter().any(|r| r.doc == d.doc))
                    .map(|d| d.doc),
            );
            skip.extend(applied.stalled.iter().copied());
            skip.extend(applied.rejected.iter().map(|(id, _, _)| *id));
            skip.extend(applied.held.iter().map(|(id, _, _)| *id));
            let mut batch = Batch::default();
            for item in &result.docs {
                if let Some(index) = state.replica.index_of(&item.doc) {
                    batch.put_index(item.doc, index);
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
            state.replica.park(None);
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
            let refused = applied
                .rejected
                .into_iter()
                .map(|(id, code, reason)| RejectedReport {
                    id: id.to_string(),
                    code,
                    reason,
                });
            match server {
                Server::Central => summary.rejected.extend(refused),
                // A hub's refusal is not central's: the report stays owed to central.
                Server::Hub => {
                    summary.left_for_central.extend(refused);
                    summary
                        .left_for_central
                        .extend(applied.stalled.iter().map(|id| {
                            RejectedReport {
                                id: id.to_string(),
                                code: "hub_lacks_history".into(),
                                reason: "the hub does not hold this report's earlier changes yet; \
                                     it goes to the server on the next sync that reaches it"
                                    .into(),
                            }
                        }));
                }
            }
            report(
                progress,
                SyncPhase::Push,
                round,
                summary.pushed_reports,
                traffic,
            );
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
    ) -> Result<Pulled> {
        let mut pulled_all = Pulled::default();
        // Once per sync: a catalogue that keeps changing, or a server whose digests disagree,
        // must not cost a refresh per page.
        let mut refreshed = false;
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
                if result.catalogue != 0
                    && !refreshed
                    && result.catalogue != self.lock().store()?.catalogue()?
                {
                    // Before the page's reports, so those of a new kind arrive with their form;
                    // a failure leaves the page unapplied, for the next sync.
                    refreshed = true;
                    let done = self.refresh_catalogue(traffic)?;
                    summary.new_schemas += done.fetched;
                    pulled_all.retried += done.retried;
                }
                let pulled = self.apply_page(Server::Central, result, &mut pulled_all.lacking)?;
                summary.pulled_reports += pulled.docs as u32;
                report(
                    progress,
                    SyncPhase::Pull,
                    page,
                    summary.pulled_reports,
                    traffic,
                );
                if pulled.diverged {
                    summary.diverged = pass == 1;
                    break;
                }
                if !pulled.more {
                    return Ok(pulled_all);
                }
            }
        }
        Ok(pulled_all)
    }

    /// Applies one pull page from `server` and commits its documents with the cursor past
    /// them; adds to `lacking` the kinds and versions of its reports that the phone has no form
    /// for.
    pub(super) fn apply_page(
        &self,
        server: Server,
        result: PullResult,
        lacking: &mut BTreeSet<KindVersion>,
    ) -> Result<gridsync_core::replica::PullSummary> {
        let registry = self.registry();
        let ids: Vec<DocId> = result.docs.iter().map(|d| d.doc).collect();
        let evicted = result.evicted.clone();
        let rescoped = result.rescoped;
        let mut state = self.lock();
        let cursor = |replica: &Replica| match server {
            Server::Central => replica.cursor(),
            Server::Hub => replica.hub_cursor(),
        };
        let since_before = cursor(&state.replica).since;
        let pulled = state.replica.apply_pull_result_from(server, result)?;
        let started_over =
            rescoped || pulled.diverged || cursor(&state.replica).since < since_before;
        let mut batch = Batch::default();
        let State {
            store,
            replica,
            tasks,
            ..
        } = &mut *state;
        let store = store
            .as_mut()
            .ok_or_else(|| ClientError::Storage("the local store is closed".into()))?;
        for id in &ids {
            if let Some(local) = replica.load(id)? {
                if let Ok(meta) = local.doc.meta() {
                    if let Some(tasks) = tasks.as_mut()
                        && gridsync_core::task::is_task_kind(&meta.kind)
                    {
                        tasks.insert(*id);
                    }
                    if registry.get(&meta.kind, meta.schema_version).is_none() {
                        lacking.insert(KindVersion {
                            kind: meta.kind,
                            version: meta.schema_version,
                        });
                    }
                }
                batch.put_doc(store.write_of(local)?);
            }
        }
        if started_over {
            for (id, index) in replica.indexes() {
                batch.put_index(id, index);
            }
        }
        // Evicted reports stay until delivered (`release_delivered` drops them after the sync).
        for id in evicted {
            if let Some(index) = replica.index_of(&id) {
                batch.put_index(id, index);
            }
        }
        match server {
            Server::Central => batch.set_cursor(replica.cursor()),
            Server::Hub => batch.set_hub_cursor(replica.hub_cursor()),
        }
        store.commit(batch)?;
        replica.park(None);
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

    /// Drops the reports that left this user's scope once everything of them is delivered:
    /// every change acknowledged or held by the server, and no photo waiting for upload.
    pub(super) fn release_delivered(&self, summary: &mut SyncSummary) -> Result<()> {
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
}

/// Where a sync sends its pushes and pulls.
pub(super) enum Peer<'a> {
    Central,
    Hub(&'a HubLink),
}

impl Peer<'_> {
    fn server(&self) -> Server {
        match self {
            Peer::Central => Server::Central,
            Peer::Hub(_) => Server::Hub,
        }
    }
}

/// Passes over, for a push to a hub, every loaded report that only central may take: of a
/// restricted kind (drug-control cases and their visits), or of a kind this phone does not
/// know, which it cannot judge. Each is listed once.
fn central_only(
    replica: &Replica,
    registry: &Registry,
    skip: &mut BTreeSet<DocId>,
) -> Vec<RejectedReport> {
    let mut left = Vec::new();
    for local in replica.docs() {
        let id = local.doc.id();
        if skip.contains(&id) {
            continue;
        }
        let restricted = local.doc.meta().ok().is_none_or(|meta| {
            registry
                .get(&meta.kind, meta.schema_version)
                .is_none_or(|schema| matches!(schema.access, Access::Restricted { .. }))
        });
        if restricted {
            skip.insert(id);
            left.push(RejectedReport {
                id: id.to_string(),
                code: "restricted_via_hub".into(),
                reason: "this kind of report goes to the server only, never through a village \
                         office hub"
                    .into(),
            });
        }
    }
    left
}

/// What a pull leaves for the rest of the sync.
#[derive(Debug, Default)]
struct Pulled {
    /// Kinds and versions of pulled reports that the phone had no form for.
    lacking: BTreeSet<KindVersion>,
    /// Refused reports a catalogue refresh offered again.
    retried: u32,
}
