//! The database's own failures, under the real `gridsync serve` and the real phone library: a
//! full disk, a read-only Postgres, and Postgres restarted
//! while phones sync. Each is answered 503 with its code (never 500, never a hang), nothing the
//! server acknowledged goes missing, the phones keep what was not acknowledged, and everything
//! converges once the fault is gone.
//!
//! The full disk needs root (a tmpfs mount); the Postgres restart runs a throwaway
//! cluster of its own, never the shared server of GRIDSYNC_TEST_DATABASE_URL.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gridsync_core::protocol::{self, Push};
use gridsync_e2e::Server;
use gridsync_e2e::field::{self, GRID, PASSWORD, quick};
use gridsync_fixtures::phone::Phone as Probe;
use gridsync_mobile::client::Client as Phone;
use gridsync_mobile::{ClientError, FieldValue};
use sqlx::Connection;

const KEY: [u8; 32] = [0x5a; 32];
/// Report id → heads, as a phone held them when the server had acknowledged all of it.
type Acked = BTreeMap<String, Vec<String>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_storage_full_keeps_phones_changes_and_recovers_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mount = Tmpfs::mount(&dir.path().join("disk"));
    let db = format!("sqlite://{}", mount.path.join("server.db").display());
    let fault = Fault::DiskFull {
        mount: &mount,
        db: &db,
    };
    outage_scenario(&db, dir.path(), fault, "storage_full").await;
    assert_eq!(sqlite_integrity(&db).await, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_postgres_answers_503_storage_read_only_serves_reads_and_recovers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = field::fresh_postgres_database("gridsync_ro").await;
    let admin = std::env::var("GRIDSYNC_TEST_DATABASE_URL").expect("checked by the line above");
    let name = db.rsplit('/').next().expect("a database name").to_owned();
    let fault = Fault::ReadOnlyPostgres {
        admin: &admin,
        name: &name,
    };
    outage_scenario(&db, dir.path(), fault, "storage_read_only").await;
}

/// A fault injected into a running server's database, and taken away again.
enum Fault<'a> {
    /// The tmpfs holding the SQLite file shrunk to what it holds.
    DiskFull { mount: &'a Tmpfs, db: &'a str },
    /// `default_transaction_read_only` set on the database and its sessions ended, so the
    /// server's new ones take it.
    ReadOnlyPostgres { admin: &'a str, name: &'a str },
}

impl Fault<'_> {
    async fn inject(&self) {
        match self {
            Fault::DiskFull { mount, db } => {
                // An empty WAL must grow for the next commit; a long one would take writes for a
                // while by reusing its frames.
                let mut c = sqlx::SqliteConnection::connect(db).await.expect("open");
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&mut c)
                    .await
                    .expect("checkpoint");
                c.close().await.expect("close");
                mount.shrink_to_used();
            }
            Fault::ReadOnlyPostgres { admin, name } => {
                postgres_admin(
                    admin,
                    &format!("ALTER DATABASE {name} SET default_transaction_read_only = on"),
                    name,
                )
                .await;
            }
        }
    }

    async fn lift(&self) {
        match self {
            Fault::DiskFull { mount, .. } => mount.resize("64m"),
            Fault::ReadOnlyPostgres { admin, name } => {
                postgres_admin(
                    admin,
                    &format!("ALTER DATABASE {name} RESET default_transaction_read_only"),
                    name,
                )
                .await;
            }
        }
    }
}

/// Runs `sql` on the maintenance database of `admin`'s server, then ends every session on
/// database `name` so that new ones see the change.
async fn postgres_admin(admin: &str, sql: &str, name: &str) {
    let mut c = sqlx::PgConnection::connect(admin)
        .await
        .expect("connect as admin");
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut c)
        .await
        .expect("alter database");
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(name)
    .execute(&mut c)
    .await
    .expect("end the sessions");
}

/// Three phones sync with the server; the fault comes; they edit and sync again (refused 503
/// with `code`, each keeping its changes pending; a raw push shows the answer's form, and the
/// report list still reads); the fault goes; nothing acknowledged is missing, and all converge.
async fn outage_scenario(db: &str, dir: &Path, fault: Fault<'_>, code: &str) {
    field::seed(db).await;
    let server = Server::start(db, PASSWORD).await;
    let phones = phones(&server.base, dir).await;
    let mut acked = Acked::new();
    for round in 0..2 {
        for ack in run_phones(&phones, move |phone, _| edit(phone, round)).await {
            acked.extend(ack.expect("every sync succeeds before the fault"));
        }
    }
    let mut probe = Probe::login(&server.base, "li", PASSWORD, "probe")
        .await
        .expect("login");
    probe.pull().await.expect("pull");

    fault.inject().await;
    let seen = run_phones(&phones, |phone, _| {
        (edit(phone, 9), phone.pending_changes())
    })
    .await;
    let mut refused = 0;
    for (outcome, pending) in seen {
        match outcome {
            // A write that still fit (the disk had a page to spare) is acknowledged: fine.
            Ok(ack) => acked.extend(ack),
            Err(ClientError::Network(message)) => {
                assert!(message.contains(&format!("503 {code}")), "{message}");
                assert!(pending > 0, "a refused phone keeps its changes");
                refused += 1;
            }
            Err(other) => panic!("a phone got {other:?} instead of a 503 {code}"),
        }
    }
    assert!(refused > 0, "no phone was refused while the fault lasted");
    let answer = raw_push(&mut probe).await;
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert_eq!(answer.body["code"], code);
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(answer.retry_after.as_deref(), Some("60"));
    assert!(
        !answer.body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("sqlx"),
        "the cause stays in the log: {}",
        answer.body
    );
    let list = reqwest::Client::new()
        .get(format!("{}/api/v1/reports", probe.base))
        .bearer_auth(&probe.token)
        .send()
        .await
        .expect("list");
    assert_eq!(list.status(), 200, "reads go on");

    fault.lift().await;
    assert_all_present(db, &acked).await;
    converge(db, &phones).await;
    assert!(server.stop().await.success());
}

/// A throwaway Postgres cluster of this test's own, restarted (`fast`, then `immediate`, which
/// is a crash and a recovery) while three phones push and pull in a loop and a probe pulls: the
/// server answers only 200 or 503 `database_unavailable`, none later than a few seconds,
/// carries on by itself, and afterwards every acknowledged change is there and all converge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_loses_no_acknowledged_change_and_the_server_reconnects() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = Cluster::start();
    let db = cluster.create_database("gridsync");
    field::seed(&db).await;
    let server = Server::start(&db, PASSWORD).await;
    let phones = phones(&server.base, dir.path()).await;
    for ack in run_phones(&phones, |phone, _| edit(phone, 0)).await {
        ack.expect("every sync succeeds before the restarts");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let phones = phones.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            run_phones(&phones, move |phone, _| {
                let mut acked = Acked::new();
                let mut errors = Vec::new();
                let mut round = 1;
                while !stop.load(Ordering::SeqCst) {
                    match edit(phone, round) {
                        Ok(ack) => acked.extend(ack),
                        Err(e) => errors.push(e),
                    }
                    round += 1;
                }
                (acked, errors, round)
            })
            .await
        })
    };
    let probe = Probe::login(&server.base, "li", PASSWORD, "probe")
        .await
        .expect("login");
    let probing = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                let answer = raw_pull(&probe).await;
                answers.push((
                    answer.status,
                    answer.body["code"].clone(),
                    started.elapsed(),
                ));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            answers
        })
    };
    let cluster = Arc::new(cluster);
    for mode in ["fast", "immediate"] {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let c = cluster.clone();
        let took = blocking(move || c.restart(mode)).await;
        eprintln!("pg_ctl restart -m {mode}: {} ms", took.as_millis());
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);

    let mut acked = Acked::new();
    for (ack, errors, rounds) in load.await.expect("load") {
        eprintln!(
            "a phone: {} syncs, {} failed: {:?}",
            rounds - 1,
            errors.len(),
            errors
        );
        for e in errors {
            match e {
                ClientError::Network(m) if m.contains("503 database_unavailable") => {}
                other => panic!("a phone got {other:?} while Postgres restarted"),
            }
        }
        acked.extend(ack);
    }
    let answers = probing.await.expect("probe");
    let slowest = answers.iter().map(|a| a.2).max().unwrap_or_default();
    let refused = answers.iter().filter(|a| a.0 != 200).count();
    eprintln!(
        "probe: {} pulls, {refused} answered 503, slowest {} ms",
        answers.len(),
        slowest.as_millis()
    );
    for (status, code, took) in &answers {
        assert!(
            *status == 200 || (*status == 503 && code == "database_unavailable"),
            "{status} {code}"
        );
        assert!(*took < Duration::from_secs(8), "an answer took {took:?}");
    }
    assert_all_present(&db, &acked).await;
    converge(&db, &phones).await;
    assert!(server.stop().await.success());
}

/// The seeded people, each logged in on a phone of their own.
async fn phones(base: &str, dir: &Path) -> Vec<Arc<Phone>> {
    let mut phones = Vec::new();
    for (name, _, _) in field::PEOPLE {
        let (base, dir) = (base.to_owned(), dir.join(name));
        phones.push(
            blocking(move || {
                let phone = Phone::open(&dir, &base, &KEY, quick()).expect("open the store");
                phone.login(name, PASSWORD, name).expect("login");
                Arc::new(phone)
            })
            .await,
        );
    }
    phones
}

/// Runs `work` on every phone at once, each on a thread of its own.
async fn run_phones<T: Send + 'static>(
    phones: &[Arc<Phone>],
    work: impl Fn(&Phone, usize) -> T + Clone + Send + 'static,
) -> Vec<T> {
    let tasks: Vec<_> = phones
        .iter()
        .enumerate()
        .map(|(i, phone)| {
            let (phone, work) = (phone.clone(), work.clone());
            tokio::task::spawn_blocking(move || work(&phone, i))
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("phone"));
    }
    out
}

/// Edits the phone's own report (made on its first call) with 4,000 characters that do not
/// compress, and syncs: on success, what the server has now acknowledged.
fn edit(phone: &Phone, round: usize) -> Result<Acked, ClientError> {
    let reports = phone.list_reports(None).expect("list");
    let me = phone.current_user().expect("logged in").id;
    let mine = reports
        .iter()
        .find(|r| phone.report(&r.id).is_ok_and(|full| full.created_by == me))
        .map(|r| r.id.clone());
    let id = match mine {
        Some(id) => id,
        None => phone.create_report("dispute_check", GRID).expect("create"),
    };
    let noise: String = (0..125)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect();
    let values = HashMap::from([
        ("description".to_owned(), text(&noise)),
        ("place".to_owned(), text(&format!("round {round}"))),
    ]);
    phone.set_fields(&id, values).expect("edit");
    let summary = phone.sync(None)?;
    assert_eq!(summary.pending_changes, 0, "a whole sync acknowledges all");
    Ok(phone
        .list_reports(None)
        .expect("list")
        .into_iter()
        .map(|r| {
            let heads = phone.report(&r.id).expect("report").heads;
            (r.id, heads)
        })
        .collect())
}

fn text(value: &str) -> FieldValue {
    FieldValue::Text {
        value: value.into(),
    }
}

/// Every change a phone was told the server had is in the server's database.
async fn assert_all_present(db: &str, acked: &Acked) {
    let store = gridsync_server::store::open(db).await.expect("open");
    for (id, heads) in acked {
        let doc: uuid::Uuid = id.parse().expect("report id");
        let stored: BTreeSet<String> = store
            .changes_of(&doc)
            .await
            .expect("changes")
            .iter()
            .map(|c| c.hash.to_string())
            .collect();
        for head in heads {
            assert!(
                stored.contains(head),
                "acknowledged change {head} of {id} is missing"
            );
        }
    }
    assert!(!acked.is_empty());
}

/// Syncs every phone twice (the second round brings each the others' last changes) and checks
/// that each holds every report the server holds, at the server's heads.
async fn converge(db: &str, phones: &[Arc<Phone>]) {
    for _ in 0..2 {
        for ack in run_phones(phones, |phone, _| phone.sync(None)).await {
            let summary = ack.expect("a sync after the fault succeeds");
            assert_eq!(summary.pending_changes, 0);
        }
    }
    let store = gridsync_server::store::open(db).await.expect("open");
    let held = run_phones(phones, |phone, _| {
        phone
            .list_reports(None)
            .expect("list")
            .into_iter()
            .map(|r| {
                let mut heads = phone.report(&r.id).expect("report").heads;
                heads.sort();
                (r.id, heads)
            })
            .collect::<BTreeMap<_, _>>()
    })
    .await;
    for (id, heads) in &held[0] {
        let doc: uuid::Uuid = id.parse().expect("report id");
        let row = store.document(&doc).await.expect("row").expect("stored");
        let mut server: Vec<String> = row.heads.iter().map(|h| h.to_string()).collect();
        server.sort();
        assert_eq!(&server, heads, "report {id}");
    }
    assert_eq!(held[0].len(), phones.len(), "one report per phone");
    for other in &held[1..] {
        assert_eq!(other, &held[0], "every phone holds what the first does");
    }
}

/// An answer as the probe saw it.
struct Answer {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    /// The problem body; `null` for a frame.
    body: serde_json::Value,
}

async fn raw(probe: &Probe, path: &str, frame: Vec<u8>) -> Answer {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", probe.base))
        .bearer_auth(&probe.token)
        .header("content-type", "application/x-gridsync")
        .body(frame)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("the server answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (content_type, retry_after) = (
        header("content-type").unwrap_or_default(),
        header("retry-after"),
    );
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    Answer {
        status,
        content_type,
        retry_after,
        body: serde_json::from_slice(&bytes).unwrap_or_default(),
    }
}

/// Pushes a new report with 4,000 characters that do not compress.
async fn raw_push(probe: &mut Probe) -> Answer {
    let noise: String = (0..125)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect();
    probe.edit(uuid::Uuid::new_v4(), GRID, &noise[..200], 1_700_000_000_000);
    let push: Push = probe
        .replica
        .build_push(256 * 1024)
        .expect("a change to push");
    raw(probe, "/api/v1/sync/push", protocol::encode(&push)).await
}

/// Pulls from the start of the scope.
async fn raw_pull(probe: &Probe) -> Answer {
    let pull = gridsync_core::replica::Replica::new().build_pull(64 * 1024);
    raw(probe, "/api/v1/sync/pull", protocol::encode(&pull)).await
}

async fn sqlite_integrity(db: &str) -> String {
    let mut c = sqlx::SqliteConnection::connect(db).await.expect("open");
    sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut c)
        .await
        .expect("integrity check")
}

/// Runs a blocking call off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking call")
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn running_as_root() -> bool {
    run("id", &["-u"]).trim() == "0"
}

/// A tmpfs mounted for the test: a disk that can be filled and grown on demand. Unmounted on
/// drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path) -> Tmpfs {
        assert!(
            running_as_root(),
            "this test mounts a tmpfs to fill a disk, which needs root (CI runs as root); \
             run it as root or leave it out with -E 'not test(full_disk)'"
        );
        std::fs::create_dir_all(path).expect("mount point");
        let shown = path.display().to_string();
        run("mount", &["-t", "tmpfs", "-o", "size=64m", "tmpfs", &shown]);
        Tmpfs {
            path: path.to_owned(),
        }
    }

    fn resize(&self, size: &str) {
        let shown = self.path.display().to_string();
        run("mount", &["-o", &format!("remount,size={size}"), &shown]);
    }

    /// Leaves no free page.
    fn shrink_to_used(&self) {
        let shown = self.path.display().to_string();
        let df = run("df", &["--output=used", "-B4096", &shown]);
        let used: u64 = df
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df prints the pages used");
        self.resize(&format!("{}k", used.max(1) * 4));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A Postgres cluster of the test's own, on a free port of 127.0.0.1, stopped and deleted on
/// drop. Found and run as `scripts/lib/postgres.sh` does: `initdb` and `pg_ctl` from `$PATH`,
/// else the newest `/usr/lib/postgresql/*/bin`; as root, run by the user `postgres`.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    owner: Option<String>,
}

impl Cluster {
    fn start() -> Cluster {
        let bin = postgres_bin();
        let owner = running_as_root()
            .then(|| std::env::var("GRIDSYNC_PG_USER").unwrap_or_else(|_| "postgres".into()));
        // In /tmp, which the owner may enter, named so that scripts/lib/postgres.sh reaps it
        // should this test be killed before its drop runs.
        let dir = tempfile::Builder::new()
            .prefix("gridsync-pg.")
            .tempdir_in("/tmp")
            .expect("cluster dir");
        std::fs::write(dir.path().join("owner-pid"), std::process::id().to_string())
            .expect("owner-pid");
        if let Some(owner) = &owner {
            run(
                "chown",
                &[&format!("{owner}:"), &dir.path().display().to_string()],
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Cluster {
            dir,
            bin,
            port,
            owner,
        };
        let data = cluster.data();
        cluster.as_owner(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-locale",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        cluster.pg_ctl(&["start"]);
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn create_database(&self, name: &str) -> String {
        let admin = self.url("postgres");
        let sql = format!("CREATE DATABASE {name}");
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                let mut c = sqlx::PgConnection::connect(&admin).await.expect("connect");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .expect("create database");
            })
        });
        self.url(name)
    }

    /// `pg_ctl restart -m mode`, waiting until it accepts connections again; how long it took.
    fn restart(&self, mode: &str) -> Duration {
        let started = Instant::now();
        self.pg_ctl(&["restart", "-m", mode]);
        started.elapsed()
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.data();
        let log = self.dir.path().join("log").display().to_string();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {}",
            self.port,
            self.dir.path().display()
        );
        let mut all = vec!["-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options];
        all.extend_from_slice(args);
        self.as_owner("pg_ctl", &all);
    }

    fn as_owner(&self, program: &str, args: &[&str]) -> String {
        let program = self.bin.join(program).display().to_string();
        match &self.owner {
            Some(owner) => {
                let mut all = vec!["-u", owner.as_str(), "--", program.as_str()];
                all.extend_from_slice(args);
                run("runuser", &all)
            }
            None => run(&program, args),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let program = self.bin.join("pg_ctl").display().to_string();
        let mut command = match &self.owner {
            Some(owner) => {
                let mut c = Command::new("runuser");
                c.args(["-u", owner, "--", &program]);
                c
            }
            None => Command::new(&program),
        };
        let _ = command
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}

/// The folder with `initdb` and `pg_ctl`, searched like scripts/lib/postgres.sh does.
fn postgres_bin() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut candidates: Vec<PathBuf> = std::env::split_paths(&path).collect();
    match std::env::var_os("GRIDSYNC_PG_BIN_DIRS") {
        Some(dirs) => candidates.extend(std::env::split_paths(&dirs)),
        None => {
            candidates.push("/usr/local/bin".into());
            let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
                .unwrap_or_default();
            versions.sort_by_key(|p| {
                let version = p.parent().and_then(|v| v.file_name());
                version.and_then(|v| v.to_str()?.parse::<u32>().ok())
            });
            candidates.extend(versions.into_iter().rev());
            candidates.push("/usr/local/pgsql/bin".into());
        }
    }
    candidates
        .into_iter()
        .find_map(|d| {
            let initdb = std::fs::canonicalize(d.join("initdb")).ok()?;
            let real = initdb.parent()?.to_owned();
            real.join("pg_ctl").exists().then_some(real)
        })
        .unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries (initdb, pg_ctl) were not found in $PATH, \
                 /usr/lib/postgresql/*/bin or GRIDSYNC_PG_BIN_DIRS: this test restarts a \
                 Postgres of its own; install postgresql (apt-get install postgresql)"
            )
        })
}
