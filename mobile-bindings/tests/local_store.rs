//! The phone's store at a township's size, without a server: reports open from their index and
//! list from their stored entries, so one damaged report never keeps the others from the user,
//! and a store written before the index existed is indexed when the phone opens it.

mod support;

use std::path::Path;

use gridsync_mobile::ClientError;
use gridsync_mobile::client::Client;
use gridsync_mobile::store::{DB_FILE, Store};
use support::{KEY, grids_of, open, phone, text};

/// Three dispute checks, each naming its parties.
fn three_reports(client: &Client) -> Vec<String> {
    ["张三", "李四", "王五"]
        .iter()
        .map(|name| {
            let id = client.create_report("dispute_check", "g1").unwrap();
            client
                .set_field(&id, "parties", Some(text(&format!("{name} 与邻居"))))
                .unwrap();
            id
        })
        .collect()
}

fn sql(dir: &Path, statement: &str, id: &str) {
    let conn = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
    conn.execute(statement, [id]).unwrap();
}

#[test]
fn a_damaged_report_does_not_keep_the_phone_from_opening_listing_or_editing_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let client = phone(dir.path(), Some(grids_of(support::USER, &["g1"])));
    let ids = three_reports(&client);
    drop(client);
    sql(
        dir.path(),
        "UPDATE doc_saves SET bytes = x'00112233' WHERE doc_id = ?1 AND n = 0",
        &ids[1],
    );

    let client = open(dir.path());
    let listed = client.list_reports(None).unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(client.search_reports("李四").unwrap()[0].id, ids[1]);
    assert!(matches!(
        client.report(&ids[1]),
        Err(ClientError::Storage(_))
    ));
    client
        .set_field(&ids[2], "parties", Some(text("王五 与村委会")))
        .unwrap();
    assert_eq!(
        client.search_reports("村委会").unwrap()[0].title,
        "王五 与村委会"
    );
    assert_eq!(client.report(&ids[0]).unwrap().id, ids[0]);
}

#[test]
fn a_store_from_before_the_index_is_indexed_on_opening_and_lists_searches_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let client = phone(dir.path(), Some(grids_of(support::USER, &["g1"])));
    let ids = three_reports(&client);
    let pending = client.pending_changes();
    let listed = client.list_reports(None).unwrap();
    drop(client);
    // As schema 5 left it: each document saved whole in its row, no index, no listing entries.
    let store = Store::open(dir.path(), &KEY).unwrap();
    let sealer = gridsync_mobile::seal::Sealer::new(&KEY).unwrap();
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    let saves: i64 = conn
        .query_row("SELECT count(*) FROM doc_saves WHERE n > 0", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(saves, 3, "each edit was stored as an incremental save");
    for id in &ids {
        let whole = store
            .load_doc(&id.parse().unwrap())
            .unwrap()
            .unwrap()
            .doc
            .save();
        let sealed = sealer.seal(&format!("doc:{id}"), &whole).unwrap();
        conn.execute("DELETE FROM doc_saves WHERE doc_id = ?1", [id])
            .unwrap();
        conn.execute(
            "INSERT INTO doc_saves (doc_id, n, bytes) VALUES (?1, 0, ?2)",
            rusqlite::params![id, sealed],
        )
        .unwrap();
    }
    drop(store);
    conn.execute_batch(
        "ALTER TABLE docs ADD COLUMN bytes BLOB NOT NULL DEFAULT x'';
         UPDATE docs SET bytes = (SELECT bytes FROM doc_saves WHERE doc_id = docs.id AND n = 0);
         DROP TABLE doc_saves; ALTER TABLE docs DROP COLUMN heads;
         ALTER TABLE docs DROP COLUMN pending; ALTER TABLE docs DROP COLUMN conflicts;
         ALTER TABLE docs DROP COLUMN summary; ALTER TABLE docs DROP COLUMN increments;
         ALTER TABLE docs DROP COLUMN hub; ALTER TABLE docs DROP COLUMN from_hub;
         PRAGMA user_version = 5;",
    )
    .unwrap();
    drop(conn);

    let client = open(dir.path());
    assert_eq!(client.list_reports(None).unwrap(), listed);
    assert_eq!(client.pending_changes(), pending);
    assert_eq!(client.search_reports("王五").unwrap()[0].id, ids[2]);
    drop(client);
    // Indexed once: the next opening finds every report indexed.
    let store = Store::open(dir.path(), &KEY).unwrap();
    let index = store.load_index().unwrap();
    assert_eq!((index.indexed.len(), index.unindexed.len()), (3, 0));
}

#[test]
fn a_search_finds_words_of_fields_log_entries_grid_and_id_in_any_case() {
    let dir = tempfile::tempdir().unwrap();
    let client = phone(dir.path(), Some(grids_of(support::USER, &["g1"])));
    let ids = three_reports(&client);
    let entry = [
        ("date", text("2026-11-04")),
        ("mediator", text("user-wang")),
        ("method", text("Door-to-door 上门调解")),
    ];
    client
        .append_log(
            &ids[0],
            entry.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        )
        .unwrap();
    drop(client);
    let client = open(dir.path());
    let found = |query: &str| -> Vec<String> {
        let mut ids: Vec<String> = client
            .search_reports(query)
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(found("door-TO-door 上门"), vec![ids[0].clone()]);
    assert_eq!(found("张三 上门调解"), vec![ids[0].clone()]);
    assert_eq!(found("张三 李四"), Vec::<String>::new());
    assert_eq!(found(&ids[1].to_uppercase()), vec![ids[1].clone()]);
    let mut all = ids.clone();
    all.sort();
    assert_eq!(found("G1 Dispute_Check"), all);
}
