//! The `gridsync` binary: logging, the command line (`gridsync_server::cli`), and one line on
//! failure.

use std::process::ExitCode;

use clap::Parser;
use gridsync_server::cli::{self, Cli, Command};
use gridsync_server::telemetry::{self, LogFormat};

fn main() -> ExitCode {
    gridsync_server::heap::return_large_blocks();
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("gridsync: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
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
