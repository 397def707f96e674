//! The files SQLite keeps beside the database: its write-ahead log does not stay at the largest
//! size a busy moment gave it, and a sealed database (a village office hub's) holds nothing in
//! clear, opens only with its key, and a database kept in clear is sealed in place whole.

mod support;

use std::path::Path;

use gridsync_server::scope::Role;
use gridsync_server::store::sqlite::WAL_LIMIT_BYTES;
use gridsync_server::store::{self, Store, StoreError, UploadChunk};
use sqlx::{Connection, SqliteConnection};
use support::*;

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_is_cut_back_to_its_limit_once_readers_let_go() {
    let t = sqlite().await;
    let store = t.store.as_ref();
    let doc = file_a_report(store).await;

    // A reader's open snapshot keeps every later page in the log: no checkpoint can restart it.
    let mut reader = SqliteConnection::connect(&t.url).await.expect("reader");
    sqlx::raw_sql("BEGIN; SELECT count(*) FROM documents;")
        .execute(&mut reader)
        .await
        .expect("hold a snapshot");
    let piece = vec![7u8; MIB];
    let hash = "0".repeat(64);
    // Past the limit while the reader holds on, and so past the checkpoint size too.
    let held = WAL_LIMIT_BYTES as usize / MIB + 2;
    let chunks = held + 2;
    let upload = |i: usize| UploadChunk {
        doc_id: doc,
        hash: &hash,
        media_type: "image/jpeg",
        total: ((chunks + 1) * MIB) as i64,
        offset: (i * MIB) as i64,
        bytes: &piece,
        user_id: "w1",
        now: 10,
    };
    for i in 0..held {
        store.upload_chunk(&upload(i)).await.expect("chunk");
    }
    let wal = format!("{}-wal", t.url.trim_start_matches("sqlite://"));
    let grown = std::fs::metadata(&wal).expect("the log").len();
    assert!(grown > WAL_LIMIT_BYTES, "the log holds {grown} bytes");

    sqlx::raw_sql("COMMIT")
        .execute(&mut reader)
        .await
        .expect("end the snapshot");
    drop(reader);
    // The first write after checkpoints the whole log; the one after it starts the log over.
    for i in held..chunks {
        store.upload_chunk(&upload(i)).await.expect("chunk");
    }
    let after = std::fs::metadata(&wal).expect("the log").len();
    assert!(
        after <= WAL_LIMIT_BYTES && after < grown,
        "the log holds {after} bytes, over its limit of {WAL_LIMIT_BYTES}"
    );
}

/// Text of the fixture's dispute check, to look for in a database's files.
const PLACE: &str = "村口";
const KEY: [u8; 32] = [7; 32];

/// Files a test database is kept in: the database and its write-ahead log.
fn file_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).expect("the database");
    if let Ok(log) = std::fs::read(format!("{}-wal", path.display())) {
        bytes.extend(log);
    }
    bytes
}

fn holds(bytes: &[u8], text: &str) -> bool {
    bytes.windows(text.len()).any(|w| w == text.as_bytes())
}

/// Seeds the org tree and files the fixture's dispute check in `store`.
async fn file_a_report(store: &dyn Store) -> gridsync_core::DocId {
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
    doc.id()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_database_holds_no_report_in_clear_and_opens_only_with_its_key() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("hub.db");
    let store = store::open_sealed(&path, &KEY).await.expect("sealed");
    let id = file_a_report(store.as_ref()).await;
    let bytes = file_bytes(&path);
    assert!(
        !bytes.starts_with(b"SQLite format 3"),
        "no plain SQLite header"
    );
    assert!(
        !holds(&bytes, PLACE),
        "the report's text is not in the files"
    );
    store.close().await;

    match store::open_sealed(&path, &[8; 32]).await {
        Err(StoreError::WrongKey(at)) => assert_eq!(at, path),
        Err(other) => panic!("another key opened it with {other}"),
        Ok(_) => panic!("another key opened it"),
    }
    let again = store::open_sealed(&path, &KEY).await.expect("reopened");
    assert!(again.document(&id).await.expect("read").is_some());
    again.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_kept_in_clear_is_sealed_in_place_with_all_it_held() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("hub.db");
    let plain = store::open(&format!("sqlite://{}", path.display()))
        .await
        .expect("plain");
    let id = file_a_report(plain.as_ref()).await;
    assert!(holds(&file_bytes(&path), PLACE), "in clear before");
    plain.close().await;

    let sealed = store::open_sealed(&path, &KEY).await.expect("sealed");
    assert!(
        sealed.document(&id).await.expect("read").is_some(),
        "kept whole"
    );
    let bytes = file_bytes(&path);
    assert!(!bytes.starts_with(b"SQLite format 3"));
    assert!(!holds(&bytes, PLACE), "nothing left in clear");
    // Sealed once: opening again changes nothing.
    sealed.close().await;
    let again = store::open_sealed(&path, &KEY).await.expect("reopened");
    assert!(again.document(&id).await.expect("read").is_some());
    again.close().await;
}
