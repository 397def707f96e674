//! A concurrency rule flags a log entry only when it was added concurrently with the change
//! that closed the report: a step added after the close was seen, or before it, raises nothing.

use gridsync_core::DocId;
use gridsync_core::conflict::Flag;
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_core::schema::Registry;
use serde_json::{Map, Value, json};

fn step(note: &str) -> Map<String, Value> {
    json!({"date": "2026-11-03", "method": note})
        .as_object()
        .cloned()
        .expect("object")
}

fn flags(doc: &mut ReportDoc) -> Vec<Flag> {
    let registry = Registry::builtin();
    let schema = registry.latest("dispute_check").expect("kind");
    doc.flags(&schema.rules).expect("flags")
}

fn resolve(doc: &mut ReportDoc, by: &Editor) {
    doc.set_field("status", &json!("resolved"), by)
        .expect("resolve");
}

#[test]
fn steps_added_before_or_after_the_resolution_was_seen_raise_nothing() {
    let wang = Editor::new("u-wang", 1_800_000_000);
    let mut doc =
        ReportDoc::create(DocId::from_u128(9), "dispute_check", 1, "g1", &wang).expect("create");
    doc.append_log(&step("before"), &wang).expect("step");
    resolve(&mut doc, &wang);
    doc.append_log(&step("after"), &wang).expect("step");
    let mut li = ReportDoc::load(doc.id(), &doc.save()).expect("copy");
    li.append_log(
        &step("later, elsewhere"),
        &Editor::new("u-li", 1_800_000_100),
    )
    .expect("step");
    doc.merge_snapshot(&li.save()).expect("merge");
    assert!(flags(&mut doc).is_empty(), "{:?}", flags(&mut doc));
}

#[test]
fn a_step_added_while_someone_else_resolved_the_dispute_is_flagged_once() {
    let wang = Editor::new("u-wang", 1_800_000_000);
    let mut doc =
        ReportDoc::create(DocId::from_u128(9), "dispute_check", 1, "g1", &wang).expect("create");
    doc.append_log(&step("before"), &wang).expect("step");
    let mut li = ReportDoc::load(doc.id(), &doc.save()).expect("copy");
    resolve(&mut doc, &wang);
    let entry = li
        .append_log(&step("meanwhile"), &Editor::new("u-li", 1_800_000_100))
        .expect("step");
    doc.merge_snapshot(&li.save()).expect("merge");
    let found = flags(&mut doc);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].code, "mediation_step_after_resolved");
    assert_eq!(found[0].entry, entry);
}
