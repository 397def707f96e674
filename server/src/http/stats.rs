//! Statistics under `/api/v1/stats` (canvass, disputes, drug, and any kind by status): query
//! parameters, who may ask, and the `stats` module's figures as JSON. Every figure is counted
//! within the caller's scope.

use axum::extract::State;
use axum::http::Uri;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::query::Params;
use super::{ApiError, AppState, Json, Path, Problem};
use crate::auth::Caller;
use crate::clock;
use crate::scope::{Restricted, Role, Scope};
use crate::stats::{self, CanvassStats, Day, Days, DisputeStats, DrugStats, Group, KindStats};
use crate::store::{Level, OrgUnit};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(canvass))
        .routes(routes!(disputes))
        .routes(routes!(drug))
        .routes(routes!(kind))
}

/// Today as the server's clock says (UTC).
pub fn today() -> Day {
    Day::of_unix(clock::now())
}

/// The org unit named by `org`, or the caller's own; see [`unit_in_scope`].
pub(crate) async fn org_param(
    state: &AppState,
    caller: &Caller,
    org: Option<&str>,
) -> Result<OrgUnit, ApiError> {
    unit_in_scope(state, caller, org.unwrap_or(&caller.user.org_unit_id)).await
}

/// The org unit `id`, when it lies in the caller's scope. Every handler that takes an org unit
/// id from a caller reads it here: a unit outside the scope is answered 404 exactly like a
/// missing one, body included (the id is not repeated), so that ids cannot be probed.
pub(crate) async fn unit_in_scope(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<OrgUnit, ApiError> {
    state
        .store
        .org_unit(id)
        .await?
        .filter(|u| u.path.starts_with(&caller.scope.prefix))
        .ok_or_else(|| ApiError::NotFound("`org` names no org unit in your scope".to_owned()))
}

/// A `YYYY-MM-DD` parameter.
pub(crate) fn day_param(p: &Params, name: &str) -> Result<Option<Day>, ApiError> {
    p.get(name)
        .map(|v| {
            Day::parse(v).ok_or_else(|| {
                ApiError::BadRequest(format!("`{name}` must be a date YYYY-MM-DD, not {v:?}"))
            })
        })
        .transpose()
}

/// `from` and `to`, both included; by default from the first of this month to today.
fn period(p: &Params) -> Result<Days, ApiError> {
    let to = day_param(p, "to")?.unwrap_or_else(today);
    let from = match day_param(p, "from")? {
        Some(from) => from,
        None => {
            let first = format!("{}-01", &to.to_string()[..7]);
            Day::parse(&first).unwrap_or(to)
        }
    };
    if from > to {
        return Err(ApiError::BadRequest(format!(
            "`from` ({from}) is after `to` ({to})"
        )));
    }
    Ok(Days { from, to })
}

/// `group`; by default the level below `org`.
fn group_param(p: &Params, org: &OrgUnit) -> Result<Group, ApiError> {
    Ok(p.one_of("group", &Group::NAMES)?
        .and_then(|g| Group::parse(&g))
        .unwrap_or(Group::below(org.level)))
}

/// Satisfaction and safety indexes per unit with their 95% intervals, interval-aware ranks,
/// the previous period of the same length, and the worries raised most often.
#[utoipa::path(get, path = "/api/v1/stats/canvass", tag = "stats", security(("bearer" = [])),
    params(
        ("from" = Option<String>, Query, description = "YYYY-MM-DD, included; default the first of to's month"),
        ("to" = Option<String>, Query, description = "YYYY-MM-DD, included; default today"),
        ("org" = Option<String>, Query, description = "org unit id; default the caller's own"),
        ("group" = Option<String>, Query, description = "township, street, village or grid; default the level below org"),
    ),
    responses(
        (status = 200, body = CanvassStats),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "org is not a unit in the caller's scope",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn canvass(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<CanvassStats>, ApiError> {
    let p = Params::parse(&uri, &["from", "to", "org", "group"])?;
    let period = period(&p)?;
    let org = org_param(&state, &caller, p.get("org")).await?;
    let group = group_param(&p, &org)?;
    let stats = stats::canvass(
        state.store.as_ref(),
        state.registry().await?.as_ref(),
        &caller.scope,
        &org,
        group,
        period,
    )
    .await?;
    Ok(Json(stats))
}

/// Disputes found in the period, per child of `org` and in total: open by risk and category,
/// status, share resolved within the village, median days to resolution, overdue follow-ups.
#[utoipa::path(get, path = "/api/v1/stats/disputes", tag = "stats", security(("bearer" = [])),
    params(
        ("from" = Option<String>, Query, description = "YYYY-MM-DD, included; default the first of to's month"),
        ("to" = Option<String>, Query, description = "YYYY-MM-DD, included; default today"),
        ("org" = Option<String>, Query, description = "org unit id; default the caller's own"),
    ),
    responses(
        (status = 200, body = DisputeStats),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "org is not a unit in the caller's scope",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn disputes(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<DisputeStats>, ApiError> {
    let p = Params::parse(&uri, &["from", "to", "org"])?;
    let period = period(&p)?;
    let org = org_param(&state, &caller, p.get("org")).await?;
    let stats = stats::disputes(
        state.store.as_ref(),
        state.registry().await?.as_ref(),
        &caller.scope,
        &org,
        period,
        today(),
    )
    .await?;
    Ok(Json(stats))
}

/// Drug-control cases as of today per township or street: active, relapsed, visits overdue,
/// tests due. Counts only, for drug-control officers, admins and township or street staff;
/// grid workers and village cadres get 403. Township and street staff, who may not see the
/// cases, get their township's (or street's) counts only: a finer unit is refused
/// (`unit_too_fine`), and counts from 1 to 4 are `null` with `suppressed_below: 5`.
#[utoipa::path(get, path = "/api/v1/stats/drug", tag = "stats", security(("bearer" = [])),
    params(("org" = Option<String>, Query, description = "org unit id; default the caller's own")),
    responses(
        (status = 200, body = DrugStats),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden` for grid workers and village cadres; \
            `unit_too_fine` for township or street staff asking below their township",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "org is not a unit in the caller's scope",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn drug(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<DrugStats>, ApiError> {
    caller.require_role(&[
        Role::TownshipStaff,
        Role::DrugControlOfficer,
        Role::DistrictAdmin,
    ])?;
    let p = Params::parse(&uri, &["org"])?;
    let org = org_param(&state, &caller, p.get("org")).await?;
    // Whoever may read every case of their scope gets exact counts. Township and street staff
    // may read none, but oversee the work (DOMAIN.md: coverage per township): they count every
    // case of their township, only per township, with small counts withheld, since a count of a
    // village or a grid, or a count of one, can point at a person. They see one unit, their
    // own, so no count can be worked out from the others and the total.
    let exact = caller.scope.restricted == Restricted::All;
    if !exact && !matches!(org.level, Level::Township | Level::Street) {
        return Err(ApiError::UnitTooFine(format!(
            "drug-control counts are given to your role per township or street only, not per {}",
            org.level.as_str()
        )));
    }
    let scope = Scope {
        restricted: Restricted::All,
        ..caller.scope.clone()
    };
    let stats = stats::drug(
        state.store.as_ref(),
        &scope,
        &org,
        today(),
        (!exact).then_some(stats::SMALL_CELL),
    )
    .await?;
    Ok(Json(stats))
}

/// The reports of any kind, built in or published, in the period per unit of `group` and in
/// total: how many, and how many with each choice of the kind's status field (every choice of
/// every version, 0 when none). Restricted kinds count only the reports the caller may see.
#[utoipa::path(get, path = "/api/v1/stats/kinds/{kind}", tag = "stats", security(("bearer" = [])),
    params(
        ("kind" = String, Path, description = "a report kind with a version in force, retired ones included"),
        ("from" = Option<String>, Query, description = "YYYY-MM-DD, included; default the first of to's month"),
        ("to" = Option<String>, Query, description = "YYYY-MM-DD, included; default today"),
        ("org" = Option<String>, Query, description = "org unit id; default the caller's own"),
        ("group" = Option<String>, Query, description = "township, street, village or grid; default the level below org"),
    ),
    responses(
        (status = 200, body = KindStats),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such report kind, or org is not a unit in the caller's scope",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn kind(
    State(state): State<AppState>,
    caller: Caller,
    Path(kind): Path<String>,
    uri: Uri,
) -> Result<Json<KindStats>, ApiError> {
    let p = Params::parse(&uri, &["from", "to", "org", "group"])?;
    let period = period(&p)?;
    let org = org_param(&state, &caller, p.get("org")).await?;
    let group = group_param(&p, &org)?;
    let span = state
        .registry()
        .await?
        .span(&kind)
        .ok_or_else(|| ApiError::NotFound(format!("there is no report kind {kind:?}")))?;
    let stats = stats::kind(
        state.store.as_ref(),
        &span,
        &caller.scope,
        &org,
        group,
        period,
    )
    .await?;
    Ok(Json(stats))
}
