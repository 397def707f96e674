//! The `gridsync` binary: `gridsync serve` runs the HTTP API, `gridsync migrate` prepares a
//! database.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use gridsync_server::auth::bootstrap::{self, FirstAdmin};
use gridsync_server::config::Config;
use gridsync_server::http::{AppState, app};

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
    /// Serve the HTTP API (migrates the database first).
    Serve(ServeArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free one (the address is printed).
    #[arg(long, env = "GRIDSYNC_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
}

/// The first admin's password, read from the environment only: a command-line flag would show
/// it to every user of the machine in the process list.
const ADMIN_PASSWORD_ENV: &str = "GRIDSYNC_ADMIN_PASSWORD";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // automerge logs expected rejections of bad input at ERROR; they are answered.
                .unwrap_or_else(|_| "info,automerge=off".into()),
        )
        // stdout carries only what the operator must read (the first password, the address).
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Migrate => {
            gridsync_server::store::open(&cli.db)
                .await
                .with_context(|| format!("could not open and migrate {}", cli.db))?;
            tracing::info!(db = %cli.db, "database is migrated");
        }
        Command::Serve(args) => serve(&cli.db, args).await?,
    }
    Ok(())
}

async fn serve(db: &str, args: ServeArgs) -> anyhow::Result<()> {
    let store = gridsync_server::store::open(db)
        .await
        .with_context(|| format!("could not open and migrate {db}"))?;
    let password = std::env::var(ADMIN_PASSWORD_ENV)
        .ok()
        .filter(|p| !p.is_empty());
    if let Some(admin) = bootstrap::first_start(store.as_ref(), password)
        .await
        .context("could not create the first admin")?
    {
        announce(&admin);
    }
    tokio::spawn(gridsync_server::collect::every(
        store.clone(),
        gridsync_server::config::ORPHAN_COLLECTION_EVERY,
    ));
    let state = AppState::new(store, Config::default())
        .await
        .context("could not load the signing keys")?;
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("could not listen on {}", args.bind))?;
    let addr = listener.local_addr()?;
    say(&format!("gridsync is serving on http://{addr}"));
    tracing::info!(%addr, db, "serving");
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("the server failed")?;
    tracing::info!("stopped");
    Ok(())
}

fn announce(admin: &FirstAdmin) {
    match &admin.generated_password {
        Some(password) => say(&format!(
            "First start: created the account `{}` (district admin).\n\
             Log in with username `{}` and password `{password}`\n\
             This password is shown only this once; keep it safe.",
            admin.username, admin.username
        )),
        None => say(&format!(
            "First start: created the account `{}` (district admin) with the password from \
             {ADMIN_PASSWORD_ENV}.",
            admin.username
        )),
    }
}

/// Messages for the person starting the server go to stdout, apart from the logs.
#[expect(clippy::print_stdout, reason = "talks to the operator on the terminal")]
fn say(message: &str) {
    println!("{message}");
}

/// Resolves on SIGINT or SIGTERM; the server then stops accepting and finishes what is in flight.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}
