//! Two replicas of sync-core push and pull through a real `gridsync serve` over HTTP: edits of
//! different fields merge, concurrent edits of one field become a conflict that both sides
//! hold, and both end at the server's heads.

use gridsync_core::DocId;
use gridsync_core::replica::Replica;
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_e2e::Server;
use gridsync_fixtures::fixture::Fixture;
use gridsync_fixtures::org::OrgTree;
use gridsync_fixtures::phone::Phone;
use serde_json::{Value, json};

const PASSWORD: &str = "e2e admin password";

fn json_of(replica: &Replica, id: &DocId) -> Value {
    replica.get(id).expect("held").doc.to_json().expect("json")
}

#[tokio::test]
async fn two_replicas_converge_through_a_real_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("gridsync.db").display());
    Fixture::new(OrgTree::one_grid())
        .seed_database(&db)
        .await
        .expect("seed the org tree");
    let server = Server::start(&db, PASSWORD).await;
    let (mut a, mut b) = (
        Phone::login(&server.base, "admin", PASSWORD, "pc-a")
            .await
            .expect("login"),
        Phone::login(&server.base, "admin", PASSWORD, "pc-b")
            .await
            .expect("login"),
    );

    let admin = a.user_id.clone();
    let ids: Vec<DocId> = (1..=30).map(DocId::from_u128).collect();
    for id in &ids {
        let editor = Editor::new(&admin, 1_000);
        let mut doc = ReportDoc::create(*id, "dispute_check", 1, "g1", &editor).expect("create");
        doc.set_field("place", &json!("村口"), &editor)
            .expect("set");
        a.replica.insert(doc);
    }
    a.sync().await.expect("sync");
    b.sync().await.expect("sync");
    assert_eq!(b.replica.ids().count(), ids.len());

    let one = ids[0];
    a.replica
        .doc_mut(&one)
        .expect("doc")
        .set_field("risk_level", &json!("high"), &Editor::new(&admin, 2_000))
        .expect("edit");
    b.replica
        .doc_mut(&one)
        .expect("doc")
        .set_field(
            "description",
            &json!("土地纠纷"),
            &Editor::new(&admin, 2_001),
        )
        .expect("edit");
    let two = ids[1];
    for (replica, value, at) in [(&mut a.replica, "甲", 3_000), (&mut b.replica, "乙", 3_001)] {
        replica
            .doc_mut(&two)
            .expect("doc")
            .set_field("place", &json!(value), &Editor::new(&admin, at))
            .expect("edit");
    }
    a.sync().await.expect("sync");
    b.sync().await.expect("sync");
    a.sync().await.expect("sync");

    for id in &ids {
        assert_eq!(
            json_of(&a.replica, id),
            json_of(&b.replica, id),
            "report {id}"
        );
    }
    let fields = json_of(&a.replica, &one)["fields"].clone();
    assert_eq!(
        (fields["risk_level"].clone(), fields["description"].clone()),
        (json!("high"), json!("土地纠纷"))
    );
    let conflicts = a
        .replica
        .get(&two)
        .expect("held")
        .doc
        .clone()
        .conflicts()
        .expect("conflicts");
    assert_eq!(
        conflicts.len(),
        1,
        "the concurrent edits of one field are a conflict"
    );
    assert_eq!(a.replica.pending() + b.replica.pending(), 0);

    let status = server.stop().await;
    assert!(status.success());
}
