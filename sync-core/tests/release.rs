//! A phone lets go of a report only once the server has every change of it: whatever the order of
//! edits, acknowledgements, held answers, evictions and re-scopings, `Replica::releasable` never
//! names a report with a change the server was not told of, and nothing else leaves the replica.

use std::collections::BTreeSet;

use automerge::{Change, ChangeHash};
use gridsync_core::DocId;
use gridsync_core::protocol::{PullResult, PushDocResult, PushOutcome, PushResult};
use gridsync_core::replica::Replica;
use gridsync_core::report::{Editor, ReportDoc};
use proptest::prelude::*;
use serde_json::json;

const DOCS: u128 = 3;

#[derive(Debug, Clone)]
enum Op {
    Edit(u128),
    /// The server answers the next push, holding the documents for which the flag is set.
    Push([bool; DOCS as usize]),
    Evict(u128),
    Rescope,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..DOCS).prop_map(Op::Edit),
        3 => any::<[bool; DOCS as usize]>().prop_map(Op::Push),
        2 => (0..DOCS).prop_map(Op::Evict),
        1 => Just(Op::Rescope),
    ]
}

fn hashes(doc: &mut ReportDoc) -> BTreeSet<ChangeHash> {
    doc.changes_since(&[])
        .into_iter()
        .map(|bytes| Change::from_bytes(bytes).expect("change").hash())
        .collect()
}

/// A page that does not end the pull, so no digest is compared.
fn page(evicted: Vec<DocId>, rescoped: bool, after: u64) -> PullResult {
    PullResult {
        docs: Vec::new(),
        evicted,
        after,
        more: true,
        digest: [0; 16],
        rescoped,
        catalogue: 0,
    }
}

proptest! {
    #[test]
    fn a_report_is_released_only_once_the_server_has_every_change_of_it(
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let mut replica = Replica::new();
        let mut delivered: BTreeSet<ChangeHash> = BTreeSet::new();
        let mut released: BTreeSet<DocId> = BTreeSet::new();
        let mut clock = 1_000;
        for op in ops {
            clock += 1;
            let before: BTreeSet<DocId> = replica.ids().copied().collect();
            match op {
                Op::Edit(n) => {
                    let id = DocId::from_u128(n + 1);
                    if released.contains(&id) {
                        continue;
                    }
                    let by = Editor::new("w1", clock);
                    if replica.get(&id).is_none() {
                        replica.insert(
                            ReportDoc::create(id, "dispute_check", 1, "g1", &by).expect("create"),
                        );
                    }
                    replica
                        .doc_mut(&id)
                        .expect("held")
                        .set_field("place", &json!(format!("at {clock}")), &by)
                        .expect("edit");
                }
                Op::Push(held) => {
                    let Some(push) = replica.build_push(usize::MAX) else {
                        continue;
                    };
                    let docs = push
                        .docs
                        .iter()
                        .map(|d| {
                            for bytes in &d.changes {
                                delivered.insert(Change::from_bytes(bytes.clone()).expect("change").hash());
                            }
                            let index = (d.doc.as_u128() - 1) as usize;
                            PushDocResult {
                                doc: d.doc,
                                outcome: if held[index] {
                                    PushOutcome::Held { code: "out_of_scope".into(), reason: String::new() }
                                } else {
                                    PushOutcome::Acked { heads: Vec::new() }
                                },
                            }
                        })
                        .collect();
                    replica.apply_push_result(&PushResult::central(docs));
                }
                Op::Evict(n) => {
                    let after = replica.cursor().after + 1;
                    replica
                        .apply_pull_result(page(vec![DocId::from_u128(n + 1)], false, after))
                        .expect("apply");
                }
                Op::Rescope => {
                    replica.apply_pull_result(page(Vec::new(), true, 1)).expect("apply");
                }
            }
            let after: BTreeSet<DocId> = replica.ids().copied().collect();
            prop_assert!(before.is_subset(&after), "nothing leaves but what is released");
            for id in replica.releasable() {
                let mut doc = replica.get(&id).expect("held").doc.clone();
                prop_assert!(hashes(&mut doc).is_subset(&delivered), "{id} released undelivered");
                replica.remove(&id);
                released.insert(id);
            }
        }
    }
}
