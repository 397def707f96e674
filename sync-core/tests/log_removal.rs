//! Removing a log entry keeps it in the document, hidden: an edit made concurrently elsewhere
//! survives the merge and is flagged `edited_after_removal`; restoring the entry brings it back
//! with that edit and its attachments, and confirming the removal clears the flag everywhere.
//! A property test checks that any interleaving of removals and edits on offline replicas
//! converges and raises the flag exactly when an edit was concurrent with the removal.

use std::collections::{BTreeMap, BTreeSet};

use gridsync_core::attachment::Attachment;
use gridsync_core::conflict::{EDITED_AFTER_REMOVAL, Flag};
use gridsync_core::history::LogAction;
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_core::schema::Registry;
use gridsync_core::{DocId, Error};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn values(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}

fn visit(by: &Editor) -> (ReportDoc, String) {
    let mut doc =
        ReportDoc::create(DocId::from_u128(7), "drug_control_case", 1, "g1", by).expect("create");
    let entry = doc
        .append_log(&values(json!({"date": "2026-11-03", "notes": "初访"})), by)
        .expect("append");
    (doc, entry)
}

fn record(sha: char, entry: &str) -> Attachment {
    Attachment {
        sha256: sha.to_string().repeat(64),
        media_type: "application/pdf".into(),
        size: 2_000,
        name: "记录.pdf".into(),
        field: "visit_record".into(),
        entry: Some(entry.to_owned()),
        taken_at: "2026-11-03T10:00:00Z".into(),
        location: Some(json!({"lat": 30.1, "lon": 120.2, "accuracy_m": 8.0})),
        attached_by: String::new(),
    }
}

fn merged(a: &mut ReportDoc, b: &mut ReportDoc) {
    a.merge_snapshot(&b.save()).expect("merge");
    b.merge_snapshot(&a.save()).expect("merge");
}

fn flags(doc: &mut ReportDoc) -> Vec<Flag> {
    let registry = Registry::builtin();
    let schema = registry.latest("drug_control_case").expect("kind");
    doc.flags(&schema.rules).expect("flags")
}

#[test]
fn a_removed_entry_and_its_attachments_leave_every_reader_but_stay_in_the_document() {
    let zhao = Editor::new("u-zhao", 1_800_000_000);
    let (mut doc, entry) = visit(&zhao);
    doc.attach(record('d', &entry), &zhao).expect("attach");
    doc.remove_log(&entry, &zhao).expect("remove");

    let projection = doc.to_json().expect("json");
    assert_eq!(projection["log"], json!([]));
    assert!(projection.get("attachments").is_none());
    // Only what the server needs to keep the bytes: no name, no place.
    assert_eq!(
        projection["hidden_attachments"],
        json!([{"sha256": "d".repeat(64), "media_type": "application/pdf", "size": 2_000}])
    );
    let schema = Registry::builtin()
        .latest("drug_control_case")
        .cloned()
        .expect("kind");
    let about_attachments: Vec<_> = schema
        .validate(&projection)
        .into_iter()
        .filter(|p| p.path.contains("attachments"))
        .collect();
    assert_eq!(about_attachments, []);
    assert!(doc.attachments().expect("read").is_empty());
    assert_eq!(doc.all_attachments().expect("read").len(), 1);
    assert_eq!(doc.conflicts().expect("conflicts"), []);
    assert_eq!(flags(&mut doc), []);
    let last = doc.history().expect("history").pop().expect("change");
    assert_eq!(last.log[0].action, LogAction::Removed);
    assert!(last.log[0].fields.is_empty());

    // Nobody edits or removes what is gone; only a removed entry is restored.
    let edit = doc.edit_log(&entry, &values(json!({"notes": "x"})), &zhao);
    assert!(matches!(edit, Err(Error::NoSuchLogEntry(_))));
    assert!(matches!(
        doc.remove_log(&entry, &zhao),
        Err(Error::NoSuchLogEntry(_))
    ));
    assert!(matches!(
        doc.attach(record('e', &entry), &zhao),
        Err(Error::NoSuchLogEntry(_))
    ));
    assert!(matches!(
        doc.restore_log("no-such-entry", &zhao),
        Err(Error::NoSuchLogEntry(_))
    ));

    doc.restore_log(&entry, &zhao).expect("restore");
    let projection = doc.to_json().expect("json");
    assert_eq!(projection["log"][0]["notes"], json!("初访"));
    assert!(projection["log"][0].get("removed_by").is_none());
    assert_eq!(projection["attachments"][0]["name"], json!("记录.pdf"));
    assert!(projection.get("hidden_attachments").is_none());
    let last = doc.history().expect("history").pop().expect("change");
    assert_eq!(last.log[0].action, LogAction::Restored);
    assert!(matches!(
        doc.restore_log(&entry, &zhao),
        Err(Error::NotRemoved(_))
    ));
    assert!(matches!(
        doc.confirm_removal(&entry, &zhao),
        Err(Error::NotRemoved(_))
    ));
}

#[test]
fn an_edit_concurrent_with_the_removal_is_kept_flagged_and_restored() {
    let wang = Editor::new("u-wang", 1_800_000_000);
    let cadre = Editor::new("u-li", 1_800_000_100);
    let (mut phone, entry) = visit(&wang);
    let mut office = phone.clone();
    phone.remove_log(&entry, &wang).expect("remove");
    office
        .edit_log(&entry, &values(json!({"notes": "复访，尿检阴性"})), &cadre)
        .expect("edit");
    merged(&mut phone, &mut office);

    assert_eq!(
        phone.to_json().expect("json"),
        office.to_json().expect("json")
    );
    assert_eq!(phone.to_json().expect("json")["log"], json!([]));
    let flagged = flags(&mut phone);
    assert_eq!(flagged, flags(&mut office));
    assert_eq!(flagged.len(), 1);
    let flag = &flagged[0];
    assert_eq!(
        (flag.code.as_str(), flag.entry.as_str()),
        (EDITED_AFTER_REMOVAL, entry.as_str())
    );
    assert_eq!(flag.path(), format!("log[{entry}]"));
    assert!(!flag.message.zh.is_empty() && !flag.message.en.is_empty());
    let removal = flag.removal.as_ref().expect("removal");
    assert_eq!(removal.removed_by, "u-wang");
    assert_eq!(removal.removed_at, "2027-01-15T08:00:00Z");
    assert_eq!(removal.edited_by, ["u-li"]);
    assert_eq!(
        Value::Object(removal.values.clone()),
        json!({"date": "2026-11-03", "notes": "复访，尿检阴性"})
    );

    let resolver = Editor::new("u-admin", 1_800_000_200);
    phone.restore_log(&entry, &resolver).expect("restore");
    assert_eq!(
        phone.to_json().expect("json")["log"][0]["notes"],
        json!("复访，尿检阴性")
    );
    assert_eq!(flags(&mut phone), []);
    let last = phone.history().expect("history").pop().expect("change");
    assert_eq!(last.author.as_deref(), Some("u-admin"));
}

#[test]
fn confirming_the_removal_keeps_who_removed_it_and_clears_the_flag_on_every_replica() {
    let wang = Editor::new("u-wang", 1_800_000_000);
    let cadre = Editor::new("u-li", 1_800_000_100);
    let (mut phone, entry) = visit(&wang);
    let mut office = phone.clone();
    phone.remove_log(&entry, &wang).expect("remove");
    // Clearing a field is an edit too.
    office
        .edit_log(&entry, &values(json!({"notes": null})), &cadre)
        .expect("edit");
    merged(&mut phone, &mut office);
    assert_eq!(flags(&mut office).len(), 1);

    // The same person who removed it confirms, in the same second: still a new removal.
    office
        .confirm_removal(&entry, &Editor::new("u-wang", 1_800_000_000))
        .expect("confirm");
    assert_eq!(flags(&mut office), []);
    merged(&mut phone, &mut office);
    assert_eq!(flags(&mut phone), []);
    assert_eq!(phone.to_json().expect("json")["log"], json!([]));
    // Restored later, the entry shows the cleared field and says who removed it first.
    phone
        .restore_log(&entry, &Editor::new("u-admin", 1_800_000_300))
        .expect("restore");
    assert_eq!(
        phone.to_json().expect("json")["log"][0],
        json!({"id": entry, "created_by": "u-wang", "created_at": "2027-01-15T08:00:00Z", "date": "2026-11-03"})
    );
}

#[test]
fn an_edit_the_remover_had_seen_and_concurrent_removals_raise_nothing() {
    let wang = Editor::new("u-wang", 1_800_000_000);
    let cadre = Editor::new("u-li", 1_800_000_100);
    let (mut phone, entry) = visit(&wang);
    let mut office = phone.clone();
    office
        .edit_log(&entry, &values(json!({"notes": "复访"})), &cadre)
        .expect("edit");
    merged(&mut phone, &mut office);
    phone.remove_log(&entry, &wang).expect("remove");
    office.remove_log(&entry, &cadre).expect("remove");
    merged(&mut phone, &mut office);
    assert_eq!(phone.to_json().expect("json")["log"], json!([]));
    assert_eq!(flags(&mut phone), []);
    assert_eq!(flags(&mut office), []);
}

// ---- property test ----------------------------------------------------------------------------

const ENTRIES: usize = 2;
const FIELDS: [&str; 2] = ["notes", "place"];

#[derive(Debug, Clone)]
enum Op {
    Edit {
        r: usize,
        entry: usize,
        field: usize,
    },
    Remove {
        r: usize,
        entry: usize,
    },
    /// `to` merges everything `from` holds.
    Sync {
        from: usize,
        to: usize,
    },
}

fn op(replicas: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..replicas, 0..ENTRIES, 0..FIELDS.len())
            .prop_map(|(r, entry, field)| Op::Edit { r, entry, field }),
        2 => (0..replicas, 0..ENTRIES).prop_map(|(r, entry)| Op::Remove { r, entry }),
        3 => (0..replicas, 0..replicas).prop_map(|(from, to)| Op::Sync { from, to }),
    ]
}

fn scenario() -> impl Strategy<Value = (usize, Vec<Op>)> {
    (2usize..=3).prop_flat_map(|n| (Just(n), prop::collection::vec(op(n), 1..30)))
}

/// What a replica has seen, by event number, as the model of causality the test checks
/// automerge's against.
#[derive(Clone, Default)]
struct Seen(BTreeSet<usize>);

struct Removal {
    entry: usize,
    seen: Seen,
}

struct EditEvent {
    entry: usize,
    field: usize,
    value: String,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn removals_and_edits_in_any_order_converge_and_flag_exactly_the_concurrent_edits(
        (n, ops) in scenario()
    ) {
        let creator = Editor::new("u-0", 1_800_000_000);
        let mut first = ReportDoc::create(DocId::from_u128(9), "drug_control_case", 1, "g1", &creator)
            .expect("create");
        let ids: Vec<String> = (0..ENTRIES)
            .map(|i| first.append_log(&values(json!({"date": "2026-11-03", "notes": format!("e{i}")})), &creator).expect("append"))
            .collect();
        let mut docs = vec![first; n];
        let mut seen = vec![Seen::default(); n];
        let mut removals: Vec<(usize, Removal)> = Vec::new();
        let mut edits: BTreeMap<usize, EditEvent> = BTreeMap::new();
        for (event, op) in ops.iter().enumerate() {
            match *op {
                Op::Edit { r, entry, field } => {
                    let removed = removals.iter().any(|(m, rm)| rm.entry == entry && seen[r].0.contains(m));
                    let value = format!("v{event}");
                    let result = docs[r].edit_log(
                        &ids[entry],
                        &values(json!({FIELDS[field]: value})),
                        &Editor::new(format!("u-{r}"), 1_800_000_000 + event as i64),
                    );
                    prop_assert_eq!(result.is_ok(), !removed, "edit of entry {} on {}", entry, r);
                    if !removed {
                        seen[r].0.insert(event);
                        edits.insert(event, EditEvent { entry, field, value });
                    }
                }
                Op::Remove { r, entry } => {
                    let removed = removals.iter().any(|(m, rm)| rm.entry == entry && seen[r].0.contains(m));
                    let result = docs[r].remove_log(&ids[entry], &Editor::new(format!("u-{r}"), 1_800_000_000 + event as i64));
                    prop_assert_eq!(result.is_ok(), !removed);
                    if !removed {
                        removals.push((event, Removal { entry, seen: seen[r].clone() }));
                        seen[r].0.insert(event);
                    }
                }
                Op::Sync { from, to } => {
                    let bytes = docs[from].save();
                    docs[to].merge_snapshot(&bytes).expect("merge");
                    let theirs = seen[from].0.clone();
                    seen[to].0.extend(theirs);
                }
            }
        }
        // Everyone syncs with everyone.
        for r in 1..n {
            let bytes = docs[r].save();
            docs[0].merge_snapshot(&bytes).expect("merge");
        }
        let all = docs[0].save();
        for doc in docs.iter_mut().skip(1) {
            doc.merge_snapshot(&all).expect("merge");
        }
        let projection = docs[0].to_json().expect("json");
        let flagged: Vec<Flag> = docs[0].edited_after_removal().expect("flags");
        for doc in docs.iter_mut().skip(1) {
            prop_assert_eq!(&doc.to_json().expect("json"), &projection);
            prop_assert_eq!(&doc.edited_after_removal().expect("flags"), &flagged);
        }

        // The model: an entry is flagged when an edit of it is unknown to one of its removals
        // (no edit can follow a removal its replica has seen).
        let expected: BTreeSet<String> = removals
            .iter()
            .filter(|(_, rm)| edits.iter().any(|(e, ed)| ed.entry == rm.entry && !rm.seen.0.contains(e)))
            .map(|(_, rm)| ids[rm.entry].clone())
            .collect();
        let got: BTreeSet<String> = flagged.iter().map(|f| f.entry.clone()).collect();
        prop_assert_eq!(&got, &expected);
        let shown: BTreeSet<&str> = projection["log"].as_array().expect("log").iter().filter_map(|e| e["id"].as_str()).collect();
        for (i, id) in ids.iter().enumerate() {
            prop_assert_eq!(shown.contains(id.as_str()), !removals.iter().any(|(_, rm)| rm.entry == i));
        }

        // Restoring brings every flagged entry back with the edits it holds: each field an edit
        // wrote holds one of the values written to it.
        let mut restored = docs[0].clone();
        let admin = Editor::new("u-admin", 1_900_000_000);
        for flag in &flagged {
            restored.restore_log(&flag.entry, &admin).expect("restore");
        }
        prop_assert_eq!(restored.edited_after_removal().expect("flags"), vec![]);
        let log = restored.to_json().expect("json")["log"].clone();
        for flag in &flagged {
            let entry = ids.iter().position(|id| *id == flag.entry).expect("known");
            let shown = log.as_array().expect("log").iter().find(|e| e["id"] == json!(flag.entry)).expect("restored");
            for (field, name) in FIELDS.iter().enumerate() {
                let written: BTreeSet<&str> = edits.values().filter(|ed| ed.entry == entry && ed.field == field).map(|ed| ed.value.as_str()).collect();
                if !written.is_empty() {
                    let value = shown[*name].as_str().unwrap_or_default();
                    prop_assert!(written.contains(value), "{} = {:?}, written {:?}", name, value, written);
                }
            }
        }
        // Confirming instead clears the flags on every replica that merges the confirmation.
        let mut confirmed = docs[0].clone();
        for flag in &flagged {
            confirmed.confirm_removal(&flag.entry, &admin).expect("confirm");
        }
        let bytes = confirmed.save();
        let last = n - 1;
        docs[last].merge_snapshot(&bytes).expect("merge");
        prop_assert_eq!(docs[last].edited_after_removal().expect("flags"), vec![]);
        prop_assert_eq!(docs[last].to_json().expect("json"), projection);
    }
}
