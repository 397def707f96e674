//! The `gridsync` binary: logging, the command line (`gridsync_server::cli`), and one line on
//! failure.

use std::process::ExitCode;

use clap::Parser;
use gridsync_server::cli::{self, Cli, Command};
use gridsync_server::telemetry::{self, LogFormat};

fn main() -> ExitCode {
    return_large_blocks();
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

/// glibc raises its mmap threshold to the largest block freed so far, after which blocks of that
/// size come from the heap and stay resident once freed: every login's 19 MiB argon2 block, and
/// every large pull page, would add to the server's memory for the life of the process. A fixed
/// threshold hands each large block back to the system as soon as it is freed (the server's
/// peak memory in W1 fell from 171 MB to 65 MB; BENCHMARKS.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_blocks() {
    // glibc's default threshold, fixed. mallopt only sets a parameter of the allocator and
    // takes its lock, so it is safe to call at any time.
    const THRESHOLD: libc::c_int = 128 * 1024;
    // SAFETY: see above; the function has no other precondition.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_blocks() {}
