//! Shared helpers of the end-to-end tests.

pub mod faulty;
pub mod field;
pub mod fleet;
pub mod integrity;

use std::path::PathBuf;

/// The `gridsync` binary of this build: `GRIDSYNC_BIN` when set, otherwise the one in the
/// same `target/<profile>/` folder as the running executable — beside it for a binary of this
/// package (gridsync-bench), one level up for a test (`target/<profile>/deps/`). Cargo builds
/// another package's binaries only when asked, so building the whole workspace
/// (`cargo build --workspace`, `cargo nextest run --workspace`) is what puts it there.
pub fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("GRIDSYNC_BIN") {
        return PathBuf::from(path);
    }
    let name = format!("gridsync{}", std::env::consts::EXE_SUFFIX);
    let exe = std::env::current_exe().expect("the executable knows its own path");
    let beside = exe.parent().expect("the executable is in a folder");
    let bin = if beside.ends_with("deps") {
        beside.parent().unwrap_or(beside).join(name)
    } else {
        beside.join(name)
    };
    assert!(
        bin.exists(),
        "{} is missing: build the whole workspace first (cargo build --workspace) or set GRIDSYNC_BIN",
        bin.display()
    );
    bin
}

/// Runs `gridsync ARGS` to its end with the variables `env` set (and no GRIDSYNC_* variables
/// from the test's own environment), logs off so that stderr holds only what the command
/// says on failure.
pub fn gridsync<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut command = std::process::Command::new(server_binary());
    command.args(args).env("RUST_LOG", "off");
    for (name, _) in std::env::vars() {
        if name.starts_with("GRIDSYNC_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    command.output().expect("run gridsync")
}

/// The number in the variable `name`, if set: a knob of a long-mode test.
pub fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {value:?}")),
    )
}

/// The seed of a randomised test: `GRIDSYNC_SEED`, or a fresh one. Printed, so that a failing
/// run can be replayed.
pub fn seed() -> u64 {
    let seed = env_number("GRIDSYNC_SEED").unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0);
    eprintln!("GRIDSYNC_SEED={seed}");
    seed
}

/// The `p` quantile (0 to 1) of `sorted` durations, in milliseconds; 0 for none.
pub fn percentile_ms(sorted: &[std::time::Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1_000.0
}

/// A running `gridsync serve` on a free port, stopped with SIGTERM by [`Server::stop`] (and
/// killed if dropped without it).
pub struct Server {
    child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// What it printed on standard output before serving.
    pub said: Vec<String>,
}

impl Server {
    /// Starts the binary on `db` with the first admin's password set, and waits until it
    /// answers `/healthz`.
    pub async fn start(db: &str, admin_password: &str) -> Server {
        Server::start_with(db, admin_password, &[]).await
    }

    /// [`Server::start`] with more flags for `serve`.
    pub async fn start_with(db: &str, admin_password: &str, flags: &[&str]) -> Server {
        Server::start_at("127.0.0.1:0", db, admin_password, flags).await
    }

    /// [`Server::start_with`] listening on `bind` (`HOST:PORT`): a restart on the port a killed
    /// server had.
    pub async fn start_at(bind: &str, db: &str, admin_password: &str, flags: &[&str]) -> Server {
        use std::process::Stdio;
        use std::time::Duration;
        use tokio::io::{AsyncBufReadExt, BufReader};

        let mut child = tokio::process::Command::new(server_binary())
            .args(["serve", "--bind", bind])
            .args(flags)
            .env("GRIDSYNC_DB", db)
            .env("GRIDSYNC_ADMIN_PASSWORD", admin_password)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start gridsync");
        // Read stdout to the end in the background, so the server never blocks on a full pipe.
        let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("stdout");
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut said = Vec::new();
        // `serve --demo` fills the database first: a minute or two in a debug build.
        let base = tokio::time::timeout(Duration::from_secs(300), async {
            while let Some(line) = lines.recv().await {
                said.push(line.clone());
                if let Some(addr) = line.strip_prefix("gridsync is serving on ") {
                    return addr.trim().to_owned();
                }
            }
            panic!("gridsync exited before serving; it said {said:?}");
        })
        .await
        .expect("gridsync serves within 300 s");

        let http = reqwest::Client::new();
        for _ in 0..50 {
            if let Ok(r) = http.get(format!("{base}/healthz")).send().await
                && r.status().is_success()
            {
                return Server { child, base, said };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("/healthz did not answer 200 within 5 s");
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running until stopped")
    }

    /// `HOST:PORT` it listens on.
    pub fn addr(&self) -> &str {
        self.base.strip_prefix("http://").unwrap_or(&self.base)
    }

    /// SIGKILLs it (no shutdown of any kind) and waits until it is gone.
    pub async fn kill(&mut self) {
        self.child.start_kill().expect("SIGKILL gridsync");
        self.child
            .wait()
            .await
            .expect("wait for the killed gridsync");
    }

    /// Sends SIGTERM and waits for the exit.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        terminate(&mut self.child).await
    }
}

/// Sends `child` SIGTERM and waits for its exit.
async fn terminate(child: &mut tokio::process::Child) -> std::process::ExitStatus {
    let pid = child.id().expect("running").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(kill.success());
    tokio::time::timeout(std::time::Duration::from_secs(15), child.wait())
        .await
        .expect("gridsync stops within 15 s of SIGTERM")
        .expect("wait")
}

/// A running `gridsync hub run` on a free port, killed when dropped.
pub struct HubProcess {
    child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`, where phones reach it.
    pub base: String,
}

impl HubProcess {
    /// Runs the hub enrolled in `dir`, contacting central every `every` seconds, and waits
    /// until it says where it serves.
    pub async fn start(dir: &std::path::Path, every: u64) -> HubProcess {
        use std::process::Stdio;
        use tokio::io::{AsyncBufReadExt, BufReader};

        let mut child = tokio::process::Command::new(server_binary())
            .args(["hub", "run", "--bind", "127.0.0.1:0", "--every"])
            .arg(every.to_string())
            .arg("--dir")
            .arg(dir)
            .arg("--key-file")
            .arg(HubProcess::key_file(dir))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start gridsync hub");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some((_, addr)) = line.split_once("is serving phones on ") {
                    return addr.trim().to_owned();
                }
            }
            panic!("the hub exited before serving");
        })
        .await
        .expect("the hub serves within 60 s");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        HubProcess { child, base }
    }

    /// The hub's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running until killed")
    }

    /// Sends SIGTERM and waits for the exit.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        terminate(&mut self.child).await
    }

    /// SIGKILLs it and waits until it is gone.
    pub async fn kill(&mut self) {
        self.child.start_kill().expect("SIGKILL the hub");
        self.child.wait().await.expect("wait for the killed hub");
    }

    /// Registers a hub for village v1 at `central` as the admin whose token is given, and
    /// enrols it in `dir` with `gridsync hub enrol`, reaching central at `via`.
    pub async fn enrol(central: &str, admin_token: &str, via: &str, dir: &std::path::Path) {
        let registered: serde_json::Value = reqwest::Client::new()
            .post(format!("{central}/api/v1/hubs"))
            .bearer_auth(admin_token)
            .json(&serde_json::json!({ "unit_id": "v1", "name": "上坪村委会" }))
            .send()
            .await
            .expect("register")
            .json()
            .await
            .expect("JSON");
        let code = registered["enrolment_code"].as_str().expect("a code");
        let enrolled = gridsync(
            &HubProcess::enrol_args(via, dir),
            &[("GRIDSYNC_HUB_CODE", code)],
        );
        assert!(
            enrolled.status.success(),
            "{}",
            String::from_utf8_lossy(&enrolled.stderr)
        );
    }

    /// `gridsync hub enrol` of the hub in `dir`, reaching central at `via`, with its key at
    /// [`HubProcess::key_file`].
    pub fn enrol_args(via: &str, dir: &std::path::Path) -> Vec<String> {
        let path = |p: &std::path::Path| p.to_str().expect("a UTF-8 path").to_owned();
        ["hub", "enrol", "--central", via, "--dir", &path(dir)]
            .into_iter()
            .map(str::to_owned)
            .chain(["--key-file".to_owned(), path(&HubProcess::key_file(dir))])
            .collect()
    }

    /// Where the tests keep the sealing key of the hub in `dir`: beside its folder, not in it.
    pub fn key_file(dir: &std::path::Path) -> PathBuf {
        dir.with_extension("key")
    }

    /// The sealed database of the hub enrolled in `dir`, opened with its key. Close it before
    /// the test ends (`Store::close` says why).
    pub async fn store(dir: &std::path::Path) -> std::sync::Arc<dyn gridsync_server::store::Store> {
        let key = gridsync_server::hub::sealing::SealingKey::read(&HubProcess::key_file(dir))
            .expect("the hub's key");
        let path = gridsync_server::hub::identity::Identity::database(dir);
        gridsync_server::store::open_sealed(&path, key.bytes())
            .await
            .expect("open the hub's database")
    }

    /// The id of the hub enrolled in `dir`.
    pub fn id(dir: &std::path::Path) -> String {
        let text = std::fs::read_to_string(dir.join("hub.json")).expect("hub.json");
        let identity: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        identity["hub_id"].as_str().expect("hub_id").to_owned()
    }
}
