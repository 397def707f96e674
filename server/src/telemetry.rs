//! Logging: a human format for a terminal, JSON lines for a log collector, and the filter both use.

use tracing_subscriber::EnvFilter;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event, with the request's span fields (its id) in front.
    #[default]
    Human,
    /// One JSON object per event: `timestamp`, `level`, `fields`, `target` and the `span` with
    /// the request id, ready for Loki, Elasticsearch or journald's JSON export.
    Json,
}

/// Installs the global subscriber. `RUST_LOG` overrides the default filter.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        // automerge logs expected rejections of bad input at ERROR; they are answered.
        .unwrap_or_else(|_| "info,automerge=off".into());
    // stdout carries only what the operator must read (the first password, the address).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}
