//! The phone library: the real `gridsync-mobile` client (the `FieldClient` UniFFI exports,
//! called from Rust) on a grid worker's phone holding 2,000 reports and on an office client
//! (the village cadre) holding 45,000. For each: the first full sync, opening the store afresh
//! (time until the reports are listed, and resident memory), one edit of one field (time, and
//! how much the store's files grew), and a sync with nothing new on either side.
//!
//! Simulated phones push the reports through the server first (ten grids; the worker's grid
//! holds the worker's reports, the other nine the rest of the village). Each step of the real
//! client runs in a process of its own (this binary's hidden `phone-client`), so that its
//! resident memory counts the client alone, not the seeding nor an earlier client.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use gridsync_fixtures::fixture::Fixture;
use gridsync_fixtures::org::OrgTree;
use gridsync_fixtures::people::Person;
use gridsync_fixtures::phone::Phone;
use gridsync_fixtures::work::{follow_up, new_dispute};
use gridsync_mobile::{FieldClient, FieldValue};
use gridsync_server::scope::Role;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::district::{Backend, District, OFFICE, PASSWORD, grid, proc_status_kib, worker};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Reports on the grid worker's phone (all of one grid).
    #[arg(long, default_value_t = 2_000)]
    pub worker: usize,
    /// Reports in the office client's scope (the village: the worker's grid and nine more).
    #[arg(long, default_value_t = 45_000)]
    pub office: usize,
}

/// One step of the real client, run by `phone` in a process of its own.
#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    #[arg(long, value_enum)]
    pub step: Step,
    /// The client's data directory.
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long)]
    pub server: String,
    #[arg(long)]
    pub user: String,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Step {
    /// A new client logs in and syncs everything.
    FirstSync,
    /// The client opens the store the first sync left, lists, syncs again and edits a field.
    Reopen,
}

/// Grids of the village; grid 0 is the worker's.
const GRIDS: usize = 10;
/// The 32-byte key the app would keep in the platform keystore.
const KEY: [u8; 32] = [0x5a; 32];

/// What the first step prints.
#[derive(Debug, Serialize, Deserialize)]
struct FirstSync {
    login_ms: f64,
    seconds: f64,
    requests: u32,
    pulled_reports: u32,
    body_bytes_sent: u64,
    body_bytes_received: u64,
    /// Of this process after the sync, the client still open.
    rss_bytes_after: u64,
    peak_rss_bytes: u64,
}

/// What the second step prints.
#[derive(Debug, Serialize, Deserialize)]
struct Reopened {
    /// Constructing the client on the data directory the first sync left.
    open_ms: f64,
    /// `list_reports` right after: the app's first screen.
    list_ms: f64,
    listed: usize,
    /// This process's VmRSS before constructing the client, once it is constructed, after
    /// listing, and the peak.
    rss_bytes_before: u64,
    rss_bytes_opened: u64,
    rss_bytes_after: u64,
    peak_rss_bytes: u64,
    no_op_sync: NoOpSync,
    edit: Edit,
    repeated_edits: RepeatedEdits,
}

/// Fifty more edits of the same report, one after the other, as a worker filling a form.
#[derive(Debug, Serialize, Deserialize)]
struct RepeatedEdits {
    edits: u32,
    mean_milliseconds: f64,
    /// How much the store's files grew per edit, on average.
    mean_grew_bytes: f64,
}

#[derive(Debug, Serialize, Deserialize)]
struct NoOpSync {
    milliseconds: f64,
    requests: u32,
    pulled_reports: u32,
    body_bytes_sent: u64,
    body_bytes_received: u64,
}

/// `set_field` of `place` on the newest report.
#[derive(Debug, Serialize, Deserialize)]
struct Edit {
    report: String,
    milliseconds: f64,
    pending_changes: u64,
    files_before: StoreFiles,
    files_after: StoreFiles,
    grew_bytes: i64,
}

/// Sizes of the phone's SQLite file and its write-ahead log.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct StoreFiles {
    db: u64,
    wal: u64,
}

impl StoreFiles {
    fn of(dir: &Path) -> StoreFiles {
        let db = dir.join(gridsync_mobile::store::DB_FILE);
        let size = |path: PathBuf| std::fs::metadata(path).map_or(0, |m| m.len());
        let mut wal = db.clone().into_os_string();
        wal.push("-wal");
        StoreFiles {
            db: size(db),
            wal: size(wal.into()),
        }
    }

    fn total(self) -> u64 {
        self.db + self.wal
    }
}

pub async fn run(backend: Backend, args: &Args) -> anyhow::Result<Vec<Value>> {
    if args.worker == 0 || args.office < args.worker {
        bail!("--worker must be at least 1, and --office at least --worker");
    }
    let workers = (0..GRIDS).map(|i| Person::new(&worker(i), Role::GridWorker, &grid(i)));
    let office = Person::new(OFFICE, Role::VillageCadre, "v");
    let fixture = Fixture::new(OrgTree::village(GRIDS))
        .people(workers.chain([office]).map(|p| p.password(PASSWORD)));
    let district = District::start_with(backend, &fixture).await?;
    let seed_secs = seed(&district.server.base, args).await?;

    let mut lines = Vec::new();
    for (client, user, reports) in [
        ("grid worker", worker(0), args.worker),
        ("office", OFFICE.to_owned(), args.office),
    ] {
        let dir = tempfile::tempdir()?;
        let first: FirstSync = step(Step::FirstSync, dir.path(), &district, &user).await?;
        let reopened: Reopened = step(Step::Reopen, dir.path(), &district, &user).await?;
        let stored = stored_docs(dir.path(), &reopened.edit.report).await?;
        lines.push(json!({
            "workload": "phone library",
            "backend": backend,
            "client": client,
            "user": user,
            "reports": reports,
            "seeding_seconds": seed_secs,
            "first_sync": first,
            "open": {
                "open_ms": reopened.open_ms,
                "list_ms": reopened.list_ms,
                "open_and_list_ms": reopened.open_ms + reopened.list_ms,
                "listed": reopened.listed,
                "rss_bytes_before": reopened.rss_bytes_before,
                "rss_bytes_opened": reopened.rss_bytes_opened,
                "rss_bytes_after": reopened.rss_bytes_after,
                "rss_bytes_delta": reopened.rss_bytes_after.saturating_sub(reopened.rss_bytes_before),
                "peak_rss_bytes": reopened.peak_rss_bytes,
                "memory_of": "the phone-client process (VmRSS), before constructing the client, once constructed, and after listing",
            },
            "edit": reopened.edit,
            "repeated_edits": reopened.repeated_edits,
            "no_op_sync": reopened.no_op_sync,
            "store": stored,
        }));
    }
    Ok(lines)
}

/// Pushes the village's reports through the server, one simulated phone per grid, all at
/// once: `args.worker` in grid 0, the rest of `args.office` spread over the other grids.
/// Returns the seconds it took.
async fn seed(base: &str, args: &Args) -> anyhow::Result<f64> {
    let started = Instant::now();
    let others = args.office - args.worker;
    let tasks: Vec<_> = (0..GRIDS)
        .map(|i| {
            let docs = match i {
                0 => args.worker,
                _ => others / (GRIDS - 1) + usize::from(i <= others % (GRIDS - 1)),
            };
            let base = base.to_owned();
            tokio::spawn(async move {
                let mut phone =
                    Phone::login(&base, &worker(i), PASSWORD, &format!("old-phone-{i}")).await?;
                for d in 0..docs {
                    let at = 1_000_000 + d as i64 * 10;
                    let mut doc = new_dispute(&grid(i), &phone.user_id, at);
                    follow_up(&mut doc, 0, &phone.user_id, at + 1);
                    phone.replica.insert(doc);
                }
                phone.push().await?;
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Runs one step of the real client in a new process of this binary and reads what it printed.
async fn step<T: serde::de::DeserializeOwned>(
    step: Step,
    dir: &Path,
    district: &District,
    user: &str,
) -> anyhow::Result<T> {
    let name = match step {
        Step::FirstSync => "first-sync",
        Step::Reopen => "reopen",
    };
    let out = tokio::process::Command::new(std::env::current_exe()?)
        .arg("phone-client")
        .args([
            "--step",
            name,
            "--server",
            &district.server.base,
            "--user",
            user,
        ])
        .arg("--dir")
        .arg(dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .await?;
    if !out.status.success() {
        bail!("phone-client --step {name} failed: {}", out.status);
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("phone-client --step {name}"))
}

/// The documents the phone's store holds after the edit: how many, their sealed bytes, and
/// those of the edited one (its snapshot and the incremental saves after it).
async fn stored_docs(dir: &Path, edited: &str) -> anyhow::Result<Value> {
    let file = dir.join(gridsync_mobile::store::DB_FILE);
    let mut conn =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", file.display())).await?;
    let docs: i64 = sqlx::query_scalar("SELECT count(*) FROM docs")
        .fetch_one(&mut conn)
        .await?;
    let bytes: i64 = sqlx::query_scalar("SELECT coalesce(sum(length(bytes)), 0) FROM doc_saves")
        .fetch_one(&mut conn)
        .await?;
    let edited_bytes: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(length(bytes)), 0) FROM doc_saves WHERE doc_id = $1",
    )
    .bind(edited)
    .fetch_one(&mut conn)
    .await?;
    conn.close().await?;
    Ok(json!({
        "docs": docs,
        "sealed_doc_bytes": bytes,
        "db_file_bytes": StoreFiles::of(dir).total(),
        "edited_doc_sealed_bytes": edited_bytes,
    }))
}

/// One step of the real client (the `phone-client` subcommand); returns the line to print.
pub fn client_step(args: &ClientArgs) -> anyhow::Result<Value> {
    let open = || {
        FieldClient::new(
            args.dir.display().to_string(),
            args.server.clone(),
            KEY.to_vec(),
        )
    };
    match args.step {
        Step::FirstSync => {
            let client = open()?;
            let started = Instant::now();
            client.login(args.user.clone(), PASSWORD.to_owned(), "bench".to_owned())?;
            let login_ms = ms(started);
            let started = Instant::now();
            let summary = client.sync()?;
            let seconds = started.elapsed().as_secs_f64();
            Ok(serde_json::to_value(FirstSync {
                login_ms,
                seconds,
                requests: summary.requests,
                pulled_reports: summary.pulled_reports,
                body_bytes_sent: summary.bytes_sent,
                body_bytes_received: summary.bytes_received,
                rss_bytes_after: memory("VmRSS:")?,
                peak_rss_bytes: memory("VmHWM:")?,
            })?)
        }
        Step::Reopen => {
            let rss_bytes_before = memory("VmRSS:")?;
            let started = Instant::now();
            let client = open()?;
            let open_ms = ms(started);
            let rss_bytes_opened = memory("VmRSS:")?;
            let started = Instant::now();
            let reports = client.list_reports(None)?;
            let list_ms = ms(started);
            let rss_bytes_after = memory("VmRSS:")?;

            let started = Instant::now();
            let summary = client.sync()?;
            let no_op_sync = NoOpSync {
                milliseconds: ms(started),
                requests: summary.requests,
                pulled_reports: summary.pulled_reports,
                body_bytes_sent: summary.bytes_sent,
                body_bytes_received: summary.bytes_received,
            };

            let report = reports
                .first()
                .context("the phone lists no report")?
                .id
                .clone();
            let value = FieldValue::Text {
                value: "村西头 7 号".to_owned(),
            };
            let files_before = StoreFiles::of(&args.dir);
            let started = Instant::now();
            client.set_field(report.clone(), "place".to_owned(), Some(value))?;
            let milliseconds = ms(started);
            let files_after = StoreFiles::of(&args.dir);
            let edit = Edit {
                report: report.clone(),
                milliseconds,
                pending_changes: client.pending_changes(),
                files_before,
                files_after,
                grew_bytes: files_after.total() as i64 - files_before.total() as i64,
            };
            const EDITS: u32 = 50;
            let started = Instant::now();
            for i in 0..EDITS {
                let value = FieldValue::Text {
                    value: format!("村西头 {i} 号"),
                };
                client.set_field(report.clone(), "place".to_owned(), Some(value))?;
            }
            let grew = StoreFiles::of(&args.dir).total() as i64 - files_after.total() as i64;
            let repeated_edits = RepeatedEdits {
                edits: EDITS,
                mean_milliseconds: ms(started) / f64::from(EDITS),
                mean_grew_bytes: grew as f64 / f64::from(EDITS),
            };
            Ok(serde_json::to_value(Reopened {
                open_ms,
                list_ms,
                listed: reports.len(),
                rss_bytes_before,
                rss_bytes_opened,
                rss_bytes_after,
                peak_rss_bytes: memory("VmHWM:")?,
                no_op_sync,
                edit,
                repeated_edits,
            })?)
        }
    }
}

/// This process's memory of `key` in /proc/self/status (VmRSS, VmHWM), in bytes.
fn memory(key: &str) -> anyhow::Result<u64> {
    proc_status_kib(std::process::id(), key).map(|kib| kib * 1024)
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1_000.0
}
