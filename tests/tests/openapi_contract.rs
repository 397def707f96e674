//! The API contract: Schemathesis, a schema-driven fuzzer, runs cases of every operation of
//! `/openapi.json` against the real server on the demo district, as a district admin and as a
//! grid worker. It fails on any 5xx, any status the document does not list, any content type it
//! does not list, and any answer that does not match its schema.
//!
//! `scripts/test` installs Schemathesis (pinned) and names it in `GRIDSYNC_SCHEMATHESIS`;
//! `GRIDSYNC_CONTRACT_EXAMPLES` sets the cases per operation (default 5).

use std::path::PathBuf;
use std::process::Command;

use gridsync_e2e::{Server, env_number, seed};
use gridsync_fixtures::phone::Phone;

/// Operations left out, and why: each ends the fuzzer's own session or device, after which
/// every other operation would only test the 401. Their tests are in `server/tests`.
const LEFT_OUT: &str =
    "^/api/v1/auth/(logout|password)$|^/api/v1/devices/[^/]+/(revoke|retire)$|^/api/v1/live$";

fn schemathesis() -> PathBuf {
    let path = std::env::var_os("GRIDSYNC_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/gridsync-tools/schemathesis/bin/schemathesis")
        });
    assert!(
        path.exists(),
        "Schemathesis is not installed at {}: run ./scripts/test, which installs it, or set \
         GRIDSYNC_SCHEMATHESIS",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operation_answers_as_the_openapi_document_says_to_an_admin_and_a_grid_worker() {
    let schemathesis = schemathesis();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("demo.db").display());
    let server = Server::start_with(&db, "unused: the demo makes admin", &["--demo"]).await;
    let examples = env_number("GRIDSYNC_CONTRACT_EXAMPLES").unwrap_or(5);
    let hooks = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi");
    let seed = seed();
    // Both log in before either run: the fuzzer's own failed logins make this address wait.
    let mut tokens = Vec::new();
    for user in ["admin", "worker-shiqiao-1"] {
        let device = format!("contract-{user}");
        let client = Phone::login(&server.base, user, "gridsync-demo", &device)
            .await
            .expect("login");
        tokens.push((user, client.token));
    }
    for (user, token) in tokens {
        let out = Command::new(&schemathesis)
            .arg("run")
            .arg(format!("{}/openapi.json", server.base))
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
                 response_schema_conformance",
            ])
            .args(["--max-examples", &examples.to_string()])
            .args(["--seed", &seed.to_string()])
            .args(["--exclude-path-regex", LEFT_OUT])
            .args(["--workers", "2", "--no-shrink", "--request-timeout", "30"])
            .current_dir(dir.path())
            .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
            .env("PYTHONPATH", &hooks)
            .output()
            .expect("run schemathesis");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "as {user}, seed {seed}: the server does not answer as /openapi.json says\n{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            said.contains("passed"),
            "as {user}: schemathesis ran no case\n{said}"
        );
    }
    server.stop().await;
}
