//! `gridsync bulletin`: the workbook of a bulletin, the same one `GET /api/v1/bulletins/{period}
//! ?format=xlsx` gives: the published revision when there is one, else a draft counted now over
//! the unit's whole tree.

use super::export::{unit_or_district, write_file};
use super::{BulletinArgs, Error, Result, say};
use crate::bulletin::{self, Bulletin, BulletinError, BulletinPeriod, RankRules, Request};
use crate::catalogue::Catalogue;
use crate::clock;
use crate::scope::{Role, Scope};
use crate::stats::Day;
use crate::store::Store;

pub async fn bulletin(store: &dyn Store, args: &BulletinArgs) -> Result<()> {
    if args.out.extension().and_then(|e| e.to_str()) != Some("xlsx") {
        return Err(Error::Invalid(format!(
            "{}: a bulletin is written as a workbook; name the file .xlsx",
            args.out.display()
        )));
    }
    let period = BulletinPeriod::parse(&args.period).ok_or_else(|| {
        Error::Invalid(format!(
            "--period must be a month (2026-11), a quarter (2026-Q4) or a year (2026), not {:?}",
            args.period
        ))
    })?;
    let org = unit_or_district(store, args.org.as_deref()).await?;
    let failed = |e: BulletinError| match e {
        BulletinError::Store(e) => Error::Store(e),
        other => Error::Invalid(other.to_string()),
    };
    let bulletin = match store.bulletin(&org.id, &period.name).await? {
        Some(stored) => Bulletin::from_stored(&stored).map_err(failed)?,
        None => {
            // The operator at the server's console stands for the district.
            let scope = Scope::for_role("", Role::DistrictAdmin, &org.path);
            let catalogue = Catalogue::builtin().fresh(store).await?;
            let rules = RankRules::current(store).await.map_err(failed)?;
            let now = clock::now();
            let request = Request {
                org: &org,
                period: &period,
                rules: &rules,
                today: Day::of_unix(now),
                now,
            };
            bulletin::draft(store, &catalogue.registry, &scope, &request)
                .await
                .map_err(failed)?
        }
    };
    let bytes = bulletin::xlsx::workbook(&bulletin)
        .map_err(|e| Error::Invalid(format!("the workbook could not be written: {e}")))?;
    write_file(&args.out, &bytes)?;
    say(&format!(
        "{}: the bulletin of {} for {}, {}",
        args.out.display(),
        org.name,
        period.name,
        match bulletin.revision {
            Some(r) => format!("revision {r} as published"),
            None => "a draft (not published; its figures are today's)".to_owned(),
        }
    ));
    Ok(())
}
