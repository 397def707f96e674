//! Tasks on the phone: the office's tasks for this user's grid, with their progress; a free
//! task marked done with a note; and the links that count a report towards a task, written in
//! the same transaction as the report's own change.

use std::collections::BTreeSet;

use gridsync_core::DocId;
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_core::task::{self, Goal, Task};
use serde_json::{Map, Value as Json, json};

use super::{Client, State, parse_id};
use crate::error::{ClientError, Result};
use crate::model::TaskItem;

impl State {
    /// The task documents this phone holds: read from the listing entries once, then kept
    /// current by pulls (`apply_page`).
    fn task_ids(&mut self) -> Result<BTreeSet<DocId>> {
        if self.tasks.is_none() {
            let ids = self
                .store()?
                .summaries(|s| task::is_task_kind(&s.summary.kind).then_some(s.id))?;
            self.tasks = Some(ids.into_iter().collect());
        }
        Ok(self.tasks.clone().unwrap_or_default())
    }

    /// The tasks held, each with its document's pending changes. Their bodies stay loaded: an
    /// edit in progress must not be parked before it is stored, so callers park.
    fn held_tasks(&mut self) -> Result<Vec<(Task, String, u64)>> {
        let mut out = Vec::new();
        for id in self.task_ids()? {
            // A task released since (evicted, delivered) is simply gone.
            let Some(local) = self.replica.load(&id)? else {
                continue;
            };
            let projection = local.doc.to_json()?;
            let pending = local.pending() as u64;
            if let (Some(t), Some(kind)) = (
                Task::from_projection(&projection),
                projection["kind"].as_str(),
            ) {
                out.push((t, kind.to_owned(), pending));
            }
        }
        Ok(out)
    }

    /// Links `report` to the open tasks of `by` it fulfils, in memory: a canvass interview to
    /// one quota of its grid (the one due first), an edit of a dispute to its follow-ups, a
    /// visit logged on a case (`logged`) to its visit tasks. Returns the tasks changed, each
    /// with its document as it was, for the caller to store with the report or put back.
    pub(super) fn link_tasks(
        &mut self,
        report: &DocId,
        logged: bool,
        by: &Editor,
    ) -> Result<Vec<(DocId, ReportDoc)>> {
        let meta = self.local(report)?.doc.meta()?;
        // Only these kinds fulfil a task: any other edit reads no task.
        if ![task::CANVASS, task::DISPUTE, task::DRUG_CASE].contains(&meta.kind.as_str()) {
            return Ok(Vec::new());
        }
        let mut candidates: Vec<Task> = self
            .held_tasks()?
            .into_iter()
            .map(|(t, _, _)| t)
            .filter(|t| t.assignee.as_deref().is_none_or(|a| a == by.user))
            .filter(|t| t.fulfilled_by(&meta.kind, *report, &meta.grid))
            .filter(|t| logged || !matches!(t.goal, Goal::DrugVisit(_)))
            .collect();
        candidates.sort_by(|a, b| a.due.cmp(&b.due));
        // An interview counts towards one quota; a follow-up or a visit towards each task
        // that names its report.
        let first_quota = candidates
            .iter()
            .find(|t| matches!(t.goal, Goal::CanvassQuota(_)))
            .map(|t| t.id);
        candidates
            .retain(|t| !matches!(t.goal, Goal::CanvassQuota(_)) || Some(t.id) == first_quota);
        let mut entry = Map::new();
        entry.insert("report".into(), json!(report.to_string()));
        let mut changed = Vec::new();
        for t in candidates {
            let local = self.local(&t.id)?;
            let before = local.doc.clone();
            if let Err(e) = local.doc.append_log(&entry, by) {
                local.doc = before;
                for (id, doc) in changed {
                    if let Some(d) = self.replica.doc_mut(&id) {
                        *d = doc;
                    }
                }
                return Err(e.into());
            }
            changed.push((t.id, before));
        }
        Ok(changed)
    }
}

impl Client {
    /// The tasks the office set for this phone's grid or user, open ones first by due date,
    /// with their progress as this phone counts it (its own unsent links included).
    pub fn tasks(&self) -> Result<Vec<TaskItem>> {
        let mut held = {
            let mut state = self.lock();
            let held = state.held_tasks()?;
            state.replica.park(None);
            held
        };
        held.sort_by(|(a, _, _), (b, _, _)| {
            (!a.is_open(), &a.due, a.id).cmp(&(!b.is_open(), &b.due, b.id))
        });
        Ok(held
            .into_iter()
            .map(|(t, kind, pending)| item(&t, kind, pending))
            .collect())
    }

    /// Marks a free task done with a note. Other tasks are done by the reports linked to them.
    pub fn complete_task(&self, id: &str, note: Option<String>) -> Result<()> {
        let id = parse_id(id)?;
        let note = note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
        if note
            .as_ref()
            .is_some_and(|n| n.chars().count() > 1000 || n.contains('\0'))
        {
            return Err(ClientError::Invalid(
                "a note of at most 1000 characters".into(),
            ));
        }
        self.edit(&id, |doc, by| {
            let t = Task::from_projection(&doc.to_json()?)
                .ok_or_else(|| ClientError::Invalid(format!("report {id} is not a task")))?;
            if t.goal != Goal::Free {
                return Err(ClientError::Invalid(format!(
                    "a {} task is done by the reports linked to it, not by hand",
                    t.goal.as_str()
                )));
            }
            if !t.is_open() {
                return Err(ClientError::Invalid(format!("task {id} is not open")));
            }
            let mut values = Map::new();
            values.insert("status".into(), json!("done"));
            if let Some(n) = note {
                values.insert("done_note".into(), Json::String(n));
            }
            doc.set_fields(&values, by).map_err(Into::into)
        })
    }
}

fn item(t: &Task, kind: String, pending: u64) -> TaskItem {
    let (progress, needed) = t.progress();
    let target = match &t.goal {
        Goal::DisputeFollowUp(r) | Goal::DrugVisit(r) => Some(r.to_string()),
        Goal::CanvassQuota(_) | Goal::Free => None,
    };
    TaskItem {
        id: t.id.to_string(),
        kind,
        grid: t.grid.clone(),
        title: t.title.clone(),
        due: t.due.clone(),
        goal: t.goal.as_str().to_owned(),
        target,
        assignee: t.assignee.clone(),
        status: t.status.as_str().to_owned(),
        done_note: t.done_note.clone(),
        progress,
        needed,
        done: t.is_done(),
        pending_changes: pending,
    }
}
