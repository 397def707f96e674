//! Users under `/api/v1/users`: listing those in the caller's part of the tree, and (district
//! admins only) creating and changing them. Disabling retires the user's devices; a new
//! password ends the user's sessions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::Uri;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::query::Params;
use super::validate::{check_name, has_control};
use super::{ApiError, AppState, Json, Path, Problem};
use crate::auth::{Caller, password};
use crate::clock;
use crate::scope::{Role, Scope};
use crate::store::{AuditEntry, Level, Store, StoreError, User, UserPatch, UserQuery};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(update_user))
}

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;
/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;

/// A user as the API shows one: never with the password hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserInfo {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub org_unit_id: String,
    pub disabled: bool,
    pub created_at: i64,
}

impl From<User> for UserInfo {
    fn from(u: User) -> Self {
        UserInfo {
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            role: u.role,
            org_unit_id: u.org_unit_id,
            disabled: u.disabled,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub items: Vec<UserInfo>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// Users matching over all pages.
    pub total: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "username": "worker-shiqiao-4",
    "display_name": "李明",
    "password": "a good long password",
    "role": "grid_worker",
    "org_unit_id": "shiqiao-4",
}))]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    /// At least 10 characters.
    pub password: String,
    /// Must fit the unit's level: grid_worker → grid, village_cadre → village | community,
    /// township_staff and drug_control_officer → township | street, district_admin → district.
    pub role: Role,
    pub org_unit_id: String,
}

impl NewUser {
    /// The checks that need nothing but the request itself, made before any lookup.
    pub fn check(&self) -> Result<(), ApiError> {
        check_username(&self.username)?;
        check_name("display_name", &self.display_name, MAX_DISPLAY_NAME_CHARS)?;
        check_password(&self.password)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "org_unit_id": "shiqiao-2", "display_name": "李明" }))]
pub struct UserUpdate {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub org_unit_id: Option<String>,
    pub disabled: Option<bool>,
    pub password: Option<String>,
}

impl UserUpdate {
    /// The names of the fields this update sets, for the audit log.
    pub fn changed(&self) -> Vec<&'static str> {
        [
            ("display_name", self.display_name.is_some()),
            ("role", self.role.is_some()),
            ("org_unit_id", self.org_unit_id.is_some()),
            ("disabled", self.disabled.is_some()),
            ("password", self.password.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, given)| given.then_some(field))
        .collect()
    }

    /// The checks that need nothing but the request itself: something to change, and a valid
    /// name and password where given.
    pub fn check(&self) -> Result<(), ApiError> {
        if self.changed().is_empty() {
            return Err(ApiError::BadRequest("nothing to change".into()));
        }
        if let Some(name) = &self.display_name {
            check_name("display_name", name, MAX_DISPLAY_NAME_CHARS)?;
        }
        if let Some(pw) = &self.password {
            check_password(pw)?;
        }
        Ok(())
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserUpdateResult {
    pub user: UserInfo,
    /// Devices retiring because the user was disabled: each delivers what it holds unsent at
    /// its next sync, then wipes itself. A new role or org unit retires nothing.
    pub retiring_devices: Vec<String>,
    /// Sessions a new password ended: every session of the user, on every device, but the
    /// admin's own when admins change their own password and those of retiring phones, which
    /// still deliver what they hold. The devices stay: each logs in again with the new password
    /// and keeps what it holds unsent.
    pub ended_sessions: u64,
}

/// The levels a unit must have for a user of `role` to be placed at it.
pub fn levels_for(role: Role) -> &'static [Level] {
    match role {
        Role::GridWorker => &[Level::Grid],
        Role::VillageCadre => &[Level::Village, Level::Community],
        Role::TownshipStaff | Role::DrugControlOfficer => &[Level::Township, Level::Street],
        Role::DistrictAdmin => &[Level::District],
    }
}

/// Checks that `role` fits the org unit `unit_id`, which must exist.
pub(crate) async fn check_placement(
    store: &dyn Store,
    role: Role,
    unit_id: &str,
) -> Result<(), ApiError> {
    let unit = store
        .org_unit(unit_id)
        .await?
        .ok_or_else(|| ApiError::BadRequest(format!("org unit {unit_id} does not exist")))?;
    let levels = levels_for(role);
    if !levels.contains(&unit.level) {
        let names: Vec<&str> = levels.iter().map(|l| l.as_str()).collect();
        return Err(ApiError::BadRequest(format!(
            "a {role} must be placed at a {} unit, and {unit_id} is a {}",
            names.join(" or "),
            unit.level.as_str()
        )));
    }
    Ok(())
}

/// Refuses a move that would leave a case of the user's visible to no phone that should hold
/// it: cases assigned to them outside where they would work are reassigned first.
async fn keeps_cases_in_reach(
    store: &dyn Store,
    user: &User,
    role: Role,
    unit_id: &str,
) -> Result<(), ApiError> {
    let unit = store
        .org_unit(unit_id)
        .await?
        .ok_or_else(|| ApiError::BadRequest(format!("org unit {unit_id} does not exist")))?;
    let stranded = stranded_cases(store, user, role, &unit.path).await?;
    if stranded.is_empty() {
        return Ok(());
    }
    Err(ApiError::Conflict(format!(
        "{} would no longer see the cases assigned to them: {}; assign them to someone else first",
        user.username,
        stranded.join(", ")
    )))
}

/// The cases assigned to `user` that they could no longer see as a `role` placed at `path`.
pub(crate) async fn stranded_cases(
    store: &dyn Store,
    user: &User,
    role: Role,
    path: &str,
) -> Result<Vec<String>, StoreError> {
    let scope = Scope::for_role(&user.id, role, path);
    Ok(store
        .assigned_reports(&user.id)
        .await?
        .into_iter()
        .filter(|r| !scope.allows(&r.org_path, true, Some(&user.id)))
        .map(|r| r.id)
        .collect())
}

pub(crate) fn check_password(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::BadRequest(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > password::MAX_LEN {
        return Err(ApiError::BadRequest(format!(
            "password must be at most {} bytes",
            password::MAX_LEN
        )));
    }
    Ok(())
}

pub(crate) fn check_username(username: &str) -> Result<(), ApiError> {
    if username.is_empty()
        || username.chars().count() > MAX_USERNAME_CHARS
        || username.chars().any(char::is_whitespace)
        || has_control(username)
    {
        return Err(ApiError::BadRequest(format!(
            "username must be 1 to {MAX_USERNAME_CHARS} characters without spaces"
        )));
    }
    Ok(())
}

/// Users placed in the caller's part of the tree, by username. District admins see everyone;
/// village cadres and township staff the users under their own unit; others may not list users.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    params(
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("limit" = Option<i64>, Query, description = "page size, 1 to 200; 50 when left out"),
    ),
    responses(
        (status = 200, body = UserList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<UserList>, ApiError> {
    caller.require_role(&[Role::DistrictAdmin, Role::VillageCadre, Role::TownshipStaff])?;
    let params = Params::parse(&uri, &["cursor", "limit"])?;
    let limit = params.limit()?;
    // The caller's scope prefix: their unit's path, or empty for a district admin.
    let org_prefix = caller.scope.prefix.clone();
    let page = state
        .store
        .users_page(&UserQuery {
            org_prefix,
            after: params.string("cursor"),
            limit,
        })
        .await?;
    let next_cursor = page
        .more
        .then(|| page.items.last().map(|u| u.username.clone()))
        .flatten();
    Ok(Json(UserList {
        items: page.items.into_iter().map(UserInfo::from).collect(),
        next_cursor,
        total: page.total,
    }))
}

/// Creates a user. District admins only.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    request_body = NewUser,
    responses(
        (status = 201, body = UserInfo),
        (status = 400, description = "weak password, bad name, unknown unit, or a role that does not fit the unit",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the username is taken", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<NewUser>,
) -> Result<(StatusCode, Json<UserInfo>), ApiError> {
    caller.require_role(&[Role::DistrictAdmin])?;
    req.check()?;
    check_placement(state.store.as_ref(), req.role, &req.org_unit_id).await?;
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        username: req.username,
        display_name: req.display_name,
        password_hash: password::hash(req.password).await?,
        role: req.role,
        org_unit_id: req.org_unit_id,
        disabled: false,
        created_at: clock::now(),
    };
    state.store.insert_user(&user).await?;
    state
        .store
        .audit(&AuditEntry {
            at: user.created_at,
            user_id: Some(caller.user_id().to_owned()),
            device_id: Some(caller.device_id().to_owned()),
            action: "user_create".into(),
            doc_id: None,
            detail: json!({
                "user": user.id,
                "username": user.username,
                "role": user.role,
                "org_unit_id": user.org_unit_id,
            }),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Changes a user. District admins only. A new role or org unit keeps the user's phones: at
/// their next sync they deliver what they hold (what the new scope excludes becomes held work),
/// drop what they may no longer see and pull the new scope; a move that would strand a case
/// assigned to the user is refused. Disabling retires every device of the user: each delivers
/// what it holds unsent, then wipes itself. A new password ends every session of the user at
/// once, access tokens included (an admin changing their own keeps the session they do it in;
/// a retiring phone keeps its own to deliver).
/// Admins cannot disable or demote themselves (so that the district always keeps one).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "user id")),
    request_body = UserUpdate,
    responses(
        (status = 200, body = UserUpdateResult),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the move would strand drug-control cases assigned to the user",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<UserUpdate>,
) -> Result<Json<UserUpdateResult>, ApiError> {
    caller.require_role(&[Role::DistrictAdmin])?;
    let user = state
        .store
        .user(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("user {id} not found")))?;
    req.check()?;
    let changed = req.changed();
    if id == caller.user_id()
        && (req.disabled == Some(true) || req.role.is_some_and(|r| r != user.role))
    {
        return Err(ApiError::BadRequest(
            "you cannot disable your own account or change your own role; another district \
             admin must"
                .into(),
        ));
    }
    let role = req.role.unwrap_or(user.role);
    let unit = req.org_unit_id.as_deref().unwrap_or(&user.org_unit_id);
    if req.role.is_some() || req.org_unit_id.is_some() {
        check_placement(state.store.as_ref(), role, unit).await?;
        keeps_cases_in_reach(state.store.as_ref(), &user, role, unit).await?;
    }
    let password_hash = match req.password {
        Some(pw) => Some(password::hash(pw).await?),
        None => None,
    };
    let patch = UserPatch {
        display_name: req.display_name,
        role: req.role,
        org_unit_id: req.org_unit_id,
        disabled: req.disabled,
        password_hash,
        // A reset ends every session; changing one's own leaves the one it is done in.
        keep_session: (id == caller.user_id()).then(|| caller.session.clone()),
    };
    let now = clock::now();
    let updated = state
        .store
        .update_user(&id, &patch, now)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("user {id} not found")))?;
    state
        .store
        .audit(&AuditEntry {
            at: now,
            user_id: Some(caller.user_id().to_owned()),
            device_id: Some(caller.device_id().to_owned()),
            action: "user_update".into(),
            doc_id: None,
            detail: json!({
                "user": id,
                "changed": changed,
                "role": updated.user.role,
                "org_unit_id": updated.user.org_unit_id,
                "disabled": updated.user.disabled,
                "retiring_devices": updated.retiring_devices,
                "ended_sessions": updated.ended_sessions,
            }),
        })
        .await?;
    Ok(Json(UserUpdateResult {
        user: updated.user.into(),
        retiring_devices: updated.retiring_devices,
        ended_sessions: updated.ended_sessions,
    }))
}
