//! W5, scale: a district of a million reports in Postgres, and what a township costs in it. A
//! few thousand distinct reports are pushed through the server; SQL then copies them (new ids
//! and sequence numbers, same bytes and grid) until the district holds the number asked for.
//! The server is restarted on the full database and measured: an office client pulling one
//! township whole, its no-op sync, statistics and the report list for township staff and for
//! the district, and the server's memory throughout.
//!
//! A copy's stored bytes name its template's id inside the document; nothing here loads them
//! on the server, and the client keys documents by the id the server sends.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gridsync_fixtures::fixture::Fixture;
use gridsync_fixtures::org::OrgTree;
use gridsync_fixtures::people::Person;
use gridsync_fixtures::phone::Phone;
use gridsync_fixtures::work::{Rng, any_report};
use gridsync_server::scope::Role;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::district::{Backend, District, PASSWORD};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Reports in the district.
    #[arg(long, default_value_t = 1_000_000)]
    pub reports: usize,
    /// Distinct reports pushed through the server; the rest are copies of them made in SQL.
    #[arg(long, default_value_t = 2_000)]
    pub templates: usize,
    /// Townships, each of 10 villages of 5 grids.
    #[arg(long, default_value_t = 20)]
    pub townships: usize,
    /// Timed runs of each statistics and list request; the median and the fastest are reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Measure the database an earlier W5 run filled (its URL is printed on standard error)
    /// instead of generating a new one; --reports, --templates and --townships are then ignored.
    #[arg(long)]
    pub db: Option<String>,
}

/// The district's head, who pushes the templates and reads district-wide statistics.
const ADMIN: &str = "admin";
/// Township staff of t1: statistics and the report list, without clearance.
const STAFF: &str = "staff";
/// An office client whose sync scope is township t1 (every kind): no role of DOMAIN.md syncs a
/// whole township, so a village cadre is placed at the township to get a scope of that size.
const TOWNSHIP_OFFICE: &str = "township-office";

pub async fn run(backend: Backend, args: &Args) -> anyhow::Result<Value> {
    if backend == Backend::Sqlite {
        return Ok(json!({
            "workload": "W5 scale", "backend": backend,
            "skipped": "W5 generates its reports with Postgres SQL; run it with --backend postgres",
        }));
    }
    if args.templates == 0 || args.reports < args.templates {
        bail!("--reports must be at least --templates, which must be at least 1");
    }
    let (mut district, generated) = match &args.db {
        Some(db) => (District::reopen(db).await?, Value::Null),
        None => generate(args).await?,
    };
    district.restart().await;
    let memory_at_start = district.server_memory()?;
    let mut memory = vec![memory_at_start];
    let base = district.server.base.clone();

    // An office client whose scope is township t1 pulls it whole, then syncs again with
    // nothing new: the page the office waits for first, the whole township, and W2 at scale.
    let mut office = Phone::login(&base, TOWNSHIP_OFFICE, PASSWORD, "township-pc").await?;
    let started = Instant::now();
    let first = office.pull_page().await?;
    let first_page = started.elapsed();
    let (first_docs, mut more) = (first.docs, first.more);
    let mut docs = first_docs;
    while more {
        let page = office.pull_page().await?;
        docs += page.docs;
        more = page.more;
    }
    let pull_secs = started.elapsed().as_secs_f64();
    let pulled = office.traffic;
    memory.push(district.server_memory()?);
    let started = Instant::now();
    office.sync().await?;
    let no_op_ms = ms(started.elapsed());
    let no_op = office.traffic.since(pulled);
    memory.push(district.server_memory()?);

    let staff = Phone::login(&base, STAFF, PASSWORD, "staff-pc").await?;
    let admin = Phone::login(&base, ADMIN, PASSWORD, "admin-pc").await?;
    let october = "from=2026-10-01&to=2026-10-31";
    let year = "from=2026-01-01&to=2026-12-31";
    let requests = [
        (&staff, format!("/api/v1/stats/canvass?{october}")),
        (&staff, format!("/api/v1/stats/canvass?{year}")),
        (&staff, format!("/api/v1/stats/disputes?{year}")),
        (&staff, "/api/v1/stats/drug".to_owned()),
        (&staff, "/api/v1/reports?org=t1&limit=50".to_owned()),
        (
            &staff,
            "/api/v1/reports?org=t1&q=%E5%92%8C%E8%A7%A3&limit=50".to_owned(),
        ),
        (&admin, format!("/api/v1/stats/canvass?{year}")),
        (&admin, format!("/api/v1/stats/disputes?{year}")),
        (&admin, "/api/v1/stats/drug".to_owned()),
        (&admin, "/api/v1/reports?limit=50".to_owned()),
    ];
    let mut timings = Vec::new();
    for (who, path) in requests {
        let mut times = Vec::with_capacity(args.runs);
        let mut bytes = 0;
        for _ in 0..args.runs.max(1) {
            let (took, size) = who.get(&path).await?;
            times.push(took);
            bytes = size;
        }
        times.sort();
        timings.push(json!({
            "user": who.username, "path": path, "bytes": bytes,
            "median_ms": ms(times[times.len() / 2]), "min_ms": ms(times[0]),
        }));
        memory.push(district.server_memory()?);
    }

    Ok(json!({
        "workload": "W5 scale",
        "backend": backend,
        "reports": reports(&district.db).await?,
        "generated": generated,
        "database_bytes": district.database_size().await?,
        "township_pull": {
            "docs": docs,
            "first_page_ms": ms(first_page),
            "first_page_docs": first_docs,
            "requests": pulled.requests,
            "seconds": pull_secs,
            "server_wait_seconds": pulled.wait.as_secs_f64(),
            "docs_per_second_served": docs as f64 / pulled.wait.as_secs_f64(),
            "body_bytes_down": pulled.body_down,
        },
        "township_no_op_sync": {
            "requests": no_op.requests,
            "body_bytes": no_op.body_up + no_op.body_down,
            "milliseconds": no_op_ms,
            "server_wait_ms": ms(no_op.wait),
        },
        "requests": timings,
        "server_memory_bytes": {
            "start": memory_at_start,
            "max": memory.iter().max(),
            "end": memory.last(),
        },
        "server_peak_memory_bytes": district.server_peak_memory()?,
    }))
}

/// A new district of `args.reports` reports: the templates pushed through the server, then
/// copied in SQL. Returns it with what the generation took.
async fn generate(args: &Args) -> anyhow::Result<(District, Value)> {
    let people = [
        Person::new(ADMIN, Role::DistrictAdmin, "d"),
        Person::new(STAFF, Role::TownshipStaff, "t1"),
        Person::new(TOWNSHIP_OFFICE, Role::VillageCadre, "t1"),
    ];
    let fixture =
        Fixture::new(OrgTree::wide(args.townships, 0)).people(people.map(|p| p.password(PASSWORD)));
    let grids = fixture.tree.grids();
    let district = District::start_with(Backend::Postgres, &fixture).await?;
    eprintln!(
        "W5: generating in {} (kept; measure it again with --db)",
        district.db
    );

    let started = Instant::now();
    let mut pusher = Phone::login(&district.server.base, ADMIN, PASSWORD, "admin-pc").await?;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for n in 0..args.templates {
        let doc = any_report(&mut rng, n, &grids[n % grids.len()], ADMIN);
        pusher.replica.insert(doc);
    }
    pusher.push().await?;
    let templates_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    copy_templates(
        &district.db,
        args.templates,
        args.reports / args.templates - 1,
    )
    .await?;
    let copy_secs = started.elapsed().as_secs_f64();
    let generated = json!({
        "templates": args.templates, "townships": args.townships,
        "seconds": {"template_pushes": templates_secs, "sql_copies": copy_secs},
    });
    Ok((district, generated))
}

async fn reports(db: &str) -> anyhow::Result<i64> {
    let mut conn = sqlx::PgConnection::connect(db).await?;
    Ok(sqlx::query_scalar("SELECT count(*) FROM documents")
        .fetch_one(&mut conn)
        .await?)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// Copies each of the `templates` stored reports `copies` times, in statements of about
/// 100,000 rows: a new id and sequence number, everything else as stored, so the triggers keep
/// the statistics tables as an ingest would.
async fn copy_templates(db: &str, templates: usize, copies: usize) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(db).await?;
    let base: i64 = sqlx::query_scalar("SELECT max(seq) FROM documents")
        .fetch_one(&mut conn)
        .await?;
    let per_statement = (100_000 / templates).max(1);
    let mut done = 0;
    while done < copies {
        let upto = (done + per_statement).min(copies);
        sqlx::query(
            "INSERT INTO documents (id, kind, schema_version, grid_id, org_path, restricted, \
             assigned_to, seq, heads, snapshot, snapshot_seq, incremental_bytes, projection, \
             status, review_state, has_conflicts, problems, created_by, created_at, updated_at, \
             public_text) \
             SELECT md5(t.id || '/' || n)::uuid::text, t.kind, t.schema_version, t.grid_id, \
             t.org_path, t.restricted, t.assigned_to, $1 + (n - 1) * $4 + t.rank, t.heads, \
             t.snapshot, $1 + (n - 1) * $4 + t.rank, 0, t.projection, t.status, t.review_state, \
             t.has_conflicts, t.problems, t.created_by, t.created_at, t.updated_at, t.public_text \
             FROM (SELECT d.*, row_number() OVER (ORDER BY d.seq) AS rank \
                   FROM documents d WHERE d.seq <= $1) t \
             CROSS JOIN generate_series($2::bigint, $3::bigint) AS n",
        )
        .bind(base)
        .bind(done as i64 + 1)
        .bind(upto as i64)
        .bind(templates as i64)
        .execute(&mut conn)
        .await
        .context("copying templates")?;
        done = upto;
        eprintln!("W5: {done} of {copies} copies of each template");
    }
    sqlx::query("SELECT setval('change_seq', (SELECT max(seq) FROM documents))")
        .execute(&mut conn)
        .await?;
    sqlx::query("ANALYZE").execute(&mut conn).await?;
    Ok(())
}
