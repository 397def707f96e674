//! Conflicts on the phone: concurrent values of a field and log entries edited after their
//! removal, listed with the values to choose from, and resolved by a change like any edit.

use gridsync_core::conflict::FieldPath;
use gridsync_core::report::LOG_ENTRY_KEYS;
use serde_json::Value as Json;

use super::schemas::check_value;
use super::{Client, parse_id, refusals};
use crate::error::{ClientError, Result};
use crate::model::{self, ConflictValue, FieldConflict};

impl Client {
    pub fn conflicts(&self, id: &str) -> Result<Vec<FieldConflict>> {
        let id = parse_id(id)?;
        let mut doc = {
            let mut state = self.lock();
            state.local(&id)?.doc.clone()
        };
        let meta = doc.meta()?;
        let registry = self.registry();
        let schema = registry.get(&meta.kind, meta.schema_version);
        let mut conflicts: Vec<FieldConflict> = doc
            .conflicts()?
            .into_iter()
            .map(|c| {
                let (field, entry_id, def) = match &c.path {
                    FieldPath::Field(f) => (f.clone(), None, schema.and_then(|s| s.field(f))),
                    FieldPath::Log { entry, field } => (
                        field.clone(),
                        Some(entry.clone()),
                        schema.and_then(|s| s.log_field(field)),
                    ),
                };
                FieldConflict {
                    path: c.path.to_string(),
                    field,
                    entry_id,
                    values: c
                        .values
                        .iter()
                        .map(|v| ConflictValue {
                            value: model::value_from_json(def, &v.value),
                            value_json: v.value.to_string(),
                            author: v.author.clone(),
                            time: v.time,
                        })
                        .collect(),
                    code: "concurrent_values".to_owned(),
                    message: None,
                    removal: None,
                }
            })
            .collect();
        let log_defs = schema
            .and_then(|s| s.log.as_ref())
            .map(|l| l.fields.as_slice())
            .unwrap_or_default();
        // Only the flag the phone can resolve itself: a kind's rule flags are dismissed at the
        // office, which the document does not record.
        for flag in doc.edited_after_removal()? {
            let removal = flag.removal.as_ref().map(|r| model::RemovedEntry {
                removed_by: r.removed_by.clone(),
                removed_at: r.removed_at.clone(),
                edited_by: r.edited_by.clone(),
                fields: model::entries(log_defs, &r.values, &LOG_ENTRY_KEYS),
            });
            conflicts.push(FieldConflict {
                path: flag.path(),
                field: String::new(),
                entry_id: Some(flag.entry.clone()),
                values: Vec::new(),
                code: flag.code.clone(),
                message: Some(model::label(&flag.message)),
                removal,
            });
        }
        Ok(conflicts)
    }

    /// Resolves the conflict at `path` with `value_json` (one of the values offered, or a new
    /// one): a change by the logged-in user, synced like any edit. A log entry edited after its
    /// removal (`log[ENTRY_ID]`) takes `"restore"` to bring it back, or `null` to confirm the
    /// removal.
    pub fn resolve_conflict(&self, id: &str, path: &str, value_json: &str) -> Result<()> {
        let id = parse_id(id)?;
        let value: Json = serde_json::from_str(value_json)
            .map_err(|e| ClientError::Invalid(format!("the value is not JSON: {e}")))?;
        if let Some(entry) = gridsync_core::conflict::flagged_entry(path) {
            let restore = match &value {
                Json::Null => false,
                Json::String(s) if s == "restore" => true,
                _ => {
                    return Err(ClientError::Invalid(format!(
                        "{path} was edited after its removal: resolve it with \"restore\" or null"
                    )));
                }
            };
            return self.edit(&id, |doc, by| {
                if restore {
                    doc.restore_log(entry, by)
                } else {
                    doc.confirm_removal(entry, by)
                }
                .map_err(Into::into)
            });
        }
        let path: FieldPath = path.parse()?;
        let schema = self.schema_of_doc(&id)?;
        match &path {
            FieldPath::Field(f) => check_value(schema.validate_field(f, &value))?,
            FieldPath::Log { field, .. } => check_value(schema.validate_log_field(field, &value))?,
        }
        refusals::refuse_nul(&format!("the value for {path}"), &value)?;
        self.edit(&id, |doc, by| {
            doc.resolve(&path, &value, by).map_err(Into::into)
        })
    }
}
