//! Report kinds as versioned schemas loaded from data, and validation of report projections.
//!
//! A kind is data (JSON), not code, so the three built-in kinds and any kind an admin defines later
//! load through the same path ([`Schema::from_json`]) and pass the same consistency checks.

mod check;
mod compat;
mod scan;
mod validate;

pub use compat::{Breaking, breaking_changes};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The built-in kinds, embedded so a phone validates without ever fetching a schema.
const BUILTIN: [&str; 5] = [
    include_str!("../schemas/dispute_check.v1.json"),
    include_str!("../schemas/drug_control_case.v1.json"),
    include_str!("../schemas/satisfaction_canvass.v1.json"),
    include_str!("../schemas/task.v1.json"),
    include_str!("../schemas/drug_visit_task.v1.json"),
];

/// The value that replaces a sensitive field for a reader without clearance.
pub const REDACTED: &str = "***";

/// A label in Chinese (shown first) and English.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    pub zh: String,
    pub en: String,
}

/// The type of a field's value, which fixes its JSON shape in a projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    Integer,
    Decimal,
    Boolean,
    Date,
    Datetime,
    SingleChoice,
    MultipleChoice,
    Location,
    PersonRef,
    /// Photos, recordings or documents: not a value under `fields` but entries of the report's
    /// `attachments` naming this field (see `attachment`).
    Attachment,
}

impl FieldType {
    /// The name used in schema files.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Integer => "integer",
            FieldType::Decimal => "decimal",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::SingleChoice => "single_choice",
            FieldType::MultipleChoice => "multiple_choice",
            FieldType::Location => "location",
            FieldType::PersonRef => "person_ref",
            FieldType::Attachment => "attachment",
        }
    }

    /// Whether values of this type are ids from the field's `choices`.
    pub fn has_choices(self) -> bool {
        matches!(self, FieldType::SingleChoice | FieldType::MultipleChoice)
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One allowed value of a choice field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    pub id: String,
    pub label: Label,
}

/// Holds when the named choice field's value (or, for a multiple choice, any of its elements) is
/// one of `any_of`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub field: String,
    pub any_of: Vec<String>,
}

impl Condition {
    /// Evaluates the condition against the sibling values of one scope (the report's `fields`, or
    /// one log entry).
    pub fn holds(&self, values: &serde_json::Map<String, Value>) -> bool {
        let wanted = |v: &Value| {
            v.as_str()
                .is_some_and(|s| self.any_of.iter().any(|a| a == s))
        };
        match values.get(&self.field) {
            Some(Value::Array(items)) => items.iter().any(wanted),
            Some(v) => wanted(v),
            None => false,
        }
    }
}

/// One field of a kind, or of the entries of its log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    pub id: String,
    pub label: Label,
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// A line under the label that helps fill the field in ("as on the ID card", "in yuan").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<Label>,
    #[serde(default)]
    pub required: bool,
    /// Refers to a field of the same scope: a top-level field for top-level fields, a field of the
    /// same entry for log fields.
    #[serde(default)]
    pub required_when: Option<Condition>,
    /// Personal data, redacted for roles without clearance.
    #[serde(default)]
    pub sensitive: bool,
    #[serde(default)]
    pub choices: Vec<Choice>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    /// In characters, not bytes: a Chinese character counts as one.
    #[serde(default)]
    pub max_len: Option<u32>,
    /// The index (such as "satisfaction" or "safety") that this canvass question feeds.
    #[serde(default)]
    pub index: Option<String>,
    /// For attachment fields: the media types allowed, from [`crate::attachment::MEDIA_TYPES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media_types: Vec<String>,
    /// For attachment fields: the largest attachment, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
}

impl FieldDef {
    /// The choice with this id, if the field declares it.
    pub fn choice(&self, id: &str) -> Option<&Choice> {
        self.choices.iter().find(|c| c.id == id)
    }
}

/// The log of a kind: dated entries appended over the life of a report (mediation steps, visits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogDef {
    pub id: String,
    pub label: Label,
    pub fields: Vec<FieldDef>,
}

/// A semantic conflict that a CRDT merge cannot see: a log entry appended concurrently with the
/// change that set `field` to one of `any_of`. Evaluated where changes are merged, not here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyRule {
    pub code: String,
    pub field: String,
    pub any_of: Vec<String>,
    pub message: Label,
}

/// Who may see reports of a kind, on top of the org-tree scope.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Access {
    /// Everyone whose scope covers the report's grid.
    #[default]
    Scope,
    /// Only the worker named in `assigned_field` (a person_ref), the kind's officers and admins.
    Restricted { assigned_field: String },
}

/// One version of one report kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    pub kind: String,
    pub version: u32,
    pub label: Label,
    /// The respondent must stay anonymous: no sensitive fields, and text that looks like an ID
    /// number or a phone number is refused.
    #[serde(default)]
    pub anonymous: bool,
    #[serde(default)]
    pub access: Access,
    pub status_field: Option<String>,
    pub fields: Vec<FieldDef>,
    #[serde(default)]
    pub log: Option<LogDef>,
    #[serde(default)]
    pub rules: Vec<ConcurrencyRule>,
}

impl Schema {
    /// Parses a schema file and checks that it is consistent. Every kind, built-in or
    /// admin-defined, loads through here.
    pub fn from_json(json: &str) -> Result<Schema, SchemaError> {
        let schema: Schema =
            serde_json::from_str(json).map_err(|e| SchemaError::InvalidJson(e.to_string()))?;
        check::schema(&schema)?;
        Ok(schema)
    }

    /// The top-level field with this id.
    pub fn field(&self, id: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.id == id)
    }

    /// The field of log entries with this id.
    pub fn log_field(&self, id: &str) -> Option<&FieldDef> {
        self.log.as_ref()?.fields.iter().find(|f| f.id == id)
    }

    /// Every sensitive field: top-level fields first, then fields of log entries.
    pub fn sensitive_fields(&self) -> impl Iterator<Item = &FieldDef> {
        self.fields
            .iter()
            .chain(self.log.iter().flat_map(|log| log.fields.iter()))
            .filter(|f| f.sensitive)
    }

    /// Every problem of a report projection against this schema, in document order; empty when
    /// the report is valid.
    pub fn validate(&self, projection: &Value) -> Vec<Problem> {
        validate::projection(self, projection)
    }

    /// The problems of one top-level field's value, for a form. Conditions on other fields
    /// (`required_when`) cannot be judged from one value and are left to [`Schema::validate`].
    pub fn validate_field(&self, id: &str, value: &Value) -> Vec<Problem> {
        validate::single(self, self.field(id), id, value, "fields.")
    }

    /// Like [`Schema::validate_field`], for a field of a log entry being edited; paths are
    /// `log.<id>` since the entry has no index yet.
    pub fn validate_log_field(&self, id: &str, value: &Value) -> Vec<Problem> {
        validate::single(self, self.log_field(id), id, value, "log.")
    }

    /// The attachment field an attachment names: a log field when it belongs to a log entry.
    pub fn attachment_field(&self, field: &str, in_log: bool) -> Option<&FieldDef> {
        let def = if in_log {
            self.log_field(field)
        } else {
            self.field(field)
        };
        def.filter(|d| d.ty == FieldType::Attachment)
    }

    /// Replaces the value of every sensitive field, top-level and in log entries, by
    /// [`REDACTED`], and the name and location of attachments of sensitive attachment fields.
    /// Keys that the schema does not declare are redacted too: what is not known to be harmless
    /// is treated as sensitive.
    pub fn redact(&self, projection: &mut Value) {
        if let Some(attachments) = projection
            .get_mut("attachments")
            .and_then(Value::as_array_mut)
        {
            for a in attachments.iter_mut().filter_map(Value::as_object_mut) {
                let field = a.get("field").and_then(Value::as_str).unwrap_or_default();
                let in_log = a.get("entry").is_some_and(|e| !e.is_null());
                if self
                    .attachment_field(field, in_log)
                    .is_none_or(|d| d.sensitive)
                {
                    for key in ["name", "location"] {
                        if a.get(key).is_some_and(|v| !v.is_null()) {
                            a.insert(key.into(), Value::String(REDACTED.to_owned()));
                        }
                    }
                }
            }
        }
        if let Some(fields) = projection.get_mut("fields").and_then(Value::as_object_mut) {
            redact_values(&self.fields, fields, &[]);
        }
        if let Some(log) = &self.log
            && let Some(entries) = projection.get_mut("log").and_then(Value::as_array_mut)
        {
            for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
                redact_values(&log.fields, entry, &validate::ENTRY_META_KEYS);
            }
        }
    }
}

fn redact_values(defs: &[FieldDef], values: &mut serde_json::Map<String, Value>, keep: &[&str]) {
    for (key, value) in values.iter_mut() {
        if value.is_null() || keep.contains(&key.as_str()) {
            continue;
        }
        let sensitive = defs
            .iter()
            .find(|d| d.id == *key)
            .is_none_or(|d| d.sensitive);
        if sensitive {
            *value = Value::String(REDACTED.to_owned());
        }
    }
}

/// Every loaded schema, by kind and version.
///
/// A retired version stays here, so reports written against it are still read, validated and
/// merged; only new reports no longer use it.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<String, BTreeMap<u32, Schema>>,
    retired: BTreeSet<(String, u32)>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The built-in kinds: dispute_check, drug_control_case and satisfaction_canvass.
    pub fn builtin() -> Registry {
        let mut registry = Registry::new();
        for json in BUILTIN {
            // The embedded files are checked by the test suite, so failing here is a build defect.
            registry
                .add_json(json)
                .expect("built-in schema files are valid");
        }
        registry
    }

    /// Loads one schema file; refuses a kind and version that is already loaded, since reports
    /// already written against it must keep meaning the same thing.
    pub fn add_json(&mut self, json: &str) -> Result<(), SchemaError> {
        self.add(Schema::from_json(json)?)
    }

    /// Adds a schema already loaded by [`Schema::from_json`]; refuses a kind and version that
    /// is already loaded.
    pub fn add(&mut self, schema: Schema) -> Result<(), SchemaError> {
        let versions = self.kinds.entry(schema.kind.clone()).or_default();
        if versions.contains_key(&schema.version) {
            return Err(SchemaError::DuplicateKindVersion {
                kind: schema.kind,
                version: schema.version,
            });
        }
        versions.insert(schema.version, schema);
        Ok(())
    }

    /// Marks a loaded version retired: it stays readable, and new reports stop using it.
    /// `false` when the version is not loaded.
    pub fn retire(&mut self, kind: &str, version: u32) -> bool {
        if self.get(kind, version).is_none() {
            return false;
        }
        self.retired.insert((kind.to_owned(), version));
        true
    }

    pub fn is_retired(&self, kind: &str, version: u32) -> bool {
        self.retired.contains(&(kind.to_owned(), version))
    }

    pub fn get(&self, kind: &str, version: u32) -> Option<&Schema> {
        self.kinds.get(kind)?.get(&version)
    }

    /// The highest version of a kind that is not retired: the one new reports are written
    /// against.
    pub fn latest(&self, kind: &str) -> Option<&Schema> {
        self.kinds
            .get(kind)?
            .values()
            .rev()
            .find(|s| !self.is_retired(&s.kind, s.version))
    }

    /// The union of a kind's versions, retired ones included, for tables that list reports of
    /// every version: the newest version with its order, labels and settings, then each field
    /// (and choice, and log field) that only earlier versions have, in their order, newer
    /// versions first. `None` when the kind has no version.
    pub fn span(&self, kind: &str) -> Option<Schema> {
        let mut versions = self.kinds.get(kind)?.values().rev();
        let mut span = versions.next()?.clone();
        for older in versions {
            merge_fields(&mut span.fields, &older.fields);
            match (&mut span.log, &older.log) {
                (Some(log), Some(old)) => merge_fields(&mut log.fields, &old.fields),
                (None, Some(old)) => span.log = Some(old.clone()),
                _ => {}
            }
            if span.status_field.is_none() {
                span.status_field.clone_from(&older.status_field);
            }
        }
        Some(span)
    }

    /// The latest version of each kind that new reports may use, ordered by kind id.
    pub fn kinds(&self) -> impl Iterator<Item = &Schema> {
        self.kinds.keys().filter_map(|kind| self.latest(kind))
    }

    /// Every version of every kind, by kind id and then version.
    pub fn all(&self) -> impl Iterator<Item = &Schema> {
        self.kinds.values().flat_map(BTreeMap::values)
    }

    /// Validates a projection against the schema named by its own `kind` and `schema_version`.
    pub fn validate(&self, projection: &Value) -> Vec<Problem> {
        let meta = |key: &str| projection.get(key).filter(|v| !v.is_null());
        let mut problems = Vec::new();
        let Some(kind) = meta("kind") else {
            problems.push(Problem::new(
                "meta.kind",
                ProblemCode::MissingMeta,
                "the report has no `kind`".to_owned(),
            ));
            return problems;
        };
        let Some(kind) = kind.as_str().filter(|k| self.kinds.contains_key(*k)) else {
            problems.push(Problem::new(
                "meta.kind",
                ProblemCode::UnknownKind,
                format!(
                    "{kind} is not a known report kind; known kinds: {}",
                    self.kinds.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
            return problems;
        };
        let Some(version) = meta("schema_version") else {
            problems.push(Problem::new(
                "meta.schema_version",
                ProblemCode::MissingMeta,
                "the report has no `schema_version`".to_owned(),
            ));
            return problems;
        };
        let schema = version
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .and_then(|v| self.get(kind, v));
        match schema {
            Some(schema) => schema.validate(projection),
            None => {
                problems.push(Problem::new(
                    "meta.schema_version",
                    ProblemCode::UnknownSchemaVersion,
                    format!(
                        "{kind} has no schema version {version}; known versions: {}",
                        self.kinds
                            .get(kind)
                            .map(|v| v.keys().map(u32::to_string).collect::<Vec<_>>())
                            .unwrap_or_default()
                            .join(", ")
                    ),
                ));
                problems
            }
        }
    }
}

/// Adds to `fields` the fields of `older` it lacks, and to each field the choices it lacks.
fn merge_fields(fields: &mut Vec<FieldDef>, older: &[FieldDef]) {
    for old in older {
        match fields.iter_mut().find(|f| f.id == old.id) {
            Some(field) => {
                for choice in &old.choices {
                    if field.choice(&choice.id).is_none() {
                        field.choices.push(choice.clone());
                    }
                }
            }
            None => fields.push(old.clone()),
        }
    }
}

/// One thing wrong with a report. `path` locates it: `meta.grid`, `fields.risk_level`,
/// `log[2].test_result`, `log[2]`, `log`, `fields`, or the empty string for the whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub path: String,
    pub code: ProblemCode,
    /// English and specific; the UI localises by `code`.
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, code: ProblemCode, message: String) -> Problem {
        Problem {
            path: path.into(),
            code,
            message,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.path, self.message, self.code)
    }
}

/// Stable problem codes: clients and the UI match on these, so never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    Required,
    WrongType,
    UnknownField,
    InvalidChoice,
    OutOfRange,
    TooLong,
    InvalidDate,
    InvalidDatetime,
    InvalidLocation,
    IdentifyingData,
    MissingMeta,
    UnknownKind,
    UnknownSchemaVersion,
    LogNotAllowed,
    InvalidLogEntry,
    InvalidAttachment,
    MediaTypeNotAllowed,
    TooLarge,
}

impl ProblemCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::Required => "required",
            ProblemCode::WrongType => "wrong_type",
            ProblemCode::UnknownField => "unknown_field",
            ProblemCode::InvalidChoice => "invalid_choice",
            ProblemCode::OutOfRange => "out_of_range",
            ProblemCode::TooLong => "too_long",
            ProblemCode::InvalidDate => "invalid_date",
            ProblemCode::InvalidDatetime => "invalid_datetime",
            ProblemCode::InvalidLocation => "invalid_location",
            ProblemCode::IdentifyingData => "identifying_data",
            ProblemCode::MissingMeta => "missing_meta",
            ProblemCode::UnknownKind => "unknown_kind",
            ProblemCode::UnknownSchemaVersion => "unknown_schema_version",
            ProblemCode::LogNotAllowed => "log_not_allowed",
            ProblemCode::InvalidLogEntry => "invalid_log_entry",
            ProblemCode::InvalidAttachment => "invalid_attachment",
            ProblemCode::MediaTypeNotAllowed => "media_type_not_allowed",
            ProblemCode::TooLarge => "too_large",
        }
    }
}

impl fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a schema file was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    #[error("invalid schema JSON: {0}")]
    InvalidJson(String),
    #[error("the schema's kind id is empty")]
    EmptyKind,
    #[error(
        "{what} id `{id}` is invalid: use lowercase ASCII letters, digits and underscores{}",
        if *what == "choice" { "" } else { ", starting with a letter" }
    )]
    InvalidId { what: &'static str, id: String },
    #[error("{kind}: the schema version must be 1 or more")]
    InvalidVersion { kind: String },
    #[error("{kind}: {what} has no Chinese label")]
    MissingLabel { kind: String, what: String },
    #[error("{kind}: field `{field}` is declared more than once")]
    DuplicateField { kind: String, field: String },
    #[error("{kind}: field `{field}` is a {ty} field but declares no choices")]
    MissingChoices {
        kind: String,
        field: String,
        ty: FieldType,
    },
    #[error("{kind}: field `{field}` is a {ty} field and cannot declare choices")]
    UnexpectedChoices {
        kind: String,
        field: String,
        ty: FieldType,
    },
    #[error("{kind}: field `{field}` declares choice `{choice}` more than once")]
    DuplicateChoice {
        kind: String,
        field: String,
        choice: String,
    },
    #[error("{kind}: field `{field}`: {reason}")]
    InvalidConstraint {
        kind: String,
        field: String,
        reason: String,
    },
    #[error("{kind}: {context} names field `{field}`, which is not declared there")]
    UnknownFieldReference {
        kind: String,
        context: String,
        field: String,
    },
    #[error("{kind}: {context} names field `{field}`, a {actual} field; it must be {expected}")]
    WrongReferenceType {
        kind: String,
        context: String,
        field: String,
        actual: FieldType,
        expected: &'static str,
    },
    #[error("{kind}: {context} lists no values, so it could never hold")]
    EmptyAnyOf { kind: String, context: String },
    #[error("{kind}: {context} lists `{choice}`, which is not a choice of field `{field}`")]
    UnknownChoiceReference {
        kind: String,
        context: String,
        field: String,
        choice: String,
    },
    #[error(
        "{kind}: log field `{field}` clashes with the entry key of the same name (id, created_by, created_at, removed_by, removed_at)"
    )]
    ReservedLogField { kind: String, field: String },
    #[error("{kind}: rule `{code}` takes the code of a flag every kind has")]
    ReservedRule { kind: String, code: String },
    #[error("{kind}: rule `{code}` is declared more than once")]
    DuplicateRule { kind: String, code: String },
    #[error("{kind}: rule `{code}` is about log entries, but the kind has no log")]
    RuleWithoutLog { kind: String, code: String },
    #[error("{kind} is anonymous but field `{field}` is marked sensitive")]
    SensitiveFieldInAnonymousKind { kind: String, field: String },
    #[error("{kind} is anonymous but field `{field}` would identify a person ({why})")]
    IdentifyingFieldInAnonymousKind {
        kind: String,
        field: String,
        why: String,
    },
    #[error(
        "{kind} is anonymous but field `{field}` holds attachments, which could identify the respondent"
    )]
    AttachmentInAnonymousKind { kind: String, field: String },
    #[error("{kind} version {version} is already loaded")]
    DuplicateKindVersion { kind: String, version: u32 },
}
