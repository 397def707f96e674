//! The `gridsync` binary: logging, the command line (`gridsync_server::cli`), and one line on
//! failure.

use std::process::ExitCode;

use clap::Parser;
use gridsync_server::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
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
    match cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::debug!(error = ?e, "command failed");
            eprintln!("gridsync: {}", cli::friendly::explain(&e));
            ExitCode::FAILURE
        }
    }
}
