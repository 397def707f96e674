//! The records and enums the bindings hand to the app, and their conversions from sync-core's
//! JSON projections and schemas. Typed values follow the field's schema type; anything that does
//! not fit (data written by a newer app, say) comes through as [`FieldValue::Json`].

use std::collections::HashMap;

use gridsync_core::schema::{self, FieldDef as CoreFieldDef, FieldType as CoreFieldType, Schema};
use serde_json::{Map, Value as Json};

use crate::error::{ClientError, Result};

/// Timeouts, retries and sync page sizes; [`default_client_config`] gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ClientConfig {
    pub connect_timeout_ms: u64,
    /// The whole of one request, answer included. Together with `connect_timeout_ms` it must
    /// fit inside the server's refresh grace window of 120 s: a refresh whose answer is lost is
    /// retried once after waiting this long, and the server takes the retry only within the
    /// window, counted from when it answered the first.
    pub request_timeout_ms: u64,
    /// Tries per request on network errors and 5xx answers, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry; it doubles for each further one (up to 8 s).
    pub retry_base_delay_ms: u64,
    /// Change bytes per push request (a document always goes whole).
    pub push_max_bytes: u64,
    /// Bytes of changes per pull page: small pages make progress on a slow link.
    pub pull_byte_budget: u32,
    /// Bytes per attachment upload request; a cut upload resumes at the last whole chunk.
    pub upload_chunk_bytes: u64,
    /// Bound on fetched attachments kept on the phone; attachments waiting for upload are
    /// kept whatever their size.
    pub attachment_cache_bytes: u64,
}

/// The defaults: 10 s to connect, 60 s per request, 4 tries from 0.5 s apart, 256 KiB pushes,
/// 64 KiB pull pages, 128 KiB upload chunks, 50 MiB of fetched attachments.
#[uniffi::export]
pub fn default_client_config() -> ClientConfig {
    ClientConfig {
        connect_timeout_ms: 10_000,
        request_timeout_ms: 60_000,
        max_attempts: 4,
        retry_base_delay_ms: 500,
        push_max_bytes: 256 * 1024,
        pull_byte_budget: 64 * 1024,
        upload_chunk_bytes: 128 * 1024,
        attachment_cache_bytes: 50 * 1024 * 1024,
    }
}

/// The logged-in user, their scope and this device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct UserInfo {
    pub id: String,
    pub username: String,
    pub display_name: String,
    /// grid_worker, village_cadre, township_staff, drug_control_officer or district_admin.
    pub role: String,
    pub org_unit_id: String,
    /// Org path prefix of the reports this user may see; empty for the whole district.
    pub scope_path: String,
    /// Whether the user may read fields marked sensitive.
    pub clearance: bool,
    pub device_id: String,
}

/// A field's value, typed by the field's schema type: `Text` for text, date (YYYY-MM-DD),
/// datetime (RFC 3339), single choice (the choice id) and person (a user id).
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum FieldValue {
    Text {
        value: String,
    },
    Integer {
        value: i64,
    },
    Decimal {
        value: f64,
    },
    Boolean {
        value: bool,
    },
    /// The choice ids of a multiple-choice field.
    Choices {
        values: Vec<String>,
    },
    Location {
        lat: f64,
        lon: f64,
        accuracy_m: Option<f64>,
    },
    /// A value that fits none of the above, as JSON text.
    Json {
        json: String,
    },
}

/// One field that has a value.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct FieldEntry {
    pub field: String,
    pub value: FieldValue,
}

/// One entry of a report's log (a mediation step, a visit).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct LogEntry {
    pub id: String,
    pub created_by: String,
    pub created_at: String,
    pub fields: Vec<FieldEntry>,
}

/// A report as the phone holds it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Report {
    pub id: String,
    pub kind: String,
    pub schema_version: u32,
    pub grid: String,
    pub created_by: String,
    pub created_at: String,
    /// Fields with a value, in schema order (then any the schema does not know).
    pub fields: Vec<FieldEntry>,
    pub log: Vec<LogEntry>,
    /// The JSON projection: meta keys, `fields`, `log`.
    pub json: String,
    /// The document's heads (change hashes, hex, sorted): equal heads, equal reports.
    pub heads: Vec<String>,
    /// Local changes the server has neither acknowledged nor taken as held work.
    pub pending_changes: u64,
    /// Fields holding concurrent values that someone must resolve.
    pub open_conflicts: u32,
    /// Why the server refused the last push of this report, if it did; `stuck_reports` lists
    /// every such report and the ways out.
    pub rejected: Option<ServerRefusal>,
    /// The server keeps changes of this report as held work: the user may no longer edit it
    /// (a case reassigned, a move to another grid), and whoever owns it now merges or declines
    /// them. Nothing of it is lost when the phone later drops the report.
    pub held: bool,
    /// The report left this user's scope; the phone keeps it only until everything in it is
    /// delivered.
    pub out_of_scope: bool,
}

/// Why the server refused a report, for good until someone changes it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ServerRefusal {
    /// Stable: invalid_text, unknown_grid, out_of_scope, ...
    pub code: String,
    /// English, for people; the app localises by `code`.
    pub reason: String,
}

/// A report the server refused. Ways out: edit it (the next sync offers it again), move it to
/// another grid with `move_report` (unless `accepted_before`), or `discard_report` it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StuckReport {
    pub id: String,
    pub kind: String,
    pub grid: String,
    /// The first text of the report, cut to 80 characters.
    pub title: String,
    pub code: String,
    pub reason: String,
    pub pending_changes: u64,
    /// Edited since the refusal: the next sync offers it again.
    pub edited_since: bool,
    /// The server holds earlier changes of this report, so it cannot be moved; discarding it
    /// brings back the server's copy at the next sync.
    pub accepted_before: bool,
}

/// A grid the user may file reports in, for the grid picker.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct GridInfo {
    pub id: String,
    pub name: String,
    /// Org path from the district down, such as `/d/t1/v1/g1/`.
    pub path: String,
}

/// A report discarded on this phone; its copy is kept until the next successful sync.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DiscardedReport {
    pub id: String,
    pub kind: String,
    pub grid: String,
    pub title: String,
    /// The server's refusal, when it had refused the report.
    pub rejected: Option<ServerRefusal>,
    pub discarded_by: String,
    /// RFC 3339.
    pub discarded_at: String,
    /// Everything to keep or hand over: the JSON projection (`report`), the saved automerge
    /// document with every change (`document`, base64), who discarded it and when, and the
    /// bytes of attachments not uploaded yet (`attachments[].bytes`, base64).
    pub export_json: String,
}

/// A task the office set for the phone's grid or user, with its progress counted from the
/// reports linked to it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TaskItem {
    pub id: String,
    /// `task`, or `drug_visit_task` (restricted like its case).
    pub kind: String,
    pub grid: String,
    pub title: String,
    /// `YYYY-MM-DD`.
    pub due: String,
    /// `canvass_quota`, `dispute_follow_up`, `drug_visit` or `free`.
    pub goal: String,
    /// The dispute to follow up or the case to visit.
    pub target: Option<String>,
    pub assignee: Option<String>,
    /// `open`, `done` or `cancelled` as set.
    pub status: String,
    pub done_note: Option<String>,
    /// How much of `needed` is done: interviews against the quota, else 0 or 1.
    pub progress: u32,
    pub needed: u32,
    /// Marked done, or its goal reached.
    pub done: bool,
    /// Changes not yet sent to the server.
    pub pending_changes: u64,
}

/// A line of a report list.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ReportSummary {
    pub id: String,
    pub kind: String,
    pub grid: String,
    /// The first text of the report (a description, a name), cut to 80 characters.
    pub title: String,
    pub status: Option<String>,
    pub created_at: String,
    pub log_entries: u32,
    pub pending_changes: u64,
    pub open_conflicts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Label {
    pub zh: String,
    pub en: String,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ChoiceDef {
    pub id: String,
    pub label: Label,
}

/// Holds when `field` has one of `any_of`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ConditionDef {
    pub field: String,
    pub any_of: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
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
    /// Photos, recordings, documents: added with `attach_file`/`attach_bytes`, not `set_field`.
    Attachment,
}

/// Where a photo was taken.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
}

/// An attachment to add to a report; its bytes are passed beside it (a file or bytes).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct NewAttachment {
    /// An attachment field of the report's kind; with `entry`, a field of its log entries.
    pub field: String,
    pub entry: Option<String>,
    /// The name shown to people; a file's own name when attaching a file and this is `None`.
    pub name: Option<String>,
    /// One of the field's `media_types`; the app has already downscaled a photo.
    pub media_type: String,
    /// When the photo was taken (RFC 3339); now when `None`.
    pub taken_at: Option<String>,
    pub location: Option<GeoPoint>,
}

/// An attachment of a report and where its bytes are.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct AttachmentInfo {
    pub sha256: String,
    pub media_type: String,
    pub size: u64,
    pub name: String,
    pub field: String,
    pub entry: Option<String>,
    pub taken_at: String,
    pub attached_by: String,
    /// The bytes are on this phone (attached here, or fetched before).
    pub local: bool,
    /// Attached here and not yet uploaded.
    pub pending_upload: bool,
}

/// What a form needs to draw and check one field.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct FieldDef {
    pub id: String,
    pub label: Label,
    pub field_type: FieldType,
    /// A line under the label that helps fill the field in.
    pub hint: Option<Label>,
    pub required: bool,
    pub required_when: Option<ConditionDef>,
    /// Personal data.
    pub sensitive: bool,
    pub choices: Vec<ChoiceDef>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// In characters.
    pub max_len: Option<u32>,
    /// Attachment fields: the media types allowed.
    pub media_types: Vec<String>,
    /// Attachment fields: the largest attachment, in bytes.
    pub max_size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct LogDef {
    pub id: String,
    pub label: Label,
    pub fields: Vec<FieldDef>,
}

/// One report kind, latest version.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct KindSchema {
    pub kind: String,
    pub version: u32,
    pub label: Label,
    /// No names or identifying data may be recorded.
    pub anonymous: bool,
    pub status_field: Option<String>,
    pub fields: Vec<FieldDef>,
    pub log: Option<LogDef>,
}

/// One thing wrong with a report or a value. `path` is `fields.NAME`, `log[INDEX].NAME`,
/// `log.NAME` (a value being entered) or a meta path; `field` is the field's id when there is one.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ValidationProblem {
    pub path: String,
    pub field: Option<String>,
    /// Stable code: required, wrong_type, invalid_choice, out_of_range, too_long, ...
    pub code: String,
    /// English; the app localises by `code`.
    pub message: String,
}

/// One of the concurrent values of a field.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ConflictValue {
    pub value: FieldValue,
    /// The value as JSON, which `resolve_conflict` accepts back.
    pub value_json: String,
    /// The user who wrote it.
    pub author: Option<String>,
    /// Unix seconds, as the writing device recorded them.
    pub time: i64,
}

/// A field holding more than one concurrent value (the first value is what the report shows
/// until someone resolves it), or a log entry someone edited while someone else removed it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct FieldConflict {
    /// `fields.NAME` or `log[ENTRY_ID].NAME`, or `log[ENTRY_ID]` for a removed entry; pass it to
    /// `resolve_conflict`.
    pub path: String,
    /// The field; empty for a removed entry.
    pub field: String,
    /// The log entry, for a conflict inside one.
    pub entry_id: Option<String>,
    /// The concurrent values; none for a removed entry.
    pub values: Vec<ConflictValue>,
    /// `concurrent_values`, or `edited_after_removal`: `resolve_conflict` with `"restore"`
    /// brings the entry back with the edits, with `null` confirms its removal.
    pub code: String,
    /// What happened, for `edited_after_removal`.
    pub message: Option<Label>,
    pub removal: Option<RemovedEntry>,
}

/// A log entry removed while someone edited it: hidden from the report's log until someone
/// restores it or confirms the removal.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct RemovedEntry {
    pub removed_by: String,
    /// RFC 3339, as the removing device recorded it.
    pub removed_at: String,
    /// Who edited it without seeing the removal.
    pub edited_by: Vec<String>,
    /// Its fields as they now stand, those edits included.
    pub fields: Vec<FieldEntry>,
}

/// A report the server refused for good.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RejectedReport {
    pub id: String,
    pub code: String,
    pub reason: String,
}

/// A report whose changes the server took as held work, for the office to merge or decline.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HeldReport {
    pub id: String,
    pub code: String,
    pub reason: String,
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SyncSummary {
    /// Local changes the server acknowledged.
    pub pushed_changes: u64,
    /// Reports whose changes the server acknowledged.
    pub pushed_reports: u32,
    /// Reports that arrived or changed from the server.
    pub pulled_reports: u32,
    /// Reports dropped because they left this user's scope, each once everything in it was
    /// delivered (acknowledged, or held).
    pub evicted_reports: u32,
    pub rejected: Vec<RejectedReport>,
    /// Reports whose changes the server keeps as held work.
    pub held: Vec<HeldReport>,
    /// This user's scope changed (a new grid or role): the pull started over.
    pub rescoped: bool,
    /// Open conflicts over all local reports after the sync.
    pub open_conflicts: u32,
    /// Local changes still waiting (refused ones, or edits made during the sync).
    pub pending_changes: u64,
    /// Bytes of HTTP request and response bodies (headers and TLS not included).
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub requests: u32,
    /// The server's digest still disagreed after pulling everything again.
    pub diverged: bool,
    /// Attachments whose upload completed in this sync.
    pub uploaded_attachments: u32,
    /// Attachments still waiting for upload to central (their report is not pushed, the sync
    /// broke off, or only the office hub holds them yet).
    pub pending_uploads: u32,
    /// Attachments the office hub holds, to relay to central: still counted in
    /// `pending_uploads`, and kept on the phone, until central's receipt comes back.
    pub attachments_at_hub: u32,
    /// Report kind definitions (forms) fetched from the server: new kinds and versions.
    pub new_schemas: u32,
    /// The village office hub this sync went through, central being out of reach; `None` when
    /// it reached central. What a hub acknowledged still counts in `pending_changes`.
    pub via_hub: Option<String>,
    /// Central's receipts the hub handed on: reports it relayed that central now holds.
    pub receipts: u32,
    /// Reports the hub did not take, which go to central on the next sync that reaches it:
    /// restricted kinds, which never go through a hub, and those the hub refused or cannot
    /// take yet. None of it is lost.
    pub left_for_central: Vec<RejectedReport>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SyncPhase {
    Push,
    Pull,
}

/// Progress after each push request and each pull page.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncProgress {
    pub phase: SyncPhase,
    /// Requests of this phase so far.
    pub round: u32,
    /// Reports pushed or pulled so far in this phase.
    pub reports: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// Told of progress during `sync_with_progress`; called on the syncing thread.
#[uniffi::export(callback_interface)]
pub trait SyncListener: Send + Sync {
    fn on_progress(&self, progress: SyncProgress);
}

// ---- conversions ----

pub(crate) fn label(l: &schema::Label) -> Label {
    Label {
        zh: l.zh.clone(),
        en: l.en.clone(),
    }
}

pub(crate) fn field_type(t: CoreFieldType) -> FieldType {
    match t {
        CoreFieldType::Text => FieldType::Text,
        CoreFieldType::Integer => FieldType::Integer,
        CoreFieldType::Decimal => FieldType::Decimal,
        CoreFieldType::Boolean => FieldType::Boolean,
        CoreFieldType::Date => FieldType::Date,
        CoreFieldType::Datetime => FieldType::Datetime,
        CoreFieldType::SingleChoice => FieldType::SingleChoice,
        CoreFieldType::MultipleChoice => FieldType::MultipleChoice,
        CoreFieldType::Location => FieldType::Location,
        CoreFieldType::PersonRef => FieldType::PersonRef,
        CoreFieldType::Attachment => FieldType::Attachment,
    }
}

pub(crate) fn field_def(d: &CoreFieldDef) -> FieldDef {
    FieldDef {
        id: d.id.clone(),
        label: label(&d.label),
        field_type: field_type(d.ty),
        hint: d.hint.as_ref().map(label),
        required: d.required,
        required_when: d.required_when.as_ref().map(|c| ConditionDef {
            field: c.field.clone(),
            any_of: c.any_of.clone(),
        }),
        sensitive: d.sensitive,
        choices: d
            .choices
            .iter()
            .map(|c| ChoiceDef {
                id: c.id.clone(),
                label: label(&c.label),
            })
            .collect(),
        min: d.min,
        max: d.max,
        max_len: d.max_len,
        media_types: d.media_types.clone(),
        max_size: d.max_size,
    }
}

pub(crate) fn kind_schema(s: &Schema) -> KindSchema {
    KindSchema {
        kind: s.kind.clone(),
        version: s.version,
        label: label(&s.label),
        anonymous: s.anonymous,
        status_field: s.status_field.clone(),
        fields: s.fields.iter().map(field_def).collect(),
        log: s.log.as_ref().map(|l| LogDef {
            id: l.id.clone(),
            label: label(&l.label),
            fields: l.fields.iter().map(field_def).collect(),
        }),
    }
}

/// A JSON value as a typed value; `def` decides the variant when the value fits it.
pub(crate) fn value_from_json(def: Option<&CoreFieldDef>, json: &Json) -> FieldValue {
    let fallback = || FieldValue::Json {
        json: json.to_string(),
    };
    let ty = def.map(|d| d.ty);
    match (ty, json) {
        (Some(CoreFieldType::Decimal), Json::Number(n)) => n
            .as_f64()
            .map_or_else(fallback, |value| FieldValue::Decimal { value }),
        (Some(CoreFieldType::MultipleChoice) | None, Json::Array(items))
            if items.iter().all(Json::is_string) =>
        {
            FieldValue::Choices {
                values: items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            }
        }
        (Some(CoreFieldType::Location) | None, Json::Object(map)) => {
            let num = |k: &str| map.get(k).and_then(Json::as_f64);
            match (num("lat"), num("lon")) {
                (Some(lat), Some(lon))
                    if map
                        .keys()
                        .all(|k| ["lat", "lon", "accuracy_m"].contains(&k.as_str())) =>
                {
                    FieldValue::Location {
                        lat,
                        lon,
                        accuracy_m: num("accuracy_m"),
                    }
                }
                _ => fallback(),
            }
        }
        (_, Json::String(s)) => FieldValue::Text { value: s.clone() },
        (_, Json::Bool(b)) => FieldValue::Boolean { value: *b },
        (_, Json::Number(n)) => match n.as_i64() {
            Some(value) => FieldValue::Integer { value },
            None => n
                .as_f64()
                .map_or_else(fallback, |value| FieldValue::Decimal { value }),
        },
        _ => fallback(),
    }
}

/// A typed value as the JSON the document stores.
pub(crate) fn value_to_json(value: &FieldValue) -> Result<Json> {
    Ok(match value {
        FieldValue::Text { value } => Json::String(value.clone()),
        FieldValue::Integer { value } => Json::from(*value),
        FieldValue::Decimal { value } => finite(*value)?,
        FieldValue::Boolean { value } => Json::Bool(*value),
        FieldValue::Choices { values } => {
            Json::Array(values.iter().cloned().map(Json::String).collect())
        }
        FieldValue::Location {
            lat,
            lon,
            accuracy_m,
        } => {
            let mut map = Map::new();
            map.insert("lat".into(), finite(*lat)?);
            map.insert("lon".into(), finite(*lon)?);
            if let Some(a) = accuracy_m {
                map.insert("accuracy_m".into(), finite(*a)?);
            }
            Json::Object(map)
        }
        FieldValue::Json { json } => serde_json::from_str(json)
            .map_err(|e| ClientError::Invalid(format!("not JSON: {e}")))?,
    })
}

fn finite(v: f64) -> Result<Json> {
    serde_json::Number::from_f64(v)
        .map(Json::Number)
        .ok_or_else(|| ClientError::Validation(format!("{v} is not a finite number")))
}

/// The entries of a JSON object in the order of `defs`, then keys the schema does not know;
/// `skip` names keys that are not fields (a log entry's id and attribution).
pub(crate) fn entries(
    defs: &[CoreFieldDef],
    map: &Map<String, Json>,
    skip: &[&str],
) -> Vec<FieldEntry> {
    let mut out = Vec::new();
    for def in defs {
        if let Some(v) = map.get(&def.id).filter(|v| !v.is_null()) {
            out.push(FieldEntry {
                field: def.id.clone(),
                value: value_from_json(Some(def), v),
            });
        }
    }
    for (key, v) in map {
        if v.is_null() || skip.contains(&key.as_str()) || defs.iter().any(|d| &d.id == key) {
            continue;
        }
        out.push(FieldEntry {
            field: key.clone(),
            value: value_from_json(None, v),
        });
    }
    out
}

/// Converts a map of typed values for writing.
pub(crate) fn values_to_json(values: &HashMap<String, FieldValue>) -> Result<Map<String, Json>> {
    let mut map = Map::new();
    // Sorted, so a form saved twice writes in the same order.
    let mut keys: Vec<&String> = values.keys().collect();
    keys.sort();
    for key in keys {
        map.insert(key.clone(), value_to_json(&values[key])?);
    }
    Ok(map)
}

pub(crate) fn problem(p: &schema::Problem) -> ValidationProblem {
    let field = p
        .path
        .rsplit_once('.')
        .map(|(_, f)| f.to_owned())
        .filter(|f| !f.is_empty());
    ValidationProblem {
        path: p.path.clone(),
        field,
        code: p.code.as_str().to_owned(),
        message: p.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridsync_core::schema::Registry;
    use serde_json::json;

    #[test]
    fn values_round_trip_through_json_by_field_type() {
        let registry = Registry::builtin();
        let canvass = registry.latest("satisfaction_canvass").unwrap();
        let location = canvass.field("location").unwrap();
        let value = FieldValue::Location {
            lat: 30.5,
            lon: 114.25,
            accuracy_m: Some(12.0),
        };
        let json = value_to_json(&value).unwrap();
        assert_eq!(
            json,
            json!({"lat": 30.5, "lon": 114.25, "accuracy_m": 12.0})
        );
        assert_eq!(value_from_json(Some(location), &json), value);

        let dispute = registry.latest("dispute_check").unwrap();
        let risk = dispute.field("risk_level").unwrap();
        assert_eq!(
            value_from_json(Some(risk), &json!("high")),
            FieldValue::Text {
                value: "high".into()
            }
        );
        assert_eq!(
            value_from_json(Some(risk), &json!({"odd": 1})),
            FieldValue::Json {
                json: r#"{"odd":1}"#.into()
            }
        );
    }

    #[test]
    fn non_finite_numbers_are_refused() {
        assert!(matches!(
            value_to_json(&FieldValue::Decimal { value: f64::NAN }),
            Err(ClientError::Validation(_))
        ));
    }

    #[test]
    fn every_builtin_kind_converts_for_forms() {
        let registry = Registry::builtin();
        let kinds: Vec<KindSchema> = registry.kinds().map(kind_schema).collect();
        assert_eq!(kinds.len(), 5, "three report kinds and two task kinds");
        let dispute = kinds.iter().find(|k| k.kind == "dispute_check").unwrap();
        assert_eq!(dispute.label.zh, "矛盾纠纷排查");
        assert!(dispute.log.as_ref().is_some_and(|l| l.fields.len() == 4));
    }
}
