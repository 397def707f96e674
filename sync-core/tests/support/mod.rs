//! An in-memory reference server for testing sync-core end to end without the real server: it
//! keeps a change log with server sequence numbers and answers pushes and pulls as the protocol
//! prescribes, with every message passed through the binary encoding.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use automerge::ChangeHash;
use gridsync_core::DocId;
use gridsync_core::conflict::FieldPath;
use gridsync_core::ingest::{self, Refusal};
use gridsync_core::protocol::{
    self, Pull, PullBody, PullDoc, PullResult, Push, PushDocResult, PushOutcome, PushResult,
};
use gridsync_core::replica::{Loader, PullSummary, PushSummary, Replica};
use gridsync_core::report::ReportDoc;
use gridsync_core::schema::Registry;

struct Logged {
    seq: u64,
    device: String,
    hash: ChangeHash,
    bytes: Vec<u8>,
}

struct ServerDoc {
    doc: ReportDoc,
    seq: u64,
    log: Vec<Logged>,
    /// Where the last ingest found conflicts, while the document is as that ingest left it.
    ingested_conflicts: Option<Vec<FieldPath>>,
}

pub struct MemoryServer {
    registry: Registry,
    seq: u64,
    docs: BTreeMap<DocId, ServerDoc>,
}

impl Default for MemoryServer {
    fn default() -> Self {
        MemoryServer {
            registry: Registry::builtin(),
            seq: 0,
            docs: BTreeMap::new(),
        }
    }
}

impl MemoryServer {
    /// Publishes another report kind (a JSON definition), as an office would.
    pub fn publish(&mut self, json: &str) {
        self.registry.add_json(json).expect("a valid definition");
    }

    pub fn push(&mut self, user: &str, device: &str, push: &Push) -> PushResult {
        let push = roundtrip(push);
        let mut docs = Vec::new();
        for item in &push.docs {
            let mut doc = match self.docs.get(&item.doc) {
                Some(d) => d.doc.clone(),
                None => ReportDoc::empty(item.doc),
            };
            let outcome = match ingest::apply(&mut doc, &item.changes, user, &self.registry) {
                Ok(ingested) => {
                    let entry = self.docs.entry(item.doc).or_insert_with(|| ServerDoc {
                        doc: ReportDoc::empty(item.doc),
                        seq: 0,
                        log: Vec::new(),
                        ingested_conflicts: None,
                    });
                    let heads = protocol::listed_heads(
                        hashes(&ingested.heads),
                        ingested.new_changes.iter().map(|c| c.hash.0.as_slice()),
                    );
                    for change in ingested.new_changes {
                        self.seq += 1;
                        entry.seq = self.seq;
                        entry.log.push(Logged {
                            seq: self.seq,
                            device: device.to_owned(),
                            hash: change.hash,
                            bytes: change.bytes,
                        });
                    }
                    entry.doc = doc;
                    entry.ingested_conflicts =
                        Some(ingested.conflicts.into_iter().map(|c| c.path).collect());
                    PushOutcome::Acked { heads }
                }
                Err(Refusal::MissingDeps(missing)) => PushOutcome::MissingDeps {
                    missing: missing.iter().map(|h| h.0).collect(),
                },
                Err(refusal) => PushOutcome::Rejected {
                    code: refusal.code().to_owned(),
                    reason: refusal.to_string(),
                },
            };
            docs.push(PushDocResult {
                doc: item.doc,
                outcome,
            });
        }
        roundtrip(&PushResult::central(docs))
    }

    pub fn pull(&mut self, device: &str, pull: &Pull) -> PullResult {
        let pull = roundtrip(pull);
        let budget = pull.byte_budget as usize;
        let mut out = Vec::new();
        let mut evicted = Vec::new();
        let mut bytes = 0usize;
        let mut resends_left = false;
        for id in &pull.resend {
            if !out.is_empty() && bytes >= budget {
                resends_left = true;
                break;
            }
            match self.docs.get_mut(id) {
                Some(d) => {
                    let snapshot = d.doc.save();
                    bytes += snapshot.len();
                    out.push(PullDoc {
                        doc: *id,
                        heads: Vec::new(),
                        body: PullBody::Snapshot(snapshot),
                    });
                }
                None => evicted.push(*id),
            }
        }
        let after = pull.after.max(pull.since);
        let mut order: Vec<(u64, DocId)> = self
            .docs
            .iter()
            .filter(|(_, d)| d.seq > after)
            .map(|(id, d)| (d.seq, *id))
            .collect();
        order.sort();
        let mut position = after;
        let mut more = resends_left;
        for (seq, id) in order {
            if resends_left || (!out.is_empty() && bytes >= budget) {
                more = true;
                break;
            }
            let Some(d) = self.docs.get_mut(&id) else {
                continue;
            };
            position = seq;
            let heads = d.doc.heads();
            let own = |h: &ChangeHash| d.log.iter().any(|l| l.hash == *h && l.device == device);
            let (body, heads) = if pull.since == 0 && pull.takes_heads && heads.iter().all(own) {
                // Its own work: the device holds the document up to these heads.
                (PullBody::Changes(Vec::new()), hashes(&heads))
            } else if pull.since == 0 {
                (PullBody::Snapshot(d.doc.save()), Vec::new())
            } else {
                let changes: Vec<&Logged> = d
                    .log
                    .iter()
                    .filter(|l| l.seq > pull.since && l.device != device)
                    .collect();
                // Everything new is the caller's own: it learnt the heads from its push ack.
                if changes.is_empty() {
                    continue;
                }
                let heads = protocol::listed_heads(
                    hashes(&d.doc.heads()),
                    changes.iter().map(|l| l.hash.0.as_slice()),
                );
                let body = PullBody::Changes(changes.iter().map(|l| l.bytes.clone()).collect());
                (body, heads)
            };
            bytes += match &body {
                PullBody::Snapshot(s) => s.len(),
                PullBody::Changes(c) => c.iter().map(Vec::len).sum(),
            };
            out.push(PullDoc {
                doc: id,
                heads,
                body,
            });
        }
        let digest = self.digest();
        roundtrip(&PullResult {
            docs: out,
            evicted,
            after: position,
            more,
            digest,
            rescoped: false,
            catalogue: 0,
        })
    }

    /// Takes every change `central` holds that this server lacks, as a village office hub's copy
    /// down does: logged as no device's, so every device pulls them.
    pub fn copy_from(&mut self, central: &mut MemoryServer) {
        for (id, from) in &mut central.docs {
            let entry = self.docs.entry(*id).or_insert_with(|| ServerDoc {
                doc: ReportDoc::empty(*id),
                seq: 0,
                log: Vec::new(),
                ingested_conflicts: None,
            });
            let mut new = Vec::new();
            for bytes in from.doc.changes_since(&[]) {
                let hash = gridsync_core::report::decode_change(&bytes)
                    .expect("central's change")
                    .hash();
                if !entry.doc.has_change(&hash) {
                    new.push((hash, bytes));
                }
            }
            if new.is_empty() {
                continue;
            }
            entry
                .doc
                .apply_changes(&new.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>())
                .expect("central's changes apply");
            entry.ingested_conflicts = None;
            for (hash, bytes) in new {
                self.seq += 1;
                entry.seq = self.seq;
                entry.log.push(Logged {
                    seq: self.seq,
                    device: "central".into(),
                    hash,
                    bytes,
                });
            }
        }
    }

    pub fn digest(&mut self) -> protocol::Digest {
        let heads: Vec<(DocId, Vec<protocol::Hash>)> = self
            .docs
            .iter_mut()
            .map(|(id, d)| (*id, hashes(&d.doc.heads())))
            .collect();
        protocol::scope_digest(heads.iter().map(|(id, h)| (*id, h.as_slice())))
    }

    pub fn heads(&mut self) -> BTreeMap<DocId, Vec<ChangeHash>> {
        self.docs
            .iter_mut()
            .map(|(id, d)| (*id, d.doc.heads()))
            .collect()
    }

    pub fn doc(&self, id: &DocId) -> Option<&ReportDoc> {
        self.docs.get(id).map(|d| &d.doc)
    }

    pub fn doc_mut(&mut self, id: &DocId) -> Option<&mut ReportDoc> {
        self.docs.get_mut(id).map(|d| &mut d.doc)
    }

    /// The conflicts the last ingest of `id` reported, unless the document changed since
    /// another way (a hub's copy; a test writing through `doc_mut` must not ask).
    pub fn ingested_conflicts(&self, id: &DocId) -> Option<&[FieldPath]> {
        self.docs.get(id)?.ingested_conflicts.as_deref()
    }

    pub fn change_count(&self) -> usize {
        self.docs.values().map(|d| d.log.len()).sum()
    }
}

/// Every message crosses the binary encoding, as it would on the wire.
fn roundtrip<M: protocol::Message>(message: &M) -> M {
    protocol::decode(&protocol::encode(message)).expect("a message we encoded decodes")
}

fn hashes(heads: &[ChangeHash]) -> Vec<protocol::Hash> {
    heads.iter().map(|h| h.0).collect()
}

/// Saved documents of a device that parks them, as a phone's store keeps them.
type Disk = Arc<Mutex<BTreeMap<DocId, Vec<u8>>>>;

/// One device: a user's replica and its device id.
pub struct Device {
    pub user: String,
    pub device: String,
    pub replica: Replica,
    /// Set for a device that parks its documents after every step, as the phone does.
    disk: Option<Disk>,
}

impl Device {
    pub fn new(i: usize) -> Self {
        Device {
            user: format!("u{i}"),
            device: format!("d{i}"),
            replica: Replica::new(),
            disk: None,
        }
    }

    /// A device that keeps its documents saved and parked between steps, loading them back
    /// from the saved bytes when a step needs them.
    pub fn parking(i: usize) -> Self {
        let disk = Disk::default();
        let saved = disk.clone();
        let loader: Loader = Arc::new(move |id: &DocId| {
            let bytes = saved.lock().expect("disk").get(id).cloned();
            let bytes = bytes.ok_or_else(|| gridsync_core::Error::Load(*id, "not saved".into()))?;
            ReportDoc::load(*id, &bytes)
        });
        Device {
            replica: Replica::from_index([], Default::default(), loader),
            disk: Some(disk),
            ..Device::new(i)
        }
    }

    /// A document of this device, loaded when parked.
    pub fn doc(&mut self, id: &DocId) -> &mut ReportDoc {
        &mut self.replica.load(id).expect("loads").expect("has doc").doc
    }

    /// Saves every loaded document and parks them, on a parking device.
    pub fn settle(&mut self) {
        let Some(disk) = &self.disk else {
            return;
        };
        let ids: Vec<DocId> = self.replica.ids().copied().collect();
        for id in ids {
            if let Some(doc) = self.replica.doc_mut(&id) {
                disk.lock().expect("disk").insert(id, doc.save());
            }
        }
        self.replica.park(None);
    }

    pub fn push(&mut self, server: &mut MemoryServer, budget: usize) -> Option<PushSummary> {
        self.replica.load_for_push(256).expect("loads");
        let push = self.replica.build_push(budget)?;
        let result = server.push(&self.user, &self.device, &push);
        let summary = self.replica.apply_push_result(&result);
        self.settle();
        Some(summary)
    }

    /// Pulls until the server says there is no more (or a bounded number of pages).
    pub fn pull(&mut self, server: &mut MemoryServer, budget: u32) -> PullSummary {
        let mut last = PullSummary::default();
        for _ in 0..1000 {
            let pull = self.replica.build_pull(budget);
            let result = server.pull(&self.device, &pull);
            last = self
                .replica
                .apply_pull_result(result)
                .expect("pulled changes apply");
            self.settle();
            if !last.more {
                break;
            }
        }
        last
    }

    /// Pushes and pulls until nothing is pending and the digest agrees.
    pub fn sync_fully(&mut self, server: &mut MemoryServer) {
        for _ in 0..20 {
            while self
                .push(server, 64 * 1024)
                .is_some_and(|s| s.acked > 0 || s.resend > 0)
            {}
            let summary = self.pull(server, 64 * 1024);
            if self.replica.pending() == 0 && !summary.diverged {
                return;
            }
        }
        panic!("{} did not converge within 20 rounds", self.device);
    }
}
