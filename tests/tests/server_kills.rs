//! Kill -9 of the real `gridsync serve` while a dozen phones (the real phone library, each with
//! its own store) and an office client edit and sync in loops: the server is SIGKILLed at random
//! moments and restarted on the same database and port, again and again, and the phones retry as
//! the app does. Then: every change a phone was told was saved is stored (checked on the
//! database exactly as the last kill left it, before any phone could offer a lost change again),
//! the database passes its integrity check, and after one clean round of syncs every phone and
//! the office hold the server's reports at the server's heads, with nothing stored twice.
//!
//! `GRIDSYNC_KILLS` sets the number of kills (default 20, the CI mode; 1000 for the long run);
//! `GRIDSYNC_SEED` replays the kill moments and edits of a run (the test prints its seed).

use std::path::Path;
use std::time::{Duration, Instant};

use gridsync_e2e::field::{self, PASSWORD};
use gridsync_e2e::fleet::{self, Fleet};
use gridsync_e2e::{Server, env_number, integrity};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use tokio::task::block_in_place;

/// Phones editing at once, besides the office.
const PHONES: usize = 12;
/// A kill lands this long after the server answered `/healthz` again: from while the phones
/// are still reconnecting to well into a stretch of steady syncing.
const KILL_AFTER_MS: std::ops::Range<u64> = 30..1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_server_at_random_moments_loses_no_acknowledged_change_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("server.db").display());
    kill_repeatedly(&db, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_server_at_random_moments_loses_no_acknowledged_change_on_postgres() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = field::fresh_postgres_database("gridsync_kills").await;
    kill_repeatedly(&db, dir.path()).await;
}

async fn kill_repeatedly(db: &str, dir: &Path) {
    let kills = env_number("GRIDSYNC_KILLS").unwrap_or(20);
    eprintln!("{kills} kills");
    let seed = gridsync_e2e::seed();
    let started = Instant::now();

    field::seed(db).await;
    let mut server = Server::start(db, PASSWORD).await;
    let addr = server.addr().to_owned();
    let mut fleet = block_in_place(|| Fleet::open(dir, &server.base, PHONES));
    fleet.start(seed);

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut mid_sync = 0;
    for kill in 1..=kills {
        tokio::time::sleep(Duration::from_millis(rng.random_range(KILL_AFTER_MS))).await;
        mid_sync += u64::from(fleet.syncing() > 0);
        server.kill().await;
        if kill < kills {
            server = Server::start_at(&addr, db, PASSWORD, &[]).await;
        }
        if kill % 100 == 0 {
            eprintln!("{kill} kills, {:.0} s", started.elapsed().as_secs_f64());
        }
    }
    let killing = started.elapsed();
    let (tally, office_pulls) = block_in_place(|| fleet.stop());

    // The server is dead, as the last kill left it: nothing a phone was told is missing.
    let mut checked = integrity::check(db).await;
    let acked = fleet::check_acknowledged(&mut checked, &tally);

    let server = Server::start_at(&addr, db, PASSWORD, &[]).await;
    block_in_place(|| fleet.settle());
    let mut checked = integrity::check(db).await;
    fleet::check_acknowledged(&mut checked, &tally);
    fleet::check_converged(&checked, &fleet.everyone(), &tally);

    eprintln!(
        "{kills} kills ({mid_sync} with a phone mid-sync) survived in {:.1} s: {} acknowledged \
         heads covering {} of {} edits stored, {} reports, {} log entries, {} changes (seq counter \
         {}); {} syncs, {} failed, {} began with a refresh, {} logins after a session ended; the office pulled {office_pulls} times; {:.1} s \
         in all",
        killing.as_secs_f64(),
        acked,
        tally.acked_edits,
        tally.edits,
        checked.reports.len(),
        tally.appended,
        checked.changes,
        checked.counter,
        tally.syncs,
        tally.failed_syncs,
        tally.refreshes,
        tally.logins,
        started.elapsed().as_secs_f64()
    );
    eprintln!("first failures: {:#?}", tally.failures);
    assert!(
        mid_sync * 2 >= kills,
        "only {mid_sync} of {kills} kills came while a phone was syncing: the kills test little"
    );
    assert!(server.stop().await.success());
}
