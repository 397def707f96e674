//! Seeds and inspects a Gridsync database for the bindings tests, which cannot reach the store
//! from Python or Kotlin:
//!
//! - `field-fixture seed DB_URL`: the org tree and the people of `gridsync_e2e::field`.
//! - `field-fixture report DB_URL REPORT_ID`: one JSON line with the server's projection of the
//!   report, its heads (sorted), its change count and its conflicts (open and resolved).
//! - `field-fixture summary DB_URL REPORT_ID`: the same as `KEY=VALUE` lines (open_conflicts,
//!   resolved_conflicts, log_entries, status, heads, projection), for readers without JSON.
//! - `field-fixture create-db`: a fresh Postgres database on GRIDSYNC_TEST_DATABASE_URL; prints
//!   its URL.

use anyhow::{Context, bail};
use gridsync_e2e::field;
use gridsync_server::store::Store;
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["seed", db] => field::seed(db).await,
        ["create-db"] => say(&field::fresh_postgres_database("gridsync_bindings").await),
        ["report", db, id] => say(&report(db, id).await?.to_string()),
        ["summary", db, id] => say(&summary(&report(db, id).await?)),
        _ => bail!(
            "usage: field-fixture seed DB_URL | report DB_URL REPORT_ID | \
             summary DB_URL REPORT_ID | create-db"
        ),
    }
    Ok(())
}

/// What the server holds of a report, as JSON.
async fn report(db: &str, id: &str) -> anyhow::Result<Value> {
    let store = gridsync_server::store::open(db).await?;
    let outcome = read_report(store.as_ref(), id).await;
    // Closed before the process exits (`Store::close` says why).
    store.close().await;
    outcome
}

async fn read_report(store: &dyn Store, id: &str) -> anyhow::Result<Value> {
    let id: uuid::Uuid = id.parse().context("a report id")?;
    let row = store
        .document(&id)
        .await?
        .with_context(|| format!("no report {id} on the server"))?;
    let conflicts: Vec<Value> = store
        .conflicts_of(&id)
        .await?
        .into_iter()
        .map(|c| {
            json!({
                "path": c.path, "code": c.code, "detail": c.detail,
                "resolved": c.resolved_at.is_some(), "resolved_by": c.resolved_by,
            })
        })
        .collect();
    let changes = store.changes_of(&id).await?.len();
    let mut heads: Vec<String> = row.heads.iter().map(|h| h.to_string()).collect();
    heads.sort();
    Ok(json!({
        "projection": row.projection,
        "heads": heads,
        "changes": changes,
        "has_conflicts": row.has_conflicts,
        "conflicts": conflicts,
    }))
}

fn summary(r: &Value) -> String {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let paths = |resolved: bool| -> String {
        let mut paths: Vec<String> = r["conflicts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["resolved"] == json!(resolved))
            .filter_map(|c| c["path"].as_str().map(str::to_owned))
            .collect();
        paths.sort();
        paths.join(",")
    };
    format!(
        "open_conflicts={}\nresolved_conflicts={}\nlog_entries={}\nstatus={}\nheads={}\nprojection={}",
        paths(false),
        paths(true),
        r["projection"]["log"].as_array().map_or(0, Vec::len),
        r["projection"]["fields"]["status"]
            .as_str()
            .unwrap_or_default(),
        strings(&r["heads"]).join(","),
        r["projection"],
    )
}

#[expect(clippy::print_stdout, reason = "the answer goes to the calling script")]
fn say(line: &str) {
    println!("{line}");
}
