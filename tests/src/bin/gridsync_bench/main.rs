//! gridsync-bench: the field-reporting workloads of BENCHMARKS.md against a real `gridsync
//! serve` that it starts on a fresh database of each backend, driven over HTTP by simulated
//! phones built on sync-core's replica. Prints one JSON line per workload and backend.
//!
//! ```text
//! cargo build --release --workspace
//! ./target/release/gridsync-bench w1 --backend sqlite --backend postgres
//! ```
//!
//! Postgres databases are created on the server GRIDSYNC_TEST_DATABASE_URL names.

// The figures are the standard output.
#![allow(clippy::print_stdout)]

mod district;
mod scale;
mod scope;
mod sustained;
mod thumbnails;
mod upload;

use clap::{Parser, Subcommand};
use district::Backend;

#[derive(Parser)]
#[command(about = "Gridsync's field-reporting workloads, one JSON line each")]
struct Cli {
    /// Backends to run against, in turn.
    #[arg(long, value_enum, default_values_t = [Backend::Sqlite, Backend::Postgres], global = true)]
    backend: Vec<Backend>,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand)]
enum Workload {
    /// W1: phones upload offline edits, then an office client pulls the whole scope.
    W1(upload::Args),
    /// W2: an office client holding a large scope syncs with nothing new.
    W2(scope::Args),
    /// W3: one field of one report changes in that scope; bytes against the raw change.
    W3(scope::Args),
    /// W4: many devices each syncing a small change every few seconds.
    W4(sustained::Args),
    /// W5: a district of a million reports in Postgres; a township's pull, statistics, memory.
    W5(scale::Args),
    /// A grid worker uploads large PNGs at once; the server's peak memory for their thumbnails.
    Thumbnails(thumbnails::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    for backend in cli.backend {
        let line = match &cli.workload {
            Workload::W1(args) => upload::run(backend, args).await?,
            Workload::W2(args) => scope::no_op(backend, args).await?,
            Workload::W3(args) => scope::incremental(backend, args).await?,
            Workload::W4(args) => sustained::run(backend, args).await?,
            Workload::W5(args) => scale::run(backend, args).await?,
            Workload::Thumbnails(args) => thumbnails::run(backend, args).await?,
        };
        println!("{line}");
    }
    Ok(())
}
