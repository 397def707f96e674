//! Target `replica_apply`: the phone applying a push result or a pull page decoded from
//! arbitrary bytes, as a hostile server or a corrupted response would send them. Applying may
//! fail with a typed error; either way the replica must go on building pushes and pulls and
//! reading its documents.
//!
//! A pull page is applied as decoded and, when that differs, with the checksums of its changes
//! and snapshots repaired ([`fix_checksum`]), so that mutated changes reach the replica.

use std::sync::OnceLock;

use automerge::{Change, ChangeHash};
use gridsync_core::protocol::{self, PullBody, PullResult, PushResult};
use gridsync_core::replica::{Cursor, LocalDoc, Replica};

use crate::fixture::{fix_checksum, report};

/// The cursor of [`replica`].
pub const CURSOR: Cursor = Cursor { since: 5, after: 5 };

pub fn run(data: &[u8]) {
    if let Ok(result) = protocol::decode::<PushResult>(data) {
        let mut replica = replica();
        replica.apply_push_result(&result);
        still_works(&mut replica);
    }
    if let Ok(result) = protocol::decode::<PullResult>(data) {
        let fixed = with_fixed_checksums(&result);
        if fixed != result {
            apply_pull(fixed);
        }
        apply_pull(result);
    }
}

/// A phone holding the fixture report, whose first change the server has acknowledged and
/// whose second is in the push in flight.
pub fn replica() -> Replica {
    static REPLICA: OnceLock<Replica> = OnceLock::new();
    REPLICA
        .get_or_init(|| {
            let mut doc = report();
            let first = doc.changes_since(&[]).swap_remove(0);
            let first = Change::from_bytes(first).expect("the fixture's changes decode");
            let acked: Vec<ChangeHash> = vec![first.hash()];
            let mut replica = Replica::from_parts(
                [LocalDoc {
                    acked,
                    ..LocalDoc::new(doc)
                }],
                CURSOR,
            );
            replica.build_push(usize::MAX);
            replica
        })
        .clone()
}

fn apply_pull(result: PullResult) {
    let mut replica = replica();
    let _ = replica.apply_pull_result(result);
    still_works(&mut replica);
}

fn with_fixed_checksums(result: &PullResult) -> PullResult {
    let mut fixed = result.clone();
    for doc in &mut fixed.docs {
        match &mut doc.body {
            PullBody::Changes(changes) => {
                for change in changes {
                    *change = fix_checksum(change);
                }
            }
            PullBody::Snapshot(snapshot) => *snapshot = fix_checksum(snapshot),
        }
    }
    fixed
}

fn still_works(replica: &mut Replica) {
    replica.pending();
    replica.build_push(1 << 20);
    replica.build_pull(1 << 20);
    replica.digest();
    let ids: Vec<_> = replica.ids().copied().collect();
    for id in ids {
        let doc = replica.doc_mut(&id).expect("listed documents exist");
        // A document whose creating change has not arrived has no meta: an error, not a panic.
        let _ = doc.meta();
        let _ = doc.to_json();
        doc.heads();
    }
}
