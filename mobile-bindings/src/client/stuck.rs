//! Reports the server refused and the ways out that take more than an edit: listing them,
//! moving one the server never accepted to another grid, and discarding one on the user's
//! explicit word, with an exportable copy kept until the next successful sync.
//!
//! Moving and discarding wait for a running sync: the replica is rebuilt from the store
//! afterwards, which must not happen while a push is in flight.

use std::collections::HashMap;

use gridsync_core::DocId;
use gridsync_core::replica::LocalDoc;
use gridsync_core::report::{LOG_ENTRY_KEYS, ReportDoc};
use gridsync_core::time::rfc3339;
use serde_json::{Map, Value as Json};

use super::refusals::{check_grid, refuse_nul};
use super::reports::{text, title};
use super::{Client, State, now, parse_id, rebuild};
use crate::error::{ClientError, Result};
use crate::model::{DiscardedReport, ServerRefusal, StuckReport};
use crate::store::{
    Batch, DISCARDED_FORMAT, DiscardedAttachment, DiscardedCopy, LocalBlob, RejectionNote,
};

impl Client {
    /// Every report the server refused, with its code and reason.
    pub fn stuck_reports(&self) -> Result<Vec<StuckReport>> {
        let docs: Vec<LocalDoc> = {
            let mut state = self.lock();
            let mut docs = Vec::new();
            for id in state.replica.rejected_ids() {
                docs.push(state.local(&id)?.clone());
            }
            state.replica.park(None);
            docs
        };
        let registry = self.registry();
        let mut out = Vec::new();
        for mut local in docs {
            let Some(rejection) = local.rejected.take() else {
                continue;
            };
            // A refused document may lack a readable meta (the server said `not_a_report`);
            // it is listed all the same, so it can be discarded.
            let projection = local.doc.to_json().unwrap_or(Json::Null);
            let schema = registry.get(&text(projection.get("kind")), schema_version(&projection));
            out.push(StuckReport {
                id: local.doc.id().to_string(),
                kind: text(projection.get("kind")),
                grid: text(projection.get("grid")),
                title: title(schema, &projection["fields"]),
                code: rejection.code,
                reason: rejection.reason,
                pending_changes: local.doc.count_changes_since(&local.acked) as u64,
                edited_since: local.doc.heads() != rejection.heads,
                accepted_before: !local.acked.is_empty(),
            });
        }
        Ok(out)
    }

    /// Files a report the server never accepted under `grid` instead: a new report of the same
    /// kind with the same fields, log entries and attachments, by the current user; the old one
    /// is discarded as by [`Client::discard_report`]. Returns the new report's id.
    pub fn move_report(&self, id: &str, grid: &str) -> Result<String> {
        let _sync = self.sync_guard();
        let old = parse_id(id)?;
        let mut state = self.lock();
        let by = state.editor()?;
        check_grid(&mut state, &by.user, grid)?;
        let mut local = state.local(&old)?.clone();
        if !local.acked.is_empty() {
            return Err(ClientError::Invalid(format!(
                "the server holds part of report {old}, so it cannot move; edit or discard it"
            )));
        }
        let meta = local.doc.meta()?;
        if meta.grid == grid {
            return Err(ClientError::Invalid(format!(
                "report {old} is in grid {grid} already"
            )));
        }
        let projection = local.doc.to_json_with(&meta)?;
        let new = DocId::new_v4();
        let mut doc = ReportDoc::create(new, &meta.kind, meta.schema_version, grid, &by)?;
        let fields: Map<String, Json> = projection["fields"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !fields.is_empty() {
            doc.set_fields(&fields, &by)?;
        }
        let mut entries = HashMap::new();
        for entry in projection["log"].as_array().into_iter().flatten() {
            let Some(entry) = entry.as_object() else {
                continue;
            };
            let values: Map<String, Json> = entry
                .iter()
                .filter(|(k, v)| !LOG_ENTRY_KEYS.contains(&k.as_str()) && !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            entries.insert(text(entry.get("id")), doc.append_log(&values, &by)?);
        }
        let mut carried = Vec::new();
        for mut attachment in local.doc.attachments()? {
            attachment.entry = match attachment.entry {
                None => None,
                // An attachment of an entry the log no longer shows stays with the old copy.
                Some(entry) => match entries.get(&entry) {
                    Some(moved) => Some(moved.clone()),
                    None => continue,
                },
            };
            carried.push((attachment.sha256.clone(), attachment.media_type.clone()));
            doc.attach(attachment, &by)?;
        }
        // Text with NUL would leave the moved report as stuck as the old one.
        refuse_nul("the report", &doc.to_json()?)?;
        let copy = discarded_copy(&mut state, &mut local, &by.user)?;
        // The bytes first, as when attaching: bytes no report names are dropped at the next
        // sync, while a report naming bytes the phone lacks could never upload them.
        let store = state.store()?;
        for (sha256, media_type) in carried {
            let Some(bytes) = store.attachment_bytes(&old, &sha256, now())? else {
                continue;
            };
            let blob = LocalBlob {
                doc_id: new,
                sha256,
                media_type,
                size: bytes.len() as u64,
                pending: true,
            };
            store.put_attachment(&blob, &bytes, now())?;
        }
        let mut batch = Batch::default();
        batch.put_doc(state.store()?.write_of(&mut LocalDoc::new(doc))?);
        batch.discard(old, copy);
        commit_and_rebuild(&mut state, batch)?;
        Ok(new.to_string())
    }

    /// Removes a report the server refused or never received from this phone, on the user's
    /// explicit word. A copy (projection, automerge document, attachment bytes not uploaded,
    /// who and when) stays listed by [`Client::discarded_reports`] until the next successful
    /// sync. A refused report the server had accepted before comes back as the server holds
    /// it at the next sync.
    pub fn discard_report(&self, id: &str) -> Result<()> {
        let _sync = self.sync_guard();
        let id = parse_id(id)?;
        let mut state = self.lock();
        let by = state.editor()?;
        let mut local = state.local(&id)?.clone();
        if local.rejected.is_none() && !local.acked.is_empty() {
            return Err(ClientError::Invalid(format!(
                "the server holds report {id} and refused none of it; only reports the server \
                 refused or never received can be discarded"
            )));
        }
        let copy = discarded_copy(&mut state, &mut local, &by.user)?;
        let mut batch = Batch::default();
        batch.discard(id, copy);
        commit_and_rebuild(&mut state, batch)
    }

    /// Reports discarded since the last successful sync, oldest first, each with its export.
    pub fn discarded_reports(&self) -> Result<Vec<DiscardedReport>> {
        let copies = self.lock().store()?.discarded()?;
        let registry = self.registry();
        copies
            .into_iter()
            .map(|copy| {
                let report = &copy.report;
                let schema = registry.get(&text(report.get("kind")), schema_version(report));
                let export_json = serde_json::to_string(&copy)
                    .map_err(|e| ClientError::Storage(format!("discarded copy: {e}")))?;
                Ok(DiscardedReport {
                    id: copy.report_id.clone(),
                    kind: text(report.get("kind")),
                    grid: text(report.get("grid")),
                    title: title(schema, &report["fields"]),
                    rejected: copy.rejected.as_ref().map(|r| ServerRefusal {
                        code: r.code.clone(),
                        reason: r.reason.clone(),
                    }),
                    discarded_by: copy.discarded_by.clone(),
                    discarded_at: copy.discarded_at.clone(),
                    export_json,
                })
            })
            .collect()
    }
}

fn schema_version(projection: &Json) -> u32 {
    projection
        .get("schema_version")
        .and_then(Json::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or_default()
}

/// The copy a discard keeps: everything the phone holds of the report that the server may not.
fn discarded_copy(state: &mut State, local: &mut LocalDoc, by: &str) -> Result<DiscardedCopy> {
    let id = local.doc.id();
    let store = state.store()?;
    let mut attachments = Vec::new();
    for blob in store.attachments()? {
        if blob.doc_id != id || !blob.pending {
            continue;
        }
        if let Some(bytes) = store.attachment_bytes(&id, &blob.sha256, now())? {
            attachments.push(DiscardedAttachment {
                sha256: blob.sha256,
                media_type: blob.media_type,
                bytes,
            });
        }
    }
    Ok(DiscardedCopy {
        format: DISCARDED_FORMAT.to_owned(),
        report_id: id.to_string(),
        discarded_by: by.to_owned(),
        discarded_at: rfc3339(now()),
        rejected: local.rejected.as_ref().map(|r| RejectionNote {
            code: r.code.clone(),
            reason: r.reason.clone(),
        }),
        // Without a readable meta there is no projection; the document bytes hold everything.
        report: local.doc.to_json().unwrap_or(Json::Null),
        document: local.doc.save(),
        attachments,
    })
}

/// Commits `batch` and reloads the replica from the store, which no longer holds what it
/// discarded (the replica has no call that forgets one document).
fn commit_and_rebuild(state: &mut State, batch: Batch) -> Result<()> {
    state.store()?.commit(batch)?;
    state.replica = rebuild(state)?;
    Ok(())
}
