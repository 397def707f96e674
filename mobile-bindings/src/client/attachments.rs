//! Attachments on the phone: attaching a file or bytes (checked against the schema), keeping
//! them sealed until the server has them, resumable chunked upload after the report's changes
//! are pushed, and fetching on demand into a size-bounded cache.

use gridsync_core::DocId;
use gridsync_core::attachment::Attachment;
use gridsync_core::time::rfc3339;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::answers::unexpected;
use super::refusals::refuse_nul;
use super::{Client, now, parse_id};
use crate::error::{ClientError, Result};
use crate::model::{AttachmentInfo, NewAttachment, SyncSummary};
use crate::store::LocalBlob;
use crate::transport::Traffic;

impl Client {
    /// Attaches `bytes` to a report; returns their sha256. The bytes stay on the phone, sealed,
    /// until a sync has uploaded them.
    pub fn attach_bytes(&self, id: &str, new: NewAttachment, bytes: &[u8]) -> Result<String> {
        let name = new
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| ClientError::Validation("an attachment needs a name".into()))?;
        self.attach(id, new, name, bytes)
    }

    /// Attaches the file at `path`; its file name is the attachment's name unless one is given.
    pub fn attach_file(&self, id: &str, new: NewAttachment, path: &str) -> Result<String> {
        let doc = parse_id(id)?;
        let max = self.attachment_limit(&doc, &new)?;
        let path = std::path::Path::new(path);
        let size = std::fs::metadata(path)
            .map_err(|e| ClientError::Invalid(format!("cannot read {}: {e}", path.display())))?
            .len();
        // Checked before reading, so a video picked by mistake is not loaded into memory.
        if size > max {
            return Err(too_large(&new.field, size, max));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| ClientError::Invalid(format!("cannot read {}: {e}", path.display())))?;
        let name = match new.name.clone().filter(|n| !n.trim().is_empty()) {
            Some(name) => name,
            None => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| ClientError::Validation("an attachment needs a name".into()))?,
        };
        self.attach(id, new, name, &bytes)
    }

    fn attach(&self, id: &str, new: NewAttachment, name: String, bytes: &[u8]) -> Result<String> {
        let doc = parse_id(id)?;
        let max = self.attachment_limit(&doc, &new)?;
        let size = bytes.len() as u64;
        if size == 0 {
            return Err(ClientError::Validation(
                "the attachment holds no bytes".into(),
            ));
        }
        if size > max {
            return Err(too_large(&new.field, size, max));
        }
        let sha256 = hex::encode(Sha256::digest(bytes));
        let blob = LocalBlob {
            doc_id: doc,
            sha256: sha256.clone(),
            media_type: new.media_type.clone(),
            size,
            pending: true,
        };
        let attachment = Attachment {
            sha256: sha256.clone(),
            media_type: new.media_type,
            size,
            name,
            field: new.field,
            entry: new.entry,
            taken_at: new.taken_at.unwrap_or_else(|| rfc3339(now())),
            location: new
                .location
                .map(|l| json!({"lat": l.lat, "lon": l.lon, "accuracy_m": l.accuracy_m})),
            attached_by: String::new(),
        };
        // The metadata goes into the report's projection, where the server refuses NUL.
        let metadata = serde_json::to_value(&attachment)
            .map_err(|e| ClientError::Invalid(format!("attachment metadata: {e}")))?;
        refuse_nul("the attachment's name, time or place", &metadata)?;
        // The bytes first: a report never names bytes the phone does not hold. Bytes no report
        // names (the edit below failed) are dropped at the next sync.
        self.lock().store()?.put_attachment(&blob, bytes, now())?;
        self.edit(&doc, |report, by| Ok(report.attach(attachment, by)?))?;
        Ok(sha256)
    }

    /// The size limit of the field `new` names, after checking that it is an attachment field
    /// of the report's kind taking `new.media_type`.
    fn attachment_limit(&self, doc: &DocId, new: &NewAttachment) -> Result<u64> {
        let schema = self.schema_of_doc(doc)?;
        let def = schema
            .attachment_field(&new.field, new.entry.is_some())
            .ok_or_else(|| {
                ClientError::Validation(format!(
                    "`{}` is not an attachment field of {}{}",
                    new.field,
                    schema.kind,
                    if new.entry.is_some() {
                        " log entries"
                    } else {
                        ""
                    }
                ))
            })?;
        if !def.media_types.contains(&new.media_type) {
            return Err(ClientError::Validation(format!(
                "`{}` takes {}, not {}",
                new.field,
                def.media_types.join(", "),
                new.media_type
            )));
        }
        Ok(def.max_size.unwrap_or(gridsync_core::attachment::MAX_SIZE))
    }

    /// Removes an attachment from a report; bytes not uploaded yet are dropped.
    pub fn detach(&self, id: &str, sha256: &str) -> Result<()> {
        let doc = parse_id(id)?;
        self.edit(&doc, |report, by| Ok(report.detach(sha256, by)?))?;
        self.lock().store()?.delete_attachment(&doc, sha256)
    }

    /// The attachments of a report, and whether their bytes are on the phone.
    pub fn attachments(&self, id: &str) -> Result<Vec<AttachmentInfo>> {
        let doc = parse_id(id)?;
        let mut state = self.lock();
        let named = state.local(&doc)?.doc.attachments()?;
        let local: Vec<LocalBlob> = state
            .store()?
            .attachments()?
            .into_iter()
            .filter(|b| b.doc_id == doc)
            .collect();
        Ok(named
            .into_iter()
            .map(|a| {
                let here = local.iter().find(|b| b.sha256 == a.sha256);
                AttachmentInfo {
                    local: here.is_some(),
                    pending_upload: here.is_some_and(|b| b.pending),
                    sha256: a.sha256,
                    media_type: a.media_type,
                    size: a.size,
                    name: a.name,
                    field: a.field,
                    entry: a.entry,
                    taken_at: a.taken_at,
                    attached_by: a.attached_by,
                }
            })
            .collect())
    }

    /// The bytes of an attachment: from the phone when it holds them, else downloaded now (and
    /// kept in the cache). Nothing is ever downloaded unless asked for here.
    pub fn fetch_attachment(&self, id: &str, sha256: &str) -> Result<Vec<u8>> {
        let doc = parse_id(id)?;
        let named = {
            let mut state = self.lock();
            let local = state.local(&doc)?;
            local
                .doc
                .attachments()?
                .into_iter()
                .find(|a| a.sha256 == sha256)
        };
        let named = named.ok_or_else(|| {
            ClientError::NotFound(format!("report {doc} has no attachment {sha256}"))
        })?;
        if let Some(bytes) = self.lock().store()?.attachment_bytes(&doc, sha256, now())? {
            return Ok(bytes);
        }
        let mut traffic = Traffic::default();
        let path = attachment_path(&doc, sha256);
        let answer = self.authorized(&mut traffic, |token, t| {
            self.transport.get(&path, Some(token), t)
        })?;
        if answer.status != 200 {
            return Err(unexpected(&answer));
        }
        if hex::encode(Sha256::digest(&answer.body)) != sha256 {
            return Err(ClientError::Server(
                "the downloaded attachment does not have its sha256".into(),
            ));
        }
        let blob = LocalBlob {
            doc_id: doc,
            sha256: sha256.to_owned(),
            media_type: named.media_type,
            size: answer.body.len() as u64,
            pending: false,
        };
        let state = self.lock();
        let store = state
            .store
            .as_ref()
            .ok_or_else(|| ClientError::Storage("the local store is closed".into()))?;
        store.put_attachment(&blob, &answer.body, now())?;
        store.evict_cache(self.config.attachment_cache_bytes)?;
        Ok(answer.body)
    }

    /// Uploads every attachment whose report the server has whole, resuming cut uploads.
    pub(super) fn upload_pending(
        &self,
        summary: &mut SyncSummary,
        traffic: &mut Traffic,
    ) -> Result<()> {
        let pending: Vec<LocalBlob> = self
            .lock()
            .store()?
            .attachments()?
            .into_iter()
            .filter(|b| b.pending)
            .collect();
        for blob in pending {
            let (named, pushed) = {
                let mut state = self.lock();
                match state.replica.load(&blob.doc_id)? {
                    None => (false, false),
                    Some(local) => {
                        // Those of a removed log entry too: restoring it brings them back.
                        let named = local.doc.all_attachments()?.iter().any(|a| {
                            a.sha256 == blob.sha256
                                && a.media_type == blob.media_type
                                && a.size == blob.size
                        });
                        // A report that left the scope or is held is not the user's to upload
                        // to: its photo stays here, and so does the report.
                        let mut doc = local.doc.clone();
                        let pushed = !local.out_of_scope
                            && local.held.is_empty()
                            && doc.count_changes_since(&local.acked) == 0;
                        (named, pushed)
                    }
                }
            };
            if !named {
                // Detached, or its report is gone: nobody will ask for these bytes.
                self.lock()
                    .store()?
                    .delete_attachment(&blob.doc_id, &blob.sha256)?;
                continue;
            }
            if pushed && self.upload(&blob, traffic)? {
                let state = self.lock();
                let store = state
                    .store
                    .as_ref()
                    .ok_or_else(|| ClientError::Storage("the local store is closed".into()))?;
                store.mark_uploaded(&blob.doc_id, &blob.sha256)?;
                store.evict_cache(self.config.attachment_cache_bytes)?;
                summary.uploaded_attachments += 1;
            } else {
                summary.pending_uploads += 1;
            }
        }
        Ok(())
    }

    /// Uploads one attachment from where the server's copy ends; true once the server has it.
    fn upload(&self, blob: &LocalBlob, traffic: &mut Traffic) -> Result<bool> {
        let path = attachment_path(&blob.doc_id, &blob.sha256);
        let head = self.authorized(traffic, |token, t| {
            self.transport.head(&path, Some(token), t)
        })?;
        let mut offset = match head.status {
            200 => head.upload_offset.unwrap_or(0),
            404 => 0,
            _ => return Err(unexpected(&head)),
        };
        if offset >= blob.size {
            return Ok(true);
        }
        let bytes = self
            .lock()
            .store()?
            .attachment_bytes(&blob.doc_id, &blob.sha256, now())?
            .ok_or_else(|| ClientError::Storage("the attachment's bytes are gone".into()))?;
        let chunk = self.config.upload_chunk_bytes.max(1);
        loop {
            let end = (offset + chunk).min(blob.size);
            let range = format!("bytes {offset}-{}/{}", end - 1, blob.size);
            let body = &bytes[offset as usize..end as usize];
            let answer = self.authorized(traffic, |token, t| {
                self.transport.put(
                    &path,
                    &[
                        ("content-type", blob.media_type.clone()),
                        ("content-range", range.clone()),
                    ],
                    body,
                    Some(token),
                    t,
                )
            })?;
            match (answer.status, answer.problem().code.as_str()) {
                (200 | 201, _) => return Ok(true),
                (202, _) => offset = answer.upload_offset.unwrap_or(end),
                // The server holds more (an answer was lost) or less (it collected a stale
                // upload): continue where it says.
                (409, "wrong_offset") => {
                    offset = answer.upload_offset.ok_or_else(|| unexpected(&answer))?
                }
                // The report's changes have not reached the server yet: next sync.
                (409, "not_attached") => return Ok(false),
                _ => return Err(unexpected(&answer)),
            }
        }
    }
}

fn attachment_path(doc: &DocId, sha256: &str) -> String {
    format!("/api/v1/reports/{doc}/attachments/{sha256}")
}

fn too_large(field: &str, size: u64, max: u64) -> ClientError {
    ClientError::Validation(format!(
        "`{field}` takes attachments of at most {max} bytes; this one has {size}"
    ))
}
