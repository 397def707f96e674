//! Two replicas of sync-core push and pull through a real `gridsync serve` over HTTP: edits of
//! different fields merge, concurrent edits of one field become a conflict that both sides
//! hold, and both end at the server's heads.

use gridsync_core::DocId;
use gridsync_core::protocol::{self, Message, PullResult, PushResult};
use gridsync_core::replica::Replica;
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_e2e::Server;
use gridsync_server::store::{self, Level, OrgUnit};
use serde_json::{Value, json};

const PASSWORD: &str = "e2e admin password";

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    user_id: String,
}

impl Client {
    async fn login(base: &str, device: &str) -> Client {
        let http = reqwest::Client::new();
        let tokens: Value = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({
                "username": "admin", "password": PASSWORD,
                "device_id": device, "device_name": device,
            }))
            .send()
            .await
            .expect("login")
            .error_for_status()
            .expect("login answers 200")
            .json()
            .await
            .expect("tokens");
        Client {
            http,
            base: base.to_owned(),
            token: tokens["access_token"].as_str().expect("token").to_owned(),
            user_id: tokens["user_id"].as_str().expect("user id").to_owned(),
        }
    }

    async fn exchange<Q: Message, A: Message>(&self, path: &str, message: &Q) -> A {
        let bytes = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/x-gridsync")
            .body(protocol::encode(message))
            .send()
            .await
            .expect("request")
            .error_for_status()
            .expect("answer 200")
            .bytes()
            .await
            .expect("body");
        protocol::decode(&bytes).expect("a valid frame")
    }

    async fn sync(&self, replica: &mut Replica) {
        while let Some(push) = replica.build_push(256 * 1024) {
            let result: PushResult = self.exchange("/api/v1/sync/push", &push).await;
            let summary = replica.apply_push_result(&result);
            assert!(summary.rejected.is_empty(), "{:?}", summary.rejected);
        }
        loop {
            let pull = replica.build_pull(8 * 1024);
            let result: PullResult = self.exchange("/api/v1/sync/pull", &pull).await;
            let summary = replica.apply_pull_result(result).expect("apply");
            assert!(!summary.diverged, "the digest agrees");
            if !summary.more {
                break;
            }
        }
    }
}

fn json_of(replica: &Replica, id: &DocId) -> Value {
    replica.get(id).expect("held").doc.to_json().expect("json")
}

#[tokio::test]
async fn two_replicas_converge_through_a_real_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("gridsync.db").display());
    let seeded = store::open(&db).await.expect("open");
    for (id, parent, level, path) in [
        ("d", None, Level::District, "/d/"),
        ("t1", Some("d"), Level::Township, "/d/t1/"),
        ("v1", Some("t1"), Level::Village, "/d/t1/v1/"),
        ("g1", Some("v1"), Level::Grid, "/d/t1/v1/g1/"),
    ] {
        seeded
            .upsert_org_unit(&OrgUnit {
                id: id.into(),
                parent_id: parent.map(Into::into),
                level,
                name: id.into(),
                path: path.into(),
            })
            .await
            .expect("org unit");
    }
    drop(seeded);
    let server = Server::start(&db, PASSWORD).await;
    let (a, b) = (
        Client::login(&server.base, "pc-a").await,
        Client::login(&server.base, "pc-b").await,
    );
    let (mut left, mut right) = (Replica::new(), Replica::new());

    let admin = a.user_id.clone();
    let ids: Vec<DocId> = (1..=30).map(DocId::from_u128).collect();
    for id in &ids {
        let editor = Editor::new(&admin, 1_000);
        let mut doc = ReportDoc::create(*id, "dispute_check", 1, "g1", &editor).expect("create");
        doc.set_field("place", &json!("村口"), &editor)
            .expect("set");
        left.insert(doc);
    }
    a.sync(&mut left).await;
    b.sync(&mut right).await;
    assert_eq!(right.ids().count(), ids.len());

    let one = ids[0];
    left.doc_mut(&one)
        .expect("doc")
        .set_field("risk_level", &json!("high"), &Editor::new(&admin, 2_000))
        .expect("edit");
    right
        .doc_mut(&one)
        .expect("doc")
        .set_field(
            "description",
            &json!("土地纠纷"),
            &Editor::new(&admin, 2_001),
        )
        .expect("edit");
    let two = ids[1];
    for (replica, value, at) in [(&mut left, "甲", 3_000), (&mut right, "乙", 3_001)] {
        replica
            .doc_mut(&two)
            .expect("doc")
            .set_field("place", &json!(value), &Editor::new(&admin, at))
            .expect("edit");
    }
    a.sync(&mut left).await;
    b.sync(&mut right).await;
    a.sync(&mut left).await;

    for id in &ids {
        assert_eq!(json_of(&left, id), json_of(&right, id), "report {id}");
    }
    let fields = json_of(&left, &one)["fields"].clone();
    assert_eq!(
        (fields["risk_level"].clone(), fields["description"].clone()),
        (json!("high"), json!("土地纠纷"))
    );
    let conflicts = left
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
    assert_eq!(left.pending() + right.pending(), 0);

    let status = server.stop().await;
    assert!(status.success());
}
