//! Pushes to the same reports at once. A batch is judged against a read snapshot, outside the
//! write transaction; one that another write overtook meanwhile is judged again. Whatever the
//! interleaving, every acknowledged change is stored once, with its own sequence number, and the
//! stored report is every writer's edits merged.

mod support;

use std::sync::Arc;

use gridsync_core::report::{Editor, ReportDoc};
use gridsync_server::catalogue::Catalogue;
use gridsync_server::live::Hub;
use gridsync_server::metrics::Metrics;
use gridsync_server::scope::Role;
use gridsync_server::store::Store;
use gridsync_server::sync::Ingest;
use serde_json::json;
use support::*;

const WRITERS: usize = 4;
const DOCS: u128 = 3;
/// Rounds are added until some batch has been overtaken (it takes one or two here), up to this.
const MAX_ROUNDS: usize = 400;

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
                let result = ingest
                    .push(store.as_ref(), &wr, &push_all(&mut refs))
                    .await
                    .expect("ingest");
                for d in &result.docs {
                    assert!(is_acked(&d.outcome), "{:?}", d.outcome);
                }
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
