//! Settings of a run, from flags, `GRIDSYNC_*` variables and the optional TOML config file, in
//! that order of precedence, then the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{Cli, Command, Error, Result};
use crate::auth::client_addr::{Cidr, TrustedProxies};
use crate::config::Config;
use crate::http::metrics::token_digest;

pub const DEFAULT_DB: &str = "sqlite://gridsync.db";
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// The bearer token `GET /metrics` requires, when set.
pub const METRICS_TOKEN_ENV: &str = "GRIDSYNC_METRICS_TOKEN";

/// The keys a config file may hold, each also a flag and a variable (README: Configuration).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub db: Option<String>,
    pub bind: Option<SocketAddr>,
    pub access_token_minutes: Option<u64>,
    pub refresh_token_days: Option<u64>,
    pub offline_grant_days: Option<u64>,
    pub login_max_failures: Option<u32>,
    pub login_window_minutes: Option<u64>,
    pub trusted_proxies: Option<Vec<Cidr>>,
    pub sync_memory_mib: Option<u64>,
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
        let minutes = |m: u64| Duration::from_secs(m.saturating_mul(60));
        let api = Config {
            access_ttl: serve
                .and_then(|s| s.access_token_minutes)
                .or(file.access_token_minutes)
                .map_or(defaults.access_ttl, minutes),
            refresh_ttl: serve
                .and_then(|s| s.refresh_token_days)
                .or(file.refresh_token_days)
                .map_or(defaults.refresh_ttl, |d| minutes(d.saturating_mul(24 * 60))),
            offline_grant_ttl: serve
                .and_then(|s| s.offline_grant_days)
                .or(file.offline_grant_days)
                .map_or(defaults.offline_grant_ttl, |d| {
                    minutes(d.saturating_mul(24 * 60))
                }),
            login_max_failures: serve
                .and_then(|s| s.login_max_failures)
                .or(file.login_max_failures)
                .unwrap_or(defaults.login_max_failures),
            login_window: serve
                .and_then(|s| s.login_window_minutes)
                .or(file.login_window_minutes)
                .map_or(defaults.login_window, minutes),
            trusted_proxies: serve
                .map(|s| s.trusted_proxies.clone())
                .filter(|given| !given.is_empty())
                .or(file.trusted_proxies)
                .map_or(defaults.trusted_proxies, TrustedProxies::new),
            sync_budget_bytes: serve
                .and_then(|s| s.sync_memory_mib)
                .or(file.sync_memory_mib)
                .map_or(defaults.sync_budget_bytes, |m| {
                    usize::try_from(m.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
                }),
            // A secret, so from the environment only, like the first admin's password.
            metrics_token_sha256: std::env::var(METRICS_TOKEN_ENV)
                .ok()
                .filter(|t| !t.is_empty())
                .map(|t| token_digest(&t)),
            ..defaults
        };
        if api.access_ttl.is_zero()
            || api.refresh_ttl.is_zero()
            || api.offline_grant_ttl.is_zero()
            || api.login_window.is_zero()
        {
            return Err(Error::Invalid(
                "token lifetimes and the login window must be at least 1".into(),
            ));
        }
        if api.sync_budget_bytes == 0 {
            return Err(Error::Invalid(
                "the sync memory must be at least 1 MiB".into(),
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
    use clap::Parser;

    fn resolve(args: &[&str]) -> Result<Settings> {
        let mut argv = vec!["gridsync"];
        argv.extend_from_slice(args);
        Settings::resolve(&Cli::try_parse_from(argv).expect("arguments parse"))
    }

    fn blocks(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|b| b.parse().expect("block")).collect())
    }

    #[test]
    fn trusted_proxies_come_from_repeated_or_comma_separated_flags_over_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("gridsync.toml");
        std::fs::write(&file, "trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n").expect("write");
        let file = file.to_str().expect("utf-8");

        let none = resolve(&["serve"]).expect("settings");
        assert!(none.api.trusted_proxies.is_empty(), "none by default");
        let flags = resolve(&[
            "serve",
            "--trusted-proxy",
            "192.0.2.7",
            "--trusted-proxy=172.16.0.0/12,2001:db8::/32",
        ])
        .expect("settings");
        assert_eq!(
            flags.api.trusted_proxies,
            blocks(&["192.0.2.7", "172.16.0.0/12", "2001:db8::/32"])
        );
        let from_file = resolve(&["--config", file, "serve"]).expect("settings");
        assert_eq!(
            from_file.api.trusted_proxies,
            blocks(&["10.0.0.0/8", "::1"])
        );
        assert_eq!(
            from_file.api.trusted_proxies.to_string(),
            "10.0.0.0/8,::1/128"
        );
        assert_eq!(none.api.trusted_proxies.to_string(), "none");
        let over = resolve(&["--config", file, "serve", "--trusted-proxy", "192.0.2.7"])
            .expect("settings");
        assert_eq!(over.api.trusted_proxies, blocks(&["192.0.2.7"]));
    }

    #[test]
    fn a_bad_trusted_proxy_is_refused_where_it_is_written() {
        let err = Cli::try_parse_from(["gridsync", "serve", "--trusted-proxy", "10.0.0.0/33"])
            .expect_err("a bad flag");
        assert!(err.to_string().contains("10.0.0.0/33"), "{err}");
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("gridsync.toml");
        std::fs::write(
            &file,
            "bind = \"127.0.0.1:1\"\ntrusted_proxies = [\"proxy.local\"]\n",
        )
        .expect("write");
        let err =
            resolve(&["--config", file.to_str().expect("utf-8"), "serve"]).expect_err("a bad key");
        let message = err.to_string();
        assert!(
            message.contains("line 2") && message.contains("proxy.local"),
            "{message}"
        );
    }

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
