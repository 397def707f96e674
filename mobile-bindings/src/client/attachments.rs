//! Attachments on the phone: attaching a file or bytes (checked against the schema), keeping
//! them sealed until central has them, resumable chunked upload (to central, or to the office
//! hub, which relays it) after the report's changes are pushed, and fetching on demand into a
//! size-bounded cache.

use gridsync_core::DocId;
use gridsync_core::attachment::Attachment;
use gridsync_core::time::rfc3339;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::answers::unexpected;
use super::refusals::refuse_nul;
use super::sync::Peer;
use super::{Client, now, parse_id};
use crate::error::{ClientError, Result};
use crate::model::{AttachmentInfo, NewAttachment, SyncSummary};
use crate::store::LocalBlob;
use crate::transport::{Answer, Traffic, Transport};

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
    /// kept in the cache), from central or, out of its reach, from the office hub when it holds
    /// them. Nothing is ever downloaded unless asked for here.
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
        let at_central = self.authorized(&mut traffic, |token, t| {
            self.transport.get(&path, Some(token), t)
        });
        let answer =
            self.or_at_hub(at_central, || self.fetch_at_hub(&doc, sha256, &mut traffic))?;
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

    /// Uploads every attachment whose report `peer` has whole, resuming cut uploads. Bytes only
    /// a hub holds stay pending, until central or its receipt says it holds them.
    pub(super) fn upload_pending(
        &self,
        peer: &Peer<'_>,
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
                        let holds = match peer {
                            Peer::Central => &local.acked,
                            Peer::Hub(_) => &local.hub,
                        };
                        let pushed = !local.out_of_scope
                            && local.held.is_empty()
                            && doc.count_changes_since(holds) == 0;
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
            let uploaded = if pushed {
                self.upload(peer, &blob, traffic)?
            } else {
                Uploaded::No
            };
            match uploaded {
                Uploaded::Central => {
                    let state = self.lock();
                    let store = state
                        .store
                        .as_ref()
                        .ok_or_else(|| ClientError::Storage("the local store is closed".into()))?;
                    store.mark_uploaded(&blob.doc_id, &blob.sha256)?;
                    store.evict_cache(self.config.attachment_cache_bytes)?;
                    summary.uploaded_attachments += 1;
                }
                Uploaded::Hub => {
                    summary.attachments_at_hub += 1;
                    summary.pending_uploads += 1;
                }
                Uploaded::No => summary.pending_uploads += 1,
            }
        }
        Ok(())
    }

    /// Sends one request of an upload to `peer`, with the session it takes there.
    fn upload_request(
        &self,
        peer: &Peer<'_>,
        traffic: &mut Traffic,
        send: impl Fn(&Transport, &str, &mut Traffic) -> Result<Answer>,
    ) -> Result<Answer> {
        match peer {
            Peer::Central => self.authorized(traffic, |token, t| send(&self.transport, token, t)),
            Peer::Hub(link) => {
                let answer = send(&link.transport, &link.session, traffic)?;
                if matches!(answer.status, 401 | 403) {
                    return Err(self.link_refusal(link, &answer, traffic));
                }
                Ok(answer)
            }
        }
    }

    /// Who holds an attachment once `peer` has all of it: central when `peer` is central, or
    /// when the hub hands on central's receipt for it.
    fn held_by(&self, peer: &Peer<'_>, blob: &LocalBlob, answer: &Answer) -> Uploaded {
        match peer {
            Peer::Central => Uploaded::Central,
            Peer::Hub(link) => match answer.attachment_receipt.as_deref() {
                Some(jws) if link.receipt_for(jws, blob) => Uploaded::Central,
                _ => Uploaded::Hub,
            },
        }
    }

    /// Uploads one attachment to `peer` from where its copy ends.
    fn upload(&self, peer: &Peer<'_>, blob: &LocalBlob, traffic: &mut Traffic) -> Result<Uploaded> {
        let path = match peer {
            Peer::Central => attachment_path(&blob.doc_id, &blob.sha256),
            Peer::Hub(_) => format!(
                "/hub/v1/reports/{}/attachments/{}",
                blob.doc_id, blob.sha256
            ),
        };
        let head = self.upload_request(peer, traffic, |transport, token, t| {
            transport.head(&path, Some(token), t)
        })?;
        let mut offset = match head.status {
            200 => head.upload_offset.unwrap_or(0),
            404 => 0,
            _ => return Err(unexpected(&head)),
        };
        if offset >= blob.size {
            return Ok(self.held_by(peer, blob, &head));
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
            let answer = self.upload_request(peer, traffic, |transport, token, t| {
                transport.put(
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
                (200 | 201, _) => return Ok(self.held_by(peer, blob, &answer)),
                (202, _) => offset = answer.upload_offset.unwrap_or(end),
                // The server holds more (an answer was lost) or less (it collected a stale
                // upload): continue where it says.
                (409, "wrong_offset") => {
                    offset = answer.upload_offset.ok_or_else(|| unexpected(&answer))?
                }
                // The report's changes have not reached the server yet: next sync.
                (409, "not_attached") => return Ok(Uploaded::No),
                _ => return Err(unexpected(&answer)),
            }
        }
    }
}

/// Who holds an attachment after an upload.
enum Uploaded {
    /// Central: the phone owes it nothing more.
    Central,
    /// Only the office hub, which relays it.
    Hub,
    /// Not whole anywhere yet.
    No,
}

fn attachment_path(doc: &DocId, sha256: &str) -> String {
    format!("/api/v1/reports/{doc}/attachments/{sha256}")
}

fn too_large(field: &str, size: u64, max: u64) -> ClientError {
    ClientError::Validation(format!(
        "`{field}` takes attachments of at most {max} bytes; this one has {size}"
    ))
}
