//! Phones (the real phone library) syncing through a faulty network: a proxy that, per request
//! and seeded, drops it, loses its answer after the server acted on it, delays it, cuts the
//! request or the answer short mid-body, or delivers it twice. After a while of that and one
//! clean round of syncs: every change a phone was told was saved is stored, every phone and the
//! office hold the server's reports at its heads, and nothing is stored twice (one report per
//! creation, one log entry per step added, one change per edit). `GRIDSYNC_SEED` replays a run
//! (the test prints its seed); `GRIDSYNC_FAULT_SECONDS` sets how long the faults last
//! (default 10).

use std::time::Duration;

use gridsync_e2e::faulty::{Fault, FaultyProxy};
use gridsync_e2e::field::{self, PASSWORD};
use gridsync_e2e::fleet::{self, Fleet};
use gridsync_e2e::{Server, env_number, integrity};
use tokio::task::block_in_place;

const PHONES: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_behind_a_network_that_drops_delays_cuts_and_repeats_requests_lose_and_duplicate_nothing()
 {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("server.db").display());
    let seed = gridsync_e2e::seed();
    let seconds = env_number("GRIDSYNC_FAULT_SECONDS").unwrap_or(10);
    field::seed(&db).await;
    let server = Server::start(&db, PASSWORD).await;
    let proxy = FaultyProxy::start(&server.base, seed);

    proxy.set_faulty(false);
    let mut fleet = block_in_place(|| Fleet::open(dir.path(), &proxy.base, PHONES));
    proxy.set_faulty(true);
    fleet.start(seed);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (tally, office_pulls) = block_in_place(|| fleet.stop());

    let mut checked = integrity::check(&db).await;
    let acked = fleet::check_acknowledged(&mut checked, &tally);

    proxy.set_faulty(false);
    block_in_place(|| fleet.settle());
    let mut checked = integrity::check(&db).await;
    fleet::check_acknowledged(&mut checked, &tally);
    fleet::check_converged(&checked, &fleet.everyone(), &tally);

    let counts = proxy.counts();
    eprintln!(
        "{seconds} s of faults {counts:?}: {acked} acknowledged heads covering {} of {} edits \
         stored, {} reports, {} log entries, {} changes; {} syncs, {} failed, {} began with a refresh, {} logins after a session ended; \
         the office pulled {office_pulls} times",
        tally.acked_edits,
        tally.edits,
        checked.reports.len(),
        tally.appended,
        checked.changes,
        tally.syncs,
        tally.failed_syncs,
        tally.refreshes,
        tally.logins,
    );
    eprintln!("first failures: {:#?}", tally.failures);
    for (fault, n) in counts {
        assert!(
            n > 0 || fault == Fault::Pass,
            "no request met {fault:?}, so it was not tested"
        );
    }
    assert!(server.stop().await.success());
}
