//! Settings of a run, from flags, `GRIDSYNC_*` variables and the optional TOML config file, in
//! that order of precedence, then the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{Cli, Command, Error, Result};
use crate::config::Config;

pub const DEFAULT_DB: &str = "sqlite://gridsync.db";
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// The keys a config file may hold, each also a flag and a variable (README: Configuration).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub db: Option<String>,
    pub bind: Option<SocketAddr>,
    pub access_token_minutes: Option<u64>,
    pub refresh_token_days: Option<u64>,
    pub login_max_failures: Option<u32>,
    pub login_window_minutes: Option<u64>,
}

/// What a command runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub db: String,
    pub bind: SocketAddr,
    pub api: Config,
}

impl Settings {
    /// Merges the command line (flags and variables, which clap has already merged) over the
    /// config file over the defaults.
    pub fn resolve(cli: &Cli) -> Result<Settings> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let serve = match &cli.command {
            Command::Serve(args) => Some(args),
            _ => None,
        };
        let defaults = Config::default();
        let minutes = |m: u64| Duration::from_secs(m * 60);
        let api = Config {
            access_ttl: serve
                .and_then(|s| s.access_token_minutes)
                .or(file.access_token_minutes)
                .map_or(defaults.access_ttl, minutes),
            refresh_ttl: serve
                .and_then(|s| s.refresh_token_days)
                .or(file.refresh_token_days)
                .map_or(defaults.refresh_ttl, |d| minutes(d * 24 * 60)),
            login_max_failures: serve
                .and_then(|s| s.login_max_failures)
                .or(file.login_max_failures)
                .unwrap_or(defaults.login_max_failures),
            login_window: serve
                .and_then(|s| s.login_window_minutes)
                .or(file.login_window_minutes)
                .map_or(defaults.login_window, minutes),
            ..defaults
        };
        if api.access_ttl.is_zero() || api.refresh_ttl.is_zero() || api.login_window.is_zero() {
            return Err(Error::Invalid(
                "token lifetimes and the login window must be at least 1".into(),
            ));
        }
        Ok(Settings {
            db: cli
                .db
                .clone()
                .or(file.db)
                .unwrap_or_else(|| DEFAULT_DB.into()),
            bind: serve
                .and_then(|s| s.bind)
                .or(file.bind)
                .unwrap_or_else(|| DEFAULT_BIND.parse().expect("the default address parses")),
            api,
        })
    }
}

fn read_file(path: &Path) -> Result<FileSettings> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start].matches('\n').count() + 1);
        Error::Config {
            path: path.to_owned(),
            message: match line {
                Some(line) => format!("line {line}: {}", e.message().trim()),
                None => e.message().trim().to_owned(),
            },
        }
    })
}

/// The file of a `sqlite:` URL; `None` for other databases and in-memory SQLite.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_read_from_every_url_form() {
        assert_eq!(sqlite_path("sqlite://a/b.db"), Some("a/b.db".into()));
        assert_eq!(
            sqlite_path("sqlite:///tmp/x.db?mode=rwc"),
            Some("/tmp/x.db".into())
        );
        assert_eq!(sqlite_path("sqlite:c.db"), Some("c.db".into()));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://u@h/d"), None);
    }
}
