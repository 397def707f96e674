//! The real `gridsync serve` on a fresh SQLite file: first start with an admin password from the
//! environment, login over real HTTP, then SIGTERM and a clean exit.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

const PASSWORD: &str = "e2e admin password";

#[tokio::test]
async fn serve_starts_on_an_empty_database_lets_the_admin_log_in_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("gridsync.db").display());
    let mut server = Command::new(gridsync_e2e::server_binary())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("GRIDSYNC_DB", &db)
        .env("GRIDSYNC_ADMIN_PASSWORD", PASSWORD)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start gridsync");

    // Read stdout to the end in the background, so the server never blocks on a full pipe.
    let (lines_tx, mut lines) = mpsc::unbounded_channel();
    let stdout = server.stdout.take().expect("stdout");
    tokio::spawn(async move {
        let mut reader = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut said = Vec::new();
    let base = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.recv().await {
            said.push(line.clone());
            if let Some(addr) = line.strip_prefix("gridsync is serving on ") {
                return addr.trim().to_owned();
            }
        }
        panic!("gridsync exited before serving; it said {said:?}");
    })
    .await
    .expect("gridsync serves within 30 s");
    assert!(
        said.iter()
            .any(|l| l.contains("admin") && l.contains("GRIDSYNC_ADMIN_PASSWORD")),
        "the first start says how the admin logs in: {said:?}"
    );

    let http = reqwest::Client::new();
    let mut healthy = false;
    for _ in 0..50 {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "/healthz answers 200");

    let login = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({
            "username": "admin",
            "password": PASSWORD,
            "device_id": "e2e-pc",
            "device_name": "end-to-end test",
        }))
        .send()
        .await
        .expect("login request");
    assert_eq!(login.status(), reqwest::StatusCode::OK);
    let tokens: Value = login.json().await.expect("tokens");
    let access = tokens["access_token"].as_str().expect("access token");
    let devices: Value = http
        .get(format!("{base}/api/v1/devices"))
        .bearer_auth(access)
        .send()
        .await
        .expect("devices request")
        .error_for_status()
        .expect("devices answer 200")
        .json()
        .await
        .expect("devices");
    assert_eq!(devices[0]["id"], json!("e2e-pc"));

    let pid = server.id().expect("running").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(15), server.wait())
        .await
        .expect("gridsync stops within 15 s of SIGTERM")
        .expect("wait");
    assert!(status.success(), "clean exit, got {status}");
}
