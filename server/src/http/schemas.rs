//! The report kinds under `/api/v1/schemas`: the definitions in force for every caller, the
//! catalogue phones compare against, and, for district admins, the registry itself: checking a
//! form (a schema JSON or an XLSX workbook) with a preview of what it means, keeping it as a
//! draft, publishing, retiring and discarding, each audited.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use gridsync_core::schema::Schema;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AppState, Json, Path, Problem};
use crate::auth::Caller;
use crate::catalogue::{self, Actor, Entry, RegistryError};
use crate::forms::{self, Format};
use crate::scope::Role;
use crate::store::{SchemaState, StoredSchema};

/// The media type of an XLSX workbook.
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_schemas))
        .routes(routes!(catalogue))
        .routes(routes!(versions))
        .routes(routes!(one_schema, discard))
        .routes(routes!(publish))
        .routes(routes!(retire))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(check))
                .routes(routes!(upload))
                .layer(DefaultBodyLimit::max(forms::MAX_BYTES as usize)),
        )
}

/// Every schema in force (published or retired), by kind, oldest version first.
#[utoipa::path(get, path = "/api/v1/schemas", tag = "schemas", security(("bearer" = [])),
    responses(
        (status = 200, description = "the schema files as JSON", body = Vec<Object>,
            example = json!([{
                "kind": "dispute_check",
                "version": 1,
                "label": { "zh": "矛盾纠纷排查", "en": "Dispute check" },
                "access": { "mode": "scope" },
                "fields": [{
                    "id": "risk_level",
                    "label": { "zh": "风险等级", "en": "Risk level" },
                    "type": "single_choice",
                    "choices": [
                        { "id": "low", "label": { "zh": "低", "en": "Low" } },
                        { "id": "high", "label": { "zh": "高", "en": "High" } },
                    ],
                }],
            }])),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_schemas(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Vec<Schema>>, ApiError> {
    Ok(Json(state.registry().await?.all().cloned().collect()))
}

/// What a phone compares its forms with: the digest a pull carries, and each version in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogueView {
    /// The same number as a pull answer's catalogue digest, as a decimal string (it is 64 bits).
    pub digest: String,
    pub entries: Vec<Entry>,
}

/// The versions in force and their digest; a phone fetches the definitions it lacks.
#[utoipa::path(get, path = "/api/v1/schemas/catalogue", tag = "schemas",
    security(("bearer" = [])),
    responses(
        (status = 200, body = CatalogueView, example = json!({
            "digest": "9184470511329387013",
            "entries": [
                { "kind": "dispute_check", "version": 1, "state": "published" },
                { "kind": "anti_fraud_visit", "version": 1, "state": "published" },
            ],
        })),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn catalogue(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<CatalogueView>, ApiError> {
    let loaded = state.catalogue.fresh(state.store.as_ref()).await?;
    Ok(Json(CatalogueView {
        digest: loaded.digest.to_string(),
        entries: loaded.entries.clone(),
    }))
}

/// One version as the registry keeps it, without its definition.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    pub kind: String,
    pub version: u32,
    pub state: SchemaState,
    #[schema(value_type = Object)]
    pub label: gridsync_core::schema::Label,
    /// `builtin`, `json` or `xlsx`.
    pub source: String,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub published_by: Option<String>,
    pub published_at: Option<i64>,
    pub retired_by: Option<String>,
    pub retired_at: Option<i64>,
}

impl VersionView {
    fn of(row: StoredSchema) -> Result<VersionView, ApiError> {
        Ok(VersionView {
            label: row.schema()?.label,
            kind: row.kind,
            version: row.version,
            state: row.state,
            source: row.source,
            created_by: row.created_by,
            created_at: row.created_at,
            published_by: row.published_by,
            published_at: row.published_at,
            retired_by: row.retired_by,
            retired_at: row.retired_at,
        })
    }
}

/// Every version of every kind, drafts included: the registry as an admin manages it.
#[utoipa::path(get, path = "/api/v1/schemas/versions", tag = "schemas",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<VersionView>,
            example = json!([{
                "kind": "anti_fraud_visit", "version": 1, "state": "draft",
                "label": { "zh": "反诈宣传入户", "en": "Anti-fraud home visit" },
                "source": "xlsx", "created_by": "u-admin", "created_at": 1764900000,
                "published_by": null, "published_at": null,
                "retired_by": null, "retired_at": null,
            }])),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not a district admin", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn versions(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<VersionView>>, ApiError> {
    caller.require_role(&[Role::DistrictAdmin])?;
    let rows = state.store.schemas().await?;
    Ok(Json(
        rows.into_iter()
            .map(VersionView::of)
            .collect::<Result<_, _>>()?,
    ))
}

/// One version's definition: published and retired ones for every caller, drafts for admins.
#[utoipa::path(get, path = "/api/v1/schemas/{kind}/{version}", tag = "schemas",
    security(("bearer" = [])),
    params(("kind" = String, Path, example = "anti_fraud_visit"),
        ("version" = u32, Path, example = 1)),
    responses(
        (status = 200, description = "the schema JSON", body = Object),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn one_schema(
    State(state): State<AppState>,
    caller: Caller,
    Path((kind, version)): Path<(String, u32)>,
) -> Result<Json<Schema>, ApiError> {
    let row = state
        .store
        .stored_schema(&kind, version)
        .await?
        .filter(|r| r.state != SchemaState::Draft || caller.role() == Role::DistrictAdmin)
        .ok_or_else(|| ApiError::NotFound(format!("no report kind {kind} version {version}")))?;
    Ok(Json(row.schema()?))
}

/// A form judged: what it defines, the versions of its kind in force, and whether it may be
/// published next to them.
#[derive(Debug, Serialize, ToSchema)]
pub struct Checked {
    /// The schema JSON the form means, for a preview drawn as a phone draws it.
    #[schema(value_type = Object)]
    pub schema: Schema,
    /// The versions of this kind in force; empty for a new kind.
    pub versions_in_force: Vec<u32>,
}

/// Judges a form without keeping it: its problems (422, each with its place in a workbook), or
/// what it means. Send a schema JSON (`application/json`) or a workbook (`application/vnd.
/// openxmlformats-officedocument.spreadsheetml.sheet`).
#[utoipa::path(post, path = "/api/v1/schemas/check", tag = "schemas",
    security(("bearer" = [])),
    request_body(description = "a schema JSON or an XLSX workbook", content(
        (Object = "application/json"),
        (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
    responses(
        (status = 200, body = Checked, example = json!({
            "schema": {
                "kind": "anti_fraud_visit", "version": 1,
                "label": { "zh": "反诈宣传入户", "en": "Anti-fraud home visit" },
                "status_field": "status",
                "fields": [{ "id": "visited_on", "label": { "zh": "走访日期", "en": "Visited on" },
                    "type": "date", "required": true }],
            },
            "versions_in_force": [],
        })),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not a district admin", body = Problem,
            content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "the form's problems, in `form_problems`", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn check(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Checked>, ApiError> {
    caller.require_role(&[Role::DistrictAdmin])?;
    let schema = forms::parse(&body, format(&headers)?)?;
    let registry = state.registry().await?;
    forms::check_versions(&schema, &registry)?;
    Ok(Json(Checked {
        versions_in_force: registry
            .all()
            .filter(|s| s.kind == schema.kind)
            .map(|s| s.version)
            .collect(),
        schema,
    }))
}

/// Keeps a form as a draft of its kind and version (replacing a draft of the same version),
/// once it passes every check and the version rules. Phones and ingest do not see drafts.
#[utoipa::path(post, path = "/api/v1/schemas", tag = "schemas",
    security(("bearer" = [])),
    request_body(description = "a schema JSON or an XLSX workbook", content(
        (Object = "application/json"),
        (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
    responses(
        (status = 201, body = VersionView,
            example = json!({
                "kind": "anti_fraud_visit", "version": 1, "state": "draft",
                "label": { "zh": "反诈宣传入户", "en": "Anti-fraud home visit" },
                "source": "xlsx", "created_by": "u-admin", "created_at": 1764900000,
                "published_by": null, "published_at": null,
                "retired_by": null, "retired_at": null,
            })),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not a district admin", body = Problem,
            content_type = "application/problem+json"),
        (status = 409, description = "that version is published or retired", body = Problem,
            content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "the form's problems, in `form_problems`", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<VersionView>), ApiError> {
    caller.require_role(&[Role::DistrictAdmin])?;
    let format = format(&headers)?;
    let schema = forms::parse(&body, format)?;
    catalogue::save_draft(
        state.store.as_ref(),
        &schema,
        format.as_str(),
        actor(&caller),
    )
    .await
    .map_err(registry_error)?;
    Ok((
        StatusCode::CREATED,
        Json(stored(&state, &schema.kind, schema.version).await?),
    ))
}

/// Publishes a draft: from now on phones get it at their next sync and ingest accepts its
/// reports. Refused with each breaking change when it would change what earlier reports mean.
#[utoipa::path(post, path = "/api/v1/schemas/{kind}/{version}/publish", tag = "schemas",
    security(("bearer" = [])),
    params(("kind" = String, Path, example = "anti_fraud_visit"),
        ("version" = u32, Path, example = 1)),
    responses(
        (status = 200, body = VersionView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not a district admin", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "not a draft", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "the breaking changes, in `form_problems`", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    Path((kind, version)): Path<(String, u32)>,
) -> Result<Json<VersionView>, ApiError> {
    caller.require_role(&[Role::DistrictAdmin])?;
    catalogue::publish(state.store.as_ref(), &kind, version, actor(&caller))
        .await
        .map_err(registry_error)?;
    Ok(Json(stored(&state, &kind, version).await?))
}

/// Retires a published version: no new reports use it; its reports stay readable and editable.
#[utoipa::path(post, path = "/api/v1/schemas/{kind}/{version}/retire", tag = "schemas",
    security(("bearer" = [])),
    params(("kind" = String, Path, example = "anti_fraud_visit"),
        ("version" = u32, Path, example = 1)),
    responses(
        (status = 200, body = VersionView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not a district admin", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "not published", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn retire(
    State(state): State<AppState>,
    caller: Caller,
    Path((kind, version)): Path<(String, u32)>,
) -> Result<Json<VersionView>, ApiError> {
    caller.require_role(&[Role::DistrictAdmin])?;
    catalogue::retire(state.store.as_ref(), &kind, version, actor(&caller))
        .await
        .map_err(registry_error)?;
    Ok(Json(stored(&state, &kind, version).await?))
}

/// Discards a draft.
#[utoipa::path(delete, path = "/api/v1/schemas/{kind}/{version}", tag = "schemas",
    security(("bearer" = [])),
    params(("kind" = String, Path, example = "anti_fraud_visit"),
        ("version" = u32, Path, example = 1)),
    responses(
        (status = 204, description = "discarded"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not a district admin", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "not a draft", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn discard(
    State(state): State<AppState>,
    caller: Caller,
    Path((kind, version)): Path<(String, u32)>,
) -> Result<StatusCode, ApiError> {
    caller.require_role(&[Role::DistrictAdmin])?;
    catalogue::discard(state.store.as_ref(), &kind, version, actor(&caller))
        .await
        .map_err(registry_error)?;
    Ok(StatusCode::NO_CONTENT)
}

fn actor(caller: &Caller) -> Actor<'_> {
    Actor {
        user: Some(caller.user_id()),
        device: Some(caller.device_id()),
        via: "api",
    }
}

/// The form's format, from its content type.
fn format(headers: &HeaderMap) -> Result<Format, ApiError> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match media.as_deref() {
        Some("application/json") => Ok(Format::Json),
        Some(XLSX) => Ok(Format::Xlsx),
        _ => Err(ApiError::MediaTypeNotAllowed(format!(
            "send a form as application/json (a schema JSON) or as {XLSX} (a workbook)"
        ))),
    }
}

async fn stored(state: &AppState, kind: &str, version: u32) -> Result<VersionView, ApiError> {
    let row = state
        .store
        .stored_schema(kind, version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no report kind {kind} version {version}")))?;
    VersionView::of(row)
}

fn registry_error(e: RegistryError) -> ApiError {
    match e {
        RegistryError::Store(e) => e.into(),
        RegistryError::Form(e) => e.into(),
        e @ RegistryError::Unknown { .. } => ApiError::NotFound(e.to_string()),
        e @ RegistryError::WrongState { .. } => ApiError::Conflict(e.to_string()),
    }
}
