//! The files SQLite keeps beside the database: its write-ahead log does not stay at the largest
//! size a busy moment gave it.

mod support;

use gridsync_server::scope::Role;
use gridsync_server::store::UploadChunk;
use gridsync_server::store::sqlite::WAL_LIMIT_BYTES;
use sqlx::{Connection, SqliteConnection};
use support::*;

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_is_cut_back_to_its_limit_once_readers_let_go() {
    let t = sqlite().await;
    let store = t.store.as_ref();
    seed_org(store).await;
    let mut doc = dispute(1, G1, "w1");
    let result = ingest(
        store,
        &writer("w1", Role::GridWorker, G1, "dev-w1"),
        &push_all(&mut [&mut doc]),
    )
    .await
    .expect("ingest");
    assert!(result.docs.iter().all(|d| is_acked(&d.outcome)));

    // A reader's open snapshot keeps every later page in the log: no checkpoint can restart it.
    let mut reader = SqliteConnection::connect(&t.url).await.expect("reader");
    sqlx::raw_sql("BEGIN; SELECT count(*) FROM documents;")
        .execute(&mut reader)
        .await
        .expect("hold a snapshot");
    let piece = vec![7u8; MIB];
    let hash = "0".repeat(64);
    let chunks = 14;
    let upload = |i: usize| UploadChunk {
        doc_id: doc.id(),
        hash: &hash,
        media_type: "image/jpeg",
        total: ((chunks + 1) * MIB) as i64,
        offset: (i * MIB) as i64,
        bytes: &piece,
        user_id: "w1",
        now: 10,
    };
    for i in 0..12 {
        store.upload_chunk(&upload(i)).await.expect("chunk");
    }
    let wal = format!("{}-wal", t.url.trim_start_matches("sqlite://"));
    let grown = std::fs::metadata(&wal).expect("the log").len();
    assert!(grown > 12 * MIB as u64, "the log holds {grown} bytes");

    sqlx::raw_sql("COMMIT")
        .execute(&mut reader)
        .await
        .expect("end the snapshot");
    drop(reader);
    // The first write after checkpoints the whole log; the one after it starts the log over.
    for i in 12..chunks {
        store.upload_chunk(&upload(i)).await.expect("chunk");
    }
    let after = std::fs::metadata(&wal).expect("the log").len();
    assert!(
        after <= WAL_LIMIT_BYTES,
        "the log holds {after} bytes, over its limit of {WAL_LIMIT_BYTES}"
    );
}
