//! Two `gridsync serve` processes on one Postgres database: a push to node A pokes a live
//! client connected to node B within a bounded time, and that client pulls the change from B.

use std::time::{Duration, Instant};

use gridsync_core::DocId;
use gridsync_e2e::Server;
use gridsync_e2e::field::{self, GRID, PASSWORD};
use gridsync_fixtures::phone::Phone;

/// What "within a bounded time" means here: generous for a loaded CI machine; a poke takes
/// milliseconds (see the README's measured figures).
const BOUND: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_to_node_a_pokes_a_live_client_of_node_b_which_then_pulls_the_change_from_b() {
    let db = field::fresh_postgres_database("gridsync_live").await;
    field::seed(&db).await;
    let a = Server::start(&db, PASSWORD).await;
    let b = Server::start(&db, PASSWORD).await;

    let mut worker = Phone::login(&a.base, "wang", PASSWORD, "wang's phone")
        .await
        .expect("login");
    let mut cadre = Phone::login(&b.base, "li", PASSWORD, "li's office pc")
        .await
        .expect("login");
    let mut live = cadre.listen().await.expect("listen");
    // The pusher's own node hears its notice come back from Postgres; it must not poke twice.
    let mut own = worker.listen().await.expect("listen");

    let id = DocId::from_u128(7);
    worker.edit(id, GRID, "村口", 1_000);
    let pushed = Instant::now();
    worker.push().await.expect("push");
    let seq = live.poke(BOUND).await;
    let waited = pushed.elapsed();
    assert!(
        seq.is_some(),
        "no poke on node B within {BOUND:?} of the push to node A"
    );
    assert!(waited < BOUND, "{waited:?}");
    assert_eq!(own.poke(BOUND).await, seq);

    cadre.pull().await.expect("pull");
    let held = cadre.replica.get(&id).expect("pulled from node B");
    let server = worker.replica.get(&id).expect("pushed");
    assert_eq!(
        held.doc.to_json().expect("json"),
        server.doc.to_json().expect("json")
    );

    // A second edit on A: B's client is poked again, with a later sequence, exactly once.
    worker.edit(id, GRID, "村委会", 2_000);
    worker.push().await.expect("push");
    let again = live.poke(BOUND).await.expect("poked again");
    assert!(again > seq.expect("first"), "{again}");
    assert_eq!(own.poke(BOUND).await, Some(again));
    assert_eq!(
        live.poke(Duration::from_millis(500)).await,
        None,
        "poked twice"
    );
    assert_eq!(
        own.poke(Duration::from_millis(100)).await,
        None,
        "poked twice"
    );
    cadre.pull().await.expect("pull");
    let place = cadre
        .replica
        .get(&id)
        .expect("held")
        .doc
        .to_json()
        .expect("json")["fields"]["place"]
        .clone();
    assert_eq!(place, serde_json::json!("村委会"));

    assert!(a.stop().await.success());
    assert!(b.stop().await.success());
}
