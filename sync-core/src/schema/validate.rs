//! Checking a report's JSON projection against its schema, reporting every problem at once so a
//! form can mark them all and the server can answer a push with the full list.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::scan;
use super::{FieldDef, FieldType, Problem, ProblemCode, Schema};
use crate::attachment::is_sha256;
use crate::report::HIDDEN_ATTACHMENTS;

/// Keys at the top of a projection, besides `fields` and `log`.
const META_KEYS: [&str; 6] = [
    "id",
    "kind",
    "schema_version",
    "grid",
    "created_by",
    "created_at",
];

/// Keys every log entry carries besides its schema's fields.
pub(super) const ENTRY_META_KEYS: [&str; 3] = ["id", "created_by", "created_at"];

/// Collects problems; `anonymous` travels with it because it changes how text is checked.
struct Check {
    anonymous: bool,
    problems: Vec<Problem>,
}

impl Check {
    fn push(&mut self, path: impl Into<String>, code: ProblemCode, message: String) {
        self.problems.push(Problem::new(path, code, message));
    }
}

pub(super) fn projection(schema: &Schema, projection: &Value) -> Vec<Problem> {
    let mut check = Check {
        anonymous: schema.anonymous,
        problems: Vec::new(),
    };
    let Some(root) = projection.as_object() else {
        check.push(
            "",
            ProblemCode::WrongType,
            format!(
                "a report must be a JSON object with meta keys, `fields` and `log`, not {}",
                json_type(projection)
            ),
        );
        return check.problems;
    };
    meta(schema, root, &mut check);
    for key in root.keys() {
        if !META_KEYS.contains(&key.as_str())
            && !["fields", "log", "attachments", HIDDEN_ATTACHMENTS].contains(&key.as_str())
        {
            check.push(
                key.as_str(),
                ProblemCode::UnknownField,
                format!("`{key}` is not part of a report; data belongs under `fields`"),
            );
        }
    }
    match root.get("fields") {
        None | Some(Value::Null) => scope(&schema.fields, &Map::new(), "fields.", &[], &mut check),
        Some(Value::Object(fields)) => scope(&schema.fields, fields, "fields.", &[], &mut check),
        Some(other) => check.push(
            "fields",
            ProblemCode::WrongType,
            format!("`fields` must be an object, not {}", json_type(other)),
        ),
    }
    log(schema, root.get("log"), &mut check);
    attachments(schema, root, &mut check);
    check.problems
}

/// Checks the `attachments` array: each names an attachment field of the schema (and, for a log
/// field, an existing entry), a media type and size the field allows, and who attached it when.
fn attachments(schema: &Schema, root: &Map<String, Value>, check: &mut Check) {
    let items = match root.get("attachments") {
        None | Some(Value::Null) => return,
        Some(Value::Array(items)) => items,
        Some(other) => {
            check.push(
                "attachments",
                ProblemCode::WrongType,
                format!("`attachments` must be an array, not {}", json_type(other)),
            );
            return;
        }
    };
    let entry_ids: HashSet<&str> = root
        .get("log")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("id").and_then(Value::as_str))
        .collect();
    for (i, item) in items.iter().enumerate() {
        let Some(a) = item.as_object() else {
            check.push(
                format!("attachments[{i}]"),
                ProblemCode::InvalidAttachment,
                format!("an attachment must be an object, not {}", json_type(item)),
            );
            continue;
        };
        let sha = a.get("sha256").and_then(Value::as_str).unwrap_or_default();
        let path = if is_sha256(sha) {
            format!("attachments.{sha}")
        } else {
            check.push(
                format!("attachments[{i}]"),
                ProblemCode::InvalidAttachment,
                format!("the attachment's key {sha:?} is not a sha256 in lowercase hex"),
            );
            format!("attachments[{i}]")
        };
        attachment(schema, a, &entry_ids, &path, check);
    }
}

fn attachment(
    schema: &Schema,
    a: &Map<String, Value>,
    entry_ids: &HashSet<&str>,
    path: &str,
    check: &mut Check,
) {
    let entry = match a.get("entry") {
        None | Some(Value::Null) => None,
        Some(Value::String(entry)) => {
            if !entry_ids.contains(entry.as_str()) {
                check.push(
                    path,
                    ProblemCode::InvalidAttachment,
                    format!("the attachment belongs to log entry {entry}, which is not in the log"),
                );
            }
            Some(entry)
        }
        Some(other) => {
            check.push(
                path,
                ProblemCode::WrongType,
                format!("`entry` must be a log entry id, not {}", json_type(other)),
            );
            None
        }
    };
    let field = a.get("field").and_then(Value::as_str).unwrap_or_default();
    let Some(def) = schema.attachment_field(field, entry.is_some()) else {
        check.push(
            path,
            ProblemCode::UnknownField,
            format!(
                "`{field}` is not an attachment field of {}{}",
                schema.kind,
                if entry.is_some() { " log entries" } else { "" }
            ),
        );
        return;
    };
    match a.get("media_type").and_then(Value::as_str) {
        Some(m) if def.media_types.iter().any(|t| t == m) => {}
        m => check.push(
            path,
            ProblemCode::MediaTypeNotAllowed,
            format!(
                "`{field}` takes {}, not {}",
                def.media_types.join(", "),
                m.unwrap_or("an attachment without a media type")
            ),
        ),
    }
    match a.get("size").and_then(Value::as_u64) {
        Some(n) if n > 0 && def.max_size.is_none_or(|max| n <= max) => {}
        Some(n) if n > 0 => check.push(
            path,
            ProblemCode::TooLarge,
            format!(
                "`{field}` takes attachments of at most {} bytes; this one has {n}",
                def.max_size.unwrap_or_default()
            ),
        ),
        _ => check.push(
            path,
            ProblemCode::InvalidAttachment,
            "the attachment's `size` must be a positive number of bytes".into(),
        ),
    }
    for key in ["name", "attached_by"] {
        if let Some(value) = a.get(key) {
            non_blank_string(value, path, key, ProblemCode::InvalidAttachment, check);
        } else {
            check.push(
                path,
                ProblemCode::InvalidAttachment,
                format!("the attachment has no `{key}`"),
            );
        }
    }
    match a.get("taken_at") {
        Some(value) => datetime(value, path, "taken_at", check),
        None => check.push(
            path,
            ProblemCode::InvalidAttachment,
            "the attachment has no `taken_at`".into(),
        ),
    }
    if let Some(value) = a.get("location").filter(|v| !v.is_null()) {
        location("location", value, path, check);
    }
}

pub(super) fn single(
    schema: &Schema,
    def: Option<&FieldDef>,
    id: &str,
    value: &Value,
    prefix: &str,
) -> Vec<Problem> {
    let mut check = Check {
        anonymous: schema.anonymous,
        problems: Vec::new(),
    };
    let path = format!("{prefix}{id}");
    match def {
        None => check.push(
            path,
            ProblemCode::UnknownField,
            format!("`{id}` is not a field of {}", schema.kind),
        ),
        Some(def) if is_unset(def, Some(value)) => {
            if def.required {
                check.push(path, ProblemCode::Required, format!("`{id}` is required"));
            }
        }
        Some(def) => field_value(def, value, &path, &mut check),
    }
    check.problems
}

fn meta(schema: &Schema, root: &Map<String, Value>, check: &mut Check) {
    for key in ["id", "grid", "created_by"] {
        if let Some(value) = present_meta(root, key, check) {
            non_blank_string(
                value,
                &format!("meta.{key}"),
                key,
                ProblemCode::MissingMeta,
                check,
            );
        }
    }
    if let Some(kind) = present_meta(root, "kind", check)
        && kind.as_str() != Some(schema.kind.as_str())
    {
        check.push(
            "meta.kind",
            ProblemCode::UnknownKind,
            format!(
                "the report's kind is {kind}, but it is being checked as {}",
                schema.kind
            ),
        );
    }
    if let Some(version) = present_meta(root, "schema_version", check) {
        match version.as_u64() {
            None => check.push(
                "meta.schema_version",
                ProblemCode::WrongType,
                format!("`schema_version` must be a positive integer, not {version}"),
            ),
            Some(v) if v != u64::from(schema.version) => check.push(
                "meta.schema_version",
                ProblemCode::UnknownSchemaVersion,
                format!(
                    "the report has schema version {v}, but it is being checked against {} version {}",
                    schema.kind, schema.version
                ),
            ),
            Some(_) => {}
        }
    }
    if let Some(created_at) = present_meta(root, "created_at", check) {
        datetime(created_at, "meta.created_at", "created_at", check);
    }
}

/// The meta value under `key`, or a missing_meta problem when it is absent or null.
fn present_meta<'a>(
    root: &'a Map<String, Value>,
    key: &str,
    check: &mut Check,
) -> Option<&'a Value> {
    let value = root.get(key).filter(|v| !v.is_null());
    if value.is_none() {
        check.push(
            format!("meta.{key}"),
            ProblemCode::MissingMeta,
            format!("the report has no `{key}`"),
        );
    }
    value
}

fn log(schema: &Schema, log: Option<&Value>, check: &mut Check) {
    let entries = match log {
        None | Some(Value::Null) => return,
        Some(Value::Array(entries)) => entries,
        Some(other) => {
            check.push(
                "log",
                ProblemCode::WrongType,
                format!(
                    "`log` must be an array of entries, not {}",
                    json_type(other)
                ),
            );
            return;
        }
    };
    let Some(def) = &schema.log else {
        if !entries.is_empty() {
            check.push(
                "log",
                ProblemCode::LogNotAllowed,
                format!(
                    "{} reports have no log, but this one has {} entries",
                    schema.kind,
                    entries.len()
                ),
            );
        }
        return;
    };
    let mut ids = HashSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let path = format!("log[{i}]");
        let Some(entry) = entry.as_object() else {
            check.push(
                path,
                ProblemCode::InvalidLogEntry,
                format!(
                    "a {} entry must be an object, not {}",
                    def.id,
                    json_type(entry)
                ),
            );
            continue;
        };
        for key in ENTRY_META_KEYS {
            let key_path = format!("{path}.{key}");
            let Some(value) = entry.get(key).filter(|v| !v.is_null()) else {
                check.push(
                    key_path,
                    ProblemCode::InvalidLogEntry,
                    format!("the {} entry has no `{key}`", def.id),
                );
                continue;
            };
            if key == "created_at" {
                datetime(value, &key_path, key, check);
            } else if non_blank_string(value, &key_path, key, ProblemCode::InvalidLogEntry, check)
                && key == "id"
                && let Some(id) = value.as_str()
                && !ids.insert(id)
            {
                // Concurrent appends are told apart by id; a repeated id would merge two steps.
                check.push(
                    key_path,
                    ProblemCode::InvalidLogEntry,
                    format!("entry id {id} appears more than once in the log"),
                );
            }
        }
        scope(
            &def.fields,
            entry,
            &format!("{path}."),
            &ENTRY_META_KEYS,
            check,
        );
    }
}

/// Checks one scope of values (the report's `fields`, or one log entry) against its definitions.
fn scope(
    defs: &[FieldDef],
    values: &Map<String, Value>,
    prefix: &str,
    skip: &[&str],
    check: &mut Check,
) {
    for (key, value) in values {
        if skip.contains(&key.as_str()) {
            continue;
        }
        let path = format!("{prefix}{key}");
        match defs.iter().find(|d| d.id == *key) {
            None => check.push(
                path,
                ProblemCode::UnknownField,
                format!("`{key}` is not a declared field"),
            ),
            Some(def) if is_unset(def, Some(value)) => {}
            Some(def) => field_value(def, value, &path, check),
        }
    }
    for def in defs {
        if !is_unset(def, values.get(&def.id)) {
            continue;
        }
        let path = format!("{prefix}{}", def.id);
        if def.required {
            check.push(
                path,
                ProblemCode::Required,
                format!("`{}` is required", def.id),
            );
        } else if let Some(condition) = &def.required_when
            && condition.holds(values)
        {
            check.push(
                path,
                ProblemCode::Required,
                format!(
                    "`{}` is required when `{}` is {}",
                    def.id,
                    condition.field,
                    condition.any_of.join(" or ")
                ),
            );
        }
    }
}

/// Absent, null, blank text and an empty multiple choice all mean "not set".
fn is_unset(def: &FieldDef, value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => def.ty == FieldType::Text && s.trim().is_empty(),
        Some(Value::Array(items)) => def.ty == FieldType::MultipleChoice && items.is_empty(),
        Some(_) => false,
    }
}

/// Checks a value that is set.
fn field_value(def: &FieldDef, value: &Value, path: &str, check: &mut Check) {
    let id = def.id.as_str();
    let wrong_type = |check: &mut Check, expected: String| {
        check.push(
            path,
            ProblemCode::WrongType,
            format!("`{id}` must be {expected}, not {}", json_type(value)),
        );
    };
    match def.ty {
        FieldType::Text => match value.as_str() {
            Some(text) => text_value(def, text, path, check),
            None => wrong_type(check, "text (a string)".into()),
        },
        FieldType::Integer => match value.as_i64() {
            Some(n) => range(def, n as f64, path, check),
            None => wrong_type(check, "a whole number".into()),
        },
        FieldType::Decimal => match value.as_f64() {
            Some(n) => range(def, n, path, check),
            None => wrong_type(check, "a number".into()),
        },
        FieldType::Boolean => {
            if !value.is_boolean() {
                wrong_type(check, "true or false".into());
            }
        }
        FieldType::Date => match value.as_str() {
            Some(date) if scan::is_date(date) => {}
            Some(date) => check.push(
                path,
                ProblemCode::InvalidDate,
                format!("`{id}` must be a calendar date written YYYY-MM-DD, not {date:?}"),
            ),
            None => wrong_type(check, "a date string YYYY-MM-DD".into()),
        },
        FieldType::Datetime => datetime(value, path, id, check),
        FieldType::SingleChoice => match value.as_str() {
            Some(choice) => choice_value(def, choice, path, check),
            None => wrong_type(check, format!("one choice id of {}", choice_ids(def))),
        },
        FieldType::MultipleChoice => match value.as_array() {
            Some(items) => {
                let mut seen = HashSet::new();
                for item in items {
                    match item.as_str() {
                        Some(choice) if !seen.insert(choice) => check.push(
                            path,
                            ProblemCode::InvalidChoice,
                            format!("`{id}` lists {choice:?} more than once"),
                        ),
                        Some(choice) => choice_value(def, choice, path, check),
                        None => wrong_type(
                            check,
                            format!("an array of choice ids (strings) of {}", choice_ids(def)),
                        ),
                    }
                }
            }
            None => wrong_type(
                check,
                format!("an array of choice ids of {}", choice_ids(def)),
            ),
        },
        FieldType::Location => location(id, value, path, check),
        FieldType::PersonRef => {
            non_blank_string(value, path, id, ProblemCode::WrongType, check);
        }
        FieldType::Attachment => check.push(
            path,
            ProblemCode::WrongType,
            format!("`{id}` holds attachments, which are attached, not written as a value"),
        ),
    }
}

fn text_value(def: &FieldDef, text: &str, path: &str, check: &mut Check) {
    if let Some(max) = def.max_len {
        let len = text.chars().count();
        if len > max as usize {
            check.push(
                path,
                ProblemCode::TooLong,
                format!(
                    "`{}` may hold at most {max} characters; it has {len}",
                    def.id
                ),
            );
        }
    }
    if check.anonymous
        && let Some(found) = scan::find_identifier(text)
    {
        // The number itself is left out of the message: problems end up in logs and screens.
        check.push(
            path,
            ProblemCode::IdentifyingData,
            format!(
                "`{}` seems to contain {}; the respondent must stay anonymous, so remove it",
                def.id,
                found.describe()
            ),
        );
    }
}

fn range(def: &FieldDef, n: f64, path: &str, check: &mut Check) {
    let below = def.min.is_some_and(|min| n < min);
    let above = def.max.is_some_and(|max| n > max);
    if below || above {
        let bound = |b: Option<f64>| b.map_or_else(|| "unbounded".to_owned(), |b| b.to_string());
        check.push(
            path,
            ProblemCode::OutOfRange,
            format!(
                "`{}` must be between {} and {}, not {n}",
                def.id,
                bound(def.min),
                bound(def.max)
            ),
        );
    }
}

fn choice_value(def: &FieldDef, choice: &str, path: &str, check: &mut Check) {
    if def.choice(choice).is_none() {
        check.push(
            path,
            ProblemCode::InvalidChoice,
            format!(
                "`{}` must be one of {}, not {choice:?}",
                def.id,
                choice_ids(def)
            ),
        );
    }
}

fn choice_ids(def: &FieldDef) -> String {
    def.choices
        .iter()
        .map(|c| c.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn datetime(value: &Value, path: &str, name: &str, check: &mut Check) {
    match value.as_str() {
        Some(s) if scan::is_datetime(s) => {}
        Some(s) => check.push(
            path,
            ProblemCode::InvalidDatetime,
            format!(
                "`{name}` must be an RFC 3339 timestamp like 2026-11-28T10:15:00Z or \
                 2026-11-28T18:15:00+08:00, not {s:?}"
            ),
        ),
        None => check.push(
            path,
            ProblemCode::WrongType,
            format!(
                "`{name}` must be a timestamp string, not {}",
                json_type(value)
            ),
        ),
    }
}

fn location(id: &str, value: &Value, path: &str, check: &mut Check) {
    let Some(location) = value.as_object() else {
        check.push(
            path,
            ProblemCode::WrongType,
            format!(
                "`{id}` must be an object {{\"lat\", \"lon\", \"accuracy_m\"}}, not {}",
                json_type(value)
            ),
        );
        return;
    };
    let mut invalid = |message: String| {
        check
            .problems
            .push(Problem::new(path, ProblemCode::InvalidLocation, message));
    };
    for (key, limit) in [("lat", 90.0), ("lon", 180.0)] {
        match location.get(key).and_then(Value::as_f64) {
            Some(v) if (-limit..=limit).contains(&v) => {}
            Some(v) => invalid(format!(
                "`{id}.{key}` must be between -{limit} and {limit}, not {v}"
            )),
            None => invalid(format!("`{id}` needs `{key}` as a number")),
        }
    }
    match location.get("accuracy_m") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_f64().is_some_and(|a| a >= 0.0) => {}
        Some(v) => invalid(format!(
            "`{id}.accuracy_m` must be a number of metres, 0 or more, not {v}"
        )),
    }
    for key in location.keys() {
        if !["lat", "lon", "accuracy_m"].contains(&key.as_str()) {
            invalid(format!(
                "`{id}` may hold only lat, lon and accuracy_m, not `{key}`"
            ));
        }
    }
}

/// Checks that `value` is a string with something in it; reports `code` otherwise.
fn non_blank_string(
    value: &Value,
    path: &str,
    name: &str,
    code: ProblemCode,
    check: &mut Check,
) -> bool {
    match value.as_str() {
        Some(s) if !s.trim().is_empty() => true,
        Some(_) => {
            check.push(path, code, format!("`{name}` is empty"));
            false
        }
        None => {
            check.push(
                path,
                ProblemCode::WrongType,
                format!("`{name}` must be a string, not {}", json_type(value)),
            );
            false
        }
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
