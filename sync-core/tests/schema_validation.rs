//! Validation and redaction of report projections against the built-in kinds (and one custom
//! kind for the value types the built-in kinds do not use).

use gridsync_core::schema::{Access, FieldType, Problem, ProblemCode, REDACTED, Registry, Schema};
use serde_json::{Value, json};

fn schema(kind: &str) -> Schema {
    Registry::builtin()
        .latest(kind)
        .cloned()
        .unwrap_or_else(|| panic!("built-in kind {kind} is missing"))
}

fn dispute_check() -> Value {
    json!({
        "id": "0b8f3f5e-8a3c-4f57-9d0e-2f1d6c1b7a01",
        "kind": "dispute_check",
        "schema_version": 1,
        "grid": "g-xinqiao-03",
        "created_by": "u-wang",
        "created_at": "2026-11-02T09:30:00Z",
        "fields": {
            "category": "land_property",
            "parties": "张三、李四",
            "party_phones": "张三 13800138000",
            "description": "两户因宅基地界址发生争执，曾有推搡。",
            "place": "新桥村三组",
            "found_on": "2026-11-02",
            "risk_level": "medium",
            "mediation_track": "people",
            "referred_from": "administrative",
            "status": "resolved",
            "agreement": "双方同意以原界桩为准，各自拆除越界围墙。",
            "resolved_on": "2026-11-20"
        },
        "log": [
            {
                "id": "e-1", "created_by": "u-wang", "created_at": "2026-11-05T10:00:00Z",
                "date": "2026-11-05", "mediator": "u-wang",
                "method": "入户走访，分别听取双方意见", "outcome": "双方同意再次协商"
            },
            {
                "id": "e-2", "created_by": "u-li", "created_at": "2026-11-20T15:42:10.250+08:00",
                "date": "2026-11-20", "mediator": "u-li", "method": "村调委会主持调解"
            }
        ]
    })
}

fn drug_control_case() -> Value {
    json!({
        "id": "7a1c9e40-1111-4c2b-8f6a-0c9d8e7f6a02",
        "kind": "drug_control_case",
        "schema_version": 1,
        "grid": "g-dongcheng-11",
        "created_by": "u-chen",
        "created_at": "2025-06-01T08:00:00Z",
        "fields": {
            "subject_name": "赵某某",
            "subject_id_number": "11010519491231002X",
            "subject_address": "东城社区8栋302",
            "programme": "community_rehabilitation",
            "programme_start": "2025-06-01",
            "programme_end": "2028-05-31",
            "assigned_worker": "u-chen",
            "status": "active"
        },
        "log": [
            {
                "id": "v-1", "created_by": "u-chen", "created_at": "2026-10-10T09:00:00Z",
                "date": "2026-10-10", "visitor": "u-chen", "place": "家中",
                "test": "urine", "test_result": "negative",
                "notes": "情绪稳定，已在物流公司上班", "next_visit_due": "2026-11-10"
            },
            {
                "id": "v-2", "created_by": "u-chen", "created_at": "2026-11-10T09:00:00Z",
                "date": "2026-11-10", "visitor": "u-chen", "test": "none"
            }
        ]
    })
}

fn satisfaction_canvass() -> Value {
    json!({
        "id": "c3d2e1f0-2222-4a5b-9c8d-1e2f3a4b5c03",
        "kind": "satisfaction_canvass",
        "schema_version": 1,
        "grid": "g-nanhu-07",
        "created_by": "u-liu",
        "created_at": "2026-11-28T02:15:00Z",
        "fields": {
            "household_type": "migrant",
            "canvasser": "u-liu",
            "interviewed_at": "2026-11-28T10:15:00+08:00",
            "location": {"lat": 30.52, "lon": 114.31, "accuracy_m": 12.5},
            "safety_overall": "4",
            "safety_night": "dont_know",
            "satisfaction_police": "5",
            "satisfaction_courts": "3",
            "satisfaction_mediation": "4",
            "satisfaction_services": "2",
            "worries": ["fraud", "traffic"],
            "worries_text": "村口路灯坏了两个月，晚上不敢出门；2026年还没修好。"
        },
        "log": []
    })
}

fn set(mut report: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    report
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no object at {parent}"))
        .insert(key.to_owned(), value);
    report
}

fn remove(mut report: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    let removed = report
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .and_then(|o| o.remove(key));
    assert!(removed.is_some(), "nothing to remove at {pointer}");
    report
}

/// Asserts exactly one problem, at `path` with `code`, so that an unrelated problem cannot make a
/// test pass and a missing rule makes it fail.
#[track_caller]
fn assert_only(problems: &[Problem], path: &str, code: ProblemCode) {
    let got: Vec<(&str, ProblemCode)> =
        problems.iter().map(|p| (p.path.as_str(), p.code)).collect();
    assert_eq!(got, vec![(path, code)], "problems: {problems:#?}");
}

#[track_caller]
fn assert_valid(problems: &[Problem]) {
    assert!(
        problems.is_empty(),
        "expected no problems, got {problems:#?}"
    );
}

// ---- the registry and the embedded files ----

#[test]
fn builtin_registry_has_the_three_report_kinds_and_the_two_task_kinds_at_version_1() {
    let registry = Registry::builtin();
    let kinds: Vec<(&str, u32)> = registry
        .kinds()
        .map(|s| (s.kind.as_str(), s.version))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("dispute_check", 1),
            ("drug_control_case", 1),
            ("drug_visit_task", 1),
            ("satisfaction_canvass", 1),
            ("task", 1)
        ]
    );
    assert!(registry.get("dispute_check", 1).is_some());
    assert!(registry.get("dispute_check", 2).is_none());
    assert!(registry.latest("no_such_kind").is_none());
}

#[test]
fn builtin_labels_are_given_in_chinese_and_english() {
    for schema in Registry::builtin().kinds() {
        let mut labels = vec![&schema.label];
        let defs = schema
            .fields
            .iter()
            .chain(schema.log.iter().flat_map(|l| l.fields.iter()));
        for def in defs {
            labels.push(&def.label);
            labels.extend(def.choices.iter().map(|c| &c.label));
        }
        labels.extend(schema.log.iter().map(|l| &l.label));
        labels.extend(schema.rules.iter().map(|r| &r.message));
        for label in labels {
            assert!(
                !label.zh.is_empty() && !label.en.is_empty(),
                "{}: {label:?}",
                schema.kind
            );
            assert!(
                label
                    .zh
                    .chars()
                    .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "{}: zh label without Chinese: {label:?}",
                schema.kind
            );
        }
    }
}

#[test]
fn builtin_schemas_serialise_back_to_json_that_loads_identically() {
    for schema in Registry::builtin().kinds() {
        let json = serde_json::to_string(schema).expect("schema serialises");
        assert_eq!(&Schema::from_json(&json).expect("reloads"), schema);
    }
}

#[test]
fn dispute_check_tracks_status_and_flags_steps_added_after_resolution() {
    let s = schema("dispute_check");
    assert_eq!(s.label.zh, "矛盾纠纷排查");
    assert_eq!(s.status_field.as_deref(), Some("status"));
    assert_eq!(s.access, Access::Scope);
    assert_eq!(
        s.log.as_ref().map(|l| l.id.as_str()),
        Some("mediation_steps")
    );
    let rule = &s.rules[0];
    assert_eq!(
        (rule.code.as_str(), rule.field.as_str(), rule.any_of.clone()),
        (
            "mediation_step_after_resolved",
            "status",
            vec!["resolved".to_owned()]
        )
    );
    let tracks: Vec<&str> = s.field("mediation_track").map_or(vec![], |f| {
        f.choices.iter().map(|c| c.label.zh.as_str()).collect()
    });
    assert_eq!(tracks, ["人民调解", "行政调解", "司法调解"]);
    assert_eq!(
        s.field("referred_from").map(|f| &f.choices),
        s.field("mediation_track").map(|f| &f.choices)
    );
}

#[test]
fn drug_control_case_is_restricted_to_its_assigned_worker() {
    let s = schema("drug_control_case");
    assert_eq!(
        s.access,
        Access::Restricted {
            assigned_field: "assigned_worker".to_owned()
        }
    );
    assert_eq!(
        s.field("assigned_worker").map(|f| f.ty),
        Some(FieldType::PersonRef)
    );
    let rule = &s.rules[0];
    assert_eq!(rule.code, "visit_after_case_closed");
    assert_eq!(rule.any_of, ["completed", "transferred"]);
}

#[test]
fn satisfaction_canvass_is_anonymous_and_its_questions_feed_the_two_indexes() {
    let s = schema("satisfaction_canvass");
    assert!(s.anonymous);
    assert!(s.log.is_none());
    assert_eq!(s.sensitive_fields().count(), 0);
    let indexed: Vec<(&str, &str)> = s
        .fields
        .iter()
        .filter_map(|f| Some((f.id.as_str(), f.index.as_deref()?)))
        .collect();
    assert_eq!(
        indexed,
        [
            ("safety_overall", "safety"),
            ("safety_night", "safety"),
            ("satisfaction_police", "satisfaction"),
            ("satisfaction_courts", "satisfaction"),
            ("satisfaction_mediation", "satisfaction"),
            ("satisfaction_services", "satisfaction"),
        ]
    );
    for id in ["safety_overall", "satisfaction_police"] {
        let def = s.field(id).expect("question exists");
        let choices: Vec<&str> = def.choices.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(choices, ["1", "2", "3", "4", "5", "dont_know"]);
        assert!(def.required);
    }
    let police = s.field("satisfaction_police").expect("question exists");
    assert_eq!(
        police.choice("1").map(|c| c.label.zh.as_str()),
        Some("很不满意")
    );
    assert_eq!(
        police.choice("5").map(|c| c.label.zh.as_str()),
        Some("很满意")
    );
    let safety = s.field("safety_overall").expect("question exists");
    assert_eq!(
        safety.choice("1").map(|c| c.label.zh.as_str()),
        Some("很不安全")
    );
}

// ---- dispute_check ----

#[test]
fn dispute_check_full_example_has_no_problems() {
    assert_valid(&schema("dispute_check").validate(&dispute_check()));
    assert_valid(&Registry::builtin().validate(&dispute_check()));
}

#[test]
fn dispute_check_without_category_is_rejected_with_required() {
    let report = remove(dispute_check(), "/fields/category");
    assert_only(
        &schema("dispute_check").validate(&report),
        "fields.category",
        ProblemCode::Required,
    );
}

#[test]
fn dispute_check_null_or_blank_required_text_counts_as_not_set() {
    let s = schema("dispute_check");
    let report = set(dispute_check(), "/fields/parties", json!(null));
    assert_only(
        &s.validate(&report),
        "fields.parties",
        ProblemCode::Required,
    );
    let report = set(dispute_check(), "/fields/parties", json!("  "));
    assert_only(
        &s.validate(&report),
        "fields.parties",
        ProblemCode::Required,
    );
}

#[test]
fn dispute_check_resolved_without_agreement_is_rejected_with_required() {
    let report = remove(dispute_check(), "/fields/agreement");
    let problems = schema("dispute_check").validate(&report);
    assert_only(&problems, "fields.agreement", ProblemCode::Required);
    assert!(problems[0].message.contains("status") && problems[0].message.contains("resolved"));
}

#[test]
fn dispute_check_resolved_without_resolution_date_is_rejected_with_required() {
    let report = remove(dispute_check(), "/fields/resolved_on");
    assert_only(
        &schema("dispute_check").validate(&report),
        "fields.resolved_on",
        ProblemCode::Required,
    );
}

#[test]
fn dispute_check_mediating_without_next_follow_up_is_rejected_with_required() {
    let report = set(dispute_check(), "/fields/status", json!("mediating"));
    assert_only(
        &schema("dispute_check").validate(&report),
        "fields.next_follow_up",
        ProblemCode::Required,
    );
}

#[test]
fn dispute_check_mediating_needs_no_agreement() {
    let report = set(dispute_check(), "/fields/status", json!("mediating"));
    let report = remove(report, "/fields/agreement");
    let report = remove(report, "/fields/resolved_on");
    let report = set(report, "/fields/next_follow_up", json!("2026-12-01"));
    assert_valid(&schema("dispute_check").validate(&report));
}

#[test]
fn dispute_check_risk_level_outside_its_choices_is_rejected_with_invalid_choice() {
    let report = set(dispute_check(), "/fields/risk_level", json!("extreme"));
    let problems = schema("dispute_check").validate(&report);
    assert_only(&problems, "fields.risk_level", ProblemCode::InvalidChoice);
    assert!(
        problems[0].message.contains("low, medium, high"),
        "{}",
        problems[0].message
    );
}

#[test]
fn dispute_check_category_given_as_number_is_rejected_with_wrong_type() {
    let report = set(dispute_check(), "/fields/category", json!(3));
    assert_only(
        &schema("dispute_check").validate(&report),
        "fields.category",
        ProblemCode::WrongType,
    );
}

#[test]
fn dispute_check_undeclared_field_is_rejected_with_unknown_field() {
    let report = set(dispute_check(), "/fields/compensation", json!("5000元"));
    assert_only(
        &schema("dispute_check").validate(&report),
        "fields.compensation",
        ProblemCode::UnknownField,
    );
}

#[test]
fn report_key_outside_meta_fields_and_log_is_rejected_with_unknown_field() {
    let report = set(dispute_check(), "/notes", json!("stray"));
    assert_only(
        &schema("dispute_check").validate(&report),
        "notes",
        ProblemCode::UnknownField,
    );
}

#[test]
fn dispute_check_description_is_limited_to_4000_characters_not_bytes() {
    let s = schema("dispute_check");
    let report = set(
        dispute_check(),
        "/fields/description",
        json!("纠".repeat(4000)),
    );
    assert_valid(&s.validate(&report));
    let report = set(
        dispute_check(),
        "/fields/description",
        json!("纠".repeat(4001)),
    );
    assert_only(
        &s.validate(&report),
        "fields.description",
        ProblemCode::TooLong,
    );
}

#[test]
fn dispute_check_found_on_february_30_is_rejected_with_invalid_date() {
    let report = set(dispute_check(), "/fields/found_on", json!("2026-02-30"));
    assert_only(
        &schema("dispute_check").validate(&report),
        "fields.found_on",
        ProblemCode::InvalidDate,
    );
}

#[test]
fn dates_follow_the_calendar_including_leap_years() {
    let s = schema("dispute_check");
    for good in [
        "2028-02-29",
        "2000-02-29",
        "2026-12-31",
        "2026-04-30",
        "0001-01-01",
    ] {
        assert_valid(&s.validate_field("found_on", &json!(good)));
    }
    for bad in [
        "2026-02-29",
        "1900-02-29",
        "2026-04-31",
        "2026-13-01",
        "2026-00-10",
        "2026-01-00",
        "0000-01-01",
        "2026-1-05",
        "2026/01/05",
        "2026-01-05T00:00:00Z",
        "20260105",
        "",
        "２０２６-01-05",
    ] {
        let problems = s.validate_field("found_on", &json!(bad));
        assert_only(&problems, "fields.found_on", ProblemCode::InvalidDate);
    }
    assert_only(
        &s.validate_field("found_on", &json!(20260105)),
        "fields.found_on",
        ProblemCode::WrongType,
    );
}

#[test]
fn dispute_check_log_entry_with_undeclared_key_is_rejected_with_unknown_field() {
    let report = set(dispute_check(), "/log/1/rating", json!(5));
    assert_only(
        &schema("dispute_check").validate(&report),
        "log[1].rating",
        ProblemCode::UnknownField,
    );
}

#[test]
fn dispute_check_log_entry_without_method_is_rejected_with_required() {
    let report = remove(dispute_check(), "/log/0/method");
    assert_only(
        &schema("dispute_check").validate(&report),
        "log[0].method",
        ProblemCode::Required,
    );
}

#[test]
fn dispute_check_log_entry_with_empty_mediator_is_rejected_with_wrong_type() {
    let report = set(dispute_check(), "/log/0/mediator", json!(""));
    assert_only(
        &schema("dispute_check").validate(&report),
        "log[0].mediator",
        ProblemCode::WrongType,
    );
}

#[test]
fn log_entry_without_id_author_or_time_is_rejected_with_invalid_log_entry() {
    let s = schema("dispute_check");
    for key in ["id", "created_by", "created_at"] {
        let report = remove(dispute_check(), &format!("/log/1/{key}"));
        assert_only(
            &s.validate(&report),
            &format!("log[1].{key}"),
            ProblemCode::InvalidLogEntry,
        );
    }
    let report = set(dispute_check(), "/log/1/id", json!(7));
    assert_only(&s.validate(&report), "log[1].id", ProblemCode::WrongType);
}

#[test]
fn log_entry_that_is_not_an_object_is_rejected_with_invalid_log_entry() {
    let report = set(
        dispute_check(),
        "/log",
        json!([dispute_check()["log"][0].clone(), "step"]),
    );
    assert_only(
        &schema("dispute_check").validate(&report),
        "log[1]",
        ProblemCode::InvalidLogEntry,
    );
}

#[test]
fn log_entries_sharing_an_id_are_rejected_with_invalid_log_entry() {
    let report = set(dispute_check(), "/log/1/id", json!("e-1"));
    assert_only(
        &schema("dispute_check").validate(&report),
        "log[1].id",
        ProblemCode::InvalidLogEntry,
    );
}

#[test]
fn log_entry_with_malformed_time_is_rejected_with_invalid_datetime() {
    let report = set(
        dispute_check(),
        "/log/0/created_at",
        json!("2026-11-05 10:00"),
    );
    assert_only(
        &schema("dispute_check").validate(&report),
        "log[0].created_at",
        ProblemCode::InvalidDatetime,
    );
}

#[test]
fn log_that_is_not_an_array_is_rejected_with_wrong_type() {
    let report = set(dispute_check(), "/log", json!({"e-1": {}}));
    assert_only(
        &schema("dispute_check").validate(&report),
        "log",
        ProblemCode::WrongType,
    );
}

#[test]
fn report_without_grid_is_rejected_with_missing_meta() {
    let report = remove(dispute_check(), "/grid");
    assert_only(
        &schema("dispute_check").validate(&report),
        "meta.grid",
        ProblemCode::MissingMeta,
    );
}

#[test]
fn every_missing_meta_key_is_reported() {
    let report = json!({"fields": dispute_check()["fields"].clone(), "log": []});
    let paths: Vec<(String, ProblemCode)> = schema("dispute_check")
        .validate(&report)
        .into_iter()
        .map(|p| (p.path, p.code))
        .collect();
    let expected: Vec<(String, ProblemCode)> = [
        "id",
        "grid",
        "created_by",
        "kind",
        "schema_version",
        "created_at",
    ]
    .iter()
    .map(|k| (format!("meta.{k}"), ProblemCode::MissingMeta))
    .collect();
    assert_eq!(paths, expected);
}

#[test]
fn report_with_malformed_creation_time_is_rejected_with_invalid_datetime() {
    let report = set(dispute_check(), "/created_at", json!("yesterday"));
    assert_only(
        &schema("dispute_check").validate(&report),
        "meta.created_at",
        ProblemCode::InvalidDatetime,
    );
}

#[test]
fn report_of_another_kind_is_rejected_with_unknown_kind() {
    let report = set(dispute_check(), "/kind", json!("drug_control_case"));
    assert_only(
        &schema("dispute_check").validate(&report),
        "meta.kind",
        ProblemCode::UnknownKind,
    );
}

#[test]
fn report_of_another_version_is_rejected_with_unknown_schema_version() {
    let report = set(dispute_check(), "/schema_version", json!(2));
    assert_only(
        &schema("dispute_check").validate(&report),
        "meta.schema_version",
        ProblemCode::UnknownSchemaVersion,
    );
}

#[test]
fn registry_rejects_a_kind_it_does_not_know_with_unknown_kind() {
    let registry = Registry::builtin();
    let report = set(dispute_check(), "/kind", json!("tree_census"));
    assert_only(
        &registry.validate(&report),
        "meta.kind",
        ProblemCode::UnknownKind,
    );
    let report = set(dispute_check(), "/schema_version", json!(9));
    assert_only(
        &registry.validate(&report),
        "meta.schema_version",
        ProblemCode::UnknownSchemaVersion,
    );
    let report = remove(dispute_check(), "/kind");
    assert_only(
        &registry.validate(&report),
        "meta.kind",
        ProblemCode::MissingMeta,
    );
}

#[test]
fn registry_validates_each_report_against_its_own_kind() {
    let registry = Registry::builtin();
    assert_valid(&registry.validate(&drug_control_case()));
    assert_valid(&registry.validate(&satisfaction_canvass()));
    let report = set(drug_control_case(), "/fields/programme", json!("prison"));
    assert_only(
        &registry.validate(&report),
        "fields.programme",
        ProblemCode::InvalidChoice,
    );
}

#[test]
fn projection_that_is_not_an_object_is_rejected_with_wrong_type() {
    let s = schema("dispute_check");
    assert_only(&s.validate(&json!([1, 2])), "", ProblemCode::WrongType);
    let report = set(dispute_check(), "/fields", json!("category=neighbour"));
    assert_only(&s.validate(&report), "fields", ProblemCode::WrongType);
}

#[test]
fn several_problems_in_one_report_are_all_reported() {
    let report = remove(dispute_check(), "/grid");
    let report = set(report, "/fields/risk_level", json!("extreme"));
    let report = remove(report, "/fields/agreement");
    let report = set(report, "/fields/found_on", json!("2026-02-30"));
    let report = set(report, "/fields/witness", json!("王五"));
    let report = set(report, "/log/0/mood", json!("calm"));
    let report = remove(report, "/log/1/date");
    let mut got: Vec<(String, ProblemCode)> = schema("dispute_check")
        .validate(&report)
        .into_iter()
        .map(|p| (p.path, p.code))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let expected = [
        ("fields.agreement", ProblemCode::Required),
        ("fields.found_on", ProblemCode::InvalidDate),
        ("fields.risk_level", ProblemCode::InvalidChoice),
        ("fields.witness", ProblemCode::UnknownField),
        ("log[0].mood", ProblemCode::UnknownField),
        ("log[1].date", ProblemCode::Required),
        ("meta.grid", ProblemCode::MissingMeta),
    ]
    .map(|(p, c)| (p.to_owned(), c));
    assert_eq!(got, expected);
}

#[test]
fn problems_serialise_with_snake_case_codes() {
    let report = set(dispute_check(), "/fields/risk_level", json!("extreme"));
    let problems = schema("dispute_check").validate(&report);
    let json = serde_json::to_value(&problems).expect("problems serialise");
    assert_eq!(json[0]["path"], "fields.risk_level");
    assert_eq!(json[0]["code"], "invalid_choice");
    assert_eq!(ProblemCode::InvalidLogEntry.as_str(), "invalid_log_entry");
    assert_eq!(ProblemCode::IdentifyingData.to_string(), "identifying_data");
}

#[test]
fn validate_field_checks_one_value_for_a_form() {
    let s = schema("dispute_check");
    assert_valid(&s.validate_field("risk_level", &json!("high")));
    assert_only(
        &s.validate_field("risk_level", &json!("extreme")),
        "fields.risk_level",
        ProblemCode::InvalidChoice,
    );
    assert_only(
        &s.validate_field("risk_level", &json!(null)),
        "fields.risk_level",
        ProblemCode::Required,
    );
    assert_valid(&s.validate_field("place", &json!(null)));
    assert_only(
        &s.validate_field("colour", &json!("red")),
        "fields.colour",
        ProblemCode::UnknownField,
    );
    assert_only(
        &s.validate_log_field("mediator", &json!(42)),
        "log.mediator",
        ProblemCode::WrongType,
    );
    assert_only(
        &s.validate_log_field("date", &json!(null)),
        "log.date",
        ProblemCode::Required,
    );
    assert_only(
        &schema("satisfaction_canvass").validate_log_field("date", &json!("2026-01-01")),
        "log.date",
        ProblemCode::UnknownField,
    );
}

// ---- drug_control_case ----

#[test]
fn drug_control_case_full_example_has_no_problems() {
    assert_valid(&schema("drug_control_case").validate(&drug_control_case()));
}

#[test]
fn drug_control_visit_with_urine_test_but_no_result_is_rejected_with_required() {
    let report = remove(drug_control_case(), "/log/0/test_result");
    assert_only(
        &schema("drug_control_case").validate(&report),
        "log[0].test_result",
        ProblemCode::Required,
    );
}

#[test]
fn drug_control_visit_with_hair_test_but_no_result_is_rejected_with_required() {
    let report = set(drug_control_case(), "/log/1/test", json!("hair"));
    assert_only(
        &schema("drug_control_case").validate(&report),
        "log[1].test_result",
        ProblemCode::Required,
    );
}

#[test]
fn drug_control_visit_with_unknown_test_is_rejected_with_invalid_choice() {
    let report = set(drug_control_case(), "/log/1/test", json!("blood"));
    assert_only(
        &schema("drug_control_case").validate(&report),
        "log[1].test",
        ProblemCode::InvalidChoice,
    );
}

#[test]
fn drug_control_case_without_assigned_worker_is_rejected_with_required() {
    let report = remove(drug_control_case(), "/fields/assigned_worker");
    assert_only(
        &schema("drug_control_case").validate(&report),
        "fields.assigned_worker",
        ProblemCode::Required,
    );
}

#[test]
fn drug_control_sensitive_fields_are_subject_data_and_visit_notes_and_records() {
    let s = schema("drug_control_case");
    let ids: Vec<&str> = s.sensitive_fields().map(|f| f.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "subject_name",
            "subject_id_number",
            "subject_address",
            "notes",
            "visit_record"
        ]
    );
}

#[test]
fn redact_replaces_sensitive_values_in_fields_and_log() {
    let s = schema("drug_control_case");
    let mut report = set(drug_control_case(), "/fields/subject_address", json!(null));
    s.redact(&mut report);
    assert_eq!(report["fields"]["subject_name"], REDACTED);
    assert_eq!(report["fields"]["subject_id_number"], REDACTED);
    assert_eq!(report["log"][0]["notes"], REDACTED);
    // Not set stays not set; other values and entry keys are untouched.
    assert_eq!(report["fields"]["subject_address"], Value::Null);
    assert!(report["log"][1].get("notes").is_none());
    assert_eq!(report["fields"]["programme"], "community_rehabilitation");
    assert_eq!(report["fields"]["assigned_worker"], "u-chen");
    assert_eq!(report["log"][0]["test_result"], "negative");
    assert_eq!(report["log"][0]["id"], "v-1");
    assert_eq!(report["grid"], "g-dongcheng-11");
}

#[test]
fn redact_replaces_dispute_parties_and_phones() {
    let mut report = dispute_check();
    schema("dispute_check").redact(&mut report);
    assert_eq!(report["fields"]["parties"], REDACTED);
    assert_eq!(report["fields"]["party_phones"], REDACTED);
    assert_eq!(
        report["fields"]["description"],
        dispute_check()["fields"]["description"]
    );
    assert_eq!(report["log"], dispute_check()["log"]);
}

#[test]
fn redact_treats_undeclared_keys_as_sensitive() {
    let mut report = set(drug_control_case(), "/fields/mother_name", json!("钱某"));
    let mut report_with_entry_key = set(drug_control_case(), "/log/0/phone", json!("13900139000"));
    let s = schema("drug_control_case");
    s.redact(&mut report);
    s.redact(&mut report_with_entry_key);
    assert_eq!(report["fields"]["mother_name"], REDACTED);
    assert_eq!(report_with_entry_key["log"][0]["phone"], REDACTED);
}

// ---- satisfaction_canvass ----

#[test]
fn satisfaction_canvass_full_example_has_no_problems() {
    assert_valid(&schema("satisfaction_canvass").validate(&satisfaction_canvass()));
    let report = remove(satisfaction_canvass(), "/log");
    assert_valid(&schema("satisfaction_canvass").validate(&report));
}

#[test]
fn satisfaction_canvass_with_a_log_entry_is_rejected_with_log_not_allowed() {
    let entry = json!({"id": "x", "created_by": "u-liu", "created_at": "2026-11-28T02:20:00Z"});
    let report = set(satisfaction_canvass(), "/log", json!([entry]));
    assert_only(
        &schema("satisfaction_canvass").validate(&report),
        "log",
        ProblemCode::LogNotAllowed,
    );
}

#[test]
fn satisfaction_canvass_respondent_name_field_is_rejected_with_unknown_field() {
    let report = set(
        satisfaction_canvass(),
        "/fields/respondent_name",
        json!("孙某"),
    );
    assert_only(
        &schema("satisfaction_canvass").validate(&report),
        "fields.respondent_name",
        ProblemCode::UnknownField,
    );
}

#[test]
fn satisfaction_canvass_without_police_answer_is_rejected_with_required() {
    let report = remove(satisfaction_canvass(), "/fields/satisfaction_police");
    assert_only(
        &schema("satisfaction_canvass").validate(&report),
        "fields.satisfaction_police",
        ProblemCode::Required,
    );
}

#[test]
fn satisfaction_answer_off_the_scale_is_rejected_with_invalid_choice() {
    let s = schema("satisfaction_canvass");
    for bad in [json!("6"), json!("0"), json!("")] {
        let report = set(satisfaction_canvass(), "/fields/satisfaction_courts", bad);
        assert_only(
            &s.validate(&report),
            "fields.satisfaction_courts",
            ProblemCode::InvalidChoice,
        );
    }
    let report = set(
        satisfaction_canvass(),
        "/fields/satisfaction_courts",
        json!(4),
    );
    assert_only(
        &s.validate(&report),
        "fields.satisfaction_courts",
        ProblemCode::WrongType,
    );
}

#[test]
fn worries_accept_only_distinct_declared_topics() {
    let s = schema("satisfaction_canvass");
    assert_valid(&s.validate_field("worries", &json!([])));
    assert_only(
        &s.validate_field("worries", &json!(["fraud", "weather"])),
        "fields.worries",
        ProblemCode::InvalidChoice,
    );
    assert_only(
        &s.validate_field("worries", &json!(["fraud", "fraud"])),
        "fields.worries",
        ProblemCode::InvalidChoice,
    );
    assert_only(
        &s.validate_field("worries", &json!(["fraud", 2])),
        "fields.worries",
        ProblemCode::WrongType,
    );
    assert_only(
        &s.validate_field("worries", &json!("fraud")),
        "fields.worries",
        ProblemCode::WrongType,
    );
}

#[test]
fn satisfaction_canvass_worries_text_over_1000_characters_is_rejected_with_too_long() {
    let report = set(
        satisfaction_canvass(),
        "/fields/worries_text",
        json!("路".repeat(1001)),
    );
    assert_only(
        &schema("satisfaction_canvass").validate(&report),
        "fields.worries_text",
        ProblemCode::TooLong,
    );
}

#[test]
fn satisfaction_canvass_worries_text_with_resident_id_is_rejected_with_identifying_data() {
    let s = schema("satisfaction_canvass");
    for text in [
        "我叫孙某，身份证110105194912310021，邻居总吵",
        "身份证号11010519491231002X。",
        "身份证号11010519491231002x",
        "110105 19491231 0021",
        "110105-19491231-002X",
        "１１０１０５１９４９１２３１００２１",
    ] {
        let report = set(satisfaction_canvass(), "/fields/worries_text", json!(text));
        let problems = s.validate(&report);
        assert_only(
            &problems,
            "fields.worries_text",
            ProblemCode::IdentifyingData,
        );
        assert!(
            problems[0].message.contains("ID number"),
            "{text}: {}",
            problems[0].message
        );
        assert!(
            !problems[0].message.contains("0021"),
            "the message must not repeat the number"
        );
    }
}

#[test]
fn satisfaction_canvass_worries_text_with_mobile_number_is_rejected_with_identifying_data() {
    let s = schema("satisfaction_canvass");
    for text in [
        "有事打我电话13800138000",
        "电话：139 0013 9000",
        "电话 186-0000-1234",
        "+86 15912345678",
        "8615912345678",
        "手机１３８００１３８０００",
    ] {
        let report = set(satisfaction_canvass(), "/fields/worries_text", json!(text));
        let problems = s.validate(&report);
        assert_only(
            &problems,
            "fields.worries_text",
            ProblemCode::IdentifyingData,
        );
        assert!(
            problems[0].message.contains("phone"),
            "{text}: {}",
            problems[0].message
        );
    }
}

#[test]
fn satisfaction_canvass_worries_text_with_ordinary_numbers_is_accepted() {
    let s = schema("satisfaction_canvass");
    for text in [
        "2026年11月28日晚上10点停电",
        "被骗了12000元",
        "12345678901",
        "订单号 1380013800012345",
        "1101051949123100211",
        "11010519491231002",
        "门牌 3-12-2，路灯坏了 2 个月",
        "110 来了 4 次",
    ] {
        let report = set(satisfaction_canvass(), "/fields/worries_text", json!(text));
        assert_valid(&s.validate(&report));
    }
}

#[test]
fn identifying_data_is_only_refused_in_anonymous_kinds() {
    // Dispute parties are meant to be identified; their phone numbers are sensitive, not refused.
    assert_valid(&schema("dispute_check").validate_field("party_phones", &json!("13800138000")));
    // The canvasser is a user, not the respondent, and person_refs are not free text.
    assert_valid(
        &schema("satisfaction_canvass").validate_field("canvasser", &json!("13800138000")),
    );
}

#[test]
fn satisfaction_canvass_interview_time_must_be_rfc3339() {
    let s = schema("satisfaction_canvass");
    for good in [
        "2026-11-28T10:15:00Z",
        "2026-11-28T10:15:00.5Z",
        "2026-11-28T10:15:00.123456789Z",
        "2026-11-28T18:15:00+08:00",
        "2028-02-29T23:59:59-05:30",
    ] {
        assert_valid(&s.validate_field("interviewed_at", &json!(good)));
    }
    for bad in [
        "2026-11-28 10:15:00Z",
        "2026-11-28T10:15:00",
        "2026-11-28T24:00:00Z",
        "2026-11-28T10:60:00Z",
        "2026-11-28T10:15:60Z",
        "2026-11-28T10:15Z",
        "2026-11-28T10:15:00.Z",
        "2026-11-28T10:15:00.1234567890Z",
        "2026-11-28T10:15:00+8:00",
        "2026-11-28T10:15:00+24:00",
        "2026-11-28t10:15:00z",
        "2026-02-30T10:15:00Z",
        "2026-11-28T10:15:00Z ",
        "2026-11-28",
    ] {
        assert_only(
            &s.validate_field("interviewed_at", &json!(bad)),
            "fields.interviewed_at",
            ProblemCode::InvalidDatetime,
        );
    }
    let report = set(
        satisfaction_canvass(),
        "/fields/interviewed_at",
        json!("2026-11-28T10:15"),
    );
    assert_only(
        &s.validate(&report),
        "fields.interviewed_at",
        ProblemCode::InvalidDatetime,
    );
}

#[test]
fn satisfaction_canvass_location_out_of_range_is_rejected_with_invalid_location() {
    let s = schema("satisfaction_canvass");
    for bad in [
        json!({"lat": 91.0, "lon": 114.3}),
        json!({"lat": 30.5, "lon": -180.5}),
        json!({"lat": 30.5}),
        json!({"lat": "30.5", "lon": 114.3}),
        json!({"lat": 30.5, "lon": 114.3, "accuracy_m": -1}),
        json!({"lat": 30.5, "lon": 114.3, "address": "南湖小区"}),
    ] {
        let report = set(satisfaction_canvass(), "/fields/location", bad.clone());
        assert_only(
            &s.validate(&report),
            "fields.location",
            ProblemCode::InvalidLocation,
        );
    }
    for good in [
        json!({"lat": -90, "lon": 180}),
        json!({"lat": 30.5, "lon": 114.3, "accuracy_m": 0}),
        json!({"lat": 30.5, "lon": 114.3, "accuracy_m": null}),
    ] {
        assert_valid(&s.validate_field("location", &good));
    }
    let report = set(
        satisfaction_canvass(),
        "/fields/location",
        json!("30.5,114.3"),
    );
    assert_only(
        &s.validate(&report),
        "fields.location",
        ProblemCode::WrongType,
    );
}

// ---- value types the built-in kinds do not use ----

fn household_survey() -> Schema {
    let json = json!({
        "kind": "household_survey",
        "version": 1,
        "label": {"zh": "入户调查", "en": "Household survey"},
        "fields": [
            {"id": "members", "label": {"zh": "家庭人口", "en": "Members"}, "type": "integer", "min": 1, "max": 30},
            {"id": "income", "label": {"zh": "年收入（万元）", "en": "Income"}, "type": "decimal", "min": 0},
            {"id": "insured", "label": {"zh": "是否参保", "en": "Insured"}, "type": "boolean"}
        ]
    });
    Schema::from_json(&json.to_string()).expect("household_survey loads")
}

#[test]
fn integer_outside_min_and_max_is_rejected_with_out_of_range() {
    let s = household_survey();
    assert_valid(&s.validate_field("members", &json!(30)));
    assert_valid(&s.validate_field("members", &json!(1)));
    let problems = s.validate_field("members", &json!(31));
    assert_only(&problems, "fields.members", ProblemCode::OutOfRange);
    assert!(
        problems[0].message.contains("between 1 and 30"),
        "{}",
        problems[0].message
    );
    assert_only(
        &s.validate_field("members", &json!(0)),
        "fields.members",
        ProblemCode::OutOfRange,
    );
}

#[test]
fn integer_with_a_fraction_is_rejected_with_wrong_type() {
    let s = household_survey();
    assert_only(
        &s.validate_field("members", &json!(2.5)),
        "fields.members",
        ProblemCode::WrongType,
    );
    assert_only(
        &s.validate_field("members", &json!("3")),
        "fields.members",
        ProblemCode::WrongType,
    );
}

#[test]
fn decimal_accepts_integers_and_enforces_its_minimum() {
    let s = household_survey();
    assert_valid(&s.validate_field("income", &json!(3)));
    assert_valid(&s.validate_field("income", &json!(3.75)));
    assert_only(
        &s.validate_field("income", &json!(-0.5)),
        "fields.income",
        ProblemCode::OutOfRange,
    );
    assert_only(
        &s.validate_field("income", &json!("3.75")),
        "fields.income",
        ProblemCode::WrongType,
    );
}

#[test]
fn boolean_must_be_true_or_false() {
    let s = household_survey();
    assert_valid(&s.validate_field("insured", &json!(false)));
    assert_only(
        &s.validate_field("insured", &json!("yes")),
        "fields.insured",
        ProblemCode::WrongType,
    );
    assert_only(
        &s.validate_field("insured", &json!(1)),
        "fields.insured",
        ProblemCode::WrongType,
    );
}
