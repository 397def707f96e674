//! W1, upload: C phones each create D reports and edit each of them E times offline, then all
//! phones sync at once; then a fresh office client pulls the whole scope. Every document's
//! heads must then be equal on the phones and the office client (which holds what the server
//! holds: its pull ended on a matching scope digest).

use std::time::{Duration, Instant};

use gridsync_e2e::field::Relay;
use gridsync_fixtures::phone::{Phone, Traffic};
use gridsync_fixtures::work::{follow_up, new_dispute};
use serde_json::{Value, json};

use crate::district::{Backend, District, OFFICE, PASSWORD, grid, worker};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Phones, one grid worker each.
    #[arg(long, default_value_t = 20)]
    pub phones: usize,
    /// Reports each phone owns.
    #[arg(long, default_value_t = 100)]
    pub docs: usize,
    /// Offline edits of each report after its first form.
    #[arg(long, default_value_t = 10)]
    pub edits: usize,
}

pub async fn run(backend: Backend, args: &Args) -> anyhow::Result<Value> {
    let district = District::start(backend, args.phones).await?;
    let phone_relay = Relay::start(&district.server.base);
    let office_relay = Relay::start(&district.server.base);

    let mut phones = Vec::with_capacity(args.phones);
    let mut edits = 0u64;
    for i in 0..args.phones {
        let mut phone = Phone::login(
            &phone_relay.base,
            &worker(i),
            PASSWORD,
            &format!("phone-{i}"),
        )
        .await?;
        for d in 0..args.docs {
            let at = 1_000_000 + d as i64 * 100;
            let mut doc = new_dispute(&grid(i), &phone.user_id, at);
            for n in 0..args.edits {
                follow_up(&mut doc, n, &phone.user_id, at + 1 + n as i64);
            }
            edits += 2 + args.edits as u64;
            phone.replica.insert(doc);
        }
        phones.push(phone);
    }

    let wire_before = (phone_relay.sent(), phone_relay.received());
    let cpu_before = district.server_cpu_seconds()?;
    let started = Instant::now();
    let tasks: Vec<_> = phones
        .into_iter()
        .map(|mut phone| {
            tokio::spawn(async move {
                phone.push().await?;
                let (pushed, pushed_at) = (phone.traffic, started.elapsed());
                phone.pull().await?;
                anyhow::Ok((phone, pushed, pushed_at))
            })
        })
        .collect();
    let mut phones = Vec::with_capacity(tasks.len());
    let (mut push, mut sync) = (Traffic::default(), Traffic::default());
    let mut pushes_done = Duration::ZERO;
    for task in tasks {
        let (phone, pushed, pushed_at) = task.await??;
        push = push.plus(pushed);
        pushes_done = pushes_done.max(pushed_at);
        sync = sync.plus(phone.traffic);
        phones.push(phone);
    }
    let upload_secs = started.elapsed().as_secs_f64();
    let upload_cpu = district.server_cpu_seconds()? - cpu_before;
    let upload_wire = (
        phone_relay.sent() - wire_before.0,
        phone_relay.received() - wire_before.1,
    );

    let mut office = Phone::login(&office_relay.base, OFFICE, PASSWORD, "office-pc").await?;
    let wire_before = (office_relay.sent(), office_relay.received());
    let started = Instant::now();
    let pulled = office.pull().await?;
    let pull_secs = started.elapsed().as_secs_f64();
    let pull_wire = (
        office_relay.sent() - wire_before.0,
        office_relay.received() - wire_before.1,
    );

    let mut converged = pulled == args.phones * args.docs;
    let mut compacted = 0u64;
    for phone in &mut phones {
        let ids: Vec<_> = phone.replica.ids().copied().collect();
        for id in ids {
            let mine = phone.heads(&id);
            converged &= mine.is_some() && mine == office.heads(&id);
            if let Some(doc) = office.replica.doc_mut(&id) {
                compacted += doc.save().len() as u64;
            }
        }
    }

    Ok(json!({
        "workload": "W1 upload",
        "backend": backend,
        "phones": args.phones, "docs_per_phone": args.docs, "edits_per_doc": args.edits,
        "edits": edits,
        "upload": {
            "seconds": upload_secs,
            "edits_per_second": edits as f64 / upload_secs,
            "docs_per_second": (args.phones * args.docs) as f64 / upload_secs,
            "server_cpu_seconds": upload_cpu,
            "server_cpu_us_per_edit": upload_cpu * 1e6 / edits as f64,
            // What the peers' harness times: until the last phone's push was acknowledged,
            // before its first pull.
            "push_seconds": pushes_done.as_secs_f64(),
            "push_docs_per_second": (args.phones * args.docs) as f64 / pushes_done.as_secs_f64(),
            "requests": sync.requests,
            "push_body_bytes_up": push.body_up, "push_body_bytes_down": push.body_down,
            "sync_body_bytes_up": sync.body_up, "sync_body_bytes_down": sync.body_down,
            "wire_bytes_up": upload_wire.0, "wire_bytes_down": upload_wire.1,
        },
        "office_pull": {
            "docs": pulled,
            "seconds": pull_secs,
            "docs_per_second": pulled as f64 / pull_secs,
            "requests": office.traffic.requests,
            "body_bytes_down": office.traffic.body_down,
            "wire_bytes_up": pull_wire.0, "wire_bytes_down": pull_wire.1,
            "compacted_doc_bytes": compacted,
            "wire_over_compacted": pull_wire.1 as f64 / compacted.max(1) as f64,
        },
        "server_peak_memory_bytes": district.server_peak_memory()?,
        "database_bytes": district.database_size().await?,
        "converged": converged,
    }))
}
