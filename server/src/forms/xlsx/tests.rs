//! The workbook reader over workbooks written here: the built-in kinds read back as themselves,
//! each problem is placed on its cell, and hostile bytes are typed errors.

use gridsync_core::schema::{Access, FieldDef, FieldType, Registry, Schema};
use proptest::prelude::*;
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

use super::{
    CHOICES_COLUMNS, RULES_COLUMNS, SETTINGS_COLUMNS, SURVEY_COLUMNS, XlsxError,
    check_unpacked_size, read,
};

/// One sheet: its name and rows of cells, the header row first.
struct SheetRows {
    name: &'static str,
    rows: Vec<Vec<String>>,
}

fn sheet(name: &'static str, rows: &[&[&str]]) -> SheetRows {
    SheetRows {
        name,
        rows: rows
            .iter()
            .map(|r| r.iter().map(|c| (*c).to_owned()).collect())
            .collect(),
    }
}

fn workbook(sheets: &[SheetRows]) -> Vec<u8> {
    let mut book = Workbook::new();
    for s in sheets {
        let ws = book.add_worksheet();
        ws.set_name(s.name).unwrap();
        for (r, row) in s.rows.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                if !cell.is_empty() {
                    ws.write_string(r as u32, c as u16, cell).unwrap();
                }
            }
        }
    }
    book.save_to_buffer().unwrap()
}

/// A schema written the way an office would write it in Excel.
fn sheets_of(schema: &Schema) -> Vec<SheetRows> {
    let mut survey = vec![SURVEY_COLUMNS.map(str::to_owned).to_vec()];
    let mut choices = vec![CHOICES_COLUMNS.map(str::to_owned).to_vec()];
    let mut field_rows = |defs: &[FieldDef], list_prefix: &str, survey: &mut Vec<Vec<String>>| {
        for def in defs {
            let list = format!("{list_prefix}{}", def.id);
            let ty = match def.ty {
                FieldType::SingleChoice => format!("select_one {list}"),
                FieldType::MultipleChoice => format!("select_multiple {list}"),
                FieldType::Location => "geopoint".into(),
                other => other.to_string(),
            };
            for c in &def.choices {
                choices.push(vec![
                    list.clone(),
                    c.id.clone(),
                    c.label.zh.clone(),
                    c.label.en.clone(),
                ]);
            }
            let required = match &def.required_when {
                Some(when) => when
                    .any_of
                    .iter()
                    .map(|v| format!("selected(${{{}}}, '{v}')", when.field))
                    .collect::<Vec<_>>()
                    .join(" or "),
                None if def.required => "yes".into(),
                None => String::new(),
            };
            let mut constraint = Vec::new();
            if let Some(min) = def.min {
                constraint.push(format!(". >= {min}"));
            }
            if let Some(max) = def.max {
                constraint.push(format!(". <= {max}"));
            }
            if let Some(n) = def.max_len {
                constraint.push(format!("string-length(.) <= {n}"));
            }
            survey.push(vec![
                ty,
                def.id.clone(),
                def.label.zh.clone(),
                def.label.en.clone(),
                String::new(),
                def.hint.as_ref().map(|h| h.zh.clone()).unwrap_or_default(),
                def.hint.as_ref().map(|h| h.en.clone()).unwrap_or_default(),
                required,
                constraint.join(" and "),
                if def.sensitive {
                    "yes".into()
                } else {
                    String::new()
                },
                def.index.clone().unwrap_or_default(),
                def.media_types.join(", "),
                def.max_size.map(|n| n.to_string()).unwrap_or_default(),
            ]);
        }
    };
    field_rows(&schema.fields, "", &mut survey);
    if let Some(log) = &schema.log {
        survey.push(vec![
            "begin log".into(),
            log.id.clone(),
            log.label.zh.clone(),
            log.label.en.clone(),
        ]);
        field_rows(&log.fields, "log_", &mut survey);
        survey.push(vec!["end log".into()]);
    }
    let (access, assigned) = match &schema.access {
        Access::Scope if schema.anonymous => ("anonymous", ""),
        Access::Scope => ("scope", ""),
        Access::Restricted { assigned_field } => ("restricted", assigned_field.as_str()),
    };
    let settings = vec![
        SETTINGS_COLUMNS.map(str::to_owned).to_vec(),
        vec![
            schema.kind.clone(),
            schema.version.to_string(),
            schema.label.zh.clone(),
            schema.label.en.clone(),
            access.into(),
            assigned.into(),
            schema.status_field.clone().unwrap_or_default(),
        ],
    ];
    let mut rules = vec![RULES_COLUMNS.map(str::to_owned).to_vec()];
    for rule in &schema.rules {
        rules.push(vec![
            rule.code.clone(),
            rule.field.clone(),
            rule.any_of.join(" "),
            rule.message.zh.clone(),
            rule.message.en.clone(),
        ]);
    }
    vec![
        SheetRows {
            name: "survey",
            rows: survey,
        },
        SheetRows {
            name: "choices",
            rows: choices,
        },
        SheetRows {
            name: "settings",
            rows: settings,
        },
        SheetRows {
            name: "rules",
            rows: rules,
        },
    ]
}

/// The messages of a workbook that must be refused.
fn problems(bytes: &[u8]) -> Vec<String> {
    match read(bytes) {
        Err(XlsxError::Problems(p)) => p.iter().map(ToString::to_string).collect(),
        other => panic!("expected problems, got {other:?}"),
    }
}

fn settings(access: &str, assigned: &str) -> SheetRows {
    sheet(
        "settings",
        &[
            &SETTINGS_COLUMNS,
            &[
                "flood_check",
                "1",
                "汛期排查",
                "Flood check",
                access,
                assigned,
                "",
            ],
        ],
    )
}

#[test]
fn each_builtin_kind_written_as_a_workbook_reads_back_as_itself() {
    let registry = Registry::builtin();
    for schema in registry.all() {
        let read_back =
            read(&workbook(&sheets_of(schema))).unwrap_or_else(|e| panic!("{}: {e}", schema.kind));
        assert_eq!(read_back, *schema, "{}", schema.kind);
    }
}

#[test]
fn the_readme_example_is_a_valid_form() {
    let survey: [&[&str]; 9] = [
        &[
            "type",
            "name",
            "label::zh",
            "label::en",
            "hint::zh",
            "required",
            "constraint",
            "sensitive",
            "media_types",
            "max_size",
        ],
        &["select_one levels", "level", "水位", "Level", "", "yes"],
        &[
            "decimal",
            "depth",
            "水深（米）",
            "Depth (m)",
            "以最深处为准",
            "",
            ". >= 0 and . <= 20",
        ],
        &[
            "text",
            "contact",
            "联系人",
            "Contact",
            "",
            "selected(${level}, 'high')",
            "string-length(.) <= 100",
            "yes",
        ],
        &[
            "attachment",
            "photos",
            "现场照片",
            "Photos",
            "",
            "",
            "",
            "",
            "image/jpeg, image/png",
            "5242880",
        ],
        &["begin log", "checks", "巡查记录", "Checks"],
        &["date", "date", "巡查日期", "Date", "", "yes"],
        &["person_ref", "checker", "巡查人", "Checker", "", "yes"],
        &["end log"],
    ];
    let choices: [&[&str]; 3] = [
        &CHOICES_COLUMNS,
        &["levels", "low", "低", "Low"],
        &["levels", "high", "高", "High"],
    ];
    let settings: [&[&str]; 2] = [
        &SETTINGS_COLUMNS,
        &["flood_check", "1", "汛期排查", "Flood check", "scope"],
    ];
    let schema = read(&workbook(&[
        sheet("survey", &survey),
        sheet("choices", &choices),
        sheet("settings", &settings),
    ]))
    .unwrap();
    let depth = schema.field("depth").unwrap();
    assert_eq!((depth.min, depth.max), (Some(0.0), Some(20.0)));
    assert_eq!(
        depth.hint.as_ref().map(|h| h.zh.as_str()),
        Some("以最深处为准")
    );
    assert_eq!(schema.log.map(|l| l.fields.len()), Some(2));
}

#[test]
fn hints_are_read_in_both_languages_or_from_xlsforms_plain_column() {
    let bytes = workbook(&[
        sheet(
            "survey",
            &[
                &["type", "name", "label::zh", "hint", "hint::zh", "hint::en"],
                &[
                    "text",
                    "head",
                    "户主",
                    "",
                    "与户口簿一致",
                    "As in the household register",
                ],
                &["decimal", "lost", "损失", "单位：元", "", ""],
                &["text", "notes", "备注", "", "", ""],
            ],
        ),
        settings("scope", ""),
    ]);
    let schema = read(&bytes).expect("a valid form");
    let hint = |id: &str| schema.field(id).and_then(|f| f.hint.clone());
    assert_eq!(
        hint("head").map(|h| (h.zh, h.en)),
        Some(("与户口簿一致".into(), "As in the household register".into()))
    );
    assert_eq!(hint("lost").map(|h| h.zh), Some("单位：元".into()));
    assert_eq!(hint("notes"), None);

    let bytes = workbook(&[
        sheet(
            "survey",
            &[
                &["type", "name", "label::zh", "hint", "hint::zh", "hint::en"],
                &["text", "head", "户主", "一", "二", ""],
                &["text", "notes", "备注", "", "", "English only"],
            ],
        ),
        settings("scope", ""),
    ]);
    assert_eq!(
        problems(&bytes),
        [
            "survey!D2 (hint): give the hint once: in `hint` or in `hint::zh`, not both",
            "survey!E3 (hint::zh): a hint needs its Chinese text",
        ]
    );
}

#[test]
fn every_problem_of_a_workbook_is_named_by_sheet_row_and_column() {
    let bytes = workbook(&[
        sheet(
            "survey",
            &[
                &SURVEY_COLUMNS,
                &["text", "place", "", "Place"],
                &["select_one levels", "level", "等级"],
                &["photo", "picture", "照片"],
                &[
                    "integer",
                    "depth",
                    "水深",
                    "",
                    "",
                    "",
                    "",
                    "maybe",
                    ". > 3",
                    "sometimes",
                ],
                &["text", "place", "地点"],
                &["begin log", "checks", "检查记录"],
            ],
        ),
        sheet(
            "choices",
            &[
                &["list_name", "name", "label::zh"],
                &["risk", "low", "低"],
                &["risk", "low", "低"],
            ],
        ),
        settings("restricted", ""),
    ]);
    assert_eq!(
        problems(&bytes),
        [
            "choices!B3 (name): list `risk` has choice `low` already",
            "survey!C2 (label::zh): missing",
            "survey!A3 (type): the choices sheet has no list `levels`",
            "survey!A4 (type): unknown type `photo`; use text, integer, decimal, boolean, date, \
             datetime, geopoint, person_ref, attachment, select_one LIST, select_multiple LIST, \
             begin log or end log",
            "survey!H5 (required): `maybe` is not yes, no or selected(${field}, 'choice') joined \
             by `or` (one field)",
            "survey!J5 (sensitive): `sometimes` is not yes or no",
            "survey!I5 (constraint): `. > 3` is not one of `. >= N`, `. <= N` or \
             `string-length(.) <= N` (joined by `and`)",
            "survey!B6 (name): field `place` is declared above already",
            "survey!A7 (type): the log has no `end log` row",
            "settings!F2 (assigned_field): a restricted form names its assignee: the person_ref \
             field of the worker it is assigned to",
        ]
    );
}

#[test]
fn missing_and_unknown_columns_are_placed_on_the_header_row() {
    let bytes = workbook(&[
        sheet(
            "survey",
            &[
                &["type", "label::zh", "relevant"],
                &["text", "地点", "${status} = 'open'"],
            ],
        ),
        settings("scope", ""),
    ]);
    let found = problems(&bytes);
    assert_eq!(
        found[0],
        "survey!C1 (relevant): the schema language has no `relevant` column; use type, name, label::zh, label::en, hint, hint::zh, hint::en, required, constraint, sensitive, index, media_types, max_size"
    );
    assert_eq!(found[1], "survey!D1 (name): missing column `name`");
}

#[test]
fn what_sync_core_refuses_is_placed_on_the_cell_it_came_from() {
    let survey = sheet(
        "survey",
        &[
            &SURVEY_COLUMNS,
            &["text", "place", "地点"],
            &["text", "Bad-Id", "坏"],
        ],
    );
    assert_eq!(
        problems(&workbook(&[survey, settings("scope", "")])),
        [
            "survey!B3 (name): field id `Bad-Id` is invalid: use lowercase ASCII letters, digits and underscores, starting with a letter"
        ]
    );
    let survey = sheet("survey", &[&SURVEY_COLUMNS, &["text", "worker", "责任人"]]);
    assert_eq!(
        problems(&workbook(&[survey, settings("restricted", "worker")])),
        [
            "settings!F2 (assigned_field): flood_check: access.assigned_field names field `worker`, a text field; it must be person_ref"
        ]
    );
    let survey = sheet(
        "survey",
        &[
            &SURVEY_COLUMNS,
            &[
                "attachment",
                "photo",
                "照片",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "video/avi",
            ],
        ],
    );
    let found = problems(&workbook(&[survey, settings("scope", "")]));
    assert!(
        found[0].starts_with("survey!L2 (media_types): "),
        "{found:?}"
    );
}

/// A one-question form typed into Excel: a choice named by the number 1, `required` as the
/// boolean TRUE, the version as a number, and the title as text or, wrongly, as a date.
fn typed_workbook(title_as_date: bool) -> Vec<u8> {
    let mut book = Workbook::new();
    let survey = book.add_worksheet().set_name("survey").unwrap();
    survey.write_row(0, 0, SURVEY_COLUMNS).unwrap();
    survey
        .write_row(1, 0, ["select_one score", "score", "评分"])
        .unwrap();
    let required = SURVEY_COLUMNS
        .iter()
        .position(|c| *c == "required")
        .unwrap();
    survey.write_boolean(1, required as u16, true).unwrap();
    let choices = book.add_worksheet().set_name("choices").unwrap();
    choices
        .write_row(0, 0, ["list_name", "name", "label::zh"])
        .unwrap();
    choices.write_string(1, 0, "score").unwrap();
    choices.write_number(1, 1, 1).unwrap();
    choices.write_string(1, 2, "差").unwrap();
    let settings = book.add_worksheet().set_name("settings").unwrap();
    settings
        .write_row(0, 0, ["form_id", "version", "form_title::zh"])
        .unwrap();
    settings.write_string(1, 0, "score_card").unwrap();
    settings.write_number(1, 1, 2).unwrap();
    if title_as_date {
        let date = ExcelDateTime::from_ymd(2026, 1, 1).unwrap();
        let format = Format::new().set_num_format("yyyy-mm-dd");
        settings
            .write_datetime_with_format(1, 2, &date, &format)
            .unwrap();
    } else {
        settings.write_string(1, 2, "评分卡").unwrap();
    }
    book.save_to_buffer().unwrap()
}

#[test]
fn numbers_and_booleans_typed_into_cells_read_as_excel_shows_them() {
    let schema = read(&typed_workbook(false)).unwrap();
    assert_eq!(schema.version, 2);
    let score = schema.field("score").unwrap();
    assert!(score.required);
    assert_eq!(score.choices[0].id, "1");
    assert_eq!(
        problems(&typed_workbook(true)),
        ["settings!C2 (form_title::zh): a date or time where text or a number is expected"]
    );
}

#[test]
fn a_workbook_without_its_sheets_or_far_too_large_is_refused() {
    let only_survey = workbook(&[sheet("survey", &[&SURVEY_COLUMNS])]);
    assert!(matches!(
        read(&only_survey),
        Err(XlsxError::MissingSheet("settings"))
    ));
    let mut book = Workbook::new();
    let ws = book.add_worksheet().set_name("survey").unwrap();
    ws.write_string(100_000, 0, "text").unwrap();
    book.add_worksheet().set_name("settings").unwrap();
    assert!(matches!(
        read(&book.save_to_buffer().unwrap()),
        Err(XlsxError::TooLarge("survey"))
    ));
}

#[test]
fn a_workbook_that_unpacks_past_the_limit_is_refused_before_it_is_read() {
    let schema = Registry::builtin()
        .latest("dispute_check")
        .cloned()
        .unwrap();
    let bytes = workbook(&sheets_of(&schema));
    assert!(check_unpacked_size(&bytes, 64 * 1024 * 1024).is_ok());
    assert!(matches!(
        check_unpacked_size(&bytes, 1024),
        Err(XlsxError::Unpacks(1024))
    ));
}

#[test]
fn bytes_that_are_no_workbook_are_a_typed_error() {
    assert!(matches!(
        read(b"kind,version\n"),
        Err(XlsxError::NotXlsx(_))
    ));
    assert!(matches!(read(&[]), Err(XlsxError::NotXlsx(_))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        prop_assert!(read(&bytes).is_err());
    }

    #[test]
    fn a_truncated_or_damaged_workbook_never_panics(cut in 0.0f64..1.0, flip in any::<usize>()) {
        let schema = Registry::builtin().latest("dispute_check").cloned().unwrap();
        let mut bytes = workbook(&sheets_of(&schema));
        let len = bytes.len();
        let at = flip % len;
        bytes[at] ^= 0x5a;
        bytes.truncate((len as f64 * cut) as usize);
        let _ = read(&bytes);
    }
}
