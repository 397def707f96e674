//! The phone's refusals and stuck-report calls without a server: what the server would refuse is
//! refused up front with its code, and a report the server refused is listed, moved or discarded
//! with its copy kept. The session, grid list and refusals are written into the store the way a
//! login and a push answer would leave them.

mod support;

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gridsync_core::DocId;
use gridsync_core::report::ReportDoc;
use gridsync_mobile::client::Client;
use gridsync_mobile::store::{Batch, Store};
use gridsync_mobile::{ClientError, FieldValue, NewAttachment};
use serde_json::{Value, json};
use support::{KEY, USER, grids_of, mark_refused, open, phone, text};

fn code(err: ClientError) -> String {
    match err {
        ClientError::Refused(message) => message.split(':').next().unwrap_or_default().into(),
        other => panic!("not refused: {other:?}"),
    }
}

fn photo(entry: Option<String>) -> NewAttachment {
    NewAttachment {
        field: if entry.is_some() {
            "visit_record".into()
        } else {
            "site_photos".into()
        },
        entry,
        name: Some("IMG_1.jpg".into()),
        media_type: "image/jpeg".into(),
        taken_at: None,
        location: None,
    }
}

/// Marks a report refused at its current heads, as a push answer would; reopens the phone.
fn refuse(client: Client, dir: &Path, id: &str, code: &str) -> Client {
    drop(client);
    mark_refused(dir, &KEY, id, code);
    open(dir)
}

#[test]
fn nul_in_anything_the_user_types_is_refused_as_invalid_text_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let client = phone(dir.path(), Some(grids_of(USER, &["g1"])));
    let id = client.create_report("dispute_check", "g1").unwrap();
    client
        .set_field(&id, "description", Some(text("fine")))
        .unwrap();
    let before = client.report(&id).unwrap();

    let err = client
        .set_field(&id, "description", Some(text("bad\0text")))
        .unwrap_err();
    assert_eq!(code(err), "invalid_text");
    let err = client
        .set_fields(
            &id,
            HashMap::from([(
                "parties".into(),
                FieldValue::Json {
                    json: r#""张\u0000三""#.into(),
                },
            )]),
        )
        .unwrap_err();
    assert_eq!(code(err), "invalid_text");
    let err = client
        .append_log(&id, HashMap::from([("outcome".into(), text("\0"))]))
        .unwrap_err();
    assert_eq!(code(err), "invalid_text");
    let entry = client
        .append_log(&id, HashMap::from([("outcome".into(), text("ok"))]))
        .unwrap();
    let err = client
        .edit_log(
            &id,
            &entry,
            HashMap::from([("outcome".into(), text("a\0"))]),
        )
        .unwrap_err();
    assert_eq!(code(err), "invalid_text");
    let mut named = photo(None);
    named.name = Some("IMG\0.jpg".into());
    let err = client.attach_bytes(&id, named, &[1, 2, 3]).unwrap_err();
    assert_eq!(code(err), "invalid_text");
    let mut dated = photo(None);
    dated.taken_at = Some("2025-01-01T00:00:00Z\0".into());
    let err = client.attach_bytes(&id, dated, &[1, 2, 3]).unwrap_err();
    assert_eq!(code(err), "invalid_text");
    let err = client
        .resolve_conflict(&id, "fields.description", "\"x\\u0000\"")
        .unwrap_err();
    assert_eq!(code(err), "invalid_text");
    let err = client
        .create_report("dispute_check", "g\u{0}1")
        .unwrap_err();
    assert_eq!(code(err), "invalid_text");

    let after = client.report(&id).unwrap();
    assert_eq!(after.fields, before.fields);
    assert_eq!(after.log.len(), 1, "only the clean entry was written");
    assert!(client.attachments(&id).unwrap().is_empty());
    assert_eq!(client.list_reports(None).unwrap().len(), 1);
}

#[test]
fn a_grid_outside_the_users_grids_is_refused_with_the_servers_code() {
    let dir = tempfile::tempdir().unwrap();
    let client = phone(dir.path(), Some(grids_of(USER, &["g1", "g2"])));
    let grids: Vec<String> = client.grids().unwrap().into_iter().map(|g| g.id).collect();
    assert_eq!(grids, ["g1", "g2"]);
    client.create_report("dispute_check", "g2").unwrap();
    let err = client
        .create_report("dispute_check", "g-other-village")
        .unwrap_err();
    assert_eq!(code(err), "out_of_scope");
    assert_eq!(client.list_reports(None).unwrap().len(), 1);
    drop(client);

    // An admin's list is the whole tree: a grid missing from it does not exist.
    let mut whole = grids_of(USER, &["g1", "g2", "g3"]);
    whole.whole_district = true;
    let client = phone(dir.path(), Some(whole));
    let err = client.create_report("dispute_check", "g9").unwrap_err();
    assert_eq!(code(err), "unknown_grid");
}

#[test]
fn without_a_grid_list_of_its_own_user_the_phone_lets_the_server_decide() {
    let dir = tempfile::tempdir().unwrap();
    let client = phone(dir.path(), None);
    assert!(client.grids().unwrap().is_empty());
    client.create_report("dispute_check", "g-anything").unwrap();
    drop(client);
    // A list fetched for the phone's previous user says nothing about this one.
    let client = phone(dir.path(), Some(grids_of("user-li", &["g1"])));
    assert!(client.grids().unwrap().is_empty());
    client.create_report("dispute_check", "g-other").unwrap();
}

#[test]
fn a_refused_report_is_listed_as_stuck_with_code_reason_and_title_and_an_edit_marks_it_for_retry() {
    let dir = tempfile::tempdir().unwrap();
    let client = phone(dir.path(), None);
    let id = client.create_report("dispute_check", "g-gone").unwrap();
    client
        .set_field(&id, "description", Some(text("井边争水")))
        .unwrap();
    let other = client.create_report("dispute_check", "g1").unwrap();
    let client = refuse(client, dir.path(), &id, "unknown_grid");

    let stuck = client.stuck_reports().unwrap();
    assert_eq!(stuck.len(), 1);
    let s = &stuck[0];
    assert_eq!(
        (
            s.id.as_str(),
            s.code.as_str(),
            s.title.as_str(),
            s.grid.as_str()
        ),
        (id.as_str(), "unknown_grid", "井边争水", "g-gone")
    );
    assert_eq!(s.reason, "the server says unknown_grid");
    assert!(!s.edited_since && !s.accepted_before);
    assert_eq!(s.pending_changes, 2);
    let report = client.report(&id).unwrap();
    assert_eq!(report.rejected.unwrap().code, "unknown_grid");
    assert!(client.report(&other).unwrap().rejected.is_none());

    client
        .set_field(&id, "description", Some(text("井边争水，已调解")))
        .unwrap();
    assert!(client.stuck_reports().unwrap()[0].edited_since);
}

#[test]
fn moving_a_refused_report_files_its_fields_log_and_pending_photos_under_the_new_grid() {
    let dir = tempfile::tempdir().unwrap();
    let client = phone(dir.path(), None);
    let id = client.create_report("drug_control_case", "g-gone").unwrap();
    client
        .set_fields(
            &id,
            HashMap::from([
                ("subject_name".into(), text("赵六")),
                ("assigned_worker".into(), text(USER)),
            ]),
        )
        .unwrap();
    let visit = client
        .append_log(
            &id,
            HashMap::from([
                ("date".into(), text("2025-03-02")),
                ("test".into(), text("urine")),
                ("test_result".into(), text("positive")),
            ]),
        )
        .unwrap();
    let bytes = b"\xff\xd8 a visit record".to_vec();
    let sha = client
        .attach_bytes(&id, photo(Some(visit)), &bytes)
        .unwrap();
    let old = client.report(&id).unwrap();
    let client = refuse(client, dir.path(), &id, "unknown_grid");
    // The grid list arrives (say, at the next login) and decides where the report may go.
    drop(client);
    Store::open(dir.path(), &KEY)
        .unwrap()
        .set_grids(&grids_of(USER, &["g1"]))
        .unwrap();
    let client = open(dir.path());
    assert_eq!(
        code(client.move_report(&id, "g-still-gone").unwrap_err()),
        "out_of_scope"
    );

    let moved = client.move_report(&id, "g1").unwrap();
    assert!(matches!(client.report(&id), Err(ClientError::NotFound(_))));
    let new = client.report(&moved).unwrap();
    assert_eq!(
        (
            new.kind.as_str(),
            new.grid.as_str(),
            new.created_by.as_str()
        ),
        ("drug_control_case", "g1", USER)
    );
    assert_eq!(new.fields, old.fields);
    assert_eq!(new.log.len(), 1);
    assert_eq!(new.log[0].fields, old.log[0].fields);
    assert!(new.rejected.is_none());
    let attachments = client.attachments(&moved).unwrap();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0].sha256, sha);
    assert_eq!(
        attachments[0].entry.as_deref(),
        Some(new.log[0].id.as_str())
    );
    assert!(attachments[0].pending_upload);
    assert_eq!(client.fetch_attachment(&moved, &sha).unwrap(), bytes);
    assert!(client.stuck_reports().unwrap().is_empty());

    let discarded = client.discarded_reports().unwrap();
    assert_eq!(discarded.len(), 1);
    assert_eq!(discarded[0].id, id);
    assert_eq!(discarded[0].rejected.as_ref().unwrap().code, "unknown_grid");
}

#[test]
fn discarding_keeps_an_export_with_the_document_and_unsent_photo_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let client = phone(dir.path(), None);
    let id = client.create_report("dispute_check", "g-other").unwrap();
    client
        .set_field(&id, "description", Some(text("邻里噪音")))
        .unwrap();
    let bytes = b"\xff\xd8 a site photo".to_vec();
    let sha = client.attach_bytes(&id, photo(None), &bytes).unwrap();
    let heads = client.report(&id).unwrap().heads;
    let client = refuse(client, dir.path(), &id, "out_of_scope");

    client.discard_report(&id).unwrap();
    assert!(matches!(client.report(&id), Err(ClientError::NotFound(_))));
    assert!(client.stuck_reports().unwrap().is_empty());
    assert_eq!(client.pending_changes(), 0);
    drop(client);
    let client = open(dir.path());

    let discarded = client.discarded_reports().unwrap();
    assert_eq!(discarded.len(), 1);
    let d = &discarded[0];
    assert_eq!(
        (
            d.id.as_str(),
            d.kind.as_str(),
            d.grid.as_str(),
            d.title.as_str()
        ),
        (id.as_str(), "dispute_check", "g-other", "邻里噪音")
    );
    assert_eq!(d.discarded_by, USER);
    assert_eq!(d.rejected.as_ref().unwrap().code, "out_of_scope");
    let export: Value = serde_json::from_str(&d.export_json).unwrap();
    assert_eq!(export["format"], "gridsync-discarded-report/1");
    assert_eq!(export["report"]["fields"]["description"], json!("邻里噪音"));
    assert_eq!(export["discarded_at"], json!(d.discarded_at));
    let document = STANDARD
        .decode(export["document"].as_str().unwrap())
        .unwrap();
    let mut doc = ReportDoc::load(id.parse::<DocId>().unwrap(), &document).unwrap();
    let mut restored: Vec<String> = doc.heads().iter().map(|h| h.to_string()).collect();
    restored.sort();
    assert_eq!(restored, heads, "the export holds the whole history");
    assert_eq!(export["attachments"][0]["sha256"], json!(sha));
    assert_eq!(
        STANDARD
            .decode(export["attachments"][0]["bytes"].as_str().unwrap())
            .unwrap(),
        bytes
    );
}

#[test]
fn only_refused_or_never_sent_reports_can_be_discarded_and_only_never_accepted_ones_moved() {
    let dir = tempfile::tempdir().unwrap();
    let client = phone(dir.path(), None);
    let draft = client.create_report("dispute_check", "g1").unwrap();
    let synced = client.create_report("dispute_check", "g1").unwrap();
    drop(client);
    // `synced` as a pull leaves it: the server holds every change.
    let mut store = Store::open(dir.path(), &KEY).unwrap();
    let mut local = store.load_doc(&synced.parse().unwrap()).unwrap().unwrap();
    local.acked = local.doc.heads();
    let mut batch = Batch::default();
    batch.put_doc(store.write_of(&mut local).unwrap());
    store.commit(batch).unwrap();
    drop(store);
    let client = open(dir.path());

    assert!(matches!(
        client.discard_report(&synced),
        Err(ClientError::Invalid(_))
    ));
    assert!(matches!(
        client.move_report(&synced, "g2"),
        Err(ClientError::Invalid(_))
    ));
    assert!(matches!(
        client.move_report(&draft, "g1"),
        Err(ClientError::Invalid(_))
    ));
    assert!(matches!(
        client.discard_report("not-an-id"),
        Err(ClientError::Invalid(_))
    ));
    assert!(matches!(
        client.discard_report(&DocId::new_v4().to_string()),
        Err(ClientError::NotFound(_))
    ));
    assert_eq!(client.list_reports(None).unwrap().len(), 2);
    client.discard_report(&draft).unwrap();
    assert_eq!(client.list_reports(None).unwrap().len(), 1);
    assert!(client.discarded_reports().unwrap()[0].rejected.is_none());
}
