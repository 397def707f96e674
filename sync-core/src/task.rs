//! Tasks: what an office asks of a grid — a canvass quota, the follow-up of a dispute, a visit
//! to a drug-control case, or a free task — kept as documents of the kinds [`TASK`] and
//! [`DRUG_VISIT_TASK`], so that they sync, merge field by field and follow scope like reports;
//! and their progress, counted from the reports linked to them in the task's log.

use serde_json::Value;

use crate::DocId;

/// A task to a grid or to one worker of it.
pub const TASK: &str = "task";
/// A visit to a drug-control case: restricted like the case, to its worker.
pub const DRUG_VISIT_TASK: &str = "drug_visit_task";
/// The kind whose reports fill a canvass quota.
pub const CANVASS: &str = "satisfaction_canvass";
pub const DISPUTE: &str = "dispute_check";
pub const DRUG_CASE: &str = "drug_control_case";

/// Whether reports of `kind` are tasks rather than field reports.
pub fn is_task_kind(kind: &str) -> bool {
    kind == TASK || kind == DRUG_VISIT_TASK
}

/// What completes a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Goal {
    /// This many canvass interviews in the task's grid.
    CanvassQuota(u32),
    /// An edit of this dispute check.
    DisputeFollowUp(DocId),
    /// A visit logged on this drug-control case.
    DrugVisit(DocId),
    /// Marked done by a person, with a note.
    Free,
}

impl Goal {
    pub fn as_str(&self) -> &'static str {
        match self {
            Goal::CanvassQuota(_) => "canvass_quota",
            Goal::DisputeFollowUp(_) => "dispute_follow_up",
            Goal::DrugVisit(_) => "drug_visit",
            Goal::Free => "free",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open,
    Done,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Done => "done",
            Status::Cancelled => "cancelled",
        }
    }
}

/// A task as its document's projection reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: DocId,
    pub grid: String,
    pub title: String,
    /// `YYYY-MM-DD`.
    pub due: String,
    pub goal: Goal,
    pub assignee: Option<String>,
    pub status: Status,
    pub done_note: Option<String>,
    /// The reports linked to it, each once, in the order they were linked.
    pub linked: Vec<DocId>,
    pub series: Option<String>,
}

impl Task {
    /// The task a report projection holds; `None` when it is not a task or not a whole one (a
    /// document the server would not have accepted).
    pub fn from_projection(projection: &Value) -> Option<Task> {
        let kind = projection["kind"].as_str()?;
        let fields = &projection["fields"];
        let text = |key: &str| fields[key].as_str().map(str::to_owned);
        let doc = |key: &str| fields[key].as_str().and_then(|s| s.parse::<DocId>().ok());
        let goal = match kind {
            DRUG_VISIT_TASK => Goal::DrugVisit(doc("case")?),
            TASK => match fields["goal"].as_str()? {
                "canvass_quota" => Goal::CanvassQuota(
                    u32::try_from(fields["quota"].as_i64()?)
                        .ok()
                        .filter(|q| *q > 0)?,
                ),
                "dispute_follow_up" => Goal::DisputeFollowUp(doc("report")?),
                "free" => Goal::Free,
                _ => return None,
            },
            _ => return None,
        };
        let status = match fields["status"].as_str()? {
            "open" => Status::Open,
            "done" => Status::Done,
            "cancelled" => Status::Cancelled,
            _ => return None,
        };
        let mut linked: Vec<DocId> = Vec::new();
        for entry in projection["log"].as_array().into_iter().flatten() {
            if let Some(id) = entry["report"].as_str().and_then(|s| s.parse().ok())
                && !linked.contains(&id)
            {
                linked.push(id);
            }
        }
        Some(Task {
            id: projection["id"].as_str()?.parse().ok()?,
            grid: projection["grid"].as_str()?.to_owned(),
            title: text("title")?,
            due: text("due")?,
            goal,
            assignee: text("assignee"),
            status,
            done_note: text("done_note"),
            linked,
            series: text("series"),
        })
    }

    /// (done, needed): interviews linked against the quota; 1 of 1 once the dispute or the case
    /// is linked, or a free task is marked done.
    pub fn progress(&self) -> (u32, u32) {
        let reached = |yes: bool| (u32::from(yes), 1);
        match &self.goal {
            Goal::CanvassQuota(quota) => {
                let linked = u32::try_from(self.linked.len()).unwrap_or(u32::MAX);
                (linked.min(*quota), *quota)
            }
            Goal::DisputeFollowUp(target) | Goal::DrugVisit(target) => {
                reached(self.linked.contains(target))
            }
            Goal::Free => reached(self.status == Status::Done),
        }
    }

    /// Done: marked so, or its goal reached. A cancelled task is neither done nor open.
    pub fn is_done(&self) -> bool {
        let (done, needed) = self.progress();
        self.status == Status::Done || (self.status == Status::Open && done >= needed)
    }

    pub fn is_open(&self) -> bool {
        self.status == Status::Open && !self.is_done()
    }

    /// Whether a report of `kind` in `grid`, created or edited by the task's worker, counts
    /// towards this task and is not linked yet.
    pub fn fulfilled_by(&self, kind: &str, report: DocId, grid: &str) -> bool {
        if !self.is_open() || self.linked.contains(&report) {
            return false;
        }
        match &self.goal {
            Goal::CanvassQuota(_) => kind == CANVASS && grid == self.grid,
            Goal::DisputeFollowUp(target) => kind == DISPUTE && *target == report,
            Goal::DrugVisit(target) => kind == DRUG_CASE && *target == report,
            Goal::Free => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn id(n: u128) -> DocId {
        DocId::from_u128(n)
    }

    fn quota_task(linked: &[u128]) -> Value {
        let log: Vec<Value> = linked
            .iter()
            .map(|n| json!({ "id": format!("e{n}"), "report": id(*n).to_string() }))
            .collect();
        json!({
            "id": id(1).to_string(), "kind": TASK, "grid": "g1",
            "fields": { "title": "30户民调", "due": "2026-12-25", "goal": "canvass_quota",
                        "quota": 2, "status": "open" },
            "log": log,
        })
    }

    #[test]
    fn a_quota_counts_each_linked_interview_once_and_is_done_when_reached() {
        let task = Task::from_projection(&quota_task(&[7, 7])).expect("a task");
        assert_eq!(task.progress(), (1, 2));
        assert!(task.is_open());
        assert!(task.fulfilled_by(CANVASS, id(8), "g1"));
        assert!(!task.fulfilled_by(CANVASS, id(7), "g1"), "linked already");
        assert!(!task.fulfilled_by(CANVASS, id(8), "g2"), "another grid");
        assert!(!task.fulfilled_by(DISPUTE, id(8), "g1"), "another kind");
        let full = Task::from_projection(&quota_task(&[7, 8, 9])).expect("a task");
        assert_eq!(full.progress(), (2, 2));
        assert!(full.is_done() && !full.is_open());
        assert!(!full.fulfilled_by(CANVASS, id(10), "g1"));
    }

    #[test]
    fn a_follow_up_is_fulfilled_by_its_dispute_only_and_a_free_task_by_a_person() {
        let mut p = json!({
            "id": id(1).to_string(), "kind": TASK, "grid": "g1",
            "fields": { "title": "回访", "due": "2026-12-25", "goal": "dispute_follow_up",
                        "report": id(5).to_string(), "status": "open" },
            "log": [],
        });
        let task = Task::from_projection(&p).expect("a task");
        assert!(task.fulfilled_by(DISPUTE, id(5), "g9"));
        assert!(!task.fulfilled_by(DISPUTE, id(6), "g1"));
        p["log"] = json!([{ "id": "e", "report": id(5).to_string() }]);
        assert!(Task::from_projection(&p).expect("a task").is_done());
        p["fields"]["goal"] = json!("free");
        let free = Task::from_projection(&p).expect("a task");
        assert_eq!(free.progress(), (0, 1));
        p["fields"]["status"] = json!("done");
        assert_eq!(
            Task::from_projection(&p).expect("a task").progress(),
            (1, 1)
        );
        p["fields"]["status"] = json!("cancelled");
        let cancelled = Task::from_projection(&p).expect("a task");
        assert!(!cancelled.is_open() && !cancelled.is_done());
    }

    #[test]
    fn what_is_not_a_whole_task_reads_as_none() {
        let mut p = quota_task(&[]);
        p["fields"]["quota"] = json!(0);
        assert_eq!(Task::from_projection(&p), None);
        let mut p = quota_task(&[]);
        p["kind"] = json!(DISPUTE);
        assert_eq!(Task::from_projection(&p), None);
        let mut p = quota_task(&[]);
        p["fields"]["status"] = json!("whatever");
        assert_eq!(Task::from_projection(&p), None);
    }
}
