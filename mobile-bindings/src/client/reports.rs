//! Reports on the phone: creating one, reading it with its fields typed by its schema, editing
//! fields and log entries (checked against the schema first, each edit one stored change), and
//! listing and searching the local reports.

use std::collections::HashMap;

use gridsync_core::DocId;
use gridsync_core::replica::LocalDoc;
use gridsync_core::report::{Editor, LOG_ENTRY_KEYS, ReportDoc};
use gridsync_core::schema::Schema;
use gridsync_core::task;
use serde_json::{Map, Value as Json};

use super::schemas::check_value;
use super::{Client, parse_id, rebuild, refusals};
use crate::error::{ClientError, Result};
use crate::model::{self, FieldValue, LogEntry, Report, ReportSummary, ServerRefusal};
use crate::store::StoredSummary;
use crate::summary::open_conflicts;

impl Client {
    /// Creates a report of `kind` for `grid`, authored by the logged-in user.
    /// A canvass interview counts towards the grid's quota task at once, in the same
    /// transaction.
    pub fn create_report(&self, kind: &str, grid: &str) -> Result<String> {
        if task::is_task_kind(kind) {
            return Err(ClientError::Invalid(
                "tasks are set by the office; a phone files reports".into(),
            ));
        }
        let schema = self.schema_of(kind)?;
        if grid.trim().is_empty() {
            return Err(ClientError::Invalid("a report needs a grid".into()));
        }
        let mut state = self.lock();
        let by = state.editor()?;
        refusals::check_grid(&mut state, &by.user, grid)?;
        let id = DocId::new_v4();
        let doc = ReportDoc::create(id, kind, schema.version, grid, &by)?;
        state.replica.insert(doc);
        let stored = state.link_tasks(&id, false, &by).and_then(|linked| {
            let tasks: Vec<DocId> = linked.iter().map(|(t, _)| *t).collect();
            state.store_docs(&id, &tasks)
        });
        if let Err(e) = stored {
            // Not stored, so it must not exist in memory either.
            let replica = rebuild(&mut state)?;
            state.replica = replica;
            return Err(e);
        }
        Ok(id.to_string())
    }

    pub fn report(&self, id: &str) -> Result<Report> {
        let id = parse_id(id)?;
        let local = {
            let mut state = self.lock();
            let local = state.local(&id)?.clone();
            state.replica.park(Some(&id));
            local
        };
        self.report_of(local)
    }

    fn report_of(&self, mut local: LocalDoc) -> Result<Report> {
        let meta = local.doc.meta()?;
        let projection = local.doc.to_json()?;
        let registry = self.registry();
        let schema = registry.get(&meta.kind, meta.schema_version);
        let empty = Map::new();
        let fields_map = projection["fields"].as_object().unwrap_or(&empty);
        let defs = schema.map(|s| s.fields.as_slice()).unwrap_or_default();
        let log_defs = schema
            .and_then(|s| s.log.as_ref())
            .map(|l| l.fields.as_slice())
            .unwrap_or_default();
        let log = projection["log"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(Json::as_object)
            .map(|entry| LogEntry {
                id: text(entry.get("id")),
                created_by: text(entry.get("created_by")),
                created_at: text(entry.get("created_at")),
                fields: model::entries(log_defs, entry, &LOG_ENTRY_KEYS),
            })
            .collect();
        let pending = local.pending() as u64;
        let mut heads: Vec<String> = local.doc.heads().iter().map(|h| h.to_string()).collect();
        heads.sort();
        let open_conflicts = open_conflicts(&mut local.doc)?;
        Ok(Report {
            id: meta.id.to_string(),
            kind: meta.kind,
            schema_version: meta.schema_version,
            grid: meta.grid,
            created_by: meta.created_by,
            created_at: meta.created_at,
            fields: model::entries(defs, fields_map, &[]),
            log,
            json: projection.to_string(),
            heads,
            pending_changes: pending,
            open_conflicts,
            rejected: local.rejected.as_ref().map(|r| ServerRefusal {
                code: r.code.clone(),
                reason: r.reason.clone(),
            }),
            held: !local.held.is_empty(),
            out_of_scope: local.out_of_scope,
        })
    }

    /// Sets one field (`None` clears it). A value that does not fit the field is refused.
    pub fn set_field(&self, id: &str, field: &str, value: Option<FieldValue>) -> Result<()> {
        let mut values = HashMap::new();
        values.insert(field.to_owned(), value);
        self.set_fields_opt(id, values)
    }

    /// Sets several fields in one change: a form saved at once.
    pub fn set_fields(&self, id: &str, values: HashMap<String, FieldValue>) -> Result<()> {
        self.set_fields_opt(id, values.into_iter().map(|(k, v)| (k, Some(v))).collect())
    }

    fn set_fields_opt(&self, id: &str, values: HashMap<String, Option<FieldValue>>) -> Result<()> {
        let id = parse_id(id)?;
        let schema = self.schema_of_doc(&id)?;
        let mut map = Map::new();
        let mut keys: Vec<&String> = values.keys().collect();
        keys.sort();
        for key in keys {
            let json = match &values[key] {
                Some(v) => model::value_to_json(v)?,
                None => Json::Null,
            };
            check_value(schema.validate_field(key, &json))?;
            map.insert(key.clone(), json);
        }
        refusals::refuse_nul_values(&map)?;
        self.edit_with(&id, Some(false), |doc, by| {
            doc.set_fields(&map, by).map_err(Into::into)
        })
    }

    /// Appends a log entry (a mediation step, a visit); returns its id.
    pub fn append_log(&self, id: &str, values: HashMap<String, FieldValue>) -> Result<String> {
        let id = parse_id(id)?;
        let schema = self.schema_of_doc(&id)?;
        let map = self.log_values(&schema, &values)?;
        let mut entry = String::new();
        self.edit_with(&id, Some(true), |doc, by| {
            entry = doc.append_log(&map, by)?;
            Ok(())
        })?;
        Ok(entry)
    }

    /// Changes fields of a log entry; fields not named keep their values.
    pub fn edit_log(
        &self,
        id: &str,
        entry_id: &str,
        values: HashMap<String, FieldValue>,
    ) -> Result<()> {
        let id = parse_id(id)?;
        let schema = self.schema_of_doc(&id)?;
        let map = self.log_values(&schema, &values)?;
        self.edit(&id, |doc, by| {
            doc.edit_log(entry_id, &map, by).map_err(Into::into)
        })
    }

    pub fn remove_log(&self, id: &str, entry_id: &str) -> Result<()> {
        let id = parse_id(id)?;
        self.edit(&id, |doc, by| {
            doc.remove_log(entry_id, by).map_err(Into::into)
        })
    }

    fn log_values(
        &self,
        schema: &Schema,
        values: &HashMap<String, FieldValue>,
    ) -> Result<Map<String, Json>> {
        if schema.log.is_none() {
            return Err(ClientError::Invalid(format!(
                "{} reports have no log",
                schema.kind
            )));
        }
        let map = model::values_to_json(values)?;
        for (key, value) in &map {
            check_value(schema.validate_log_field(key, value))?;
        }
        refusals::refuse_nul_values(&map)?;
        Ok(map)
    }

    /// Applies `f` to a report as the logged-in user and stores the result in one transaction;
    /// if storing fails, the report is as it was.
    pub(super) fn edit(
        &self,
        id: &DocId,
        f: impl FnOnce(&mut ReportDoc, &Editor) -> Result<()>,
    ) -> Result<()> {
        self.edit_with(id, None, f)
    }

    /// [`Client::edit`], which with `link` also links the report to the tasks it fulfils
    /// (`Some(true)`: the edit logged a visit) and stores them with it in the same transaction.
    fn edit_with(
        &self,
        id: &DocId,
        link: Option<bool>,
        f: impl FnOnce(&mut ReportDoc, &Editor) -> Result<()>,
    ) -> Result<()> {
        let mut state = self.lock();
        let by = state.editor()?;
        let doc = &mut state.local(id)?.doc;
        let before = doc.clone();
        let mut linked = Vec::new();
        let outcome = f(doc, &by).and_then(|()| {
            if let Some(logged) = link {
                linked = state.link_tasks(id, logged, &by)?;
            }
            let tasks: Vec<DocId> = linked.iter().map(|(t, _)| *t).collect();
            state.store_docs(id, &tasks)
        });
        if outcome.is_err() {
            for (doc_id, doc) in linked.into_iter().chain([(*id, before)]) {
                if let Some(d) = state.replica.doc_mut(&doc_id) {
                    *d = doc;
                }
            }
        }
        outcome
    }

    /// Local reports, newest first; only those of `kind` when given. Tasks only when asked
    /// for by kind: [`Client::tasks`] lists them.
    pub fn list_reports(&self, kind: Option<String>) -> Result<Vec<ReportSummary>> {
        self.summaries(|stored| match &kind {
            Some(k) => &stored.summary.kind == k,
            None => !task::is_task_kind(&stored.summary.kind),
        })
    }

    /// Local reports whose text contains every word of `query` (case-insensitive): names,
    /// descriptions, places, log notes.
    pub fn search_reports(&self, query: &str) -> Result<Vec<ReportSummary>> {
        let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        self.summaries(|stored| {
            !task::is_task_kind(&stored.summary.kind) && stored.summary.matches(&stored.id, &words)
        })
    }

    /// The stored listing entries that `keep` accepts, with titles and statuses read through
    /// the forms the phone has now.
    fn summaries(&self, keep: impl Fn(&StoredSummary) -> bool) -> Result<Vec<ReportSummary>> {
        let registry = self.registry();
        let mut out = self.lock().store()?.summaries(|stored| {
            keep(&stored).then(|| {
                let summary = stored.summary;
                let schema = registry.get(&summary.kind, summary.schema_version);
                ReportSummary {
                    id: stored.id.to_string(),
                    title: title(schema, &summary.fields),
                    status: schema
                        .and_then(|s| s.status_field.as_ref())
                        .and_then(|f| summary.fields[f].as_str())
                        .map(str::to_owned),
                    log_entries: summary.log_entries,
                    pending_changes: stored.pending,
                    open_conflicts: stored.conflicts,
                    kind: summary.kind,
                    grid: summary.grid,
                    created_at: summary.created_at,
                }
            })
        })?;
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }
}

pub(super) fn text(v: Option<&Json>) -> String {
    v.and_then(Json::as_str).unwrap_or_default().to_owned()
}

/// The first text field with a value, in schema order, cut to 80 characters.
pub(super) fn title(schema: Option<&Schema>, fields: &Json) -> String {
    let candidates: Vec<&str> = match schema {
        Some(s) => s
            .fields
            .iter()
            .filter(|f| f.ty == gridsync_core::schema::FieldType::Text)
            .map(|f| f.id.as_str())
            .collect(),
        None => Vec::new(),
    };
    let found = candidates
        .iter()
        .filter_map(|f| fields[*f].as_str())
        .find(|s| !s.trim().is_empty())
        .unwrap_or_default();
    found.chars().take(80).collect()
}
