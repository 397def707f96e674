//! The store conformance suite: every test here runs against SQLite and against Postgres, and
//! both must behave identically.

mod support;

use std::collections::BTreeSet;

use gridsync_core::DocId;
use gridsync_core::protocol::{Pull, PullBody, Push, PushDoc, PushOutcome};
use gridsync_core::replica::Replica;
use gridsync_core::report::Editor;
use gridsync_server::scope::{Role, Scope};
use gridsync_server::store::facts::{CanvassCounts, KindCounts, LedgerQuery, Period};
use gridsync_server::store::{
    Attachment, AuditEntry, AuditQuery, AuditRecord, BLOB_PIECE_BYTES, BlobUsage, ConflictQuery,
    Device, HeldDecision, HeldQuery, HeldState, Hub, Level, NewBulletin, NewDraft,
    NextRefreshToken, OrgUnit, OrphansCollected, Publication, RefreshToken, ReportQuery, Rotation,
    SchemaState, SessionStart, SigningKey, Store, StoreError, UploadChunk, UploadOutcome, User,
    UserPatch, UserQuery, Via, Writer,
};
use serde_json::json;
use support::*;

on_both_backends!(
    a_pushed_report_is_acknowledged_and_pulled_back_identical,
    pushing_the_same_changes_twice_stores_nothing_twice,
    a_push_of_many_reports_stores_every_change_numbered_in_push_order,
    a_change_with_missing_dependencies_is_answered_with_them_and_nothing_is_stored,
    a_change_by_another_author_is_refused_and_nothing_is_stored,
    a_push_outside_scope_is_refused_for_that_report_only,
    a_worker_cannot_take_over_a_drug_case_by_assigning_it_to_themselves,
    pulls_skip_the_callers_own_changes_and_send_others_as_changes,
    pulls_page_by_byte_budget_and_the_cursor_reaches_everything,
    each_role_pulls_exactly_its_scope,
    concurrent_edits_of_one_field_open_a_conflict_that_a_resolving_change_closes,
    compaction_rewrites_the_snapshot_and_pulls_still_converge,
    pruning_keeps_clients_behind_the_horizon_converging_through_snapshots,
    users_devices_and_refresh_tokens_round_trip,
    concurrent_refreshes_with_one_token_leave_at_most_one_working_successor,
    the_audit_log_keeps_entries_newest_first,
    a_reassigned_case_is_evicted_from_the_former_workers_phone,
    changes_a_phone_may_no_longer_write_are_held_for_whoever_owns_the_report_now,
    a_case_is_reassigned_only_to_someone_who_can_see_it,
    a_phone_gives_a_server_restored_from_an_empty_backup_its_reports_back,
    signing_keys_come_back_newest_first_with_their_secrets,
    a_device_key_is_set_once_by_a_refresh_and_replaced_only_by_an_upsert,
    a_push_naming_a_report_twice_stores_the_first_and_refuses_the_second,
    a_push_of_stored_reports_read_in_several_runs_answers_each_report_in_push_order,
    a_push_editing_many_stored_reports_updates_each_row_with_its_own_values,
    an_org_unit_is_inserted_once_and_renamed,
    users_page_by_username_under_an_org_prefix_with_their_total,
    a_users_prefix_matches_literally_and_with_its_case,
    a_move_keeps_a_users_devices_and_disabling_retires_them,
    a_password_change_ends_the_users_sessions_but_the_callers_and_a_retiring_phones,
    a_login_starts_no_session_once_the_password_it_checked_changed_or_the_account_or_device_ended,
    updating_an_unknown_user_or_to_an_unknown_unit_changes_nothing,
    devices_of_a_user_are_theirs_only,
    the_audit_page_filters_pages_newest_first_and_counts,
    report_lists_filter_in_sql_within_the_scope_and_page_newest_first,
    a_search_finds_text_with_sql_metacharacters_literally,
    a_reader_without_clearance_searches_only_the_redacted_text,
    setting_a_review_state_records_its_audit_entry,
    open_conflicts_are_listed_by_scope_and_fetched_by_id,
    a_dismissed_rule_flag_stays_dismissed_after_later_edits,
    scopes_compare_org_paths_exactly_with_their_case_and_wildcards,
    a_text_with_a_nul_character_is_refused_for_its_report_alone,
    a_migrated_database_passes_the_migration_check,
    the_schema_registry_starts_with_the_built_in_kinds_and_publishes_a_draft_once,
    the_index_counts_the_questions_each_reports_own_version_marks,
    a_published_kinds_reports_fall_on_the_day_they_were_stored_in_china,
    any_kind_is_counted_per_org_path_and_status_within_the_scope,
    canvass_figures_read_whole_months_from_roll_ups_and_agree_with_each_interview,
    a_pull_walks_the_feed_of_its_township_village_or_grid_and_sees_exactly_that_unit,
    a_bulletin_is_published_once_and_reissued_as_numbered_revisions,
);

async fn a_pushed_report_is_acknowledged_and_pulled_back_identical(store: &dyn Store) {
    seed_org(store).await;
    let mut doc = dispute(1, G1, "w1");
    let result = ingest(
        store,
        &writer("w1", Role::GridWorker, G1, "p1"),
        &push_all(&mut [&mut doc]),
    )
    .await
    .expect("ingest");
    // Nobody else changed the report, so its heads are those pushed and go unlisted.
    assert_eq!(
        result.docs[0].outcome,
        PushOutcome::Acked { heads: Vec::new() }
    );
    let row = store
        .document(&doc.id())
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(row.kind, "dispute_check");
    assert_eq!(row.org_path, "/d/t1/v1/g1/");
    assert_eq!(row.projection["fields"]["place"], json!("村口"));
    assert_eq!(row.heads, doc.heads());
    let loaded = store.load_doc(&doc.id()).await.expect("load").expect("doc");
    assert_eq!(
        loaded.to_json().expect("json"),
        doc.to_json().expect("json")
    );

    let mut office = Replica::new();
    let scope = Scope::for_role("c1", Role::VillageCadre, "/d/t1/v1/");
    let pages = pull_all(store, &scope, Some("office"), &mut office, 1 << 20).await;
    assert!(
        matches!(pages[0].docs[0].body, PullBody::Snapshot(_)),
        "a first pull gets snapshots"
    );
    let mut pulled = office.get(&doc.id()).expect("pulled").doc.clone();
    assert_eq!(pulled.heads(), doc.heads());
    assert_eq!(office.digest(), pages.last().expect("page").digest);
}

async fn pushing_the_same_changes_twice_stores_nothing_twice(store: &dyn Store) {
    seed_org(store).await;
    let mut doc = dispute(2, G1, "w1");
    let push = push_all(&mut [&mut doc]);
    let w = writer("w1", Role::GridWorker, G1, "p1");
    let first = ingest(store, &w, &push).await.expect("ingest");
    let seq = store
        .document(&doc.id())
        .await
        .expect("read")
        .expect("row")
        .seq;
    let second = ingest(store, &w, &push).await.expect("ingest again");
    // Both acknowledge the same heads: the first leaves them unlisted, being those pushed; the
    // retry, which brought nothing new, lists them.
    assert_eq!(
        first.docs[0].outcome,
        PushOutcome::Acked { heads: Vec::new() }
    );
    assert_eq!(
        second.docs[0].outcome,
        PushOutcome::Acked {
            heads: doc.heads().iter().map(|h| h.0).collect()
        }
    );
    assert_eq!(store.changes_of(&doc.id()).await.expect("changes").len(), 2);
    assert_eq!(
        store
            .document(&doc.id())
            .await
            .expect("read")
            .expect("row")
            .seq,
        seq
    );
}

async fn a_push_of_many_reports_stores_every_change_numbered_in_push_order(store: &dyn Store) {
    seed_org(store).await;
    let w = writer("w1", Role::GridWorker, G1, "p1");
    let mut stored = dispute(100, G1, "w1");
    ingest(store, &w, &push_all(&mut [&mut stored]))
        .await
        .expect("ingest");
    // Enough new reports and changes to fill several multi-row INSERTs of each length, with
    // a stored report among them and ids not in push order.
    let editor = Editor::new("w1", 2_000);
    let before = stored.heads();
    stored
        .set_field("place", &json!("祠堂"), &editor)
        .expect("edit");
    let edit = stored.changes_since(&before);
    let mut docs: Vec<_> = (0..45u128).map(|i| dispute(200 - i, G1, "w1")).collect();
    for (i, doc) in docs.iter_mut().enumerate() {
        for n in 0..i % 7 {
            doc.set_field("parties", &json!(format!("第{n}方")), &editor)
                .expect("edit");
        }
    }
    let mut all: Vec<&mut gridsync_core::report::ReportDoc> = docs.iter_mut().collect();
    all.insert(20, &mut stored);
    let mut push = push_all(&mut all);
    // The stored report sends only its new change.
    push.docs[20].changes = edit;
    let result = ingest(store, &w, &push).await.expect("ingest");
    assert!(
        result.docs.iter().all(|d| is_acked(&d.outcome)),
        "{result:?}"
    );

    let mut last = 0;
    for (item, doc) in push.docs.iter().zip(all.iter_mut()) {
        let changes = store.changes_of(&item.doc).await.expect("changes");
        let new = &changes[changes.len() - item.changes.len()..];
        for (n, change) in new.iter().enumerate() {
            assert_eq!(change.seq, new[0].seq + n as i64, "consecutive per report");
        }
        assert!(new[0].seq > last, "numbered in push order");
        last = new[new.len() - 1].seq;
        let row = store.document(&item.doc).await.expect("read").expect("row");
        assert_eq!(row.seq, last);
        assert_eq!(row.heads, doc.heads());
        let loaded = store.load_doc(&item.doc).await.expect("load").expect("doc");
        assert_eq!(
            loaded.to_json().expect("json"),
            doc.to_json().expect("json")
        );
    }
}

async fn a_change_with_missing_dependencies_is_answered_with_them_and_nothing_is_stored(
    store: &dyn Store,
) {
    seed_org(store).await;
    let mut doc = dispute(3, G1, "w1");
    let first_change = doc.changes_since(&[])[0].clone();
    doc.set_field("place", &json!("祠堂"), &Editor::new("w1", 1_002))
        .expect("set");
    let mut push = push_all(&mut [&mut doc]);
    // Send only the changes after creation, to a server that never saw the creation.
    push.docs[0].changes.retain(|c| *c != first_change);
    let result = ingest(store, &writer("w1", Role::GridWorker, G1, "p1"), &push)
        .await
        .expect("ingest");
    let created = automerge::Change::from_bytes(first_change)
        .expect("change")
        .hash();
    match &result.docs[0].outcome {
        PushOutcome::MissingDeps { missing } => assert_eq!(missing, &vec![created.0]),
        other => panic!("expected missing deps, got {other:?}"),
    }
    assert!(store.document(&doc.id()).await.expect("read").is_none());
}

async fn a_change_by_another_author_is_refused_and_nothing_is_stored(store: &dyn Store) {
    seed_org(store).await;
    let mut doc = dispute(4, G1, "w2");
    let result = ingest(
        store,
        &writer("w1", Role::GridWorker, G1, "p1"),
        &push_all(&mut [&mut doc]),
    )
    .await
    .expect("ingest");
    assert!(
        matches!(&result.docs[0].outcome, PushOutcome::Rejected { code, .. } if code == "foreign_author")
    );
    assert!(store.document(&doc.id()).await.expect("read").is_none());
}

async fn a_push_outside_scope_is_refused_for_that_report_only(store: &dyn Store) {
    seed_org(store).await;
    let mut mine = dispute(5, G1, "w1");
    let mut theirs = dispute(6, G2, "w1");
    let result = ingest(
        store,
        &writer("w1", Role::GridWorker, G1, "p1"),
        &push_all(&mut [&mut mine, &mut theirs]),
    )
    .await
    .expect("ingest");
    assert!(is_acked(&result.docs[0].outcome));
    assert!(
        matches!(&result.docs[1].outcome, PushOutcome::Rejected { code, .. } if code == "out_of_scope")
    );
    assert!(store.document(&mine.id()).await.expect("read").is_some());
    assert!(store.document(&theirs.id()).await.expect("read").is_none());
}

async fn a_worker_cannot_take_over_a_drug_case_by_assigning_it_to_themselves(store: &dyn Store) {
    seed_org(store).await;
    let mut case = drug_case(7, G1, "admin", "w2");
    let acked = ingest(store, &admin(), &push_all(&mut [&mut case]))
        .await
        .expect("ingest");
    assert!(is_acked(&acked.docs[0].outcome));
    let before = case.heads();
    case.set_field("assigned_worker", &json!("w1"), &Editor::new("w1", 2_000))
        .expect("set");
    let push = Push {
        docs: vec![PushDoc {
            doc: case.id(),
            changes: case.changes_since(&before),
        }],
    };
    let result = ingest(store, &writer("w1", Role::GridWorker, G1, "p1"), &push)
        .await
        .expect("ingest");
    assert!(
        matches!(&result.docs[0].outcome, PushOutcome::Rejected { code, .. } if code == "out_of_scope")
    );
    let row = store
        .document(&case.id())
        .await
        .expect("read")
        .expect("row");
    assert_eq!(row.assigned_to.as_deref(), Some("w2"));
}

async fn pulls_skip_the_callers_own_changes_and_send_others_as_changes(store: &dyn Store) {
    seed_org(store).await;
    let scope = Scope::for_role("w1", Role::GridWorker, path_of(G1));
    let mut phone = Replica::new();
    phone.insert(dispute(8, G1, "w1"));
    let id = DocId::from_u128(8);
    let w1 = writer("w1", Role::GridWorker, G1, "p1");
    let push = phone.build_push(1 << 20).expect("pending");
    phone.apply_push_result(&ingest(store, &w1, &push).await.expect("ingest"));
    // From cursor 0 a device gets snapshots of everything, its own reports included: it may be
    // a reinstall that lost them.
    pull_all(store, &scope, Some("p1"), &mut phone, 1 << 20).await;
    phone
        .doc_mut(&id)
        .expect("doc")
        .set_field("place", &json!("河堤"), &Editor::new("w1", 2_000))
        .expect("set");
    let push = phone.build_push(1 << 20).expect("pending");
    phone.apply_push_result(&ingest(store, &w1, &push).await.expect("ingest"));
    let pages = pull_all(store, &scope, Some("p1"), &mut phone, 1 << 20).await;
    assert!(
        pages.iter().all(|p| p.docs.is_empty()),
        "nothing new for the phone that wrote it"
    );

    // A cadre edits the same report at the office.
    let mut office = Replica::new();
    let cadre = Scope::for_role("c1", Role::VillageCadre, path_of("v1"));
    pull_all(store, &cadre, Some("pc"), &mut office, 1 << 20).await;
    office
        .doc_mut(&id)
        .expect("doc")
        .set_field("risk_level", &json!("high"), &Editor::new("c1", 3_000))
        .expect("set");
    let push = office.build_push(1 << 20).expect("pending");
    let w = writer("c1", Role::VillageCadre, "v1", "pc");
    office.apply_push_result(&ingest(store, &w, &push).await.expect("ingest"));

    let pages = pull_all(store, &scope, Some("p1"), &mut phone, 1 << 20).await;
    let body = &pages[0].docs[0].body;
    assert!(
        matches!(body, PullBody::Changes(c) if c.len() == 1),
        "one change, not a snapshot: {body:?}"
    );
    let doc = phone.get(&id).expect("doc").doc.clone();
    assert_eq!(doc.field("risk_level").expect("read"), Some(json!("high")));
    assert_eq!(phone.digest(), pages.last().expect("page").digest);
}

async fn pulls_page_by_byte_budget_and_the_cursor_reaches_everything(store: &dyn Store) {
    seed_org(store).await;
    let mut docs: Vec<_> = (100..130).map(|i| dispute(i, G1, "w1")).collect();
    let mut refs: Vec<&mut _> = docs.iter_mut().collect();
    ingest(
        store,
        &writer("w1", Role::GridWorker, G1, "p1"),
        &push_all(&mut refs),
    )
    .await
    .expect("ingest");
    let mut office = Replica::new();
    let scope = Scope::for_role("c1", Role::VillageCadre, path_of("v1"));
    let pages = pull_all(store, &scope, Some("pc"), &mut office, 2_000).await;
    assert!(
        pages.len() > 3,
        "a small budget splits the pull: {} pages",
        pages.len()
    );
    assert!(pages[..pages.len() - 1].iter().all(|p| p.more));
    for page in &pages {
        let bytes: usize = page
            .docs
            .iter()
            .map(|d| match &d.body {
                PullBody::Snapshot(s) => s.len(),
                PullBody::Changes(c) => c.iter().map(Vec::len).sum(),
            })
            .sum();
        assert!(
            page.docs.len() == 1 || bytes < 2_000 + 1_000,
            "page of {bytes} bytes"
        );
    }
    assert_eq!(office.ids().count(), 30);
    assert_eq!(office.digest(), pages.last().expect("page").digest);
}

async fn each_role_pulls_exactly_its_scope(store: &dyn Store) {
    seed_org(store).await;
    let mut d1 = dispute(11, G1, "admin");
    let mut d2 = dispute(12, G2, "admin");
    let mut d3 = dispute(13, G3, "admin");
    let mut c1 = drug_case(14, G1, "admin", "w1");
    let mut c2 = drug_case(15, G1, "admin", "w9");
    ingest(
        store,
        &admin(),
        &push_all(&mut [&mut d1, &mut d2, &mut d3, &mut c1, &mut c2]),
    )
    .await
    .expect("ingest");
    let cases: [(Scope, &[u128]); 6] = [
        (
            Scope::for_role("w1", Role::GridWorker, path_of(G1)),
            &[11, 14],
        ),
        (Scope::for_role("w2", Role::GridWorker, path_of(G2)), &[12]),
        (
            Scope::for_role("c1", Role::VillageCadre, path_of("v1")),
            &[11, 12],
        ),
        (
            Scope::for_role("t1", Role::TownshipStaff, path_of("s2")),
            &[13],
        ),
        (
            Scope::for_role("o1", Role::DrugControlOfficer, path_of("t1")),
            &[14, 15],
        ),
        (
            Scope::for_role("admin", Role::DistrictAdmin, path_of("d")),
            &[11, 12, 13, 14, 15],
        ),
    ];
    for (scope, expected) in cases {
        let mut replica = Replica::new();
        let pages = pull_all(store, &scope, None, &mut replica, 1 << 20).await;
        let got: BTreeSet<DocId> = replica.ids().copied().collect();
        let want: BTreeSet<DocId> = expected.iter().map(|i| DocId::from_u128(*i)).collect();
        assert_eq!(got, want, "scope of {}", scope.user_id);
        assert_eq!(
            replica.digest(),
            pages.last().expect("page").digest,
            "digest of {}",
            scope.user_id
        );
        // A resend request for a report outside the scope returns only an eviction.
        let probe = Pull {
            since: 0,
            after: 0,
            byte_budget: 1 << 20,
            resend: vec![DocId::from_u128(13)],
            takes_heads: false,
        };
        let result = gridsync_server::sync::pull::pull(store, &scope, None, &probe)
            .await
            .expect("pull");
        let in_scope = expected.contains(&13);
        assert_eq!(
            result.docs.iter().any(|d| d.doc == DocId::from_u128(13)),
            in_scope,
            "resend of 13 for {}",
            scope.user_id
        );
        assert_eq!(
            result.evicted == vec![DocId::from_u128(13)],
            !in_scope,
            "eviction of 13 for {}",
            scope.user_id
        );
    }
}

async fn concurrent_edits_of_one_field_open_a_conflict_that_a_resolving_change_closes(
    store: &dyn Store,
) {
    seed_org(store).await;
    let id = DocId::from_u128(20);
    let mut phone = Replica::new();
    phone.insert(dispute(20, G1, "w1"));
    let w1 = writer("w1", Role::GridWorker, G1, "p1");
    let push = phone.build_push(1 << 20).expect("pending");
    phone.apply_push_result(&ingest(store, &w1, &push).await.expect("ingest"));
    let mut office = Replica::new();
    let cadre = Scope::for_role("c1", Role::VillageCadre, path_of("v1"));
    pull_all(store, &cadre, Some("pc"), &mut office, 1 << 20).await;

    // Both edit the risk level offline.
    phone
        .doc_mut(&id)
        .expect("doc")
        .set_field("risk_level", &json!("low"), &Editor::new("w1", 5_000))
        .expect("set");
    office
        .doc_mut(&id)
        .expect("doc")
        .set_field("risk_level", &json!("high"), &Editor::new("c1", 5_001))
        .expect("set");
    let c1 = writer("c1", Role::VillageCadre, "v1", "pc");
    for (replica, w) in [(&mut phone, &w1), (&mut office, &c1)] {
        let push = replica.build_push(1 << 20).expect("pending");
        replica.apply_push_result(&ingest(store, w, &push).await.expect("ingest"));
    }
    let row = store.document(&id).await.expect("read").expect("row");
    assert!(row.has_conflicts);
    let conflicts = store.conflicts_of(&id).await.expect("conflicts");
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].path, "fields.risk_level");
    assert_eq!(conflicts[0].code, "concurrent_values");
    let authors: BTreeSet<&str> = conflicts[0]
        .detail
        .as_array()
        .expect("values")
        .iter()
        .filter_map(|v| v["author"].as_str())
        .collect();
    assert_eq!(authors, BTreeSet::from(["c1", "w1"]));

    // The cadre pulls both values and resolves.
    pull_all(store, &cadre, Some("pc"), &mut office, 1 << 20).await;
    let doc = office.doc_mut(&id).expect("doc");
    let path = "fields.risk_level".parse().expect("path");
    doc.resolve(&path, &json!("medium"), &Editor::new("c1", 6_000))
        .expect("resolve");
    let push = office.build_push(1 << 20).expect("pending");
    office.apply_push_result(&ingest(store, &c1, &push).await.expect("ingest"));
    let conflicts = store.conflicts_of(&id).await.expect("conflicts");
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].resolved_by.as_deref(), Some("c1"));
    let row = store.document(&id).await.expect("read").expect("row");
    assert!(!row.has_conflicts);
    assert_eq!(row.projection["fields"]["risk_level"], json!("medium"));
}

async fn compaction_rewrites_the_snapshot_and_pulls_still_converge(store: &dyn Store) {
    seed_org(store).await;
    let id = DocId::from_u128(30);
    let mut phone = Replica::new();
    phone.insert(dispute(30, G1, "w1"));
    let w1 = writer("w1", Role::GridWorker, G1, "p1");
    let mut office = Replica::new();
    let cadre = Scope::for_role("c1", Role::VillageCadre, path_of("v1"));
    for i in 0..60 {
        phone
            .doc_mut(&id)
            .expect("doc")
            .set_field(
                "description",
                &json!(format!("第{i}次走访，双方仍有分歧。")),
                &Editor::new("w1", 10_000 + i),
            )
            .expect("set");
        let push = phone.build_push(1 << 20).expect("pending");
        phone.apply_push_result(&ingest(store, &w1, &push).await.expect("ingest"));
        if i % 7 == 0 {
            pull_all(store, &cadre, Some("pc"), &mut office, 1 << 20).await;
        }
    }
    let loaded = store.load_doc(&id).await.expect("load").expect("doc");
    let mut phone_doc = phone.get(&id).expect("doc").doc.clone();
    assert_eq!(loaded.clone().heads(), phone_doc.heads());
    pull_all(store, &cadre, Some("pc"), &mut office, 1 << 20).await;
    assert_eq!(
        office.get(&id).expect("doc").doc.clone().heads(),
        phone_doc.heads()
    );
    let mut fresh = Replica::new();
    pull_all(store, &cadre, Some("pc2"), &mut fresh, 1 << 20).await;
    assert_eq!(
        fresh.get(&id).expect("doc").doc.clone().heads(),
        phone_doc.heads()
    );
}

async fn pruning_keeps_clients_behind_the_horizon_converging_through_snapshots(store: &dyn Store) {
    seed_org(store).await;
    let cadre = Scope::for_role("c1", Role::VillageCadre, path_of("v1"));
    let mut early = Replica::new();
    let mut docs: Vec<_> = (40..45).map(|i| dispute(i, G1, "w1")).collect();
    let mut refs: Vec<&mut _> = docs.iter_mut().collect();
    let w1 = writer("w1", Role::GridWorker, G1, "p1");
    ingest(store, &w1, &push_all(&mut refs))
        .await
        .expect("ingest");
    pull_all(store, &cadre, None, &mut early, 1 << 20).await;
    for d in &mut docs {
        let before = d.heads();
        d.set_field("place", &json!("新地点"), &Editor::new("w1", 20_000))
            .expect("set");
        let push = Push {
            docs: vec![PushDoc {
                doc: d.id(),
                changes: d.changes_since(&before),
            }],
        };
        ingest(store, &w1, &push).await.expect("ingest");
    }
    // No device is registered, so nothing holds the horizon back.
    let pruned = store.prune().await.expect("prune");
    assert!(pruned > 0, "something was pruned");
    pull_all(store, &cadre, None, &mut early, 1 << 20).await;
    for d in &mut docs {
        let mut local = early.get(&d.id()).expect("doc").doc.clone();
        assert_eq!(local.heads(), d.heads());
    }
}

async fn users_devices_and_refresh_tokens_round_trip(store: &dyn Store) {
    seed_org(store).await;
    let user = User {
        id: "u1".into(),
        username: "zhang.wei".into(),
        display_name: "张伟".into(),
        password_hash: "$argon2id$test".into(),
        role: Role::GridWorker,
        org_unit_id: G1.into(),
        disabled: false,
        created_at: 1,
    };
    store.insert_user(&user).await.expect("insert");
    assert!(matches!(
        store.insert_user(&user).await,
        Err(StoreError::Duplicate(_))
    ));
    assert_eq!(
        store.user_by_username("zhang.wei").await.expect("read"),
        Some(user.clone())
    );
    assert_eq!(store.user("u1").await.expect("read"), Some(user.clone()));
    assert_eq!(store.count_users().await.expect("count"), 1);
    let device = Device {
        id: "p1".into(),
        user_id: "u1".into(),
        name: "红米 Note".into(),
        created_at: 2,
        last_seen_at: 2,
        revoked_at: None,
        cursor: 0,
        pending_changes: None,
        pending_at: None,
        retiring_at: None,
        scope_key: None,
        public_key: None,
    };
    store.upsert_device(&device).await.expect("device");
    let token = RefreshToken {
        token_hash: vec![7; 32],
        device_id: "p1".into(),
        family: "f1".into(),
        expires_at: 100,
        used_at: None,
        replaces: None,
    };
    start_session(store, &token).await;
    let next = |id: u8| NextRefreshToken {
        token_hash: vec![id; 32],
        expires_at: 200,
    };
    assert_eq!(
        store
            .rotate_refresh_token(&[7; 32], &next(8), 50)
            .await
            .expect("rotate"),
        Rotation::Rotated {
            spent: token.clone(),
            grace: false
        }
    );
    assert_eq!(
        store
            .rotate_refresh_token(&[8; 32], &next(9), 60)
            .await
            .expect("rotate"),
        Rotation::Rotated {
            spent: RefreshToken {
                token_hash: vec![8; 32],
                expires_at: 200,
                replaces: Some(vec![7; 32]),
                ..token.clone()
            },
            grace: false
        },
        "the successor takes the device and family and names the token it replaced"
    );
    let Rotation::Reused { spent } = store
        .rotate_refresh_token(&[7; 32], &next(10), 65)
        .await
        .expect("rotate")
    else {
        panic!("a token two generations back is reuse");
    };
    assert_eq!(spent.used_at, Some(50), "a second use shows the first");
    assert_eq!(
        store
            .rotate_refresh_token(&[9; 32], &next(11), 66)
            .await
            .expect("rotate"),
        Rotation::Refused,
        "reuse revoked the family"
    );
    start_session(
        store,
        &RefreshToken {
            family: "f2".into(),
            ..token.clone()
        },
    )
    .await;
    assert!(store.revoke_device("p1", 70).await.expect("revoke"));
    assert!(
        !store.revoke_device("p1", 71).await.expect("revoke"),
        "revoking twice changes nothing"
    );
    assert_eq!(
        store
            .device("p1")
            .await
            .expect("read")
            .expect("device")
            .revoked_at,
        Some(70)
    );
    assert_eq!(
        store
            .rotate_refresh_token(&[7; 32], &next(12), 80)
            .await
            .expect("rotate"),
        Rotation::Refused,
        "revocation drops tokens"
    );
}

async fn concurrent_refreshes_with_one_token_leave_at_most_one_working_successor(
    store: &dyn Store,
) {
    seed_org(store).await;
    http::add_users_with_devices(store, &[("w1", Role::GridWorker, G1)]).await;
    let next = |id: u8| NextRefreshToken {
        token_hash: vec![id; 32],
        expires_at: 1_000,
    };
    for (family, first, racers) in [("two", 10u8, 2u8), ("three", 20, 3)] {
        start_session(
            store,
            &RefreshToken {
                token_hash: vec![first; 32],
                device_id: "dev-w1".into(),
                family: family.into(),
                expires_at: 1_000,
                used_at: None,
                replaces: None,
            },
        )
        .await;
        let rotate = |i: u8| async move {
            store
                .rotate_refresh_token(&[first; 32], &next(first + i), 50)
                .await
        };
        let (a, b, c) = tokio::join!(rotate(1), rotate(2), async {
            if racers == 3 {
                Some(rotate(3).await)
            } else {
                None
            }
        });
        let outcomes: Vec<&str> = [Some(a), Some(b), c]
            .into_iter()
            .flatten()
            .map(|r| match r.expect("rotate") {
                Rotation::Rotated { grace: false, .. } => "spent",
                Rotation::Rotated { grace: true, .. } => "grace",
                Rotation::Reused { .. } => "reused",
                Rotation::Refused => "refused",
            })
            .collect();
        let mut sorted = outcomes.clone();
        sorted.sort_unstable();
        // What each racer's new token does now, the retry's first: presenting a dead one
        // revokes the family.
        let mut order: Vec<u8> = (1..=racers).collect();
        order.sort_by_key(|i| outcomes[usize::from(i - 1)] != "grace");
        let mut now_presented = Vec::new();
        for i in order {
            let rotation = store
                .rotate_refresh_token(&[first + i; 32], &next(first + 10 + i), 51)
                .await
                .expect("rotate");
            now_presented.push(match rotation {
                Rotation::Rotated { grace: false, .. } => "works",
                Rotation::Rotated { grace: true, .. } => "grace",
                Rotation::Reused { .. } => "reused",
                Rotation::Refused => "refused",
            });
        }
        if racers == 2 {
            assert_eq!(sorted, ["grace", "spent"], "the second looks like a retry");
            assert_eq!(
                now_presented,
                ["works", "reused"],
                "only the retry's token works; the other was spent unseen"
            );
        } else {
            assert_eq!(sorted, ["grace", "reused", "spent"]);
            assert_eq!(
                now_presented, ["refused"; 3],
                "the third use revoked the family"
            );
        }
    }
}

async fn the_audit_log_keeps_entries_newest_first(store: &dyn Store) {
    for (i, action) in ["read_report", "export"].into_iter().enumerate() {
        store
            .audit(&AuditEntry {
                at: i as i64,
                user_id: Some("o1".into()),
                device_id: None,
                action: action.into(),
                doc_id: Some(DocId::from_u128(14)),
                detail: json!({ "kind": "drug_control_case" }),
            })
            .await
            .expect("audit");
    }
    let log = store.audit_log(10).await.expect("log");
    assert_eq!(
        log.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["export", "read_report"]
    );
    assert_eq!(log[0].detail["kind"], json!("drug_control_case"));
}

async fn a_reassigned_case_is_evicted_from_the_former_workers_phone(store: &dyn Store) {
    seed_org(store).await;
    for id in ["w1", "w2"] {
        store
            .insert_user(&user(id, Role::GridWorker, G1))
            .await
            .expect("user");
    }
    let officer = writer("o1", Role::DrugControlOfficer, "t1", "o-pc");
    let mut case = drug_case(21, G1, "o1", "w1");
    let mut other = drug_case(22, G1, "o1", "w1");
    ingest(store, &officer, &push_all(&mut [&mut case, &mut other]))
        .await
        .expect("ingest");
    let w1 = Scope::for_role("w1", Role::GridWorker, path_of(G1));
    let mut phone = Replica::new();
    pull_all(store, &w1, Some("p1"), &mut phone, 1 << 20).await;
    assert!(
        phone.get(&case.id()).is_some(),
        "the assigned worker holds the case"
    );

    let before = case.heads();
    case.set_field("assigned_worker", &json!("w2"), &Editor::new("o1", 2_000))
        .expect("reassign");
    let push = Push {
        docs: vec![PushDoc {
            doc: case.id(),
            changes: case.changes_since(&before),
        }],
    };
    let result = ingest(store, &officer, &push).await.expect("ingest");
    assert!(is_acked(&result.docs[0].outcome));

    let pages = pull_all(store, &w1, Some("p1"), &mut phone, 1 << 20).await;
    let evicted: Vec<DocId> = pages.iter().flat_map(|p| p.evicted.clone()).collect();
    assert_eq!(evicted, vec![case.id()]);
    assert!(
        phone.get(&case.id()).is_some_and(|d| d.out_of_scope),
        "marked as gone, kept until nothing of it is pending"
    );
    assert_eq!(
        phone.releasable(),
        vec![case.id()],
        "nothing pending: it may go"
    );
    phone.remove(&case.id());
    assert!(phone.get(&other.id()).is_some(), "the other case stays");

    // The new assignee receives it; a later pull of the former one evicts nothing more.
    let w2 = Scope::for_role("w2", Role::GridWorker, path_of(G1));
    let mut phone2 = Replica::new();
    pull_all(store, &w2, Some("p2"), &mut phone2, 1 << 20).await;
    assert!(phone2.get(&case.id()).is_some());
    let pages = pull_all(store, &w1, Some("p1"), &mut phone, 1 << 20).await;
    assert!(pages.iter().all(|p| p.evicted.is_empty()));
}

async fn changes_a_phone_may_no_longer_write_are_held_for_whoever_owns_the_report_now(
    store: &dyn Store,
) {
    seed_org(store).await;
    for (id, role, unit) in [
        ("w1", Role::GridWorker, G1),
        ("w2", Role::GridWorker, G1),
        ("o1", Role::DrugControlOfficer, "t1"),
        ("c1", Role::VillageCadre, "v1"),
    ] {
        store
            .insert_user(&user(id, role, unit))
            .await
            .expect("user");
    }
    let officer = writer("o1", Role::DrugControlOfficer, "t1", "o-pc");
    let mut case = drug_case(41, G1, "o1", "w1");
    ingest(store, &officer, &push_all(&mut [&mut case]))
        .await
        .expect("ingest");
    let mut w1 = writer("w1", Role::GridWorker, G1, "p1");
    w1.hold_out_of_scope = true;
    let mut phone = Replica::new();
    pull_all(store, &w1.scope, Some("p1"), &mut phone, 1 << 20).await;

    // Offline, the worker records a relapse; meanwhile the officer reassigns the case.
    let by = Editor::new("w1", 3_000);
    let doc = phone.doc_mut(&case.id()).expect("held by the phone");
    doc.set_field("status", &json!("relapsed"), &by)
        .expect("status");
    let before = case.heads();
    case.set_field("assigned_worker", &json!("w2"), &Editor::new("o1", 2_000))
        .expect("reassign");
    let reassign = Push {
        docs: vec![PushDoc {
            doc: case.id(),
            changes: case.changes_since(&before),
        }],
    };
    let result = ingest(store, &officer, &reassign).await.expect("ingest");
    assert!(is_acked(&result.docs[0].outcome));

    let push = phone.build_push(1 << 20).expect("pending");
    for attempt in 0..2 {
        // The second push is the same one again, as after an answer lost on the way.
        let result = ingest(store, &w1, &push).await.expect("push");
        assert!(
            matches!(&result.docs[0].outcome, PushOutcome::Held { code, .. } if code == "out_of_scope"),
            "attempt {attempt}: {:?}",
            result.docs[0].outcome
        );
        phone.apply_push_result(&result);
    }
    assert_eq!(
        phone.pending(),
        0,
        "held changes are delivered, not pending"
    );
    let row = store
        .document(&case.id())
        .await
        .expect("read")
        .expect("row");
    assert_eq!(
        row.projection["fields"]["status"],
        json!(null),
        "nothing applied"
    );

    let held_query = HeldQuery {
        limit: 10,
        ..HeldQuery::default()
    };
    let for_officer = store
        .held_work(&officer.scope, &held_query)
        .await
        .expect("list");
    assert_eq!(
        for_officer.len(),
        1,
        "one item, however often it was pushed"
    );
    let item = &for_officer[0];
    assert_eq!(
        (
            item.author_id.as_str(),
            item.device_id.as_str(),
            item.changes
        ),
        ("w1", "p1", 1)
    );
    assert_eq!(item.state, HeldState::Held);
    assert_eq!(item.projection["fields"]["status"], json!("relapsed"));
    assert_eq!(
        item.assigned_to.as_deref(),
        Some("w2"),
        "placed like the case is now"
    );
    let cadre = Scope::for_role("c1", Role::VillageCadre, path_of("v1"));
    for scope in [&cadre, &w1.scope] {
        let seen = store.held_work(scope, &held_query).await.expect("list");
        assert!(
            seen.is_empty(),
            "a restricted case's held work is as restricted as the case"
        );
    }
    let w2 = Scope::for_role("w2", Role::GridWorker, path_of(G1));
    assert_eq!(
        store.held_work(&w2, &held_query).await.expect("list").len(),
        1
    );

    // The phone drops the case only once the server holds its work.
    pull_all(store, &w1.scope, Some("p1"), &mut phone, 1 << 20).await;
    assert_eq!(phone.releasable(), vec![case.id()]);

    // Merged: the author's change, applied in the officer's scope, attributed to the author.
    let changes = store.held_changes(item.id).await.expect("changes");
    let merge = Push {
        docs: vec![PushDoc {
            doc: case.id(),
            changes,
        }],
    };
    let merger = Writer {
        user_id: "w1".into(),
        device_id: Some("p1".into()),
        ..officer.clone()
    };
    let result = ingest(store, &merger, &merge).await.expect("merge");
    assert!(
        is_acked(&result.docs[0].outcome),
        "{:?}",
        result.docs[0].outcome
    );
    let decision = HeldDecision {
        state: HeldState::Merged,
        by: "o1".into(),
        at: 4_000,
        note: None,
    };
    assert!(store.decide_held(item.id, &decision).await.expect("decide"));
    assert!(
        !store.decide_held(item.id, &decision).await.expect("decide"),
        "decided once"
    );
    let row = store
        .document(&case.id())
        .await
        .expect("read")
        .expect("row");
    assert_eq!(row.projection["fields"]["status"], json!("relapsed"));
    assert_eq!(row.projection["fields"]["assigned_worker"], json!("w2"));
    let changes = store.changes_of(&case.id()).await.expect("changes");
    let last = changes.last().expect("a change");
    assert_eq!(
        (last.author.as_str(), last.device_id.as_deref()),
        ("w1", Some("p1"))
    );
    let merged = store.held_item(item.id).await.expect("read").expect("item");
    assert_eq!(
        (merged.state, merged.decided_by.as_deref()),
        (HeldState::Merged, Some("o1"))
    );

    // A new report for a grid the worker no longer covers is held for that grid's people.
    let mut elsewhere = dispute(42, G2, "w1");
    let result = ingest(store, &w1, &push_all(&mut [&mut elsewhere]))
        .await
        .expect("push");
    assert!(matches!(result.docs[0].outcome, PushOutcome::Held { .. }));
    assert!(
        store
            .document(&elsewhere.id())
            .await
            .expect("read")
            .is_none()
    );
    let seen = store.held_work(&cadre, &held_query).await.expect("list");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].grid_id, G2);
}

async fn a_case_is_reassigned_only_to_someone_who_can_see_it(store: &dyn Store) {
    seed_org(store).await;
    store
        .insert_user(&user("w1", Role::GridWorker, G1))
        .await
        .expect("user");
    store
        .insert_user(&user("w3", Role::GridWorker, G3))
        .await
        .expect("user");
    let officer = admin();
    let mut case = drug_case(43, G1, "admin", "w1");
    ingest(store, &officer, &push_all(&mut [&mut case]))
        .await
        .expect("ingest");
    for stranger in ["w3", "nobody"] {
        let mut moved = case.clone();
        let before = moved.heads();
        moved
            .set_field(
                "assigned_worker",
                &json!(stranger),
                &Editor::new("admin", 2_000),
            )
            .expect("reassign");
        let push = Push {
            docs: vec![PushDoc {
                doc: case.id(),
                changes: moved.changes_since(&before),
            }],
        };
        let result = ingest(store, &officer, &push).await.expect("push");
        assert!(
            matches!(&result.docs[0].outcome, PushOutcome::Rejected { code, .. } if code == "assignee_out_of_reach"),
            "{stranger}: {:?}",
            result.docs[0].outcome
        );
    }
    let row = store
        .document(&case.id())
        .await
        .expect("read")
        .expect("row");
    assert_eq!(row.assigned_to.as_deref(), Some("w1"), "nothing stored");
}

async fn a_phone_gives_a_server_restored_from_an_empty_backup_its_reports_back(store: &dyn Store) {
    // The phone syncs with the server as it was (a throwaway database standing in for it) ...
    let before = sqlite().await;
    let before = before.store.as_ref();
    seed_org(before).await;
    let worker = writer("w1", Role::GridWorker, G1, "p1");
    let mut phone = Replica::new();
    phone.insert(dispute(31, G1, "w1"));
    phone.insert(dispute(32, G1, "w1"));
    let push = phone.build_push(1 << 20).expect("pending");
    let result = ingest(before, &worker, &push).await.expect("ingest");
    phone.apply_push_result(&result);
    pull_all(before, &worker.scope, Some("p1"), &mut phone, 1 << 20).await;
    assert_eq!(phone.pending(), 0);
    assert!(phone.cursor().since > 0);

    // ... and then meets it restored from a backup taken before the phone ever synced.
    seed_org(store).await;
    let pull = phone.build_pull(1 << 20);
    let answer = gridsync_server::sync::pull::pull(store, &worker.scope, Some("p1"), &pull)
        .await
        .expect("pull");
    assert!(
        answer.after < pull.since,
        "the server tells the phone to start over"
    );
    let summary = phone.apply_pull_result(answer).expect("apply");
    assert!(summary.more);
    assert_eq!(phone.pending(), 4, "every change is offered again");
    let push = phone.build_push(1 << 20).expect("pending");
    let result = ingest(store, &worker, &push).await.expect("ingest");
    assert!(result.docs.iter().all(|d| is_acked(&d.outcome)));
    phone.apply_push_result(&result);
    pull_all(store, &worker.scope, Some("p1"), &mut phone, 1 << 20).await;
    for id in [31, 32] {
        assert!(
            store
                .document(&DocId::from_u128(id))
                .await
                .expect("read")
                .is_some()
        );
    }
    assert_eq!(phone.pending(), 0);
}

async fn signing_keys_come_back_newest_first_with_their_secrets(store: &dyn Store) {
    assert!(store.signing_keys().await.expect("keys").is_empty());
    for (kid, at) in [("old", 100), ("new", 200)] {
        store
            .insert_signing_key(&SigningKey {
                kid: kid.into(),
                secret: kid.as_bytes().repeat(8),
                created_at: at,
            })
            .await
            .expect("insert key");
    }
    let keys = store.signing_keys().await.expect("keys");
    assert_eq!(
        keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
        ["new", "old"]
    );
    assert_eq!(keys[0].secret, b"new".repeat(8));
    assert!(
        !format!("{:?}", keys[0]).contains("newnew"),
        "Debug hides the secret"
    );
}

async fn a_push_naming_a_report_twice_stores_the_first_and_refuses_the_second(store: &dyn Store) {
    seed_org(store).await;
    let mut doc = dispute(41, G1, "w1");
    let mut push = push_all(&mut [&mut doc]);
    push.docs.push(push.docs[0].clone());
    let result = ingest(store, &writer("w1", Role::GridWorker, G1, "p1"), &push)
        .await
        .expect("ingest");
    assert!(is_acked(&result.docs[0].outcome));
    assert!(matches!(
        &result.docs[1].outcome,
        PushOutcome::Rejected { code, .. } if code == "duplicate_doc"
    ));
    let row = store
        .document(&doc.id())
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(row.heads, doc.heads());
}

async fn a_push_of_stored_reports_read_in_several_runs_answers_each_report_in_push_order(
    store: &dyn Store,
) {
    seed_org(store).await;
    let w = writer("w1", Role::GridWorker, G1, "p1");
    // Stored reports of 700 KB each: each is read in a run of its own, and judged with the new
    // reports after it in id order.
    let mut stored: Vec<_> = [10u128, 20, 30]
        .into_iter()
        .map(|id| {
            let mut doc = dispute(id, G1, "w1");
            doc.set_field(
                "parties",
                &json!("甲".repeat(700_000 / 3)),
                &Editor::new("w1", 1_002),
            )
            .expect("edit");
            doc
        })
        .collect();
    for doc in &mut stored {
        let result = ingest(store, &w, &push_all(&mut [doc]))
            .await
            .expect("ingest");
        assert!(is_acked(&result.docs[0].outcome), "{result:?}");
    }
    let mut edits = Vec::new();
    for doc in &mut stored {
        let before = doc.heads();
        doc.set_field("place", &json!("祠堂"), &Editor::new("w1", 2_000))
            .expect("edit");
        edits.push(doc.changes_since(&before));
    }
    // Two new reports of 600 KB each: a window of stored and pushed bytes ends before them.
    let mut new: Vec<_> = [35u128, 5, 15, 25]
        .into_iter()
        .map(|id| {
            let mut doc = dispute(id, G1, "w1");
            if id < 20 {
                doc.set_field(
                    "parties",
                    &json!("乙".repeat(200_000)),
                    &Editor::new("w1", 1_002),
                )
                .expect("edit");
            }
            doc
        })
        .collect();
    let mut elsewhere = dispute(22, G2, "w1");
    let mut forged = dispute(27, G1, "w2");

    let [a, b, c] = &mut stored[..] else {
        unreachable!()
    };
    let [n35, n5, n15, n25] = &mut new[..] else {
        unreachable!()
    };
    let mut push = push_all(&mut [n35, b, &mut elsewhere, n5, c, &mut forged, a, n15, n25]);
    push.docs[1].changes = edits[1].clone();
    push.docs[4].changes = edits[2].clone();
    push.docs[6].changes = edits[0].clone();
    push.docs.push(push.docs[1].clone());
    let result = ingest(store, &w, &push).await.expect("ingest");

    let codes: Vec<&str> = result
        .docs
        .iter()
        .map(|d| match &d.outcome {
            PushOutcome::Acked { .. } => "acked",
            PushOutcome::Rejected { code, .. } => code,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        codes,
        [
            "acked",
            "acked",
            "out_of_scope",
            "acked",
            "acked",
            "foreign_author",
            "acked",
            "acked",
            "acked",
            "duplicate_doc",
        ]
    );
    let ids: Vec<DocId> = push.docs.iter().map(|d| d.doc).collect();
    assert_eq!(result.docs.iter().map(|d| d.doc).collect::<Vec<_>>(), ids);
    for doc in stored.iter_mut().chain(new.iter_mut()) {
        let row = store.document(&doc.id()).await.expect("read").expect("row");
        assert_eq!(row.heads, doc.heads(), "{}", doc.id());
        let loaded = store.load_doc(&doc.id()).await.expect("load").expect("doc");
        assert_eq!(
            loaded.to_json().expect("json"),
            doc.to_json().expect("json")
        );
    }
    for refused in [&elsewhere, &forged] {
        assert!(store.document(&refused.id()).await.expect("read").is_none());
    }
}

async fn a_push_editing_many_stored_reports_updates_each_row_with_its_own_values(
    store: &dyn Store,
) {
    seed_org(store).await;
    let w = writer("w1", Role::GridWorker, G1, "p1");
    // 23 rows: updates of 16, 4, 2 and 1 rows to a statement.
    let mut docs: Vec<_> = (400..423u128).map(|id| dispute(id, G1, "w1")).collect();
    let mut all: Vec<_> = docs.iter_mut().collect();
    let created = ingest(store, &at(w.clone(), 3_000), &push_all(&mut all))
        .await
        .expect("ingest");
    assert!(created.docs.iter().all(|d| is_acked(&d.outcome)));

    let editor = Editor::new("w1", 4_000);
    let mut push = Push { docs: Vec::new() };
    for (i, doc) in docs.iter_mut().enumerate() {
        let before = doc.heads();
        doc.set_field("place", &json!(format!("祠堂 {i}")), &editor)
            .expect("edit");
        if i % 2 == 0 {
            // Outweighs the snapshot: these rows get a new one, the others keep theirs.
            doc.set_field("description", &json!("调解".repeat(1_000)), &editor)
                .expect("edit");
        }
        push.docs.push(PushDoc {
            doc: doc.id(),
            changes: doc.changes_since(&before),
        });
    }
    let result = ingest(store, &at(w, 5_000), &push).await.expect("ingest");
    assert!(
        result.docs.iter().all(|d| is_acked(&d.outcome)),
        "{result:?}"
    );

    for (i, doc) in docs.iter_mut().enumerate() {
        let row = store.document(&doc.id()).await.expect("read").expect("row");
        assert_eq!(
            row.projection["fields"]["place"],
            json!(format!("祠堂 {i}"))
        );
        assert_eq!(row.heads, doc.heads());
        let changes = store.changes_of(&doc.id()).await.expect("changes");
        assert_eq!(row.seq, changes.last().expect("changes").seq);
        assert_eq!((row.created_at, row.updated_at), (3_000, 5_000));
        let loaded = store.load_doc(&doc.id()).await.expect("load").expect("doc");
        assert_eq!(
            loaded.to_json().expect("json"),
            doc.to_json().expect("json")
        );
    }
}

fn unit(id: &str, parent: &str, level: Level, path: &str) -> OrgUnit {
    OrgUnit {
        id: id.into(),
        parent_id: Some(parent.into()),
        level,
        name: format!("unit {id}"),
        path: path.into(),
    }
}

/// Starts a session with `token` as a login checking its user's current password does.
async fn start_session(store: &dyn Store, token: &RefreshToken) {
    let device = store.device(&token.device_id).await.expect("read");
    let user = store
        .user(&device.expect("device").user_id)
        .await
        .expect("read")
        .expect("user");
    assert_eq!(
        store
            .start_session(token, &user.id, &user.password_hash)
            .await
            .expect("session"),
        SessionStart::Started,
        "a session of an enabled user whose password was just read starts"
    );
}

fn user(id: &str, role: Role, unit: &str) -> User {
    User {
        id: id.into(),
        username: id.into(),
        display_name: id.into(),
        password_hash: "$argon2id$test".into(),
        role,
        org_unit_id: unit.into(),
        disabled: false,
        created_at: 1,
    }
}

async fn a_device_key_is_set_once_by_a_refresh_and_replaced_only_by_an_upsert(store: &dyn Store) {
    seed_org(store).await;
    http::add_user(store, "w1", Role::GridWorker, G1, "pw", false).await;
    store
        .upsert_device(&device("p1", "w1", 1))
        .await
        .expect("device");
    let key_of = || async {
        store
            .device("p1")
            .await
            .expect("read")
            .expect("p1")
            .public_key
    };
    assert_eq!(key_of().await, None);
    assert!(store.set_device_key("p1", "first").await.expect("set"));
    assert!(
        !store.set_device_key("p1", "second").await.expect("set"),
        "never replaced"
    );
    assert!(!store.set_device_key("nobody", "k").await.expect("set"));
    assert_eq!(key_of().await.as_deref(), Some("first"));
    let login = Device {
        public_key: Some("third".into()),
        ..device("p1", "w1", 1)
    };
    store.upsert_device(&login).await.expect("upsert");
    assert_eq!(key_of().await.as_deref(), Some("third"));
}

fn device(id: &str, user: &str, created_at: i64) -> Device {
    Device {
        id: id.into(),
        user_id: user.into(),
        name: "phone".into(),
        created_at,
        last_seen_at: created_at,
        revoked_at: None,
        cursor: 0,
        pending_changes: None,
        pending_at: None,
        retiring_at: None,
        scope_key: None,
        public_key: None,
    }
}

async fn an_org_unit_is_inserted_once_and_renamed(store: &dyn Store) {
    seed_org(store).await;
    let g4 = unit("g4", "v1", Level::Grid, "/d/t1/v1/g4/");
    store.insert_org_unit(&g4).await.expect("insert");
    assert_eq!(store.org_unit("g4").await.expect("read"), Some(g4.clone()));
    assert!(matches!(
        store.insert_org_unit(&g4).await,
        Err(StoreError::Duplicate(_))
    ));
    let orphan = unit("g5", "nowhere", Level::Grid, "/d/nowhere/g5/");
    assert!(matches!(
        store.insert_org_unit(&orphan).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.org_unit("g5").await.expect("read").is_none());

    assert!(store.rename_org_unit("g4", "四网格").await.expect("rename"));
    assert!(!store.rename_org_unit("nope", "x").await.expect("rename"));
    let renamed = store.org_unit("g4").await.expect("read").expect("unit");
    assert_eq!(
        (renamed.name.as_str(), renamed.path.as_str()),
        ("四网格", "/d/t1/v1/g4/")
    );
}

async fn users_page_by_username_under_an_org_prefix_with_their_total(store: &dyn Store) {
    seed_org(store).await;
    for (id, role, unit) in [
        ("admin", Role::DistrictAdmin, "d"),
        ("c1", Role::VillageCadre, "v1"),
        ("w1", Role::GridWorker, G1),
        ("w2", Role::GridWorker, G2),
        ("w3", Role::GridWorker, G3),
        ("t1staff", Role::TownshipStaff, "t1"),
    ] {
        store
            .insert_user(&user(id, role, unit))
            .await
            .expect("user");
    }
    let names = |page: &[User]| page.iter().map(|u| u.username.clone()).collect::<Vec<_>>();
    let query = |prefix: &str, after: Option<&str>, limit: i64| UserQuery {
        org_prefix: prefix.into(),
        after: after.map(Into::into),
        limit,
    };

    let all = store.users_page(&query("", None, 100)).await.expect("page");
    assert_eq!(
        names(&all.items),
        ["admin", "c1", "t1staff", "w1", "w2", "w3"]
    );
    assert_eq!(all.total, 6);

    let first = store
        .users_page(&query("/d/t1/", None, 2))
        .await
        .expect("page");
    assert_eq!(names(&first.items), ["c1", "t1staff"]);
    assert_eq!(first.total, 4, "the total counts every page");
    let second = store
        .users_page(&query("/d/t1/", Some("t1staff"), 2))
        .await
        .expect("page");
    assert_eq!(names(&second.items), ["w1", "w2"]);
    let third = store
        .users_page(&query("/d/t1/", Some("w2"), 2))
        .await
        .expect("page");
    assert!(third.items.is_empty());

    let village = store
        .users_page(&query("/d/t1/v1/", None, 10))
        .await
        .expect("page");
    assert_eq!(names(&village.items), ["c1", "w1", "w2"]);
    let none = store
        .users_page(&query("/x/", None, 10))
        .await
        .expect("page");
    assert_eq!((none.items.len(), none.total), (0, 0));
}

async fn a_users_prefix_matches_literally_and_with_its_case(store: &dyn Store) {
    seed_org(store).await;
    store
        .insert_user(&user("w1", Role::GridWorker, G1))
        .await
        .expect("user");
    for prefix in [
        "%",
        "_",
        "/d/%",
        "/d/t_/",
        "\\",
        "/d/t1/v1/g1/'",
        "' OR 1=1 --",
    ] {
        let page = store
            .users_page(&UserQuery {
                org_prefix: prefix.into(),
                after: Some("\"; DROP TABLE users; --".into()),
                limit: 10,
            })
            .await
            .expect("page");
        assert_eq!((page.items.len(), page.total), (0, 0), "prefix {prefix}");
    }
    assert_eq!(store.count_users().await.expect("count"), 1);
}

async fn a_move_keeps_a_users_devices_and_disabling_retires_them(store: &dyn Store) {
    seed_org(store).await;
    store
        .insert_user(&user("w1", Role::GridWorker, G1))
        .await
        .expect("user");
    store
        .insert_user(&user("w2", Role::GridWorker, G2))
        .await
        .expect("user");
    store
        .upsert_device(&device("p1", "w1", 1))
        .await
        .expect("device");
    store
        .upsert_device(&device("p2", "w1", 2))
        .await
        .expect("device");
    store
        .upsert_device(&device("other", "w2", 3))
        .await
        .expect("device");
    start_session(
        store,
        &RefreshToken {
            token_hash: vec![1; 32],
            device_id: "p1".into(),
            family: "f".into(),
            expires_at: 1_000,
            used_at: None,
            replaces: None,
        },
    )
    .await;
    let moved = store
        .update_user(
            "w1",
            &UserPatch {
                org_unit_id: Some(G2.into()),
                ..UserPatch::default()
            },
            50,
        )
        .await
        .expect("update")
        .expect("user");
    assert_eq!(moved.user.org_unit_id, G2);
    assert!(moved.retiring_devices.is_empty(), "a move is no retirement");
    assert_eq!(
        store.user("w1").await.expect("read"),
        Some(moved.user.clone())
    );
    for d in store.devices_of_user("w1").await.expect("devices") {
        assert_eq!((d.revoked_at, d.retiring_at), (None, None), "{}", d.id);
    }
    assert!(
        matches!(
            store
                .rotate_refresh_token(
                    &[1; 32],
                    &NextRefreshToken {
                        token_hash: vec![2; 32],
                        expires_at: 1_000
                    },
                    60
                )
                .await
                .expect("rotate"),
            Rotation::Rotated { .. }
        ),
        "the phone keeps its session, so it can deliver and pull its new scope"
    );

    // A role change keeps them too; disabling retires every live one, sessions kept so that
    // each can deliver what it holds before it wipes itself.
    let done = store
        .update_user(
            "w1",
            &UserPatch {
                role: Some(Role::VillageCadre),
                ..UserPatch::default()
            },
            100,
        )
        .await
        .expect("update")
        .expect("user");
    assert!(done.retiring_devices.is_empty());
    store.revoke_device("p2", 150).await.expect("revoke");
    let done = store
        .update_user(
            "w1",
            &UserPatch {
                disabled: Some(true),
                ..UserPatch::default()
            },
            200,
        )
        .await
        .expect("update")
        .expect("user");
    assert_eq!(done.retiring_devices, ["p1"], "only live devices retire");
    let p1 = store.device("p1").await.expect("read").expect("device");
    assert_eq!((p1.retiring_at, p1.revoked_at), (Some(200), None));
    assert_eq!(
        store
            .device("other")
            .await
            .expect("read")
            .expect("device")
            .retiring_at,
        None,
        "another user's device is untouched"
    );
    let w1 = store.user("w1").await.expect("read").expect("user");
    assert_eq!((w1.role, w1.disabled), (Role::VillageCadre, true));
}

async fn a_password_change_ends_the_users_sessions_but_the_callers_and_a_retiring_phones(
    store: &dyn Store,
) {
    seed_org(store).await;
    for (id, unit) in [("w1", G1), ("w2", G2)] {
        store
            .insert_user(&user(id, Role::GridWorker, unit))
            .await
            .expect("user");
    }
    for (id, owner, created_at) in [("p1", "w1", 1), ("p2", "w1", 2), ("other", "w2", 3)] {
        store
            .upsert_device(&device(id, owner, created_at))
            .await
            .expect("device");
    }
    // w1: sessions a and b on p1 (a rotated once), c on p2, and d whose tokens all expired.
    for (hash, device_id, family, expires_at, used_at) in [
        (1u8, "p1", "a", 1_000, Some(5)),
        (2, "p1", "a", 1_000, None),
        (3, "p1", "b", 1_000, None),
        (4, "p2", "c", 1_000, None),
        (5, "p2", "d", 9, None),
        (6, "other", "e", 1_000, None),
    ] {
        start_session(
            store,
            &RefreshToken {
                token_hash: vec![hash; 32],
                device_id: device_id.into(),
                family: family.into(),
                expires_at,
                used_at,
                replaces: None,
            },
        )
        .await;
    }
    let live = async |family: &str, device: &str| {
        store.session_live(family, device).await.expect("session")
    };
    assert!(live("a", "p1").await && live("c", "p2").await);
    assert!(!live("a", "p2").await, "a session is its device's");
    assert!(!live("nope", "p1").await);

    let done = store
        .update_user(
            "w1",
            &UserPatch {
                display_name: Some("李娜".into()),
                password_hash: Some("$argon2id$new".into()),
                keep_session: Some("b".into()),
                // The same role and unit again, and enabling an enabled user: no change.
                role: Some(Role::GridWorker),
                org_unit_id: Some(G1.into()),
                disabled: Some(false),
            },
            10,
        )
        .await
        .expect("update")
        .expect("user");
    assert!(done.retiring_devices.is_empty());
    assert_eq!(done.ended_sessions, 2, "a and c; d had expired");
    let w1 = store.user("w1").await.expect("read").expect("user");
    assert_eq!(
        (w1.display_name.as_str(), w1.password_hash.as_str()),
        ("李娜", "$argon2id$new")
    );
    assert!(!live("a", "p1").await && !live("c", "p2").await && !live("d", "p2").await);
    assert!(live("b", "p1").await, "the session kept");
    assert!(live("e", "other").await, "another user's session");
    for id in ["p1", "p2"] {
        let d = store.device(id).await.expect("read").expect("device");
        assert_eq!((d.revoked_at, d.retiring_at), (None, None), "{id}");
    }

    // An admin's reset ends them all, but a retiring phone's, which still has to deliver: its
    // disabled user could not log it in again.
    store.retire_device("p2", 10).await.expect("retire");
    start_session(
        store,
        &RefreshToken {
            token_hash: vec![7; 32],
            device_id: "p2".into(),
            family: "delivering".into(),
            expires_at: 1_000,
            used_at: None,
            replaces: None,
        },
    )
    .await;
    let reset = store
        .update_user(
            "w1",
            &UserPatch {
                password_hash: Some("$argon2id$reset".into()),
                ..UserPatch::default()
            },
            11,
        )
        .await
        .expect("update")
        .expect("user");
    assert_eq!(reset.ended_sessions, 1);
    assert!(!live("b", "p1").await);
    assert!(live("delivering", "p2").await);
    let renamed = store
        .update_user(
            "w2",
            &UserPatch {
                display_name: Some("w2".into()),
                ..UserPatch::default()
            },
            12,
        )
        .await
        .expect("update")
        .expect("user");
    assert_eq!(renamed.ended_sessions, 0);
    assert!(live("e", "other").await);
    // Disabled with a new password in one go: the phone retires first, so it still delivers.
    let disabled = store
        .update_user(
            "w2",
            &UserPatch {
                disabled: Some(true),
                password_hash: Some("$argon2id$gone".into()),
                ..UserPatch::default()
            },
            13,
        )
        .await
        .expect("update")
        .expect("user");
    assert_eq!(
        (
            disabled.retiring_devices.as_slice(),
            disabled.ended_sessions
        ),
        (["other".to_owned()].as_slice(), 0)
    );
    assert!(live("e", "other").await);
}

async fn a_login_starts_no_session_once_the_password_it_checked_changed_or_the_account_or_device_ended(
    store: &dyn Store,
) {
    seed_org(store).await;
    for id in ["w1", "w2"] {
        store
            .insert_user(&user(id, Role::GridWorker, G1))
            .await
            .expect("user");
    }
    for (id, owner) in [("p1", "w1"), ("p2", "w1"), ("other", "w2")] {
        store
            .upsert_device(&device(id, owner, 1))
            .await
            .expect("device");
    }
    let token = |hash: u8, device_id: &str| RefreshToken {
        token_hash: vec![hash; 32],
        device_id: device_id.into(),
        family: format!("f{hash}"),
        expires_at: 1_000,
        used_at: None,
        replaces: None,
    };
    let checked = store
        .user("w1")
        .await
        .expect("read")
        .expect("user")
        .password_hash;
    let before_change = gridsync_server::clock::now();
    // A stale `now`: the change is dated when the user's devices are held, not before.
    store
        .update_user(
            "w1",
            &UserPatch {
                password_hash: Some("$argon2id$new".into()),
                ..UserPatch::default()
            },
            5,
        )
        .await
        .expect("update")
        .expect("user");
    let changed = store.revocations(0).await.expect("list").changed_passwords;
    assert!(
        changed
            .iter()
            .any(|c| c.user_id == "w1" && c.changed_at >= before_change),
        "{changed:?}"
    );

    let start = |token: RefreshToken, user: &'static str, hash: &'static str| async move {
        store
            .start_session(&token, user, hash)
            .await
            .expect("session")
    };
    assert_eq!(
        store
            .start_session(&token(1, "p1"), "w1", &checked)
            .await
            .expect("session"),
        SessionStart::PasswordChanged,
        "the login checked the old password"
    );
    let next = NextRefreshToken {
        token_hash: vec![9; 32],
        expires_at: 1_000,
    };
    assert_eq!(
        store
            .rotate_refresh_token(&[1; 32], &next, 10)
            .await
            .expect("rotate"),
        Rotation::Refused,
        "nothing was stored"
    );
    assert_eq!(
        start(token(2, "other"), "w1", "$argon2id$new").await,
        SessionStart::DeviceTaken
    );
    assert_eq!(
        start(token(3, "p1"), "w1", "$argon2id$new").await,
        SessionStart::Started
    );

    // A login that read the device before it was revoked registers it again as it read it.
    let read = store.device("p2").await.expect("read").expect("device");
    assert!(store.revoke_device("p2", 20).await.expect("revoke"));
    store
        .upsert_device(&Device {
            name: "renamed".into(),
            ..read
        })
        .await
        .expect("upsert");
    let p2 = store.device("p2").await.expect("read").expect("device");
    assert_eq!(
        (p2.revoked_at, p2.name.as_str()),
        (Some(20), "phone"),
        "the revoked device stays as it was"
    );
    assert_eq!(
        start(token(4, "p2"), "w1", "$argon2id$new").await,
        SessionStart::DeviceRevoked
    );
    // Nor does registering another user's device give it to this one.
    store
        .upsert_device(&device("other", "w1", 30))
        .await
        .expect("upsert");
    assert_eq!(
        store
            .device("other")
            .await
            .expect("read")
            .expect("device")
            .user_id,
        "w2"
    );

    store
        .update_user(
            "w1",
            &UserPatch {
                disabled: Some(true),
                ..UserPatch::default()
            },
            40,
        )
        .await
        .expect("update")
        .expect("user");
    assert_eq!(
        start(token(5, "p1"), "w1", "$argon2id$new").await,
        SessionStart::AccountDisabled
    );
}

async fn updating_an_unknown_user_or_to_an_unknown_unit_changes_nothing(store: &dyn Store) {
    seed_org(store).await;
    store
        .insert_user(&user("w1", Role::GridWorker, G1))
        .await
        .expect("user");
    store
        .upsert_device(&device("p1", "w1", 1))
        .await
        .expect("device");
    assert_eq!(
        store
            .update_user("nobody", &UserPatch::default(), 5)
            .await
            .expect("update"),
        None
    );
    let missing_unit = store
        .update_user(
            "w1",
            &UserPatch {
                org_unit_id: Some("gone".into()),
                ..UserPatch::default()
            },
            5,
        )
        .await;
    assert!(
        matches!(missing_unit, Err(StoreError::NotFound(_))),
        "{missing_unit:?}"
    );
    assert_eq!(
        store
            .user("w1")
            .await
            .expect("read")
            .expect("user")
            .org_unit_id,
        G1
    );
    assert_eq!(
        store
            .device("p1")
            .await
            .expect("read")
            .expect("device")
            .revoked_at,
        None,
        "the failed update revoked nothing"
    );
}

async fn devices_of_a_user_are_theirs_only(store: &dyn Store) {
    seed_org(store).await;
    store
        .insert_user(&user("w1", Role::GridWorker, G1))
        .await
        .expect("user");
    store
        .insert_user(&user("w2", Role::GridWorker, G2))
        .await
        .expect("user");
    store
        .upsert_device(&device("b", "w1", 2))
        .await
        .expect("device");
    store
        .upsert_device(&device("a", "w1", 3))
        .await
        .expect("device");
    store
        .upsert_device(&device("c", "w2", 1))
        .await
        .expect("device");
    store.revoke_device("a", 9).await.expect("revoke");
    let ids = |ds: Vec<Device>| ds.into_iter().map(|d| d.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.devices_of_user("w1").await.expect("devices")),
        ["b", "a"]
    );
    assert!(
        store
            .devices_of_user("nobody")
            .await
            .expect("devices")
            .is_empty()
    );
}

async fn the_audit_page_filters_pages_newest_first_and_counts(store: &dyn Store) {
    let doc = DocId::from_u128(77);
    for i in 0..10_i64 {
        store
            .audit(&AuditEntry {
                at: 1_000 + i,
                user_id: Some(if i % 2 == 0 { "admin" } else { "o1" }.into()),
                device_id: None,
                action: if i < 5 { "user_create" } else { "read_report" }.into(),
                doc_id: (i >= 5).then_some(doc),
                detail: json!({ "i": i }),
            })
            .await
            .expect("audit");
    }
    let at = |q: &AuditQuery| {
        let q = q.clone();
        async move {
            let page = store.audit_page(&q).await.expect("page");
            (
                page.items
                    .iter()
                    .map(|r| r.entry.at - 1_000)
                    .collect::<Vec<_>>(),
                page.total,
            )
        }
    };
    let all = AuditQuery {
        limit: 100,
        ..AuditQuery::default()
    };
    assert_eq!(at(&all).await, ((0..10).rev().collect(), 10));

    let page = store
        .audit_page(&AuditQuery {
            limit: 3,
            ..all.clone()
        })
        .await
        .expect("page");
    assert_eq!(page.items.len(), 3);
    assert_eq!(page.total, 10);
    let next = AuditQuery {
        before_id: Some(page.items[2].id),
        limit: 3,
        ..all.clone()
    };
    assert_eq!(at(&next).await, (vec![6, 5, 4], 10));

    let by_user = AuditQuery {
        user_id: Some("o1".into()),
        ..all.clone()
    };
    assert_eq!(at(&by_user).await, (vec![9, 7, 5, 3, 1], 5));
    let by_action_and_time = AuditQuery {
        action: Some("user_create".into()),
        from: Some(1_001),
        to: Some(1_004),
        ..all.clone()
    };
    assert_eq!(at(&by_action_and_time).await, (vec![3, 2, 1], 3));
    let by_doc = AuditQuery {
        doc_id: Some(doc),
        user_id: Some("admin".into()),
        ..all.clone()
    };
    assert_eq!(at(&by_doc).await, (vec![8, 6], 2));

    for nasty in [
        "'",
        "%",
        "_",
        "\\",
        "\"; DROP TABLE users; --",
        "' OR '1'='1",
    ] {
        for q in [
            AuditQuery {
                user_id: Some(nasty.into()),
                ..all.clone()
            },
            AuditQuery {
                action: Some(nasty.into()),
                ..all.clone()
            },
        ] {
            assert_eq!(at(&q).await, (vec![], 0), "{nasty}");
        }
    }
    assert_eq!(at(&all).await.1, 10, "nothing was broken");
}
fn at(mut w: Writer, now: i64) -> Writer {
    w.now = now;
    w
}

async fn push_one(store: &dyn Store, w: &Writer, doc: &mut gridsync_core::report::ReportDoc) {
    let result = ingest(store, w, &push_all(&mut [doc]))
        .await
        .expect("ingest");
    assert!(is_acked(&result.docs[0].outcome), "{:?}", result.docs[0]);
}

fn list(limit: i64) -> ReportQuery {
    ReportQuery {
        limit,
        ..ReportQuery::default()
    }
}

async fn ids(store: &dyn Store, scope: &Scope, q: &ReportQuery) -> Vec<u128> {
    let page = store.list_reports(scope, q).await.expect("list");
    assert_eq!(page.total, page.items.len() as i64, "one page holds all");
    page.items.iter().map(|r| r.id.as_u128()).collect()
}

async fn report_lists_filter_in_sql_within_the_scope_and_page_newest_first(store: &dyn Store) {
    seed_org(store).await;
    let w1 = writer("w1", Role::GridWorker, G1, "p1");
    let w2 = writer("w2", Role::GridWorker, G2, "p2");
    let w3 = writer("w3", Role::GridWorker, G3, "p3");
    // Reports 1..=6 in g1, g2 and g3, each updated one second after the last.
    for (n, w, grid) in [
        (1, &w1, G1),
        (2, &w2, G2),
        (3, &w3, G3),
        (4, &w1, G1),
        (5, &w2, G2),
    ] {
        let mut doc = dispute(n, grid, &w.user_id);
        push_one(store, &at(w.clone(), 1_000 + n as i64), &mut doc).await;
    }
    let mut case = drug_case(6, G1, "w1", "w1");
    push_one(store, &at(w1.clone(), 1_006), &mut case).await;

    let admin = Scope::for_role("a", Role::DistrictAdmin, "/d/");
    assert_eq!(ids(store, &admin, &list(50)).await, [6, 5, 4, 3, 2, 1]);
    let cadre = Scope::for_role("c1", Role::VillageCadre, path_of("v1"));
    assert_eq!(ids(store, &cadre, &list(50)).await, [5, 4, 2, 1]);
    let worker = Scope::for_role("w1", Role::GridWorker, path_of(G1));
    assert_eq!(ids(store, &worker, &list(50)).await, [6, 4, 1]);
    let officer = Scope::for_role("o1", Role::DrugControlOfficer, path_of("t1"));
    assert_eq!(ids(store, &officer, &list(50)).await, [6]);

    let q = |f: fn(&mut ReportQuery)| {
        let mut q = list(50);
        f(&mut q);
        q
    };
    assert_eq!(
        ids(
            store,
            &admin,
            &q(|q| q.kind = Some("drug_control_case".into()))
        )
        .await,
        [6]
    );
    assert_eq!(
        ids(
            store,
            &admin,
            &q(|q| q.org_path = Some("/d/t1/v1/g2/".into()))
        )
        .await,
        [5, 2]
    );
    assert_eq!(
        ids(store, &admin, &q(|q| q.updated_since = Some(1_004))).await,
        [6, 5, 4]
    );
    assert_eq!(
        ids(
            store,
            &admin,
            &q(|q| q.review_state = Some("approved".into()))
        )
        .await,
        Vec::<u128>::new()
    );
    assert_eq!(
        ids(store, &admin, &q(|q| q.has_conflicts = Some(true))).await,
        Vec::<u128>::new()
    );
    assert_eq!(
        ids(
            store,
            &cadre,
            &q(|q| q.kind = Some("drug_control_case".into()))
        )
        .await,
        Vec::<u128>::new(),
        "filters narrow the scope, never widen it"
    );

    // Pages of two, walked to the end: every report once, in order, with the total each time.
    let mut seen = Vec::new();
    let mut query = list(2);
    loop {
        let page = store.list_reports(&admin, &query).await.expect("page");
        assert_eq!(page.total, 6);
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|r| r.id.as_u128()));
        if !page.more {
            break;
        }
        let last = page.items.last().expect("a page with more is not empty");
        query.after = Some((last.updated_at, last.id.to_string()));
    }
    assert_eq!(seen, [6, 5, 4, 3, 2, 1]);
}

async fn a_search_finds_text_with_sql_metacharacters_literally(store: &dyn Store) {
    seed_org(store).await;
    let w1 = writer("w1", Role::GridWorker, G1, "p1");
    let texts = [
        "O'Brien 100% sure",
        "under_score",
        "back\\slash",
        "\"; DROP TABLE documents; --",
        "Plain Words",
    ];
    for (n, text) in texts.iter().enumerate() {
        let mut doc = dispute(100 + n as u128, G1, "w1");
        doc.set_field("description", &json!(text), &Editor::new("w1", 1_002))
            .expect("set");
        push_one(store, &w1, &mut doc).await;
    }
    let admin = Scope::for_role("a", Role::DistrictAdmin, "/d/");
    let search = |text: &str| {
        let mut q = list(50);
        q.q = Some(text.to_owned());
        q
    };
    for (text, expect) in [
        ("o'brien", vec![100]),
        ("100%", vec![100]),
        ("%", vec![100]),
        ("O%sure", vec![]),
        ("under_score", vec![101]),
        ("O_Brien", vec![]),
        ("\\", vec![102]),
        ("back\\slash", vec![102]),
        ("\"; DROP TABLE documents; --", vec![103]),
        ("plain words", vec![104]),
        ("nothing like it", vec![]),
    ] {
        let mut found = ids(store, &admin, &search(text)).await;
        found.sort();
        assert_eq!(found, expect, "q = {text:?}");
    }
    assert_eq!(
        ids(store, &admin, &list(50)).await.len(),
        5,
        "nothing broken"
    );
}

async fn a_reader_without_clearance_searches_only_the_redacted_text(store: &dyn Store) {
    seed_org(store).await;
    let mut doc = dispute(7, G1, "w1");
    doc.set_field("parties", &json!("张三与李四"), &Editor::new("w1", 1_002))
        .expect("set");
    push_one(store, &writer("w1", Role::GridWorker, G1, "p1"), &mut doc).await;
    let staff = Scope::for_role("t", Role::TownshipStaff, path_of("t1"));
    let mut q = list(50);
    q.q = Some("张三".into());
    assert_eq!(ids(store, &staff, &q).await, [7]);
    q.q_redacted = true;
    assert_eq!(ids(store, &staff, &q).await, Vec::<u128>::new());
    q.q = Some("村口".into());
    assert_eq!(
        ids(store, &staff, &q).await,
        [7],
        "what is not sensitive is found"
    );
}

async fn setting_a_review_state_records_its_audit_entry(store: &dyn Store) {
    seed_org(store).await;
    let mut doc = dispute(8, G1, "w1");
    push_one(store, &writer("w1", Role::GridWorker, G1, "p1"), &mut doc).await;
    let entry = AuditEntry {
        at: 9,
        user_id: Some("c1".into()),
        device_id: None,
        action: "review".into(),
        doc_id: Some(doc.id()),
        detail: json!({"to": "approved"}),
    };
    assert!(
        store
            .set_review_state(&doc.id(), "approved", &entry)
            .await
            .expect("review")
    );
    let row = store.document(&doc.id()).await.expect("read").expect("row");
    assert_eq!(row.review_state, "approved");
    assert_eq!(
        store.audit_log(10).await.expect("audit"),
        std::slice::from_ref(&entry)
    );
    let admin = Scope::for_role("a", Role::DistrictAdmin, "/d/");
    let mut q = list(50);
    q.review_state = Some("approved".into());
    assert_eq!(ids(store, &admin, &q).await, [8]);
    assert!(
        !store
            .set_review_state(&DocId::from_u128(999), "approved", &entry)
            .await
            .expect("review"),
        "no such report"
    );
    assert_eq!(store.audit_log(10).await.expect("audit").len(), 1);
}

/// Report `id` in `grid`, whose `field` two users then write concurrently.
async fn conflicted(store: &dyn Store, id: u128, grid: &str, field: &str) {
    let mut doc = dispute(id, grid, "w");
    let w = Writer {
        user_id: "w".into(),
        device_id: None,
        scope: Scope::for_role("w", Role::DistrictAdmin, "/d/"),
        now: 1_000,
        hold_out_of_scope: false,
        via: Via::Direct,
    };
    push_one(store, &w, &mut doc).await;
    let mut other = doc.clone();
    doc.set_field(field, &json!("one"), &Editor::new("w", 2_000))
        .expect("set");
    other
        .set_field(field, &json!("two"), &Editor::new("x", 2_001))
        .expect("set");
    push_one(store, &w, &mut doc).await;
    let x = Writer {
        user_id: "x".into(),
        ..w
    };
    push_one(store, &x, &mut other).await;
}

async fn open_conflicts_are_listed_by_scope_and_fetched_by_id(store: &dyn Store) {
    seed_org(store).await;
    conflicted(store, 9, G1, "place").await;
    conflicted(store, 10, G3, "description").await;
    let admin = Scope::for_role("a", Role::DistrictAdmin, "/d/");
    let all = store
        .list_conflicts(
            &admin,
            &ConflictQuery {
                limit: 50,
                ..ConflictQuery::default()
            },
        )
        .await
        .expect("list");
    assert_eq!(all.total, 2);
    assert_eq!(
        all.items
            .iter()
            .map(|c| c.conflict.path.as_str())
            .collect::<Vec<_>>(),
        ["fields.place", "fields.description"]
    );
    assert_eq!(all.items[0].org_path, "/d/t1/v1/g1/");
    assert_eq!(all.items[0].kind, "dispute_check");

    let cadre = Scope::for_role("c1", Role::VillageCadre, path_of("v1"));
    let mine = store
        .list_conflicts(
            &cadre,
            &ConflictQuery {
                limit: 50,
                ..ConflictQuery::default()
            },
        )
        .await
        .expect("list");
    assert_eq!(mine.total, 1);
    assert_eq!(mine.items[0].conflict.doc_id, DocId::from_u128(9));

    let first = store
        .list_conflicts(
            &admin,
            &ConflictQuery {
                limit: 1,
                ..ConflictQuery::default()
            },
        )
        .await
        .expect("page");
    assert!(first.more);
    let second = store
        .list_conflicts(
            &admin,
            &ConflictQuery {
                limit: 1,
                after: Some(first.items[0].conflict.id),
                ..ConflictQuery::default()
            },
        )
        .await
        .expect("page");
    assert!(!second.more);
    assert_eq!(second.items, all.items[1..]);
    let by_org = store
        .list_conflicts(
            &admin,
            &ConflictQuery {
                limit: 50,
                org_path: Some("/d/s2/".into()),
                ..ConflictQuery::default()
            },
        )
        .await
        .expect("list");
    assert_eq!(by_org.items, all.items[1..]);

    let one = store
        .conflict(all.items[0].conflict.id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(one, all.items[0]);
    assert!(store.conflict(9_999).await.expect("read").is_none());
    let entry = AuditEntry {
        at: 1,
        user_id: Some("a".into()),
        device_id: None,
        action: "resolve_conflict".into(),
        doc_id: None,
        detail: json!({}),
    };
    assert!(
        !store
            .dismiss_flag(one.conflict.id, &entry)
            .await
            .expect("dismiss"),
        "concurrent values are resolved by a change, not dismissed"
    );
}

async fn a_dismissed_rule_flag_stays_dismissed_after_later_edits(store: &dyn Store) {
    seed_org(store).await;
    let admin_w = Writer {
        user_id: "w".into(),
        device_id: None,
        scope: Scope::for_role("w", Role::DistrictAdmin, "/d/"),
        now: 1_000,
        hold_out_of_scope: false,
        via: Via::Direct,
    };
    let mut doc = dispute(11, G1, "w");
    push_one(store, &admin_w, &mut doc).await;
    // One closes the dispute while another adds a mediation step, unseen by each other.
    let mut other = doc.clone();
    doc.set_field("status", &json!("resolved"), &Editor::new("w", 2_000))
        .expect("close");
    let step = serde_json::Map::from_iter([("method".to_owned(), json!("面谈"))]);
    other
        .append_log(&step, &Editor::new("x", 2_001))
        .expect("append");
    push_one(store, &admin_w, &mut doc).await;
    let x = Writer {
        user_id: "x".into(),
        ..admin_w.clone()
    };
    push_one(store, &x, &mut other).await;
    let flags = store.conflicts_of(&doc.id()).await.expect("conflicts");
    assert_eq!(flags.len(), 1, "{flags:?}");
    assert_eq!(flags[0].code, "mediation_step_after_resolved");
    assert!(
        store
            .document(&doc.id())
            .await
            .expect("read")
            .expect("row")
            .has_conflicts
    );

    let entry = AuditEntry {
        at: 3_000,
        user_id: Some("c1".into()),
        device_id: None,
        action: "resolve_conflict".into(),
        doc_id: Some(doc.id()),
        detail: json!({"note": "checked"}),
    };
    assert!(
        store
            .dismiss_flag(flags[0].id, &entry)
            .await
            .expect("dismiss")
    );
    assert!(
        !store
            .dismiss_flag(flags[0].id, &entry)
            .await
            .expect("again")
    );
    let row = store.document(&doc.id()).await.expect("read").expect("row");
    assert!(!row.has_conflicts);
    assert_eq!(store.audit_log(10).await.expect("audit"), [entry]);

    // A later edit finds the flag again in the history; it stays dismissed.
    doc.apply_changes(&other.changes_since(&[])).expect("merge");
    doc.set_field("agreement", &json!("和解"), &Editor::new("w", 4_000))
        .expect("edit");
    push_one(store, &admin_w, &mut doc).await;
    let flags = store.conflicts_of(&doc.id()).await.expect("conflicts");
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0].resolved_by.as_deref(), Some("c1"));
    assert!(
        !store
            .document(&doc.id())
            .await
            .expect("read")
            .expect("row")
            .has_conflicts
    );
}

async fn scopes_compare_org_paths_exactly_with_their_case_and_wildcards(store: &dyn Store) {
    seed_org(store).await;
    for (id, path) in [("G1", "/d/t1/v1/G1/"), ("g_", "/d/t1/v1/g_/")] {
        store
            .upsert_org_unit(&OrgUnit {
                id: id.into(),
                parent_id: Some("v1".into()),
                level: Level::Grid,
                name: id.into(),
                path: path.into(),
            })
            .await
            .expect("org unit");
    }
    let mut upper = dispute(51, "G1", "admin");
    let mut lower = dispute(52, G1, "admin");
    ingest(store, &admin(), &push_all(&mut [&mut upper, &mut lower]))
        .await
        .expect("ingest");
    for (grid, expected) in [(path_of(G1), 52), ("/d/t1/v1/G1/", 51)] {
        let mut replica = Replica::new();
        let scope = Scope::for_role("w", Role::GridWorker, grid);
        pull_all(store, &scope, None, &mut replica, 1 << 20).await;
        let ids: Vec<DocId> = replica.ids().copied().collect();
        assert_eq!(ids, vec![DocId::from_u128(expected)], "scope {grid}");
    }
    // A `_` in a scope's path is a character, not a wildcard.
    let mut replica = Replica::new();
    let scope = Scope::for_role("w", Role::GridWorker, "/d/t1/v1/g_/");
    pull_all(store, &scope, None, &mut replica, 1 << 20).await;
    assert_eq!(replica.ids().count(), 0);
}

async fn a_text_with_a_nul_character_is_refused_for_its_report_alone(store: &dyn Store) {
    seed_org(store).await;
    let mut bad = dispute(61, G1, "w1");
    bad.set_field("place", &json!("村\u{0}口"), &Editor::new("w1", 1_002))
        .expect("set");
    let mut good = dispute(62, G1, "w1");
    let result = ingest(
        store,
        &writer("w1", Role::GridWorker, G1, "p1"),
        &push_all(&mut [&mut bad, &mut good]),
    )
    .await
    .expect("ingest");
    assert!(matches!(
        &result.docs[0].outcome,
        PushOutcome::Rejected { code, .. } if code == "invalid_text"
    ));
    assert!(is_acked(&result.docs[1].outcome));
    assert!(store.document(&bad.id()).await.expect("read").is_none());
}

// Attachments: blob storage, uploads, links and orphan collection.

on_both_backends!(
    an_upload_in_chunks_becomes_a_linked_blob_only_when_complete_and_verified,
    an_upload_whose_bytes_do_not_hash_to_its_name_is_discarded,
    a_chunk_off_the_uploads_end_is_refused_and_stores_nothing,
    a_visible_blob_is_linked_without_upload_and_an_invisible_one_is_not,
    a_second_upload_of_stored_bytes_adds_no_blob,
);
on_both_test_stores!(collecting_orphans_deletes_stale_uploads_and_unlinked_blobs_only);

fn blob_bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

async fn seeded_dispute(store: &dyn Store, id: u128, grid: &str, user: &str, role: Role) -> DocId {
    let mut doc = dispute(id, grid, user);
    let result = ingest(
        store,
        &writer(user, role, grid, &format!("dev-{user}")),
        &push_all(&mut [&mut doc]),
    )
    .await
    .expect("ingest");
    assert!(result.docs.iter().all(|d| is_acked(&d.outcome)));
    doc.id()
}

fn chunk<'a>(
    doc: DocId,
    hash: &'a str,
    total: usize,
    offset: usize,
    bytes: &'a [u8],
    now: i64,
) -> UploadChunk<'a> {
    UploadChunk {
        doc_id: doc,
        hash,
        media_type: "image/jpeg",
        total: total as i64,
        offset: offset as i64,
        bytes,
        user_id: "w1",
        now,
    }
}

/// Uploads `bytes` whole in chunks of `step`, returning the last outcome.
async fn upload(
    store: &dyn Store,
    doc: DocId,
    bytes: &[u8],
    step: usize,
    now: i64,
) -> UploadOutcome {
    let hash = sha256_hex(bytes);
    let mut last = None;
    for (i, part) in bytes.chunks(step).enumerate() {
        last = Some(
            store
                .upload_chunk(&chunk(doc, &hash, bytes.len(), i * step, part, now))
                .await
                .expect("chunk"),
        );
    }
    last.expect("some bytes")
}

async fn an_upload_in_chunks_becomes_a_linked_blob_only_when_complete_and_verified(
    store: &dyn Store,
) {
    seed_org(store).await;
    let doc = seeded_dispute(store, 1, G1, "w1", Role::GridWorker).await;
    // Larger than a stored piece, so that pieces and ranges cross boundaries.
    let bytes = blob_bytes(BLOB_PIECE_BYTES * 2 + 1234, 1);
    let hash = sha256_hex(&bytes);
    let step = 100_000;
    let parts: Vec<&[u8]> = bytes.chunks(step).collect();
    for (i, part) in parts.iter().enumerate().take(parts.len() - 1) {
        let outcome = store
            .upload_chunk(&chunk(doc, &hash, bytes.len(), i * step, part, 10))
            .await
            .expect("chunk");
        assert_eq!(
            outcome,
            UploadOutcome::Partial {
                received: ((i + 1) * step) as i64
            }
        );
        assert_eq!(store.attachment(&doc, &hash).await.expect("link"), None);
        assert_eq!(store.read_blob(&hash, 0, 1).await.expect("read"), None);
    }
    let state = store
        .upload_state(&doc, &hash)
        .await
        .expect("state")
        .expect("upload");
    assert_eq!(
        (state.received, state.size),
        (((parts.len() - 1) * step) as i64, bytes.len() as i64)
    );
    let last = parts.len() - 1;
    let outcome = store
        .upload_chunk(&chunk(
            doc,
            &hash,
            bytes.len(),
            last * step,
            parts[last],
            11,
        ))
        .await
        .expect("last chunk");
    let UploadOutcome::Complete {
        attachment,
        new_blob,
    } = outcome
    else {
        panic!("not complete: {outcome:?}");
    };
    assert!(new_blob);
    assert_eq!(
        attachment,
        Attachment {
            doc_id: doc,
            hash: hash.clone(),
            media_type: "image/jpeg".into(),
            size: bytes.len() as i64,
            created_by: "w1".into(),
            created_at: 11,
        }
    );
    assert_eq!(store.upload_state(&doc, &hash).await.expect("state"), None);
    assert_eq!(
        store.attachments_of(&doc).await.expect("list"),
        vec![attachment]
    );
    let n = bytes.len() as i64;
    assert_eq!(
        store.read_blob(&hash, 0, n).await.expect("read"),
        Some(bytes.clone())
    );
    let (a, b) = (BLOB_PIECE_BYTES as i64 - 7, BLOB_PIECE_BYTES as i64 * 2 + 9);
    assert_eq!(
        store.read_blob(&hash, a, b).await.expect("range"),
        Some(bytes[a as usize..b as usize].to_vec())
    );
    let usage = store.blob_usage().await.expect("usage");
    assert_eq!(
        (usage.blobs, usage.bytes, usage.uploads, usage.upload_bytes),
        (1, n, 0, 0)
    );
}

async fn an_upload_whose_bytes_do_not_hash_to_its_name_is_discarded(store: &dyn Store) {
    seed_org(store).await;
    let doc = seeded_dispute(store, 1, G1, "w1", Role::GridWorker).await;
    let bytes = blob_bytes(5000, 2);
    let wrong = sha256_hex(b"other bytes");
    store
        .upload_chunk(&chunk(doc, &wrong, 5000, 0, &bytes[..3000], 10))
        .await
        .expect("first");
    let outcome = store
        .upload_chunk(&chunk(doc, &wrong, 5000, 3000, &bytes[3000..], 10))
        .await
        .expect("last");
    assert_eq!(outcome, UploadOutcome::HashMismatch);
    assert_eq!(store.upload_state(&doc, &wrong).await.expect("state"), None);
    assert_eq!(store.attachment(&doc, &wrong).await.expect("link"), None);
    assert_eq!(
        store.blob_usage().await.expect("usage"),
        BlobUsage::default()
    );
}

async fn a_chunk_off_the_uploads_end_is_refused_and_stores_nothing(store: &dyn Store) {
    seed_org(store).await;
    let doc = seeded_dispute(store, 1, G1, "w1", Role::GridWorker).await;
    let bytes = blob_bytes(3000, 3);
    let hash = sha256_hex(&bytes);
    // Nothing held: only offset 0 starts an upload.
    assert_eq!(
        store
            .upload_chunk(&chunk(doc, &hash, 3000, 1000, &bytes[1000..2000], 10))
            .await
            .expect("c"),
        UploadOutcome::WrongOffset { received: 0 }
    );
    assert_eq!(store.upload_state(&doc, &hash).await.expect("state"), None);
    store
        .upload_chunk(&chunk(doc, &hash, 3000, 0, &bytes[..1000], 10))
        .await
        .expect("c");
    for offset in [0, 500, 2000] {
        assert_eq!(
            store
                .upload_chunk(&chunk(
                    doc,
                    &hash,
                    3000,
                    offset,
                    &bytes[offset..offset + 500],
                    10
                ))
                .await
                .expect("c"),
            UploadOutcome::WrongOffset { received: 1000 },
            "offset {offset}"
        );
    }
    assert_eq!(store.blob_usage().await.expect("usage").upload_bytes, 1000);
    // Another declared size at offset 0 starts over.
    assert_eq!(
        store
            .upload_chunk(&chunk(doc, &hash, 2999, 0, &bytes[..10], 10))
            .await
            .expect("c"),
        UploadOutcome::Partial { received: 10 }
    );
    assert_eq!(store.blob_usage().await.expect("usage").upload_bytes, 10);
}

async fn a_visible_blob_is_linked_without_upload_and_an_invisible_one_is_not(store: &dyn Store) {
    seed_org(store).await;
    let d1 = seeded_dispute(store, 1, G1, "w1", Role::GridWorker).await;
    let d2 = seeded_dispute(store, 2, G1, "w1", Role::GridWorker).await;
    let d3 = seeded_dispute(store, 3, G3, "w3", Role::GridWorker).await;
    let bytes = blob_bytes(4000, 4);
    let hash = sha256_hex(&bytes);
    assert!(matches!(
        upload(store, d1, &bytes, 4000, 10).await,
        UploadOutcome::Complete { .. }
    ));
    let link = |doc: DocId, by: &str| Attachment {
        doc_id: doc,
        hash: hash.clone(),
        media_type: "image/jpeg".into(),
        size: 0,
        created_by: by.into(),
        created_at: 20,
    };
    let w1 = Scope::for_role("w1", Role::GridWorker, path_of(G1));
    let w3 = Scope::for_role("w3", Role::GridWorker, path_of(G3));
    let linked = store
        .link_visible_blob(&w1, &link(d2, "w1"))
        .await
        .expect("link");
    assert_eq!(
        linked,
        Some(Attachment {
            size: 4000,
            ..link(d2, "w1")
        })
    );
    // Already linked: the existing link comes back unchanged.
    let again = store
        .link_visible_blob(&w1, &link(d1, "w1"))
        .await
        .expect("link");
    assert_eq!(again.expect("link").created_at, 10);
    // w3 sees no report holding the blob: no link, though the blob is stored.
    assert_eq!(
        store
            .link_visible_blob(&w3, &link(d3, "w3"))
            .await
            .expect("link"),
        None
    );
    assert_eq!(store.attachment(&d3, &hash).await.expect("link"), None);
    assert_eq!(store.blob_usage().await.expect("usage").blobs, 1);
}

async fn a_second_upload_of_stored_bytes_adds_no_blob(store: &dyn Store) {
    seed_org(store).await;
    let d1 = seeded_dispute(store, 1, G1, "w1", Role::GridWorker).await;
    let d3 = seeded_dispute(store, 3, G3, "w3", Role::GridWorker).await;
    let bytes = blob_bytes(BLOB_PIECE_BYTES + 10, 5);
    assert!(matches!(
        upload(store, d1, &bytes, 70_000, 10).await,
        UploadOutcome::Complete { new_blob: true, .. }
    ));
    let before = store.blob_usage().await.expect("usage");
    let outcome = upload(store, d3, &bytes, 50_000, 20).await;
    assert!(
        matches!(
            outcome,
            UploadOutcome::Complete {
                new_blob: false,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(store.blob_usage().await.expect("usage"), before);
    let hash = sha256_hex(&bytes);
    assert!(store.attachment(&d3, &hash).await.expect("link").is_some());
}

async fn collecting_orphans_deletes_stale_uploads_and_unlinked_blobs_only(t: &TestStore) {
    let store = t.store.as_ref();
    seed_org(store).await;
    let w1 = writer("w1", Role::GridWorker, G1, "dev-w1");
    let kept = blob_bytes(3000, 6);
    let unlinked = blob_bytes(3000, 7);
    let young = blob_bytes(3000, 8);
    let mut doc = dispute(1, G1, "w1");
    for bytes in [&kept, &unlinked, &young] {
        attach(&mut doc, "w1", "site_photos", "image/jpeg", bytes);
    }
    ingest(store, &w1, &push_all(&mut [&mut doc]))
        .await
        .expect("ingest");
    let d1 = doc.id();
    for (bytes, now) in [(&kept, 100), (&unlinked, 100), (&young, 300)] {
        assert!(matches!(
            upload(store, d1, bytes, 3000, now).await,
            UploadOutcome::Complete { .. }
        ));
    }
    store
        .put_thumbnail(&sha256_hex(&unlinked), b"jpeg", 100)
        .await
        .expect("thumbnail");
    // The report detaches two: the link made before the grace period goes, the young one stays.
    for bytes in [&unlinked, &young] {
        doc.detach(&sha256_hex(bytes), &Editor::new("w1", 1_003))
            .expect("detach");
    }
    ingest(store, &w1, &push_all(&mut [&mut doc]))
        .await
        .expect("ingest");
    let stale = blob_bytes(3000, 9);
    let fresh = blob_bytes(3000, 10);
    let (stale_hash, fresh_hash) = (sha256_hex(&stale), sha256_hex(&fresh));
    store
        .upload_chunk(&chunk(d1, &stale_hash, 3000, 0, &stale[..1000], 100))
        .await
        .expect("c");
    store
        .upload_chunk(&chunk(d1, &fresh_hash, 3000, 0, &fresh[..1000], 300))
        .await
        .expect("c");

    let collected = store.collect_orphans(200).await.expect("collect");
    assert_eq!(
        collected,
        OrphansCollected {
            uploads: 1,
            links: 1,
            blobs: 1
        }
    );
    assert_eq!(
        store.upload_state(&d1, &stale_hash).await.expect("state"),
        None
    );
    assert!(
        store
            .upload_state(&d1, &fresh_hash)
            .await
            .expect("state")
            .is_some()
    );
    assert_eq!(
        store
            .read_blob(&sha256_hex(&unlinked), 0, 1)
            .await
            .expect("read"),
        None
    );
    assert!(
        store
            .read_blob(&sha256_hex(&young), 0, 1)
            .await
            .expect("read")
            .is_some()
    );
    assert_eq!(
        store
            .read_blob(&sha256_hex(&kept), 0, 3000)
            .await
            .expect("read"),
        Some(kept.clone())
    );
    let usage = store.blob_usage().await.expect("usage");
    assert_eq!(
        (usage.blobs, usage.uploads, usage.upload_bytes),
        (2, 1, 1000)
    );
    // Collecting again finds nothing more.
    assert_eq!(
        store.collect_orphans(200).await.expect("collect"),
        OrphansCollected::default()
    );
    // The collected blob's thumbnail went with it: the same bytes uploaded again have none.
    assert!(matches!(
        upload(store, d1, &unlinked, 3000, 400).await,
        UploadOutcome::Complete { new_blob: true, .. }
    ));
    assert_eq!(
        store
            .thumbnail(&d1, &sha256_hex(&unlinked))
            .await
            .expect("thumbnail"),
        None
    );
}

async fn a_migrated_database_passes_the_migration_check(store: &dyn Store) {
    store
        .check_migrations()
        .await
        .expect("every migration is applied");
    // Migrating again changes nothing the check could see.
    store.migrate().await.expect("migrate again");
    store
        .check_migrations()
        .await
        .expect("still every migration");
}

async fn the_schema_registry_starts_with_the_built_in_kinds_and_publishes_a_draft_once(
    store: &dyn Store,
) {
    let rows = store.schemas().await.expect("schemas");
    let builtin: Vec<(&str, u32, SchemaState, &str)> = rows
        .iter()
        .map(|r| (r.kind.as_str(), r.version, r.state, r.source.as_str()))
        .collect();
    assert_eq!(
        builtin,
        [
            ("dispute_check", 1, SchemaState::Published, "builtin"),
            ("drug_control_case", 1, SchemaState::Published, "builtin"),
            ("drug_visit_task", 1, SchemaState::Published, "builtin"),
            ("satisfaction_canvass", 1, SchemaState::Published, "builtin"),
            ("task", 1, SchemaState::Published, "builtin"),
        ]
    );
    // Migrating again writes nothing twice and leaves the revision alone.
    let revision = store.catalogue_revision().await.expect("revision");
    store.migrate().await.expect("migrate again");
    assert_eq!(store.schemas().await.expect("schemas"), rows);
    assert_eq!(
        store.catalogue_revision().await.expect("revision"),
        revision
    );

    let visit = forms::anti_fraud_visit();
    let audit = |action: &str| AuditEntry {
        at: 1_800_000_000,
        user_id: Some("admin".into()),
        device_id: None,
        action: action.into(),
        doc_id: None,
        detail: json!({}),
    };
    let draft = NewDraft {
        schema: &visit,
        source: "xlsx",
        by: Some("admin"),
        at: 1_800_000_000,
    };
    store
        .save_draft(&draft, &audit("schema_draft"))
        .await
        .expect("draft");
    store
        .save_draft(&draft, &audit("schema_draft"))
        .await
        .expect("a draft is replaced");
    assert_eq!(
        store.catalogue_revision().await.expect("revision"),
        revision,
        "a draft is not in the catalogue"
    );
    let stale = Publication {
        kind: "anti_fraud_visit",
        version: 1,
        by: Some("admin"),
        at: 1_800_000_001,
        seen_revision: revision + 1,
    };
    assert!(matches!(
        store.publish_schema(&stale, &audit("schema_publish")).await,
        Err(StoreError::Changed(_))
    ));
    let fresh = Publication {
        seen_revision: revision,
        ..stale
    };
    assert!(
        store
            .publish_schema(&fresh, &audit("schema_publish"))
            .await
            .expect("publish")
    );
    let published = store.catalogue_revision().await.expect("revision");
    assert_ne!(published, revision);
    let fresh = Publication {
        seen_revision: published,
        ..fresh
    };
    assert!(
        !store
            .publish_schema(&fresh, &audit("schema_publish"))
            .await
            .expect("publish again"),
        "only a draft is published"
    );
    assert!(matches!(
        store.save_draft(&draft, &audit("schema_draft")).await,
        Err(StoreError::Duplicate(_))
    ));
    let row = store
        .stored_schema("anti_fraud_visit", 1)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(row.state, SchemaState::Published);
    assert_eq!(row.published_by.as_deref(), Some("admin"));
    assert_eq!(row.schema().expect("loads"), visit);

    assert!(
        store
            .retire_schema("anti_fraud_visit", 1, &audit("schema_retire"))
            .await
            .expect("retire")
    );
    assert!(
        !store
            .retire_schema("anti_fraud_visit", 1, &audit("schema_retire"))
            .await
            .expect("retire again")
    );
    assert!(
        !store
            .discard_draft("anti_fraud_visit", 1, &audit("schema_discard"))
            .await
            .expect("discard"),
        "a retired version is never deleted"
    );
    let actions: Vec<String> = store
        .audit_log(10)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "schema_retire",
            "schema_publish",
            "schema_draft",
            "schema_draft"
        ]
    );
}

/// October 2026 under `org_path`.
fn october_under(org_path: &str) -> Period {
    Period {
        org_path: org_path.into(),
        from: "2026-10-01".into(),
        to: "2026-10-31".into(),
    }
}

async fn the_index_counts_the_questions_each_reports_own_version_marks(store: &dyn Store) {
    seed_org(store).await;
    // Version 2 asks about petitions too, and no longer counts the services question.
    let mut v2 = serde_json::to_value(registry().get("satisfaction_canvass", 1).unwrap()).unwrap();
    v2["version"] = json!(2);
    let fields = v2["fields"].as_array_mut().unwrap();
    let services = fields
        .iter_mut()
        .find(|f| f["id"] == "satisfaction_services")
        .unwrap();
    services.as_object_mut().unwrap().remove("index");
    let mut petitions = services.clone();
    petitions["id"] = json!("satisfaction_petitions");
    petitions["index"] = json!("satisfaction");
    fields.push(petitions);
    publish_schema(store, v2).await;

    let interview = |id: u128, version: u32, answers: serde_json::Value| {
        let mut fields = json!({"household_type": "migrant", "canvasser": "admin",
            "interviewed_at": "2026-10-15T10:00:00+08:00", "safety_overall": "4"});
        for (k, v) in object(answers) {
            fields[k] = v;
        }
        versioned_report(id, "satisfaction_canvass", version, G1, fields)
    };
    let mut docs = [
        // Version 1: the police at 2, not satisfied; the services alone at 5, satisfied.
        interview(1, 1, json!({"satisfaction_police": "2"})),
        interview(2, 1, json!({"satisfaction_services": "5"})),
        // Version 2: police 3 and petitions 5, a mean of 4, satisfied; the services alone no
        // longer count, so the interview answered no satisfaction question.
        interview(
            3,
            2,
            json!({"satisfaction_police": "3", "satisfaction_petitions": "5"}),
        ),
        interview(
            4,
            2,
            json!({"satisfaction_services": "5", "satisfaction_petitions": "dont_know"}),
        ),
    ];
    let mut refs: Vec<_> = docs.iter_mut().collect();
    ingest_published(store, &admin(), &push_all(&mut refs)).await;

    let everything = Scope::for_role("admin", Role::DistrictAdmin, "/d/");
    let counts = store
        .canvass_counts(&everything, &october_under("/d/"))
        .await
        .expect("canvass counts");
    assert_eq!(
        counts,
        [CanvassCounts {
            org_path: path_of(G1).into(),
            interviews: 4,
            satisfaction_answered: 3,
            satisfied: 2,
            safety_answered: 4,
            safe: 4,
        }]
    );
}

async fn a_published_kinds_reports_fall_on_the_day_they_were_stored_in_china(store: &dyn Store) {
    seed_org(store).await;
    publish_schema(store, street_patrol()).await;
    // Stored at 16:30 UTC on 14 October: half past midnight on the 15th in China (UTC+8); and a
    // second before midnight of the 14th there.
    for (id, now) in [(1, 1_791_995_400), (2, 1_791_993_599)] {
        let mut doc = versioned_report(id, "street_patrol", 1, G1, json!({"place": "桥头"}));
        let writer = Writer { now, ..admin() };
        ingest_published(store, &writer, &push_all(&mut [&mut doc])).await;
    }
    let everything = Scope::for_role("admin", Role::DistrictAdmin, "/d/");
    let on = |day: &str| LedgerQuery {
        kind: "street_patrol".into(),
        org_path: "/d/".into(),
        from: Some(day.into()),
        to: Some(day.into()),
        after: None,
        limit: 10,
    };
    let ids = |rows: Vec<gridsync_server::store::DocumentRow>| -> Vec<u128> {
        rows.iter().map(|r| r.id.as_u128()).collect()
    };
    let fifteenth = store.ledger_page(&everything, &on("2026-10-15")).await;
    assert_eq!(ids(fifteenth.expect("ledger")), [1]);
    let fourteenth = store.ledger_page(&everything, &on("2026-10-14")).await;
    assert_eq!(ids(fourteenth.expect("ledger")), [2]);
}

async fn any_kind_is_counted_per_org_path_and_status_within_the_scope(store: &dyn Store) {
    seed_org(store).await;
    publish_schema(store, street_patrol()).await;
    publish_schema(store, home_visit()).await;
    // Stored on 15 October 2026 in China, but the last patrol in January 2027.
    let (october, january) = (1_791_995_400, 1_800_000_000);
    let reports = [
        (
            1,
            "street_patrol",
            G1,
            json!({"place": "桥头", "outcome": "handled"}),
            october,
        ),
        (
            2,
            "street_patrol",
            G1,
            json!({"place": "桥头", "outcome": "handled"}),
            october,
        ),
        (
            3,
            "street_patrol",
            G1,
            json!({"place": "菜场", "outcome": "fine"}),
            october,
        ),
        (4, "street_patrol", G2, json!({"place": "学校"}), october),
        (
            5,
            "street_patrol",
            G3,
            json!({"place": "车站", "outcome": "handled"}),
            october,
        ),
        (
            6,
            "street_patrol",
            G1,
            json!({"place": "桥头", "outcome": "fine"}),
            january,
        ),
        (
            7,
            "home_visit",
            G1,
            json!({"caseworker": "w1", "stage": "done"}),
            october,
        ),
        (
            8,
            "home_visit",
            G1,
            json!({"caseworker": "w2", "stage": "planned"}),
            october,
        ),
        (
            9,
            "dispute_check",
            G1,
            json!({"found_on": "2026-10-02", "status": "reported"}),
            october,
        ),
    ];
    for (id, kind, grid, fields, now) in reports {
        let mut doc = versioned_report(id, kind, 1, grid, fields);
        let writer = Writer { now, ..admin() };
        ingest_published(store, &writer, &push_all(&mut [&mut doc])).await;
    }
    let count = |scope: Scope, kind: &'static str, under: &'static str| async move {
        let mut counts = store
            .kind_counts(&scope, kind, &october_under(under))
            .await
            .expect("kind counts");
        counts.sort_by(|a, b| (&a.org_path, &a.status).cmp(&(&b.org_path, &b.status)));
        counts
            .into_iter()
            .map(|c| (c.org_path, c.status, c.count))
            .collect::<Vec<_>>()
    };
    let cell = |grid: &str, status: Option<&str>, n: i64| {
        (path_of(grid).to_owned(), status.map(str::to_owned), n)
    };
    let admin_scope = || Scope::for_role("admin", Role::DistrictAdmin, "/d/");
    assert_eq!(
        count(admin_scope(), "street_patrol", "/d/").await,
        [
            cell(G3, Some("handled"), 1),
            cell(G1, Some("fine"), 1),
            cell(G1, Some("handled"), 2),
            cell(G2, None, 1),
        ]
    );
    // Under t1 only; and a cadre of v1 counts the same, the street being outside the scope.
    let t1 = [
        cell(G1, Some("fine"), 1),
        cell(G1, Some("handled"), 2),
        cell(G2, None, 1),
    ];
    assert_eq!(
        count(admin_scope(), "street_patrol", path_of("t1")).await,
        t1
    );
    let cadre = Scope::for_role("c1", Role::VillageCadre, path_of("v1"));
    assert_eq!(count(cadre.clone(), "street_patrol", "/d/").await, t1);
    // A restricted kind: the assigned worker counts their own visit, the cadre none, the
    // officer and the admin both.
    let worker = Scope::for_role("w1", Role::GridWorker, path_of(G1));
    assert_eq!(
        count(worker, "home_visit", "/d/").await,
        [cell(G1, Some("done"), 1)]
    );
    assert_eq!(count(cadre, "home_visit", "/d/").await, []);
    let both = [cell(G1, Some("done"), 1), cell(G1, Some("planned"), 1)];
    let officer = Scope::for_role("o1", Role::DrugControlOfficer, path_of("t1"));
    assert_eq!(count(officer, "home_visit", "/d/").await, both);
    assert_eq!(count(admin_scope(), "home_visit", "/d/").await, both);
    // A built-in kind is counted the same way, by its own date.
    assert_eq!(
        count(admin_scope(), "dispute_check", "/d/").await,
        [cell(G1, Some("reported"), 1)]
    );
    assert_eq!(
        store
            .kind_counts(&admin_scope(), "no_such_kind", &october_under("/d/"))
            .await
            .expect("kind counts"),
        Vec::<KindCounts>::new()
    );
}

/// One canvass interview of [`canvass_figures_read_whole_months_from_roll_ups_and_agree_with_each_interview`].
#[derive(Clone)]
struct Interview {
    id: u128,
    grid: &'static str,
    day: &'static str,
    police: &'static str,
    worries: Vec<&'static str>,
}

impl Interview {
    fn fields(&self) -> serde_json::Value {
        json!({"household_type": "migrant", "canvasser": "admin",
            "interviewed_at": format!("{}T10:00:00+08:00", self.day),
            "satisfaction_police": self.police, "safety_overall": "4", "worries": self.worries})
    }
}

/// The canvass counts and worries of `interviews` in `period` for a scope under `prefix`,
/// counted one interview at a time.
fn count_each(
    interviews: &[Interview],
    prefix: &str,
    period: &Period,
) -> (Vec<CanvassCounts>, Vec<(String, i64)>) {
    let mut counts = std::collections::BTreeMap::<String, CanvassCounts>::new();
    let mut worries = std::collections::BTreeMap::<String, i64>::new();
    for i in interviews {
        let path = path_of(i.grid);
        let within = i.day >= period.from.as_str() && i.day <= period.to.as_str();
        if !within || !path.starts_with(prefix) || !path.starts_with(&period.org_path) {
            continue;
        }
        let c = counts.entry(path.to_owned()).or_default();
        c.org_path = path.to_owned();
        c.interviews += 1;
        if let Ok(police) = i.police.parse::<i64>() {
            c.satisfaction_answered += 1;
            c.satisfied += i64::from(police >= 4);
        }
        c.safety_answered += 1;
        c.safe += 1;
        for w in &i.worries {
            *worries.entry((*w).to_owned()).or_default() += 1;
        }
    }
    (
        counts.into_values().collect(),
        worries.into_iter().collect(),
    )
}

async fn canvass_figures_read_whole_months_from_roll_ups_and_agree_with_each_interview(
    store: &dyn Store,
) {
    seed_org(store).await;
    let mut interviews = vec![
        Interview {
            id: 1,
            grid: G1,
            day: "2026-09-30",
            police: "5",
            worries: vec!["fraud"],
        },
        Interview {
            id: 2,
            grid: G1,
            day: "2026-10-01",
            police: "2",
            worries: vec![],
        },
        Interview {
            id: 3,
            grid: G2,
            day: "2026-10-15",
            police: "5",
            worries: vec!["fraud", "traffic"],
        },
        Interview {
            id: 4,
            grid: G3,
            day: "2026-10-31",
            police: "dont_know",
            worries: vec!["traffic"],
        },
        Interview {
            id: 5,
            grid: G1,
            day: "2026-11-30",
            police: "4",
            worries: vec!["disputes"],
        },
        Interview {
            id: 6,
            grid: G3,
            day: "2026-12-01",
            police: "1",
            worries: vec!["fraud"],
        },
        Interview {
            id: 7,
            grid: G2,
            day: "2027-02-28",
            police: "4",
            worries: vec![],
        },
    ];
    let mut docs: Vec<_> = interviews
        .iter()
        .map(|i| versioned_report(i.id, "satisfaction_canvass", 1, i.grid, i.fields()))
        .collect();
    let mut refs: Vec<_> = docs.iter_mut().collect();
    ingest_published(store, &admin(), &push_all(&mut refs)).await;

    let period = |org: &str, from: &str, to: &str| Period {
        org_path: org.into(),
        from: from.into(),
        to: to.into(),
    };
    let district = Scope::for_role("admin", Role::DistrictAdmin, "/d/");
    let township = Scope::for_role("s1", Role::TownshipStaff, path_of("t1"));
    let drug = Scope::for_role("o1", Role::DrugControlOfficer, "/d/");
    let t1 = path_of("t1");
    let questions = [
        (&district, period("/d/", "2026-09-15", "2026-12-10")),
        (&district, period("/d/", "2026-10-01", "2026-10-31")),
        (&district, period("/d/", "2026-10-02", "2026-10-30")),
        (&district, period("/d/", "2026-01-01", "2026-12-31")),
        (&district, period("/d/", "2026-11-01", "2026-11-29")),
        (&district, period("/d/", "2027-02-01", "2027-02-28")),
        (&district, period(t1, "2026-09-01", "2026-11-30")),
        (&township, period("/d/", "2026-09-01", "2026-12-31")),
        (&township, period(path_of(G2), "2026-10-01", "2026-10-31")),
    ];
    let check = |interviews: Vec<Interview>, when: &'static str| {
        let (questions, drug) = (&questions, &drug);
        async move {
            for (scope, p) in questions {
                let (counts, worries) = count_each(&interviews, &scope.prefix, p);
                let mut got = store
                    .canvass_counts(scope, p)
                    .await
                    .expect("canvass counts");
                got.sort_by(|a, b| a.org_path.cmp(&b.org_path));
                assert_eq!(got, counts, "{when}: {} {p:?}", scope.prefix);
                let mut got = store.worry_counts(scope, p).await.expect("worry counts");
                got.sort();
                assert_eq!(got, worries, "{when}: worries, {} {p:?}", scope.prefix);
                // A drug-control officer sees no ordinary kind, rolled up or not.
                assert!(
                    store
                        .canvass_counts(drug, p)
                        .await
                        .expect("counts")
                        .is_empty()
                );
                assert!(
                    store
                        .worry_counts(drug, p)
                        .await
                        .expect("worries")
                        .is_empty()
                );
            }
        }
    };
    check(interviews.clone(), "as stored").await;

    // Edits move an interview to another month, change an answer and the worries raised; the
    // roll-ups follow each of them.
    let by = Editor::new("admin", 2_000);
    let edits = [
        (1, json!({"interviewed_at": "2026-11-05T09:00:00+08:00"})),
        (
            2,
            json!({"satisfaction_police": "5", "worries": ["environment", "fraud"]}),
        ),
        (2, json!({"worries": ["environment"]})),
        (
            3,
            json!({"interviewed_at": "2026-10-16T09:00:00+08:00", "worries": []}),
        ),
    ];
    for (id, fields) in edits {
        let doc = &mut docs[id as usize - 1];
        doc.set_fields(&object(fields), &by).expect("edit");
        ingest_published(store, &admin(), &push_all(&mut [doc])).await;
    }
    interviews[0].day = "2026-11-05";
    interviews[1].police = "5";
    interviews[1].worries = vec!["environment"];
    interviews[2].day = "2026-10-16";
    interviews[2].worries = vec![];
    check(interviews, "after the edits").await;
}

async fn a_pull_walks_the_feed_of_its_township_village_or_grid_and_sees_exactly_that_unit(
    store: &dyn Store,
) {
    seed_org(store).await;
    // Township 't10' shares t1's first characters; its village and grid have Chinese ids.
    for (id, parent, level, path) in [
        ("t10", "d", Level::Township, "/d/t10/"),
        ("村一", "t10", Level::Village, "/d/t10/村一/"),
        ("网格一", "村一", Level::Grid, "/d/t10/村一/网格一/"),
    ] {
        store
            .upsert_org_unit(&OrgUnit {
                id: id.into(),
                parent_id: Some(parent.into()),
                level,
                name: id.into(),
                path: path.into(),
            })
            .await
            .expect("org unit");
    }
    let mut docs = [
        dispute(71, G1, "admin"),
        dispute(72, G2, "admin"),
        dispute(73, G3, "admin"),
        dispute(74, "网格一", "admin"),
        drug_case(75, "网格一", "admin", "w9"),
    ];
    let mut refs: Vec<_> = docs.iter_mut().collect();
    ingest(store, &admin(), &push_all(&mut refs))
        .await
        .expect("ingest");
    let cases: [(Scope, &[u128]); 7] = [
        (
            Scope::for_role("c", Role::VillageCadre, "/d/t1/"),
            &[71, 72],
        ),
        (Scope::for_role("c", Role::VillageCadre, "/d/t10/"), &[74]),
        (
            Scope::for_role("o", Role::DrugControlOfficer, "/d/t10/"),
            &[75],
        ),
        (
            Scope::for_role("c", Role::VillageCadre, "/d/t10/村一/"),
            &[74],
        ),
        (
            Scope::for_role("w", Role::GridWorker, "/d/t10/村一/网格一/"),
            &[74],
        ),
        (
            Scope::for_role("w9", Role::GridWorker, "/d/t10/村一/网格一/"),
            &[74, 75],
        ),
        (
            Scope::for_role("c", Role::VillageCadre, path_of("s2")),
            &[73],
        ),
    ];
    for (scope, expected) in cases {
        let mut replica = Replica::new();
        // One report a page: the feed pages in sequence order to the end.
        pull_all(store, &scope, None, &mut replica, 1).await;
        let got: BTreeSet<DocId> = replica.ids().copied().collect();
        let want: BTreeSet<DocId> = expected.iter().map(|i| DocId::from_u128(*i)).collect();
        assert_eq!(got, want, "{} {}", scope.user_id, scope.prefix);
    }
}

async fn a_bulletin_is_published_once_and_reissued_as_numbered_revisions(store: &dyn Store) {
    seed_org(store).await;
    store
        .insert_user(&user("admin", Role::DistrictAdmin, "d"))
        .await
        .expect("admin");
    let audit = |action: &str| AuditEntry {
        at: 1_800_000_000,
        user_id: Some("admin".into()),
        device_id: None,
        action: action.into(),
        doc_id: None,
        detail: json!({}),
    };
    let bulletin = |org_id, figures, reason| NewBulletin {
        org_id,
        period: "2026-10",
        figures,
        reason,
        by: "admin",
        at: 1_800_000_000,
    };
    assert_eq!(store.bulletin("d", "2026-10").await.expect("read"), None);
    // A re-issue of a bulletin never published stores nothing.
    let never = store
        .publish_bulletin(
            &bulletin("d", "{}", Some("why")),
            &audit("reissue_bulletin"),
        )
        .await;
    assert!(matches!(never, Err(StoreError::NotFound(_))), "{never:?}");
    // Two publications at once: exactly one becomes revision 1.
    let first = bulletin("d", r#"{"n": 1}"#, None);
    let publish = audit("publish_bulletin");
    let (a, b) = tokio::join!(
        store.publish_bulletin(&first, &publish),
        store.publish_bulletin(&first, &publish),
    );
    let won: Vec<u32> = [&a, &b]
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    assert_eq!(won, [1], "{a:?} {b:?}");
    assert!(
        [&a, &b]
            .iter()
            .any(|r| matches!(r, Err(StoreError::Duplicate(_) | StoreError::Changed(_)))),
        "{a:?} {b:?}"
    );
    let reissued = store
        .publish_bulletin(
            &bulletin("d", r#"{"n": 2}"#, Some("late interviews")),
            &audit("reissue_bulletin"),
        )
        .await
        .expect("reissue");
    assert_eq!(reissued, 2);
    store
        .publish_bulletin(&bulletin("t1", "{}", None), &audit("publish_bulletin"))
        .await
        .expect("another unit's");
    let latest = store
        .bulletin("d", "2026-10")
        .await
        .expect("read")
        .expect("published");
    assert_eq!(
        (
            latest.revision,
            latest.figures.as_str(),
            latest.reason.as_deref()
        ),
        (2, r#"{"n": 2}"#, Some("late interviews"))
    );
    // Every revision of the units under a path, newest first; t1's under /d/t1/ only.
    let all: Vec<(String, u32)> = store
        .bulletins("", 10)
        .await
        .expect("list")
        .into_iter()
        .map(|b| (b.org_id, b.revision))
        .collect();
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all.contains(&("d".into(), 1)) && all.contains(&("d".into(), 2)));
    let t1: Vec<String> = store
        .bulletins(path_of("t1"), 10)
        .await
        .expect("list")
        .into_iter()
        .map(|b| b.org_id)
        .collect();
    assert_eq!(t1, ["t1"]);
    let audited: Vec<String> = store
        .audit_log(10)
        .await
        .expect("audit")
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(
        audited,
        ["publish_bulletin", "reissue_bulletin", "publish_bulletin"],
        "one entry per revision stored, none for what was refused"
    );
    assert_eq!(store.bulletin_rules().await.expect("rules"), None);
    store
        .set_bulletin_rules(r#"{"a": 1}"#, &audit("set_bulletin_rules"))
        .await
        .expect("rules");
    store
        .set_bulletin_rules(r#"{"a": 2}"#, &audit("set_bulletin_rules"))
        .await
        .expect("rules again");
    assert_eq!(
        store.bulletin_rules().await.expect("rules").as_deref(),
        Some(r#"{"a": 2}"#)
    );
}

on_both_backends!(a_hubs_relay_queue_keeps_pushes_in_order_until_each_is_relayed);

async fn a_hubs_relay_queue_keeps_pushes_in_order_until_each_is_relayed(store: &dyn Store) {
    let first = store
        .queue_push("phone-1", b"one", 10)
        .await
        .expect("queue");
    let second = store
        .queue_push("phone-2", b"two", 11)
        .await
        .expect("queue");
    assert!(second > first);
    let waiting = store.waiting_pushes(10).await.expect("waiting");
    let frames: Vec<&[u8]> = waiting.iter().map(|p| p.frame.as_slice()).collect();
    assert_eq!(frames, [b"one".as_slice(), b"two".as_slice()]);
    assert_eq!(waiting[0].device_id, "phone-1");

    store
        .mark_relayed(first, 20, Some("receipt"))
        .await
        .expect("mark");
    let waiting = store.waiting_pushes(10).await.expect("waiting");
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].id, second);
    assert_eq!(store.waiting_pushes(0).await.expect("none").len(), 0);
}

on_both_backends!(a_hubs_attachment_queue_keeps_each_linked_attachment_once_until_relayed);

async fn a_hubs_attachment_queue_keeps_each_linked_attachment_once_until_relayed(
    store: &dyn Store,
) {
    seed_org(store).await;
    let doc = seeded_dispute(store, 1, G1, "w1", Role::GridWorker).await;
    let (a, b) = (blob_bytes(3000, 1), blob_bytes(2000, 2));
    for bytes in [&a, &b] {
        upload(store, doc, bytes, 1000, 10).await;
    }
    let (ha, hb) = (sha256_hex(&a), sha256_hex(&b));
    for (hash, at) in [(&ha, 10), (&hb, 11), (&ha, 12)] {
        // The second of `ha`: a phone uploaded again after a lost answer.
        store.queue_attachment(&doc, hash, at).await.expect("queue");
    }
    // Queued, but no report links it (detached and collected): nothing to relay.
    store
        .queue_attachment(&doc, &"00".repeat(32), 13)
        .await
        .expect("queue");

    let waiting = store.waiting_attachments(0, 10).await.expect("waiting");
    let seen: Vec<(&str, i64, &str)> = waiting
        .iter()
        .map(|q| (q.hash.as_str(), q.size, q.media_type.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (ha.as_str(), 3000, "image/jpeg"),
            (hb.as_str(), 2000, "image/jpeg")
        ]
    );
    assert!(waiting.iter().all(|q| q.doc_id == doc));
    let rest = store
        .waiting_attachments(waiting[0].id, 10)
        .await
        .expect("after the first");
    assert_eq!(rest, waiting[1..]);
    assert_eq!(store.waiting_attachments(0, 1).await.expect("one").len(), 1);
    assert_eq!(
        store.attachment_receipt(&doc, &ha).await.expect("read"),
        None
    );

    store
        .mark_attachment_relayed(waiting[0].id, 20, Some("receipt-a"))
        .await
        .expect("mark");
    // Relayed without a receipt: central will never take it from this hub.
    store
        .mark_attachment_relayed(waiting[1].id, 20, None)
        .await
        .expect("mark");
    assert!(
        store
            .waiting_attachments(0, 10)
            .await
            .expect("none")
            .is_empty()
    );
    assert_eq!(
        store.attachment_receipt(&doc, &ha).await.expect("read"),
        Some("receipt-a".to_owned())
    );
    assert_eq!(
        store.attachment_receipt(&doc, &hb).await.expect("read"),
        None
    );
}

on_both_backends!(a_hub_hands_each_phone_only_its_own_receipts_after_the_last_it_took);

async fn a_hub_hands_each_phone_only_its_own_receipts_after_the_last_it_took(store: &dyn Store) {
    let mut queued = Vec::new();
    for (device, frame) in [("phone-1", b"a"), ("phone-2", b"b"), ("phone-1", b"c")] {
        queued.push(store.queue_push(device, frame, 10).await.expect("queue"));
    }
    let [a, b, c] = queued[..] else {
        unreachable!()
    };
    store.mark_relayed(a, 20, Some("ra")).await.expect("mark");
    store.mark_relayed(b, 20, Some("rb")).await.expect("mark");
    // Relayed without a receipt: central refused it, so nothing to hand back.
    store.mark_relayed(c, 20, None).await.expect("mark");
    let mine = store
        .receipts_for("phone-1", 0, 10)
        .await
        .expect("receipts");
    assert_eq!(
        mine.iter()
            .map(|r| (r.id, r.receipt.as_str()))
            .collect::<Vec<_>>(),
        [(a, "ra")]
    );
    assert!(
        store
            .receipts_for("phone-1", a, 10)
            .await
            .expect("after")
            .is_empty()
    );
    let theirs = store
        .receipts_for("phone-2", 0, 10)
        .await
        .expect("receipts");
    assert_eq!(theirs.len(), 1);
    assert!(
        store
            .receipts_for("phone-2", 0, 0)
            .await
            .expect("none")
            .is_empty()
    );
}

on_both_backends!(a_hubs_audit_log_is_read_in_order_and_kept_at_central_once);

async fn a_hubs_audit_log_is_read_in_order_and_kept_at_central_once(store: &dyn Store) {
    seed_org(store).await;
    http::add_user(store, "admin", Role::DistrictAdmin, "d", "pw", false).await;
    let entry = |action: &str| AuditEntry {
        at: 10,
        user_id: Some("w1".into()),
        device_id: Some("phone-1".into()),
        action: action.into(),
        doc_id: None,
        detail: serde_json::json!({ "hub": "hub-1" }),
    };
    for action in ["first", "second", "third"] {
        store.audit(&entry(action)).await.expect("audit");
    }
    let all = store.audit_after(0, 10).await.expect("after");
    let actions: Vec<&str> = all.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(actions, ["first", "second", "third"]);
    let rest = store.audit_after(all[0].id, 1).await.expect("after");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].entry.action, "second");

    store
        .insert_hub(
            &Hub {
                id: "hub-1".into(),
                unit_id: "v1".into(),
                name: "村委会".into(),
                code_expires_at: Some(100),
                identity_key: None,
                enrolled_at: None,
                revoked_at: None,
                created_by: "admin".into(),
                created_at: 1,
            },
            b"code",
        )
        .await
        .expect("hub");
    let numbered = |id: i64, action: &str| AuditRecord {
        id,
        entry: entry(action),
    };
    let page = [numbered(1, "hub_a"), numbered(2, "hub_b")];
    assert_eq!(
        store.record_hub_audit("hub-1", &page).await.expect("keep"),
        2
    );
    let overlap = [numbered(2, "hub_b"), numbered(3, "hub_c")];
    assert_eq!(
        store
            .record_hub_audit("hub-1", &overlap)
            .await
            .expect("keep"),
        3
    );
    assert_eq!(
        store
            .record_hub_audit("hub-1", &overlap)
            .await
            .expect("keep"),
        3
    );
    let kept: Vec<String> = store
        .audit_log(20)
        .await
        .expect("log")
        .into_iter()
        .map(|e| e.action)
        .filter(|a| a.starts_with("hub_"))
        .collect();
    assert_eq!(kept, ["hub_c", "hub_b", "hub_a"]);
    assert!(matches!(
        store.record_hub_audit("no-such-hub", &page).await,
        Err(StoreError::NotFound(_))
    ));
}
