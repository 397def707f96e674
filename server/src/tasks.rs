//! Tasks (README "Tasks and the weekly dispatch"): what an office asks of its grids, written as
//! documents of the task kinds through `sync::Ingest` like any office edit, so they reach phones
//! by sync; read back in the caller's scope with their progress; and the weekly dispatch board
//! (一周一调度) per unit down the tree.

use std::collections::HashMap;

use gridsync_core::DocId;
use gridsync_core::protocol::{Push, PushDoc, PushOutcome};
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_core::schema::Registry;
use gridsync_core::task::{self, Goal, Status, Task};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::scope::{Restricted, Scope};
use crate::stats::{self, Day, Days};
use crate::store::facts::LedgerQuery;
use crate::store::{Level, OrgUnit, Store, StoreError, Writer};
use crate::sync::Ingest;

/// The most tasks one request creates: a township's grids for a year of months fits.
pub const MAX_CREATED: usize = 1_000;
/// The most occurrences of a recurring task.
pub const MAX_OCCURRENCES: usize = 53;
/// Tasks pushed per ingest batch.
const BATCH: usize = 100;
/// Tasks read per page when listing.
const PAGE: i64 = 500;

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a task document could not be written: {0}")]
    Document(#[from] gridsync_core::Error),
    /// Ingest refused a task the office wrote: its code and reason.
    #[error("{0}: {1}")]
    Refused(String, String),
}

pub type Result<T, E = TaskError> = std::result::Result<T, E>;

/// A task as the API answers it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TaskView {
    pub id: String,
    /// `task`, or `drug_visit_task` (restricted like its case).
    pub kind: String,
    pub grid_id: String,
    pub title: String,
    pub due: String,
    /// `canvass_quota`, `dispute_follow_up`, `drug_visit` or `free`.
    pub goal: String,
    pub quota: Option<u32>,
    /// The dispute to follow up or the case to visit.
    pub target: Option<String>,
    pub assignee: Option<String>,
    /// `open`, `done` or `cancelled` as set; see `done` for a goal reached.
    pub status: String,
    pub done_note: Option<String>,
    /// Reports linked to the task, in the order linked.
    pub linked: Vec<String>,
    /// Progress: how much of `needed` is done.
    pub progress: u32,
    pub needed: u32,
    /// Marked done or its goal reached.
    pub done: bool,
    /// Open and due before today.
    pub overdue: bool,
    pub series: Option<String>,
}

impl TaskView {
    pub fn of(kind: &str, t: &Task, today: Day) -> TaskView {
        let (progress, needed) = t.progress();
        let (quota, target) = match &t.goal {
            Goal::CanvassQuota(q) => (Some(*q), None),
            Goal::DisputeFollowUp(r) | Goal::DrugVisit(r) => (None, Some(r.to_string())),
            Goal::Free => (None, None),
        };
        TaskView {
            id: t.id.to_string(),
            kind: kind.to_owned(),
            grid_id: t.grid.clone(),
            title: t.title.clone(),
            due: t.due.clone(),
            goal: t.goal.as_str().to_owned(),
            quota,
            target,
            assignee: t.assignee.clone(),
            status: t.status.as_str().to_owned(),
            done_note: t.done_note.clone(),
            linked: t.linked.iter().map(ToString::to_string).collect(),
            progress,
            needed,
            done: t.is_done(),
            overdue: t.is_open() && Day::parse(&t.due).is_some_and(|d| d < today),
            series: t.series.clone(),
        }
    }
}

/// One task to write: its kind, grid, due day and fields.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub kind: &'static str,
    pub grid: String,
    pub fields: Map<String, Value>,
}

/// The days of a task due on `first` and then every `every` (week or month) up to `until`.
pub fn occurrences(first: Day, every: Every, until: Day) -> Vec<Day> {
    let mut days = Vec::new();
    let mut n = 0;
    while days.len() < MAX_OCCURRENCES + 1 {
        let Some(day) = every.nth(first, n) else {
            break;
        };
        if day > until {
            break;
        }
        days.push(day);
        n += 1;
    }
    days
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Every {
    Week,
    Month,
}

impl Every {
    /// The `n`th occurrence after `first`; a month's day past the month's end falls on its last
    /// day (the 31st of a month becomes the 30th of April).
    fn nth(self, first: Day, n: i64) -> Option<Day> {
        match self {
            Every::Week => Some(first.plus(7 * n)),
            Every::Month => {
                let s = first.to_string();
                let (y, m, d): (i64, i64, u32) = (
                    s[..4].parse().ok()?,
                    s[5..7].parse().ok()?,
                    s[8..].parse().ok()?,
                );
                let months = y * 12 + m - 1 + n;
                (0..4).find_map(|back| {
                    Day::parse(&format!(
                        "{:04}-{:02}-{:02}",
                        months / 12,
                        months % 12 + 1,
                        d - back
                    ))
                })
            }
        }
    }
}

/// Writes `tasks` as documents created by `writer`, through ingest like any office edit; the
/// tasks written. Nothing is written unless every batch is acknowledged up to the failing one:
/// a refusal names the code ingest gave.
pub async fn create(
    store: &dyn Store,
    ingest: &Ingest,
    writer: &Writer,
    tasks: Vec<NewTask>,
    today: Day,
) -> Result<Vec<TaskView>> {
    let by = Editor::new(writer.user_id.as_str(), writer.now);
    let mut written = Vec::with_capacity(tasks.len());
    for batch in tasks.chunks(BATCH) {
        let mut docs = Vec::with_capacity(batch.len());
        for t in batch {
            let mut doc = ReportDoc::create(DocId::new_v4(), t.kind, 1, &t.grid, &by)?;
            doc.set_fields(&t.fields, &by)?;
            docs.push((t.kind, doc));
        }
        let push = Push {
            docs: docs
                .iter_mut()
                .map(|(_, d)| PushDoc {
                    doc: d.id(),
                    changes: d.changes_since(&[]),
                })
                .collect(),
        };
        let result = ingest
            .push(store, writer, &push)
            .await
            .map_err(TaskError::Store)?;
        for (outcome, (kind, doc)) in result.docs.into_iter().zip(&docs) {
            match outcome.outcome {
                PushOutcome::Acked { .. } => {
                    if let Some(t) = Task::from_projection(&doc.to_json()?) {
                        written.push(TaskView::of(kind, &t, today));
                    }
                }
                PushOutcome::Rejected { code, reason } | PushOutcome::Held { code, reason } => {
                    return Err(TaskError::Refused(code, reason));
                }
                PushOutcome::MissingDeps { .. } => {
                    return Err(TaskError::Refused(
                        "missing_deps".into(),
                        "a new task named changes it does not hold".into(),
                    ));
                }
            }
        }
    }
    Ok(written)
}

/// A task and where it lies.
#[derive(Debug, Clone)]
pub struct Placed {
    pub kind: String,
    pub org_path: String,
    pub task: Task,
}

/// Every task under `org` in `scope`, drug-control visits only where the scope holds the case.
pub async fn in_scope(store: &dyn Store, scope: &Scope, org: &OrgUnit) -> Result<Vec<Placed>> {
    let mut out = Vec::new();
    for kind in [task::TASK, task::DRUG_VISIT_TASK] {
        let mut after = None;
        loop {
            let page = store
                .ledger_page(
                    scope,
                    &LedgerQuery {
                        kind: kind.to_owned(),
                        org_path: org.path.clone(),
                        from: None,
                        to: None,
                        after: after.clone(),
                        limit: PAGE,
                    },
                )
                .await?;
            after = page.last().map(|r| r.id.to_string());
            let full = page.len() as i64 == PAGE;
            out.extend(page.into_iter().filter_map(|row| {
                Some(Placed {
                    task: Task::from_projection(&row.projection)?,
                    kind: row.kind,
                    org_path: row.org_path,
                })
            }));
            if !full {
                break;
            }
        }
    }
    out.sort_by(|a, b| (&a.task.due, a.task.id).cmp(&(&b.task.due, b.task.id)));
    Ok(out)
}

/// The week (Monday to Sunday) that holds `day`.
pub fn week_of(day: Day) -> Days {
    // 1970-01-01 was a Thursday: three days after a Monday.
    let monday = day.plus(-(day.0 + 3).rem_euclid(7));
    Days {
        from: monday,
        to: monday.plus(6),
    }
}

/// One row of the dispatch board.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BoardUnit {
    pub org_id: String,
    pub name: String,
    pub level: Level,
    /// Tasks due in the week, not cancelled.
    pub due_this_week: i64,
    /// Of those, done.
    pub done_this_week: i64,
    /// Open tasks due before today.
    pub overdue: i64,
    /// Open tasks in all.
    pub open: i64,
    /// Open disputes whose follow-up date has passed, whenever they were found.
    pub overdue_dispute_follow_ups: i64,
    /// Active drug-control cases behind on their visits; `null` for roles that get no
    /// drug-control counts for this unit, and below 5 withheld for township staff.
    pub drug_visits_overdue: Option<i64>,
}

/// The weekly dispatch board: per child of `org` and in total.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Board {
    pub week_from: String,
    pub week_to: String,
    pub today: String,
    pub units: Vec<BoardUnit>,
    pub total: BoardUnit,
    /// The open tasks due before the week ends, oldest due first.
    pub due: Vec<TaskView>,
}

/// The board of the week holding `week_day`, counted in `scope`. `drug` says whether the scope's
/// role gets exact drug-control counts (`Some(None)`), counts with small cells withheld per
/// township (`Some(Some(5))`), or none (`None`).
pub async fn board(
    store: &dyn Store,
    registry: &Registry,
    scope: &Scope,
    org: &OrgUnit,
    week_day: Day,
    today: Day,
    drug: Option<Option<i64>>,
) -> Result<Board> {
    let week = week_of(week_day);
    let tasks = in_scope(store, scope, org).await?;
    let mut children: Vec<OrgUnit> = store
        .org_units()
        .await?
        .into_iter()
        .filter(|u| u.parent_id.as_deref() == Some(org.id.as_str()))
        .collect();
    children.sort_by(|a, b| a.path.cmp(&b.path));
    let all_time = Days {
        from: Day::parse("2000-01-01").unwrap_or(Day(10_957)),
        to: today,
    };
    let disputes = stats::disputes(store, registry, scope, org, all_time, today).await?;
    let overdue_follow_ups: HashMap<String, i64> = disputes
        .units
        .iter()
        .chain([&disputes.total])
        .map(|u| (u.org_id.clone(), u.overdue_follow_ups))
        .collect();
    let drug_counts = match drug {
        Some(suppress) => {
            let all_cases = Scope {
                restricted: Restricted::All,
                ..scope.clone()
            };
            let d = stats::drug(store, &all_cases, org, today, suppress).await?;
            d.units
                .into_iter()
                .chain([d.total])
                .map(|u| (u.org_id, u.visits_overdue))
                .collect()
        }
        None => HashMap::new(),
    };
    let row = |unit: &OrgUnit| {
        let mut r = BoardUnit {
            org_id: unit.id.clone(),
            name: unit.name.clone(),
            level: unit.level,
            due_this_week: 0,
            done_this_week: 0,
            overdue: 0,
            open: 0,
            overdue_dispute_follow_ups: overdue_follow_ups.get(&unit.id).copied().unwrap_or(0),
            drug_visits_overdue: drug_counts.get(&unit.id).copied().flatten(),
        };
        for p in tasks.iter().filter(|p| p.org_path.starts_with(&unit.path)) {
            let t = &p.task;
            let due = Day::parse(&t.due);
            if t.status != Status::Cancelled && due.is_some_and(|d| d >= week.from && d <= week.to)
            {
                r.due_this_week += 1;
                r.done_this_week += i64::from(t.is_done());
            }
            if t.is_open() {
                r.open += 1;
                r.overdue += i64::from(due.is_some_and(|d| d < today));
            }
        }
        r
    };
    Ok(Board {
        week_from: week.from.to_string(),
        week_to: week.to.to_string(),
        today: today.to_string(),
        units: children.iter().map(row).collect(),
        total: row(org),
        due: tasks
            .iter()
            .filter(|p| p.task.is_open() && Day::parse(&p.task.due).is_some_and(|d| d <= week.to))
            .map(|p| TaskView::of(&p.kind, &p.task, today))
            .collect(),
    })
}

/// The fields of a new task.
pub fn fields(
    title: &str,
    due: Day,
    goal: &Goal,
    assignee: Option<&str>,
    series: Option<&str>,
) -> Map<String, Value> {
    let mut f = Map::new();
    f.insert("title".into(), json!(title));
    f.insert("due".into(), json!(due.to_string()));
    f.insert("status".into(), json!("open"));
    match goal {
        Goal::CanvassQuota(q) => {
            f.insert("goal".into(), json!("canvass_quota"));
            f.insert("quota".into(), json!(q));
        }
        Goal::DisputeFollowUp(r) => {
            f.insert("goal".into(), json!("dispute_follow_up"));
            f.insert("report".into(), json!(r.to_string()));
        }
        Goal::DrugVisit(c) => {
            f.insert("case".into(), json!(c.to_string()));
        }
        Goal::Free => {
            f.insert("goal".into(), json!("free"));
        }
    }
    if let Some(a) = assignee {
        f.insert("assignee".into(), json!(a));
    }
    if let Some(s) = series {
        f.insert("series".into(), json!(s));
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> Day {
        Day::parse(s).expect(s)
    }

    #[test]
    fn a_week_runs_monday_to_sunday() {
        // 2026-12-05 is a Saturday.
        let w = week_of(day("2026-12-05"));
        assert_eq!(
            (w.from.to_string(), w.to.to_string()),
            ("2026-11-30".into(), "2026-12-06".into())
        );
        assert_eq!(week_of(day("2026-11-30")), w);
        assert_eq!(week_of(day("2026-12-07")).from, day("2026-12-07"));
    }

    #[test]
    fn monthly_occurrences_keep_their_day_or_the_months_last() {
        let days: Vec<String> = occurrences(day("2026-01-31"), Every::Month, day("2026-05-01"))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            days,
            ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]
        );
        let weeks = occurrences(day("2026-12-25"), Every::Week, day("2027-01-08"));
        assert_eq!(weeks.len(), 3);
        assert_eq!(
            occurrences(day("2026-12-25"), Every::Week, day("2026-12-24")),
            []
        );
        assert_eq!(
            occurrences(day("2026-01-01"), Every::Week, day("2030-01-01")).len(),
            MAX_OCCURRENCES + 1,
            "counted one past the most, so the caller can refuse"
        );
    }
}
