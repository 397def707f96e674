//! The `gridsync` binary: logging, the command line (`gridsync_server::cli`), and one line on
//! failure.

use std::process::ExitCode;

use clap::Parser;
use gridsync_server::cli::{self, Cli, Command};
use gridsync_server::telemetry::{self, LogFormat};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(match &cli.command {
        Command::Serve(args) => args.log_format,
        _ => LogFormat::default(),
    });
    match cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::debug!(error = ?e, "command failed");
            eprintln!("gridsync: {}", cli::friendly::explain(&e));
            ExitCode::FAILURE
        }
    }
}
