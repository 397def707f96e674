//! Statistics benchmark: fills an empty database with reports through the store's own ingest
//! (so `report_facts` is kept by its triggers, as in production), then times each statistics
//! endpoint and a month's ledger through the HTTP app, as a district admin and as township staff.
//!
//! ```text
//! cargo build --release -p gridsync-server --example stats_bench
//! ./target/release/examples/stats_bench --db sqlite:///tmp/stats.db
//! ./target/release/examples/stats_bench --db postgres://postgres@127.0.0.1/stats
//! ```
//!
//! The database must be empty (a new SQLite path, or a freshly created Postgres database).

// A benchmark's report is its standard output.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use anyhow::{Context, bail};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use clap::Parser;
use gridsync_core::DocId;
use gridsync_core::protocol::{Push, PushDoc, PushOutcome};
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_server::config::Config;
use gridsync_server::http::{AppState, app};
use gridsync_server::scope::{Role, Scope};
use gridsync_server::store::{self, Device, Level, OrgUnit, RefreshToken, Store, User, Writer};
use gridsync_server::sync::Ingest;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

#[derive(Parser)]
struct Args {
    /// Database URL of an empty database.
    #[arg(long)]
    db: String,
    /// Reports to create: 60% canvass interviews, 30% disputes, 10% drug-control cases.
    #[arg(long, default_value_t = 100_000)]
    reports: usize,
    /// Townships; as many streets again, half as many.
    #[arg(long, default_value_t = 12)]
    townships: usize,
    /// Reports per push.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Timed runs of each request; the median and the fastest are reported.
    #[arg(long, default_value_t = 7)]
    runs: usize,
}

/// A small deterministic generator (xorshift), so every run fills the same reports.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// A day of 2026 as YYYY-MM-DD (days 1 to 28 of each month).
    fn day(&mut self) -> String {
        format!("2026-{:02}-{:02}", 1 + self.below(12), 1 + self.below(28))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = store::open(&args.db).await.context("opening the store")?;
    if !store.org_units().await?.is_empty() {
        bail!("{} is not empty; give a new database", args.db);
    }
    let grids = seed(store.as_ref(), args.townships).await?;
    println!(
        "{} reports over {} grids of {} townships and {} streets",
        args.reports,
        grids.len(),
        args.townships,
        args.townships / 2
    );

    let writer = Writer {
        user_id: "admin".into(),
        device_id: Some("bench".into()),
        scope: Scope::for_role("admin", Role::DistrictAdmin, "/d/"),
        now: 1_800_000_000,
        hold_out_of_scope: false,
    };
    let ingest = Ingest::default();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    let mut made = 0;
    while made < args.reports {
        let n = args.batch.min(args.reports - made);
        let mut docs: Vec<ReportDoc> = (0..n)
            .map(|i| report(&mut rng, made + i, &grids))
            .collect::<anyhow::Result<_>>()?;
        let push = Push {
            docs: docs
                .iter_mut()
                .map(|d| PushDoc {
                    doc: d.id(),
                    changes: d.changes_since(&[]),
                })
                .collect(),
        };
        let result = ingest.push(store.as_ref(), &writer, &push).await?;
        if let Some(bad) = result
            .docs
            .iter()
            .find(|d| !matches!(d.outcome, PushOutcome::Acked { .. }))
        {
            bail!("a report was not acknowledged: {bad:?}");
        }
        made += n;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "ingest (facts kept by triggers): {made} reports in {secs:.1} s, {:.0} reports/s",
        made as f64 / secs
    );

    add_user(store.as_ref(), "admin", Role::DistrictAdmin, "d").await?;
    add_user(store.as_ref(), "staff", Role::TownshipStaff, "t1").await?;
    let state = AppState::new(store.clone(), Config::default()).await?;
    let router = app(state.clone());
    let october = "from=2026-10-01&to=2026-10-31";
    let year = "from=2026-01-01&to=2026-12-31";
    let requests = [
        ("admin", format!("/api/v1/stats/canvass?{october}")),
        ("admin", format!("/api/v1/stats/canvass?{year}")),
        (
            "admin",
            format!("/api/v1/stats/canvass?{october}&group=street"),
        ),
        (
            "admin",
            format!("/api/v1/stats/canvass?{october}&group=village"),
        ),
        ("admin", format!("/api/v1/stats/disputes?{october}")),
        ("admin", format!("/api/v1/stats/disputes?{year}")),
        ("admin", "/api/v1/stats/drug".to_owned()),
        ("staff", format!("/api/v1/stats/canvass?{october}")),
        ("staff", format!("/api/v1/stats/disputes?{year}")),
        ("staff", "/api/v1/stats/drug".to_owned()),
        (
            "admin",
            format!("/api/v1/export?kind=dispute_check&format=xlsx&{october}"),
        ),
        (
            "admin",
            format!("/api/v1/export?kind=dispute_check&format=csv&{october}"),
        ),
    ];
    println!(
        "{:<70} {:>10} {:>10} {:>10}",
        "request", "median ms", "min ms", "bytes"
    );
    for (user, path) in requests {
        let token = state
            .keys
            .issue(user, &format!("dev-{user}"), "bench")
            .await?;
        let mut times = Vec::with_capacity(args.runs);
        let mut size = 0;
        for _ in 0..args.runs {
            let req = Request::builder()
                .uri(&path)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())?;
            let started = Instant::now();
            let res = router.clone().oneshot(req).await?;
            let status = res.status();
            let body = res.into_body().collect().await?.to_bytes();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            if status != StatusCode::OK {
                bail!("{path}: {status} {}", String::from_utf8_lossy(&body));
            }
            size = body.len();
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{:<70} {:>10.1} {:>10.1} {:>10}",
            format!("{user} {path}"),
            times[times.len() / 2],
            times[0],
            size
        );
    }
    Ok(())
}

/// The district `d` with `townships` townships and half as many streets, each with 10
/// villages (communities) of 5 grids; returns the grid ids.
async fn seed(store: &dyn Store, townships: usize) -> anyhow::Result<Vec<String>> {
    let mut units = vec![OrgUnit {
        id: "d".into(),
        parent_id: None,
        level: Level::District,
        name: "示范区".into(),
        path: "/d/".into(),
    }];
    let mut grids = Vec::new();
    let tops = (0..townships)
        .map(|i| (format!("t{}", i + 1), Level::Township, Level::Village))
        .chain(
            (0..townships / 2).map(|i| (format!("s{}", i + 1), Level::Street, Level::Community)),
        );
    for (top, level, below) in tops {
        let top_path = format!("/d/{top}/");
        units.push(OrgUnit {
            id: top.clone(),
            parent_id: Some("d".into()),
            level,
            name: top.clone(),
            path: top_path.clone(),
        });
        for v in 0..10 {
            let village = format!("{top}-v{v}");
            let village_path = format!("{top_path}{village}/");
            units.push(OrgUnit {
                id: village.clone(),
                parent_id: Some(top.clone()),
                level: below,
                name: village.clone(),
                path: village_path.clone(),
            });
            for g in 0..5 {
                let grid = format!("{village}-g{g}");
                units.push(OrgUnit {
                    id: grid.clone(),
                    parent_id: Some(village.clone()),
                    level: Level::Grid,
                    name: grid.clone(),
                    path: format!("{village_path}{grid}/"),
                });
                grids.push(grid);
            }
        }
    }
    for unit in &units {
        store.upsert_org_unit(unit).await?;
    }
    Ok(grids)
}

/// Report number `i`: every tenth a drug-control case, three in ten a dispute, the rest canvass
/// interviews; fields filled as a worker would.
fn report(rng: &mut Rng, i: usize, grids: &[String]) -> anyhow::Result<ReportDoc> {
    let grid = &grids[rng.below(grids.len())];
    let by = Editor::new("admin", 1_000);
    let scale = ["1", "2", "3", "4", "4", "5", "5", "5", "dont_know"];
    let (kind, fields, log): (&str, Value, Vec<Value>) = match i % 10 {
        0 => {
            let visits = (0..rng.below(4))
                .map(|_| {
                    json!({"date": rng.day(), "visitor": "admin",
                           "test": rng.pick(&["none", "urine", "hair"]), "test_result": "negative",
                           "next_visit_due": rng.day()})
                })
                .collect();
            (
                "drug_control_case",
                json!({"subject_name": "某某", "subject_id_number": "110101199001011234",
                       "programme": rng.pick(&["community_rehabilitation", "community_detox"]),
                       "programme_start": rng.day(), "assigned_worker": "admin",
                       "status": rng.pick(&["active", "active", "active", "relapsed", "completed"])}),
                visits,
            )
        }
        1..=3 => {
            let found = rng.day();
            let status = rng.pick(&[
                "reported",
                "mediating",
                "resolved",
                "resolved",
                "referred",
                "escalated",
            ]);
            let mut f = json!({"category": rng.pick(&["neighbour", "family_marriage", "land_property",
                                   "labour_wages", "contract_debt", "environment_nuisance", "other"]),
                               "parties": "张三、李四", "description": "纠纷情况", "found_on": found,
                               "risk_level": rng.pick(&["low", "medium", "high"]), "status": status,
                               "next_follow_up": rng.day()});
            if status == "resolved" {
                f["resolved_on"] = json!(rng.day().max(found));
                f["agreement"] = json!("和解");
            }
            let steps = (0..rng.below(3))
                .map(|_| json!({"date": rng.day(), "mediator": "admin", "method": "上门调解"}))
                .collect();
            ("dispute_check", f, steps)
        }
        _ => {
            let worries: Vec<&str> = [
                "fraud",
                "disputes",
                "public_order",
                "traffic",
                "environment",
            ]
            .into_iter()
            .filter(|_| rng.below(4) == 0)
            .collect();
            (
                "satisfaction_canvass",
                json!({"household_type": "local_resident", "canvasser": "admin",
                       "interviewed_at": format!("{}T10:00:00+08:00", rng.day()),
                       "safety_overall": rng.pick(&scale), "safety_night": rng.pick(&scale),
                       "satisfaction_police": rng.pick(&scale), "satisfaction_courts": rng.pick(&scale),
                       "satisfaction_mediation": rng.pick(&scale),
                       "satisfaction_services": rng.pick(&scale), "worries": worries}),
                Vec::new(),
            )
        }
    };
    let mut doc = ReportDoc::create(DocId::new_v4(), kind, 1, grid, &by)?;
    let Value::Object(fields) = fields else {
        bail!("fields are an object")
    };
    doc.set_fields(&fields, &by)?;
    for entry in log {
        let Value::Object(entry) = entry else {
            bail!("a log entry is an object")
        };
        doc.append_log(&entry, &by)?;
    }
    Ok(doc)
}

async fn add_user(store: &dyn Store, id: &str, role: Role, unit: &str) -> anyhow::Result<()> {
    store
        .insert_user(&User {
            id: id.into(),
            username: id.into(),
            display_name: id.into(),
            password_hash: "unused".into(),
            role,
            org_unit_id: unit.into(),
            disabled: false,
            created_at: 1,
        })
        .await?;
    store
        .upsert_device(&Device {
            id: format!("dev-{id}"),
            user_id: id.into(),
            name: "bench".into(),
            created_at: 1,
            last_seen_at: 1,
            revoked_at: None,
            cursor: 0,
            pending_changes: None,
            pending_at: None,
            retiring_at: None,
            scope_key: None,
        })
        .await?;
    // The session `bench` the tokens are issued in.
    store
        .insert_refresh_token(&RefreshToken {
            token_hash: format!("bench session of {id}").into_bytes(),
            device_id: format!("dev-{id}"),
            family: "bench".into(),
            expires_at: i64::MAX,
            used_at: None,
            replaces: None,
        })
        .await?;
    Ok(())
}
