//! `gridsync export`: a ledger (台账) to a file, the same one the console and
//! `GET /api/v1/export` give, for the district's whole tree or one unit of it.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::accounts::audit;
use super::{Error, ExportArgs, Result, say};
use crate::catalogue::Catalogue;
use crate::ledger::{self, Format, Lang, LedgerError, Part};
use crate::scope::{Role, Scope};
use crate::stats::Day;
use crate::store::{OrgUnit, Store};

pub async fn export(store: &dyn Store, args: &ExportArgs) -> Result<()> {
    let format = match args.out.extension().and_then(|e| e.to_str()) {
        Some("csv") => Format::Csv,
        Some("xlsx") => Format::Xlsx,
        _ => {
            return Err(Error::Invalid(format!(
                "{}: the file name must end in .csv or .xlsx, which decides the format",
                args.out.display()
            )));
        }
    };
    let day = |flag: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(|v| {
                Day::parse(v).ok_or_else(|| {
                    Error::Invalid(format!("--{flag} must be a date YYYY-MM-DD, not {v:?}"))
                })
            })
            .transpose()
    };
    let (from, to) = (day("from", &args.from)?, day("to", &args.to)?);
    let org = unit_or_district(store, args.org.as_deref()).await?;
    let request = ledger::Request {
        kind: args.kind.clone(),
        org,
        from,
        to,
        format,
        lang: if args.english { Lang::En } else { Lang::Zh },
        part: if args.log { Part::Log } else { Part::Reports },
        clearance: true,
    };
    // The operator at the server's console stands for the district: the whole tree, in clear.
    let scope = Scope::for_role("", Role::DistrictAdmin, &request.org.path);
    let mut bytes = Vec::new();
    // Every kind the registry holds, runtime ones included.
    let catalogue = Catalogue::builtin().fresh(store).await?;
    let written = ledger::write(store, &catalogue.registry, &scope, &request, &mut bytes)
        .await
        .map_err(|e| match e {
            LedgerError::Store(e) => Error::Store(e),
            other => Error::Invalid(other.to_string()),
        })?;
    write_file(&args.out, &bytes)?;
    if written.restricted {
        let reports: Vec<String> = written.reports.iter().map(ToString::to_string).collect();
        audit(
            store,
            "read_report",
            json!({ "export": args.out.display().to_string(), "reports": reports }),
        )
        .await?;
    }
    say(&format!(
        "{}: {} reports of {}",
        args.out.display(),
        written.reports.len(),
        request.kind
    ));
    Ok(())
}

/// The org unit `id`, or the district (the tree's root) when none is named.
pub(super) async fn unit_or_district(store: &dyn Store, id: Option<&str>) -> Result<OrgUnit> {
    let units = store.org_units().await?;
    match id {
        Some(id) => units.into_iter().find(|u| u.id == id),
        None => units.into_iter().find(|u| u.parent_id.is_none()),
    }
    .ok_or_else(|| {
        Error::Invalid(match id {
            Some(id) => format!("there is no org unit {id}"),
            None => "the database has no org tree yet: `gridsync org import` makes one".into(),
        })
    })
}

/// Writes through a temporary file beside `path`, so a failed export leaves no half a ledger.
pub(super) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let partial = path.with_extension("partial");
    let mut file = std::fs::File::create(&partial).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&partial, path).map_err(io)
}
