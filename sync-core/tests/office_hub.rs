//! Property tests: phones syncing now with central, now with a village office hub that relays
//! upward and copies down, in random orders. A hub's acknowledgement never settles anything a
//! phone owes central; only central's acknowledgement or its receipt does. A phone never offers
//! central someone else's change it learned from the hub. In the end central holds every change
//! every phone made, nothing is owed, and every phone holds what central holds.
//!
//! `PROPTEST_CASES=20000 cargo test -p gridsync-core --release --test office_hub` runs a long
//! search.

mod support;

use std::collections::BTreeMap;

use automerge::ChangeHash;
use gridsync_core::DocId;
use gridsync_core::attest;
use gridsync_core::protocol::{Push, PushOutcome};
use gridsync_core::replica::{PushSummary, Server};
use gridsync_core::report::{Editor, ReportDoc};
use proptest::prelude::*;
use serde_json::json;
use support::{Device, MemoryServer};

const DOCS: usize = 2;
const FIELDS: [&str; 3] = ["description", "place", "risk_level"];

#[derive(Debug, Clone)]
enum Op {
    Edit {
        r: usize,
        doc: usize,
        field: usize,
    },
    /// A new report, made on the phone.
    Create {
        r: usize,
    },
    SyncCentral {
        r: usize,
    },
    SyncHub {
        r: usize,
    },
    /// The hub's uplink comes back: it relays its queue, then copies central down.
    Relay,
    TakeReceipts {
        r: usize,
    },
}

fn op(phones: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..phones, 0..DOCS, 0..FIELDS.len()).prop_map(|(r, doc, field)| Op::Edit { r, doc, field }),
        1 => (0..phones).prop_map(|r| Op::Create { r }),
        2 => (0..phones).prop_map(|r| Op::SyncCentral { r }),
        4 => (0..phones).prop_map(|r| Op::SyncHub { r }),
        1 => Just(Op::Relay),
        2 => (0..phones).prop_map(|r| Op::TakeReceipts { r }),
    ]
}

fn scenario() -> impl Strategy<Value = (usize, Vec<Op>, Vec<bool>)> {
    (2usize..=3).prop_flat_map(|n| {
        (
            Just(n),
            prop::collection::vec(op(n), 1..40),
            prop::collection::vec(any::<bool>(), n),
        )
    })
}

/// A push the hub took, waiting for the uplink, with the phone that signed it.
struct Queued {
    phone: usize,
    push: Push,
}

/// Central's receipt as a phone reads it: documents with the heads central took.
type Receipt = Vec<(DocId, Vec<ChangeHash>)>;

struct World {
    central: MemoryServer,
    hub: MemoryServer,
    phones: Vec<Device>,
    queue: Vec<Queued>,
    /// Receipts waiting at the hub for each phone.
    receipts: Vec<Vec<Receipt>>,
    /// Every change each phone made.
    made: Vec<Vec<ChangeHash>>,
}

impl World {
    fn push_to_hub(&mut self, r: usize) -> Option<PushSummary> {
        let dev = &mut self.phones[r];
        let mut skip = Default::default();
        dev.replica
            .load_for_push_to(Server::Hub, 256, &skip)
            .expect("loads");
        let push = dev.replica.build_push_to(Server::Hub, 1 << 20, &mut skip)?;
        let result = self.hub.push(&dev.user, &dev.device, &push);
        let summary = dev.replica.apply_push_result_from(Server::Hub, &result);
        dev.settle();
        let taken = result
            .docs
            .iter()
            .any(|d| !matches!(d.outcome, PushOutcome::Rejected { .. }));
        if taken {
            self.queue.push(Queued { phone: r, push });
        }
        Some(summary)
    }

    fn pull_from_hub(&mut self, r: usize) {
        let dev = &mut self.phones[r];
        for _ in 0..100 {
            let pull = dev.replica.build_pull_from(Server::Hub, 1 << 20);
            let result = self.hub.pull(&dev.device, &pull);
            let summary = dev
                .replica
                .apply_pull_result_from(Server::Hub, result)
                .expect("applies");
            dev.settle();
            if !summary.more {
                return;
            }
        }
        panic!("the hub's pull did not end");
    }

    /// The hub relays each queued push as its phone's, in order, and hands back central's
    /// receipt for the documents central took; then it copies central down.
    fn relay(&mut self) {
        for queued in std::mem::take(&mut self.queue) {
            let dev = &self.phones[queued.phone];
            let result = self.central.push(&dev.user, &dev.device, &queued.push);
            let mut receipt = Vec::new();
            for (item, pushed) in result.docs.iter().zip(&queued.push.docs) {
                if matches!(item.outcome, PushOutcome::Acked { .. }) {
                    let heads = attest::heads(&pushed.changes).expect("heads");
                    receipt.push((item.doc, heads.into_iter().map(ChangeHash).collect()));
                }
            }
            self.receipts[queued.phone].push(receipt);
        }
        self.hub.copy_from(&mut self.central);
    }

    fn take_receipts(&mut self, r: usize) {
        let dev = &mut self.phones[r];
        for receipt in std::mem::take(&mut self.receipts[r]) {
            for (doc, heads) in receipt {
                dev.replica
                    .apply_receipt(&doc, &heads, false)
                    .expect("applies");
            }
        }
        dev.settle();
    }
}

fn run(phones: usize, ops: Vec<Op>, parking: Vec<bool>) -> Result<(), TestCaseError> {
    let mut world = World {
        central: MemoryServer::default(),
        hub: MemoryServer::default(),
        phones: (0..phones)
            .map(|i| {
                if parking[i] {
                    Device::parking(i)
                } else {
                    Device::new(i)
                }
            })
            .collect(),
        queue: Vec::new(),
        receipts: (0..phones).map(|_| Vec::new()).collect(),
        made: (0..phones).map(|_| Vec::new()).collect(),
    };
    let mut ids = Vec::new();
    for i in 0..DOCS {
        let id = DocId::from_u128(i as u128 + 1);
        let mut doc =
            ReportDoc::create(id, "dispute_check", 1, "grid-1", &Editor::new("u0", 1_000))
                .expect("create");
        world.made[0].extend(doc.heads());
        world.phones[0].replica.insert(doc);
        ids.push(id);
    }
    world.phones[0].settle();
    for d in &mut world.phones {
        d.sync_fully(&mut world.central);
    }
    world.hub.copy_from(&mut world.central);
    let mut clock = 2_000;
    for op in ops {
        clock += 1;
        match op {
            Op::Edit { r, doc, field } => {
                let dev = &mut world.phones[r];
                let user = dev.user.clone();
                let d = dev.doc(&ids[doc]);
                d.set_field(
                    FIELDS[field],
                    &json!(format!("{user}-{clock}")),
                    &Editor::new(user, clock),
                )
                .expect("set");
                world.made[r].extend(d.heads());
                dev.settle();
            }
            Op::Create { r } => {
                let dev = &mut world.phones[r];
                let id = DocId::from_u128(1_000 + clock as u128);
                let mut doc = ReportDoc::create(
                    id,
                    "dispute_check",
                    1,
                    "grid-1",
                    &Editor::new(&dev.user, clock),
                )
                .expect("create");
                world.made[r].extend(doc.heads());
                dev.replica.insert(doc);
                dev.settle();
            }
            Op::SyncCentral { r } => {
                let dev = &mut world.phones[r];
                while let Some(summary) = dev.push(&mut world.central, 1 << 20) {
                    prop_assert!(
                        summary.rejected.is_empty(),
                        "central refused {:?}: a phone offered someone else's change",
                        summary.rejected
                    );
                    if summary.acked == 0 && summary.resend == 0 {
                        break;
                    }
                }
                let pulled = dev.pull(&mut world.central, 1 << 20);
                prop_assert!(
                    !pulled.diverged,
                    "a sync with central started over: the phone forgot what central holds"
                );
            }
            Op::SyncHub { r } => {
                let owed = world.phones[r].replica.pending();
                while let Some(summary) = world.push_to_hub(r) {
                    if summary.acked == 0 && summary.resend == 0 {
                        break;
                    }
                }
                world.pull_from_hub(r);
                prop_assert_eq!(
                    world.phones[r].replica.pending(),
                    owed,
                    "a hub's acknowledgement or pull changed what the phone owes central"
                );
            }
            Op::Relay => world.relay(),
            Op::TakeReceipts { r } => {
                let owed = world.phones[r].replica.pending();
                world.take_receipts(r);
                prop_assert!(world.phones[r].replica.pending() <= owed);
            }
        }
    }

    // The uplink comes back for good, and every phone reaches central.
    world.relay();
    for r in 0..phones {
        world.take_receipts(r);
    }
    for _ in 0..2 {
        for d in &mut world.phones {
            d.sync_fully(&mut world.central);
        }
    }
    let heads: BTreeMap<DocId, Vec<ChangeHash>> = world.central.heads();
    for (r, made) in world.made.iter().enumerate() {
        for change in made {
            let held = heads.keys().any(|id| {
                world
                    .central
                    .doc(id)
                    .is_some_and(|d| d.clone().has_change(change))
            });
            prop_assert!(held, "central lacks a change phone {r} made");
        }
    }
    for d in &mut world.phones {
        prop_assert_eq!(d.replica.pending(), 0);
        for (id, central_heads) in &heads {
            prop_assert_eq!(&d.doc(id).heads(), central_heads);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hub_acks_never_settle_what_is_owed_to_central_and_central_ends_with_every_change(
        (phones, ops, parking) in scenario()
    ) {
        run(phones, ops, parking)?;
    }
}

/// A receipt settles exactly the changes it names: an edit made after the push the hub relayed
/// stays owed.
#[test]
fn a_receipt_settles_the_relayed_changes_and_not_a_later_edit() {
    let mut central = MemoryServer::default();
    let mut hub = MemoryServer::default();
    let mut phone = Device::new(0);
    let id = DocId::from_u128(7);
    let by = Editor::new("u0", 1);
    let doc = ReportDoc::create(id, "dispute_check", 1, "grid-1", &by).expect("create");
    phone.replica.insert(doc);
    let mut skip = Default::default();
    let push = phone
        .replica
        .build_push_to(Server::Hub, 1 << 20, &mut skip)
        .expect("a push");
    let at_hub = hub.push("u0", "d0", &push);
    phone.replica.apply_push_result_from(Server::Hub, &at_hub);
    assert_eq!(
        phone.replica.pending(),
        1,
        "held by the hub, still owed to central"
    );

    phone
        .doc(&id)
        .set_field("place", &json!("村口"), &Editor::new("u0", 2))
        .expect("edit");
    assert_eq!(phone.replica.pending(), 2);

    central.push("u0", "d0", &push);
    let heads: Vec<ChangeHash> = attest::heads(&push.docs[0].changes)
        .expect("heads")
        .into_iter()
        .map(ChangeHash)
        .collect();
    assert!(
        phone
            .replica
            .apply_receipt(&id, &heads, false)
            .expect("applies")
    );
    assert_eq!(phone.replica.pending(), 1, "the later edit is still owed");
}

/// A change first learned from the hub is someone else's: neither owed nor pushed to central.
#[test]
fn a_change_learned_from_the_hub_is_never_offered_to_central() {
    let mut central = MemoryServer::default();
    let mut hub = MemoryServer::default();
    let mut wang = Device::new(0);
    let mut li = Device::new(1);
    let id = DocId::from_u128(9);
    let doc =
        ReportDoc::create(id, "dispute_check", 1, "grid-1", &Editor::new("u0", 1)).expect("create");
    wang.replica.insert(doc);
    wang.sync_fully(&mut central);
    li.sync_fully(&mut central);
    hub.copy_from(&mut central);

    wang.doc(&id)
        .set_field("place", &json!("村委会"), &Editor::new("u0", 2))
        .expect("edit");
    let mut skip = Default::default();
    let push = wang
        .replica
        .build_push_to(Server::Hub, 1 << 20, &mut skip)
        .expect("a push");
    let result = hub.push("u0", "d0", &push);
    wang.replica.apply_push_result_from(Server::Hub, &result);

    let pull = li.replica.build_pull_from(Server::Hub, 1 << 20);
    let page = hub.pull("d1", &pull);
    li.replica
        .apply_pull_result_from(Server::Hub, page)
        .expect("applies");
    assert_eq!(
        li.doc(&id).field("place").expect("read"),
        Some(json!("村委会"))
    );
    assert_eq!(li.replica.pending(), 0, "wang's edit is wang's to deliver");
    assert!(li.replica.build_push(1 << 20).is_none());
    assert_eq!(wang.replica.pending(), 1);
}
