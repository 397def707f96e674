//! W2 and W3 on one scope of N reports (default 10,000) that an office client already holds:
//! W2 syncs with nothing new (requests, bytes, milliseconds); W3 changes one field of one report
//! on a phone and syncs both ends (bytes each way against the raw change).

use std::time::Instant;

use gridsync_e2e::field::Relay;
use gridsync_fixtures::phone::Phone;
use gridsync_fixtures::work::{follow_up, new_dispute, touch};
use serde_json::{Value, json};

use crate::district::{Backend, District, OFFICE, PASSWORD, grid, worker};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Reports in the scope.
    #[arg(long, default_value_t = 10_000)]
    pub docs: usize,
}

/// A scope of `docs` reports pushed by one phone and pulled whole by an office client, each
/// behind its own byte-counting relay.
struct Scope {
    district: District,
    phone: Phone,
    phone_relay: Relay,
    office: Phone,
    office_relay: Relay,
    cold_pull_secs: f64,
}

async fn scope(backend: Backend, docs: usize) -> anyhow::Result<Scope> {
    let district = District::start(backend, 1).await?;
    let phone_relay = Relay::start(&district.server.base);
    let office_relay = Relay::start(&district.server.base);
    let mut phone = Phone::login(&phone_relay.base, &worker(0), PASSWORD, "phone-0").await?;
    for d in 0..docs {
        let at = 1_000_000 + d as i64;
        let mut doc = new_dispute(&grid(0), &phone.user_id, at);
        follow_up(&mut doc, 0, &phone.user_id, at + 1);
        phone.replica.insert(doc);
    }
    phone.sync().await?;
    let mut office = Phone::login(&office_relay.base, OFFICE, PASSWORD, "office-pc").await?;
    let started = Instant::now();
    office.pull().await?;
    let cold_pull_secs = started.elapsed().as_secs_f64();
    Ok(Scope {
        district,
        phone,
        phone_relay,
        office,
        office_relay,
        cold_pull_secs,
    })
}

/// W2: the office client syncs with nothing new anywhere.
pub async fn no_op(backend: Backend, args: &Args) -> anyhow::Result<Value> {
    let Scope {
        district,
        mut office,
        office_relay,
        cold_pull_secs,
        ..
    } = scope(backend, args.docs).await?;
    let before = office.traffic;
    let wire = (office_relay.sent(), office_relay.received());
    let started = Instant::now();
    office.sync().await?;
    let millis = started.elapsed().as_secs_f64() * 1_000.0;
    let traffic = office.traffic.since(before);
    let wire_up = office_relay.sent() - wire.0;
    let wire_down = office_relay.received() - wire.1;
    Ok(json!({
        "workload": "W2 no-op sync",
        "backend": backend,
        "scope_docs": args.docs,
        "cold_pull_seconds": cold_pull_secs,
        "requests": traffic.requests,
        "body_bytes_up": traffic.body_up, "body_bytes_down": traffic.body_down,
        "wire_bytes_up": wire_up, "wire_bytes_down": wire_down,
        "wire_bytes_total": wire_up + wire_down,
        "milliseconds": millis,
        "server_peak_memory_bytes": district.server_peak_memory()?,
    }))
}

/// W3: one field of one report changed on the phone; the phone pushes, the office pulls.
pub async fn incremental(backend: Backend, args: &Args) -> anyhow::Result<Value> {
    let Scope {
        district,
        mut phone,
        phone_relay,
        mut office,
        office_relay,
        ..
    } = scope(backend, args.docs).await?;
    let id = *phone.replica.ids().next().expect("the scope has reports");
    let doc = phone.replica.doc_mut(&id).expect("listed");
    let heads = doc.heads();
    touch(doc, 1, &worker(0), 2_000_000);
    let change_bytes: usize = doc.changes_since(&heads).iter().map(Vec::len).sum();

    let (phone_before, phone_wire) = (phone.traffic, (phone_relay.sent(), phone_relay.received()));
    phone.push().await?;
    let push = phone.traffic.since(phone_before);
    let push_wire = (
        phone_relay.sent() - phone_wire.0,
        phone_relay.received() - phone_wire.1,
    );

    let (office_before, office_wire) = (
        office.traffic,
        (office_relay.sent(), office_relay.received()),
    );
    office.pull().await?;
    let pull = office.traffic.since(office_before);
    let pull_wire = (
        office_relay.sent() - office_wire.0,
        office_relay.received() - office_wire.1,
    );
    let converged = office.heads(&id).is_some() && office.heads(&id) == phone.heads(&id);
    let target = 1.2 * change_bytes as f64 + 40.0;
    Ok(json!({
        "workload": "W3 incremental",
        "backend": backend,
        "scope_docs": args.docs,
        "change_bytes": change_bytes,
        "target_body_bytes_per_direction": target,
        "push": {
            "requests": push.requests,
            "body_bytes_up": push.body_up, "body_bytes_down": push.body_down,
            "wire_bytes_up": push_wire.0, "wire_bytes_down": push_wire.1,
            "body_up_over_change": push.body_up as f64 / change_bytes as f64,
        },
        "pull": {
            "requests": pull.requests,
            "body_bytes_up": pull.body_up, "body_bytes_down": pull.body_down,
            "wire_bytes_up": pull_wire.0, "wire_bytes_down": pull_wire.1,
            "body_down_over_change": pull.body_down as f64 / change_bytes as f64,
        },
        "converged": converged,
        "server_peak_memory_bytes": district.server_peak_memory()?,
    }))
}
