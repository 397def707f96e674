//! A report's history: for every change, who made it, when, and which fields and log entries it
//! touched, read from the automerge document itself (so pruning the server's change log loses
//! nothing of it).

use std::collections::{BTreeMap, BTreeSet};

use automerge::patches::{Patch, PatchAction};
use automerge::{ChangeHash, ObjId, Prop, ReadDoc, Value};

use crate::Result;
use crate::report::{LOG_ENTRY_KEYS, REMOVED_BY, ReportDoc};

/// What one change did to a log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogAction {
    Added,
    Edited,
    Removed,
    /// A removed entry brought back.
    Restored,
}

/// One log entry a change touched, and which of its fields.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogTouch {
    pub entry: String,
    pub action: LogAction,
    /// Fields of the entry written or cleared (for an added entry: those it was created with).
    pub fields: Vec<String>,
}

/// One change of a report's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChangeSummary {
    /// The change hash, hex.
    pub hash: String,
    /// The user recorded as the change's author.
    pub author: Option<String>,
    /// Unix seconds as the writing device recorded them.
    pub time: i64,
    /// Whether this change created the report (wrote its meta).
    pub created: bool,
    /// Top-level fields set or cleared, sorted.
    pub fields: Vec<String>,
    /// Log entries added, edited or removed, by entry id.
    pub log: Vec<LogTouch>,
    /// Attachments added, changed or removed, by sha256.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
}

#[derive(Default)]
struct Touches {
    created: bool,
    fields: BTreeSet<String>,
    log: BTreeMap<String, (LogAction, BTreeSet<String>)>,
    attachments: BTreeSet<String>,
}

impl Touches {
    fn entry(&mut self, id: String, action: LogAction, field: Option<String>) {
        let slot = self
            .log
            .entry(id)
            .or_insert_with(|| (action, BTreeSet::new()));
        // Added, removed and restored say more than edited; keep them.
        if slot.0 == LogAction::Edited {
            slot.0 = action;
        }
        slot.1.extend(field);
    }
}

impl ReportDoc {
    /// Every change in causal order, with what it touched: the difference between the document
    /// as of the change's dependencies and as of the change.
    pub fn history(&mut self) -> Result<Vec<ChangeSummary>> {
        let metas: Vec<(ChangeHash, Vec<ChangeHash>, Option<String>, i64)> = self
            .doc_mut()
            .get_changes_meta(&[])
            .into_iter()
            .map(|m| {
                let author = m
                    .author
                    .as_ref()
                    .map(|a| String::from_utf8_lossy(a.as_bytes()).into_owned());
                (m.hash, m.deps.clone(), author, m.timestamp)
            })
            .collect();
        let mut out = Vec::with_capacity(metas.len());
        for (hash, deps, author, time) in metas {
            let actor = self
                .doc_mut()
                .get_change_by_hash(&hash)
                .map(|c| c.actor_id().clone());
            let author = author.or_else(|| actor.and_then(|a| self.author_of(&a)));
            let after = [hash];
            let patches = self.doc_mut().diff(&deps, &after);
            let touches = self.touches(&patches, &deps, &after);
            out.push(ChangeSummary {
                hash: hash.to_string(),
                author,
                time,
                created: touches.created,
                fields: touches.fields.into_iter().collect(),
                log: touches
                    .log
                    .into_iter()
                    .map(|(entry, (action, fields))| LogTouch {
                        entry,
                        action,
                        fields: fields.into_iter().collect(),
                    })
                    .collect(),
                attachments: touches.attachments.into_iter().collect(),
            });
        }
        Ok(out)
    }

    fn touches(&self, patches: &[Patch], before: &[ChangeHash], after: &[ChangeHash]) -> Touches {
        let mut t = Touches::default();
        for patch in patches {
            let Some((_, Prop::Map(top))) = patch.path.first() else {
                // A patch on the root itself: the creating change putting meta, fields and log.
                if let PatchAction::PutMap { key, .. } = &patch.action
                    && key == "meta"
                {
                    t.created = true;
                }
                continue;
            };
            match top.as_str() {
                "meta" => t.created = true,
                "fields" => {
                    let name = match patch.path.get(1) {
                        Some((_, Prop::Map(name))) => Some(name.clone()),
                        Some((_, Prop::Seq(_))) => None,
                        None => action_key(&patch.action),
                    };
                    t.fields.extend(name);
                }
                "log" => self.log_touch(&mut t, patch, before, after),
                "attachments" => {
                    let sha = match patch.path.get(1) {
                        Some((_, Prop::Map(sha))) => Some(sha.clone()),
                        Some((_, Prop::Seq(_))) => None,
                        None => action_key(&patch.action),
                    };
                    t.attachments.extend(sha);
                }
                _ => {}
            }
        }
        t
    }

    fn log_touch(
        &self,
        t: &mut Touches,
        patch: &Patch,
        before: &[ChangeHash],
        after: &[ChangeHash],
    ) {
        let log = &patch.path[0];
        let log_obj = match self.doc().get_at(&log.0, log.1.clone(), after) {
            Ok(Some((Value::Object(_), id))) => id,
            _ => return,
        };
        match patch.path.get(1) {
            None => match &patch.action {
                PatchAction::Insert { index, values } => {
                    for i in 0..values.len() {
                        if let Some(id) = self.entry_id_at(&log_obj, index + i, after) {
                            t.entry(id, LogAction::Added, None);
                        }
                    }
                }
                PatchAction::DeleteSeq { index, length } => {
                    // Indexes of a deletion are positions as of before the change.
                    for i in *index..index + length {
                        if let Some(id) = self.entry_id_at(&log_obj, i, before) {
                            t.entry(id, LogAction::Removed, None);
                        }
                    }
                }
                PatchAction::PutSeq { index, .. } => {
                    if let Some(id) = self.entry_id_at(&log_obj, *index, after) {
                        t.entry(id, LogAction::Added, None);
                    }
                }
                _ => {}
            },
            Some((_, Prop::Seq(index))) => {
                let Some(id) = self.entry_id_at(&log_obj, *index, after) else {
                    return;
                };
                let field = match patch.path.get(2) {
                    Some((_, Prop::Map(name))) => Some(name.clone()),
                    Some((_, Prop::Seq(_))) => None,
                    None => action_key(&patch.action),
                };
                // Removal marks the entry; it edits none of its fields.
                let action = match (&patch.action, patch.path.get(2)) {
                    (PatchAction::PutMap { key, .. }, None) if key == REMOVED_BY => {
                        LogAction::Removed
                    }
                    (PatchAction::DeleteMap { key }, None) if key == REMOVED_BY => {
                        LogAction::Restored
                    }
                    _ => LogAction::Edited,
                };
                let field = field.filter(|f| !LOG_ENTRY_KEYS.contains(&f.as_str()));
                t.entry(id, action, field);
            }
            Some((_, Prop::Map(_))) => {}
        }
    }

    fn entry_id_at(&self, log: &ObjId, index: usize, heads: &[ChangeHash]) -> Option<String> {
        let (_, entry) = self.doc().get_at(log, index, heads).ok()??;
        match self.doc().get_at(&entry, "id", heads).ok()?? {
            (Value::Scalar(s), _) => s.as_str().map(str::to_owned),
            _ => None,
        }
    }
}

fn action_key(action: &PatchAction) -> Option<String> {
    match action {
        PatchAction::PutMap { key, .. } | PatchAction::DeleteMap { key } => Some(key.clone()),
        PatchAction::Increment {
            prop: Prop::Map(key),
            ..
        }
        | PatchAction::Conflict {
            prop: Prop::Map(key),
        } => Some(key.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;
    use crate::DocId;
    use crate::report::Editor;

    fn map(v: serde_json::Value) -> Map<String, serde_json::Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn each_change_names_its_author_and_the_fields_and_entries_it_touched() {
        let w = Editor::new("w1", 10);
        let c = Editor::new("c1", 20);
        let mut doc =
            ReportDoc::create(DocId::from_u128(1), "dispute_check", 1, "g1", &w).expect("create");
        doc.set_fields(&map(json!({"place": "村口", "parties": "张三"})), &w)
            .expect("set");
        let entry = doc
            .append_log(&map(json!({"method": "面谈"})), &c)
            .expect("append");
        doc.edit_log(&entry, &map(json!({"outcome": "ok"})), &c)
            .expect("edit");
        doc.set_field("place", &json!(null), &c).expect("clear");
        doc.remove_log(&entry, &w).expect("remove");

        let h = doc.history().expect("history");
        assert_eq!(h.len(), 6);
        assert!(h[0].created && h[0].fields.is_empty() && h[0].log.is_empty());
        assert_eq!(h[0].author.as_deref(), Some("w1"));
        assert_eq!(h[1].fields, ["parties", "place"]);
        assert!(!h[1].created);
        assert_eq!(
            h[2].log,
            [LogTouch {
                entry: entry.clone(),
                action: LogAction::Added,
                fields: vec!["method".into()],
            }]
        );
        assert_eq!((h[2].author.as_deref(), h[2].time), (Some("c1"), 20));
        assert_eq!(
            h[3].log,
            [LogTouch {
                entry: entry.clone(),
                action: LogAction::Edited,
                fields: vec!["outcome".into()],
            }]
        );
        assert_eq!(h[4].fields, ["place"]);
        assert_eq!(
            h[5].log,
            [LogTouch {
                entry,
                action: LogAction::Removed,
                fields: vec![],
            }]
        );
        assert_eq!(h[5].author.as_deref(), Some("w1"));
    }

    #[test]
    fn concurrent_changes_each_show_only_their_own_edit() {
        let mut a = ReportDoc::create(
            DocId::from_u128(2),
            "dispute_check",
            1,
            "g1",
            &Editor::new("a", 1),
        )
        .expect("create");
        let mut b = a.clone();
        a.set_field("place", &json!("x"), &Editor::new("a", 2))
            .expect("a");
        b.set_field("place", &json!("y"), &Editor::new("b", 3))
            .expect("b");
        a.apply_changes(&b.changes_since(&[])).expect("merge");
        let h = a.history().expect("history");
        assert_eq!(h.len(), 3);
        for s in &h[1..] {
            assert_eq!(s.fields, ["place"], "{s:?}");
        }
    }
}
