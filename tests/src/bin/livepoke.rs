//! The live-poke latency: one user edits a report and pushes it to node A, another listens on
//! node B's `/api/v1/live` (B may be A); the time from starting the push to receiving the poke,
//! over many pokes, as p50/p99. Pokes are spaced past the server's coalescing window, so each
//! is measured on its own.
//!
//! ```text
//! livepoke --db URL --a http://127.0.0.1:18080 [--b http://127.0.0.1:18081] [--pokes 1000]
//! ```
//!
//! `--db` names the servers' database, which it seeds (the district of the field tests) before
//! the servers start or while they run.

// The report is the standard output.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gridsync_core::DocId;
use gridsync_e2e::field::{self, GRID, PASSWORD};
use gridsync_e2e::percentile_ms;
use gridsync_fixtures::phone::Phone;
use gridsync_server::http::live::COALESCE;

struct Args {
    db: String,
    a: String,
    b: Option<String>,
    pokes: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        db: String::new(),
        a: String::new(),
        b: None,
        pokes: 1000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--db" => args.db = value,
            "--a" => args.a = value,
            "--b" => args.b = Some(value),
            "--pokes" => args.pokes = value.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    if args.db.is_empty() || args.a.is_empty() || args.pokes == 0 {
        bail!("usage: livepoke --db URL --a URL [--b URL] [--pokes N]");
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    field::seed(&args.db).await;
    let b = args.b.clone().unwrap_or_else(|| args.a.clone());
    let mut worker = Phone::login(&args.a, "wang", PASSWORD, "livepoke pusher")
        .await
        .expect("login");
    let listener = Phone::login(&b, "li", PASSWORD, "livepoke listener")
        .await
        .expect("login");
    let mut live = listener.listen().await.expect("listen");

    let id = DocId::from_u128(u128::from(std::process::id()) << 64 | 1);
    let mut poke = Vec::with_capacity(args.pokes);
    let mut push = Vec::with_capacity(args.pokes);
    for i in 0..args.pokes {
        worker.edit(id, GRID, &format!("place {i}"), 1_000 + i as i64);
        let started = Instant::now();
        // The poke may well arrive before the push's answer: listen while pushing.
        let (pushed, poked) = tokio::join!(
            async {
                worker.push().await.expect("push");
                started.elapsed()
            },
            async {
                live.poke(Duration::from_secs(10))
                    .await
                    .map(|_| started.elapsed())
            }
        );
        push.push(pushed);
        poke.push(poked.with_context(|| format!("poke {i} did not come within 10 s"))?);
        // Past the coalescing window, so the next poke goes out at once.
        tokio::time::sleep(COALESCE + Duration::from_millis(10)).await;
    }
    let nodes = if args.b.is_some() {
        "two nodes"
    } else {
        "one node"
    };
    println!("{} pokes, {nodes}:", args.pokes);
    for (what, mut times) in [("push to poke", poke), ("push answered", push)] {
        times.sort();
        println!(
            "  {what}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            percentile_ms(&times, 0.50),
            percentile_ms(&times, 0.99),
            percentile_ms(&times, 1.0)
        );
    }
    Ok(())
}
