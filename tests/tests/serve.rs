//! The real `gridsync serve` on a fresh SQLite file: first start with an admin password from the
//! environment, login over real HTTP, then SIGTERM and a clean exit.

use gridsync_e2e::Server;
use serde_json::{Value, json};

const PASSWORD: &str = "e2e admin password";

#[tokio::test]
async fn serve_starts_on_an_empty_database_lets_the_admin_log_in_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("gridsync.db").display());
    let server = Server::start(&db, PASSWORD).await;
    assert!(
        server
            .said
            .iter()
            .any(|l| l.contains("admin") && l.contains("GRIDSYNC_ADMIN_PASSWORD")),
        "the first start says how the admin logs in: {:?}",
        server.said
    );
    let base = server.base.clone();
    let http = reqwest::Client::new();
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

    let status = server.stop().await;
    assert!(status.success(), "clean exit, got {status}");
}
