//! Report kinds the phone gets from the server, without a server: kinds written into the store
//! the way a catalogue refresh leaves them are offered, retired versions are not but their
//! reports still open, and a definition this app cannot read is skipped.

use std::path::Path;

use gridsync_mobile::client::Client;
use gridsync_mobile::store::{
    Batch, Grid, GridList, Profile, SchemaState, Session, Store, StoredSchema,
};
use gridsync_mobile::{ClientConfig, ClientError, FieldValue, default_client_config};
use serde_json::json;

const KEY: [u8; 32] = [9; 32];
const USER: &str = "user-wang";
/// Nothing listens here: the offline tests never reach a server.
const NOWHERE: &str = "http://127.0.0.1:9";

// ---- the phone ----

/// A phone in `dir` logged in as wang, with grid g1 and `kinds` stored as a catalogue refresh
/// leaves them.
fn seed(dir: &Path, kinds: Vec<StoredSchema>) {
    let mut store = Store::open(dir, &KEY).expect("store");
    store
        .set_session(Some(&Session {
            access_token: "a".into(),
            refresh_token: "r".into(),
            access_expires_at: i64::MAX / 2,
            user: Profile {
                id: USER.into(),
                username: "wang".into(),
                display_name: "Wang".into(),
                role: "grid_worker".into(),
                org_unit_id: "g1".into(),
                scope_path: "/d/t1/v1/g1/".into(),
                clearance: true,
                device_id: "d1".into(),
            },
        }))
        .expect("session");
    store
        .set_grids(&GridList {
            user_id: USER.into(),
            whole_district: false,
            grids: vec![Grid {
                id: "g1".into(),
                name: "网格 g1".into(),
                path: "/d/t1/v1/g1/".into(),
            }],
        })
        .expect("grids");
    store_kinds(&mut store, kinds);
}

fn store_kinds(store: &mut Store, kinds: Vec<StoredSchema>) {
    let mut batch = Batch::default();
    kinds.into_iter().for_each(|k| batch.put_schema(k));
    store.commit(batch).expect("commit kinds");
}

fn open(dir: &Path, server: &str) -> Client {
    let config = ClientConfig {
        connect_timeout_ms: 1_000,
        request_timeout_ms: 5_000,
        max_attempts: 1,
        retry_base_delay_ms: 10,
        ..default_client_config()
    };
    Client::open(dir, server, &KEY, config).expect("open")
}

fn stored(
    kind: &str,
    version: u32,
    state: SchemaState,
    definition: Option<String>,
) -> StoredSchema {
    StoredSchema {
        kind: kind.into(),
        version,
        state,
        definition,
    }
}

/// Street lamp checks: version 2 adds the pole's height.
fn street_lamp(version: u32) -> String {
    let mut fields = vec![
        json!({"id": "lamp_no", "label": {"zh": "路灯编号", "en": "Lamp number"},
               "type": "text", "required": true, "max_len": 20}),
        json!({"id": "working", "label": {"zh": "是否正常", "en": "Working"}, "type": "boolean"}),
    ];
    if version >= 2 {
        fields.push(
            json!({"id": "pole_height", "label": {"zh": "灯杆高度", "en": "Pole height"},
                           "type": "decimal", "min": 0}),
        );
    }
    json!({"kind": "street_lamp", "version": version,
           "label": {"zh": "路灯巡查", "en": "Street lamp check"}, "fields": fields})
    .to_string()
}

fn bus_stop() -> String {
    json!({"kind": "bus_stop", "version": 1, "label": {"zh": "公交站巡查", "en": "Bus stop check"},
           "fields": [
               {"id": "stop_name", "label": {"zh": "站名", "en": "Stop name"}, "type": "text"},
               {"id": "benches", "label": {"zh": "座椅数", "en": "Benches"}, "type": "decimal"}]})
    .to_string()
}

fn text(value: &str) -> FieldValue {
    FieldValue::Text {
        value: value.into(),
    }
}

fn kinds_offered(client: &Client) -> Vec<(String, u32)> {
    client
        .schemas()
        .into_iter()
        .map(|k| (k.kind, k.version))
        .collect()
}

fn problem_codes(client: &Client, id: &str) -> Vec<String> {
    client
        .validate_report(id)
        .expect("validate")
        .into_iter()
        .map(|p| format!("{} {}", p.path, p.code))
        .collect()
}

// ---- without a server ----

#[test]
fn a_stored_kind_is_offered_and_its_reports_are_created_and_validated_offline() {
    let dir = tempfile::tempdir().unwrap();
    seed(
        dir.path(),
        vec![stored(
            "street_lamp",
            1,
            SchemaState::Published,
            Some(street_lamp(1)),
        )],
    );
    let client = open(dir.path(), NOWHERE);
    assert!(kinds_offered(&client).contains(&("street_lamp".into(), 1)));
    assert_eq!(client.schema("street_lamp").unwrap().label.zh, "路灯巡查");

    let id = client.create_report("street_lamp", "g1").unwrap();
    assert_eq!(problem_codes(&client, &id), ["fields.lamp_no required"]);
    client
        .set_field(&id, "lamp_no", Some(text("东-12")))
        .unwrap();
    client
        .set_field(&id, "working", Some(FieldValue::Boolean { value: false }))
        .unwrap();
    assert!(problem_codes(&client, &id).is_empty());
    let err = client
        .set_field(&id, "lamp_no", Some(text(&"长".repeat(21))))
        .unwrap_err();
    assert!(matches!(err, ClientError::Validation(_)), "{err:?}");
    let report = client.report(&id).unwrap();
    assert_eq!(
        (report.kind.as_str(), report.schema_version),
        ("street_lamp", 1)
    );
    assert_eq!(client.list_reports(None).unwrap()[0].title, "东-12");
}

#[test]
fn a_retired_version_is_not_offered_but_its_reports_still_open_edit_and_validate() {
    let dir = tempfile::tempdir().unwrap();
    seed(
        dir.path(),
        vec![
            stored(
                "street_lamp",
                1,
                SchemaState::Published,
                Some(street_lamp(1)),
            ),
            stored(
                "street_lamp",
                2,
                SchemaState::Published,
                Some(street_lamp(2)),
            ),
        ],
    );
    let client = open(dir.path(), NOWHERE);
    let id = client.create_report("street_lamp", "g1").unwrap();
    assert_eq!(client.report(&id).unwrap().schema_version, 2);
    client
        .set_field(&id, "lamp_no", Some(text("西-3")))
        .unwrap();
    drop(client);
    // The office retired version 2: the next refresh stores only its state.
    let mut store = Store::open(dir.path(), &KEY).unwrap();
    store_kinds(
        &mut store,
        vec![stored("street_lamp", 2, SchemaState::Retired, None)],
    );
    drop(store);

    let client = open(dir.path(), NOWHERE);
    assert!(kinds_offered(&client).contains(&("street_lamp".into(), 1)));
    assert_eq!(client.schema("street_lamp").unwrap().version, 1);
    // The version-2 report keeps its form: a field only version 2 has is typed and editable.
    client
        .set_field(&id, "pole_height", Some(FieldValue::Decimal { value: 7.0 }))
        .unwrap();
    let report = client.report(&id).unwrap();
    assert_eq!(report.schema_version, 2);
    let height = report.fields.iter().find(|f| f.field == "pole_height");
    assert_eq!(
        height.map(|f| &f.value),
        Some(&FieldValue::Decimal { value: 7.0 })
    );
    assert!(problem_codes(&client, &id).is_empty());
    let new = client.create_report("street_lamp", "g1").unwrap();
    assert_eq!(client.report(&new).unwrap().schema_version, 1);
}

#[test]
fn a_retired_built_in_kind_is_no_longer_offered_and_its_reports_still_open() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), Vec::new());
    let client = open(dir.path(), NOWHERE);
    let id = client.create_report("dispute_check", "g1").unwrap();
    drop(client);
    let mut store = Store::open(dir.path(), &KEY).unwrap();
    store_kinds(
        &mut store,
        vec![stored("dispute_check", 1, SchemaState::Retired, None)],
    );
    drop(store);

    let client = open(dir.path(), NOWHERE);
    assert!(
        !kinds_offered(&client)
            .iter()
            .any(|(k, _)| k == "dispute_check")
    );
    let err = client.create_report("dispute_check", "g1").unwrap_err();
    assert!(matches!(err, ClientError::NotFound(_)), "{err:?}");
    client
        .set_field(&id, "description", Some(text("邻里纠纷")))
        .unwrap();
    assert_eq!(client.report(&id).unwrap().kind, "dispute_check");
}

#[test]
fn a_stored_definition_this_app_cannot_read_is_skipped_and_the_others_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut future: serde_json::Value = serde_json::from_str(&bus_stop()).unwrap();
    future["kind"] = json!("signature_sheet");
    future["fields"][0]["type"] = json!("signature");
    seed(
        dir.path(),
        vec![
            stored(
                "broken",
                1,
                SchemaState::Published,
                Some("{not json".into()),
            ),
            // A field type from a newer form language.
            stored(
                "signature_sheet",
                1,
                SchemaState::Published,
                Some(future.to_string()),
            ),
            // Stored under another kind than it defines.
            stored("misfiled", 1, SchemaState::Published, Some(bus_stop())),
            stored(
                "street_lamp",
                1,
                SchemaState::Published,
                Some(street_lamp(1)),
            ),
        ],
    );
    let client = open(dir.path(), NOWHERE);
    let offered = kinds_offered(&client);
    assert_eq!(
        offered,
        [
            ("dispute_check".to_owned(), 1),
            ("drug_control_case".to_owned(), 1),
            ("satisfaction_canvass".to_owned(), 1),
            ("street_lamp".to_owned(), 1),
        ]
    );
    let err = client.create_report("signature_sheet", "g1").unwrap_err();
    assert!(matches!(err, ClientError::NotFound(_)), "{err:?}");
}
