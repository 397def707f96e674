//! Property tests: replicas editing the same reports offline and syncing through the reference
//! server in random orders, with lost and repeated messages, end identical, and report a conflict
//! exactly where two of them wrote the same field without seeing each other's write, both in a
//! scan of the merged report and in what the server's last ingest of it found.
//!
//! `PROPTEST_CASES=100000 cargo test -p gridsync-core --release --test convergence` runs a long
//! search; the default run covers 1,000 cases.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use automerge::ChangeHash;
use gridsync_core::DocId;
use gridsync_core::conflict::FieldPath;
use gridsync_core::report::{Editor, ReportDoc};
use proptest::prelude::*;
use serde_json::{Map, json};
use support::{Device, MemoryServer};

const DOCS: usize = 2;
const FIELDS: [&str; 3] = ["description", "place", "risk_level"];
const LOG_FIELDS: [&str; 2] = ["method", "outcome"];

#[derive(Debug, Clone)]
enum Fault {
    None,
    DropPushRequest,
    DropPushResponse,
    DuplicatePush,
    DropPullResponse,
}

#[derive(Debug, Clone)]
enum Op {
    SetField {
        r: usize,
        doc: usize,
        field: usize,
    },
    AppendLog {
        r: usize,
        doc: usize,
    },
    EditLog {
        r: usize,
        doc: usize,
        entry: usize,
        field: usize,
    },
    Sync {
        r: usize,
        fault: Fault,
        small_pages: bool,
    },
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        4 => Just(Fault::None),
        1 => Just(Fault::DropPushRequest),
        1 => Just(Fault::DropPushResponse),
        1 => Just(Fault::DuplicatePush),
        1 => Just(Fault::DropPullResponse),
    ]
}

fn op(replicas: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..replicas, 0..DOCS, 0..FIELDS.len()).prop_map(|(r, doc, field)| Op::SetField { r, doc, field }),
        1 => (0..replicas, 0..DOCS).prop_map(|(r, doc)| Op::AppendLog { r, doc }),
        2 => (0..replicas, 0..DOCS, 0..8usize, 0..LOG_FIELDS.len())
            .prop_map(|(r, doc, entry, field)| Op::EditLog { r, doc, entry, field }),
        3 => (0..replicas, fault(), any::<bool>()).prop_map(|(r, fault, small_pages)| Op::Sync { r, fault, small_pages }),
    ]
}

/// Replicas, operations, and which replicas park their documents between steps.
fn scenario() -> impl Strategy<Value = (usize, Vec<Op>, Vec<bool>)> {
    (3usize..=5).prop_flat_map(|n| {
        (
            Just(n),
            prop::collection::vec(op(n), 1..40),
            prop::collection::vec(any::<bool>(), n),
        )
    })
}

/// A write to one register, as the model sees it: which writes it overwrote.
struct Write {
    key: (DocId, FieldPath),
    change: ChangeHash,
    overwrote: BTreeSet<usize>,
}

/// The register semantics the document must follow, computed from causality alone: a write
/// overwrites exactly the writes its author could see and that nothing it saw had overwritten.
#[derive(Default)]
struct Model {
    writes: Vec<Write>,
}

impl Model {
    fn visible(&self, doc: &mut ReportDoc, key: &(DocId, FieldPath)) -> BTreeSet<usize> {
        let known: Vec<usize> = (0..self.writes.len())
            .filter(|&i| self.writes[i].key == *key && doc.has_change(&self.writes[i].change))
            .collect();
        known
            .iter()
            .copied()
            .filter(|i| !known.iter().any(|j| self.writes[*j].overwrote.contains(i)))
            .collect()
    }

    fn record(&mut self, doc: &mut ReportDoc, paths: Vec<FieldPath>, before: Vec<BTreeSet<usize>>) {
        let heads = doc.heads();
        assert_eq!(heads.len(), 1, "a local commit is the only head");
        for (path, overwrote) in paths.into_iter().zip(before) {
            self.writes.push(Write {
                key: (doc.id(), path),
                change: heads[0],
                overwrote,
            });
        }
    }

    /// Registers with more than one write that nothing overwrote.
    fn expected_conflicts(&self) -> BTreeSet<(DocId, FieldPath)> {
        let overwritten: BTreeSet<usize> = self
            .writes
            .iter()
            .flat_map(|w| w.overwrote.iter().copied())
            .collect();
        let mut live: BTreeMap<&(DocId, FieldPath), usize> = BTreeMap::new();
        for (i, w) in self.writes.iter().enumerate() {
            if !overwritten.contains(&i) {
                *live.entry(&w.key).or_default() += 1;
            }
        }
        live.into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

fn run(replicas: usize, ops: Vec<Op>, parking: Vec<bool>) -> Result<(), TestCaseError> {
    let mut server = MemoryServer::default();
    let mut devices: Vec<Device> = (0..replicas)
        .map(|i| {
            if parking[i] {
                Device::parking(i)
            } else {
                Device::new(i)
            }
        })
        .collect();
    let mut model = Model::default();
    let mut ids = Vec::new();
    for i in 0..DOCS {
        let id = DocId::from_u128(i as u128 + 1);
        let doc = ReportDoc::create(id, "dispute_check", 1, "grid-1", &Editor::new("u0", 1_000))
            .expect("create");
        devices[0].replica.insert(doc);
        ids.push(id);
    }
    devices[0].settle();
    for d in &mut devices {
        d.sync_fully(&mut server);
    }
    let mut clock = 2_000;
    let mut counter = 0;
    for op in ops {
        clock += 1;
        counter += 1;
        match op {
            Op::SetField { r, doc, field } => {
                let dev = &mut devices[r];
                let user = dev.user.clone();
                let d = dev.doc(&ids[doc]);
                let path = FieldPath::Field(FIELDS[field].into());
                let before = model.visible(d, &(ids[doc], path.clone()));
                let value = json!(format!("{user}-{counter}"));
                d.set_field(FIELDS[field], &value, &Editor::new(user, clock))
                    .expect("set");
                model.record(d, vec![path], vec![before]);
            }
            Op::AppendLog { r, doc } => {
                let dev = &mut devices[r];
                let user = dev.user.clone();
                let d = dev.doc(&ids[doc]);
                let mut values = Map::new();
                values.insert("method".into(), json!(format!("{user}-{counter}")));
                let entry = d
                    .append_log(&values, &Editor::new(user, clock))
                    .expect("append");
                let path = FieldPath::Log {
                    entry,
                    field: "method".into(),
                };
                model.record(d, vec![path], vec![BTreeSet::new()]);
            }
            Op::EditLog {
                r,
                doc,
                entry,
                field,
            } => {
                let dev = &mut devices[r];
                let user = dev.user.clone();
                let d = dev.doc(&ids[doc]);
                let entries = d.to_json().expect("json")["log"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if entries.is_empty() {
                    continue;
                }
                let entry_id = entries[entry % entries.len()]["id"]
                    .as_str()
                    .expect("id")
                    .to_owned();
                let path = FieldPath::Log {
                    entry: entry_id.clone(),
                    field: LOG_FIELDS[field].into(),
                };
                let before = model.visible(d, &(ids[doc], path.clone()));
                let mut values = Map::new();
                values.insert(LOG_FIELDS[field].into(), json!(format!("{user}-{counter}")));
                d.edit_log(&entry_id, &values, &Editor::new(user, clock))
                    .expect("edit");
                model.record(d, vec![path], vec![before]);
            }
            Op::Sync {
                r,
                fault,
                small_pages,
            } => {
                let dev = &mut devices[r];
                let budget = if small_pages { 1 } else { 1 << 20 };
                dev.replica.load_for_push(256).expect("loads");
                if let Some(push) = dev.replica.build_push(budget) {
                    match fault {
                        Fault::DropPushRequest => {}
                        Fault::DropPushResponse => {
                            server.push(&dev.user, &dev.device, &push);
                        }
                        Fault::DuplicatePush => {
                            server.push(&dev.user, &dev.device, &push);
                            let result = server.push(&dev.user, &dev.device, &push);
                            dev.replica.apply_push_result(&result);
                        }
                        _ => {
                            let result = server.push(&dev.user, &dev.device, &push);
                            dev.replica.apply_push_result(&result);
                        }
                    }
                }
                if matches!(fault, Fault::DropPullResponse) {
                    let pull = dev.replica.build_pull(budget as u32);
                    server.pull(&dev.device, &pull);
                } else {
                    dev.pull(&mut server, budget as u32);
                }
            }
        }
        for d in &mut devices {
            d.settle();
        }
    }
    // Everyone syncs until quiet, twice round so each sees the others' last pushes.
    for _ in 0..2 {
        for d in &mut devices {
            d.sync_fully(&mut server);
        }
    }

    let server_heads = server.heads();
    let expected = model.expected_conflicts();
    for id in &ids {
        let server_doc = server.doc_mut(id).expect("server has doc");
        let server_json = server_doc.to_json().expect("json");
        let server_conflicts: BTreeSet<(DocId, FieldPath)> = server_doc
            .conflicts()
            .expect("conflicts")
            .into_iter()
            .map(|c| (*id, c.path))
            .collect();
        let expected_here: BTreeSet<_> =
            expected.iter().filter(|(d, _)| d == id).cloned().collect();
        prop_assert_eq!(
            &server_conflicts,
            &expected_here,
            "server conflicts of {}",
            id
        );
        // Ingest notes conflicts while it projects the report; a scan of its own must agree.
        if let Some(ingested) = server.ingested_conflicts(id) {
            let ingested: BTreeSet<(DocId, FieldPath)> =
                ingested.iter().map(|path| (*id, path.clone())).collect();
            prop_assert_eq!(&ingested, &server_conflicts, "ingested conflicts of {}", id);
        }
        for dev in &mut devices {
            let doc = dev.doc(id);
            prop_assert_eq!(
                &doc.heads(),
                &server_heads[id],
                "heads of {} on {}",
                id,
                dev.device
            );
            prop_assert_eq!(&doc.to_json().expect("json"), &server_json);
        }
    }
    for dev in &mut devices {
        prop_assert_eq!(dev.replica.pending(), 0);
        prop_assert_eq!(dev.replica.digest(), server.digest());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn replicas_converge_and_report_exactly_the_concurrent_writes((replicas, ops, parking) in scenario()) {
        run(replicas, ops, parking)?;
    }
}

#[test]
fn a_push_retried_after_a_lost_ack_stores_nothing_twice() {
    let mut server = MemoryServer::default();
    let mut phone = Device::new(1);
    let id = DocId::from_u128(7);
    let mut doc = ReportDoc::create(id, "dispute_check", 1, "grid-1", &Editor::new("u1", 10))
        .expect("create");
    doc.set_field("place", &json!("村口"), &Editor::new("u1", 11))
        .expect("set");
    phone.replica.insert(doc);
    let push = phone.replica.build_push(1 << 20).expect("pending");
    server.push(&phone.user, &phone.device, &push);
    assert_eq!(server.change_count(), 2);
    // The ack never arrived: the phone still counts both changes as pending and sends them again.
    assert_eq!(phone.replica.pending(), 2);
    phone.sync_fully(&mut server);
    assert_eq!(server.change_count(), 2);
    assert_eq!(phone.replica.pending(), 0);
}

#[test]
fn a_first_pull_after_a_push_lists_the_devices_own_reports_by_their_heads_alone() {
    let mut server = MemoryServer::default();
    let (mut phone, mut other) = (Device::new(1), Device::new(2));
    let (mine, theirs) = (DocId::from_u128(21), DocId::from_u128(22));
    phone.replica.insert(
        ReportDoc::create(mine, "dispute_check", 1, "grid-1", &Editor::new("u1", 10))
            .expect("create"),
    );
    other.replica.insert(
        ReportDoc::create(theirs, "dispute_check", 1, "grid-1", &Editor::new("u2", 10))
            .expect("create"),
    );
    other.sync_fully(&mut server);
    phone.push(&mut server, 1 << 20).expect("pending");

    let result = server.pull(&phone.device, &phone.replica.build_pull(1 << 20));
    let listed: BTreeMap<DocId, bool> = result
        .docs
        .iter()
        .map(|d| (d.doc, d.heads_only()))
        .collect();
    assert_eq!(listed, BTreeMap::from([(mine, true), (theirs, false)]));
    let summary = phone.replica.apply_pull_result(result).expect("applies");
    assert!(!summary.more && !summary.diverged);
    assert_eq!(phone.replica.digest(), server.digest());
}

#[test]
fn a_device_that_lost_its_own_reports_is_listed_their_heads_and_gets_them_whole() {
    let mut server = MemoryServer::default();
    let mut phone = Device::new(1);
    let id = DocId::from_u128(23);
    let mut doc = ReportDoc::create(id, "dispute_check", 1, "grid-1", &Editor::new("u1", 10))
        .expect("create");
    doc.set_field("place", &json!("村委会"), &Editor::new("u1", 11))
        .expect("set");
    phone.replica.insert(doc);
    phone.sync_fully(&mut server);
    // The same device, its store gone: it pulls from zero and holds nothing.
    let mut again = Device::new(1);
    let summary = again.pull(&mut server, 1 << 20);
    assert!(!summary.diverged);
    assert_eq!(
        again.doc(&id).field("place").expect("read"),
        Some(json!("村委会"))
    );
    assert_eq!(again.replica.digest(), server.digest());
}

#[test]
fn a_server_that_lost_history_asks_for_it_and_gets_it() {
    let mut phone = Device::new(1);
    let id = DocId::from_u128(8);
    let doc = ReportDoc::create(id, "dispute_check", 1, "grid-1", &Editor::new("u1", 10))
        .expect("create");
    phone.replica.insert(doc);
    let mut old = MemoryServer::default();
    phone.sync_fully(&mut old);
    phone
        .replica
        .doc_mut(&id)
        .expect("doc")
        .set_field("place", &json!("晒谷场"), &Editor::new("u1", 12))
        .expect("set");
    // A server restored from an older backup has never seen the document.
    let mut restored = MemoryServer::default();
    let first = phone.push(&mut restored, 1 << 20).expect("pending");
    assert_eq!(first.resend, 1);
    phone.sync_fully(&mut restored);
    let doc = restored.doc(&id).expect("restored has doc");
    assert_eq!(doc.field("place").expect("read"), Some(json!("晒谷场")));
}

#[test]
fn a_change_claiming_another_author_is_refused_and_nothing_is_stored() {
    let mut server = MemoryServer::default();
    let mut phone = Device::new(1);
    let doc = ReportDoc::create(
        DocId::from_u128(9),
        "dispute_check",
        1,
        "g",
        &Editor::new("someone-else", 1),
    )
    .expect("create");
    phone.replica.insert(doc);
    let summary = phone.push(&mut server, 1 << 20).expect("pending");
    assert_eq!(summary.rejected.len(), 1);
    assert_eq!(summary.rejected[0].1, "foreign_author");
    assert_eq!(server.change_count(), 0);
    // Refused documents are not pushed again until they change.
    assert!(phone.replica.build_push(1 << 20).is_none());
}

#[test]
fn a_refused_report_offered_again_is_accepted_once_the_server_knows_its_kind() {
    let mut server = MemoryServer::default();
    let mut phone = Device::new(1);
    let id = DocId::from_u128(10);
    let doc = ReportDoc::create(id, "street_lamp", 1, "g", &Editor::new("u1", 1)).expect("create");
    phone.replica.insert(doc);
    let summary = phone.push(&mut server, 1 << 20).expect("pending");
    assert_eq!(summary.rejected[0].1, "unknown_kind");
    assert!(phone.replica.build_push(1 << 20).is_none());

    let mut lamp: serde_json::Value =
        serde_json::from_str(include_str!("../schemas/dispute_check.v1.json")).expect("json");
    lamp["kind"] = json!("street_lamp");
    server.publish(&lamp.to_string());
    assert!(phone.replica.retry_rejected(&id));
    assert!(!phone.replica.retry_rejected(&id), "no longer refused");
    let summary = phone.push(&mut server, 1 << 20).expect("offered again");
    assert_eq!(summary.acked, 1);
    assert_eq!(phone.replica.pending(), 0);
}
