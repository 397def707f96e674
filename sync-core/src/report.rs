//! `ReportDoc`: one automerge document per report, with typed reads and writes and a JSON projection.
//!
//! Layout of the root map:
//! - `meta`: map of id, kind, schema_version, grid, created_by, created_at. Written once at creation.
//! - `fields`: one key per field. A value is a scalar, or a list/map object that is replaced as a
//!   whole on every write, so each field behaves as one register: concurrent writes of different
//!   fields merge, concurrent writes of the same field become a conflict (see `conflict`).
//! - `log`: a list of maps (mediation steps, visits), each with its own `id`, so concurrent appends
//!   both survive and each entry's fields merge like top-level fields. Removing an entry marks it
//!   with `removed_by` and `removed_at` instead of deleting it from the list: an edit made
//!   elsewhere at the same time would vanish with a deleted map, but stays in a marked one, where
//!   `conflict` flags it and the office can restore the entry. Every reader (the projection,
//!   conflicts, attachments) skips removed entries. Entries that older versions deleted stay
//!   deleted.
//! - `attachments`: a map keyed by sha256, each value the metadata of one attachment (which field
//!   or log entry it belongs to, media type, size, name, when, where, by whom). Keyed by content,
//!   not by list position, so two phones attaching photos offline both keep theirs. Documents
//!   created before attachments existed get the map on their first attachment; if two phones
//!   create it concurrently, reads take the union of both maps, so neither loses its photos.
//!   The attachments of a removed log entry stay in the map (a restore brings them back, and the
//!   server keeps their bytes) but are hidden with their entry.
//!
//! The document knows nothing of schemas: validation runs on the JSON projection.

use std::collections::HashSet;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    ActorId, Author, AutoCommit, Change, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue,
    Value, ValueRef,
};
use serde_json::{Map, Value as Json};

use crate::attachment::{Attachment, is_sha256};
use crate::time::rfc3339;
use crate::{DocId, Error, Result};

/// Who makes an edit and when (unix seconds). Time is passed in because sync-core reads no clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Editor {
    pub user: String,
    pub at: i64,
}

impl Editor {
    pub fn new(user: impl Into<String>, at: i64) -> Self {
        Editor {
            user: user.into(),
            at,
        }
    }
}

/// The fixed facts of a report, written once when it is created.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    pub id: DocId,
    pub kind: String,
    pub schema_version: u32,
    pub grid: String,
    pub created_by: String,
    pub created_at: String,
}

/// One report as an automerge document.
#[derive(Debug, Clone)]
pub struct ReportDoc {
    id: DocId,
    doc: AutoCommit,
}

const META: &str = "meta";
const FIELDS: &str = "fields";
const LOG: &str = "log";
/// The root map of attachments, and the projection's key for those shown.
pub const ATTACHMENTS: &str = "attachments";
/// Keys of a log entry that the document itself maintains; every other key is a log field.
pub const LOG_ENTRY_KEYS: [&str; 5] = ["id", "created_by", "created_at", REMOVED_BY, REMOVED_AT];
/// Who removed a log entry; an entry holding this key is removed.
pub(crate) const REMOVED_BY: &str = "removed_by";
/// When a log entry was removed (RFC 3339).
pub(crate) const REMOVED_AT: &str = "removed_at";
/// The projection's key for the attachments of removed log entries: sha256, media type and
/// size only, which is what the server needs to accept their upload and keep their bytes, and
/// nothing a reader could learn the hidden entry from.
pub const HIDDEN_ATTACHMENTS: &str = "hidden_attachments";

/// One map of the `log` list: a log entry, or one that was removed.
pub(crate) struct LogMap {
    pub id: String,
    pub obj: ObjId,
    pub removed: bool,
    /// The whole map, read in the same pass that found its id: the projection and the rule
    /// flags need it, and looking the id and removal up on their own cost a search each.
    pub json: Json,
    /// The map's keys that hold concurrent values, noted in the same pass for the conflict scan.
    pub conflicted: Vec<String>,
}

/// A report's projection and the keys of its fields that hold concurrent values, both read in
/// one pass over the fields.
pub(crate) struct Projected {
    pub json: Json,
    pub conflicted_fields: Vec<String>,
}

/// A document's attachments as JSON objects with their `sha256`: those shown, and those hidden
/// with the removed log entry they belong to.
struct AttachmentsJson {
    shown: Vec<Json>,
    hidden: Vec<Json>,
}

impl ReportDoc {
    /// Creates a report with its meta and empty fields and log, in one change by `by`.
    pub fn create(
        id: DocId,
        kind: &str,
        schema_version: u32,
        grid: &str,
        by: &Editor,
    ) -> Result<Self> {
        let mut report = ReportDoc {
            id,
            doc: AutoCommit::new(),
        };
        report.edit(by, |doc| {
            let meta = doc.put_object(ROOT, META, ObjType::Map)?;
            doc.put(&meta, "id", id.to_string())?;
            doc.put(&meta, "kind", kind)?;
            doc.put(&meta, "schema_version", i64::from(schema_version))?;
            doc.put(&meta, "grid", grid)?;
            doc.put(&meta, "created_by", by.user.as_str())?;
            doc.put(&meta, "created_at", rfc3339(by.at))?;
            doc.put_object(ROOT, FIELDS, ObjType::Map)?;
            doc.put_object(ROOT, LOG, ObjType::List)?;
            doc.put_object(ROOT, ATTACHMENTS, ObjType::Map)?;
            Ok(())
        })?;
        Ok(report)
    }

    /// An empty document for `id`, to which changes from elsewhere are applied.
    pub fn empty(id: DocId) -> Self {
        ReportDoc {
            id,
            doc: AutoCommit::new(),
        }
    }

    /// Loads a saved document (a snapshot, or a snapshot followed by incremental saves).
    pub fn load(id: DocId, bytes: &[u8]) -> Result<Self> {
        Ok(ReportDoc {
            id,
            doc: load_automerge(bytes)?,
        })
    }

    pub fn id(&self) -> DocId {
        self.id
    }

    /// The underlying automerge document, for conflict inspection and tests.
    pub(crate) fn doc(&self) -> &AutoCommit {
        &self.doc
    }

    pub(crate) fn doc_mut(&mut self) -> &mut AutoCommit {
        &mut self.doc
    }

    /// Reads the meta map. A document whose creating change has not arrived yet has none.
    pub fn meta(&self) -> Result<Meta> {
        let meta = self
            .map_at_root(META)?
            .ok_or(Error::NotAReport("no meta"))?;
        // In one pass over the map: looking up each of its six keys costs a search each.
        let Json::Object(meta) = obj_to_json(&self.doc, &meta)? else {
            return Err(Error::NotAReport("no meta"));
        };
        let text = |key: &'static str| -> Result<String> {
            match meta.get(key) {
                Some(Json::String(s)) => Ok(s.clone()),
                _ => Err(Error::NotAReport(key)),
            }
        };
        let schema_version = match meta.get("schema_version") {
            Some(Json::Number(n)) => n
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or(Error::NotAReport("schema_version"))?,
            _ => return Err(Error::NotAReport("schema_version")),
        };
        let id = text("id")?
            .parse::<DocId>()
            .map_err(|_| Error::NotAReport("id"))?;
        Ok(Meta {
            id,
            kind: text("kind")?,
            schema_version,
            grid: text("grid")?,
            created_by: text("created_by")?,
            created_at: text("created_at")?,
        })
    }

    /// The current value of one field, `None` when unset.
    pub fn field(&self, name: &str) -> Result<Option<Json>> {
        let fields = self.fields_obj()?;
        read_json(&self.doc, &fields, name)
    }

    /// Sets one field; `Json::Null` clears it.
    pub fn set_field(&mut self, name: &str, value: &Json, by: &Editor) -> Result<()> {
        let mut one = Map::new();
        one.insert(name.to_owned(), value.clone());
        self.set_fields(&one, by)
    }

    /// Sets several fields in one change, so a form saved at once is one unit of history.
    pub fn set_fields(&mut self, values: &Map<String, Json>, by: &Editor) -> Result<()> {
        let fields = self.fields_obj()?;
        self.edit(by, |doc| {
            for (name, value) in values {
                write_json(doc, &fields, name, value)?;
            }
            Ok(())
        })
    }

    /// Appends a log entry and returns its id.
    pub fn append_log(&mut self, values: &Map<String, Json>, by: &Editor) -> Result<String> {
        check_log_keys(values)?;
        let log = self.log_obj()?;
        let entry_id = uuid::Uuid::new_v4().to_string();
        self.edit(by, |doc| {
            let len = doc.length(&log);
            let entry = doc.insert_object(&log, len, ObjType::Map)?;
            doc.put(&entry, "id", entry_id.as_str())?;
            doc.put(&entry, "created_by", by.user.as_str())?;
            doc.put(&entry, "created_at", rfc3339(by.at))?;
            for (name, value) in values {
                write_json(doc, &entry, name, value)?;
            }
            Ok(())
        })?;
        Ok(entry_id)
    }

    /// Changes fields of an existing log entry; other fields of the entry stay as they are.
    pub fn edit_log(
        &mut self,
        entry_id: &str,
        values: &Map<String, Json>,
        by: &Editor,
    ) -> Result<()> {
        check_log_keys(values)?;
        let entry = self.find_log_entry(entry_id)?;
        self.edit(by, |doc| {
            for (name, value) in values {
                write_json(doc, &entry, name, value)?;
            }
            Ok(())
        })
    }

    /// Removes a log entry, and with it its attachments, from every reader. The entry stays in
    /// the document marked as removed, so that an edit of it made elsewhere meanwhile survives
    /// the merge and is flagged (see `conflict`).
    pub fn remove_log(&mut self, entry_id: &str, by: &Editor) -> Result<()> {
        let entry = self.find_log_entry(entry_id)?;
        let at = rfc3339(by.at);
        self.edit(by, |doc| mark_removed(doc, &entry, &by.user, &at))
    }

    /// Brings a removed log entry back as it now stands, edits made after its removal and
    /// attachments included.
    pub fn restore_log(&mut self, entry_id: &str, by: &Editor) -> Result<()> {
        let entry = self.find_removed_entry(entry_id)?;
        self.edit(by, |doc| {
            for key in [REMOVED_BY, REMOVED_AT] {
                if doc.get(&entry, key)?.is_some() {
                    doc.delete(&entry, key)?;
                }
            }
            Ok(())
        })
    }

    /// Confirms the removal of a log entry that was edited after it: the removal is written
    /// again, by `by` and after every edit this document holds, so the entry stays removed (by
    /// whoever removed it, when they did) and no longer counts as edited after its removal.
    pub fn confirm_removal(&mut self, entry_id: &str, by: &Editor) -> Result<()> {
        let entry = self.find_removed_entry(entry_id)?;
        let text = |key| match read_json(&self.doc, &entry, key) {
            Ok(Some(Json::String(s))) => s,
            _ => String::new(),
        };
        let (removed_by, removed_at) = (text(REMOVED_BY), text(REMOVED_AT));
        self.edit(by, |doc| {
            // automerge writes nothing for a value a key already holds, so the old values go
            // first: the new writes are what make the edits ancestors of the removal.
            for key in [REMOVED_BY, REMOVED_AT] {
                if doc.get(&entry, key)?.is_some() {
                    doc.delete(&entry, key)?;
                }
            }
            mark_removed(doc, &entry, &removed_by, &removed_at)
        })
    }

    /// Records an attachment (its bytes travel separately). `attached_by` is set to the editor.
    /// Attaching the same bytes again replaces their metadata.
    pub fn attach(&mut self, mut attachment: Attachment, by: &Editor) -> Result<()> {
        if !is_sha256(&attachment.sha256) {
            return Err(Error::InvalidAttachment(format!(
                "{:?} is not a sha256 in lowercase hex",
                attachment.sha256
            )));
        }
        if let Some(entry) = &attachment.entry {
            self.find_log_entry(entry)?;
        }
        attachment.attached_by = by.user.clone();
        let Json::Object(mut values) = serde_json::to_value(&attachment)
            .map_err(|e| Error::InvalidAttachment(e.to_string()))?
        else {
            return Err(Error::InvalidAttachment("not an object".into()));
        };
        let sha = values
            .remove("sha256")
            .and_then(|v| v.as_str().map(str::to_owned));
        let sha = sha.unwrap_or_default();
        let existing = self.attachments_obj()?;
        self.edit(by, |doc| {
            let map = match existing {
                Some(map) => map,
                None => doc.put_object(ROOT, ATTACHMENTS, ObjType::Map)?,
            };
            let one = doc.put_object(&map, sha.as_str(), ObjType::Map)?;
            for (key, value) in &values {
                write_json(doc, &one, key, value)?;
            }
            Ok(())
        })
    }

    /// Removes an attachment from the report. The bytes stay on the server until no report
    /// names them.
    pub fn detach(&mut self, sha256: &str, by: &Editor) -> Result<()> {
        let mut holding: Vec<ObjId> = Vec::new();
        for map in self.attachment_maps()? {
            if self.doc.get(&map, sha256).map_err(am)?.is_some() {
                holding.push(map);
            }
        }
        if holding.is_empty() {
            return Err(Error::NoSuchAttachment(sha256.to_owned()));
        }
        self.edit(by, |doc| {
            for map in &holding {
                doc.delete(map, sha256)?;
            }
            Ok(())
        })
    }

    /// The attachments the report shows, ordered by sha256: every one the document records
    /// except those of removed log entries. Entries that do not parse (a buggy or hostile
    /// client) are left out here; the projection shows them, so validation reports them.
    pub fn attachments(&self) -> Result<Vec<Attachment>> {
        Ok(parsed(self.split_attachments()?.shown))
    }

    /// Every attachment the document records, those of removed log entries included: the
    /// bytes a phone must still upload, since restoring the entry brings them back.
    pub fn all_attachments(&self) -> Result<Vec<Attachment>> {
        Ok(parsed(self.attachments_json()?))
    }

    /// The attachments, shown and hidden with a removed log entry.
    fn split_attachments(&self) -> Result<AttachmentsJson> {
        let all = self.attachments_json()?;
        if all.is_empty() {
            // Most reports have none: the log need not be read.
            return Ok(split_attachments(all, &[]));
        }
        Ok(split_attachments(all, &self.log_maps()?))
    }

    /// The attachments as JSON objects with their `sha256`, ordered by it, each once.
    fn attachments_json(&self) -> Result<Vec<Json>> {
        let mut out = std::collections::BTreeMap::new();
        for map in self.attachment_maps()? {
            for sha in self.doc.keys(&map) {
                if out.contains_key(&sha) {
                    continue;
                }
                let mut value = match read_json(&self.doc, &map, &sha)? {
                    Some(Json::Object(value)) => value,
                    Some(other) => {
                        out.insert(sha, other);
                        continue;
                    }
                    None => continue,
                };
                value.insert("sha256".into(), Json::String(sha.clone()));
                out.insert(sha, Json::Object(value));
            }
        }
        Ok(out.into_values().collect())
    }

    /// Every `attachments` map: one, or several when phones created it concurrently.
    fn attachment_maps(&self) -> Result<Vec<ObjId>> {
        Ok(self
            .doc
            .get_all(ROOT, ATTACHMENTS)
            .map_err(am)?
            .into_iter()
            .filter(|(value, _)| matches!(value, Value::Object(ObjType::Map)))
            .map(|(_, id)| id)
            .collect())
    }

    /// The `attachments` map new attachments go into (automerge's winner when there are several).
    fn attachments_obj(&self) -> Result<Option<ObjId>> {
        self.map_at_root(ATTACHMENTS)
    }

    /// The ids of the log entries in order, paired with their object ids; removed ones left out.
    pub(crate) fn log_entries(&self) -> Result<Vec<(String, ObjId)>> {
        Ok(self
            .log_maps()?
            .into_iter()
            .filter(|m| !m.removed)
            .map(|m| (m.id, m.obj))
            .collect())
    }

    /// Every map of the log in order, removed entries included.
    pub(crate) fn log_maps(&self) -> Result<Vec<LogMap>> {
        let log = self.log_obj()?;
        let mut maps = Vec::new();
        for item in self.doc.list_range(&log, ..) {
            if item.value != ValueRef::Object(ObjType::Map) {
                continue;
            }
            let obj = item.id();
            let (json, conflicted) = map_to_json(&self.doc, &obj)?;
            if let Some(Json::String(id)) = json.get("id") {
                maps.push(LogMap {
                    id: id.clone(),
                    removed: json.get(REMOVED_BY).is_some(),
                    obj,
                    json,
                    conflicted,
                });
            }
        }
        Ok(maps)
    }

    fn find_log_entry(&self, entry_id: &str) -> Result<ObjId> {
        self.log_entries()?
            .into_iter()
            .find(|(id, _)| id == entry_id)
            .map(|(_, obj)| obj)
            .ok_or_else(|| Error::NoSuchLogEntry(entry_id.to_owned()))
    }

    fn find_removed_entry(&self, entry_id: &str) -> Result<ObjId> {
        match self.log_maps()?.into_iter().find(|m| m.id == entry_id) {
            Some(m) if m.removed => Ok(m.obj),
            Some(_) => Err(Error::NotRemoved(entry_id.to_owned())),
            None => Err(Error::NoSuchLogEntry(entry_id.to_owned())),
        }
    }

    /// The JSON projection: meta keys at the top level, then `fields`, `log` and, when there are
    /// any, `attachments` and [`HIDDEN_ATTACHMENTS`]. Removed log entries and their attachments
    /// are not in `log` and `attachments`.
    /// This is what validation, the server's query columns and the apps read.
    pub fn to_json(&self) -> Result<Json> {
        self.to_json_with(&self.meta()?)
    }

    /// [`to_json`](Self::to_json) with `meta` already read from this document: reading the
    /// meta map costs as much as a third of an ingest (profiled), and ingest has it in hand.
    pub fn to_json_with(&self, meta: &Meta) -> Result<Json> {
        Ok(self.project_with_log(meta, &self.log_maps()?)?.json)
    }

    /// The projection from the log's maps the caller has read (see [`ReportDoc::log_maps`]).
    pub(crate) fn project_with_log(&self, meta: &Meta, log: &[LogMap]) -> Result<Projected> {
        self.project(meta, log, self.attachments_json()?)
    }

    fn project(
        &self,
        meta: &Meta,
        log_maps: &[LogMap],
        attachments: Vec<Json>,
    ) -> Result<Projected> {
        let mut out = match serde_json::to_value(meta) {
            Ok(Json::Object(map)) => map,
            _ => Map::new(),
        };
        let (fields, conflicted_fields) = map_to_json(&self.doc, &self.fields_obj()?)?;
        out.insert(FIELDS.into(), fields);
        let mut log = Vec::new();
        for map in log_maps.iter().filter(|m| !m.removed) {
            log.push(map.json.clone());
        }
        out.insert(LOG.into(), Json::Array(log));
        // Absent rather than empty, so reports without attachments project as they always did.
        let attachments = split_attachments(attachments, log_maps);
        if !attachments.shown.is_empty() {
            out.insert(ATTACHMENTS.into(), Json::Array(attachments.shown));
        }
        if !attachments.hidden.is_empty() {
            let kept = attachments
                .hidden
                .iter()
                .map(|a| {
                    serde_json::json!({
                        "sha256": a.get("sha256"),
                        "media_type": a.get("media_type"),
                        "size": a.get("size"),
                    })
                })
                .collect();
            out.insert(HIDDEN_ATTACHMENTS.into(), Json::Array(kept));
        }
        Ok(Projected {
            json: Json::Object(out),
            conflicted_fields,
        })
    }

    pub fn heads(&mut self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// Raw bytes of every change not reachable from `heads`, in causal order. Each is in
    /// automerge's undeflated form, which has the same hash: a push frame is compressed whole,
    /// and smaller so (W1's pushes: 0.80× the bytes), where deflating each change made the phone
    /// compress it and the server inflate it again (4% of the server's samples in W1).
    pub fn changes_since(&mut self, heads: &[ChangeHash]) -> Vec<Vec<u8>> {
        self.doc
            .get_changes(heads)
            .into_iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect()
    }

    /// Number of changes not reachable from `heads`.
    pub fn count_changes_since(&mut self, heads: &[ChangeHash]) -> usize {
        self.doc.get_changes_meta(heads).len()
    }

    /// Hashes of the changes not reachable from `heads`, in causal order.
    pub fn hashes_since(&mut self, heads: &[ChangeHash]) -> Vec<ChangeHash> {
        self.doc
            .get_changes_meta(heads)
            .iter()
            .map(|m| m.hash)
            .collect()
    }

    /// [`ReportDoc::changes_since`] without the changes in `except`, with the hashes of those
    /// it gives.
    pub fn changes_since_except(
        &mut self,
        heads: &[ChangeHash],
        except: &[ChangeHash],
    ) -> Vec<(ChangeHash, Vec<u8>)> {
        self.doc
            .get_changes(heads)
            .into_iter()
            .filter(|c| !except.contains(&c.hash()))
            .map(|c| (c.hash(), c.raw_bytes().to_vec()))
            .collect()
    }

    /// Whether `a` is a strict ancestor of `b` in this document's history.
    pub fn is_ancestor(&mut self, a: &ChangeHash, b: &ChangeHash) -> bool {
        a != b
            && self.has_change(a)
            && !self
                .doc
                .get_changes_meta(&[*b])
                .iter()
                .any(|m| &m.hash == a)
    }

    /// The user recorded as author of `actor`'s changes in this document.
    pub fn author_of(&self, actor: &ActorId) -> Option<String> {
        self.doc
            .get_author_for_actor(actor)
            .map(|a| String::from_utf8_lossy(a.as_bytes()).into_owned())
    }

    pub fn has_change(&mut self, hash: &ChangeHash) -> bool {
        self.doc.get_change_meta_by_hash(hash).is_some()
    }

    /// Applies changes received from elsewhere and returns their hashes. Changes whose
    /// dependencies are missing are queued by automerge until those arrive; see `missing_deps`.
    pub fn apply_changes(&mut self, raw: &[Vec<u8>]) -> Result<Vec<ChangeHash>> {
        let changes = decode_changes(raw)?;
        let hashes = changes.iter().map(Change::hash).collect();
        self.apply_decoded(changes)?;
        Ok(hashes)
    }

    /// Applies changes that [`decode_change`] accepted, without decoding them again.
    pub fn apply_decoded(&mut self, changes: Vec<Change>) -> Result<()> {
        self.check_actors(&changes)?;
        self.doc.apply_changes(changes).map_err(am)
    }

    /// Refuses changes that name an actor this document has never seen, which automerge 0.12
    /// panics on while applying (it unwraps the lookup of every actor a change names). An actor
    /// enters a document with its first change, which records its author: from the document or
    /// from this batch.
    fn check_actors(&self, changes: &[Change]) -> Result<()> {
        let first: HashSet<&ActorId> = changes
            .iter()
            .filter(|c| c.seq() == 1)
            .map(Change::actor_id)
            .collect();
        for change in changes {
            if let Some(actor) = change
                .actors()
                .find(|a| !first.contains(a) && self.doc.get_author_for_actor(a).is_none())
            {
                return Err(Error::InvalidChange(format!(
                    "change {} names actor {actor}, whose first change this document lacks",
                    change.hash()
                )));
            }
        }
        Ok(())
    }

    /// Merges a whole document (a snapshot) into this one, keeping local changes, and returns
    /// the snapshot's own heads.
    pub fn merge_snapshot(&mut self, bytes: &[u8]) -> Result<Vec<ChangeHash>> {
        let mut other = load_automerge(bytes)?;
        let heads = other.get_heads();
        self.doc.merge(&mut other).map_err(am)?;
        Ok(heads)
    }

    /// Hashes that applied changes depend on but that this document lacks.
    pub fn missing_deps(&mut self) -> Vec<ChangeHash> {
        self.doc.get_missing_deps(&[])
    }

    /// A compact snapshot of the whole document.
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    /// A snapshot of the whole document with its columns not deflated: what the server stores.
    /// Its pull pages are compressed whole on the wire, and deflating each column of every
    /// snapshot cost a tenth of the server's instructions in W1.
    pub fn save_uncompressed(&mut self) -> Vec<u8> {
        self.doc.save_nocompress()
    }

    /// The changes not reachable from `heads`, to append to a save that holds `heads`; see
    /// [`ReportDoc::load`]. Empty when there are none.
    pub fn save_after(&mut self, heads: &[ChangeHash]) -> Vec<u8> {
        self.doc.save_after(heads)
    }

    fn edit<F>(&mut self, by: &Editor, f: F) -> Result<()>
    where
        F: FnOnce(&mut AutoCommit) -> std::result::Result<(), automerge::AutomergeError>,
    {
        self.set_author(&by.user);
        if let Err(e) = f(&mut self.doc) {
            self.doc.rollback();
            return Err(am(e));
        }
        self.doc
            .commit_with(CommitOptions::default().with_time(by.at));
        Ok(())
    }

    /// Attributes the following changes to `user`. automerge picks a fresh actor when the author
    /// changes, so one actor never carries two people's edits.
    fn set_author(&mut self, user: &str) {
        let author = Author::from(user.as_bytes().to_vec());
        if self.doc.get_author() != Some(&author) {
            self.doc.set_author(Some(author));
        }
    }

    fn map_at_root(&self, key: &str) -> Result<Option<ObjId>> {
        match self.doc.get(ROOT, key).map_err(am)? {
            Some((Value::Object(ObjType::Map), id)) => Ok(Some(id)),
            _ => Ok(None),
        }
    }

    pub(crate) fn fields_obj(&self) -> Result<ObjId> {
        self.map_at_root(FIELDS)?
            .ok_or(Error::NotAReport("no fields"))
    }

    fn log_obj(&self) -> Result<ObjId> {
        match self.doc.get(ROOT, LOG).map_err(am)? {
            Some((Value::Object(ObjType::List), id)) => Ok(id),
            _ => Err(Error::NotAReport("no log")),
        }
    }
}

/// Marks `entry` removed by `by` at `at`.
fn mark_removed(
    doc: &mut AutoCommit,
    entry: &ObjId,
    by: &str,
    at: &str,
) -> std::result::Result<(), automerge::AutomergeError> {
    doc.put(entry, REMOVED_BY, by)?;
    doc.put(entry, REMOVED_AT, at)
}

/// Splits attachments into those shown and those of a removed log entry of `log`.
fn split_attachments(all: Vec<Json>, log: &[LogMap]) -> AttachmentsJson {
    let removed: HashSet<&str> = log
        .iter()
        .filter(|m| m.removed)
        .map(|m| m.id.as_str())
        .collect();
    let (hidden, shown) = all.into_iter().partition(|a| {
        a.get("entry")
            .and_then(Json::as_str)
            .is_some_and(|entry| removed.contains(entry))
    });
    AttachmentsJson { shown, hidden }
}

fn parsed(attachments: Vec<Json>) -> Vec<Attachment> {
    attachments
        .into_iter()
        .filter_map(|json| serde_json::from_value(json).ok())
        .collect()
}

fn check_log_keys(values: &Map<String, Json>) -> Result<()> {
    match values.keys().find(|k| LOG_ENTRY_KEYS.contains(&k.as_str())) {
        Some(key) => Err(Error::ReservedKey(key.clone())),
        None => Ok(()),
    }
}

/// Decodes raw change bytes, refusing anything automerge cannot parse or whose checksum is wrong.
pub fn decode_changes(raw: &[Vec<u8>]) -> Result<Vec<Change>> {
    raw.iter().map(|bytes| decode_change(bytes)).collect()
}

/// Decodes one change, refusing anything automerge cannot parse or whose checksum is wrong.
///
/// automerge's `Change::from_bytes` does not check the checksum, though its `load` does: a
/// change with a wrong one would be applied and stored, and then every load of the stored
/// document would fail.
pub fn decode_change(bytes: &[u8]) -> Result<Change> {
    let change =
        Change::from_bytes(bytes.to_vec()).map_err(|e| Error::InvalidChange(e.to_string()))?;
    // Bytes 4..8 of a change chunk, compressed or not, are the first four of the change's hash.
    if bytes.get(4..8) != Some(&change.hash().0[..4]) {
        return Err(Error::InvalidChange(format!(
            "the checksum does not match change {}",
            change.hash()
        )));
    }
    // Bytes automerge parses but would encode differently hash differently once a document
    // holding them is saved and loaded ("mismatching heads"): only its own encoding is taken,
    // so that every stored report loads.
    // automerge's `decode` unwraps actor indexes a hostile change may not hold: a panic there
    // is a refusal too.
    let canonical = std::panic::catch_unwind(|| Change::from(change.decode()).hash());
    if canonical.ok() != Some(change.hash()) {
        return Err(Error::InvalidChange(format!(
            "change {} is not encoded as automerge encodes it",
            change.hash()
        )));
    }
    Ok(change)
}

/// Loads saved bytes. automerge 0.12 panics on some corrupt documents instead of returning an
/// error (found by the `replica_apply` fuzz target: "unexpected null in non-nullable column"),
/// and the bytes may come from a hostile server or a damaged disk, so a panic is an error here.
fn load_automerge(bytes: &[u8]) -> Result<AutoCommit> {
    std::panic::catch_unwind(|| AutoCommit::load(bytes))
        .map_err(|_| {
            Error::Automerge("the document is corrupt (automerge panicked loading it)".into())
        })?
        .map_err(am)
}

pub(crate) fn am(e: automerge::AutomergeError) -> Error {
    Error::Automerge(e.to_string())
}

/// Writes a JSON value under `key`; arrays and objects become fresh automerge objects so the
/// whole value is replaced, which keeps one field one register.
fn write_json(
    doc: &mut AutoCommit,
    obj: &ObjId,
    key: &str,
    value: &Json,
) -> std::result::Result<(), automerge::AutomergeError> {
    match value {
        Json::Null => {
            if doc.get(obj, key)?.is_some() {
                doc.delete(obj, key)?;
            }
        }
        Json::Array(items) => {
            let list = doc.put_object(obj, key, ObjType::List)?;
            for (i, item) in items.iter().enumerate() {
                insert_json(doc, &list, i, item)?;
            }
        }
        Json::Object(map) => {
            let child = doc.put_object(obj, key, ObjType::Map)?;
            for (k, v) in map {
                write_json(doc, &child, k, v)?;
            }
        }
        scalar => doc.put(obj, key, scalar_of(scalar))?,
    }
    Ok(())
}

fn insert_json(
    doc: &mut AutoCommit,
    list: &ObjId,
    index: usize,
    value: &Json,
) -> std::result::Result<(), automerge::AutomergeError> {
    match value {
        Json::Array(items) => {
            let child = doc.insert_object(list, index, ObjType::List)?;
            for (i, item) in items.iter().enumerate() {
                insert_json(doc, &child, i, item)?;
            }
        }
        Json::Object(map) => {
            let child = doc.insert_object(list, index, ObjType::Map)?;
            for (k, v) in map {
                write_json(doc, &child, k, v)?;
            }
        }
        scalar => doc.insert(list, index, scalar_of(scalar))?,
    }
    Ok(())
}

fn scalar_of(value: &Json) -> ScalarValue {
    match value {
        Json::Bool(b) => ScalarValue::Boolean(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => ScalarValue::Int(i),
            (None, Some(u)) => ScalarValue::Uint(u),
            _ => ScalarValue::F64(n.as_f64().unwrap_or_default()),
        },
        Json::String(s) => ScalarValue::Str(s.as_str().into()),
        _ => ScalarValue::Null,
    }
}

/// Reads `key` of a map as JSON, `None` when absent.
pub(crate) fn read_json(doc: &AutoCommit, obj: &ObjId, key: &str) -> Result<Option<Json>> {
    match doc.get(obj, key).map_err(am)? {
        Some((value, id)) => Ok(Some(value_to_json(doc, value, &id)?)),
        None => Ok(None),
    }
}

/// Converts one automerge value to JSON. Text objects (what automerge's JS library writes for
/// strings) read as plain strings.
pub(crate) fn value_to_json(doc: &AutoCommit, value: Value<'_>, id: &ObjId) -> Result<Json> {
    Ok(match value {
        Value::Object(ObjType::Text) => Json::String(doc.text(id).map_err(am)?),
        Value::Object(_) => obj_to_json(doc, id)?,
        Value::Scalar(s) => scalar_to_json(&s),
    })
}

/// Reads a whole object as JSON in one pass over its entries: looking each key up again costs
/// a search of the document per key, which made the projection a fifth of an ingest (profiled).
pub(crate) fn obj_to_json(doc: &AutoCommit, obj: &ObjId) -> Result<Json> {
    match doc.object_type(obj).map_err(am)? {
        ObjType::Map | ObjType::Table => Ok(map_to_json(doc, obj)?.0),
        ObjType::List => {
            let mut items = Vec::new();
            for item in doc.list_range(obj, ..) {
                items.push(entry_to_json(doc, item.value.clone(), || item.id())?);
            }
            Ok(Json::Array(items))
        }
        ObjType::Text => Ok(Json::String(doc.text(obj).map_err(am)?)),
    }
}

/// A map as JSON, and its keys that hold concurrent values: one pass serves the projection and
/// the conflict scan, where a pass of its own for the scan cost 4% of the W1 server's
/// instructions (callgrind, BENCHMARKS.md).
fn map_to_json(doc: &AutoCommit, obj: &ObjId) -> Result<(Json, Vec<String>)> {
    let mut map = Map::new();
    let mut conflicted = Vec::new();
    for item in doc.map_range(obj, ..) {
        if item.conflict {
            conflicted.push(item.key.to_string());
        }
        let json = entry_to_json(doc, item.value.clone(), || item.id())?;
        map.insert(item.key.into_owned(), json);
    }
    Ok((Json::Object(map), conflicted))
}

/// [`value_to_json`] of an entry met while iterating an object. Only an object needs its id,
/// and making one costs an allocation, so `id` is asked for only then.
fn entry_to_json(
    doc: &AutoCommit,
    value: ValueRef<'_>,
    id: impl FnOnce() -> ObjId,
) -> Result<Json> {
    match value.into_value() {
        Value::Scalar(s) => Ok(scalar_to_json(&s)),
        value => value_to_json(doc, value, &id()),
    }
}

fn scalar_to_json(s: &ScalarValue) -> Json {
    match s {
        ScalarValue::Str(s) => Json::String(s.to_string()),
        ScalarValue::Int(i) => Json::from(*i),
        ScalarValue::Uint(u) => Json::from(*u),
        ScalarValue::F64(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        ScalarValue::Counter(c) => Json::from(i64::from(c)),
        ScalarValue::Timestamp(t) => Json::from(*t),
        ScalarValue::Boolean(b) => Json::Bool(*b),
        ScalarValue::Bytes(b) => Json::String(hex::encode(b)),
        ScalarValue::Unknown { .. } | ScalarValue::Null => Json::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attachment::Attachment;

    fn photo(sha: char) -> Attachment {
        Attachment {
            sha256: sha.to_string().repeat(64),
            media_type: "image/jpeg".into(),
            size: 10,
            name: "p.jpg".into(),
            field: "site_photos".into(),
            entry: None,
            taken_at: "2026-11-03T10:00:00Z".into(),
            location: None,
            attached_by: String::new(),
        }
    }

    #[test]
    fn a_change_long_enough_to_deflate_is_sent_undeflated_under_the_same_hash() {
        let by = Editor::new("u1", 1_800_000_000);
        let mut doc =
            ReportDoc::create(uuid::Uuid::new_v4(), "dispute_check", 1, "g1", &by).expect("create");
        let before = doc.heads();
        doc.set_field("description", &Json::from("楼上漏水 ".repeat(100)), &by)
            .expect("edit");
        let sent = doc.changes_since(&before);
        let [sent] = sent.as_slice() else {
            panic!("one change");
        };
        // Byte 8 is the chunk type: 1 a change, 2 a deflated one.
        assert_eq!(sent[8], 1, "undeflated");
        let mut deflated = doc.doc.get_changes(&before).remove(0);
        assert_eq!(deflated.bytes()[8], 2, "automerge would deflate it");
        assert_eq!(
            decode_change(sent).expect("decodes").hash(),
            deflated.hash()
        );
        let except = doc.changes_since_except(&before, &[]);
        assert_eq!(except, [(deflated.hash(), sent.clone())]);
    }

    #[test]
    fn phones_creating_the_attachments_map_of_an_older_report_concurrently_lose_nothing() {
        let wang = Editor::new("u-wang", 1_800_000_000);
        let li = Editor::new("u-li", 1_800_000_100);
        let mut a = ReportDoc::create(uuid::Uuid::new_v4(), "dispute_check", 1, "g1", &wang)
            .expect("create");
        // A report created before attachments existed has no `attachments` map.
        a.edit(&wang, |doc| doc.delete(ROOT, ATTACHMENTS))
            .expect("edit");
        let mut b = ReportDoc::load(a.id(), &a.save()).expect("load");
        a.attach(photo('a'), &wang).expect("attach");
        b.attach(photo('b'), &li).expect("attach");
        a.merge_snapshot(&b.save()).expect("merge");
        let shas: Vec<String> = a
            .attachments()
            .expect("read")
            .into_iter()
            .map(|x| x.sha256)
            .collect();
        assert_eq!(shas, ["a".repeat(64), "b".repeat(64)]);
        // Detaching reaches into whichever map holds it.
        a.detach(&"b".repeat(64), &wang).expect("detach");
        let shas: Vec<String> = a
            .attachments()
            .expect("read")
            .into_iter()
            .map(|x| x.sha256)
            .collect();
        assert_eq!(shas, ["a".repeat(64)]);
    }
}
