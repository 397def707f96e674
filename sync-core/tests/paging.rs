//! A pull split into pages by a small byte budget still costs bytes in proportion to what
//! changed: every document arrives once, with its whole history since the last pull, and no
//! page needs a resend to fill gaps.

mod support;

use std::collections::BTreeMap;

use automerge::ChangeHash;
use gridsync_core::DocId;
use gridsync_core::protocol::PullBody;
use gridsync_core::report::{Editor, ReportDoc};
use serde_json::json;
use support::{Device, MemoryServer};

const DOCS: u128 = 60;
const BUDGET: u32 = 2_000;

/// Pulls page by page, checking that no page asks for a resend; returns (pages, body bytes).
fn pull_in_pages(device: &mut Device, server: &mut MemoryServer) -> (usize, usize) {
    let mut pages = 0;
    let mut bytes = 0;
    loop {
        let pull = device.replica.build_pull(BUDGET);
        assert!(
            pull.resend.is_empty(),
            "page {pages} had to ask for resends"
        );
        let answer = server.pull(&device.device, &pull);
        bytes += answer
            .docs
            .iter()
            .map(|d| match &d.body {
                PullBody::Snapshot(s) => s.len(),
                PullBody::Changes(c) => c.iter().map(Vec::len).sum(),
            })
            .sum::<usize>();
        pages += 1;
        let summary = device.replica.apply_pull_result(answer).expect("applies");
        assert!(!summary.diverged, "digest disagreed after page {pages}");
        if !summary.more {
            return (pages, bytes);
        }
    }
}

fn heads(device: &Device) -> BTreeMap<DocId, Vec<ChangeHash>> {
    device
        .replica
        .docs()
        .map(|d| (d.doc.id(), d.doc.clone().heads()))
        .collect()
}

fn phone_with_reports(server: &mut MemoryServer) -> Device {
    let mut phone = Device::new(1);
    for i in 0..DOCS {
        let editor = Editor::new("u1", 1);
        let mut doc = ReportDoc::create(DocId::from_u128(i + 1), "dispute_check", 1, "g1", &editor)
            .expect("create");
        doc.set_field("description", &json!(format!("report {i}")), &editor)
            .expect("set");
        phone.replica.insert(doc);
    }
    phone.sync_fully(server);
    phone
}

#[test]
fn a_cold_pull_over_many_pages_sends_each_document_once_without_resends() {
    let mut server = MemoryServer::default();
    phone_with_reports(&mut server);

    let mut office = Device::new(2);
    let (pages, bytes) = pull_in_pages(&mut office, &mut server);
    assert!(pages > 5, "the budget should split the pull: {pages} pages");
    let snapshots: usize = (0..DOCS)
        .map(|i| {
            server
                .doc_mut(&DocId::from_u128(i + 1))
                .expect("stored")
                .save()
                .len()
        })
        .sum();
    assert_eq!(bytes, snapshots, "one snapshot per document, nothing more");
    assert_eq!(heads(&office), server.heads());
    assert_eq!(office.replica.pending(), 0);
}

#[test]
fn an_incremental_pull_over_many_pages_carries_every_change_since_the_last_pull() {
    let mut server = MemoryServer::default();
    let mut phone = phone_with_reports(&mut server);
    let mut office = Device::new(2);
    pull_in_pages(&mut office, &mut server);

    // Two rounds of edits on every report, pushed separately, so that on later pages the
    // documents carry changes older than the pages before them.
    let mut pushed = 0;
    for round in 0..2 {
        for i in 0..DOCS {
            let id = DocId::from_u128(i + 1);
            phone
                .replica
                .doc_mut(&id)
                .expect("doc")
                .set_field(
                    "description",
                    &json!(format!("round {round} of {i}")),
                    &Editor::new("u1", 2 + round),
                )
                .expect("set");
        }
        while let Some(push) = phone.replica.build_push(1 << 20) {
            pushed += push
                .docs
                .iter()
                .flat_map(|d| &d.changes)
                .map(Vec::len)
                .sum::<usize>();
            let result = server.push(&phone.user, &phone.device, &push);
            phone.replica.apply_push_result(&result);
        }
    }

    let (pages, bytes) = pull_in_pages(&mut office, &mut server);
    assert!(pages > 1, "the budget should split the pull");
    assert_eq!(bytes, pushed, "exactly the pushed changes arrive");
    assert_eq!(heads(&office), server.heads());
}
