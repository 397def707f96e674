//! The schema registry over HTTP, on SQLite and on Postgres: an admin checks, keeps, publishes,
//! retires and discards forms written as JSON or as a workbook; every change is audited; a
//! breaking version and a bad form are refused with each problem and nothing is stored; phones
//! see only what is in force; ingest refuses reports of a kind not published and takes them
//! once it is.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use gridsync_core::DocId;
use gridsync_core::protocol::PushOutcome;
use gridsync_core::schema::{FieldType, Schema};
use gridsync_fixtures::forms::{anti_fraud_visit, twin};
use gridsync_fixtures::reports::filled;
use gridsync_server::forms::EXAMPLE_XLSX;
use gridsync_server::scope::Role;
use rust_xlsxwriter::Workbook;
use serde_json::{Value, json};
use support::http::*;
use support::*;

on_both_test_stores!(
    a_form_is_kept_as_a_draft_published_and_retired_with_each_step_audited,
    phones_see_only_published_and_retired_versions_and_their_digest_moves,
    a_breaking_version_is_refused_with_each_change_and_nothing_is_stored,
    a_bad_workbook_is_refused_with_the_place_of_each_problem,
    only_a_district_admin_changes_the_registry,
    a_report_of_a_draft_kind_is_refused_until_the_kind_is_published,
    a_report_of_a_retired_version_is_still_taken_and_read,
    published_versions_never_change_and_only_drafts_are_discarded,
    an_anonymous_kind_published_at_runtime_refuses_identifying_data_like_the_canvass,
);

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

async fn api(t: &TestStore) -> Api {
    api_with_devices(
        t,
        &[
            ("admin", Role::DistrictAdmin, "d"),
            ("ts", Role::TownshipStaff, "t1"),
            ("w1", Role::GridWorker, G1),
        ],
        Default::default(),
    )
    .await
}

/// A form upload with its content type.
fn upload(path: &str, token: &str, media_type: &str, body: Vec<u8>) -> Request<Body> {
    Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, media_type)
        .body(Body::from(body))
        .expect("request")
}

fn json_body(schema: &Schema) -> Vec<u8> {
    serde_json::to_vec(schema).expect("schema JSON")
}

async fn versions(api: &Api, token: &str) -> Vec<(String, u64, String)> {
    api.get("/api/v1/schemas/versions", token)
        .await
        .ok()
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| {
            (
                v["kind"].as_str().expect("kind").to_owned(),
                v["version"].as_u64().expect("version"),
                v["state"].as_str().expect("state").to_owned(),
            )
        })
        .collect()
}

fn state_of(list: &[(String, u64, String)], kind: &str, version: u64) -> Option<String> {
    list.iter()
        .find(|(k, v, _)| k == kind && *v == version)
        .map(|(_, _, s)| s.clone())
}

async fn catalogue(api: &Api, token: &str) -> Value {
    api.get("/api/v1/schemas/catalogue", token).await.ok()
}

async fn a_form_is_kept_as_a_draft_published_and_retired_with_each_step_audited(t: &TestStore) {
    let api = api(t).await;
    let admin = api.device_token("admin").await;

    let checked = api
        .send(upload(
            "/api/v1/schemas/check",
            &admin,
            XLSX,
            EXAMPLE_XLSX.to_vec(),
        ))
        .await
        .ok();
    assert_eq!(checked["schema"]["kind"], "anti_fraud_visit");
    assert_eq!(checked["schema"]["label"]["zh"], "反诈宣传入户");
    assert_eq!(checked["versions_in_force"], json!([]));
    assert_eq!(
        state_of(&versions(&api, &admin).await, "anti_fraud_visit", 1),
        None,
        "a check keeps nothing"
    );

    let kept = api
        .send(upload(
            "/api/v1/schemas",
            &admin,
            XLSX,
            EXAMPLE_XLSX.to_vec(),
        ))
        .await;
    kept.assert_status(StatusCode::CREATED);
    assert_eq!(kept.body["state"], "draft");
    assert_eq!(kept.body["source"], "xlsx");
    assert_eq!(kept.body["created_by"], "admin");

    let published = api
        .call(
            "POST",
            "/api/v1/schemas/anti_fraud_visit/1/publish",
            &admin,
            Value::Null,
        )
        .await
        .ok();
    assert_eq!(published["state"], "published");
    assert_eq!(published["published_by"], "admin");
    let definition = api
        .get("/api/v1/schemas/anti_fraud_visit/1", &admin)
        .await
        .ok();
    assert_eq!(
        serde_json::from_value::<Schema>(definition).expect("a schema"),
        anti_fraud_visit()
    );

    let retired = api
        .call(
            "POST",
            "/api/v1/schemas/anti_fraud_visit/1/retire",
            &admin,
            Value::Null,
        )
        .await
        .ok();
    assert_eq!(retired["state"], "retired");

    let audit = api.get("/api/v1/audit?limit=50", &admin).await.ok();
    let actions: Vec<(&str, &str)> = audit["items"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| {
            e["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("schema_"))
        })
        .map(|e| {
            (
                e["action"].as_str().expect("action"),
                e["user_id"].as_str().expect("user"),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("schema_retire", "admin"),
            ("schema_publish", "admin"),
            ("schema_draft", "admin"),
        ]
    );
}

async fn phones_see_only_published_and_retired_versions_and_their_digest_moves(t: &TestStore) {
    let api = api(t).await;
    let admin = api.device_token("admin").await;
    let worker = api.device_token("w1").await;
    let before = catalogue(&api, &worker).await;
    let kinds = |c: &Value| -> Vec<(String, u64, String)> {
        c["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().expect("kind").to_owned(),
                    e["version"].as_u64().expect("version"),
                    e["state"].as_str().expect("state").to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        kinds(&before),
        [
            ("dispute_check".into(), 1, "published".into()),
            ("drug_control_case".into(), 1, "published".into()),
            ("drug_visit_task".into(), 1, "published".into()),
            ("satisfaction_canvass".into(), 1, "published".into()),
            ("task".into(), 1, "published".into()),
        ]
    );

    api.send(upload(
        "/api/v1/schemas",
        &admin,
        XLSX,
        EXAMPLE_XLSX.to_vec(),
    ))
    .await
    .assert_status(StatusCode::CREATED);
    let drafted = catalogue(&api, &worker).await;
    assert_eq!(
        drafted, before,
        "a draft is nobody's business but the admin's"
    );
    api.get("/api/v1/schemas/anti_fraud_visit/1", &worker)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        api.get("/api/v1/schemas/anti_fraud_visit/1", &admin)
            .await
            .ok()["kind"],
        "anti_fraud_visit"
    );

    api.call(
        "POST",
        "/api/v1/schemas/anti_fraud_visit/1/publish",
        &admin,
        Value::Null,
    )
    .await
    .ok();
    let published = catalogue(&api, &worker).await;
    assert_ne!(published["digest"], before["digest"]);
    assert!(kinds(&published).contains(&("anti_fraud_visit".into(), 1, "published".into())));
    assert_eq!(
        api.get("/api/v1/schemas/anti_fraud_visit/1", &worker)
            .await
            .ok()["kind"],
        "anti_fraud_visit"
    );
    let in_force = api.get("/api/v1/schemas", &worker).await.ok();
    assert!(
        in_force
            .as_array()
            .expect("a list")
            .iter()
            .any(|s| s["kind"] == "anti_fraud_visit")
    );

    api.call(
        "POST",
        "/api/v1/schemas/anti_fraud_visit/1/retire",
        &admin,
        Value::Null,
    )
    .await
    .ok();
    let retired = catalogue(&api, &worker).await;
    assert_ne!(retired["digest"], published["digest"]);
    assert!(kinds(&retired).contains(&("anti_fraud_visit".into(), 1, "retired".into())));
    assert_eq!(
        api.get("/api/v1/schemas/anti_fraud_visit/1", &worker)
            .await
            .ok()["kind"],
        "anti_fraud_visit",
        "a retired version stays readable"
    );
}

async fn a_breaking_version_is_refused_with_each_change_and_nothing_is_stored(t: &TestStore) {
    let api = api(t).await;
    let admin = api.device_token("admin").await;
    let mut v2 = twin("satisfaction_canvass", "satisfaction_canvass", "民调");
    v2.label = gridsync_core::schema::Registry::builtin()
        .latest("satisfaction_canvass")
        .expect("built-in")
        .label
        .clone();
    v2.version = 2;
    let removed = v2.fields.remove(1).id;
    let retyped = v2
        .fields
        .iter_mut()
        .find(|f| f.ty == FieldType::Location)
        .expect("a location field");
    retyped.ty = FieldType::Text;
    let retyped = retyped.id.clone();
    let before = versions(&api, &admin).await;

    for path in ["/api/v1/schemas/check", "/api/v1/schemas"] {
        let refused = api
            .send(upload(path, &admin, "application/json", json_body(&v2)))
            .await;
        refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_form");
        let problems: Vec<(&str, &str)> = refused.body["form_problems"]
            .as_array()
            .expect("form problems")
            .iter()
            .map(|p| {
                (
                    p["code"].as_str().expect("code"),
                    p["message"].as_str().expect("message"),
                )
            })
            .collect();
        assert!(
            problems
                .iter()
                .any(|(c, m)| *c == "field_removed" && m.contains(&removed)),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|(c, m)| *c == "type_changed" && m.contains(&retyped)),
            "{problems:?}"
        );
    }
    assert_eq!(versions(&api, &admin).await, before, "nothing stored");
}

async fn a_bad_workbook_is_refused_with_the_place_of_each_problem(t: &TestStore) {
    let api = api(t).await;
    let admin = api.device_token("admin").await;
    let mut book = Workbook::new();
    let survey = book.add_worksheet();
    survey.set_name("survey").expect("name");
    for (c, h) in ["type", "name", "label::zh", "label::en"]
        .iter()
        .enumerate()
    {
        survey.write_string(0, c as u16, *h).expect("header");
    }
    for (c, v) in ["telephone", "phone", "电话", "Phone"].iter().enumerate() {
        survey.write_string(1, c as u16, *v).expect("cell");
    }
    for (c, v) in ["select_one colours", "colour", "", "Colour"]
        .iter()
        .enumerate()
    {
        survey.write_string(2, c as u16, *v).expect("cell");
    }
    let settings = book.add_worksheet();
    settings.set_name("settings").expect("name");
    for (c, h) in ["form_id", "version", "form_title::zh"].iter().enumerate() {
        settings.write_string(0, c as u16, *h).expect("header");
    }
    for (c, v) in ["bad_form", "1", "坏表"].iter().enumerate() {
        settings.write_string(1, c as u16, *v).expect("cell");
    }
    let bytes = book.save_to_buffer().expect("workbook");
    let before = versions(&api, &admin).await;

    let refused = api
        .send(upload("/api/v1/schemas", &admin, XLSX, bytes))
        .await;
    refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_form");
    let places: Vec<&str> = refused.body["form_problems"]
        .as_array()
        .expect("form problems")
        .iter()
        .filter_map(|p| p["place"].as_str())
        .collect();
    assert!(
        places.iter().any(|p| p.starts_with("survey!A2")),
        "{places:?}"
    );
    assert!(
        places.iter().any(|p| p.starts_with("survey!C3")),
        "{places:?}"
    );

    api.send(upload(
        "/api/v1/schemas",
        &admin,
        XLSX,
        b"PK\x03\x04 not a workbook".to_vec(),
    ))
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_form");
    api.send(upload(
        "/api/v1/schemas",
        &admin,
        "application/json",
        b"{\"kind\": ".to_vec(),
    ))
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_form");
    api.send(upload(
        "/api/v1/schemas",
        &admin,
        "text/csv",
        b"type,name".to_vec(),
    ))
    .await
    .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    assert_eq!(versions(&api, &admin).await, before, "nothing stored");
}

async fn only_a_district_admin_changes_the_registry(t: &TestStore) {
    let api = api(t).await;
    let admin = api.device_token("admin").await;
    api.send(upload(
        "/api/v1/schemas",
        &admin,
        XLSX,
        EXAMPLE_XLSX.to_vec(),
    ))
    .await
    .assert_status(StatusCode::CREATED);
    for user in ["ts", "w1"] {
        let token = api.device_token(user).await;
        for path in ["/api/v1/schemas/check", "/api/v1/schemas"] {
            api.send(upload(path, &token, XLSX, EXAMPLE_XLSX.to_vec()))
                .await
                .assert_problem(StatusCode::FORBIDDEN, "forbidden");
        }
        for action in ["publish", "retire"] {
            api.call(
                "POST",
                &format!("/api/v1/schemas/anti_fraud_visit/1/{action}"),
                &token,
                Value::Null,
            )
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
        }
        api.send(authed(
            "DELETE",
            "/api/v1/schemas/anti_fraud_visit/1",
            &token,
        ))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
        api.get("/api/v1/schemas/versions", &token)
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
    assert_eq!(
        state_of(&versions(&api, &admin).await, "anti_fraud_visit", 1).as_deref(),
        Some("draft")
    );
}

/// A visit report of the example form, filled offline by w1.
fn visit(n: u128) -> gridsync_core::report::ReportDoc {
    filled(
        DocId::from_u128(n),
        "anti_fraud_visit",
        G1,
        "w1",
        1_000,
        json!({
            "visited_on": "2026-12-01",
            "household_head": "赵六",
            "app_installed": "yes",
            "suspicious_contact": "no",
            "status": "visited",
        }),
        Vec::new(),
    )
}

async fn a_report_of_a_draft_kind_is_refused_until_the_kind_is_published(t: &TestStore) {
    let api = api(t).await;
    let admin = api.device_token("admin").await;
    let store = t.store.as_ref();
    let w1 = writer("w1", Role::GridWorker, G1, "dev-w1");
    let mut doc = visit(7);
    let push = push_all(&mut [&mut doc]);

    let refused = ingest(store, &w1, &push).await.expect("ingest");
    assert!(
        matches!(&refused.docs[0].outcome, PushOutcome::Rejected { code, .. } if code == "unknown_kind"),
        "{:?}",
        refused.docs[0].outcome
    );
    api.send(upload(
        "/api/v1/schemas",
        &admin,
        XLSX,
        EXAMPLE_XLSX.to_vec(),
    ))
    .await
    .assert_status(StatusCode::CREATED);
    let still = ingest(store, &w1, &push).await.expect("ingest");
    assert!(
        matches!(&still.docs[0].outcome, PushOutcome::Rejected { code, .. } if code == "unknown_kind"),
        "a draft is not in force: {:?}",
        still.docs[0].outcome
    );
    assert!(store.document(&doc.id()).await.expect("read").is_none());

    api.call(
        "POST",
        "/api/v1/schemas/anti_fraud_visit/1/publish",
        &admin,
        Value::Null,
    )
    .await
    .ok();
    let taken = ingest(store, &w1, &push).await.expect("ingest");
    assert!(
        is_acked(&taken.docs[0].outcome),
        "{:?}",
        taken.docs[0].outcome
    );
    let row = store
        .document(&doc.id())
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(row.kind, "anti_fraud_visit");
    assert_eq!(row.status.as_deref(), Some("visited"));
    // The sensitive household head is redacted for township staff, as for any built-in kind.
    let ts = api.device_token("ts").await;
    let seen = api
        .get(&format!("/api/v1/reports/{}", doc.id()), &ts)
        .await
        .ok();
    assert_eq!(seen["fields"]["household_head"], "***");
    assert_eq!(seen["fields"]["app_installed"], "yes");
}

async fn a_report_of_a_retired_version_is_still_taken_and_read(t: &TestStore) {
    let api = api(t).await;
    let admin = api.device_token("admin").await;
    let store = t.store.as_ref();
    forms::publish(store, &anti_fraud_visit())
        .await
        .expect("publish");
    api.call(
        "POST",
        "/api/v1/schemas/anti_fraud_visit/1/retire",
        &admin,
        Value::Null,
    )
    .await
    .ok();
    // Filled offline before the retirement reached the phone: never lost.
    let mut doc = visit(8);
    let w1 = writer("w1", Role::GridWorker, G1, "dev-w1");
    let taken = ingest(store, &w1, &push_all(&mut [&mut doc]))
        .await
        .expect("ingest");
    assert!(
        is_acked(&taken.docs[0].outcome),
        "{:?}",
        taken.docs[0].outcome
    );
    let worker = api.device_token("w1").await;
    let seen = api
        .get(&format!("/api/v1/reports/{}", doc.id()), &worker)
        .await
        .ok();
    assert_eq!(seen["fields"]["household_head"], "赵六");
}

async fn published_versions_never_change_and_only_drafts_are_discarded(t: &TestStore) {
    let api = api(t).await;
    let admin = api.device_token("admin").await;
    let mut changed = anti_fraud_visit();
    changed.label.zh = "反诈走访".into();
    forms::publish(t.store.as_ref(), &anti_fraud_visit())
        .await
        .expect("publish");

    api.send(upload(
        "/api/v1/schemas",
        &admin,
        "application/json",
        json_body(&changed),
    ))
    .await
    .assert_problem(StatusCode::CONFLICT, "conflict");
    api.call(
        "POST",
        "/api/v1/schemas/anti_fraud_visit/1/publish",
        &admin,
        Value::Null,
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "conflict");
    api.send(authed(
        "DELETE",
        "/api/v1/schemas/anti_fraud_visit/1",
        &admin,
    ))
    .await
    .assert_problem(StatusCode::CONFLICT, "conflict");
    api.call(
        "POST",
        "/api/v1/schemas/no_such_kind/1/publish",
        &admin,
        Value::Null,
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");

    let mut v2 = anti_fraud_visit();
    v2.version = 2;
    v2.label.zh = "反诈走访".into();
    api.send(upload(
        "/api/v1/schemas",
        &admin,
        "application/json",
        json_body(&v2),
    ))
    .await
    .assert_status(StatusCode::CREATED);
    api.send(authed(
        "DELETE",
        "/api/v1/schemas/anti_fraud_visit/2",
        &admin,
    ))
    .await
    .assert_status(StatusCode::NO_CONTENT);
    let left = versions(&api, &admin).await;
    assert_eq!(state_of(&left, "anti_fraud_visit", 2), None);
    assert_eq!(
        state_of(&left, "anti_fraud_visit", 1).as_deref(),
        Some("published")
    );
    let definition = api
        .get("/api/v1/schemas/anti_fraud_visit/1", &admin)
        .await
        .ok();
    assert_eq!(definition["label"]["zh"], "反诈宣传入户");
}

async fn an_anonymous_kind_published_at_runtime_refuses_identifying_data_like_the_canvass(
    t: &TestStore,
) {
    let _api = api(t).await;
    let store = t.store.as_ref();
    let poll = twin("satisfaction_canvass", "street_poll", "街巷民意");
    assert!(poll.anonymous);
    forms::publish(store, &poll).await.expect("publish");
    let w1 = writer("w1", Role::GridWorker, G1, "dev-w1");
    let interview = |n: u128, words: &str| {
        filled(
            DocId::from_u128(n),
            "street_poll",
            G1,
            "w1",
            1_000,
            json!({ "worries_text": words }),
            Vec::new(),
        )
    };
    let mut named = interview(11, "我叫孙某，身份证110105194912310021，邻居总吵");
    let refused = ingest(store, &w1, &push_all(&mut [&mut named]))
        .await
        .expect("ingest");
    assert!(
        matches!(&refused.docs[0].outcome, PushOutcome::Rejected { reason, .. } if reason.contains("ID number")),
        "{:?}",
        refused.docs[0].outcome
    );
    assert!(store.document(&named.id()).await.expect("read").is_none());
    let mut plain = interview(12, "邻居总吵");
    let taken = ingest(store, &w1, &push_all(&mut [&mut plain]))
        .await
        .expect("ingest");
    assert!(
        is_acked(&taken.docs[0].outcome),
        "{:?}",
        taken.docs[0].outcome
    );
}
