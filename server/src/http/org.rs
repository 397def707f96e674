//! The org tree under `/api/v1/org`: reading the part of it a caller sits in, and (district
//! admins only) adding and renaming units. Units are never moved: see [`update_org_unit`].

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::validate::check_name;
use super::{ApiError, AppState, Json, Path, Problem};
use crate::auth::Caller;
use crate::clock;
use crate::scope::Role;
use crate::store::{AuditEntry, Level, OrgUnit};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(org_tree, create_org_unit))
        .routes(routes!(update_org_unit))
}

/// Longest org unit id.
pub const MAX_ID_LEN: usize = 64;
/// Longest org unit name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrgUnitInfo {
    pub id: String,
    /// `null` for the district.
    pub parent_id: Option<String>,
    pub level: Level,
    pub name: String,
    /// Ids from the district down, `/`-separated with a trailing `/`.
    pub path: String,
}

impl From<OrgUnit> for OrgUnitInfo {
    fn from(u: OrgUnit) -> Self {
        OrgUnitInfo {
            id: u.id,
            parent_id: u.parent_id,
            level: u.level,
            name: u.name,
            path: u.path,
        }
    }
}

/// An ancestor of the caller's unit, named for a breadcrumb.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrgCrumb {
    pub id: String,
    pub level: Level,
    pub name: String,
}

/// The part of the tree a caller may read, as a flat list a tree view builds itself from.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "root": "shiqiao",
    "ancestors": [
        { "id": "pingan", "level": "district", "name": "平安区" },
        { "id": "qingshan", "level": "township", "name": "青山镇" },
    ],
    "units": [
        { "id": "shiqiao", "parent_id": "qingshan", "level": "village", "name": "石桥村", "path": "/pingan/qingshan/shiqiao/" },
        { "id": "shiqiao-1", "parent_id": "shiqiao", "level": "grid", "name": "石桥村第1网格", "path": "/pingan/qingshan/shiqiao/shiqiao-1/" },
    ],
}))]
pub struct OrgTree {
    /// The caller's own unit, the top of `units`.
    pub root: String,
    /// The units above the caller's, from the district down (empty for the district).
    pub ancestors: Vec<OrgCrumb>,
    /// The caller's unit and every unit under it, ordered by path, so that each parent comes
    /// before its children. A district admin gets the whole tree.
    pub units: Vec<OrgUnitInfo>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrgUnit {
    /// 1 to 64 of `a-z 0-9 -`; unique in the whole tree, never changes.
    #[schema(pattern = "^[a-z0-9-]{1,64}$", example = "shiqiao-4")]
    pub id: String,
    #[schema(pattern = "^[a-z0-9-]{1,64}$", example = "shiqiao")]
    pub parent_id: String,
    /// One tier below the parent's: district → township | street → village | community → grid.
    pub level: Level,
    #[schema(min_length = 1, max_length = 100, example = "石桥村第四网格")]
    pub name: String,
}

impl NewOrgUnit {
    /// The checks that need nothing but the request itself, made before any lookup.
    pub fn check(&self) -> Result<(), ApiError> {
        if !valid_unit_id(&self.id) {
            return Err(ApiError::BadRequest(format!(
                "id must be 1 to {MAX_ID_LEN} characters of a-z, 0-9 and '-': org paths are built \
                 from ids and matched as prefixes, so '/', '%', '_' and '\\' cannot appear, \
                 and ids must not differ only in case"
            )));
        }
        check_name("name", &self.name, MAX_NAME_CHARS)
    }
}

/// A rename. `parent_id` and `level` may be sent (a console sending the whole unit back) but
/// only with their current values: units are never moved or re-levelled.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "name": "石桥村第一网格" }))]
pub struct OrgUnitPatch {
    #[schema(min_length = 1, max_length = 100, example = "石桥村第一网格")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub parent_id: Option<Option<String>>,
    pub level: Option<Level>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// The part of the org tree the caller sits in: their unit and everything below it, plus the
/// names of the units above for breadcrumbs. Every role may read it.
#[utoipa::path(get, path = "/api/v1/org", tag = "org", security(("bearer" = [])),
    responses(
        (status = 200, body = OrgTree),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn org_tree(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<OrgTree>, ApiError> {
    let everything = caller.role() == Role::DistrictAdmin;
    Ok(Json(
        tree_of(&state, &caller.user.org_unit_id, everything).await?,
    ))
}

/// Unit `unit_id` and everything below it (the whole district when `everything`), plus the
/// names of the units above for breadcrumbs.
pub(super) async fn tree_of(
    state: &AppState,
    unit_id: &str,
    everything: bool,
) -> Result<OrgTree, ApiError> {
    // The tree of one district is small (thousands of units at most): filtered here.
    let all = state.store.org_units().await?;
    let by_id: HashMap<&str, &OrgUnit> = all.iter().map(|u| (u.id.as_str(), u)).collect();
    let own = by_id
        .get(unit_id)
        .copied()
        .cloned()
        .ok_or_else(|| ApiError::Internal(format!("missing org unit {unit_id}")))?;
    let ancestors = own
        .path
        .split('/')
        .filter(|id| !id.is_empty() && *id != own.id)
        .filter_map(|id| by_id.get(id))
        .map(|u| OrgCrumb {
            id: u.id.clone(),
            level: u.level,
            name: u.name.clone(),
        })
        .collect();
    let units = all
        .iter()
        .filter(|u| everything || u.path.starts_with(&own.path))
        .cloned()
        .map(OrgUnitInfo::from)
        .collect();
    Ok(OrgTree {
        root: own.id,
        ancestors,
        units,
    })
}

/// Whether `id` may name an org unit: lowercase ASCII letters, digits and `-`. Paths are built
/// from ids and matched as LIKE prefixes, so `/`, `%`, `_` and `\` must never appear; and
/// SQLite's LIKE ignores ASCII case, so two ids differing only in case would share a scope.
pub fn valid_unit_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Adds a unit under an existing one, one tier below it. District admins only.
#[utoipa::path(post, path = "/api/v1/org", tag = "org", security(("bearer" = [])),
    request_body = NewOrgUnit,
    responses(
        (status = 201, body = OrgUnitInfo),
        (status = 400, description = "bad id, name or level, or unknown parent",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the id is taken", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn create_org_unit(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<NewOrgUnit>,
) -> Result<(StatusCode, Json<OrgUnitInfo>), ApiError> {
    caller.require_role(&[Role::DistrictAdmin])?;
    req.check()?;
    let parent = state.store.org_unit(&req.parent_id).await?.ok_or_else(|| {
        ApiError::BadRequest(format!("parent org unit {} does not exist", req.parent_id))
    })?;
    if req.level.tier() != parent.level.tier() + 1 {
        return Err(ApiError::BadRequest(format!(
            "a {} cannot be placed under a {}: the tree goes district → township | street → \
             village | community → grid, one tier at a time",
            req.level.as_str(),
            parent.level.as_str()
        )));
    }
    let unit = OrgUnit {
        path: format!("{}{}/", parent.path, req.id),
        id: req.id,
        parent_id: Some(parent.id),
        level: req.level,
        name: req.name,
    };
    state.store.insert_org_unit(&unit).await?;
    state
        .store
        .audit(&AuditEntry {
            at: clock::now(),
            user_id: Some(caller.user_id().to_owned()),
            device_id: Some(caller.device_id().to_owned()),
            action: "org_create".into(),
            doc_id: None,
            detail: json!({
                "unit": unit.id,
                "parent": unit.parent_id,
                "level": unit.level,
                "name": unit.name,
            }),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(unit.into())))
}

/// Renames a unit. District admins only. Moving a unit to another parent is refused: every
/// report stores the org path it was filed under, so a move needs a migration of those rows.
#[utoipa::path(patch, path = "/api/v1/org/{id}", tag = "org", security(("bearer" = [])),
    params(("id" = String, Path, pattern = "^[a-z0-9-]{1,64}$", description = "org unit id", example = "shiqiao-1")),
    request_body = OrgUnitPatch,
    responses(
        (status = 200, body = OrgUnitInfo),
        (status = 400, description = "a move, a new level, or a bad name",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn update_org_unit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<OrgUnitPatch>,
) -> Result<Json<OrgUnitInfo>, ApiError> {
    caller.require_role(&[Role::DistrictAdmin])?;
    let mut unit = state
        .store
        .org_unit(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("org unit {id} not found")))?;
    if let Some(parent) = &req.parent_id
        && *parent != unit.parent_id
    {
        return Err(ApiError::BadRequest(
            "moving an org unit to another parent is not supported: every report stores the \
             org path it was filed under, and moving a unit needs a migration of those rows \
             (and of the scopes of the users placed under it), which this server does not do. \
             Create a new unit under the new parent and move the users to it instead"
                .into(),
        ));
    }
    if let Some(level) = req.level
        && level != unit.level
    {
        return Err(ApiError::BadRequest(
            "the level of an org unit cannot change".into(),
        ));
    }
    let Some(name) = req.name else {
        return Err(ApiError::BadRequest(
            "nothing to change: only name can be changed".into(),
        ));
    };
    check_name("name", &name, MAX_NAME_CHARS)?;
    if !state.store.rename_org_unit(&id, &name).await? {
        return Err(ApiError::NotFound(format!("org unit {id} not found")));
    }
    let old_name = std::mem::replace(&mut unit.name, name);
    state
        .store
        .audit(&AuditEntry {
            at: clock::now(),
            user_id: Some(caller.user_id().to_owned()),
            device_id: Some(caller.device_id().to_owned()),
            action: "org_update".into(),
            doc_id: None,
            detail: json!({ "unit": unit.id, "old_name": old_name, "name": unit.name }),
        })
        .await?;
    Ok(Json(unit.into()))
}
