//! Target `ingest`: sync-core's ingestion of a push, which the server runs for every pushed
//! document, on arbitrary changes against a new document or the fixture report. It refuses with
//! a typed [`Refusal`](gridsync_core::ingest::Refusal) or accepts; what it accepts is a report
//! that reads, saves and loads back as the server stores it, and pushing it again adds nothing.
//!
//! Input: one flags byte, then the changes as [`split`] reads them. Bit 0 pushes onto the
//! fixture report rather than an empty document; bit 1 repairs each change's checksum
//! ([`fix_checksum`]) so that mutations reach past it; bit 2 pushes as [`OTHER_USER`] rather
//! than the fixture's author.

use gridsync_core::ingest;
use gridsync_core::report::ReportDoc;

use crate::fixture::{
    AUTHOR, OTHER_USER, REPORT_BYTES, REPORT_ID, fix_checksum, registry, report, split,
};

pub const ONTO_REPORT: u8 = 1;
pub const FIX_CHECKSUMS: u8 = 2;
pub const AS_OTHER_USER: u8 = 4;

pub fn run(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut changes = split(rest);
    if flags & FIX_CHECKSUMS != 0 {
        changes = changes.iter().map(|c| fix_checksum(c)).collect();
    }
    let user = if flags & AS_OTHER_USER != 0 {
        OTHER_USER
    } else {
        AUTHOR
    };
    let (mut doc, stored) = if flags & ONTO_REPORT != 0 {
        (report(), REPORT_BYTES.to_vec())
    } else {
        (ReportDoc::empty(REPORT_ID), Vec::new())
    };
    let Ok(ingested) = ingest::apply(&mut doc, &changes, user, registry()) else {
        return;
    };

    assert_eq!(ingested.heads, doc.heads());
    doc.meta().expect("an accepted report has its meta");
    doc.to_json().expect("an accepted report reads as JSON");
    // The server stores the snapshot it had followed by the new changes, and loads that back.
    let mut stored = stored;
    for change in &ingested.new_changes {
        stored.extend_from_slice(&change.bytes);
    }
    let mut loaded = ReportDoc::load(REPORT_ID, &stored).expect("a stored report loads back");
    assert_eq!(
        loaded.heads(),
        ingested.heads,
        "the stored report lost changes"
    );
    let mut saved = ReportDoc::load(REPORT_ID, &doc.save()).expect("a saved report loads back");
    assert_eq!(
        saved.heads(),
        ingested.heads,
        "the saved report lost changes"
    );

    let again =
        ingest::apply(&mut doc, &changes, user, registry()).expect("a retried push is accepted");
    assert!(again.new_changes.is_empty(), "a retried push added changes");
}
