//! A short load on a running `gridsync serve`: many grid workers at once, each editing its own
//! reports and pushing and pulling in a loop, reporting requests per second, latency
//! percentiles and errors.
//!
//! ```text
//! gridsync serve --db sqlite:///tmp/load.db --bind 127.0.0.1:18080 &
//! loadgen --db sqlite:///tmp/load.db --base http://127.0.0.1:18080 --clients 50 --secs 30
//! ```
//!
//! `--db` names the server's database, which the generator seeds with one grid and one worker
//! per client (and, on a later run, reuses).

// The report is the standard output.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gridsync_core::DocId;
use gridsync_core::protocol::{self, Message, PullResult, PushResult};
use gridsync_core::replica::Replica;
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_e2e::percentile_ms;
use gridsync_server::auth::password;
use gridsync_server::scope::Role;
use gridsync_server::store::{self, Level, OrgUnit, Store, User};
use serde_json::{Value, json};

const PASSWORD: &str = "load test password";

struct Args {
    db: String,
    base: String,
    clients: usize,
    secs: u64,
    docs: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        db: String::new(),
        base: "http://127.0.0.1:8080".into(),
        clients: 50,
        secs: 30,
        docs: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--db" => args.db = value,
            "--base" => args.base = value,
            "--clients" => args.clients = value.parse()?,
            "--secs" => args.secs = value.parse()?,
            "--docs" => args.docs = value.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    if args.db.is_empty() {
        bail!("usage: loadgen --db URL [--base URL] [--clients N] [--secs S] [--docs N]");
    }
    Ok(args)
}

#[derive(Default)]
struct Stats {
    push: Vec<Duration>,
    pull: Vec<Duration>,
    errors: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let store = store::open(&args.db).await?;
    seed(store.as_ref(), args.clients).await?;
    drop(store);

    let deadline = Instant::now() + Duration::from_secs(args.secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.clients)
        .map(|i| {
            let base = args.base.clone();
            let docs = args.docs;
            tokio::spawn(async move { client(i, base, docs, deadline).await })
        })
        .collect();
    let mut all = Stats::default();
    for task in tasks {
        let stats = task.await?;
        all.push.extend(stats.push);
        all.pull.extend(stats.pull);
        all.errors.extend(stats.errors);
    }
    let secs = started.elapsed().as_secs_f64();
    let requests = all.push.len() + all.pull.len();
    println!(
        "{} clients for {secs:.1} s: {requests} requests, {:.0} requests/s, {} errors",
        args.clients,
        requests as f64 / secs,
        all.errors.len()
    );
    for (kind, mut times) in [("push", all.push), ("pull", all.pull)] {
        times.sort();
        println!(
            "  {kind}: {} requests, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            times.len(),
            percentile_ms(&times, 0.50),
            percentile_ms(&times, 0.99),
            percentile_ms(&times, 1.0)
        );
    }
    for error in all.errors.iter().take(5) {
        println!("  error: {error}");
    }
    Ok(())
}

/// One grid and one worker per client under one village; kept when already there.
async fn seed(store: &dyn Store, clients: usize) -> anyhow::Result<()> {
    let mut units = vec![
        (
            "load-d".to_owned(),
            None,
            Level::District,
            "/load-d/".to_owned(),
        ),
        (
            "load-t".into(),
            Some("load-d".to_owned()),
            Level::Township,
            "/load-d/load-t/".into(),
        ),
        (
            "load-v".into(),
            Some("load-t".into()),
            Level::Village,
            "/load-d/load-t/load-v/".into(),
        ),
    ];
    units.extend((0..clients).map(|i| {
        (
            format!("load-g{i}"),
            Some("load-v".to_owned()),
            Level::Grid,
            format!("/load-d/load-t/load-v/load-g{i}/"),
        )
    }));
    for (id, parent_id, level, path) in units {
        store
            .upsert_org_unit(&OrgUnit {
                name: id.clone(),
                id,
                parent_id,
                level,
                path,
            })
            .await?;
    }
    let hash = password::hash(PASSWORD.into()).await?;
    for i in 0..clients {
        if store
            .user_by_username(&format!("load-w{i}"))
            .await?
            .is_some()
        {
            continue;
        }
        store
            .insert_user(&User {
                id: format!("load-w{i}"),
                username: format!("load-w{i}"),
                display_name: format!("load worker {i}"),
                password_hash: hash.clone(),
                role: Role::GridWorker,
                org_unit_id: format!("load-g{i}"),
                disabled: false,
                created_at: 0,
            })
            .await?;
    }
    Ok(())
}

/// A worker's phone: creates its reports, then edits, pushes and pulls until the deadline.
async fn client(i: usize, base: String, docs: usize, deadline: Instant) -> Stats {
    let mut stats = Stats::default();
    let http = reqwest::Client::new();
    let user = format!("load-w{i}");
    let token = match login(&http, &base, &user, i).await {
        Ok(token) => token,
        Err(e) => {
            stats.errors.push(format!("login {user}: {e:#}"));
            return stats;
        }
    };
    let mut replica = Replica::new();
    let ids: Vec<DocId> = (0..docs).map(|_| DocId::new_v4()).collect();
    for id in &ids {
        let editor = Editor::new(&user, 1_000);
        match ReportDoc::create(*id, "dispute_check", 1, &format!("load-g{i}"), &editor) {
            Ok(doc) => replica.insert(doc),
            Err(e) => stats.errors.push(format!("create: {e}")),
        }
    }
    let mut round = 0u64;
    while Instant::now() < deadline {
        round += 1;
        let id = ids[round as usize % ids.len()];
        if let Some(doc) = replica.doc_mut(&id)
            && let Err(e) = doc.set_field(
                "description",
                &json!(format!("第 {round} 次走访")),
                &Editor::new(&user, 1_000 + round as i64),
            )
        {
            stats.errors.push(format!("edit: {e}"));
        }
        if let Some(push) = replica.build_push(256 * 1024) {
            let start = Instant::now();
            match exchange::<_, PushResult>(&http, &base, &token, "push", &push).await {
                Ok(result) => {
                    stats.push.push(start.elapsed());
                    let summary = replica.apply_push_result(&result);
                    stats
                        .errors
                        .extend(summary.rejected.iter().map(|r| format!("rejected: {r:?}")));
                }
                Err(e) => stats.errors.push(format!("push: {e:#}")),
            }
        }
        let pull = replica.build_pull(64 * 1024);
        let start = Instant::now();
        match exchange::<_, PullResult>(&http, &base, &token, "pull", &pull).await {
            Ok(result) => {
                stats.pull.push(start.elapsed());
                if let Err(e) = replica.apply_pull_result(result) {
                    stats.errors.push(format!("apply pull: {e}"));
                }
            }
            Err(e) => stats.errors.push(format!("pull: {e:#}")),
        }
    }
    stats
}

async fn login(http: &reqwest::Client, base: &str, user: &str, i: usize) -> anyhow::Result<String> {
    let tokens: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({
            "username": user, "password": PASSWORD,
            "device_id": format!("load-phone-{i}"), "device_name": "load generator",
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    tokens["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access token")
}

async fn exchange<Q: Message, A: Message>(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    what: &str,
    message: &Q,
) -> anyhow::Result<A> {
    let bytes = http
        .post(format!("{base}/api/v1/sync/{what}"))
        .bearer_auth(token)
        .header("content-type", "application/x-gridsync")
        .body(protocol::encode(message))
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    Ok(protocol::decode(&bytes)?)
}
