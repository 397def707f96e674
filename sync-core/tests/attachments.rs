//! Attachments in report documents: two phones attaching offline both keep theirs, and the
//! schema's limits are checked on the projection; redaction and history see them.

use gridsync_core::attachment::Attachment;
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_core::schema::{ProblemCode, REDACTED, Registry, Schema};
use serde_json::{Map, Value, json};

fn photo(sha: char, field: &str, entry: Option<&str>) -> Attachment {
    Attachment {
        sha256: sha.to_string().repeat(64),
        media_type: "image/jpeg".into(),
        size: 300_000,
        name: format!("IMG_{sha}.jpg"),
        field: field.into(),
        entry: entry.map(str::to_owned),
        taken_at: "2026-11-03T10:00:00Z".into(),
        location: Some(json!({"lat": 30.1, "lon": 120.2, "accuracy_m": 8.0})),
        attached_by: String::new(),
    }
}

fn dispute(wang: &Editor) -> ReportDoc {
    ReportDoc::create(uuid::Uuid::new_v4(), "dispute_check", 1, "g1", wang).unwrap()
}

fn schema(kind: &str) -> Schema {
    Registry::builtin().latest(kind).cloned().unwrap()
}

fn codes(projection: &Value, kind: &str) -> Vec<(String, ProblemCode)> {
    schema(kind)
        .validate(projection)
        .into_iter()
        .filter(|p| p.path.starts_with("attachments"))
        .map(|p| (p.path, p.code))
        .collect()
}

#[test]
fn two_phones_attaching_photos_offline_both_keep_theirs_after_merging() {
    let wang = Editor::new("u-wang", 1_800_000_000);
    let li = Editor::new("u-li", 1_800_000_100);
    let mut a = dispute(&wang);
    let mut b = ReportDoc::load(a.id(), &a.save()).unwrap();
    a.attach(photo('a', "site_photos", None), &wang).unwrap();
    b.attach(photo('b', "site_photos", None), &li).unwrap();
    a.merge_snapshot(&b.save()).unwrap();
    b.merge_snapshot(&a.save()).unwrap();
    let shas = |d: &ReportDoc| {
        d.attachments()
            .unwrap()
            .into_iter()
            .map(|x| (x.sha256, x.attached_by))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        shas(&a),
        [
            ("a".repeat(64), "u-wang".into()),
            ("b".repeat(64), "u-li".to_owned())
        ]
    );
    assert_eq!(shas(&a), shas(&b));
    assert!(a.conflicts().unwrap().is_empty());
}

#[test]
fn a_valid_attachment_projects_with_its_metadata_and_passes_validation() {
    let wang = Editor::new("u-wang", 1_800_000_000);
    let mut doc = dispute(&wang);
    doc.attach(photo('c', "site_photos", None), &wang).unwrap();
    let projection = doc.to_json().unwrap();
    assert_eq!(
        projection["attachments"],
        json!([{
            "sha256": "c".repeat(64), "media_type": "image/jpeg", "size": 300_000,
            "name": "IMG_c.jpg", "field": "site_photos", "taken_at": "2026-11-03T10:00:00Z",
            "location": {"lat": 30.1, "lon": 120.2, "accuracy_m": 8.0}, "attached_by": "u-wang"
        }])
    );
    assert_eq!(codes(&projection, "dispute_check"), []);
}

#[test]
fn a_report_without_attachments_projects_as_before() {
    let wang = Editor::new("u-wang", 1_800_000_000);
    let projection = dispute(&wang).to_json().unwrap();
    assert!(projection.get("attachments").is_none(), "{projection}");
}

#[test]
fn attachments_outside_the_schemas_limits_are_problems_with_stable_codes() {
    let wang = Editor::new("u-wang", 1_800_000_000);
    let mut doc = dispute(&wang);
    let mut pdf = photo('1', "site_photos", None);
    pdf.media_type = "application/pdf".into();
    doc.attach(pdf, &wang).unwrap();
    let mut huge = photo('2', "site_photos", None);
    huge.size = 6 * 1024 * 1024;
    doc.attach(huge, &wang).unwrap();
    doc.attach(photo('3', "description", None), &wang).unwrap();
    doc.attach(photo('4', "no_such_field", None), &wang)
        .unwrap();
    let mut nowhere = photo('5', "site_photos", None);
    nowhere.location = Some(json!({"lat": 91.0, "lon": 0.0}));
    nowhere.taken_at = "yesterday".into();
    doc.attach(nowhere, &wang).unwrap();
    let path = |c: char| format!("attachments.{}", c.to_string().repeat(64));
    assert_eq!(
        codes(&doc.to_json().unwrap(), "dispute_check"),
        [
            (path('1'), ProblemCode::MediaTypeNotAllowed),
            (path('2'), ProblemCode::TooLarge),
            (path('3'), ProblemCode::UnknownField),
            (path('4'), ProblemCode::UnknownField),
            (path('5'), ProblemCode::InvalidDatetime),
            (path('5'), ProblemCode::InvalidLocation),
        ]
    );
}

#[test]
fn a_value_written_into_an_attachment_field_is_the_wrong_type() {
    let problems = schema("dispute_check").validate_field("site_photos", &json!("x.jpg"));
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].code, ProblemCode::WrongType);
}

#[test]
fn a_malformed_hash_key_sent_by_another_client_is_reported_not_hidden() {
    let mut projection = json!({
        "id": "0b8f3f5e-8a3c-4f57-9d0e-2f1d6c1b7a01", "kind": "dispute_check",
        "schema_version": 1, "grid": "g1", "created_by": "u", "created_at": "2026-11-02T09:30:00Z",
        "fields": {}, "log": [],
    });
    projection["attachments"] = json!([{"sha256": "../../etc/passwd", "field": "site_photos"}]);
    let found = codes(&projection, "dispute_check");
    assert!(
        found.contains(&("attachments[0]".into(), ProblemCode::InvalidAttachment)),
        "{found:?}"
    );
}

#[test]
fn visit_log_entries_take_attachments_and_lose_them_with_the_entry() {
    let officer = Editor::new("u-zhao", 1_800_000_000);
    let mut doc =
        ReportDoc::create(uuid::Uuid::new_v4(), "drug_control_case", 1, "g1", &officer).unwrap();
    let mut visit = Map::new();
    visit.insert("date".into(), json!("2026-11-03"));
    let entry = doc.append_log(&visit, &officer).unwrap();
    let mut record = photo('d', "visit_record", Some(&entry));
    record.media_type = "application/pdf".into();
    doc.attach(record, &officer).unwrap();
    assert_eq!(codes(&doc.to_json().unwrap(), "drug_control_case"), []);
    // The field is a log field: at the top level it names nothing.
    doc.attach(photo('e', "visit_record", None), &officer)
        .unwrap();
    assert_eq!(
        codes(&doc.to_json().unwrap(), "drug_control_case"),
        [(
            format!("attachments.{}", "e".repeat(64)),
            ProblemCode::UnknownField
        )]
    );
    doc.remove_log(&entry, &officer).unwrap();
    let left: Vec<_> = doc
        .attachments()
        .unwrap()
        .into_iter()
        .map(|a| a.sha256)
        .collect();
    assert_eq!(left, ["e".repeat(64)]);
    assert!(
        doc.attach(photo('f', "visit_record", Some("gone")), &officer)
            .is_err()
    );
}

#[test]
fn redaction_hides_names_and_places_of_sensitive_attachments_only() {
    let wang = Editor::new("u-wang", 1_800_000_000);
    let mut doc = dispute(&wang);
    doc.attach(photo('a', "site_photos", None), &wang).unwrap();
    doc.attach(photo('b', "signed_agreement", None), &wang)
        .unwrap();
    let mut projection = doc.to_json().unwrap();
    schema("dispute_check").redact(&mut projection);
    let a = &projection["attachments"];
    assert_eq!(a[0]["name"], "IMG_a.jpg");
    assert_eq!(a[1]["name"], REDACTED);
    assert_eq!(a[1]["location"], REDACTED);
    assert_eq!(a[1]["sha256"], "b".repeat(64));
}

#[test]
fn history_names_the_attachments_a_change_added_or_removed() {
    let wang = Editor::new("u-wang", 1_800_000_000);
    let mut doc = dispute(&wang);
    doc.attach(photo('a', "site_photos", None), &wang).unwrap();
    doc.detach(&"a".repeat(64), &wang).unwrap();
    let history = doc.history().unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[1].attachments, ["a".repeat(64)]);
    assert_eq!(history[2].attachments, ["a".repeat(64)]);
    assert!(doc.attachments().unwrap().is_empty());
    assert!(doc.detach(&"a".repeat(64), &wang).is_err());
}

#[test]
fn a_hash_that_is_not_lowercase_hex_is_refused_before_it_reaches_the_document() {
    let wang = Editor::new("u-wang", 1_800_000_000);
    let mut doc = dispute(&wang);
    let mut bad = photo('a', "site_photos", None);
    bad.sha256 = "A".repeat(64);
    assert!(doc.attach(bad, &wang).is_err());
    assert_eq!(doc.history().unwrap().len(), 1);
}

#[test]
fn schemas_refuse_attachment_fields_without_limits_or_in_anonymous_kinds() {
    let kind = |anonymous: bool, field: Value| {
        json!({
            "kind": "k", "version": 1, "label": {"zh": "甲", "en": "K"}, "anonymous": anonymous,
            "status_field": null, "fields": [field]
        })
        .to_string()
    };
    let ok = json!({"id": "photos", "label": {"zh": "照片", "en": "Photos"}, "type": "attachment",
                    "media_types": ["image/jpeg"], "max_size": 1000});
    assert!(Schema::from_json(&kind(false, ok.clone())).is_ok());
    assert!(Schema::from_json(&kind(true, ok.clone())).is_err());
    for (key, bad) in [
        ("media_types", json!([])),
        ("media_types", json!(["text/html"])),
        ("max_size", json!(0)),
        ("max_size", json!(1u64 << 40)),
        ("required", json!(true)),
    ] {
        let mut field = ok.clone();
        field[key] = bad;
        assert!(
            Schema::from_json(&kind(false, field.clone())).is_err(),
            "{field}"
        );
    }
    let mut text = json!({"id": "t", "label": {"zh": "文", "en": "T"}, "type": "text"});
    text["max_size"] = json!(10);
    assert!(Schema::from_json(&kind(false, text)).is_err());
}
