//! Wire size of the typical case: one field edited on one report, as a push and as the pull that
//! delivers it to another device. Prints the figures the issue note reports and bounds them by the
//! performance target (BENCHMARKS.md, W3).

mod support;

use gridsync_core::DocId;
use gridsync_core::protocol::{self, PullBody};
use gridsync_core::report::{Editor, ReportDoc};
use serde_json::json;
use support::{Device, MemoryServer};

#[test]
fn one_changed_field_costs_a_small_push_and_a_small_pull() {
    let mut server = MemoryServer::default();
    let mut phone = Device::new(1);
    let mut office = Device::new(2);
    let id = DocId::from_u128(1);
    let doc =
        ReportDoc::create(id, "dispute_check", 1, "g1", &Editor::new("u1", 1)).expect("create");
    phone.replica.insert(doc);
    phone.sync_fully(&mut server);
    office.sync_fully(&mut server);

    phone
        .replica
        .doc_mut(&id)
        .expect("doc")
        .set_field("risk_level", &json!("high"), &Editor::new("u1", 2))
        .expect("set");
    let push = phone.replica.build_push(1 << 20).expect("pending");
    let change_bytes: usize = push.docs[0].changes.iter().map(Vec::len).sum();
    let push_bytes = protocol::encode(&push).len();
    let result = server.push(&phone.user, &phone.device, &push);
    let ack_bytes = protocol::encode(&result).len();
    phone.replica.apply_push_result(&result);

    let pull = office.replica.build_pull(1 << 20);
    let pull_bytes = protocol::encode(&pull).len();
    let answer = server.pull(&office.device, &pull);
    assert!(matches!(answer.docs[0].body, PullBody::Changes(_)));
    let answer_bytes = protocol::encode(&answer).len();
    eprintln!(
        "one field: change {change_bytes} B, push {push_bytes} B, ack {ack_bytes} B, \
         pull request {pull_bytes} B, pull answer {answer_bytes} B"
    );
    // The performance target: 1.2 times the change plus 40 bytes for the document, each way.
    let target = 1.2 * change_bytes as f64 + 40.0;
    assert!(push_bytes as f64 <= target, "push overhead");
    assert!(
        answer_bytes as f64 <= target,
        "pull overhead (doc id, cursor, digest; the heads are the change's)"
    );
    assert!(ack_bytes <= 40, "an ack of what was pushed lists no heads");
}
