//! Throwaway check of the Postgres store; deleted after use.
mod support;

use gridsync_core::protocol::{Pull, PullBody};
use gridsync_server::scope::Role;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_ingest_and_pull_roundtrip() {
    let t = postgres().await;
    let store = t.store.as_ref();
    seed_org(store).await;
    let w = writer("w1", Role::GridWorker, G1, "phone1");
    let mut a = dispute(1, G1, "w1");
    let mut b = drug_case(2, G1, "w1", "w1");
    let push = push_all(&mut [&mut b, &mut a]);
    let res = store.ingest(&w, &push, &registry()).await.expect("ingest");
    eprintln!("{res:?}");
    assert!(res.docs.iter().all(|d| is_acked(&d.outcome)));
    assert_eq!(res.docs[0].doc, b.id());
    let row = store.document(&a.id()).await.unwrap().expect("row");
    eprintln!("{row:?}");
    assert_eq!(store.changes_of(&a.id()).await.unwrap().len(), 2);
    eprintln!("{:?}", store.conflicts_of(&a.id()).await.unwrap());
    let mut loaded = store.load_doc(&a.id()).await.unwrap().expect("doc");
    assert_eq!(loaded.heads(), a.heads());
    // Again: idempotent.
    let res2 = store
        .ingest(&w, &push, &registry())
        .await
        .expect("ingest again");
    assert!(res2.docs.iter().all(|d| is_acked(&d.outcome)));
    let other = writer("w2", Role::GridWorker, G1, "phone2");
    let pulled = store
        .pull(
            &other.scope,
            Some("phone2"),
            &Pull {
                cursor: 0,
                byte_budget: 1 << 20,
                resend: vec![],
            },
        )
        .await
        .expect("pull");
    eprintln!(
        "next {} more {} docs {}",
        pulled.next_cursor,
        pulled.more,
        pulled.docs.len()
    );
    assert_eq!(pulled.docs.len(), 1); // the drug case is w1's, not w2's
    assert!(matches!(pulled.docs[0].body, PullBody::Snapshot(_)));
    assert!(!pulled.more);
    assert_ne!(pulled.digest, [0; 32]);
    let own = store
        .pull(
            &w.scope,
            Some("phone1"),
            &Pull {
                cursor: 0,
                byte_budget: 1,
                resend: vec![a.id()],
            },
        )
        .await
        .expect("pull own");
    eprintln!(
        "own: next {} more {} docs {}",
        own.next_cursor,
        own.more,
        own.docs.len()
    );
    let mut a2 = a.clone();
    a2.set_field(
        "place",
        &serde_json::json!("桥头"),
        &gridsync_core::report::Editor::new("w1", 2000),
    )
    .unwrap();
    let push = push_all(&mut [&mut a2]);
    store
        .ingest(&w, &push, &registry())
        .await
        .expect("ingest 3");
    let inc = store
        .pull(
            &other.scope,
            Some("phone2"),
            &Pull {
                cursor: pulled.next_cursor,
                byte_budget: 1 << 20,
                resend: vec![],
            },
        )
        .await
        .expect("pull inc");
    eprintln!(
        "inc: {:?}",
        inc.docs
            .iter()
            .map(|d| (d.doc, matches!(d.body, PullBody::Changes(_))))
            .collect::<Vec<_>>()
    );
    assert_eq!(inc.docs.len(), 1);
    let skip = store
        .pull(
            &w.scope,
            Some("phone1"),
            &Pull {
                cursor: pulled.next_cursor,
                byte_budget: 1 << 20,
                resend: vec![],
            },
        )
        .await
        .expect("pull skip");
    assert!(skip.docs.is_empty(), "own changes are skipped");
    assert_eq!(
        store.device("phone2").await.unwrap().map(|d| d.cursor),
        None
    );
    eprintln!("pruned {}", store.prune().await.unwrap());
    // Concurrent creation of the same new document from many tasks.
    let mut handles = Vec::new();
    for n in 0..8 {
        let s = t.store.clone();
        let w = w.clone();
        let mut c = dispute(100, G1, "w1");
        c.set_field(
            "place",
            &serde_json::json!(format!("p{n}")),
            &gridsync_core::report::Editor::new("w1", 3000 + n),
        )
        .unwrap();
        let push = push_all(&mut [&mut c]);
        handles.push(tokio::spawn(async move {
            s.ingest(&w, &push, &registry()).await
        }));
    }
    for h in handles {
        let r = h.await.unwrap().expect("concurrent ingest");
        eprintln!("concurrent: {:?}", r.docs[0].outcome);
    }
    let mut c = store
        .load_doc(&gridsync_core::DocId::from_u128(100))
        .await
        .unwrap()
        .unwrap();
    eprintln!("heads after concurrent creates: {}", c.heads().len());
    let user = gridsync_server::store::User {
        id: "w1".into(),
        username: "w1".into(),
        display_name: "W".into(),
        password_hash: "x".into(),
        role: Role::GridWorker,
        org_unit_id: "g1".into(),
        disabled: false,
        created_at: 1,
    };
    store.insert_user(&user).await.unwrap();
    assert!(matches!(
        store.insert_user(&user).await,
        Err(gridsync_server::store::StoreError::Duplicate(_))
    ));
    assert_eq!(store.users().await.unwrap(), vec![user]);
    store
        .audit(&gridsync_server::store::AuditEntry {
            at: 1,
            user_id: None,
            device_id: None,
            action: "x".into(),
            doc_id: Some(a.id()),
            detail: serde_json::json!({"a":1}),
        })
        .await
        .unwrap();
    assert_eq!(store.audit_log(10).await.unwrap().len(), 1);
}
