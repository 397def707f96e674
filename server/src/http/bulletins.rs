//! Bulletins under `/api/v1/bulletins` and their rank rules under `/api/v1/bulletin-rules`: a
//! draft drawn up from the caller's scope, publishing and re-issuing (frozen and audited), and
//! the workbook of either.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::contract::Binary;
use super::query::Params;
use super::stats::{org_param, today};
use super::{ApiError, AppState, Json, Path, Problem};
use crate::auth::Caller;
use crate::bulletin::{
    self, Bulletin, BulletinError, BulletinPeriod, Publisher, RankRules, Request,
};
use crate::clock;
use crate::scope::Role;
use crate::store::{AuditEntry, Level, OrgUnit, StoredBulletin};

/// The longest reason a re-issue takes.
const REASON_MAX: usize = 500;
/// The most bulletins a list answers.
const LIST_MAX: i64 = 500;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one))
        .routes(routes!(publish))
        .routes(routes!(reissue))
        .routes(routes!(rules, set_rules))
}

/// One published revision, without its figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulletinEntry {
    pub org_id: String,
    pub period: String,
    pub revision: u32,
    pub reason: Option<String>,
    pub published_by: String,
    /// Unix seconds.
    pub published_at: i64,
}

impl From<StoredBulletin> for BulletinEntry {
    fn from(b: StoredBulletin) -> Self {
        BulletinEntry {
            org_id: b.org_id,
            period: b.period,
            revision: b.revision,
            reason: b.reason,
            published_by: b.published_by,
            published_at: b.published_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulletinList {
    /// Newest first: every revision of every bulletin of `org` and the units under it.
    pub items: Vec<BulletinEntry>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// The district, township or street; default the caller's own unit.
    pub org: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReissueRequest {
    pub org: Option<String>,
    /// Why the published figures are replaced; read out with the new revision.
    pub reason: String,
}

impl From<BulletinError> for ApiError {
    fn from(e: BulletinError) -> Self {
        match e {
            BulletinError::Store(e) => e.into(),
            e @ BulletinError::NotABulletinUnit(_) => invalid("org", e.to_string()),
            e @ BulletinError::NotBegun(_) => invalid("period", e.to_string()),
        }
    }
}

fn invalid(path: &str, message: String) -> ApiError {
    ApiError::Invalid {
        detail: message.clone(),
        problems: vec![gridsync_core::schema::Problem::new(
            path,
            gridsync_core::schema::ProblemCode::OutOfRange,
            message,
        )],
    }
}

fn period_param(period: &str) -> Result<BulletinPeriod, ApiError> {
    BulletinPeriod::parse(period).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "the period must be a month (2026-11), a quarter (2026-Q4) or a year (2026), not \
             {period:?}"
        ))
    })
}

/// The draft of `period` for `org`, counted in the caller's scope.
async fn draft(
    state: &AppState,
    caller: &Caller,
    org: &OrgUnit,
    period: &BulletinPeriod,
) -> Result<Bulletin, ApiError> {
    let rules = RankRules::current(state.store.as_ref()).await?;
    let registry = state.registry().await?;
    let request = Request {
        org,
        period,
        rules: &rules,
        today: today(),
        now: clock::now(),
    };
    Ok(bulletin::draft(state.store.as_ref(), &registry, &caller.scope, &request).await?)
}

/// The bulletins published for `org` (default the caller's own unit) and the units under it.
#[utoipa::path(get, path = "/api/v1/bulletins", tag = "bulletins", security(("bearer" = [])),
    params(("org" = Option<String>, Query, description = "org unit id; default the caller's own",
        example = "t1")),
    responses(
        (status = 200, body = BulletinList),
        (status = 404, description = "org is not a unit in the caller's scope",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<BulletinList>, ApiError> {
    let p = Params::parse(&uri, &["org"])?;
    let org = org_param(&state, &caller, p.get("org")).await?;
    let items = state.store.bulletins(&org.path, LIST_MAX).await?;
    Ok(Json(BulletinList {
        items: items.into_iter().map(BulletinEntry::from).collect(),
    }))
}

/// The bulletin of `period` for `org`: its latest published revision, frozen; or, before it is
/// published, a draft counted now in the caller's scope. `format=xlsx` answers the workbook:
/// one sheet per section.
#[utoipa::path(get, path = "/api/v1/bulletins/{period}", tag = "bulletins",
    security(("bearer" = [])),
    params(
        ("period" = String, Path, description = "2026-11, 2026-Q4 or 2026", example = "2026-11"),
        ("org" = Option<String>, Query, description = "the district, a township or a street; default the caller's own unit",
            example = "t1"),
        ("format" = Option<String>, Query, description = "json (default) or xlsx", example = "xlsx"),
    ),
    responses(
        (status = 200, description = "the bulletin as JSON; with format=xlsx its workbook as an attachment",
            content(
                (Bulletin = "application/json"),
                (Binary = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            )),
        (status = 400, description = "a period that does not parse",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "org is not a unit in the caller's scope",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "org is not the district, a township or a street",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(period): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let p = Params::parse(&uri, &["org", "format"])?;
    let period = period_param(&period)?;
    let xlsx = p.one_of("format", &["json", "xlsx"])?.as_deref() == Some("xlsx");
    let org = org_param(&state, &caller, p.get("org")).await?;
    let bulletin = match state.store.bulletin(&org.id, &period.name).await? {
        Some(stored) => Bulletin::from_stored(&stored)?,
        None => draft(&state, &caller, &org, &period).await?,
    };
    if !xlsx {
        return Ok(Json(bulletin).into_response());
    }
    let bytes = bulletin::xlsx::workbook(&bulletin)
        .map_err(|e| ApiError::Internal(format!("bulletin workbook: {e}")))?;
    let disposition = format!(
        "attachment; filename=\"bulletin-{}-{}.xlsx\"",
        org.id, period.name
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::ledger::Format::Xlsx.media_type()),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .map_err(|e| ApiError::Internal(format!("content disposition: {e}")))?,
            ),
        ],
        bytes,
    )
        .into_response())
}

/// Who may publish: district admins, and township or street staff for their own unit (the
/// scope check of `org` keeps them to it).
fn check_publisher(caller: &Caller) -> Result<(), ApiError> {
    caller.require_role(&[Role::DistrictAdmin, Role::TownshipStaff])
}

/// Publishes the bulletin of `period` for `org` now: a first revision, or with `reason` the next.
async fn freeze(
    state: &AppState,
    caller: &Caller,
    org: Option<&str>,
    period: &str,
    reason: Option<&str>,
) -> Result<(StatusCode, Json<Bulletin>), ApiError> {
    check_publisher(caller)?;
    let period = period_param(period)?;
    let org = org_param(state, caller, org).await?;
    let rules = RankRules::current(state.store.as_ref()).await?;
    let registry = state.registry().await?;
    let request = Request {
        org: &org,
        period: &period,
        rules: &rules,
        today: today(),
        now: clock::now(),
    };
    let by = Publisher {
        user: caller.user_id(),
        device: Some(caller.device_id()),
        via: "api",
    };
    let bulletin = bulletin::publish(
        state.store.as_ref(),
        &registry,
        &caller.scope,
        &request,
        by,
        reason,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(bulletin)))
}

/// Publishes the bulletin of `period`: its figures are counted now and frozen, so later syncs
/// of old reports never change what was read out. District admins, and township or street
/// staff for their own unit.
#[utoipa::path(post, path = "/api/v1/bulletins/{period}/publish", tag = "bulletins",
    security(("bearer" = [])),
    params(("period" = String, Path, description = "2026-11, 2026-Q4 or 2026", example = "2026-11")),
    request_body = PublishRequest,
    responses(
        (status = 201, body = Bulletin),
        (status = 400, description = "a period that does not parse",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not a district admin or township staff",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "org is not a unit in the caller's scope",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "already published: re-issue it with a reason",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "a period not begun, or org not the district, a township or a street",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    Path(period): Path<String>,
    Json(req): Json<PublishRequest>,
) -> Result<(StatusCode, Json<Bulletin>), ApiError> {
    freeze(&state, &caller, req.org.as_deref(), &period, None).await
}

/// Re-issues a published bulletin as a new revision with the figures counted now and the
/// reason given; the earlier revisions are kept.
#[utoipa::path(post, path = "/api/v1/bulletins/{period}/reissue", tag = "bulletins",
    security(("bearer" = [])),
    params(("period" = String, Path, description = "2026-11, 2026-Q4 or 2026", example = "2026-11")),
    request_body = ReissueRequest,
    responses(
        (status = 201, body = Bulletin),
        (status = 400, description = "a period that does not parse",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not a district admin or township staff",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "org is not a unit in the caller's scope, or the bulletin was never published",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "an empty or overlong reason, a period not begun, or org not the district, a township or a street",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn reissue(
    State(state): State<AppState>,
    caller: Caller,
    Path(period): Path<String>,
    Json(req): Json<ReissueRequest>,
) -> Result<(StatusCode, Json<Bulletin>), ApiError> {
    check_publisher(&caller)?;
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > REASON_MAX || reason.contains('\0') {
        return Err(invalid(
            "reason",
            format!("a re-issue needs its reason, 1 to {REASON_MAX} characters"),
        ));
    }
    freeze(&state, &caller, req.org.as_deref(), &period, Some(reason)).await
}

/// The rank rules in force: which ranks get a yellow card and which bar a rating of advanced,
/// rural townships and urban streets apart.
#[utoipa::path(get, path = "/api/v1/bulletin-rules", tag = "bulletins",
    security(("bearer" = [])),
    responses((status = 200, body = RankRules)))]
async fn rules(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<RankRules>, ApiError> {
    Ok(Json(RankRules::current(state.store.as_ref()).await?))
}

/// Replaces the rank rules, for the bulletins drawn up from now on; published ones keep the
/// rules they were published with. District admins only. Rules that cannot apply to the
/// district's tree (a card for every township, a bar past the last rank) are refused.
#[utoipa::path(put, path = "/api/v1/bulletin-rules", tag = "bulletins",
    security(("bearer" = [])),
    request_body = RankRules,
    responses(
        (status = 200, body = RankRules),
        (status = 403, description = "not a district admin",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "rules that cannot apply to the district",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn set_rules(
    State(state): State<AppState>,
    caller: Caller,
    Json(rules): Json<RankRules>,
) -> Result<Json<RankRules>, ApiError> {
    caller.require_role(&[Role::DistrictAdmin])?;
    let units = state.store.org_units().await?;
    let count = |level: Level| units.iter().filter(|u| u.level == level).count() as u32;
    let problems = rules.problems(count(Level::Township), count(Level::Street));
    if !problems.is_empty() {
        return Err(ApiError::Invalid {
            detail: "these rank rules cannot apply to the district".into(),
            problems,
        });
    }
    let json = serde_json::to_string(&rules)
        .map_err(|e| ApiError::Internal(format!("rank rules: {e}")))?;
    let at = clock::now();
    state
        .store
        .set_bulletin_rules(
            &json,
            &AuditEntry {
                at,
                user_id: Some(caller.user_id().to_owned()),
                device_id: Some(caller.device_id().to_owned()),
                action: "set_bulletin_rules".into(),
                doc_id: None,
                detail: serde_json::to_value(rules).unwrap_or_default(),
            },
        )
        .await?;
    Ok(Json(rules))
}
