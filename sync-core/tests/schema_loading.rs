//! Loading schema files: what a consistent kind looks like, and each way a file is refused.

use gridsync_core::schema::{Access, FieldType, Registry, Schema, SchemaError};
use serde_json::{Value, json};

/// A small consistent kind with a log and a rule, to be broken one way per test.
fn case_file() -> Value {
    json!({
        "kind": "case_file",
        "version": 1,
        "label": {"zh": "案件", "en": "Case file"},
        "status_field": "status",
        "fields": [
            {"id": "title", "label": {"zh": "标题", "en": "Title"}, "type": "text", "required": true, "max_len": 100},
            {"id": "owner", "label": {"zh": "负责人", "en": "Owner"}, "type": "person_ref"},
            {"id": "status", "label": {"zh": "状态", "en": "Status"}, "type": "single_choice", "required": true,
             "choices": [
                {"id": "open", "label": {"zh": "办理中", "en": "Open"}},
                {"id": "closed", "label": {"zh": "已办结", "en": "Closed"}}
             ]},
            {"id": "closed_on", "label": {"zh": "办结日期", "en": "Closed on"}, "type": "date",
             "required_when": {"field": "status", "any_of": ["closed"]}}
        ],
        "log": {
            "id": "steps",
            "label": {"zh": "办理记录", "en": "Steps"},
            "fields": [
                {"id": "date", "label": {"zh": "日期", "en": "Date"}, "type": "date", "required": true}
            ]
        },
        "rules": [
            {"code": "step_after_closed", "field": "status", "any_of": ["closed"],
             "message": {"zh": "案件已办结，同时新增了办理记录", "en": "A step was added to a closed case"}}
        ]
    })
}

/// A small anonymous kind, to be broken one way per test.
fn poll() -> Value {
    json!({
        "kind": "poll",
        "version": 1,
        "label": {"zh": "问卷", "en": "Poll"},
        "anonymous": true,
        "fields": [
            {"id": "interviewer", "label": {"zh": "调查员", "en": "Interviewer"}, "type": "person_ref", "required": true},
            {"id": "comment", "label": {"zh": "意见", "en": "Comment"}, "type": "text"}
        ]
    })
}

fn load(json: &Value) -> Result<Schema, SchemaError> {
    Schema::from_json(&json.to_string())
}

fn field_mut<'a>(schema: &'a mut Value, id: &str) -> &'a mut serde_json::Map<String, Value> {
    schema["fields"]
        .as_array_mut()
        .and_then(|fields| fields.iter_mut().find(|f| f["id"] == id))
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no field {id}"))
}

#[test]
fn consistent_schema_loads_with_defaults() {
    let schema = load(&case_file()).expect("case_file loads");
    assert_eq!(schema.access, Access::Scope);
    assert!(!schema.anonymous);
    let owner = schema.field("owner").expect("owner is declared");
    assert_eq!(owner.ty, FieldType::PersonRef);
    assert!(!owner.required && !owner.sensitive && owner.choices.is_empty());
    assert_eq!(
        schema.log_field("date").map(|f| f.ty),
        Some(FieldType::Date)
    );
    assert!(schema.log_field("title").is_none());
    assert!(load(&poll()).is_ok());
}

#[test]
fn malformed_json_is_refused_with_serdes_message() {
    let err = Schema::from_json("{\"kind\": \"x\",").expect_err("truncated JSON");
    assert!(
        matches!(&err, SchemaError::InvalidJson(m) if m.contains("EOF")),
        "{err}"
    );
    let err = Schema::from_json("[]").expect_err("not an object");
    assert!(matches!(err, SchemaError::InvalidJson(_)), "{err}");
}

#[test]
fn misspelt_attribute_is_refused_rather_than_ignored() {
    let mut schema = case_file();
    field_mut(&mut schema, "title").insert("requird".into(), json!(true));
    let err = load(&schema).expect_err("misspelt key");
    assert!(
        matches!(&err, SchemaError::InvalidJson(m) if m.contains("requird")),
        "{err}"
    );
}

#[test]
fn unknown_field_type_is_refused() {
    let mut schema = case_file();
    field_mut(&mut schema, "title").insert("type".into(), json!("photo"));
    assert!(matches!(load(&schema), Err(SchemaError::InvalidJson(m)) if m.contains("photo")));
}

#[test]
fn empty_kind_is_refused() {
    let mut schema = case_file();
    schema["kind"] = json!("");
    assert_eq!(load(&schema), Err(SchemaError::EmptyKind));
}

#[test]
fn ids_that_would_not_survive_as_keys_and_columns_are_refused() {
    let mut schema = case_file();
    schema["kind"] = json!("Case File");
    assert!(matches!(
        load(&schema),
        Err(SchemaError::InvalidId { what: "kind", .. })
    ));
    let mut schema = case_file();
    field_mut(&mut schema, "title").insert("id".into(), json!("标题"));
    assert!(matches!(
        load(&schema),
        Err(SchemaError::InvalidId { what: "field", .. })
    ));
}

#[test]
fn version_zero_is_refused() {
    let mut schema = case_file();
    schema["version"] = json!(0);
    assert!(matches!(
        load(&schema),
        Err(SchemaError::InvalidVersion { .. })
    ));
}

#[test]
fn field_without_a_chinese_label_is_refused() {
    let mut schema = case_file();
    field_mut(&mut schema, "title").insert("label".into(), json!({"zh": "", "en": "Title"}));
    assert!(
        matches!(load(&schema), Err(SchemaError::MissingLabel { what, .. }) if what.contains("title"))
    );
}

#[test]
fn duplicate_field_id_is_refused() {
    let mut schema = case_file();
    field_mut(&mut schema, "owner").insert("id".into(), json!("title"));
    assert_eq!(
        load(&schema),
        Err(SchemaError::DuplicateField {
            kind: "case_file".into(),
            field: "title".into()
        })
    );
}

#[test]
fn duplicate_log_field_id_is_refused() {
    let mut schema = case_file();
    let date = schema["log"]["fields"][0].clone();
    schema["log"]["fields"]
        .as_array_mut()
        .expect("log fields")
        .push(date);
    assert!(
        matches!(load(&schema), Err(SchemaError::DuplicateField { field, .. }) if field == "date")
    );
}

#[test]
fn choice_field_without_choices_is_refused() {
    let mut schema = case_file();
    field_mut(&mut schema, "status").remove("choices");
    assert!(matches!(
        load(&schema),
        Err(SchemaError::MissingChoices { field, ty: FieldType::SingleChoice, .. }) if field == "status"
    ));
}

#[test]
fn choices_on_a_text_field_are_refused() {
    let mut schema = case_file();
    field_mut(&mut schema, "title").insert(
        "choices".into(),
        json!([{"id": "a", "label": {"zh": "甲", "en": "A"}}]),
    );
    assert!(
        matches!(load(&schema), Err(SchemaError::UnexpectedChoices { field, .. }) if field == "title")
    );
}

#[test]
fn duplicate_choice_is_refused() {
    let mut schema = case_file();
    field_mut(&mut schema, "status").insert(
        "choices".into(),
        json!([{"id": "open", "label": {"zh": "办理中", "en": "Open"}}, {"id": "open", "label": {"zh": "开", "en": "Open"}}]),
    );
    assert!(
        matches!(load(&schema), Err(SchemaError::DuplicateChoice { choice, .. }) if choice == "open")
    );
}

#[test]
fn range_on_a_text_field_or_min_above_max_is_refused() {
    let mut schema = case_file();
    field_mut(&mut schema, "title").insert("min".into(), json!(1));
    assert!(
        matches!(load(&schema), Err(SchemaError::InvalidConstraint { field, .. }) if field == "title")
    );

    let mut schema = case_file();
    schema["fields"].as_array_mut().expect("fields").push(
        json!({"id": "count", "label": {"zh": "数量", "en": "Count"}, "type": "integer", "min": 5, "max": 1}),
    );
    assert!(
        matches!(load(&schema), Err(SchemaError::InvalidConstraint { field, .. }) if field == "count")
    );

    let mut schema = case_file();
    field_mut(&mut schema, "closed_on").insert("max_len".into(), json!(10));
    assert!(
        matches!(load(&schema), Err(SchemaError::InvalidConstraint { field, .. }) if field == "closed_on")
    );
}

#[test]
fn index_on_a_field_that_is_not_a_single_choice_is_refused() {
    let mut schema = case_file();
    field_mut(&mut schema, "title").insert("index".into(), json!("satisfaction"));
    assert!(
        matches!(load(&schema), Err(SchemaError::InvalidConstraint { field, .. }) if field == "title")
    );
}

#[test]
fn required_when_naming_an_unknown_field_is_refused() {
    let mut schema = case_file();
    field_mut(&mut schema, "closed_on").insert(
        "required_when".into(),
        json!({"field": "state", "any_of": ["closed"]}),
    );
    assert!(matches!(
        load(&schema),
        Err(SchemaError::UnknownFieldReference { field, context, .. })
            if field == "state" && context.contains("closed_on")
    ));
}

#[test]
fn required_when_listing_an_undeclared_choice_is_refused() {
    let mut schema = case_file();
    field_mut(&mut schema, "closed_on").insert(
        "required_when".into(),
        json!({"field": "status", "any_of": ["clsoed"]}),
    );
    assert!(matches!(
        load(&schema),
        Err(SchemaError::UnknownChoiceReference { choice, .. }) if choice == "clsoed"
    ));
}

#[test]
fn required_when_on_a_text_field_or_with_no_values_is_refused() {
    let mut schema = case_file();
    field_mut(&mut schema, "closed_on").insert(
        "required_when".into(),
        json!({"field": "title", "any_of": ["x"]}),
    );
    assert!(
        matches!(load(&schema), Err(SchemaError::WrongReferenceType { field, .. }) if field == "title")
    );

    let mut schema = case_file();
    field_mut(&mut schema, "closed_on").insert(
        "required_when".into(),
        json!({"field": "status", "any_of": []}),
    );
    assert!(matches!(load(&schema), Err(SchemaError::EmptyAnyOf { .. })));
}

#[test]
fn log_required_when_must_name_a_field_of_the_same_entry() {
    let mut schema = case_file();
    schema["log"]["fields"][0]["required_when"] = json!({"field": "status", "any_of": ["closed"]});
    assert!(
        matches!(load(&schema), Err(SchemaError::UnknownFieldReference { field, .. }) if field == "status")
    );
}

#[test]
fn rule_naming_an_unknown_field_is_refused() {
    let mut schema = case_file();
    schema["rules"][0]["field"] = json!("state");
    assert!(matches!(
        load(&schema),
        Err(SchemaError::UnknownFieldReference { field, context, .. })
            if field == "state" && context.contains("step_after_closed")
    ));
}

#[test]
fn rule_listing_an_undeclared_choice_is_refused() {
    let mut schema = case_file();
    schema["rules"][0]["any_of"] = json!(["done"]);
    assert!(
        matches!(load(&schema), Err(SchemaError::UnknownChoiceReference { choice, .. }) if choice == "done")
    );
}

#[test]
fn rule_on_a_kind_without_log_is_refused() {
    let mut schema = case_file();
    schema.as_object_mut().expect("object").remove("log");
    assert!(
        matches!(load(&schema), Err(SchemaError::RuleWithoutLog { code, .. }) if code == "step_after_closed")
    );
}

#[test]
fn duplicate_rule_code_is_refused() {
    let mut schema = case_file();
    let rule = schema["rules"][0].clone();
    schema["rules"].as_array_mut().expect("rules").push(rule);
    assert!(matches!(
        load(&schema),
        Err(SchemaError::DuplicateRule { .. })
    ));
}

#[test]
fn status_field_must_be_a_declared_single_choice() {
    let mut schema = case_file();
    schema["status_field"] = json!("state");
    assert!(
        matches!(load(&schema), Err(SchemaError::UnknownFieldReference { field, .. }) if field == "state")
    );
    let mut schema = case_file();
    schema["status_field"] = json!("title");
    assert!(
        matches!(load(&schema), Err(SchemaError::WrongReferenceType { field, .. }) if field == "title")
    );
}

#[test]
fn restricted_access_must_name_a_declared_person_ref() {
    let mut schema = case_file();
    schema["access"] = json!({"mode": "restricted", "assigned_field": "owner"});
    assert_eq!(
        load(&schema).map(|s| s.access),
        Ok(Access::Restricted {
            assigned_field: "owner".into()
        })
    );
    schema["access"] = json!({"mode": "restricted", "assigned_field": "worker"});
    assert!(
        matches!(load(&schema), Err(SchemaError::UnknownFieldReference { field, .. }) if field == "worker")
    );
    schema["access"] = json!({"mode": "restricted", "assigned_field": "title"});
    assert!(
        matches!(load(&schema), Err(SchemaError::WrongReferenceType { field, .. }) if field == "title")
    );
    schema["access"] = json!({"mode": "restricted"});
    assert!(matches!(load(&schema), Err(SchemaError::InvalidJson(_))));
    schema["access"] = json!({"mode": "secret"});
    assert!(matches!(load(&schema), Err(SchemaError::InvalidJson(_))));
}

#[test]
fn log_field_named_like_an_entry_key_is_refused() {
    let mut schema = case_file();
    schema["log"]["fields"][0]["id"] = json!("created_by");
    assert!(
        matches!(load(&schema), Err(SchemaError::ReservedLogField { field, .. }) if field == "created_by")
    );
    // The keys that mark a removed entry are the document's too.
    schema["log"]["fields"][0]["id"] = json!("removed_by");
    assert!(
        matches!(load(&schema), Err(SchemaError::ReservedLogField { field, .. }) if field == "removed_by")
    );
}

#[test]
fn a_rule_taking_the_code_of_the_removal_flag_is_refused() {
    let mut schema = case_file();
    schema["rules"][0]["code"] = json!("edited_after_removal");
    assert!(
        matches!(load(&schema), Err(SchemaError::ReservedRule { code, .. }) if code == "edited_after_removal")
    );
}

#[test]
fn anonymous_kind_with_a_sensitive_field_is_refused() {
    let mut schema = poll();
    field_mut(&mut schema, "comment").insert("sensitive".into(), json!(true));
    assert!(matches!(
        load(&schema),
        Err(SchemaError::SensitiveFieldInAnonymousKind { field, .. }) if field == "comment"
    ));
}

#[test]
fn anonymous_kind_with_a_field_for_the_respondents_identity_is_refused() {
    for (id, zh) in [
        ("respondent_name", "受访者"),
        ("phone", "联系方式"),
        ("respondent_id_number", "证件"),
        ("contact", "手机号"),
        ("home", "家庭住址"),
    ] {
        let mut schema = poll();
        schema["fields"]
            .as_array_mut()
            .expect("fields")
            .push(json!({"id": id, "label": {"zh": zh, "en": "x"}, "type": "text"}));
        assert!(
            matches!(load(&schema), Err(SchemaError::IdentifyingFieldInAnonymousKind { ref field, .. }) if field == id),
            "{id} / {zh} should be refused"
        );
        schema["anonymous"] = json!(false);
        assert!(
            load(&schema).is_ok(),
            "{id} is fine in a kind that is not anonymous"
        );
    }
}

#[test]
fn registry_refuses_the_same_kind_and_version_twice() {
    let mut registry = Registry::new();
    registry
        .add_json(&case_file().to_string())
        .expect("first load");
    assert_eq!(
        registry.add_json(&case_file().to_string()),
        Err(SchemaError::DuplicateKindVersion {
            kind: "case_file".into(),
            version: 1
        })
    );
    let mut builtin = Registry::builtin();
    let again = serde_json::to_string(builtin.latest("dispute_check").expect("built in"))
        .expect("serialises");
    assert!(matches!(
        builtin.add_json(&again),
        Err(SchemaError::DuplicateKindVersion { .. })
    ));
}

#[test]
fn registry_keeps_old_versions_and_serves_the_newest_as_latest() {
    let mut registry = Registry::new();
    registry.add_json(&case_file().to_string()).expect("v1");
    let mut v2 = case_file();
    v2["version"] = json!(2);
    field_mut(&mut v2, "title").insert("max_len".into(), json!(200));
    registry.add_json(&v2.to_string()).expect("v2");
    registry.add_json(&poll().to_string()).expect("poll");

    assert_eq!(registry.latest("case_file").map(|s| s.version), Some(2));
    assert_eq!(
        registry
            .get("case_file", 1)
            .and_then(|s| s.field("title")?.max_len),
        Some(100)
    );
    let kinds: Vec<(&str, u32)> = registry
        .kinds()
        .map(|s| (s.kind.as_str(), s.version))
        .collect();
    assert_eq!(kinds, [("case_file", 2), ("poll", 1)]);
}

#[test]
fn registry_refuses_an_invalid_file_and_stays_unchanged() {
    let mut registry = Registry::new();
    let mut schema = case_file();
    field_mut(&mut schema, "status").remove("choices");
    assert!(registry.add_json(&schema.to_string()).is_err());
    assert_eq!(registry.kinds().count(), 0);
    assert!(registry.get("case_file", 1).is_none());
}

#[test]
fn schema_errors_name_the_kind_and_field() {
    let mut schema = case_file();
    field_mut(&mut schema, "status").remove("choices");
    let message = load(&schema).expect_err("no choices").to_string();
    assert!(
        message.contains("case_file") && message.contains("status"),
        "{message}"
    );
}

#[test]
fn retired_version_stays_readable_but_new_reports_use_the_newest_published_one() {
    let mut registry = Registry::new();
    let v1 = case_file();
    let mut v2 = case_file();
    v2["version"] = json!(2);
    registry.add_json(&v1.to_string()).unwrap();
    registry.add_json(&v2.to_string()).unwrap();
    assert_eq!(registry.latest("case_file").map(|s| s.version), Some(2));

    assert!(registry.retire("case_file", 2));
    assert_eq!(registry.latest("case_file").map(|s| s.version), Some(1));
    assert!(
        registry.get("case_file", 2).is_some(),
        "retired stays readable"
    );
    assert_eq!(registry.all().count(), 2);

    assert!(registry.retire("case_file", 1));
    assert!(registry.latest("case_file").is_none());
    assert_eq!(registry.kinds().count(), 0, "no version left to write");
    assert!(
        !registry.retire("case_file", 3),
        "an unknown version cannot be retired"
    );
}

#[test]
fn the_span_of_a_kind_holds_every_field_and_choice_of_its_versions_newest_first() {
    let mut registry = Registry::new();
    let v1 = case_file();
    // v2 relabels the title, adds a priority before the status and a choice to the status, and
    // (the registry does not judge versions) leaves out the owner, which only v1 then has.
    let mut v2 = case_file();
    v2["version"] = json!(2);
    field_mut(&mut v2, "title").insert("label".into(), json!({"zh": "事由", "en": "Subject"}));
    let fields = v2["fields"].as_array_mut().unwrap();
    fields.retain(|f| f["id"] != "owner");
    fields.insert(
        1,
        json!({"id": "priority", "label": {"zh": "优先级", "en": "Priority"}, "type": "integer"}),
    );
    field_mut(&mut v2, "status")["choices"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "suspended", "label": {"zh": "中止", "en": "Suspended"}}));
    registry.add_json(&v1.to_string()).unwrap();
    registry.add_json(&v2.to_string()).unwrap();

    let span = registry.span("case_file").expect("a kind with versions");
    let ids: Vec<&str> = span.fields.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["title", "priority", "status", "closed_on", "owner"]);
    assert_eq!(span.version, 2);
    assert_eq!(
        span.field("title").unwrap().label.en,
        "Subject",
        "newest label"
    );
    let choices: Vec<&str> = span
        .field("status")
        .unwrap()
        .choices
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(choices, ["open", "closed", "suspended"]);
    assert_eq!(span.status_field.as_deref(), Some("status"));

    // A kind whose every version is retired still spans them: its reports stay listed.
    assert!(registry.retire("case_file", 1) && registry.retire("case_file", 2));
    assert!(registry.latest("case_file").is_none());
    assert_eq!(registry.span("case_file").map(|s| s.fields.len()), Some(5));
    assert!(registry.span("no_such_kind").is_none());
}
