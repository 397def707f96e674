//! Tasks under `/api/v1/tasks` and the weekly dispatch board under `/api/v1/dispatch`: request
//! checks and who may ask; the `tasks` module writes and counts.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use gridsync_core::schema::{Problem as FieldProblem, ProblemCode};
use gridsync_core::task::{self, Goal};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::query::Params;
use super::stats::{day_param, org_param, today, unit_in_scope};
use super::visible::visible_report;
use super::{ApiError, AppState, Json, Problem};
use crate::auth::Caller;
use crate::clock;
use crate::scope::{Restricted, Role};
use crate::stats::{self, Day};
use crate::store::{Level, OrgUnit, Writer};
use crate::tasks::{self, Board, Every, NewTask, TaskError, TaskView};

/// The longest a recurring task may run, in days.
const MAX_SPAN_DAYS: i64 = 366;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(dispatch))
}

/// How a task recurs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    /// `week` or `month`.
    #[schema(example = "month")]
    pub every: String,
    /// The last day an occurrence may fall on, `YYYY-MM-DD`, at most a year after `due`.
    #[schema(example = "2027-06-25")]
    pub until: String,
}

/// A task to create: for one grid, for every grid of a unit (`org`), or for the grid of the
/// dispute or case it names.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "title": "每网格完成30户民调", "due": "2026-12-25", "goal": "canvass_quota", "quota": 30,
    "org": "t1", "repeat": { "every": "month", "until": "2027-05-25" }
}))]
pub struct NewTaskRequest {
    pub title: String,
    /// `YYYY-MM-DD`, today or later.
    pub due: String,
    /// `canvass_quota`, `dispute_follow_up`, `drug_visit` or `free`.
    pub goal: String,
    /// Interviews, for `canvass_quota`: 1 to 10,000.
    pub quota: Option<u32>,
    /// The dispute check to follow up, or the drug-control case to visit.
    pub report: Option<String>,
    /// One grid.
    pub grid: Option<String>,
    /// Every grid under this unit; default the caller's own unit when neither is given.
    pub org: Option<String>,
    /// A grid worker of the grid (one grid only).
    pub assignee: Option<String>,
    pub repeat: Option<Repeat>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskList {
    pub items: Vec<TaskView>,
}

fn problem(path: &str, message: String) -> FieldProblem {
    FieldProblem::new(path, ProblemCode::OutOfRange, message)
}

fn invalid(problems: Vec<FieldProblem>) -> ApiError {
    ApiError::Invalid {
        detail: problems
            .iter()
            .map(|p| p.message.clone())
            .collect::<Vec<_>>()
            .join("; "),
        problems,
    }
}

impl From<TaskError> for ApiError {
    fn from(e: TaskError) -> Self {
        match e {
            TaskError::Store(e) => e.into(),
            TaskError::Refused(code, reason) if code == "out_of_scope" => {
                ApiError::OutOfScope(reason)
            }
            TaskError::Refused(code, reason) => ApiError::Invalid {
                detail: format!("{code}: {reason}"),
                problems: Vec::new(),
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// The grids under `org`, in path order.
async fn grids_under(state: &AppState, org: &OrgUnit) -> Result<Vec<String>, ApiError> {
    let mut grids: Vec<OrgUnit> = state
        .store
        .org_units()
        .await?
        .into_iter()
        .filter(|u| u.level == Level::Grid && u.path.starts_with(&org.path))
        .collect();
    grids.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(grids.into_iter().map(|u| u.id).collect())
}

/// Creates tasks: one per grid (one grid, or every grid under `org`) and occurrence (with
/// `repeat`). A follow-up goes to the dispute's grid and a visit to the case's grid and worker,
/// restricted like the case. Village cadres, township staff, drug-control officers and admins,
/// within their scope; all or nothing is checked before anything is written.
#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks", security(("bearer" = [])),
    request_body = NewTaskRequest,
    responses(
        (status = 201, body = TaskList),
        (status = 403, description = "a grid worker, or a grid outside the caller's scope",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "the unit, the dispute or the case is not in the caller's scope",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "a due date in the past, a quota of 0, an unknown goal, too many tasks",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<NewTaskRequest>,
) -> Result<(StatusCode, Json<TaskList>), ApiError> {
    caller.require_role(&[
        Role::VillageCadre,
        Role::TownshipStaff,
        Role::DrugControlOfficer,
        Role::DistrictAdmin,
    ])?;
    let now = clock::now();
    let today = Day::of_unix(now);
    let mut problems = Vec::new();
    let title = req.title.trim();
    if title.is_empty() || title.chars().count() > 200 || title.contains('\0') {
        problems.push(problem("title", "a title of 1 to 200 characters".into()));
    }
    let due = match Day::parse(&req.due) {
        Some(d) if d < today => {
            problems.push(problem(
                "due",
                format!("{d} is past: a task is due today or later"),
            ));
            None
        }
        Some(d) => Some(d),
        None => {
            problems.push(problem(
                "due",
                format!("{:?} is not a date YYYY-MM-DD", req.due),
            ));
            None
        }
    };
    let wants_report = matches!(req.goal.as_str(), "dispute_follow_up" | "drug_visit");
    if wants_report != req.report.is_some() {
        problems.push(problem(
            "report",
            "a follow-up or a visit names its dispute or case in `report`; other goals name none"
                .into(),
        ));
    }
    match req.goal.as_str() {
        "canvass_quota" => {
            if !req.quota.is_some_and(|q| (1..=10_000).contains(&q)) {
                problems.push(problem("quota", "a quota of 1 to 10,000 interviews".into()));
            }
        }
        "dispute_follow_up" | "drug_visit" | "free" => {
            if req.quota.is_some() {
                problems.push(problem("quota", "only a canvass quota has a quota".into()));
            }
        }
        other => problems.push(problem(
            "goal",
            format!("{other:?} is not canvass_quota, dispute_follow_up, drug_visit or free"),
        )),
    }
    if wants_report && (req.grid.is_some() || req.org.is_some()) {
        problems.push(problem(
            "grid",
            "a follow-up or a visit goes to the grid of its dispute or case".into(),
        ));
    }
    if req.grid.is_some() && req.org.is_some() {
        problems.push(problem("org", "name a grid or a unit, not both".into()));
    }
    let repeat = match &req.repeat {
        None => None,
        Some(r) => {
            let every = match r.every.as_str() {
                "week" => Some(Every::Week),
                "month" => Some(Every::Month),
                other => {
                    problems.push(problem(
                        "repeat.every",
                        format!("{other:?} is not week or month"),
                    ));
                    None
                }
            };
            let until = Day::parse(&r.until);
            match (until, due) {
                (None, _) => {
                    problems.push(problem("repeat.until", "a date YYYY-MM-DD".into()));
                }
                (Some(u), Some(d)) if u < d || u > d.plus(MAX_SPAN_DAYS) => problems.push(problem(
                    "repeat.until",
                    format!("from the due date to a year after it, not {u}"),
                )),
                _ => {}
            }
            every.zip(until)
        }
    };
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let due = due.ok_or_else(|| ApiError::Internal("a checked due date is missing".into()))?;
    // Where the tasks go, and what completes them.
    let (kind, goal, grids, assignee) = match req.goal.as_str() {
        "dispute_follow_up" | "drug_visit" => {
            let id = req.report.as_deref().unwrap_or_default();
            let row = visible_report(&state, &caller, id).await?;
            let (want, kind) = if req.goal == "drug_visit" {
                (task::DRUG_CASE, task::DRUG_VISIT_TASK)
            } else {
                (task::DISPUTE, task::TASK)
            };
            if row.kind != want {
                return Err(invalid(vec![problem(
                    "report",
                    format!("report {id} is a {}, not a {want}", row.kind),
                )]));
            }
            let goal = if kind == task::DRUG_VISIT_TASK {
                Goal::DrugVisit(row.id)
            } else {
                Goal::DisputeFollowUp(row.id)
            };
            // A visit goes to the case's worker, and is restricted like the case.
            let assignee = if kind == task::DRUG_VISIT_TASK {
                row.assigned_to.clone()
            } else {
                req.assignee.clone()
            };
            (kind, goal, vec![row.grid_id], assignee)
        }
        other => {
            let goal = if other == "canvass_quota" {
                Goal::CanvassQuota(req.quota.unwrap_or(1))
            } else {
                Goal::Free
            };
            let grids = match &req.grid {
                Some(grid) => {
                    let unit = unit_in_scope(&state, &caller, grid).await?;
                    if unit.level != Level::Grid {
                        return Err(invalid(vec![problem(
                            "grid",
                            format!(
                                "{grid} is a {}, not a grid: name it as `org`",
                                unit.level.as_str()
                            ),
                        )]));
                    }
                    vec![unit.id]
                }
                None => {
                    grids_under(
                        &state,
                        &org_param(&state, &caller, req.org.as_deref()).await?,
                    )
                    .await?
                }
            };
            (task::TASK, goal, grids, req.assignee.clone())
        }
    };
    if let Some(user) = &assignee
        && kind == task::TASK
    {
        let placed = state
            .store
            .user(user)
            .await?
            .filter(|u| u.role == Role::GridWorker);
        let grid_path = match grids.as_slice() {
            [grid] => state.store.org_unit(grid).await?.map(|u| u.path),
            _ => None,
        };
        let fits = match (&placed, &grid_path) {
            (Some(u), Some(path)) => state
                .store
                .org_unit(&u.org_unit_id)
                .await?
                .is_some_and(|unit| unit.path == *path),
            _ => false,
        };
        if !fits {
            return Err(invalid(vec![problem(
                "assignee",
                format!("{user} is not a grid worker of the one grid the task goes to"),
            )]));
        }
    }
    let days = match repeat {
        Some((every, until)) => tasks::occurrences(due, every, until),
        None => vec![due],
    };
    if days.len() > tasks::MAX_OCCURRENCES {
        return Err(invalid(vec![problem(
            "repeat",
            format!("at most {} occurrences", tasks::MAX_OCCURRENCES),
        )]));
    }
    if grids.is_empty() || grids.len() * days.len() > tasks::MAX_CREATED {
        return Err(invalid(vec![problem(
            "org",
            format!(
                "{} grids × {} occurrences: one request creates 1 to {} tasks",
                grids.len(),
                days.len(),
                tasks::MAX_CREATED
            ),
        )]));
    }
    let series = (days.len() > 1).then(|| uuid::Uuid::new_v4().to_string());
    let new: Vec<NewTask> = grids
        .iter()
        .flat_map(|grid| {
            days.iter().map(|day| NewTask {
                kind,
                grid: grid.clone(),
                fields: tasks::fields(title, *day, &goal, assignee.as_deref(), series.as_deref()),
            })
        })
        .collect();
    let writer = Writer::office(caller.user_id(), &caller.scope, now);
    let items = tasks::create(state.store.as_ref(), &state.ingest, &writer, new, today).await?;
    Ok((StatusCode::CREATED, Json(TaskList { items })))
}

/// The tasks under `org` (default the caller's own unit) in the caller's scope, by due date,
/// with their progress counted from the reports linked to them.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", security(("bearer" = [])),
    params(
        ("org" = Option<String>, Query, description = "org unit id; default the caller's own", example = "t1"),
        ("state" = Option<String>, Query, description = "open (default), overdue, done or all", example = "open"),
    ),
    responses(
        (status = 200, body = TaskList),
        (status = 404, description = "org is not a unit in the caller's scope",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<TaskList>, ApiError> {
    let p = Params::parse(&uri, &["org", "state"])?;
    let wanted = p
        .one_of("state", &["open", "overdue", "done", "all"])?
        .unwrap_or_else(|| "open".to_owned());
    let org = org_param(&state, &caller, p.get("org")).await?;
    let today = today();
    let items = tasks::in_scope(state.store.as_ref(), &caller.scope, &org)
        .await?
        .iter()
        .map(|p| TaskView::of(&p.kind, &p.task, today))
        .filter(|t| match wanted.as_str() {
            "open" => !t.done && t.status == "open",
            "overdue" => t.overdue,
            "done" => t.done,
            _ => true,
        })
        .collect();
    Ok(Json(TaskList { items }))
}

/// The weekly dispatch board (一周一调度) per child of `org` and in total: tasks due in the week
/// and done, open and overdue; open disputes past their follow-up date; drug-control cases
/// behind on visits (officers and admins exactly, township staff per township with small
/// counts withheld, nobody else); and the open tasks due by the week's end.
#[utoipa::path(get, path = "/api/v1/dispatch", tag = "tasks", security(("bearer" = [])),
    params(
        ("org" = Option<String>, Query, description = "org unit id; default the caller's own", example = "t1"),
        ("week" = Option<String>, Query, description = "YYYY-MM-DD, any day of the week; default today", example = "2026-12-07"),
    ),
    responses(
        (status = 200, body = Board),
        (status = 404, description = "org is not a unit in the caller's scope",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn dispatch(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<Board>, ApiError> {
    let p = Params::parse(&uri, &["org", "week"])?;
    let org = org_param(&state, &caller, p.get("org")).await?;
    let today = today();
    let week = day_param(&p, "week")?.unwrap_or(today);
    // The same rule as `GET /api/v1/stats/drug`.
    let drug = match (caller.role(), caller.scope.restricted) {
        (_, Restricted::All) => Some(None),
        (Role::TownshipStaff, _) if matches!(org.level, Level::Township | Level::Street) => {
            Some(Some(stats::SMALL_CELL))
        }
        _ => None,
    };
    let registry = state.registry().await?;
    let board = tasks::board(
        state.store.as_ref(),
        &registry,
        &caller.scope,
        &org,
        week,
        today,
        drug,
    )
    .await?;
    Ok(Json(board))
}
