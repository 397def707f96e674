//! The writer that the crash-safety test kills: it pushes batches of report changes into the
//! store named by its argument, forever, and reports each acknowledged document on stdout only
//! after the store's ingest has returned.
//!
//! Output, one line each: `push N` before a batch of N documents goes to `ingest`, then
//! `ack DOC_ID HEAD,HEAD…` (hex) for every document of that batch once it is committed.

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::{Context, Result, bail};
use gridsync_core::DocId;
use gridsync_core::protocol::{Push, PushDoc, PushOutcome};
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_fixtures::fixture::Fixture;
use gridsync_fixtures::org::OrgTree;
use gridsync_fixtures::reports::ingest;
use gridsync_server::scope::Role;
use gridsync_server::store;
use serde_json::json;

const USER: &str = "crash-writer";
const GRID: &str = "g1";
const BATCH_DOCS: usize = 50;
/// How many documents of a batch are edits of earlier ones, once that many exist.
const BATCH_EDITS: usize = 20;
const START: i64 = 1_800_000_000;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let url = std::env::args()
        .nth(1)
        .context("usage: crash-writer DATABASE_URL")?;
    let store = store::open(&url).await?;
    let district = Fixture::new(OrgTree::one_grid());
    district.seed(store.as_ref()).await?;
    let writer = district
        .tree
        .writer(USER, Role::GridWorker, GRID, "crash-phone");
    // Every document this run created. Each one's state is what the store acknowledged: a
    // batch either comes back acknowledged in full or ends the process.
    let mut docs: Vec<ReportDoc> = Vec::new();
    let mut stdout = std::io::stdout();
    for batch in 0_i64.. {
        let editor = Editor::new(USER, START + batch);
        let mut push = Push { docs: Vec::new() };
        let edits = BATCH_EDITS.min(docs.len());
        // Consecutive documents from a random start: distinct, since a push lists each once.
        let created = docs.len();
        let first = random_below(created.max(1));
        for k in 0..edits {
            let doc = &mut docs[(first + k) % created];
            let acked = doc.heads();
            fill(doc, batch, &editor)?;
            push.docs.push(PushDoc {
                doc: doc.id(),
                changes: doc.changes_since(&acked),
            });
        }
        for _ in edits..BATCH_DOCS {
            let mut doc = ReportDoc::create(DocId::new_v4(), "dispute_check", 1, GRID, &editor)?;
            fill(&mut doc, batch, &editor)?;
            push.docs.push(PushDoc {
                doc: doc.id(),
                changes: doc.changes_since(&[]),
            });
            docs.push(doc);
        }
        writeln!(stdout, "push {}", push.docs.len())?;
        stdout.flush()?;

        let result = ingest(store.as_ref(), &writer, &push).await?;

        // Only now is the batch committed; a line printed earlier could name a change that a
        // kill during ingest takes away.
        let mut out = String::new();
        for item in &result.docs {
            match &item.outcome {
                PushOutcome::Acked { heads } => {
                    // Unlisted heads are those pushed: the document's own, as nobody else writes.
                    let heads: Vec<String> = if heads.is_empty() {
                        let doc = docs.iter_mut().find(|d| d.id() == item.doc);
                        let pushed = doc.map(|d| d.heads()).unwrap_or_default();
                        pushed.iter().map(|h| hex::encode(h.0)).collect()
                    } else {
                        heads.iter().map(hex::encode).collect()
                    };
                    writeln!(out, "ack {} {}", item.doc, heads.join(","))?;
                }
                other => bail!("document {} was not acknowledged: {other:?}", item.doc),
            }
        }
        stdout.write_all(out.as_bytes())?;
        stdout.flush()?;
    }
    Ok(())
}

/// Three edits of three fields, each its own change.
fn fill(doc: &mut ReportDoc, batch: i64, by: &Editor) -> Result<()> {
    doc.set_field("place", &json!(format!("村口 {batch}")), by)?;
    doc.set_field("description", &json!(format!("第 {batch} 次排查")), by)?;
    doc.set_field("parties", &json!(format!("张三、李四 ({batch})")), by)?;
    Ok(())
}

fn random_below(n: usize) -> usize {
    (uuid::Uuid::new_v4().as_u128() % n as u128) as usize
}
