//! Pushes to the same reports at once. A batch is judged against a read snapshot, outside the
//! write transaction; one that another write overtook meanwhile is judged again. Whatever the
//! interleaving, every acknowledged change is stored once, with its own sequence number, and the
//! stored report is every writer's edits merged. Pushes that write canvass interviews of the
//! same grids take the grids' locks in one order, so on Postgres, where pushes commit side by
//! side, they never deadlock over the roll-up rows, and every interview is counted once.

mod support;

use std::sync::Arc;

use gridsync_core::report::{Editor, ReportDoc};
use gridsync_server::catalogue::Catalogue;
use gridsync_server::live::Hub;
use gridsync_server::metrics::Metrics;
use gridsync_server::scope::Role;
use gridsync_server::store::{Store, Writer};
use gridsync_server::sync::Ingest;
use serde_json::json;
use support::*;

const WRITERS: usize = 4;
const DOCS: u128 = 3;
/// Rounds are added until some batch has been overtaken (it takes one or two here), up to this.
const MAX_ROUNDS: usize = 400;

/// Pushes every change of `docs` as `writer`, every report acknowledged.
async fn push_acked(
    ingest: &Ingest,
    store: &dyn Store,
    writer: &Writer,
    docs: &mut [&mut ReportDoc],
) {
    let result = ingest
        .push(store, writer, &push_all(docs))
        .await
        .expect("ingest");
    for d in &result.docs {
        assert!(is_acked(&d.outcome), "{:?}", d.outcome);
    }
}

async fn run(store: Arc<dyn Store>) {
    seed_org(store.as_ref()).await;
    let mut originals: Vec<ReportDoc> = (1..=DOCS).map(|i| dispute(i, G1, "w0")).collect();
    let mut refs: Vec<&mut ReportDoc> = originals.iter_mut().collect();
    let created = ingest(
        store.as_ref(),
        &writer("w0", Role::GridWorker, G1, "phone-0"),
        &push_all(&mut refs),
    )
    .await
    .expect("create the reports");
    assert!(created.docs.iter().all(|d| is_acked(&d.outcome)));

    let metrics = Arc::new(Metrics::new());
    let ingest = Ingest::new(Arc::new(Catalogue::builtin()), metrics.clone(), Hub::new());
    // Every worker of the grid edits its own copy of every report, and pushes it whole each
    // round: most of what it pushes the server holds already, and the rest races the others.
    let mut copies: Vec<Vec<ReportDoc>> = (0..WRITERS)
        .map(|_| {
            originals
                .iter_mut()
                .map(|d| ReportDoc::load(d.id(), &d.save()).expect("copy"))
                .collect()
        })
        .collect();
    let mut rounds = 0;
    while rounds < MAX_ROUNDS && (rounds < 5 || metrics.ingest_retries.get() == 0) {
        rounds += 1;
        let mut tasks = Vec::new();
        for (w, mut docs) in copies.into_iter().enumerate() {
            let store = store.clone();
            let ingest = ingest.clone();
            tasks.push(tokio::spawn(async move {
                let user = format!("w{}", w + 1);
                let editor = Editor::new(&user, 2_000 + rounds as i64);
                for doc in &mut docs {
                    doc.set_field(
                        "description",
                        &json!(format!("{user} round {rounds}")),
                        &editor,
                    )
                    .expect("edit");
                }
                let wr = writer(&user, Role::GridWorker, G1, &format!("phone-{}", w + 1));
                let mut refs: Vec<&mut ReportDoc> = docs.iter_mut().collect();
                push_acked(&ingest, store.as_ref(), &wr, &mut refs).await;
                docs
            }));
        }
        copies = Vec::new();
        for task in tasks {
            copies.push(task.await.expect("writer"));
        }
    }
    assert!(
        metrics.ingest_retries.get() > 0,
        "no batch was overtaken in {rounds} rounds, so the retry was never exercised"
    );

    // The server's copy of each report is every writer's copy merged.
    let scope = writer("c1", Role::VillageCadre, "v1", "office").scope;
    let mut replica = gridsync_core::replica::Replica::new();
    pull_all(
        store.as_ref(),
        &scope,
        Some("office"),
        &mut replica,
        1 << 20,
    )
    .await;
    for (i, original) in originals.iter_mut().enumerate() {
        let mut merged = ReportDoc::load(original.id(), &original.save()).expect("copy");
        for docs in &mut copies {
            merged
                .apply_changes(&docs[i].changes_since(&[]))
                .expect("merge");
        }
        let mut held = replica.get(&original.id()).expect("pulled").doc.clone();
        assert_eq!(held.heads(), merged.heads(), "report {}", original.id());
        // Each change once: the server's copy holds exactly the changes of the merge.
        assert_eq!(
            held.changes_since(&[]).len(),
            merged.changes_since(&[]).len()
        );
    }
}

/// Interviews per grid; each office edits half of them.
const INTERVIEWS: u128 = 4;
/// Without the grids' locks, Postgres ended one push of the first or second round to break a
/// deadlock in every run tried.
const CANVASS_ROUNDS: usize = 8;

/// An interview's fields in round `round`: satisfied in even rounds, not in odd ones.
fn interview(round: usize) -> serde_json::Value {
    let answer = if round.is_multiple_of(2) { "5" } else { "1" };
    json!({
        "household_type": "local_resident",
        "canvasser": "admin",
        "interviewed_at": "2026-10-15T10:00:00+08:00",
        "satisfaction_police": answer,
        "satisfaction_courts": answer,
        "satisfaction_mediation": answer,
        "satisfaction_services": answer,
    })
}

/// `canvass_months` as (org path, month, interviews, satisfied), in order.
async fn canvass_months(url: &str) -> Vec<(String, String, i64, i64)> {
    use sqlx::Connection;
    const SQL: &str = "SELECT org_path, month, interviews, satisfied FROM canvass_months \
         WHERE interviews <> 0 ORDER BY org_path, month";
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
        sqlx::query_as(SQL)
            .fetch_all(&mut conn)
            .await
            .expect("roll-ups")
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::query_as(SQL)
            .fetch_all(&mut conn)
            .await
            .expect("roll-ups")
    }
}

/// Two offices edit interviews of grids g1 and g2 at once, one always g1's first and the other
/// g2's first, so their pushes update the two grids' roll-up rows in opposite orders.
async fn canvass_edits_in_opposite_orders(url: &str, store: Arc<dyn Store>) {
    seed_org(store.as_ref()).await;
    let mut docs: Vec<(ReportDoc, ReportDoc)> = (0..INTERVIEWS)
        .map(|i| {
            let one =
                |grid, id| admin_report(id, "satisfaction_canvass", grid, interview(0), vec![]);
            (one(G1, 100 + i), one(G2, 200 + i))
        })
        .collect();
    let mut all: Vec<&mut ReportDoc> = docs.iter_mut().flat_map(|(a, b)| [a, b]).collect();
    let created = ingest(store.as_ref(), &admin(), &push_all(&mut all))
        .await
        .expect("file the interviews");
    assert!(created.docs.iter().all(|d| is_acked(&d.outcome)));

    let metrics = Arc::new(Metrics::new());
    let ingest = Ingest::new(Arc::new(Catalogue::builtin()), metrics.clone(), Hub::new());
    let (mut first, mut second): (Vec<_>, Vec<_>) =
        docs.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    for round in 1..=CANVASS_ROUNDS {
        let mut tasks = Vec::new();
        for (office, pairs) in [std::mem::take(&mut first), std::mem::take(&mut second)]
            .into_iter()
            .enumerate()
        {
            let store = store.clone();
            let ingest = ingest.clone();
            tasks.push(tokio::spawn(async move {
                let mut pairs = pairs;
                let editor = Editor::new("admin", 3_000 + round as i64);
                let wr = writer(
                    "admin",
                    Role::DistrictAdmin,
                    "d",
                    &format!("office-{office}"),
                );
                let mut refs: Vec<&mut ReportDoc> = Vec::new();
                for (_, (g1, g2)) in &mut pairs {
                    for doc in [&mut *g1, &mut *g2] {
                        for (field, value) in interview(round).as_object().expect("fields") {
                            if field.starts_with("satisfaction_") {
                                doc.set_field(field, value, &editor).expect("edit");
                            }
                        }
                    }
                    if office == 0 {
                        refs.extend([g1, g2]);
                    } else {
                        refs.extend([g2, g1]);
                    }
                }
                push_acked(&ingest, store.as_ref(), &wr, &mut refs).await;
                pairs
            }));
        }
        first = tasks.remove(0).await.expect("office 0");
        second = tasks.remove(0).await.expect("office 1");
    }

    // The offices edit different reports, so only a deadlock could have a push written again.
    assert_eq!(metrics.ingest_retries.get(), 0, "pushes written again");
    // Every interview counted once, satisfied as the last (even) round left it.
    let each = INTERVIEWS as i64;
    let satisfied = each;
    assert_eq!(
        canvass_months(url).await,
        [
            (
                path_of(G1).to_owned(),
                "2026-10".to_owned(),
                each,
                satisfied
            ),
            (
                path_of(G2).to_owned(),
                "2026-10".to_owned(),
                each,
                satisfied
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn canvass_edits_racing_in_opposite_orders_never_deadlock_and_are_counted_once_on_sqlite() {
    let t = sqlite().await;
    canvass_edits_in_opposite_orders(&t.url, t.store.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn canvass_edits_racing_in_opposite_orders_never_deadlock_and_are_counted_once_on_postgres() {
    let t = postgres().await;
    canvass_edits_in_opposite_orders(&t.url, t.store.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_racing_on_the_same_reports_lose_nothing_on_sqlite() {
    let t = sqlite().await;
    run(t.store.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_racing_on_the_same_reports_lose_nothing_on_postgres() {
    let t = postgres().await;
    run(t.store.clone()).await;
}
