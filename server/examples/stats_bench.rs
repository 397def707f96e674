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

use anyhow::bail;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use clap::Parser;
use gridsync_core::report::ReportDoc;
use gridsync_fixtures::fixture::Fixture;
use gridsync_fixtures::org::OrgTree;
use gridsync_fixtures::people::{Person, SESSION};
use gridsync_fixtures::reports::{ingest_acked, push_all};
use gridsync_fixtures::work::{Rng, any_report};
use gridsync_server::config::Config;
use gridsync_server::http::{AppState, app};
use gridsync_server::scope::Role;
use http_body_util::BodyExt;
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // admin fills the district and reads it whole; staff of t1 read their township without
    // clearance. Their tokens are issued directly, in their devices' sessions.
    let people = [
        Person::new("admin", Role::DistrictAdmin, "d"),
        Person::new("staff", Role::TownshipStaff, "t1"),
    ];
    let fixture = Fixture::new(OrgTree::wide(args.townships, args.townships / 2))
        .people(people.map(Person::with_device));
    let store = fixture.seed_new_database(&args.db).await?;
    let grids = fixture.tree.grids();
    println!(
        "{} reports over {} grids of {} townships and {} streets",
        args.reports,
        grids.len(),
        args.townships,
        args.townships / 2
    );

    let writer = fixture
        .tree
        .writer("admin", Role::DistrictAdmin, "d", "bench");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    let mut made = 0;
    while made < args.reports {
        let n = args.batch.min(args.reports - made);
        let mut docs: Vec<ReportDoc> = (0..n)
            .map(|i| {
                let grid = &grids[rng.below(grids.len())];
                any_report(&mut rng, made + i, grid, "admin")
            })
            .collect();
        let mut refs: Vec<&mut ReportDoc> = docs.iter_mut().collect();
        ingest_acked(store.as_ref(), &writer, &push_all(&mut refs)).await?;
        made += n;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "ingest (facts kept by triggers): {made} reports in {secs:.1} s, {:.0} reports/s",
        made as f64 / secs
    );

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
            .issue(user, &format!("dev-{user}"), SESSION)
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
    store.close().await;
    Ok(())
}
