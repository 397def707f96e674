//! Conflicts a CRDT cannot decide for people: concurrent values of one field with their
//! attribution, the change that resolves them, semantic flags from a kind's rules, and the
//! flag on a log entry edited concurrently with its removal.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::str::FromStr;

use automerge::legacy;
use automerge::{ChangeHash, ObjId, ReadDoc, Value};
use serde_json::{Map, Value as Json};

use crate::report::{
    Editor, LOG_ENTRY_KEYS, LogMap, REMOVED_AT, REMOVED_BY, ReportDoc, am, value_to_json,
};
use crate::schema::{ConcurrencyRule, Label};
use crate::{Error, Result};

/// Where a conflicting value lives: a top-level field or a field of one log entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldPath {
    Field(String),
    Log { entry: String, field: String },
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldPath::Field(name) => write!(f, "fields.{name}"),
            FieldPath::Log { entry, field } => write!(f, "log[{entry}].{field}"),
        }
    }
}

impl FromStr for FieldPath {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::BadPath(s.to_owned());
        if let Some(name) = s.strip_prefix("fields.") {
            if name.is_empty() {
                return Err(bad());
            }
            return Ok(FieldPath::Field(name.to_owned()));
        }
        let rest = s.strip_prefix("log[").ok_or_else(bad)?;
        let (entry, field) = rest.split_once("].").ok_or_else(bad)?;
        if entry.is_empty() || field.is_empty() {
            return Err(bad());
        }
        Ok(FieldPath::Log {
            entry: entry.to_owned(),
            field: field.to_owned(),
        })
    }
}

impl serde::Serialize for FieldPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One of the concurrent values of a field, with who wrote it, when, and in which change.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConflictValue {
    pub value: Json,
    /// The user recorded as the change's author, when it has one.
    pub author: Option<String>,
    pub actor: String,
    /// Unix seconds as the writing device recorded them.
    pub time: i64,
    pub change: String,
}

/// A field holding more than one distinct concurrent value. `values[0]` is the value automerge
/// shows until someone resolves it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Conflict {
    pub path: FieldPath,
    pub values: Vec<ConflictValue>,
}

/// The code of the flag on a removed log entry that a change concurrent with its removal
/// wrote into. Every kind has it; no schema rule may take the code.
pub const EDITED_AFTER_REMOVAL: &str = "edited_after_removal";

/// A semantic conflict about one log entry: found by a kind's rule (an entry added concurrently
/// with the change that closed the report), or [`EDITED_AFTER_REMOVAL`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Flag {
    pub code: String,
    pub entry: String,
    pub message: Label,
    /// For [`EDITED_AFTER_REMOVAL`]: the removal and what the entry now holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removal: Option<Removal>,
}

impl Flag {
    /// `log[ENTRY]`, where a flag is listed among conflicts.
    pub fn path(&self) -> String {
        format!("log[{}]", self.entry)
    }
}

/// The entry of a flag's path `log[ENTRY]`, `None` for any other path.
pub fn flagged_entry(path: &str) -> Option<&str> {
    path.strip_prefix("log[")?
        .strip_suffix(']')
        .filter(|entry| !entry.is_empty() && !entry.contains(']'))
}

/// Who removed a log entry flagged [`EDITED_AFTER_REMOVAL`], and what it holds now.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Removal {
    pub removed_by: String,
    /// RFC 3339, as the removing device recorded it.
    pub removed_at: String,
    /// The entry's fields as they stand, the edits made concurrently with the removal included.
    pub values: Map<String, Json>,
    /// The users whose edits were concurrent with the removal.
    pub edited_by: Vec<String>,
}

impl ReportDoc {
    /// Every field and log-entry field with more than one distinct concurrent value.
    pub fn conflicts(&mut self) -> Result<Vec<Conflict>> {
        let log = self.log_maps()?;
        let fields = self.conflicted_keys(&self.fields_obj()?);
        self.conflicts_with_log(&fields, &log)
    }

    /// [`ReportDoc::conflicts`] with the keys of the fields that hold concurrent values and the
    /// log's maps, which the caller has read (see [`ReportDoc::project_with_log`]).
    pub(crate) fn conflicts_with_log(
        &mut self,
        conflicted_fields: &[String],
        log: &[LogMap],
    ) -> Result<Vec<Conflict>> {
        let mut found = Vec::new();
        if !conflicted_fields.is_empty() {
            let fields = self.fields_obj()?;
            for key in conflicted_fields {
                if let Some(values) = self.concurrent_values(&fields, key)? {
                    found.push(Conflict {
                        path: FieldPath::Field(key.clone()),
                        values,
                    });
                }
            }
        }
        for map in log.iter().filter(|m| !m.removed) {
            for key in &map.conflicted {
                if let Some(values) = self.concurrent_values(&map.obj, key)? {
                    found.push(Conflict {
                        path: FieldPath::Log {
                            entry: map.id.clone(),
                            field: key.clone(),
                        },
                        values,
                    });
                }
            }
        }
        Ok(found)
    }

    /// Writes `value` over every concurrent value at `path`, as a change by the resolver.
    pub fn resolve(&mut self, path: &FieldPath, value: &Json, by: &Editor) -> Result<()> {
        let mut one = Map::new();
        match path {
            FieldPath::Field(name) => {
                one.insert(name.clone(), value.clone());
                self.set_fields(&one, by)
            }
            FieldPath::Log { entry, field } => {
                one.insert(field.clone(), value.clone());
                self.edit_log(entry, &one, by)
            }
        }
    }

    /// Evaluates concurrency rules: for each rule whose field currently holds one of its values,
    /// every log entry created concurrently with the change that wrote that value is flagged.
    pub fn flags(&mut self, rules: &[ConcurrencyRule]) -> Result<Vec<Flag>> {
        let log = self.log_maps()?;
        self.flags_with_log(rules, &log)
    }

    /// [`ReportDoc::flags`] with the log's maps the caller has read.
    pub(crate) fn flags_with_log(
        &mut self,
        rules: &[ConcurrencyRule],
        log: &[LogMap],
    ) -> Result<Vec<Flag>> {
        let mut flags = Vec::new();
        let fields = self.fields_obj()?;
        for rule in rules {
            let closing: Vec<ChangeHash> = self
                .doc()
                .get_all(&fields, rule.field.as_str())
                .map_err(am)?
                .into_iter()
                .filter(|(value, _)| match value {
                    Value::Scalar(s) => s
                        .as_str()
                        .is_some_and(|s| rule.any_of.iter().any(|v| v == s)),
                    Value::Object(_) => false,
                })
                .filter_map(|(_, id)| self.doc().hash_for_opid(&id))
                .collect();
            for close in closing {
                // An entry is concurrent with the close when neither change saw the other. One
                // walk of the history per close: asking per entry walked it once per entry.
                let concurrent: HashSet<ChangeHash> =
                    self.concurrent_with(close).into_iter().collect();
                for map in log.iter().filter(|m| !m.removed) {
                    let Some(created) = self.doc().hash_for_opid(&map.obj) else {
                        continue;
                    };
                    if concurrent.contains(&created) {
                        flags.push(Flag {
                            code: rule.code.clone(),
                            entry: map.id.clone(),
                            message: rule.message.clone(),
                            removal: None,
                        });
                    }
                }
            }
        }
        flags.extend(self.edited_after_removal_with_log(log)?);
        Ok(flags)
    }

    /// Flags every removed log entry that a change concurrent with its removal (neither saw
    /// the other) wrote a field of. An edit made before the removal was seen by whoever removed
    /// the entry, and raises nothing.
    pub fn edited_after_removal(&mut self) -> Result<Vec<Flag>> {
        let log = self.log_maps()?;
        self.edited_after_removal_with_log(&log)
    }

    fn edited_after_removal_with_log(&mut self, log: &[LogMap]) -> Result<Vec<Flag>> {
        let mut flags = Vec::new();
        for map in log.iter().filter(|m| m.removed) {
            let removals: Vec<ChangeHash> = self
                .doc()
                .get_all(&map.obj, REMOVED_BY)
                .map_err(am)?
                .into_iter()
                .filter_map(|(_, op)| self.doc().hash_for_opid(&op))
                .collect();
            let mut edited_by = BTreeSet::new();
            for removal in removals {
                for change in self.concurrent_with(removal) {
                    if self.writes_into(&change, &map.obj)? {
                        edited_by.insert(self.author_of_change(&change).unwrap_or_default());
                    }
                }
            }
            if edited_by.is_empty() {
                continue;
            }
            let text = |key| match map.json.get(key) {
                Some(Json::String(s)) => s.clone(),
                _ => String::new(),
            };
            let Json::Object(mut values) = map.json.clone() else {
                continue;
            };
            values.retain(|key, _| !LOG_ENTRY_KEYS.contains(&key.as_str()));
            flags.push(Flag {
                code: EDITED_AFTER_REMOVAL.to_owned(),
                entry: map.id.clone(),
                message: Label {
                    zh: "这条记录被删除时，有人同时修改了它：请恢复记录，或确认删除".to_owned(),
                    en: "This entry was removed while someone edited it: restore it, or \
                         confirm the removal"
                        .to_owned(),
                },
                removal: Some(Removal {
                    removed_by: text(REMOVED_BY),
                    removed_at: text(REMOVED_AT),
                    values,
                    edited_by: edited_by.into_iter().collect(),
                }),
            });
        }
        Ok(flags)
    }

    /// Changes concurrent with `hash`: neither among its ancestors nor among its descendants.
    fn concurrent_with(&mut self, hash: ChangeHash) -> Vec<ChangeHash> {
        let later: Vec<(ChangeHash, Vec<ChangeHash>)> = self
            .doc_mut()
            .get_changes_meta(&[hash])
            .into_iter()
            .map(|meta| (meta.hash, meta.deps))
            .collect();
        let mut descendants = HashSet::from([hash]);
        // Repeated until nothing is added, so the order automerge lists changes in is no matter.
        loop {
            let known = descendants.len();
            for (change, deps) in &later {
                if deps.iter().any(|d| descendants.contains(d)) {
                    descendants.insert(*change);
                }
            }
            if descendants.len() == known {
                break;
            }
        }
        later
            .into_iter()
            .map(|(change, _)| change)
            .filter(|change| !descendants.contains(change))
            .collect()
    }

    /// Whether `change` wrote or cleared a field of the log entry `entry`; marking it removed
    /// does not count.
    fn writes_into(&mut self, change: &ChangeHash, entry: &ObjId) -> Result<bool> {
        let ObjId::Id(counter, actor, _) = entry else {
            return Ok(false);
        };
        let Some(change) = self.doc_mut().get_change_by_hash(change) else {
            return Ok(false);
        };
        // automerge's `decode` unwraps actor indexes, which a corrupt document loaded from disk
        // may lack: a panic there is an error, not a crash.
        let ops = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            change.decode().operations
        }))
        .map_err(|_| Error::Automerge(format!("change {} does not decode", change.hash())))?;
        Ok(ops.iter().any(|op| {
            matches!(&op.obj, legacy::ObjectId::Id(id) if id.counter() == *counter && id.actor() == actor)
                && matches!(&op.key, legacy::Key::Map(key) if ![REMOVED_BY, REMOVED_AT].contains(&key.as_str()))
        }))
    }

    /// The user who made `change`: automerge records the author in an actor's first change only.
    fn author_of_change(&mut self, change: &ChangeHash) -> Option<String> {
        let meta = self.doc_mut().get_change_meta_by_hash(change)?;
        let recorded = meta
            .author
            .as_ref()
            .map(|a| String::from_utf8_lossy(a.as_bytes()).into_owned());
        let actor = meta.actor.into_owned();
        recorded.or_else(|| self.author_of(&actor))
    }

    /// The keys of a map that hold concurrent values, in one pass over the map: asking each key
    /// for all its values costs a search of the document per key, and most keys hold one.
    /// Ingest does not call it: its projection notes the keys on the way (`map_to_json`).
    fn conflicted_keys(&self, obj: &ObjId) -> Vec<String> {
        self.doc()
            .map_range(obj, ..)
            .filter(|item| item.conflict)
            .map(|item| item.key.into_owned())
            .collect()
    }

    fn concurrent_values(&mut self, obj: &ObjId, key: &str) -> Result<Option<Vec<ConflictValue>>> {
        let all = self.doc().get_all(obj, key).map_err(am)?;
        if all.len() < 2 {
            return Ok(None);
        }
        let winner = self.doc().get(obj, key).map_err(am)?.map(|(_, id)| id);
        let mut values: Vec<(bool, Json, ObjId)> = Vec::new();
        for (value, id) in all {
            let json = value_to_json(self.doc(), value, &id)?;
            values.push((Some(&id) == winner.as_ref(), json, id));
        }
        // The winner first; then equal values written concurrently collapse into one, because
        // two people agreeing is not a conflict anyone needs to resolve.
        values.sort_by_key(|(is_winner, _, _)| !*is_winner);
        let mut distinct: Vec<ConflictValue> = Vec::new();
        for (_, json, id) in values {
            if distinct.iter().any(|v| v.value == json) {
                continue;
            }
            distinct.push(self.attribute(json, &id));
        }
        Ok((distinct.len() > 1).then_some(distinct))
    }

    fn attribute(&mut self, value: Json, op: &ObjId) -> ConflictValue {
        let hash = self.doc().hash_for_opid(op);
        let meta = hash.and_then(|h| self.doc_mut().get_change_meta_by_hash(&h));
        ConflictValue {
            value,
            author: meta
                .as_ref()
                .and_then(|m| m.author.as_ref())
                .map(|a| String::from_utf8_lossy(a.as_bytes()).into_owned()),
            actor: meta
                .as_ref()
                .map(|m| m.actor.to_hex_string())
                .unwrap_or_default(),
            time: meta.as_ref().map_or(0, |m| m.timestamp),
            change: hash.map(|h| h.to_string()).unwrap_or_default(),
        }
    }
}
