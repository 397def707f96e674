//! `GET /api/v1/export`: a ledger (台账) as a CSV or XLSX download, built by `crate::ledger`
//! over the caller's scope; sensitive values redacted for roles without clearance; exports of
//! drug-control cases audited like any read of them.

use axum::extract::State;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::contract::Binary;
use super::query::Params;
use super::stats::{day_param, org_param};
use super::visible::audit_reads;
use super::{ApiError, AppState, Problem};
use crate::auth::Caller;
use crate::ledger::{self, Format, Lang, LedgerError, Part};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(export))
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Store(e) => e.into(),
            LedgerError::UnknownKind(_) | LedgerError::NoLog(_) => {
                ApiError::BadRequest(e.to_string())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// A ledger of one kind for a period and an org unit: one row per report with the schema's
/// fields (choice labels in the chosen language), review state, org unit names, times and
/// attachments; log entries (mediation steps, visits) on a second sheet, or with `part=log` as
/// a CSV of their own. CSV starts with a UTF-8 byte-order mark so that Excel reads Chinese.
#[utoipa::path(get, path = "/api/v1/export", tag = "export", security(("bearer" = [])),
    params(
        ("kind" = String, Query, description = "dispute_check, drug_control_case or satisfaction_canvass"),
        ("format" = Option<String>, Query, description = "xlsx (default) or csv"),
        ("from" = Option<String>, Query, description = "YYYY-MM-DD, included: reports whose date (found, interviewed, programme) falls on or after it"),
        ("to" = Option<String>, Query, description = "YYYY-MM-DD, included"),
        ("org" = Option<String>, Query, description = "org unit id; default the caller's own"),
        ("lang" = Option<String>, Query, description = "zh (default) or en: headers and choice labels"),
        ("part" = Option<String>, Query, description = "CSV only: reports (default) or log"),
    ),
    responses(
        (status = 200, description = "the ledger as an attachment (`Content-Disposition`): XLSX by default, CSV with `format=csv`",
            content(
                (Binary = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
                (String = "text/csv"),
            )),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "org is not a unit in the caller's scope",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn export(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Response, ApiError> {
    let p = Params::parse(
        &uri,
        &["kind", "format", "from", "to", "org", "lang", "part"],
    )?;
    let registry = state.registry().await?;
    // Every kind with a version, retired ones included: their reports stay in the ledgers.
    let mut kinds: Vec<&str> = registry.all().map(|s| s.kind.as_str()).collect();
    kinds.dedup();
    let kind = p.one_of("kind", &kinds)?.ok_or_else(|| {
        ApiError::BadRequest(format!("`kind` is required: one of {}", kinds.join(", ")))
    })?;
    let format = match p.one_of("format", &["csv", "xlsx"])?.as_deref() {
        Some("csv") => Format::Csv,
        _ => Format::Xlsx,
    };
    let lang = match p.one_of("lang", &["zh", "en"])?.as_deref() {
        Some("en") => Lang::En,
        _ => Lang::Zh,
    };
    let part = match p.one_of("part", &["reports", "log"])?.as_deref() {
        Some(_) if format == Format::Xlsx => {
            return Err(ApiError::BadRequest(
                "`part` applies to CSV only: an XLSX ledger holds reports and log as two sheets"
                    .into(),
            ));
        }
        Some("log") => Part::Log,
        _ => Part::Reports,
    };
    let from = day_param(&p, "from")?;
    let to = day_param(&p, "to")?;
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(ApiError::BadRequest(format!(
            "`from` ({from}) is after `to` ({to})"
        )));
    }
    let org = org_param(&state, &caller, p.get("org")).await?;
    let filename = [
        Some(kind.clone()),
        Some(org.id.clone()),
        from.map(|d| d.to_string()),
        to.map(|d| d.to_string()),
        (part == Part::Log).then(|| "log".to_owned()),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("-");
    let request = ledger::Request {
        kind,
        org,
        from,
        to,
        format,
        lang,
        part,
        clearance: caller.role().has_clearance(),
    };
    let mut bytes = Vec::new();
    let written = ledger::write(
        state.store.as_ref(),
        &registry,
        &caller.scope,
        &request,
        &mut bytes,
    )
    .await?;
    if written.restricted {
        audit_reads(&state, &caller, &written.reports, "export").await?;
    }
    let disposition = format!("attachment; filename=\"{filename}.{}\"", format.extension());
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.media_type()),
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
