//! The cost of a village office hub: central holds a village of R reports (default 3,000) over
//! ten grids; a hub enrols, copies the village down, and its peak memory and database size are
//! read; then each grid's worker does a day's work at the hub with the uplink cut (F follow-ups
//! and N new reports), and the uplink's bytes are counted while the hub relays that day. The
//! baselines, read in the same run: a village cadre's cold pull of the village from central, and
//! central's own memory and database.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gridsync_e2e::field::Relay;
use gridsync_e2e::{HubProcess, gridsync};
use gridsync_fixtures::fixture::Fixture;
use gridsync_fixtures::org::OrgTree;
use gridsync_fixtures::people::Person;
use gridsync_fixtures::phone::Phone;
use gridsync_fixtures::work::{follow_up, new_dispute};
use gridsync_server::scope::Role;
use serde_json::{Value, json};

use crate::district::{Backend, District, OFFICE, PASSWORD, grid, proc_status_kib, worker};

const GRIDS: usize = 10;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Reports of the village central holds before the hub enrols.
    #[arg(long, default_value_t = 3_000)]
    pub reports: usize,
    /// Follow-up edits each worker makes in a day, each on one of their grid's reports.
    #[arg(long, default_value_t = 20)]
    pub follow_ups: usize,
    /// New reports each worker files in a day.
    #[arg(long, default_value_t = 5)]
    pub new: usize,
}

pub async fn run(backend: Backend, args: &Args) -> anyhow::Result<Value> {
    let workers = (0..GRIDS).map(|i| Person::new(&worker(i), Role::GridWorker, &grid(i)));
    let people = workers.chain([
        Person::new(OFFICE, Role::VillageCadre, "v"),
        Person::new("admin", Role::DistrictAdmin, "d"),
    ]);
    let fixture =
        Fixture::new(OrgTree::village(GRIDS)).people(people.map(|p| p.password(PASSWORD)));
    let district = District::start_with(backend, &fixture).await?;
    let base = district.server.base.clone();

    // The village as central holds it, filed from the office.
    let mut office = Phone::login(&base, OFFICE, PASSWORD, "office-pc").await?;
    for d in 0..args.reports {
        let at = 1_000_000 + d as i64 * 10;
        let mut doc = new_dispute(&grid(d % GRIDS), &office.user_id, at);
        follow_up(&mut doc, 0, &office.user_id, at + 1);
        office.replica.insert(doc);
    }
    office.sync().await?;
    // The baseline: the same village pulled cold from central by a village cadre's client.
    let baseline = Relay::start(&base);
    let mut cadre = Phone::login(&baseline.base, OFFICE, PASSWORD, "office-laptop").await?;
    cadre.pull().await?;
    let cadre_pull_down = baseline.received();

    // The office PC enrols and copies the village down through its uplink.
    let uplink = Relay::start(&base);
    let admin = Phone::login(&base, "admin", PASSWORD, "admin-pc").await?;
    let registered: Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/hubs"))
        .bearer_auth(&admin.token)
        .json(&json!({ "unit_id": "v", "name": "bench village" }))
        .send()
        .await?
        .json()
        .await?;
    let code = registered["enrolment_code"]
        .as_str()
        .context("no enrolment code")?;
    let dir = tempfile::tempdir()?;
    let hub_dir = dir.path().join("hub");
    let enrolled = gridsync(
        &HubProcess::enrol_args(&uplink.base, &hub_dir),
        &[("GRIDSYNC_HUB_CODE", code)],
    );
    if !enrolled.status.success() {
        bail!("enrol: {}", String::from_utf8_lossy(&enrolled.stderr));
    }
    let started = Instant::now();
    let hub = HubProcess::start(&hub_dir, 1).await;
    let hub_store = HubProcess::store(&hub_dir).await;
    wait_for("the hub's copy of the village", || async {
        Ok(count_documents(hub_store.as_ref()).await? >= args.reports as i64)
    })
    .await?;
    let copy_secs = started.elapsed().as_secs_f64();
    let copy_down = uplink.received();
    let after_copy_peak = proc_status_kib(hub.pid(), "VmHWM:")? * 1024;
    let after_copy_db = sqlite_size(&hub_dir.join("hub.db"));

    // A day's work at the hub with the uplink cut.
    uplink.set_online(false);
    let mut pushed = 0u64;
    for i in 0..GRIDS {
        let mut phone = Phone::login_with_key(
            &base,
            &worker(i),
            PASSWORD,
            &format!("phone-{i}"),
            i as u8 + 1,
        )
        .await?;
        phone.open_hub_session(&hub.base).await?;
        phone.pull().await?;
        let ids: Vec<_> = phone.replica.ids().copied().collect();
        for (n, id) in ids.iter().cycle().take(args.follow_ups).enumerate() {
            let user = phone.user_id.clone();
            let doc = phone.replica.doc_mut(id).context("held")?;
            follow_up(doc, n + 1, &user, 2_000_000 + n as i64);
        }
        for n in 0..args.new {
            let doc = new_dispute(&grid(i), &phone.user_id, 3_000_000 + n as i64);
            phone.replica.insert(doc);
        }
        let before = phone.traffic;
        phone.push().await?;
        pushed += phone.traffic.since(before).body_up;
    }
    let (up_before, down_before) = (uplink.sent(), uplink.received());
    uplink.set_online(true);
    let relay_started = Instant::now();
    wait_for("the hub's relay of the day", || async {
        Ok(hub_store.waiting_pushes(1).await?.is_empty())
    })
    .await?;
    hub_store.close().await;
    let relay_secs = relay_started.elapsed().as_secs_f64();
    let peak = proc_status_kib(hub.pid(), "VmHWM:")? * 1024;
    Ok(json!({
        "workload": "hub",
        "backend": backend,
        "reports": args.reports,
        "copy_secs": copy_secs,
        "copy_bytes_down": copy_down,
        "cadre_cold_pull_bytes_down": cadre_pull_down,
        "central_db_bytes": district.database_size().await?,
        "central_peak_rss": district.server_peak_memory()?,
        "hub_peak_rss_after_copy": after_copy_peak,
        "hub_db_bytes_after_copy": after_copy_db,
        "day": {
            "workers": GRIDS,
            "follow_ups": GRIDS * args.follow_ups,
            "new_reports": GRIDS * args.new,
            "pushed_to_hub_bytes": pushed,
            "relay_bytes_up": uplink.sent() - up_before,
            "relay_bytes_down": uplink.received() - down_before,
            "relay_secs": relay_secs,
        },
        "hub_peak_rss": peak,
        "hub_db_bytes": sqlite_size(&hub_dir.join("hub.db")),
    }))
}

/// Reports in the hub's database, read beside the running hub.
async fn count_documents(hub: &dyn gridsync_server::store::Store) -> anyhow::Result<i64> {
    let every = gridsync_server::scope::Scope::for_hub("bench", "/");
    let query = gridsync_server::store::ReportQuery {
        limit: 1,
        ..Default::default()
    };
    Ok(hub.list_reports(&every, &query).await?.total)
}

/// The SQLite file and its write-ahead log.
fn sqlite_size(file: &std::path::Path) -> u64 {
    let len = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    len(file) + len(&file.with_extension("db-wal"))
}

/// Waits up to ten minutes for `done`, polling every 100 ms.
async fn wait_for<F, Fut>(what: &str, mut done: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + Duration::from_secs(600);
    while !done().await? {
        if Instant::now() > deadline {
            bail!("{what} did not finish within ten minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
