//! Changes that are corrupt or forged, as a corrupted or hostile push or pull carries them:
//! refused with a typed error before anything is applied, so the stored document keeps loading
//! and nothing panics. Found by the `ingest` and `replica_apply` fuzz targets (fuzz/README.md).

use automerge::Change;
use gridsync_core::DocId;
use gridsync_core::ingest::{self, Refusal};
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_core::schema::Registry;
use serde_json::json;

const ID: DocId = DocId::from_u128(7);

/// A report as the server holds it, and the next change of its author: a short one, or one long
/// enough for automerge to compress it, compressed (as phones sent them before pushes carried
/// changes undeflated, and as anyone may still send them).
fn report_and_edit(compressed: bool) -> (ReportDoc, Vec<u8>) {
    let by = Editor::new("u1", 1_700_000_000);
    let mut phone = ReportDoc::create(ID, "dispute_check", 1, "g", &by).expect("create");
    let mut server = ReportDoc::empty(ID);
    ingest::apply(
        &mut server,
        &phone.changes_since(&[]),
        "u1",
        &Registry::builtin(),
    )
    .expect("ingest");
    let before = phone.heads();
    let text = if compressed {
        "楼上漏水 ".repeat(100)
    } else {
        "楼上漏水".to_owned()
    };
    phone
        .set_field("description", &json!(text), &by)
        .expect("edit");
    let mut changes = phone.changes_since(&before);
    assert_eq!(changes.len(), 1);
    let mut change = changes.remove(0);
    if compressed {
        // automerge compresses changes of more than 256 bytes.
        let mut parsed = Change::from_bytes(change).expect("a change");
        change = parsed.bytes().into_owned();
    }
    // Bytes 4..8 are the checksum.
    assert_eq!(change[8] == 2, compressed, "chunk type");
    (server, change)
}

fn corrupt_checksum(change: &mut [u8]) {
    change[5] ^= 0x40;
}

#[test]
fn a_pushed_change_with_a_wrong_checksum_is_refused_and_the_report_still_loads() {
    for compressed in [false, true] {
        let (mut server, mut change) = report_and_edit(compressed);
        let heads = server.heads();
        corrupt_checksum(&mut change);
        let refusal = ingest::apply(&mut server, &[change], "u1", &Registry::builtin())
            .expect_err("a change with a wrong checksum is refused");
        assert!(
            matches!(refusal, Refusal::InvalidChange(_)),
            "compressed {compressed}: {refusal:?}"
        );
        assert_eq!(server.heads(), heads, "nothing applied");
        let mut loaded = ReportDoc::load(ID, &server.save()).expect("the report loads");
        assert_eq!(loaded.heads(), heads);
    }
}

#[test]
fn a_pulled_change_with_a_wrong_checksum_is_refused_by_the_phone() {
    for compressed in [false, true] {
        let (mut phone, mut change) = report_and_edit(compressed);
        let heads = phone.heads();
        corrupt_checksum(&mut change);
        let error = phone
            .apply_changes(&[change])
            .expect_err("a change with a wrong checksum is refused");
        assert!(
            matches!(error, gridsync_core::Error::InvalidChange(_)),
            "compressed {compressed}: {error:?}"
        );
        assert_eq!(phone.heads(), heads, "nothing applied");
    }
}

#[test]
fn a_change_naming_an_actor_the_document_never_saw_is_refused_not_a_panic() {
    let mut creator =
        ReportDoc::create(ID, "dispute_check", 1, "g", &Editor::new("u1", 1)).expect("create");
    // Another phone: loading gives it an actor of its own.
    let mut other = ReportDoc::load(ID, &creator.save()).expect("load");
    let before = other.heads();
    other
        .set_field("description", &json!("楼上漏水"), &Editor::new("u1", 2))
        .expect("edit");
    let mut forged = Change::from_bytes(other.changes_since(&before).remove(0))
        .expect("decode")
        .decode();
    // Forged to claim no history, while its operation still names the creator's objects.
    forged.deps.clear();
    let forged = Change::from(forged).raw_bytes().to_vec();
    let error = ReportDoc::empty(ID)
        .apply_changes(&[forged])
        .expect_err("a change naming an unknown actor is refused");
    assert!(
        matches!(error, gridsync_core::Error::InvalidChange(_)),
        "{error:?}"
    );
}
