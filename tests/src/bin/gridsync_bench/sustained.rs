//! W4, sustained: N devices, each syncing one small change every few seconds for a set time,
//! all at once against one server. Reports syncs per second, latency percentiles of a whole
//! sync (push and pull), errors, and the server's memory over the run.

use std::time::{Duration, Instant};

use gridsync_e2e::percentile_ms;
use gridsync_fixtures::phone::Phone;
use gridsync_fixtures::work::{Rng, new_dispute, touch};
use serde_json::{Value, json};

use crate::district::{Backend, District, OFFICE, PASSWORD, grid, worker};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Devices syncing at once.
    #[arg(long, default_value_t = 200)]
    pub devices: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 60)]
    pub secs: u64,
    /// Mean seconds between a device's syncs (each waits a random 0.5–1.5 times this).
    #[arg(long, default_value_t = 3.0)]
    pub every: f64,
    /// Reports each device owns and edits in turn.
    #[arg(long, default_value_t = 5)]
    pub docs: usize,
    /// Also run an office client asking for statistics back to back the whole time.
    #[arg(long)]
    pub stats: bool,
}

/// Time taken by each successful sync (or statistics request) and what went wrong.
#[derive(Default)]
struct Outcome {
    syncs: Vec<Duration>,
    errors: Vec<String>,
}

pub async fn run(backend: Backend, args: &Args) -> anyhow::Result<Value> {
    let district = District::start(backend, args.devices).await?;
    let base = district.server.base.clone();

    // Every device logs in and uploads its reports before the clock starts.
    let mut devices = Vec::with_capacity(args.devices);
    for i in 0..args.devices {
        let mut phone = Phone::login(&base, &worker(i), PASSWORD, &format!("device-{i}")).await?;
        for d in 0..args.docs {
            phone
                .replica
                .insert(new_dispute(&grid(i), &phone.user_id, 1_000 + d as i64));
        }
        phone.sync().await?;
        devices.push(phone);
    }

    let memory_at_start = district.server_memory()?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.secs);
    let every = args.every;
    let tasks: Vec<_> = devices
        .into_iter()
        .enumerate()
        .map(|(i, phone)| tokio::spawn(device(i, phone, every, deadline)))
        .collect();
    let office = if args.stats {
        let phone = Phone::login(&base, OFFICE, PASSWORD, "office-pc").await?;
        Some(tokio::spawn(statistics(phone, deadline)))
    } else {
        None
    };
    let mut memory = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1).min(deadline - Instant::now())).await;
        memory.push(district.server_memory()?);
    }
    let mut all = Outcome::default();
    for task in tasks {
        let outcome = task.await?;
        all.syncs.extend(outcome.syncs);
        all.errors.extend(outcome.errors);
    }
    let secs = started.elapsed().as_secs_f64();
    all.syncs.sort();
    let stats = match office {
        Some(task) => {
            let mut outcome = task.await?;
            outcome.syncs.sort();
            json!({
                "requests": outcome.syncs.len(),
                "ms": {
                    "p50": percentile_ms(&outcome.syncs, 0.50),
                    "p99": percentile_ms(&outcome.syncs, 0.99),
                },
                "errors": outcome.errors.len(),
                "first_errors": outcome.errors.iter().take(5).collect::<Vec<_>>(),
            })
        }
        None => Value::Null,
    };
    Ok(json!({
        "workload": "W4 sustained",
        "backend": backend,
        "devices": args.devices, "seconds": secs, "mean_seconds_between_syncs": every,
        "syncs": all.syncs.len(),
        "syncs_per_second": all.syncs.len() as f64 / secs,
        "sync_ms": {
            "p50": percentile_ms(&all.syncs, 0.50),
            "p99": percentile_ms(&all.syncs, 0.99),
            "max": percentile_ms(&all.syncs, 1.0),
        },
        "errors": all.errors.len(),
        "first_errors": all.errors.iter().take(5).collect::<Vec<_>>(),
        "office_statistics": stats,
        "server_memory_bytes": {
            "start": memory_at_start,
            "max": memory.iter().max(),
            "end": memory.last(),
        },
        "server_peak_memory_bytes": district.server_peak_memory()?,
    }))
}

/// One device: waits, edits one report, syncs; until the deadline.
async fn device(i: usize, mut phone: Phone, every: f64, deadline: Instant) -> Outcome {
    let mut outcome = Outcome::default();
    let ids: Vec<_> = phone.replica.ids().copied().collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15u64 ^ i as u64);
    let mut n = 0u64;
    loop {
        let jitter = 0.5 + rng.below(1_000) as f64 / 1_000.0;
        let wake = Instant::now() + Duration::from_secs_f64(every * jitter);
        if wake >= deadline {
            return outcome;
        }
        tokio::time::sleep_until(wake.into()).await;
        n += 1;
        let id = ids[n as usize % ids.len()];
        if let Some(doc) = phone.replica.doc_mut(&id) {
            touch(doc, n, &worker(i), 2_000_000 + n as i64);
        }
        let start = Instant::now();
        match phone.sync().await {
            Ok(()) => outcome.syncs.push(start.elapsed()),
            Err(e) => outcome.errors.push(format!("sync: {e:#}")),
        }
    }
}

/// The office client: the village's canvass and dispute statistics for the year, one request
/// after another until the deadline.
async fn statistics(phone: Phone, deadline: Instant) -> Outcome {
    let mut outcome = Outcome::default();
    let paths = [
        "/api/v1/stats/disputes?from=2026-01-01&to=2026-12-31",
        "/api/v1/stats/canvass?from=2026-01-01&to=2026-12-31",
    ];
    for path in paths.iter().cycle() {
        if Instant::now() >= deadline {
            break;
        }
        match phone.get(path).await {
            Ok((took, _)) => outcome.syncs.push(took),
            Err(e) => outcome.errors.push(format!("{e:#}")),
        }
    }
    outcome
}
