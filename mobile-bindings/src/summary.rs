//! What the phone keeps of each report to list and search it without loading its document: the
//! meta, the fields, and the number and text of its log entries.

use gridsync_core::DocId;
use gridsync_core::report::ReportDoc;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::error::Result;

/// One report's listing entry, stored sealed beside its document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocSummary {
    pub kind: String,
    pub schema_version: u32,
    pub grid: String,
    pub created_at: String,
    /// The projection's fields, from which the title and status are read with the schema the
    /// phone has when listing (a form fetched later names a title the stored one could not).
    pub fields: Json,
    pub log_entries: u32,
    /// The text of the log's entries, for search (that of the fields is read from `fields`).
    pub log_text: String,
}

impl DocSummary {
    /// The summary of `doc`; `None` while its creating change has not arrived (no meta yet),
    /// which the list leaves out.
    pub fn of(doc: &ReportDoc) -> Result<Option<DocSummary>> {
        let Ok(meta) = doc.meta() else {
            return Ok(None);
        };
        let mut projection = doc.to_json_with(&meta)?;
        let mut log_text = String::new();
        collect_text(&projection["log"], &mut log_text);
        Ok(Some(DocSummary {
            log_entries: projection["log"].as_array().map_or(0, Vec::len) as u32,
            fields: projection["fields"].take(),
            log_text,
            kind: meta.kind,
            schema_version: meta.schema_version,
            grid: meta.grid,
            created_at: meta.created_at,
        }))
    }

    /// Whether the text of report `id` (its fields, log, id, grid and kind) holds every one
    /// of `words` (lower-cased), case-insensitively.
    pub fn matches(&self, id: &DocId, words: &[String]) -> bool {
        let mut text = String::new();
        collect_text(&self.fields, &mut text);
        text.push_str(&self.log_text);
        for key in [id.to_string().as_str(), &self.grid, &self.kind] {
            text.push_str(key);
            text.push('\n');
        }
        let text = text.to_lowercase();
        words.iter().all(|w| text.contains(w.as_str()))
    }
}

/// What `conflicts()` lists for a report: fields holding concurrent values, and log entries
/// edited while someone removed them.
pub fn open_conflicts(doc: &mut ReportDoc) -> Result<u32> {
    let count = doc.conflicts()?.len() + doc.edited_after_removal()?.len();
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}

fn collect_text(value: &Json, out: &mut String) {
    match value {
        Json::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Json::Array(items) => items.iter().for_each(|v| collect_text(v, out)),
        Json::Object(map) => map.values().for_each(|v| collect_text(v, out)),
        _ => {}
    }
}
