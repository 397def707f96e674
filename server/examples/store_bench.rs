//! Store benchmark: ingest and pull rates of a store against the same database's bare batched
//! INSERT and SELECT of the same bytes, which bound what the store could reach.
//!
//! ```text
//! cargo run --release -p gridsync-server --example store_bench -- --db sqlite:///tmp/bench.db
//! cargo run --release -p gridsync-server --example store_bench -- --db postgres://postgres@127.0.0.1/bench
//! ```
//!
//! The database must be empty (a new SQLite path, or a freshly created Postgres database).

// A benchmark's report is its standard output.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use anyhow::bail;
use clap::Parser;
use gridsync_core::DocId;
use gridsync_core::protocol::{Push, PushDoc};
use gridsync_core::replica::Replica;
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_fixtures::fixture::Fixture;
use gridsync_fixtures::org::OrgTree;
use gridsync_fixtures::reports::ingest_acked;
use gridsync_server::scope::{Role, Scope};
use gridsync_server::store::{Store, Writer};
use gridsync_server::sync::pull;
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Database URL of an empty database.
    #[arg(long)]
    db: String,
    /// Reports to create.
    #[arg(long, default_value_t = 5_000)]
    docs: usize,
    /// Documents per push (one change each in the edit phase).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Byte budget of each pull page.
    #[arg(long, default_value_t = 256 * 1024)]
    budget: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let district = Fixture::new(OrgTree::one_grid());
    let store = district.seed_new_database(&args.db).await?;
    let writer = district
        .tree
        .writer("w1", Role::DistrictAdmin, "d", "phone");
    let scope = Scope::for_role("office", Role::DistrictAdmin, "/d/");

    let mut docs: Vec<ReportDoc> = (0..args.docs)
        .map(|i| {
            let editor = Editor::new("w1", 1_000);
            let mut doc = ReportDoc::create(DocId::new_v4(), "dispute_check", 1, "g1", &editor)
                .expect("create");
            doc.set_field("place", &json!(format!("村口 {i}")), &editor)
                .expect("set");
            doc
        })
        .collect();

    let created = ingest_in_batches(store.as_ref(), &writer, &mut docs, args.batch, &[]).await?;
    report(
        "ingest, new reports",
        created.changes,
        created.secs,
        "changes",
    );

    let mut office = Replica::new();
    let cold = pull_all(store.as_ref(), &scope, &mut office, args.budget).await?;
    report("pull, cold (snapshots)", cold.docs, cold.secs, "docs");
    report(
        "  of which the server's pull",
        cold.docs,
        cold.server_secs,
        "docs",
    );
    println!("  {} pages, {} body bytes", cold.pages, cold.bytes);

    let acked: Vec<_> = docs.iter_mut().map(ReportDoc::heads).collect();
    for (i, doc) in docs.iter_mut().enumerate() {
        doc.set_field(
            "description",
            &json!(format!("调解中 {i}")),
            &Editor::new("w1", 2_000),
        )
        .expect("edit");
    }
    let edited = ingest_in_batches(store.as_ref(), &writer, &mut docs, args.batch, &acked).await?;
    report(
        "ingest, one-field edits",
        edited.changes,
        edited.secs,
        "changes",
    );

    let warm = pull_all(store.as_ref(), &scope, &mut office, args.budget).await?;
    report("pull, incremental (changes)", warm.docs, warm.secs, "docs");
    report(
        "  of which the server's pull",
        warm.docs,
        warm.server_secs,
        "docs",
    );
    println!("  {} pages, {} body bytes", warm.pages, warm.bytes);

    store.close().await;

    let insert = bare::insert(&args.db, &edited.bytes, args.batch).await?;
    report(
        "bare batched INSERT of the edit bytes",
        edited.bytes.len(),
        insert,
        "rows",
    );
    let select = bare::select(&args.db).await?;
    report("bare SELECT of every snapshot", select.0, select.1, "rows");
    Ok(())
}

fn report(what: &str, n: usize, secs: f64, unit: &str) {
    println!(
        "{what}: {n} {unit} in {secs:.2} s = {:.0} {unit}/s",
        n as f64 / secs
    );
}

struct Ingested {
    changes: usize,
    secs: f64,
    /// Every change pushed, for the bare INSERT.
    bytes: Vec<Vec<u8>>,
}

/// Pushes each document's changes past `acked` (all when empty), `batch` documents per push.
async fn ingest_in_batches(
    store: &dyn Store,
    writer: &Writer,
    docs: &mut [ReportDoc],
    batch: usize,
    acked: &[Vec<automerge::ChangeHash>],
) -> anyhow::Result<Ingested> {
    let pushes: Vec<Push> = docs
        .chunks_mut(batch)
        .enumerate()
        .map(|(b, chunk)| Push {
            docs: chunk
                .iter_mut()
                .enumerate()
                .map(|(i, doc)| PushDoc {
                    doc: doc.id(),
                    changes: doc.changes_since(acked.get(b * batch + i).map_or(&[], Vec::as_slice)),
                })
                .collect(),
        })
        .collect();
    let bytes: Vec<Vec<u8>> = pushes
        .iter()
        .flat_map(|p| p.docs.iter().flat_map(|d| d.changes.iter().cloned()))
        .collect();
    let start = Instant::now();
    for push in &pushes {
        ingest_acked(store, writer, push).await?;
    }
    Ok(Ingested {
        changes: bytes.len(),
        secs: start.elapsed().as_secs_f64(),
        bytes,
    })
}

struct Pulled {
    docs: usize,
    pages: usize,
    bytes: usize,
    secs: f64,
    /// Of `secs`, the time spent in the server's pull (`sync::pull::pull`) (the rest is the client applying pages).
    server_secs: f64,
}

async fn pull_all(
    store: &dyn Store,
    scope: &Scope,
    replica: &mut Replica,
    budget: u32,
) -> anyhow::Result<Pulled> {
    let mut pulled = Pulled {
        docs: 0,
        pages: 0,
        bytes: 0,
        secs: 0.0,
        server_secs: 0.0,
    };
    let start = Instant::now();
    loop {
        let pull = replica.build_pull(budget);
        let served = Instant::now();
        let result = pull::pull(store, scope, Some("office"), &pull).await?;
        pulled.server_secs += served.elapsed().as_secs_f64();
        pulled.pages += 1;
        pulled.bytes += result
            .docs
            .iter()
            .map(|d| match &d.body {
                gridsync_core::protocol::PullBody::Snapshot(s) => s.len(),
                gridsync_core::protocol::PullBody::Changes(c) => c.iter().map(Vec::len).sum(),
            })
            .sum::<usize>();
        pulled.docs += result.docs.len();
        let summary = replica.apply_pull_result(result)?;
        if summary.diverged {
            bail!("the digest disagreed after the pull");
        }
        if !summary.more {
            break;
        }
    }
    pulled.secs = start.elapsed().as_secs_f64();
    Ok(pulled)
}

/// The limit: the same bytes through the same database with no logic around them.
mod bare {
    use std::time::Instant;

    use sqlx::{Connection, PgConnection, SqliteConnection};

    /// Inserts `rows` in transactions of `batch` rows; returns the seconds taken.
    pub async fn insert(url: &str, rows: &[Vec<u8>], batch: usize) -> anyhow::Result<f64> {
        let start;
        if url.starts_with("sqlite:") {
            let mut conn = SqliteConnection::connect(url).await?;
            sqlx::query("PRAGMA synchronous = FULL")
                .execute(&mut conn)
                .await?;
            sqlx::query("CREATE TABLE bench_raw (id INTEGER PRIMARY KEY, bytes BLOB NOT NULL)")
                .execute(&mut conn)
                .await?;
            start = Instant::now();
            for chunk in rows.chunks(batch) {
                let mut tx = conn.begin().await?;
                for bytes in chunk {
                    sqlx::query("INSERT INTO bench_raw (bytes) VALUES (?1)")
                        .bind(bytes)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
            let secs = start.elapsed().as_secs_f64();
            // Closed before the process exits (`Store::close` says why).
            conn.close().await?;
            return Ok(secs);
        } else {
            let mut conn = PgConnection::connect(url).await?;
            sqlx::query("CREATE TABLE bench_raw (id BIGSERIAL PRIMARY KEY, bytes BYTEA NOT NULL)")
                .execute(&mut conn)
                .await?;
            start = Instant::now();
            for chunk in rows.chunks(batch) {
                let mut tx = conn.begin().await?;
                for bytes in chunk {
                    sqlx::query("INSERT INTO bench_raw (bytes) VALUES ($1)")
                        .bind(bytes)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(start.elapsed().as_secs_f64())
    }

    /// Reads every document's id and snapshot; returns (rows, seconds).
    pub async fn select(url: &str) -> anyhow::Result<(usize, f64)> {
        let sql = "SELECT id, snapshot FROM documents ORDER BY seq";
        let (rows, secs) = if url.starts_with("sqlite:") {
            let mut conn = SqliteConnection::connect(url).await?;
            let start = Instant::now();
            let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(sql).fetch_all(&mut conn).await?;
            let secs = start.elapsed().as_secs_f64();
            conn.close().await?;
            (rows, secs)
        } else {
            let mut conn = PgConnection::connect(url).await?;
            let start = Instant::now();
            let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(sql).fetch_all(&mut conn).await?;
            (rows, start.elapsed().as_secs_f64())
        };
        Ok((rows.len(), secs))
    }
}
