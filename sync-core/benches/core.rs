//! Micro-benchmarks of the per-document work behind every sync: checking and applying a pushed
//! change as the server does, encoding and decoding a push, and scanning a document for
//! conflicts. `cargo bench -p gridsync-core --bench core`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use gridsync_core::DocId;
use gridsync_core::ingest;
use gridsync_core::protocol::{self, Push, PushDoc};
use gridsync_core::report::{Editor, ReportDoc, decode_changes};
use gridsync_core::schema::Registry;
use serde_json::{Map, Value, json};

const USER: &str = "w1";

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A dispute check with its form and `edits` follow-up edits, as a phone would have it.
fn report(edits: usize) -> ReportDoc {
    let editor = Editor::new(USER, 1_000);
    let mut doc = ReportDoc::create(DocId::new_v4(), "dispute_check", 1, "g1", &editor)
        .expect("create a report");
    let form = json!({
        "category": "neighbour", "parties": "张三；李四", "description": "围墙边界争执",
        "found_on": "2026-10-01", "risk_level": "medium", "status": "reported",
    });
    doc.set_fields(&fields(form), &editor).expect("form");
    for n in 0..edits {
        let at = Editor::new(USER, 1_001 + n as i64);
        doc.set_field("place", &json!(format!("村东头 {n} 号")), &at)
            .expect("edit");
    }
    doc
}

/// The saved report and one new change on top of it.
fn report_and_change(edits: usize) -> (DocId, Vec<u8>, Vec<u8>) {
    let mut doc = report(edits);
    let saved = doc.save();
    let heads = doc.heads();
    doc.set_field("risk_level", &json!("high"), &Editor::new(USER, 9_999))
        .expect("edit");
    let change = doc.changes_since(&heads).remove(0);
    (doc.id(), saved, change)
}

fn ingest_one_change(c: &mut Criterion) {
    let registry = Registry::builtin();
    let (id, saved, change) = report_and_change(20);
    let raw = vec![change];
    c.bench_function(
        "ingest: one field change into a report of 22 changes",
        |b| {
            b.iter_batched(
                || ReportDoc::load(id, &saved).expect("load"),
                |mut doc| {
                    black_box(ingest::apply(&mut doc, &raw, USER, &registry).expect("ingested"))
                },
                BatchSize::SmallInput,
            )
        },
    );
    c.bench_function("apply: one change to a report of 22 changes", |b| {
        b.iter_batched(
            || ReportDoc::load(id, &saved).expect("load"),
            |mut doc| doc.apply_changes(&raw).expect("applied"),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("load: a saved report of 22 changes", |b| {
        b.iter(|| black_box(ReportDoc::load(id, &saved).expect("load")))
    });
}

/// The changes of a new report shaped like W1's: created, its form filled, then ten follow-ups,
/// a mediation step on even turns and a change of status and risk on odd ones.
fn new_report_changes() -> (DocId, Vec<Vec<u8>>) {
    let mut doc = report(0);
    for n in 0..10 {
        let at = Editor::new(USER, 2_000 + n);
        if n % 2 == 0 {
            let step = json!({
                "date": "2026-10-02", "mediator": USER, "method": "上门调解", "outcome": "再协商",
            });
            doc.append_log(&fields(step), &at).expect("mediation step");
        } else {
            let status = json!({
                "status": "mediating", "risk_level": "high", "next_follow_up": "2026-11-02",
            });
            doc.set_fields(&fields(status), &at).expect("status");
        }
    }
    (doc.id(), doc.changes_since(&[]))
}

/// W1's unit of work: what sync-core spends on one new report of twelve changes, whole and in
/// its two largest parts. Against the peers' upload this is the floor of Gridsync's, since the
/// server judges every report this way before it writes anything.
fn ingest_new_report(c: &mut Criterion) {
    let registry = Registry::builtin();
    let (id, raw) = new_report_changes();
    c.bench_function("ingest: a new report of 12 changes (W1's)", |b| {
        b.iter_batched(
            || ReportDoc::empty(id),
            |mut doc| black_box(ingest::apply(&mut doc, &raw, USER, &registry).expect("ingested")),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("decode and check: the 12 changes of a new report", |b| {
        b.iter(|| black_box(decode_changes(black_box(&raw)).expect("decoded")))
    });
    c.bench_function("apply: the 12 changes of a new report, decoded", |b| {
        b.iter_batched(
            || (ReportDoc::empty(id), decode_changes(&raw).expect("decoded")),
            |(mut doc, changes)| doc.apply_decoded(changes).expect("applied"),
            BatchSize::SmallInput,
        )
    });
}

fn push_codec(c: &mut Criterion) {
    let push = Push {
        docs: (0..100)
            .map(|_| {
                let (doc, _, change) = report_and_change(2);
                PushDoc {
                    doc,
                    changes: vec![change],
                }
            })
            .collect(),
    };
    let bytes = protocol::encode(&push);
    c.bench_function("protocol: encode a push of 100 one-change documents", |b| {
        b.iter(|| black_box(protocol::encode(black_box(&push))))
    });
    c.bench_function("protocol: decode a push of 100 one-change documents", |b| {
        b.iter(|| black_box(protocol::decode::<Push>(black_box(&bytes)).expect("decode")))
    });
}

fn conflict_scan(c: &mut Criterion) {
    // Two phones edit the same five fields offline, then merge: five open conflicts.
    let mut a = report(5);
    let mut b = ReportDoc::load(a.id(), &a.save()).expect("load");
    for (doc, who) in [(&mut a, "w1"), (&mut b, "c1")] {
        let values = json!({
            "place": who, "description": who, "risk_level": "high",
            "status": "mediating", "next_follow_up": "2026-11-02",
        });
        doc.set_fields(&fields(values), &Editor::new(who, 5_000))
            .expect("edit");
    }
    a.merge_snapshot(&b.save()).expect("merge");
    let saved = a.save();
    let id = a.id();
    c.bench_function("conflicts: scan a report with five open conflicts", |b| {
        b.iter_batched(
            || ReportDoc::load(id, &saved).expect("load"),
            |mut doc| black_box(doc.conflicts().expect("scan")),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(
    benches,
    ingest_one_change,
    ingest_new_report,
    push_codec,
    conflict_scan
);
criterion_main!(benches);
