//! Report kinds the phone gets from the server. Without a server: kinds written into the store
//! the way a catalogue refresh leaves them are offered, retired versions are not but their
//! reports still open, and a definition this app cannot read is skipped. Against a canned
//! server (a thread answering each method and path with a fixed answer): the catalogue refresh,
//! a sync that meets a changed catalogue or a report of a kind it lacks, and one that cannot
//! fetch the catalogue.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use gridsync_core::DocId;
use gridsync_core::protocol::{
    self, PullBody, PullDoc, PullResult, PushDocResult, PushOutcome, PushResult,
};
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_mobile::client::Client;
use gridsync_mobile::store::{Batch, SchemaState, Store, StoredSchema};
use gridsync_mobile::{ClientConfig, ClientError, FieldValue, default_client_config};
use serde_json::json;
use support::{NOWHERE, USER, grids_of, mark_refused, session};

const KEY: [u8; 32] = [9; 32];
const CATALOGUE: &str = "GET /api/v1/schemas/catalogue";
const PULL: &str = "POST /api/v1/sync/pull";
const PUSH: &str = "POST /api/v1/sync/push";

// ---- the phone ----

/// A phone in `dir` logged in as wang, with grid g1 and `kinds` stored as a catalogue refresh
/// leaves them.
fn seed(dir: &Path, kinds: Vec<StoredSchema>) {
    let mut store = Store::open(dir, &KEY).expect("store");
    store.set_session(Some(&session())).expect("session");
    store.set_grids(&grids_of(USER, &["g1"])).expect("grids");
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

fn stuck_codes(client: &Client) -> Vec<(String, String)> {
    let mut stuck: Vec<(String, String)> = client
        .stuck_reports()
        .expect("stuck")
        .into_iter()
        .map(|s| (s.id, s.code))
        .collect();
    stuck.sort();
    stuck
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

// ---- against a canned server ----

/// A server on a local port answering each request with the answer for its method and path
/// (404 for any other), recording the requests in order.
struct Canned {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// An answer: status, content type and body.
#[derive(Clone)]
struct Answer {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

fn json_answer(body: &str) -> Answer {
    Answer {
        status: 200,
        content_type: "application/json",
        body: body.as_bytes().to_vec(),
    }
}

fn frame_answer(body: Vec<u8>) -> Answer {
    Answer {
        status: 200,
        content_type: "application/x-gridsync",
        body,
    }
}

fn failing() -> Answer {
    Answer {
        status: 503,
        content_type: "application/problem+json",
        body: br#"{"code":"database_unavailable","detail":"try again shortly"}"#.to_vec(),
    }
}

impl Canned {
    fn start(answers: Vec<(&str, Answer)>) -> Canned {
        let answers: HashMap<String, Answer> = answers
            .into_iter()
            .map(|(route, answer)| (route.to_owned(), answer))
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requests, stop) = (Arc::clone(&requests), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let route = answer(stream, &answers);
                            requests.lock().unwrap().push(route);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Canned {
            base,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Canned {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request whole and answers it; returns its method and path.
fn answer(stream: TcpStream, answers: &HashMap<String, Answer>) -> String {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        if header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let route = request_line
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let found = answers.get(&route).cloned().unwrap_or(Answer {
        status: 404,
        content_type: "application/problem+json",
        body: br#"{"code":"not_found","detail":"no such thing"}"#.to_vec(),
    });
    let mut stream = reader.into_inner();
    write!(
        stream,
        "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        found.status,
        found.content_type,
        found.body.len()
    )
    .unwrap();
    stream.write_all(&found.body).unwrap();
    let _ = stream.shutdown(std::net::Shutdown::Write);
    route
}

/// A catalogue answer with its digest.
fn catalogue(digest: u64, entries: &[(&str, u32, &str)]) -> Answer {
    let entries: Vec<_> = entries
        .iter()
        .map(|(kind, version, state)| json!({"kind": kind, "version": version, "state": state}))
        .collect();
    json_answer(&json!({"digest": digest.to_string(), "entries": entries}).to_string())
}

/// A bus stop report someone else filed, as a snapshot.
fn someone_elses_bus_stop() -> ReportDoc {
    let by = Editor::new("user-li", 1_700_000_000);
    let mut doc = ReportDoc::create(DocId::new_v4(), "bus_stop", 1, "g1", &by).unwrap();
    doc.set_field("stop_name", &json!("东门站"), &by).unwrap();
    doc.set_field("benches", &json!(2), &by).unwrap();
    doc
}

/// The last page of a pull holding `docs` whole, with the scope digest they make.
fn last_page(docs: &mut [ReportDoc], catalogue: u64) -> Answer {
    let heads: Vec<(DocId, Vec<[u8; 32]>)> = docs
        .iter_mut()
        .map(|d| (d.id(), d.heads().iter().map(|h| h.0).collect()))
        .collect();
    let digest = protocol::scope_digest(heads.iter().map(|(id, h)| (*id, h.as_slice())));
    frame_answer(protocol::encode(&PullResult {
        docs: docs
            .iter_mut()
            .map(|d| PullDoc {
                doc: d.id(),
                heads: Vec::new(),
                body: PullBody::Snapshot(d.save()),
            })
            .collect(),
        evicted: Vec::new(),
        after: 9,
        more: false,
        digest,
        rescoped: false,
        catalogue,
    }))
}

#[test]
fn refreshing_fetches_the_forms_the_phone_lacks_marks_retired_ones_and_offers_refused_reports_again()
 {
    let dir = tempfile::tempdir().unwrap();
    let mut water: serde_json::Value = serde_json::from_str(&bus_stop()).unwrap();
    water["kind"] = json!("water_point");
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
                "water_point",
                1,
                SchemaState::Published,
                Some(water.to_string()),
            ),
        ],
    );
    let client = open(dir.path(), NOWHERE);
    let lamp = client.create_report("street_lamp", "g1").unwrap();
    let water = client.create_report("water_point", "g1").unwrap();
    let dispute = client.create_report("dispute_check", "g1").unwrap();
    drop(client);
    mark_refused(dir.path(), &KEY, &lamp, "unknown_kind");
    mark_refused(dir.path(), &KEY, &water, "unknown_kind");
    mark_refused(dir.path(), &KEY, &dispute, "unknown_grid");

    let server = Canned::start(vec![
        (
            CATALOGUE,
            catalogue(
                u64::MAX,
                &[
                    ("bus_stop", 1, "published"),
                    ("dispute_check", 1, "retired"),
                    ("drug_control_case", 1, "published"),
                    ("satisfaction_canvass", 1, "published"),
                    ("street_lamp", 1, "published"),
                    ("street_lamp", 2, "published"),
                    // Drafts never reach phones, and a state this app does not know is passed over.
                    ("street_lamp", 3, "under_review"),
                ],
            ),
        ),
        ("GET /api/v1/schemas/bus_stop/1", json_answer(&bus_stop())),
        (
            "GET /api/v1/schemas/street_lamp/2",
            json_answer(&street_lamp(2)),
        ),
    ]);
    let client = open(dir.path(), &server.base);
    let offered: Vec<(String, u32)> = client
        .refresh_schemas()
        .unwrap()
        .into_iter()
        .map(|k| (k.kind, k.version))
        .collect();
    let expected = [
        ("bus_stop".to_owned(), 1),
        ("drug_control_case".to_owned(), 1),
        ("satisfaction_canvass".to_owned(), 1),
        ("street_lamp".to_owned(), 2),
        ("water_point".to_owned(), 1),
    ];
    assert_eq!(offered, expected);
    assert_eq!(
        server.requests(),
        [
            CATALOGUE,
            "GET /api/v1/schemas/bus_stop/1",
            "GET /api/v1/schemas/street_lamp/2"
        ]
    );
    // The lamp report goes with the next push; the water point's kind is still unknown there,
    // and a grid refusal is not the catalogue's business.
    let mut still = vec![
        (water.clone(), "unknown_kind".to_owned()),
        (dispute.clone(), "unknown_grid".to_owned()),
    ];
    still.sort();
    assert_eq!(stuck_codes(&client), still);
    assert_eq!(client.pending_changes(), 3);
    drop(client);

    let store = Store::open(dir.path(), &KEY).unwrap();
    assert_eq!(store.catalogue().unwrap(), u64::MAX);
    drop(store);
    let client = open(dir.path(), NOWHERE);
    assert_eq!(kinds_offered(&client), expected);
    assert_eq!(stuck_codes(&client), still);
}

#[test]
fn a_sync_meeting_a_new_catalogue_takes_it_before_the_page_and_pushes_refused_reports_again() {
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
    let lamp = client.create_report("street_lamp", "g1").unwrap();
    client
        .set_field(&lamp, "lamp_no", Some(text("北-7")))
        .unwrap();
    drop(client);
    mark_refused(dir.path(), &KEY, &lamp, "unknown_kind");

    let mut bus = someone_elses_bus_stop();
    let acked = PushResult::central(vec![PushDocResult {
        doc: lamp.parse().unwrap(),
        outcome: PushOutcome::Acked { heads: Vec::new() },
    }]);
    let server = Canned::start(vec![
        (PULL, last_page(std::slice::from_mut(&mut bus), 42)),
        (
            CATALOGUE,
            catalogue(
                42,
                &[
                    ("street_lamp", 1, "published"),
                    ("bus_stop", 1, "published"),
                ],
            ),
        ),
        ("GET /api/v1/schemas/bus_stop/1", json_answer(&bus_stop())),
        (PUSH, frame_answer(protocol::encode(&acked))),
    ]);
    let client = open(dir.path(), &server.base);
    let summary = client.sync(None).unwrap();
    assert_eq!(
        server.requests(),
        [PULL, CATALOGUE, "GET /api/v1/schemas/bus_stop/1", PUSH]
    );
    assert_eq!(
        (
            summary.new_schemas,
            summary.pulled_reports,
            summary.pushed_reports
        ),
        (1, 1, 1)
    );
    assert!(summary.rejected.is_empty());
    assert_eq!(client.pending_changes(), 0);
    // The pulled report arrived with its form: typed by it and valid against it.
    let id = bus.id().to_string();
    let benches = client.report(&id).unwrap().fields;
    assert!(benches.contains(&gridsync_mobile::FieldEntry {
        field: "benches".into(),
        value: FieldValue::Decimal { value: 2.0 },
    }));
    assert!(problem_codes(&client, &id).is_empty());
}

#[test]
fn a_pulled_report_of_a_kind_the_phone_lacks_brings_its_form_from_a_server_without_a_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), Vec::new());
    let mut bus = someone_elses_bus_stop();
    let server = Canned::start(vec![
        (PULL, last_page(std::slice::from_mut(&mut bus), 0)),
        ("GET /api/v1/schemas/bus_stop/1", json_answer(&bus_stop())),
    ]);
    let client = open(dir.path(), &server.base);
    let summary = client.sync(None).unwrap();
    assert_eq!(server.requests(), [PULL, "GET /api/v1/schemas/bus_stop/1"]);
    assert_eq!(summary.new_schemas, 1);
    let id = bus.id().to_string();
    assert!(problem_codes(&client, &id).is_empty());
    assert_eq!(client.list_reports(None).unwrap()[0].title, "东门站");
    assert!(kinds_offered(&client).contains(&("bus_stop".into(), 1)));
}

#[test]
fn a_catalogue_that_cannot_be_fetched_fails_the_sync_without_applying_the_page_and_the_next_sync_takes_both()
 {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), Vec::new());
    let mut bus = someone_elses_bus_stop();
    let page = last_page(std::slice::from_mut(&mut bus), 42);
    let down = Canned::start(vec![(PULL, page.clone()), (CATALOGUE, failing())]);
    let client = open(dir.path(), &down.base);
    let err = client.sync(None).unwrap_err();
    assert!(matches!(err, ClientError::Network(_)), "{err:?}");
    assert!(client.list_reports(None).unwrap().is_empty());
    drop(client);
    let store = Store::open(dir.path(), &KEY).unwrap();
    assert_eq!(
        (store.cursor().unwrap().since, store.catalogue().unwrap()),
        (0, 0)
    );
    drop(store);

    let up = Canned::start(vec![
        (PULL, page),
        (CATALOGUE, catalogue(42, &[("bus_stop", 1, "published")])),
        ("GET /api/v1/schemas/bus_stop/1", json_answer(&bus_stop())),
    ]);
    let client = open(dir.path(), &up.base);
    let summary = client.sync(None).unwrap();
    assert_eq!((summary.new_schemas, summary.pulled_reports), (1, 1));
    assert!(problem_codes(&client, &bus.id().to_string()).is_empty());
}
