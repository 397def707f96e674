//! What the phone keeps of each report to list and search it without loading its document: the
//! meta, the fields, the number of log entries and open conflicts, and the report's text.

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
    /// Lower-cased text of the fields, the log, the id, grid and kind, for search.
    pub text: String,
}

impl DocSummary {
    /// The summary of `doc`; `None` while its creating change has not arrived (no meta yet),
    /// which the list leaves out.
    pub fn of(doc: &ReportDoc) -> Result<Option<DocSummary>> {
        let Ok(meta) = doc.meta() else {
            return Ok(None);
        };
        let projection = doc.to_json_with(&meta)?;
        let mut text = String::new();
        collect_text(&projection["fields"], &mut text);
        collect_text(&projection["log"], &mut text);
        for key in ["id", "grid", "kind"] {
            collect_text(&projection[key], &mut text);
        }
        Ok(Some(DocSummary {
            log_entries: projection["log"].as_array().map_or(0, Vec::len) as u32,
            fields: projection["fields"].clone(),
            text: text.to_lowercase(),
            kind: meta.kind,
            schema_version: meta.schema_version,
            grid: meta.grid,
            created_at: meta.created_at,
        }))
    }

    /// Whether the report's text holds every one of `words` (lower-cased).
    pub fn matches(&self, words: &[String]) -> bool {
        words.iter().all(|w| self.text.contains(w.as_str()))
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
