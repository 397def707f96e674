//! gridsync-bench: the field-reporting workloads of BENCHMARKS.md against a real `gridsync
//! serve` that it starts on a fresh database of each backend, driven over HTTP by simulated
//! phones built on sync-core's replica (or, for `phone`, by the real phone library). Prints one
//! JSON line per workload and backend (`phone`: one per client).
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
mod hub;
mod phone;
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
    /// A village office hub: memory and disk for a village's reports, bytes of a day's relay.
    Hub(hub::Args),
    /// A grid worker uploads large PNGs at once; the server's peak memory for their thumbnails.
    Thumbnails(thumbnails::Args),
    /// The real phone library on a grid worker's phone and an office client: first sync,
    /// opening the store, one edit, a no-op sync.
    Phone(phone::Args),
    /// One step of the phone workload's client, in a process of its own (run by `phone`).
    #[command(hide = true)]
    PhoneClient(phone::ClientArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Workload::PhoneClient(args) = &cli.workload {
        // Talks to the server the parent started; no backend of its own.
        println!("{}", phone::client_step(args)?);
        return Ok(());
    }
    for backend in cli.backend {
        let lines = match &cli.workload {
            Workload::W1(args) => vec![upload::run(backend, args).await?],
            Workload::W2(args) => vec![scope::no_op(backend, args).await?],
            Workload::W3(args) => vec![scope::incremental(backend, args).await?],
            Workload::W4(args) => vec![sustained::run(backend, args).await?],
            Workload::W5(args) => vec![scale::run(backend, args).await?],
            Workload::Thumbnails(args) => vec![thumbnails::run(backend, args).await?],
            Workload::Hub(args) => vec![hub::run(backend, args).await?],
            Workload::Phone(args) => phone::run(backend, args).await?,
            Workload::PhoneClient(_) => anyhow::bail!("phone-client runs one step on its own"),
        };
        for line in lines {
            println!("{line}");
        }
    }
    Ok(())
}
