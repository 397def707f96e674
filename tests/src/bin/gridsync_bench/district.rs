//! The benchmark's world: a fresh database on the chosen backend, a district with one village
//! of grids and a worker per grid, the real `gridsync serve` on it, and readings of the
//! server's memory and the database's size.

use std::path::PathBuf;

use anyhow::Context;
use gridsync_e2e::Server;
use gridsync_fixtures::databases::fresh_postgres_database;
use gridsync_fixtures::fixture::Fixture;
use gridsync_fixtures::org::OrgTree;
use gridsync_fixtures::people::Person;
use gridsync_server::scope::Role;
use sqlx::Connection;

pub const PASSWORD: &str = "bench password";
/// The village cadre who oversees every grid: the office client that pulls the whole scope.
pub const OFFICE: &str = "office";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database with an org tree and its people, served by a real `gridsync serve`. The
/// SQLite file lives in a temporary directory removed on drop; a Postgres database is created
/// anew on the server GRIDSYNC_TEST_DATABASE_URL names.
pub struct District {
    pub server: Server,
    pub db: String,
    sqlite_file: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

pub fn grid(i: usize) -> String {
    format!("g{i}")
}

pub fn worker(i: usize) -> String {
    format!("w{i}")
}

impl District {
    /// A village of `grids` grids, each with its worker, and the office cadre over them.
    pub async fn start(backend: Backend, grids: usize) -> anyhow::Result<District> {
        let workers = (0..grids).map(|i| Person::new(&worker(i), Role::GridWorker, &grid(i)));
        let office = Person::new(OFFICE, Role::VillageCadre, "v");
        let fixture = Fixture::new(OrgTree::village(grids))
            .people(workers.chain([office]).map(|p| p.password(PASSWORD)));
        District::start_with(backend, &fixture).await
    }

    /// A fresh database seeded with `fixture`, served by a real `gridsync serve`.
    pub async fn start_with(backend: Backend, fixture: &Fixture) -> anyhow::Result<District> {
        let dir = tempfile::tempdir()?;
        let (db, sqlite_file) = match backend {
            Backend::Sqlite => {
                let file = dir.path().join("bench.db");
                (format!("sqlite://{}", file.display()), Some(file))
            }
            Backend::Postgres => (fresh_postgres_database("gridsync_bench").await, None),
        };
        fixture.seed_database(&db).await?;
        let server = Server::start(&db, PASSWORD).await;
        Ok(District {
            server,
            db,
            sqlite_file,
            _dir: dir,
        })
    }

    /// A real `gridsync serve` on a Postgres database an earlier run filled and kept.
    pub async fn reopen(db: &str) -> anyhow::Result<District> {
        Ok(District {
            server: Server::start(db, PASSWORD).await,
            db: db.to_owned(),
            sqlite_file: None,
            _dir: tempfile::tempdir()?,
        })
    }

    /// Replaces the server with a new one on the same database, so that memory readings cover
    /// only what follows.
    pub async fn restart(&mut self) {
        let old = std::mem::replace(&mut self.server, Server::start(&self.db, PASSWORD).await);
        old.stop().await;
    }

    /// The server's peak resident memory so far (VmHWM), in bytes.
    pub fn server_peak_memory(&self) -> anyhow::Result<u64> {
        proc_status_kib(self.server.pid(), "VmHWM:").map(|kib| kib * 1024)
    }

    /// The server's resident memory now (VmRSS), in bytes.
    pub fn server_memory(&self) -> anyhow::Result<u64> {
        proc_status_kib(self.server.pid(), "VmRSS:").map(|kib| kib * 1024)
    }

    /// CPU time the server process has used so far, user and system, in seconds (Postgres's
    /// own processes not included).
    pub fn server_cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.server.pid()))?;
        // Fields after the command name, which is in parentheses and may hold spaces; utime
        // and stime are the 14th and 15th fields of the line, in USER_HZ ticks (100 a second
        // on Linux whatever the kernel's own tick).
        let after_name = stat.rsplit_once(')').context("no command name in stat")?.1;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = |i: usize| -> anyhow::Result<f64> {
            Ok(fields.get(i).context("short stat line")?.parse::<f64>()?)
        };
        Ok((ticks(11)? + ticks(12)?) / 100.0)
    }

    /// The database's size on disk: the SQLite file and its write-ahead log, or what Postgres
    /// reports for the database.
    pub async fn database_size(&self) -> anyhow::Result<u64> {
        match &self.sqlite_file {
            Some(file) => {
                let mut size = std::fs::metadata(file)?.len();
                let wal = file.with_extension("db-wal");
                if let Ok(meta) = std::fs::metadata(wal) {
                    size += meta.len();
                }
                Ok(size)
            }
            None => {
                let mut conn = sqlx::PgConnection::connect(&self.db).await?;
                let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                    .fetch_one(&mut conn)
                    .await?;
                Ok(size as u64)
            }
        }
    }
}

pub fn proc_status_kib(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .with_context(|| format!("no {key} in /proc/{pid}/status"))?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .with_context(|| format!("no number in {line:?}"))?;
    Ok(kib.parse()?)
}
