//! The `gridsync` binary: `gridsync migrate` prepares a database. The HTTP server (`serve`)
//! lands with the server issue; until then the command says so instead of pretending.

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gridsync",
    version,
    about = "Gridsync: offline-first field reporting server"
)]
struct Cli {
    /// Database URL: sqlite://PATH (created if missing) or postgres://USER@HOST/DB.
    #[arg(
        long,
        env = "GRIDSYNC_DB",
        default_value = "sqlite://gridsync.db",
        global = true
    )]
    db: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create or upgrade the database schema.
    Migrate,
    /// Serve the HTTP API (not built yet).
    Serve,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,automerge=off".into()),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Migrate => {
            gridsync_server::store::open(&cli.db)
                .await
                .with_context(|| format!("could not open and migrate {}", cli.db))?;
            tracing::info!(db = %cli.db, "database is migrated");
        }
        Command::Serve => {
            anyhow::bail!(
                "`gridsync serve` is not built yet: the storage layer is in place, the HTTP API \
                 comes next (see README). `gridsync migrate` prepares a database today."
            );
        }
    }
    Ok(())
}
