//! Forms written in Excel, laid out like XLSForm (`survey`, `choices`, `settings` and an optional
//! `rules` sheet), turned into the schema language and checked by sync-core's own checks.
//!
//! The reader reports every problem it can place in one pass; sync-core's checks then judge the
//! result, and the one problem they find is placed back on the cell it came from.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{self, Cursor, Read};

use calamine::{Data, Range, Reader, Xlsx};
use gridsync_core::schema::{
    Access, Choice, ConcurrencyRule, Condition, FieldDef, FieldType, Label, LogDef, Schema,
    SchemaError,
};

/// A form has tens of rows; a sheet far larger is the wrong file, and refusing it bounds the work.
const MAX_ROWS: u32 = 5000;
const MAX_COLUMNS: u32 = 100;
/// The most a workbook may unpack to. A form unpacks to well under a megabyte, and calamine holds
/// a sheet's XML in memory, so a zip bomb must be refused before calamine sees it.
const MAX_UNPACKED: u64 = 64 * 1024 * 1024;

const SURVEY: &str = "survey";
const CHOICES: &str = "choices";
const SETTINGS: &str = "settings";
const RULES: &str = "rules";

const SURVEY_COLUMNS: [&str; 13] = [
    "type",
    "name",
    "label::zh",
    "label::en",
    "hint",
    "hint::zh",
    "hint::en",
    "required",
    "constraint",
    "sensitive",
    "index",
    "media_types",
    "max_size",
];
const CHOICES_COLUMNS: [&str; 4] = ["list_name", "name", "label::zh", "label::en"];
const SETTINGS_COLUMNS: [&str; 7] = [
    "form_id",
    "version",
    "form_title::zh",
    "form_title::en",
    "access",
    "assigned_field",
    "status_field",
];
const RULES_COLUMNS: [&str; 5] = ["code", "field", "any_of", "message::zh", "message::en"];

/// A cell of the workbook, named as Excel shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub sheet: &'static str,
    /// Counted from 1, as Excel numbers rows.
    pub row: u32,
    /// Counted from 0; shown as Excel's column letters.
    pub column: u32,
    /// The column's header, so a message reads without the workbook at hand.
    pub header: String,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut letters = Vec::new();
        let mut n = self.column + 1;
        while n > 0 {
            let digit = u8::try_from((n - 1) % 26).unwrap_or(0);
            letters.push(char::from(b'A' + digit));
            n = (n - 1) / 26;
        }
        let column: String = letters.iter().rev().collect();
        write!(f, "{}!{column}{} ({})", self.sheet, self.row, self.header)
    }
}

/// One thing wrong with the workbook, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub place: Place,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum XlsxError {
    #[error("not an XLSX workbook ({0}): save the form in Excel as an .xlsx file")]
    NotXlsx(String),
    #[error("the workbook has no `{0}` sheet")]
    MissingSheet(&'static str),
    #[error(
        "sheet `{0}` is larger than a form can be (at most {MAX_ROWS} rows and {MAX_COLUMNS} \
         columns)"
    )]
    TooLarge(&'static str),
    #[error("the workbook unpacks to more than {0} bytes, far more than a form")]
    Unpacks(u64),
    #[error("the form could not be written as schema JSON: {0}")]
    Encode(serde_json::Error),
    /// Every problem found, one per line.
    #[error(
        "the workbook has problems; fix each and check again:\n{}",
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
    )]
    Problems(Vec<Problem>),
}

/// Reads a workbook into a schema that has passed sync-core's checks.
pub fn read(bytes: &[u8]) -> Result<Schema, XlsxError> {
    check_unpacked_size(bytes, MAX_UNPACKED)?;
    let mut workbook =
        Xlsx::new(Cursor::new(bytes)).map_err(|e| XlsxError::NotXlsx(e.to_string()))?;
    let mut problems = Vec::new();
    let survey = Sheet::open(&mut workbook, SURVEY, &SURVEY_COLUMNS, &mut problems)?
        .ok_or(XlsxError::MissingSheet(SURVEY))?;
    let settings = Sheet::open(&mut workbook, SETTINGS, &SETTINGS_COLUMNS, &mut problems)?
        .ok_or(XlsxError::MissingSheet(SETTINGS))?;
    let choices = Sheet::open(&mut workbook, CHOICES, &CHOICES_COLUMNS, &mut problems)?;
    let rules = Sheet::open(&mut workbook, RULES, &RULES_COLUMNS, &mut problems)?;

    let sheets = Sheets {
        survey,
        settings,
        choices,
        rules,
    };
    let mut form = Form {
        problems,
        field_rows: Vec::new(),
        log_row: None,
        choice_rows: Vec::new(),
        rule_rows: Vec::new(),
    };
    let lists = form.read_choices(sheets.choices.as_ref());
    let (fields, log) = form.read_survey(&sheets.survey, &lists);
    let rules = form.read_rules(sheets.rules.as_ref());
    let schema = form.read_settings(&sheets.settings, fields, log, rules);
    if !form.problems.is_empty() {
        return Err(XlsxError::Problems(form.problems));
    }
    // Through JSON and `Schema::from_json`, so a workbook means exactly what the same JSON file
    // would, and passes the same checks.
    let json = serde_json::to_string(&schema).map_err(XlsxError::Encode)?;
    Schema::from_json(&json).map_err(|e| {
        XlsxError::Problems(vec![Problem {
            place: form.locate(&sheets, &e),
            message: e.to_string(),
        }])
    })
}

/// Unpacks every entry of the zip into nothing, counting, and stops past `limit`.
fn check_unpacked_size(bytes: &[u8], limit: u64) -> Result<(), XlsxError> {
    let not_xlsx = |e: &dyn fmt::Display| XlsxError::NotXlsx(e.to_string());
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| not_xlsx(&e))?;
    let mut total = 0;
    for index in 0..archive.len() {
        let entry = archive.by_index(index).map_err(|e| not_xlsx(&e))?;
        let mut bounded = entry.take(limit - total + 1);
        total += io::copy(&mut bounded, &mut io::sink()).map_err(|e| not_xlsx(&e))?;
        if total > limit {
            return Err(XlsxError::Unpacks(limit));
        }
    }
    Ok(())
}

/// One sheet with its header row (the first row, as in XLSForm).
struct Sheet {
    name: &'static str,
    cells: Range<Data>,
    columns: HashMap<String, u32>,
    /// The number of columns: where a missing column would go.
    width: u32,
    /// The last row holding anything, counted from 0.
    last_row: u32,
}

impl Sheet {
    /// The sheet named `name` (in any letter case), or `None` when the workbook has none.
    fn open(
        workbook: &mut Xlsx<Cursor<&[u8]>>,
        name: &'static str,
        known: &[&str],
        problems: &mut Vec<Problem>,
    ) -> Result<Option<Sheet>, XlsxError> {
        let Some(actual) = workbook
            .sheet_names()
            .into_iter()
            .find(|s| s.trim().eq_ignore_ascii_case(name))
        else {
            return Ok(None);
        };
        let cells = workbook
            .worksheet_range(&actual)
            .map_err(|e| XlsxError::NotXlsx(e.to_string()))?;
        let (last_row, last_column) = cells.end().unwrap_or_default();
        if last_row >= MAX_ROWS || last_column >= MAX_COLUMNS {
            return Err(XlsxError::TooLarge(name));
        }
        let mut sheet = Sheet {
            name,
            cells,
            columns: HashMap::new(),
            width: last_column + 1,
            last_row,
        };
        for column in 0..sheet.width {
            let Ok(Some(header)) = sheet.cell(0, column) else {
                continue;
            };
            let header = header.to_lowercase();
            if known.contains(&header.as_str()) {
                sheet.columns.insert(header, column);
            } else if (1..=last_row).any(|row| sheet.is_filled(row, column)) {
                // Refused rather than dropped, so nothing an office wrote is silently ignored.
                problems.push(Problem {
                    place: sheet.place_at(0, column, &header),
                    message: format!(
                        "the schema language has no `{header}` column; use {}",
                        known.join(", ")
                    ),
                });
            }
        }
        // Each sheet's first two columns identify its rows (type and name, list and name, kind
        // and version, code and field); without them no row can be read.
        for required in &known[..known.len().min(2)] {
            if !sheet.columns.contains_key(*required) {
                problems.push(Problem {
                    place: sheet.place(0, required),
                    message: format!("missing column `{required}`"),
                });
            }
        }
        Ok(Some(sheet))
    }

    fn place_at(&self, row: u32, column: u32, header: &str) -> Place {
        Place {
            sheet: self.name,
            row: row + 1,
            column,
            header: header.to_owned(),
        }
    }

    /// The cell of `header` in `row` (counted from 0).
    fn place(&self, row: u32, header: &str) -> Place {
        let column = self.columns.get(header).copied().unwrap_or(self.width);
        self.place_at(row, column, header)
    }

    /// A cell as text, `None` when empty; `Err` says what it holds when that cannot be text (a
    /// date, an error value such as #N/A).
    fn cell(&self, row: u32, column: u32) -> Result<Option<String>, String> {
        let text = match self.cells.get_value((row, column)) {
            Some(Data::String(s)) => s.trim().to_owned(),
            Some(Data::Int(i)) => i.to_string(),
            // Excel stores whole numbers typed into a cell (a choice `1`, a version) as floats,
            // which print without a fraction.
            Some(Data::Float(f)) => f.to_string(),
            Some(Data::Bool(b)) => b.to_string(),
            None | Some(Data::Empty) => String::new(),
            Some(Data::DateTime(_) | Data::DateTimeIso(_) | Data::DurationIso(_)) => {
                return Err("a date or time".to_owned());
            }
            Some(Data::Error(e)) => return Err(format!("the error value {e}")),
        };
        Ok((!text.is_empty()).then_some(text))
    }

    /// Whether a cell holds anything at all.
    fn is_filled(&self, row: u32, column: u32) -> bool {
        !matches!(self.cell(row, column), Ok(None))
    }

    /// The text of the cell of `header` in `row`; `None` when empty, or when it cannot be text,
    /// which is reported.
    fn text(&self, row: u32, header: &str, problems: &mut Vec<Problem>) -> Option<String> {
        let column = *self.columns.get(header)?;
        self.cell(row, column).unwrap_or_else(|what| {
            problems.push(Problem {
                place: self.place(row, header),
                message: format!("{what} where text or a number is expected"),
            });
            None
        })
    }

    /// The rows below the header that hold anything in a known column, counted from 0.
    fn rows(&self) -> impl Iterator<Item = u32> + '_ {
        (1..=self.last_row).filter(|row| {
            self.columns
                .values()
                .any(|column| self.is_filled(*row, *column))
        })
    }
}

/// A field's row on the survey sheet, to place sync-core's findings.
struct FieldRow {
    id: String,
    row: u32,
}

/// A choice's row on the choices sheet.
struct ChoiceRow {
    name: String,
    row: u32,
}

/// A rule's row on the rules sheet.
struct RuleRow {
    code: String,
    row: u32,
}

/// A choice list of the choices sheet.
type Lists = BTreeMap<String, Vec<Choice>>;

/// The sheets of the workbook; `choices` and `rules` may be left out.
struct Sheets {
    survey: Sheet,
    settings: Sheet,
    choices: Option<Sheet>,
    rules: Option<Sheet>,
}

/// The problems found so far, and where each part of the form came from.
struct Form {
    problems: Vec<Problem>,
    field_rows: Vec<FieldRow>,
    log_row: Option<u32>,
    choice_rows: Vec<ChoiceRow>,
    rule_rows: Vec<RuleRow>,
}

impl Form {
    fn problem(&mut self, place: Place, message: impl Into<String>) {
        self.problems.push(Problem {
            place,
            message: message.into(),
        });
    }

    fn read_choices(&mut self, sheet: Option<&Sheet>) -> Lists {
        let mut lists = Lists::new();
        let Some(sheet) = sheet else {
            return lists;
        };
        for row in sheet.rows() {
            let list = self.required_text(sheet, row, "list_name");
            let name = self.required_text(sheet, row, "name");
            let label = self.label(sheet, row, "label");
            let (Some(list), Some(name)) = (list, name) else {
                continue;
            };
            let choices = lists.entry(list.clone()).or_default();
            if choices.iter().any(|c| c.id == name) {
                self.problem(
                    sheet.place(row, "name"),
                    format!("list `{list}` has choice `{name}` already"),
                );
                continue;
            }
            self.choice_rows.push(ChoiceRow {
                name: name.clone(),
                row,
            });
            choices.push(Choice { id: name, label });
        }
        lists
    }

    fn read_survey(&mut self, sheet: &Sheet, lists: &Lists) -> (Vec<FieldDef>, Option<LogDef>) {
        let mut fields = Vec::new();
        let mut log: Option<LogDef> = None;
        let mut open_log: Option<LogDef> = None;
        for row in sheet.rows() {
            let Some(ty) = self.required_text(sheet, row, "type") else {
                continue;
            };
            let ty = ty.split_whitespace().collect::<Vec<_>>().join(" ");
            match ty.as_str() {
                "begin log" | "begin repeat" => {
                    if log.is_some() || open_log.is_some() {
                        self.problem(sheet.place(row, "type"), "a form has at most one log");
                        continue;
                    }
                    self.log_row = Some(row);
                    open_log = Some(LogDef {
                        id: self.required_text(sheet, row, "name").unwrap_or_default(),
                        label: self.label(sheet, row, "label"),
                        fields: Vec::new(),
                    });
                }
                "end log" | "end repeat" => match open_log.take() {
                    Some(done) => log = Some(done),
                    None => self.problem(sheet.place(row, "type"), "no `begin log` before it"),
                },
                _ => {
                    let Some(def) = self.field(sheet, row, &ty, lists) else {
                        continue;
                    };
                    let scope = open_log.as_mut().map_or(&mut fields, |l| &mut l.fields);
                    if scope.iter().any(|f| f.id == def.id) {
                        self.problem(
                            sheet.place(row, "name"),
                            format!("field `{}` is declared above already", def.id),
                        );
                        continue;
                    }
                    self.field_rows.push(FieldRow {
                        id: def.id.clone(),
                        row,
                    });
                    scope.push(def);
                }
            }
        }
        if let (Some(_), Some(row)) = (open_log, self.log_row) {
            self.problem(sheet.place(row, "type"), "the log has no `end log` row");
        }
        (fields, log)
    }

    fn field(&mut self, sheet: &Sheet, row: u32, ty: &str, lists: &Lists) -> Option<FieldDef> {
        let (ty, list) = match ty.split_once(' ') {
            Some((select, list)) => (select, Some(list)),
            None => (ty, None),
        };
        let ty = match (ty, list) {
            ("select_one", Some(_)) => FieldType::SingleChoice,
            ("select_multiple", Some(_)) => FieldType::MultipleChoice,
            ("text", None) => FieldType::Text,
            ("integer", None) => FieldType::Integer,
            ("decimal", None) => FieldType::Decimal,
            ("boolean", None) => FieldType::Boolean,
            ("date", None) => FieldType::Date,
            ("datetime" | "dateTime", None) => FieldType::Datetime,
            ("geopoint", None) => FieldType::Location,
            ("person_ref", None) => FieldType::PersonRef,
            ("attachment", None) => FieldType::Attachment,
            _ => {
                self.problem(
                    sheet.place(row, "type"),
                    format!(
                        "unknown type `{ty}{}`; use text, integer, decimal, boolean, date, \
                         datetime, geopoint, person_ref, attachment, select_one LIST, \
                         select_multiple LIST, begin log or end log",
                        list.map(|l| format!(" {l}")).unwrap_or_default()
                    ),
                );
                return None;
            }
        };
        let choices = match list {
            Some(list) => lists.get(list).cloned().unwrap_or_else(|| {
                self.problem(
                    sheet.place(row, "type"),
                    format!("the choices sheet has no list `{list}`"),
                );
                Vec::new()
            }),
            None => Vec::new(),
        };
        let id = self.required_text(sheet, row, "name");
        let label = self.label(sheet, row, "label");
        let hint = self.hint(sheet, row);
        let (required, required_when) = self.required(sheet, row);
        let sensitive = self.yes_no(sheet, row, "sensitive");
        let constraint = self.constraint(sheet, row);
        let index = sheet.text(row, "index", &mut self.problems);
        let media_types = sheet
            .text(row, "media_types", &mut self.problems)
            .map(|t| {
                t.split([',', ' '])
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let max_size = sheet.text(row, "max_size", &mut self.problems);
        let max_size = self.parse(sheet, row, "max_size", max_size, "a whole number of bytes");
        Some(FieldDef {
            id: id?,
            label,
            ty,
            hint,
            required,
            required_when,
            sensitive,
            choices,
            min: constraint.min,
            max: constraint.max,
            max_len: constraint.max_len,
            index,
            media_types,
            max_size,
        })
    }

    /// `yes` or a condition in XLSForm's words: `selected(${status}, 'resolved')`, joined by
    /// `or` for more values of the same field.
    fn required(&mut self, sheet: &Sheet, row: u32) -> (bool, Option<Condition>) {
        let Some(text) = sheet.text(row, "required", &mut self.problems) else {
            return (false, None);
        };
        if let Some(yes) = yes_no(&text) {
            return (yes, None);
        }
        let mut field: Option<String> = None;
        let mut any_of = Vec::new();
        for term in text.split(" or ") {
            let compact: String = term.chars().filter(|c| !c.is_whitespace()).collect();
            let parsed = compact
                .strip_prefix("selected(${")
                .and_then(|rest| rest.strip_suffix(')'))
                .and_then(|rest| rest.split_once("},"))
                .map(|(name, value)| (name.to_owned(), value.trim_matches(['\'', '"']).to_owned()));
            match parsed {
                Some((name, value)) if field.as_ref().is_none_or(|f| *f == name) => {
                    field = Some(name);
                    any_of.push(value);
                }
                _ => {
                    self.problem(
                        sheet.place(row, "required"),
                        format!(
                            "`{text}` is not yes, no or selected(${{field}}, 'choice') joined by \
                             `or` (one field)"
                        ),
                    );
                    return (false, None);
                }
            }
        }
        (false, field.map(|field| Condition { field, any_of }))
    }

    /// Terms joined by `and`: `. >= N`, `. <= N` and `string-length(.) <= N`.
    fn constraint(&mut self, sheet: &Sheet, row: u32) -> Constraint {
        let mut constraint = Constraint::default();
        let Some(text) = sheet.text(row, "constraint", &mut self.problems) else {
            return constraint;
        };
        for term in text.split(" and ") {
            let compact: String = term.chars().filter(|c| !c.is_whitespace()).collect();
            let number = |prefix: &str| {
                compact
                    .strip_prefix(prefix)?
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
            };
            if let Some(n) = number(".>=") {
                constraint.min = Some(n);
            } else if let Some(n) = number(".<=") {
                constraint.max = Some(n);
            } else if let Some(n) = compact
                .strip_prefix("string-length(.)<=")
                .and_then(|n| n.parse().ok())
            {
                constraint.max_len = Some(n);
            } else {
                self.problem(
                    sheet.place(row, "constraint"),
                    format!(
                        "`{}` is not one of `. >= N`, `. <= N` or `string-length(.) <= N` \
                         (joined by `and`)",
                        term.trim()
                    ),
                );
            }
        }
        constraint
    }

    fn read_rules(&mut self, sheet: Option<&Sheet>) -> Vec<ConcurrencyRule> {
        let Some(sheet) = sheet else {
            return Vec::new();
        };
        let mut rules = Vec::new();
        for row in sheet.rows() {
            let code = self.required_text(sheet, row, "code");
            let field = self.required_text(sheet, row, "field");
            let any_of = self.required_text(sheet, row, "any_of");
            let message = self.label(sheet, row, "message");
            let (Some(code), Some(field), Some(any_of)) = (code, field, any_of) else {
                continue;
            };
            self.rule_rows.push(RuleRow {
                code: code.clone(),
                row,
            });
            rules.push(ConcurrencyRule {
                code,
                field,
                any_of: any_of.split_whitespace().map(str::to_owned).collect(),
                message,
            });
        }
        rules
    }

    /// The kind itself, from the second row of the settings sheet.
    fn read_settings(
        &mut self,
        sheet: &Sheet,
        fields: Vec<FieldDef>,
        log: Option<LogDef>,
        rules: Vec<ConcurrencyRule>,
    ) -> Schema {
        const ROW: u32 = 1;
        let kind = self
            .required_text(sheet, ROW, "form_id")
            .unwrap_or_default();
        let version = self.required_text(sheet, ROW, "version");
        let version = self
            .parse::<u32>(sheet, ROW, "version", version, "a whole number from 1")
            .unwrap_or_default();
        let label = self.label(sheet, ROW, "form_title");
        let assigned = sheet.text(ROW, "assigned_field", &mut self.problems);
        let status_field = sheet.text(ROW, "status_field", &mut self.problems);
        let mode = sheet.text(ROW, "access", &mut self.problems);
        let (access, anonymous) = match (mode.as_deref(), assigned) {
            (None | Some("scope"), None) => (Access::Scope, false),
            (Some("anonymous"), None) => (Access::Scope, true),
            (Some("restricted"), Some(assigned_field)) => {
                (Access::Restricted { assigned_field }, false)
            }
            (Some("restricted"), None) => {
                self.problem(
                    sheet.place(ROW, "assigned_field"),
                    "a restricted form names its assignee: the person_ref field of the worker \
                     it is assigned to",
                );
                (Access::Scope, false)
            }
            (None | Some("scope" | "anonymous"), Some(_)) => {
                self.problem(
                    sheet.place(ROW, "assigned_field"),
                    "only a restricted form has an assignee; set access to restricted or \
                     leave this empty",
                );
                (Access::Scope, false)
            }
            (Some(other), _) => {
                self.problem(
                    sheet.place(ROW, "access"),
                    format!("unknown access `{other}`; use scope, restricted or anonymous"),
                );
                (Access::Scope, false)
            }
        };
        Schema {
            kind,
            version,
            label,
            anonymous,
            access,
            status_field,
            fields,
            log,
            rules,
        }
    }

    /// The text of a cell that must not be empty.
    fn required_text(&mut self, sheet: &Sheet, row: u32, header: &str) -> Option<String> {
        let text = sheet.text(row, header, &mut self.problems);
        // A cell of the wrong type is reported by `text` already.
        let empty = sheet
            .columns
            .get(header)
            .is_some_and(|column| !sheet.is_filled(row, *column));
        if empty {
            self.problem(sheet.place(row, header), "missing");
        }
        text
    }

    /// The `PREFIX::zh` and `PREFIX::en` cells; the Chinese one must be there.
    fn label(&mut self, sheet: &Sheet, row: u32, prefix: &str) -> Label {
        let zh = format!("{prefix}::zh");
        let zh = if sheet.columns.contains_key(&zh) {
            self.required_text(sheet, row, &zh)
        } else {
            self.problem(sheet.place(row, &zh), "missing");
            None
        };
        let en = sheet.text(row, &format!("{prefix}::en"), &mut self.problems);
        Label {
            zh: zh.unwrap_or_default(),
            en: en.unwrap_or_default(),
        }
    }

    /// `hint::zh` and `hint::en`, or XLSForm's plain `hint` as the Chinese one; none when all
    /// are blank.
    fn hint(&mut self, sheet: &Sheet, row: u32) -> Option<Label> {
        let plain = sheet.text(row, "hint", &mut self.problems);
        let zh = sheet.text(row, "hint::zh", &mut self.problems);
        let en = sheet.text(row, "hint::en", &mut self.problems);
        if plain.is_some() && zh.is_some() {
            self.problem(
                sheet.place(row, "hint"),
                "give the hint once: in `hint` or in `hint::zh`, not both",
            );
        }
        let zh = zh.or(plain);
        if zh.is_none() && en.is_some() {
            self.problem(
                sheet.place(row, "hint::zh"),
                "a hint needs its Chinese text",
            );
        }
        Some(Label {
            zh: zh?,
            en: en.unwrap_or_default(),
        })
    }

    fn yes_no(&mut self, sheet: &Sheet, row: u32, header: &str) -> bool {
        let text = sheet.text(row, header, &mut self.problems);
        let Some(text) = text else {
            return false;
        };
        yes_no(&text).unwrap_or_else(|| {
            self.problem(
                sheet.place(row, header),
                format!("`{text}` is not yes or no"),
            );
            false
        })
    }

    fn parse<N: std::str::FromStr>(
        &mut self,
        sheet: &Sheet,
        row: u32,
        header: &str,
        text: Option<String>,
        expected: &str,
    ) -> Option<N> {
        let text = text?;
        let parsed = text.parse().ok();
        if parsed.is_none() {
            self.problem(
                sheet.place(row, header),
                format!("`{text}` is not {expected}"),
            );
        }
        parsed
    }

    /// The cell a sync-core finding is about, found through the ids its message names.
    fn locate(&self, sheets: &Sheets, e: &SchemaError) -> Place {
        use SchemaError as E;
        match e {
            E::DuplicateField { field, .. }
            | E::MissingChoices { field, .. }
            | E::UnexpectedChoices { field, .. }
            | E::DuplicateChoice { field, .. }
            | E::ReservedLogField { field, .. }
            | E::SensitiveFieldInAnonymousKind { field, .. }
            | E::IdentifyingFieldInAnonymousKind { field, .. }
            | E::AttachmentInAnonymousKind { field, .. } => self.field_place(sheets, field, "name"),
            E::InvalidConstraint { field, reason, .. } => {
                let header = if reason.contains("max_size") {
                    "max_size"
                } else if reason.contains("media") {
                    "media_types"
                } else if reason.contains("required") {
                    "required"
                } else {
                    "constraint"
                };
                self.field_place(sheets, field, header)
            }
            E::ReservedRule { code, .. }
            | E::DuplicateRule { code, .. }
            | E::RuleWithoutLog { code, .. } => self.rule_place(sheets, code, "code"),
            E::InvalidId { what, id } => match *what {
                "kind" => sheets.settings.place(1, "form_id"),
                "log" => self.log_place(sheets, "name"),
                "rule" => self.rule_place(sheets, id, "code"),
                "choice" => {
                    let row = self.choice_rows.iter().find(|c| c.name == *id);
                    match (&sheets.choices, row) {
                        (Some(sheet), Some(c)) => sheet.place(c.row, "name"),
                        _ => sheets.settings.place(1, "form_id"),
                    }
                }
                _ => self.field_place(sheets, id, "name"),
            },
            E::MissingLabel { what, .. } => self.context_place(sheets, what, "label::zh"),
            E::UnknownFieldReference { context, .. }
            | E::WrongReferenceType { context, .. }
            | E::EmptyAnyOf { context, .. }
            | E::UnknownChoiceReference { context, .. } => {
                self.context_place(sheets, context, "required")
            }
            _ => sheets.settings.place(1, "form_id"),
        }
    }

    /// Places a sync-core context such as "status_field", "rule `x`" or "required_when of field
    /// `x`"; `header` is the survey column for a field's own context.
    fn context_place(&self, sheets: &Sheets, context: &str, header: &str) -> Place {
        let first_id = context.split('`').nth(1).unwrap_or_default();
        match context {
            "status_field" => sheets.settings.place(1, "status_field"),
            "access.assigned_field" => sheets.settings.place(1, "assigned_field"),
            "the kind" => sheets.settings.place(1, "form_title::zh"),
            _ if context.starts_with("rule ") || context.starts_with("the message of rule") => {
                self.rule_place(sheets, first_id, "field")
            }
            _ if context.starts_with("log `") => self.log_place(sheets, "label::zh"),
            _ if context.starts_with("choice `") => {
                let field = context.split('`').nth(3).unwrap_or_default();
                self.field_place(sheets, field, "type")
            }
            _ => self.field_place(sheets, first_id, header),
        }
    }

    fn field_place(&self, sheets: &Sheets, id: &str, header: &str) -> Place {
        match self.field_rows.iter().find(|f| f.id == id) {
            Some(f) => sheets.survey.place(f.row, header),
            None => sheets.settings.place(1, "form_id"),
        }
    }

    fn log_place(&self, sheets: &Sheets, header: &str) -> Place {
        sheets
            .survey
            .place(self.log_row.unwrap_or_default(), header)
    }

    fn rule_place(&self, sheets: &Sheets, code: &str, header: &str) -> Place {
        let row = self.rule_rows.iter().find(|r| r.code == code);
        match (&sheets.rules, row) {
            (Some(sheet), Some(r)) => sheet.place(r.row, header),
            _ => sheets.settings.place(1, "form_id"),
        }
    }
}

/// The bounds a constraint cell sets.
#[derive(Debug, Default)]
struct Constraint {
    min: Option<f64>,
    max: Option<f64>,
    max_len: Option<u32>,
}

/// A yes/no cell as XLSForm and Excel write it; `None` for anything else.
fn yes_no(text: &str) -> Option<bool> {
    match text.to_lowercase().as_str() {
        "yes" | "true" | "1" | "是" => Some(true),
        "no" | "false" | "0" | "否" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
